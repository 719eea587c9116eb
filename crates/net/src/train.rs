//! [`Net`]: the hyperparameters of a two-layer network, and minibatch SGD fitting them into a
//! [`NetModel`].

use std::ops::Range;

use imgclass_core::rng::SplitMix64;
use imgclass_core::{Fit, Subset, Values};
use imgclass_linalg::KernelKind;
use imgclass_loss::Loss;

use crate::NetError;
use crate::grad::{Dims, Params, Scratch, data_loss_grad};
use crate::model::{NetModel, NetReport};

/// The most epochs one fit runs.
pub const MAX_EPOCHS: usize = 10_000;

/// Rows of the training set whose accuracy is recorded after each epoch.
const TRAIN_ACC_SAMPLE: usize = 2000;

/// How the weights start (biases start at 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// He et al. (2015): `N(0, 2 / fan_in)`, for ReLU layers. The default.
    He,
    /// `N(0, std²)` for both weight matrices (CS231n's `std = 1e-4`).
    Gaussian(f64),
}

/// Minibatch SGD settings of a network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetSgd {
    /// Rows per minibatch (default 200; capped at the training rows).
    pub batch_size: usize,
    /// Step size `η` (default 1e-3).
    pub learning_rate: f64,
    /// Momentum `μ_m` in `[0, 1)` (default 0.9).
    pub momentum: f64,
    /// Nesterov momentum instead of the classic one (default false).
    pub nesterov: bool,
    /// Factor applied to the learning rate after each epoch (default 0.95).
    pub decay: f64,
    /// Passes over the training rows (default 10; at most [`MAX_EPOCHS`]).
    pub epochs: usize,
    /// Seed of the initialisation, the validation split, the minibatch order and dropout.
    pub seed: u64,
}

impl Default for NetSgd {
    fn default() -> Self {
        Self {
            batch_size: 200,
            learning_rate: 1e-3,
            momentum: 0.9,
            nesterov: false,
            decay: 0.95,
            epochs: 10,
            seed: 0,
        }
    }
}

/// Hyperparameters of a two-layer network; [`Fit`] them to get a [`NetModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    hidden: usize,
    loss: Loss,
    reg: f64,
    sgd: NetSgd,
    init: Init,
    input_scale: f32,
    dropout: f64,
    validation: f64,
    patience: usize,
    keep_best: bool,
}

impl Net {
    /// A network of `hidden` ReLUs: softmax loss, no regularisation, [`NetSgd::default`],
    /// He initialisation, input scale 1, no dropout, no validation split.
    pub fn new(hidden: usize) -> Self {
        Self {
            hidden,
            loss: Loss::Softmax,
            reg: 0.0,
            sgd: NetSgd::default(),
            init: Init::He,
            input_scale: 1.0,
            dropout: 0.0,
            validation: 0.0,
            patience: 0,
            keep_best: true,
        }
    }

