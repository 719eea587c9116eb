//! [`KmeansFeatures`]: the single-layer k-means feature learner of Coates, Lee & Ng, "An
//! Analysis of Single-Layer Networks in Unsupervised Feature Learning" (AISTATS 2011), as
//! their `sc_vq_demo` code computes it (triangle encoding, four-quadrant sum pooling).
//!
//! ```text
//! patch p   = the rf x rf x C pixels of one position, 0..255, ordered channel, row, column:
//!             p[ch·rf² + r·rf + c] = image[ch][y + r][x + c]           (D = C·rf² values)
//! normalise x = (p − mean(p)) / sqrt(var(p) + ε_norm)     (var unbiased, / (D − 1); ε_norm 10)
//! whiten    w = (x − M) P,  P = V diag(1/sqrt(λ + ε_zca)) Vᵀ           (ZCA; C_x = V diag(λ) Vᵀ,
//!             M and C_x the mean and unbiased covariance of the sampled normalised patches)
//! k-means   c_1..c_K on the whitened sampled patches ([`KMeans`])
//! encode    z_k = ||w − c_k||,  f_k = max(0, mean_j(z_j) − z_k)           (the "triangle" code)
//! pool      positions (y, x) on the stride grid, P_r x P_c of them (27 x 27 for 32 x 32, rf 6),
//!           split at h_r = round(P_r / 2), h_c = round(P_c / 2) (14 for 27): output
//!           [Σ_{top-left} f, Σ_{bottom-left} f, Σ_{top-right} f, Σ_{bottom-right} f]
//!           (4·K values: quadrant-major, centroid within; the order of the paper's code)
//! flip      (optional, not the paper's) c_{j+K/2} = mirror(c_j), pooled per half h (top,
//!           bottom): [Σ_{h, left} f_j + Σ_{h, right} f_{j±K/2} (+ ½ both on the middle
//!           column)]: 2·K values, the same for an image and its mirror image
//! ```
//!
//! Fitting samples `patches` positions uniformly at random, patch `i` from image
//! `i mod n` (as the paper's code), seeded. Extraction is, per image, one product of its
//! `P_r·P_c x D` whitened patches with the `K x D` centroids; images run in parallel
//! (rayon), each computed by the same instruction sequence, so the features have the same
//! bits at any thread count.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, ImageShape};
//! use imgclass_features::{KmeansFeatures, KmeansParams};
//! let mut g = imgclass_core::rng::SplitMix64::new(1);
//! let px: Vec<u8> = (0..8 * 3 * 8 * 8).map(|_| g.below(256) as u8).collect();
//! let ds = Dataset::new(px, vec![0; 8], ImageShape::new(3, 8, 8), ClassNames::new(["a"]))?;
//! let p = KmeansParams { receptive_field: 3, centroids: 5, patches: 200, ..Default::default() };
//! let km = KmeansFeatures::fit(&ds.all(), &p, 7)?;
//! assert_eq!((km.n_centroids(), km.patch_dim(), km.output_dim()), (5, 27, 20));
//! let f = km.transform(&ds.all())?;
//! assert_eq!(f.dim(), 20);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use imgclass_core::rng::SplitMix64;
use imgclass_core::{Dataset, ImageShape, RowShape, Rows, ShapeMismatch, Subset, Values};
use imgclass_linalg::KernelKind;
use imgclass_linalg::gemm::{Op, PackedI8Nt, PackedNt, gemm, sgemm};
use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::FeatureError;
use crate::kmeans::{EmptyCluster, KMeans, KmeansInit};

/// Rows per block when whitening or accumulating the covariance (fixed, so results do not
/// depend on the thread count).
const ROW_BLOCK: usize = 4096;

/// The parameters of [`KmeansFeatures`], named as in the paper; `Default` is the paper's
/// CIFAR-10 setting (except `iterations`, see there).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KmeansParams {
    /// Patch side `w` in pixels (the paper: 6).
    pub receptive_field: usize,
    /// Step `s` between extracted patches in pixels (the paper: 1).
    pub stride: usize,
    /// Dictionary size `K` (the paper: 1,600).
    pub centroids: usize,
    /// Random patches sampled from the training images to fit whitening and k-means (the
    /// paper's code: 400,000).
    pub patches: usize,
    /// k-means iterations (the paper's code: 50; default 10, for time: on CIFAR-10's 400,000
    /// patches and 1,600 centroids the 10th iteration lowers the inertia by 0.2 %, and the
    /// experiment's L2-SVM reaches 74.07 % test on them, docs/bench/experiment.md; a
    /// 50-iteration run was not measured).
    pub iterations: usize,
    /// ε of ZCA whitening, added to every covariance eigenvalue (the paper: 0.1).
    pub whitening_eps: f64,
    /// ε of per-patch contrast normalisation, added to the patch variance (the paper's code:
    /// 10, for pixels in 0..255).
    pub normalization_eps: f64,
    /// k-means initialisation (default: the paper's code, Gaussian · 0.1).
    pub init: KmeansInit,
    /// What k-means does with an empty cluster (default: the paper's code, zero it).
    pub empty_cluster: EmptyCluster,
    /// Make the features invariant to the image's left-right flip (not in the paper; default
    /// off). Whitening is fitted on the sampled patches and their mirror images, the
    /// dictionary holds `centroids / 2` learned shapes and their mirror images
    /// ([`KMeans::fit_mirrored`]), and each pooled value sums a centroid's responses over the
    /// left half with its mirror image's responses over the right half (the middle column,
    /// if any, half to each): `2·K` features, equal for an image and its mirror image.
    /// A linear model on them is one with equal weights on each of the `4·K` features and its
    /// mirror partner, which is where an L2-regularised linear model trained on every image
    /// and its mirror image ends (up to the standardisation's scale; docs/bench/features.md).
    pub flip: bool,
    /// The arithmetic of the extraction's distance products, whitened patches by centroids
    /// (default: f32). Not used when fitting.
    pub products: Products,
}

/// The arithmetic of [`KmeansFeatures`]' distance products (`w·c_k` for every whitened patch
/// `w` and centroid `c_k`: nearly all of an extraction's work).
///
/// ```text
/// I8:  s_w = max_t |w_t| / 127,  q_t = round(w_t · 127 / max_t |w_t|) ∈ [−127, 127]
///      (per patch, half to even; 0 if w = 0)
///      the same per centroid (s_k, q_kt), once per transform
///      w·c_k ≈ s_w s_k Σ_t q_t q_kt     (the sum exact, in i32)
///      ‖w‖² ≈ s_w² Σ_t q_t²,  ‖c_k‖² ≈ s_k² Σ_t q_kt²    (the distances of the quantised vectors)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Products {
    /// f32 products with [`sgemm`]'s bits.
    #[default]
    F32,
    /// Patches and centroids quantised to 8 bits (symmetric, one scale per vector, see the
    /// type's docs), the sums exact integers: AVX-512 VNNI's `vpdpbusd` ([`PackedI8Nt`])
    /// runs the extraction's product 3.8x faster than f32, and the Coates pipeline of
    /// `bench features` at 13.5x a numpy port, 73.95 % test as numpy's; the experiment's flip-invariant k-means-1600: L2-SVM 75.53 % against
    /// 75.49 %, its net 74.78 % against 75.12 % (docs/bench/features.md). Without VNNI the
    /// products run portable integer loops, the same values, slower than f32 (a warning is
    /// logged).
    I8,
}

