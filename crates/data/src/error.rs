//! [`DataError`]: every way reading, writing or splitting a dataset can fail.

use std::path::PathBuf;

use imgclass_core::{DatasetError, Label};

/// Why a dataset could not be read, written or split.
///
/// Every variant about a file names it (`path`); byte offsets are offsets into the file as
/// stored, or into the decompressed stream for gzip IDX files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file or directory could not be opened, read, listed or written.
    #[error("cannot access {}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The file is shorter than its header (or its record count) says.
    #[error("{} is truncated: expected {expected} bytes, found {found}", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file is longer than its header says.
    #[error("{} has trailing data: expected {expected} bytes, found {found}", .path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file size is not a whole number of fixed-size records.
    #[error("{} has {size} bytes, not a whole number of {record}-byte records", .path.display())]
    BadSize {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The record size in bytes.
        record: usize,
    },
    /// The file holds no records at all.
    #[error("{} is empty", .path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// A label byte is not below the number of classes.
    #[error(
        "{}: label {label} at byte offset {offset} is out of range for {n_classes} classes",
        .path.display()
    )]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Byte offset of the label.
        offset: u64,
        /// The label read.
        label: Label,
        /// Number of classes.
        n_classes: usize,
    },
    /// The class-names file does not exist.
    #[error("class names file {} is missing", .path.display())]
    MissingNames {
        /// The expected names file.
        path: PathBuf,
    },
    /// The class-names file exists but names no class.
    #[error("class names file {} names no class", .path.display())]
    EmptyNames {
        /// The names file.
        path: PathBuf,
    },
    /// An IDX file does not start with the expected magic number.
    #[error("{}: bad magic number {found:#010x}, expected {expected:#010x}", .path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        found: u32,
        /// The magic number this reader expects.
        expected: u32,
    },
    /// An IDX file holds another element type than unsigned bytes (type code 0x08).
    #[error("{}: unsupported idx element type {type_code:#04x}, only u8 (0x08) is read", .path.display())]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The type byte found.
        type_code: u8,
    },
    /// The gzip stream is corrupt or truncated.
    #[error("{}: gzip stream is corrupt or truncated: {source}", .path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder error.
        #[source]
        source: std::io::Error,
    },
    /// An IDX image file and label file hold different counts.
    #[error(
        "{} holds {n_images} images but {} holds {n_labels} labels",
        .images.display(),
        .labels.display()
    )]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Number of images.
        n_images: usize,
        /// Number of labels.
        n_labels: usize,
    },
    /// An image could not be decoded.
    #[error("cannot decode image {}: {message}", .path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// Images of an image folder whose size differs from the dataset's: the size most of its
    /// images have (no resize was asked for).
    #[error(
        "{n_wrong} image(s) are not {}x{} (height x width) like the rest of the dataset: {}\n\
         hint: resize or remove them, or read the folder with a fixed resize",
        .expected.0, .expected.1, list_sizes(.wrong, *.n_wrong)
    )]
    ImageSize {
        /// The size most images have, (height, width).
        expected: (usize, usize),
        /// Images of another size with their (height, width), in file order, at most
        /// [`MAX_LISTED`](crate::folder::MAX_LISTED).
        wrong: Vec<(PathBuf, (usize, usize))>,
        /// How many images have another size in all.
        n_wrong: usize,
    },
    /// A test class folder names a class that has no training folder.
    #[error("class folder {} names class {name:?}, which is not a training class", .path.display())]
    UnknownClass {
        /// The class folder.
        path: PathBuf,
        /// Its name.
        name: String,
    },
    /// A folder holds no class folders or no images.
    #[error("{} holds no images", .path.display())]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
    },
    /// A file or folder name is not valid UTF-8 (class names must be).
    #[error("{} is not a valid utf-8 name", .path.display())]
    NonUtf8Name {
        /// The file or folder.
        path: PathBuf,
    },
    /// The data cannot be written in the CIFAR-10 layout because of its image shape.
    #[error("cifar-10 layout needs 3x32x32 images, found {found}")]
    NotCifarShape {
        /// The dataset's shape.
        found: imgclass_core::RowShape,
    },
    /// The data has more classes than a label byte can hold.
    #[error("cifar-10 layout holds at most 256 classes, found {n_classes}")]
    TooManyClasses {
        /// Number of classes.
        n_classes: usize,
    },
    /// Train and test splits disagree on image shape or class names.
    #[error("train and test splits differ: {what}")]
    SplitMismatch {
        /// What differs.
        what: String,
    },
    /// A class name cannot be written as one line of a names file.
    #[error(
        "class name {name:?} cannot be written to a names file (empty or contains a line break)"
    )]
    BadClassName {
        /// The class name.
        name: String,
    },
    /// A label passed to a split function is not below the number of classes.
    #[error("label {label} at index {index} is out of range for {n_classes} classes")]
    BadLabel {
        /// Position of the label.
        index: usize,
        /// The label.
        label: Label,
        /// Number of classes.
        n_classes: usize,
    },
    /// Too few images for the CIFAR-10 binary layout: five training batches of at least one
    /// image each, and a test batch of at least one.
    #[error("the cifar-10 layout needs at least {min} {split} images ({rule}), found {found}")]
    TooFewForLayout {
        /// `training` or `test`.
        split: &'static str,
        /// Images given.
        found: usize,
        /// The least accepted.
        min: usize,
        /// Why.
        rule: &'static str,
    },
    /// A split asks for more rows than there are.
    #[error("cannot take {requested} rows out of {available}")]
    TooFewRows {
        /// Rows asked for.
        requested: usize,
        /// Rows available.
        available: usize,
    },
    /// k-fold needs `2 <= k <= n`.
    #[error("cannot make {k} folds of {n} rows (need 2 <= k <= n)")]
    BadFoldCount {
        /// Number of folds asked for.
        k: usize,
        /// Number of rows.
        n: usize,
    },
    /// A local thread pool could not be built.
    #[error("cannot build a thread pool of {threads} threads: {message}")]
    ThreadPool {
        /// Threads asked for.
        threads: usize,
        /// Rayon's message.
        message: String,
    },
    /// The rows read do not form a valid dataset.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

/// `a (HxW), b (HxW), ... and N more`.
fn list_sizes(wrong: &[(PathBuf, (usize, usize))], n_wrong: usize) -> String {
    let mut s: Vec<String> =
        wrong.iter().map(|(p, (h, w))| format!("{} ({h}x{w})", p.display())).collect();
    if n_wrong > wrong.len() {
        s.push(format!("and {} more", n_wrong - wrong.len()));
    }
    s.join(", ")
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
