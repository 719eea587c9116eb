//! Dual coordinate descent for the one-vs-all L2-SVM (Hsieh, Chang, Lin, Keerthi &
//! Sundararajan, ICML 2008; liblinear's `L2R_L2LOSS_SVC_DUAL`, scikit-learn's `LinearSVC`
//! with `loss="squared_hinge", dual=True`): the solver of
//! [`Loss::OvaSquaredHinge`](crate::Loss::OvaSquaredHinge) when rows are many and wide,
//! where L-BFGS needs hundreds of passes over the data and this needs tens.
//!
//! ```text
//! per class k, t_i = +1 if y_i = k else −1, x̂_i = [x̃_i, B]  (B: the bias feature, 1)
//! primal   min_w  ½‖w‖² + C Σ_i max(0, 1 − t_i w·x̂_i)²          C = 1 / (2 λ n)
//!          (= our  mean_i Σ_k max(0, 1 − t s_k)² + λ‖W‖²  divided by 2λ, with the bias
//!           penalised as a weight on the constant feature B, as liblinear and LinearSVC do)
//! dual     min_α  ½ αᵀ(Q + D)α − Σ α_i,  α_i ≥ 0,   Q_ij = t_i t_j x̂_i·x̂_j,  D = 1/(2C) = λn
//! step     G = t_i w·x̂_i − 1 + D α_i,   α_i ← max(α_i − G / (x̂_i·x̂_i + D), 0),
//!          w ← w + (α_i,new − α_i) t_i x̂_i
//! stop     max PG − min PG over an epoch ≤ tolerance  (PG: G projected on α_i ≥ 0; liblinear's
//!          rule, its default 0.1), or the epoch budget
//! ```
//!
//! Rows are visited in a seeded shuffle, new each epoch, the same for every class; the classes
//! are independent, split into two fixed halves run in parallel, each reading every row once
//! per epoch, so a fit has the same bits on any number of threads. Weights and sums are f64;
//! each row is widened from f32 once per visit. The per-row dot products and updates are one
//! generic body compiled twice, for AVX2 and portably (the scalar twin), chosen once per fit
//! by [`KernelKind::detect`]; Rust never fuses a multiply and an add on its own, so both give
//! the same bits (tested).
//!
//! Shrinking as liblinear's: a row at its bound whose gradient exceeds the last epoch's largest
//! projected gradient is skipped until the remaining rows converge, then every row is checked
//! again; a class stops when its spread is within the tolerance on all rows. The value
//! recorded per epoch is the dual objective on our scale, `2λ(Σα − ½‖w‖² − ½DΣα²)`, a lower
//! bound that rises to the optimum (no extra pass over the rows); the final objective is the
//! exact primal one.

use imgclass_core::rng::SplitMix64;
use imgclass_linalg::KernelKind;
use rayon::prelude::*;

use crate::LinearError;
use crate::lbfgs::{Data, StopReason};
use crate::model::TrainingReport;

/// Settings of the dual coordinate descent solver (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dcd {
    /// Most passes over the rows (default 1,000, liblinear's).
    pub max_epochs: usize,
    /// Stop when the spread of the projected gradient over an epoch is at most this (default
    /// 0.1, liblinear's and scikit-learn's `tol` for this solver).
    pub tolerance: f64,
    /// Seed of the row order (default 0).
    pub seed: u64,
}

impl Default for Dcd {
    fn default() -> Self {
        Self { max_epochs: 1000, tolerance: 0.1, seed: 0 }
    }
}

/// The rows of a fit, as the solver reads them: `x̃ = x·scale + offset`.
pub(crate) struct Rows<'a> {
    pub(crate) x: Data<'a>,
    pub(crate) labels: &'a [u32],
    pub(crate) scale: f32,
    pub(crate) offset: &'a [f32],
    pub(crate) n_classes: usize,
    /// The bias feature's value `B` (1 as liblinear's `-B 1` and LinearSVC's
    /// `intercept_scaling = 1`; 0 without a bias).
    pub(crate) bias: f64,
}

