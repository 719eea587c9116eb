//! [`Linear`]: the hyperparameters of a linear classifier, and minibatch SGD fitting them
//! into a [`LinearModel`].

use imgclass_core::rng::SplitMix64;
use imgclass_core::{Fit, Subset};
use imgclass_linalg::gemm::{
    Affine, GemmKernel, I8Grad, I8U8_MAX_ROWS, NtPackBlock, NtPacked, gemm_nt_u8_packed,
    gemm_nt_u8_packed_serial, gemm_nt_u8_with, gemm_tn_i8u8_cols_prepared, gemm_tn_u8_cols_with,
    i8u8_is_simd, i32_affine_to_f32, prefetch_rows,
};
use imgclass_loss::{Loss, LossError, Regularizer};

use crate::LinearError;
use crate::model::{LinearModel, TrainingReport};

/// When SGD stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many minibatch updates.
    Iterations(usize),
    /// After this many passes over the training set (`ceil(n / batch_size)` updates each).
    Epochs(usize),
}

/// Minibatch stochastic gradient descent settings.
///
/// Minibatches are drawn without replacement from a seeded shuffle of the training rows,
/// reshuffled at each epoch; the learning rate is multiplied by `decay` at the end of each
/// epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// Rows per minibatch (default 200; capped at the training-set size).
    pub batch_size: usize,
    /// Step size `η` (default 1e-7, the CS231n value for raw pixels).
    pub learning_rate: f64,
    /// Factor applied to the learning rate after each epoch (default 1.0: constant).
    pub decay: f64,
    /// Momentum `μ_m` in `[0, 1)` (default 0.0: plain SGD).
    pub momentum: f64,
    /// When to stop (default 1,500 iterations).
    pub stop: Stop,
    /// Seed of the weight initialisation and the minibatch order (default 0).
    pub seed: u64,
}

impl Default for Sgd {
    fn default() -> Self {
        Self {
            batch_size: 200,
            learning_rate: 1e-7,
            decay: 1.0,
            momentum: 0.0,
            stop: Stop::Iterations(1500),
            seed: 0,
        }
    }
}

/// Hyperparameters of a linear classifier; [`Fit`] them to a training [`Subset`] of u8
/// images to get a [`LinearModel`]. Cheap to clone, so a grid is a `Vec<Linear>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    loss: Loss,
    reg: Regularizer,
    sgd: Sgd,
    init_std: f64,
    input_scale: f32,
    fit_bias: bool,
    divergence_factor: f64,
}

impl Linear {
    /// A classifier trained on `loss`, with the defaults of every setter below.
    pub fn new(loss: Loss) -> Self {
        Self {
            loss,
            reg: Regularizer::None,
            sgd: Sgd::default(),
            init_std: 1e-3,
            input_scale: 1.0,
            fit_bias: true,
            divergence_factor: 1e6,
        }
    }

    /// The data loss (set by [`Linear::new`]).
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// The regulariser on `W` (default [`Regularizer::None`]; the bias is never regularised).
    pub fn regularization(mut self, reg: Regularizer) -> Self {
        self.reg = reg;
        self
    }

    /// The SGD settings (default [`Sgd::default`]).
    pub fn sgd(mut self, sgd: Sgd) -> Self {
        self.sgd = sgd;
        self
    }

    /// Standard deviation of the Gaussian initial weights (default 1e-3).
    pub fn init_std(mut self, std: f64) -> Self {
        self.init_std = std;
        self
    }

    /// Scale applied after mean subtraction: `x̃ = (x − μ) · scale` (default 1.0: raw pixels).
    pub fn input_scale(mut self, scale: f32) -> Self {
        self.input_scale = scale;
        self
    }

    /// Whether to learn the bias `b` (default true; false keeps `b = 0`).
    pub fn fit_bias(mut self, fit: bool) -> Self {
        self.fit_bias = fit;
        self
    }

    /// Training stops with [`LinearError::Diverged`] when the loss exceeds this factor times
    /// `max(1, first loss)` or becomes non-finite (default 1e6).
    pub fn divergence_factor(mut self, factor: f64) -> Self {
        self.divergence_factor = factor;
        self
    }

    /// The SGD settings in use.
    pub fn sgd_settings(&self) -> &Sgd {
        &self.sgd
    }

    /// The data loss in use.
    pub fn loss_kind(&self) -> Loss {
        self.loss
    }

    /// The regulariser in use.
    pub fn regularizer(&self) -> Regularizer {
        self.reg
    }

    fn validate(&self) -> Result<(), LinearError> {
        let bad =
            |name, value: f64, reason| Err(LinearError::InvalidParameter { name, value, reason });
        let s = &self.sgd;
        if s.batch_size == 0 {
            return bad("batch_size", 0.0, "must be at least 1");
        }
        if !(s.learning_rate.is_finite() && s.learning_rate > 0.0) {
            return bad("learning_rate", s.learning_rate, "must be positive and finite");
        }
        if !(s.decay.is_finite() && s.decay > 0.0) {
            return bad("decay", s.decay, "must be positive and finite");
        }
        if !(s.momentum.is_finite() && (0.0..1.0).contains(&s.momentum)) {
            return bad("momentum", s.momentum, "must be in [0, 1)");
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return bad("init_std", self.init_std, "must be non-negative and finite");
        }
        if !(self.input_scale.is_finite() && self.input_scale > 0.0) {
            return bad("input_scale", f64::from(self.input_scale), "must be positive and finite");
        }
        if !(self.divergence_factor.is_finite() && self.divergence_factor > 1.0) {
            return bad("divergence_factor", self.divergence_factor, "must be finite and above 1");
        }
        match self.loss {
            Loss::Svm { margin } | Loss::SquaredHinge { margin }
                if !(margin.is_finite() && margin >= 0.0) =>
            {
                return bad("margin", margin, "must be non-negative and finite");
            }
            _ => {}
        }
        let (c2, c1) = self.reg.coefficients();
        for v in [c2, c1] {
            if !(v.is_finite() && v >= 0.0) {
                return bad("regularization", v, "must be non-negative and finite");
            }
        }
        Ok(())
    }
}

/// The mean image of `train` (exact integer sums, then one division per feature).
fn mean_image(train: &Subset) -> Vec<f32> {
    use rayon::prelude::*;
    let d = train.dim();
    let idx = train.indices();
    let chunk = 1024;
    let sums = idx
        .par_chunks(chunk)
        .map(|rows| {
            // u32 partial sums (1,024 rows x 255 < 2^32) vectorise; u64 across chunks
            let mut s32 = vec![0u32; d];
            for &r in rows {
                for (a, &x) in s32.iter_mut().zip(train.dataset().row(r)) {
                    *a += u32::from(x);
                }
            }
            s32.into_iter().map(u64::from).collect::<Vec<u64>>()
        })
        .reduce(
            || vec![0u64; d],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let n = train.len() as f64;
    sums.iter().map(|&s| (s as f64 / n) as f32).collect()
}

/// Features per task of the fused backward pass and update (a multiple of 32, so every
/// column of `dW` is computed as in one pass over all features: see
/// [`imgclass_linalg::gemm::gemm_tn_u8_cols_with`]). 256 features of 10 classes are a 10 KiB
/// slice of `W`, a 12-way split of CIFAR-10's 3,072 features.
const UPDATE_BLOCK: usize = 256;
// each update task repacks the forward's block of `W'` with the same features
const _: () = assert!(UPDATE_BLOCK == NtPacked::BLOCK);

/// The seeded minibatch order: draws without replacement from a shuffle of the training rows,
/// reshuffling (and decaying the learning rate) at each epoch.
struct Batches {
    rng: SplitMix64,
    order: Vec<usize>,
    pos: usize,
    epochs_done: usize,
    lr: f64,
    decay: f64,
}

impl Batches {
    fn new(mut rng: SplitMix64, n: usize, lr: f64, decay: f64) -> Self {
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        Self { rng, order, pos: 0, epochs_done: 0, lr, decay }
    }

    /// Fills `rows`/`labels` with the next `bs` rows; returns the learning rate for them.
    fn draw<'a>(
        &mut self,
        train: &'a Subset,
        bs: usize,
        rows: &mut Vec<&'a [u8]>,
        labels: &mut Vec<u32>,
    ) -> f64 {
        rows.clear();
        labels.clear();
        while rows.len() < bs {
            if self.pos == self.order.len() {
                self.rng.shuffle(&mut self.order);
                self.pos = 0;
                self.epochs_done += 1;
                self.lr *= self.decay;
            }
            let p = self.order[self.pos];
            self.pos += 1;
            rows.push(train.row(p));
            labels.push(train.label(p));
        }
        self.lr
    }
}

