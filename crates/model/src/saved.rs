//! [`SavedModel`] and the save/load functions: encoding a model into safetensors + JSON and
//! decoding (with every check) back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use imgclass_core::{
    ClassNames, Dataset, Fit, Label, Predict, RowShape, Subset, Values, argmax_label,
};
use imgclass_features::{Step, apply};
use imgclass_knn::ann::{BuiltIndex, data_checksum};
use imgclass_knn::{Knn, KnnModel};
use imgclass_linear::LinearModel;
use imgclass_net::NetModel;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::ModelError;
use crate::files::{
    MAX_JSON_BYTES, file_name, pair, read_bounded, read_exact_len, regular_file_len, sha256_hex,
    sibling, with_suffix, write_atomic,
};
use crate::meta::{AnnFile, FORMAT_VERSION, MemberRef, Metadata, Params, Provenance, StepMeta};

/// A loaded model of either kind, ready to predict.
#[derive(Debug, Clone)]
pub enum SavedModel {
    /// A linear classifier with its class names.
    Linear {
        /// The model.
        model: LinearModel,
        /// Class names in label order.
        classes: ClassNames,
    },
    /// A k-NN classifier (its training rows carry the class names) and, if one was saved,
    /// its approximate index.
    Knn {
        /// The model.
        model: KnnModel,
        /// The approximate index, searched instead of the exact one when present.
        index: Option<Box<BuiltIndex>>,
    },
    /// A two-layer network with its class names.
    Net {
        /// The model.
        model: NetModel,
        /// Class names in label order.
        classes: ClassNames,
    },
    /// Fitted feature steps, then a classifier (a saved pipeline): it takes the rows its
    /// first step takes (raw images, say).
    Pipeline {
        /// The steps, in order (at least one).
        steps: Vec<Step>,
        /// The classifier on the last step's features (never itself a pipeline).
        model: Box<SavedModel>,
    },
    /// A weighted sum of linear models' and nets' scores ([`Ensemble`]); each member takes
    /// the ensemble's input through its own feature steps.
    Ensemble(Ensemble),
}

/// Whether models of `kind` (as [`SavedModel::kind`] and [`Params::kind`] name them) have
/// scores an ensemble can sum: linear models and nets.
fn has_scores(kind: &str) -> bool {
    matches!(kind, "linear" | "net")
}

/// One member of an [`Ensemble`]: a model, its weight, and the name of the metadata file it
/// is saved as (beside the ensemble's).
#[derive(Debug, Clone)]
pub struct Member {
    /// A linear model or a net, bare or behind feature steps (a [`SavedModel::Pipeline`]).
    pub model: SavedModel,
    /// The weight of its scores in the sum: finite and positive.
    pub weight: f32,
    /// Its metadata file's name (`model-kmeans-1600-l2-svm.json`), in the directory the
    /// ensemble is saved in; the member must be saved there before the ensemble.
    pub file: String,
}

/// Models whose scores add up: `scores(x) = Σ_i weight_i · scores_i(x)`, where a linear
/// model's scores are `W x' + b` and a net's are its logits; the probabilities are the softmax
/// of the sum. The members may see different features of the same input (say, an L2-SVM on
/// k-means features and a net on HOG features of the same images).
///
/// Saved, it is a metadata file that names each member's metadata file and its SHA-256 (and
/// an empty tensor file): the members stay ordinary models that load on their own.
#[derive(Debug, Clone)]
pub struct Ensemble {
    members: Vec<Member>,
}

impl Ensemble {
    /// Checks and wraps `members`: at least one; each a linear model or a net (bare or behind
    /// steps), never a k-NN model or another ensemble; finite positive weights; the same
    /// input shape and class names throughout; plain file names.
    ///
    /// Errors: [`ModelError::Ensemble`] saying which member is wrong and how.
    pub fn new(members: Vec<Member>) -> Result<Self, ModelError> {
        let bad = |reason: String| Err(ModelError::Ensemble { reason });
        let Some(first) = members.first() else {
            return bad("no members".into());
        };
        for (i, m) in members.iter().enumerate() {
            let kind = m.model.classifier().kind();
            if !has_scores(kind) {
                return bad(format!(
                    "member {i} ({}) is of kind {kind:?}; an ensemble sums the scores of linear \
                     models and nets",
                    m.file
                ));
            }
            if !(m.weight.is_finite() && m.weight > 0.0) {
                return bad(format!(
                    "member {i} ({}) has weight {}; weights must be finite and positive",
                    m.file, m.weight
                ));
            }
            if m.model.shape() != first.model.shape() {
                return bad(format!(
                    "member {i} ({}) takes {}, member 0 takes {}",
                    m.file,
                    m.model.shape(),
                    first.model.shape()
                ));
            }
            if m.model.classes() != first.model.classes() {
                return bad(format!(
                    "member {i} ({}) has other class names than member 0 ({:?} against {:?})",
                    m.file,
                    m.model.classes().names(),
                    first.model.classes().names()
                ));
            }
            let plain = Path::new(&m.file).file_name().is_some_and(|n| n == m.file.as_str());
            if !plain || !m.file.ends_with(".json") {
                return bad(format!(
                    "member {i}'s file {:?} is not a plain file name ending in .json",
                    m.file
                ));
            }
        }
        Ok(Self { members })
    }

