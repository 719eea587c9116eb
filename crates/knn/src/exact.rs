//! Exact k-nearest-neighbour classification: [`Knn`] parameters fit lazily into a
//! [`KnnModel`] that searches every training row with the SIMD kernels of `imgclass-linalg`
//! and votes.
//!
//! ```text
//! neighbours(x) = the k training rows with the smallest (d(x, t), index of t)
//! majority:  ŷ = argmax_c  #{ j ≤ k : y_j = c }
//! distance:  ŷ = argmax_c  Σ_{j ≤ k, y_j = c} 1 / (d_j + ε),   ε = 1e-6
//! ties between classes go to the smaller label
//! ```
//!
//! `d` is L1, squared L2 or (features only) cosine `1 − cos(q, t)`. On u8 pixels it is
//! computed exactly in integers (the fast path of raw-pixel k-NN; cosine is refused with
//! `LinalgError::UnsupportedMetric`: convert the pixels to features); on f32 features (any
//! [`Dataset`](imgclass_core::Dataset) made by a transform or extractor) in f32 by linalg's
//! blocked f32 search (`knn_f32`: L2 in the GEMM form, error bound in its doc). Both go
//! through the same [`Knn`] / [`KnnModel`] API.
//!
//! Worked example (1-D, L1): training rows 0, 1, 5, 6 with labels 0, 0, 1, 1; query 4.
//! Distances 4, 3, 1, 2, so the 3 nearest are rows 2, 3, 1 with labels 1, 1, 0: majority
//! predicts 1 with vote shares (1/3, 2/3).
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Predict};
//! use imgclass_knn::{Knn, Metric};
//!
//! let shape = ImageShape::new(1, 1, 1);
//! let classes = ClassNames::new(["low", "high"]);
//! let train = Dataset::new(vec![0, 1, 5, 6], vec![0, 0, 1, 1], shape, classes.clone())?;
//! let test = Dataset::new(vec![4], vec![1], shape, classes)?;
//! let model = Knn::new(3).metric(Metric::L1).fit(&train.all())?;
//! assert_eq!(model.predict(&test.all())?, vec![1]);
//! let p = model.predict_proba(&test.all())?;
//! assert!((p[0] - 1.0 / 3.0).abs() < 1e-6 && (p[1] - 2.0 / 3.0).abs() < 1e-6);
//! let nb = model.kneighbors(&test.all(), 3)?;
//! assert_eq!(nb.indices, vec![2, 3, 1]);
//! assert_eq!(nb.distances, vec![1.0, 2.0, 3.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use imgclass_core::{Fit, Label, Predict, Subset, Values, argmax_label};
use imgclass_linalg::{Metric, Neighbors, knn_f32, knn_u8};

use crate::KnnError;

/// The ε in the distance-weighted vote `1 / (d + ε)`: an exact duplicate (d = 0) gets
/// weight 10⁶ instead of infinity, so it dominates but the vote stays finite.
pub const DISTANCE_EPS: f64 = 1e-6;

/// How the neighbours' labels become a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Vote {
    /// One vote per neighbour; the most frequent label wins. The default.
    #[default]
    Majority,
    /// Each neighbour votes with weight `1 / (d + ε)` ([`DISTANCE_EPS`]).
    Distance,
}

/// How the neighbours are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Index {
    /// Exact brute-force search over every training row (SIMD, cache-blocked). The default.
    #[default]
    Exact,
}

/// k-NN hyperparameters: `Knn::new(5).metric(Metric::L1).vote(Vote::Distance)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Knn {
    k: usize,
    metric: Metric,
    vote: Vote,
    index: Index,
}

impl Knn {
    /// `k` neighbours, squared-L2 metric, majority vote, exact index. `k` is validated by
    /// `fit` (it must be between 1 and the number of training rows).
    pub fn new(k: usize) -> Self {
        Self { k, metric: Metric::L2, vote: Vote::Majority, index: Index::Exact }
    }

    /// The distance. Default: [`Metric::L2`] (squared Euclidean).
    pub fn metric(self, metric: Metric) -> Self {
        Self { metric, ..self }
    }

    /// The vote. Default: [`Vote::Majority`].
    pub fn vote(self, vote: Vote) -> Self {
        Self { vote, ..self }
    }

    /// The search structure. Default: [`Index::Exact`].
    pub fn index(self, index: Index) -> Self {
        Self { index, ..self }
    }

    /// The number of neighbours.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The configured metric.
    pub fn get_metric(&self) -> Metric {
        self.metric
    }

    /// The configured vote.
    pub fn get_vote(&self) -> Vote {
        self.vote
    }

    /// The configured index.
    pub fn get_index(&self) -> Index {
        self.index
    }
}

impl Default for Knn {
    /// `Knn::new(1)`: the lecture's nearest-neighbour classifier.
    fn default() -> Self {
        Self::new(1)
    }
}

/// A fitted k-NN classifier: the parameters plus a shared view of the training rows (no
/// pixels are copied, not even for a gathered cross-validation fold).
#[derive(Debug, Clone)]
pub struct KnnModel {
    params: Knn,
    train: Subset,
    labels: Vec<Label>,
    n_classes: usize,
}

impl Fit for Knn {
    type Model = KnnModel;
    type Error = KnnError;

