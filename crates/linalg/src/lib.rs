//! Dense f32/u8 kernels for imgclass: GEMM, pairwise L1 and squared-L2 distances, streaming
//! top-k; scalar twin plus SIMD with runtime dispatch.
//!
//! linalg knows nothing of images, labels, datasets or files: slices, shapes and strides only
//! (docs/ARCHITECTURE.md, invariant 1).
//!
//! Nearest-neighbour search: [`knn_u8`] (exact, integer) and [`knn_f32`] over [`Rows`] views
//! (contiguous, or gathered by index so a cross-validation fold is searched without copying
//! pixels); [`knn_u8_across_groups`] gives every row its nearest rows of other groups
//! (cross-validation folds as groups) computing each cross-group distance once;
//! [`pairwise_u8`] / [`pairwise_f32`] fill a caller's distance matrix. The kernel
//! ([`KernelKind`]) is chosen once per call from the CPU's features, or forced with
//! `IMGCLASS_KERNEL=scalar|avx2|avx512`.

mod arch;
mod distance;
mod driver;
mod error;
mod flat;
pub mod gemm;
mod groups;
mod kernel;
mod rows;
mod topk;

pub use distance::{
    Metric, UnknownMetric, max_u8_dim, pairwise_f32, pairwise_f32_with, pairwise_u8,
    pairwise_u8_with,
};
pub use error::LinalgError;
pub use groups::{knn_u8_across_groups, knn_u8_across_groups_with};
pub use kernel::{KERNEL_ENV, KernelError, KernelKind};
pub use rows::{Element, Rows, RowsF32, RowsU8};
pub use topk::{Neighbors, knn_f32, knn_f32_with, knn_u8, knn_u8_with};
