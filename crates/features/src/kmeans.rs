//! [`KMeans`]: seeded Lloyd k-means on f32 rows, as Coates, Lee & Ng (AISTATS 2011) run it
//! on whitened image patches (their `run_kmeans.m`), usable on any rows.
//!
//! ```text
//! init:    c_k ~ 0.1 · N(0, I)                      (the paper's code; or k distinct random rows)
//! assign:  a_i = argmin_k ||x_i − c_k||² = argmax_k (x_i·c_k − ||c_k||²/2)   (first k on a tie)
//! update:  c_k = (1/|S_k|) Σ_{i ∈ S_k} x_i          (S_k empty: c_k = 0 as the paper's code,
//!                                                    or keep the previous c_k)
//! ```
//!
//! The products `x_i·c_k` are one product per fixed block of [`BLOCK`] rows
//! (`X_b Cᵀ` by `imgclass_linalg::gemm::PackedNt`, the centroids packed once per iteration:
//! `sgemm`'s bits), blocks in parallel over rayon; each row's
//! assignment depends only on its own products, and the update sums rows in row order in
//! f64, so the result has the same bits at any thread count.
//!
//! ```
//! use imgclass_features::{KMeans, KmeansInit};
//! // two clumps on a line: {0, 1} and {10, 11}
//! let x = [0.0f32, 1.0, 10.0, 11.0];
//! let fit = KMeans::new(2).init(KmeansInit::Rows).iterations(5).seed(3).fit(&x, 1)?;
//! let mut c = fit.centroids.clone();
//! c.sort_by(f32::total_cmp);
//! assert_eq!(c, [0.5, 10.5]);
//! assert_eq!(fit.counts.iter().sum::<usize>(), 4);
//! # Ok::<(), imgclass_features::FeatureError>(())
//! ```

use imgclass_core::rng::SplitMix64;
use imgclass_linalg::KernelKind;
use imgclass_linalg::gemm::{GemmError, PackedNt};
use rayon::prelude::*;

use crate::FeatureError;

/// Rows per assignment block (one `sgemm` each; blocks are fixed, so the split does not
/// depend on the thread count).
pub const BLOCK: usize = 256;

/// How the centroids start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KmeansInit {
    /// Every coordinate `0.1 · N(0, 1)` (Coates' `run_kmeans.m`: `randn(k, d) * 0.1`); meant
    /// for whitened data, whose scale it matches. The default.
    #[default]
    Gaussian,
    /// `k` distinct rows drawn uniformly at random.
    Rows,
}

/// What happens to a centroid no row is assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyCluster {
    /// Set it to 0 (Coates' code: "just zap empty centroids so they don't introduce NaNs").
    /// The default.
    #[default]
    Zero,
    /// Keep its previous position.
    Keep,
}

/// k-means parameters (`KMeans::new(k)`, then setters): fitted by [`KMeans::fit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KMeans {
    k: usize,
    iterations: usize,
    init: KmeansInit,
    empty: EmptyCluster,
    seed: u64,
}

/// A k-means result.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansFit {
    /// `k x dim`, row-major.
    pub centroids: Vec<f32>,
    /// Values per centroid.
    pub dim: usize,
    /// Rows assigned to each centroid by the last assignment step (before the last update).
    pub counts: Vec<usize>,
    /// Σ_i min_k ||x_i − c_k||² (f64, by the GEMM form) at each iteration's assignment.
    pub inertia: Vec<f64>,
}

impl KMeans {
    /// `k` centroids; 10 iterations, [`KmeansInit::Gaussian`], [`EmptyCluster::Zero`], seed 0.
    pub fn new(k: usize) -> Self {
        Self { k, iterations: 10, init: KmeansInit::Gaussian, empty: EmptyCluster::Zero, seed: 0 }
    }

    /// Lloyd iterations (assignment + update); default 10.
    pub fn iterations(self, iterations: usize) -> Self {
        Self { iterations, ..self }
    }

    /// Initialisation; default [`KmeansInit::Gaussian`].
    pub fn init(self, init: KmeansInit) -> Self {
        Self { init, ..self }
    }

