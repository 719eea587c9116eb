//! Streaming exact k-nearest-neighbour search: each query keeps a bounded max-heap of its `k`
//! best `(distance, training index)` pairs while the training rows stream past, so the full
//! distance matrix is never materialised.
//!
//! Order: neighbours sort by (distance, training index), ascending. Training rows reach each
//! query in increasing index order, so a row enters the heap only when its distance is
//! strictly below the current k-th distance; an equal distance with a larger index never
//! displaces an earlier row.
//!
//! ```
//! use imgclass_linalg::{Metric, Rows, knn_u8};
//! // training rows (1-D): 10, 0, 7, 3, 7; query 6
//! let train = [10u8, 0, 7, 3, 7];
//! let query = [6u8];
//! let top = knn_u8(Rows::new(&query, 1, 1)?, Rows::new(&train, 5, 1)?, 3, Metric::L1)?;
//! // |6-7| = 1 (rows 2 and 4, tie broken by index), then |6-3| = 3 (row 3)
//! assert_eq!(top.indices, vec![2, 4, 3]);
//! assert_eq!(top.distances, vec![1, 1, 3]);
//! # Ok::<(), imgclass_linalg::LinalgError>(())
//! ```

use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::arch::U8Kernel;
use crate::distance::{check_dims, with_u8_kernel};
use crate::driver::{block_queries, block_u8, norms};
use crate::flat;
use crate::{KernelKind, LinalgError, Metric, RowsF32, RowsU8};

/// The `k` nearest training rows of each query, in rank order: entries `q * k .. (q + 1) * k`
/// belong to query `q`, sorted by (distance, training index). The one neighbour-result type of
/// the workspace: linalg's exact top-k ([`knn_u8`], [`knn_f32`]), imgclass-knn's `kneighbors`
/// and its approximate indices' `search`.
///
/// The distance type is a parameter rather than always `f32`: the u8 kernels (and the ANN
/// indices' exact re-rank) produce exact integer distances in `u32` (the default), and tests
/// and the distance-weighted vote rely on that exactness (an `f32` holds integers exactly only
/// up to 2²⁴, below the largest L2² of a CIFAR row); the f32 kernels give `Neighbors<f32>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Neighbors<D = u32> {
    /// Neighbours per query.
    pub k: usize,
    /// Training row indices (positions in the training view, e.g. a `Subset`), `n_queries * k`.
    pub indices: Vec<u32>,
    /// Distances (L1 or squared L2; exact for `u32`), `n_queries * k`.
    pub distances: Vec<D>,
}

impl<D: Copy + Into<f64>> Neighbors<D> {
    /// The same neighbours with f64 distances (exact for `u32` and `f32`): the one type
    /// imgclass-knn's classifiers and indices return for pixels and features alike.
    pub fn into_f64(self) -> Neighbors<f64> {
        let distances = self.distances.into_iter().map(Into::into).collect();
        Neighbors { k: self.k, indices: self.indices, distances }
    }
}

