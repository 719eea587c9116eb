//! Approximate nearest-neighbour search: the lecture's ANN and FLANN methods (kd-tree with a
//! `1 + eps` guarantee, randomised kd-forest, hierarchical k-means tree), an HNSW graph, an
//! optional PCA projection ahead of them, autotuning, and save/load.
//!
//! Every index searches a *search space* (the raw pixels as `f32`, or their PCA projection)
//! for candidates, then re-scores the candidates with exact integer distances in the original
//! `u8` space and returns the best `k`, sorted by (distance, training position). Distances are
//! exact `u32`s: squared Euclidean for [`Metric::L2`], L1 for [`Metric::L1`].
//!
//! ```text
//! L2²(q, x) = Σ_j (q_j − x_j)²      L1(q, x) = Σ_j |q_j − x_j|
//! recall@k = |found_k ∩ exact_k| / k   (averaged over queries)
//! ```
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_knn::ann::{AnnIndex, Metric};
//!
//! // four 1-D points 0, 10, 20, 30; the query 12 is nearest to 10 (2² = 4), then 20 (8² = 64)
//! let train = Dataset::new(vec![0, 10, 20, 30], vec![0; 4], ImageShape::new(1, 1, 1),
//!     ClassNames::new(["a"]))?.all();
//! let query = Dataset::new(vec![12], vec![0], ImageShape::new(1, 1, 1),
//!     ClassNames::new(["a"]))?.all();
//! let index = AnnIndex::KdTree { leaf_size: 1, eps: 0.0 }.build(&train, Metric::L2, None, 7)?;
//! let nb = index.search(&query, 2)?;
//! assert_eq!(nb.indices, vec![1, 2]);
//! assert_eq!(nb.distances, vec![4.0, 64.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Determinism: every build takes a `seed`; parallel steps (projection, k-means assignment,
//! forest trees, HNSW batches) compute per-item results that are combined in item order, so
//! the same seed gives the same index and the same answers whatever the thread count.

mod autotune;
mod dist;
mod hnsw;
mod kdtree;
mod kmeans_tree;
mod persist;

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use imgclass_core::{Element, Rows, Subset, Values};
use rayon::prelude::*;

pub use autotune::{Autotune, AutotuneReport, Trial};
pub use dist::distance_u8;
/// The PCA projection of the indices is imgclass-features' (the same type as the PCA step).
pub use imgclass_features::Pca;
pub use persist::data_checksum;

/// Largest row length accepted: `u32` sums of squared byte differences cannot overflow (the
/// same bound as the exact search, [`imgclass_linalg::max_u8_dim`] for L2).
pub const MAX_DIM: usize = imgclass_linalg::max_u8_dim(imgclass_linalg::Metric::L2);

/// Most trees of a kd-forest (each holds a permutation of the training rows).
pub const MAX_TREES: usize = 256;
/// Largest HNSW `m` (each node keeps up to `2m` links on layer 0).
pub const MAX_HNSW_M: usize = 1024;

/// The distance the indices rank by: imgclass-linalg's one [`Metric`].
pub use imgclass_linalg::{Metric, Neighbors};

/// An index kind with its parameters; a search grid is a `Vec` of these.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AnnIndex {
    /// Brute force over every training row with imgclass-linalg's batch kernels (exact
    /// integer distances, SIMD): the oracle for recall and the speed baseline.
    Exact,
    /// A kd-tree (Arya & Mount's ANN): split on the widest dimension at the median, leaves of
    /// at most `leaf_size` points. Search prunes a cell when `(1 + eps)` times its lower
    /// bound cannot beat the current `k`-th distance, so without PCA the `i`-th reported
    /// distance is at most `(1 + eps)` times the true `i`-th distance; `eps = 0` is exact.
    KdTree {
        /// Maximum points in a leaf (at least 1).
        leaf_size: usize,
        /// Approximation factor (non-negative, finite).
        eps: f32,
    },
    /// FLANN's randomised kd-forest: each tree splits on a seeded random choice among the
    /// five highest-variance dimensions at the median; one priority queue is shared by all
    /// trees and the search stops after `checks` leaf points (once `k` were found).
    KdForest {
        /// Number of trees (at least 1).
        trees: usize,
        /// Leaf points examined per query.
        checks: usize,
    },
    /// FLANN's hierarchical k-means tree: recursive k-means (k-means++ seeding, `iterations`
    /// Lloyd steps) into `branching` clusters, searched best-bin-first under `checks`.
    KMeansTree {
        /// Children per internal node (at least 2).
        branching: usize,
        /// Lloyd iterations per clustering (at least 1).
        iterations: usize,
        /// Leaf points examined per query.
        checks: usize,
    },
    /// A hierarchical navigable small-world graph (Malkov & Yashunin) with the heuristic
    /// neighbour selection: `m` links per node (`2m` on layer 0).
    Hnsw {
        /// Links per node on the upper layers (at least 2).
        m: usize,
        /// Beam width while building.
        ef_construction: usize,
        /// Beam width while searching (raised to `k`, and to the re-rank depth with PCA).
        ef_search: usize,
    },
}