    /// The data loss (default softmax cross-entropy; `Loss::Svm` is the multiclass hinge).
    pub fn loss(self, loss: Loss) -> Self {
        Self { loss, ..self }
    }
    /// L2 strength `λ` on both weight matrices: `λ (‖W1‖² + ‖W2‖²)` (default 0).
    pub fn regularization(self, reg: f64) -> Self {
        Self { reg, ..self }
    }
    /// SGD settings.
    pub fn sgd(self, sgd: NetSgd) -> Self {
        Self { sgd, ..self }
    }
    /// Weight initialisation (default [`Init::He`]).
    pub fn init(self, init: Init) -> Self {
        Self { init, ..self }
    }
    /// Scale after mean subtraction, `x̃ = (x − μ) · s` (default 1).
    pub fn input_scale(self, input_scale: f32) -> Self {
        Self { input_scale, ..self }
    }
    /// Probability of dropping a hidden unit in training (inverted dropout; default 0).
    pub fn dropout(self, dropout: f64) -> Self {
        Self { dropout, ..self }
    }
    /// Hold out this fraction of the training rows (seeded, stratified by nothing: a shuffle)
    /// for the per-epoch validation accuracy and early stopping (default 0: none; the model
    /// keeps the last epoch's weights).
    pub fn validation(self, fraction: f64) -> Self {
        Self { validation: fraction, ..self }
    }
    /// Stop when the validation accuracy has not improved for this many epochs, keeping the
    /// best epoch's weights (default 0: never stop early; the best epoch is still kept when
    /// there is a validation split).
    pub fn patience(self, epochs: usize) -> Self {
        Self { patience: epochs, ..self }
    }
    /// With a validation split: keep the weights of the epoch with the best validation
    /// accuracy (default true), or those of the last epoch (false: the validation curve is
    /// only recorded; a small split's best epoch is a noisy choice).
    pub fn keep_best(self, keep: bool) -> Self {
        Self { keep_best: keep, ..self }
    }
    /// Hidden units.
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    /// The SGD settings.
    pub fn sgd_settings(&self) -> &NetSgd {
        &self.sgd
    }

    fn validate(&self) -> Result<(), NetError> {
        let bad =
            |name, value: f64, reason| Err(NetError::InvalidParameter { name, value, reason });
        let s = &self.sgd;
        if self.hidden == 0 {
            return bad("hidden", 0.0, "must be at least 1");
        }
        if s.batch_size == 0 {
            return bad("batch_size", 0.0, "must be at least 1");
        }
        if !(s.learning_rate.is_finite() && s.learning_rate > 0.0) {
            return bad("learning_rate", s.learning_rate, "must be positive and finite");
        }
        if !(s.momentum.is_finite() && (0.0..1.0).contains(&s.momentum)) {
            return bad("momentum", s.momentum, "must be in [0, 1)");
        }
        if !(s.decay.is_finite() && s.decay > 0.0) {
            return bad("decay", s.decay, "must be positive and finite");
        }
        if s.epochs == 0 || s.epochs > MAX_EPOCHS {
            return bad("epochs", s.epochs as f64, "must be from 1 to 10000");
        }
        if !(self.reg.is_finite() && self.reg >= 0.0) {
            return bad("regularization", self.reg, "must be non-negative and finite");
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return bad("dropout", self.dropout, "must be in [0, 1)");
        }
        if !(self.validation.is_finite() && (0.0..0.9).contains(&self.validation)) {
            return bad("validation", self.validation, "must be in [0, 0.9)");
        }
        if !(self.input_scale.is_finite() && self.input_scale > 0.0) {
            return bad("input_scale", f64::from(self.input_scale), "must be positive and finite");
        }
        if let Init::Gaussian(std) = self.init
            && !(std.is_finite() && std > 0.0)
        {
            return bad("init_std", std, "must be positive and finite");
        }
        Ok(())
    }
}

/// `(x − μ) s` for the view positions `rows` of `v`, row-major f32.
pub(crate) fn preprocess(v: &Values<'_>, rows: Range<usize>, mean: &[f32], scale: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * mean.len());
    gather(&mut out, v, rows, mean, scale);
    out
}

/// [`preprocess`] of any positions into `out` (cleared first; a batch reuses one buffer, so
/// its pages are not handed back to the kernel and zeroed again every batch).
fn gather(
    out: &mut Vec<f32>,
    v: &Values<'_>,
    rows: impl Iterator<Item = usize>,
    mean: &[f32],
    scale: f32,
) {
    out.clear();
    for i in rows {
        match v {
            Values::Pixels(r) => {
                out.extend(r.row(i).iter().zip(mean).map(|(&x, &m)| (f32::from(x) - m) * scale));
            }
            Values::Features(r) => {
                out.extend(r.row(i).iter().zip(mean).map(|(&x, &m)| (x - m) * scale));
            }
        }
    }
}