impl<D> Neighbors<D> {
    /// Number of queries.
    pub fn n_queries(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// The neighbours of query `q` (indices, distances), nearest first.
    ///
    /// # Panics
    /// When `q >= self.n_queries()`.
    pub fn query(&self, q: usize) -> (&[u32], &[D]) {
        let r = q * self.k..(q + 1) * self.k;
        (&self.indices[r.clone()], &self.distances[r])
    }
}

fn check_k(k: usize, n_train: usize) -> Result<(), LinalgError> {
    if k == 0 {
        return Err(LinalgError::ZeroK);
    }
    if k > n_train {
        return Err(LinalgError::KTooLarge { k, n_train });
    }
    if u32::try_from(n_train).is_err() {
        return Err(LinalgError::TooManyRows { n_train });
    }
    Ok(())
}

/// The `k` nearest rows of `train` for every row of `queries` under `metric`, with the kernel
/// chosen by [`KernelKind::detect`]. Errors: `k == 0`, `k > train.len()`, differing dimensions,
/// rows longer than [`max_u8_dim`](crate::max_u8_dim).
pub fn knn_u8(
    queries: RowsU8<'_>,
    train: RowsU8<'_>,
    k: usize,
    metric: Metric,
) -> Result<Neighbors, LinalgError> {
    knn_u8_with(KernelKind::detect()?, queries, train, k, metric)
}

/// [`knn_u8`] with an explicit kernel (an error if this CPU cannot run it).
pub fn knn_u8_with(
    kernel: KernelKind,
    queries: RowsU8<'_>,
    train: RowsU8<'_>,
    k: usize,
    metric: Metric,
) -> Result<Neighbors, LinalgError> {
    check_dims(&queries, &train)?;
    crate::distance::check_u8_dim(train.dim(), metric)?;
    check_k(k, train.len())?;
    tracing::debug!(
        kernel = kernel.name(),
        %metric,
        n_queries = queries.len(),
        n_train = train.len(),
        dim = train.dim(),
        k,
        "knn_u8"
    );
    with_u8_kernel!(kernel, metric, |kern| knn_impl(kern, queries, train, k))
}

fn knn_impl<K: U8Kernel>(kern: K, queries: RowsU8<'_>, train: RowsU8<'_>, k: usize) -> Neighbors {
    let nq = queries.len();
    let mut indices = vec![0u32; nq * k];
    let mut distances = vec![0u32; nq * k];
    if nq == 0 {
        return Neighbors { k, indices, distances };
    }
    let tn = if K::METRIC == Metric::L2 { norms(train) } else { Vec::new() };
    let bq = block_queries::<K>(nq);
    indices.par_chunks_mut(bq * k).zip(distances.par_chunks_mut(bq * k)).enumerate().for_each(
        |(b, (ich, dch))| {
            let q0 = b * bq;
            let block = queries.slice(q0, (q0 + bq).min(nq));
            let mut heaps: Vec<BinaryHeap<(u32, u32)>> =
                (0..block.len()).map(|_| BinaryHeap::with_capacity(k + 1)).collect();
            let mut thr = vec![u32::MAX; block.len()];
            block_u8(kern, block, train, &tn, |q, t, d| {
                if d < thr[q] {
                    let h = &mut heaps[q];
                    h.push((d, t as u32));
                    if h.len() > k {
                        h.pop();
                    }
                    if h.len() == k {
                        thr[q] = h.peek().map_or(u32::MAX, |top| top.0);
                    }
                }
            });
            for (q, h) in heaps.into_iter().enumerate() {
                for (j, (d, t)) in h.into_sorted_vec().into_iter().enumerate() {
                    ich[q * k + j] = t;
                    dch[q * k + j] = d;
                }
            }
        },
    );
    Neighbors { k, indices, distances }
}

/// One query block's top-k state: a max-heap of `(key, index)` per query and its k-th key.
type HeapBlock = (Vec<BinaryHeap<(i32, u32)>>, Vec<i32>);

/// `f32::total_cmp` as an integer: `key(a) < key(b)` iff `a.total_cmp(&b)` is `Less`.
#[inline(always)]
fn key(d: f32) -> i32 {
    let b = d.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

/// The inverse of [`key`].
#[inline(always)]
fn unkey(k: i32) -> f32 {
    f32::from_bits((k ^ (((k >> 31) as u32) >> 1) as i32) as u32)
}

/// The `k` nearest rows of `train` for every row of `queries` on f32 rows, with the kernel
/// chosen by [`KernelKind::detect`]. Blocked and fused as described in `flat.rs`: L2 in the
/// GEMM form `||q||² + ||t||² − 2 q·t` (absolute error at most about
/// `(dim + 2) · 2⁻²⁴ · (||q||² + ||t||²)`, clamped at 0), L1 directly. Distances compare with
/// `f32::total_cmp`, ties broken by the smaller index; a NaN distance ranks after `+∞`.
/// Every kernel returns the same bits, at any thread count.
///
/// ```
/// use imgclass_linalg::{Metric, Rows, knn_f32};
/// let train = [0.0f32, 0.0, 3.0, 4.0, 1.0, 1.0];
/// let query = [3.0f32, 3.0];
/// let top = knn_f32(Rows::new(&query, 1, 2)?, Rows::new(&train, 3, 2)?, 2, Metric::L2)?;
/// // (3,4): 0 + 1 = 1; (1,1): 4 + 4 = 8; (0,0): 18
/// assert_eq!(top.indices, vec![1, 2]);
/// assert_eq!(top.distances, vec![1.0, 8.0]);
/// # Ok::<(), imgclass_linalg::LinalgError>(())
/// ```
pub fn knn_f32(
    queries: RowsF32<'_>,
    train: RowsF32<'_>,
    k: usize,
    metric: Metric,
) -> Result<Neighbors<f32>, LinalgError> {
    knn_f32_with(KernelKind::detect()?, queries, train, k, metric)
}

/// [`knn_f32`] with an explicit kernel.
pub fn knn_f32_with(
    kernel: KernelKind,
    queries: RowsF32<'_>,
    train: RowsF32<'_>,
    k: usize,
    metric: Metric,
) -> Result<Neighbors<f32>, LinalgError> {
    check_dims(&queries, &train)?;
    check_k(k, train.len())?;
    let tile = flat::tile_fn(kernel, metric)?;
    tracing::debug!(
        kernel = kernel.name(),
        %metric,
        n_queries = queries.len(),
        n_train = train.len(),
        dim = train.dim(),
        k,
        "knn_f32"
    );
    let nq = queries.len();
    let mut indices = vec![0u32; nq * k];
    let mut distances = vec![0f32; nq * k];
    if nq == 0 {
        return Ok(Neighbors { k, indices, distances });
    }
    let bq = flat::block_queries(nq);
    // per block: each query's heap and its k-th key once full (i32::MAX, above every
    // canonical distance, before)
    let mut states: Vec<HeapBlock> = (0..nq.div_ceil(bq))
        .map(|b| {
            let n = bq.min(nq - b * bq);
            ((0..n).map(|_| BinaryHeap::with_capacity(k + 1)).collect(), vec![i32::MAX; n])
        })
        .collect();
    flat::search_f32(tile, metric, queries, train, bq, &mut states, |st, q, t, d| {
        let kd = key(d);
        if kd < st.1[q] {
            let h = &mut st.0[q];
            h.push((kd, t as u32));
            if h.len() > k {
                h.pop();
            }
            if h.len() == k {
                st.1[q] = h.peek().map_or(i32::MAX, |top| top.0);
            }
        }
    });
    for (b, (heaps, _)) in states.into_iter().enumerate() {
        for (ql, h) in heaps.into_iter().enumerate() {
            let q = b * bq + ql;
            for (j, (d, t)) in h.into_sorted_vec().into_iter().enumerate() {
                indices[q * k + j] = t;
                distances[q * k + j] = unkey(d);
            }
        }
    }
    Ok(Neighbors { k, indices, distances })
}
