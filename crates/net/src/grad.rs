//! The network's objective on one batch and its gradient, generic over the float type (`f32`
//! to train, `f64` for the gradient checks):
//!
//! ```text
//! A = X W1ᵀ + b1            (m x h)      H = max(0, A) ⊙ M / (1 − p)   (M: dropout mask)
//! S = H W2ᵀ + b2            (m x c)      L = mean_i L_i(S_i, y_i)
//! dS = ∂L/∂S                             dW2 = dSᵀ H,  db2 = Σ_i dS_i
//! dH = dS W2                             dA = dH ⊙ [A > 0] ⊙ M / (1 − p)
//! dW1 = dAᵀ X,  db1 = Σ_i dA_i
//! ```
//!
//! The regularisation `λ (‖W1‖² + ‖W2‖²)` (gradient `2λW`) is added by the caller once per
//! batch, so a batch split in two parts sums the parts' data gradients first.

use imgclass_linalg::gemm::{GemmScalar, Op, gemm};
use imgclass_loss::{Float, Loss, LossError};

/// Layer sizes: input `d`, hidden `h`, classes `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub(crate) d: usize,
    pub(crate) h: usize,
    pub(crate) c: usize,
}

/// The four parameter arrays, row-major: `w1` `h x d`, `b1` `h`, `w2` `c x h`, `b2` `c`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params<T> {
    pub(crate) w1: Vec<T>,
    pub(crate) b1: Vec<T>,
    pub(crate) w2: Vec<T>,
    pub(crate) b2: Vec<T>,
}

impl<T: Float> Params<T> {
    pub(crate) fn zeros(dims: Dims) -> Self {
        Self {
            w1: vec![T::ZERO; dims.h * dims.d],
            b1: vec![T::ZERO; dims.h],
            w2: vec![T::ZERO; dims.c * dims.h],
            b2: vec![T::ZERO; dims.c],
        }
    }

    /// The arrays in a fixed order (`w1`, `b1`, `w2`, `b2`).
    #[cfg(test)]
    pub(crate) fn arrays(&self) -> [&Vec<T>; 4] {
        [&self.w1, &self.b1, &self.w2, &self.b2]
    }

    #[cfg(test)]
    pub(crate) fn arrays_mut(&mut self) -> [&mut Vec<T>; 4] {
        [&mut self.w1, &mut self.b1, &mut self.w2, &mut self.b2]
    }
}

/// Scratch of one batch part.
#[derive(Debug, Default)]
pub(crate) struct Scratch<T> {
    pub(crate) a: Vec<T>,
    pub(crate) s: Vec<T>,
    pub(crate) ds: Vec<T>,
    pub(crate) dh: Vec<T>,
}

/// Class scores of the rows `x` (`m x d`, preprocessed) into `s` (`m x c`), keeping the
/// hidden activations in `a` (`m x h`, after ReLU and dropout).
pub(crate) fn forward<T: Float + GemmScalar>(
    p: &Params<T>,
    dims: Dims,
    x: &[T],
    mask: Option<&[T]>,
    a: &mut Vec<T>,
    s: &mut Vec<T>,
) {
    let m = x.len() / dims.d.max(1);
    a.resize(m * dims.h, T::ZERO);
    s.resize(m * dims.c, T::ZERO);
    // shapes are consistent by construction: these products cannot fail
    let _ = gemm(m, dims.h, dims.d, T::ONE, x, Op::N, &p.w1, Op::T, T::ZERO, a);
    for row in a.chunks_exact_mut(dims.h.max(1)) {
        for (v, &b) in row.iter_mut().zip(&p.b1) {
            let z = *v + b;
            *v = if z > T::ZERO { z } else { T::ZERO };
        }
    }
    if let Some(mask) = mask {
        a.iter_mut().zip(mask).for_each(|(v, &k)| *v = *v * k);
    }
    let _ = gemm(m, dims.c, dims.h, T::ONE, a, Op::N, &p.w2, Op::T, T::ZERO, s);
    for row in s.chunks_exact_mut(dims.c.max(1)) {
        row.iter_mut().zip(&p.b2).for_each(|(v, &b)| *v += b);
    }
}