    /// The members, in order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    fn first(&self) -> &SavedModel {
        // `new` refuses an empty list
        &self.members[0].model
    }

    /// The weighted sum of the members' scores, row-major `x.len() x n_classes`.
    pub fn scores(&self, x: &Subset) -> Result<Vec<f32>, ModelError> {
        let mut sum = vec![0f32; x.len() * self.first().n_classes()];
        for m in &self.members {
            let s = m.model.scores(x)?;
            for (a, b) in sum.iter_mut().zip(s) {
                *a += m.weight * b;
            }
        }
        Ok(sum)
    }
}

impl SavedModel {
    /// Loads a model of either kind; `path` is the JSON file, the tensor file, or their
    /// common stem.
    ///
    /// An ensemble's members are loaded from their own files beside it, each checked against
    /// the SHA-256 the ensemble records.
    pub fn load(path: impl AsRef<Path>) -> Result<(Self, Metadata), ModelError> {
        let (json_path, _) = pair(path.as_ref(), "model");
        let json = read_bounded(&json_path, MAX_JSON_BYTES)?;
        load_parsed(&json_path, parse_metadata(&json_path, &json)?)
    }

    /// Saves the model to `path` (a stem, `<stem>.json`, `<stem>.safetensors`, or an existing
    /// directory, then `<dir>/linear.*` or `<dir>/knn.*`).
    pub fn save(&self, meta: &Provenance, path: impl AsRef<Path>) -> Result<(), ModelError> {
        match self {
            Self::Linear { model, classes } => save_linear(model, classes, meta, path),
            Self::Knn { model, index } => {
                save_knn_impl(model, index.as_deref(), meta, path.as_ref())
            }
            Self::Net { model, classes } => {
                write_pair(path.as_ref(), encode_net(model, classes)?, &[], meta, None)
            }
            Self::Pipeline { steps, model } => save_pipeline(steps, model, meta, path),
            Self::Ensemble(e) => save_ensemble(e, meta, path.as_ref()),
        }
    }

    /// The classifier's kind, `"linear"`, `"net"`, `"knn"` (also for a pipeline) or
    /// `"ensemble"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Net { .. } => "net",
            Self::Knn { .. } => "knn",
            Self::Pipeline { model, .. } => model.kind(),
            Self::Ensemble(_) => "ensemble",
        }
    }

    /// The classifier (itself for a bare one, the last stage of a pipeline).
    pub fn classifier(&self) -> &SavedModel {
        match self {
            Self::Pipeline { model, .. } => model.classifier(),
            other => other,
        }
    }

    /// The feature steps applied before the classifier (none for a bare classifier or an
    /// ensemble, whose members apply their own).
    pub fn steps(&self) -> &[Step] {
        match self {
            Self::Pipeline { steps, .. } => steps,
            _ => &[],
        }
    }

    /// The rows the classifier sees: `x` through every feature step.
    pub fn transform(&self, x: &Subset) -> Result<Subset, ModelError> {
        Ok(apply(self.steps(), x)?)
    }

    /// Class names in label order.
    pub fn classes(&self) -> &ClassNames {
        match self {
            Self::Linear { classes, .. } | Self::Net { classes, .. } => classes,
            Self::Knn { model, .. } => model.train().dataset().classes(),
            Self::Pipeline { model, .. } => model.classes(),
            Self::Ensemble(e) => e.first().classes(),
        }
    }

    /// What an input row is (an image of a shape, or features of a dimension); for a
    /// pipeline, what its first step takes.
    pub fn shape(&self) -> RowShape {
        match self {
            Self::Linear { model, .. } => model.shape(),
            Self::Net { model, .. } => model.shape(),
            Self::Knn { model, .. } => model.train().dataset().shape(),
            Self::Pipeline { steps, model } => steps.first().map_or(model.shape(), Step::input),
            Self::Ensemble(e) => e.first().shape(),
        }
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        match self {
            Self::Linear { model, .. } => model.n_classes(),
            Self::Net { model, .. } => model.n_classes(),
            Self::Knn { model, .. } => model.n_classes(),
            Self::Pipeline { model, .. } => model.n_classes(),
            Self::Ensemble(e) => e.first().n_classes(),
        }
    }

    /// Class probabilities, row-major `x.len() x n_classes`: the softmax of the scores for a
    /// linear model, a net or an ensemble, the vote shares of the `k` neighbours for k-NN
    /// (found by the approximate index when there is one).
    pub fn predict_proba(&self, x: &Subset) -> Result<Vec<f32>, ModelError> {
        match self {
            Self::Linear { model, .. } => Ok(model.predict_proba(x)?),
            Self::Net { model, .. } => Ok(model.predict_proba(x)?),
            Self::Knn { model, index: None } => Ok(model.predict_proba(x)?),
            Self::Knn { model, index: Some(ix) } => {
                let k = model.params().k();
                Ok(model.proba_from(&ix.search(x, k)?, k)?)
            }
            Self::Pipeline { steps, model } => model.predict_proba(&apply(steps, x)?),
            Self::Ensemble(e) => {
                let s = e.scores(x)?;
                if s.is_empty() {
                    return Ok(s);
                }
                Ok(imgclass_loss::softmax_rows(&s, self.n_classes())?)
            }
        }
    }

    /// Class scores, row-major `x.len() x n_classes`: a linear model's `W x' + b`, a net's
    /// logits, an ensemble's weighted sum of its members'; a pipeline's classifier's on the
    /// transformed rows. Errors: [`ModelError::NoScores`] for k-NN.
    pub fn scores(&self, x: &Subset) -> Result<Vec<f32>, ModelError> {
        match self {
            Self::Linear { model, .. } => Ok(model.scores(x)?),
            Self::Net { model, .. } => Ok(model.scores(x)?),
            Self::Knn { .. } => Err(ModelError::NoScores { kind: "knn" }),
            Self::Pipeline { steps, model } => model.scores(&apply(steps, x)?),
            Self::Ensemble(e) => e.scores(x),
        }
    }

    /// Predicted labels (the most probable class; ties toward the smaller label).
    pub fn predict(&self, x: &Subset) -> Result<Vec<Label>, ModelError> {
        let c = self.n_classes();
        let p = self.predict_proba(x)?;
        Ok(p.chunks_exact(c.max(1)).map(argmax_label).collect())
    }
}