/// What one gradient evaluation needs besides the batch and the parameters.
pub(crate) struct Problem<'a> {
    pub(crate) loss: Loss,
    pub(crate) reg: Regularizer,
    pub(crate) kernel: GemmKernel,
    pub(crate) pre: Affine<'a>,
    pub(crate) n_classes: usize,
}

/// An SGD step: `v ← μ_m v − η g, W ← W + v` (or `W ← W − η g` without momentum).
#[derive(Clone, Copy)]
struct Step {
    lr: f32,
    momentum: f32,
}

/// The forward half of the minibatch objective: `scores = X̃ Wᵀ + b`, then the mean data loss,
/// and `dscores = dL/dscores`. With `packed` (made from this `w`), the product skips its own
/// packing of `W`.
#[allow(clippy::too_many_arguments)]
fn batch_scores_grad(
    p: &Problem<'_>,
    rows: &[&[u8]],
    labels: &[u32],
    w: &[f32],
    b: &[f32],
    packed: Option<&NtPacked>,
    scores: &mut [f32],
    dscores: &mut [f32],
) -> Result<f32, LinearError> {
    let c = p.n_classes;
    match packed {
        Some(pk) => gemm_nt_u8_packed(rows, p.pre, w, c, pk, scores)?,
        None => gemm_nt_u8_with(p.kernel, rows, p.pre, w, c, scores)?,
    }
    for srow in scores.chunks_exact_mut(c) {
        srow.iter_mut().zip(b).for_each(|(s, bj)| *s += bj);
    }
    Ok(p.loss.loss_grad_into(scores, c, labels, dscores)?)
}

/// The SVM's `dL/dscores` as exact integers: `N·dS` has entries in `[−(C−1), 1]`, so
/// `dSᵀ X̃ = ((N·dS)ᵀ X · diag(scale) + (Σ_i N·dS_i) offsetᵀ) / N` with the first product
/// exact in `i32` (AVX-512 VNNI, 4 rows per instruction).
struct IntGrad {
    /// `N·dS`, row-major `m x c`.
    g: Vec<i8>,
    /// `Σ_i N·dS_ij` per class.
    colsum: Vec<f64>,
    /// `1/N`.
    inv_n: f64,
}

/// [`IntGrad`] for this batch when it applies (the multiclass hinge loss, a VNNI kernel,
/// every `N·dS` within `1/4` of an integer in `[−127, 127]`), else `None` (the f32 product).
fn int_grad(p: &Problem<'_>, dscores: &[f32], m: usize) -> Option<IntGrad> {
    if !matches!(p.loss, Loss::Svm { .. }) || !i8u8_is_simd(p.kernel) || m > I8U8_MAX_ROWS {
        return None;
    }
    let c = p.n_classes;
    let nf = m as f32;
    let mut g = Vec::with_capacity(dscores.len());
    let mut colsum = vec![0.0f64; c];
    for row in dscores.chunks_exact(c) {
        for (j, &v) in row.iter().enumerate() {
            let t = v * nf;
            // rounds t to the nearest integer (a saturating cast; NaN gives 0 and fails the
            // check below)
            let r = (t + 0.5f32.copysign(t)) as i32;
            if !((t - r as f32).abs() <= 0.25 && r.abs() <= 127) {
                return None;
            }
            g.push(r as i8);
            colsum[j] += f64::from(r);
        }
    }
    Some(IntGrad { g, colsum, inv_n: 1.0 / m as f64 })
}