impl Default for KmeansParams {
    fn default() -> Self {
        Self {
            receptive_field: 6,
            stride: 1,
            centroids: 1600,
            patches: 400_000,
            iterations: 10,
            whitening_eps: 0.1,
            normalization_eps: 10.0,
            init: KmeansInit::Gaussian,
            empty_cluster: EmptyCluster::Zero,
            flip: false,
            products: Products::F32,
        }
    }
}

impl KmeansParams {
    /// Checks the parameters against an input shape: images at least one receptive field
    /// large, sizes at least 1, finite positive epsilons.
    pub fn check(&self, input: RowShape) -> Result<ImageShape, FeatureError> {
        let bad = |name, reason: String| Err(FeatureError::InvalidParam { name, reason });
        let RowShape::Image(shape) = input else {
            return bad("kmeans", format!("k-means features take images, not {input}"));
        };
        if self.receptive_field == 0 || self.stride == 0 {
            return bad("receptive_field", "receptive field and stride must be at least 1".into());
        }
        if self.receptive_field > shape.height || self.receptive_field > shape.width {
            return bad(
                "receptive_field",
                format!("{0}x{0} patches do not fit in {shape} images", self.receptive_field),
            );
        }
        if shape.channels == 0 {
            return bad("kmeans", "images have no channel".into());
        }
        if self.patches == 0 {
            return bad("patches", "at least one patch must be sampled".into());
        }
        if self.centroids == 0 || self.centroids > self.patches {
            return bad(
                "centroids",
                format!(
                    "{} centroids for {} patches (need 1 to patches)",
                    self.centroids, self.patches
                ),
            );
        }
        if self.flip && !self.centroids.is_multiple_of(2) {
            return bad(
                "centroids",
                format!(
                    "{} centroids cannot be mirror pairs (flip needs an even number)",
                    self.centroids
                ),
            );
        }
        for (name, eps) in
            [("whitening_eps", self.whitening_eps), ("normalization_eps", self.normalization_eps)]
        {
            if !(eps.is_finite() && eps > 0.0) {
                return bad(name, format!("{eps} is not a finite positive number"));
            }
        }
        Ok(shape)
    }

    /// Values per patch for images of `shape`: `channels · receptive_field²`.
    pub fn patch_dim(&self, shape: ImageShape) -> usize {
        shape.channels * self.receptive_field * self.receptive_field
    }

    /// Features per image: `4·K`, or `2·K` with [`KmeansParams::flip`].
    pub fn output_dim(&self) -> usize {
        if self.flip { 2 * self.centroids } else { 4 * self.centroids }
    }
}

/// The left-right mirror of a patch's values (channel, row, column order): value `i` of the
/// mirrored patch is value `mirror[i]` of the patch. An involution.
pub fn patch_mirror(channels: usize, rf: usize) -> Vec<usize> {
    (0..channels * rf * rf).map(|i| i - i % rf + (rf - 1 - i % rf)).collect()
}

/// Patch positions per axis of length `n`: `(n − rf) / stride + 1`.
fn positions(n: usize, rf: usize, stride: usize) -> usize {
    (n - rf) / stride + 1
}

/// Copies the patch at `(y, x)` of `px` (an image of `shape`) into `out` (channel, row,
/// column order), as f32.
#[inline(always)]
fn copy_patch<T: Copy>(px: &[T], shape: ImageShape, rf: usize, y: usize, x: usize, out: &mut [f32])
where
    f32: From<T>,
{
    let plane = shape.height * shape.width;
    let mut o = 0;
    for ch in 0..shape.channels {
        for r in 0..rf {
            let src = &px[ch * plane + (y + r) * shape.width + x..][..rf];
            for (d, &s) in out[o..o + rf].iter_mut().zip(src) {
                *d = f32::from(s);
            }
            o += rf;
        }
    }
}

/// Samples `n` patches of `rf x rf` (all channels) from `images` (of `shape`): patch `i`
/// from image `i mod len` at a uniformly random position (seeded). `n x D`, row-major.
pub fn sample_patches(
    images: Rows<'_, u8>,
    shape: ImageShape,
    rf: usize,
    n: usize,
    seed: u64,
) -> Vec<f32> {
    let d = shape.channels * rf * rf;
    let mut out = vec![0f32; n * d];
    if images.is_empty() || rf == 0 || rf > shape.height || rf > shape.width {
        return out;
    }
    let mut g = SplitMix64::new(seed);
    let (ny, nx) = ((shape.height - rf + 1) as u64, (shape.width - rf + 1) as u64);
    for (i, o) in out.chunks_exact_mut(d.max(1)).enumerate() {
        let y = g.below(ny) as usize;
        let x = g.below(nx) as usize;
        copy_patch(images.row(i % images.len()), shape, rf, y, x, o);
    }
    out
}

/// Normalises one patch in place: `(p − mean(p)) / sqrt(var(p) + eps)`, var unbiased
/// (0 for a single value), moments in f64.
#[inline(always)]
pub fn normalize_patch(p: &mut [f32], eps: f64) {
    let d = p.len();
    if d == 0 {
        return;
    }
    let mean = sum4(p, f64::from) / d as f64;
    let ss = sum4(p, |v| (f64::from(v) - mean).powi(2));
    let var = if d > 1 { ss / (d - 1) as f64 } else { 0.0 };
    let inv = 1.0 / (var + eps).sqrt();
    for v in p.iter_mut() {
        *v = ((f64::from(*v) - mean) * inv) as f32;
    }
}

/// `Σ f(v)` in four interleaved f64 partial sums (`v_0 + v_4 + …`, …) added in order at the end:
/// a fixed order, so the same bits every run, and four independent chains instead of one
/// (a single chain's add latency was a fifth of a 100-centroid extraction).
#[inline(always)]
fn sum4(p: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let (mut a, mut b, mut c, mut d) = (0f64, 0f64, 0f64, 0f64);
    let mut quads = p.chunks_exact(4);
    for q in &mut quads {
        a += f(q[0]);
        b += f(q[1]);
        c += f(q[2]);
        d += f(q[3]);
    }
    for (i, &v) in quads.remainder().iter().enumerate() {
        match i {
            0 => a += f(v),
            1 => b += f(v),
            _ => c += f(v),
        }
    }
    (a + b) + (c + d)
}

/// [`normalize_patch`] on every row of `patches` (`n x d`), in parallel.
pub fn normalize_patches(patches: &mut [f32], d: usize, eps: f64) {
    patches.par_chunks_mut(d.max(1)).with_min_len(1024).for_each(|p| normalize_patch(p, eps));
}

/// A fitted ZCA whitening: `w = (x − mean) · matrix`, `matrix = V diag(1/sqrt(λ + ε)) Vᵀ`
/// (symmetric).
#[derive(Debug, Clone, PartialEq)]
pub struct Zca {
    /// The mean row `M` (d).
    pub mean: Vec<f32>,
    /// `P`, `d x d`, row-major, symmetric.
    pub matrix: Vec<f32>,
    /// The covariance eigenvalues `λ`, decreasing.
    pub eigenvalues: Vec<f64>,
}

