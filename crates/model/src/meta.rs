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
        loss: Loss,
        /// The scale `s` applied after mean subtraction.
        input_scale: f32,
    },
    /// A two-layer network `scores = W2 max(0, W1 ((x − mean) · input_scale) + b1) + b2`;
    /// tensors `W1` f32 `[H, D]`, `b1` `[H]`, `W2` `[C, H]`, `b2` `[C]`, `mean` `[D]`.
    Net {
        /// The training loss.
        loss: Loss,
        /// The scale `s` applied after mean subtraction.
        input_scale: f32,
        /// Hidden units `H`.
        hidden: usize,
    },
    /// A k-NN classifier over stored training rows; tensors `train_pixels` u8 `[N, D]`,
    /// `train_labels` u32 `[N]`.
    Knn {
        /// Neighbours voting.
        k: usize,
        /// The distance.
        metric: Metric,
        /// The vote.
        vote: VoteSpec,
        /// Training rows `N`.
        n_train: usize,
        /// An approximate index saved beside the model, if any.
        #[serde(default)]
        ann: Option<AnnFile>,
    },
    /// A weighted sum of other models' scores, `scores = Σ weight_i · scores_i` (linear
    /// models' scores, nets' logits), each member a saved linear model or net, bare or behind
    /// its own feature steps, in its own files beside this one; no tensors of its own.
    Ensemble {
        /// The members, in order.
        members: Vec<MemberRef>,
    },
}

impl Params {
    /// `"linear"`, `"net"`, `"knn"` or `"ensemble"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Net { .. } => "net",
            Self::Knn { .. } => "knn",
            Self::Ensemble { .. } => "ensemble",
        }
    }
}

/// One member of a saved ensemble: a model file beside the ensemble's, its checksum and its
/// weight.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberRef {
    /// The member's metadata file name, in the directory of the ensemble's.
    pub file: String,
    /// The SHA-256 of that metadata file, lowercase hex (which records its tensors' SHA-256
    /// in turn, so an edited or replaced member is refused).
    pub sha256: String,
    /// The weight of its scores in the sum.
    pub weight: f32,
}

/// An approximate index file saved beside a k-NN model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnnFile {
    /// Its file name, in the directory of the metadata.
    pub file: String,
    /// The index kind and parameters (`AnnIndex::spec`), for readers.
    pub spec: String,
}

/// One feature step of a saved pipeline: its spec and what it takes. Its tensors are
/// `steps.<i>.<name>` in the model's tensor file (names and shapes from
/// `imgclass_features::Step::tensor_shapes`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepMeta {
    /// The step, as a config writes it (`{"kind": "pca", "components": 64, "whiten": false}`).
    pub spec: imgclass_features::StepSpec,
    /// What the step takes.
    pub input: RowShape,
    /// Features per row it makes.
    pub output: usize,
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
    /// u8 rows of `D = C·H·W` bytes) or `{"features": D}` (f32 rows). For a pipeline, what
    /// its first step takes.
    pub input: RowShape,
    /// Feature steps applied, in order, before the classifier (empty: a bare classifier,
    /// whose input is `input`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepMeta>,
    /// The tensor file's name, in the directory of the metadata.
    pub tensors: String,
    /// The tensor file's size in bytes.
    pub tensors_size: u64,
    /// The tensor file's SHA-256, lowercase hex.
    pub tensors_sha256: String,
    /// Where the model came from.
    pub provenance: Provenance,
}
