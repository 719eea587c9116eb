//! A k-NN model that references its training data instead of copying it: a small JSON file
//! (`model-knn-ref.json`) holding k, the distance, the CIFAR-10 folder's absolute path, the
//! SHA-256 of each file read, and the training rows used (all, or the subsample's indices).
//! `predict` reads the data again, verifies every checksum (a changed file is an error that
//! names it) and fits the same model. A saved copy (`imgclass-model`'s `model-knn.*`, about
//! 154 MB for CIFAR-10) stays the self-contained choice.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use imgclass_core::{Fit, Subset};
use imgclass_knn::{Knn, Metric};
use imgclass_model::SavedModel;
use serde::{Deserialize, Serialize};

/// The `format` value that marks a reference file.
pub const FORMAT: &str = "imgclass-knn-reference";

/// One file of the training data with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// File name inside the data folder.
    pub name: String,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
}

/// The reference file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnnReference {
    /// Always [`FORMAT`].
    pub format: String,
    /// Layout version (1).
    pub version: u32,
    /// Neighbours voting (majority vote).
    pub k: usize,
    /// `"L1"` or `"L2"`.
    pub metric: String,
    /// The dataset kind; only `"cifar-10"` (the official binary layout) is supported.
    pub dataset: String,
    /// Absolute path of the `cifar-10-batches-bin` folder.
    pub data_dir: PathBuf,
    /// Every file read, with its checksum.
    pub files: Vec<DataFile>,
    /// Training rows used (positions in the training set); `None` for all of them.
    pub train_rows: Option<Vec<usize>>,
    /// Size of the full training set, to tell "all rows" from a subsample.
    pub n_train_available: usize,
    /// Test accuracy recorded by the experiment, if any.
    pub test_accuracy: Option<f64>,
    /// What made it.
    pub created_by: String,
}

/// The file's SHA-256 (imgclass-data's streamed checksum: the file is not held in memory).
fn sha256_file(path: &Path) -> Result<String> {
    imgclass_data::checksum::sha256_file(path)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// The CIFAR-10 files whose checksums a reference records (the training batches and the class
/// names).
fn cifar10_files() -> Vec<&'static str> {
    let mut files: Vec<&str> = imgclass_data::cifar::CIFAR10_TRAIN_FILES.to_vec();
    files.push(imgclass_data::cifar::CIFAR10_META_FILE);
    files
}

/// Writes `<dir>/model-knn-ref.json` for a model of `k` and `metric` fitted on `train` (a
/// subset of the CIFAR-10 training set read from `data_dir`); returns its path.
pub fn save(
    path: &Path,
    k: usize,
    metric: &str,
    data_dir: &Path,
    train: &Subset,
    test_accuracy: Option<f64>,
) -> Result<()> {
    let data_dir = std::fs::canonicalize(data_dir)
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let files = cifar10_files()
        .into_iter()
        .map(|name| Ok(DataFile { name: name.into(), sha256: sha256_file(&data_dir.join(name))? }))
        .collect::<Result<Vec<_>>>()?;
    let all = train.len() == train.dataset().len()
        && train.indices().iter().enumerate().all(|(i, &r)| i == r);
    let r = KnnReference {
        format: FORMAT.into(),
        version: 1,
        k,
        metric: metric.into(),
        dataset: "cifar-10".into(),
        data_dir,
        files,
        train_rows: (!all).then(|| train.indices().to_vec()),
        n_train_available: train.dataset().len(),
        test_accuracy,
        created_by: format!("cargo xtask experiment {}", env!("CARGO_PKG_VERSION")),
    };
    let json = serde_json::to_string_pretty(&r)? + "\n";
    std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The reference in `path` (a `.json` file), or `None` when it is not one (another model).
pub fn read(path: &Path) -> Result<Option<KnnReference>> {
    if path.extension().is_none_or(|e| e != "json") || !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Ok(None);
    }
    let r: KnnReference = serde_json::from_value(v)
        .with_context(|| format!("{} is not a valid k-NN reference", path.display()))?;
    ensure!(r.version == 1, "{}: unknown reference version {}", path.display(), r.version);
    Ok(Some(r))
}

impl KnnReference {
    /// Reads the referenced data, verifies every checksum and fits the model.
    pub fn load(&self) -> Result<SavedModel> {
        ensure!(self.dataset == "cifar-10", "only cifar-10 references are supported");
        for f in &self.files {
            let p = self.data_dir.join(&f.name);
            let found = sha256_file(&p).with_context(|| {
                format!("the k-NN model's training data is missing: {}", p.display())
            })?;
            if found != f.sha256 {
                bail!(
                    "the k-NN model's training data changed: {} has SHA-256 {found}, the model \
                     recorded {}; rerun the experiment (or save the model as a copy)",
                    p.display(),
                    f.sha256
                );
            }
        }
        let tt = imgclass_data::cifar::read_cifar10(&self.data_dir)
            .with_context(|| format!("reading CIFAR-10 from {}", self.data_dir.display()))?;
        ensure!(
            tt.train.len() == self.n_train_available,
            "{} has {} training images, the model recorded {}",
            self.data_dir.display(),
            tt.train.len(),
            self.n_train_available
        );
        let rows: Vec<usize> = match &self.train_rows {
            Some(r) => r.clone(),
            None => (0..tt.train.len()).collect(),
        };
        let train = tt.train.subset(rows).context("the recorded training rows")?;
        let metric: Metric = self.metric.parse().context("the k-NN reference's metric")?;
        let model = Knn::new(self.k).metric(metric).fit(&train)?;
        Ok(SavedModel::Knn { model, index: None })
    }
}
