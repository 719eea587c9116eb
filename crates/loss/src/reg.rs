//! Weight regularisers with their gradients: L2, L1 (subgradient) and elastic net.
//!
//! ```text
//! L2:           R(W) = λ Σ_k Σ_l W_kl²                 ∂R/∂W_kl = 2λ W_kl
//! L1:           R(W) = λ Σ_k Σ_l |W_kl|                ∂R/∂W_kl = λ sign(W_kl)   (0 at 0)
//! elastic net:  R(W) = λ Σ_k Σ_l (β W_kl² + |W_kl|)    ∂R/∂W_kl = λ (2β W_kl + sign(W_kl))
//! ```
//!
//! The lecture's motivation for L2: with `x = [1, 1, 1, 1]`, `w1 = [1, 0, 0, 0]` and
//! `w2 = [0.25, 0.25, 0.25, 0.25]` give the same score `wᵀx = 1`, but L2 prefers the small,
//! spread-out `w2` (penalty 0.25 against 1.0); L1 cannot tell them apart.
//!
//! ```
//! use imgclass_loss::Regularizer;
//!
//! let x = [1.0f64; 4];
//! let w1 = [1.0f64, 0.0, 0.0, 0.0];
//! let w2 = [0.25f64; 4];
//! let dot = |w: &[f64]| w.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>();
//! assert_eq!(dot(&w1), dot(&w2)); // same score: 1
//! assert_eq!(Regularizer::L2(1.0).penalty(&w1), 1.0);
//! assert_eq!(Regularizer::L2(1.0).penalty(&w2), 0.25);
//! assert_eq!(Regularizer::L1(1.0).penalty(&w1), Regularizer::L1(1.0).penalty(&w2));
//! // elastic net with β = 0.5: 0.5·1 + 1 = 1.5 against 0.5·0.25 + 1 = 1.125
//! let en = Regularizer::ElasticNet { lambda: 1.0, beta: 0.5 };
//! assert_eq!((en.penalty(&w1), en.penalty(&w2)), (1.5, 1.125));
//!
//! // gradients: 2λW for L2, λ·sign(W) for L1
//! let mut g = [0.0f64; 4];
//! let r = Regularizer::L2(3.0).add_grad(&w1, &mut g)?;
//! assert_eq!((r, g), (3.0, [6.0, 0.0, 0.0, 0.0]));
//! # Ok::<(), imgclass_loss::LossError>(())
//! ```

use crate::{Float, LossError};

/// A penalty on the weights, added to the data loss. A grid is a `Vec<Regularizer>`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Regularizer {
    /// No penalty.
    #[default]
    None,
    /// `λ Σ W²` with the given `λ`.
    L2(f64),
    /// `λ Σ |W|` with the given `λ`.
    L1(f64),
    /// `λ Σ (β W² + |W|)`.
    ElasticNet {
        /// Overall strength `λ`.
        lambda: f64,
        /// Weight `β` of the squared term.
        beta: f64,
    },
}

impl Regularizer {
    /// The penalty `R(W)` (accumulated in `f64`, whatever `T`).
    pub fn penalty<T: Float>(&self, w: &[T]) -> f64 {
        let (l2, l1) = self.coefficients();
        if l2 == 0.0 && l1 == 0.0 {
            return 0.0;
        }
        let (mut sq, mut ab) = (0.0f64, 0.0f64);
        for &v in w {
            let v = v.to_f64();
            sq += v * v;
            ab += v.abs();
        }
        l2 * sq + l1 * ab
    }

