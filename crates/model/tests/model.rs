//! Save/load round trips of every model kind against the model that was saved (the oracle),
//! and every kind of damaged file (truncated, corrupt, wrong version, kind, dtype or shape)
//! as a typed error naming the file.

use std::path::{Path, PathBuf};

use imgclass_core::rng::SplitMix64;
use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Predict, RowShape};
use imgclass_knn::ann::AnnIndex;
use imgclass_knn::{Knn, Metric, Vote};
use imgclass_linear::{Linear, LinearModel, Loss, Reg, Sgd, Stop};
use imgclass_model::{
    ModelError, Params, Provenance, SavedModel, load_knn, load_linear, parse, save_knn,
    save_knn_with_index, save_linear,
};
use safetensors::{Dtype, tensor::TensorView};
use sha2::Digest;

const SHAPE: ImageShape = ImageShape::new(3, 4, 4);

/// Three classes of noisy images, each brighter in one channel.
fn data(seed: u64, n: usize) -> Dataset {
    let mut rng = SplitMix64::new(seed);
    let d = SHAPE.len();
    let plane = d / 3;
    let mut pixels = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let y = (i % 3) as u32;
        for j in 0..d {
            let base = if j / plane == y as usize { 150 } else { 60 };
            pixels.push((base + rng.below(80)) as u8);
        }
        labels.push(y);
    }
    Dataset::new(pixels, labels, SHAPE, ClassNames::new(["r", "g", "b"])).expect("valid data")
}

fn linear_model(train: &Dataset) -> LinearModel {
    Linear::new(Loss::Svm { margin: 1.0 })
        .regularization(Reg::L2(1e-3))
        .sgd(Sgd {
            batch_size: 30,
            learning_rate: 1e-4,
            stop: Stop::Iterations(100),
            seed: 3,
            ..Sgd::default()
        })
        .fit(&train.all())
        .expect("training succeeds")
}

fn prov() -> Provenance {
    Provenance {
        dataset: "generated".into(),
        seed: Some(3),
        validation_accuracy: Some(0.9),
        test_accuracy: Some(0.875),
        created_by: "imgclass-model tests".into(),
        hyperparameters: [("learning_rate".to_string(), serde_json::json!(1e-4))].into(),
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn linear_round_trip_gives_identical_parameters_scores_and_metadata() {
    let train = data(1, 60);
    let test = data(2, 15);
    let m = linear_model(&train);
    let dir = tmp();
    save_linear(&m, train.classes(), &prov(), dir.path().join("lin")).expect("save");
    // both file names, and no temp file left behind
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["lin.json", "lin.safetensors"]);
    for p in ["lin", "lin.json", "lin.safetensors"] {
        let (back, md) = load_linear(dir.path().join(p)).expect("load");
        assert_eq!(back.weights(), m.weights());
        assert_eq!(back.bias(), m.bias());
        assert_eq!(back.mean_image(), m.mean_image());
        assert_eq!(back.input_scale(), m.input_scale());
        assert_eq!(back.loss(), m.loss());
        assert_eq!(back.scores(&test.all()), m.scores(&test.all()));
        assert_eq!(back.predict(&test.all()), m.predict(&test.all()));
        assert_eq!(md.provenance, prov());
        assert_eq!(md.classes, *train.classes());
        assert_eq!(md.input, imgclass_core::RowShape::Image(SHAPE));
        assert_eq!(md.params.kind(), "linear");
    }
}

#[test]
fn saving_into_a_directory_uses_the_kind_as_the_name_and_overwrites_atomically() {
    let train = data(1, 30);
    let m = linear_model(&train);
    let dir = tmp();
    save_linear(&m, train.classes(), &prov(), dir.path()).expect("save");
    save_linear(&m, train.classes(), &Provenance::default(), dir.path()).expect("overwrite");
    let (_, md) = load_linear(dir.path().join("linear.json")).expect("load");
    assert_eq!(md.provenance, Provenance::default());
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 2);
}