impl AnnIndex {
    /// A short name for tables: `exact`, `kdtree`, `kdforest`, `kmeans`, `hnsw`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::KdTree { .. } => "kdtree",
            Self::KdForest { .. } => "kdforest",
            Self::KMeansTree { .. } => "kmeans",
            Self::Hnsw { .. } => "hnsw",
        }
    }

    /// A compact spec such as `hnsw:m=16,efc=200,ef=40`, readable by [`AnnIndex::parse`].
    pub fn spec(&self) -> String {
        match *self {
            Self::Exact => "exact".into(),
            Self::KdTree { leaf_size, eps } => format!("kdtree:leaf={leaf_size},eps={eps}"),
            Self::KdForest { trees, checks } => format!("kdforest:trees={trees},checks={checks}"),
            Self::KMeansTree { branching, iterations, checks } => {
                format!("kmeans:branching={branching},iterations={iterations},checks={checks}")
            }
            Self::Hnsw { m, ef_construction, ef_search } => {
                format!("hnsw:m={m},efc={ef_construction},ef={ef_search}")
            }
        }
    }

    /// Parses a spec like `kdforest:trees=4,checks=256` (missing keys take the defaults
    /// of [`AnnIndex::default_of`]).
    pub fn parse(spec: &str) -> Result<Self, AnnError> {
        let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut idx = Self::default_of(name.trim())?;
        for kv in rest.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| AnnError::InvalidParam {
                name: "spec",
                reason: format!("expected key=value, found {kv:?}"),
            })?;
            let bad = || AnnError::InvalidParam {
                name: "spec",
                reason: format!("bad value {v:?} for {k:?} in {spec:?}"),
            };
            let u = || v.trim().parse::<usize>().map_err(|_| bad());
            match (&mut idx, k.trim()) {
                (Self::KdTree { leaf_size, .. }, "leaf") => *leaf_size = u()?,
                (Self::KdTree { eps, .. }, "eps") => *eps = v.trim().parse().map_err(|_| bad())?,
                (Self::KdForest { trees, .. }, "trees") => *trees = u()?,
                (Self::KdForest { checks, .. }, "checks") => *checks = u()?,
                (Self::KMeansTree { branching, .. }, "branching") => *branching = u()?,
                (Self::KMeansTree { iterations, .. }, "iterations") => *iterations = u()?,
                (Self::KMeansTree { checks, .. }, "checks") => *checks = u()?,
                (Self::Hnsw { m, .. }, "m") => *m = u()?,
                (Self::Hnsw { ef_construction, .. }, "efc") => *ef_construction = u()?,
                (Self::Hnsw { ef_search, .. }, "ef") => *ef_search = u()?,
                _ => {
                    return Err(AnnError::InvalidParam {
                        name: "spec",
                        reason: format!("unknown key {k:?} for {name:?}"),
                    });
                }
            }
        }
        idx.validate()?;
        Ok(idx)
    }

    /// Default parameters of a kind by name: `kdtree` (leaf 8, eps 0), `kdforest` (4 trees,
    /// 256 checks), `kmeans` (branching 16, 5 iterations, 256 checks), `hnsw` (m 16, ef
    /// construction 200, ef 64: with a PCA-64 search space, recall@1 0.993 on CIFAR-10 at
    /// about 8x the speed of exact search, docs/bench/ann.md), `exact`.
    pub fn default_of(name: &str) -> Result<Self, AnnError> {
        Ok(match name {
            "exact" => Self::Exact,
            "kdtree" => Self::KdTree { leaf_size: 8, eps: 0.0 },
            "kdforest" => Self::KdForest { trees: 4, checks: 256 },
            "kmeans" => Self::KMeansTree { branching: 16, iterations: 5, checks: 256 },
            "hnsw" => Self::Hnsw { m: 16, ef_construction: 200, ef_search: 64 },
            other => {
                return Err(AnnError::InvalidParam {
                    name: "kind",
                    reason: format!("unknown index kind {other:?}"),
                });
            }
        })
    }

    /// Checks the parameters (typed error on zero sizes, negative or non-finite eps).
    pub fn validate(&self) -> Result<(), AnnError> {
        let err = |name: &'static str, reason: &str| {
            Err(AnnError::InvalidParam { name, reason: reason.to_string() })
        };
        match *self {
            Self::Exact => Ok(()),
            Self::KdTree { leaf_size, eps } => {
                if leaf_size == 0 {
                    return err("leaf_size", "must be at least 1");
                }
                if !(eps.is_finite() && eps >= 0.0) {
                    return err("eps", "must be finite and non-negative");
                }
                Ok(())
            }
            Self::KdForest { trees, checks } => {
                // each tree holds a permutation of the training rows
                if trees == 0 || trees > MAX_TREES {
                    return err("trees", "must be from 1 to 256");
                }
                if checks == 0 {
                    return err("checks", "must be at least 1");
                }
                Ok(())
            }
            Self::KMeansTree { branching, iterations, checks } => {
                if branching < 2 {
                    return err("branching", "must be at least 2");
                }
                if iterations == 0 {
                    return err("iterations", "must be at least 1");
                }
                if checks == 0 {
                    return err("checks", "must be at least 1");
                }
                Ok(())
            }
            Self::Hnsw { m, ef_construction, ef_search } => {
                // every node keeps up to 2m links on layer 0
                if !(2..=MAX_HNSW_M).contains(&m) {
                    return err("m", "must be from 2 to 1024");
                }
                if ef_construction == 0 {
                    return err("ef_construction", "must be at least 1");
                }
                if ef_search == 0 {
                    return err("ef_search", "must be at least 1");
                }
                Ok(())
            }
        }
    }

    /// True when `other` has the same kind and the same build parameters (only search
    /// parameters — `eps`, `checks`, `ef_search` — may differ).
    pub fn same_structure(&self, other: &AnnIndex) -> bool {
        match (*self, *other) {
            (Self::Exact, Self::Exact) => true,
            (Self::KdTree { leaf_size: a, .. }, Self::KdTree { leaf_size: b, .. }) => a == b,
            (Self::KdForest { trees: a, .. }, Self::KdForest { trees: b, .. }) => a == b,
            (
                Self::KMeansTree { branching: a, iterations: c, .. },
                Self::KMeansTree { branching: b, iterations: d, .. },
            ) => a == b && c == d,
            (
                Self::Hnsw { m: a, ef_construction: c, .. },
                Self::Hnsw { m: b, ef_construction: d, .. },
            ) => a == b && c == d,
            _ => false,
        }
    }

    /// Builds the index over the rows of `train`.
    ///
    /// `pca: Some(p)` projects onto the top `p` principal components (fitted on `train` with
    /// the seed) before the tree or graph is built; candidates are then re-ranked with exact
    /// distances in the original space (see [`BuiltIndex::set_rerank`]). `Exact` ignores
    /// `pca`. Errors on an empty training set, bad parameters or `p` outside `1..=dim`.
    pub fn build(
        &self,
        train: &Subset,
        metric: Metric,
        pca: Option<usize>,
        seed: u64,
    ) -> Result<BuiltIndex, AnnError> {
        self.validate()?;
        if train.is_empty() {
            return Err(AnnError::EmptyTrain);
        }
        let space_rows = search_rows(train, metric)?;
        let dim = train.dim();
        if dim > MAX_DIM {
            return Err(AnnError::DimTooLarge { dim, max: MAX_DIM });
        }
        let pca = match (self, pca) {
            (Self::Exact, _) | (_, None) => None,
            (_, Some(p)) => {
                if p == 0 || p > dim {
                    return Err(AnnError::InvalidParam {
                        name: "pca",
                        reason: format!("{p} components for {dim} features"),
                    });
                }
                Some(Pca::fit(&space_rows, p, seed)?)
            }
        };
        self.build_inner(train, &space_rows, metric, pca, seed)
    }

    /// [`AnnIndex::build`] ahead of an already fitted projection (so several indices can
    /// share one PCA fit). `pca` must take rows of `train`'s length.
    pub fn build_with_pca(
        &self,
        train: &Subset,
        metric: Metric,
        pca: Pca,
        seed: u64,
    ) -> Result<BuiltIndex, AnnError> {
        self.validate()?;
        if train.is_empty() {
            return Err(AnnError::EmptyTrain);
        }
        let space_rows = search_rows(train, metric)?;
        if pca.dim() != train.dim() {
            return Err(AnnError::ShapeMismatch { expected: pca.dim(), found: train.dim() });
        }
        if train.dim() > MAX_DIM {
            return Err(AnnError::DimTooLarge { dim: train.dim(), max: MAX_DIM });
        }
        let pca = if *self == Self::Exact { None } else { Some(pca) };
        self.build_inner(train, &space_rows, metric, pca, seed)
    }

    fn build_inner(
        &self,
        train: &Subset,
        space_rows: &Subset,
        metric: Metric,
        pca: Option<Pca>,
        seed: u64,
    ) -> Result<BuiltIndex, AnnError> {
        let space = match self {
            Self::Exact => Space::empty(),
            _ => Space::of(space_rows, pca.as_ref()),
        };
        let t = std::time::Instant::now();
        let structure = match *self {
            Self::Exact => Structure::Exact,
            Self::KdTree { leaf_size, .. } => {
                Structure::KdTree(kdtree::KdTree::build(&space, leaf_size, None))
            }
            Self::KdForest { trees, .. } => {
                Structure::KdForest(kdtree::build_forest(&space, trees, seed))
            }
            Self::KMeansTree { branching, iterations, .. } => {
                Structure::KMeans(kmeans_tree::KMeansTree::build(
                    &space,
                    dist::Kernel::select(metric)?,
                    branching,
                    iterations,
                    seed,
                ))
            }
            Self::Hnsw { m, ef_construction, .. } => Structure::Hnsw(hnsw::Hnsw::build(
                &space,
                dist::Kernel::select(metric)?,
                m,
                ef_construction,
                seed,
            )),
        };
        tracing::debug!(
            kind = self.name(),
            secs = t.elapsed().as_secs_f64(),
            "ann structure built"
        );
        Ok(BuiltIndex {
            kind: *self,
            metric,
            seed,
            train: train.clone(),
            pca,
            space,
            structure,
            rerank: 0,
        })
    }
}

