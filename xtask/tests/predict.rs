//! Saved models outside the process: a linear model and a pipeline (standardise, whitened
//! PCA, softmax) saved here are loaded by Python (numpy + safetensors,
//! `xtask/peers/roundtrip.py`) and give the same scores within 1e-4, and
//! `cargo xtask predict` classifies a user's JPEG of another size and a PNG with saved linear
//! and k-NN models.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, Fit, ImageShape};
use imgclass_features::{Pipeline, StepSpec};
use imgclass_knn::Knn;
use imgclass_linear::{Linear, LinearModel, Loss, Reg, Sgd, Stop};
use imgclass_model::{Provenance, SavedModel, save_knn, save_linear};

const SHAPE: ImageShape = ImageShape::new(3, 8, 8);

/// Noisy images of three colours: class `y` is bright in channel `y`, dark elsewhere.
fn colours(seed: u64, n: usize) -> Dataset {
    let mut rng = SplitMix64::new(seed);
    let plane = SHAPE.height * SHAPE.width;
    let mut pixels = Vec::with_capacity(n * SHAPE.len());
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let y = i % 3;
        for c in 0..3 {
            for _ in 0..plane {
                let base = if c == y { 170 } else { 40 };
                pixels.push((base + rng.below(60)) as u8);
            }
        }
        labels.push(y as u32);
    }
    Dataset::new(pixels, labels, SHAPE, ClassNames::new(["red", "green", "blue"]))
        .expect("valid data")
}

fn train_linear(train: &Dataset) -> LinearModel {
    Linear::new(Loss::Softmax)
        .regularization(Reg::L2(1e-3))
        .input_scale(1.0 / 255.0)
        .sgd(Sgd {
            batch_size: 32,
            learning_rate: 0.5,
            stop: Stop::Iterations(200),
            seed: 5,
            ..Sgd::default()
        })
        .fit(&train.all())
        .expect("training succeeds")
}

