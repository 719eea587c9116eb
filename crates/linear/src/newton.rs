//! A finite Newton method for the one-vs-all L2-SVM (Keerthi & DeCoste, "A modified finite
//! Newton method for fast solution of large scale linear SVMs", JMLR 2005): the solver of
//! [`Loss::OvaSquaredHinge`](crate::Loss::OvaSquaredHinge) that reaches the optimum of the
//! same problem as [`Dcd`] (bias penalised as a weight on the constant feature `B`) when rows
//! are many and features a few thousand.
//!
//! ```text
//! per class, t_i = ±1, x̂_i = [x̃_i, B], our scale:
//! F(ŵ) = (1/n) Σ_i max(0, 1 − t_i ŵ·x̂_i)² + λ‖ŵ‖²
//! A    = {i : t_i ŵ·x̂_i < 1}                      (the active rows at ŵ)
//! step ŵ_A = argmin (1/n) Σ_{i∈A} (t_i − ŵ·x̂_i)² + λ‖ŵ‖²  = ŵ + v,
//!      v = −(G_A/n + λI)⁻¹ ∇F(ŵ)/2,   G_A = Σ_{i∈A} x̂_i x̂_iᵀ
//!      ŵ ← ŵ + a v,  a ∈ (0, 1] the exact minimiser of F on the segment
//! stop max_j |∂F/∂ŵ_j| ≤ tolerance
//! ```
//!
//! F is a piecewise quadratic, so once the active set stops changing the step is the optimum:
//! the method ends in finitely many steps. Each class starts from a few epochs of [`Dcd`] (the
//! warm start puts the active set near its final one), builds `G_A` once by f32 products of
//! 512 rows at a time summed in f64, then keeps it by adding the rows that enter `A` and
//! subtracting those that leave. The system is solved by a blocked Cholesky factorisation
//! ([`imgclass_linalg::gemm::cholesky`]); gradients, objectives and the line search are f64.
//! The classes run in parallel, each single-threaded, so a fit has the same bits on any
//! number of threads.
//!
//! Cost per class: `|A|·(d+1)²` multiply-adds for the first Gram matrix, `(d+1)³/3` per
//! factorisation, two passes over the rows per step. Memory: the rows as one f32 matrix and
//! two `(d+1)²` f64 matrices per class being fitted.

use rayon::prelude::*;

use imgclass_linalg::gemm::{Op, cholesky, cholesky_solve, sgemm};

use crate::LinearError;
use crate::dcd::{self, Dcd, Outcome, Rows};
use crate::lbfgs::StopReason;
use crate::model::TrainingReport;

/// Settings of the finite Newton solver (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Newton {
    /// Epochs of [`Dcd`] to start from (default 20; 0 starts from `ŵ = 0`, where every row
    /// is active).
    pub warm_epochs: usize,
    /// Most Newton steps per class (default 50).
    pub max_iterations: usize,
    /// Stop a class when its largest gradient component `max_j |∂F/∂ŵ_j|` (our scale) is at
    /// most this (default 1e-6).
    pub tolerance: f64,
    /// Seed of the warm start's row order (default 0).
    pub seed: u64,
}

impl Default for Newton {
    fn default() -> Self {
        Self { warm_epochs: 20, max_iterations: 50, tolerance: 1e-6, seed: 0 }
    }
}

/// Rows per Gram-matrix product.
const BLOCK: usize = 512;