/// The rows an index searches in: for cosine, `rows` scaled to unit length (a zero row stays
/// zero), since the squared L2 distance between unit rows is `2 (1 − cos)` and ranks as the
/// cosine distance does; the trees, graphs and PCA then work as for L2, and candidates are
/// re-ranked by the exact cosine distance of the original rows. Otherwise `rows` itself.
/// Cosine needs f32 features (as exact k-NN does).
pub(crate) fn search_rows(rows: &Subset, metric: Metric) -> Result<Subset, AnnError> {
    if metric != Metric::Cosine {
        return Ok(rows.clone());
    }
    let Values::Features(f) = rows.values() else {
        return Err(AnnError::InvalidParam {
            name: "metric",
            reason: format!(
                "cosine needs f32 features, not {} (convert the pixels to features first)",
                rows.shape()
            ),
        });
    };
    let dim = f.dim();
    let mut v = f.to_contiguous();
    for row in v.chunks_exact_mut(dim.max(1)) {
        let n = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|x| *x = (f64::from(*x) / n) as f32);
        }
    }
    let unit = rows.with_features(v, dim).map_err(|e| AnnError::InvalidParam {
        name: "metric",
        reason: format!("normalising for cosine: {e}"),
    })?;
    Ok(unit.all())
}

/// The cosine distance `1 − a·b / (|a| |b|)` in f64, clamped to `[0, 2]`; 1 when either row is
/// zero (as imgclass-linalg defines it).
fn cosine_f64(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 1.0;
    }
    (1.0 - dot / (na.sqrt() * nb.sqrt())).clamp(0.0, 2.0)
}

