//! Losses with their gradients (multiclass SVM hinge, squared hinge, one-vs-all squared hinge,
//! softmax cross-entropy)
//! and regularisers (L2, L1, elastic net), plus a central-difference gradient checker.
//!
//! Every loss takes a batch of score rows as one row-major slice (`n x n_classes`), the
//! labels, and returns the **mean** loss over the batch together with `dL/dscores` (same
//! shape). The functions are generic over [`Float`] (`f32` for training, `f64` for gradient
//! checks). The crate depends on no image or dataset type: scores are slices plus a shape.
//!
//! ```
//! use imgclass_loss::{Loss, Regularizer};
//!
//! // two images, three classes; the lecture's cat and car columns
//! let scores = [3.2f64, 5.1, -1.7, 1.3, 4.9, 2.0];
//! let labels = [0, 1];
//! let out = Loss::Svm { margin: 1.0 }.loss_grad(&scores, 3, &labels)?;
//! assert!((out.loss - (2.9 + 0.0) / 2.0).abs() < 1e-12);
//! assert_eq!(out.grad.len(), 6);
//!
//! let w = [1.0f64, 0.0, 0.0, 0.0];
//! assert_eq!(Regularizer::L2(1.0).penalty(&w), 1.0);
//! # Ok::<(), imgclass_loss::LossError>(())
//! ```

mod float;
pub mod gradcheck;
pub mod reg;
pub mod softmax;
pub mod svm;

pub use float::Float;
pub use gradcheck::{GradCheck, REL_ERROR_FLOOR, check_gradient};
pub use reg::Regularizer;
pub use softmax::{softmax_cross_entropy, softmax_cross_entropy_into, softmax_rows};
pub use svm::{
    ova_squared_hinge, ova_squared_hinge_into, squared_hinge, squared_hinge_into, svm, svm_into,
};

/// Why a loss or regulariser could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// A buffer does not have the length its shape implies.
    #[error("{what} has {found} elements, expected {expected}")]
    ShapeMismatch {
        /// Which buffer (`scores`, `labels`, `grad`, ...).
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// The batch has no rows or the problem has no classes.
    #[error("empty input: {n_rows} rows of {n_classes} classes")]
    Empty {
        /// Number of rows.
        n_rows: usize,
        /// Number of classes.
        n_classes: usize,
    },
    /// A label is not below the number of classes.
    #[error("label {label} at row {row} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        /// The offending label.
        label: u32,
        /// Its row.
        row: usize,
        /// Number of classes.
        n_classes: usize,
    },
    /// An input value is NaN or infinite.
    #[error("{what} holds a non-finite value at index {index}")]
    NonFinite {
        /// Which input (`scores`, `weights`, `margin`, ...).
        what: &'static str,
        /// Index of the first non-finite value.
        index: usize,
    },
}

/// The data loss of a linear classifier. A grid of losses is a `Vec<Loss>`. Saved-model
/// metadata stores it as JSON tagged by a snake-case `name`: `{"name": "svm", "margin": 1.0}`,
/// `{"name": "squared_hinge", "margin": 1.0}`, `{"name": "ova_squared_hinge", "margin": 1.0}`,
/// `{"name": "softmax"}`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Loss {
    /// Multiclass SVM hinge loss with margin `Δ` (see [`mod@svm`]).
    Svm {
        /// The margin `Δ` (1.0 in the lecture).
        margin: f64,
    },
    /// Squared hinge: the SVM loss with each margin violation squared (see [`mod@svm`]).
    SquaredHinge {
        /// The margin `Δ`.
        margin: f64,
    },
    /// Softmax cross-entropy (see [`mod@softmax`]).
    Softmax,
    /// One-vs-all squared hinge (L2-SVM): for each class `j`, `max(0, Δ − t_j s_j)²` with
    /// `t_j = +1` for the label and `−1` otherwise, summed over classes (scikit-learn's
    /// `LinearSVC`; see [`mod@svm`]).
    OvaSquaredHinge {
        /// The margin `Δ` (1.0 in `LinearSVC`).
        margin: f64,
    },
}

/// A mean loss over a batch and its gradient with respect to the scores.
#[derive(Debug, Clone, PartialEq)]
pub struct LossGrad<T> {
    /// Mean loss over the batch.
    pub loss: T,
    /// `dL/dscores`, row-major `n x n_classes`, already divided by `n`.
    pub grad: Vec<T>,
}

impl Loss {
    /// Mean loss and gradient of `scores` (row-major `n x n_classes`) against `labels`.
    pub fn loss_grad<T: Float>(
        &self,
        scores: &[T],
        n_classes: usize,
        labels: &[u32],
    ) -> Result<LossGrad<T>, LossError> {
        let mut grad = vec![T::ZERO; scores.len()];
        let loss = self.loss_grad_into(scores, n_classes, labels, &mut grad)?;
        Ok(LossGrad { loss, grad })
    }

