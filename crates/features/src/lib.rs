//! Feature steps for imgclass: fitted on training rows, they map u8 images or f32 features to
//! f32 features ([`Dataset`](imgclass_core::Dataset)s of `RowShape::Features`), which every
//! classifier takes through the same `Fit`/`Predict` API as raw pixels.
//!
//! ```text
//! images --[step 1]--> features --[step 2]--> features --> classifier --> labels
//! ```
//!
//! - [`StepSpec`] is a step as a config names it; [`StepSpec::fit`] makes a fitted [`Step`];
//! - [`Standardizer`] (per-feature standardisation), [`Pca`] (projection on the leading
//!   principal components, optionally whitened), [`Hog`], [`HueHistogram`], [`Chi2Map`] (the
//!   additive χ² kernel's explicit feature map) and [`KmeansFeatures`] (Coates, Lee & Ng's
//!   k-means feature learner, on [`KMeans`]) are the steps so far;
//! - [`Pipeline`] (steps + a classifier) is itself `Fit`, and its [`PipelineModel`] is
//!   `Predict` on raw images; `imgclass-model` saves it as one model.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape, RowShape};
//! use imgclass_features::StepSpec;
//!
//! let ds = Dataset::new(vec![0, 0, 2, 2, 4, 4], vec![0; 3], ImageShape::new(2, 1, 1),
//!     ClassNames::new(["a"]))?;
//! let step = StepSpec::Pca { components: 1, whiten: false }.fit(&ds.all(), 7)?;
//! let y = step.transform(&ds.all())?;
//! assert_eq!(y.shape(), RowShape::Features(1));
//! assert_eq!(y.description(), Some("pca(1) of 2x1x1 images"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chi2;
mod coates;
mod error;
mod hog;
mod hue;
mod kmeans;
mod pca;
mod pipeline;
mod standardize;
mod step;

pub use chi2::Chi2Map;
pub use coates::{
    KmeansFeatures, KmeansFitReport, KmeansParams, Products, Zca, normalize_patch,
    normalize_patches, sample_patches,
};
pub use error::{FeatureError, PipelineError};
pub use hog::Hog;
pub use hue::HueHistogram;
pub use kmeans::{EmptyCluster, KMeans, KMeansFit, KmeansInit, assign};
pub use pca::Pca;
pub use pipeline::{Pipeline, PipelineModel, apply, check_steps, fit_steps};
pub use standardize::Standardizer;
pub use step::{Step, StepSpec, Tensor, WHITEN_FLOOR};
