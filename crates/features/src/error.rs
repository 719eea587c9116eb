//! [`FeatureError`]: why a step could not be fitted, applied or rebuilt, and
//! [`PipelineError`]: why a pipeline could not fit or predict.

use imgclass_core::{DatasetError, ShapeMismatch};

/// Why a feature step could not be fitted, applied or rebuilt from saved parts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    /// The training set has no rows.
    #[error("the training set is empty")]
    EmptyTrain,
    /// A parameter is out of range for this data.
    #[error("invalid {name}: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// Rows of another shape than the step was fitted on.
    #[error(transparent)]
    Shape(#[from] ShapeMismatch),
    /// Saved parts that do not make a step (inconsistent sizes, non-finite values).
    #[error("corrupt step: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// The step's output is not a valid dataset (for example a non-finite feature).
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A product could not run (an `IMGCLASS_KERNEL` that names no kernel, or one this CPU
    /// lacks).
    #[error(transparent)]
    Gemm(#[from] imgclass_linalg::gemm::GemmError),
}

/// Why a [`Pipeline`](crate::Pipeline) could not fit or predict.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Step `index` (from 0) failed.
    #[error("pipeline step {index} ({step}): {source}")]
    Step {
        /// Its position.
        index: usize,
        /// Its spec, as written in a config.
        step: String,
        /// Why.
        #[source]
        source: FeatureError,
    },
    /// The classifier failed on the transformed rows.
    #[error("pipeline classifier: {0}")]
    Classifier(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The steps do not chain: step `index` takes what the previous one does not make.
    #[error("pipeline step {index} takes {expected} but receives {found}")]
    Chain {
        /// The step's position.
        index: usize,
        /// What it takes.
        expected: imgclass_core::RowShape,
        /// What it receives.
        found: imgclass_core::RowShape,
    },
}