impl Rows<'_> {
    fn dim(&self) -> usize {
        self.offset.len()
    }

    fn widen(&self, i: usize, out: &mut [f64]) {
        self.x.row_into(i, self.scale, self.offset, out);
    }
}

/// What [`solve`] hands back: `W` (c x d) and `b`, why it stopped, the epochs run and the
/// final primal objective (ours: mean loss + λ‖W‖², bias penalty not included).
pub(crate) struct Outcome {
    pub(crate) w: Vec<f64>,
    pub(crate) b: Vec<f64>,
    pub(crate) stop: StopReason,
    pub(crate) epochs: usize,
    pub(crate) spread: f64,
    pub(crate) objective: f64,
}

/// Trains every class with `lambda` (our λ of `λ‖W‖²`), recording per-epoch objectives.
pub(crate) fn solve(
    rows: &Rows<'_>,
    lambda: f64,
    cfg: &Dcd,
    report: &mut TrainingReport,
) -> Result<Outcome, LinearError> {
    let (n, d, c) = (rows.labels.len(), rows.dim(), rows.n_classes);
    let diag = lambda * n as f64; // D = 1 / (2C) with C = 1 / (2λn)
    let kernel = KernelKind::detect().map_err(imgclass_linalg::gemm::GemmError::Kernel)?;
    let simd = !matches!(kernel, KernelKind::Scalar);
    // x̂·x̂ + D per row (the same for every class)
    let qd: Vec<f64> = (0..n)
        .into_par_iter()
        .map_init(
            || vec![0.0f64; d],
            |buf, i| {
                rows.widen(i, buf);
                dot(simd, buf, buf) + rows.bias * rows.bias + diag
            },
        )
        .collect();
    let half = c.div_ceil(2).max(1);
    let groups: Vec<Vec<usize>> =
        (0..c).collect::<Vec<_>>().chunks(half).map(<[_]>::to_vec).collect();
    let mut g = SplitMix64::new(cfg.seed);
    let mut state: Vec<ClassState> = (0..c).map(|_| ClassState::new(n, d)).collect();
    let mut epochs = 0;
    let mut stop = StopReason::MaxIterations;
    let mut spread = f64::INFINITY;
    for _ in 0..cfg.max_epochs {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, g.below(i as u64 + 1) as usize);
        }
        // each group of classes runs over the rows in this order on its own thread
        let mut chunks: Vec<&mut [ClassState]> = state.chunks_mut(half).collect();
        chunks.par_iter_mut().zip(&groups).for_each(|(st, classes)| {
            epoch(rows, &order, classes, st, &qd, diag, simd);
        });
        epochs += 1;
        // per class: converged (spread within tolerance on every row), or unshrink and go on
        spread = 0.0f64;
        for st in &mut state {
            if st.done {
                continue;
            }
            let sp = st.pg_max - st.pg_min;
            if sp <= cfg.tolerance {
                if st.active.iter().all(|&a| a) {
                    st.done = true;
                    continue;
                }
                // converged on the active rows: check every row in the next epoch
                st.active.iter_mut().for_each(|a| *a = true);
                st.pg_max_old = f64::INFINITY;
                st.pg_min_old = f64::NEG_INFINITY;
            } else {
                st.pg_max_old = if st.pg_max <= 0.0 { f64::INFINITY } else { st.pg_max };
                st.pg_min_old = if st.pg_min >= 0.0 { f64::NEG_INFINITY } else { st.pg_min };
            }
            spread = spread.max(sp);
        }
        // the dual objective on our scale, a lower bound of the objective that rises to it:
        // F ≥ 2λ·(Σα − ½‖w‖² − ½ D Σα²)
        let mut dual = 0.0;
        for st in &state {
            let ww = st.w.iter().map(|v| v * v).sum::<f64>() + st.wb * st.wb;
            let (sa, sa2) = st.alpha.iter().fold((0.0, 0.0), |(x, y), &a| (x + a, y + a * a));
            dual += sa - 0.5 * ww - 0.5 * diag * sa2;
        }
        let dual = 2.0 * lambda * dual;
        if !dual.is_finite() {
            return Err(LinearError::Diverged { iteration: epochs - 1, loss: dual });
        }
        report.push(dual as f32, 0.0);
        tracing::trace!(epoch = epochs, dual, spread, "dcd epoch");
        if state.iter().all(|st| st.done) {
            stop = StopReason::ProjectedGradient;
            spread = state.iter().map(|st| st.pg_max - st.pg_min).fold(0.0, f64::max);
            break;
        }
    }
    // the exact final objective: one more pass, no update
    let mut w = vec![0.0f64; c * d];
    let mut b = vec![0.0f64; c];
    for (k, s) in state.iter().enumerate() {
        w[k * d..(k + 1) * d].copy_from_slice(&s.w);
        b[k] = s.wb * rows.bias;
    }
    let objective = primal(rows, &w, &b, lambda, simd);
    Ok(Outcome { w, b, stop, epochs, spread, objective })
}

