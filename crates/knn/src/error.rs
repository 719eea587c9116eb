//! [`KnnError`]: why a k-NN fit, search or vote rejected its input.

use imgclass_linalg::LinalgError;

/// Why a k-NN fit, search or vote rejected its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnnError {
    /// `k` is zero.
    #[error("k must be at least 1")]
    ZeroK,
    /// `k` exceeds the number of training rows.
    #[error("k = {k} exceeds the {n_train} training rows")]
    KTooLarge {
        /// Requested neighbours.
        k: usize,
        /// Training rows available.
        n_train: usize,
    },
    /// A vote asked for more neighbours than were searched.
    #[error("vote over k = {k} neighbours but only {available} were searched")]
    NotEnoughNeighbors {
        /// Requested neighbours.
        k: usize,
        /// Neighbours per query in the [`Neighbors`](crate::Neighbors).
        available: usize,
    },
    /// Query images have another shape than the training images (compared by value, not by
    /// byte count).
    #[error(transparent)]
    Shape(#[from] imgclass_core::ShapeMismatch),
    /// The training set has no rows.
    #[error("the training set is empty")]
    EmptyTrain,
    /// The query set has no rows.
    #[error("the query set is empty")]
    EmptyQueries,
    /// A [`Neighbors`](crate::Neighbors) value is inconsistent with this model.
    #[error("neighbor index {index} is out of range for {n_train} training rows")]
    BadNeighbor {
        /// The offending training position.
        index: u32,
        /// Training rows of the model.
        n_train: usize,
    },
    /// The distance kernels rejected the call (for example a forced kernel this CPU lacks).
    #[error(transparent)]
    Linalg(#[from] LinalgError),
}
