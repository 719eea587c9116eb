//! [`LinearModel`]: learned `W` (C x D) and `b` (C) with the training preprocessing, and the
//! [`TrainingReport`] of the training run (SGD or the full-batch solver) that produced it.

use imgclass_core::{Label, Predict, RowShape, Subset, Values, argmax_label};
use imgclass_linalg::gemm::{Affine, Op, gemm_nt_u8, sgemm};
use imgclass_loss::{Loss, softmax_rows};

use crate::LinearError;
use crate::lbfgs::StopReason;

/// The loss curve of one training run: one entry per iteration.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct TrainingReport {
    /// Total loss (data + regularisation) per iteration: of the minibatch for SGD, of the
    /// whole training set after each iteration for L-BFGS.
    pub loss: Vec<f32>,
    /// The data part: mean loss over the minibatch (SGD) or the training set (L-BFGS).
    pub data_loss: Vec<f32>,
    /// The regularisation part `R(W)`.
    pub reg_loss: Vec<f32>,
    /// Number of SGD updates or L-BFGS iterations.
    pub iterations: usize,
    /// The solver: `sgd`, `lbfgs` or `dcd` (empty for a model rebuilt from parts).
    pub solver: &'static str,
    /// Why training stopped (`None` for a model rebuilt from parts; SGD always runs its
    /// budget: [`StopReason::MaxIterations`]).
    pub stop_reason: Option<StopReason>,
    /// L-BFGS: the largest component of the objective's gradient at the returned weights;
    /// dual coordinate descent: the last epoch's projected-gradient spread.
    pub gradient_norm: Option<f64>,
    /// L-BFGS and dual coordinate descent: the objective `F(W, b)` over the training set at
    /// the returned weights, in f64 (dcd: without its bias penalty).
    pub objective: Option<f64>,
    /// L-BFGS: evaluations of the objective and gradient (the line searches' included).
    pub evaluations: usize,
    /// Passes over the training set (fractional).
    pub epochs: f64,
    /// The learning rate after the last decay.
    pub final_learning_rate: f64,
    /// The matrix-product kernel used (`scalar`, `avx2`, `avx512`).
    pub kernel: &'static str,
    /// Wall-clock seconds of the SGD loop (excludes the mean image; not deterministic).
    pub train_seconds: f64,
}

impl TrainingReport {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            loss: Vec::with_capacity(n),
            data_loss: Vec::with_capacity(n),
            reg_loss: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    pub(crate) fn push(&mut self, data: f32, reg: f32) {
        self.loss.push(data + reg);
        self.data_loss.push(data);
        self.reg_loss.push(reg);
    }

    pub(crate) fn finish(
        &mut self,
        iterations: usize,
        epochs: f64,
        lr: f64,
        kernel: &'static str,
        seconds: f64,
    ) {
        self.iterations = iterations;
        self.epochs = epochs;
        self.final_learning_rate = lr;
        self.kernel = kernel;
        self.train_seconds = seconds;
    }
}

/// A fitted linear classifier: `scores(x) = W ((x − μ) · s) + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    w: Vec<f32>,
    b: Vec<f32>,
    mean: Vec<f32>,
    scale: f32,
    shape: RowShape,
    n_classes: usize,
    loss: Loss,
    report: TrainingReport,
}

impl LinearModel {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        w: Vec<f32>,
        b: Vec<f32>,
        mean: Vec<f32>,
        scale: f32,
        shape: RowShape,
        n_classes: usize,
        loss: Loss,
        report: TrainingReport,
    ) -> Self {
        Self { w, b, mean, scale, shape, n_classes, loss, report }
    }

    /// The weights, row-major `C x D` (one row per class, in the image's channel-major
    /// pixel order).
    pub fn weights(&self) -> &[f32] {
        &self.w
    }

    /// The bias, one per class.
    pub fn bias(&self) -> &[f32] {
        &self.b
    }

    /// The mean training image `μ` subtracted from every input.
    pub fn mean_image(&self) -> &[f32] {
        &self.mean
    }

    /// The scale `s` applied after mean subtraction.
    pub fn input_scale(&self) -> f32 {
        self.scale
    }

    /// What the model's input rows are (images of a shape, or features of a dimension).
    pub fn shape(&self) -> RowShape {
        self.shape
    }

    /// Number of features `D`.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// The loss the model was trained with.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// The loss curve of the training run.
    pub fn report(&self) -> &TrainingReport {
        &self.report
    }

    /// Class scores, row-major `x.len() x C`.
    pub fn scores(&self, x: &Subset) -> Result<Vec<f32>, LinearError> {
        let d = self.n_features();
        self.shape.expect(x.shape())?;
        let c = self.n_classes;
        let scale = vec![self.scale; d];
        let offset: Vec<f32> = self.mean.iter().map(|m| -m * self.scale).collect();
        let mut out = vec![0.0f32; x.len() * c];
        match x.values() {
            Values::Pixels(px) => {
                let rows: Vec<&[u8]> = px.iter().collect();
                gemm_nt_u8(&rows, Affine { scale: &scale, offset: &offset }, &self.w, c, &mut out)?;
            }
            Values::Features(f) => {
                let mut xs = f.to_contiguous();
                for r in xs.chunks_exact_mut(d.max(1)) {
                    for ((v, &s), &o) in r.iter_mut().zip(&scale).zip(&offset) {
                        *v = *v * s + o;
                    }
                }
                sgemm(x.len(), c, d, 1.0, &xs, Op::N, &self.w, Op::T, 0.0, &mut out)?;
            }
        }
        for row in out.chunks_exact_mut(c) {
            row.iter_mut().zip(&self.b).for_each(|(s, b)| *s += b);
        }
        Ok(out)
    }

    /// Softmax probabilities of the scores, row-major `x.len() x C` (meaningful as
    /// probabilities for a softmax-trained model; a monotone squashing of SVM scores).
    pub fn predict_proba(&self, x: &Subset) -> Result<Vec<f32>, LinearError> {
        let s = self.scores(x)?;
        if s.is_empty() {
            return Ok(s);
        }
        Ok(softmax_rows(&s, self.n_classes)?)
    }

    /// One template image per class: `W`'s row rescaled to `0..=255` with the minimum and
    /// maximum over all of `W` (as in the CS231n notebook), in the dataset's channel-major
    /// `C x H x W` byte order.
    pub fn templates(&self) -> Vec<Vec<u8>> {
        let (lo, hi) = self
            .w
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let range = if hi > lo { hi - lo } else { 1.0 };
        self.w
            .chunks_exact(self.n_features().max(1))
            .map(|row| {
                row.iter()
                    .map(|&v| (255.0 * (v - lo) / range).round().clamp(0.0, 255.0) as u8)
                    .collect()
            })
            .collect()
    }
}

impl Predict for LinearModel {
    type Error = LinearError;

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The class of the highest score (ties toward the smaller label).
    fn predict(&self, x: &Subset) -> Result<Vec<Label>, LinearError> {
        let s = self.scores(x)?;
        let c = self.n_classes;
        Ok(s.chunks_exact(c).map(argmax_label).collect())
    }
}