impl Zca {
    /// Fits the whitening of the rows of `x` (`n x d`): mean and unbiased covariance (`/ (n −
    /// 1)`, sums in f64 over fixed blocks of rows added in order), eigendecomposition
    /// (nalgebra's `SymmetricEigen`, f64), eigenvalues below 0 (rounding) taken as 0.
    pub fn fit(x: &[f32], d: usize, eps: f64) -> Result<Self, FeatureError> {
        if d == 0 || x.is_empty() || !x.len().is_multiple_of(d) {
            return Err(FeatureError::EmptyTrain);
        }
        let n = x.len() / d;
        let block_sums: Vec<Vec<f64>> = x
            .par_chunks(ROW_BLOCK * d)
            .map(|b| {
                let mut s = vec![0f64; d];
                for r in b.chunks_exact(d) {
                    s.iter_mut().zip(r).for_each(|(s, &v)| *s += f64::from(v));
                }
                s
            })
            .collect();
        let mut mean = vec![0f64; d];
        for s in &block_sums {
            mean.iter_mut().zip(s).for_each(|(m, &v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let block_cov: Vec<Vec<f64>> = x
            .par_chunks(ROW_BLOCK * d)
            .map(|b| {
                let m = b.len() / d;
                let c: Vec<f64> = b
                    .chunks_exact(d)
                    .flat_map(|r| r.iter().zip(&mean).map(|(&v, &mu)| f64::from(v) - mu))
                    .collect();
                let mut out = vec![0f64; d * d];
                gemm(d, d, m, 1.0, &c, Op::T, &c, Op::N, 0.0, &mut out)
                    .expect("shapes follow from the chunking");
                out
            })
            .collect();
        let mut cov = DMatrix::<f64>::zeros(d, d);
        for b in &block_cov {
            for i in 0..d {
                for j in 0..d {
                    cov[(i, j)] += b[i * d + j];
                }
            }
        }
        cov /= (n.max(2) - 1) as f64;
        // exact symmetry before the eigensolver
        let cov = (&cov + cov.transpose()) * 0.5;
        if cov.iter().any(|v| !v.is_finite()) {
            return Err(FeatureError::InvalidParam {
                name: "kmeans",
                reason: "the patch covariance is not finite".into(),
            });
        }
        let eig = nalgebra::SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]).then(a.cmp(&b)));
        let lam: Vec<f64> = order.iter().map(|&k| eig.eigenvalues[k].max(0.0)).collect();
        let mut p = vec![0f64; d * d];
        for (t, &k) in order.iter().enumerate() {
            let v = eig.eigenvectors.column(k);
            let s = 1.0 / (lam[t] + eps).sqrt();
            for i in 0..d {
                let vi = v[i] * s;
                for j in 0..d {
                    p[i * d + j] += vi * v[j];
                }
            }
        }
        Ok(Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            matrix: p.iter().map(|&v| v as f32).collect(),
            eigenvalues: lam,
        })
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Whitens the rows of `x` (`n x d`) in place, in parallel over fixed blocks.
    pub fn apply(&self, x: &mut [f32]) {
        let d = self.dim();
        if d == 0 {
            return;
        }
        x.par_chunks_mut(ROW_BLOCK * d).for_each_init(
            || vec![0f32; ROW_BLOCK * d],
            |buf, b| {
                let m = b.len() / d;
                for r in b.chunks_exact_mut(d) {
                    r.iter_mut().zip(&self.mean).for_each(|(v, &mu)| *v -= mu);
                }
                let out = &mut buf[..m * d];
                sgemm(m, d, d, 1.0, b, Op::N, &self.matrix, Op::N, 0.0, out)
                    .expect("shapes follow from the chunking");
                b.copy_from_slice(out);
            },
        );
    }
}

/// What [`KmeansFeatures::fit_report`] reports beside the learner.
#[derive(Debug, Clone, PartialEq)]
pub struct KmeansFitReport {
    /// Sampling and normalising the patches, seconds.
    pub patches_seconds: f64,
    /// Fitting and applying the whitening, seconds.
    pub whitening_seconds: f64,
    /// k-means, seconds.
    pub kmeans_seconds: f64,
    /// The k-means inertia `Σ ‖x − c‖²` after each iteration.
    pub inertia: Vec<f64>,
    /// Clusters left empty at the end (with `flip`, a centroid and its mirror image are
    /// empty together: when no patch chose either).
    pub empty: usize,
}

/// The fitted feature learner: whitening and dictionary (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct KmeansFeatures {
    params: KmeansParams,
    input: ImageShape,
    /// `K x D`.
    centroids: Vec<f32>,
    /// `D`.
    mean: Vec<f32>,
    /// `D x D`, symmetric.
    whitening: Vec<f32>,
    /// `||c_k||²` (f64 sum, rounded once).
    c2: Vec<f32>,
    /// `M · P` (subtracted after multiplying the normalised patches by `P`).
    mean_w: Vec<f32>,
}

impl KmeansFeatures {
    /// Fits whitening and dictionary on random patches of the images of `train` (seeded).
    pub fn fit(train: &Subset, params: &KmeansParams, seed: u64) -> Result<Self, FeatureError> {
        Self::fit_report(train, params, seed).map(|(features, _)| features)
    }

    /// [`KmeansFeatures::fit`], also reporting each phase's time, the k-means inertia per
    /// iteration and the clusters left empty (what `cargo xtask bench features` tabulates).
    pub fn fit_report(
        train: &Subset,
        params: &KmeansParams,
        seed: u64,
    ) -> Result<(Self, KmeansFitReport), FeatureError> {
        let shape = params.check(train.shape())?;
        if train.is_empty() {
            return Err(FeatureError::EmptyTrain);
        }
        let Values::Pixels(rows) = train.values() else {
            return Err(FeatureError::Shape(ShapeMismatch {
                expected: train.shape(),
                found: train.shape(),
            }));
        };
        let d = params.patch_dim(shape);
        let root = SplitMix64::new(seed);
        let t0 = std::time::Instant::now();
        let mut patches = sample_patches(
            rows,
            shape,
            params.receptive_field,
            params.patches,
            root.fork(0).next_u64(),
        );
        normalize_patches(&mut patches, d, params.normalization_eps);
        let t1 = std::time::Instant::now();
        let mirror = patch_mirror(shape.channels, params.receptive_field);
        let zca = if params.flip {
            // the patches and their mirror images: the whitening commutes with the flip
            let mut both = Vec::with_capacity(2 * patches.len());
            both.extend_from_slice(&patches);
            both.extend(patches.chunks_exact(d).flat_map(|p| mirror.iter().map(|&i| p[i])));
            Zca::fit(&both, d, params.whitening_eps)?
        } else {
            Zca::fit(&patches, d, params.whitening_eps)?
        };
        zca.apply(&mut patches);
        let t2 = std::time::Instant::now();
        let kmeans = KMeans::new(params.centroids)
            .iterations(params.iterations)
            .init(params.init)
            .empty(params.empty_cluster)
            .seed(root.fork(1).next_u64());
        let fit = if params.flip {
            kmeans.fit_mirrored(&patches, d, &mirror)?
        } else {
            kmeans.fit(&patches, d)?
        };
        let report = KmeansFitReport {
            patches_seconds: (t1 - t0).as_secs_f64(),
            whitening_seconds: (t2 - t1).as_secs_f64(),
            kmeans_seconds: t2.elapsed().as_secs_f64(),
            empty: if params.flip {
                // a centroid is empty when neither it nor its mirror image drew a patch
                let h = params.centroids / 2;
                2 * (0..h).filter(|&j| fit.counts[j] + fit.counts[j + h] == 0).count()
            } else {
                fit.counts.iter().filter(|&&c| c == 0).count()
            },
            inertia: fit.inertia,
        };
        tracing::info!(
            patches_and_whitening_s = report.patches_seconds + report.whitening_seconds,
            kmeans_s = report.kmeans_seconds,
            inertia = ?report.inertia,
            empty = report.empty,
            "kmeans features fitted"
        );
        let features = Self::from_parts(*params, shape, fit.centroids, zca.mean, zca.matrix)?;
        Ok((features, report))
    }

