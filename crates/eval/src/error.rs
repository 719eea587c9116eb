//! [`EvalError`]: why an evaluation could not be computed.

use imgclass_core::{DatasetError, Label};

/// Why an evaluation could not be computed. Bad input is reported here, never by a panic.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Truth and prediction slices differ in length.
    #[error("truth has {truth} labels but prediction has {pred}")]
    LengthMismatch {
        /// Number of true labels.
        truth: usize,
        /// Number of predicted labels.
        pred: usize,
    },
    /// There is nothing to score (no labels, no folds, no grid points, ...).
    #[error("cannot evaluate an empty {what}")]
    Empty {
        /// What was empty.
        what: &'static str,
    },
    /// A label is not below the number of classes.
    #[error("label {label} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        /// The offending label.
        label: Label,
        /// Number of classes.
        n_classes: usize,
    },
    /// k-fold cross-validation needs at least two folds and at least one row per fold.
    #[error("cannot split {n_rows} rows into {k} folds")]
    BadFoldCount {
        /// Requested number of folds.
        k: usize,
        /// Number of rows to split.
        n_rows: usize,
    },
    /// A hold-out fraction is not strictly between 0 and 1, or leaves one side empty.
    #[error("validation fraction {fraction} of {n_rows} rows leaves a side empty")]
    BadFraction {
        /// Requested validation fraction.
        fraction: f64,
        /// Number of rows to split.
        n_rows: usize,
    },
    /// A fold refers to a position outside the data, repeats a row, or its train and
    /// validation sides overlap or are empty.
    #[error("fold {fold} is invalid: {reason}")]
    BadFold {
        /// Index of the fold.
        fold: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The seeded split rejected its input (e.g. a label out of range).
    #[error("split: {0}")]
    Split(imgclass_data::DataError),
    /// A search axis holds a value the search cannot use.
    #[error("grid axis {axis}: {reason}")]
    InvalidGrid {
        /// The axis's name.
        axis: String,
        /// What is wrong.
        reason: String,
    },
    /// A row view could not be built.
    #[error("could not build a row view: {0}")]
    Dataset(#[from] DatasetError),
    /// The classifier failed to fit on a fold.
    #[error("fitting failed on fold {fold}: {source}")]
    Fit {
        /// Index of the fold (0 for hold-out).
        fold: usize,
        /// The classifier's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The fitted classifier failed to predict on a fold.
    #[error("prediction failed on fold {fold}: {source}")]
    Predict {
        /// Index of the fold (0 for hold-out).
        fold: usize,
        /// The classifier's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Results could not be written or read as JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON document has a schema version this build does not read.
    #[error("schema version {found} is not supported (expected {expected})")]
    SchemaVersion {
        /// The version this build writes and reads.
        expected: u32,
        /// The version in the document.
        found: u32,
    },
}
