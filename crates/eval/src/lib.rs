//! Evaluation for imgclass: accuracy, the confusion matrix with per-class precision, recall
//! and F1; stratified hold-out and k-fold splits; hold-out validation, cross-validation and
//! grid search over any [`imgclass_core::Fit`]; results as JSON with a schema version.
//!
//! The lecture's rule: tune hyperparameters on validation folds and touch the test set once,
//! at the end. This crate knows no concrete classifier: it is generic over
//! [`imgclass_core::Fit`] / [`imgclass_core::Predict`] (docs/ARCHITECTURE.md).
//!
//! Folds: [`Fold`] and the seeded dealing are `imgclass_data::split`'s (one implementation;
//! eval depends on data sideways, as the layer table allows); [`stratified_kfold`] and
//! [`stratified_split`] adapt its signatures, [`folds_from_assignment`] and [`check_fold`]
//! are eval's own.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Label, Predict, Subset};
//! use imgclass_eval::{cross_validate_k, EvalError};
//!
//! /// Predicts class 1 when the single pixel is at least `t`.
//! struct Threshold(u8);
//! impl Fit for Threshold {
//!     type Model = Threshold;
//!     type Error = EvalError;
//!     fn fit(&self, _train: &Subset) -> Result<Threshold, EvalError> { Ok(Threshold(self.0)) }
//! }
//! impl Predict for Threshold {
//!     type Error = EvalError;
//!     fn n_classes(&self) -> usize { 2 }
//!     fn predict(&self, x: &Subset) -> Result<Vec<Label>, EvalError> {
//!         let v = x.values(); // pixels or features: the first value as f32
//!         Ok((0..x.len()).map(|i| Label::from(v.row_f32(i)[0] >= f32::from(self.0))).collect())
//!     }
//! }
//!
//! let pixels: Vec<u8> = (0..20).map(|i| i * 10).collect(); // 0, 10, ..., 190
//! let labels: Vec<Label> = (0..20).map(|i| Label::from(i >= 10)).collect();
//! let ds = Dataset::new(pixels, labels, ImageShape::new(1, 1, 1), ClassNames::new(["lo", "hi"]))?;
//! let scores = cross_validate_k(&Threshold(100), &ds.all(), 5, 42)?;
//! assert_eq!(scores.per_fold, vec![1.0; 5]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod curve;
mod error;
mod folds;
mod metrics;
mod refine;
mod validate;

pub use curve::{CvCurve, CvPoint, CvSeries};
pub use error::EvalError;
pub use folds::{Fold, check_fold, folds_from_assignment, stratified_kfold, stratified_split};
pub use metrics::{ClassReport, ConfusionMatrix, accuracy};
pub use refine::{Axis, Origin, Refine, RefinedGrid, RefinedPoint, refining_grid_search};
pub use validate::{
    CvScores, GridPoint, GridResult, Holdout, HoldoutGrid, HoldoutPoint, cross_validate,
    cross_validate_k, grid_search, holdout, holdout_grid_search,
};

/// Version of the JSON layout of [`GridResult`] and [`CvCurve`]; bumped on any incompatible
/// change. Readers reject other versions with [`EvalError::SchemaVersion`].
pub const SCHEMA_VERSION: u32 = 1;

fn check_schema(found: u32) -> Result<(), EvalError> {
    if found == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(EvalError::SchemaVersion { expected: SCHEMA_VERSION, found })
    }
}