/// Values of `w1` per block of the fused update (fixed, so the regularisation sum does not
/// depend on the thread count).
const STEP_BLOCK: usize = 1 << 15;

/// What one SGD step applies to every parameter: the two half-batch gradients' weights,
/// `2λ`, the learning rate, the momentum.
#[derive(Debug, Clone, Copy)]
struct StepArgs {
    /// Weights of the two halves' gradients (`None` for a batch of one half).
    halves: Option<(f32, f32)>,
    /// `2λ` (`None` for λ = 0).
    two_reg: Option<f32>,
    lr: f32,
    mu: f32,
    nesterov: bool,
}

/// One SGD step on one parameter array, in one pass: the gradient `w0 a + w1 b` (or `a`),
/// plus `2λ w` when `regularised`, then the momentum update of `v` and `w`. Returns `Σ w²`
/// of the weights before the step (0 unless regularised) and whether every new weight is
/// finite.
///
/// The same code ([`step_lanes`]) is compiled for AVX-512 and AVX2 and chosen by `kernel`
/// (checked against the CPU here as well): f32 adds and multiplies in the same order, no
/// FMA contraction, the squares in 8 f64 lanes by index mod 8, so every path gives the same
/// bits (tested). The portable build ran at about 2.3 ns per weight, a fifth of a 500-hidden
/// pixel net's fit (`perf`, docs/bench/net.md).
fn step_slice(
    kernel: KernelKind,
    w: &mut [f32],
    v: &mut [f32],
    a: &[f32],
    b: &[f32],
    regularised: bool,
    s: StepArgs,
) -> (f64, bool) {
    #[cfg(target_arch = "x86_64")]
    match kernel {
        KernelKind::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
            // SAFETY: avx512f detected just above.
            return unsafe { step_avx512(w, v, a, b, regularised, s) };
        }
        KernelKind::Avx2 | KernelKind::Avx512 if std::arch::is_x86_feature_detected!("avx2") => {
            // SAFETY: avx2 detected just above.
            return unsafe { step_avx2(w, v, a, b, regularised, s) };
        }
        _ => {}
    }
    let _ = kernel;
    step_flags(w, v, a, b, regularised, s)
}

/// [`step_flags`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn step_avx512(
    w: &mut [f32],
    v: &mut [f32],
    a: &[f32],
    b: &[f32],
    regularised: bool,
    s: StepArgs,
) -> (f64, bool) {
    step_flags(w, v, a, b, regularised, s)
}

/// [`step_flags`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn step_avx2(
    w: &mut [f32],
    v: &mut [f32],
    a: &[f32],
    b: &[f32],
    regularised: bool,
    s: StepArgs,
) -> (f64, bool) {
    step_flags(w, v, a, b, regularised, s)
}

/// [`step_lanes`] with the step's three switches as constants, so that the loop has no
/// branch.
#[inline(always)]
fn step_flags(
    w: &mut [f32],
    v: &mut [f32],
    a: &[f32],
    b: &[f32],
    regularised: bool,
    s: StepArgs,
) -> (f64, bool) {
    let two = if regularised { s.two_reg } else { None };
    let k = Consts {
        w0: s.halves.map_or(1.0, |h| h.0),
        w1: s.halves.map_or(0.0, |h| h.1),
        two: two.unwrap_or(0.0),
        lr: s.lr,
        mu: s.mu,
    };
    match (s.halves.is_some(), two.is_some(), s.nesterov) {
        (false, false, false) => step_lanes::<false, false, false>(w, v, a, b, k),
        (false, false, true) => step_lanes::<false, false, true>(w, v, a, b, k),
        (false, true, false) => step_lanes::<false, true, false>(w, v, a, b, k),
        (false, true, true) => step_lanes::<false, true, true>(w, v, a, b, k),
        (true, false, false) => step_lanes::<true, false, false>(w, v, a, b, k),
        (true, false, true) => step_lanes::<true, false, true>(w, v, a, b, k),
        (true, true, false) => step_lanes::<true, true, false>(w, v, a, b, k),
        (true, true, true) => step_lanes::<true, true, true>(w, v, a, b, k),
    }
}