/// Where the backward pass takes `dW`'s data term from.
#[derive(Clone, Copy)]
enum Grad<'a> {
    /// The f32 product `dscoresᵀ X̃`, per feature block.
    F32,
    /// The exact integer product of [`IntGrad`], per feature block.
    Int(&'a IntGrad),
    /// The partial products of a row-split iteration ([`RowParts`]), summed per feature
    /// block in part order: exact integers for the SVM (so the split does not change a bit),
    /// `f32` for softmax (a fixed partition, so the bits do not depend on the thread count).
    Parts(&'a RowParts),
}

/// One thread's share of a row-split SVM iteration: its rows' `N·dS` and the exact partial
/// product `(N·dS)ᵢᵀ Xᵢ` over them.
struct RowPart {
    /// `N·dS` of the part's rows, row-major.
    g: Vec<i8>,
    /// `(N·dS)ᵢᵀ Xᵢ` by feature block, in the layout of `dw` (block `i`: `c x len_i`).
    exact: Vec<i32>,
    /// `Σ_i N·dS_ij` over the part's rows, per class.
    colsum: Vec<i64>,
    /// Every `N·dS` of the part fits an `i8` (otherwise `exact` is not computed).
    ok: bool,
    /// The `f32` partial product `dSᵢᵀ X̃ᵢ` of a softmax part, in the layout of `dw` (empty
    /// for the SVM).
    partial: Vec<f32>,
}

/// Row parts of a softmax iteration: a fixed number, whatever the thread count, so that the
/// `f32` partial products of `dW` are added the same way on 1, 2 or 3 threads.
const FLOAT_PARTS: usize = 2;

/// An iteration split by rows, end to end: part `t` owns rows `t·per..(t + 1)·per` of the
/// batch and computes their scores, losses, `dS` and partial product on one thread while the
/// rows are in its cache; the update tasks add the partial products ([`Grad::Parts`]). The
/// SVM's are exact integers (`N·dS` times the u8 pixels), so `per` may follow the thread
/// count; softmax's are `f32` ([`RowParts::float`]: [`FLOAT_PARTS`] parts, a partition that
/// depends only on the batch size).
struct RowParts {
    /// Rows per part (a multiple of 4, the VNNI kernel's row quad).
    per: usize,
    /// The parts in row order (only the first `used` hold this batch).
    parts: Vec<RowPart>,
    /// Parts holding this batch.
    used: usize,
    /// `Σ_i N·dS_ij` over the batch, per class.
    colsum: Vec<f64>,
    /// `1/N`.
    inv_n: f64,
    /// The parts hold `f32` partial products of a real-valued `dS` (softmax), not exact ones.
    float: bool,
}

impl RowParts {
    /// Parts of `per` rows (rounded up to a multiple of 4) with exact integer partial products.
    fn new(per: usize) -> Self {
        Self {
            per: per.max(1).next_multiple_of(4),
            parts: Vec::new(),
            used: 0,
            colsum: Vec::new(),
            inv_n: 1.0,
            float: false,
        }
    }

    /// [`FLOAT_PARTS`] parts of a batch of `m` rows with `f32` partial products: the same
    /// partition for any thread count.
    fn float(m: usize) -> Self {
        Self { float: true, ..Self::new(m.div_ceil(FLOAT_PARTS)) }
    }

    /// Makes room for a batch of `m` rows.
    fn reserve(&mut self, m: usize, c: usize, d: usize) {
        self.used = m.div_ceil(self.per);
        while self.parts.len() < self.used {
            let (exact, partial) = if self.float {
                (Vec::new(), vec![0.0; c * d])
            } else {
                (vec![0; c * d], Vec::new())
            };
            self.parts.push(RowPart {
                g: Vec::with_capacity(self.per * c),
                exact,
                colsum: vec![0; c],
                ok: false,
                partial,
            });
        }
        self.colsum.resize(c, 0.0);
    }
}

/// One softmax part of [`forward_parts`]: scores, per-row losses (`losses[i]`, the row's own
/// loss), `dscores = dS` (the row's gradient times `1/N`) and the `f32` partial product
/// `dSᵀ X̃` of the part's rows into `part.partial`, by feature block.
#[allow(clippy::too_many_arguments)]
fn float_part(
    p: &Problem<'_>,
    rows: &[&[u8]],
    labels: &[u32],
    w: &[f32],
    b: &[f32],
    packed: &NtPacked,
    inv_n: f32,
    part: &mut RowPart,
    scores: &mut [f32],
    dscores: &mut [f32],
    losses: &mut [f32],
) -> Result<(), LinearError> {
    let c = p.n_classes;
    let d = p.pre.scale.len();
    gemm_nt_u8_packed_serial(rows, p.pre, w, c, packed, scores)?;
    for (i, (srow, grow)) in scores.chunks_exact_mut(c).zip(dscores.chunks_exact_mut(c)).enumerate()
    {
        srow.iter_mut().zip(b).for_each(|(s, bj)| *s += bj);
        losses[i] = p.loss.loss_grad_into(srow, c, &labels[i..i + 1], grow)?;
        grow.iter_mut().for_each(|g| *g *= inv_n);
    }
    for k0 in (0..d).step_by(UPDATE_BLOCK) {
        let k1 = (k0 + UPDATE_BLOCK).min(d);
        let out = &mut part.partial[c * k0..c * k1];
        gemm_tn_u8_cols_with(p.kernel, dscores, c, rows, p.pre, k0, k1, out)?;
    }
    part.ok = true;
    Ok(())
}

/// One SVM part of [`forward_parts`]: scores, per-row hinge losses (`losses[i]`, the row's
/// sum over classes), `dscores = dS` with the bits of the whole-batch loss (`N·dS · (1/N)`)
/// and, when every `N·dS` fits an `i8`, the exact partial product into `part`.
#[allow(clippy::too_many_arguments)]
fn svm_part(
    p: &Problem<'_>,
    rows: &[&[u8]],
    labels: &[u32],
    w: &[f32],
    b: &[f32],
    packed: &NtPacked,
    inv_n: f32,
    part: &mut RowPart,
    scores: &mut [f32],
    dscores: &mut [f32],
    losses: &mut [f32],
) -> Result<(), LinearError> {
    let c = p.n_classes;
    let d = p.pre.scale.len();
    gemm_nt_u8_packed_serial(rows, p.pre, w, c, packed, scores)?;
    part.g.clear();
    part.colsum.iter_mut().for_each(|v| *v = 0);
    part.ok = true;
    for (i, (srow, grow)) in scores.chunks_exact_mut(c).zip(dscores.chunks_exact_mut(c)).enumerate()
    {
        srow.iter_mut().zip(b).for_each(|(s, bj)| *s += bj);
        // one row at a time: the loss is the row's own sum (1/1 = 1) and the gradient is
        // `N·dS` of the row, small integers, exactly
        losses[i] = p.loss.loss_grad_into(srow, c, &labels[i..i + 1], grow)?;
        for (gv, cs) in grow.iter_mut().zip(part.colsum.iter_mut()) {
            let r = *gv as i32;
            if !(r as f32 == *gv && r.abs() <= 127) {
                part.ok = false;
            }
            part.g.push(r.clamp(-127, 127) as i8);
            *cs += i64::from(r);
            // the bits `Loss::loss_grad_into` gives on the whole batch: `N·dS_ij · (1/N)`
            *gv *= inv_n;
        }
    }
    if part.ok {
        let grad = I8Grad::new(p.kernel, &part.g, c)?;
        for k0 in (0..d).step_by(UPDATE_BLOCK) {
            let k1 = (k0 + UPDATE_BLOCK).min(d);
            let out = &mut part.exact[c * k0..c * k1];
            gemm_tn_i8u8_cols_prepared(p.kernel, &grad, rows, k0, k1, out)?;
        }
    }
    Ok(())
}

/// The forward half of a row-split iteration (see [`RowParts`]), one rayon task per part:
/// scores, `dscores` and the partial products. Returns the mean data loss (the rows' losses
/// summed in row order, so it does not depend on the split) and whether the partial
/// products apply (for the SVM, every `N·dS` fits an `i8`; otherwise the caller uses the f32
/// product on `dscores`).
#[allow(clippy::too_many_arguments)]
fn forward_parts(
    p: &Problem<'_>,
    rows: &[&[u8]],
    labels: &[u32],
    w: &[f32],
    b: &[f32],
    packed: &NtPacked,
    split: &mut RowParts,
    scores: &mut [f32],
    dscores: &mut [f32],
    losses: &mut [f32],
) -> Result<(f32, bool), LinearError> {
    use rayon::prelude::*;
    let (c, m) = (p.n_classes, rows.len());
    let d = p.pre.scale.len();
    split.reserve(m, c, d);
    let (per, float) = (split.per, split.float);
    let inv_n = 1.0f32 / m as f32;
    let (scores, dscores, losses) = (&mut scores[..m * c], &mut dscores[..m * c], &mut losses[..m]);
    let results: Vec<Result<(), LinearError>> = split.parts[..split.used]
        .par_iter_mut()
        .zip(rows.par_chunks(per))
        .zip(labels.par_chunks(per))
        .zip(scores.par_chunks_mut(per * c))
        .zip(dscores.par_chunks_mut(per * c))
        .zip(losses.par_chunks_mut(per))
        .map(|(((((part, r), l), sc), ds), lo)| {
            if float {
                float_part(p, r, l, w, b, packed, inv_n, part, sc, ds, lo)
            } else {
                svm_part(p, r, l, w, b, packed, inv_n, part, sc, ds, lo)
            }
        })
        .collect();
    for r in results {
        r?;
    }
    let mut total = 0.0f32;
    for &l in losses.iter() {
        total += l;
    }
    let used = &split.parts[..split.used];
    for (j, cs) in split.colsum.iter_mut().enumerate() {
        *cs = used.iter().map(|pt| pt.colsum[j]).sum::<i64>() as f64;
    }
    split.inv_n = 1.0 / m as f64;
    let ok = (float || m <= I8U8_MAX_ROWS) && used.iter().all(|pt| pt.ok);
    Ok((total * inv_n, ok))
}

/// The backward half, fused with the update: for each block of [`UPDATE_BLOCK`] features
/// (one rayon task each) `dW = dscoresᵀ X̃ + ∂R/∂W` on the block, then, with a `step`, the
/// update of that block of `W` (and of the velocity `vw`, empty without momentum), while the
/// block's bytes of the `next` minibatch are prefetched. `dw` receives the gradient by
/// block (block `i`: `c x len_i` row-major). With `packed`, each task then repacks its block
/// of the updated `W` for the next forward pass while it is in cache. Returns `R(W)` before
/// the update, summed over the blocks in order, so the value does not depend on the thread
/// count.
#[allow(clippy::too_many_arguments)]
fn backward_update(
    p: &Problem<'_>,
    rows: &[&[u8]],
    next: &[&[u8]],
    dscores: &[f32],
    grad: Grad<'_>,
    step: Option<Step>,
    w: &mut [f32],
    vw: &mut [f32],
    dw: &mut [f32],
    mut packed: Option<&mut NtPacked>,
) -> Result<f64, LinearError> {
    use rayon::prelude::*;
    let c = p.n_classes;
    let d = p.pre.scale.len();
    let (wb, vb) = (column_blocks(w, c, d), column_blocks(vw, c, d));
    let mut pblocks: Vec<Option<NtPackBlock<'_>>> = match packed.as_deref_mut() {
        Some(pk) => pk.blocks_mut().into_iter().map(Some).collect(),
        None => Vec::new(),
    };
    pblocks.resize_with(wb.len(), || None);
    // the integer gradient packed once for every block's task
    let prepared = match grad {
        Grad::Int(ig) => Some(I8Grad::new(p.kernel, &ig.g, c)?),
        _ => None,
    };
    let parts: Vec<Result<f64, LinearError>> = wb
        .into_par_iter()
        .zip(vb)
        .zip(dw.par_chunks_mut(c * UPDATE_BLOCK))
        .zip(pblocks)
        .enumerate()
        .map(|(i, (((mut wsegs, mut vsegs), dwb), pblock))| {
            let k0 = i * UPDATE_BLOCK;
            let k1 = (k0 + UPDATE_BLOCK).min(d);
            let len = k1 - k0;
            prefetch_rows(next, k0, k1);
            let (sc, of) = (&p.pre.scale[k0..k1], &p.pre.offset[k0..k1]);
            match (grad, prepared.as_ref()) {
                (Grad::Int(ig), Some(prep)) => {
                    let mut exact = vec![0i32; c * len];
                    gemm_tn_i8u8_cols_prepared(p.kernel, prep, rows, k0, k1, &mut exact)?;
                    i32_affine_to_f32(p.kernel, &exact, sc, of, &ig.colsum, ig.inv_n, dwb)?;
                }
                (Grad::Parts(rp), _) if rp.float => {
                    // the parts' f32 partial products of this block, added in part order
                    let used = &rp.parts[..rp.used];
                    match used.split_first() {
                        Some((first, rest)) => {
                            dwb.copy_from_slice(&first.partial[c * k0..c * k1]);
                            for pt in rest {
                                let add = &pt.partial[c * k0..c * k1];
                                dwb.iter_mut().zip(add).for_each(|(a, v)| *a += v);
                            }
                        }
                        None => dwb.fill(0.0),
                    }
                }
                (Grad::Parts(rp), _) => {
                    // the parts' exact partial products of this block, added (exact)
                    let used = &rp.parts[..rp.used];
                    let mut exact = match used.first() {
                        Some(pt) => pt.exact[c * k0..c * k1].to_vec(),
                        None => vec![0i32; c * len],
                    };
                    for pt in used.iter().skip(1) {
                        exact.iter_mut().zip(&pt.exact[c * k0..c * k1]).for_each(|(a, v)| *a += v);
                    }
                    i32_affine_to_f32(p.kernel, &exact, sc, of, &rp.colsum, rp.inv_n, dwb)?;
                }
                _ => gemm_tn_u8_cols_with(p.kernel, dscores, c, rows, p.pre, k0, k1, dwb)?,
            }
            let mut reg = 0.0f64;
            for (j, wj) in wsegs.iter_mut().enumerate() {
                let gj = &mut dwb[j * len..(j + 1) * len];
                if let (Regularizer::L2(l2), Some(st), None) = (p.reg, step, vsegs.get_mut(j)) {
                    // the common case in one pass: g = dW + 2λw, w ← w − ηg
                    reg += l2_step(l2, st.lr, wj, gj)?;
                    continue;
                }
                reg += p.reg.add_grad(wj, gj)?;
                match (step, vsegs.get_mut(j)) {
                    (Some(st), Some(vj)) => {
                        for ((wi, vi), gi) in wj.iter_mut().zip(vj.iter_mut()).zip(gj.iter()) {
                            *vi = st.momentum * *vi - st.lr * gi;
                            *wi += *vi;
                        }
                    }
                    (Some(st), None) => {
                        for (wi, gi) in wj.iter_mut().zip(gj.iter()) {
                            *wi -= st.lr * gi;
                        }
                    }
                    (None, _) => {}
                }
            }
            if let Some(mut pb) = pblock {
                debug_assert_eq!(pb.index(), i);
                pb.pack(p.pre, &wsegs)?;
            }
            Ok(reg)
        })
        .collect();
    let mut reg = 0.0f64;
    for r in parts {
        reg += r?;
    }
    if let Some(pk) = packed {
        pk.finish();
    }
    Ok(reg)
}

