//! Exact f32 search (faiss's "flat" index): every query against every training row, in
//! blocks, with the distances finished and handed to a visitor tile by tile, so the full
//! distance matrix is never materialised.
//!
//! ```text
//! L2²(q, t) = ||q||² + ||t||² − 2 q·t      (the GEMM form, as faiss IndexFlatL2)
//! L1(q, t)  = Σ_i |q_i − t_i|               (direct, same blocking, no GEMM form exists)
//! cos(q, t) = 1 − q·t / (||q|| ||t||)         (same products; 1 when a norm is 0)
//! ```
//!
//! Blocking (BLIS order, products by a register-blocked micro-kernel rather than a library
//! GEMM): queries are split into blocks of up to 256, each packed once into panels of 32
//! (`[k][32]`, one vector holds one dimension of 16 queries). Training rows stream once, in
//! super-chunks of 3,072 rows packed (in parallel) into 12-row tiles (`[k][12]`); every
//! query block (in parallel, rayon) then walks the super-chunk in chunks of 192 rows and
//! slices of 256 dimensions, multiplying each tile against every panel into a `192 x 256`
//! f32 accumulator that stays in L2. After the last slice the chunk's distances are
//! finished (norms, clamp) and visited in increasing training index. (A first version
//! packed the training rows per query block: it re-read the 614 MB training set from
//! memory 40 times and spent most of its time waiting for it.)

//! **Bits.** Every accumulator is one sequential chain over the dimensions (`fma` for the
//! dot product, `+ |a − b|` for L1), whatever the kernel, block sizes or thread count: the
//! AVX-512, AVX2 and scalar kernels return the same bits.
//!
//! **Error of the GEMM form.** The norms are summed in f64 (exact products, rounding
//! `≈ 2⁻⁵³·dim` relative) and the dot in f32 with `dim` fused steps, so
//! `|L2̂ − L2| ≤ (dim + 2) · 2⁻²⁴ · (||q||² + ||t||²) + (dim + 2) · 2⁻¹⁴⁹` (first order; the
//! last term is underflow; in practice the error is ~√dim times smaller). It is absolute, not relative: two training rows whose
//! exact distances to a query differ by less than this may swap. A negative result (only
//! possible from this rounding) is clamped to 0, as faiss does. On CIFAR-10 pixels as f32
//! (`dim` 3,072, norms up to 2·10⁸) the 1-NN predictions equal faiss's and the exact u8
//! search's (docs/bench/knn.md counts the differences).
//!
//! **Cosine** uses the same dot product and f64 norms, finished in f64 and clamped to
//! `[0, 2]`: `|coŝ − cos| ≤ (dim + 4) · 2⁻²⁴` (the dot's error is at most
//! `dim · 2⁻²⁴ · ||q|| ||t||`), plus underflow for rows with subnormal norms.
//!
//! **NaN and overflow.** A NaN input makes the affected distances NaN; so does, for L2, a dot
//! product that overflows f32 (|values| beyond about `1.8·10¹⁹ / √dim`: the GEMM form has no
//! finite answer there, and a clamp would turn it into 0). Every NaN distance is
//! canonicalised to the positive quiet NaN, which `f32::total_cmp` ranks after `+∞`, so such
//! rows are the farthest, ties broken by index, identically on every kernel.
//!
//! **Speed** (CIFAR-10 as f32, 10,000 x 50,000 x 3,072, k = 1, 2 threads, 2026-12-04 on a
//! 2-vCPU Xeon; commands in docs/bench/knn.md): at load 0.5-1.6, L2 12.29 s against faiss
//! IndexFlatL2's 48.95 s in the same script run (0.25x; 250 GFLOP/s), the u8 search 3.88 s;
//! at load ~9-11, L2 43.1 s vs 336.4 s and L1 90.2 s. The AVX-512 micro-kernel (24 zmm accumulators, 2 FMA per
//! broadcast) reached 48 GFLOP/s on one thread end to end where `matrixmultiply`
//! ([`crate::gemm::sgemm`], then built with AVX2/FMA kernels only) gave 25-41 on the bare
//! product, so no library GEMM is used here. `sgemm` now has its AVX-512 kernels (105-160
//! GFLOP/s on one thread on the callers' larger shapes: the table in `gemm/dense.rs`); this path
//! was not measured against it.

use crate::arch::{F32_QP, F32_TR, F32Tile, scalar};
use crate::{KernelKind, LinalgError, Metric, RowsF32};