#[test]
fn the_tensor_file_is_plain_safetensors_with_the_documented_names_shapes_and_dtypes() {
    let train = data(1, 30);
    let m = linear_model(&train);
    let dir = tmp();
    save_linear(&m, train.classes(), &prov(), dir.path().join("lin")).expect("save");
    let bytes = std::fs::read(dir.path().join("lin.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let d = SHAPE.len();
    for (name, shape, values) in [
        ("W", vec![3, d], m.weights()),
        ("b", vec![3], m.bias()),
        ("mean", vec![d], m.mean_image()),
    ] {
        let t = st.tensor(name).expect("tensor present");
        assert_eq!(t.dtype(), Dtype::F32);
        assert_eq!(t.shape(), shape);
        let got: Vec<f32> =
            t.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect();
        assert_eq!(got, values);
    }
    // the JSON records the file's size and SHA-256 (as computed here independently)
    let md: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lin.json")).expect("json"))
            .expect("json");
    let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(md["tensors_sha256"], serde_json::json!(hex));
    assert_eq!(md["tensors_size"], serde_json::json!(bytes.len()));
    assert_eq!(md["kind"], "linear");
    assert_eq!(md["format_version"], 2);
    assert_eq!(md["params"]["loss"]["name"], "svm");
}

#[test]
fn knn_round_trip_stores_the_training_rows_and_predicts_identically() {
    let full = data(4, 40);
    let test = data(5, 12);
    // a gathered subset: the file must hold those rows in that order
    let train = full.subset(vec![3, 1, 4, 15, 9, 26, 5, 35, 8, 39, 7, 2]).expect("subset");
    let m = Knn::new(3).metric(Metric::L1).vote(Vote::Distance).fit(&train).expect("fit");
    let dir = tmp();
    save_knn(&m, &prov(), dir.path().join("knn")).expect("save");
    let (back, index, md) = load_knn(dir.path().join("knn")).expect("load");
    assert!(index.is_none());
    assert_eq!(back.params(), m.params());
    assert_eq!(back.train_labels(), m.train_labels());
    assert_eq!(back.train().values().to_f32(), train.values().to_f32());
    assert_eq!(back.predict_proba(&test.all()), m.predict_proba(&test.all()));
    assert_eq!(back.kneighbors(&test.all(), 5), m.kneighbors(&test.all(), 5));
    assert!(matches!(md.params, Params::Knn { k: 3, n_train: 12, ann: None, .. }));
    assert_eq!(md.classes, *full.classes());
}

#[test]
fn knn_on_f32_features_round_trips_with_identical_predictions() {
    // features from the pixels (scaled, so not integers): the general f32 path
    let to_features = |ds: &Dataset| {
        let all = ds.all();
        let v: Vec<f32> = all.values().to_f32().iter().map(|&x| x / 7.0 - 3.0).collect();
        all.with_features(v, all.dim()).expect("finite")
    };
    let train = to_features(&data(14, 48));
    let test = to_features(&data(15, 20));
    for metric in [Metric::L1, Metric::L2] {
        let m = Knn::new(3).metric(metric).fit(&train.all()).expect("fit");
        let dir = tmp();
        save_knn(&m, &prov(), dir.path().join("knn")).expect("save");
        let (back, _, md) = load_knn(dir.path().join("knn")).expect("load");
        assert_eq!(md.input, RowShape::Features(train.dim()));
        assert_eq!(back.train().values().to_f32(), train.all().values().to_f32());
        assert_eq!(back.predict(&test.all()), m.predict(&test.all()));
        assert_eq!(back.kneighbors(&test.all(), 7), m.kneighbors(&test.all(), 7));
    }
}

#[test]
fn knn_with_an_approximate_index_round_trips_the_index() {
    let train = data(6, 60).all();
    let test = data(7, 10).all();
    let m = Knn::new(4).fit(&train).expect("fit");
    let ix = AnnIndex::KdTree { leaf_size: 4, eps: 0.5 }
        .build(&train, Metric::L2, None, 11)
        .expect("build");
    let dir = tmp();
    save_knn_with_index(&m, &ix, &prov(), dir.path().join("knn")).expect("save");
    assert!(dir.path().join("knn.ann").exists());
    let (model, md) = SavedModel::load(dir.path().join("knn.json")).expect("load");
    let SavedModel::Knn { index: Some(back), .. } = &model else {
        panic!("expected a k-NN model with an index, got {}", model.kind());
    };
    assert_eq!(back.search(&test, 4).expect("search"), ix.search(&test, 4).expect("search"));
    let Params::Knn { ann: Some(ann), .. } = &md.params else { panic!("no ann in metadata") };
    assert_eq!(ann.file, "knn.ann");
    // probabilities are the vote shares over the index's neighbours
    let idx = ix.search(&test, 4).expect("search").indices;
    let p = model.predict_proba(&test).expect("proba");
    for q in 0..test.len() {
        for c in 0..3u32 {
            let votes =
                idx[q * 4..q * 4 + 4].iter().filter(|&&i| train.label(i as usize) == c).count();
            assert!((p[q * 3 + c as usize] - votes as f32 / 4.0).abs() < 1e-6);
        }
    }
    // an index built on other rows is refused
    let other = AnnIndex::Exact.build(&data(8, 60).all(), Metric::L2, None, 1).expect("build");
    assert!(matches!(
        save_knn_with_index(&m, &other, &prov(), dir.path().join("x")),
        Err(ModelError::IndexMismatch)
    ));
}

// ---- damaged files ----------------------------------------------------------------------

/// A saved linear model's two files, read back.
fn saved_linear(dir: &Path) -> (PathBuf, PathBuf, serde_json::Value, Vec<u8>) {
    let train = data(1, 30);
    let m = linear_model(&train);
    save_linear(&m, train.classes(), &prov(), dir.join("lin")).expect("save");
    let json_path = dir.join("lin.json");
    let st_path = dir.join("lin.safetensors");
    let json = serde_json::from_slice(&std::fs::read(&json_path).expect("json")).expect("json");
    let st = std::fs::read(&st_path).expect("tensors");
    (json_path, st_path, json, st)
}

/// Writes tensors and a JSON whose size and checksum match them (so only the content checks
/// can reject them), then loads.
fn load_with(dir: &Path, mut json: serde_json::Value, st: &[u8]) -> Result<SavedModel, ModelError> {
    let hex: String = sha2::Sha256::digest(st).iter().map(|b| format!("{b:02x}")).collect();
    json["tensors_sha256"] = serde_json::json!(hex);
    json["tensors_size"] = serde_json::json!(st.len());
    std::fs::write(dir.join("lin.safetensors"), st).expect("write");
    std::fs::write(dir.join("lin.json"), serde_json::to_vec(&json).expect("json")).expect("write");
    SavedModel::load(dir.join("lin.json")).map(|(m, _)| m)
}

fn names_file(e: &ModelError, file: &str) {
    assert!(e.to_string().contains(file), "error {e} does not name {file}");
}

#[test]
fn truncated_or_corrupted_tensor_files_are_checksum_errors() {
    let dir = tmp();
    let (json_path, st_path, _, st) = saved_linear(dir.path());
    std::fs::write(&st_path, &st[..st.len() - 1]).expect("truncate");
    let e = load_linear(&json_path).expect_err("truncated");
    assert!(matches!(e, ModelError::Checksum { what: "size", .. }), "{e}");
    names_file(&e, "lin.safetensors");
    let mut flipped = st.clone();
    flipped[st.len() / 2] ^= 0x40;
    std::fs::write(&st_path, &flipped).expect("corrupt");
    let e = load_linear(&json_path).expect_err("corrupt");
    assert!(matches!(e, ModelError::Checksum { what: "sha256", .. }), "{e}");
    std::fs::remove_file(&st_path).expect("remove");
    let e = load_linear(&json_path).expect_err("missing");
    assert!(matches!(e, ModelError::Io { .. }), "{e}");
    names_file(&e, "lin.safetensors");
}

#[test]
fn every_prefix_of_the_tensor_file_is_an_error_even_with_a_matching_checksum() {
    let dir = tmp();
    let (_, _, json, st) = saved_linear(dir.path());
    for len in 0..st.len() {
        let e = load_with(dir.path(), json.clone(), &st[..len]).expect_err("prefix must fail");
        names_file(&e, "lin.safetensors");
    }
    assert!(load_with(dir.path(), json, &st).is_ok());
}

#[test]
fn damaged_metadata_is_a_typed_error_naming_the_json_file() {
    let dir = tmp();
    let (json_path, _, json, st) = saved_linear(dir.path());
    let text = serde_json::to_vec(&json).expect("json");
    for len in [0, 1, text.len() / 2, text.len() - 1] {
        std::fs::write(&json_path, &text[..len]).expect("write");
        let e = load_linear(&json_path).expect_err("truncated json");
        assert!(matches!(e, ModelError::Json { .. }), "{e}");
        names_file(&e, "lin.json");
    }
    let mut v2 = json.clone();
    v2["format_version"] = serde_json::json!(3);
    let e = load_with(dir.path(), v2, &st).expect_err("future version");
    assert!(matches!(e, ModelError::UnsupportedVersion { found: 3, supported: 2, .. }), "{e}");
    let mut huge = json.clone();
    huge["input"] = serde_json::json!({"image": {"channels": usize::MAX, "height": 2, "width": 2}});
    let e = load_with(dir.path(), huge, &st).expect_err("overflowing shape");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    let mut escape = json.clone();
    escape["tensors"] = serde_json::json!("../lin.safetensors");
    let e = load_with(dir.path(), escape, &st).expect_err("path outside the directory");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    let mut kind = json.clone();
    kind["kind"] = serde_json::json!("knn");
    let e = load_with(dir.path(), kind, &st).expect_err("linear params under knn");
    assert!(matches!(e, ModelError::Json { .. }), "{e}");
}

#[test]
fn wrong_shapes_dtypes_and_names_are_reported_per_tensor() {
    let dir = tmp();
    let (_, _, json, _) = saved_linear(dir.path());
    let d = SHAPE.len();
    let f = |n: usize| vec![0u8; 4 * n];
    let (w_ok, b_ok, mean_ok) = (f(3 * d), f(3), f(d));
    let (w_wide, w_u8) = (f(3 * (d + 1)), vec![0u8; 3 * d]);
    let st = |ts: Vec<(&str, Dtype, Vec<usize>, &[u8])>| {
        let views: Vec<(&str, TensorView<'_>)> = ts
            .into_iter()
            .map(|(n, dt, s, b)| (n, TensorView::new(dt, s, b).expect("view")))
            .collect();
        let info = [("input".to_string(), RowShape::Image(SHAPE).to_string())].into();
        safetensors::serialize(views, Some(info)).expect("serialize")
    };
    let wide = st(vec![
        ("W", Dtype::F32, vec![3, d + 1], &w_wide),
        ("b", Dtype::F32, vec![3], &b_ok),
        ("mean", Dtype::F32, vec![d], &mean_ok),
    ]);
    let e = load_with(dir.path(), json.clone(), &wide).expect_err("wrong shape");
    assert!(
        matches!(&e, ModelError::WrongShape { name, expected, found, .. }
            if name == "W" && *expected == vec![3, d] && *found == vec![3, d + 1]),
        "{e}"
    );
    let bytes = st(vec![
        ("W", Dtype::U8, vec![3, d], &w_u8),
        ("b", Dtype::F32, vec![3], &b_ok),
        ("mean", Dtype::F32, vec![d], &mean_ok),
    ]);
    let e = load_with(dir.path(), json.clone(), &bytes).expect_err("wrong dtype");
    assert!(
        matches!(&e, ModelError::WrongDtype { name, expected: "F32", .. } if name == "W"),
        "{e}"
    );
    let missing = st(vec![("W", Dtype::F32, vec![3, d], &w_ok), ("b", Dtype::F32, vec![3], &b_ok)]);
    let e = load_with(dir.path(), json.clone(), &missing).expect_err("missing tensor");
    assert!(matches!(&e, ModelError::MissingTensor { name, .. } if name == "mean"), "{e}");
    let extra = st(vec![
        ("W", Dtype::F32, vec![3, d], &w_ok),
        ("b", Dtype::F32, vec![3], &b_ok),
        ("mean", Dtype::F32, vec![d], &mean_ok),
        ("zz", Dtype::F32, vec![3], &b_ok),
    ]);
    let e = load_with(dir.path(), json.clone(), &extra).expect_err("extra tensor");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    let nan = f32::NAN.to_le_bytes().repeat(3);
    let bad = st(vec![
        ("W", Dtype::F32, vec![3, d], &w_ok),
        ("b", Dtype::F32, vec![3], &nan),
        ("mean", Dtype::F32, vec![d], &mean_ok),
    ]);
    let e = load_with(dir.path(), json.clone(), &bad).expect_err("nan bias");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    // the all-zero model with the right layout loads: the checks above are not over-eager
    let good = st(vec![
        ("W", Dtype::F32, vec![3, d], &w_ok),
        ("b", Dtype::F32, vec![3], &b_ok),
        ("mean", Dtype::F32, vec![d], &mean_ok),
    ]);
    assert!(load_with(dir.path(), json, &good).is_ok());
}

/// Issue 17 item 3: an edited `image_shape` of the same byte count (3x4x4 -> 3x2x8) used to
/// load and silently change every prediction; the tensor file records the shape and the two
/// are cross-checked. A tensor file that records no shape is refused too.
#[test]
fn an_edited_image_shape_is_refused_against_the_shape_the_tensors_record() {
    let dir = tmp();
    let (_, _, json, st) = saved_linear(dir.path());
    let mut edited = json.clone();
    edited["input"] = serde_json::json!({"image": {"channels": 3, "height": 2, "width": 8}});
    let e = load_with(dir.path(), edited, &st).expect_err("edited shape");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("input 3x2x8 images differs from the 3x4x4 images recorded in"), "{msg}");
    names_file(&e, "lin.json");
    // the same for k-NN
    let train = data(1, 12);
    let m = Knn::new(1).fit(&train.all()).expect("fit");
    save_knn(&m, &prov(), dir.path().join("knn")).expect("save");
    let jp = dir.path().join("knn.json");
    let mut j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&jp).expect("read")).expect("json");
    j["input"] = serde_json::json!({"image": {"channels": 1, "height": 4, "width": 12}});
    std::fs::write(&jp, serde_json::to_vec(&j).expect("json")).expect("write");
    let e = load_knn(&jp).expect_err("edited knn shape");
    assert!(e.to_string().contains("differs from the 3x4x4 images recorded"), "{e}");
    // a tensor file without the record: refused, naming it
    let d = SHAPE.len();
    let (w, b, mean) = (vec![0u8; 4 * 3 * d], vec![0u8; 12], vec![0u8; 4 * d]);
    let views = vec![
        ("W", TensorView::new(Dtype::F32, vec![3, d], &w).expect("view")),
        ("b", TensorView::new(Dtype::F32, vec![3], &b).expect("view")),
        ("mean", TensorView::new(Dtype::F32, vec![d], &mean).expect("view")),
    ];
    let bare = safetensors::serialize(views, None).expect("serialize");
    let e = load_with(dir.path(), json, &bare).expect_err("no recorded shape");
    assert!(e.to_string().contains("does not record the input shape"), "{e}");
    names_file(&e, "lin.safetensors");
}

