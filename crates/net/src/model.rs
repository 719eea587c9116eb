//! [`NetModel`]: the fitted weights with the training preprocessing, and the [`NetReport`] of
//! the run that produced them.

use imgclass_core::{Label, Predict, RowShape, Subset, argmax_label};
use imgclass_loss::{Loss, softmax_rows};

use crate::NetError;
use crate::grad::{Dims, Params, forward};

/// Per-iteration loss and per-epoch accuracies of one training run.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct NetReport {
    /// Minibatch loss (data + regularisation) per iteration.
    pub loss: Vec<f32>,
    /// Accuracy on (a sample of up to 2,000 of) the training rows after each epoch.
    pub train_accuracy: Vec<f64>,
    /// Accuracy on the validation split after each epoch (empty without one).
    pub val_accuracy: Vec<f64>,
    /// The epoch whose weights were kept (the best validation accuracy, or the last).
    pub best_epoch: usize,
    /// Epochs run (fewer than asked when early stopping stopped the run).
    pub epochs: usize,
    /// Wall-clock seconds of training (not deterministic).
    pub train_seconds: f64,
}

/// A fitted two-layer network: `scores(x) = W2 max(0, W1 ((x − μ) s) + b1) + b2`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetModel {
    pub(crate) p: Params<f32>,
    pub(crate) dims: Dims,
    pub(crate) mean: Vec<f32>,
    pub(crate) scale: f32,
    pub(crate) shape: RowShape,
    pub(crate) loss: Loss,
    pub(crate) report: NetReport,
}

impl NetModel {
    /// A network from its parts: `w1` `h x d`, `b1` `h`, `w2` `c x h`, `b2` `c` (row-major),
    /// the training mean (`d`) and input scale; every length and value is checked.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        w1: Vec<f32>,
        b1: Vec<f32>,
        w2: Vec<f32>,
        b2: Vec<f32>,
        mean: Vec<f32>,
        scale: f32,
        shape: RowShape,
        loss: Loss,
    ) -> Result<Self, NetError> {
        let (d, h, c) = (shape.dim(), b1.len(), b2.len());
        let bad = |what: &str| Err(NetError::Parts(what.to_string()));
        if c < 2 || h == 0 || d == 0 {
            return bad("need at least 2 classes, 1 hidden unit and 1 input");
        }
        if w1.len() != h * d || w2.len() != c * h || mean.len() != d {
            return bad("array lengths do not match the layer sizes");
        }
        if !(scale.is_finite() && scale != 0.0)
            || w1.iter().chain(&b1).chain(&w2).chain(&b2).chain(&mean).any(|v| !v.is_finite())
        {
            return bad("non-finite values");
        }
        Ok(Self {
            p: Params { w1, b1, w2, b2 },
            dims: Dims { d, h, c },
            mean,
            scale,
            shape,
            loss,
            report: NetReport::default(),
        })
    }

    /// `W1`, row-major `h x d` (row `j`: hidden unit `j`'s weights, in the input's order).
    pub fn w1(&self) -> &[f32] {
        &self.p.w1
    }
    /// `b1` (`h`).
    pub fn b1(&self) -> &[f32] {
        &self.p.b1
    }
    /// `W2`, row-major `c x h`.
    pub fn w2(&self) -> &[f32] {
        &self.p.w2
    }
    /// `b2` (`c`).
    pub fn b2(&self) -> &[f32] {
        &self.p.b2
    }
    /// The training mean subtracted from every input.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }
    /// The scale applied after mean subtraction.
    pub fn input_scale(&self) -> f32 {
        self.scale
    }
    /// Hidden units.
    pub fn hidden(&self) -> usize {
        self.dims.h
    }
    /// What the network takes.
    pub fn shape(&self) -> RowShape {
        self.shape
    }
    /// The loss it was trained with.
    pub fn loss(&self) -> Loss {
        self.loss
    }
    /// The training run's curves.
    pub fn report(&self) -> &NetReport {
        &self.report
    }

    /// Class scores, row-major `x.len() x c`.
    pub fn scores(&self, x: &Subset) -> Result<Vec<f32>, NetError> {
        self.shape.expect(x.shape())?;
        let mut out = Vec::with_capacity(x.len() * self.dims.c);
        let (mut a, mut s) = (Vec::new(), Vec::new());
        let v = x.values();
        let block = 512;
        for start in (0..x.len()).step_by(block) {
            let end = (start + block).min(x.len());
            let xb = crate::train::preprocess(&v, start..end, &self.mean, self.scale);
            forward(&self.p, self.dims, &xb, None, &mut a, &mut s);
            out.extend_from_slice(&s);
        }
        Ok(out)
    }

    /// Softmax of the scores, row-major `x.len() x c`.
    pub fn predict_proba(&self, x: &Subset) -> Result<Vec<f32>, NetError> {
        let s = self.scores(x)?;
        if s.is_empty() {
            return Ok(s);
        }
        Ok(softmax_rows(&s, self.dims.c)?)
    }

    /// The first layer's weights as images (when the input is images): one row of `W1` per
    /// hidden unit, rescaled to `0..=255` with that row's own minimum and maximum.
    pub fn first_layer_images(&self) -> Vec<Vec<u8>> {
        self.p
            .w1
            .chunks_exact(self.dims.d.max(1))
            .map(|row| {
                let (lo, hi) = row
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
                let range = if hi > lo { hi - lo } else { 1.0 };
                row.iter()
                    .map(|&v| (255.0 * (v - lo) / range).round().clamp(0.0, 255.0) as u8)
                    .collect()
            })
            .collect()
    }
}

impl Predict for NetModel {
    type Error = NetError;

    fn n_classes(&self) -> usize {
        self.dims.c
    }

    fn predict(&self, x: &Subset) -> Result<Vec<Label>, NetError> {
        let s = self.scores(x)?;
        Ok(s.chunks_exact(self.dims.c).map(argmax_label).collect())
    }
}