    /// Rebuilds the fitted learner from its parts (a loaded model, or phases run
    /// separately): `centroids` `K x D`, `mean` `D`, `whitening` `D x D`, all finite, with
    /// `K = params.centroids` and `D = params.patch_dim(input)`.
    pub fn from_parts(
        params: KmeansParams,
        input: ImageShape,
        centroids: Vec<f32>,
        mean: Vec<f32>,
        whitening: Vec<f32>,
    ) -> Result<Self, FeatureError> {
        params.check(RowShape::Image(input))?;
        let d = params.patch_dim(input);
        let k = params.centroids;
        let corrupt = |reason: String| Err(FeatureError::Corrupt { reason });
        if centroids.len() != k * d || mean.len() != d || whitening.len() != d * d {
            return corrupt(format!(
                "kmeans parts of {} / {} / {} values, expected {} / {d} / {}",
                centroids.len(),
                mean.len(),
                whitening.len(),
                k * d,
                d * d
            ));
        }
        if centroids.iter().chain(&mean).chain(&whitening).any(|v| !v.is_finite()) {
            return corrupt("kmeans parts hold a non-finite value".into());
        }
        if params.flip {
            let mirror = patch_mirror(input.channels, params.receptive_field);
            let (first, second) = centroids.split_at(k / 2 * d);
            let closed = first
                .chunks_exact(d)
                .zip(second.chunks_exact(d))
                .all(|(c, mc)| mirror.iter().zip(mc).all(|(&i, &v)| v.to_bits() == c[i].to_bits()));
            if !closed {
                return corrupt(
                    "a flip dictionary's second half must mirror its first (centroid j + K/2 \
                     is centroid j's left-right mirror image)"
                        .into(),
                );
            }
        }
        let c2 = centroids
            .chunks_exact(d)
            .map(|c| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() as f32)
            .collect();
        let mean_w = (0..d)
            .map(|j| {
                (0..d).map(|i| f64::from(mean[i]) * f64::from(whitening[i * d + j])).sum::<f64>()
                    as f32
            })
            .collect();
        Ok(Self { params, input, centroids, mean, whitening, c2, mean_w })
    }

    /// The parameters.
    pub fn params(&self) -> &KmeansParams {
        &self.params
    }

    /// The image shape it takes.
    pub fn input(&self) -> ImageShape {
        self.input
    }

    /// The dictionary, `K x D` row-major, each row one whitened patch in channel, row,
    /// column order (see [`KmeansFeatures::patch_dim`]).
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// The whitening mean `M` (`D`).
    pub fn whitening_mean(&self) -> &[f32] {
        &self.mean
    }

    /// The whitening matrix `P` (`D x D`, row-major, symmetric).
    pub fn whitening(&self) -> &[f32] {
        &self.whitening
    }

    /// Patch side in pixels.
    pub fn receptive_field(&self) -> usize {
        self.params.receptive_field
    }

    /// Image channels (a patch holds `channels · receptive_field²` values).
    pub fn channels(&self) -> usize {
        self.input.channels
    }

    /// `K`.
    pub fn n_centroids(&self) -> usize {
        self.params.centroids
    }

    /// `D = channels · receptive_field²`.
    pub fn patch_dim(&self) -> usize {
        self.params.patch_dim(self.input)
    }

    /// Features per image: `4 · K`, or `2 · K` with [`KmeansParams::flip`].
    pub fn output_dim(&self) -> usize {
        self.params.output_dim()
    }

    /// Patch positions `(rows, columns)` per image.
    pub fn grid(&self) -> (usize, usize) {
        let (rf, s) = (self.params.receptive_field, self.params.stride);
        (positions(self.input.height, rf, s), positions(self.input.width, rf, s))
    }

    /// The features of every image of `x` (of the fitted shape).
    pub fn transform(&self, x: &Subset) -> Result<Dataset, FeatureError> {
        RowShape::Image(self.input).expect(x.shape())?;
        let Values::Pixels(rows) = x.values() else {
            return Err(FeatureError::Shape(ShapeMismatch {
                expected: RowShape::Image(self.input),
                found: x.shape(),
            }));
        };
        let out = self.transform_rows(rows)?;
        Ok(x.with_features(out, self.output_dim())?)
    }

    /// The features of every image of `rows` (each of the fitted shape), `n x 4K`. The
    /// distance products run on the kernel [`KernelKind::detect`](imgclass_linalg::KernelKind)
    /// picks (the same bits on every kernel; an invalid `IMGCLASS_KERNEL` is an error).
    pub fn transform_rows(&self, rows: Rows<'_, u8>) -> Result<Vec<f32>, FeatureError> {
        let kernel = KernelKind::detect().map_err(imgclass_linalg::gemm::GemmError::Kernel)?;
        self.transform_rows_with(kernel, rows)
    }

    /// [`Self::transform_rows`] on `kernel` (which this CPU must run).
    fn transform_rows_with(
        &self,
        kernel: KernelKind,
        rows: Rows<'_, u8>,
    ) -> Result<Vec<f32>, FeatureError> {
        let dim = self.output_dim();
        let (k, d) = (self.n_centroids(), self.patch_dim());
        // the whitening's right operand as PackedNt takes it: Pᵀ (P is symmetric when fitted
        // here, but a loaded model's need not be to the bit)
        let pt: Vec<f32> = (0..d * d).map(|t| self.whitening[(t % d) * d + t / d]).collect();
        let dictionary = match self.params.products {
            Products::F32 => Dictionary::F32(PackedNt::with_kernel(kernel, &self.centroids, k, d)?),
            Products::I8 => {
                let mut q = vec![0i8; k * d];
                let (mut scales, mut c2) = (Vec::with_capacity(k), Vec::with_capacity(k));
                for (c, qc) in
                    self.centroids.chunks_exact(d.max(1)).zip(q.chunks_exact_mut(d.max(1)))
                {
                    let (s, q2) = quantize(c, |t, v| qc[t] = v as i8);
                    scales.push(s);
                    c2.push(quantized_norm2(s, q2));
                }
                let packed = PackedI8Nt::with_kernel(kernel, &q, k, d)?;
                if !packed.is_simd() {
                    tracing::warn!(
                        "8-bit extraction products without AVX-512 VNNI: portable integer loops, \
                         slower than the f32 products"
                    );
                }
                Dictionary::I8 { packed, scales, c2 }
            }
        };
        let packed =
            Packed { whitening: PackedNt::with_kernel(kernel, &pt, d, d)?, dictionary, kernel };
        let mut out = vec![0f32; rows.len() * dim];
        out.par_chunks_mut(dim.max(1)).enumerate().for_each_init(
            || Scratch::new(self),
            |sc, (i, o)| self.one(rows.row(i), &packed, sc, o),
        );
        Ok(out)
    }