/// A classifier's tensors (owned bytes) and metadata, ready to be written alone or behind
/// feature steps.
struct Encoded {
    kind: &'static str,
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    params: Params,
    classes: ClassNames,
    shape: RowShape,
}

fn encode_linear(model: &LinearModel, classes: &ClassNames) -> Result<Encoded, ModelError> {
    if classes.len() != model.n_classes() {
        return Err(ModelError::ClassCount { expected: model.n_classes(), found: classes.len() });
    }
    let (c, d) = (model.n_classes(), model.n_features());
    let tensors = vec![
        ("W".into(), Dtype::F32, vec![c, d], f32_bytes(model.weights())),
        ("b".into(), Dtype::F32, vec![c], f32_bytes(model.bias())),
        ("mean".into(), Dtype::F32, vec![d], f32_bytes(model.mean_image())),
    ];
    let params = Params::Linear { loss: model.loss(), input_scale: model.input_scale() };
    Ok(Encoded { kind: "linear", tensors, params, classes: classes.clone(), shape: model.shape() })
}

fn encode_net(model: &NetModel, classes: &ClassNames) -> Result<Encoded, ModelError> {
    use imgclass_core::Predict;
    if classes.len() != model.n_classes() {
        return Err(ModelError::ClassCount { expected: model.n_classes(), found: classes.len() });
    }
    let (h, c, d) = (model.hidden(), model.n_classes(), model.mean().len());
    let tensors = vec![
        ("W1".into(), Dtype::F32, vec![h, d], f32_bytes(model.w1())),
        ("b1".into(), Dtype::F32, vec![h], f32_bytes(model.b1())),
        ("W2".into(), Dtype::F32, vec![c, h], f32_bytes(model.w2())),
        ("b2".into(), Dtype::F32, vec![c], f32_bytes(model.b2())),
        ("mean".into(), Dtype::F32, vec![d], f32_bytes(model.mean())),
    ];
    let params = Params::Net { loss: model.loss(), input_scale: model.input_scale(), hidden: h };
    Ok(Encoded { kind: "net", tensors, params, classes: classes.clone(), shape: model.shape() })
}

fn encode_knn(model: &KnnModel, index: Option<&BuiltIndex>) -> Result<Encoded, ModelError> {
    let train = model.train();
    let mismatch = index.is_some_and(|ix| {
        ix.len() != train.len()
            || ix.train().dim() != train.dim()
            || data_checksum(ix.train()) != data_checksum(train)
    });
    if mismatch {
        return Err(ModelError::IndexMismatch);
    }
    let (n, d) = (train.len(), train.dim());
    let rows = match train.values() {
        Values::Pixels(r) => (TRAIN_PIXELS, Dtype::U8, r.to_contiguous()),
        Values::Features(r) => (TRAIN_FEATURES, Dtype::F32, f32_bytes(&r.to_contiguous())),
    };
    let labels: Vec<u8> = model.train_labels().iter().flat_map(|l| l.to_le_bytes()).collect();
    let tensors = vec![
        (rows.0.into(), rows.1, vec![n, d], rows.2),
        ("train_labels".into(), Dtype::U32, vec![n], labels),
    ];
    let p = model.params();
    let params = Params::Knn {
        k: p.k(),
        metric: p.get_metric(),
        vote: p.get_vote().into(),
        n_train: n,
        ann: None,
    };
    let ds = train.dataset();
    Ok(Encoded { kind: "knn", tensors, params, classes: ds.classes().clone(), shape: ds.shape() })
}

/// Saves a linear model with its class names (one per class, in label order) to `path`: see
/// [`SavedModel::save`] for what `path` may be.
pub fn save_linear(
    model: &LinearModel,
    classes: &ClassNames,
    meta: &Provenance,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    write_pair(path.as_ref(), encode_linear(model, classes)?, &[], meta, None)
}

/// Saves a k-NN model to `path` (see [`SavedModel::save`]): its parameters and its training
/// rows (pixels and labels) in the tensor file, so the file is self-contained.
pub fn save_knn(
    model: &KnnModel,
    meta: &Provenance,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    save_knn_impl(model, None, meta, path.as_ref())
}

