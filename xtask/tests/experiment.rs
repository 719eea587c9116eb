//! End-to-end tests of `cargo xtask experiment` through the built binary: the offline demo
//! run writes a complete, well-formed report whose results.json is the same for one and two
//! threads (wall-clock fields aside); a bad config or a failing phase leaves no directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn xtask(args: &[&str], threads: usize) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env_remove("RUST_LOG")
        .output()
        .expect("the xtask binary runs")
}

fn run_demo(out: &Path, threads: usize) -> Value {
    let o = xtask(&["experiment", "--dataset", "demo", "--out", path_str(out)], threads);
    assert!(
        o.status.success(),
        "demo run failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("test accuracy") && stdout.contains("k-NN"), "summary: {stdout}");
    // the summary fits an 80-column terminal; speed ratios are phrased as faster or slower
    for line in stdout.lines() {
        assert!(line.chars().count() <= 80, "{} columns: {line}", line.chars().count());
    }
    assert!(stdout.contains("faster") || stdout.contains("slower"), "{stdout}");
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("results.json parses")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Removes every wall-clock-dependent value: keys containing `second`, and the top-level
/// `timings` and `run` objects (the convention documented in results.json's module).
fn strip_timings(v: &mut Value) {
    if let Value::Object(map) = v {
        map.retain(|k, _| !k.contains("second"));
        map.values_mut().for_each(strip_timings);
    } else if let Value::Array(items) = v {
        items.iter_mut().for_each(strip_timings);
    }
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("{pointer} is a number"))
}

/// Accuracy recomputed from a serialised confusion matrix (trace / total).
fn accuracy_of(confusion: &Value) -> f64 {
    let n = confusion["n_classes"].as_u64().expect("n_classes") as usize;
    let counts: Vec<u64> =
        confusion["counts"].as_array().expect("counts").iter().filter_map(Value::as_u64).collect();
    assert_eq!(counts.len(), n * n);
    let trace: u64 = (0..n).map(|i| counts[i * n + i]).sum();
    trace as f64 / counts.iter().sum::<u64>() as f64
}

fn check_report_files(dir: &Path, results: &Value) {
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for heading in [
        "Summary",
        "k-NN: choosing k and the distance",
        "k-NN: test confusion matrix",
        "k-NN: nearest training images",
        "Linear SVM: learning rate x regularisation",
        "Softmax: learning rate x regularisation",
        "Linear classifiers: loss curves",
        "Per-class test results (precision, recall, F1)",
        "Most-confused class pairs",
        "Misclassified test images",
        "Approximate nearest-neighbour search",
        "Configuration",
    ] {
        assert!(html.contains(&format!("<h2>{heading}")), "report.html lacks {heading:?}");
        // and the table of contents links to it
        assert!(html.contains(&format!("\">{heading}")), "contents lack {heading:?}");
    }
    // a per-class table for each of the three models, headed with precision and recall
    let per_class_header = "<th>class</th><th class=\"num\">test images</th><th class=\"num\">\
                            precision</th><th class=\"num\">recall (= class accuracy)</th>";
    assert_eq!(html.matches(per_class_header).count(), 3, "per-class tables");
    // the header names the date, the command and the git commit (this checkout's HEAD)
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(html.contains(&format!("<td>git commit</td><td>{head}")), "commit {head}");
    assert!(html.contains("<td>date (UTC)</td><td>20"));
    assert!(html.contains("<td>command</td><td>"));
    // class names are real text beside 64 px images, not drawn into a bitmap
    assert!(html.contains("width=\"64\" height=\"64\""));
    assert!(html.contains("<figcaption><span>true: "));
    // the k-NN model (a copy of the training set) is not saved by default; the linear ones are
    assert!(dir.join("model-softmax.json").is_file() && dir.join("model-svm.json").is_file());
    assert!(!dir.join("model-knn.json").exists() && !dir.join("model-knn-ref.json").exists());
    assert!(html.matches("<svg").count() >= 8, "inline SVG figures");
    assert!(html.contains("data:image/png;base64,"), "embedded PNGs");
    let figures = results["figures"].as_array().expect("figures");
    let names: Vec<&str> = figures.iter().filter_map(|f| f["file"].as_str()).collect();
    for expected in [
        "cv.svg",
        "knn_confusion.svg",
        "gallery.png",
        "svm_grid.svg",
        "svm_confusion.svg",
        "svm_templates.png",
        "softmax_grid.svg",
        "softmax_templates.png",
        "loss_curves.svg",
        "ann.svg",
        "kmeans_centroids.svg",
    ] {
        assert!(names.contains(&expected), "figure {expected} listed");
    }
    for name in names {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
        } else {
            let text = String::from_utf8(bytes).expect("SVG is UTF-8");
            assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{name}");
            assert_eq!(text.matches("<svg").count(), text.matches("</svg>").count(), "{name}");
        }
    }
}