    /// One image's features: [`Self::one_body`] compiled for `kernel` (the wider vectors
    /// serve the element-wise work around the products: normalisation, square roots,
    /// pooling; the same operations in the same order, so the same bits on every kernel).
    fn one(&self, px: &[u8], packed: &Packed, sc: &mut Scratch, out: &mut [f32]) {
        match packed.kernel {
            // SAFETY: `kernel` came from KernelKind::detect (through the packed product),
            // which checked that this CPU has the tier's features
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512 => unsafe { self.one_avx512(px, packed, sc, out) },
            // SAFETY: as above
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { self.one_avx2(px, packed, sc, out) },
            _ => self.one_body(px, packed, sc, out),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn one_avx512(&self, px: &[u8], packed: &Packed, sc: &mut Scratch, out: &mut [f32]) {
        self.one_body(px, packed, sc, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn one_avx2(&self, px: &[u8], packed: &Packed, sc: &mut Scratch, out: &mut [f32]) {
        self.one_body(px, packed, sc, out)
    }

    #[inline(always)]
    fn one_body(&self, px: &[u8], packed: &Packed, sc: &mut Scratch, out: &mut [f32]) {
        let (rf, s) = (self.params.receptive_field, self.params.stride);
        let (pr, pc) = self.grid();
        let (d, k) = (self.patch_dim(), self.n_centroids());
        let np = pr * pc;
        // the image in f32 once, so that each of the overlapping patches copies slices
        for (f, &v) in sc.image.iter_mut().zip(px) {
            *f = f32::from(v);
        }
        for (t, p) in sc.patches.chunks_exact_mut(d).enumerate() {
            copy_patch(&sc.image, self.input, rf, (t / pc) * s, (t % pc) * s, p);
            normalize_patch(p, self.params.normalization_eps);
        }
        // w = x P − M P: the product, then −M P added (one rounding, as sgemm's β = 1 does)
        packed
            .whitening
            .product(&sc.patches, np, &mut sc.white)
            .expect("scratch sized for the grid");
        for r in sc.white.chunks_exact_mut(d) {
            r.iter_mut().zip(&self.mean_w).for_each(|(v, &m)| *v += -m);
        }
        let (hr, hc) = (pr.div_ceil(2), pc.div_ceil(2));
        out.fill(0.0);
        // the distance products by blocks of patches, each block finished and pooled while
        // it is in L2
        let Scratch { white, dots, codes, scales, norms, idots, .. } = sc;
        match &packed.dictionary {
            Dictionary::F32(dictionary) => {
                for (b, white) in white.chunks(BLOCK_PATCHES * d.max(1)).enumerate() {
                    let rows = white.len() / d.max(1);
                    let dots = &mut dots[..rows * k];
                    dictionary.product(white, rows, dots).expect("scratch sized for the grid");
                    for (j, (row, w)) in
                        dots.chunks_exact_mut(k).zip(white.chunks_exact(d)).enumerate()
                    {
                        let x2 = sum4(w, |v| f64::from(v) * f64::from(v)) as f32;
                        finish_row(row, x2, &self.c2);
                        self.pool(row, b * BLOCK_PATCHES + j, pc, (hr, hc), out);
                    }
                }
            }
            Dictionary::I8 { packed: dictionary, scales: cs, c2 } => {
                for (t, (w, code)) in
                    white.chunks_exact(d).zip(codes.chunks_exact_mut(d)).enumerate()
                {
                    let (s, q2) = quantize(w, |i, q| code[i] = (q + 128) as u8);
                    scales[t] = s;
                    norms[t] = quantized_norm2(s, q2);
                }
                for (b, code) in codes.chunks(BLOCK_PATCHES * d.max(1)).enumerate() {
                    let rows = code.len() / d.max(1);
                    let (dots, idots) = (&mut dots[..rows * k], &mut idots[..rows * k]);
                    dictionary.product(code, rows, idots).expect("scratch sized for the grid");
                    for (j, (row, ir)) in
                        dots.chunks_exact_mut(k).zip(idots.chunks_exact(k)).enumerate()
                    {
                        let t = b * BLOCK_PATCHES + j;
                        finish_row_i8(row, ir, scales[t], cs, norms[t], c2);
                        self.pool(row, t, pc, (hr, hc), out);
                    }
                }
            }
        }
    }

    /// Adds patch `t`'s finished row of activations to its pooling region of `out` (`pc`
    /// patches a row of the grid, `(hr, hc)` the halves' sizes).
    #[inline(always)]
    fn pool(&self, row: &[f32], t: usize, pc: usize, (hr, hc): (usize, usize), out: &mut [f32]) {
        let k = row.len();
        let (y, x) = (t / pc, t % pc);
        if self.params.flip {
            // (top/bottom, j): centroid j on the left, its mirror (j ± K/2) on the right
            let o = &mut out[usize::from(y >= hr) * k..][..k];
            let (a, b) = row.split_at(k / 2);
            match (2 * x + 1).cmp(&pc) {
                std::cmp::Ordering::Less => add(o, a, b),
                std::cmp::Ordering::Greater => add(o, b, a),
                std::cmp::Ordering::Equal => {
                    // o_j += (row_j + row_{j±K/2}) / 2, each half in one pass
                    let (lo, hi) = o.split_at_mut(k / 2);
                    for ((l, h), (&u, &v)) in lo.iter_mut().zip(hi).zip(a.iter().zip(b)) {
                        *l += 0.5 * (u + v);
                        *h += 0.5 * (v + u);
                    }
                }
            }
        } else {
            let q = usize::from(y >= hr) + 2 * usize::from(x >= hc);
            for (o, &f) in out[q * k..][..k].iter_mut().zip(row.iter()) {
                *o += f;
            }
        }
    }
}

/// Quantises `v` to 8 bits as [`Products::I8`] defines: calls `out(t, q_t)` with `q_t =
/// round(v_t · 127 / m)` (half to even, `m = max_t |v_t|`), returns the scale `s = m / 127`
/// and `Σ q_t²` (exact).
#[inline(always)]
fn quantize(v: &[f32], mut out: impl FnMut(usize, i32)) -> (f32, i64) {
    // the largest magnitude in 16 lanes (`f32::max` is a NaN-aware call, one element at a
    // time: a fifth of the 8-bit extraction's element-wise work); NaN compares false, so it
    // is skipped as `f32::max` skips it
    let mut lanes = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail = chunks.remainder();
    let larger = |l: &mut f32, x: f32| *l = if x.abs() > *l { x.abs() } else { *l };
    for c in chunks {
        lanes.iter_mut().zip(c).for_each(|(l, &x)| larger(l, x));
    }
    lanes.iter_mut().zip(tail).for_each(|(l, &x)| larger(l, x));
    let mut m = 0f32;
    lanes.iter().for_each(|&x| larger(&mut m, x));
    if !(m > 0.0 && m.is_finite()) {
        (0..v.len()).for_each(|t| out(t, 0));
        return (0.0, 0);
    }
    let inv = 127.0 / m;
    let mut q2 = 0i64;
    for (t, &x) in v.iter().enumerate() {
        let q = (x * inv).round_ties_even().clamp(-127.0, 127.0) as i32;
        q2 += i64::from(q * q);
        out(t, q);
    }
    (m / 127.0, q2)
}

/// `s² · q2` rounded once to f32: the squared norm of a quantised vector.
#[inline(always)]
fn quantized_norm2(s: f32, q2: i64) -> f32 {
    (f64::from(s) * f64::from(s) * q2 as f64) as f32
}

/// Patches per block of the distance product in the extraction: their `K` dot products
/// (48 x 1,600 x 4 B = 300 KiB) stay in L2, beside the packed dictionary, until they are
/// finished and pooled.
const BLOCK_PATCHES: usize = 48;

/// Turns a row of dot products `x·c_k` into triangle activations in place:
/// `z_k = sqrt(max(0, x2 + c2_k − 2 dot_k))`, `f_k = max(0, mean(z) − z_k)`; the mean summed
/// in 16 fixed partial sums.
#[inline(always)]
fn finish_row(row: &mut [f32], x2: f32, c2: &[f32]) {
    for (v, &c) in row.iter_mut().zip(c2) {
        *v = distance(x2, c, *v);
    }
    triangle(row);
}

/// [`finish_row`] for [`Products::I8`]: `row` gets the triangle activations of the exact
/// sums `sums` of the quantised patch (scale `s`, squared norm `x2`) with the quantised
/// centroids (scales `cs`, squared norms `c2`), their dots `(s · s_k) · Σ` (exact in f32: `|Σ|
/// <= 108 · 127² < 2^24` for 6x6x3 patches, rounded beyond 1,040 values a patch).
#[inline(always)]
fn finish_row_i8(row: &mut [f32], sums: &[i32], s: f32, cs: &[f32], x2: f32, c2: &[f32]) {
    for ((v, &i), (&sk, &c)) in row.iter_mut().zip(sums).zip(cs.iter().zip(c2)) {
        *v = distance(x2, c, s * sk * i as f32);
    }
    triangle(row);
}

/// `sqrt(max(0, x2 + c2 − 2 dot))`: 0 where the rounded square is ≤ 0 (or NaN), one unmasked
/// vector square root.
#[inline(always)]
fn distance(x2: f32, c2: f32, dot: f32) -> f32 {
    (x2 + c2 - 2.0 * dot).max(0.0).sqrt()
}

/// Distances `z_k` to triangle activations in place: `f_k = max(0, mean(z) − z_k)`, the mean
/// summed in 16 fixed partial sums.
#[inline(always)]
fn triangle(row: &mut [f32]) {
    // the 16 partial sums in their own pass, over whole chunks, so that they stay in
    // registers (summed in the pass above, they went through the stack at every chunk)
    let mut part = [0f32; 16];
    let chunks = row.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (p, &z) in part.iter_mut().zip(c) {
            *p += z;
        }
    }
    for (p, &z) in part.iter_mut().zip(tail) {
        *p += z;
    }
    let mean = part.iter().sum::<f32>() / row.len().max(1) as f32;
    for v in row.iter_mut() {
        let f = mean - *v;
        *v = if f > 0.0 { f } else { 0.0 };
    }
}

/// `o += [a, b]` (the two halves of a pooled row). Two slice loops, not one over
/// `a.iter().chain(b)`: the chained iterator does not vectorise, and was a fifth of the
/// flip extraction's time.
#[inline(always)]
fn add(o: &mut [f32], a: &[f32], b: &[f32]) {
    let (lo, hi) = o.split_at_mut(a.len());
    for (o, &f) in lo.iter_mut().zip(a) {
        *o += f;
    }
    for (o, &f) in hi.iter_mut().zip(b) {
        *o += f;
    }
}

/// The two products of an extraction, packed once per call, and the kernel they (and the
/// element-wise work around them) run on.
struct Packed {
    /// `x·P`, patches by the whitening matrix.
    whitening: PackedNt,
    /// `w·Cᵀ`, whitened patches by the dictionary.
    dictionary: Dictionary,
    kernel: KernelKind,
}

/// The dictionary as the distance products take it.
enum Dictionary {
    /// f32 centroids ([`Products::F32`]).
    F32(PackedNt),
    /// Quantised centroids ([`Products::I8`]): their scales `s_k` and squared norms.
    I8 { packed: PackedI8Nt, scales: Vec<f32>, c2: Vec<f32> },
}

/// Per-thread buffers of one image's extraction.
struct Scratch {
    image: Vec<f32>,
    patches: Vec<f32>,
    white: Vec<f32>,
    dots: Vec<f32>,
    /// [`Products::I8`]: the patches' codes, scales and squared norms, and a block's sums.
    codes: Vec<u8>,
    scales: Vec<f32>,
    norms: Vec<f32>,
    idots: Vec<i32>,
}

impl Scratch {
    fn new(f: &KmeansFeatures) -> Self {
        let (pr, pc) = f.grid();
        let np = pr * pc;
        // the 8-bit buffers only for Products::I8
        let nq = if f.params.products == Products::I8 { np } else { 0 };
        Self {
            image: vec![0f32; f.input().len()],
            patches: vec![0f32; np * f.patch_dim()],
            white: vec![0f32; np * f.patch_dim()],
            dots: vec![0f32; np.min(BLOCK_PATCHES) * f.n_centroids()],
            codes: vec![0u8; nq * f.patch_dim()],
            scales: vec![0f32; nq],
            norms: vec![0f32; nq],
            idots: vec![0i32; nq.min(BLOCK_PATCHES) * f.n_centroids()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::ClassNames;

    fn images(n: usize, shape: ImageShape, seed: u64) -> Dataset {
        let mut g = SplitMix64::new(seed);
        // smooth-ish images: a random gradient plus noise, so patches are correlated
        let mut px = Vec::with_capacity(n * shape.len());
        for _ in 0..n {
            let (a, b, c) = (g.next_f64() * 20.0, g.next_f64() * 20.0, g.next_f64() * 100.0);
            for ch in 0..shape.channels {
                for y in 0..shape.height {
                    for x in 0..shape.width {
                        let v = c
                            + a * y as f64
                            + b * x as f64
                            + 10.0 * ch as f64
                            + 30.0 * g.next_normal();
                        px.push(v.clamp(0.0, 255.0) as u8);
                    }
                }
            }
        }
        Dataset::new(px, vec![0; n], shape, ClassNames::new(["a"])).expect("valid")
    }

    #[test]
    fn normalisation_uses_the_unbiased_variance() {
        let mut p = [0.0f32, 2.0, 4.0];
        normalize_patch(&mut p, 10.0);
        // mean 2, var (4 + 0 + 4) / 2 = 4, sqrt(4 + 10)
        let s = 14f64.sqrt();
        for (a, b) in p.iter().zip([-2.0 / s, 0.0, 2.0 / s]) {
            assert!((f64::from(*a) - b).abs() < 1e-6);
        }
    }

    #[test]
    fn zca_is_the_inverse_square_root_of_the_regularised_covariance() {
        let (n, d, eps) = (3000, 6, 0.1);
        let mut g = SplitMix64::new(4);
        let mut x = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z: Vec<f64> = (0..3).map(|_| g.next_normal()).collect();
            for j in 0..d {
                x.push((z[j % 3] * (j + 1) as f64 + 0.2 * g.next_normal() + j as f64) as f32);
            }
        }
        let zca = Zca::fit(&x, d, eps).expect("fit");
        // naive f64 mean and unbiased covariance
        let mean: Vec<f64> = (0..d)
            .map(|j| x.iter().skip(j).step_by(d).map(|&v| f64::from(v)).sum::<f64>() / n as f64)
            .collect();
        let mut c = vec![0f64; d * d];
        for r in x.chunks_exact(d) {
            for i in 0..d {
                for j in 0..d {
                    c[i * d + j] += (f64::from(r[i]) - mean[i]) * (f64::from(r[j]) - mean[j]);
                }
            }
        }
        c.iter_mut().for_each(|v| *v /= (n - 1) as f64);
        let p: Vec<f64> = zca.matrix.iter().map(|&v| f64::from(v)).collect();
        for i in 0..d {
            assert!((f64::from(zca.mean[i]) - mean[i]).abs() < 1e-4);
            for j in 0..d {
                assert!((p[i * d + j] - p[j * d + i]).abs() < 1e-6, "symmetric");
            }
        }
        // P (C + eps I) P = I: P is (C + eps I)^(-1/2), with P symmetric positive definite
        let mul = |a: &[f64], b: &[f64]| {
            let mut o = vec![0f64; d * d];
            for i in 0..d {
                for k in 0..d {
                    for j in 0..d {
                        o[i * d + j] += a[i * d + k] * b[k * d + j];
                    }
                }
            }
            o
        };
        let mut ce = c.clone();
        (0..d).for_each(|i| ce[i * d + i] += eps);
        let id = mul(&mul(&p, &ce), &p);
        for i in 0..d {
            for j in 0..d {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((id[i * d + j] - want).abs() < 1e-3, "({i},{j}) {}", id[i * d + j]);
            }
        }
        // the whitened sample covariance is V diag(λ/(λ+ε)) Vᵀ: its trace is Σ λ/(λ+ε)
        let mut w = x.clone();
        zca.apply(&mut w);
        let tr: f64 = (0..d)
            .map(|j| {
                w.iter().skip(j).step_by(d).map(|&v| f64::from(v).powi(2)).sum::<f64>()
                    / (n - 1) as f64
            })
            .sum();
        let want: f64 = zca.eigenvalues.iter().map(|l| l / (l + eps)).sum();
        assert!((tr - want).abs() < 1e-3 * want, "{tr} vs {want}");
        assert!(zca.eigenvalues.windows(2).all(|w| w[0] >= w[1]));
    }

    /// The features of one image written out per patch in f64 (the paper's code, loop form).
    fn naive(km: &KmeansFeatures, px: &[u8]) -> Vec<f64> {
        let s = km.input();
        let (rf, st) = (km.receptive_field(), km.params().stride);
        let (d, k) = (km.patch_dim(), km.n_centroids());
        let pr = (s.height - rf) / st + 1;
        let pc = (s.width - rf) / st + 1;
        let (hr, hc) = ((pr as f64 / 2.0).round() as usize, (pc as f64 / 2.0).round() as usize);
        let flip = km.params().flip;
        let mut out = vec![0f64; if flip { 2 * k } else { 4 * k }];
        for yi in 0..pr {
            for xi in 0..pc {
                let mut p = Vec::with_capacity(d);
                for ch in 0..s.channels {
                    for r in 0..rf {
                        for c in 0..rf {
                            let idx =
                                ch * s.height * s.width + (yi * st + r) * s.width + xi * st + c;
                            p.push(f64::from(px[idx]));
                        }
                    }
                }
                let m = p.iter().sum::<f64>() / d as f64;
                let v = p.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (d - 1) as f64;
                let xn: Vec<f64> = p
                    .iter()
                    .map(|x| (x - m) / (v + km.params().normalization_eps).sqrt())
                    .collect();
                let w: Vec<f64> = (0..d)
                    .map(|j| {
                        (0..d)
                            .map(|i| {
                                (xn[i] - f64::from(km.whitening_mean()[i]))
                                    * f64::from(km.whitening()[i * d + j])
                            })
                            .sum()
                    })
                    .collect();
                // Products::I8: both sides rounded to 127 steps of their largest magnitude
                let i8 = km.params().products == Products::I8;
                let quant = |v: Vec<f64>| -> Vec<f64> {
                    let m = v.iter().fold(0f64, |a, &x| a.max(x.abs()));
                    if !i8 || m == 0.0 {
                        return v;
                    }
                    v.iter().map(|&x| (x * 127.0 / m).round_ties_even() * m / 127.0).collect()
                };
                let w = quant(w);
                let z: Vec<f64> = km
                    .centroids()
                    .chunks_exact(d)
                    .map(|c| {
                        let c = quant(c.iter().map(|&v| f64::from(v)).collect());
                        w.iter().zip(&c).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt()
                    })
                    .collect();
                let mu = z.iter().sum::<f64>() / k as f64;
                let f: Vec<f64> = z.iter().map(|z| (mu - z).max(0.0)).collect();
                if flip {
                    // feature (half, j): f_j on the left, f of j's mirror on the right,
                    // both halved on the middle column
                    let m = |j: usize| (j + k / 2) % k;
                    let v = if yi < hr { 0 } else { 1 };
                    for j in 0..k {
                        let x2 = 2 * xi + 1;
                        out[v * k + j] += if x2 < pc {
                            f[j]
                        } else if x2 > pc {
                            f[m(j)]
                        } else {
                            0.5 * (f[j] + f[m(j)])
                        };
                    }
                } else {
                    let q = if yi < hr { 0 } else { 1 } + if xi < hc { 0 } else { 2 };
                    for j in 0..k {
                        out[q * k + j] += f[j];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn triangle_features_match_a_naive_per_patch_loop() {
        triangle_features_match(Products::F32, 1e-4);
    }

    /// The 8-bit products against the same loop on quantised vectors (the loop without the
    /// quantisation is 3e-3 of the scale away: the tolerance tells them apart; a value at a
    /// step's midpoint could round the other way in f32 than in f64, which these seeded
    /// images do not meet).
    #[test]
    fn i8_features_match_a_naive_loop_on_quantised_vectors() {
        triangle_features_match(Products::I8, 2e-4);
    }

    fn triangle_features_match(products: Products, tolerance: f64) {
        for (shape, rf, stride, flip) in [
            (ImageShape::new(3, 9, 8), 3, 1, false),
            (ImageShape::new(3, 10, 11), 4, 2, false),
            (ImageShape::new(1, 7, 7), 2, 3, false),
            // 6 x 7 positions: an even and an odd grid width (a middle column)
            (ImageShape::new(3, 9, 8), 3, 1, true),
            (ImageShape::new(3, 9, 9), 3, 1, true),
            (ImageShape::new(1, 11, 11), 3, 2, true),
        ] {
            let ds = images(30, shape, 3);
            let p = KmeansParams {
                receptive_field: rf,
                stride,
                centroids: if flip { 8 } else { 7 },
                patches: 500,
                flip,
                products,
                ..Default::default()
            };
            let km = KmeansFeatures::fit(&ds.all(), &p, 1).expect("fit");
            let f = km.transform(&ds.all()).expect("transform");
            let rows = f.features().expect("features");
            let px = ds.pixels().expect("pixels");
            for i in 0..4 {
                let want = naive(&km, px.row(i));
                let scale = want.iter().fold(1.0f64, |a, &b| a.max(b.abs()));
                for (j, (&a, &b)) in rows.row(i).iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(a) - b).abs() < tolerance * scale,
                        "{shape} image {i} feature {j}: {a} vs {b} ({products:?})"
                    );
                }
                assert!(want.iter().any(|&v| v > 0.0));
            }
        }
    }

    #[test]
    fn flip_features_are_the_same_for_an_image_and_its_mirror_image() {
        let shape = ImageShape::new(3, 12, 12);
        let ds = images(40, shape, 6);
        let p = KmeansParams {
            receptive_field: 4,
            centroids: 10,
            patches: 3000,
            flip: true,
            ..Default::default()
        };
        let km = KmeansFeatures::fit(&ds.all(), &p, 2).expect("fit");
        assert_eq!(km.output_dim(), 20);
        // empty clusters come in mirror pairs, zeroed (the default rule): with many centroids
        // for few patches the report counts exactly the zeroed pairs
        let many = KmeansParams { centroids: 200, patches: 400, iterations: 3, ..p };
        let (sparse, report) = KmeansFeatures::fit_report(&ds.all(), &many, 2).expect("fit");
        let d = sparse.patch_dim();
        let zeroed =
            sparse.centroids()[..100 * d].chunks_exact(d).filter(|c| c.iter().all(|&v| v == 0.0));
        assert_eq!(report.empty, 2 * zeroed.count());
        let (d, k) = (km.patch_dim(), km.n_centroids());
        // the whitening commutes with the patch mirror, the dictionary is closed under it
        let m = patch_mirror(3, 4);
        let w = km.whitening();
        let scale = w.iter().fold(0f32, |a, &b| a.max(b.abs()));
        for i in 0..d {
            assert!((km.whitening_mean()[m[i]] - km.whitening_mean()[i]).abs() < 1e-4);
            for j in 0..d {
                assert!((w[m[i] * d + m[j]] - w[i * d + j]).abs() < 1e-4 * scale, "({i},{j})");
            }
        }
        let c = km.centroids();
        for j in 0..k / 2 {
            for i in 0..d {
                assert_eq!(c[(j + k / 2) * d + i], c[j * d + m[i]]);
            }
        }
        // every image flipped left-right
        let px = ds.pixels().expect("pixels");
        let flipped: Vec<u8> = (0..40)
            .flat_map(|n| {
                let r = px.row(n);
                (0..3 * 12 * 12).map(move |i| r[i - i % 12 + 11 - i % 12])
            })
            .collect();
        let fl = Dataset::new(flipped, vec![0; 40], shape, ClassNames::new(["a"])).expect("ds");
        let a = km.transform(&ds.all()).expect("transform");
        let b = km.transform(&fl.all()).expect("transform");
        let (a, b) = (a.features().expect("f"), b.features().expect("f"));
        for n in 0..40 {
            let scale = a.row(n).iter().fold(1f32, |s, &v| s.max(v.abs()));
            for (j, (&u, &v)) in a.row(n).iter().zip(b.row(n)).enumerate() {
                assert!((u - v).abs() < 1e-4 * scale, "image {n} feature {j}: {u} vs {v}");
            }
        }
        // without flip they differ (the check above can fail)
        let plain =
            KmeansFeatures::fit(&ds.all(), &KmeansParams { flip: false, ..p }, 2).expect("fit");
        let (u, v) = (
            plain.transform_rows(px).expect("extracts"),
            plain.transform_rows(fl.pixels().expect("px")).expect("extracts"),
        );
        let gap = u.iter().zip(&v).fold(0f32, |g, (a, b)| g.max((a - b).abs()));
        assert!(gap > 1e-2 * u.iter().fold(0f32, |s, &a| s.max(a)), "{gap}");
        // a flip dictionary whose halves do not mirror is refused; odd K is refused
        let mut bad = c.to_vec();
        bad[k / 2 * d] += 1.0;
        let e = KmeansFeatures::from_parts(
            p,
            shape,
            bad,
            km.whitening_mean().to_vec(),
            km.whitening().to_vec(),
        );
        assert!(matches!(e, Err(FeatureError::Corrupt { .. })), "{e:?}");
        let e = KmeansFeatures::fit(&ds.all(), &KmeansParams { centroids: 9, ..p }, 2);
        assert!(matches!(e, Err(FeatureError::InvalidParam { name: "centroids", .. })), "{e:?}");
    }

    /// Every kernel this CPU runs gives the portable build's features bit for bit (the packed
    /// product and the element-wise work compiled for AVX2 and AVX-512), with both poolings
    /// and a grid whose last block of patches is partial.
    #[test]
    fn every_kernel_extracts_the_portable_bits() {
        for (flip, products) in [
            (false, Products::F32),
            (true, Products::F32),
            (false, Products::I8),
            (true, Products::I8),
        ] {
            let train = images(40, ImageShape::new(3, 12, 12), 5);
            let params = KmeansParams {
                centroids: 70,
                patches: 3_000,
                iterations: 3,
                flip,
                products,
                ..Default::default()
            };
            let km = KmeansFeatures::fit(&train.all(), &params, 2).expect("fit");
            let px = train.pixels().expect("images");
            let want = km.transform_rows_with(KernelKind::Scalar, px).expect("scalar");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for kernel in KernelKind::available() {
                let got = km.transform_rows_with(kernel, px).expect("extracts");
                assert_eq!(bits(&got), bits(&want), "{kernel:?} flip {flip} {products:?}");
            }
        }
    }

    #[test]
    fn sampled_patches_are_image_regions() {
        let shape = ImageShape::new(2, 5, 6);
        let ds = images(3, shape, 8);
        let px = ds.pixels().expect("pixels");
        let p = sample_patches(px, shape, 3, 10, 4);
        for (i, patch) in p.chunks_exact(18).enumerate() {
            let img = px.row(i % 3);
            let found = (0..=2).any(|y| {
                (0..=3).any(|x| {
                    let mut q = vec![0f32; 18];
                    copy_patch(img, shape, 3, y, x, &mut q);
                    q == patch
                })
            });
            assert!(found, "patch {i}");
        }
        assert_eq!(f32::from(px.row(0)[30 + 6 + 1]), {
            let mut q = vec![0f32; 18];
            copy_patch(px.row(0), shape, 3, 1, 1, &mut q);
            q[9] // channel 1, row 0, column 0 of the patch at (1, 1)
        });
    }
}
