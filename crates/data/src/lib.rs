//! Dataset readers for imgclass: CIFAR-10/100 binary, IDX (MNIST), image folders; checksums,
//! safe archive extraction, splits and folds, preprocessing.
//!
//! This is the only library crate that reads files (docs/ARCHITECTURE.md, invariant 2).
//! Every reader produces the same [`imgclass_core::Dataset`]: u8 pixels, one row per image in
//! channel-major order (`C x H x W`, as CIFAR stores them), labels and class names. Every
//! failure is a typed [`DataError`] naming the file (and the byte offset where one applies);
//! no reader panics on malformed input.
//!
//! | module | reads |
//! | --- | --- |
//! | [`cifar`] | `cifar-10-batches-bin/` and `cifar-100-binary/`; writes the CIFAR-10 layout |
//! | [`idx`] | IDX image/label pairs (MNIST, Fashion-MNIST), raw or gzip |
//! | `folder` | `root/{train,test}/<class>/*.{png,jpg,jpeg}` (feature `images`, on by default) |
//! | [`split`] | seeded shuffles, stratified splits, stratified k-fold, subsampling (indices only) |
//! | [`preprocess`] | mean image and conversion to centred, scaled `f32` |
//!
//! ```
//! use imgclass_data::split::stratified_kfold;
//!
//! // six rows of two classes into three folds: every class lands once in every fold
//! let labels = [0, 0, 0, 1, 1, 1];
//! let folds = stratified_kfold(&labels, 2, 3, 42)?;
//! assert_eq!(folds.len(), 3);
//! for f in &folds {
//!     assert_eq!(f.validation.len(), 2);
//!     assert_eq!(f.train.len(), 4);
//! }
//! # Ok::<(), imgclass_data::DataError>(())
//! ```

pub mod archive;
mod buffer;
pub mod checksum;
pub mod cifar;
mod error;
#[cfg(feature = "images")]
pub mod folder;
pub mod idx;
pub mod preprocess;
pub mod split;
mod traintest;

pub use error::DataError;
pub use traintest::TrainTest;
