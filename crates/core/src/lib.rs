//! Shared vocabulary of imgclass: [`Dataset`], [`Subset`], [`ClassNames`], [`ImageShape`],
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
//! assert_eq!(ds.row(1), &[0, 0, 255]);
//! assert_eq!(ds.classes().name(ds.label(1)), Some("blue"));
//! # Ok::<(), imgclass_core::DatasetError>(())
//! ```

mod dataset;
pub mod rng;
mod traits;

pub use dataset::{ClassNames, Dataset, DatasetError, ImageShape, Label, ShapeMismatch, Subset};
pub use traits::{Fit, Predict, argmax_label};