/// Issue 17 item 5: the tensor file's type and size are checked before it is read: a link to
/// `/dev/zero` and a FIFO are refused unopened (they used to grow without bound or hang), a
/// 4 GB (sparse) file is refused from its size alone, and metadata claiming more bytes than
/// the model's tensors can take is refused before the file is looked at.
#[test]
fn tensor_files_are_checked_for_type_and_size_before_reading() {
    let dir = tmp();
    let (json_path, st_path, json, st) = saved_linear(dir.path());
    std::fs::remove_file(&st_path).expect("remove");
    std::os::unix::fs::symlink("/dev/zero", &st_path).expect("symlink");
    let e = load_linear(&json_path).expect_err("/dev/zero");
    assert!(matches!(e, ModelError::NotAFile { .. }), "{e}");
    assert!(e.to_string().contains("lin.safetensors: not a regular file"), "{e}");
    std::fs::remove_file(&st_path).expect("remove");
    let status = std::process::Command::new("mkfifo").arg(&st_path).status().expect("mkfifo");
    assert!(status.success());
    let e = load_linear(&json_path).expect_err("fifo");
    assert!(matches!(e, ModelError::NotAFile { .. }), "{e}");
    std::fs::remove_file(&st_path).expect("remove");
    // a sparse 4 GB file: rejected by its size, in well under the time reading it takes
    let f = std::fs::File::create(&st_path).expect("create");
    f.set_len(4 << 30).expect("sparse file");
    let t = std::time::Instant::now();
    let e = load_linear(&json_path).expect_err("4 GB");
    assert!(
        matches!(&e, ModelError::Checksum { what: "size", found, .. } if found == "4294967296"),
        "{e}"
    );
    assert!(t.elapsed().as_secs_f64() < 1.0, "took {:?}", t.elapsed());
    // metadata that claims the 4 GB: refused from the metadata alone
    let mut claims = json.clone();
    claims["tensors_size"] = serde_json::json!(4u64 << 30);
    std::fs::write(&json_path, serde_json::to_vec(&claims).expect("json")).expect("write");
    let e = load_linear(&json_path).expect_err("implausible size");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("more than the"), "{e}");
    // and the JSON itself must be a regular file
    std::fs::remove_file(&json_path).expect("remove");
    std::os::unix::fs::symlink("/dev/zero", &json_path).expect("symlink");
    let e = load_linear(&json_path).expect_err("json /dev/zero");
    assert!(matches!(e, ModelError::NotAFile { .. }), "{e}");
    // the real files still load
    std::fs::remove_file(&json_path).expect("remove");
    std::fs::remove_file(&st_path).expect("remove");
    assert!(load_with(dir.path(), json, &st).is_ok());
}

