//! PCA projection fitted on the training rows: the top `p` eigenvectors of the covariance,
//! found by seeded randomised subspace iteration on a sample of rows, then a Rayleigh–Ritz
//! step.
//!
//! ```text
//! μ = (1/n) Σ_i x_i,   C = (1/s) Σ_{i ∈ sample} (x_i − μ)(x_i − μ)ᵀ
//! Q ← orth(Xᵀ X Q)  (a few times, Q: d × (p + 8) Gaussian to start)
//! y = Vᵀ (x − μ),   V = the p leading Ritz vectors (columns of Q times the eigenvectors of QᵀCQ)
//! ```
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_features::Pca;
//! // points on the line y = x: the first component is ±(1, 1)/√2, the mean (2, 2)
//! let ds = Dataset::new(vec![0, 0, 2, 2, 4, 4], vec![0; 3], ImageShape::new(2, 1, 1),
//!     ClassNames::new(["a"]))?;
//! let pca = Pca::fit(&ds.all(), 1, 1)?;
//! assert_eq!(pca.mean(), &[2.0, 2.0]);
//! let c = pca.component(0);
//! assert!((c[0].abs() - 0.5f32.sqrt()).abs() < 1e-4 && (c[0] - c[1]).abs() < 1e-4);
//! // (4, 4) lies 2√2 from the mean along the component
//! let y = pca.project_row(&[4, 4]);
//! assert!((y[0].abs() - 8f32.sqrt()).abs() < 1e-3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use imgclass_core::rng::SplitMix64;
use imgclass_core::{Element, RowShape, Rows, Subset, Values};
use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::FeatureError;

/// Rows used to fit the components (an evenly spaced sample when there are more).
const FIT_SAMPLE: usize = 12_288;
/// Subspace iterations.
const POWER_ITERS: usize = 3;
/// Extra columns carried by the subspace iteration.
const OVERSAMPLE: usize = 8;
/// Rows projected per matrix product.
const CHUNK: usize = 1024;

/// A fitted projection onto `p` principal components.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// What the projection takes (the shape of the rows it was fitted on).
    input: RowShape,
    dim: usize,
    mean: Vec<f32>,
    /// `p x dim`, row-major: one unit component per row, by decreasing variance.
    components: Vec<f32>,
    /// Variance along each component.
    variances: Vec<f32>,
}

impl Pca {
    /// Fits `p` components on the rows of `train` (seeded).
    pub fn fit(train: &Subset, p: usize, seed: u64) -> Result<Self, FeatureError> {
        let fitted = match train.values() {
            Values::Pixels(rows) => Self::fit_rows(rows, p, seed),
            Values::Features(rows) => Self::fit_rows(rows, p, seed),
        }?;
        Ok(Self { input: train.shape(), ..fitted })
    }