/// The scalars of one step.
#[derive(Debug, Clone, Copy)]
struct Consts {
    w0: f32,
    w1: f32,
    two: f32,
    lr: f32,
    mu: f32,
}

/// The body of [`step_slice`], 8 weights at a time (lane `j mod 8` of the squares, as one
/// weight at a time would add them).
#[inline(always)]
fn step_lanes<const HALVES: bool, const REG: bool, const NESTEROV: bool>(
    w: &mut [f32],
    v: &mut [f32],
    a: &[f32],
    b: &[f32],
    k: Consts,
) -> (f64, bool) {
    const L: usize = 8;
    let mut sq = [0f64; L];
    let mut bad = [false; L];
    let len = w.len().min(v.len()).min(a.len()).min(if HALVES { b.len() } else { usize::MAX });
    let one = |l: usize, wi: &mut f32, vi: &mut f32, ai: f32, bi: f32, sq: &mut [f64; L]| {
        let mut g = if HALVES { k.w0 * ai + k.w1 * bi } else { ai };
        if REG {
            sq[l] += f64::from(*wi) * f64::from(*wi);
            g += k.two * *wi;
        }
        let prev = *vi;
        *vi = k.mu * prev - k.lr * g;
        *wi += if NESTEROV { -k.mu * prev + (1.0 + k.mu) * *vi } else { *vi };
        !wi.is_finite()
    };
    let body = len / L * L;
    let (wh, wt) = w[..len].split_at_mut(body);
    let (vh, vt) = v[..len].split_at_mut(body);
    let (ah, at) = a[..len].split_at(body);
    let bz = [0f32; L];
    for (c, ((wc, vc), ac)) in
        wh.chunks_exact_mut(L).zip(vh.chunks_exact_mut(L)).zip(ah.chunks_exact(L)).enumerate()
    {
        let bc: &[f32] = if HALVES { &b[c * L..c * L + L] } else { &bz };
        for l in 0..L {
            bad[l] |= one(l, &mut wc[l], &mut vc[l], ac[l], bc[l], &mut sq);
        }
    }
    for (l, ((wi, vi), &ai)) in wt.iter_mut().zip(vt.iter_mut()).zip(at).enumerate() {
        let bi = if HALVES { b[body + l] } else { 0.0 };
        bad[l] |= one(l, wi, vi, ai, bi, &mut sq);
    }
    let sq = ((sq[0] + sq[4]) + (sq[2] + sq[6])) + ((sq[1] + sq[5]) + (sq[3] + sq[7]));
    (sq, !bad.iter().any(|&x| x))
}

/// One SGD step on every parameter (see [`step_slice`]), `w1` in parallel over fixed blocks:
/// returns `λ (‖W1‖² + ‖W2‖²)` before the step (block sums added in order) and whether every
/// new weight is finite. Each weight gets the same arithmetic as the unfused sequence (mix
/// the halves, add `2λW`, momentum), so the same bits.
fn sgd_step(
    kernel: KernelKind,
    p: &mut Params<f32>,
    vel: &mut Params<f32>,
    g0: &Params<f32>,
    g1: &Params<f32>,
    reg: f64,
    s: StepArgs,
) -> (f64, bool) {
    use rayon::prelude::*;
    let blocks: Vec<(f64, bool)> =
        p.w1.par_chunks_mut(STEP_BLOCK)
            .zip(vel.w1.par_chunks_mut(STEP_BLOCK))
            .zip(g0.w1.par_chunks(STEP_BLOCK))
            .zip(g1.w1.par_chunks(STEP_BLOCK))
            .map(|(((w, v), a), b)| step_slice(kernel, w, v, a, b, true, s))
            .collect();
    let (mut sq, mut finite) = (0f64, true);
    for (q, f) in blocks {
        sq += q;
        finite &= f;
    }
    for (w, v, a, b, r) in [
        (&mut p.b1, &mut vel.b1, &g0.b1, &g1.b1, false),
        (&mut p.w2, &mut vel.w2, &g0.w2, &g1.w2, true),
        (&mut p.b2, &mut vel.b2, &g0.b2, &g1.b2, false),
    ] {
        let (q, f) = step_slice(kernel, w, v, a, b, r, s);
        sq += q;
        finite &= f;
    }
    (reg * sq, finite)
}