#[test]
fn demo_runs_end_to_end_and_is_reproducible_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (one, two) = (tmp.path().join("one-thread"), tmp.path().join("two-threads"));
    let mut a = run_demo(&one, 1);
    check_report_files(&one, &a);

    assert_eq!(a["schema_version"], 1);
    assert_eq!(a["dataset"]["name"], "demo");
    // the generator: 200 train and 50 test images for each of 10 classes
    assert_eq!(a["dataset"]["n_train"], 2000);
    assert_eq!(a["dataset"]["n_test"], 500);
    assert_eq!(a["dataset"]["classes"].as_array().map(Vec::len), Some(10));
    assert_eq!(a["run"]["threads"], 1);
    // the demo's templates are ~10.7 noise sigmas apart (see demo.rs), so the nearest-template
    // rule is essentially always right; chance is 0.1. Every model must learn it.
    let knn_test = f(&a, "/knn/test_accuracy");
    assert!(knn_test >= 0.9, "k-NN test accuracy {knn_test}");
    assert_eq!(knn_test, accuracy_of(&a["knn"]["confusion"]));
    assert!(f(&a, "/knn/cv_mean") >= 0.9);
    let ks: Vec<u64> =
        a["knn"]["ks"].as_array().expect("ks").iter().filter_map(Value::as_u64).collect();
    assert_eq!(ks, vec![1, 3, 5, 7, 10, 15, 20, 50, 100]);
    let series = a["knn"]["curve"]["series"].as_array().expect("series");
    assert_eq!(series.len(), 2);
    for s in series {
        for p in s["points"].as_array().expect("points") {
            assert_eq!(p["scores"]["per_fold"].as_array().map(Vec::len), Some(5));
        }
    }
    // the test set is used once: only the chosen series carries a test accuracy
    let with_test = series.iter().filter(|s| !s["test_accuracy"].is_null()).count();
    assert_eq!(with_test, 1);
    let losses = a["linear"]["losses"].as_array().expect("losses");
    assert_eq!(losses.len(), 2);
    for l in losses {
        let t = l["test_accuracy"].as_f64().expect("test accuracy");
        assert!(t >= 0.9, "{} test accuracy {t}", l["loss"]);
        assert_eq!(t, accuracy_of(&l["confusion"]));
        // the config's 3 x 3 grid first, then any cells the refining search added
        let grid = l["grid"].as_array().expect("grid");
        assert!(grid.len() >= 9, "{}", grid.len());
        assert!(grid[..9].iter().all(|p| p["origin"] == "grid"));
        assert!(grid[9..].iter().all(|p| p["origin"] == "extended" || p["origin"] == "refined"));
        // the chosen cell is inside the searched range unless a stated bound was hit
        let best = &grid[l["best"].as_u64().expect("best") as usize];
        if l["bound_hit"].as_array().is_some_and(Vec::is_empty) {
            for key in ["learning_rate", "regularization"] {
                let vals: Vec<f64> = grid.iter().filter_map(|p| p[key].as_f64()).collect();
                let v = best[key].as_f64().expect("value");
                let (lo, hi) =
                    vals.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                assert!(v > lo && v < hi, "{key} {v} on the edge of {vals:?}");
            }
        }
        assert_eq!(l["loss_curve"].as_array().map(Vec::len), Some(300), "quick iterations");
    }
    // one summary row per (representation, classifier), the default representations
    let summary = a["summary"].as_array().expect("summary");
    for (rep, model) in [
        ("raw", "softmax (lbfgs)"),
        ("raw", "net"),
        ("hog+hsv", "k-NN"),
        ("hog+hsv", "l2-svm"),
        ("hog+hsv", "softmax"),
        ("hog+hsv", "net"),
        ("hog+hsv-chi2", "l2-svm"),
        ("hog+hsv-chi2", "softmax"),
        ("kmeans-100", "l2-svm"),
        ("kmeans-1600", "l2-svm"),
        ("kmeans-1600", "net"),
        ("kmeans-1600+hog+hsv", "ensemble of 3"),
    ] {
        let row = summary
            .iter()
            .find(|r| {
                r["representation"] == rep && r["model"].as_str().is_some_and(|m| m.contains(model))
            })
            .unwrap_or_else(|| panic!("no summary row {rep} {model}"));
        let t = row["test_accuracy"].as_f64().expect("test accuracy");
        assert!((0.0..=1.0).contains(&t));
    }
    for r in a["representations"].as_array().expect("representations") {
        for c in r["classifiers"].as_array().expect("classifiers") {
            assert_eq!(c["test_accuracy"].as_f64(), Some(accuracy_of(&c["confusion"])));
        }
    }
    // the ensemble is saved as a model naming its three members' files, which load with it
    let (ens, md) =
        imgclass_model::SavedModel::load(one.join("model-kmeans-1600-hog-hsv-ensemble"))
            .expect("the ensemble loads");
    assert_eq!(ens.kind(), "ensemble");
    let imgclass_model::Params::Ensemble { members } = &md.params else { panic!("{md:?}") };
    let files: Vec<(&str, f32)> = members.iter().map(|m| (m.file.as_str(), m.weight)).collect();
    assert_eq!(
        files,
        [
            ("model-kmeans-1600-l2-svm.json", 3.0),
            ("model-kmeans-1600-net.json", 1.0),
            ("model-hog-hsv-net.json", 0.7)
        ]
    );
    // held-out validation: 10% of 2000
    assert_eq!(a["linear"]["n_validation"], 200);
    let points = a["ann"]["points"].as_array().expect("ann points");
    assert_eq!(points.len(), 6);
    for p in points {
        let r = p["recall"].as_f64().expect("recall");
        assert!((0.0..=1.0).contains(&r), "recall {r}");
    }

    let mut b = run_demo(&two, 2);
    assert_eq!(b["run"]["threads"], 2);
    strip_timings(&mut a);
    strip_timings(&mut b);
    for v in [&mut a, &mut b] {
        let m = v.as_object_mut().expect("object");
        m.remove("timings");
        m.remove("run");
    }
    assert_eq!(a, b, "results.json differs between 1 and 2 threads");
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).expect("read dir").filter_map(|e| e.ok().map(|e| e.path())).collect()
}

