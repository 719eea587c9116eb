//! Shared vocabulary of imgclass: [`Dataset`] (u8 images or f32 features), [`Subset`], [`ClassNames`], [`ImageShape`],
//! the seeded [`rng::SplitMix64`], and the [`Fit`] / [`Predict`] traits every classifier
//! implements.
//!
//! This crate does no I/O (see `docs/ARCHITECTURE.md`, invariant 2): readers live in
//! `imgclass-data`, classifiers in `imgclass-knn` and `imgclass-linear`.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//!
//! // two 1x1 RGB images, channel-major as CIFAR stores them
//! let ds = Dataset::new(
//!     vec![255, 0, 0, 0, 0, 255],
//!     vec![0, 1],
//!     ImageShape::new(3, 1, 1),
//!     ClassNames::new(["red", "blue"]),
//! )?;
//! assert_eq!(ds.len(), 2);
//! assert_eq!(ds.all().pixels().map(|r| r.row(1)), Some(&[0u8, 0, 255][..]));
//! assert_eq!(ds.classes().name(ds.label(1)), Some("blue"));
//! # Ok::<(), imgclass_core::DatasetError>(())
//! ```

mod dataset;
pub mod rng;
mod traits;

pub use dataset::{
    ClassNames, Dataset, DatasetError, ImageShape, Label, RowShape, ShapeMismatch, Subset, Values,
};
/// The typed row view ([`Rows`]) and its value types ([`Element`]: u8 or f32) are
/// imgclass-linalg's, re-exported: one row-view type from the kernels up.
pub use imgclass_linalg::{Element, Rows};
pub use traits::{Fit, Predict, argmax_label};
