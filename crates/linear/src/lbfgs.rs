//! The full-batch solver: L-BFGS on the whole training objective, with a strong-Wolfe line
//! search, from `W = 0, b = 0`.
//!
//! ```text
//! F(W, b) = (1/N) Σ_i L_i(W x̃_i + b, y_i) + λ Σ W²          (the bias is never penalised)
//! ∇_W F   = (1/N) Σ_i dS_iᵀ x̃_i + 2λW,   ∇_b F = (1/N) Σ_i dS_i
//! p_k     = −H_k ∇F(θ_k)            H_k from the last `memory` pairs (s, y), two-loop recursion
//! θ_k+1   = θ_k + α_k p_k           α_k: strong Wolfe (c1 = 1e-4, c2 = 0.9), cubic zoom
//! stop    : max_j |∇F_j| ≤ tolerance                       (StopReason::GradientTolerance)
//!           (F_k − F_k+1) / max(|F_k|, |F_k+1|, 1) ≤ objective_tolerance  (ObjectiveTolerance)
//!           max_iterations iterations                       (MaxIterations)
//!           no step of sufficient decrease found             (LineSearchFailed)
//! ```
//!
//! The gradient rule is scikit-learn's (`LogisticRegression(solver="lbfgs", tol=...)` stops
//! when the largest gradient component of its mean-scaled objective is at most `tol`); the
//! objective rule is SciPy's `ftol` (scikit-learn passes `64 ε`, our default).
//!
//! One evaluation of `F` and `∇F` runs over fixed blocks of [`BLOCK_ROWS`] training rows in
//! parallel (rayon): each block forms its rows `x̃ = (x − μ)·s` (rounded to f32 as the SGD
//! paths and `predict` form them, u8 pixels or f32 features alike) 32 rows at a time, takes
//! the products `S = X̃ Wᵀ` and `dW = dSᵀ X̃` ([`imgclass_linalg::gemm::gemm`], one thread
//! each; with at most 16 classes linalg's skinny products [`gemm_nt_affine_with`] and
//! [`gemm_tn_affine_add_with`] instead, which read the rows where they lie and form `x̃` in
//! registers) and the loss and `dS` in f64; the blocks' sums are added in f64 in block order. The
//! blocks depend only on `N`, so a fit has the same bits on any number of threads. On u8
//! pixels the f32 products are linalg's u8 kernels instead ([`gemm_nt_u8_with`],
//! [`gemm_tn_u8_with`]: the affine map applied inside their SIMD loops, no `x̃` formed, no
//! packing), a whole block at a time: for the skinny `n = 10` products of raw CIFAR-10 the
//! general product spent most of its time packing and forming `x̃` (a profile of a 45,000 x
//! 3,072 softmax fit: 34 % packing, 13 % edge kernel, 17 % forming rows, 26 % the kernel).
//!
//! The products run in f32 first ([`Lbfgs::mixed_precision`], about twice the throughput),
//! then in f64: the line search compares objective values, and f32 rounding (about 1e-8 of
//! `F`) stalls it short of a tight gradient tolerance. So when a stop rule is met or the line
//! search fails on f32 products (no strong-Wolfe step within 6
//! evaluations), the point is re-evaluated in f64 and the iterations go on in f64 (correction
//! pairs kept) until a rule is met there: every stop is judged in f64.
//!
//! ## Our λ and scikit-learn's C
//!
//! scikit-learn minimises `C Σ_i L_i + ½ ‖W‖²`. Divided by `C·N` that is our objective with
//! `λ = 1 / (2 C N)` ([`Regularizer::from_sklearn_c`](imgclass_loss::Regularizer::from_sklearn_c)),
//! so both have the same minimiser. `LogisticRegression` leaves its intercept unpenalised, as we
//! do: the objectives match exactly (times `C·N`). `LinearSVC` penalises its intercept too
//! (it is a weight on a constant feature `intercept_scaling`, 1 by default), so with the same
//! `C` its optimum differs from ours by that small penalty on `b`; with
//! `loss="squared_hinge"` its per-class loss is our [`Loss::OvaSquaredHinge`] with margin 1.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use imgclass_core::Rows;
use imgclass_linalg::KernelKind;
use imgclass_linalg::gemm::{
    Affine, AffineInput, GemmError, GemmScalar, Op, SkinnyScalar, gemm, gemm_nt_affine_with,
    gemm_nt_u8_with, gemm_tn_affine_add_with, gemm_tn_u8_with,
};
use imgclass_loss::{Float, Loss, LossError};
use rayon::prelude::*;

use crate::LinearError;
use crate::model::TrainingReport;

/// Training rows per block of a full-batch evaluation: the unit of parallel work and of the
/// fixed summation order.
pub const BLOCK_ROWS: usize = 256;

/// Rows per sub-block within a block: 32 rows of 3,072 f64 features are 768 KiB, so a
/// sub-block's rows stay in L2 between its two products.
const SUB_ROWS: usize = 32;

/// Classes up to which an evaluation takes linalg's skinny products
/// ([`Objective::block_skinny`]) rather than a general GEMM: their forward pass streams all
/// of `W` per row, which pays while `W` stays in L2.
const SKINNY_MAX_CLASSES: usize = 16;