/// Saves a k-NN model as [`save_knn`] does, plus its approximate index as `<stem>.ann`; the
/// index must have been built on the model's training rows ([`ModelError::IndexMismatch`]).
pub fn save_knn_with_index(
    model: &KnnModel,
    index: &BuiltIndex,
    meta: &Provenance,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    save_knn_impl(model, Some(index), meta, path.as_ref())
}

fn save_knn_impl(
    model: &KnnModel,
    index: Option<&BuiltIndex>,
    meta: &Provenance,
    path: &Path,
) -> Result<(), ModelError> {
    write_pair(path, encode_knn(model, index)?, &[], meta, index)
}

/// Saves a pipeline as one model: the feature `steps` (fitted, in order; each must take what
/// the previous one makes) and the classifier `model` on the last step's features. Every
/// step's tensors go into the same tensor file as `steps.<i>.<name>`; the metadata lists the
/// steps ([`StepMeta`]) and records the first step's input, so a loader can apply the whole
/// pipeline to raw rows. Without steps this saves the bare classifier.
pub fn save_pipeline(
    steps: &[Step],
    model: &SavedModel,
    meta: &Provenance,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    let path = path.as_ref();
    let (json_path, _) = pair(path, "model");
    let bad = |reason: String| ModelError::Pipeline { path: json_path.clone(), reason };
    let (enc, index) = match model {
        SavedModel::Linear { model, classes } => (encode_linear(model, classes)?, None),
        SavedModel::Net { model, classes } => (encode_net(model, classes)?, None),
        SavedModel::Knn { model, index } => {
            (encode_knn(model, index.as_deref())?, index.as_deref())
        }
        SavedModel::Pipeline { .. } => {
            return Err(bad("a pipeline's classifier cannot itself be a pipeline".into()));
        }
        SavedModel::Ensemble(_) => {
            return Err(bad(
                "an ensemble cannot sit behind feature steps (its members carry their own)".into(),
            ));
        }
    };
    chain(steps, enc.shape).map_err(bad)?;
    write_pair(path, enc, steps, meta, index)
}

/// Checks that each step takes what the previous one makes and that the classifier takes
/// the last step's output.
fn chain(steps: &[Step], classifier: RowShape) -> Result<(), String> {
    let mut made: Option<RowShape> = None;
    for (i, st) in steps.iter().enumerate() {
        if let Some(m) = made.filter(|&m| m != st.input()) {
            return Err(format!("step {i} ({}) takes {} but receives {m}", st.spec(), st.input()));
        }
        made = Some(RowShape::Features(st.output_dim()));
    }
    match made {
        Some(m) if m != classifier => {
            Err(format!("the classifier takes {classifier} but the last step makes {m}"))
        }
        _ => Ok(()),
    }
}

