//! The JSON half of a model file: [`Metadata`] (format version, kind, class names, input
//! row shape, [`Params`], tensor-file checksum) and the [`Provenance`] a caller supplies.

use std::collections::BTreeMap;

use imgclass_core::{ClassNames, RowShape};
use imgclass_knn::{Metric, Vote};
use imgclass_linear::Loss;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;

/// Where a model came from: written into the metadata as given, returned by the loaders.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The dataset it was trained on (a name or a path).
    pub dataset: String,
    /// The seed of the run that trained or selected it.
    pub seed: Option<u64>,
    /// Accuracy on the validation split or cross-validation mean, in `0..=1`.
    pub validation_accuracy: Option<f64>,
    /// Accuracy on the test split, in `0..=1`.
    pub test_accuracy: Option<f64>,
    /// The program that wrote it (e.g. `cargo xtask experiment`); empty means unknown.
    pub created_by: String,
    /// Training hyperparameters not stored in the model itself (learning rate,
    /// regularisation, ...), by name.
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
}

/// The loss a linear model was trained with, as stored in the metadata.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum LossSpec {
    /// Multiclass SVM hinge loss.
    Svm {
        /// The margin `Δ`.
        margin: f64,
    },
    /// Squared hinge loss.
    SquaredHinge {
        /// The margin `Δ`.
        margin: f64,
    },
    /// Softmax cross-entropy.
    Softmax,
}

impl From<Loss> for LossSpec {
    fn from(l: Loss) -> Self {
        match l {
            Loss::Svm { margin } => Self::Svm { margin },
            Loss::SquaredHinge { margin } => Self::SquaredHinge { margin },
            Loss::Softmax => Self::Softmax,
        }
    }
}

impl From<LossSpec> for Loss {
    fn from(l: LossSpec) -> Self {
        match l {
            LossSpec::Svm { margin } => Self::Svm { margin },
            LossSpec::SquaredHinge { margin } => Self::SquaredHinge { margin },
            LossSpec::Softmax => Self::Softmax,
        }
    }
}

/// A k-NN distance as stored in the metadata (`"l1"`, `"l2"` (squared Euclidean) or
/// `"cosine"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricSpec {
    /// Manhattan distance.
    L1,
    /// Squared Euclidean distance.
    L2,
    /// Cosine distance (f32 features only).
    Cosine,
}

impl From<Metric> for MetricSpec {
    fn from(m: Metric) -> Self {
        match m {
            Metric::L1 => Self::L1,
            Metric::L2 => Self::L2,
            Metric::Cosine => Self::Cosine,
        }
    }
}

impl From<MetricSpec> for Metric {
    fn from(m: MetricSpec) -> Self {
        match m {
            MetricSpec::L1 => Self::L1,
            MetricSpec::L2 => Self::L2,
            MetricSpec::Cosine => Self::Cosine,
        }
    }
}

/// A k-NN vote as stored in the metadata (`"majority"` or `"distance"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteSpec {
    /// One vote per neighbour.
    Majority,
    /// Votes weighted by `1 / (d + ε)`.
    Distance,
}

impl From<Vote> for VoteSpec {
    fn from(v: Vote) -> Self {
        match v {
            Vote::Majority => Self::Majority,
            Vote::Distance => Self::Distance,
        }
    }
}

impl From<VoteSpec> for Vote {
    fn from(v: VoteSpec) -> Self {
        match v {
            VoteSpec::Majority => Self::Majority,
            VoteSpec::Distance => Self::Distance,
        }
    }
}

/// The model kind and its parameters (`"kind"` and `"params"` in the JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
pub enum Params {
    /// A linear classifier `scores = W ((x − mean) · input_scale) + b`; tensors `W` f32
    /// `[C, D]`, `b` f32 `[C]`, `mean` f32 `[D]`.
    Linear {
        /// The training loss (decides nothing at prediction time; recorded for the reader).
        loss: LossSpec,
        /// The scale `s` applied after mean subtraction.
        input_scale: f32,
    },
    /// A k-NN classifier over stored training rows; tensors `train_pixels` u8 `[N, D]`,
    /// `train_labels` u32 `[N]`.
    Knn {
        /// Neighbours voting.
        k: usize,
        /// The distance.
        metric: MetricSpec,
        /// The vote.
        vote: VoteSpec,
        /// Training rows `N`.
        n_train: usize,
        /// An approximate index saved beside the model, if any.
        #[serde(default)]
        ann: Option<AnnFile>,
    },
}

impl Params {
    /// `"linear"` or `"knn"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Knn { .. } => "knn",
        }
    }
}

/// An approximate index file saved beside a k-NN model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnnFile {
    /// Its file name, in the directory of the metadata.
    pub file: String,
    /// The index kind and parameters (`AnnIndex::spec`), for readers.
    pub spec: String,
}

/// The metadata file (`<name>.json`) of a saved model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// The format version ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// The model kind and parameters.
    #[serde(flatten)]
    pub params: Params,
    /// Class names in label order.
    pub classes: ClassNames,
    /// What an input row is: `{"image": {"channels", "height", "width"}}` (channel-major
    /// u8 rows of `D = C·H·W` bytes) or `{"features": D}` (f32 rows).
    pub input: RowShape,
    /// The tensor file's name, in the directory of the metadata.
    pub tensors: String,
    /// The tensor file's size in bytes.
    pub tensors_size: u64,
    /// The tensor file's SHA-256, lowercase hex.
    pub tensors_sha256: String,
    /// Where the model came from.
    pub provenance: Provenance,
}