/// L-BFGS settings of the full-batch solver (see the [module docs](self) for the rules).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lbfgs {
    /// Most iterations (default 500; each is one line search of usually one evaluation).
    pub max_iterations: usize,
    /// Stop when the largest gradient component `max_j |∂F/∂θ_j|` is at most this (default
    /// 1e-5; scikit-learn's `tol` for its lbfgs solver).
    pub tolerance: f64,
    /// Stop when an iteration lowers `F` by at most this, relative to `max(|F|, 1)` (default
    /// `64 ε` ≈ 1.4e-14, SciPy's `ftol` as scikit-learn sets it; 0 turns the rule off).
    pub objective_tolerance: f64,
    /// Correction pairs kept (default 50; SciPy's `maxcor` is 10, minFunc's and PyTorch's
    /// 100). On the 10,000-image pixel softmax of docs/bench/solver.md, 50 pairs take 752
    /// evaluations where 10 take 989 (21 % less time; the pixel L2-SVM 10 % less), for
    /// `2 · memory · c·(d + 1)` f64 of storage (25 MB there).
    pub memory: usize,
    /// Iterate on f32 products first (default true): about twice the throughput, until a
    /// stop rule is met or the line search fails there; then the point is re-evaluated in f64
    /// and the iterations go on in f64, so every stop rule is judged in f64. False: f64 from
    /// the start.
    pub mixed_precision: bool,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Self {
            max_iterations: 500,
            tolerance: 1e-5,
            objective_tolerance: 64.0 * f64::EPSILON,
            memory: 50,
            mixed_precision: true,
        }
    }
}

/// Why a training run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The largest gradient component reached the tolerance: converged.
    GradientTolerance,
    /// An iteration lowered the objective by less than the relative objective tolerance.
    ObjectiveTolerance,
    /// The iteration budget ran out (always the case for SGD, which runs its budget).
    MaxIterations,
    /// The line search found no step of sufficient decrease (the objective is flat to its
    /// rounding along the search direction): the last point is kept.
    LineSearchFailed,
    /// Dual coordinate descent: the projected gradient's spread over an epoch reached the
    /// tolerance on every row (liblinear's stopping rule).
    ProjectedGradient,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::GradientTolerance => "gradient tolerance reached",
            Self::ObjectiveTolerance => "objective decrease below tolerance",
            Self::MaxIterations => "iteration budget used",
            Self::LineSearchFailed => "line search failed",
            Self::ProjectedGradient => "projected-gradient spread below tolerance",
        })
    }
}

/// The training rows of a full-batch fit.
#[derive(Clone, Copy)]
pub(crate) enum Data<'a> {
    Pixels(Rows<'a, u8>),
    Features(Rows<'a, f32>),
}

impl Data<'_> {
    /// Row `i` as the model sees it, `x̃ = x·scale + offset` (formed in f32 as the SGD paths
    /// and `predict` form it), written into `out` in the precision `T`.
    pub(crate) fn row_into<T: Float>(&self, i: usize, scale: f32, offset: &[f32], out: &mut [T]) {
        match self {
            Data::Pixels(px) => {
                for ((o, &v), &of) in out.iter_mut().zip(px.row(i)).zip(offset) {
                    *o = T::from_f64(f64::from(f32::from(v) * scale + of));
                }
            }
            Data::Features(f) => {
                for ((o, &v), &of) in out.iter_mut().zip(f.row(i)).zip(offset) {
                    *o = T::from_f64(f64::from(v * scale + of));
                }
            }
        }
    }
}

/// The full-batch objective on fixed rows: parameters `θ = [W (c x d, row-major), b (c)]`.
pub(crate) struct Objective<'a> {
    pub(crate) x: Data<'a>,
    pub(crate) labels: &'a [u32],
    /// `s` of `x̃ = x·s + offset`.
    pub(crate) scale: f32,
    /// `−μ·s`, one per feature.
    pub(crate) offset: &'a [f32],
    pub(crate) loss: Loss,
    /// `λ` of `λ Σ W²`.
    pub(crate) l2: f64,
    pub(crate) n_classes: usize,
    pub(crate) fit_bias: bool,
    /// The blocks' sums of the last evaluation in each precision, reused by the next.
    pub(crate) pool: BlockPool,
}

/// The block sums of [`Objective::eval`], kept between evaluations: a fit evaluates `F`
/// hundreds of times, and fresh per-block buffers (a 10,000 x 3,072 pixel softmax: 40
/// blocks of 245 KiB in f64 per evaluation) went back to the kernel and came back as
/// zeroed pages, about a sixth of the fit's time (`perf`: `clear_page_erms` and page
/// faults; the same fit 15 % faster with glibc's trimming turned off).
#[derive(Default)]
pub(crate) struct BlockPool {
    single: Mutex<Vec<BlockSums<f32>>>,
    double: Mutex<Vec<BlockSums<f64>>>,
}

/// One block's sums: `Σ_i L_i`, `Σ_i dS_iᵀ x̃_i` (in the products' precision `T`) and
/// `Σ_i dS_i`.
struct BlockSums<T> {
    loss: f64,
    dw: Vec<T>,
    db: Vec<f64>,
}

impl<T: Product> BlockSums<T> {
    /// Zero sums for `c` classes of `d` features.
    fn new(c: usize, d: usize) -> Self {
        Self { loss: 0.0, dw: vec![T::ZERO; c * d], db: vec![0.0; c] }
    }

    /// Back to zero, keeping the buffers.
    fn reset(&mut self) {
        self.loss = 0.0;
        self.dw.fill(T::ZERO);
        self.db.fill(0.0);
    }
}

/// The precision of an evaluation's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// f32 rows, weights and products (twice the throughput; objective rounding about 1e-8
    /// of `F`), loss and sums in f64.
    Single,
    /// Everything in f64.
    Double,
}