/// One pass of the L2-regularised plain SGD step over a segment: `g ← g + 2λw` (the
/// gradient [`Regularizer::add_grad`] adds, same `f32` arithmetic), `w ← w − η g`; returns
/// `λ Σ w²` of the weights before the step (squares summed in `f32` over 16 lanes, then in
/// `f64`), or [`LossError::NonFinite`] for a non-finite weight.
fn l2_step(l2: f64, lr: f32, w: &mut [f32], g: &mut [f32]) -> Result<f64, LinearError> {
    const LANES: usize = 16;
    let two_l2 = (2.0 * l2) as f32;
    let mut sq = [0.0f32; LANES];
    let mut wc = w.chunks_exact_mut(LANES);
    let mut gc = g.chunks_exact_mut(LANES);
    for (wv, gv) in (&mut wc).zip(&mut gc) {
        for l in 0..LANES {
            let v = wv[l];
            sq[l] += v * v;
            gv[l] += two_l2 * v;
            wv[l] = v - lr * gv[l];
        }
    }
    let mut total: f64 = sq.iter().map(|&v| f64::from(v)).sum();
    for (v, gi) in wc.into_remainder().iter_mut().zip(gc.into_remainder()) {
        total += f64::from(*v) * f64::from(*v);
        *gi += two_l2 * *v;
        *v -= lr * *gi;
    }
    if !total.is_finite() {
        let index = w.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(LossError::NonFinite { what: "weights", index }.into());
    }
    Ok(l2 * total)
}

/// Splits the row-major `c x d` matrix `m` (or an empty one) into its blocks of
/// [`UPDATE_BLOCK`] columns: block `i` holds the `c` row segments of those columns.
fn column_blocks(m: &mut [f32], c: usize, d: usize) -> Vec<Vec<&mut [f32]>> {
    let mut out: Vec<Vec<&mut [f32]>> =
        (0..d.div_ceil(UPDATE_BLOCK)).map(|_| Vec::with_capacity(c)).collect();
    if !m.is_empty() && d > 0 {
        for row in m.chunks_exact_mut(d) {
            for (i, seg) in row.chunks_mut(UPDATE_BLOCK).enumerate() {
                out[i].push(seg);
            }
        }
    }
    out
}

/// Scratch and output buffers of one gradient evaluation.
#[cfg(test)]
pub(crate) struct Buffers<'a> {
    pub(crate) scores: &'a mut [f32],
    pub(crate) dscores: &'a mut [f32],
    pub(crate) dw: &'a mut [f32],
    pub(crate) db: &'a mut [f32],
}