    /// [`Pca::fit`] on typed rows.
    pub fn fit_rows<T: Element>(
        train: Rows<'_, T>,
        p: usize,
        seed: u64,
    ) -> Result<Self, FeatureError> {
        let d = train.dim();
        let n = train.len();
        if n == 0 {
            return Err(FeatureError::EmptyTrain);
        }
        if p == 0 || p > d {
            return Err(FeatureError::InvalidParam {
                name: "pca",
                reason: format!("{p} components for {d} features"),
            });
        }
        let mean: Vec<f32> = train.column_means().into_iter().map(|m| m as f32).collect();
        let s = n.min(FIT_SAMPLE);
        let sample: Vec<usize> = (0..s).map(|t| t * n / s).collect();
        // the centred sample in blocks of rows: products run in parallel over blocks and
        // block results are added in block order (deterministic for any thread count)
        let blocks: Vec<DMatrix<f32>> = (0..s.div_ceil(CHUNK))
            .into_par_iter()
            .map(|b| {
                let lo = b * CHUNK;
                let hi = (lo + CHUNK).min(s);
                let mut x = DMatrix::<f32>::zeros(hi - lo, d);
                for i in lo..hi {
                    for (j, &v) in train.row(sample[i]).iter().enumerate() {
                        x[(i - lo, j)] = v.to_f32() - mean[j];
                    }
                }
                x
            })
            .collect();
        let xt_x_q = |q: &DMatrix<f32>| -> (DMatrix<f32>, Vec<DMatrix<f32>>) {
            let z: Vec<DMatrix<f32>> = blocks.par_iter().map(|x| x * q).collect();
            let parts: Vec<DMatrix<f32>> =
                blocks.par_iter().zip(&z).map(|(x, zb)| x.tr_mul(zb)).collect();
            let mut y = DMatrix::<f32>::zeros(q.nrows(), q.ncols());
            for part in parts {
                y += part;
            }
            (y, z)
        };
        let l = (p + OVERSAMPLE).min(d);
        let mut g = SplitMix64::new(seed);
        let mut q = DMatrix::<f32>::from_fn(d, l, |_, _| g.next_normal() as f32);
        q = q.qr().q();
        for _ in 0..POWER_ITERS {
            let (y, _) = xt_x_q(&q); // d x l
            q = y.qr().q();
        }
        let z: Vec<DMatrix<f32>> = blocks.par_iter().map(|x| x * &q).collect();
        let mut b = DMatrix::<f32>::zeros(l, l);
        for zb in &z {
            b += zb.tr_mul(zb);
        }
        let b = b / (s as f32); // l x l  = Qᵀ C Q
        let eig = nalgebra::SymmetricEigen::new(b);
        let mut order: Vec<usize> = (0..l).collect();
        order.sort_by(|&a, &c| eig.eigenvalues[c].total_cmp(&eig.eigenvalues[a]).then(a.cmp(&c)));
        let v = &q * &eig.eigenvectors; // d x l
        let mut components = Vec::with_capacity(p * d);
        let mut variances = Vec::with_capacity(p);
        for &k in order.iter().take(p) {
            let col = v.column(k);
            // sign convention: the largest-magnitude coordinate is positive
            let big = (0..d).fold(0, |b, j| if col[j].abs() > col[b].abs() { j } else { b });
            let sign = if col[big] < 0.0 { -1.0 } else { 1.0 };
            components.extend(col.iter().map(|&c| c * sign));
            variances.push(eig.eigenvalues[k].max(0.0));
        }
        Ok(Self { input: RowShape::Features(d), dim: d, mean, components, variances })
    }

    /// Rebuilds a projection from its parts (when loading an index or a model): `mean` of
    /// `d`, `components` `p x d` row-major, `variances` of `p`, all finite.
    pub fn from_parts(
        mean: Vec<f32>,
        components: Vec<f32>,
        variances: Vec<f32>,
    ) -> Result<Self, FeatureError> {
        let d = mean.len();
        let p = variances.len();
        if d == 0 || p == 0 || components.len() != p * d {
            return Err(FeatureError::Corrupt {
                reason: "pca parts have inconsistent sizes".into(),
            });
        }
        if components.iter().chain(&mean).chain(&variances).any(|v| !v.is_finite())
            || variances.iter().any(|&v| v < 0.0)
        {
            return Err(FeatureError::Corrupt {
                reason: "pca parts hold non-finite values or negative variances".into(),
            });
        }
        Ok(Self { input: RowShape::Features(d), dim: d, mean, components, variances })
    }

    /// The same projection, declared to take rows of `input` (whose dimension must be the
    /// projection's): rebuilt parts default to features.
    pub fn with_input(self, input: RowShape) -> Result<Self, FeatureError> {
        if input.dim() != self.dim {
            return Err(FeatureError::Corrupt {
                reason: format!("pca of {} features cannot take {input}", self.dim),
            });
        }
        Ok(Self { input, ..self })
    }

    /// What the projection takes.
    pub fn input(&self) -> RowShape {
        self.input
    }

    /// Number of components `p`.
    pub fn n_components(&self) -> usize {
        self.variances.len()
    }