/// Issue 17 item 20: the same model saved twice gives the same bytes (the header's metadata
/// keys used to come out in a `HashMap`'s order), in sorted key order.
#[test]
fn identical_models_save_to_identical_bytes() {
    let train = data(1, 30);
    let m = linear_model(&train);
    let knn = Knn::new(1).fit(&train.all()).expect("fit");
    let dir = tmp();
    let mut first: Option<(Vec<u8>, Vec<u8>)> = None;
    for i in 0..8 {
        save_linear(&m, train.classes(), &prov(), dir.path().join(format!("lin{i}")))
            .expect("save");
        save_knn(&knn, &prov(), dir.path().join(format!("knn{i}"))).expect("save");
        let lin = std::fs::read(dir.path().join(format!("lin{i}.safetensors"))).expect("read");
        let kn = std::fs::read(dir.path().join(format!("knn{i}.safetensors"))).expect("read");
        match &first {
            None => first = Some((lin, kn)),
            Some((l0, k0)) => {
                assert_eq!(&lin, l0, "linear save {i} differs");
                assert_eq!(&kn, k0, "knn save {i} differs");
            }
        }
    }
    let (lin, _) = first.expect("saved");
    let n = u64::from_le_bytes(lin[..8].try_into().expect("8 bytes")) as usize;
    let header = std::str::from_utf8(&lin[8..8 + n]).expect("utf-8 header");
    assert!(
        header.starts_with(
            r#"{"__metadata__":{"format":"imgclass","format_version":"2","input":"3x4x4 images","kind":"linear"}"#
        ),
        "{header}"
    );
    // still plain safetensors
    safetensors::SafeTensors::deserialize(&lin).expect("valid safetensors");
}