fn provenance() -> Provenance {
    Provenance {
        dataset: "generated colours".into(),
        seed: Some(5),
        created_by: "xtask/tests/predict.rs".into(),
        ..Provenance::default()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent").to_path_buf()
}

/// The Python to run: `$IMGCLASS_PYTHON`, else the repository's `.venv`, else `python3`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("IMGCLASS_PYTHON") {
        return p.into();
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// True when the Python has numpy and safetensors. Without them the test fails under CI
/// (`CI` set) and is skipped with a note otherwise.
fn python_ready(py: &Path) -> bool {
    let ok = Command::new(py)
        .args(["-c", "import numpy, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = format!(
            "{} with numpy and safetensors is needed for the Python round trip: \
             python3 -m pip install --user numpy safetensors (or set IMGCLASS_PYTHON)",
            py.display()
        );
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("note: skipping the Python round trip: {msg}");
    }
    ok
}

#[test]
fn python_reproduces_the_scores_of_a_saved_linear_model_and_pipeline() {
    let py = python();
    if !python_ready(&py) {
        return;
    }
    let train = colours(1, 90);
    let model = train_linear(&train);
    let dir = tempfile::tempdir().expect("temp dir");
    save_linear(&model, train.classes(), &provenance(), dir.path().join("lin")).expect("save");
    // the same colours through standardise + whitened PCA, then softmax on 5 features
    let specs = vec![StepSpec::Standardize, StepSpec::Pca { components: 5, whiten: true }];
    let pipe = Pipeline::new(
        specs,
        Linear::new(Loss::Softmax).sgd(Sgd {
            batch_size: 32,
            learning_rate: 0.1,
            stop: Stop::Iterations(200),
            seed: 5,
            ..Sgd::default()
        }),
    )
    .seed(2)
    .fit(&train.all())
    .expect("pipeline fits");
    let saved = SavedModel::Pipeline {
        steps: pipe.steps().to_vec(),
        model: Box::new(SavedModel::Linear {
            model: pipe.model().clone(),
            classes: train.classes().clone(),
        }),
    };
    saved.save(&provenance(), dir.path().join("pipe")).expect("save");
    let queries = colours(2, 7);
    let rows = dir.path().join("rows.bin");
    std::fs::write(&rows, queries.pixels().expect("images").storage().0).expect("rows");
    let pipe_scores = pipe.model().scores(&pipe.transform(&queries.all()).expect("t")).expect("s");
    for (name, rust) in
        [("lin.json", model.scores(&queries.all()).expect("scores")), ("pipe.json", pipe_scores)]
    {
        let out = Command::new(&py)
            .arg(repo_root().join("xtask/peers/roundtrip.py"))
            .arg(dir.path().join(name))
            .arg(&rows)
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "roundtrip.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
        let py_scores: Vec<Vec<f64>> =
            serde_json::from_value(v["scores"].clone()).expect("a list of score rows");
        assert_eq!(py_scores.len(), queries.len());
        for (q, row) in py_scores.iter().enumerate() {
            assert_eq!(row.len(), 3);
            for (c, &s) in row.iter().enumerate() {
                let r = f64::from(rust[q * 3 + c]);
                assert!(
                    (r - s).abs() <= 1e-4 * s.abs().max(1.0),
                    "{name} query {q} class {c}: rust {r}, numpy {s}"
                );
            }
        }
        // the scores are not trivially equal: the model separates the colours
        assert!(py_scores[0][0] > py_scores[0][1] && py_scores[1][1] > py_scores[1][0], "{name}");
    }
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the xtask binary runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn predict_classifies_a_jpeg_of_another_size_with_a_saved_linear_model() {
    let train = colours(1, 90);
    let model = train_linear(&train);
    let dir = tempfile::tempdir().expect("temp dir");
    save_linear(&model, train.classes(), &provenance(), dir.path().join("lin")).expect("save");
    // a 37 x 23 greenish JPEG (uniform, so any resize filter keeps its colour)
    let colour = [60u8, 200, 70];
    let img = image::RgbImage::from_pixel(37, 23, image::Rgb(colour));
    let jpg = dir.path().join("photo.jpg");
    img.save(&jpg).expect("write jpeg");
    let o = xtask(&["predict", "--model", s(&dir.path().join("lin.json")), "--json", s(&jpg)]);
    assert!(o.status.success(), "predict failed: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let top = v[0]["top"].as_array().expect("top list");
    assert_eq!(v[0]["image"], s(&jpg));
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["class"], "green");
    // oracle: the model's softmax on the decoded colour as a constant 8x8 image
    let decoded = image::open(&jpg).expect("decode").to_rgb8();
    let px = decoded.get_pixel(18, 11).0;
    let plane = SHAPE.height * SHAPE.width;
    let row: Vec<u8> = (0..3).flat_map(|c| std::iter::repeat_n(px[c], plane)).collect();
    let q = Dataset::new(row, vec![0], SHAPE, train.classes().clone()).expect("query");
    let p = model.predict_proba(&q.all()).expect("proba");
    let mut total = 0.0;
    for r in top {
        let label = r["label"].as_u64().expect("label") as usize;
        let got = r["probability"].as_f64().expect("probability");
        assert!((got - f64::from(p[label])).abs() < 2e-3, "class {label}: {got} vs {}", p[label]);
        total += got;
    }
    assert!((total - 1.0).abs() < 1e-4, "three classes' probabilities sum to {total}");
    // sorted by probability
    let probs: Vec<f64> = top.iter().map(|r| r["probability"].as_f64().expect("p")).collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
}

#[test]
fn predict_with_a_saved_knn_model_gives_vote_shares_and_text_output() {
    let train = colours(3, 30);
    let model = Knn::new(3).fit(&train.all()).expect("fit");
    let dir = tempfile::tempdir().expect("temp dir");
    save_knn(&model, &provenance(), dir.path().join("knn")).expect("save");
    // training row 4 (class 1) as an 8x8 PNG: its three nearest rows decide, by vote
    let plane = SHAPE.height * SHAPE.width;
    let r = train.pixels().expect("images").row(4);
    let img = image::RgbImage::from_fn(8, 8, |x, y| {
        let i = (y * 8 + x) as usize;
        image::Rgb([r[i], r[plane + i], r[2 * plane + i]])
    });
    let png = dir.path().join("row4.png");
    img.save(&png).expect("png");
    let nb = model.kneighbors(&train.subset(vec![4]).expect("row"), 3).expect("neighbours");
    let mut votes = [0usize; 3];
    for &i in &nb.indices {
        votes[train.label(i as usize) as usize] += 1;
    }
    let o = xtask(&["predict", "--model", s(&dir.path().join("knn")), s(&png)]);
    assert!(o.status.success(), "predict failed: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let names = ["red", "green", "blue"];
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by(|&a, &b| votes[b].cmp(&votes[a]).then(a.cmp(&b)));
    let expected: Vec<String> = order
        .iter()
        .filter(|&&c| votes[c] > 0)
        .map(|&c| format!("{} {:.1}%", names[c], 100.0 * votes[c] as f64 / 3.0))
        .collect();
    assert_eq!(text.trim(), format!("{}: {}", png.display(), expected.join(", ")));
}

#[test]
fn predict_reports_a_missing_model_or_a_non_image_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.json");
    let o = xtask(&["predict", "--model", s(&missing), s(&missing)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.json"));
    let train = colours(3, 9);
    let model = Knn::new(1).fit(&train.all()).expect("fit");
    save_knn(&model, &provenance(), dir.path().join("knn")).expect("save");
    let bogus = dir.path().join("not-an-image.jpg");
    std::fs::write(&bogus, b"hello").expect("write");
    let o = xtask(&["predict", "--model", s(&dir.path().join("knn")), s(&bogus)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not-an-image.jpg"));
    // --top 0 is refused by name (it used to print one class)
    let png = png_of(dir.path(), "red.png", 4, 4, [250, 10, 10]);
    let o = xtask(&["predict", "--model", s(&dir.path().join("knn")), "--top", "0", s(&png)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--top") && err.contains("must be at least 1"), "{err}");
    assert!(o.stdout.is_empty(), "nothing classified: {}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn a_model_saved_by_the_experiment_classifies_a_users_jpeg() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("report");
    let cfg = tmp.path().join("save-knn.toml");
    std::fs::write(&cfg, "[knn]\nsave_model = true\n").expect("config");
    let o = xtask(&["experiment", "--dataset", "demo", "--config", s(&cfg), "--out", s(&out)]);
    assert!(o.status.success(), "experiment failed: {}", String::from_utf8_lossy(&o.stderr));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results"))
            .expect("json");
    let shape: ImageShape =
        serde_json::from_value(results["dataset"]["shape"].clone()).expect("shape");
    // a 53 x 41 JPEG (not the model's size)
    let img =
        image::RgbImage::from_fn(53, 41, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 128]));
    let jpg = tmp.path().join("mine.jpg");
    img.save(&jpg).expect("jpeg");
    // the ensemble loads its three members from their own files beside it
    for name in ["model-svm", "model-softmax", "model-knn", "model-kmeans-1600-hog-hsv-ensemble"] {
        let model = out.join(name);
        let (saved, md) =
            imgclass_model::SavedModel::load(&model).expect("the experiment's model loads");
        assert_eq!(saved.shape(), shape.into());
        assert_eq!(md.provenance.seed, results["seed"].as_u64());
        let o = xtask(&["predict", "--model", s(&model), "--json", s(&jpg)]);
        assert!(o.status.success(), "predict failed: {}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let top = v[0]["top"].as_array().expect("top");
        if name == "model-knn" {
            // only classes that received votes
            assert!((1..=3).contains(&top.len()), "{top:?}");
            assert!(top.iter().all(|r| r["probability"].as_f64().is_some_and(|p| p > 0.0)));
        } else {
            assert_eq!(top.len(), 3.min(saved.n_classes()));
        }
        let label = top[0]["label"].as_u64().expect("label") as u32;
        assert_eq!(top[0]["class"], saved.classes().name(label).expect("a class name"));
    }
    // the linear models' recorded test accuracy is the report's
    let (_, md) = imgclass_model::load_linear(out.join("model-softmax.json")).expect("load");
    let losses = results["linear"]["losses"].as_array().expect("losses");
    let softmax = losses.iter().find(|l| l["loss"] == "softmax").expect("softmax");
    assert_eq!(md.provenance.test_accuracy, softmax["test_accuracy"].as_f64());
}

/// A saved linear SVM and the PNG of a constant colour, for the text-output tests.
fn svm_model(dir: &Path) -> (LinearModel, PathBuf) {
    let train = colours(1, 90);
    let model = Linear::new(Loss::Svm { margin: 1.0 })
        .regularization(Reg::L2(1e-3))
        .input_scale(1.0 / 255.0)
        .sgd(Sgd {
            batch_size: 32,
            learning_rate: 0.1,
            stop: Stop::Iterations(200),
            seed: 5,
            ..Sgd::default()
        })
        .fit(&train.all())
        .expect("training succeeds");
    let path = dir.join("svm");
    save_linear(&model, train.classes(), &provenance(), &path).expect("save");
    (model, path)
}

fn png_of(dir: &Path, name: &str, w: u32, h: u32, rgb: [u8; 3]) -> PathBuf {
    let path = dir.join(name);
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb)).save(&path).expect("png");
    path
}

#[test]
fn predict_on_a_linear_svm_prints_scores_not_percentages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (model, path) = svm_model(dir.path());
    let png = png_of(dir.path(), "blue.png", 8, 8, [40, 50, 200]);
    let o = xtask(&["predict", "--model", s(&path), s(&png)]);
    assert!(o.status.success(), "predict failed: {}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains('%'), "an SVM's scores are not probabilities: {out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not probabilities"));
    // oracle: the model's own scores of the constant image, in descending order
    let plane = SHAPE.height * SHAPE.width;
    let row: Vec<u8> =
        [40u8, 50, 200].iter().flat_map(|&c| std::iter::repeat_n(c, plane)).collect();
    let q = Dataset::new(row, vec![0], SHAPE, ClassNames::new(["red", "green", "blue"]))
        .expect("query");
    let sc = model.scores(&q.all()).expect("scores");
    let names = ["red", "green", "blue"];
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by(|&a, &b| sc[b].total_cmp(&sc[a]).then(a.cmp(&b)));
    let expected: Vec<String> =
        order.iter().map(|&c| format!("{} (score {:.3})", names[c], sc[c])).collect();
    assert_eq!(out.trim(), format!("{}: {}", png.display(), expected.join(", ")));
    assert_eq!(names[order[0]], "blue");
    // JSON: a score field, no probability
    let o = xtask(&["predict", "--model", s(&path), "--json", s(&png)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v[0]["top"][0]["score"].is_number() && v[0]["top"][0]["probability"].is_null());
}

#[test]
fn predict_with_a_k1_knn_model_prints_only_the_voted_class() {
    let dir = tempfile::tempdir().expect("temp dir");
    let train = colours(3, 30);
    save_knn(&Knn::new(1).fit(&train.all()).expect("fit"), &provenance(), dir.path().join("knn"))
        .expect("save");
    let png = png_of(dir.path(), "red.png", 8, 8, [200, 40, 40]);
    let o = xtask(&["predict", "--model", s(&dir.path().join("knn")), s(&png)]);
    assert!(o.status.success(), "predict failed: {}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.trim(), format!("{}: red 100.0%", png.display()));
    assert!(!out.contains(" 0.0%"), "{out}");
}

#[test]
fn predict_prints_every_good_image_and_names_each_unreadable_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, path) = svm_model(dir.path());
    let mut args: Vec<PathBuf> = Vec::new();
    for i in 0..5 {
        args.push(png_of(dir.path(), &format!("good{i}.png"), 8, 8, [40, 200, 40]));
    }
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"not a jpeg").expect("write");
    args.insert(2, bad.clone());
    let folder = dir.path().join("holiday-photos");
    std::fs::create_dir(&folder).expect("mkdir");
    args.push(folder.clone());
    let mut cmd: Vec<&str> = vec!["predict", "--model", s(&path)];
    cmd.extend(args.iter().map(|p| s(p)));
    let o = xtask(&cmd);
    assert!(!o.status.success(), "one unreadable file makes the run fail");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "every good image is classified:\n{out}");
    for (i, line) in lines.iter().enumerate() {
        let good = dir.path().join(format!("good{i}.png"));
        assert!(line.starts_with(&format!("{}: green (score ", good.display())), "{line}");
    }
    assert!(err.contains("broken.jpg"), "{err}");
    assert!(err.contains(&format!("{} is a directory", folder.display())), "{err}");
    assert!(err.contains("2 of 7 images could not be read"), "{err}");
    // JSON keeps the good ones too
    cmd.insert(3, "--json");
    let o = xtask(&cmd);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(5));
}

#[test]
fn predict_says_when_it_converts_or_resizes_an_image() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, path) = svm_model(dir.path());
    let rgba = dir.path().join("rgba.png");
    image::RgbaImage::from_pixel(200, 150, image::Rgba([200, 40, 40, 128]))
        .save(&rgba)
        .expect("png");
    let grey = dir.path().join("grey.png");
    image::GrayImage::from_pixel(8, 8, image::Luma([90])).save(&grey).expect("png");
    let exact = png_of(dir.path(), "exact.png", 8, 8, [40, 40, 200]);
    let o = xtask(&["predict", "--model", s(&path), s(&rgba), s(&grey), s(&exact)]);
    assert!(o.status.success(), "predict failed: {}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(notes.len(), 2, "one note per adapted image:\n{err}");
    assert!(notes[0].contains("rgba.png") && notes[0].contains("converted RGBA to RGB"));
    assert!(notes[0].contains("resized 200x150 to 8x8"), "{}", notes[0]);
    assert!(notes[1].contains("grey.png") && notes[1].contains("converted grey to RGB"));
    assert!(!notes[1].contains("resized"), "{}", notes[1]);
    assert!(!err.contains("exact.png"), "an image that fits gets no note: {err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 3);
}

#[test]
fn logs_sent_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, path) = svm_model(dir.path());
    let png = png_of(dir.path(), "x.png", 8, 8, [40, 40, 200]);
    // stderr is a pipe here; -v makes the command log (a DEBUG line on loading the model)
    for no_color in [None, Some("1")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["-v", "predict", "--model", s(&path), s(&png)]).env_remove("RUST_LOG");
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        let o = cmd.output().expect("runs");
        assert!(o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("DEBUG") && err.contains("loaded model"), "a log line: {err}");
        assert!(!err.contains('\u{1b}'), "ANSI escape in piped logs: {err:?}");
    }
}