fn write_pair(
    path: &Path,
    enc: Encoded,
    steps: &[Step],
    meta: &Provenance,
    index: Option<&BuiltIndex>,
) -> Result<(), ModelError> {
    let Encoded { kind, tensors: mut owned, mut params, classes, shape } = enc;
    let (json_path, st_path) = pair(path, kind);
    let input = steps.first().map_or(shape, Step::input);
    for (i, st) in steps.iter().enumerate() {
        for t in st.tensors() {
            owned.push((format!("steps.{i}.{}", t.name), Dtype::F32, t.shape, f32_bytes(&t.data)));
        }
    }
    let tensors: Vec<(&str, TensorView<'_>)> = owned
        .iter()
        .map(|(n, dt, sh, b)| Ok((n.as_str(), view(*dt, sh.clone(), b)?)))
        .collect::<Result<_, ModelError>>()?;
    let info = BTreeMap::from([
        ("format".to_string(), "imgclass".to_string()),
        ("kind".to_string(), params.kind().to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        (SHAPE_KEY.to_string(), input.to_string()),
    ]);
    let bytes = serialize_sorted(tensors, &info)
        .map_err(|reason| ModelError::Tensors { path: st_path.clone(), reason })?;
    write_atomic(&st_path, &bytes)?;
    if let (Some(ix), Params::Knn { ann, .. }) = (index, &mut params) {
        let ann_path = with_suffix(&json_path.with_extension(""), "ann");
        write_atomic(&ann_path, &ix.to_bytes())?;
        *ann = Some(AnnFile { file: file_name(&ann_path)?, spec: ix.kind().spec() });
    }
    let md = Metadata {
        format_version: FORMAT_VERSION,
        params,
        classes,
        input,
        steps: steps
            .iter()
            .map(|st| StepMeta { spec: st.spec(), input: st.input(), output: st.output_dim() })
            .collect(),
        tensors: file_name(&st_path)?,
        tensors_size: bytes.len() as u64,
        tensors_sha256: sha256_hex(&bytes),
        provenance: meta.clone(),
    };
    let json = serde_json::to_vec_pretty(&md)
        .map_err(|source| ModelError::Json { path: json_path.clone(), source })?;
    write_atomic(&json_path, &json)?;
    tracing::debug!(path = %json_path.display(), kind = md.params.kind(), steps = steps.len(), "saved model");
    Ok(())
}

/// Loads the model whose metadata file `json_path` holds `md`.
fn load_parsed(json_path: &Path, md: Metadata) -> Result<(SavedModel, Metadata), ModelError> {
    let tensors_path = sibling(json_path, &md.tensors)?;
    // size and file type first, from the metadata alone: the bytes read are the bytes
    // the model needs, never more (a 4 GB file or a link to /dev/zero is refused unread)
    let max = tensor_file_bound(json_path, &md)?;
    if md.tensors_size > max {
        return Err(invalid(
            json_path,
            format!(
                "tensors_size {} is more than the {max} bytes this model's tensors take",
                md.tensors_size
            ),
        ));
    }
    let len = regular_file_len(&tensors_path)?;
    if len != md.tensors_size {
        return Err(ModelError::Checksum {
            path: tensors_path,
            what: "size",
            expected: md.tensors_size.to_string(),
            found: len.to_string(),
        });
    }
    let tensors = read_exact_len(&tensors_path, len)?;
    let mut model = decode(json_path, md.clone(), &tensors_path, &tensors)?;
    let classifier = match &mut model {
        SavedModel::Pipeline { model, .. } => model.as_mut(),
        other => other,
    };
    if let (Params::Knn { ann: Some(ann), .. }, SavedModel::Knn { model, index }) =
        (&md.params, classifier)
    {
        let ann_path = sibling(json_path, &ann.file)?;
        let bytes = read_exact_len(&ann_path, regular_file_len(&ann_path)?)?;
        let ix = BuiltIndex::from_bytes(&bytes, model.train())
            .map_err(|e| ModelError::Invalid { path: ann_path.clone(), reason: e.to_string() })?;
        *index = Some(Box::new(ix));
    }
    tracing::debug!(path = %json_path.display(), kind = md.params.kind(), "loaded model");
    Ok((model, md))
}

/// Saves an ensemble's metadata: each member's file (already saved beside it) with its
/// SHA-256 and weight, and an empty tensor file.
fn save_ensemble(e: &Ensemble, meta: &Provenance, path: &Path) -> Result<(), ModelError> {
    let (json_path, _) = pair(path, "ensemble");
    let mut refs = Vec::with_capacity(e.members().len());
    for (i, m) in e.members().iter().enumerate() {
        let p = sibling(&json_path, &m.file)?;
        let json = read_bounded(&p, MAX_JSON_BYTES).map_err(|err| ModelError::Ensemble {
            reason: format!("member {i}: save it as {} first ({err})", p.display()),
        })?;
        let md = parse_metadata(&p, &json)?;
        let saved_kind = md.params.kind();
        let kind = m.model.classifier().kind();
        if saved_kind != kind || md.input != m.model.shape() {
            return Err(ModelError::Ensemble {
                reason: format!(
                    "member {i}: {} holds a {saved_kind} model taking {}, not this {kind} model \
                     taking {}",
                    p.display(),
                    md.input,
                    m.model.shape()
                ),
            });
        }
        refs.push(MemberRef { file: m.file.clone(), sha256: sha256_hex(&json), weight: m.weight });
    }
    let first = e.first();
    let enc = Encoded {
        kind: "ensemble",
        tensors: Vec::new(),
        params: Params::Ensemble { members: refs },
        classes: first.classes().clone(),
        shape: first.shape(),
    };
    write_pair(path, enc, &[], meta, None)
}

/// Loads an ensemble's members from the files its metadata (`json_path`) names, each checked
/// against its recorded SHA-256 and kind before it is decoded.
fn load_members(json_path: &Path, refs: Vec<MemberRef>) -> Result<Ensemble, ModelError> {
    let mut members = Vec::with_capacity(refs.len());
    for (i, r) in refs.into_iter().enumerate() {
        let member = |source: ModelError| ModelError::Member {
            path: json_path.to_path_buf(),
            index: i,
            file: r.file.clone(),
            source: Box::new(source),
        };
        let p = sibling(json_path, &r.file)?;
        let json = read_bounded(&p, MAX_JSON_BYTES).map_err(member)?;
        let sum = sha256_hex(&json);
        if !sum.eq_ignore_ascii_case(&r.sha256) {
            return Err(member(ModelError::Checksum {
                path: p,
                what: "sha256",
                expected: r.sha256.clone(),
                found: sum,
            }));
        }
        // the kind first: a member that is itself an ensemble (or names this one) is refused
        // before anything is decoded
        let md = parse_metadata(&p, &json).map_err(member)?;
        let kind = md.params.kind();
        if !has_scores(kind) {
            return Err(invalid(
                json_path,
                format!(
                    "member {i} ({}) is of kind {kind:?}; an ensemble sums the scores of linear \
                     models and nets",
                    r.file
                ),
            ));
        }
        let (model, _) = load_parsed(&p, md).map_err(member)?;
        members.push(Member { model, weight: r.weight, file: r.file });
    }
    Ensemble::new(members).map_err(|e| invalid(json_path, e.to_string()))
}

/// `safetensors::serialize` with the header's `__metadata__` keys in sorted order: the crate
/// takes a `HashMap`, whose order changes from one map to the next, so identical models gave
/// different bytes (and SHA-256). The sorted object has the same entries, hence the same
/// length: it overwrites the unordered one in place, and the layout (tensor order, offsets,
/// padding) stays the crate's.
fn serialize_sorted(
    tensors: Vec<(&str, TensorView<'_>)>,
    info: &BTreeMap<String, String>,
) -> Result<Vec<u8>, String> {
    let map: HashMap<String, String> = info.clone().into_iter().collect();
    let unordered = serde_json::to_string(&map).map_err(|e| e.to_string())?;
    let sorted = serde_json::to_string(info).map_err(|e| e.to_string())?;
    let mut bytes = safetensors::serialize(tensors, Some(map)).map_err(|e| e.to_string())?;
    // the header opens with `{"__metadata__":` then the map as serialised above
    let at = 8 + r#"{"__metadata__":"#.len();
    match bytes.get(at..at + unordered.len()) {
        Some(s) if s == unordered.as_bytes() && sorted.len() == unordered.len() => {
            bytes[at..at + sorted.len()].copy_from_slice(sorted.as_bytes());
            Ok(bytes)
        }
        _ => Err("unexpected safetensors header layout".to_string()),
    }
}

/// Loads a linear model saved by [`save_linear`]; `path` as in [`SavedModel::load`].
pub fn load_linear(path: impl AsRef<Path>) -> Result<(LinearModel, Metadata), ModelError> {
    match SavedModel::load(path.as_ref())? {
        (SavedModel::Linear { model, .. }, md) => Ok((model, md)),
        (other, _) => Err(ModelError::WrongKind {
            path: pair(path.as_ref(), "model").0,
            expected: "linear",
            found: other.kind(),
        }),
    }
}

/// Loads a k-NN model saved by [`save_knn`] or [`save_knn_with_index`] (with its index, if
/// saved); `path` as in [`SavedModel::load`].
pub fn load_knn(
    path: impl AsRef<Path>,
) -> Result<(KnnModel, Option<BuiltIndex>, Metadata), ModelError> {
    match SavedModel::load(path.as_ref())? {
        (SavedModel::Knn { model, index }, md) => Ok((model, index.map(|b| *b), md)),
        (other, _) => Err(ModelError::WrongKind {
            path: pair(path.as_ref(), "model").0,
            expected: "knn",
            found: other.kind(),
        }),
    }
}

/// Decodes a model from the bytes of its two files (the paths only name them in errors). An
/// approximate index named by the metadata is not loaded (see [`SavedModel::load`]). This is
/// the in-memory entry point the fuzz targets use.
pub fn parse(
    json_path: &Path,
    json: &[u8],
    tensors_path: &Path,
    tensors: &[u8],
) -> Result<(SavedModel, Metadata), ModelError> {
    let md = parse_metadata(json_path, json)?;
    let model = decode(json_path, md.clone(), tensors_path, tensors)?;
    Ok((model, md))
}

/// Parses and checks the metadata: version first (so a future layout is reported as such),
/// then the structure.
fn parse_metadata(path: &Path, json: &[u8]) -> Result<Metadata, ModelError> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|source| ModelError::Json { path: path.to_path_buf(), source })?;
    let version = value.get("format_version").and_then(serde_json::Value::as_u64);
    match version {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(ModelError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: u32::try_from(v).unwrap_or(u32::MAX),
                supported: FORMAT_VERSION,
            });
        }
        None => {
            return Err(invalid(path, "format_version is missing or not an integer"));
        }
    }
    serde_json::from_value(value).map_err(|source| ModelError::Json { path: path.into(), source })
}