    /// Adds `∂R/∂W` to `grad` (same length as `w`) and returns the penalty `R(W)`.
    /// Non-finite weights or a non-finite strength give [`LossError::NonFinite`].
    ///
    /// The sums run in `f64` over eight independent lanes (vectorisable, and squares of
    /// `f32` weights cannot overflow them), so a non-finite weight shows as a non-finite sum.
    pub fn add_grad<T: Float>(&self, w: &[T], grad: &mut [T]) -> Result<f64, LossError> {
        if grad.len() != w.len() {
            return Err(LossError::ShapeMismatch {
                what: "grad",
                expected: w.len(),
                found: grad.len(),
            });
        }
        let (l2, l1) = self.coefficients();
        if !l2.is_finite() || !l1.is_finite() {
            return Err(LossError::NonFinite { what: "regularization strength", index: 0 });
        }
        const LANES: usize = 8;
        let (mut sq, mut ab) = ([0.0f64; LANES], [0.0f64; LANES]);
        let two_l2 = T::from_f64(2.0 * l2);
        let tl1 = T::from_f64(l1);
        let mut wc = w.chunks_exact(LANES);
        let mut gc = grad.chunks_exact_mut(LANES);
        for (wv, gv) in (&mut wc).zip(&mut gc) {
            for l in 0..LANES {
                let v = wv[l];
                let vf = v.to_f64();
                sq[l] += vf * vf;
                ab[l] += vf.abs();
                gv[l] += two_l2 * v + tl1 * sign(v);
            }
        }
        for (l, (&v, g)) in wc.remainder().iter().zip(gc.into_remainder()).enumerate() {
            let vf = v.to_f64();
            sq[l] += vf * vf;
            ab[l] += vf.abs();
            *g += two_l2 * v + tl1 * sign(v);
        }
        let (sq, ab): (f64, f64) = (sq.iter().sum(), ab.iter().sum());
        if !sq.is_finite() {
            let index = w.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(LossError::NonFinite { what: "weights", index });
        }
        Ok(l2 * sq + l1 * ab)
    }

    /// The L2 strength equivalent to scikit-learn's `C` on `n` training rows:
    /// `λ = 1 / (2 C n)`, since scikit-learn's `C Σ_i L_i + ½‖W‖²` divided by `C·n` is our
    /// `mean_i L_i + λ‖W‖²` (the same minimiser). `C = 1` on 50,000 rows is `L2(1e-5)`.
    ///
    /// ```
    /// use imgclass_loss::Regularizer;
    /// assert_eq!(Regularizer::from_sklearn_c(1.0, 50_000), Regularizer::L2(1e-5));
    /// ```
    pub fn from_sklearn_c(c: f64, n: usize) -> Self {
        Regularizer::L2(1.0 / (2.0 * c * n as f64))
    }

    /// `(c2, c1)` with `R(W) = c2 Σ W² + c1 Σ |W|`.
    pub fn coefficients(&self) -> (f64, f64) {
        match *self {
            Regularizer::None => (0.0, 0.0),
            Regularizer::L2(l) => (l, 0.0),
            Regularizer::L1(l) => (0.0, l),
            Regularizer::ElasticNet { lambda, beta } => (lambda * beta, lambda),
        }
    }
}

/// `sign(v)` with `sign(0) = 0` (the L1 subgradient chosen at the kink), branch-free.
#[inline(always)]
fn sign<T: Float>(v: T) -> T {
    let pos = if v > T::ZERO { T::ONE } else { T::ZERO };
    let neg = if v < T::ZERO { T::ONE } else { T::ZERO };
    pos - neg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_by_hand() {
        let w = [1.0f32, -2.0, 0.0, 0.5];
        // a long vector exercises the 8-lane body and the remainder
        let long: Vec<f64> = (0..21).map(|i| i as f64 - 10.0).collect();
        let mut g = vec![0.0; 21];
        let p = Regularizer::ElasticNet { lambda: 0.5, beta: 2.0 }.add_grad(&long, &mut g);
        let naive: f64 = long.iter().map(|v| 0.5 * (2.0 * v * v + v.abs())).sum();
        assert_eq!(p, Ok(naive));
        for (gi, v) in g.iter().zip(&long) {
            assert_eq!(*gi, 0.5 * (4.0 * v + v.signum() * f64::from(*v != 0.0)));
        }
        assert_eq!(Regularizer::None.penalty(&w), 0.0);
        assert_eq!(Regularizer::L2(0.5).penalty(&w), 0.5 * (1.0 + 4.0 + 0.25));
        assert_eq!(Regularizer::L1(2.0).penalty(&w), 2.0 * 3.5);
        let en = Regularizer::ElasticNet { lambda: 2.0, beta: 0.5 };
        assert_eq!(en.penalty(&w), 2.0 * (0.5 * 5.25 + 3.5));
        let mut g = [0.0f32; 4];
        let r = Regularizer::L1(2.0).add_grad(&w, &mut g).expect("finite");
        assert_eq!(r, 7.0);
        assert_eq!(g, [2.0, -2.0, 0.0, 2.0]);
    }

    #[test]
    fn non_finite_weights_are_an_error() {
        let mut g = [0.0f64; 2];
        assert_eq!(
            Regularizer::L2(1.0).add_grad(&[0.0, f64::NAN], &mut g),
            Err(LossError::NonFinite { what: "weights", index: 1 })
        );
        assert!(Regularizer::L2(f64::INFINITY).add_grad(&[0.0, 1.0], &mut g).is_err());
    }
}
