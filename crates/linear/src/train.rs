//! [`Linear`]: the hyperparameters of a linear classifier, and minibatch SGD (or the
//! full-batch L-BFGS solver of `lbfgs.rs`) fitting them into a [`LinearModel`].

use imgclass_core::rng::SplitMix64;
use imgclass_core::{Fit, Rows, Subset, Values};
use imgclass_linalg::gemm::{Affine, KernelKind};
use imgclass_loss::{Loss, Regularizer};

use crate::LinearError;
use crate::dcd::Dcd;
use crate::lbfgs::{Data, Lbfgs, Objective, StopReason};
use crate::model::{LinearModel, TrainingReport};
use crate::newton::Newton;
use crate::sgd::{Batches, Part, Problem, Run, part_bounds};

/// The most SGD updates one fit runs: the loss curve keeps three `f32` per update (120 MB at
/// this bound), and at ~0.15 ms per CIFAR-10 update it is about 25 minutes. A [`Stop`] that
/// means more is refused with [`LinearError::TooManyIterations`] before anything is allocated.
pub const MAX_ITERATIONS: usize = 10_000_000;

/// When SGD stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many minibatch updates (at most [`MAX_ITERATIONS`]).
    Iterations(usize),
    /// After this many passes over the training set (`ceil(n / batch_size)` updates each; at
    /// most [`MAX_ITERATIONS`] updates in all).
    Epochs(usize),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Iterations(t) => write!(f, "{t} iterations"),
            Self::Epochs(e) => write!(f, "{e} epochs"),
        }
    }
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

/// How a [`Linear`] classifier is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Solver {
    /// Minibatch SGD (the default, with [`Sgd::default`]): any loss and regulariser.
    Sgd(Sgd),
    /// Full-batch L-BFGS from `W = 0, b = 0` (see [`Lbfgs`] and the module docs of
    /// [`crate::lbfgs`]): a differentiable loss ([`Loss::Softmax`], [`Loss::SquaredHinge`],
    /// [`Loss::OvaSquaredHinge`]) with [`Regularizer::None`] or [`Regularizer::L2`].
    Lbfgs(Lbfgs),
    /// Dual coordinate descent ([`Dcd`], module [`crate::dcd`]): [`Loss::OvaSquaredHinge`]
    /// with [`Regularizer::L2`] of a positive `λ` only; its bias is penalised as a weight on a
    /// constant feature 1 (as liblinear and scikit-learn's `LinearSVC`).
    Dcd(Dcd),
    /// Finite Newton ([`Newton`], module [`crate::newton`]) from a few [`Dcd`] epochs: the
    /// same problem as [`Solver::Dcd`], solved to its optimum (gradient tolerance); for rows of
    /// up to a few thousand features.
    Newton(Newton),
}

impl Default for Solver {
    fn default() -> Self {
        Self::Sgd(Sgd::default())
    }
}

impl Solver {
    /// `sgd`, `lbfgs`, `dcd` or `newton`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd(_) => "sgd",
            Self::Lbfgs(_) => "lbfgs",
            Self::Dcd(_) => "dcd",
            Self::Newton(_) => "newton",
        }
    }
}

/// The two solvers of the one-vs-all L2-SVM's primal/dual pair (`fit_dcd`).
enum SvmSolver {
    Dcd(Dcd),
    Newton(Newton),
}

/// Hyperparameters of a linear classifier; [`Fit`] them to a training [`Subset`] of u8
/// images or f32 features to get a [`LinearModel`]. Cheap to clone, so a grid is a
/// `Vec<Linear>`.
///
/// Our objective is `mean_i L_i + λ Σ W²` ([`Regularizer::L2`]`(λ)`); scikit-learn's
/// `C Σ_i L_i + ½‖W‖²` is the same divided by `C·N`, so `λ = 1 / (2 C N)`
/// ([`Regularizer::from_sklearn_c`]). `LogisticRegression` leaves its intercept unpenalised
/// as we do; `LinearSVC` penalises it (through `intercept_scaling`), so its optimum differs
/// from ours by that penalty.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    loss: Loss,
    reg: Regularizer,
    solver: Solver,
    init_std: f64,
    input_scale: f32,
    fit_bias: bool,
    divergence_factor: f64,
    threads: usize,
}