fn accuracy(model: &NetModel, x: &Subset) -> Result<f64, NetError> {
    use imgclass_core::Predict;
    if x.is_empty() {
        return Ok(0.0);
    }
    let pred = model.predict(x)?;
    let right = pred.iter().zip(x.labels()).filter(|(p, y)| **p == *y).count();
    Ok(right as f64 / x.len() as f64)
}

impl Fit for Net {
    type Model = NetModel;
    type Error = NetError;

    fn fit(&self, data: &Subset) -> Result<NetModel, NetError> {
        self.validate()?;
        if data.is_empty() {
            return Err(NetError::EmptyTrain);
        }
        let c = data.n_classes();
        if c < 2 {
            return Err(NetError::TooFewClasses { n_classes: c });
        }
        let started = std::time::Instant::now();
        let kernel = KernelKind::detect()?;
        let s = self.sgd;
        let root = SplitMix64::new(s.seed);
        // the validation split: a seeded shuffle of positions, the last share held out
        let mut order: Vec<usize> = (0..data.len()).collect();
        let n_val = (data.len() as f64 * self.validation).round() as usize;
        if n_val > 0 {
            root.fork(3).shuffle(&mut order);
        }
        let (tr_pos, val_pos) = order.split_at(data.len() - n_val);
        let (mut tr_pos, mut val_pos) = (tr_pos.to_vec(), val_pos.to_vec());
        tr_pos.sort_unstable();
        val_pos.sort_unstable();
        let train = data.select(&tr_pos).map_err(|e| NetError::Parts(e.to_string()))?;
        let val = data.select(&val_pos).map_err(|e| NetError::Parts(e.to_string()))?;
        let n = train.len();
        if n == 0 {
            return Err(NetError::EmptyTrain);
        }
        let dims = Dims { d: data.dim(), h: self.hidden, c };
        let v = train.values();
        // the training mean, f64 sums in row order
        let mean: Vec<f32> = v.column_means().into_iter().map(|m| m as f32).collect();
        // initial weights
        let mut g = root.fork(1);
        let (std1, std2) = match self.init {
            Init::He => ((2.0 / dims.d as f64).sqrt(), (2.0 / dims.h as f64).sqrt()),
            Init::Gaussian(std) => (std, std),
        };
        let mut p = Params::<f32>::zeros(dims);
        p.w1.iter_mut().for_each(|w| *w = (g.next_normal() * std1) as f32);
        p.w2.iter_mut().for_each(|w| *w = (g.next_normal() * std2) as f32);
        let mut vel = Params::<f32>::zeros(dims);
        let mut grads = [Params::<f32>::zeros(dims), Params::<f32>::zeros(dims)];
        let mut scratch = [Scratch::default(), Scratch::default()];
        let mut batch = Vec::with_capacity(s.batch_size.min(n) * dims.d);
        let bs = s.batch_size.min(n);
        let per_epoch = n.div_ceil(bs);
        let mut report = NetReport::default();
        let mut shuffle = root.fork(2);
        let mut drop_rng = root.fork(4);
        let keep = 1.0 - self.dropout;
        let mut lr = s.learning_rate;
        let sample: Vec<usize> =
            (0..n.min(TRAIN_ACC_SAMPLE)).map(|i| i * n / n.min(TRAIN_ACC_SAMPLE)).collect();
        let train_sample = train.select(&sample).map_err(|e| NetError::Parts(e.to_string()))?;
        let mut model = NetModel {
            p: p.clone(),
            dims,
            mean: mean.clone(),
            scale: self.input_scale,
            shape: data.shape(),
            loss: self.loss,
            report: NetReport::default(),
        };
        let mut best: Option<(f64, usize, Params<f32>)> = None;
        let mut perm: Vec<usize> = (0..n).collect();
        let labels = train.labels();
        let mut iteration = 0usize;
        for epoch in 0..s.epochs {
            shuffle.shuffle(&mut perm);
            for b in 0..per_epoch {
                let rows = &perm[b * bs..((b + 1) * bs).min(n)];
                let m = rows.len();
                gather(&mut batch, &v, rows.iter().copied(), &mean, self.input_scale);
                let x = &batch;
                let y: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
                let mask: Option<Vec<f32>> = (self.dropout > 0.0).then(|| {
                    (0..m * dims.h)
                        .map(|_| if drop_rng.next_f64() < keep { (1.0 / keep) as f32 } else { 0.0 })
                        .collect()
                });
                // two fixed halves in parallel, summed in order: same bits on any thread count
                let half = m.div_ceil(2);
                let (x0, x1) = x.split_at(half * dims.d);
                let (y0, y1) = y.split_at(half);
                let (m0, m1) = match &mask {
                    Some(mk) => {
                        let (a, b) = mk.split_at(half * dims.h);
                        (Some(a), Some(b))
                    }
                    None => (None, None),
                };
                let [g0, g1] = &mut grads;
                let [s0, s1] = &mut scratch;
                let pr = &p;
                let (r0, r1) = rayon::join(
                    || data_loss_grad(pr, dims, self.loss, x0, y0, m0, g0, s0),
                    || {
                        if y1.is_empty() {
                            Ok(0.0)
                        } else {
                            data_loss_grad(pr, dims, self.loss, x1, y1, m1, g1, s1)
                        }
                    },
                );
                let diverged = |e| match e {
                    imgclass_loss::LossError::NonFinite { .. } => {
                        NetError::Diverged { epoch, iteration, loss: f64::NAN }
                    }
                    e => NetError::Loss(e),
                };
                let (l0, l1) = (r0.map_err(diverged)?, r1.map_err(diverged)?);
                let (w0, w1) = (half as f32 / m as f32, (m - half) as f32 / m as f32);
                let data = f64::from(w0 * l0 + if y1.is_empty() { 0.0 } else { w1 * l1 });
                let step = StepArgs {
                    halves: (!y1.is_empty()).then_some((w0, w1)),
                    two_reg: (self.reg != 0.0).then_some((2.0 * self.reg) as f32),
                    lr: lr as f32,
                    mu: s.momentum as f32,
                    nesterov: s.nesterov,
                };
                let (reg, finite) = sgd_step(kernel, &mut p, &mut vel, g0, g1, self.reg, step);
                let loss = data + reg;
                if !loss.is_finite() {
                    return Err(NetError::Diverged { epoch, iteration, loss });
                }
                report.loss.push(loss as f32);
                if !finite {
                    return Err(NetError::Diverged { epoch, iteration, loss: f64::INFINITY });
                }
                iteration += 1;
            }
            lr *= s.decay;
            model.p.clone_from(&p);
            report.train_accuracy.push(accuracy(&model, &train_sample)?);
            report.epochs = epoch + 1;
            if !val.is_empty() {
                let a = accuracy(&model, &val)?;
                report.val_accuracy.push(a);
                if best.as_ref().is_none_or(|(b, _, _)| a > *b) {
                    best = Some((a, epoch, p.clone()));
                }
                let since = epoch - best.as_ref().map_or(epoch, |b| b.1);
                tracing::debug!(
                    epoch,
                    val_accuracy = a,
                    loss = report.loss.last().copied(),
                    "net epoch"
                );
                if self.patience > 0 && since >= self.patience {
                    break;
                }
            }
        }
        report.best_epoch = report.epochs.saturating_sub(1);
        if let Some((_, e, bp)) = best.filter(|_| self.keep_best) {
            report.best_epoch = e;
            model.p = bp;
        }
        report.train_seconds = started.elapsed().as_secs_f64();
        model.report = report;
        Ok(model)
    }
}