    /// Input features `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The mean row (`d` values).
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Component `k` (a unit vector of `d` values). Panics if `k >= n_components()`.
    pub fn component(&self, k: usize) -> &[f32] {
        &self.components[k * self.dim..(k + 1) * self.dim]
    }

    /// All components, `p x d` row-major.
    pub fn components(&self) -> &[f32] {
        &self.components
    }

    /// Variance of the sample along each component, decreasing.
    pub fn variances(&self) -> &[f32] {
        &self.variances
    }

    /// Bytes held (mean, components, variances).
    pub fn memory_bytes(&self) -> usize {
        4 * (self.mean.len() + self.components.len() + self.variances.len())
    }

    /// Projects one row: `y_k = component_k · (x − μ)`.
    pub fn project_row<T: Element>(&self, x: &[T]) -> Vec<f32> {
        let c: Vec<f32> = x.iter().zip(&self.mean).map(|(&v, &m)| v.to_f32() - m).collect();
        (0..self.n_components())
            .map(|k| self.component(k).iter().zip(&c).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// Projects every row of `rows` (`len x p`, row-major), by matrix products over fixed
    /// chunks of rows in parallel (the result does not depend on the thread count).
    ///
    /// Each chunk is laid out as the columns of `Xᵀ` (`d x rows`, column-major: one centred
    /// row per contiguous column), so `Y = V Xᵀ` (`p x rows`) comes out column-major with
    /// one projected row per contiguous column, already in the output layout.
    pub fn project(&self, rows: &Subset) -> Vec<f32> {
        match rows.values() {
            Values::Pixels(r) => self.project_rows(r),
            Values::Features(r) => self.project_rows(r),
        }
    }

    /// [`Pca::project`] on typed rows.
    pub fn project_rows<T: Element>(&self, rows: Rows<'_, T>) -> Vec<f32> {
        let p = self.n_components();
        let d = self.dim;
        let v = DMatrix::<f32>::from_row_slice(p, d, &self.components);
        let chunks: Vec<Vec<f32>> = (0..rows.len().div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let lo = c * CHUNK;
                let hi = (lo + CHUNK).min(rows.len());
                let mut xt = DMatrix::<f32>::zeros(d, hi - lo);
                for (i, col) in xt.as_mut_slice().chunks_exact_mut(d).enumerate() {
                    for ((o, &b), &m) in col.iter_mut().zip(rows.row(lo + i)).zip(&self.mean) {
                        *o = b.to_f32() - m;
                    }
                }
                let y = &v * xt; // p x rows, column-major
                y.as_slice().to_vec()
            })
            .collect();
        chunks.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::{ClassNames, Dataset, ImageShape};

    #[test]
    fn recovers_the_planted_axes_and_projects_like_the_naive_loop() {
        // 3-D data with variance mostly along axis 2, then axis 0; axis 1 is constant
        let mut g = SplitMix64::new(9);
        let mut px = Vec::new();
        for _ in 0..500 {
            px.push((100.0 + 20.0 * g.next_normal()).clamp(0.0, 255.0) as u8);
            px.push(50);
            px.push((128.0 + 50.0 * g.next_normal()).clamp(0.0, 255.0) as u8);
        }
        let ds = Dataset::new(px, vec![0; 500], ImageShape::new(3, 1, 1), ClassNames::new(["a"]))
            .expect("valid");
        let pca = Pca::fit(&ds.all(), 2, 3).expect("fit");
        assert!(pca.component(0)[2] > 0.999, "{:?}", pca.component(0));
        assert!(pca.component(1)[0] > 0.999, "{:?}", pca.component(1));
        assert!(pca.variances()[0] > pca.variances()[1]);
        let batch = pca.project(&ds.all());
        for i in 0..500 {
            let one = pca.project_row(ds.all().pixels().expect("images").row(i));
            for k in 0..2 {
                assert!((batch[i * 2 + k] - one[k]).abs() < 1e-3);
            }
        }
    }
}
