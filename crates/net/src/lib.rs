//! A two-layer neural network: the lecture's score function with one hidden layer of ReLUs,
//! `f(x) = W2 max(0, W1 x̃ + b1) + b2`, under the softmax (or SVM) loss with L2 regularisation
//! on both weight matrices, trained by minibatch SGD with momentum (optionally Nesterov),
//! learning-rate decay per epoch, optional dropout on the hidden layer and early stopping on
//! a validation split. It fits and predicts through the same `Fit`/`Predict` API as every
//! classifier, on u8 images or f32 features.
//!
//! ```text
//! x̃ = (x − μ) · s                     μ: training mean, s: input scale
//! A = max(0, X̃ W1ᵀ + b1)              W1: h x d   (He init: N(0, 2/d))
//! S = A W2ᵀ + b2                       W2: c x h   (He init: N(0, 2/h)), biases 0
//! L = mean_i L_i(S_i, y_i) + λ (‖W1‖² + ‖W2‖²)
//! v ← μ_m v − η ∇L,  θ ← θ + v         (Nesterov: θ ← θ + μ_m v − η ∇L with the new v)
//! ```
//!
//! Products are `imgclass_linalg::gemm::gemm`, the general f32/f64 product of the workspace:
//! the `matrixmultiply` crate's packed AVX-512 kernels on one thread, kept over the `gemm`
//! crate by measurement (issue 16 item 3; `cargo bench -p imgclass-linalg --bench products`,
//! 2026-12-04, load 2.3-3.5, GFLOP/s `matrixmultiply` / `gemm`, one thread) on this net's
//! shapes for a half-minibatch of 100 rows and 500 hidden units: forward `X W1ᵀ` 105 / 87
//! (d = 3,072 pixels), 110 / 112 (d = 6,400 k-means features), 122 / 133 (d = 154 HOG),
//! `H W2ᵀ` 41 / 41; backward `dHᵀ X` 145 / 156 (d = 3,072), 140 / 152 (6,400), 140 / 135
//! (154), `dSᵀ H` 53 / 76, `dS W2` 77 / 98. `gemm` is 0.83-1.09x on the big products and
//! a fit was slower with it (docs/bench/net.md). Each minibatch is split into two fixed
//! halves computed in parallel and summed in order, so a fit has the same bits on any number
//! of threads.
//!
//! ```
//! use imgclass_core::{ClassNames, Dataset, Fit, Predict};
//! use imgclass_net::{Net, NetSgd};
//!
//! // XOR of the two features: not linearly separable, a hidden layer separates it
//! let x = vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
//! let ds = Dataset::from_features(x, 2, vec![0, 1, 1, 0], ClassNames::new(["same", "diff"]))?;
//! let model = Net::new(16)
//!     .sgd(NetSgd { batch_size: 4, learning_rate: 0.1, momentum: 0.9, epochs: 400, ..NetSgd::default() })
//!     .fit(&ds.all())?;
//! assert_eq!(model.predict(&ds.all())?, vec![0, 1, 1, 0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod grad;
mod model;
mod train;

pub use imgclass_loss::Loss;
pub use model::{NetModel, NetReport};
pub use train::{Init, MAX_EPOCHS, Net, NetSgd};

/// Why fitting or using a network failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetError {
    /// A hyperparameter is out of range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The training set has no rows.
    #[error("the training set is empty")]
    EmptyTrain,
    /// Fewer than two classes.
    #[error("a classifier needs at least 2 classes, found {n_classes}")]
    TooFewClasses {
        /// Classes in the training set.
        n_classes: usize,
    },
    /// The loss became NaN or infinite (learning rate too high, usually).
    /// Its message counts epochs and iterations from 1, as a person does.
    #[error(
        "training diverged in epoch {} (iteration {} overall): loss {loss}; lower the learning \
         rate",
        .epoch + 1,
        .iteration + 1
    )]
    Diverged {
        /// Epoch (from 0).
        epoch: usize,
        /// Iteration (from 0).
        iteration: usize,
        /// The loss value.
        loss: f64,
    },
    /// Rows of another shape than the network takes.
    #[error(transparent)]
    Shape(#[from] imgclass_core::ShapeMismatch),
    /// The loss rejected its input.
    #[error(transparent)]
    Loss(#[from] imgclass_loss::LossError),
    /// `IMGCLASS_KERNEL` names no kernel, or one this CPU cannot run.
    #[error(transparent)]
    Kernel(#[from] imgclass_linalg::KernelError),
    /// Parts that do not make a network (a damaged saved model).
    #[error("inconsistent network parts: {0}")]
    Parts(String),
}
