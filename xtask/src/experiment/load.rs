//! Loading the experiment's dataset: CIFAR-10 (fetched when absent), CIFAR-100, MNIST,
//! Fashion-MNIST, an image folder, or the generated demo set; then the configured stratified
//! subsample.

use std::path::{Path, PathBuf};

use anyhow::Context;
use imgclass_core::{Dataset, Subset};
use imgclass_data::TrainTest;

use crate::fetch::{self, DatasetName};

use super::demo;

/// Which dataset `--dataset` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum DatasetKind {
    /// CIFAR-10 binary (the default; fetched when absent).
    #[value(name = "cifar-10")]
    #[serde(rename = "cifar-10")]
    Cifar10,
    /// CIFAR-100 binary, the 100 fine labels.
    #[value(name = "cifar-100")]
    #[serde(rename = "cifar-100")]
    Cifar100,
    /// MNIST (IDX files, gzipped or not).
    #[value(name = "mnist")]
    #[serde(rename = "mnist")]
    Mnist,
    /// Fashion-MNIST (IDX files, gzipped or not).
    #[value(name = "fashion-mnist")]
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
    /// An image folder `DIR/{train,test}/<class>/*.{png,jpg,jpeg}` given by `--data-dir`.
    #[value(name = "folder")]
    #[serde(rename = "folder")]
    Folder,
    /// Generated in code: no download, no files.
    #[value(name = "demo")]
    #[serde(rename = "demo")]
    Demo,
}

impl DatasetKind {
    /// The `--dataset` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar-10",
            Self::Cifar100 => "cifar-100",
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
            Self::Folder => "folder",
            Self::Demo => "demo",
        }
    }

    fn fetch_name(self) -> Option<DatasetName> {
        match self {
            Self::Cifar10 => Some(DatasetName::Cifar10),
            Self::Cifar100 => Some(DatasetName::Cifar100),
            Self::Mnist => Some(DatasetName::Mnist),
            Self::FashionMnist => Some(DatasetName::FashionMnist),
            Self::Folder | Self::Demo => None,
        }
    }
}

pub use crate::paths::data_dir;

/// Reads the dataset from its folder under `data_dir` (for `folder`, `data_dir` is the image
/// folder itself); `None` when its files are absent (so fetch-data can be run).
fn read(kind: DatasetKind, data_dir: &Path, seed: u64) -> anyhow::Result<Option<TrainTest>> {
    match kind {
        DatasetKind::Demo => Ok(Some(demo::generate(seed))),
        DatasetKind::Cifar10 => {
            let dir = crate::paths::cifar10_dir(data_dir);
            if !dir.join("test_batch.bin").exists() {
                return Ok(None);
            }
            let tt = imgclass_data::cifar::read_cifar10(&dir)
                .with_context(|| format!("reading CIFAR-10 from {}", dir.display()))?;
            Ok(Some(tt))
        }
        DatasetKind::Cifar100 => {
            let dir = data_dir.join("cifar-100").join("cifar-100-binary");
            if !dir.join("test.bin").exists() {
                return Ok(None);
            }
            let tt = imgclass_data::cifar::read_cifar100(
                &dir,
                imgclass_data::cifar::Cifar100Labels::Fine,
            )
            .with_context(|| format!("reading CIFAR-100 from {}", dir.display()))?;
            Ok(Some(tt))
        }
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            let dir = data_dir.join(kind.name());
            let classes = if kind == DatasetKind::Mnist {
                imgclass_data::idx::mnist_classes()
            } else {
                imgclass_data::idx::fashion_mnist_classes()
            };
            let find = |stem: &str| -> Option<PathBuf> {
                [format!("{stem}.gz"), stem.to_string()]
                    .into_iter()
                    .map(|n| dir.join(n))
                    .find(|p| p.exists())
            };
            let stems = [
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
            ];
            let paths: Option<Vec<PathBuf>> = stems.iter().map(|s| find(s)).collect();
            let Some(p) = paths else { return Ok(None) };
            let read_pair = |i: &Path, l: &Path| {
                imgclass_data::idx::read_idx_pair(i, l, classes.clone())
                    .with_context(|| format!("reading {} from {}", kind.name(), dir.display()))
            };
            let train = read_pair(&p[0], &p[1])?;
            let test = read_pair(&p[2], &p[3])?;
            Ok(Some(TrainTest { train, test }))
        }
        DatasetKind::Folder => {
            anyhow::ensure!(
                data_dir.join("train").is_dir(),
                "--dataset folder reads DIR/train/<class>/* and DIR/test/<class>/*: no train \
                 folder in {} (give the folder with --data-dir DIR)",
                data_dir.display()
            );
            let tt = imgclass_data::folder::read_image_folder(
                data_dir,
                &imgclass_data::folder::FolderOptions::default(),
            )
            .with_context(|| format!("reading the image folder {}", data_dir.display()))?;
            Ok(Some(tt))
        }
    }
}

/// Loads `kind`; a missing download is fetched with `cargo xtask fetch-data`'s logic, and
/// when that fails the error names the offline import. `seed` only affects the demo set.
pub fn load(kind: DatasetKind, data_dir: &Path, seed: u64) -> anyhow::Result<TrainTest> {
    if let Some(tt) = read(kind, data_dir, seed)? {
        return Ok(tt);
    }
    let Some(name) = kind.fetch_name() else {
        anyhow::bail!("no {} dataset at {}", kind.name(), data_dir.display());
    };
    eprintln!(
        "{} is not in {}: fetching it (cargo xtask fetch-data)",
        kind.name(),
        data_dir.display()
    );
    let args = fetch::Args {
        dataset: name,
        data_dir: Some(data_dir.to_path_buf()),
        url: None,
        md5: None,
        sha256: None,
        from: None,
    };
    if let Err(e) = fetch::run(args) {
        return Err(e.context(format!(
            "{name} is not in {dir} and could not be downloaded; with an offline copy, import it \
             with `cargo xtask fetch-data --dataset {name} --data-dir {dir} --from PATH` (a \
             .tar.gz, an extracted folder, or for cifar-10 an image folder), then run the \
             experiment again",
            name = kind.name(),
            dir = data_dir.display()
        )));
    }
    read(kind, data_dir, seed)?.with_context(|| {
        format!(
            "fetch-data finished but {} is still missing from {}",
            kind.name(),
            data_dir.display()
        )
    })
}

/// A stratified subsample of `n` rows of `ds` (all rows, in order, when `n` is `None` or at
/// least the size).
pub fn subsample(ds: &Dataset, n: Option<usize>, seed: u64) -> anyhow::Result<Subset> {
    match n {
        Some(n) if n < ds.len() => {
            let rows =
                imgclass_data::split::subsample(ds.labels(), ds.n_classes(), n.max(1), seed)?;
            Ok(ds.subset(rows)?)
        }
        _ => Ok(ds.all()),
    }
}