/// Training rows per chunk (a multiple of [`F32_TR`]).
const CHUNK: usize = 16 * F32_TR;
/// Dimensions per slice (the `kc` of GEMM blocking).
const KC: usize = 256;
/// Most queries per block (a multiple of [`F32_QP`]).
const MAX_BLOCK: usize = 8 * F32_QP;

/// The f32 micro-kernel of `kernel` for `metric` (an error if this CPU cannot run it).
pub(crate) fn tile_fn(kernel: KernelKind, metric: Metric) -> Result<F32Tile, LinalgError> {
    if !kernel.is_available() {
        return Err(LinalgError::Kernel(crate::KernelError::Unavailable { name: kernel.name() }));
    }
    let l1 = metric == Metric::L1;
    Ok(match (kernel, l1) {
        (KernelKind::Scalar, true) => scalar::tile_f32::<true>,
        (KernelKind::Scalar, false) => scalar::tile_f32::<false>,
        #[cfg(target_arch = "x86_64")]
        (KernelKind::Avx2, true) => |p, b, c, l| {
            // SAFETY: returned only after `is_available` confirmed AVX2 and FMA.
            unsafe { crate::arch::x86_64::avx2::tile_f32::<true>(p, b, c, l) }
        },
        #[cfg(target_arch = "x86_64")]
        (KernelKind::Avx2, false) => |p, b, c, l| {
            // SAFETY: returned only after `is_available` confirmed AVX2 and FMA.
            unsafe { crate::arch::x86_64::avx2::tile_f32::<false>(p, b, c, l) }
        },
        #[cfg(target_arch = "x86_64")]
        (KernelKind::Avx512, true) => |p, b, c, l| {
            // SAFETY: returned only after `is_available` confirmed AVX-512 F.
            unsafe { crate::arch::x86_64::avx512::tile_f32::<true>(p, b, c, l) }
        },
        #[cfg(target_arch = "x86_64")]
        (KernelKind::Avx512, false) => |p, b, c, l| {
            // SAFETY: returned only after `is_available` confirmed AVX-512 F.
            unsafe { crate::arch::x86_64::avx512::tile_f32::<false>(p, b, c, l) }
        },
        #[cfg(not(target_arch = "x86_64"))]
        (other, _) => return Err(LinalgError::KernelUnavailable { name: other.name() }),
    })
}

/// Squared norms in f64 (products exact, sequential sum), the same for every kernel; empty
/// for metrics that need none.
pub(crate) fn norms_f32(rows: RowsF32<'_>, metric: Metric) -> Vec<f64> {
    use rayon::prelude::*;
    if metric == Metric::L1 {
        return Vec::new();
    }
    (0..rows.len())
        .into_par_iter()
        .with_min_len(256)
        .map(|i| rows.row(i).iter().map(|&x| f64::from(x) * f64::from(x)).sum())
        .collect()
}

/// Queries per block for `n_queries`: up to [`MAX_BLOCK`], fewer so every thread gets at
/// least two blocks. Results do not depend on it.
pub(crate) fn block_queries(n_queries: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let n_panels = n_queries.div_ceil(F32_QP).max(1);
    (MAX_BLOCK / F32_QP).min(n_panels.div_ceil(2 * threads)).max(1) * F32_QP
}

/// The finished distance from a raw accumulator: `raw` itself for L1, the GEMM form
/// (clamped at 0) for L2, `1 − raw / (|q| |t|)` for cosine; NaN canonicalised.
#[inline(always)]
fn finish(metric: Metric, raw: f32, qn: f64, tn: f64) -> f32 {
    let d = match metric {
        Metric::L1 => raw,
        // an overflowed dot product (±∞) has no meaningful difference: NaN, ranked last
        Metric::L2 if !raw.is_finite() => f32::NAN,
        Metric::L2 => {
            let d = ((qn + tn) - 2.0 * f64::from(raw)) as f32;
            if d < 0.0 { 0.0 } else { d }
        }
        Metric::Cosine if !raw.is_finite() => f32::NAN,
        // no direction: similarity 0 by definition
        Metric::Cosine if qn == 0.0 || tn == 0.0 => 1.0,
        Metric::Cosine => {
            let c = f64::from(raw) / (qn.sqrt() * tn.sqrt());
            (1.0 - c).clamp(0.0, 2.0) as f32
        }
    };
    if d.is_nan() { f32::NAN } else { d }
}

/// One block of queries, packed once into panels of [`F32_QP`] (`[panel][k][32]`).
struct Block {
    nq: usize,
    packed: Vec<f32>,
    norms: Vec<f64>,
}

