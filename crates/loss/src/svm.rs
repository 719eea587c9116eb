//! Multiclass SVM (hinge) loss, its squared-hinge variant and the one-vs-all squared hinge,
//! with gradients.
//!
//! ```text
//! hinge:          L_i = Σ_{j≠y_i} max(0, s_j − s_{y_i} + Δ)
//! squared hinge:  L_i = Σ_{j≠y_i} max(0, s_j − s_{y_i} + Δ)²
//! one-vs-all:     L_i = Σ_j max(0, Δ − t_ij s_j)²          t_ij = +1 if j = y_i, else −1
//! batch loss:     L   = (1/N) Σ_i L_i
//! gradient:       ∂L/∂s_j     = (1/N) · [m_j > 0]            (j ≠ y_i, m_j = s_j − s_{y_i} + Δ)
//!                 ∂L/∂s_{y_i} = −(1/N) · Σ_{j≠y_i} [m_j > 0]
//!                 (squared hinge: 2·m_j in place of [m_j > 0])
//!                 one-vs-all: ∂L/∂s_j = −(2/N) · t_ij · max(0, Δ − t_ij s_j)
//! ```
//!
//! The one-vs-all squared hinge is C independent binary L2-SVMs (class j against the rest),
//! the loss of scikit-learn's `LinearSVC` (`loss="squared_hinge"`, one-vs-rest) and of Coates
//! et al.'s single-layer networks; unlike the two multiclass forms it scores every class
//! against a fixed target, not against the label's score.
//!
//! The lecture's worked example: three images (cat, car, frog), three classes, `Δ = 1`;
//! each row below holds one image's scores for (cat, car, frog).
//!
//! ```
//! use imgclass_loss::svm;
//!
//! let scores = [
//!     3.2, 5.1, -1.7, // cat image:  max(0, 5.1 − 3.2 + 1) + max(0, −1.7 − 3.2 + 1) = 2.9
//!     1.3, 4.9, 2.0, //  car image:  max(0, 1.3 − 4.9 + 1) + max(0, 2.0 − 4.9 + 1) = 0
//!     2.2, 2.5, -3.1, // frog image: max(0, 2.2 + 3.1 + 1) + max(0, 2.5 + 3.1 + 1) = 12.9
//! ];
//! let labels = [0, 1, 2];
//! let one = |row: &[f64], y: u32| svm(row, 3, &[y], 1.0).map(|o| o.loss);
//! assert!((one(&scores[0..3], 0)? - 2.9).abs() < 1e-12);
//! assert_eq!(one(&scores[3..6], 1)?, 0.0);
//! assert!((one(&scores[6..9], 2)? - 12.9).abs() < 1e-12);
//!
//! // the mean over the batch: (2.9 + 0 + 12.9) / 3 = 5.27 (to two decimals)
//! let out = svm(&scores, 3, &labels, 1.0)?;
//! assert!((out.loss - 15.8 / 3.0).abs() < 1e-12);
//! assert_eq!(format!("{:.2}", out.loss), "5.27");
//!
//! // W twice as large doubles every score: the car image's zero loss stays zero
//! let doubled: Vec<f64> = scores[3..6].iter().map(|s| 2.0 * s).collect();
//! assert_eq!(one(&doubled, 1)?, 0.0);
//!
//! // at initialisation every score is (about) equal: L = (C − 1)·Δ
//! let c = 10;
//! let equal = vec![0.001f64; 4 * c];
//! let init = svm(&equal, c, &[0, 3, 7, 9], 1.0)?;
//! assert!((init.loss - (c as f64 - 1.0)).abs() < 1e-12);
//! # Ok::<(), imgclass_loss::LossError>(())
//! ```

use crate::{Float, LossError, LossGrad, validate};

/// Mean multiclass SVM hinge loss over a batch and `dL/dscores`.
///
/// `scores` is row-major `labels.len() x n_classes`; `margin` is `Δ`.
pub fn svm<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    margin: T,
) -> Result<LossGrad<T>, LossError> {
    let mut grad = vec![T::ZERO; scores.len()];
    let loss = svm_into(scores, n_classes, labels, margin, &mut grad)?;
    Ok(LossGrad { loss, grad })
}

/// [`svm`] writing the gradient into `grad` (overwritten, same length as `scores`).
pub fn svm_into<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    margin: T,
    grad: &mut [T],
) -> Result<T, LossError> {
    hinge_into::<T, false>(scores, n_classes, labels, margin, grad)
}

/// Mean squared-hinge loss over a batch and `dL/dscores` (see the module docs).
pub fn squared_hinge<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    margin: T,
) -> Result<LossGrad<T>, LossError> {
    let mut grad = vec![T::ZERO; scores.len()];
    let loss = squared_hinge_into(scores, n_classes, labels, margin, &mut grad)?;
    Ok(LossGrad { loss, grad })
}

/// Mean one-vs-all squared hinge over a batch and `dL/dscores` (see the module docs).
///
/// ```
/// use imgclass_loss::ova_squared_hinge;
///
/// // label 0 scores 0.5 (short of the margin by 0.5), class 1 scores −2 (fine), class 2
/// // scores 0.25 (above −1 by 1.25): L = 0.5² + 0 + 1.25² = 1.8125
/// let out = ova_squared_hinge(&[0.5f64, -2.0, 0.25], 3, &[0], 1.0)?;
/// assert_eq!(out.loss, 1.8125);
/// assert_eq!(out.grad, vec![-1.0, 0.0, 2.5]);
/// # Ok::<(), imgclass_loss::LossError>(())
/// ```
pub fn ova_squared_hinge<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    margin: T,
) -> Result<LossGrad<T>, LossError> {
    let mut grad = vec![T::ZERO; scores.len()];
    let loss = ova_squared_hinge_into(scores, n_classes, labels, margin, &mut grad)?;
    Ok(LossGrad { loss, grad })
}