/// The minibatch objective `L(W, b) = mean_i L_i(X̃_i Wᵀ + b, y_i) + R(W)`: returns
/// `(data loss, R(W))` and writes `dL/dW` (row-major `c x d`) into `out.dw` and `dL/db` into
/// `out.db`, through the same two passes as training.
#[cfg(test)]
pub(crate) fn batch_loss_grad(
    p: &Problem<'_>,
    rows: &[&[u8]],
    labels: &[u32],
    w: &[f32],
    b: &[f32],
    out: &mut Buffers<'_>,
) -> Result<(f32, f64), LinearError> {
    let c = p.n_classes;
    let d = p.pre.scale.len();
    // softmax trains on the fixed row split (`RowParts::float`), the other losses here on the
    // whole batch
    let mut split = matches!(p.loss, Loss::Softmax).then(|| RowParts::float(rows.len()));
    let data = match split.as_mut() {
        Some(sp) => {
            let packed = NtPacked::new(p.kernel, p.pre, w, c)?;
            let mut losses = vec![0.0f32; rows.len()];
            let (sc, ds) = (&mut *out.scores, &mut *out.dscores);
            forward_parts(p, rows, labels, w, b, &packed, sp, sc, ds, &mut losses)?.0
        }
        None => batch_scores_grad(p, rows, labels, w, b, None, out.scores, out.dscores)?,
    };
    let mut wc = w.to_vec();
    let mut blocked = vec![0.0f32; c * d];
    let int = int_grad(p, out.dscores, rows.len());
    let grad = match (&split, &int) {
        (Some(sp), _) => Grad::Parts(sp),
        (None, Some(ig)) => Grad::Int(ig),
        (None, None) => Grad::F32,
    };
    let reg = backward_update(
        p,
        rows,
        &[],
        out.dscores,
        grad,
        None,
        &mut wc,
        &mut [],
        &mut blocked,
        None,
    )?;
    for (i, blk) in blocked.chunks(c * UPDATE_BLOCK).enumerate() {
        let len = blk.len() / c;
        for j in 0..c {
            out.dw[j * d + i * UPDATE_BLOCK..j * d + i * UPDATE_BLOCK + len]
                .copy_from_slice(&blk[j * len..(j + 1) * len]);
        }
    }
    out.db.fill(0.0);
    for grow in out.dscores.chunks_exact(c) {
        out.db.iter_mut().zip(grow).for_each(|(a, g)| *a += g);
    }
    Ok((data, reg))
}

impl Fit for Linear {
    type Model = LinearModel;
    type Error = LinearError;