impl Linear {
    /// A classifier trained on `loss`, with the defaults of every setter below.
    pub fn new(loss: Loss) -> Self {
        Self {
            loss,
            reg: Regularizer::None,
            solver: Solver::default(),
            init_std: 1e-3,
            input_scale: 1.0,
            fit_bias: true,
            divergence_factor: 1e6,
            threads: 0,
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

    /// Train by minibatch SGD with these settings: `.solver(Solver::Sgd(sgd))` (the default
    /// solver is SGD with [`Sgd::default`]).
    pub fn sgd(mut self, sgd: Sgd) -> Self {
        self.solver = Solver::Sgd(sgd);
        self
    }

    /// The solver (default [`Solver::Sgd`] with [`Sgd::default`]). The full-batch
    /// [`Solver::Lbfgs`] refuses [`Loss::Svm`] ([`LinearError::NonSmoothLoss`]) and L1 or
    /// elastic-net regularisation ([`LinearError::UnsupportedRegularizer`]), starts from
    /// zero weights (so ignores [`Linear::init_std`]) and uses the current rayon pool (so
    /// ignores [`Linear::threads`]; its result has the same bits on any pool).
    pub fn solver(mut self, solver: Solver) -> Self {
        self.solver = solver;
        self
    }

    /// Standard deviation of the Gaussian initial weights of SGD (default 1e-3).
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

    /// Threads of one SGD run (default 0: automatic, two when the current rayon pool has at
    /// least two threads, else one). Each iteration is split into two fixed halves of the
    /// features (one when `D < 128`), so at most two threads are used and the fitted model
    /// has the same bits for any value. Set 1 when fits already run in parallel (a grid
    /// search over the pool's threads).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// The SGD settings in use (`None` when the solver is L-BFGS).
    pub fn sgd_settings(&self) -> Option<&Sgd> {
        match &self.solver {
            Solver::Sgd(s) => Some(s),
            Solver::Lbfgs(_) | Solver::Dcd(_) | Solver::Newton(_) => None,
        }
    }

    /// The solver in use.
    pub fn solver_settings(&self) -> &Solver {
        &self.solver
    }

    /// The data loss in use.
    pub fn loss_kind(&self) -> Loss {
        self.loss
    }

    /// The regulariser in use.
    pub fn regularizer(&self) -> Regularizer {
        self.reg
    }

    /// The problem [`Solver::Dcd`] and [`Solver::Newton`] solve: the one-vs-all squared hinge
    /// with L2 of a positive `λ`.
    fn validate_svm_problem(&self) -> Result<(), LinearError> {
        if !matches!(self.loss, Loss::OvaSquaredHinge { .. }) {
            return Err(LinearError::DcdUnsupported {
                what: format!("the {} loss", self.loss.name()),
            });
        }
        if !matches!(self.reg, Regularizer::L2(l) if l > 0.0) {
            return Err(LinearError::DcdUnsupported { what: format!("{:?}", self.reg) });
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), LinearError> {
        let bad =
            |name, value: f64, reason| Err(LinearError::InvalidParameter { name, value, reason });
        match &self.solver {
            Solver::Sgd(s) => Self::validate_sgd(s)?,
            Solver::Dcd(dcd) => {
                self.validate_svm_problem()?;
                if dcd.max_epochs == 0 || dcd.max_epochs > MAX_ITERATIONS {
                    return bad("max_epochs", dcd.max_epochs as f64, "must be 1 to MAX_ITERATIONS");
                }
                if !(dcd.tolerance.is_finite() && dcd.tolerance > 0.0) {
                    return bad("tolerance", dcd.tolerance, "must be positive and finite");
                }
            }
            Solver::Newton(nt) => {
                self.validate_svm_problem()?;
                if nt.max_iterations == 0 || nt.max_iterations > MAX_ITERATIONS {
                    return bad(
                        "max_iterations",
                        nt.max_iterations as f64,
                        "must be 1 to MAX_ITERATIONS",
                    );
                }
                if nt.warm_epochs > MAX_ITERATIONS {
                    return bad(
                        "warm_epochs",
                        nt.warm_epochs as f64,
                        "must be at most MAX_ITERATIONS",
                    );
                }
                if !(nt.tolerance.is_finite() && nt.tolerance > 0.0) {
                    return bad("tolerance", nt.tolerance, "must be positive and finite");
                }
            }
            Solver::Lbfgs(l) => {
                if !self.loss.is_smooth() {
                    return Err(LinearError::NonSmoothLoss { loss: self.loss.name() });
                }
                match self.reg {
                    Regularizer::None | Regularizer::L2(_) => {}
                    Regularizer::L1(_) => {
                        return Err(LinearError::UnsupportedRegularizer { reg: "l1" });
                    }
                    Regularizer::ElasticNet { .. } => {
                        return Err(LinearError::UnsupportedRegularizer { reg: "elastic net" });
                    }
                }
                if l.max_iterations == 0 || l.max_iterations > MAX_ITERATIONS {
                    return bad(
                        "max_iterations",
                        l.max_iterations as f64,
                        "must be 1 to MAX_ITERATIONS",
                    );
                }
                if !(l.tolerance.is_finite() && l.tolerance >= 0.0) {
                    return bad("tolerance", l.tolerance, "must be non-negative and finite");
                }
                if !(l.objective_tolerance.is_finite() && l.objective_tolerance >= 0.0) {
                    return bad(
                        "objective_tolerance",
                        l.objective_tolerance,
                        "must be non-negative and finite",
                    );
                }
                if l.memory == 0 || l.memory > 1000 {
                    return bad("memory", l.memory as f64, "must be 1 to 1000");
                }
            }
        }
        self.validate_model()
    }

    fn validate_sgd(s: &Sgd) -> Result<(), LinearError> {
        let bad =
            |name, value: f64, reason| Err(LinearError::InvalidParameter { name, value, reason });
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
        Ok(())
    }

    fn validate_model(&self) -> Result<(), LinearError> {
        let bad =
            |name, value: f64, reason| Err(LinearError::InvalidParameter { name, value, reason });
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
            Loss::Svm { margin }
            | Loss::SquaredHinge { margin }
            | Loss::OvaSquaredHinge { margin }
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
    let Values::Pixels(pixels) = train.dataset().values() else {
        return Vec::new();
    };
    let sums = idx
        .par_chunks(chunk)
        .map(|rows| {
            // u32 partial sums (1,024 rows x 255 < 2^32) vectorise; u64 across chunks
            let mut s32 = vec![0u32; d];
            for &r in rows {
                for (a, &x) in s32.iter_mut().zip(pixels.row(r)) {
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

/// The mean of f32 feature rows (f64 sums, in row order: the same bits at any thread count).
fn mean_features(rows: Rows<'_, f32>) -> Vec<f32> {
    rows.column_means().into_iter().map(|m| m as f32).collect()
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
/// `out.db`, through the same parts and kernels as training (without the step).
#[cfg(test)]
pub(crate) fn batch_loss_grad(
    p: &Problem<'_>,
    rows: &[&[u8]],
    labels: &[u32],
    w: &[f32],
    b: &[f32],
    out: &mut Buffers<'_>,
) -> Result<(f32, f64), LinearError> {
    use crate::sgd::{combine, grad_of, int_grad};
    let (c, d, m) = (p.n_classes, p.pre.scale.len(), rows.len());
    let mut parts: Vec<Part> = part_bounds(d)
        .into_iter()
        .map(|kr| Part::new(p, kr, w, m, false))
        .collect::<Result<_, _>>()?;
    for part in &mut parts {
        part.forward(p, rows)?;
    }
    let partials: Vec<&[f32]> = parts.iter().map(|pt| &pt.partial[..m * c]).collect();
    combine(&partials, b, out.scores);
    let data = p.loss.loss_grad_into(out.scores, c, labels, out.dscores)?;
    let int = int_grad(p, out.dscores, m);
    let mut reg = 0.0f64;
    for part in &mut parts {
        reg += part.backward_update(p, rows, &[], out.dscores, grad_of(int.as_ref()), None)?;
        part.grad_into(out.dw, d);
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
        let s = match self.solver {
            Solver::Sgd(s) => s,
            Solver::Lbfgs(l) => return self.fit_lbfgs(train, &l),
            Solver::Dcd(dcd) => return self.fit_dcd(train, &SvmSolver::Dcd(dcd)),
            Solver::Newton(nt) => return self.fit_dcd(train, &SvmSolver::Newton(nt)),
        };
        let kernel = KernelKind::detect().map_err(imgclass_linalg::gemm::GemmError::from)?;
        let (n, d) = (train.len(), train.dim());
        let bs = s.batch_size.min(n);
        let iterations = match s.stop {
            Stop::Iterations(t) => Some(t),
            Stop::Epochs(e) => e.checked_mul(n.div_ceil(bs)),
        }
        .filter(|&t| t <= MAX_ITERATIONS)
        .ok_or(LinearError::TooManyIterations {
            stop: s.stop,
            n_train: n,
            max: MAX_ITERATIONS,
        })?;
        let mean = match train.values() {
            Values::Pixels(_) => mean_image(train),
            Values::Features(rows) => mean_features(rows),
        };
        let scale = vec![self.input_scale; d];
        let offset: Vec<f32> = mean.iter().map(|m| -m * self.input_scale).collect();
        let pre = Affine { scale: &scale, offset: &offset };

        let root = SplitMix64::new(s.seed);
        let mut init = root.fork(1);
        let mut w: Vec<f32> =
            (0..c * d).map(|_| (init.next_normal() * self.init_std) as f32).collect();
        let mut report = TrainingReport::with_capacity(iterations);
        let started = std::time::Instant::now();
        let run = Run {
            p: Problem { loss: self.loss, reg: self.reg, kernel, pre, n_classes: c },
            iterations,
            batch_size: bs,
            momentum: s.momentum,
            fit_bias: self.fit_bias,
            divergence_factor: self.divergence_factor,
        };
        if let Values::Features(rows) = train.values() {
            // the general path: f32 rows, general products (see `dense.rs`)
            let batches = Batches::positions(root.fork(2), train, s.learning_rate, s.decay);
            let done = crate::dense::train_dense(&run, rows, &mut w, batches, &mut report)?;
            if w.iter().chain(&done.b).any(|v| !v.is_finite()) {
                return Err(LinearError::Diverged { iteration: iterations, loss: f64::NAN });
            }
            let epochs = done.epochs_done as f64 + done.pos as f64 / n as f64;
            let secs = started.elapsed().as_secs_f64();
            report.finish(iterations, epochs, done.lr, "f32", secs);
            report.solver = "sgd";
            report.stop_reason = Some(StopReason::MaxIterations);
            return Ok(LinearModel::new(
                w,
                done.b,
                mean,
                self.input_scale,
                train.shape(),
                c,
                self.loss,
                report,
            ));
        }
        let batches = Batches::new(root.fork(2), train, s.learning_rate, s.decay);
        // `W` in its fixed feature parts, each packed for the forward pass and repacked block
        // by block by its own updates
        let mut parts: Vec<Part> = part_bounds(d)
            .into_iter()
            .map(|kr| Part::new(&run.p, kr, &w, bs, s.momentum > 0.0))
            .collect::<Result<_, _>>()?;
        let threads = match self.threads {
            0 => rayon::current_num_threads(),
            t => t,
        };
        let done =
            crate::sgd::train(&run, &mut parts, vec![0.0f32; c], batches, threads, &mut report)?;
        for part in &parts {
            part.write_into(&mut w, d);
        }
        let b = done.b;
        let (epochs_done, pos) = (done.batches.epochs_done, done.batches.pos);
        if let Some(index) = w.iter().chain(&b).position(|v| !v.is_finite()) {
            tracing::warn!(index, "non-finite weight after training");
            return Err(LinearError::Diverged { iteration: iterations, loss: f64::NAN });
        }
        report.finish(
            iterations,
            epochs_done as f64 + pos as f64 / n as f64,
            done.lr,
            kernel.name(),
            started.elapsed().as_secs_f64(),
        );
        report.solver = "sgd";
        report.stop_reason = Some(StopReason::MaxIterations);
        tracing::debug!(
            loss = self.loss.name(),
            iterations,
            threads = threads.min(parts.len()),
            seconds = report.train_seconds,
            final_loss = report.loss.last().copied(),
            "linear classifier trained"
        );
        Ok(LinearModel::new(w, b, mean, self.input_scale, train.shape(), c, self.loss, report))
    }
}

impl Linear {
    /// The training rows of a full-batch solver: the mean `μ` (image or feature), the rows,
    /// and the offset `−μ·s` of `x̃ = x·s − μ·s`.
    fn full_batch_rows<'a>(&self, train: &'a Subset) -> (Vec<f32>, Data<'a>, Vec<f32>) {
        let (mean, x) = match train.values() {
            Values::Pixels(px) => (mean_image(train), Data::Pixels(px)),
            Values::Features(rows) => (mean_features(rows), Data::Features(rows)),
        };
        let offset: Vec<f32> = mean.iter().map(|m| -m * self.input_scale).collect();
        (mean, x, offset)
    }

    /// The one-vs-all L2-SVM by dual coordinate descent (`dcd.rs`) or finite Newton
    /// (`newton.rs`). A margin `m` other than 1 is the margin-1 problem scaled: `W_m = m·W_1`.
    fn fit_dcd(&self, train: &Subset, cfg: &SvmSolver) -> Result<LinearModel, LinearError> {
        let c = train.n_classes();
        let started = std::time::Instant::now();
        let (mean, x, offset) = self.full_batch_rows(train);
        let labels = train.labels();
        let rows = crate::dcd::Rows {
            x,
            labels: &labels,
            scale: self.input_scale,
            offset: &offset,
            n_classes: c,
            bias: if self.fit_bias { 1.0 } else { 0.0 },
        };
        let margin = match self.loss {
            Loss::OvaSquaredHinge { margin } => margin,
            _ => 1.0,
        };
        let lambda = self.reg.coefficients().0;
        let (out, solver, mut report) = match cfg {
            SvmSolver::Dcd(cfg) => {
                let mut report = TrainingReport::with_capacity(cfg.max_epochs.min(1 << 16));
                (crate::dcd::solve(&rows, lambda, cfg, &mut report)?, "dcd", report)
            }
            SvmSolver::Newton(cfg) => {
                let mut report = TrainingReport::with_capacity(cfg.warm_epochs.min(1 << 16) + 64);
                (crate::newton::solve(&rows, lambda, cfg, &mut report)?, "newton", report)
            }
        };
        let w: Vec<f32> = out.w.iter().map(|&v| (v * margin) as f32).collect();
        let b: Vec<f32> = out.b.iter().map(|&v| (v * margin) as f32).collect();
        report.finish(out.epochs, out.epochs as f64, 0.0, "f64", 0.0);
        report.solver = solver;
        report.stop_reason = Some(out.stop);
        report.gradient_norm = Some(out.spread);
        report.objective = Some(out.objective * margin * margin);
        report.train_seconds = started.elapsed().as_secs_f64();
        tracing::debug!(
            epochs = out.epochs,
            stop = %out.stop,
            spread = out.spread,
            objective = out.objective,
            seconds = report.train_seconds,
            solver,
            "linear classifier trained (one-vs-all L2-SVM)"
        );
        Ok(LinearModel::new(w, b, mean, self.input_scale, train.shape(), c, self.loss, report))
    }

    /// The full-batch fit: L-BFGS on the whole objective (see `lbfgs.rs`).
    fn fit_lbfgs(&self, train: &Subset, cfg: &Lbfgs) -> Result<LinearModel, LinearError> {
        let c = train.n_classes();
        let d = train.dim();
        let started = std::time::Instant::now();
        let (mean, x, offset) = self.full_batch_rows(train);
        let labels = train.labels();
        let obj = Objective {
            x,
            labels: &labels,
            scale: self.input_scale,
            offset: &offset,
            loss: self.loss,
            l2: self.reg.coefficients().0,
            n_classes: c,
            fit_bias: self.fit_bias,
            pool: Default::default(),
        };
        let mut report = TrainingReport::with_capacity(cfg.max_iterations.min(1 << 16));
        let out = crate::lbfgs::minimize(&obj, cfg, &mut report)?;
        let w: Vec<f32> = out.theta[..c * d].iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = out.theta[c * d..].iter().map(|&v| v as f32).collect();
        report.finish(out.iterations, out.iterations as f64, 0.0, "f32", 0.0);
        report.solver = "lbfgs";
        report.stop_reason = Some(out.stop);
        report.gradient_norm = Some(out.grad_max);
        report.objective = Some(out.objective);
        report.evaluations = out.evaluations;
        report.train_seconds = started.elapsed().as_secs_f64();
        tracing::debug!(
            loss = self.loss.name(),
            iterations = out.iterations,
            evaluations = out.evaluations,
            stop = %out.stop,
            gradient = out.grad_max,
            objective = out.objective,
            seconds = report.train_seconds,
            "linear classifier trained (l-bfgs)"
        );
        Ok(LinearModel::new(w, b, mean, self.input_scale, train.shape(), c, self.loss, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sgd::{Grad, IntGrad, int_grad, l2_step};
    use imgclass_linalg::gemm::{gemm_nt_u8_with, i8u8_is_simd};
    use imgclass_loss::{LossError, check_gradient};

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
                    for kernel in KernelKind::available() {
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
    fn fused_l2_step_matches_add_grad_then_the_update_on_every_kernel() {
        let mut g = SplitMix64::new(5);
        for len in [0usize, 1, 15, 16, 17, 256, 300] {
            let mut w: Vec<f32> = (0..len).map(|_| (g.next_normal() * 0.01) as f32).collect();
            if len > 2 {
                // extremes: a huge weight, a subnormal, a negative zero
                (w[0], w[1], w[2]) = (1.5e19, 1e-40, -0.0);
            }
            let dw: Vec<f32> = (0..len).map(|_| (g.next_normal() * 0.1) as f32).collect();
            let (lam, lr) = (2.5e4, 1e-7f32);
            // oracle: the regulariser's own gradient and penalty, then the plain SGD step
            let (mut w_ref, mut g_ref) = (w.clone(), dw.clone());
            let pen_ref = Regularizer::L2(lam).add_grad(&w_ref, &mut g_ref).expect("finite");
            w_ref.iter_mut().zip(&g_ref).for_each(|(wi, gi)| *wi -= lr * gi);
            let mut pens = Vec::new();
            for kernel in KernelKind::available() {
                let (mut w2, mut g2) = (w.clone(), dw.clone());
                let pen = l2_step(kernel, lam, lr, &mut w2, &mut g2).expect("finite");
                assert_eq!(g2, g_ref, "len {len} {kernel:?}");
                assert_eq!(w2, w_ref, "len {len} {kernel:?}");
                // squares summed in f32 lanes: relative error a few f32 ulps
                assert!(
                    (pen - pen_ref).abs() <= 1e-6 * pen_ref.abs() + 1e-300,
                    "{pen} vs {pen_ref}"
                );
                pens.push(pen.to_bits());
            }
            // the portable and the AVX-512 builds: the same bits
            assert!(pens.windows(2).all(|p| p[0] == p[1]), "len {len}");
        }
        for kernel in KernelKind::available() {
            let mut bad = vec![1.0f32, f32::NAN, 2.0];
            let mut gb = vec![0.0f32; 3];
            assert!(matches!(
                l2_step(kernel, 1.0, 0.1, &mut bad, &mut gb),
                Err(LinearError::Loss(LossError::NonFinite { what: "weights", index: 1 }))
            ));
        }
    }

    /// A batch for the split-iteration tests: every fifth row all 255, every fifth with zeros on
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

    /// The whole-batch f32 forward on the unsplit `W` (`gemm_nt_u8_with`), then the loss:
    /// the path the split iteration replaced, kept as a second opinion on its scores.
    fn whole_batch_scores_grad(
        p: &Problem<'_>,
        rows: &[&[u8]],
        labels: &[u32],
        w: &[f32],
        b: &[f32],
    ) -> (Vec<f32>, Vec<f32>, f32) {
        let c = p.n_classes;
        let mut scores = vec![0.0f32; rows.len() * c];
        gemm_nt_u8_with(p.kernel, rows, p.pre, w, c, &mut scores).expect("valid");
        for srow in scores.chunks_exact_mut(c) {
            srow.iter_mut().zip(b).for_each(|(s, bj)| *s += bj);
        }
        let mut ds = vec![0.0f32; scores.len()];
        let loss = p.loss.loss_grad_into(&scores, c, labels, &mut ds).expect("finite");
        (scores, ds, loss)
    }

    /// `dW` of one part's backward pass on `ds` with the given gradient kind (no step), as a
    /// row-major `c x d` matrix over all the parts.
    fn backward_only(
        p: &Problem<'_>,
        rows: &[&[u8]],
        w: &[f32],
        ds: &[f32],
        grad: impl Fn() -> Option<IntGrad>,
    ) -> (Vec<f32>, f64) {
        let (c, d, m) = (p.n_classes, p.pre.scale.len(), rows.len());
        let mut dw = vec![0.0f32; c * d];
        let mut reg = 0.0;
        for kr in part_bounds(d) {
            let mut part = Part::new(p, kr, w, m, false).expect("packs");
            let ig = grad();
            let g = ig.as_ref().map_or(Grad::F32, Grad::Int);
            reg += part.backward_update(p, rows, &[], ds, g, None).expect("valid");
            part.grad_into(&mut dw, d);
        }
        (dw, reg)
    }

    #[test]
    fn parts_split_the_features_on_64_boundaries_and_cover_them() {
        assert_eq!(part_bounds(0), vec![(0, 0)]);
        assert_eq!(part_bounds(127), vec![(0, 127)]);
        assert_eq!(part_bounds(128), vec![(0, 64), (64, 128)]);
        assert_eq!(part_bounds(300), vec![(0, 128), (128, 300)]);
        assert_eq!(part_bounds(3072), vec![(0, 1536), (1536, 3072)]);
    }

    #[test]
    fn svm_integer_backward_agrees_with_the_f32_product() {
        // the exact integer path (AVX-512 VNNI) against the f32 path on the same batch, over
        // both feature parts
        let (n, d, c) = (203, 300, 10);
        let mut g = SplitMix64::new(11);
        let rows: Vec<Vec<u8>> =
            (0..n).map(|_| (0..d).map(|_| g.below(256) as u8).collect()).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % c as u32).collect();
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let scale = vec![1.0f32; d];
        let offset: Vec<f32> = (0..d).map(|k| -120.0 - (k % 7) as f32).collect();
        let w: Vec<f32> = (0..c * d).map(|_| (g.next_normal() * 1e-3) as f32).collect();
        for kernel in KernelKind::available() {
            let p = Problem {
                loss: Loss::Svm { margin: 1.0 },
                reg: Regularizer::None,
                kernel,
                pre: Affine { scale: &scale, offset: &offset },
                n_classes: c,
            };
            let (_, ds, _) = whole_batch_scores_grad(&p, &row_refs, &labels, &w, &vec![0.0; c]);
            assert_eq!(int_grad(&p, &ds, n).is_some(), i8u8_is_simd(kernel), "{kernel:?}");
            if !i8u8_is_simd(kernel) {
                continue;
            }
            let (exact, _) = backward_only(&p, &row_refs, &w, &ds, || int_grad(&p, &ds, n));
            let (float, _) = backward_only(&p, &row_refs, &w, &ds, || None);
            // the f32 product's own error bound: 1e-5 of Σ_i |dS_ij x̃_ik| per entry
            for (idx, (a, b)) in exact.iter().zip(&float).enumerate() {
                let (j, k) = (idx / d, idx % d);
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

    /// What [`batch_loss_grad`] returns and writes, in owned buffers.
    struct Evaluated {
        data: f32,
        reg: f64,
        sc: Vec<f32>,
        ds: Vec<f32>,
        dw: Vec<f32>,
        db: Vec<f32>,
    }

    /// [`batch_loss_grad`] on fresh buffers.
    fn evaluate(
        p: &Problem<'_>,
        rows: &[&[u8]],
        labels: &[u32],
        w: &[f32],
        b: &[f32],
    ) -> Evaluated {
        let (n, c, d) = (rows.len(), p.n_classes, p.pre.scale.len());
        let (mut sc, mut ds, mut dw, mut db) =
            (vec![0.0; n * c], vec![0.0; n * c], vec![0.0; c * d], vec![0.0; c]);
        let mut out = Buffers { scores: &mut sc, dscores: &mut ds, dw: &mut dw, db: &mut db };
        let (data, reg) = batch_loss_grad(p, rows, labels, w, b, &mut out).expect("valid");
        Evaluated { data, reg, sc, ds, dw, db }
    }

    /// The split iteration's scores, loss, `dS` and `dW` (over both feature parts) against the
    /// f64 naive product and the whole-batch path, for `loss` on every kernel.
    fn split_iteration_matches_f64(loss: Loss, n: usize, c: usize, seed: u64, w_std: f64) {
        let d = 300;
        let Batch { rows, labels, scale, offset, w, b } = adversarial_batch(n, d, c, seed, w_std);
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let pre = Affine { scale: &scale, offset: &offset };
        let lam = 0.3;
        for kernel in KernelKind::available() {
            let p = Problem { loss, reg: Regularizer::L2(lam), kernel, pre, n_classes: c };
            let Evaluated { data, reg, sc, ds, dw, db } = evaluate(&p, &row_refs, &labels, &w, &b);
            // scores: f64 oracle; the bound is f32 rounding of the two parts' uncentred
            // sums (the kernels' own tested bound) and of their sum with b
            for i in 0..n {
                for j in 0..c {
                    let (mut want, mut mag) = (f64::from(b[j]), f64::from(b[j]).abs());
                    for k in 0..d {
                        let wk = f64::from(w[j * d + k]);
                        want += (f64::from(rows[i][k]) + f64::from(offset[k])) * wk;
                        mag += (f64::from(rows[i][k]) + f64::from(offset[k]).abs()) * wk.abs();
                    }
                    let got = f64::from(sc[i * c + j]);
                    assert!(
                        (got - want).abs() <= 1e-5 * mag,
                        "{loss:?} {kernel:?} s[{i},{j}] {got} vs {want}"
                    );
                }
            }
            // the loss and dS of these scores are the loss function's own (tested in
            // imgclass-loss); the whole-batch path agrees within the scores' rounding
            let (sc_ref, _, data_ref) = whole_batch_scores_grad(&p, &row_refs, &labels, &w, &b);
            let smag = sc_ref.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            assert!((data - data_ref).abs() <= 1e-4 * smag, "{loss:?} {kernel:?}");
            // R(W) = λ Σ w², squares summed in f32 lanes per block and part
            let reg_ref: f64 = lam * w.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
            assert!((reg - reg_ref).abs() <= 1e-6 * reg_ref, "{loss:?} {kernel:?}");
            // dW: the f64 oracle on the iteration's own dS, plus 2λW
            for (idx, &got) in dw.iter().enumerate() {
                let (j, k) = (idx / d, idx % d);
                let (mut want, mut mag) = (0.0f64, 0.0f64);
                for i in 0..n {
                    let t =
                        f64::from(ds[i * c + j]) * (f64::from(rows[i][k]) + f64::from(offset[k]));
                    want += t;
                    mag += t.abs();
                }
                let reg_grad = f64::from((2.0 * lam) as f32 * w[j * d + k]);
                let want = want + reg_grad;
                let bound =
                    1e-5 * mag + 2.0 * f64::from(f32::EPSILON) * (want.abs() + reg_grad.abs());
                assert!(
                    (f64::from(got) - want).abs() <= bound,
                    "{loss:?} {kernel:?} dW[{j},{k}] {got} vs {want}"
                );
            }
            let db_ref: Vec<f32> =
                (0..c).map(|j| (0..n).map(|i| ds[i * c + j]).sum::<f32>()).collect();
            assert_eq!(db, db_ref, "{loss:?} {kernel:?}");
        }
    }

    #[test]
    fn split_svm_iteration_matches_f64() {
        split_iteration_matches_f64(Loss::Svm { margin: 1.0 }, 130, 10, 31, 1e-3);
    }

    #[test]
    fn split_softmax_iteration_matches_f64() {
        split_iteration_matches_f64(Loss::Softmax, 203, 10, 47, 2e-3);
    }

    #[test]
    fn split_squared_hinge_iteration_matches_f64() {
        split_iteration_matches_f64(Loss::SquaredHinge { margin: 1.0 }, 64, 10, 53, 1e-3);
    }

    #[test]
    fn svm_falls_back_to_f32_when_n_ds_leaves_i8() {
        // 130 classes, all margins violated (W = 0): N·dS of the label is −129, outside i8;
        // the integer gradient does not apply and the iteration still matches f64
        let kernel = KernelKind::Avx512;
        let (n, d, c) = (12, 64, 130);
        let rows: Vec<Vec<u8>> = (0..n).map(|i| vec![(i * 20) as u8; d]).collect();
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| i * 11 % c as u32).collect();
        let (scale, offset) = (vec![1.0f32; d], vec![-100.0f32; d]);
        let pre = Affine { scale: &scale, offset: &offset };
        let p = Problem {
            loss: Loss::Svm { margin: 1.0 },
            reg: Regularizer::None,
            kernel: if kernel.is_available() { kernel } else { KernelKind::Scalar },
            pre,
            n_classes: c,
        };
        let (w, b) = (vec![0.0f32; c * d], vec![0.0f32; c]);
        let Evaluated { data: loss, ds, dw, .. } = evaluate(&p, &row_refs, &labels, &w, &b);
        assert!(int_grad(&p, &ds, n).is_none());
        assert_eq!(loss, 129.0);
        // dW_jk = (1/N) Σ_i N·dS_ij (x_ik − 100), N·dS ∈ {1, −129}
        for j in 0..c {
            for k in 0..d {
                let want: f64 = (0..n)
                    .map(|i| {
                        let g = if labels[i] as usize == j { -129.0 } else { 1.0 };
                        g * (f64::from(rows[i][k]) - 100.0)
                    })
                    .sum::<f64>()
                    / n as f64;
                let got = f64::from(dw[j * d + k]);
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "[{j},{k}] {got} vs {want}"
                );
            }
        }
    }
}