/// Candidates a tree re-ranks per query when a PCA projection is used (see
/// [`BuiltIndex::rerank`]).
pub const DEFAULT_RERANK: usize = 32;

/// Why an index could not be built, searched, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum AnnError {
    /// The training set has no rows.
    #[error("the training set is empty")]
    EmptyTrain,
    /// `k` is zero.
    #[error("k must be at least 1")]
    ZeroK,
    /// More neighbours asked for than there are training rows.
    #[error("k = {k} is larger than the {n_train} training rows")]
    KTooLarge {
        /// Requested neighbours.
        k: usize,
        /// Training rows.
        n_train: usize,
    },
    /// Query rows do not have the index's feature count.
    #[error("queries have {found} features, the index has {expected}")]
    ShapeMismatch {
        /// Features per training row.
        expected: usize,
        /// Features per query row.
        found: usize,
    },
    /// Query images have another shape than the training images (compared by value).
    #[error(transparent)]
    Shape(#[from] imgclass_core::ShapeMismatch),
    /// Rows too long for exact `u32` distances.
    #[error("rows of {dim} features exceed the maximum of {max}")]
    DimTooLarge {
        /// Features per row.
        dim: usize,
        /// [`MAX_DIM`].
        max: usize,
    },
    /// A parameter is out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam {
        /// Parameter name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing an index file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An index file ends early.
    #[error("index file is truncated: expected at least {expected} bytes, found {found}")]
    Truncated {
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// An index file's trailing checksum does not match its contents.
    #[error("index file checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    ChecksumMismatch {
        /// Checksum stored in the file.
        stored: u64,
        /// Checksum of the bytes read.
        computed: u64,
    },
    /// An index file is malformed (bad magic, header, section or structure).
    #[error("index file is corrupt: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// No kernel could be selected (`IMGCLASS_KERNEL` unknown, or names a path this CPU
    /// cannot run).
    #[error(transparent)]
    Kernel(#[from] imgclass_linalg::KernelError),
    /// The exact-search kernels failed.
    #[error("exact search failed: {0}")]
    Linalg(#[from] imgclass_linalg::LinalgError),
    /// The training rows given at load time are not the ones the index was built on.
    #[error("training data checksum {found:#018x} does not match the index's {expected:#018x}")]
    DataMismatch {
        /// Checksum recorded in the index file.
        expected: u64,
        /// Checksum of the rows given.
        found: u64,
    },
}

impl From<imgclass_features::FeatureError> for AnnError {
    fn from(e: imgclass_features::FeatureError) -> Self {
        use imgclass_features::FeatureError as F;
        match e {
            F::EmptyTrain => Self::EmptyTrain,
            F::InvalidParam { name, reason } => Self::InvalidParam { name, reason },
            F::Shape(s) => Self::Shape(s),
            F::Corrupt { reason } => Self::Corrupt { reason },
            F::Dataset(d) => Self::InvalidParam { name: "pca", reason: d.to_string() },
            F::Gemm(imgclass_linalg::gemm::GemmError::Kernel(k)) => Self::Kernel(k),
            F::Gemm(g) => Self::InvalidParam { name: "pca", reason: g.to_string() },
        }
    }
}

/// The search space: one `f32` row per training row (raw pixels or PCA projection).
///
/// The rows start on a 64-byte boundary (`off` leading padding floats), so a 64-float PCA
/// row spans exactly four cache lines instead of five.
#[derive(Debug)]
pub(crate) struct Space {
    data: Vec<f32>,
    off: usize,
    n: usize,
    pub(crate) dim: usize,
}

impl Clone for Space {
    fn clone(&self) -> Self {
        // a plain copy of the buffer could land on another alignment: lay it out again
        Self::from_rows(&self.data[self.off..self.off + self.n * self.dim], self.dim)
    }
}

impl Space {
    /// No rows (the exact index searches the pixels directly).
    pub(crate) fn empty() -> Self {
        Self { data: Vec::new(), off: 0, n: 0, dim: 0 }
    }

    /// `rows.len() / dim` rows of `dim` values, copied to a 64-byte aligned start.
    pub(crate) fn from_rows(rows: &[f32], dim: usize) -> Self {
        if dim == 0 || rows.is_empty() {
            return Self { dim, ..Self::empty() };
        }
        let mut data: Vec<f32> = Vec::with_capacity(rows.len() + 16);
        let off = data.as_ptr().align_offset(64).min(16);
        data.resize(off, 0.0);
        data.extend_from_slice(rows);
        Self { data, off, n: rows.len() / dim, dim }
    }

    fn of(train: &Subset, pca: Option<&Pca>) -> Self {
        match pca {
            Some(p) => Self::from_rows(&p.project(train), p.n_components()),
            None => Self::from_rows(&train.values().to_f32(), train.dim()),
        }
    }

    #[inline]
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        let at = self.off + i * self.dim;
        &self.data[at..at + self.dim]
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Bytes held by the rows.
    pub(crate) fn memory_bytes(&self) -> usize {
        4 * self.data.capacity()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Structure {
    Exact,
    KdTree(kdtree::KdTree),
    KdForest(Vec<kdtree::KdTree>),
    KMeans(kmeans_tree::KMeansTree),
    Hnsw(hnsw::Hnsw),
}

/// A built index over some training rows; search it with [`BuiltIndex::search`].
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    kind: AnnIndex,
    metric: Metric,
    seed: u64,
    train: Subset,
    pca: Option<Pca>,
    space: Space,
    structure: Structure,
    rerank: usize,
}

/// A bounded set of the best candidates in the search space, by (distance, index).
pub(crate) struct KBest {
    cap: usize,
    heap: BinaryHeap<Cand>,
}

/// A candidate: search-space distance and training position; ordered by (distance, index).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    pub(crate) d: f32,
    pub(crate) i: u32,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.i.cmp(&o.i))
    }
}