#[test]
fn a_knn_model_saved_as_a_reference_is_small_predicts_like_a_copy_and_checks_its_data() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let cifar = data.join("cifar-10/cifar-10-batches-bin");
    imgclass_testkit::fixtures::write_cifar10_dir(&cifar, [20; 5], 30, 7).expect("fixture");
    let run = |model_data: &str, out: &Path| {
        let cfg = tmp.path().join(format!("{model_data}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "n_train = 60\n[knn]\nks = [1, 3]\nfolds = 2\ngallery_rows = 2\n\
                 gallery_neighbours = 2\nsave_model = true\nmodel_data = \"{model_data}\"\n\
                 [linear]\nenabled = false\n[ann]\nenabled = false\n"
            ),
        )
        .expect("config");
        let o =
            xtask(&["experiment", "--data-dir", s(&data), "--config", s(&cfg), "--out", s(out)]);
        assert!(o.status.success(), "experiment failed: {}", String::from_utf8_lossy(&o.stderr));
    };
    let (by_ref, by_copy) = (tmp.path().join("ref"), tmp.path().join("copy"));
    run("reference", &by_ref);
    run("copy", &by_copy);
    let reference = by_ref.join("model-knn-ref.json");
    assert!(!by_ref.join("model-knn.safetensors").exists(), "no copy of the pixels");
    let size = std::fs::metadata(&reference).expect("reference written").len();
    assert!(size < 20_000, "{size} bytes");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reference).expect("read")).expect("json");
    assert_eq!(v["train_rows"].as_array().map(Vec::len), Some(60));
    assert_eq!(v["files"].as_array().map(Vec::len), Some(6), "5 batches + the class names");
    // the same predictions as the self-contained copy (read through imgclass-model)
    let pngs: Vec<PathBuf> = (0..4u8)
        .map(|i| {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                image::Rgb([(x * 8) as u8 ^ (i * 60), (y * 8) as u8, i * 50])
            });
            let p = tmp.path().join(format!("q{i}.png"));
            img.save(&p).expect("png");
            p
        })
        .collect();
    let predict = |model: &Path| {
        let mut args = vec!["predict", "--model", s(model)];
        args.extend(pngs.iter().map(|p| s(p)));
        xtask(&args)
    };
    let a = predict(&reference);
    let b = predict(&by_copy.join("model-knn.json"));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&b.stdout));
    assert_eq!(String::from_utf8_lossy(&a.stdout).lines().count(), 4);
    // one changed byte in a training batch: predict refuses, naming the file
    let batch = cifar.join("data_batch_3.bin");
    let mut bytes = std::fs::read(&batch).expect("read");
    bytes[100] ^= 0xff;
    std::fs::write(&batch, bytes).expect("write");
    let o = predict(&reference);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("training data changed") && err.contains("data_batch_3.bin"), "{err}");
}
