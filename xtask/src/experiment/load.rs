//! Loading the experiment's dataset: CIFAR-10 (fetched when absent), CIFAR-100, MNIST,
//! Fashion-MNIST, an image folder, or the generated demo set; then the configured stratified
//! subsample.

use std::path::{Path, PathBuf};

use anyhow::Context;
use imgclass_core::{Dataset, Subset};
use imgclass_data::TrainTest;

use crate::fetch;

use super::demo;

/// Which dataset `--dataset` names: the one dataset enum of xtask.
pub use crate::fetch::DatasetName;

pub use crate::paths::data_dir;

/// Reads the dataset from its folder under `data_dir` (for `folder`, `data_dir` is the image
/// folder itself); `None` when its files are absent (so fetch-data can be run).
fn read(kind: DatasetName, data_dir: &Path, seed: u64) -> anyhow::Result<Option<TrainTest>> {
    match kind {
        DatasetName::Demo => Ok(Some(demo::generate(seed))),
        DatasetName::Cifar10 => {
            let dir = crate::paths::cifar10_dir(data_dir);
            if !dir.join("test_batch.bin").exists() {
                return Ok(None);
            }
            let tt = imgclass_data::cifar::read_cifar10(&dir)
                .with_context(|| format!("reading CIFAR-10 from {}", dir.display()))?;
            Ok(Some(tt))
        }
        DatasetName::Cifar100 => {
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
        DatasetName::Mnist | DatasetName::FashionMnist => {
            let dir = data_dir.join(kind.name());
            let classes = if kind == DatasetName::Mnist {
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
        DatasetName::Folder => {
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
pub fn load(kind: DatasetName, data_dir: &Path, seed: u64) -> anyhow::Result<TrainTest> {
    if let Some(tt) = read(kind, data_dir, seed)? {
        return Ok(tt);
    }
    if !kind.is_fetchable() {
        anyhow::bail!("no {} dataset at {}", kind.name(), data_dir.display());
    }
    let name = kind;
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