impl Objective<'_> {
    pub(crate) fn dim(&self) -> usize {
        self.offset.len()
    }

    pub(crate) fn n_params(&self) -> usize {
        self.n_classes * (self.dim() + 1)
    }

    /// `(data loss, λ Σ W²)` at `theta`, with `∇F` written into `grad`. Non-finite scores
    /// give an infinite data loss (and an unspecified gradient).
    pub(crate) fn eval(
        &self,
        theta: &[f64],
        grad: &mut [f64],
        precision: Precision,
    ) -> Result<(f64, f64), LinearError> {
        match precision {
            Precision::Single => self.eval_in::<f32>(theta, grad),
            Precision::Double => self.eval_in::<f64>(theta, grad),
        }
    }

    fn eval_in<T: Product>(
        &self,
        theta: &[f64],
        grad: &mut [f64],
    ) -> Result<(f64, f64), LinearError> {
        let (c, d) = (self.n_classes, self.dim());
        let n = self.labels.len();
        let (w, b) = theta.split_at(c * d);
        let w: Vec<T> = w.iter().map(|&v| T::from_f64(v)).collect();
        // pixels in f32: linalg's u8 kernels take the rows as bytes with the affine map
        let scale = vec![self.scale; d];
        let pre = Affine { scale: &scale, offset: self.offset };
        let kernel = KernelKind::detect().map_err(GemmError::Kernel)?;
        let u8_path = match (&self.x, T::U8) {
            (Data::Pixels(px), Some((nt, tn))) => Some(U8Path { px: *px, pre, kernel, nt, tn }),
            _ => None,
        };
        let skinny = c <= SKINNY_MAX_CLASSES;
        let starts: Vec<usize> = (0..n).step_by(BLOCK_ROWS).collect();
        let shared = T::pool(&self.pool);
        let mut pool = std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner));
        pool.resize_with(starts.len(), || BlockSums::new(c, d));
        let finite: Vec<Result<bool, LinearError>> = pool
            .par_iter_mut()
            .zip(&starts)
            .map_init(Vec::new, |xt, (sums, &s)| {
                let r1 = (s + BLOCK_ROWS).min(n);
                sums.reset();
                match &u8_path {
                    Some(p) => self.block_u8(p, s, r1, &w, b, sums),
                    None if skinny => self.block_skinny(kernel, pre, s, r1, &w, b, sums),
                    None => self.block(s, r1, &w, b, xt, sums),
                }
            })
            .collect();
        grad.fill(0.0);
        let mut data = 0.0f64;
        let inv_n = 1.0 / n as f64;
        for (blk, finite) in pool.iter().zip(finite) {
            if !finite? {
                return Ok((f64::INFINITY, 0.0));
            }
            data += blk.loss;
            for (g, &v) in grad[..c * d].iter_mut().zip(&blk.dw) {
                *g += v.to_f64();
            }
            for (g, &v) in grad[c * d..].iter_mut().zip(&blk.db) {
                *g += v;
            }
        }
        *shared.lock().unwrap_or_else(PoisonError::into_inner) = pool;
        grad.iter_mut().for_each(|g| *g *= inv_n);
        if !self.fit_bias {
            grad[c * d..].fill(0.0);
        }
        let mut reg = 0.0f64;
        if self.l2 > 0.0 {
            for (g, &w) in grad[..c * d].iter_mut().zip(&theta[..c * d]) {
                reg += w * w;
                *g += 2.0 * self.l2 * w;
            }
            reg *= self.l2;
        }
        Ok((data * inv_n, reg))
    }

    /// The sums of rows `r0..r1` added into `sums`; `false` when a score is not finite.
    fn block<T: Product>(
        &self,
        r0: usize,
        r1: usize,
        w: &[T],
        b: &[f64],
        xt: &mut Vec<T>,
        sums: &mut BlockSums<T>,
    ) -> Result<bool, LinearError> {
        let (c, d) = (self.n_classes, self.dim());
        let mut st = vec![T::ZERO; SUB_ROWS * c];
        let mut dst = vec![T::ZERO; SUB_ROWS * c];
        // sub-blocks of SUB_ROWS rows (their x̃ stays in L2), accumulated in order into the
        // block's sums
        for s0 in (r0..r1).step_by(SUB_ROWS) {
            let s1 = (s0 + SUB_ROWS).min(r1);
            let m = s1 - s0;
            xt.resize(m * d, T::ZERO);
            for (i, out) in (s0..s1).zip(xt.chunks_exact_mut(d.max(1))) {
                self.x.row_into(i, self.scale, self.offset, out);
            }
            let xt = &xt[..m * d];
            let (st, dst) = (&mut st[..m * c], &mut dst[..m * c]);
            gemm(m, c, d, T::ONE, xt, Op::N, w, Op::T, T::ZERO, st)?;
            let Some(loss) = self.loss_rows(s0, st, b, dst, &mut sums.db)? else {
                return Ok(false);
            };
            gemm(c, d, m, T::ONE, dst, Op::T, xt, Op::N, T::ONE, &mut sums.dw)?;
            sums.loss += loss;
        }
        Ok(true)
    }
}