/// The mean data loss of the batch part `x`/`y` and its gradient (data part only) into `g`.
/// `mask` holds the inverted-dropout factors (`0` or `1 / (1 − p)`) of the hidden units,
/// row-major `m x h`, or `None` without dropout.
#[allow(clippy::too_many_arguments)]
pub(crate) fn data_loss_grad<T: Float + GemmScalar>(
    p: &Params<T>,
    dims: Dims,
    loss: Loss,
    x: &[T],
    y: &[u32],
    mask: Option<&[T]>,
    g: &mut Params<T>,
    sc: &mut Scratch<T>,
) -> Result<T, LossError> {
    let (d, h, c) = (dims.d, dims.h, dims.c);
    let m = y.len();
    forward(p, dims, x, mask, &mut sc.a, &mut sc.s);
    sc.ds.resize(m * c, T::ZERO);
    let data = loss.loss_grad_into(&sc.s, c, y, &mut sc.ds)?;
    // dW2 = dSᵀ H, db2 = Σ dS
    let _ = gemm(c, h, m, T::ONE, &sc.ds, Op::T, &sc.a, Op::N, T::ZERO, &mut g.w2);
    g.b2.iter_mut().for_each(|v| *v = T::ZERO);
    for row in sc.ds.chunks_exact(c.max(1)) {
        g.b2.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
    }
    // dH = dS W2, through the ReLU (a > 0 where the unit was active and kept) and the mask
    sc.dh.resize(m * h, T::ZERO);
    let _ = gemm(m, h, c, T::ONE, &sc.ds, Op::N, &p.w2, Op::N, T::ZERO, &mut sc.dh);
    match mask {
        Some(mask) => {
            for ((g, &a), &k) in sc.dh.iter_mut().zip(&sc.a).zip(mask) {
                *g = if a > T::ZERO { *g * k } else { T::ZERO };
            }
        }
        None => {
            // a select, not a conditional store: the compiler vectorises it (the branchy
            // form was a fifth of a 154-input net's fit); the same condition, so the same bits
            for (g, &a) in sc.dh.iter_mut().zip(&sc.a) {
                *g = if a <= T::ZERO { T::ZERO } else { *g };
            }
        }
    }
    let _ = gemm(h, d, m, T::ONE, &sc.dh, Op::T, x, Op::N, T::ZERO, &mut g.w1);
    g.b1.iter_mut().for_each(|v| *v = T::ZERO);
    for row in sc.dh.chunks_exact(h.max(1)) {
        g.b1.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
    }
    Ok(data)
}

/// `λ (‖W1‖² + ‖W2‖²)`, and `2λW` added to the weight gradients (the gradient checks' form;
/// training fuses it into its update, `train::sgd_step`).
#[cfg(test)]
pub(crate) fn add_reg<T: Float>(p: &Params<T>, reg: f64, g: &mut Params<T>) -> f64 {
    if reg == 0.0 {
        return 0.0;
    }
    let two = T::from_f64(2.0 * reg);
    let mut sq = 0.0f64;
    for (w, gw) in [(&p.w1, &mut g.w1), (&p.w2, &mut g.w2)] {
        for (&v, gv) in w.iter().zip(gw.iter_mut()) {
            sq += v.to_f64() * v.to_f64();
            *gv += two * v;
        }
    }
    reg * sq
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::rng::SplitMix64;
    use imgclass_loss::check_gradient;

    fn flat(p: &Params<f64>) -> Vec<f64> {
        p.arrays().iter().flat_map(|a| a.iter().copied()).collect()
    }

    fn unflat(dims: Dims, x: &[f64]) -> Params<f64> {
        let mut p = Params::<f64>::zeros(dims);
        let mut at = 0;
        for a in p.arrays_mut() {
            let n = a.len();
            a.copy_from_slice(&x[at..at + n]);
            at += n;
        }
        p
    }

    /// Every parameter's gradient against central differences in f64, for both losses,
    /// with and without dropout and regularisation: relative error below 1e-6.
    #[test]
    fn gradients_match_central_differences_in_f64() {
        let dims = Dims { d: 5, h: 7, c: 3 };
        let m = 6;
        let mut g = SplitMix64::new(42);
        let x: Vec<f64> = (0..m * dims.d).map(|_| g.next_normal()).collect();
        let y: Vec<u32> = (0..m).map(|i| (i % 3) as u32).collect();
        let mut p = Params::<f64>::zeros(dims);
        for a in p.arrays_mut() {
            a.iter_mut().for_each(|v| *v = 0.5 * g.next_normal());
        }
        let mask: Vec<f64> =
            (0..m * dims.h).map(|_| if g.next_f64() < 0.7 { 1.0 / 0.7 } else { 0.0 }).collect();
        for loss in [Loss::Softmax, Loss::Svm { margin: 1.0 }] {
            for (reg, mk) in [(0.0, None), (0.3, None), (0.1, Some(&mask[..]))] {
                let mut gr = Params::<f64>::zeros(dims);
                let mut sc = Scratch::default();
                data_loss_grad(&p, dims, loss, &x, &y, mk, &mut gr, &mut sc).expect("finite");
                add_reg(&p, reg, &mut gr);
                let f = |v: &[f64]| {
                    let q = unflat(dims, v);
                    let mut gq = Params::<f64>::zeros(dims);
                    let mut s2 = Scratch::default();
                    let data = data_loss_grad(&q, dims, loss, &x, &y, mk, &mut gq, &mut s2)
                        .expect("finite");
                    data + add_reg(&q, reg, &mut gq)
                };
                let check = check_gradient(f, &flat(&p), &flat(&gr), 1e-5);
                assert!(
                    check.max_rel_error < 1e-6,
                    "{loss:?} reg {reg} dropout {}: rel error {} at {}",
                    mk.is_some(),
                    check.max_rel_error,
                    check.worst_index
                );
            }
        }
        // not vacuous: a wrong gradient is caught
        let mut gr = Params::<f64>::zeros(dims);
        data_loss_grad(&p, dims, Loss::Softmax, &x, &y, None, &mut gr, &mut Scratch::default())
            .expect("ok");
        gr.w1[3] += 1e-3;
        let f = |v: &[f64]| {
            let q = unflat(dims, v);
            data_loss_grad(
                &q,
                dims,
                Loss::Softmax,
                &x,
                &y,
                None,
                &mut Params::zeros(dims),
                &mut Scratch::default(),
            )
            .expect("ok")
        };
        assert!(check_gradient(f, &flat(&p), &flat(&gr), 1e-6).max_rel_error > 1e-4);
    }
}