#[test]
fn invalid_config_is_named_and_leaves_no_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "[knn]\nfoldz = 3\n").expect("write");
    let out = tmp.path().join("reports").join("run");
    let o = xtask(
        &["experiment", "--dataset", "demo", "--config", path_str(&cfg), "--out", path_str(&out)],
        2,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("foldz") && err.contains("bad.toml"), "{err}");
    assert!(!out.exists());
    assert!(!tmp.path().join("reports").exists());
}

#[test]
fn failing_phase_leaves_no_directory() {
    // a learning rate of 1e3 on raw pixels makes every SGD run diverge: the linear phase
    // fails after the others ran, and nothing may be left behind
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("diverge.toml");
    std::fs::write(
        &cfg,
        "[knn]\nks = [1, 3]\nfolds = 2\n[linear]\niterations = 20\n[linear.svm]\n\
         learning_rates = [1e3]\nregularizations = [1.0]\n[linear.softmax]\nenabled = false\n\
         [ann]\nenabled = false\n",
    )
    .expect("write");
    let reports = tmp.path().join("reports");
    std::fs::create_dir(&reports).expect("mkdir");
    let out = reports.join("run");
    let o = xtask(
        &["experiment", "--dataset", "demo", "--config", path_str(&cfg), "--out", path_str(&out)],
        2,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("diverged"), "{err}");
    // issue 17 item 16: the real keys of the svm grid, and the regularisation as a cause
    assert!(err.contains("every svm run diverged"), "{err}");
    assert!(err.contains("lower linear.svm.learning_rates"), "{err}");
    assert!(err.contains("linear.svm.regularizations"), "{err}");
    assert!(!err.contains("lower linear.learning_rates"), "{err}");
    assert!(!out.exists());
    assert_eq!(leftovers(&reports), Vec::<PathBuf>::new());
}