/// One class's dual variables, weights and shrinking state (liblinear's).
struct ClassState {
    alpha: Vec<f64>,
    w: Vec<f64>,
    wb: f64,
    /// Rows still visited: a row at its bound (α = 0) whose gradient exceeds the last
    /// epoch's largest projected gradient is shrunk (skipped) until the active rows converge.
    active: Vec<bool>,
    /// This epoch's projected-gradient extremes over the visited rows.
    pg_max: f64,
    pg_min: f64,
    /// The last epoch's (the shrinking thresholds).
    pg_max_old: f64,
    pg_min_old: f64,
    /// Converged on every row: no longer updated.
    done: bool,
}

impl ClassState {
    fn new(n: usize, d: usize) -> Self {
        Self {
            alpha: vec![0.0; n],
            w: vec![0.0; d],
            wb: 0.0,
            active: vec![true; n],
            pg_max: 0.0,
            pg_min: 0.0,
            pg_max_old: f64::INFINITY,
            pg_min_old: f64::NEG_INFINITY,
            done: false,
        }
    }
}

fn epoch(
    rows: &Rows<'_>,
    order: &[usize],
    classes: &[usize],
    st: &mut [ClassState],
    qd: &[f64],
    diag: f64,
    simd: bool,
) {
    let mut x = vec![0.0f64; rows.dim()];
    for s in st.iter_mut() {
        s.pg_max = f64::NEG_INFINITY;
        s.pg_min = f64::INFINITY;
    }
    for &i in order {
        if st.iter().all(|s| s.done || !s.active[i]) {
            continue; // no class of this group visits the row: not even widened
        }
        rows.widen(i, &mut x);
        let y = rows.labels[i] as usize;
        for (s, &k) in st.iter_mut().zip(classes) {
            if s.done || !s.active[i] {
                continue;
            }
            let t = if y == k { 1.0 } else { -1.0 };
            let margin = t * (dot(simd, &s.w, &x) + s.wb * rows.bias);
            let a = s.alpha[i];
            let gr = margin - 1.0 + diag * a;
            let mut pg = gr;
            if a == 0.0 {
                if gr > s.pg_max_old {
                    s.active[i] = false; // shrink
                    continue;
                }
                pg = gr.min(0.0);
            }
            s.pg_max = s.pg_max.max(pg);
            s.pg_min = s.pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let new = (a - gr / qd[i]).max(0.0);
                let delta = (new - a) * t;
                s.alpha[i] = new;
                axpy(simd, delta, &x, &mut s.w);
                s.wb += delta * rows.bias;
            }
        }
    }
    for s in st.iter_mut() {
        if s.pg_max < s.pg_min {
            // nothing visited (every row shrunk): a spread of 0
            s.pg_max = 0.0;
            s.pg_min = 0.0;
        }
    }
}

