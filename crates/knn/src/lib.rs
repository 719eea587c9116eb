//! Nearest-neighbour classification for imgclass: exact k-NN over L1/L2 with voting, and approximate indices
//!
//! [`Knn`] parameters fit (lazily, over a shared [`imgclass_core::Subset`]) into a
//! [`KnnModel`] that predicts by exact search ([`exact`]) with the SIMD kernels of
//! `imgclass-linalg`; [`ann`] holds the approximate indices.
pub mod ann;
mod error;
pub mod exact;

pub use error::KnnError;
pub use exact::{DISTANCE_EPS, Index, Knn, KnnModel, Vote};
pub use imgclass_linalg::Metric;
pub use imgclass_linalg::Neighbors;