/// [`ova_squared_hinge`] writing the gradient into `grad` (overwritten, same length as
/// `scores`).
pub fn ova_squared_hinge_into<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    margin: T,
    grad: &mut [T],
) -> Result<T, LossError> {
    let n = validate(scores, n_classes, labels, grad.len())?;
    if !margin.is_finite() {
        return Err(LossError::NonFinite { what: "margin", index: 0 });
    }
    let inv_n = T::ONE / T::from_f64(n as f64);
    let two_inv_n = T::from_f64(2.0) * inv_n;
    let mut total = T::ZERO;
    for ((s, g), &y) in
        scores.chunks_exact(n_classes).zip(grad.chunks_exact_mut(n_classes)).zip(labels)
    {
        let y = y as usize;
        let mut row = T::ZERO;
        for (j, (&sj, gj)) in s.iter().zip(g.iter_mut()).enumerate() {
            // t = +1 for the label, −1 for every other class; v = max(0, Δ − t·s)
            let ts = if j == y { sj } else { T::ZERO - sj };
            let m = margin - ts;
            let v = if m > T::ZERO { m } else { T::ZERO };
            row += v * v;
            let d = two_inv_n * v;
            *gj = if j == y { T::ZERO - d } else { d };
        }
        total += row;
    }
    Ok(total * inv_n)
}

/// [`squared_hinge`] writing the gradient into `grad` (overwritten, same length as `scores`).
pub fn squared_hinge_into<T: Float>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    margin: T,
    grad: &mut [T],
) -> Result<T, LossError> {
    hinge_into::<T, true>(scores, n_classes, labels, margin, grad)
}

fn hinge_into<T: Float, const SQUARED: bool>(
    scores: &[T],
    n_classes: usize,
    labels: &[u32],
    margin: T,
    grad: &mut [T],
) -> Result<T, LossError> {
    let n = validate(scores, n_classes, labels, grad.len())?;
    if !margin.is_finite() {
        return Err(LossError::NonFinite { what: "margin", index: 0 });
    }
    let inv_n = T::ONE / T::from_f64(n as f64);
    let two = T::from_f64(2.0);
    let mut total = T::ZERO;
    for ((s, g), &y) in
        scores.chunks_exact(n_classes).zip(grad.chunks_exact_mut(n_classes)).zip(labels)
    {
        let y = y as usize;
        let sy = s[y];
        let mut row = T::ZERO;
        let mut gy = T::ZERO;
        // branch-free (whether a margin is violated is data-dependent and unpredictable):
        // an inactive class adds +0 to the row and to `gy`, which changes no bit
        for (j, (&sj, gj)) in s.iter().zip(g.iter_mut()).enumerate() {
            let m = sj - sy + margin;
            let active = m > T::ZERO && j != y;
            let (l, d) = if SQUARED { (m * m, two * m) } else { (m, T::ONE) };
            let (l, d) = if active { (l, d) } else { (T::ZERO, T::ZERO) };
            row += l;
            *gj = d * inv_n;
            gy -= d;
        }
        g[y] = gy * inv_n;
        total += row;
    }
    Ok(total * inv_n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_gradient_of_the_cat_image() {
        // cat image, label 0: margins car 2.9 > 0, frog −3.9 < 0
        let out = svm(&[3.2f64, 5.1, -1.7], 3, &[0], 1.0).expect("valid");
        assert_eq!(out.grad, vec![-1.0, 1.0, 0.0]);
        let sq = squared_hinge(&[3.2f64, 5.1, -1.7], 3, &[0], 1.0).expect("valid");
        assert!((sq.loss - 2.9 * 2.9).abs() < 1e-12);
        assert!((sq.grad[1] - 5.8).abs() < 1e-12 && (sq.grad[0] + 5.8).abs() < 1e-12);
        assert_eq!(sq.grad[2], 0.0);
    }

    #[test]
    fn one_vs_all_by_hand() {
        // two rows, two classes, Δ = 1: row 0 (label 1) scores (0, 3): class 0 wants ≤ −1
        // (violation 1), class 1 wants ≥ 1 (met); row 1 (label 0) scores (−1, −1): class 0
        // violation 2, class 1 violation 0
        let out = ova_squared_hinge(&[0.0f64, 3.0, -1.0, -1.0], 2, &[1, 0], 1.0).expect("valid");
        assert_eq!(out.loss, (1.0 + 4.0) / 2.0);
        // ∂/∂s_j = −(2/N) t v: row 0 class 0: t = −1, v = 1 → +1; row 1 class 0: t = 1, v = 2
        assert_eq!(out.grad, vec![1.0, 0.0, -2.0, 0.0]);
        assert_eq!(
            ova_squared_hinge(&[0.0f32, 1.0], 2, &[0], f32::INFINITY),
            Err(LossError::NonFinite { what: "margin", index: 0 })
        );
    }

    #[test]
    fn non_finite_margin_is_an_error() {
        assert_eq!(
            svm(&[0.0f32, 1.0], 2, &[0], f32::NAN),
            Err(LossError::NonFinite { what: "margin", index: 0 })
        );
    }
}