impl Objective<'_> {
    /// [`Objective::block`] for few classes (at most [`SKINNY_MAX_CLASSES`]): linalg's skinny
    /// products ([`gemm_nt_affine_with`], [`gemm_tn_affine_add_with`]) read each row where it
    /// lies and form `x̃` in registers, with the rounding of [`Data::row_into`], instead of
    /// materialising the rows and packing them for a general GEMM (a profile of a 10,000 x
    /// 3,072 softmax fit on standardised pixels: 30 % packing and 22 % forming rows, 37 % in
    /// the kernels). Sub-blocks of [`SUB_ROWS`] rows, so that the backward product's second
    /// pass over a sub-block finds it in L2.
    #[allow(clippy::too_many_arguments)]
    fn block_skinny<T: Product>(
        &self,
        kernel: KernelKind,
        pre: Affine<'_>,
        r0: usize,
        r1: usize,
        w: &[T],
        b: &[f64],
        sums: &mut BlockSums<T>,
    ) -> Result<bool, LinearError> {
        let c = self.n_classes;
        let mut st = vec![T::ZERO; SUB_ROWS * c];
        let mut dst = vec![T::ZERO; SUB_ROWS * c];
        for s0 in (r0..r1).step_by(SUB_ROWS) {
            let s1 = (s0 + SUB_ROWS).min(r1);
            let (st, dst) = (&mut st[..(s1 - s0) * c], &mut dst[..(s1 - s0) * c]);
            let loss = match self.x {
                Data::Pixels(px) => {
                    let rows: Vec<&[u8]> = (s0..s1).map(|i| px.row(i)).collect();
                    self.sub_block_skinny(kernel, pre, s0, &rows, w, b, st, dst, sums)?
                }
                Data::Features(f) => {
                    let rows: Vec<&[f32]> = (s0..s1).map(|i| f.row(i)).collect();
                    self.sub_block_skinny(kernel, pre, s0, &rows, w, b, st, dst, sums)?
                }
            };
            let Some(loss) = loss else {
                return Ok(false);
            };
            sums.loss += loss;
        }
        Ok(true)
    }

    /// One sub-block of [`Objective::block_skinny`], rows from `s0`: scores, loss, and the
    /// backward product added into `sums.dw`; the rows' loss sum, or `None` when a score is
    /// not finite.
    #[allow(clippy::too_many_arguments)]
    fn sub_block_skinny<X: AffineInput, T: Product>(
        &self,
        kernel: KernelKind,
        pre: Affine<'_>,
        s0: usize,
        rows: &[&[X]],
        w: &[T],
        b: &[f64],
        st: &mut [T],
        dst: &mut [T],
        sums: &mut BlockSums<T>,
    ) -> Result<Option<f64>, LinearError> {
        let c = self.n_classes;
        gemm_nt_affine_with(kernel, rows, pre, w, c, st)?;
        let Some(loss) = self.loss_rows(s0, st, b, dst, &mut sums.db)? else {
            return Ok(None);
        };
        gemm_tn_affine_add_with(kernel, dst, c, rows, pre, &mut sums.dw)?;
        Ok(Some(loss))
    }

    /// [`Objective::block`] on u8 pixels in f32: the rows `r0..r1` go to linalg's u8 kernels
    /// as bytes ([`gemm_nt_u8_with`] for `S`, [`gemm_tn_u8_with`] for `dW`), which apply the
    /// affine map inside their SIMD loops instead of materialising `x̃` and packing it (a
    /// skinny `n = 10` product is mostly packing for a general GEMM). Their rounding differs
    /// from the f32 `x̃` of [`Data::row_into`] by f32 rounding only; the f64 phase that judges
    /// every stop rule forms `x̃` as before.
    fn block_u8<T: Product>(
        &self,
        p: &U8Path<'_, T>,
        r0: usize,
        r1: usize,
        w: &[T],
        b: &[f64],
        sums: &mut BlockSums<T>,
    ) -> Result<bool, LinearError> {
        let c = self.n_classes;
        let m = r1 - r0;
        let rows: Vec<&[u8]> = (r0..r1).map(|i| p.px.row(i)).collect();
        let mut st = vec![T::ZERO; m * c];
        (p.nt)(p.kernel, &rows, p.pre, w, c, &mut st)?;
        let mut dst = vec![T::ZERO; m * c];
        let Some(loss) = self.loss_rows(r0, &st, b, &mut dst, &mut sums.db)? else {
            return Ok(false);
        };
        // the u8 product writes `dW` (sums.dw is zero and this block's alone)
        (p.tn)(p.kernel, &dst, c, &rows, p.pre, &mut sums.dw)?;
        sums.loss = loss;
        Ok(true)
    }

    /// The loss part of a block, between its two products: from the scores `st` (rows x c,
    /// bias not added) of the rows from `r0`, the loss's `dS` times the row count into `dst`
    /// (the backward product's input) and added into `db`; returns the rows' loss sum, or
    /// `None` when a score is not finite.
    fn loss_rows<T: Product>(
        &self,
        r0: usize,
        st: &[T],
        b: &[f64],
        dst: &mut [T],
        db: &mut [f64],
    ) -> Result<Option<f64>, LinearError> {
        let c = self.n_classes;
        let m = st.len() / c;
        let mut scores = vec![0.0f64; m * c];
        for (srow, trow) in scores.chunks_exact_mut(c).zip(st.chunks_exact(c)) {
            for ((v, &t), &bj) in srow.iter_mut().zip(trow).zip(b) {
                *v = t.to_f64() + bj;
            }
        }
        let mut ds = vec![0.0f64; m * c];
        let mean = match self.loss.loss_grad_into(&scores, c, &self.labels[r0..r0 + m], &mut ds) {
            Ok(v) => v,
            Err(LossError::NonFinite { what: "scores", .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // the loss's dS is of the rows' mean: back to per-row sums
        let mf = m as f64;
        for row in ds.chunks_exact(c) {
            db.iter_mut().zip(row).for_each(|(a, &g)| *a += g * mf);
        }
        dst.iter_mut().zip(&ds).for_each(|(o, &g)| *o = T::from_f64(g * mf));
        Ok(Some(mean * mf))
    }
}

/// The pixels, their affine map, the kernel and the products of [`Objective::block_u8`].
struct U8Path<'a, T> {
    px: Rows<'a, u8>,
    pre: Affine<'a>,
    kernel: KernelKind,
    nt: NtU8<T>,
    tn: TnU8<T>,
}

/// linalg's forward u8 product ([`gemm_nt_u8_with`]) in precision `T`.
type NtU8<T> = fn(KernelKind, &[&[u8]], Affine<'_>, &[T], usize, &mut [T]) -> Result<(), GemmError>;
/// linalg's backward u8 product ([`gemm_tn_u8_with`]) in precision `T`.
type TnU8<T> = fn(KernelKind, &[T], usize, &[&[u8]], Affine<'_>, &mut [T]) -> Result<(), GemmError>;

/// A precision of the products: every one has the general [`gemm`]; f32 also has linalg's
/// u8 kernels (the pixel path of [`Objective::block_u8`]).
trait Product: GemmScalar + Float + SkinnyScalar {
    /// The u8 kernels in this precision, if any.
    const U8: Option<(NtU8<Self>, TnU8<Self>)>;

    /// The reused block sums of this precision.
    fn pool(pool: &BlockPool) -> &Mutex<Vec<BlockSums<Self>>>;
}

impl Product for f32 {
    const U8: Option<(NtU8<f32>, TnU8<f32>)> = Some((gemm_nt_u8_with, gemm_tn_u8_with));

    fn pool(pool: &BlockPool) -> &Mutex<Vec<BlockSums<Self>>> {
        &pool.single
    }
}

impl Product for f64 {
    const U8: Option<(NtU8<f64>, TnU8<f64>)> = None;

    fn pool(pool: &BlockPool) -> &Mutex<Vec<BlockSums<Self>>> {
        &pool.double
    }
}

/// What [`minimize`] hands back.
pub(crate) struct Outcome {
    pub(crate) theta: Vec<f64>,
    pub(crate) stop: StopReason,
    /// `max_j |∂F/∂θ_j|` at `theta`.
    pub(crate) grad_max: f64,
    pub(crate) objective: f64,
    pub(crate) iterations: usize,
    pub(crate) evaluations: usize,
}

/// A point of the line search `φ(α) = F(θ + α p)`.
struct Trial {
    alpha: f64,
    f: f64,
    data: f64,
    reg: f64,
    /// `φ'(α) = ∇F(θ + α p)ᵀ p` (NaN where `F` is not finite).
    dphi: f64,
    grad: Vec<f64>,
}

/// `a · b` with 8 interleaved partial sums (lane `l` adds the products of elements `l`,
/// `l + 8`, … in order), a fixed pairwise tree over the lanes, then the tail: the compiler
/// vectorises it, where one running sum waited on every add (the two-loop recursion takes two
/// dots per correction pair per iteration, over all `c·(d + 1)` parameters).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0.0f64; 8];
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    (((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))) + tail
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Evaluations one line search may spend in f64.
const MAX_LINE_EVALS: usize = 25;
/// Evaluations one line search may spend on f32 products. Where a normal search takes one or
/// two, one that needs more is, near the optimum, the f32 rounding of `F` (about 1e-8 of it)
/// hiding the decrease: the search cannot succeed there, so after this many evaluations
/// without a strong-Wolfe step it gives up and the iterations go on in f64. (With the f64
/// budget, a profile of 50,000 x 154 softmax spent 72 of its 145 evaluations in three such
/// searches.)
const MAX_LINE_EVALS_F32: usize = 6;
const C1: f64 = 1e-4;
const C2: f64 = 0.9;

struct LineSearch<'o, 'a> {
    obj: &'o Objective<'a>,
    theta: &'o [f64],
    p: &'o [f64],
    f0: f64,
    dphi0: f64,
    evals: usize,
    xt: Vec<f64>,
    precision: Precision,
}

impl LineSearch<'_, '_> {
    /// The evaluation budget at this precision.
    fn budget(&self) -> usize {
        match self.precision {
            Precision::Single => MAX_LINE_EVALS_F32,
            Precision::Double => MAX_LINE_EVALS,
        }
    }

    /// What a search that spent its budget without a strong-Wolfe step returns: in f64 the
    /// best step of sufficient decrease found (if any); in f32 none (see
    /// [`MAX_LINE_EVALS_F32`]), which moves the iterations to f64.
    fn exhausted(&self, best: Trial) -> Option<Trial> {
        (self.precision == Precision::Double && best.alpha > 0.0).then_some(best)
    }
}

impl LineSearch<'_, '_> {
    fn eval(&mut self, alpha: f64) -> Result<Trial, LinearError> {
        self.evals += 1;
        for ((x, &t), &p) in self.xt.iter_mut().zip(self.theta).zip(self.p) {
            *x = t + alpha * p;
        }
        let mut grad = vec![0.0f64; self.xt.len()];
        let (data, reg) = self.obj.eval(&self.xt, &mut grad, self.precision)?;
        let f = data + reg;
        if !f.is_finite() {
            return Ok(Trial { alpha, f: f64::INFINITY, data, reg, dphi: f64::NAN, grad });
        }
        let dphi = dot(&grad, self.p);
        Ok(Trial { alpha, f, data, reg, dphi, grad })
    }

    fn armijo(&self, t: &Trial) -> bool {
        t.f <= self.f0 + C1 * t.alpha * self.dphi0
    }

    fn curvature(&self, t: &Trial) -> bool {
        t.dphi.abs() <= -C2 * self.dphi0
    }

    /// A step satisfying the strong Wolfe conditions (Nocedal & Wright, algorithm 3.5), or
    /// failing that one of sufficient decrease; `None` when no decrease was found.
    fn run(&mut self, alpha0: f64, start: Trial) -> Result<Option<Trial>, LinearError> {
        let mut prev = start;
        let mut alpha = alpha0;
        let mut first = true;
        while self.evals < self.budget() {
            let cur = self.eval(alpha)?;
            if !self.armijo(&cur) || (!first && cur.f >= prev.f) {
                return self.zoom(prev, cur);
            }
            if self.curvature(&cur) {
                return Ok(Some(cur));
            }
            if cur.dphi >= 0.0 {
                return self.zoom(cur, prev);
            }
            first = false;
            alpha = cur.alpha * 2.0;
            prev = cur;
        }
        Ok(self.exhausted(prev))
    }

    /// Nocedal & Wright's zoom (algorithm 3.6) with a safeguarded cubic step: `lo` always
    /// satisfies sufficient decrease and has the lowest `φ` found.
    fn zoom(&mut self, mut lo: Trial, mut hi: Trial) -> Result<Option<Trial>, LinearError> {
        while self.evals < self.budget() {
            let (a, b) = (lo.alpha.min(hi.alpha), lo.alpha.max(hi.alpha));
            if b - a <= 1e-12 * b.max(1e-300) {
                break;
            }
            let alpha = cubic_step(&lo, &hi).clamp(a + 0.1 * (b - a), b - 0.1 * (b - a));
            let cur = self.eval(alpha)?;
            if !self.armijo(&cur) || cur.f >= lo.f {
                hi = cur;
            } else {
                if self.curvature(&cur) {
                    return Ok(Some(cur));
                }
                if cur.dphi * (hi.alpha - lo.alpha) >= 0.0 {
                    hi = lo;
                }
                lo = cur;
            }
        }
        Ok(self.exhausted(lo))
    }
}

/// The minimiser of the cubic through `(a, φ(a), φ'(a))` and `(b, φ(b), φ'(b))` (Nocedal &
/// Wright eq. 3.59), or the midpoint when it is undefined.
fn cubic_step(a: &Trial, b: &Trial) -> f64 {
    let mid = 0.5 * (a.alpha + b.alpha);
    if !(a.f.is_finite() && b.f.is_finite() && a.dphi.is_finite() && b.dphi.is_finite()) {
        return mid;
    }
    let d1 = a.dphi + b.dphi - 3.0 * (a.f - b.f) / (a.alpha - b.alpha);
    let disc = d1 * d1 - a.dphi * b.dphi;
    if disc.is_nan() || disc < 0.0 {
        return mid;
    }
    let d2 = (b.alpha - a.alpha).signum() * disc.sqrt();
    let den = b.dphi - a.dphi + 2.0 * d2;
    let t = b.alpha - (b.alpha - a.alpha) * (b.dphi + d2 - d1) / den;
    if t.is_finite() { t } else { mid }
}

/// L-BFGS from `θ = 0`: records `F` (and its two parts) after every iteration in `report`.
///
/// With [`Lbfgs::mixed_precision`] it iterates on f32 products until a rule would stop it
/// (the gradient or objective rule met, or a failed line search: where the f32 rounding
/// stalls progress), then re-evaluates the point in f64 and goes on in f64 (the correction
/// pairs kept), so every stop rule is judged on f64 values.
pub(crate) fn minimize(
    obj: &Objective<'_>,
    cfg: &Lbfgs,
    report: &mut TrainingReport,
) -> Result<Outcome, LinearError> {
    let np = obj.n_params();
    let mut precision = if cfg.mixed_precision { Precision::Single } else { Precision::Double };
    let mut theta = vec![0.0f64; np];
    let mut grad = vec![0.0f64; np];
    let (data, reg) = obj.eval(&theta, &mut grad, precision)?;
    let mut f = data + reg;
    if !f.is_finite() {
        return Err(LinearError::Diverged { iteration: 0, loss: f });
    }
    let mut evaluations = 1;
    let mut pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(cfg.memory);
    let mut iterations = 0;
    let mut p = vec![0.0f64; np];
    let mut alpha_buf = vec![0.0f64; cfg.memory];
    let mut f_old = f64::INFINITY;
    let stop = loop {
        let rule = if max_abs(&grad) <= cfg.tolerance {
            Some(StopReason::GradientTolerance)
        } else if f_old.is_finite()
            && (f_old - f) <= cfg.objective_tolerance * f_old.abs().max(f.abs()).max(1.0)
        {
            Some(StopReason::ObjectiveTolerance)
        } else {
            None
        };
        if let Some(rule) = rule {
            if precision == Precision::Double {
                break rule;
            }
            // met in f32: judge it again in f64
            precision = Precision::Double;
            let (data, reg) = obj.eval(&theta, &mut grad, precision)?;
            (f, f_old, evaluations) = (data + reg, f64::INFINITY, evaluations + 1);
            continue;
        }
        if iterations >= cfg.max_iterations {
            break StopReason::MaxIterations;
        }
        // p = −H g by the two-loop recursion, H₀ = γI with γ = sᵀy / yᵀy of the newest pair
        p.iter_mut().zip(&grad).for_each(|(pi, g)| *pi = -g);
        for (k, (s, y, rho)) in pairs.iter().enumerate().rev() {
            let a = rho * dot(s, &p);
            alpha_buf[k] = a;
            p.iter_mut().zip(y).for_each(|(pi, yi)| *pi -= a * yi);
        }
        if let Some((s, y, _)) = pairs.back() {
            let gamma = dot(s, y) / dot(y, y);
            p.iter_mut().for_each(|pi| *pi *= gamma);
        }
        for (k, (s, y, rho)) in pairs.iter().enumerate() {
            let beta = rho * dot(y, &p);
            let a = alpha_buf[k];
            p.iter_mut().zip(s).for_each(|(pi, si)| *pi += (a - beta) * si);
        }
        let mut dphi0 = dot(&grad, &p);
        if dphi0.is_nan() || dphi0 >= 0.0 {
            // not a descent direction (round-off in H): restart from steepest descent
            pairs.clear();
            p.iter_mut().zip(&grad).for_each(|(pi, g)| *pi = -g);
            dphi0 = -dot(&grad, &grad);
        }
        let alpha0 = if pairs.is_empty() { 1.0 / dot(&p, &p).sqrt() } else { 1.0 };
        let mut ls = LineSearch {
            obj,
            theta: &theta,
            p: &p,
            f0: f,
            dphi0,
            evals: 0,
            xt: vec![0.0; np],
            precision,
        };
        let start = Trial { alpha: 0.0, f, data: 0.0, reg: 0.0, dphi: dphi0, grad: Vec::new() };
        let found = ls.run(alpha0, start)?;
        evaluations += ls.evals;
        let Some(t) = found else {
            if precision == Precision::Double {
                break StopReason::LineSearchFailed;
            }
            precision = Precision::Double;
            let (data, reg) = obj.eval(&theta, &mut grad, precision)?;
            (f, f_old, evaluations) = (data + reg, f64::INFINITY, evaluations + 1);
            continue;
        };
        iterations += 1;
        tracing::trace!(
            iterations,
            evals = ls.evals,
            alpha = t.alpha,
            f = t.f,
            ?precision,
            "l-bfgs step"
        );
        // s = α p, y = ∇F_new − ∇F
        let s: Vec<f64> = p.iter().map(|pi| t.alpha * pi).collect();
        let y: Vec<f64> = t.grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        theta.iter_mut().zip(&s).for_each(|(x, si)| *x += si);
        if sy > f64::EPSILON * dot(&y, &y) {
            if pairs.len() == cfg.memory {
                pairs.pop_front();
            }
            pairs.push_back((s, y, 1.0 / sy));
        }
        f_old = f;
        (f, grad) = (t.f, t.grad);
        report.push(t.data as f32, t.reg as f32);
    };
    if precision == Precision::Single {
        // the budget ran out in f32: report the point's f64 objective and gradient
        let (data, reg) = obj.eval(&theta, &mut grad, Precision::Double)?;
        (f, evaluations) = (data + reg, evaluations + 1);
    }
    if theta.iter().any(|v| !v.is_finite()) || !f.is_finite() {
        return Err(LinearError::Diverged { iteration: iterations, loss: f });
    }
    Ok(Outcome { grad_max: max_abs(&grad), objective: f, theta, stop, iterations, evaluations })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::rng::SplitMix64;
    use imgclass_loss::check_gradient;

    /// `F` and `∇F` of [`Objective::eval`] against central differences of `F` itself and
    /// against a naive f64 objective, for every smooth loss, with and without L2 and bias,
    /// over more rows than one block (so the block sums are exercised); the f32 evaluation
    /// (on pixels, [`Objective::block_u8`]) against the f64 one.
    #[test]
    fn full_objective_gradient_matches_central_differences() {
        // 3 classes: linalg's skinny products; more than SKINNY_MAX_CLASSES: the general GEMM
        objective_matches_central_differences(3);
        objective_matches_central_differences(SKINNY_MAX_CLASSES + 1);
    }

    fn objective_matches_central_differences(c: usize) {
        let (n, d) = (BLOCK_ROWS * 2 + 37, 5);
        let mut g = SplitMix64::new(21);
        let x: Vec<f32> = (0..n * d).map(|_| (g.next_normal() * 2.0 + 1.0) as f32).collect();
        let px: Vec<u8> = (0..n * d).map(|_| g.below(256) as u8).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 5 + 2) % c as u32).collect();
        let offset: Vec<f32> = (0..d).map(|k| -0.5 - 0.1 * k as f32).collect();
        let losses = [
            Loss::Softmax,
            Loss::SquaredHinge { margin: 1.0 },
            Loss::OvaSquaredHinge { margin: 1.0 },
        ];
        let feats = Data::Features(Rows::new(&x, n, d).expect("shape"));
        let pixels = Data::Pixels(Rows::new(&px, n, d).expect("shape"));
        for (data, scale) in [(feats, 1.0f32), (pixels, 1.0 / 128.0)] {
            for loss in losses {
                for (l2, fit_bias) in [(0.0, true), (0.3, true), (0.3, false)] {
                    let obj = Objective {
                        x: data,
                        labels: &labels,
                        scale,
                        offset: &offset,
                        loss,
                        l2,
                        n_classes: c,
                        fit_bias,
                        pool: BlockPool::default(),
                    };
                    // without a bias the solver keeps b = 0 (its gradient is zeroed)
                    let theta: Vec<f64> = (0..obj.n_params())
                        .map(|i| if i < c * d || fit_bias { g.next_normal() * 0.3 } else { 0.0 })
                        .collect();
                    let mut grad = vec![0.0; theta.len()];
                    let (data_loss, reg) =
                        obj.eval(&theta, &mut grad, Precision::Double).expect("finite");
                    // the naive objective: rows formed the same way, everything else f64
                    let row = |i: usize| -> Vec<f64> {
                        (0..d)
                            .map(|k| {
                                let v = match data {
                                    Data::Features(_) => x[i * d + k],
                                    Data::Pixels(_) => f32::from(px[i * d + k]),
                                };
                                f64::from(v * scale + offset[k])
                            })
                            .collect()
                    };
                    let rows: Vec<Vec<f64>> = (0..n).map(row).collect();
                    let naive = |t: &[f64]| -> f64 {
                        let mut s = vec![0.0; n * c];
                        for (i, r) in rows.iter().enumerate() {
                            for j in 0..c {
                                let b = if fit_bias { t[c * d + j] } else { 0.0 };
                                s[i * c + j] =
                                    b + r.iter().zip(&t[j * d..]).map(|(a, w)| a * w).sum::<f64>();
                            }
                        }
                        let l = loss.loss_grad(&s, c, &labels).expect("finite").loss;
                        l + l2 * t[..c * d].iter().map(|w| w * w).sum::<f64>()
                    };
                    let want = naive(&theta);
                    let got = data_loss + reg;
                    assert!((got - want).abs() <= 1e-12 * want, "{loss:?} {l2}: {got} vs {want}");
                    let chk = check_gradient(naive, &theta, &grad, 1e-5);
                    // with 17 classes some components are ~1e-4, where the difference
                    // quotient's rounding (ε·F/h ≈ 5e-11) alone is ~5e-7 of them
                    let tol = if c > 3 { 2e-6 } else { 1e-6 };
                    assert!(chk.max_rel_error < tol, "{loss:?} {l2} {fit_bias}: {chk:?}");
                    // the f32 phase (pixels: linalg's u8 kernels; features: the skinny or
                    // the general product) agrees with the f64 one to f32 rounding
                    let mut grad32 = vec![0.0; theta.len()];
                    let (d32, r32) =
                        obj.eval(&theta, &mut grad32, Precision::Single).expect("finite");
                    let f32_rel = ((d32 + r32) - want).abs() / want;
                    assert!(f32_rel <= 1e-5, "{loss:?} {l2}: f32 F {} vs {want}", d32 + r32);
                    let top = grad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    for (a, b) in grad32.iter().zip(&grad) {
                        assert!((a - b).abs() <= 1e-4 * top, "{loss:?} {l2}: ∇ {a} vs {b}");
                    }
                }
            }
        }
    }

    /// The pooled block sums leave nothing behind: an evaluation repeated after others (at
    /// another point, in the other precision, after one whose scores overflowed) gives the
    /// first one's bits, on features and on pixels.
    #[test]
    fn reused_block_sums_give_the_same_bits_as_fresh_ones() {
        let (n, d, c) = (BLOCK_ROWS * 3 + 11, 7, 4);
        let mut g = SplitMix64::new(5);
        let x: Vec<f32> = (0..n * d).map(|_| g.next_normal() as f32).collect();
        let px: Vec<u8> = (0..n * d).map(|_| g.below(256) as u8).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3 + 1) % c as u32).collect();
        let offset: Vec<f32> = (0..d).map(|k| -0.2 * k as f32).collect();
        let feats = Data::Features(Rows::new(&x, n, d).expect("shape"));
        let pixels = Data::Pixels(Rows::new(&px, n, d).expect("shape"));
        for (data, scale) in [(feats, 1.0f32), (pixels, 1.0 / 255.0)] {
            let obj = Objective {
                x: data,
                labels: &labels,
                scale,
                offset: &offset,
                loss: Loss::Softmax,
                l2: 0.1,
                n_classes: c,
                fit_bias: true,
                pool: BlockPool::default(),
            };
            let np = obj.n_params();
            let a: Vec<f64> = (0..np).map(|_| g.next_normal() * 0.2).collect();
            let b: Vec<f64> = (0..np).map(|_| g.next_normal()).collect();
            let huge: Vec<f64> = (0..np).map(|i| if i % 3 == 0 { 1e308 } else { -1e307 }).collect();
            for precision in [Precision::Double, Precision::Single] {
                let run = |t: &[f64], p: Precision| {
                    let mut grad = vec![0.0; np];
                    let (l, r) = obj.eval(t, &mut grad, p).expect("evaluates");
                    (l.to_bits(), r.to_bits(), grad.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                };
                let first = run(&a, precision);
                run(&b, precision);
                run(&a, Precision::Double);
                run(&a, Precision::Single);
                let (l, _, _) = run(&huge, precision);
                assert_eq!(f64::from_bits(l), f64::INFINITY, "overflowing scores");
                assert_eq!(run(&a, precision), first, "{precision:?}");
            }
        }
    }

    /// The 8-lane dot product against a naive f64 sum, for every tail length.
    #[test]
    fn the_lane_dot_product_matches_a_naive_sum() {
        let mut g = SplitMix64::new(9);
        for len in 0..40 {
            let a: Vec<f64> = (0..len).map(|_| g.next_normal()).collect();
            let b: Vec<f64> = (0..len).map(|_| g.next_normal()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let scale: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            let got = dot(&a, &b);
            assert!((got - naive).abs() <= 1e-14 * scale.max(1.0), "{len}: {got} vs {naive}");
        }
        assert_eq!(dot(&[3.0; 9], &[2.0; 9]), 54.0);
    }

    #[test]
    fn the_cubic_step_finds_a_quadratic_minimum_and_falls_back_to_bisection() {
        // φ(α) = (α − 2)²: φ(0) = 4, φ'(0) = −4; φ(3) = 1, φ'(3) = 2 → minimum at 2
        let t = |alpha, f, dphi| Trial { alpha, f, data: f, reg: 0.0, dphi, grad: Vec::new() };
        let a = cubic_step(&t(0.0, 4.0, -4.0), &t(3.0, 1.0, 2.0));
        assert!((a - 2.0).abs() < 1e-12, "{a}");
        assert_eq!(cubic_step(&t(0.0, 4.0, -4.0), &t(3.0, f64::INFINITY, f64::NAN)), 1.5);
    }
}