/// Our objective at `W`, `b`: mean_i Σ_k max(0, 1 − t s_k)² + λ‖W‖².
fn primal(rows: &Rows<'_>, w: &[f64], b: &[f64], lambda: f64, simd: bool) -> f64 {
    let (n, d, c) = (rows.labels.len(), rows.dim(), rows.n_classes);
    let data: f64 = (0..n)
        .collect::<Vec<_>>()
        .par_chunks(1024)
        .map(|chunk| {
            let mut x = vec![0.0f64; d];
            let mut sum = 0.0;
            for &i in chunk {
                rows.widen(i, &mut x);
                for k in 0..c {
                    let t = if rows.labels[i] as usize == k { 1.0 } else { -1.0 };
                    let v = (1.0 - t * (dot(simd, &w[k * d..(k + 1) * d], &x) + b[k])).max(0.0);
                    sum += v * v;
                }
            }
            sum
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    data / n as f64 + lambda * w.iter().map(|v| v * v).sum::<f64>()
}

/// `a·b`, summed in 16 lanes then pairwise (a fixed order, whichever instance runs; 16
/// independent chains hide the add latency).
#[inline(always)]
fn dot_body(a: &[f64], b: &[f64]) -> f64 {
    const L: usize = 16;
    let mut acc = [0.0f64; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        // zipped iterators of known length: no bounds checks, one vector add per lane group
        for (s, (p, q)) in acc.iter_mut().zip(x.iter().zip(y)) {
            *s += p * q;
        }
    }
    let mut width = L;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    let mut s = acc[0];
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += alpha · x`.
#[inline(always)]
fn axpy_body(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2(a: &[f64], b: &[f64]) -> f64 {
    dot_body(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn axpy_avx2(alpha: f64, x: &[f64], y: &mut [f64]) {
    axpy_body(alpha, x, y)
}

/// The dot product: the AVX2 instance when `simd` (the caller checked the CPU through
/// [`KernelKind::detect`]), else the portable twin; the same bits either way.
#[inline]
fn dot(simd: bool, a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is set only when KernelKind::detect found AVX2 (or better) on this CPU
        return unsafe { dot_avx2(a, b) };
    }
    let _ = simd;
    dot_body(a, b)
}

/// `y += alpha · x`, dispatched as [`dot`].
#[inline]
fn axpy(simd: bool, alpha: f64, x: &[f64], y: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: as in `dot`
        return unsafe { axpy_avx2(alpha, x, y) };
    }
    let _ = simd;
    axpy_body(alpha, x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 instances and the portable twins agree bit for bit on random and adversarial
    /// input (lengths around the 8-lane blocks, huge and tiny magnitudes, cancellation).
    #[test]
    fn simd_and_scalar_twins_give_the_same_bits() {
        if !matches!(KernelKind::detect(), Ok(k) if !matches!(k, KernelKind::Scalar)) {
            return; // no AVX2 here: only the twin exists
        }
        let mut g = SplitMix64::new(3);
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 6400] {
            for scale in [1.0, 1e-300, 1e300, 1e10] {
                let a: Vec<f64> = (0..len).map(|_| g.next_normal() * scale).collect();
                let mut b: Vec<f64> = (0..len).map(|_| g.next_normal()).collect();
                if len > 2 {
                    b[1] = -a[0] * b[0] / a[1]; // exact cancellation of the first two terms
                }
                assert_eq!(dot(true, &a, &b).to_bits(), dot(false, &a, &b).to_bits(), "{len}");
                let (mut y1, mut y2) = (b.clone(), b.clone());
                axpy(true, 0.37, &a, &mut y1);
                axpy(false, 0.37, &a, &mut y2);
                assert_eq!(y1, y2);
            }
        }
    }

    /// The dot product equals a naive f64 sum (exactly, on small integers: any order).
    #[test]
    fn dot_is_the_dot_product() {
        let a: Vec<f64> = (0..37).map(f64::from).collect();
        let b: Vec<f64> = (0..37).map(|i| f64::from(i) * 0.5).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(false, &a, &b), naive); // small integers: exact in any order
    }
}
