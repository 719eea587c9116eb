//! Softmax cross-entropy loss with its gradient, computed with the max shift.
//!
//! ```text
//! p_k = e^{s_k − max_j s_j} / Σ_j e^{s_j − max_j s_j}      (the same as e^{s_k} / Σ_j e^{s_j})
//! L_i = −log p_{y_i} = log Σ_j e^{s_j − m} − (s_{y_i} − m),  m = max_j s_j
//! L   = (1/N) Σ_i L_i
//! ∂L/∂s_k = (1/N) · (p_k − [k = y_i])
//! ```
//!
//! Subtracting the row maximum keeps every exponent `<= 0`, so scores of ±1e4 give finite
//! results. The lecture's example: a dog score of 2.3 and a cat score of −1.2 exponentiate to
//! 9.97 and 0.30, normalise to 0.97 and 0.03, and the loss of an image whose true class is
//! the cat is `−log 0.03 ≈ 3.5`.
//!
//! ```
//! use imgclass_loss::{softmax_cross_entropy, softmax_rows};
//!
//! let scores = [2.3f64, -1.2]; // (dog, cat)
//! let p = softmax_rows(&scores, 2)?;
//! assert_eq!(format!("{:.2} {:.2}", p[0], p[1]), "0.97 0.03");
//! let cat = softmax_cross_entropy(&scores, 2, &[1])?;
//! assert!((cat.loss - 3.5).abs() < 0.05); // −ln(0.0293) = 3.53
//! // gradient = p − onehot
//! assert!((cat.grad[0] - p[0]).abs() < 1e-12 && (cat.grad[1] - (p[1] - 1.0)).abs() < 1e-12);
//!
//! // at initialisation (all scores equal) the loss is ln C
//! let c = 10;
//! let init = softmax_cross_entropy(&vec![0.5f64; 3 * c], c, &[0, 4, 9])?;
//! assert!((init.loss - (c as f64).ln()).abs() < 1e-12);
//!
//! // huge scores stay finite thanks to the max shift
//! let big = softmax_cross_entropy(&[1e4f32, -1e4, 0.0], 3, &[1])?;
//! assert!(big.loss.is_finite() && (big.loss - 2e4).abs() < 1.0);
//! # Ok::<(), imgclass_loss::LossError>(())
//! ```

use crate::{Float, LossError, LossGrad, validate};

/// Row-wise softmax probabilities of `scores` (row-major `n x n_classes`).
pub fn softmax_rows<T: Float>(scores: &[T], n_classes: usize) -> Result<Vec<T>, LossError> {
    if n_classes == 0 || scores.is_empty() {
        return Err(LossError::Empty { n_rows: 0, n_classes });
    }
    if !scores.len().is_multiple_of(n_classes) {
        let n = scores.len() / n_classes + 1;
        return Err(LossError::ShapeMismatch {
            what: "scores",
            expected: n * n_classes,
            found: scores.len(),
        });
    }
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(LossError::NonFinite { what: "scores", index });
    }
    let mut out = scores.to_vec();
    for row in out.chunks_exact_mut(n_classes) {
        let m = row.iter().copied().fold(row[0], T::max);
        let mut sum = T::ZERO;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            sum += *v;
        }
        let inv = T::ONE / sum;
        for v in row.iter_mut() {
            *v = *v * inv;
        }
    }
    Ok(out)
}

/// Mean softmax cross-entropy over a batch and `dL/dscores`.
pub fn softmax_cross_entropy<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
) -> Result<LossGrad<T>, LossError> {
    let mut grad = vec![T::ZERO; scores.len()];
    let loss = softmax_cross_entropy_into(scores, n_classes, labels, &mut grad)?;
    Ok(LossGrad { loss, grad })
}

/// [`softmax_cross_entropy`] writing the gradient into `grad` (overwritten, same length as
/// `scores`).
pub fn softmax_cross_entropy_into<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    grad: &mut [T],
) -> Result<T, LossError> {
    let n = validate(scores, n_classes, labels, grad.len())?;
    let inv_n = T::ONE / T::from_f64(n as f64);
    let mut total = T::ZERO;
    for ((s, g), &y) in
        scores.chunks_exact(n_classes).zip(grad.chunks_exact_mut(n_classes)).zip(labels)
    {
        let y = y as usize;
        let m = s.iter().copied().fold(s[0], T::max);
        let mut sum = T::ZERO;
        for (gj, &sj) in g.iter_mut().zip(s) {
            let e = (sj - m).exp();
            *gj = e;
            sum += e;
        }
        total += sum.ln() - (s[y] - m);
        let scale = inv_n / sum;
        for gj in g.iter_mut() {
            *gj = *gj * scale;
        }
        g[y] -= inv_n;
    }
    Ok(total * inv_n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_unshifted_formula_on_moderate_scores() {
        // independent oracle: the textbook formula without the shift, in f64
        let s = [1.0f64, -2.0, 0.0, 0.5, 0.25, -0.75];
        let out = softmax_cross_entropy(&s, 3, &[2, 0]).expect("valid");
        let naive = |r: &[f64], y: usize| {
            let z: f64 = r.iter().map(|v| v.exp()).sum();
            -(r[y].exp() / z).ln()
        };
        let want = (naive(&s[0..3], 2) + naive(&s[3..6], 0)) / 2.0;
        assert!((out.loss - want).abs() < 1e-14);
        // the lecture's [1, −2, 0] → [0.7, 0.04, 0.26]
        let p = softmax_rows(&s[0..3], 3).expect("valid");
        let shown: Vec<String> = p.iter().map(|v| format!("{v:.2}")).collect();
        assert_eq!(shown, ["0.71", "0.04", "0.26"]);
    }

    #[test]
    fn softmax_rows_rejects_non_finite_and_ragged() {
        assert_eq!(
            softmax_rows(&[0.0f32, f32::NEG_INFINITY], 2),
            Err(LossError::NonFinite { what: "scores", index: 1 })
        );
        assert!(matches!(softmax_rows(&[0.0f64; 5], 2), Err(LossError::ShapeMismatch { .. })));
    }
}
