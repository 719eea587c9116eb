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
//! per epoch, so a fit has the same bits on any number of threads.
//!
//! Precision: the weights `w_k` and the rows are f32 in the epoch (the rows are f32 features
//! or u8 pixels to begin with), the dot products are summed in 16 f32 lanes; the dual
//! variables, gradients, steps, `x̂·x̂` and both recorded objectives are f64. The epoch moves
//! `w_k` through the cache once per visited row and class, so its f32 halves that traffic:
//! on the k-means features (50,000 x 6,400, 200 epochs at `C = 100`) the fit went from
//! 107.8 s with f64 weights to 59.1 s, with the same objective to the digits printed (1.471459) and
//! the same test accuracy (docs/bench/features.md). The price is a noise floor of about
//! 1e-6 relative on each gradient: a tolerance far below liblinear's 0.1 (1e-6, say) may run
//! to the epoch budget on large problems.
//!
//! The epoch is bound by cache traffic, not arithmetic: the plain step reads `w_k` and `x_i`
//! for the dot, then reads `x_i` and reads and writes `w_k` again for the update, per row and
//! class. So the update of a visited row is deferred into the next visited row's pass: with
//! `δ_k` pending from row `p` (none when the class skipped or shrank `p`, or its `PG` was
//! tiny), one pass over `w_k` does `w_k += δ_k x_p` and `acc_k += w_k·x_i`, element by
//! element, each element updated before its product is taken; the last pending updates are
//! applied when the epoch ends, before anything else reads `w`. The pass is blocked over the
//! dimensions (512 at a time): for each block, every class of the group goes over the blocks
//! of `x_p` and `x_i`, which stay in L1, two classes per loop (twice the independent add
//! chains of one dot). The bits are the plain epoch's: the update is the same `w + δ·x` per
//! element, and nothing but the next dot reads `w` before it is applied (the bias weight, a
//! scalar, is updated at once, as before); the dot keeps the plain one's order,
//! its 16 lane sums carried across the blocks (a multiple of 16 long), each lane adding the
//! products of its elements in increasing order, then the pairwise reduction of the lanes and
//! the tail of `d mod 16` elements in order. A test runs whole fits with the plain epoch,
//! kept as a reference, and asserts the same bits.
//!
//! The dot products and updates are generic bodies compiled for AVX-512 (the fused pass: one
//! chunk of 16 lanes is one register, 1.13x the AVX2 instance's fit on the features above),
//! AVX2 and portably (the scalar twin), chosen once per fit by [`KernelKind::detect`]; Rust
//! never fuses a multiply and an add on its own (and no FMA is used), so all give the same
//! bits (tested on every kernel the CPU has).
//!
//! Shrinking as liblinear's: a row at its bound whose gradient exceeds the last epoch's largest
//! projected gradient is skipped until the remaining rows converge, then every row is checked
//! again; a class stops when its spread is within the tolerance on all rows. The value
//! recorded per epoch is the dual objective on our scale, `2λ(Σα − ½‖w‖² − ½DΣα²)`, a lower
//! bound that rises to the optimum (no extra pass over the rows); the final objective is the
//! exact primal one.

use imgclass_core::rng::SplitMix64;
use imgclass_linalg::KernelKind;
use imgclass_loss::Float;

/// The precision of the weights and rows in an epoch.
type R = f32;
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

    fn widen<F: Float>(&self, i: usize, out: &mut [F]) {
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
    solve_with(rows, lambda, cfg, report, epoch)
}

/// One epoch of a group of classes: [`epoch`], or in tests its unfused reference.
type EpochFn = fn(&Rows<'_>, &[usize], &[usize], &mut [ClassState], &[f64], f64, KernelKind);

/// [`solve`] with the epoch given.
fn solve_with(
    rows: &Rows<'_>,
    lambda: f64,
    cfg: &Dcd,
    report: &mut TrainingReport,
    epoch: EpochFn,
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
            epoch(rows, &order, classes, st, &qd, diag, kernel);
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
            let ww = st.w.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() + st.wb * st.wb;
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
        w[k * d..(k + 1) * d].iter_mut().zip(&s.w).for_each(|(o, &v)| *o = f64::from(v));
        b[k] = s.wb * rows.bias;
    }
    let objective = primal(rows, &w, &b, lambda, simd);
    Ok(Outcome { w, b, stop, epochs, spread, objective })
}