    /// Validates `k` against the training rows and, for pixels, the row length against the
    /// metric's exact bound ([`imgclass_linalg::max_u8_dim`]), then stores the view (lazy: no
    /// work yet).
    fn fit(&self, train: &Subset) -> Result<KnnModel, KnnError> {
        if train.is_empty() {
            return Err(KnnError::EmptyTrain);
        }
        if self.k == 0 {
            return Err(KnnError::ZeroK);
        }
        if self.k > train.len() {
            return Err(KnnError::KTooLarge { k: self.k, n_train: train.len() });
        }
        // refused here, not at the first search, so a cross-validation fails before any work
        if train.pixels().is_some() && self.metric == Metric::Cosine {
            return Err(KnnError::Linalg(imgclass_linalg::LinalgError::UnsupportedMetric {
                metric: "cosine",
                dtype: "u8",
            }));
        }
        let max = imgclass_linalg::max_u8_dim(self.metric);
        if train.pixels().is_some() && train.dim() > max {
            return Err(KnnError::Linalg(imgclass_linalg::LinalgError::RowTooLong {
                dim: train.dim(),
                max,
                metric: self.metric.name(),
            }));
        }
        let Index::Exact = self.index;
        Ok(KnnModel {
            params: *self,
            train: train.clone(),
            labels: train.labels(),
            n_classes: train.n_classes(),
        })
    }
}

impl KnnModel {
    /// The parameters the model was fitted with.
    pub fn params(&self) -> &Knn {
        &self.params
    }

    /// The training view.
    pub fn train(&self) -> &Subset {
        &self.train
    }

    /// Labels of the training rows, by training position.
    pub fn train_labels(&self) -> &[Label] {
        &self.labels
    }

    /// The `k` nearest training rows of every row of `x` (any `k` from 1 to the number of
    /// training rows, independent of the fitted `k`), sorted by (distance, position).
    pub fn kneighbors(&self, x: &Subset, k: usize) -> Result<Neighbors<f64>, KnnError> {
        if x.is_empty() {
            return Err(KnnError::EmptyQueries);
        }
        self.train.dataset().shape().expect(x.dataset().shape())?;
        if k == 0 {
            return Err(KnnError::ZeroK);
        }
        if k > self.train.len() {
            return Err(KnnError::KTooLarge { k, n_train: self.train.len() });
        }
        let metric = self.params.metric;
        Ok(match (x.values(), self.train.values()) {
            (Values::Pixels(q), Values::Pixels(t)) => knn_u8(q, t, k, metric)?.into_f64(),
            (Values::Features(q), Values::Features(t)) => knn_f32(q, t, k, metric)?.into_f64(),
            // equal row shapes (checked above) imply the same value type
            _ => unreachable!("row shapes matched but value types differ"),
        })
    }

    /// Vote shares per class for each row of `x`: `n_rows x n_classes`, row-major, each row
    /// summing to 1 (counts / k for majority, normalised weights for distance voting).
    pub fn predict_proba(&self, x: &Subset) -> Result<Vec<f32>, KnnError> {
        let nb = self.kneighbors(x, self.params.k)?;
        self.proba_from(&nb, self.params.k)
    }

    /// Predicted labels from the first `k` (at most `neighbors.k`) of precomputed
    /// neighbours, with this model's vote: one search serves every `k` of a grid.
    pub fn vote_from(&self, neighbors: &Neighbors<f64>, k: usize) -> Result<Vec<Label>, KnnError> {
        let mut scores = vec![0f64; self.n_classes];
        self.check_neighbors(neighbors, k)?;
        Ok((0..neighbors.n_queries())
            .map(|q| {
                self.scores(neighbors, q, k, &mut scores);
                argmax_label(&scores)
            })
            .collect())
    }

    /// Vote shares (as in [`Self::predict_proba`]) from the first `k` of precomputed
    /// neighbours.
    pub fn proba_from(&self, neighbors: &Neighbors<f64>, k: usize) -> Result<Vec<f32>, KnnError> {
        self.check_neighbors(neighbors, k)?;
        let mut scores = vec![0f64; self.n_classes];
        let mut out = Vec::with_capacity(neighbors.n_queries() * self.n_classes);
        for q in 0..neighbors.n_queries() {
            self.scores(neighbors, q, k, &mut scores);
            let total: f64 = scores.iter().sum();
            out.extend(scores.iter().map(|&s| (s / total) as f32));
        }
        Ok(out)
    }

    fn check_neighbors(&self, nb: &Neighbors<f64>, k: usize) -> Result<(), KnnError> {
        if k == 0 {
            return Err(KnnError::ZeroK);
        }
        if k > nb.k {
            return Err(KnnError::NotEnoughNeighbors { k, available: nb.k });
        }
        let n_train = self.labels.len();
        if let Some(&index) = nb.indices.iter().find(|&&i| i as usize >= n_train) {
            return Err(KnnError::BadNeighbor { index, n_train });
        }
        Ok(())
    }

    /// Class scores of query `q` from its first `k` neighbours into `scores`.
    fn scores(&self, nb: &Neighbors<f64>, q: usize, k: usize, scores: &mut [f64]) {
        scores.fill(0.0);
        let idx = &nb.indices[q * nb.k..q * nb.k + k];
        let dst = &nb.distances[q * nb.k..q * nb.k + k];
        for (&i, &d) in idx.iter().zip(dst) {
            let label = self.labels[i as usize] as usize;
            scores[label] += match self.params.vote {
                Vote::Majority => 1.0,
                Vote::Distance => 1.0 / (d + DISTANCE_EPS),
            };
        }
    }
}

impl Predict for KnnModel {
    type Error = KnnError;

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Searches the `k` nearest training rows of every row of `x` and votes.
    fn predict(&self, x: &Subset) -> Result<Vec<Label>, KnnError> {
        let nb = self.kneighbors(x, self.params.k)?;
        self.vote_from(&nb, self.params.k)
    }
}
