//! [`Standardizer`]: per-feature standardisation fitted on training rows, as scikit-learn's
//! `StandardScaler`:
//!
//! ```text
//! μ_j = (1/n) Σ_i x_ij,   σ_j = sqrt((1/n) Σ_i (x_ij − μ_j)²)   (1 where σ_j = 0)
//! y_ij = (x_ij − μ_j) / σ_j
//! ```
//!
//! Sums are f64 in row order (blocks of features in parallel), so the result does not depend
//! on the thread count.
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
///
/// The features go in blocks of [`COLS`] in parallel, each block summed over every row in
/// row order, so the sums are those of one sequential loop whatever the thread count; one
/// thread for both passes over 1.3 GB of k-means features took about 4 s, most of the
/// standardisation's time.
fn moments<T: Element>(rows: Rows<'_, T>) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (rows.len(), rows.dim());
    let (mut mean, mut var) = (vec![0f64; d], vec![0f64; d]);
    mean.par_chunks_mut(COLS).zip(var.par_chunks_mut(COLS)).enumerate().for_each(|(b, (m, v))| {
        let c0 = b * COLS;
        for r in rows.iter() {
            m.iter_mut().zip(&r[c0..]).for_each(|(a, &x)| *a += f64::from(x.to_f32()));
        }
        let nf = n.max(1) as f64;
        m.iter_mut().for_each(|a| *a /= nf);
        for r in rows.iter() {
            for ((s, &x), &mu) in v.iter_mut().zip(&r[c0..]).zip(m.iter()) {
                let c = f64::from(x.to_f32()) - mu;
                *s += c * c;
            }
        }
        v.iter_mut().for_each(|s| *s /= n as f64);
    });
    (mean, var)
}

/// The features of one parallel block of [`moments`].
const COLS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::rng::SplitMix64;

    /// The blocked, parallel moments equal one naive sequential two-pass loop bit for bit,
    /// on widths below, at and across the blocks, with large offsets (cancellation).
    #[test]
    fn moments_equal_a_sequential_two_pass_loop() {
        let mut g = SplitMix64::new(9);
        for (n, d) in [(1, 1), (7, 255), (33, 256), (40, 257), (65, 1100)] {
            let x: Vec<f32> =
                (0..n * d).map(|k| (g.next_normal() * 3.0) as f32 + 1e4 * (k % 3) as f32).collect();
            let rows = Rows::new(&x, n, d).expect("shape");
            let (mean, var) = moments(rows);
            let mut want_m = vec![0f64; d];
            for i in 0..n {
                for j in 0..d {
                    want_m[j] += f64::from(x[i * d + j]);
                }
            }
            want_m.iter_mut().for_each(|m| *m /= n as f64);
            let mut want_v = vec![0f64; d];
            for i in 0..n {
                for j in 0..d {
                    let c = f64::from(x[i * d + j]) - want_m[j];
                    want_v[j] += c * c;
                }
            }
            want_v.iter_mut().for_each(|v| *v /= n as f64);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&mean), bits(&want_m), "mean n {n} d {d}");
            assert_eq!(bits(&var), bits(&want_v), "var n {n} d {d}");
        }
    }
}