    /// Empty-cluster rule; default [`EmptyCluster::Zero`].
    pub fn empty(self, empty: EmptyCluster) -> Self {
        Self { empty, ..self }
    }

    /// Seed of the initialisation; default 0.
    pub fn seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    fn check(&self, data: &[f32], dim: usize) -> Result<usize, FeatureError> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(FeatureError::InvalidParam {
                name: "kmeans",
                reason: format!("{} values do not make rows of {dim}", data.len()),
            });
        }
        let n = data.len() / dim;
        if n == 0 {
            return Err(FeatureError::EmptyTrain);
        }
        if self.k == 0 || self.k > n {
            return Err(FeatureError::InvalidParam {
                name: "centroids",
                reason: format!("{} centroids for {n} rows (need 1 to {n})", self.k),
            });
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(FeatureError::InvalidParam {
                name: "kmeans",
                reason: "rows hold a non-finite value".into(),
            });
        }
        Ok(n)
    }

    /// The starting centroids `fit` uses on `data` (`k x dim`, row-major).
    pub fn initial_centroids(&self, data: &[f32], dim: usize) -> Result<Vec<f32>, FeatureError> {
        let n = self.check(data, dim)?;
        let mut g = SplitMix64::new(self.seed);
        Ok(match self.init {
            KmeansInit::Gaussian => {
                (0..self.k * dim).map(|_| (0.1 * g.next_normal()) as f32).collect()
            }
            KmeansInit::Rows => {
                // a partial Fisher-Yates shuffle: k distinct rows
                let mut idx: Vec<usize> = (0..n).collect();
                let mut c = Vec::with_capacity(self.k * dim);
                for j in 0..self.k {
                    let t = j + g.below((n - j) as u64) as usize;
                    idx.swap(j, t);
                    c.extend_from_slice(&data[idx[j] * dim..][..dim]);
                }
                c
            }
        })
    }

    /// Clusters the rows of `data` (`n x dim`, row-major, finite).
    pub fn fit(&self, data: &[f32], dim: usize) -> Result<KMeansFit, FeatureError> {
        let init = self.initial_centroids(data, dim)?;
        self.fit_from(data, dim, init)
    }

    /// [`KMeans::fit`] from given starting centroids (`k x dim`).
    pub fn fit_from(
        &self,
        data: &[f32],
        dim: usize,
        init: Vec<f32>,
    ) -> Result<KMeansFit, FeatureError> {
        let n = self.check(data, dim)?;
        if init.len() != self.k * dim || init.iter().any(|v| !v.is_finite()) {
            return Err(FeatureError::InvalidParam {
                name: "kmeans",
                reason: format!("starting centroids must be {} x {dim} finite values", self.k),
            });
        }
        self.lloyd(data, dim, n, init, None)
    }

    /// k-means whose dictionary is closed under a mirror map of the coordinates: `k` (even)
    /// centroids, the second half the mirror images of the first, `c_{j + k/2} = m(c_j)`
    /// with `m(c)[i] = c[mirror[i]]` (`mirror` an involution of `0..dim`, for image patches
    /// the left-right flip of their columns, `KmeansFeatures`' `flip`).
    ///
    /// It is Lloyd's algorithm on the rows and their mirror images together, with the
    /// dictionary kept closed: a row assigned to `c_j` joins cluster `j`, a row assigned to
    /// `m(c_j)` joins it as its own mirror image, so each of the `k/2` free centroids is the
    /// mean of the rows of either orientation nearest to it (the mirror images of the rows
    /// are never stored). The free centroids start as [`KMeans::fit`]'s would for `k/2`;
    /// `counts` are per dictionary entry (`k`) and the inertia is over the rows alone.
    ///
    /// ```
    /// use imgclass_features::KMeans;
    /// // 2-value rows, the mirror swaps them: clumps near (0, 10) and (10, 0) are one shape
    /// let x = [0.0f32, 10.0, 1.0, 10.0, 10.0, 0.0, 10.0, 1.0];
    /// let fit = KMeans::new(2).iterations(3).fit_mirrored(&x, 2, &[1, 0])?;
    /// let c = &fit.centroids;
    /// assert_eq!((c[2], c[3]), (c[1], c[0])); // the second centroid mirrors the first
    /// assert!((c[0].max(c[1]) - 10.0).abs() < 1e-6 && (c[0].min(c[1]) - 0.5).abs() < 1e-6);
    /// # Ok::<(), imgclass_features::FeatureError>(())
    /// ```
    pub fn fit_mirrored(
        &self,
        data: &[f32],
        dim: usize,
        mirror: &[usize],
    ) -> Result<KMeansFit, FeatureError> {
        let n = self.check(data, dim)?;
        let bad = |reason: String| Err(FeatureError::InvalidParam { name: "kmeans", reason });
        if !self.k.is_multiple_of(2) {
            return Err(FeatureError::InvalidParam {
                name: "centroids",
                reason: format!(
                    "{} centroids cannot be mirror pairs (need an even number)",
                    self.k
                ),
            });
        }
        if mirror.len() != dim
            || mirror.iter().enumerate().any(|(i, &j)| j >= dim || mirror[j] != i)
        {
            return bad(format!("the mirror map must be an involution of 0..{dim}"));
        }
        let half = Self { k: self.k / 2, ..*self }.initial_centroids(data, dim)?;
        let mut init = half.clone();
        init.extend(half.chunks_exact(dim).flat_map(|c| mirror.iter().map(|&i| c[i])));
        self.lloyd(data, dim, n, init, Some(mirror))
    }

    /// Lloyd's loop from `centroids`; with `mirror`, the dictionary's second half stays the
    /// mirror image of its first (see [`KMeans::fit_mirrored`]).
    fn lloyd(
        &self,
        data: &[f32],
        dim: usize,
        n: usize,
        mut centroids: Vec<f32>,
        mirror: Option<&[usize]>,
    ) -> Result<KMeansFit, FeatureError> {
        let kernel = KernelKind::detect().map_err(GemmError::Kernel)?;
        let k = self.k;
        // free centroids: all of them, or the first half
        let free = if mirror.is_some() { k / 2 } else { k };
        let mut labels = vec![0u32; n];
        let mut counts = vec![0usize; k];
        let mut inertia = Vec::with_capacity(self.iterations);
        let mut sums = vec![0f64; free * dim];
        for _ in 0..self.iterations {
            inertia.push(assign_with(kernel, data, dim, &centroids, &mut labels)?);
            sums.fill(0.0);
            counts.fill(0);
            for (x, &l) in data.chunks_exact(dim).zip(&labels) {
                let l = l as usize;
                counts[l] += 1;
                let s = &mut sums[(l % free) * dim..][..dim];
                match mirror {
                    Some(m) if l >= free => {
                        s.iter_mut().zip(m).for_each(|(s, &i)| *s += f64::from(x[i]));
                    }
                    _ => s.iter_mut().zip(x).for_each(|(s, &v)| *s += f64::from(v)),
                }
            }
            for j in 0..free {
                let cnt = counts[j] + if free < k { counts[j + free] } else { 0 };
                let c = &mut centroids[j * dim..][..dim];
                if cnt > 0 {
                    for (cv, &s) in c.iter_mut().zip(&sums[j * dim..][..dim]) {
                        *cv = (s / cnt as f64) as f32;
                    }
                } else if self.empty == EmptyCluster::Zero {
                    c.fill(0.0);
                }
            }
            if let Some(m) = mirror {
                let (first, second) = centroids.split_at_mut(free * dim);
                for (c, mc) in first.chunks_exact(dim).zip(second.chunks_exact_mut(dim)) {
                    mc.iter_mut().zip(m).for_each(|(v, &i)| *v = c[i]);
                }
            }
        }
        Ok(KMeansFit { centroids, dim, counts, inertia })
    }
}