#[cfg(test)]
mod step_tests {
    use super::*;
    use crate::grad::add_reg;

    fn random(dims: Dims, g: &mut SplitMix64, scale: f64) -> Params<f32> {
        let mut p = Params::<f32>::zeros(dims);
        for a in p.arrays_mut() {
            a.iter_mut().for_each(|v| *v = (g.next_normal() * scale) as f32);
        }
        p
    }

    #[test]
    fn the_fused_step_equals_mix_then_regularise_then_momentum() {
        // w1 spans several blocks and a partial one
        let dims = Dims { d: 700, h: 100, c: 7 };
        let mut g = SplitMix64::new(12);
        for (halves, reg, nesterov) in [
            (Some((0.5f32, 0.5f32)), 1e-3, false),
            (Some((0.6, 0.4)), 0.0, true),
            (None, 3e-2, true),
            (None, 0.0, false),
        ] {
            let (p0, v0) = (random(dims, &mut g, 0.1), random(dims, &mut g, 0.01));
            let (a, b) = (random(dims, &mut g, 1.0), random(dims, &mut g, 1.0));
            let (lr, mu) = (0.05f32, 0.9f32);
            // the unfused sequence, as the loop did it before
            let mut total = a.clone();
            if let Some((w0, w1)) = halves {
                for ((t, a), b) in total.arrays_mut().into_iter().zip(a.arrays()).zip(b.arrays()) {
                    t.iter_mut().zip(a.iter().zip(b)).for_each(|(t, (a, b))| *t = w0 * a + w1 * b);
                }
            }
            let want_reg = add_reg(&p0, reg, &mut total);
            let (mut pw, mut vw) = (p0.clone(), v0.clone());
            for ((w, v), t) in pw.arrays_mut().into_iter().zip(vw.arrays_mut()).zip(total.arrays())
            {
                for ((wi, vi), &gi) in w.iter_mut().zip(v.iter_mut()).zip(t) {
                    let prev = *vi;
                    *vi = mu * *vi - lr * gi;
                    *wi += if nesterov { -mu * prev + (1.0 + mu) * *vi } else { *vi };
                }
            }
            let s = StepArgs {
                halves,
                two_reg: (reg != 0.0).then_some((2.0 * reg) as f32),
                lr,
                mu,
                nesterov,
            };
            for kernel in KernelKind::available() {
                let (mut p, mut v) = (p0.clone(), v0.clone());
                let (got_reg, finite) = sgd_step(kernel, &mut p, &mut v, &a, &b, reg, s);
                assert!(finite);
                assert_eq!(p, pw, "{kernel} {halves:?} {reg} {nesterov}");
                assert_eq!(v, vw);
                assert!(
                    (got_reg - want_reg).abs() <= 1e-12 * want_reg.abs(),
                    "{got_reg} {want_reg}"
                );
                // a gradient that overflows is reported
                let mut huge = a.clone();
                huge.w2[3] = f32::MAX;
                let (mut p, mut v) = (p0.clone(), v0.clone());
                let s = StepArgs { lr: 1e30, ..s };
                assert!(!sgd_step(kernel, &mut p, &mut v, &huge, &huge, reg, s).1);
            }
        }
    }