#[test]
fn knn_files_with_out_of_range_labels_or_too_large_k_are_invalid() {
    let dir = tmp();
    let train = data(4, 6).all();
    let m = Knn::new(2).fit(&train).expect("fit");
    save_knn(&m, &prov(), dir.path().join("lin")).expect("save");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lin.json")).expect("json"))
            .expect("json");
    let st = std::fs::read(dir.path().join("lin.safetensors")).expect("tensors");
    let mut big_k = json.clone();
    big_k["params"]["k"] = serde_json::json!(7);
    let e = load_with(dir.path(), big_k, &st).expect_err("k > n");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    let mut more_rows = json.clone();
    more_rows["params"]["n_train"] = serde_json::json!(usize::MAX);
    let e = load_with(dir.path(), more_rows, &st).expect_err("n_train overflow");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    let mut fewer_classes = json.clone();
    fewer_classes["classes"] = serde_json::json!(["r", "g"]);
    let e = load_with(dir.path(), fewer_classes, &st).expect_err("label 2 of 2 classes");
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    assert!(load_with(dir.path(), json, &st).is_ok(), "the undamaged files load");
    let e = load_linear(dir.path().join("lin")).expect_err("wrong kind");
    assert!(matches!(e, ModelError::WrongKind { expected: "linear", found: "knn", .. }), "{e}");
    // the parse entry point agrees with the file loader
    let json_bytes = std::fs::read(dir.path().join("lin.json")).expect("json");
    let (p, _) =
        parse(Path::new("a.json"), &json_bytes, Path::new("a.safetensors"), &st).expect("parse");
    assert_eq!(p.predict(&train).expect("predict"), m.predict(&train).expect("predict"));
}

