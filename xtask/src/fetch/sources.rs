//! The one table of official dataset sources: URLs, file names and published checksums.
//! datasets/README.md repeats it; keep the two in step.

/// A dataset the tools know: `--dataset` of both `fetch-data` (the downloadable ones, see
/// [`source`]) and `experiment` (all of them), and results.json's `dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum DatasetName {
    /// CIFAR-10, binary version (the default; the experiment fetches it when absent).
    #[value(name = "cifar-10")]
    #[serde(rename = "cifar-10")]
    Cifar10,
    /// CIFAR-100, binary version (the experiment uses the 100 fine labels).
    #[value(name = "cifar-100")]
    #[serde(rename = "cifar-100")]
    Cifar100,
    /// MNIST handwritten digits (four IDX files, gzipped or not).
    #[value(name = "mnist")]
    #[serde(rename = "mnist")]
    Mnist,
    /// Fashion-MNIST (four IDX files, gzipped or not).
    #[value(name = "fashion-mnist")]
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
    /// An image folder `DIR/{train,test}/<class>/*.{png,jpg,jpeg}` given by `--data-dir`
    /// (experiment only: nothing to download).
    #[value(name = "folder")]
    #[serde(rename = "folder")]
    Folder,
    /// Generated in code: no download, no files (experiment only).
    #[value(name = "demo")]
    #[serde(rename = "demo")]
    Demo,
}

impl DatasetName {
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

    /// True when `fetch-data` can download or import it (it has a [`source`]).
    pub fn is_fetchable(self) -> bool {
        source(self).is_some()
    }

    /// The datasets `fetch-data` can download or import.
    pub fn fetchable() -> impl Iterator<Item = DatasetName> {
        <Self as clap::ValueEnum>::value_variants().iter().copied().filter(|d| source(*d).is_some())
    }
}

/// How a dataset is published.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// One `.tar.gz` that unpacks to the folder `folder` holding `files`.
    Archive {
        /// Official URL of the archive.
        url: &'static str,
        /// Its published MD5.
        md5: &'static str,
        /// The folder the archive unpacks to (also the final folder's name).
        folder: &'static str,
        /// The files that folder must hold.
        files: &'static [&'static str],
    },
    /// Separate files, each with its published MD5, fetched from the first mirror that
    /// answers (`mirror + name`).
    Files {
        /// Base URLs, tried in order.
        mirrors: &'static [&'static str],
        /// `(file name, MD5)`.
        files: &'static [(&'static str, &'static str)],
    },
}

/// A dataset's entry in the table.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// The `--dataset` value and the folder under the data directory.
    pub name: &'static str,
    /// How it is published.
    pub kind: Kind,
}

/// The CIFAR-10 binary batch folder's files.
pub const CIFAR10_FILES: &[&str] = &[
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
    "batches.meta.txt",
];

/// The table. CIFAR facts: <https://www.cs.toronto.edu/~kriz/cifar.html> (and
/// ../shared/datasets/README.md). MNIST and Fashion-MNIST mirrors and MD5s: torchvision,
/// `torchvision/datasets/mnist.py` (classes `MNIST` and `FashionMNIST`, `mirrors` and
/// `resources`).
/// `None` for the datasets nothing is fetched for (`folder`, `demo`).
pub fn source(name: DatasetName) -> Option<Source> {
    Some(match name {
        DatasetName::Cifar10 => Source {
            name: "cifar-10",
            kind: Kind::Archive {
                url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                md5: "c32a1d4ab5d03f1284b67883e8d87530",
                folder: "cifar-10-batches-bin",
                files: CIFAR10_FILES,
            },
        },
        DatasetName::Cifar100 => Source {
            name: "cifar-100",
            kind: Kind::Archive {
                url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                md5: "03b5dce01913d631647c71ecec9e9cb8",
                folder: "cifar-100-binary",
                files: &["train.bin", "test.bin", "coarse_label_names.txt", "fine_label_names.txt"],
            },
        },
        DatasetName::Mnist => Source {
            name: "mnist",
            kind: Kind::Files {
                mirrors: &[
                    "https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "http://yann.lecun.com/exdb/mnist/",
                ],
                files: &[
                    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
                ],
            },
        },
        DatasetName::FashionMnist => Source {
            name: "fashion-mnist",
            kind: Kind::Files {
                mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
                files: &[
                    ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                    ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                    ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                    ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
                ],
            },
        },
        DatasetName::Folder | DatasetName::Demo => return None,
    })
}