/// Training rows packed per super-chunk: tiles of [`F32_TR`] rows, `[tile][k][12]`.
const SUPER: usize = 16 * CHUNK;

/// Visits `(state, query, train, distance)` for every query and every training row: each
/// query's rows in increasing `train` order. `states[b]` belongs to queries
/// `b * bq .. (b + 1) * bq` (the last block may be shorter) and is the `state` passed for
/// them, `query` being the position inside the block.
///
/// Training rows stream once: each super-chunk of [`SUPER`] rows is packed (in parallel),
/// then every query block (in parallel) walks it in L2-sized chunks.
pub(crate) fn search_f32<S: Send, F: Fn(&mut S, usize, usize, f32) + Sync>(
    tile: F32Tile,
    metric: Metric,
    queries: RowsF32<'_>,
    train: RowsF32<'_>,
    bq: usize,
    states: &mut [S],
    visit: F,
) {
    use rayon::prelude::*;
    let (dim, nq, n_train) = (train.dim(), queries.len(), train.len());
    if nq == 0 || n_train == 0 {
        return;
    }
    let tnorms = norms_f32(train, metric);
    let plen = dim * F32_QP;
    let mut blocks: Vec<Block> = (0..nq.div_ceil(bq))
        .into_par_iter()
        .map(|b| {
            let rows = queries.slice(b * bq, (b * bq + bq).min(nq));
            let mut packed = vec![0f32; rows.len().div_ceil(F32_QP) * plen];
            for (q, row) in rows.iter().enumerate() {
                let panel = &mut packed[(q / F32_QP) * plen..][..plen];
                for (k, &x) in row.iter().enumerate() {
                    panel[k * F32_QP + q % F32_QP] = x;
                }
            }
            Block { nq: rows.len(), packed, norms: norms_f32(rows, metric) }
        })
        .collect();
    let tlen = dim * F32_TR;
    let mut bpack = vec![0f32; SUPER.min(n_train).div_ceil(F32_TR) * tlen];
    for s0 in (0..n_train).step_by(SUPER) {
        let ns = SUPER.min(n_train - s0);
        let n_tiles = ns.div_ceil(F32_TR);
        bpack[..n_tiles * tlen].par_chunks_mut(tlen.max(1)).enumerate().for_each(|(tl, out)| {
            for r in 0..F32_TR {
                let t = tl * F32_TR + r;
                if t < ns {
                    for (k, &x) in train.row(s0 + t).iter().enumerate() {
                        out[k * F32_TR + r] = x;
                    }
                } else {
                    for k in 0..dim {
                        out[k * F32_TR + r] = 0.0;
                    }
                }
            }
        });
        let bpack = &bpack[..n_tiles * tlen];
        blocks.par_iter_mut().zip(states.par_iter_mut()).for_each(|(blk, state)| {
            let n_panels = blk.nq.div_ceil(F32_QP);
            let ldc = n_panels * F32_QP;
            let mut acc = vec![0f32; CHUNK * ldc];
            for c0 in (0..ns).step_by(CHUNK) {
                let nt = CHUNK.min(ns - c0);
                let tiles = nt.div_ceil(F32_TR);
                let t0 = c0 / F32_TR;
                acc[..tiles * F32_TR * ldc].fill(0.0);
                for k0 in (0..dim).step_by(KC) {
                    let kc = KC.min(dim - k0);
                    for tl in 0..tiles {
                        let bp = &bpack[(t0 + tl) * tlen + k0 * F32_TR..][..kc * F32_TR];
                        for p in 0..n_panels {
                            let a = &blk.packed[p * plen + k0 * F32_QP..][..kc * F32_QP];
                            tile(a, bp, &mut acc[tl * F32_TR * ldc + p * F32_QP..], ldc);
                        }
                    }
                }
                for t in 0..nt {
                    let tg = s0 + c0 + t;
                    let row = &acc[t * ldc..t * ldc + blk.nq];
                    match metric {
                        Metric::L1 => {
                            for (q, &raw) in row.iter().enumerate() {
                                visit(state, q, tg, finish(metric, raw, 0.0, 0.0));
                            }
                        }
                        Metric::L2 | Metric::Cosine => {
                            let tn = tnorms[tg];
                            for ((q, &raw), &qn) in row.iter().enumerate().zip(&blk.norms) {
                                visit(state, q, tg, finish(metric, raw, qn, tn));
                            }
                        }
                    }
                }
            }
        });
    }
}