#[test]
fn existing_output_directory_is_refused_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("keep.txt"), "mine").expect("write");
    let o = xtask(&["experiment", "--dataset", "demo", "--out", path_str(tmp.path())], 2);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(std::fs::read_to_string(tmp.path().join("keep.txt")).expect("kept"), "mine");
}

#[test]
fn interrupt_leaves_no_directory() {
    // SIGINT (Ctrl-C) while the phases run: the report directory, and the temporary one it
    // is written to, are only created once every phase has finished
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["experiment", "--dataset", "demo", "--out", path_str(&out)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed =
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the run was interrupted");
    // issue 17 item 8: the interrupt handler ran (removing whatever was registered) and exited
    // with the shell's code for an interrupted command
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(leftovers(tmp.path()), Vec::<PathBuf>::new());
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`), whatever the log colouring.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Issue 17 item 12: the warning about a too-large k names the dropped values (it listed the
/// kept ones) and does not fire for a mere duplicate.
#[test]
fn the_dropped_k_warning_names_the_dropped_values_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |name: &str, ks: &str| {
        let cfg = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[knn]\nks = {ks}\nfolds = 2\nmetrics = [\"l2\"]\n[linear]\nenabled = false\n\
                 [ann]\nenabled = false\n"
            ),
        )
        .expect("write");
        let out = tmp.path().join(name);
        let o = xtask(
            &[
                "experiment",
                "--dataset",
                "demo",
                "--config",
                path_str(&cfg),
                "--out",
                path_str(&out),
            ],
            2,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        strip_ansi(&String::from_utf8_lossy(&o.stderr))
    };
    // the demo's 2,000 training images in 2 folds: 1,000 training rows per fold
    let err = run("dropped", "[1, 1, 3, 5000]");
    let line = err
        .lines()
        .find(|l| l.contains("k larger than a fold's training set dropped"))
        .unwrap_or_else(|| panic!("no warning in {err}"));
    assert!(line.contains("dropped=[5000]") && line.contains("kept=[1, 3]"), "{line}");
    let err = run("duplicate", "[1, 1, 3]");
    assert!(!err.contains("dropped"), "a duplicate is not a dropped k: {err}");
}

/// Issue 17 item 11: one cause chain, each cause once (the OS error was printed twice).
#[test]
fn a_missing_config_names_the_os_error_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("missing.toml");
    let out = tmp.path().join("run");
    let o = xtask(&["experiment", "--config", path_str(&cfg), "--out", path_str(&out)], 2);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let os = std::io::Error::from_raw_os_error(2).to_string();
    assert!(err.contains("missing.toml") && err.contains(&os), "{err}");
    assert_eq!(err.matches(&os).count(), 1, "{err}");
}

/// Issue 17 item 10: an `--out` that cannot be written fails before any computation (it used
/// to fail only after every phase had run). `/proc` refuses new files even to root; a path
/// under a regular file has no directory to write in.
#[test]
fn an_unwritable_out_fails_before_the_phases_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    let under_file = file.join("run");
    for out in [Path::new("/proc/imgclass-report"), under_file.as_path()] {
        let t = std::time::Instant::now();
        let o = xtask(&["experiment", "--dataset", "demo", "--out", path_str(out)], 2);
        assert!(!o.status.success());
        let err = strip_ansi(&String::from_utf8_lossy(&o.stderr));
        assert!(err.contains("cannot write the report to") && err.contains("hint:"), "{err}");
        assert!(!err.contains("experiment: demo"), "no phase may start: {err}");
        assert!(t.elapsed().as_secs() < 10, "took {:?}", t.elapsed());
    }
}

/// Issue 17 item 8: temporary report directories of killed runs (dead PID in the name) are
/// removed at the next start, whatever their `--out` name; a live process's are kept.
#[test]
fn stale_report_temporaries_of_dead_runs_are_swept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dead = {
        let mut c = Command::new("true").spawn().expect("spawn");
        let pid = c.id();
        c.wait().expect("wait");
        pid
    };
    let stale = tmp.path().join(format!(".2026-12-01_10-00-00.tmp-{dead}-Ab12"));
    let live = tmp.path().join(format!(".other.tmp-{}-Cd34", std::process::id()));
    for d in [&stale, &live] {
        std::fs::create_dir(d).expect("mkdir");
        std::fs::write(d.join("gallery.png"), vec![0u8; 1 << 16]).expect("write");
    }
    let cfg = tmp.path().join("small.toml");
    std::fs::write(
        &cfg,
        "[knn]\nks = [1]\nfolds = 2\nmetrics = [\"l2\"]\n[linear]\nenabled = false\n\
         [ann]\nenabled = false\n",
    )
    .expect("write");
    let out = tmp.path().join("run");
    let o = xtask(
        &["experiment", "--dataset", "demo", "--config", path_str(&cfg), "--out", path_str(&out)],
        2,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stale.exists(), "the dead run's temporary report is removed");
    assert!(live.exists(), "a live process's is kept");
    let mut names: Vec<String> = leftovers(tmp.path())
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let live_name = live.file_name().expect("name").to_string_lossy().into_owned();
    assert_eq!(names, vec![live_name, "run".to_string(), "small.toml".to_string()]);
}

/// Runs `experiment --dataset demo` with `config` and expects it to fail: its stderr
/// (without colour codes), after checking that no report directory was left.
fn demo_config_fails(config: &str) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("config.toml");
    std::fs::write(&cfg, config).expect("write");
    let out = tmp.path().join("run");
    let o = xtask(
        &["experiment", "--dataset", "demo", "--config", path_str(&cfg), "--out", path_str(&out)],
        2,
    );
    assert!(!o.status.success());
    assert!(!out.exists());
    strip_ansi(&String::from_utf8_lossy(&o.stderr))
}

/// A mistake in the last representation's feature steps stops the run before the first
/// phase starts (it used to surface after the k-NN and linear phases had run).
#[test]
fn a_bad_feature_step_fails_before_the_phases_run() {
    let err = demo_config_fails(
        "[[representations]]\nname = \"late\"\n\
         steps = [{ kind = \"kmeans\", centroids = 15, flip = true }]\nclassifiers = [\"net\"]\n",
    );
    assert!(err.contains("the [late] feature steps: pipeline step 0 (kmeans(15, flip))"), "{err}");
    assert!(err.contains("15 centroids cannot be mirror pairs"), "{err}");
    assert!(!err.contains("started"), "no phase may start: {err}");
}

/// A grid search that cannot hold rows out says whose search it was and on how many rows.
#[test]
fn a_search_on_too_few_rows_names_its_classifier_and_the_rows() {
    let err = demo_config_fails(
        "n_train = 10\n[knn]\nenabled = false\n[linear]\nenabled = false\n[ann]\nenabled = false\n\
         [[representations]]\nname = \"h\"\nsteps = [{ kind = \"hog\" }]\nclassifiers = [\"net\"]\n\
         net = { learning_rates = [1e-2, 3e-2] }\n",
    );
    assert!(
        err.contains("h net: choosing its settings on a held-out share of the 10 training rows"),
        "{err}"
    );
}