#[test]
fn saving_with_the_wrong_number_of_class_names_is_refused() {
    let train = data(1, 30);
    let m = linear_model(&train);
    let dir = tmp();
    let e = save_linear(&m, &ClassNames::new(["a", "b"]), &prov(), dir.path().join("x"))
        .expect_err("2 names for 3 classes");
    assert!(matches!(e, ModelError::ClassCount { expected: 3, found: 2 }));
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

/// A pipeline (standardise, PCA, then a classifier on the features) saves as one model and
/// loads back predicting on raw images exactly as the fitted pipeline does; its metadata
/// lists the steps and its tensor file holds them by name.
#[test]
fn pipelines_save_as_one_model_and_predict_on_raw_images() {
    use imgclass_features::{Pipeline, StepSpec};
    let train = data(21, 90);
    let test = data(22, 24);
    let steps = vec![StepSpec::Standardize, StepSpec::Pca { components: 6, whiten: true }];
    let dir = tmp();
    let lin = Pipeline::new(
        steps.clone(),
        Linear::new(Loss::Softmax).sgd(Sgd {
            batch_size: 30,
            learning_rate: 1e-2,
            stop: Stop::Iterations(150),
            seed: 4,
            ..Sgd::default()
        }),
    )
    .seed(5)
    .fit(&train.all())
    .expect("fits");
    let knn = Pipeline::new(steps, Knn::new(3)).seed(5).fit(&train.all()).expect("fits");
    let saved_lin = SavedModel::Pipeline {
        steps: lin.steps().to_vec(),
        model: Box::new(SavedModel::Linear {
            model: lin.model().clone(),
            classes: train.classes().clone(),
        }),
    };
    let saved_knn = SavedModel::Pipeline {
        steps: knn.steps().to_vec(),
        model: Box::new(SavedModel::Knn { model: knn.model().clone(), index: None }),
    };
    for (name, saved, want) in [
        ("lin", &saved_lin, lin.predict(&test.all()).expect("predicts")),
        ("knn", &saved_knn, knn.predict(&test.all()).expect("predicts")),
    ] {
        saved.save(&prov(), dir.path().join(name)).expect("saves");
        let (back, md) = SavedModel::load(dir.path().join(name)).expect("loads");
        assert_eq!(back.shape(), SHAPE.into(), "{name}: the pipeline takes raw images");
        assert_eq!(back.steps(), saved.steps());
        assert_eq!(back.predict(&test.all()).expect("predicts"), want, "{name}");
        assert_eq!(md.steps.len(), 2);
        assert_eq!(md.steps[1].spec, StepSpec::Pca { components: 6, whiten: true });
        assert_eq!(
            (md.steps[1].input, md.steps[1].output),
            (imgclass_core::RowShape::Features(SHAPE.len()), 6)
        );
        let bytes = std::fs::read(dir.path().join(format!("{name}.safetensors"))).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("plain safetensors");
        let mut names = st.names();
        names.sort_unstable();
        assert!(
            names.contains(&"steps.0.mean") && names.contains(&"steps.1.components"),
            "{names:?}"
        );
        assert_eq!(st.tensor("steps.1.components").expect("t").shape(), &[6, SHAPE.len()]);
        // images of another shape are refused by the first step, naming both shapes
        let other = Dataset::new(
            vec![0; 12],
            vec![0],
            ImageShape::new(1, 3, 4),
            ClassNames::new(["r", "g", "b"]),
        )
        .expect("valid");
        let e = back.predict(&other.all()).unwrap_err();
        assert!(e.to_string().contains("expected 3x4x4 images, got 1x3x4 images"), "{e}");
    }
    // an edited step spec or a missing step tensor is refused, naming what is wrong
    let jp = dir.path().join("lin.json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&jp).expect("r")).expect("j");
    let mut edited = json.clone();
    edited["steps"][1]["spec"]["components"] = serde_json::json!(5);
    std::fs::write(&jp, serde_json::to_vec(&edited).expect("j")).expect("w");
    let e = SavedModel::load(&jp).unwrap_err();
    assert!(e.to_string().contains("steps.1"), "{e}");
    let mut unchained = json.clone();
    unchained["steps"][1]["input"] = serde_json::json!({"features": 7});
    std::fs::write(&jp, serde_json::to_vec(&unchained).expect("j")).expect("w");
    let e = SavedModel::load(&jp).unwrap_err();
    assert!(
        e.to_string().contains("step 1 (pca(6, whiten)) takes 7 features but receives 48 features"),
        "{e}"
    );
    // a classifier that does not take the last step's output cannot be saved behind it
    let bare = SavedModel::Linear { model: linear_model(&train), classes: train.classes().clone() };
    let e = imgclass_model::save_pipeline(lin.steps(), &bare, &prov(), dir.path().join("bad"))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the classifier takes 3x4x4 images but the last step makes 6 features"),
        "{e}"
    );
    assert!(!dir.path().join("bad.json").exists(), "nothing written");
}

/// A two-layer network round trips with identical weights and scores, alone and behind a
/// standardisation step.
#[test]
fn a_network_round_trips_alone_and_in_a_pipeline() {
    use imgclass_features::{Pipeline, StepSpec};
    use imgclass_net::{Net, NetSgd};
    let train = data(31, 60);
    let test = data(32, 12);
    let params = Net::new(8).regularization(1e-3).input_scale(1.0 / 64.0).sgd(NetSgd {
        batch_size: 20,
        learning_rate: 1e-2,
        epochs: 5,
        seed: 2,
        ..NetSgd::default()
    });
    let net = params.fit(&train.all()).expect("fits");
    let dir = tmp();
    let saved = SavedModel::Net { model: net.clone(), classes: train.classes().clone() };
    saved.save(&prov(), dir.path().join("net")).expect("saves");
    let (back, md) = SavedModel::load(dir.path().join("net")).expect("loads");
    assert!(matches!(md.params, Params::Net { hidden: 8, .. }));
    let SavedModel::Net { model, .. } = &back else { panic!("a net") };
    assert_eq!(
        (model.w1(), model.b1(), model.w2(), model.b2()),
        (net.w1(), net.b1(), net.w2(), net.b2())
    );
    assert_eq!(model.scores(&test.all()).expect("s"), net.scores(&test.all()).expect("s"));
    let pipe = Pipeline::new(vec![StepSpec::Standardize], params).fit(&train.all()).expect("fits");
    let saved = SavedModel::Pipeline {
        steps: pipe.steps().to_vec(),
        model: Box::new(SavedModel::Net {
            model: pipe.model().clone(),
            classes: train.classes().clone(),
        }),
    };
    saved.save(&prov(), dir.path().join("pipe")).expect("saves");
    let (back, _) = SavedModel::load(dir.path().join("pipe")).expect("loads");
    assert_eq!(back.kind(), "net");
    assert_eq!(back.predict(&test.all()).expect("p"), pipe.predict(&test.all()).expect("p"));
}

/// An ensemble of a bare linear model and a net behind a standardisation step predicts the
/// softmax of the weighted sum of their scores (computed here from the two fitted models, in
/// f64), before and after a save/load round trip; a member edited after the ensemble was
/// saved, a missing member, a member that is itself an ensemble, and members that do not make
/// an ensemble are refused with errors naming what is wrong.
#[test]
fn an_ensemble_sums_its_members_scores_and_checks_its_member_files() {
    use imgclass_features::{Pipeline, StepSpec};
    use imgclass_model::{Ensemble, Member};
    use imgclass_net::{Net, NetSgd};
    let train = data(41, 60);
    let test = data(42, 15);
    let lin = linear_model(&train);
    let pipe = Pipeline::new(
        vec![StepSpec::Standardize],
        Net::new(6).sgd(NetSgd { batch_size: 20, epochs: 4, seed: 3, ..NetSgd::default() }),
    )
    .fit(&train.all())
    .expect("fits");
    let classes = train.classes().clone();
    let saved_lin = SavedModel::Linear { model: lin.clone(), classes: classes.clone() };
    let saved_net = SavedModel::Pipeline {
        steps: pipe.steps().to_vec(),
        model: Box::new(SavedModel::Net { model: pipe.model().clone(), classes: classes.clone() }),
    };
    let dir = tmp();
    saved_lin.save(&prov(), dir.path().join("lin")).expect("saves");
    saved_net.save(&prov(), dir.path().join("net")).expect("saves");
    let member = |model: &SavedModel, weight: f32, file: &str| Member {
        model: model.clone(),
        weight,
        file: file.into(),
    };
    let ens = Ensemble::new(vec![
        member(&saved_lin, 2.0, "lin.json"),
        member(&saved_net, 0.5, "net.json"),
    ])
    .expect("an ensemble");
    // the expectation: each model's own scores, summed and normalised in f64
    let ls = lin.scores(&test.all()).expect("scores");
    let standardized = imgclass_features::apply(pipe.steps(), &test.all()).expect("steps");
    let ns = pipe.model().scores(&standardized).expect("scores");
    let want: Vec<f64> = ls
        .chunks(3)
        .zip(ns.chunks(3))
        .flat_map(|(l, n)| {
            let s: Vec<f64> = (0..3).map(|j| 2.0 * l[j] as f64 + 0.5 * n[j] as f64).collect();
            let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|v| (v - top).exp()).sum();
            s.into_iter().map(move |v| (v - top).exp() / z).collect::<Vec<_>>()
        })
        .collect();
    let check = |m: &SavedModel| {
        let p = m.predict_proba(&test.all()).expect("probabilities");
        assert_eq!(p.len(), want.len());
        for (a, b) in p.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} against {b}");
        }
    };
    let model = SavedModel::Ensemble(ens);
    check(&model);
    assert_eq!((model.kind(), model.shape(), model.n_classes()), ("ensemble", SHAPE.into(), 3));
    model.save(&prov(), dir.path().join("ens")).expect("saves");
    let (back, md) = SavedModel::load(dir.path().join("ens.json")).expect("loads");
    check(&back);
    let Params::Ensemble { members } = &md.params else { panic!("an ensemble: {md:?}") };
    let sha = |name: &str| -> String {
        let bytes = std::fs::read(dir.path().join(name)).expect("r");
        sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    };
    assert_eq!(
        members.iter().map(|m| (m.file.as_str(), m.weight, m.sha256.clone())).collect::<Vec<_>>(),
        [("lin.json", 2.0, sha("lin.json")), ("net.json", 0.5, sha("net.json"))]
    );
    // a member edited after the ensemble was saved: its checksum names it
    let lin_json = std::fs::read(dir.path().join("lin.json")).expect("r");
    std::fs::write(dir.path().join("lin.json"), [&lin_json[..], b"\n"].concat()).expect("w");
    let e = SavedModel::load(dir.path().join("ens.json")).unwrap_err();
    let ModelError::Member { index: 0, source, .. } = &e else { panic!("{e:?}") };
    assert!(matches!(**source, ModelError::Checksum { what: "sha256", .. }), "{e}");
    assert!(e.to_string().contains("member 0 (lin.json) of the ensemble"), "{e}");
    assert!(e.to_string().contains("lin.json"), "{e}");
    std::fs::write(dir.path().join("lin.json"), &lin_json).expect("w");
    // a missing member
    std::fs::rename(dir.path().join("net.json"), dir.path().join("net.moved")).expect("mv");
    let e = SavedModel::load(dir.path().join("ens.json")).unwrap_err();
    assert!(e.to_string().contains("member 1 (net.json) of the ensemble"), "{e}");
    assert!(e.to_string().contains("No such file"), "{e}");
    std::fs::rename(dir.path().join("net.moved"), dir.path().join("net.json")).expect("mv");
    SavedModel::load(dir.path().join("ens.json")).expect("loads again");
    // an ensemble naming an ensemble (edited metadata) is refused before the member is decoded
    let ens_json = std::fs::read(dir.path().join("ens.json")).expect("r");
    let mut v: serde_json::Value = serde_json::from_slice(&ens_json).expect("json");
    v["params"]["members"][0]["file"] = "ens.json".into();
    v["params"]["members"][0]["sha256"] = sha("ens.json").into();
    std::fs::write(dir.path().join("ens2.json"), serde_json::to_vec(&v).expect("j")).expect("w");
    std::fs::copy(dir.path().join("ens.safetensors"), dir.path().join("ens2.safetensors"))
        .expect("cp");
    v["tensors"] = "ens2.safetensors".into();
    std::fs::write(dir.path().join("ens2.json"), serde_json::to_vec(&v).expect("j")).expect("w");
    let e = SavedModel::load(dir.path().join("ens2.json")).unwrap_err();
    assert!(e.to_string().contains("member 0 (ens.json) is of kind \"ensemble\""), "{e}");
    // a path outside the directory
    v["params"]["members"][0]["file"] = "../lin.json".into();
    std::fs::write(dir.path().join("ens2.json"), serde_json::to_vec(&v).expect("j")).expect("w");
    let e = SavedModel::load(dir.path().join("ens2.json")).unwrap_err();
    assert!(e.to_string().contains("is not a bare file name"), "{e}");
    // members that do not make an ensemble
    let knn = SavedModel::Knn { model: Knn::new(1).fit(&train.all()).expect("fits"), index: None };
    let other =
        SavedModel::Linear { model: lin.clone(), classes: ClassNames::new(["x", "y", "z"]) };
    for (members, says) in [
        (vec![], "no members"),
        (vec![member(&knn, 1.0, "knn.json")], "member 0 (knn.json) is of kind \"knn\""),
        (vec![member(&saved_lin, -1.0, "lin.json")], "has weight -1"),
        (vec![member(&saved_lin, f32::NAN, "lin.json")], "has weight NaN"),
        (
            vec![member(&saved_lin, 1.0, "lin.json"), member(&other, 1.0, "o.json")],
            "member 1 (o.json) has other class names",
        ),
        (vec![member(&saved_lin, 1.0, "../lin.json")], "not a plain file name"),
    ] {
        let e = Ensemble::new(members).unwrap_err();
        assert!(e.to_string().contains(says), "{e} should say {says:?}");
    }
    // saving before the members are saved says so, and writes nothing
    let e = SavedModel::Ensemble(
        Ensemble::new(vec![member(&saved_lin, 1.0, "absent.json")]).expect("valid"),
    )
    .save(&prov(), dir.path().join("ens3"))
    .unwrap_err();
    assert!(e.to_string().contains("member 0: save it as"), "{e}");
    assert!(!dir.path().join("ens3.json").exists());
}

