//! Linear classifiers for imgclass: scores `f(x) = W x̃ + b` on mean-subtracted rows (raw u8
//! pixels or f32 features, through the same API), trained by minibatch SGD on the multiclass
//! SVM or softmax loss with L2/L1/elastic-net regularisation, or by the full-batch L-BFGS
//! solver ([`Solver::Lbfgs`], module [`lbfgs`]) on a differentiable loss with L2.
//!
//! ```text
//! x̃ = (x − μ) · s                  μ: the mean training image, s: an optional scale (1)
//! S = X̃ Wᵀ + b                     W: C x D, b: C
//! L = (1/B) Σ_i L_i(S_i, y_i) + R(W)
//! dW = dSᵀ X̃ + ∂R/∂W,  db = Σ_i dS_i
//! W ← W − η dW  (or with momentum μ_m: v ← μ_m v − η dW, W ← W + v), η ← η·decay per epoch
//! ```
//!
//! On f32 features the passes are general products (`linalg::gemm::sgemm`, see `dense.rs`).
//! On raw pixels, the forward and backward passes are the fused u8 products of
//! [`imgclass_linalg::gemm`]: a
//! minibatch is a list of row slices into the shared dataset, never materialised as f32 (the
//! SVM's exact integer backward pass copies it as bytes, interleaved 4 rows by 4). With
//! AVX-512 VNNI the forward product is exact in integers on `W'` quantised per class to
//! 24-bit fixed point (`NtPackedI8`; error at most half a quantum, `2^-23` of the class's
//! largest weight, per unit of pixel sum), elsewhere f32. One SGD iteration is split by features into two fixed halves
//! (`W = [W₀ W₁]`), each owned by one thread for the whole fit: its partial scores
//! `X̃_h W_hᵀ`, then (after the two threads swap those `B x C` partial scores and both
//! compute the loss and `dS`) its backward product, regulariser and update, block by block
//! of 256 features, while its columns of the next minibatch are prefetched. The split is
//! fixed by `D`, so a fit has the same bits on one thread or two ([`Linear::threads`]).
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, Fit, ImageShape, Predict};
//! use imgclass_linear::{Linear, Loss, Reg, Sgd, Stop};
//!
//! // two 1x1x2 "images" per class: class 0 bright in channel 0, class 1 in channel 1
//! let ds = Dataset::new(
//!     vec![200, 10, 220, 30, 20, 210, 5, 240],
//!     vec![0, 0, 1, 1],
//!     ImageShape::new(2, 1, 1),
//!     ClassNames::new(["red", "green"]),
//! )?;
//! let model = Linear::new(Loss::Softmax)
//!     .regularization(Reg::L2(1e-4))
//!     .sgd(Sgd { batch_size: 4, learning_rate: 1e-3, stop: Stop::Iterations(200), ..Sgd::default() })
//!     .fit(&ds.all())?;
//! assert_eq!(model.predict(&ds.all())?, vec![0, 0, 1, 1]);
//! let p = model.predict_proba(&ds.all())?;
//! // rows of probabilities, 2 per image: image 0 is "red", image 3 is "green"
//! assert!(p[0] > 0.5 && p[7] > 0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod dcd;
mod dense;
pub mod lbfgs;
mod model;
pub mod newton;
mod parts;
mod sgd;
mod train;

pub use dcd::Dcd;
pub use imgclass_loss::{Loss, Regularizer as Reg};
pub use lbfgs::{Lbfgs, StopReason};
pub use model::{LinearModel, TrainingReport};
pub use newton::Newton;
pub use train::{Linear, MAX_ITERATIONS, Sgd, Solver, Stop};

use imgclass_linalg::gemm::GemmError;
use imgclass_loss::LossError;

/// Why fitting or using a linear classifier failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinearError {
    /// The training set has no rows.
    #[error("the training set is empty")]
    EmptyTrainingSet,
    /// A classifier needs at least two classes.
    #[error("need at least 2 classes, found {n_classes}")]
    TooFewClasses {
        /// Number of classes in the training set.
        n_classes: usize,
    },
    /// A hyperparameter is NaN, infinite or out of its range.
    #[error("parameter {name} = {value} is invalid: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        reason: &'static str,
    },
    /// The stop rule means more SGD updates than [`MAX_ITERATIONS`] (each keeps a point of the
    /// loss curve, so the bound is also one on memory).
    #[error("{stop} on {n_train} training rows means more than the {max} sgd iterations allowed")]
    TooManyIterations {
        /// The stop rule asked for.
        stop: Stop,
        /// Training rows (an epoch is `ceil(n_train / batch_size)` iterations).
        n_train: usize,
        /// [`MAX_ITERATIONS`].
        max: usize,
    },
    /// Training diverged: the loss became non-finite or grew past the divergence limit.
    /// Its message counts iterations from 1, as a person does.
    #[error(
        "training diverged at iteration {} (loss {loss}); lower the learning rate",
        .iteration + 1
    )]
    Diverged {
        /// The iteration (0-based) where it was detected.
        iteration: usize,
        /// The loss at that iteration (may be NaN or infinite).
        loss: f64,
    },
    /// The full-batch solver was given a loss without a gradient everywhere.
    #[error(
        "the full-batch solver needs a differentiable loss, not {loss}: use sgd, squared_hinge or ova_squared_hinge"
    )]
    NonSmoothLoss {
        /// The loss's short name.
        loss: &'static str,
    },
    /// The full-batch solver was given a regulariser it does not support.
    #[error(
        "the full-batch solver takes no regularisation or l2, not {reg}: use sgd for l1 and elastic net"
    )]
    UnsupportedRegularizer {
        /// The regulariser's name.
        reg: &'static str,
    },
    /// The dual coordinate descent or Newton solver was given a loss or regulariser it does not
    /// train.
    #[error(
        "the dcd and newton solvers train ova_squared_hinge with l2 of a positive lambda \
         only, not {what}: use lbfgs or sgd"
    )]
    DcdUnsupported {
        /// The loss or regulariser given.
        what: String,
    },
    /// Input rows do not have the model's feature count.
    #[error("input has {found} features per row, the model expects {expected}")]
    ShapeMismatch {
        /// The model's feature count.
        expected: usize,
        /// The input's.
        found: usize,
    },
    /// Input images have another shape than the model's (compared by value, not by byte
    /// count).
    #[error(transparent)]
    ImageShape(#[from] imgclass_core::ShapeMismatch),
    /// A loss or regulariser rejected its input.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// A matrix product rejected its input.
    #[error(transparent)]
    Gemm(#[from] GemmError),
}
