//! [`ModelError`]: why a model file could not be written, read or used.

use std::path::PathBuf;

use imgclass_knn::KnnError;
use imgclass_knn::ann::AnnError;
use imgclass_linear::LinearError;

/// Why a model could not be saved, loaded or evaluated. Every variant about a file names it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model path is not a regular file (a directory, a FIFO, a device such as
    /// `/dev/zero`, or a symlink to one): refused before it is opened.
    #[error("{path}: not a regular file", path = path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A file is larger than its kind can legitimately be (checked before reading it).
    #[error("{path}: {size} bytes is more than the {max} a model file of this kind may have", path = path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The largest size accepted.
        max: u64,
    },
    /// The metadata file is not valid JSON of the expected structure.
    #[error("{path}: invalid model metadata: {source}", path = path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The metadata names a format version this build does not read.
    #[error("{path}: unsupported format version {found} (this build reads {supported})", path = path.display())]
    UnsupportedVersion {
        /// The JSON file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The file holds another kind of model than was asked for.
    #[error("{path}: holds a {found} model, expected {expected}", path = path.display())]
    WrongKind {
        /// The JSON file.
        path: PathBuf,
        /// The kind asked for.
        expected: &'static str,
        /// The kind in the file.
        found: &'static str,
    },
    /// The tensor file's size or SHA-256 differs from the one recorded in the metadata
    /// (truncated, extended or corrupted after saving).
    #[error("{path}: {what} is {found}, the metadata records {expected}", path = path.display())]
    Checksum {
        /// The tensor file.
        path: PathBuf,
        /// `size` or `sha256`.
        what: &'static str,
        /// The recorded value.
        expected: String,
        /// The value of the file.
        found: String,
    },
    /// The tensor file is not valid safetensors.
    #[error("{path}: invalid safetensors file: {reason}", path = path.display())]
    Tensors {
        /// The tensor file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A tensor the metadata requires is absent.
    #[error("{path}: missing tensor {name:?}", path = path.display())]
    MissingTensor {
        /// The tensor file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor has another element type than the format prescribes.
    #[error("{path}: tensor {name:?} has dtype {found}, expected {expected}", path = path.display())]
    WrongDtype {
        /// The tensor file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The prescribed dtype.
        expected: &'static str,
        /// The dtype in the file.
        found: String,
    },
    /// A tensor's shape disagrees with the metadata.
    #[error("{path}: tensor {name:?} has shape {found:?}, the metadata implies {expected:?}", path = path.display())]
    WrongShape {
        /// The tensor file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape the metadata implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The metadata or the tensors are well-formed but do not describe a valid model
    /// (non-finite weights, a label out of range, `k` larger than the training set, ...).
    #[error("{path}: invalid model: {reason}", path = path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The feature steps of a pipeline do not chain, or a step could not be rebuilt.
    #[error("{path}: {reason}", path = path.display())]
    Pipeline {
        /// The file describing the pipeline.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The network rejected its input.
    #[error(transparent)]
    Net(#[from] imgclass_net::NetError),
    /// Applying the pipeline's feature steps failed.
    #[error(transparent)]
    Steps(#[from] imgclass_features::PipelineError),
    /// The class names given to a save call do not match the model's class count.
    #[error("{found} class names given for a model of {expected} classes")]
    ClassCount {
        /// The model's class count.
        expected: usize,
        /// Names given.
        found: usize,
    },
    /// The members given for an ensemble do not make one (see `Ensemble::new`).
    #[error("invalid ensemble: {reason}")]
    Ensemble {
        /// What is wrong, in words.
        reason: String,
    },
    /// A member of a saved ensemble could not be loaded.
    #[error("{path}: member {index} ({file}) of the ensemble: {source}", path = path.display())]
    Member {
        /// The ensemble's metadata file.
        path: PathBuf,
        /// The member's position.
        index: usize,
        /// The member's file name, as the ensemble records it.
        file: String,
        /// Why it could not be loaded.
        source: Box<ModelError>,
    },
    /// The model has no scores to sum (a k-NN model votes).
    #[error("a {kind} model has no scores (an ensemble takes linear models and nets)")]
    NoScores {
        /// The model's kind.
        kind: &'static str,
    },
    /// An index given to a save call was not built on the model's training rows.
    #[error("the approximate index was built on other training rows than the model's")]
    IndexMismatch,
    /// An ensemble's summed scores could not be normalised (a non-finite score).
    #[error(transparent)]
    Loss(#[from] imgclass_loss::LossError),
    /// A linear model rejected its input.
    #[error(transparent)]
    Linear(#[from] LinearError),
    /// A k-NN model rejected its input.
    #[error(transparent)]
    Knn(#[from] KnnError),
    /// An approximate index rejected its input.
    #[error(transparent)]
    Ann(#[from] AnnError),
}