    /// The AVX2 and AVX-512 builds of the step give the portable build's bits: weights,
    /// velocities, the squares' sum and the finiteness flag, for every switch, on lengths
    /// around the 8-lane blocks, and on adversarial values (NaN, infinities, subnormals,
    /// the largest finite values, signed zeros).
    #[test]
    fn every_kernel_steps_as_the_portable_build() {
        let mut g = SplitMix64::new(5);
        let special = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE / 4.0,
            -0.0,
            0.0,
            1e-30,
            3e20,
        ];
        for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000] {
            for adversarial in [false, true] {
                let mut arr = |scale: f64| -> Vec<f32> {
                    (0..len)
                        .map(|_| {
                            if adversarial && g.next_f64() < 0.2 {
                                special[(g.next_u64() % special.len() as u64) as usize]
                            } else {
                                (g.next_normal() * scale) as f32
                            }
                        })
                        .collect()
                };
                let (w0, v0, a, b) = (arr(0.1), arr(0.01), arr(1.0), arr(1.0));
                for mask in 0..16u32 {
                    let s = StepArgs {
                        halves: (mask & 1 != 0).then_some((0.55, 0.45)),
                        two_reg: (mask & 2 != 0).then_some(2e-3),
                        lr: 0.05,
                        mu: 0.9,
                        nesterov: mask & 4 != 0,
                    };
                    let regularised = mask & 8 != 0;
                    let (mut wr, mut vr) = (w0.clone(), v0.clone());
                    let (sq_r, fin_r) = step_flags(&mut wr, &mut vr, &a, &b, regularised, s);
                    for kernel in KernelKind::available() {
                        let (mut w, mut v) = (w0.clone(), v0.clone());
                        let (sq, fin) = step_slice(kernel, &mut w, &mut v, &a, &b, regularised, s);
                        let bits = |x: &[f32]| {
                            x.iter()
                                .map(|f| if f.is_nan() { u32::MAX } else { f.to_bits() })
                                .collect::<Vec<_>>()
                        };
                        let at =
                            format!("{kernel} len {len} mask {mask} adversarial {adversarial}");
                        assert_eq!(bits(&w), bits(&wr), "{at}");
                        assert_eq!(bits(&v), bits(&vr), "{at}");
                        assert!(
                            sq.to_bits() == sq_r.to_bits() || (sq.is_nan() && sq_r.is_nan()),
                            "{at}"
                        );
                        assert_eq!(fin, fin_r, "{at}");
                    }
                    // the portable build against one weight at a time, as the step is defined
                    let (mut w, mut v) = (w0.clone(), v0.clone());
                    let (mut sq, mut fin) = ([0f64; 8], true);
                    let two = if regularised { s.two_reg } else { None };
                    for j in 0..len {
                        let mut gj = match s.halves {
                            Some((h0, h1)) => h0 * a[j] + h1 * b[j],
                            None => a[j],
                        };
                        if let Some(two) = two {
                            sq[j % 8] += f64::from(w[j]) * f64::from(w[j]);
                            gj += two * w[j];
                        }
                        let prev = v[j];
                        v[j] = s.mu * v[j] - s.lr * gj;
                        w[j] += if s.nesterov { -s.mu * prev + (1.0 + s.mu) * v[j] } else { v[j] };
                        fin &= w[j].is_finite();
                    }
                    let sq =
                        ((sq[0] + sq[4]) + (sq[2] + sq[6])) + ((sq[1] + sq[5]) + (sq[3] + sq[7]));
                    let bits = |x: &[f32]| {
                        x.iter()
                            .map(|f| if f.is_nan() { u32::MAX } else { f.to_bits() })
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(bits(&w), bits(&wr), "len {len} mask {mask}");
                    assert_eq!(bits(&v), bits(&vr));
                    assert!(sq.to_bits() == sq_r.to_bits() || (sq.is_nan() && sq_r.is_nan()));
                    assert_eq!(fin, fin_r);
                }
            }
        }
    }
}