/// Room for the safetensors header (8-byte length, JSON with three tensors and the metadata:
/// a few hundred bytes; the format's own limit is 100 MB).
const MAX_TENSOR_HEADER: u64 = 1 << 20;

/// The most bytes the tensor file of the model `md` describes can take: its tensors' data
/// (computed from the input shape, the classes and, for k-NN, `n_train`) plus a header.
fn tensor_file_bound(json_path: &Path, md: &Metadata) -> Result<u64, ModelError> {
    let cls = classifier_input(md);
    let d = input_dim(json_path, cls)? as u64;
    let elem = match cls {
        RowShape::Image(_) => 1,
        RowShape::Features(_) => 4,
    };
    let c = md.classes.len() as u64;
    let data = match md.params {
        Params::Linear { .. } => {
            c.checked_mul(d).and_then(|cd| cd.checked_add(c + d)).and_then(|n| n.checked_mul(4))
        }
        Params::Knn { n_train, .. } => {
            d.checked_mul(elem).and_then(|row| (n_train as u64).checked_mul(row + 4))
        }
        Params::Ensemble { .. } => Some(0),
        Params::Net { hidden, .. } => {
            let h = hidden as u64;
            h.checked_mul(d)
                .and_then(|hd| hd.checked_add(h.checked_mul(c)?))
                .and_then(|n| n.checked_add(h + c + d))
                .and_then(|n| n.checked_mul(4))
        }
    };
    let steps = md.steps.iter().try_fold(0u64, |acc, st| {
        Step::tensor_shapes(&st.spec, st.input).iter().try_fold(acc, |a, (_, shape)| {
            let n = shape.iter().try_fold(4u64, |n, &x| n.checked_mul(x as u64))?;
            a.checked_add(n)
        })
    });
    data.zip(steps)
        .and_then(|(x, s)| x.checked_add(s))
        .and_then(|x| x.checked_add(MAX_TENSOR_HEADER))
        .ok_or_else(|| invalid(json_path, "the tensors' size overflows"))
}