/// Assigns every row of `data` to its nearest centroid (`labels`, first index on a tie) and
/// returns Σ_i min_k ||x_i − c_k||² (f64, GEMM form, clamped at 0 per row). The products run
/// on the kernel [`KernelKind::detect`] picks, with the same bits on every kernel (an invalid
/// `IMGCLASS_KERNEL` is an error).
pub fn assign(
    data: &[f32],
    dim: usize,
    centroids: &[f32],
    labels: &mut [u32],
) -> Result<f64, FeatureError> {
    let kernel = KernelKind::detect().map_err(GemmError::Kernel)?;
    assign_with(kernel, data, dim, centroids, labels)
}

/// [`assign`] on `kernel` (which this CPU must run).
fn assign_with(
    kernel: KernelKind,
    data: &[f32],
    dim: usize,
    centroids: &[f32],
    labels: &mut [u32],
) -> Result<f64, FeatureError> {
    let k = centroids.len() / dim.max(1);
    let packed = PackedNt::with_kernel(kernel, &centroids[..k * dim], k, dim)?;
    let half_c2: Vec<f32> = centroids
        .chunks_exact(dim.max(1))
        .map(|c| (0.5 * c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()) as f32)
        .collect();
    let parts: Vec<f64> = data
        .par_chunks(BLOCK * dim.max(1))
        .zip(labels.par_chunks_mut(BLOCK))
        .map_init(
            || vec![0f32; BLOCK * k],
            |buf, (xb, lb)| {
                let dots = &mut buf[..lb.len() * k];
                packed.product(xb, lb.len(), dots).expect("shapes follow from the chunking");
                nearest(kernel, dots, &half_c2, xb, dim, lb)
            },
        )
        .collect();
    Ok(parts.iter().sum())
}

