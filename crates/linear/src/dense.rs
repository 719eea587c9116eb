//! The general path: minibatch SGD on f32 feature rows (any [`Dataset`] of features, made by
//! a transform or an extractor), with the same objective, initialisation, minibatch order,
//! learning-rate schedule, momentum and divergence rule as the u8 path of `sgd.rs`.
//!
//! Each iteration materialises the minibatch as `B x D` preprocessed f32 rows and runs two
//! general products ([`imgclass_linalg::gemm::sgemm`]): `S = X̃ Wᵀ` and `dW = dSᵀ X̃`. On one
//! thread, so a fit has the same bits at any thread count. The u8 path stays the raw-pixel
//! specialisation: it fuses the preprocessing into integer kernels, which this path has no
//! use for.
//!
//! [`Dataset`]: imgclass_core::Dataset

use imgclass_core::Rows;
use imgclass_linalg::gemm::{Op, sgemm};
use imgclass_loss::LossError;

use crate::LinearError;
use crate::model::TrainingReport;
use crate::sgd::{Batches, Run};

/// What a dense fit hands back (the weights are updated in place).
pub(crate) struct DenseDone {
    pub(crate) b: Vec<f32>,
    pub(crate) epochs_done: usize,
    pub(crate) pos: usize,
    pub(crate) lr: f64,
}

/// Runs `run.iterations` SGD updates of `w` (`c x d`, row-major) on `rows`, drawing
/// minibatches of training positions from `batches`; records the loss curve in `report`.
pub(crate) fn train_dense(
    run: &Run<'_>,
    rows: Rows<'_, f32>,
    w: &mut [f32],
    mut batches: Batches<'_, usize>,
    report: &mut TrainingReport,
) -> Result<DenseDone, LinearError> {
    let p = &run.p;
    let (c, d, bs) = (p.n_classes, p.pre.scale.len(), run.batch_size);
    let (scale, offset) = (p.pre.scale, p.pre.offset);
    let mut b = vec![0.0f32; c];
    let mut vw = vec![0.0f32; if run.momentum > 0.0 { c * d } else { 0 }];
    let mut vb = vec![0.0f32; c];
    let mut pos: Vec<usize> = Vec::with_capacity(bs);
    let mut labels: Vec<u32> = Vec::with_capacity(bs);
    let mut x = vec![0.0f32; bs * d];
    let mut scores = vec![0.0f32; bs * c];
    let mut dscores = vec![0.0f32; bs * c];
    let mut dw = vec![0.0f32; c * d];
    let mut first_loss: Option<f64> = None;
    let mut lr = batches.lr();
    let diverged = |iteration, loss| LinearError::Diverged { iteration, loss };
    for it in 0..run.iterations {
        lr = batches.draw(bs, &mut pos, &mut labels);
        let m = pos.len();
        for (xr, &i) in x.chunks_exact_mut(d).zip(&pos) {
            for (((o, &v), &s), &off) in xr.iter_mut().zip(rows.row(i)).zip(scale).zip(offset) {
                *o = v * s + off;
            }
        }
        let (xm, sm, dsm) = (&x[..m * d], &mut scores[..m * c], &mut dscores[..m * c]);
        sgemm(m, c, d, 1.0, xm, Op::N, w, Op::T, 0.0, sm)?;
        for row in sm.chunks_exact_mut(c) {
            row.iter_mut().zip(&b).for_each(|(s, bj)| *s += bj);
        }
        let data = match p.loss.loss_grad_into(sm, c, &labels, dsm) {
            Ok(v) => v,
            Err(LossError::NonFinite { what, .. }) => {
                let loss = if what == "scores" { f64::NAN } else { f64::INFINITY };
                return Err(diverged(it, loss));
            }
            Err(e) => return Err(e.into()),
        };
        sgemm(c, d, m, 1.0, dsm, Op::T, xm, Op::N, 0.0, &mut dw)?;
        let reg = match p.reg.add_grad(w, &mut dw) {
            Ok(r) => r,
            Err(LossError::NonFinite { .. }) => return Err(diverged(it, f64::INFINITY)),
            Err(e) => return Err(e.into()),
        };
        let total = f64::from(data) + reg;
        let limit = run.divergence_factor * first_loss.unwrap_or(total).max(1.0);
        if !total.is_finite() || total > limit {
            return Err(diverged(it, total));
        }
        first_loss.get_or_insert(total);
        report.push(data, reg as f32);
        let (lr32, mom) = (lr as f32, run.momentum as f32);
        if vw.is_empty() {
            w.iter_mut().zip(&dw).for_each(|(wi, g)| *wi -= lr32 * g);
        } else {
            for ((wi, vi), g) in w.iter_mut().zip(vw.iter_mut()).zip(&dw) {
                *vi = mom * *vi - lr32 * g;
                *wi += *vi;
            }
        }
        if run.fit_bias {
            let mut db = vec![0.0f32; c];
            for grow in dsm.chunks_exact(c) {
                db.iter_mut().zip(grow).for_each(|(a, g)| *a += g);
            }
            for ((bj, vj), &g) in b.iter_mut().zip(vb.iter_mut()).zip(&db) {
                if run.momentum > 0.0 {
                    *vj = mom * *vj - lr32 * g;
                    *bj += *vj;
                } else {
                    *bj -= lr32 * g;
                }
            }
        }
    }
    Ok(DenseDone { b, epochs_done: batches.epochs_done, pos: batches.pos, lr })
}