    /// Like [`Loss::loss_grad`] but writes the gradient into `grad` (overwritten, same length
    /// as `scores`) and allocates nothing: the training hot path.
    pub fn loss_grad_into<T: Float>(
        &self,
        scores: &[T],
        n_classes: usize,
        labels: &[u32],
        grad: &mut [T],
    ) -> Result<T, LossError> {
        match *self {
            Loss::Svm { margin } => svm_into(scores, n_classes, labels, T::from_f64(margin), grad),
            Loss::SquaredHinge { margin } => {
                squared_hinge_into(scores, n_classes, labels, T::from_f64(margin), grad)
            }
            Loss::Softmax => softmax_cross_entropy_into(scores, n_classes, labels, grad),
            Loss::OvaSquaredHinge { margin } => {
                ova_squared_hinge_into(scores, n_classes, labels, T::from_f64(margin), grad)
            }
        }
    }

    /// Short lowercase name (`svm`, `squared-hinge`, `softmax`, `ova-squared-hinge`) for logs
    /// and file names.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Svm { .. } => "svm",
            Loss::SquaredHinge { .. } => "squared-hinge",
            Loss::Softmax => "softmax",
            Loss::OvaSquaredHinge { .. } => "ova-squared-hinge",
        }
    }

    /// Whether the loss is differentiable everywhere in the scores (every loss but the
    /// hinge [`Loss::Svm`]): what a full-batch quasi-Newton solver needs.
    pub fn is_smooth(&self) -> bool {
        !matches!(self, Loss::Svm { .. })
    }
}

/// Checks shapes, labels and finiteness shared by every loss; returns the number of rows.
pub(crate) fn validate<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    grad_len: usize,
) -> Result<usize, LossError> {
    let n = labels.len();
    if n == 0 || n_classes == 0 {
        return Err(LossError::Empty { n_rows: n, n_classes });
    }
    if scores.len() != n * n_classes {
        return Err(LossError::ShapeMismatch {
            what: "scores",
            expected: n * n_classes,
            found: scores.len(),
        });
    }
    if grad_len != scores.len() {
        return Err(LossError::ShapeMismatch {
            what: "grad",
            expected: scores.len(),
            found: grad_len,
        });
    }
    if let Some((row, &label)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= n_classes)
    {
        return Err(LossError::LabelOutOfRange { label, row, n_classes });
    }
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(LossError::NonFinite { what: "scores", index });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_and_short_names() {
        let cases = [
            (Loss::Svm { margin: 1.0 }, r#"{"name":"svm","margin":1.0}"#, "svm"),
            (
                Loss::SquaredHinge { margin: 2.0 },
                r#"{"name":"squared_hinge","margin":2.0}"#,
                "squared-hinge",
            ),
            (Loss::Softmax, r#"{"name":"softmax"}"#, "softmax"),
            (
                Loss::OvaSquaredHinge { margin: 1.0 },
                r#"{"name":"ova_squared_hinge","margin":1.0}"#,
                "ova-squared-hinge",
            ),
        ];
        for (loss, json, name) in cases {
            assert_eq!(serde_json::to_string(&loss).expect("serialises"), json);
            assert_eq!(serde_json::from_str::<Loss>(json).expect("parses"), loss);
            assert_eq!(loss.name(), name);
        }
        assert!(!Loss::Svm { margin: 1.0 }.is_smooth());
        assert!(Loss::OvaSquaredHinge { margin: 1.0 }.is_smooth());
    }

    #[test]
    fn rejects_bad_shapes_labels_and_non_finite() {
        let l = Loss::Softmax;
        assert_eq!(
            l.loss_grad(&[1.0f64, 2.0, 3.0], 2, &[0, 1]),
            Err(LossError::ShapeMismatch { what: "scores", expected: 4, found: 3 })
        );
        assert_eq!(
            l.loss_grad(&[1.0f64, 2.0], 2, &[2]),
            Err(LossError::LabelOutOfRange { label: 2, row: 0, n_classes: 2 })
        );
        assert_eq!(
            Loss::Svm { margin: 1.0 }.loss_grad(&[1.0f32, f32::NAN], 2, &[0]),
            Err(LossError::NonFinite { what: "scores", index: 1 })
        );
        assert_eq!(
            Loss::SquaredHinge { margin: 1.0 }.loss_grad(&[f64::INFINITY, 0.0], 2, &[0]),
            Err(LossError::NonFinite { what: "scores", index: 0 })
        );
        assert_eq!(
            l.loss_grad::<f64>(&[], 3, &[]),
            Err(LossError::Empty { n_rows: 0, n_classes: 3 })
        );
        let mut g = [0.0f64; 3];
        assert_eq!(
            l.loss_grad_into(&[0.0, 1.0], 2, &[0], &mut g),
            Err(LossError::ShapeMismatch { what: "grad", expected: 2, found: 3 })
        );
    }
}