/// A stateless step (the χ² map, on pixels) saves as its spec alone and loads predicting as
/// the fitted pipeline does; its metadata records the interval it resolved.
#[test]
fn a_chi2_map_pipeline_round_trips() {
    use imgclass_features::{Pipeline, StepSpec};
    let (train, test) = (data(31, 60), data(32, 20));
    let steps = vec![StepSpec::Chi2Map { steps: 2, interval: None }, StepSpec::Standardize];
    let lin = Pipeline::new(
        steps,
        Linear::new(Loss::Softmax).sgd(Sgd {
            batch_size: 20,
            learning_rate: 1e-2,
            stop: Stop::Iterations(60),
            seed: 2,
            ..Sgd::default()
        }),
    )
    .fit(&train.all())
    .expect("fits");
    let saved = SavedModel::Pipeline {
        steps: lin.steps().to_vec(),
        model: Box::new(SavedModel::Linear {
            model: lin.model().clone(),
            classes: train.classes().clone(),
        }),
    };
    let dir = tmp();
    saved.save(&prov(), dir.path().join("chi")).expect("saves");
    let (back, md) = SavedModel::load(dir.path().join("chi")).expect("loads");
    assert_eq!(back.predict(&test.all()).expect("predicts"), lin.predict(&test.all()).expect("p"));
    assert_eq!(md.steps[0].spec, StepSpec::Chi2Map { steps: 2, interval: Some(0.5) });
    assert_eq!(md.steps[0].output, 3 * SHAPE.len());
}