/// SHA-256 of the *decompressed* content of a files dataset's `.gz` files, as
/// `(dataset, file, sha256)`: a legitimate copy re-compressed by a packager (or `gzip -9`)
/// differs from the published gzip bytes, hence from their MD5, but not in content.
///
/// Fashion-MNIST: computed on 2026-12-04 from Debian's `dataset-fashion-mnist`
/// 0.0~git20200523.55506a9-1 (`/usr/share/datasets/fashion-mnist/`, fetched through apt's
/// signed archive). Debian re-compressed upstream's files (its gzip MD5s differ from the
/// published ones), so this is the packager case itself; the content was checked for the
/// published structure (IDX magic, 60,000/10,000 records of 28 x 28, 6,000/1,000 images per
/// class). Reproduce: `apt-get download dataset-fashion-mnist`, `dpkg-deb -x`, then
/// `gunzip -c FILE.gz | sha256sum`.
///
/// MNIST: none recorded. No copy of the files or a hash of their decompressed content could
/// be obtained and checked from this workplace, and an unverified hash would be worse than
/// none; a MNIST file whose gzip MD5 differs is refused with a message saying that no
/// content hash is recorded.
pub const CONTENT_SHA256: &[(&str, &str, &str)] = &[
    (
        "fashion-mnist",
        "train-images-idx3-ubyte.gz",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        "fashion-mnist",
        "train-labels-idx1-ubyte.gz",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    (
        "fashion-mnist",
        "t10k-images-idx3-ubyte.gz",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        "fashion-mnist",
        "t10k-labels-idx1-ubyte.gz",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

/// The recorded SHA-256 of the decompressed `file` of `dataset`, if one is recorded.
pub fn content_sha256(dataset: &str, file: &str) -> Option<&'static str> {
    CONTENT_SHA256.iter().find(|(d, f, _)| *d == dataset && *f == file).map(|(_, _, h)| *h)
}

/// The last path segment of a URL (without query), used as the download's file name.
pub fn file_name_of(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    if name.is_empty() || name == ".." || name == "." { None } else { Some(name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            file_name_of("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"),
            Some("cifar-10-binary.tar.gz")
        );
        assert_eq!(file_name_of("http://127.0.0.1:80/a/b.tgz?x=1"), Some("b.tgz"));
        assert_eq!(file_name_of("http://host/dir/"), None);
    }

    #[test]
    fn content_hashes_are_sha256_hex_of_files_the_dataset_lists() {
        for (dataset, file, sha) in CONTENT_SHA256 {
            assert!(imgclass_data::checksum::Checksum::sha256(sha).is_ok(), "{file}: {sha}");
            let listed = DatasetName::fetchable().filter_map(source).any(|s| {
                s.name == *dataset
                    && matches!(s.kind, Kind::Files { files, .. } if files.iter().any(|f| f.0 == *file))
            });
            assert!(listed, "{dataset}/{file} is not a file of that dataset");
        }
    }

    #[test]
    fn table_checksums_are_md5_hex() {
        assert_eq!(DatasetName::fetchable().count(), 4);
        for s in DatasetName::fetchable().filter_map(source) {
            let md5s: Vec<&str> = match s.kind {
                Kind::Archive { md5, .. } => vec![md5],
                Kind::Files { files, .. } => files.iter().map(|f| f.1).collect(),
            };
            for m in md5s {
                assert!(imgclass_data::checksum::Checksum::md5(m).is_ok(), "{}: {m}", s.name);
            }
        }
    }
}