/// What the classifier of `md` takes: the last step's features, or the model's input.
fn classifier_input(md: &Metadata) -> RowShape {
    md.steps.last().map_or(md.input, |st| RowShape::Features(st.output))
}

/// Values per input row of `shape`, refusing an empty or overflowing shape.
fn input_dim(json_path: &Path, shape: RowShape) -> Result<usize, ModelError> {
    let d = match shape {
        RowShape::Image(s) => s.checked_len().filter(|_| !s.is_empty()),
        RowShape::Features(d) => Some(d).filter(|&d| d > 0),
    };
    d.ok_or_else(|| invalid(json_path, format!("input shape {shape} is empty or too large")))
}

/// The key of the tensor file's `__metadata__` that records the input shape (`3x32x32
/// images`, `154 features`), so the JSON's `input` is cross-checked against the tensors (an
/// edited shape with the same value count would otherwise change every prediction silently).
const SHAPE_KEY: &str = "input";

/// The tensor of a k-NN model's training rows: u8 pixels or f32 features.
const TRAIN_PIXELS: &str = "train_pixels";
/// See [`TRAIN_PIXELS`].
const TRAIN_FEATURES: &str = "train_features";

fn invalid(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Invalid { path: path.to_path_buf(), reason: reason.into() }
}

/// Builds the model the metadata describes from the tensor file's bytes, checking size,
/// checksum, tensor names, dtypes and shapes.
fn decode(
    json_path: &Path,
    md: Metadata,
    st_path: &Path,
    bytes: &[u8],
) -> Result<SavedModel, ModelError> {
    // the steps chain from the model's input to the classifier's
    let mut made = md.input;
    for (i, st) in md.steps.iter().enumerate() {
        if st.input != made {
            return Err(ModelError::Pipeline {
                path: json_path.to_path_buf(),
                reason: format!("step {i} ({}) takes {} but receives {made}", st.spec, st.input),
            });
        }
        input_dim(json_path, st.input)?;
        made = RowShape::Features(st.output);
    }
    input_dim(json_path, md.input)?;
    let shape = classifier_input(&md);
    let d = input_dim(json_path, shape)?;
    let c = md.classes.len();
    if c == 0 {
        return Err(invalid(json_path, "no class names"));
    }
    if bytes.len() as u64 != md.tensors_size {
        return Err(ModelError::Checksum {
            path: st_path.to_path_buf(),
            what: "size",
            expected: md.tensors_size.to_string(),
            found: bytes.len().to_string(),
        });
    }
    let sum = sha256_hex(bytes);
    if !sum.eq_ignore_ascii_case(&md.tensors_sha256) {
        return Err(ModelError::Checksum {
            path: st_path.to_path_buf(),
            what: "sha256",
            expected: md.tensors_sha256.clone(),
            found: sum,
        });
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| ModelError::Tensors { path: st_path.to_path_buf(), reason: e.to_string() })?;
    // the JSON's image shape against the one the tensor file records
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| ModelError::Tensors { path: st_path.to_path_buf(), reason: e.to_string() })?;
    let recorded = header.metadata().as_ref().and_then(|m| m.get(SHAPE_KEY));
    let recorded_input = md.input;
    match recorded {
        Some(s) if *s == recorded_input.to_string() => {}
        Some(s) => {
            return Err(invalid(
                json_path,
                format!(
                    "input {recorded_input} differs from the {s} recorded in {} (edited metadata?)",
                    st_path.display()
                ),
            ));
        }
        None => {
            return Err(invalid(
                st_path,
                format!("the tensor file does not record the input shape ({SHAPE_KEY:?})"),
            ));
        }
    }
    let t = Tensors { st: &st, path: st_path };
    let step_names: Vec<String> = md
        .steps
        .iter()
        .enumerate()
        .flat_map(|(i, st)| {
            Step::tensor_shapes(&st.spec, st.input)
                .into_iter()
                .map(move |(n, _)| format!("steps.{i}.{n}"))
        })
        .collect();
    let mut steps = Vec::with_capacity(md.steps.len());
    for (i, sm) in md.steps.iter().enumerate() {
        let shapes = Step::tensor_shapes(&sm.spec, sm.input);
        let step = Step::from_tensors(&sm.spec, sm.input, |name| {
            let shape = shapes.iter().find(|(n, _)| *n == name).map_or(&[][..], |(_, s)| s);
            t.get(&format!("steps.{i}.{name}"), Dtype::F32, shape)
                .map(f32s)
                .map_err(|e| imgclass_features::FeatureError::Corrupt { reason: e.to_string() })
        })
        .map_err(|e| invalid(st_path, format!("step {i} ({}): {e}", sm.spec)))?;
        if step.output_dim() != sm.output {
            return Err(invalid(
                json_path,
                format!(
                    "step {i} makes {} features, the metadata says {}",
                    step.output_dim(),
                    sm.output
                ),
            ));
        }
        steps.push(step);
    }
    let classifier = match md.params {
        Params::Linear { loss, input_scale } => {
            t.only(&["W", "b", "mean"], &step_names)?;
            let w = f32s(t.get("W", Dtype::F32, &[c, d])?);
            let b = f32s(t.get("b", Dtype::F32, &[c])?);
            let mean = f32s(t.get("mean", Dtype::F32, &[d])?);
            for (name, v) in [("W", &w), ("b", &b), ("mean", &mean)] {
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(invalid(
                        st_path,
                        format!("tensor {name:?} has a non-finite value at {i}"),
                    ));
                }
            }
            let model = LinearModel::from_parts(w, b, mean, input_scale, shape, loss)
                .map_err(|e| invalid(json_path, e.to_string()))?;
            SavedModel::Linear { model, classes: md.classes }
        }
        Params::Net { loss, input_scale, hidden } => {
            t.only(&["W1", "b1", "W2", "b2", "mean"], &step_names)?;
            if hidden == 0 || hidden.checked_mul(d).is_none() {
                return Err(invalid(json_path, "hidden x D is 0 or overflows"));
            }
            let w1 = f32s(t.get("W1", Dtype::F32, &[hidden, d])?);
            let b1 = f32s(t.get("b1", Dtype::F32, &[hidden])?);
            let w2 = f32s(t.get("W2", Dtype::F32, &[c, hidden])?);
            let b2 = f32s(t.get("b2", Dtype::F32, &[c])?);
            let mean = f32s(t.get("mean", Dtype::F32, &[d])?);
            let model = NetModel::from_parts(w1, b1, w2, b2, mean, input_scale, shape, loss)
                .map_err(|e| invalid(st_path, e.to_string()))?;
            SavedModel::Net { model, classes: md.classes }
        }
        Params::Knn { k, metric, vote, n_train, .. } => {
            let rows_name = match shape {
                RowShape::Image(_) => TRAIN_PIXELS,
                RowShape::Features(_) => TRAIN_FEATURES,
            };
            t.only(&[rows_name, "train_labels"], &step_names)?;
            n_train.checked_mul(d).ok_or_else(|| invalid(json_path, "n_train x D overflows"))?;
            let labels: Vec<Label> = t
                .get("train_labels", Dtype::U32, &[n_train])?
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let ds = match shape {
                RowShape::Image(s) => {
                    let pixels = t.get(TRAIN_PIXELS, Dtype::U8, &[n_train, d])?.to_vec();
                    Dataset::new(pixels, labels, s, md.classes)
                }
                RowShape::Features(_) => {
                    let f = f32s(t.get(TRAIN_FEATURES, Dtype::F32, &[n_train, d])?);
                    Dataset::from_features(f, d, labels, md.classes)
                }
            }
            .map_err(|e| invalid(st_path, e.to_string()))?;
            let model = Knn::new(k)
                .metric(metric)
                .vote(vote.into())
                .fit(&ds.all())
                .map_err(|e| invalid(json_path, e.to_string()))?;
            SavedModel::Knn { model, index: None }
        }
        Params::Ensemble { members } => {
            t.only(&[], &step_names)?;
            if !steps.is_empty() {
                return Err(invalid(json_path, "an ensemble has no feature steps of its own"));
            }
            let e = load_members(json_path, members)?;
            let (shape, classes) = (e.first().shape(), e.first().classes());
            if shape != md.input || *classes != md.classes {
                return Err(invalid(
                    json_path,
                    format!(
                        "the members take {shape} with classes {:?}; the metadata says {} with \
                         {:?}",
                        classes.names(),
                        md.input,
                        md.classes.names()
                    ),
                ));
            }
            return Ok(SavedModel::Ensemble(e));
        }
    };
    Ok(if steps.is_empty() {
        classifier
    } else {
        SavedModel::Pipeline { steps, model: Box::new(classifier) }
    })
}