/// One class's dual variables, weights and shrinking state (liblinear's).
struct ClassState {
    alpha: Vec<f64>,
    w: Vec<R>,
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

/// One pass of a group of classes over the rows in `order`: the arithmetic of the unfused
/// epoch (the tests' `epoch_reference`), with the update of each visited row deferred into
/// the next visited row's dot products (see the [module docs](self)).
fn epoch(
    rows: &Rows<'_>,
    order: &[usize],
    classes: &[usize],
    st: &mut [ClassState],
    qd: &[f64],
    diag: f64,
    kernel: KernelKind,
) {
    let simd = !matches!(kernel, KernelKind::Scalar);
    let g = st.len();
    // the row of the pending updates (prev) and the row being visited (next)
    let (mut prev, mut next) = (vec![0.0 as R; rows.dim()], vec![0.0 as R; rows.dim()]);
    // per class: δ of its last visited row, still to be added to w as δ·prev
    let mut pend: Vec<Option<R>> = vec![None; g];
    let mut visit = vec![false; g];
    let mut dots = vec![0.0 as R; g];
    let mut acc = vec![[0.0 as R; LANES]; g];
    for s in st.iter_mut() {
        s.pg_max = f64::NEG_INFINITY;
        s.pg_min = f64::INFINITY;
    }
    for &i in order {
        for (v, s) in visit.iter_mut().zip(st.iter()) {
            *v = !s.done && s.active[i];
        }
        if !visit.iter().any(|&v| v) {
            continue; // no class of this group visits the row: not even widened
        }
        rows.widen(i, &mut next);
        // w_k += δ_k·prev and dot_k = w_k·next, in one blocked pass
        pass(kernel, &prev, &next, st, &pend, &visit, &mut acc, &mut dots);
        pend.iter_mut().for_each(|p| *p = None);
        let y = rows.labels[i] as usize;
        for (k, (s, &class)) in st.iter_mut().zip(classes).enumerate() {
            if !visit[k] {
                continue;
            }
            let t = if y == class { 1.0 } else { -1.0 };
            let margin = t * (f64::from(dots[k]) + s.wb * rows.bias);
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
                pend[k] = Some(delta as R); // applied (even a δ of 0, as axpy would) in the next pass
                s.wb += delta * rows.bias;
            }
        }
        std::mem::swap(&mut prev, &mut next);
    }
    // the last visited row's updates (`solve` reads w after the epoch)
    for (s, p) in st.iter_mut().zip(&pend) {
        if let Some(delta) = *p {
            axpy(simd, delta, &prev, &mut s.w);
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
pub(crate) fn primal(rows: &Rows<'_>, w: &[f64], b: &[f64], lambda: f64, simd: bool) -> f64 {
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
fn dot_body<F: Float>(a: &[F], b: &[F]) -> F {
    const L: usize = LANES;
    let mut acc = [F::ZERO; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        // zipped iterators of known length: no bounds checks, one vector add per lane group
        for (s, (p, q)) in acc.iter_mut().zip(x.iter().zip(y)) {
            *s += *p * *q;
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
        s += *x * *y;
    }
    s
}

/// `y += alpha · x`.
#[inline(always)]
fn axpy_body<F: Float>(alpha: F, x: &[F], y: &mut [F]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2<F: Float>(a: &[F], b: &[F]) -> F {
    dot_body(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn axpy_avx2<F: Float>(alpha: F, x: &[F], y: &mut [F]) {
    axpy_body(alpha, x, y)
}

/// The dot product: the AVX2 instance when `simd` (the caller checked the CPU through
/// [`KernelKind::detect`]), else the portable twin; the same bits either way.
#[inline]
fn dot<F: Float>(simd: bool, a: &[F], b: &[F]) -> F {
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
fn axpy<F: Float>(simd: bool, alpha: F, x: &[F], y: &mut [F]) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: as in `dot`
        return unsafe { axpy_avx2(alpha, x, y) };
    }
    let _ = simd;
    axpy_body(alpha, x, y)
}

/// The lanes of [`dot_body`].
const LANES: usize = 16;
/// The dimensions of one block of [`pass_body`] (a multiple of [`LANES`]): two rows' blocks
/// (4 KiB in f32) stay in L1 while the group's classes go over them.
const BLOCK: usize = 512;

/// For each class `k` of a group: `w_k += δ_k·prev` if `pend[k]` is `Some(δ_k)`, then, if
/// `visit[k]`, `dots[k] = w_k·next` with [`dot_body`]'s bits: the dimensions in blocks of
/// [`BLOCK`], each class's 16 lane sums carried across the blocks (so every lane adds the
/// same products in the same order as `dot_body`), the pairwise reduction and the tail after
/// the last block. The update of an element precedes its product, so the dot sees the
/// updated weights, as the unfused update-then-dot does. The visiting classes go two at a
/// time ([`lanes2`]: twice the independent add chains of one class, each class's lane sums
/// in its own order); a class that only has an update does an [`axpy_body`] on the block.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pass_body(
    prev: &[R],
    next: &[R],
    st: &mut [ClassState],
    pend: &[Option<R>],
    visit: &[bool],
    acc: &mut [[R; LANES]],
    dots: &mut [R],
) {
    let d = next.len();
    let full = d - d % LANES;
    acc.iter_mut().for_each(|a| *a = [0.0; LANES]);
    let mut start = 0;
    while start < full {
        let end = (start + BLOCK).min(full);
        let (p, x) = (&prev[start..end], &next[start..end]);
        // the visiting classes two at a time (twice the independent add chains of one dot)
        let mut held: Option<(&mut [R], Option<R>, &mut [R; LANES])> = None;
        for (((s, &pd), &v), a) in st.iter_mut().zip(pend).zip(visit).zip(acc.iter_mut()) {
            let w = &mut s.w[start..end];
            if !v {
                if let Some(delta) = pd {
                    axpy_body(delta, p, w);
                }
                continue;
            }
            match held.take() {
                None => held = Some((w, pd, a)),
                Some((w0, p0, a0)) => match (p0, pd) {
                    (Some(d0), Some(d1)) => lanes2::<true, true>(d0, d1, w0, w, p, x, a0, a),
                    (Some(d0), None) => lanes2::<true, false>(d0, 0.0, w0, w, p, x, a0, a),
                    (None, Some(d1)) => lanes2::<false, true>(0.0, d1, w0, w, p, x, a0, a),
                    (None, None) => lanes2::<false, false>(0.0, 0.0, w0, w, p, x, a0, a),
                },
            }
        }
        if let Some((w, pd, a)) = held {
            match pd {
                Some(delta) => lanes1::<true>(delta, w, p, x, a),
                None => lanes1::<false>(0.0, w, p, x, a),
            }
        }
        start = end;
    }
    let (p, x) = (&prev[full..], &next[full..]);
    for (k, s) in st.iter_mut().enumerate() {
        let w = &mut s.w[full..];
        if let Some(delta) = pend[k] {
            axpy_body(delta, p, w);
        }
        if visit[k] {
            let a = &mut acc[k];
            let mut width = LANES;
            while width > 1 {
                width /= 2;
                for l in 0..width {
                    a[l] += a[l + width];
                }
            }
            let mut sum = a[0];
            for (o, q) in w.iter().zip(x) {
                sum += o * q;
            }
            dots[k] = sum;
        }
    }
}

/// One class's block of [`pass_body`]: `w += δ·p` if `U`, and the lane sums of `w·x`.
#[inline(always)]
fn lanes1<const U: bool>(delta: R, w: &mut [R], p: &[R], x: &[R], a: &mut [R; LANES]) {
    let mut s = *a; // a local array: the lane sums stay in registers
    for ((wc, pc), xc) in
        w.chunks_exact_mut(LANES).zip(p.chunks_exact(LANES)).zip(x.chunks_exact(LANES))
    {
        let (pc, xc, mut v) = (chunk(pc), chunk(xc), chunk(wc));
        for l in 0..LANES {
            if U {
                v[l] += delta * pc[l];
            }
            s[l] += v[l] * xc[l];
        }
        if U {
            wc.copy_from_slice(&v);
        }
    }
    *a = s;
}

/// A copy of a chunk of [`LANES`] (every load before any store, so the blocks vectorise
/// without a question of aliasing).
#[inline(always)]
fn chunk(c: &[R]) -> [R; LANES] {
    c.try_into().expect("a chunk of LANES")
}

/// Two classes' blocks of [`pass_body`] in one loop, each as [`lanes1`] (its own lane sums,
/// in the same order): twice the independent add chains.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn lanes2<const U0: bool, const U1: bool>(
    d0: R,
    d1: R,
    w0: &mut [R],
    w1: &mut [R],
    p: &[R],
    x: &[R],
    a0: &mut [R; LANES],
    a1: &mut [R; LANES],
) {
    let (mut s0, mut s1) = (*a0, *a1);
    for (((w0c, w1c), pc), xc) in w0
        .chunks_exact_mut(LANES)
        .zip(w1.chunks_exact_mut(LANES))
        .zip(p.chunks_exact(LANES))
        .zip(x.chunks_exact(LANES))
    {
        // every load before any store: the chunks vectorise without a question of aliasing
        let (pc, xc) = (chunk(pc), chunk(xc));
        let (mut v0, mut v1) = (chunk(w0c), chunk(w1c));
        for l in 0..LANES {
            if U0 {
                v0[l] += d0 * pc[l];
            }
            s0[l] += v0[l] * xc[l];
            if U1 {
                v1[l] += d1 * pc[l];
            }
            s1[l] += v1[l] * xc[l];
        }
        if U0 {
            w0c.copy_from_slice(&v0);
        }
        if U1 {
            w1c.copy_from_slice(&v1);
        }
    }
    *a0 = s0;
    *a1 = s1;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn pass_avx2(
    prev: &[R],
    next: &[R],
    st: &mut [ClassState],
    pend: &[Option<R>],
    visit: &[bool],
    acc: &mut [[R; LANES]],
    dots: &mut [R],
) {
    pass_body(prev, next, st, pend, visit, acc, dots)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
fn pass_avx512(
    prev: &[R],
    next: &[R],
    st: &mut [ClassState],
    pend: &[Option<R>],
    visit: &[bool],
    acc: &mut [[R; LANES]],
    dots: &mut [R],
) {
    pass_body(prev, next, st, pend, visit, acc, dots)
}

/// [`pass_body`] for `kernel`: one chunk of [`LANES`] is one AVX-512 register, two AVX2
/// ones; the same bits on every kernel (no FMA, the same order; tested).
#[allow(clippy::too_many_arguments)]
#[inline]
fn pass(
    kernel: KernelKind,
    prev: &[R],
    next: &[R],
    st: &mut [ClassState],
    pend: &[Option<R>],
    visit: &[bool],
    acc: &mut [[R; LANES]],
    dots: &mut [R],
) {
    match kernel {
        // SAFETY: `kernel` comes from KernelKind::detect (or is_available in tests), which
        // found these features on this CPU
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512 => unsafe { pass_avx512(prev, next, st, pend, visit, acc, dots) },
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 => unsafe { pass_avx2(prev, next, st, pend, visit, acc, dots) },
        _ => pass_body(prev, next, st, pend, visit, acc, dots),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unfused epoch (one dot and one axpy per visited row and class), the reference
    /// whose bits [`epoch`] must reproduce.
    pub(super) fn epoch_reference(
        rows: &Rows<'_>,
        order: &[usize],
        classes: &[usize],
        st: &mut [ClassState],
        qd: &[f64],
        diag: f64,
        kernel: KernelKind,
    ) {
        let simd = !matches!(kernel, KernelKind::Scalar);
        let mut x = vec![0.0 as R; rows.dim()];
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
                let margin = t * (f64::from(dot(simd, &s.w, &x)) + s.wb * rows.bias);
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
                    axpy(simd, delta as R, &x, &mut s.w);
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

    use std::sync::atomic::{AtomicBool, Ordering};

    static SHRUNK: AtomicBool = AtomicBool::new(false);

    /// [`epoch_reference`], noting whether it left some row shrunk.
    fn epoch_reference_spy(
        rows: &Rows<'_>,
        order: &[usize],
        classes: &[usize],
        st: &mut [ClassState],
        qd: &[f64],
        diag: f64,
        kernel: KernelKind,
    ) {
        epoch_reference(rows, order, classes, st, qd, diag, kernel);
        if st.iter().any(|s| s.active.iter().any(|&a| !a)) {
            SHRUNK.store(true, Ordering::Relaxed);
        }
    }

    /// A whole fit with the fused, blocked epoch has the bits of one with the unfused
    /// reference: α (through w and the objective), w, b, the per-epoch dual objectives, the
    /// epochs, the stop and the spread; on f32 features and u8 pixels, widths below, around
    /// and above the lanes and the block, 1 to 10 classes, with and without bias, and λ small
    /// enough for rows to be shrunk.
    #[test]
    fn fused_epoch_gives_the_reference_bits() {
        let mut g = SplitMix64::new(11);
        for (n, d) in [(1, 3), (23, 5), (64, 16), (97, 37), (150, 512), (80, 1100)] {
            let x: Vec<f32> = (0..n * d).map(|_| (g.next_normal() * 2.0 + 0.5) as f32).collect();
            let px: Vec<u8> = (0..n * d).map(|_| g.below(256) as u8).collect();
            let offset: Vec<f32> = (0..d).map(|k| -0.3 - 0.01 * k as f32).collect();
            let feats = Data::Features(imgclass_core::Rows::new(&x, n, d).expect("shape"));
            let pixels = Data::Pixels(imgclass_core::Rows::new(&px, n, d).expect("shape"));
            for (data, scale) in [(feats, 1.0f32), (pixels, 1.0 / 128.0)] {
                for c in [1, 2, 3, 10] {
                    let labels: Vec<u32> = (0..n).map(|_| g.below(c as u64) as u32).collect();
                    for bias in [0.0, 1.0] {
                        for lambda in [1e-4, 1e-2, 1.0] {
                            let rows = Rows {
                                x: data,
                                labels: &labels,
                                scale,
                                offset: &offset,
                                n_classes: c,
                                bias,
                            };
                            let cfg = Dcd { max_epochs: 40, tolerance: 0.01, seed: 5 };
                            let (mut r1, mut r2) =
                                (TrainingReport::default(), TrainingReport::default());
                            let a = solve_with(&rows, lambda, &cfg, &mut r1, epoch).expect("fused");
                            let b = solve_with(&rows, lambda, &cfg, &mut r2, epoch_reference_spy)
                                .expect("reference");
                            let bits =
                                |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            let what = format!("n {n} d {d} c {c} bias {bias} λ {lambda}");
                            assert_eq!(bits(&a.w), bits(&b.w), "w: {what}");
                            assert_eq!(bits(&a.b), bits(&b.b), "b: {what}");
                            assert_eq!(a.objective.to_bits(), b.objective.to_bits(), "{what}");
                            assert_eq!(a.spread.to_bits(), b.spread.to_bits(), "{what}");
                            assert_eq!((a.epochs, a.stop), (b.epochs, b.stop), "{what}");
                            let f = |r: &TrainingReport| {
                                r.loss.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                            };
                            assert_eq!(f(&r1), f(&r2), "dual objectives: {what}");
                        }
                    }
                }
            }
        }
        assert!(SHRUNK.load(Ordering::Relaxed), "no row was ever shrunk");
    }

    /// The fused pass on every kernel of this CPU against the unfused axpy then dot of the
    /// portable twins (bit for bit), on adversarial weights and rows, every combination of
    /// pending update and visit.
    #[test]
    fn fused_pass_twins_give_the_unfused_bits() {
        let mut g = SplitMix64::new(7);
        let normal = |g: &mut SplitMix64, scale: f64| (g.next_normal() * scale) as R;
        for d in [0, 1, 15, 16, 17, 511, 512, 513, 1000, 1040, 6400] {
            for scale in [1.0, 1e-20, 1e15, 1e10] {
                let prev: Vec<R> = (0..d).map(|_| normal(&mut g, scale)).collect();
                let mut next: Vec<R> = (0..d).map(|_| normal(&mut g, 1.0)).collect();
                if d > 2 {
                    next[1] = -prev[0] * next[0] / prev[1];
                }
                for (pend, visit) in [
                    (
                        vec![Some(0.37), None, Some(0.0), Some(-1e-3), None, Some(2.5)],
                        vec![true, true, false, true, false, true],
                    ),
                    (
                        vec![None, Some(0.37), None, None, Some(-0.0), Some(1.5), Some(3.0)],
                        vec![true, true, true, true, true, true, true],
                    ),
                    (vec![Some(0.5)], vec![true]),
                    (vec![None], vec![true]),
                    (vec![Some(0.5), None], vec![false, false]),
                ] {
                    let mut w0: Vec<Vec<R>> = (0..pend.len())
                        .map(|_| (0..d).map(|_| normal(&mut g, scale)).collect())
                        .collect();
                    w0.iter_mut().for_each(|w| {
                        if d > 3 {
                            w[3] = -0.0;
                        }
                    });
                    // the unfused result
                    let mut want_w = w0.clone();
                    let mut want_dot = vec![0.0 as R; pend.len()];
                    for k in 0..pend.len() {
                        if let Some(delta) = pend[k] {
                            axpy(false, delta, &prev, &mut want_w[k]);
                        }
                        if visit[k] {
                            want_dot[k] = dot(false, &want_w[k], &next);
                        }
                    }
                    for kernel in KernelKind::available() {
                        let mut st: Vec<ClassState> = w0
                            .iter()
                            .map(|w| {
                                let mut s = ClassState::new(1, d);
                                s.w.clone_from(w);
                                s
                            })
                            .collect();
                        let mut acc = vec![[1.0 as R; LANES]; pend.len()];
                        let mut dots = vec![0.0 as R; pend.len()];
                        pass(kernel, &prev, &next, &mut st, &pend, &visit, &mut acc, &mut dots);
                        for k in 0..pend.len() {
                            let wb: Vec<_> = st[k].w.iter().map(|v| v.to_bits()).collect();
                            let ww: Vec<_> = want_w[k].iter().map(|v| v.to_bits()).collect();
                            assert_eq!(wb, ww, "w d {d} k {k} {kernel}");
                            if visit[k] {
                                assert_eq!(
                                    dots[k].to_bits(),
                                    want_dot[k].to_bits(),
                                    "dot d {d} k {k} {kernel}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The AVX2 instances and the portable twins agree bit for bit on random and adversarial
    /// input (lengths around the lanes, huge and tiny magnitudes, cancellation), in both
    /// precisions the solver uses.
    #[test]
    fn simd_and_scalar_twins_give_the_same_bits() {
        if !matches!(KernelKind::detect(), Ok(k) if !matches!(k, KernelKind::Scalar)) {
            return; // no AVX2 here: only the twin exists
        }
        fn check<F: Float>(g: &mut SplitMix64, len: usize, scale: f64, bits: fn(F) -> u64) {
            let a: Vec<F> = (0..len).map(|_| F::from_f64(g.next_normal() * scale)).collect();
            let mut b: Vec<F> = (0..len).map(|_| F::from_f64(g.next_normal())).collect();
            if len > 2 {
                b[1] = -a[0] * b[0] / a[1]; // exact cancellation of the first two terms
            }
            assert_eq!(bits(dot(true, &a, &b)), bits(dot(false, &a, &b)), "{len}");
            let (mut y1, mut y2) = (b.clone(), b.clone());
            axpy(true, F::from_f64(0.37), &a, &mut y1);
            axpy(false, F::from_f64(0.37), &a, &mut y2);
            assert_eq!(
                y1.into_iter().map(bits).collect::<Vec<_>>(),
                y2.into_iter().map(bits).collect::<Vec<_>>()
            );
        }
        let mut g = SplitMix64::new(3);
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 6400] {
            for scale in [1.0, 1e-300, 1e300, 1e10] {
                check::<f64>(&mut g, len, scale, f64::to_bits);
            }
            for scale in [1.0, 1e-20, 1e15, 1e10] {
                check::<f32>(&mut g, len, scale, |v| u64::from(v.to_bits()));
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
