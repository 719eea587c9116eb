//! [`Linear`]: the hyperparameters of a linear classifier, and minibatch SGD fitting them
//! into a [`LinearModel`].

use imgclass_core::rng::SplitMix64;
use imgclass_core::{Fit, Subset};
use imgclass_linalg::gemm::{Affine, GemmKernel, gemm_nt_u8_with, gemm_tn_u8_with};
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

/// What one gradient evaluation needs besides the batch and the parameters.
pub(crate) struct Problem<'a> {
    pub(crate) loss: Loss,
    pub(crate) reg: Regularizer,
    pub(crate) kernel: GemmKernel,
    pub(crate) pre: Affine<'a>,
    pub(crate) n_classes: usize,
}

/// Scratch and output buffers of one gradient evaluation.
pub(crate) struct Buffers<'a> {
    pub(crate) scores: &'a mut [f32],
    pub(crate) dscores: &'a mut [f32],
    pub(crate) dw: &'a mut [f32],
    pub(crate) db: &'a mut [f32],
}

/// The minibatch objective `L(W, b) = mean_i L_i(X̃_i Wᵀ + b, y_i) + R(W)`: returns
/// `(data loss, R(W))` and writes `dL/dW` into `out.dw` and `dL/db` into `out.db`.
pub(crate) fn batch_loss_grad(
    p: &Problem<'_>,
    rows: &[&[u8]],
    labels: &[u32],
    w: &[f32],
    b: &[f32],
    out: &mut Buffers<'_>,
) -> Result<(f32, f64), LinearError> {
    let c = p.n_classes;
    gemm_nt_u8_with(p.kernel, rows, p.pre, w, c, out.scores)?;
    for srow in out.scores.chunks_exact_mut(c) {
        srow.iter_mut().zip(b).for_each(|(s, bj)| *s += bj);
    }
    let data = p.loss.loss_grad_into(out.scores, c, labels, out.dscores)?;
    gemm_tn_u8_with(p.kernel, out.dscores, c, rows, p.pre, out.dw)?;
    out.db.fill(0.0);
    for grow in out.dscores.chunks_exact(c) {
        out.db.iter_mut().zip(grow).for_each(|(a, g)| *a += g);
    }
    let reg = p.reg.add_grad(w, out.dw)?;
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

        let mut order_rng = root.fork(2);
        let mut order: Vec<usize> = (0..n).collect();
        order_rng.shuffle(&mut order);
        let mut pos = 0usize;
        let mut epochs_done = 0usize;
        let mut lr = s.learning_rate;

        let mut rows: Vec<&[u8]> = Vec::with_capacity(bs);
        let mut labels: Vec<u32> = Vec::with_capacity(bs);
        let mut scores = vec![0.0f32; bs * c];
        let mut dscores = vec![0.0f32; bs * c];
        let mut dw = vec![0.0f32; c * d];
        let mut db = vec![0.0f32; c];
        let mut report = TrainingReport::with_capacity(iterations);
        let mut first_loss = None;
        let started = std::time::Instant::now();

        for it in 0..iterations {
            rows.clear();
            labels.clear();
            while rows.len() < bs {
                if pos == n {
                    order_rng.shuffle(&mut order);
                    pos = 0;
                    epochs_done += 1;
                    lr *= s.decay;
                }
                let p = order[pos];
                pos += 1;
                rows.push(train.row(p));
                labels.push(train.label(p));
            }
            let (data_loss, reg_loss) = match batch_loss_grad(
                &Problem { loss: self.loss, reg: self.reg, kernel, pre, n_classes: c },
                &rows,
                &labels,
                &w,
                &b,
                &mut Buffers {
                    scores: &mut scores,
                    dscores: &mut dscores,
                    dw: &mut dw,
                    db: &mut db,
                },
            ) {
                Ok(v) => v,
                Err(LinearError::Loss(LossError::NonFinite { what, .. })) => {
                    let loss = if what == "scores" { f64::NAN } else { f64::INFINITY };
                    return Err(LinearError::Diverged { iteration: it, loss });
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

            let lr32 = lr as f32;
            if s.momentum > 0.0 {
                let mu = s.momentum as f32;
                for ((wi, vi), gi) in w.iter_mut().zip(vw.iter_mut()).zip(&dw) {
                    *vi = mu * *vi - lr32 * gi;
                    *wi += *vi;
                }
            } else {
                for (wi, gi) in w.iter_mut().zip(&dw) {
                    *wi -= lr32 * gi;
                }
            }
            if self.fit_bias {
                for ((j, bj), &g) in b.iter_mut().enumerate().zip(&db) {
                    if s.momentum > 0.0 {
                        vb[j] = s.momentum as f32 * vb[j] - lr32 * g;
                        *bj += vb[j];
                    } else {
                        *bj -= lr32 * g;
                    }
                }
            }
        }
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
}