/// Each row's nearest centroid from its products `dots` (`m x k`): [`nearest_body`]
/// compiled for `kernel` (the same comparisons, so the same labels and loss on every kernel).
fn nearest(
    kernel: KernelKind,
    dots: &[f32],
    half_c2: &[f32],
    xb: &[f32],
    dim: usize,
    labels: &mut [u32],
) -> f64 {
    match kernel {
        // SAFETY: `kernel` came from KernelKind::detect (through `PackedNt::with_kernel`,
        // which refuses a kernel this CPU lacks)
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512 => unsafe { nearest_avx512(dots, half_c2, xb, dim, labels) },
        // SAFETY: as above
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 => unsafe { nearest_avx2(dots, half_c2, xb, dim, labels) },
        _ => nearest_body(dots, half_c2, xb, dim, labels),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn nearest_avx512(
    dots: &[f32],
    half_c2: &[f32],
    xb: &[f32],
    dim: usize,
    labels: &mut [u32],
) -> f64 {
    nearest_body(dots, half_c2, xb, dim, labels)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn nearest_avx2(dots: &[f32], half_c2: &[f32], xb: &[f32], dim: usize, labels: &mut [u32]) -> f64 {
    nearest_body(dots, half_c2, xb, dim, labels)
}

#[inline(always)]
fn nearest_body(dots: &[f32], half_c2: &[f32], xb: &[f32], dim: usize, labels: &mut [u32]) -> f64 {
    let k = half_c2.len();
    let mut loss = 0f64;
    for ((row, l), x) in
        dots.chunks_exact(k.max(1)).zip(labels.iter_mut()).zip(xb.chunks(dim.max(1)))
    {
        let (best, bv) = first_max(row, half_c2);
        *l = best as u32;
        let x2: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        loss += (x2 - 2.0 * f64::from(bv)).max(0.0);
    }
    loss
}

/// Lanes of [`first_max`].
const LANES: usize = 16;

/// The first `j` with the largest `s_j = row_j − h_j` and that value, as the loop
/// `if s_j > best { best = s_j; at = j }` from `(0, −∞)` finds them (NaN never wins; `(0, −∞)`
/// when no `s_j` exceeds −∞), in a form that vectorises: [`LANES`] running maxima, lane `l`
/// over the `j ≡ l (mod LANES)` with the first index of its maximum, then the largest of the
/// lanes' maxima with the smallest index among equal ones (the first occurrence overall),
/// then the tail in order.
#[inline(always)]
fn first_max(row: &[f32], h: &[f32]) -> (usize, f32) {
    let mut bv = [f32::NEG_INFINITY; LANES];
    let mut bi = [0u32; LANES];
    let (rc, hc) = (row.chunks_exact(LANES), h.chunks_exact(LANES));
    let (rr, hr) = (rc.remainder(), hc.remainder());
    for (c, (r, hh)) in rc.zip(hc).enumerate() {
        let base = (c * LANES) as u32;
        for l in 0..LANES {
            let s = r[l] - hh[l];
            let gt = s > bv[l];
            bv[l] = if gt { s } else { bv[l] };
            bi[l] = if gt { base + l as u32 } else { bi[l] };
        }
    }
    let (mut at, mut best) = (usize::MAX, f32::NEG_INFINITY);
    for (&v, &i) in bv.iter().zip(&bi) {
        // a lane that never moved holds −∞ and takes no part
        if v > best || (v == best && v > f32::NEG_INFINITY && (i as usize) < at) {
            (at, best) = (i as usize, v);
        }
    }
    if at == usize::MAX {
        at = 0;
    }
    let full = row.len() - rr.len();
    for (t, (&d, &hh)) in rr.iter().zip(hr).enumerate() {
        let s = d - hh;
        if s > best {
            (at, best) = (full + t, s);
        }
    }
    (at, best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian clumps around `c` random centres, `n x d`.
    fn clumps(n: usize, d: usize, c: usize, seed: u64) -> Vec<f32> {
        let mut g = SplitMix64::new(seed);
        let centres: Vec<f64> = (0..c * d).map(|_| 4.0 * g.next_normal()).collect();
        (0..n)
            .flat_map(|i| {
                let j = i % c;
                (0..d).map(|t| centres[j * d + t] + g.next_normal()).collect::<Vec<_>>()
            })
            .map(|v| v as f32)
            .collect()
    }

    /// Lloyd's loop written out in f64 (direct squared distances, first index on a tie).
    fn naive_lloyd(
        x: &[f32],
        d: usize,
        init: &[f32],
        iters: usize,
        zero_empty: bool,
    ) -> (Vec<f64>, Vec<usize>) {
        let k = init.len() / d;
        let mut c: Vec<f64> = init.iter().map(|&v| f64::from(v)).collect();
        let mut labels = vec![0; x.len() / d];
        for _ in 0..iters {
            for (i, row) in x.chunks_exact(d).enumerate() {
                let mut best = (f64::INFINITY, 0);
                for j in 0..k {
                    let dist: f64 =
                        (0..d).map(|t| (f64::from(row[t]) - c[j * d + t]).powi(2)).sum();
                    if dist < best.0 {
                        best = (dist, j);
                    }
                }
                labels[i] = best.1;
            }
            for j in 0..k {
                let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == j).collect();
                for t in 0..d {
                    if !members.is_empty() {
                        c[j * d + t] =
                            members.iter().map(|&i| f64::from(x[i * d + t])).sum::<f64>()
                                / members.len() as f64;
                    } else if zero_empty {
                        c[j * d + t] = 0.0;
                    }
                }
            }
        }
        (c, labels)
    }

    #[test]
    fn lloyd_matches_a_naive_f64_loop_from_the_same_start() {
        let (n, d, k) = (700, 7, 9);
        let x = clumps(n, d, 6, 11);
        for (init, empty) in [
            (KmeansInit::Rows, EmptyCluster::Zero),
            (KmeansInit::Gaussian, EmptyCluster::Zero),
            (KmeansInit::Gaussian, EmptyCluster::Keep),
        ] {
            let km = KMeans::new(k).iterations(6).init(init).empty(empty).seed(5);
            let start = km.initial_centroids(&x, d).expect("start");
            let fit = km.fit(&x, d).expect("fit");
            let (c, labels) = naive_lloyd(&x, d, &start, 6, empty == EmptyCluster::Zero);
            for (a, b) in fit.centroids.iter().zip(&c) {
                assert!((f64::from(*a) - b).abs() < 1e-4, "{init:?} {empty:?}: {a} vs {b}");
            }
            // the last assignment's cluster sizes
            let mut counts = vec![0usize; k];
            labels.iter().for_each(|&l| counts[l] += 1);
            assert_eq!(fit.counts, counts, "{init:?} {empty:?}");
            assert_eq!(fit.inertia.len(), 6);
            assert!(fit.inertia.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-6)));
        }
    }

    #[test]
    fn mirrored_lloyd_matches_a_naive_f64_loop_and_stays_closed() {
        let (n, d, k) = (600, 6, 8);
        let x = clumps(n, d, 5, 21);
        // reverse the coordinates within two halves of 3, as a patch flip reverses columns
        let mirror = [2, 1, 0, 5, 4, 3];
        for init in [KmeansInit::Gaussian, KmeansInit::Rows] {
            let km = KMeans::new(k).iterations(5).init(init).seed(3);
            let fit = km.fit_mirrored(&x, d, &mirror).expect("fit");
            // naive: the same start, then per row the nearest of all k entries by direct f64
            // distances; a row nearest to m(c_j) joins cluster j mirrored
            let half = KMeans::new(k / 2).init(init).seed(3).initial_centroids(&x, d).expect("s");
            let mut c: Vec<f64> = half.iter().map(|&v| f64::from(v)).collect();
            let mut counts = vec![0usize; k];
            for _ in 0..5 {
                let dict: Vec<f64> = c
                    .chunks(d)
                    .flat_map(|r| r.to_vec())
                    .chain(c.chunks(d).flat_map(|r| mirror.map(|i| r[i])))
                    .collect();
                let mut sums = vec![0f64; k / 2 * d];
                let mut sizes = vec![0usize; k / 2];
                counts.fill(0);
                for row in x.chunks_exact(d) {
                    let dist = |j: usize| -> f64 {
                        (0..d).map(|t| (f64::from(row[t]) - dict[j * d + t]).powi(2)).sum()
                    };
                    let l = (1..k).fold(0, |b, j| if dist(j) < dist(b) { j } else { b });
                    counts[l] += 1;
                    sizes[l % (k / 2)] += 1;
                    for t in 0..d {
                        let v = if l < k / 2 { row[t] } else { row[mirror[t]] };
                        sums[(l % (k / 2)) * d + t] += f64::from(v);
                    }
                }
                for j in 0..k / 2 {
                    for t in 0..d {
                        c[j * d + t] =
                            if sizes[j] > 0 { sums[j * d + t] / sizes[j] as f64 } else { 0.0 };
                    }
                }
            }
            for (a, b) in fit.centroids[..k / 2 * d].iter().zip(&c) {
                assert!((f64::from(*a) - b).abs() < 1e-4, "{init:?}: {a} vs {b}");
            }
            assert_eq!(fit.counts, counts, "{init:?}");
            for j in 0..k / 2 {
                let (cj, mj) =
                    (&fit.centroids[j * d..][..d], &fit.centroids[(j + k / 2) * d..][..d]);
                assert!(mirror.iter().zip(mj).all(|(&i, &v)| v.to_bits() == cj[i].to_bits()));
            }
            assert!(fit.inertia.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-6)));
        }
        // an odd k or a map that is not an involution is refused
        let e = KMeans::new(7).fit_mirrored(&x, d, &mirror);
        assert!(matches!(e, Err(FeatureError::InvalidParam { name: "centroids", .. })));
        for bad in [&[1usize, 2, 0, 3, 4, 5][..], &[0, 1, 2, 3, 4], &[0, 1, 2, 3, 4, 6]] {
            let e = KMeans::new(8).fit_mirrored(&x, d, bad);
            assert!(matches!(e, Err(FeatureError::InvalidParam { name: "kmeans", .. })), "{bad:?}");
        }
    }

    #[test]
    fn gaussian_start_has_the_papers_scale_and_rows_start_picks_distinct_rows() {
        let x: Vec<f32> = (0..400).map(|v| v as f32).collect();
        let g = KMeans::new(100).seed(1).initial_centroids(&x, 4).expect("start");
        let sd = (g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 400.0).sqrt();
        assert!((sd - 0.1).abs() < 0.01, "{sd}");
        let r =
            KMeans::new(100).init(KmeansInit::Rows).seed(1).initial_centroids(&x, 4).expect("s");
        let mut firsts: Vec<i64> = r.chunks(4).map(|c| c[0] as i64).collect();
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(firsts.len(), 100);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        assert!(matches!(
            KMeans::new(0).fit(&x, 2),
            Err(FeatureError::InvalidParam { name: "centroids", .. })
        ));
        assert!(matches!(
            KMeans::new(3).fit(&x, 2),
            Err(FeatureError::InvalidParam { name: "centroids", .. })
        ));
        assert!(matches!(KMeans::new(1).fit(&x, 3), Err(FeatureError::InvalidParam { .. })));
        assert!(matches!(KMeans::new(1).fit(&[], 3), Err(FeatureError::EmptyTrain)));
        assert!(matches!(
            KMeans::new(1).fit(&[f32::NAN, 0.0], 2),
            Err(FeatureError::InvalidParam { .. })
        ));
    }

    #[test]
    fn same_bits_at_any_thread_count() {
        let (d, k) = (5, 12);
        let x = clumps(3 * BLOCK + 17, d, 8, 2);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| KMeans::new(k).iterations(4).seed(9).fit(&x, d).expect("fit"))
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert_eq!(
            one.centroids.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            run(2).centroids.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    /// The lane-wise first maximum is the sequential loop's, on random rows, ties (exact
    /// repeats of the maximum in several lanes and in the tail), NaN, ±∞ and signed zeros,
    /// lengths around the 16 lanes.
    #[test]
    fn first_max_is_the_sequential_first_maximum() {
        fn sequential(row: &[f32], h: &[f32]) -> (usize, f32) {
            let (mut at, mut best) = (0usize, f32::NEG_INFINITY);
            for (j, (&d, &hh)) in row.iter().zip(h).enumerate() {
                let s = d - hh;
                if s > best {
                    (at, best) = (j, s);
                }
            }
            (at, best)
        }
        let mut g = SplitMix64::new(9);
        for len in [0, 1, 5, 15, 16, 17, 31, 32, 33, 47, 100, 1600] {
            for case in 0..8 {
                let mut row: Vec<f32> = (0..len).map(|_| g.next_f64() as f32).collect();
                let h: Vec<f32> =
                    (0..len).map(|_| if case % 2 == 0 { 0.0 } else { 0.25 }).collect();
                if len > 0 {
                    match case {
                        1 => row.iter_mut().for_each(|v| *v = (*v * 4.0).floor()), // many ties
                        2 => row.iter_mut().for_each(|v| *v = f32::NAN),
                        3 => row.iter_mut().for_each(|v| *v = f32::NEG_INFINITY),
                        4 => {
                            row.iter_mut().for_each(|v| *v = -0.0);
                            row[len / 2] = 0.0;
                        }
                        5 => {
                            row[len - 1] = 9.0; // the maximum in the tail, and again earlier
                            row[len / 3] = 9.0;
                        }
                        6 => {
                            row[len / 2] = f32::INFINITY;
                            row[0] = f32::NAN;
                        }
                        7 => row.iter_mut().step_by(3).for_each(|v| *v = f32::NAN),
                        _ => {}
                    }
                }
                let (a, b) = (first_max(&row, &h), sequential(&row, &h));
                assert_eq!((a.0, a.1.to_bits()), (b.0, b.1.to_bits()), "len {len} case {case}");
            }
        }
    }

    /// Every kernel this CPU runs assigns the same labels with the same loss bits as the
    /// portable build.
    #[test]
    fn every_kernel_assigns_as_the_portable_build() {
        let (n, d, k) = (700, 27, 90);
        let x = clumps(n, d, 7, 4);
        let mut g = SplitMix64::new(5);
        let c: Vec<f32> = (0..k * d).map(|_| g.next_normal() as f32).collect();
        let mut want = vec![0u32; n];
        let loss = assign_with(KernelKind::Scalar, &x, d, &c, &mut want).expect("scalar");
        for kernel in KernelKind::available() {
            let mut got = vec![0u32; n];
            let l = assign_with(kernel, &x, d, &c, &mut got).expect("assigns");
            assert_eq!(got, want, "{kernel:?}");
            assert_eq!(l.to_bits(), loss.to_bits(), "{kernel:?}");
        }
    }
}