/// Trains every class with `lambda` (our λ of `λ‖W‖²`); records the primal objective after
/// each Newton step (summed over the classes; a class that has stopped counts its last).
pub(crate) fn solve(
    rows: &Rows<'_>,
    lambda: f64,
    cfg: &Newton,
    report: &mut TrainingReport,
) -> Result<Outcome, LinearError> {
    let (n, d, c) = (rows.labels.len(), rows.offset.len(), rows.n_classes);
    let warm = if cfg.warm_epochs > 0 {
        let dcd = Dcd { max_epochs: cfg.warm_epochs, tolerance: 0.1, seed: cfg.seed };
        // its per-epoch dual objectives are not this fit's record
        let mut scratch = TrainingReport::with_capacity(cfg.warm_epochs.min(1 << 16));
        Some(dcd::solve(rows, lambda, &dcd, &mut scratch)?)
    } else {
        None
    };
    // x̂ = [x̃, B] as one f32 matrix
    let dh = d + 1;
    let mut x = vec![0f32; n * dh];
    x.par_chunks_mut(dh).enumerate().for_each_init(
        || vec![0f64; d],
        |buf, (i, out)| {
            rows.x.row_into(i, rows.scale, rows.offset, buf);
            for (o, &v) in out.iter_mut().zip(buf.iter()) {
                *o = v as f32;
            }
            out[d] = rows.bias as f32;
        },
    );
    let fits: Vec<ClassFit> = (0..c)
        .into_par_iter()
        .map(|k| {
            let mut w0 = vec![0f64; dh];
            if let Some(o) = &warm {
                w0[..d].copy_from_slice(&o.w[k * d..(k + 1) * d]);
                w0[d] = if rows.bias != 0.0 { o.b[k] / rows.bias } else { 0.0 };
            }
            let t: Vec<f64> =
                rows.labels.iter().map(|&y| if y as usize == k { 1.0 } else { -1.0 }).collect();
            fit_class(&x, dh, &t, lambda, w0, cfg)
        })
        .collect::<Result<_, _>>()?;
    drop(x);
    let steps = fits.iter().map(|f| f.objectives.len()).max().unwrap_or(0);
    for s in 0..steps {
        let total: f64 = fits
            .iter()
            .map(|f| f.objectives.get(s).or(f.objectives.last()).copied().unwrap_or(0.0))
            .sum();
        report.push(total as f32, 0.0);
    }
    let mut w = vec![0f64; c * d];
    let mut b = vec![0f64; c];
    for (k, f) in fits.iter().enumerate() {
        w[k * d..(k + 1) * d].copy_from_slice(&f.w[..d]);
        b[k] = f.w[d] * rows.bias;
    }
    let stop = if fits.iter().all(|f| f.converged) {
        StopReason::GradientTolerance
    } else if fits.iter().any(|f| f.stalled) {
        StopReason::LineSearchFailed
    } else {
        StopReason::MaxIterations
    };
    let grad = fits.iter().map(|f| f.grad_max).fold(0.0, f64::max);
    let simd = !matches!(
        imgclass_linalg::KernelKind::detect().map_err(imgclass_linalg::gemm::GemmError::Kernel)?,
        imgclass_linalg::KernelKind::Scalar
    );
    let objective = dcd::primal(rows, &w, &b, lambda, simd);
    if !objective.is_finite() {
        return Err(LinearError::Diverged { iteration: steps, loss: objective });
    }
    Ok(Outcome { w, b, stop, epochs: steps, spread: grad, objective })
}

/// One class's result.
struct ClassFit {
    w: Vec<f64>,
    objectives: Vec<f64>,
    grad_max: f64,
    converged: bool,
    stalled: bool,
}

/// `row·w`, the row widened to f64.
fn dot(row: &[f32], w: &[f64]) -> f64 {
    let mut s = [0f64; 4];
    let (cr, cw) = (row.chunks_exact(4), w.chunks_exact(4));
    let (rr, rw) = (cr.remainder(), cw.remainder());
    for (a, b) in cr.zip(cw) {
        for l in 0..4 {
            s[l] += f64::from(a[l]) * b[l];
        }
    }
    let mut t = (s[0] + s[2]) + (s[1] + s[3]);
    for (a, b) in rr.iter().zip(rw) {
        t += f64::from(*a) * b;
    }
    t
}

/// `G += sign · Σ_{i ∈ idx} x̂_i x̂_iᵀ` on the lower triangle, 512 rows per f32 product. The
/// columns are split in two halves `[P, Q]`, so the products are `PᵀP`, `QᵀP` and `QᵀQ`:
/// three quarters of the full `x̂ᵀx̂`, which would compute the upper triangle too.
fn gram_add(
    x: &[f32],
    dh: usize,
    idx: &[usize],
    sign: f64,
    g: &mut [f64],
    ws: &mut GramScratch,
) -> Result<(), LinearError> {
    let h = dh / 2;
    let q = dh - h;
    for chunk in idx.chunks(BLOCK) {
        let r = chunk.len();
        ws.p.clear();
        ws.q.clear();
        for &i in chunk {
            let row = &x[i * dh..(i + 1) * dh];
            ws.p.extend_from_slice(&row[..h]);
            ws.q.extend_from_slice(&row[h..]);
        }
        ws.pp.resize(h * h, 0.0);
        ws.qp.resize(q * h, 0.0);
        ws.qq.resize(q * q, 0.0);
        sgemm(h, h, r, 1.0, &ws.p, Op::T, &ws.p, Op::N, 0.0, &mut ws.pp)?;
        sgemm(q, h, r, 1.0, &ws.q, Op::T, &ws.p, Op::N, 0.0, &mut ws.qp)?;
        sgemm(q, q, r, 1.0, &ws.q, Op::T, &ws.q, Op::N, 0.0, &mut ws.qq)?;
        for i in 0..dh {
            let row = &mut g[i * dh..i * dh + i + 1];
            if i < h {
                for (v, &p) in row.iter_mut().zip(&ws.pp[i * h..i * h + i + 1]) {
                    *v += sign * f64::from(p);
                }
            } else {
                let a = i - h;
                let (left, right) = row.split_at_mut(h);
                for (v, &p) in left.iter_mut().zip(&ws.qp[a * h..(a + 1) * h]) {
                    *v += sign * f64::from(p);
                }
                for (v, &p) in right.iter_mut().zip(&ws.qq[a * q..a * q + a + 1]) {
                    *v += sign * f64::from(p);
                }
            }
        }
    }
    Ok(())
}

