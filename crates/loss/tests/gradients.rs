//! Analytic gradients of every loss and regulariser against central differences, in f64,
//! alone and composed with a linear score function with and without a bias.

use imgclass_loss::{Loss, Regularizer, check_gradient};

/// A small deterministic pseudo-random stream (xorshift) so the test needs no dependency.
struct Stream(u64);
impl Stream {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

const LOSSES: [Loss; 4] = [
    Loss::Svm { margin: 1.0 },
    Loss::SquaredHinge { margin: 1.0 },
    Loss::Softmax,
    Loss::OvaSquaredHinge { margin: 1.0 },
];

/// Relative-error bound for analytic vs central-difference gradients in f64.
const TOL: f64 = 1e-6;

#[test]
fn loss_gradients_wrt_scores_match_central_differences() {
    let (n, c) = (6, 5);
    let mut r = Stream(0x9E37_79B9_7F4A_7C15);
    for loss in LOSSES {
        // scores spread widely so no margin sits within h of a kink
        let scores: Vec<f64> = (0..n * c).map(|_| 3.0 * r.next()).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| i % c as u32).collect();
        let out = loss.loss_grad(&scores, c, &labels).expect("valid");
        let f = |s: &[f64]| loss.loss_grad(s, c, &labels).expect("valid").loss;
        let chk = check_gradient(f, &scores, &out.grad, 1e-5);
        assert!(chk.max_rel_error < TOL, "{loss:?}: {chk:?}");
    }
}

#[test]
fn regularizer_gradients_match_central_differences() {
    let mut r = Stream(12345);
    // keep weights away from 0 where L1 has its kink
    let w: Vec<f64> =
        (0..40).map(|_| r.next()).map(|v| if v.abs() < 0.05 { v + 0.1 } else { v }).collect();
    for reg in [
        Regularizer::L2(0.7),
        Regularizer::L1(0.3),
        Regularizer::ElasticNet { lambda: 0.4, beta: 1.5 },
    ] {
        let mut g = vec![0.0; w.len()];
        let p = reg.add_grad(&w, &mut g).expect("finite");
        assert!((p - reg.penalty(&w)).abs() < 1e-12);
        let chk = check_gradient(|x: &[f64]| reg.penalty(x), &w, &g, 1e-5);
        assert!(chk.max_rel_error < TOL, "{reg:?}: {chk:?}");
    }
}

/// L(W, b) = loss(X Wᵀ + b) + R(W): dW = dSᵀ X + ∂R/∂W, db = column sums of dS.
#[allow(clippy::too_many_arguments)]
fn full_objective(
    loss: Loss,
    reg: Regularizer,
    x: &[f64],
    labels: &[u32],
    d: usize,
    c: usize,
    params: &[f64],
    with_bias: bool,
) -> (f64, Vec<f64>) {
    let n = labels.len();
    let w = &params[..c * d];
    let b = if with_bias { &params[c * d..] } else { &[][..] };
    let mut s = vec![0.0; n * c];
    for i in 0..n {
        for j in 0..c {
            let mut acc = if with_bias { b[j] } else { 0.0 };
            for k in 0..d {
                acc += x[i * d + k] * w[j * d + k];
            }
            s[i * c + j] = acc;
        }
    }
    let out = loss.loss_grad(&s, c, labels).expect("valid");
    let mut grad = vec![0.0; params.len()];
    for i in 0..n {
        for j in 0..c {
            let g = out.grad[i * c + j];
            for k in 0..d {
                grad[j * d + k] += g * x[i * d + k];
            }
            if with_bias {
                grad[c * d + j] += g;
            }
        }
    }
    let p = reg.add_grad(w, &mut grad[..c * d]).expect("finite");
    (out.loss + p, grad)
}

#[test]
fn linear_model_gradients_with_and_without_bias() {
    let (n, d, c) = (8, 7, 4);
    let mut r = Stream(777);
    let x: Vec<f64> = (0..n * d).map(|_| r.next()).collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3) % c as u32).collect();
    for loss in LOSSES {
        for reg in [Regularizer::None, Regularizer::L2(0.1), Regularizer::L1(0.05)] {
            for with_bias in [false, true] {
                let np = c * d + if with_bias { c } else { 0 };
                let params: Vec<f64> = (0..np)
                    .map(|_| 2.0 * r.next())
                    .map(|v| if v.abs() < 0.05 { v + 0.1 } else { v })
                    .collect();
                let (_, g) = full_objective(loss, reg, &x, &labels, d, c, &params, with_bias);
                let f = |p: &[f64]| full_objective(loss, reg, &x, &labels, d, c, p, with_bias).0;
                let chk = check_gradient(f, &params, &g, 1e-5);
                assert!(chk.max_rel_error < TOL, "{loss:?} {reg:?} bias={with_bias}: {chk:?}");
            }
        }
    }
}