/// The tensors of one safetensors file, with the checks that name the file.
struct Tensors<'a, 'data> {
    st: &'a SafeTensors<'data>,
    path: &'a Path,
}

impl<'data> Tensors<'_, 'data> {
    /// Fails if the file holds a tensor outside `names`.
    fn only(&self, names: &[&str], also: &[String]) -> Result<(), ModelError> {
        let mut extra: Vec<&str> = self
            .st
            .names()
            .into_iter()
            .filter(|n| !names.contains(n) && !also.iter().any(|a| a == n))
            .collect();
        extra.sort_unstable();
        match extra.first() {
            None => Ok(()),
            Some(n) => Err(invalid(self.path, format!("unexpected tensor {n:?}"))),
        }
    }

    /// The bytes of tensor `name`, checked to have `dtype` and `shape`.
    fn get(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&'data [u8], ModelError> {
        let path = || self.path.to_path_buf();
        let v = self
            .st
            .tensor(name)
            .map_err(|_| ModelError::MissingTensor { path: path(), name: name.into() })?;
        if v.dtype() != dtype {
            return Err(ModelError::WrongDtype {
                path: path(),
                name: name.into(),
                expected: dtype_name(dtype),
                found: format!("{:?}", v.dtype()),
            });
        }
        if v.shape() != shape {
            return Err(ModelError::WrongShape {
                path: path(),
                name: name.into(),
                expected: shape.to_vec(),
                found: v.shape().to_vec(),
            });
        }
        Ok(v.data())
    }
}

fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::U8 => "U8",
        Dtype::U32 => "U32",
        _ => "F32",
    }
}

fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>, ModelError> {
    TensorView::new(dtype, shape, data)
        .map_err(|e| ModelError::Tensors { path: PathBuf::new(), reason: e.to_string() })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}