    fn fit(&self, train: &Subset) -> Result<LinearModel, LinearError> {
        self.validate()?;
        if train.is_empty() {
            return Err(LinearError::EmptyTrainingSet);
        }
        let c = train.n_classes();
        if c < 2 {
            return Err(LinearError::TooFewClasses { n_classes: c });
        }
        let kernel = GemmKernel::detect()?;
        let (n, d) = (train.len(), train.dim());
        let s = self.sgd;
        let bs = s.batch_size.min(n);
        let iterations = match s.stop {
            Stop::Iterations(t) => t,
            Stop::Epochs(e) => e * n.div_ceil(bs),
        };
        let mean = mean_image(train);
        let scale = vec![self.input_scale; d];
        let offset: Vec<f32> = mean.iter().map(|m| -m * self.input_scale).collect();
        let pre = Affine { scale: &scale, offset: &offset };

        let root = SplitMix64::new(s.seed);
        let mut init = root.fork(1);
        let mut w: Vec<f32> =
            (0..c * d).map(|_| (init.next_normal() * self.init_std) as f32).collect();
        let mut b = vec![0.0f32; c];
        let mut vw = vec![0.0f32; if s.momentum > 0.0 { c * d } else { 0 }];
        let mut vb = vec![0.0f32; c];
        let mut batches = Batches::new(root.fork(2), n, s.learning_rate, s.decay);

        let mut rows: Vec<&[u8]> = Vec::with_capacity(bs);
        let mut labels: Vec<u32> = Vec::with_capacity(bs);
        let mut next_rows: Vec<&[u8]> = Vec::with_capacity(bs);
        let mut next_labels: Vec<u32> = Vec::with_capacity(bs);
        let mut scores = vec![0.0f32; bs * c];
        let mut dscores = vec![0.0f32; bs * c];
        // dL/dW by feature block: block `i` holds the `c x len_i` gradient of features
        // `i·UPDATE_BLOCK..`, so each task of the fused backward pass owns one contiguous piece
        let mut dw = vec![0.0f32; c * d];
        let mut db = vec![0.0f32; c];
        let mut report = TrainingReport::with_capacity(iterations);
        let mut first_loss = None;
        let started = std::time::Instant::now();
        let problem = Problem { loss: self.loss, reg: self.reg, kernel, pre, n_classes: c };
        // `W` packed for the forward pass, repacked block by block by each update
        let mut packed = NtPacked::new(kernel, pre, &w, c)?;
        let mut lr = if iterations > 0 {
            batches.draw(train, bs, &mut rows, &mut labels)
        } else {
            s.learning_rate
        };

        // the whole loop runs on a pool thread: each parallel pass below is then a fork/join
        // inside the pool, not a job injected from outside it (which parks and wakes the
        // calling thread twice per iteration)
        rayon::scope(|_| -> Result<(), LinearError> {
            // the SVM with the VNNI kernel splits each iteration by rows, one part per pool
            // thread, from the scores to the exact partial products of `dW`; softmax into a
            // fixed number of parts with f32 partial products (`RowParts`)
            let mut split = if matches!(self.loss, Loss::Softmax) {
                Some(RowParts::float(bs))
            } else {
                (matches!(self.loss, Loss::Svm { .. })
                    && i8u8_is_simd(kernel)
                    && bs <= I8U8_MAX_ROWS)
                    .then(|| RowParts::new(bs.div_ceil(rayon::current_num_threads().max(1))))
            };
            let mut losses = vec![0.0f32; bs];
            for it in 0..iterations {
                // the next minibatch is drawn (serial: one random stream) by whichever pool
                // thread is free while the forward pass runs, so that its rows can be
                // prefetched during this one's backward pass
                let (forward, next_lr) = rayon::join(
                    || match split.as_mut() {
                        Some(sp) => forward_parts(
                            &problem,
                            &rows,
                            &labels,
                            &w,
                            &b,
                            &packed,
                            sp,
                            &mut scores,
                            &mut dscores,
                            &mut losses,
                        ),
                        None => batch_scores_grad(
                            &problem,
                            &rows,
                            &labels,
                            &w,
                            &b,
                            Some(&packed),
                            &mut scores,
                            &mut dscores,
                        )
                        .map(|l| (l, false)),
                    },
                    || {
                        if it + 1 < iterations {
                            Some(batches.draw(train, bs, &mut next_rows, &mut next_labels))
                        } else {
                            next_rows.clear();
                            None
                        }
                    },
                );
                let (data_loss, parts_ok) = match forward {
                    Ok(v) => v,
                    Err(LinearError::Loss(LossError::NonFinite { what, .. })) => {
                        let loss = if what == "scores" { f64::NAN } else { f64::INFINITY };
                        return Err(LinearError::Diverged { iteration: it, loss });
                    }
                    Err(e) => return Err(e),
                };
                let int = if parts_ok { None } else { int_grad(&problem, &dscores, rows.len()) };
                let grad = match (&split, &int) {
                    (Some(sp), _) if parts_ok => Grad::Parts(sp),
                    (_, Some(ig)) => Grad::Int(ig),
                    _ => Grad::F32,
                };
                let step = Step { lr: lr as f32, momentum: s.momentum as f32 };
                let reg_loss = match backward_update(
                    &problem,
                    &rows,
                    &next_rows,
                    &dscores,
                    grad,
                    Some(step),
                    &mut w,
                    &mut vw,
                    &mut dw,
                    Some(&mut packed),
                ) {
                    Ok(v) => v,
                    Err(LinearError::Loss(LossError::NonFinite { .. })) => {
                        return Err(LinearError::Diverged { iteration: it, loss: f64::INFINITY });
                    }
                    Err(e) => return Err(e),
                };
                let total = f64::from(data_loss) + reg_loss;
                let limit = self.divergence_factor * first_loss.unwrap_or(total).max(1.0);
                if !total.is_finite() || total > limit {
                    return Err(LinearError::Diverged { iteration: it, loss: total });
                }
                first_loss.get_or_insert(total);
                report.push(data_loss, reg_loss as f32);

                db.fill(0.0);
                for grow in dscores.chunks_exact(c) {
                    db.iter_mut().zip(grow).for_each(|(a, g)| *a += g);
                }
                if self.fit_bias {
                    let lr32 = lr as f32;
                    for ((j, bj), &g) in b.iter_mut().enumerate().zip(&db) {
                        if s.momentum > 0.0 {
                            vb[j] = s.momentum as f32 * vb[j] - lr32 * g;
                            *bj += vb[j];
                        } else {
                            *bj -= lr32 * g;
                        }
                    }
                }
                if let Some(next_lr) = next_lr {
                    std::mem::swap(&mut rows, &mut next_rows);
                    std::mem::swap(&mut labels, &mut next_labels);
                    lr = next_lr;
                }
            }
            Ok(())
        })?;
        let (epochs_done, pos) = (batches.epochs_done, batches.pos);
        if let Some(index) = w.iter().chain(&b).position(|v| !v.is_finite()) {
            tracing::warn!(index, "non-finite weight after training");
            return Err(LinearError::Diverged { iteration: iterations, loss: f64::NAN });
        }
        report.finish(
            iterations,
            epochs_done as f64 + pos as f64 / n as f64,
            lr,
            kernel.name(),
            started.elapsed().as_secs_f64(),
        );
        tracing::debug!(
            loss = self.loss.name(),
            iterations,
            seconds = report.train_seconds,
            final_loss = report.loss.last().copied(),
            "linear classifier trained"
        );
        Ok(LinearModel::new(
            w,
            b,
            mean,
            self.input_scale,
            train.dataset().shape(),
            c,
            self.loss,
            report,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_loss::check_gradient;

    /// The same objective as [`batch_loss_grad`], written naively in f64: the oracle.
    #[allow(clippy::too_many_arguments)]
    fn objective_f64(
        loss: Loss,
        reg: Regularizer,
        rows: &[Vec<u8>],
        labels: &[u32],
        mean: &[f32],
        c: usize,
        params: &[f64],
        with_bias: bool,
    ) -> f64 {
        let d = mean.len();
        let (w, b) = params.split_at(c * d);
        let mut s = vec![0.0f64; rows.len() * c];
        for (i, r) in rows.iter().enumerate() {
            for j in 0..c {
                let mut acc = if with_bias { b[j] } else { 0.0 };
                for k in 0..d {
                    acc += (f64::from(r[k]) - f64::from(mean[k])) * w[j * d + k];
                }
                s[i * c + j] = acc;
            }
        }
        loss.loss_grad(&s, c, labels).expect("valid").loss + reg.penalty(w)
    }

    #[test]
    fn f32_training_gradient_matches_f64_central_differences_with_and_without_bias() {
        // Stated f32 bound: analytic f32 gradients (f32 products over d = 20 features)
        // against f64 central differences of the exact objective satisfy
        // |analytic_i − numeric_i| <= 1e-4·max(|analytic_i|, |numeric_i|) + 1e-5·max_j |numeric_j|.
        // The second term is f32 cancellation: dW = dSᵀX̃ sums terms of size |x̃| ~ 100 into
        // entries that can be far smaller (a bias derivative of exactly 0 comes out as a few
        // ulps of 1/6), so the error scales with the gradient's norm, not with each entry.
        const F32_REL: f64 = 1e-4;
        const F32_NORM: f64 = 1e-5;
        let (n, d, c) = (6, 20, 4);
        let mut g = SplitMix64::new(2024);
        let rows: Vec<Vec<u8>> =
            (0..n).map(|_| (0..d).map(|_| g.below(256) as u8).collect()).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3 + 1) % c as u32).collect();
        let mut mean = vec![0.0f32; d];
        for r in &rows {
            for (m, &x) in mean.iter_mut().zip(r) {
                *m += f32::from(x) / n as f32;
            }
        }
        let scale = vec![1.0f32; d];
        let offset: Vec<f32> = mean.iter().map(|m| -m).collect();
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        for loss in [Loss::Svm { margin: 1.0 }, Loss::SquaredHinge { margin: 1.0 }, Loss::Softmax] {
            for reg in [
                Regularizer::None,
                Regularizer::L2(0.5),
                Regularizer::ElasticNet { lambda: 0.1, beta: 2.0 },
            ] {
                for with_bias in [false, true] {
                    for kernel in GemmKernel::available() {
                        let w: Vec<f32> = (0..c * d)
                            .map(|_| (g.next_normal() * 0.02) as f32)
                            .map(|v| if v.abs() < 1e-3 { v + 3e-3 } else { v })
                            .collect();
                        let b: Vec<f32> = if with_bias {
                            (0..c).map(|_| g.next_normal() as f32).collect()
                        } else {
                            vec![0.0; c]
                        };
                        let (mut sc, mut ds, mut dw, mut db) =
                            (vec![0.0; n * c], vec![0.0; n * c], vec![0.0; c * d], vec![0.0; c]);
                        let problem = Problem {
                            loss,
                            reg,
                            kernel,
                            pre: Affine { scale: &scale, offset: &offset },
                            n_classes: c,
                        };
                        batch_loss_grad(
                            &problem,
                            &row_refs,
                            &labels,
                            &w,
                            &b,
                            &mut Buffers {
                                scores: &mut sc,
                                dscores: &mut ds,
                                dw: &mut dw,
                                db: &mut db,
                            },
                        )
                        .expect("valid");
                        let mut params: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
                        let mut analytic: Vec<f64> = dw.iter().map(|&v| f64::from(v)).collect();
                        if with_bias {
                            params.extend(b.iter().map(|&v| f64::from(v)));
                            analytic.extend(db.iter().map(|&v| f64::from(v)));
                        }
                        let f = |p: &[f64]| {
                            objective_f64(loss, reg, &rows, &labels, &mean, c, p, with_bias)
                        };
                        let chk = check_gradient(f, &params, &analytic, 1e-6);
                        let norm = chk.numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                        for (i, (&a, &num)) in analytic.iter().zip(&chk.numeric).enumerate() {
                            let bound = F32_REL * a.abs().max(num.abs()) + F32_NORM * norm;
                            assert!(
                                (a - num).abs() <= bound,
                                "{loss:?} {reg:?} bias={with_bias} {kernel:?} [{i}]: {a} vs {num}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fused_l2_step_matches_add_grad_then_the_update() {
        let mut g = SplitMix64::new(5);
        for len in [0usize, 1, 15, 16, 17, 256, 300] {
            let w: Vec<f32> = (0..len).map(|_| (g.next_normal() * 0.01) as f32).collect();
            let dw: Vec<f32> = (0..len).map(|_| (g.next_normal() * 0.1) as f32).collect();
            let (lam, lr) = (2.5e4, 1e-7f32);
            // oracle: the regulariser's own gradient and penalty, then the plain SGD step
            let (mut w_ref, mut g_ref) = (w.clone(), dw.clone());
            let pen_ref = Regularizer::L2(lam).add_grad(&w_ref, &mut g_ref).expect("finite");
            w_ref.iter_mut().zip(&g_ref).for_each(|(wi, gi)| *wi -= lr * gi);
            let (mut w2, mut g2) = (w.clone(), dw.clone());
            let pen = l2_step(lam, lr, &mut w2, &mut g2).expect("finite");
            assert_eq!(g2, g_ref, "len {len}");
            assert_eq!(w2, w_ref, "len {len}");
            // squares summed in f32 lanes: relative error a few f32 ulps
            assert!((pen - pen_ref).abs() <= 1e-6 * pen_ref.abs() + 1e-300, "{pen} vs {pen_ref}");
        }
        let mut bad = vec![1.0f32, f32::NAN, 2.0];
        let mut gb = vec![0.0f32; 3];
        assert!(matches!(
            l2_step(1.0, 0.1, &mut bad, &mut gb),
            Err(LinearError::Loss(LossError::NonFinite { what: "weights", .. }))
        ));
    }

    #[test]
    fn svm_integer_backward_agrees_with_the_f32_product() {
        // the exact integer path (AVX-512 VNNI) against the f32 path on the same batch
        let (n, d, c) = (203, 300, 10);
        let mut g = SplitMix64::new(11);
        let rows: Vec<Vec<u8>> =
            (0..n).map(|_| (0..d).map(|_| g.below(256) as u8).collect()).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % c as u32).collect();
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let scale = vec![1.0f32; d];
        let offset: Vec<f32> = (0..d).map(|k| -120.0 - (k % 7) as f32).collect();
        let w: Vec<f32> = (0..c * d).map(|_| (g.next_normal() * 1e-3) as f32).collect();
        for kernel in GemmKernel::available() {
            let p = Problem {
                loss: Loss::Svm { margin: 1.0 },
                reg: Regularizer::None,
                kernel,
                pre: Affine { scale: &scale, offset: &offset },
                n_classes: c,
            };
            let (mut sc, mut ds) = (vec![0.0; n * c], vec![0.0; n * c]);
            batch_scores_grad(&p, &row_refs, &labels, &w, &vec![0.0; c], None, &mut sc, &mut ds)
                .expect("valid");
            let int = int_grad(&p, &ds, n);
            assert_eq!(int.is_some(), i8u8_is_simd(kernel), "{kernel:?}");
            let Some(int) = int else { continue };
            let run = |ig: Option<&IntGrad>| {
                let mut out = vec![0.0f32; c * d];
                let mut wc = w.clone();
                backward_update(
                    &p,
                    &row_refs,
                    &[],
                    &ds,
                    ig.map_or(Grad::F32, Grad::Int),
                    None,
                    &mut wc,
                    &mut [],
                    &mut out,
                    None,
                )
                .expect("valid");
                out
            };
            let (exact, float) = (run(Some(&int)), run(None));
            // the f32 product's own error bound: 1e-5 of Σ_i |dS_ij x̃_ik| per entry
            let len = |i: usize| UPDATE_BLOCK.min(d - i * UPDATE_BLOCK);
            for (idx, (a, b)) in exact.iter().zip(&float).enumerate() {
                let blk = idx / (c * UPDATE_BLOCK);
                let (j, f) =
                    ((idx % (c * UPDATE_BLOCK)) / len(blk), (idx % (c * UPDATE_BLOCK)) % len(blk));
                let k = blk * UPDATE_BLOCK + f;
                let mag: f64 = (0..n)
                    .map(|i| {
                        (f64::from(ds[i * c + j]) * (f64::from(rows[i][k]) + f64::from(offset[k])))
                            .abs()
                    })
                    .sum();
                assert!(
                    (f64::from(*a) - f64::from(*b)).abs() <= 1e-5 * mag + 1e-30,
                    "[{idx}] {a} vs {b}"
                );
            }
        }
    }
    /// A batch for the row-split tests: every fifth row all 255, every fifth with zeros on
    /// every third feature, the rest uniform; cyclic labels; a mean-like offset; W ~ N(0, w_std²),
    /// b ~ N(0, 0.01).
    struct Batch {
        rows: Vec<Vec<u8>>,
        labels: Vec<u32>,
        scale: Vec<f32>,
        offset: Vec<f32>,
        w: Vec<f32>,
        b: Vec<f32>,
    }

    fn adversarial_batch(n: usize, d: usize, c: usize, seed: u64, w_std: f64) -> Batch {
        let mut g = SplitMix64::new(seed);
        let rows: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                (0..d)
                    .map(|k| match i % 5 {
                        0 => 255,
                        1 if k % 3 == 0 => 0,
                        _ => g.below(256) as u8,
                    })
                    .collect()
            })
            .collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % c as u32).collect();
        let scale = vec![1.0f32; d];
        let offset: Vec<f32> = (0..d).map(|k| -120.5 - (k % 7) as f32 * 0.37).collect();
        let w: Vec<f32> = (0..c * d).map(|_| (g.next_normal() * w_std) as f32).collect();
        let b: Vec<f32> = (0..c).map(|_| (g.next_normal() * 0.1) as f32).collect();
        Batch { rows, labels, scale, offset, w, b }
    }

    #[test]
    fn row_split_svm_iteration_is_exact_for_any_split_and_matches_f64() {
        // the row-split SVM iteration (forward, loss, N·dS and the exact partial products per
        // part, added in the update) against the whole-batch path bit for bit, for any part
        // size, and its gradient against the f64 naive dW = dSᵀ X̃
        let kernel = GemmKernel::Avx512;
        if !i8u8_is_simd(kernel) {
            return;
        }
        let (n, d, c) = (130, 300, 10);
        let Batch { rows, labels, scale, offset, w, b } = adversarial_batch(n, d, c, 31, 1e-3);
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let pre = Affine { scale: &scale, offset: &offset };
        let p = Problem {
            loss: Loss::Svm { margin: 1.0 },
            reg: Regularizer::L2(0.3),
            kernel,
            pre,
            n_classes: c,
        };
        let packed = NtPacked::new(kernel, pre, &w, c).expect("packs");
        // the whole-batch path
        let (mut sc, mut ds) = (vec![0.0; n * c], vec![0.0; n * c]);
        let loss_ref = batch_scores_grad(&p, &row_refs, &labels, &w, &b, None, &mut sc, &mut ds)
            .expect("valid");
        let int = int_grad(&p, &ds, n).expect("integer N·dS");
        let backward = |grad: Grad<'_>, ds: &[f32]| {
            let mut out = vec![0.0f32; c * d];
            let mut wc = w.clone();
            let reg = backward_update(
                &p,
                &row_refs,
                &[],
                ds,
                grad,
                None,
                &mut wc,
                &mut [],
                &mut out,
                None,
            )
            .expect("valid");
            (out, reg)
        };
        let (dw_ref, reg_ref) = backward(Grad::Int(&int), &ds);
        for per in [1, 4, 8, 36, 64, 129, 130, 200] {
            let mut split = RowParts::new(per);
            let (mut sc2, mut ds2, mut losses) = (vec![0.0; n * c], vec![0.0; n * c], vec![0.0; n]);
            let (loss, ok) = forward_parts(
                &p,
                &row_refs,
                &labels,
                &w,
                &b,
                &packed,
                &mut split,
                &mut sc2,
                &mut ds2,
                &mut losses,
            )
            .expect("valid");
            assert!(ok, "per {per}");
            assert_eq!(loss.to_bits(), loss_ref.to_bits(), "per {per}");
            assert_eq!(sc2, sc, "per {per}");
            assert_eq!(ds2, ds, "per {per}");
            let (dw, reg) = backward(Grad::Parts(&split), &ds2);
            assert_eq!(dw, dw_ref, "per {per}");
            assert_eq!(reg.to_bits(), reg_ref.to_bits(), "per {per}");
        }
        // the f64 oracle: dW_jk = Σ_i dS_ij x̃_ik with dS = (N·dS)/N exactly, plus 2λW
        let len = |blk: usize| UPDATE_BLOCK.min(d - blk * UPDATE_BLOCK);
        for (idx, &got) in dw_ref.iter().enumerate() {
            let blk = idx / (c * UPDATE_BLOCK);
            let (j, f) =
                ((idx % (c * UPDATE_BLOCK)) / len(blk), (idx % (c * UPDATE_BLOCK)) % len(blk));
            let k = blk * UPDATE_BLOCK + f;
            let (mut want, mut mag) = (0.0f64, 0.0f64);
            for i in 0..n {
                let dsij = (f64::from(ds[i * c + j]) * n as f64).round() / n as f64;
                let t = dsij * (f64::from(rows[i][k]) + f64::from(offset[k]));
                want += t;
                mag += t.abs();
            }
            let wjk = f64::from(w[j * d + k]);
            let reg_grad = f64::from((2.0 * 0.3f64) as f32 * w[j * d + k]);
            let want = want + reg_grad;
            // one f32 rounding of the data term, one of the sum with 2λw
            let bound = 2.0 * f64::from(f32::EPSILON) * (want.abs() + reg_grad.abs())
                + 1e-12 * mag
                + 1e-12 * wjk.abs();
            assert!((f64::from(got) - want).abs() <= bound, "[{idx}] {got} vs {want}");
        }
    }

    #[test]
    fn row_split_softmax_is_the_same_on_any_thread_count_and_matches_f64() {
        // the fixed softmax split (forward, cross-entropy, dS and the f32 partial products
        // per part, added in part order in the update) on pools of 1, 2 and 3 threads, bit for
        // bit; its loss and scores against the whole-batch path, its dS within 2 ulps of it,
        // and dW against the f64 naive dSᵀ X̃ within the f32 product's bound
        let (n, d, c) = (203, 300, 10);
        let Batch { rows, labels, scale, offset, w, b } = adversarial_batch(n, d, c, 47, 2e-3);
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let pre = Affine { scale: &scale, offset: &offset };
        for kernel in GemmKernel::available() {
            let p = Problem {
                loss: Loss::Softmax,
                reg: Regularizer::L2(0.3),
                kernel,
                pre,
                n_classes: c,
            };
            let packed = NtPacked::new(kernel, pre, &w, c).expect("packs");
            let (mut sc, mut ds) = (vec![0.0; n * c], vec![0.0; n * c]);
            let loss_ref =
                batch_scores_grad(&p, &row_refs, &labels, &w, &b, None, &mut sc, &mut ds)
                    .expect("valid");
            let run = |threads: usize| {
                let pool =
                    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
                pool.install(|| {
                    let mut split = RowParts::float(n);
                    let (mut sc2, mut ds2, mut losses) =
                        (vec![0.0; n * c], vec![0.0; n * c], vec![0.0; n]);
                    let (loss, ok) = forward_parts(
                        &p,
                        &row_refs,
                        &labels,
                        &w,
                        &b,
                        &packed,
                        &mut split,
                        &mut sc2,
                        &mut ds2,
                        &mut losses,
                    )
                    .expect("valid");
                    assert!(ok);
                    assert_eq!(split.used, FLOAT_PARTS);
                    let (mut dw, mut wc) = (vec![0.0f32; c * d], w.clone());
                    let step = Step { lr: 1e-3, momentum: 0.0 };
                    let reg = backward_update(
                        &p,
                        &row_refs,
                        &[],
                        &ds2,
                        Grad::Parts(&split),
                        Some(step),
                        &mut wc,
                        &mut [],
                        &mut dw,
                        None,
                    )
                    .expect("valid");
                    (loss, sc2, ds2, dw, wc, reg)
                })
            };
            let one = run(1);
            for threads in [2, 3] {
                let other = run(threads);
                assert_eq!(other.0.to_bits(), one.0.to_bits(), "{kernel:?} {threads} threads");
                assert_eq!(other.1, one.1, "{kernel:?} {threads} threads");
                assert_eq!(other.2, one.2, "{kernel:?} {threads} threads");
                assert_eq!(other.3, one.3, "{kernel:?} {threads} threads");
                assert_eq!(other.4, one.4, "{kernel:?} {threads} threads");
                assert_eq!(other.5.to_bits(), one.5.to_bits(), "{kernel:?} {threads} threads");
            }
            let (loss, sc2, ds2, dw, _, _) = one;
            // per-row losses summed in row order: the whole batch's bits
            assert_eq!(loss.to_bits(), loss_ref.to_bits(), "{kernel:?}");
            assert_eq!(sc2, sc, "{kernel:?}");
            // `(e·(1/Σ) − [j = y])·(1/N)` against the whole batch's `e·((1/N)/Σ) − [j = y]/N`:
            // a few roundings of terms up to `1/N` apart
            let inv_n = 1.0 / n as f32;
            for (a, r) in ds2.iter().zip(&ds) {
                let bound = 3.0 * f32::EPSILON * (r.abs() + inv_n);
                assert!((a - r).abs() <= bound, "{kernel:?} {a} vs {r}");
            }
            // the f64 oracle: dW_jk = Σ_i dS_ij x̃_ik + 2λ w_jk, on the split's own dS
            let len = |blk: usize| UPDATE_BLOCK.min(d - blk * UPDATE_BLOCK);
            for (idx, &got) in dw.iter().enumerate() {
                let blk = idx / (c * UPDATE_BLOCK);
                let (j, f) =
                    ((idx % (c * UPDATE_BLOCK)) / len(blk), (idx % (c * UPDATE_BLOCK)) % len(blk));
                let k = blk * UPDATE_BLOCK + f;
                let (mut want, mut mag) = (0.0f64, 0.0f64);
                for i in 0..n {
                    let t =
                        f64::from(ds2[i * c + j]) * (f64::from(rows[i][k]) + f64::from(offset[k]));
                    want += t;
                    mag += t.abs();
                }
                let reg_grad = f64::from((2.0 * 0.3f64) as f32 * w[j * d + k]);
                let want = want + reg_grad;
                // the f32 product's bound (1e-5 of Σ_i |dS_ij x̃_ik|), one f32 rounding of
                // the sum of the parts and of the sum with 2λw
                let bound =
                    1e-5 * mag + 2.0 * f64::from(f32::EPSILON) * (want.abs() + reg_grad.abs());
                assert!(
                    (f64::from(got) - want).abs() <= bound,
                    "{kernel:?} [{idx}] {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn row_split_svm_falls_back_when_n_ds_leaves_i8() {
        // 130 classes, all margins violated (W = 0): N·dS of the label is −129, outside i8;
        // the split reports it and its dscores are the whole-batch loss's, bit for bit
        let kernel = GemmKernel::Avx512;
        if !i8u8_is_simd(kernel) {
            return;
        }
        let (n, d, c) = (12, 64, 130);
        let rows: Vec<Vec<u8>> = (0..n).map(|i| vec![(i * 20) as u8; d]).collect();
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| i * 11 % c as u32).collect();
        let (scale, offset) = (vec![1.0f32; d], vec![-100.0f32; d]);
        let pre = Affine { scale: &scale, offset: &offset };
        let (w, b) = (vec![0.0f32; c * d], vec![0.0f32; c]);
        let p = Problem {
            loss: Loss::Svm { margin: 1.0 },
            reg: Regularizer::None,
            kernel,
            pre,
            n_classes: c,
        };
        let packed = NtPacked::new(kernel, pre, &w, c).expect("packs");
        let (mut sc, mut ds) = (vec![0.0; n * c], vec![0.0; n * c]);
        let loss_ref = batch_scores_grad(&p, &row_refs, &labels, &w, &b, None, &mut sc, &mut ds)
            .expect("valid");
        assert!(int_grad(&p, &ds, n).is_none());
        let mut split = RowParts::new(4);
        let (mut sc2, mut ds2, mut losses) = (vec![0.0; n * c], vec![0.0; n * c], vec![0.0; n]);
        let (loss, ok) = forward_parts(
            &p,
            &row_refs,
            &labels,
            &w,
            &b,
            &packed,
            &mut split,
            &mut sc2,
            &mut ds2,
            &mut losses,
        )
        .expect("valid");
        assert!(!ok);
        assert_eq!(loss.to_bits(), loss_ref.to_bits());
        assert_eq!(loss, 129.0);
        assert_eq!(ds2, ds);
    }
}