impl KBest {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, heap: BinaryHeap::with_capacity(cap + 1) }
    }
    pub(crate) fn is_full(&self) -> bool {
        self.heap.len() >= self.cap
    }
    /// The current worst kept distance, or +inf while not full.
    pub(crate) fn worst(&self) -> f32 {
        if self.is_full() { self.heap.peek().map_or(f32::INFINITY, |c| c.d) } else { f32::INFINITY }
    }
    pub(crate) fn push(&mut self, c: Cand) {
        if !self.is_full() {
            self.heap.push(c);
        } else if let Some(top) = self.heap.peek()
            && c < *top
        {
            self.heap.pop();
            self.heap.push(c);
        }
    }
    pub(crate) fn into_indices(self) -> Vec<u32> {
        self.heap.into_iter().map(|c| c.i).collect()
    }
}

/// Per-worker scratch: visit stamps for the training rows.
pub(crate) struct Visited {
    stamp: Vec<u32>,
    epoch: u32,
}

impl Visited {
    pub(crate) fn new(n: usize) -> Self {
        Self { stamp: vec![0; n], epoch: 0 }
    }
    pub(crate) fn clear(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
    }
    /// Marks `i`; true when it was not yet marked.
    #[inline]
    pub(crate) fn insert(&mut self, i: u32) -> bool {
        let s = &mut self.stamp[i as usize];
        if *s == self.epoch {
            false
        } else {
            *s = self.epoch;
            true
        }
    }
}