/// The buffers of [`gram_add`], kept across a class's steps.
#[derive(Default)]
struct GramScratch {
    p: Vec<f32>,
    q: Vec<f32>,
    pp: Vec<f32>,
    qp: Vec<f32>,
    qq: Vec<f32>,
}

/// The finite Newton iterations of one class from `w` (see the [module docs](self)).
fn fit_class(
    x: &[f32],
    dh: usize,
    t: &[f64],
    lambda: f64,
    mut w: Vec<f64>,
    cfg: &Newton,
) -> Result<ClassFit, LinearError> {
    let n = t.len();
    let inv_n = 1.0 / n as f64;
    let mut s: Vec<f64> = x.chunks_exact(dh).map(|r| dot(r, &w)).collect();
    let mut in_g = vec![false; n]; // the rows summed in g
    let mut g = vec![0f64; dh * dh];
    let mut h = vec![0f64; dh * dh];
    let mut ws = GramScratch::default();
    let mut objectives = Vec::new();
    let (mut converged, mut stalled, mut grad_max) = (false, false, f64::INFINITY);
    for _ in 0..cfg.max_iterations {
        // the gradient at w: 2λŵ − (2/n) Σ_A t_i (1 − t_i s_i) x̂_i = 2λŵ − (2/n) Σ_A (t_i − s_i) x̂_i
        let mut res = vec![0f64; dh];
        for (i, r) in x.chunks_exact(dh).enumerate() {
            if t[i] * s[i] < 1.0 {
                let e = t[i] - s[i];
                for (u, &xj) in res.iter_mut().zip(r) {
                    *u += e * f64::from(xj);
                }
            }
        }
        let grad: Vec<f64> =
            w.iter().zip(&res).map(|(&wj, &rj)| 2.0 * lambda * wj - 2.0 * inv_n * rj).collect();
        grad_max = grad.iter().fold(0.0, |a, v| a.max(v.abs()));
        if !grad_max.is_finite() {
            return Err(LinearError::Diverged { iteration: objectives.len(), loss: grad_max });
        }
        if grad_max <= cfg.tolerance {
            converged = true;
            break;
        }
        // G_A from the last one: rows entering and leaving the active set
        let (mut enter, mut leave) = (Vec::new(), Vec::new());
        for i in 0..n {
            let a = t[i] * s[i] < 1.0;
            if a && !in_g[i] {
                enter.push(i);
            } else if !a && in_g[i] {
                leave.push(i);
            }
            in_g[i] = a;
        }
        gram_add(x, dh, &enter, 1.0, &mut g, &mut ws)?;
        gram_add(x, dh, &leave, -1.0, &mut g, &mut ws)?;
        // H = G_A/n + λI, half the Hessian of F on the active set
        for i in 0..dh {
            for j in 0..=i {
                h[i * dh + j] = g[i * dh + j] * inv_n;
            }
            h[i * dh + i] += lambda;
        }
        // the step dv = −H⁻¹∇F/2 (on the exact gradient, so a descent direction for any
        // positive definite H, however its f32 products rounded); w + dv is ŵ_A up to the
        // rounding of H
        let mut dv: Vec<f64> = grad.iter().map(|g| -0.5 * g).collect();
        cholesky(&mut h, dh)?;
        cholesky_solve(&h, dh, &mut dv)?;
        // the exact line search on F(w + a·dv), a ∈ (0, 1]
        let sd: Vec<f64> = x.chunks_exact(dh).map(|r| dot(r, &dv)).collect();
        let (wdv, dvdv) =
            w.iter().zip(&dv).fold((0.0, 0.0), |(p, q), (a, b)| (p + a * b, q + b * b));
        let slope = |a: f64| {
            let mut sum = 0.0;
            for i in 0..n {
                let m = 1.0 - t[i] * (s[i] + a * sd[i]);
                if m > 0.0 {
                    sum -= t[i] * sd[i] * m;
                }
            }
            2.0 * inv_n * sum + 2.0 * lambda * (wdv + a * dvdv)
        };
        if slope(0.0) >= 0.0 {
            stalled = true; // no descent along the Newton direction: rounding's floor
            break;
        }
        let a = if slope(1.0) <= 0.0 {
            1.0
        } else {
            let (mut lo, mut hi) = (0.0f64, 1.0f64);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if slope(mid) > 0.0 {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            0.5 * (lo + hi)
        };
        for (v, d) in w.iter_mut().zip(&dv) {
            *v += a * d;
        }
        for (v, d) in s.iter_mut().zip(&sd) {
            *v += a * d;
        }
        let loss: f64 = t.iter().zip(&s).map(|(&ti, &si)| (1.0 - ti * si).max(0.0).powi(2)).sum();
        objectives.push(loss * inv_n + lambda * w.iter().map(|v| v * v).sum::<f64>());
    }
    Ok(ClassFit { w, objectives, grad_max, converged, stalled })
}
