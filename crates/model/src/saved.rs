//! [`SavedModel`] and the save/load functions: encoding a model into safetensors + JSON and
//! decoding (with every check) back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Label, Predict, Subset, argmax_label};
use imgclass_knn::ann::{BuiltIndex, data_checksum};
use imgclass_knn::{Knn, KnnModel};
use imgclass_linear::LinearModel;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::ModelError;
use crate::files::{
    MAX_JSON_BYTES, file_name, pair, read_bounded, read_exact_len, regular_file_len, sha256_hex,
    sibling, with_suffix, write_atomic,
};
use crate::meta::{AnnFile, FORMAT_VERSION, Metadata, Params, Provenance};

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
}

impl SavedModel {
    /// Loads a model of either kind; `path` is the JSON file, the tensor file, or their
    /// common stem.
    pub fn load(path: impl AsRef<Path>) -> Result<(Self, Metadata), ModelError> {
        let (json_path, _) = pair(path.as_ref(), "model");
        let json = read_bounded(&json_path, MAX_JSON_BYTES)?;
        let md = parse_metadata(&json_path, &json)?;
        let tensors_path = sibling(&json_path, &md.tensors)?;
        // size and file type first, from the metadata alone: the bytes read are the bytes
        // the model needs, never more (a 4 GB file or a link to /dev/zero is refused unread)
        let max = tensor_file_bound(&json_path, &md)?;
        if md.tensors_size > max {
            return Err(invalid(
                &json_path,
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
        let mut model = decode(&json_path, md.clone(), &tensors_path, &tensors)?;
        if let (Params::Knn { ann: Some(ann), .. }, Self::Knn { model, index }) =
            (&md.params, &mut model)
        {
            let ann_path = sibling(&json_path, &ann.file)?;
            let bytes = read_exact_len(&ann_path, regular_file_len(&ann_path)?)?;
            let ix = BuiltIndex::from_bytes(&bytes, model.train()).map_err(|e| {
                ModelError::Invalid { path: ann_path.clone(), reason: e.to_string() }
            })?;
            *index = Some(Box::new(ix));
        }
        tracing::debug!(path = %json_path.display(), kind = md.params.kind(), "loaded model");
        Ok((model, md))
    }

    /// Saves the model to `path` (a stem, `<stem>.json`, `<stem>.safetensors`, or an existing
    /// directory, then `<dir>/linear.*` or `<dir>/knn.*`).
    pub fn save(&self, meta: &Provenance, path: impl AsRef<Path>) -> Result<(), ModelError> {
        match self {
            Self::Linear { model, classes } => save_linear(model, classes, meta, path),
            Self::Knn { model, index } => {
                save_knn_impl(model, index.as_deref(), meta, path.as_ref())
            }
        }
    }

    /// `"linear"` or `"knn"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Knn { .. } => "knn",
        }
    }

    /// Class names in label order.
    pub fn classes(&self) -> &ClassNames {
        match self {
            Self::Linear { classes, .. } => classes,
            Self::Knn { model, .. } => model.train().dataset().classes(),
        }
    }

    /// The input image shape.
    pub fn shape(&self) -> ImageShape {
        match self {
            Self::Linear { model, .. } => model.shape(),
            Self::Knn { model, .. } => model.train().dataset().shape(),
        }
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        match self {
            Self::Linear { model, .. } => model.n_classes(),
            Self::Knn { model, .. } => model.n_classes(),
        }
    }

    /// Class probabilities, row-major `x.len() x n_classes`: the softmax of the scores for a
    /// linear model, the vote shares of the `k` neighbours for k-NN (found by the approximate
    /// index when there is one).
    pub fn predict_proba(&self, x: &Subset) -> Result<Vec<f32>, ModelError> {
        match self {
            Self::Linear { model, .. } => Ok(model.predict_proba(x)?),
            Self::Knn { model, index: None } => Ok(model.predict_proba(x)?),
            Self::Knn { model, index: Some(ix) } => {
                let k = model.params().k();
                Ok(model.proba_from(&ix.search(x, k)?, k)?)
            }
        }
    }

    /// Predicted labels (the most probable class; ties toward the smaller label).
    pub fn predict(&self, x: &Subset) -> Result<Vec<Label>, ModelError> {
        let c = self.n_classes();
        let p = self.predict_proba(x)?;
        Ok(p.chunks_exact(c.max(1)).map(argmax_label).collect())
    }
}

/// Saves a linear model with its class names (one per class, in label order) to `path`: see
/// [`SavedModel::save`] for what `path` may be.
pub fn save_linear(
    model: &LinearModel,
    classes: &ClassNames,
    meta: &Provenance,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    if classes.len() != model.n_classes() {
        return Err(ModelError::ClassCount { expected: model.n_classes(), found: classes.len() });
    }
    let (c, d) = (model.n_classes(), model.n_features());
    let w = f32_bytes(model.weights());
    let b = f32_bytes(model.bias());
    let mean = f32_bytes(model.mean_image());
    let tensors = vec![
        ("W", view(Dtype::F32, vec![c, d], &w)?),
        ("b", view(Dtype::F32, vec![c], &b)?),
        ("mean", view(Dtype::F32, vec![d], &mean)?),
    ];
    let params = Params::Linear { loss: model.loss(), input_scale: model.input_scale() };
    write_pair(path.as_ref(), "linear", tensors, params, classes, model.shape(), meta, None)
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
    let pixels = train.to_contiguous();
    let labels: Vec<u8> = model.train_labels().iter().flat_map(|l| l.to_le_bytes()).collect();
    let tensors = vec![
        ("train_pixels", view(Dtype::U8, vec![n, d], &pixels)?),
        ("train_labels", view(Dtype::U32, vec![n], &labels)?),
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
    write_pair(path, "knn", tensors, params, ds.classes(), ds.shape(), meta, index)
}

#[allow(clippy::too_many_arguments)]
fn write_pair(
    path: &Path,
    default_stem: &str,
    tensors: Vec<(&str, TensorView<'_>)>,
    mut params: Params,
    classes: &ClassNames,
    shape: ImageShape,
    meta: &Provenance,
    index: Option<&BuiltIndex>,
) -> Result<(), ModelError> {
    let (json_path, st_path) = pair(path, default_stem);
    let info = BTreeMap::from([
        ("format".to_string(), "imgclass".to_string()),
        ("kind".to_string(), params.kind().to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        (SHAPE_KEY.to_string(), shape.to_string()),
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
        classes: classes.clone(),
        image_shape: shape,
        tensors: file_name(&st_path)?,
        tensors_size: bytes.len() as u64,
        tensors_sha256: sha256_hex(&bytes),
        provenance: meta.clone(),
    };
    let json = serde_json::to_vec_pretty(&md)
        .map_err(|source| ModelError::Json { path: json_path.clone(), source })?;
    write_atomic(&json_path, &json)?;
    tracing::debug!(path = %json_path.display(), kind = md.params.kind(), "saved model");
    Ok(())
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
/// (computed from the image shape, the classes and, for k-NN, `n_train`) plus a header.
fn tensor_file_bound(json_path: &Path, md: &Metadata) -> Result<u64, ModelError> {
    let d = image_dim(json_path, md.image_shape)? as u64;
    let c = md.classes.len() as u64;
    let data = match md.params {
        Params::Linear { .. } => {
            c.checked_mul(d).and_then(|cd| cd.checked_add(c + d)).and_then(|n| n.checked_mul(4))
        }
        Params::Knn { n_train, .. } => (n_train as u64).checked_mul(d + 4),
    };
    data.and_then(|x| x.checked_add(MAX_TENSOR_HEADER))
        .ok_or_else(|| invalid(json_path, "the tensors' size overflows"))
}

/// Bytes per image of `shape`, refusing an empty or overflowing shape.
fn image_dim(json_path: &Path, shape: ImageShape) -> Result<usize, ModelError> {
    shape
        .checked_len()
        .filter(|_| !shape.is_empty())
        .ok_or_else(|| invalid(json_path, format!("image shape {shape} is empty or too large")))
}

/// The key of the tensor file's `__metadata__` that records the image shape (`CxHxW`), so
/// the JSON's `image_shape` is cross-checked against the tensors (an edited shape with the
/// same byte count would otherwise change every prediction silently).
const SHAPE_KEY: &str = "image_shape";

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
    let shape = md.image_shape;
    let d = image_dim(json_path, shape)?;
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
    match recorded {
        Some(s) if *s == shape.to_string() => {}
        Some(s) => {
            return Err(invalid(
                json_path,
                format!(
                    "image_shape {shape} differs from the {s} recorded in {} (edited metadata?)",
                    st_path.display()
                ),
            ));
        }
        None => {
            return Err(invalid(
                st_path,
                format!("the tensor file does not record the image shape ({SHAPE_KEY:?})"),
            ));
        }
    }
    let t = Tensors { st: &st, path: st_path };
    match md.params {
        Params::Linear { loss, input_scale } => {
            t.only(&["W", "b", "mean"])?;
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
            Ok(SavedModel::Linear { model, classes: md.classes })
        }
        Params::Knn { k, metric, vote, n_train, .. } => {
            t.only(&["train_pixels", "train_labels"])?;
            n_train.checked_mul(d).ok_or_else(|| invalid(json_path, "n_train x D overflows"))?;
            let pixels = t.get("train_pixels", Dtype::U8, &[n_train, d])?.to_vec();
            let labels: Vec<Label> = t
                .get("train_labels", Dtype::U32, &[n_train])?
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let ds = Dataset::new(pixels, labels, shape, md.classes)
                .map_err(|e| invalid(st_path, e.to_string()))?;
            let model = Knn::new(k)
                .metric(metric)
                .vote(vote.into())
                .fit(&ds.all())
                .map_err(|e| invalid(json_path, e.to_string()))?;
            Ok(SavedModel::Knn { model, index: None })
        }
    }
}

/// The tensors of one safetensors file, with the checks that name the file.
struct Tensors<'a, 'data> {
    st: &'a SafeTensors<'data>,
    path: &'a Path,
}

impl<'data> Tensors<'_, 'data> {
    /// Fails if the file holds a tensor outside `names`.
    fn only(&self, names: &[&str]) -> Result<(), ModelError> {
        let mut extra: Vec<&str> =
            self.st.names().into_iter().filter(|n| !names.contains(n)).collect();
        extra.sort_unstable();
        match extra.first() {
            None => Ok(()),
            Some(n) => Err(invalid(self.path, format!("unexpected tensor {n:?}"))),
        }
    }

    /// The bytes of tensor `name`, checked to have `dtype` and `shape`.
    fn get(
        &self,
        name: &'static str,
        dtype: Dtype,
        shape: &[usize],
    ) -> Result<&'data [u8], ModelError> {
        let path = || self.path.to_path_buf();
        let v =
            self.st.tensor(name).map_err(|_| ModelError::MissingTensor { path: path(), name })?;
        if v.dtype() != dtype {
            return Err(ModelError::WrongDtype {
                path: path(),
                name,
                expected: dtype_name(dtype),
                found: format!("{:?}", v.dtype()),
            });
        }
        if v.shape() != shape {
            return Err(ModelError::WrongShape {
                path: path(),
                name,
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
