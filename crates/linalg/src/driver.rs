//! The cache-blocked u8 driver shared by every kernel: packs a block of queries panel by
//! panel, streams the training rows chunk by chunk (a chunk stays in L2 while every panel of
//! the block passes over it), finishes each tile's raw values into exact distances and hands
//! them to a visitor in increasing training index per query.

use crate::arch::{U8Kernel, scalar};
use crate::{Metric, RowsU8};

/// Training rows per chunk: about 384 KiB of rows, a multiple of the tile height.
pub(crate) fn chunk_rows<K: U8Kernel>(dim: usize) -> usize {
    let rows = (384 * 1024) / dim.max(1);
    (rows / K::TR * K::TR).clamp(K::TR, 1 << 16)
}

/// Queries per block for `n_queries` queries: about 256 (a multiple of the panel width),
/// fewer when needed to give every thread at least two blocks.
pub(crate) fn block_queries<K: U8Kernel>(n_queries: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let n_panels = n_queries.div_ceil(K::QP).max(1);
    let per_block = (256 / K::QP).max(1).min(n_panels.div_ceil(2 * threads)).max(1);
    per_block * K::QP
}

/// Squared norms of every row (exact, u32).
pub(crate) fn norms(rows: RowsU8<'_>) -> Vec<u32> {
    use rayon::prelude::*;
    (0..rows.len())
        .into_par_iter()
        .with_min_len(256)
        .map(|i| {
            let r = rows.row(i);
            scalar::dot_u8(r, r)
        })
        .collect()
}

/// Largest tile height any kernel uses.
const MAX_TR: usize = 8;

/// Visits `(query, train, distance)` for every query of `queries` (a block) and every row of
/// `train`, in increasing `train` order for each query. `train_norms` holds the squared norm
/// of every training row when `K::METRIC` is L2 (it is ignored for L1).
pub(crate) fn block_u8<K: U8Kernel, F: FnMut(usize, usize, u32)>(
    kernel: K,
    queries: RowsU8<'_>,
    train: RowsU8<'_>,
    train_norms: &[u32],
    mut visit: F,
) {
    debug_assert!(K::TR <= MAX_TR);
    let dim = train.dim();
    let dim_main = dim - dim % K::STEP;
    let nq = queries.len();
    let n_train = train.len();
    if nq == 0 || n_train == 0 {
        return;
    }
    let qrows: Vec<&[u8]> = (0..nq).map(|i| queries.row(i)).collect();
    let n_panels = nq.div_ceil(K::QP);
    let plen = K::panel_len(dim_main);
    let mut packed = vec![0u8; n_panels * plen];
    for (p, panel) in packed.chunks_exact_mut(plen.max(1)).enumerate().take(n_panels) {
        K::pack(&qrows[p * K::QP..((p + 1) * K::QP).min(nq)], dim_main, panel);
    }
    // L2 constants per query: squared norm, and the kernel's bias correction on the main part
    let (qnorm, qbias): (Vec<u32>, Vec<i32>) = if K::METRIC == Metric::L2 {
        qrows
            .iter()
            .map(|r| {
                let s: u32 = r[..dim_main].iter().map(|&b| u32::from(b)).sum();
                (scalar::dot_u8(r, r), K::DOT_BIAS.wrapping_mul(s as i32))
            })
            .unzip()
    } else {
        (Vec::new(), Vec::new())
    };
    let has_tail = dim_main < dim;
    let tc = chunk_rows::<K>(dim);
    let mut out = vec![0i32; K::TR * K::QP];
    let mut c0 = 0;
    while c0 < n_train {
        let c1 = (c0 + tc).min(n_train);
        for p in 0..n_panels {
            let panel = &packed[p * plen..(p + 1) * plen];
            let q0 = p * K::QP;
            let q_here = K::QP.min(nq - q0);
            let mut t0 = c0;
            while t0 < c1 {
                let nr = K::TR.min(c1 - t0);
                let mut rows: [&[u8]; MAX_TR] = [&[]; MAX_TR];
                for (r, slot) in rows.iter_mut().enumerate().take(K::TR) {
                    *slot = train.row(t0 + r.min(nr - 1));
                }
                kernel.tile(panel, dim_main, &rows[..K::TR], &mut out);
                for (r, trow) in rows.iter().enumerate().take(nr) {
                    let t = t0 + r;
                    let outr = &out[r * K::QP..r * K::QP + q_here];
                    match K::METRIC {
                        // no u8 kernel has this metric (`with_u8_kernel` refuses it)
                        Metric::Cosine => {}
                        Metric::L1 => {
                            for (ql, &raw) in outr.iter().enumerate() {
                                let q = q0 + ql;
                                let mut d = raw as u32;
                                if has_tail {
                                    d += scalar::l1_u8(&qrows[q][dim_main..], &trow[dim_main..]);
                                }
                                visit(q, t, d);
                            }
                        }
                        Metric::L2 => {
                            let tn = train_norms[t];
                            for (ql, &raw) in outr.iter().enumerate() {
                                let q = q0 + ql;
                                // exact modulo 2^32 (the kernels' i32 lanes wrap); the true
                                // distance fits u32 for rows of at most `max_u8_dim` elements,
                                // so the wrapping sum is the distance
                                let mut dot = raw.wrapping_add(qbias[q]) as u32;
                                if has_tail {
                                    dot = dot.wrapping_add(scalar::dot_u8(
                                        &qrows[q][dim_main..],
                                        &trow[dim_main..],
                                    ));
                                }
                                visit(
                                    q,
                                    t,
                                    qnorm[q].wrapping_add(tn).wrapping_sub(dot.wrapping_mul(2)),
                                );
                            }
                        }
                    }
                }
                t0 += K::TR;
            }
        }
        c0 = c1;
    }
}
