//! [`Standardizer`]: per-feature standardisation fitted on training rows, as scikit-learn's
//! `StandardScaler`:
//!
//! ```text
//! μ_j = (1/n) Σ_i x_ij,   σ_j = sqrt((1/n) Σ_i (x_ij − μ_j)²)   (1 where σ_j = 0)
//! y_ij = (x_ij − μ_j) / σ_j
//! ```
//!
//! Sums are f64 in row order, so the result does not depend on the thread count.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_features::Standardizer;
//! // two 1x1x2 images: feature 0 is 0 and 4 (mean 2, σ 2), feature 1 is constant 7
//! let ds = Dataset::new(vec![0, 7, 4, 7], vec![0, 0], ImageShape::new(1, 1, 2),
//!     ClassNames::new(["a"]))?;
//! let s = Standardizer::fit(&ds.all())?;
//! assert_eq!((s.mean(), s.scale()), (&[2.0, 7.0][..], &[2.0, 1.0][..]));
//! let y = s.transform(&ds.all())?;
//! assert_eq!(y.features().map(|r| r.to_contiguous()), Some(vec![-1.0, 0.0, 1.0, 0.0]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use imgclass_core::{Dataset, Element, RowShape, Rows, Subset, Values};
use rayon::prelude::*;

use crate::FeatureError;

/// A fitted standardisation: the training mean and standard deviation of every feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    input: RowShape,
    mean: Vec<f32>,
    scale: Vec<f32>,
}

impl Standardizer {
    /// Fits the mean and standard deviation of every feature of `train`.
    pub fn fit(train: &Subset) -> Result<Self, FeatureError> {
        if train.is_empty() {
            return Err(FeatureError::EmptyTrain);
        }
        let (mean, var) = match train.values() {
            Values::Pixels(r) => moments(r),
            Values::Features(r) => moments(r),
        };
        let scale = var.iter().map(|&v| if v > 0.0 { v.sqrt() as f32 } else { 1.0 }).collect();
        Ok(Self { input: train.shape(), mean: mean.iter().map(|&m| m as f32).collect(), scale })
    }

    /// Rebuilds a fitted standardisation from its parts (`mean` and `scale` of the input's
    /// dimension, finite, every scale positive).
    pub fn from_parts(
        input: RowShape,
        mean: Vec<f32>,
        scale: Vec<f32>,
    ) -> Result<Self, FeatureError> {
        let d = input.dim();
        if mean.len() != d || scale.len() != d {
            return Err(FeatureError::Corrupt {
                reason: format!(
                    "standardize has {} means and {} scales for {d} features",
                    mean.len(),
                    scale.len()
                ),
            });
        }
        if mean.iter().any(|v| !v.is_finite()) || scale.iter().any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(FeatureError::Corrupt {
                reason: "standardize needs finite means and positive finite scales".into(),
            });
        }
        Ok(Self { input, mean, scale })
    }

    /// What the step was fitted on.
    pub fn input(&self) -> RowShape {
        self.input
    }

    /// The training mean of every feature.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The training standard deviation of every feature (1 where it was 0).
    pub fn scale(&self) -> &[f32] {
        &self.scale
    }

    /// `(x − μ) / σ` for every row of `x` (which must have the fitted shape).
    pub fn transform(&self, x: &Subset) -> Result<Dataset, FeatureError> {
        self.input.expect(x.shape())?;
        let values = match x.values() {
            Values::Pixels(r) => self.apply(r),
            Values::Features(r) => self.apply(r),
        };
        Ok(x.with_features(values, self.mean.len())?)
    }

    fn apply<T: Element>(&self, rows: Rows<'_, T>) -> Vec<f32> {
        let d = self.mean.len();
        let mut out = vec![0f32; rows.len() * d];
        out.par_chunks_mut(d.max(1) * 256).enumerate().for_each(|(b, block)| {
            for (k, o) in block.chunks_exact_mut(d).enumerate() {
                let r = rows.row(b * 256 + k);
                for (((o, &v), &m), &s) in o.iter_mut().zip(r).zip(&self.mean).zip(&self.scale) {
                    *o = (v.to_f32() - m) / s;
                }
            }
        });
        out
    }
}

/// Per-feature mean and population variance, two passes in f64 (row order).
fn moments<T: Element>(rows: Rows<'_, T>) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (rows.len() as f64, rows.dim());
    let mean = rows.column_means();
    let mut var = vec![0f64; d];
    for r in rows.iter() {
        for ((s, &v), &m) in var.iter_mut().zip(r).zip(&mean) {
            let c = f64::from(v.to_f32()) - m;
            *s += c * c;
        }
    }
    var.iter_mut().for_each(|s| *s /= n);
    (mean, var)
}