impl BuiltIndex {
    /// The index kind and parameters.
    pub fn kind(&self) -> AnnIndex {
        self.kind
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The build seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of training rows.
    pub fn len(&self) -> usize {
        self.train.len()
    }

    /// True when the index has no training rows (never, for a built index).
    pub fn is_empty(&self) -> bool {
        self.train.is_empty()
    }

    /// The PCA projection, if one was fitted.
    pub fn pca(&self) -> Option<&Pca> {
        self.pca.as_ref()
    }

    /// The training rows the index refers to.
    pub fn train(&self) -> &Subset {
        &self.train
    }

    /// The re-rank depth set with [`BuiltIndex::set_rerank`]; 0 (the default) means
    /// automatic: with PCA, HNSW re-scores its whole beam (`ef_search` candidates) and the
    /// trees their best [`DEFAULT_RERANK`]; without PCA the search space is already exact
    /// and only `k` candidates are kept. At least `k` candidates are always re-scored.
    pub fn rerank(&self) -> usize {
        self.rerank
    }

    /// Sets the re-rank depth (see [`BuiltIndex::rerank`]); only used with PCA.
    pub fn set_rerank(&mut self, rerank: usize) {
        self.rerank = rerank;
    }

    /// Replaces the search parameters (`eps`, `checks`, `ef_search`) without rebuilding;
    /// `kind` must have the same kind and build parameters ([`AnnIndex::same_structure`]).
    pub fn retune(&mut self, kind: AnnIndex) -> Result<(), AnnError> {
        kind.validate()?;
        if !self.kind.same_structure(&kind) {
            return Err(AnnError::InvalidParam {
                name: "kind",
                reason: format!("{} does not match the built {}", kind.spec(), self.kind.spec()),
            });
        }
        self.kind = kind;
        Ok(())
    }

    /// Bytes held by the index beyond the shared training rows: the search-space copy (raw
    /// `f32` or projection), the PCA basis and the tree or graph.
    pub fn memory_bytes(&self) -> usize {
        let s = self.space.memory_bytes();
        let p = self.pca.as_ref().map_or(0, Pca::memory_bytes);
        let t = match &self.structure {
            Structure::Exact => 0,
            Structure::KdTree(t) => t.memory_bytes(),
            Structure::KdForest(f) => f.iter().map(kdtree::KdTree::memory_bytes).sum(),
            Structure::KMeans(t) => t.memory_bytes(),
            Structure::Hnsw(h) => h.memory_bytes(),
        };
        s + p + t
    }

    /// The `k` nearest training rows of every query, in query order, as [`Neighbors`]
    /// (positions in the training [`Subset`]; exact distances, squared for L2, in the
    /// rows' own space: integers for pixels, f32 for features; each query's list sorted by
    /// (distance, index)). Parallel over queries, deterministic.
    pub fn search(&self, queries: &Subset, k: usize) -> Result<Neighbors<f64>, AnnError> {
        if k == 0 {
            return Err(AnnError::ZeroK);
        }
        let n = self.train.len();
        if k > n {
            return Err(AnnError::KTooLarge { k, n_train: n });
        }
        self.train.shape().expect(queries.shape())?;
        if let Structure::Exact = self.structure {
            return self.exact(queries, k);
        }
        // the queries in the search space: projected all at once (matrix products) with PCA,
        // scaled to unit length for cosine
        let q_space = search_rows(queries, self.metric)?;
        let projected = match (&self.pca, self.metric) {
            (Some(p), _) => Some(p.project(&q_space)),
            (None, Metric::Cosine) => Some(q_space.values().to_f32()),
            (None, _) => None,
        };
        let sd = self.space.dim;
        let kern = dist::Kernel::select(self.metric)?;
        let per_query: Vec<Vec<(f64, u32)>> = match (queries.values(), self.train.values()) {
            (Values::Pixels(qs), Values::Pixels(ts)) => {
                let exact = dist::U8Kernel::select(self.metric)?;
                self.per_query(qs, ts, projected.as_deref(), sd, kern, k, |q, t| {
                    f64::from(exact.dist(q, t))
                })
            }
            (Values::Features(qs), Values::Features(ts)) if self.metric == Metric::Cosine => {
                self.per_query(qs, ts, projected.as_deref(), sd, kern, k, cosine_f64)
            }
            (Values::Features(qs), Values::Features(ts)) => {
                self.per_query(qs, ts, projected.as_deref(), sd, kern, k, |q, t| {
                    f64::from(kern.dist(q, t))
                })
            }
            // equal row shapes (checked above) imply the same value type
            _ => unreachable!("row shapes matched but value types differ"),
        };
        let mut idx = Vec::with_capacity(queries.len() * k);
        let mut dist = Vec::with_capacity(queries.len() * k);
        for scored in per_query {
            idx.extend(scored.iter().map(|p| p.1));
            dist.extend(scored.iter().map(|p| p.0));
        }
        Ok(Neighbors { k, indices: idx, distances: dist })
    }

    /// Candidates then exact re-ranking for every query, in parallel.
    #[allow(clippy::too_many_arguments)]
    fn per_query<T: Element>(
        &self,
        qs: Rows<'_, T>,
        ts: Rows<'_, T>,
        projected: Option<&[f32]>,
        sd: usize,
        kern: dist::Kernel,
        k: usize,
        exact: impl Fn(&[T], &[T]) -> f64 + Sync,
    ) -> Vec<Vec<(f64, u32)>> {
        let n = ts.len();
        (0..qs.len())
            .into_par_iter()
            .map_init(
                || Visited::new(n),
                |vis, qi| {
                    let q = qs.row(qi);
                    let cands = match projected {
                        Some(pq) => self.candidates(kern, &pq[qi * sd..(qi + 1) * sd], k, vis),
                        None => {
                            let qv: Vec<f32> = q.iter().map(|&v| v.to_f32()).collect();
                            self.candidates(kern, &qv, k, vis)
                        }
                    };
                    rerank_one(ts, |t| exact(q, t), cands, k, vis)
                },
            )
            .collect()
    }

    /// Exact search with imgclass-linalg's batch kernels (integer accumulation for pixels,
    /// f32 for features; SIMD).
    fn exact(&self, queries: &Subset, k: usize) -> Result<Neighbors<f64>, AnnError> {
        let metric = self.metric;
        Ok(match (queries.values(), self.train.values()) {
            (Values::Pixels(q), Values::Pixels(t)) => {
                imgclass_linalg::knn_u8(q, t, k, metric)?.into_f64()
            }
            (Values::Features(q), Values::Features(t)) => {
                imgclass_linalg::knn_f32(q, t, k, metric)?.into_f64()
            }
            _ => unreachable!("row shapes matched but value types differ"),
        })
    }

    /// Candidates for the search-space query `qv`.
    fn candidates(&self, kern: dist::Kernel, qv: &[f32], k: usize, vis: &mut Visited) -> Vec<u32> {
        let r = match (self.pca.is_some(), self.rerank, self.kind) {
            (false, _, _) => k,
            (true, 0, AnnIndex::Hnsw { ef_search, .. }) => k.max(ef_search),
            (true, 0, _) => k.max(DEFAULT_RERANK),
            (true, r, _) => k.max(r),
        };
        match (&self.structure, self.kind) {
            (Structure::KdTree(t), AnnIndex::KdTree { eps, .. }) => {
                t.search_eps(&self.space, kern, qv, r, eps)
            }
            (Structure::KdForest(f), AnnIndex::KdForest { checks, .. }) => {
                kdtree::search_forest(f, &self.space, kern, qv, r, checks, vis)
            }
            (Structure::KMeans(t), AnnIndex::KMeansTree { checks, .. }) => {
                t.search(&self.space, kern, qv, r, checks)
            }
            (Structure::Hnsw(h), AnnIndex::Hnsw { ef_search, .. }) => {
                h.search(&self.space, kern, qv, r, ef_search.max(r), vis)
            }
            _ => Vec::new(),
        }
    }
}

/// Exact re-scoring of the candidates; tops up with a scan if fewer than `k` came back.
fn rerank_one<T: Element>(
    train: Rows<'_, T>,
    exact: impl Fn(&[T]) -> f64,
    mut cands: Vec<u32>,
    k: usize,
    vis: &mut Visited,
) -> Vec<(f64, u32)> {
    if cands.len() < k {
        vis.clear();
        for &c in &cands {
            vis.insert(c);
        }
        for i in 0..train.len() as u32 {
            if cands.len() >= k {
                break;
            }
            if vis.insert(i) {
                cands.push(i);
            }
        }
    }
    // the candidates' rows are scattered over the training set: fetch the rows two
    // candidates ahead while scoring the current one
    const AHEAD: usize = 2;
    for &i in cands.iter().take(AHEAD) {
        prefetch_bytes(train.row(i as usize));
    }
    let mut scored: Vec<(f64, u32)> = Vec::with_capacity(cands.len());
    for (j, &i) in cands.iter().enumerate() {
        if let Some(&next) = cands.get(j + AHEAD) {
            prefetch_bytes(train.row(next as usize));
        }
        scored.push((exact(train.row(i as usize)), i));
    }
    scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scored.dedup_by_key(|p| p.1);
    scored.truncate(k);
    scored
}

/// Hints the CPU to fetch every cache line of `bytes` (a no-op off x86-64).
#[inline]
pub(crate) fn prefetch_bytes<T>(bytes: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let len = std::mem::size_of_val(bytes);
        let p = bytes.as_ptr().cast::<i8>();
        let mut off = 0;
        while off < len {
            // SAFETY: `p + off` lies inside `bytes` (`off < len`); a prefetch never faults and
            // has no architectural effect; SSE is part of the x86-64 baseline.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.add(off))
            };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Mean recall@k of `found` against `exact` (both flat `n_queries x k`, as from
/// [`BuiltIndex::search`]): the fraction of each query's true `k` nearest that were found.
///
/// ```
/// use imgclass_knn::ann::recall_at;
/// // query 0 finds both true neighbours, query 1 one of two: (2 + 1) / 4
/// assert_eq!(recall_at(&[1, 2, 3, 9], &[2, 1, 3, 4], 2), 0.75);
/// ```
pub fn recall_at(found: &[u32], exact: &[u32], k: usize) -> f64 {
    if k == 0 || exact.is_empty() {
        return 0.0;
    }
    let nq = exact.len() / k;
    let mut hits = 0usize;
    for q in 0..nq {
        let e = &exact[q * k..(q + 1) * k];
        let f = &found[q * k..((q + 1) * k).min(found.len())];
        hits += f.iter().filter(|x| e.contains(x)).count();
    }
    hits as f64 / (nq * k) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_rows_are_the_input_rows_on_64_byte_boundaries_also_after_clone() {
        let dim = 16;
        let rows: Vec<f32> = (0..dim * 5).map(|v| v as f32 * 0.5 - 3.0).collect();
        let s = Space::from_rows(&rows, dim);
        for sp in [&s, &s.clone()] {
            assert_eq!(sp.len(), 5);
            for i in 0..5 {
                assert_eq!(sp.row(i), &rows[i * dim..(i + 1) * dim]);
                assert_eq!(sp.row(i).as_ptr() as usize % 64, 0, "row {i}");
            }
        }
        assert_eq!(Space::empty().len(), 0);
    }
}
