//! Exact k-NN among the rows of other groups ([`knn_u8_across_groups`]): every row of one
//! set is a query, and its candidates are the rows whose group differs from its own. This is
//! k-fold cross-validation's search with the folds as groups, done with each cross-group pair
//! computed ONCE instead of once per side.
//!
//! ```text
//! neighbours(i) = the k rows j with group(j) ≠ group(i), smallest (d(i, j), j) first
//! ```
//!
//! How: the rows are ordered by (group, row) through a gathered view (no pixels are copied),
//! so each group is one run of positions. A block of queries from group `g` streams every row
//! of the groups after `g` through the blocked u8 driver (the same tile kernels as
//! [`knn_u8`](crate::knn_u8)); each distance updates the query's top-k AND the streamed row's
//! top-k. That covers each unordered cross-group pair once and no same-group pair: with `G`
//! equal groups, `n² (1 − 1/G) / 2` distances where one search per group computes twice as
//! many.
//!
//! Parallelism: query blocks run on rayon; the candidate sets they update are one per worker
//! thread (a block takes its worker's set once, never contended), merged at the end, so the
//! inner loop takes no lock. A candidate is keyed `(distance, row)` as one `u64`; the `k`
//! smallest keys of a row are one set whichever worker saw which candidate, so the result
//! does not depend on the thread count or on which worker ran which block. The sets share one
//! bound per row (the smallest k-th key any of them has reached, relaxed atomics), so a set
//! refuses what another already beat instead of collecting its own k best of everything
//! (`TopSets::offer` says why this is exact).
//!
//! Measured on 25,000 CIFAR-10 rows, 5 folds, L1, k up to 100 (`cargo xtask bench cv
//! --metrics l1 --n-train 25000`, CV CPU seconds, 2-core Zen 3 shared with other builds):
//! one search per fold 12.6 s; rayon `fold`/`reduce` of per-task heaps 10.8 s (one set per
//! split task, each filled from nothing and merged: heap updates, fresh pages and merges
//! cost about as much as the distances saved); the same with the shared bound 8.6 s;
//! per-worker sets 7.6 s; a `2k` buffer per row instead of a heap 7.7 s (the same within the
//! noise; kept as the simpler code, at twice the memory: `workers x n x 2k` keys at most).
//!
//! ```
//! use imgclass_linalg::{Metric, Rows, knn_u8_across_groups};
//! // 1-D rows 0, 2, 3, 9 in groups 0, 0, 1, 1
//! let rows = [0u8, 2, 3, 9];
//! let nb = knn_u8_across_groups(Rows::new(&rows, 4, 1)?, &[0, 0, 1, 1], 2, Metric::L1)?;
//! // row 0 (group 0) sees rows 2 and 3 only: |0-3| = 3, |0-9| = 9
//! assert_eq!(nb.query(0), (&[2u32, 3][..], &[3u32, 9][..]));
//! // row 2 (group 1) sees rows 0 and 1: |3-2| = 1, |3-0| = 3
//! assert_eq!(nb.query(2), (&[1u32, 0][..], &[1u32, 3][..]));
//! # Ok::<(), imgclass_linalg::LinalgError>(())
//! ```

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::arch::U8Kernel;
use crate::distance::{check_u8_dim, with_u8_kernel};
use crate::driver::{block_queries, block_u8, norms};
use crate::{KernelKind, LinalgError, Metric, Neighbors, Rows, RowsU8};

/// For every row of `rows`, its `k` nearest rows among those whose group id differs
/// (`groups[i]` is row `i`'s group; any `usize` values, in any order), as a [`Neighbors`]
/// with one query per row in row order, sorted by (distance, row index). Indices are row
/// indices of `rows`. The kernel is chosen by [`KernelKind::detect`].
///
/// Equal, for every row `i`, to [`knn_u8`](crate::knn_u8) with `i` as the query and the rows
/// of other groups (in increasing row order) as training rows, with positions mapped back to
/// row indices; but each cross-group distance is computed once, not twice.
///
/// Errors: `groups.len() != rows.len()` ([`LinalgError::GroupsLen`]), `k == 0`
/// ([`LinalgError::ZeroK`]), `k` above the rows outside some row's group
/// ([`LinalgError::KTooLargeForGroups`]), rows longer than
/// [`max_u8_dim`](crate::max_u8_dim), more rows than `u32` indices, [`Metric::Cosine`].
///
/// ```
/// use imgclass_linalg::{LinalgError, Metric, Rows, knn_u8_across_groups};
/// // two 2-D rows per group, three groups
/// let px = [0u8, 0, 1, 1, 4, 4, 5, 5, 9, 9, 8, 8];
/// let rows = Rows::new(&px, 6, 2)?;
/// let groups = [7, 7, 3, 3, 0, 0];
/// let nb = knn_u8_across_groups(rows, &groups, 3, Metric::L2)?;
/// // row 1 = (1, 1): rows 2 (4,4) at 9 + 9 = 18, 3 (5,5) at 32, 5 (8,8) at 98
/// assert_eq!(nb.query(1), (&[2u32, 3, 5][..], &[18u32, 32, 98][..]));
/// // each row has 4 rows outside its group: k = 5 is refused
/// let err = knn_u8_across_groups(rows, &groups, 5, Metric::L2).unwrap_err();
/// assert_eq!(err, LinalgError::KTooLargeForGroups { k: 5, group: 0, n_other: 4 });
/// # Ok::<(), imgclass_linalg::LinalgError>(())
/// ```
pub fn knn_u8_across_groups(
    rows: RowsU8<'_>,
    groups: &[usize],
    k: usize,
    metric: Metric,
) -> Result<Neighbors, LinalgError> {
    knn_u8_across_groups_with(KernelKind::detect()?, rows, groups, k, metric)
}

/// [`knn_u8_across_groups`] with an explicit kernel (an error if this CPU cannot run it).
pub fn knn_u8_across_groups_with(
    kernel: KernelKind,
    rows: RowsU8<'_>,
    groups: &[usize],
    k: usize,
    metric: Metric,
) -> Result<Neighbors, LinalgError> {
    let n = rows.len();
    if groups.len() != n {
        return Err(LinalgError::GroupsLen { expected: n, found: groups.len() });
    }
    check_u8_dim(rows.dim(), metric)?;
    if k == 0 {
        return Err(LinalgError::ZeroK);
    }
    if u32::try_from(n).is_err() {
        return Err(LinalgError::TooManyRows { n_train: n });
    }
    // rows by (group, row): a stable sort keeps each group's rows in increasing order
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| groups[i]);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for p in 1..=n {
        if p == n || groups[order[p]] != groups[order[start]] {
            runs.push((start, p));
            start = p;
        }
    }
    if let Some(&(s, e)) = runs.iter().max_by_key(|&&(s, e)| (e - s, std::cmp::Reverse(s))) {
        let n_other = n - (e - s);
        if k > n_other {
            return Err(LinalgError::KTooLargeForGroups { k, group: groups[order[s]], n_other });
        }
    }
    let (storage, index) = rows.storage();
    let gathered: Vec<usize> = order.iter().map(|&i| index.map_or(i, |ix| ix[i])).collect();
    let sorted = Rows::gather(storage, rows.dim(), &gathered)?;
    tracing::debug!(
        kernel = kernel.name(),
        %metric,
        n_rows = n,
        n_groups = runs.len(),
        dim = rows.dim(),
        k,
        "knn_u8_across_groups"
    );
    with_u8_kernel!(kernel, metric, |kern| across_impl(kern, sorted, &order, &runs, k))
}

/// Per-row candidate buffers over sorted positions: `(distance << 32 | row)` keys, at most
/// `2k` per row (allocated at its first candidate); a full buffer keeps its k smallest keys
/// (`select_nth_unstable`, linear), so a kept candidate costs O(1) amortised where a heap
/// paid a sift of `log k` unpredictable branches.
struct TopSets {
    k: usize,
    bufs: Vec<Vec<u64>>,
}

impl TopSets {
    fn new(n: usize, k: usize) -> Self {
        Self { k, bufs: (0..n).map(|_| Vec::new()).collect() }
    }

    /// Offers row `p` the candidate at distance `d` whose row is `row()` (looked up only if
    /// the distance can make it): kept if its key is at most `shared[p]`.
    ///
    /// `shared[p]` is the smallest k-th key any set has published for row `p` (relaxed
    /// loads and stores; a racing store may leave a larger one, never a value no set had).
    /// Each published value is the k-th smallest of k candidates of `p`, so it is at least
    /// the final k-th key `K*`: a key above it is not among the k smallest, and a key `<= K*`
    /// is never refused. A buffer drops a key only when k smaller ones are kept, so never one
    /// of the final k. So the final k survive, in some set, whichever set saw them first;
    /// the refusals only save work (a set starts with every other set's bound).
    #[inline(always)]
    fn offer(&mut self, shared: &[AtomicU64], p: usize, d: u32, row: impl FnOnce() -> usize) {
        let bound = shared[p].load(Relaxed);
        if (u64::from(d) << 32) > bound {
            return;
        }
        let key = pack(d, row());
        if key <= bound {
            self.keep(shared, p, key);
        }
    }

    /// Appends `key` to row `p`'s buffer; a full buffer is cut to its k smallest keys and
    /// the k-th is published to `shared[p]`.
    fn keep(&mut self, shared: &[AtomicU64], p: usize, key: u64) {
        let k = self.k;
        let buf = &mut self.bufs[p];
        if buf.capacity() == 0 {
            buf.reserve_exact(2 * k);
        }
        buf.push(key);
        if buf.len() >= 2 * k {
            let (_, &mut kth, _) = buf.select_nth_unstable(k - 1);
            buf.truncate(k);
            if kth < shared[p].load(Relaxed) {
                shared[p].store(kth, Relaxed);
            }
        }
    }
}

#[inline(always)]
fn pack(d: u32, row: usize) -> u64 {
    (u64::from(d) << 32) | row as u64
}

/// `sorted`: the rows by (group, row); `order[p]`: the row at sorted position `p`; `runs`:
/// each group's range of positions, in order. Checked by the caller: `k` fits every group.
fn across_impl<K: U8Kernel>(
    kern: K,
    sorted: RowsU8<'_>,
    order: &[usize],
    runs: &[(usize, usize)],
    k: usize,
) -> Neighbors {
    let n = sorted.len();
    let mut indices = vec![0u32; n * k];
    let mut distances = vec![0u32; n * k];
    if n == 0 {
        return Neighbors { k, indices, distances };
    }
    let tn = if K::METRIC == Metric::L2 { norms(sorted) } else { Vec::new() };
    // query blocks inside each group that has later groups: (first, end, end of its group)
    let bq = block_queries::<K>(n);
    let blocks: Vec<(usize, usize, usize)> = runs
        .iter()
        .filter(|&&(_, e)| e < n)
        .flat_map(|&(s, e)| (s..e).step_by(bq).map(move |b0| (b0, (b0 + bq).min(e), e)))
        .collect();
    let shared: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(u64::MAX)).collect();
    // one top-k set per worker, merged at the end; a block locks its worker's set once (never
    // contended: a worker runs one block at a time, and a block makes no rayon call)
    let workers = rayon::current_num_threads().max(1);
    let sets: Vec<Mutex<TopSets>> = (0..workers).map(|_| Mutex::new(TopSets::new(n, k))).collect();
    blocks.par_iter().for_each(|&(b0, b1, e)| {
        let slot = rayon::current_thread_index().unwrap_or(0) % workers;
        let mut st = sets[slot].lock().unwrap_or_else(PoisonError::into_inner);
        let later = sorted.slice(e, n);
        let later_norms = if tn.is_empty() { &tn[..] } else { &tn[e..] };
        block_u8(kern, sorted.slice(b0, b1), later, later_norms, |q, t, d| {
            let (a, b) = (b0 + q, e + t);
            st.offer(&shared, a, d, || order[b]);
            st.offer(&shared, b, d, || order[a]);
        });
    });
    let sets: Vec<TopSets> =
        sets.into_iter().map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner)).collect();
    // per row: every set's surviving keys, of which the k smallest in order
    let lists: Vec<Vec<u64>> = (0..n)
        .into_par_iter()
        .map(|p| {
            let mut all: Vec<u64> = sets.iter().flat_map(|s| s.bufs[p].iter().copied()).collect();
            if all.len() > k {
                all.select_nth_unstable(k - 1);
                all.truncate(k);
            }
            all.sort_unstable();
            all
        })
        .collect();
    for (list, &row) in lists.iter().zip(order) {
        // every row has at least k candidates (checked), each offered once per side, and the
        // final k of each survive (`TopSets::offer`)
        debug_assert_eq!(list.len(), k);
        for (j, &key) in list.iter().enumerate().take(k) {
            indices[row * k + j] = key as u32;
            distances[row * k + j] = (key >> 32) as u32;
        }
    }
    Neighbors { k, indices, distances }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn_u8_with;
    use imgclass_testkit::random::u8_rows;

    /// The lecture's loop: every distance by a plain loop over elements, then sort.
    fn naive(px: &[u8], dim: usize, groups: &[usize], k: usize, metric: Metric) -> Neighbors {
        let n = groups.len();
        let row = |i: usize| &px[i * dim..(i + 1) * dim];
        let mut indices = Vec::new();
        let mut distances = Vec::new();
        for i in 0..n {
            let mut all: Vec<(u32, u32)> = (0..n)
                .filter(|&j| groups[j] != groups[i])
                .map(|j| {
                    let mut d = 0u32;
                    for (&a, &b) in row(i).iter().zip(row(j)) {
                        let diff = (i32::from(a) - i32::from(b)).unsigned_abs();
                        d += if metric == Metric::L1 { diff } else { diff * diff };
                    }
                    (d, j as u32)
                })
                .collect();
            all.sort_unstable();
            for &(d, j) in &all[..k] {
                indices.push(j);
                distances.push(d);
            }
        }
        Neighbors { k, indices, distances }
    }

    /// Group layouts: equal, unequal with a group of one, interleaved arbitrary ids, two
    /// groups of very different sizes.
    fn layouts(n: usize) -> Vec<Vec<usize>> {
        vec![
            (0..n).map(|i| i % 5).collect(),
            (0..n)
                .map(|i| {
                    if i == n / 2 {
                        9
                    } else if i < n / 3 {
                        4
                    } else {
                        1
                    }
                })
                .collect(),
            (0..n).map(|i| [1000, 7, 7, 2, 7, 31][(i * 7 + i / 3) % 6]).collect(),
            (0..n).map(|i| usize::from(i % 11 == 3)).collect(),
        ]
    }

    /// The largest k a layout allows: the rows outside its largest group.
    fn k_max(groups: &[usize]) -> usize {
        let mut g = groups.to_vec();
        g.sort_unstable();
        let mut largest = 0;
        for run in g.chunk_by(|a, b| a == b) {
            largest = largest.max(run.len());
        }
        groups.len() - largest
    }

    #[test]
    fn equals_the_naive_loop_on_ties_for_every_kernel_layout_and_k() {
        // pixel values 0..4 on few dimensions: distances repeat all the time, so the order
        // among equal distances (by row index) is tested on every query
        for (n, dim) in [(37, 1), (90, 7), (150, 33), (70, 65)] {
            let px = u8_rows(n as u64 + dim as u64, n, dim, 3);
            let rows = Rows::new(&px, n, dim).expect("rows");
            for groups in layouts(n) {
                let km = k_max(&groups);
                for k in [1, 2, 5, 13, km, km + 1] {
                    for metric in [Metric::L1, Metric::L2] {
                        if k > km {
                            let err = knn_u8_across_groups(rows, &groups, k, metric);
                            assert!(
                                matches!(err, Err(LinalgError::KTooLargeForGroups { n_other, .. }) if n_other == km),
                                "k {k} > {km}: {err:?}"
                            );
                            continue;
                        }
                        let want = naive(&px, dim, &groups, k, metric);
                        for kernel in KernelKind::available() {
                            let got = knn_u8_across_groups_with(kernel, rows, &groups, k, metric)
                                .expect("search");
                            assert_eq!(got, want, "{kernel} n {n} dim {dim} k {k} {metric}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn equals_one_search_per_group_on_a_gathered_view() {
        // the view reads storage rows in a shuffled order with repeats; the reference is the
        // per-group search (`knn_u8`), its training positions mapped back to rows
        let (n_store, dim) = (60, 9);
        let px = u8_rows(3, n_store, dim, 3);
        let index: Vec<usize> = (0..80).map(|i| (i * 37 + 5) % n_store).collect();
        let rows = Rows::gather(&px, dim, &index).expect("rows");
        let groups: Vec<usize> = (0..80).map(|i| [2, 0, 1, 0][i % 4]).collect();
        for metric in [Metric::L1, Metric::L2] {
            let k = 17;
            let got = knn_u8_across_groups(rows, &groups, k, metric).expect("search");
            for g in 0..3 {
                let queries: Vec<usize> = (0..80).filter(|&i| groups[i] == g).collect();
                let train: Vec<usize> = (0..80).filter(|&i| groups[i] != g).collect();
                let qi: Vec<usize> = queries.iter().map(|&i| index[i]).collect();
                let ti: Vec<usize> = train.iter().map(|&i| index[i]).collect();
                let want = knn_u8_with(
                    KernelKind::Scalar,
                    Rows::gather(&px, dim, &qi).expect("q"),
                    Rows::gather(&px, dim, &ti).expect("t"),
                    k,
                    metric,
                )
                .expect("per group");
                for (qpos, &row) in queries.iter().enumerate() {
                    let (wi, wd) = want.query(qpos);
                    let wi: Vec<u32> = wi.iter().map(|&p| train[p as usize] as u32).collect();
                    assert_eq!(got.query(row), (&wi[..], wd), "{metric} row {row}");
                }
            }
        }
    }

    #[test]
    fn same_result_on_one_thread_and_on_many() {
        // enough rows for many query blocks per group, so the accumulators split and merge
        let (n, dim) = (900, 24);
        let px = u8_rows(11, n, dim, 3);
        let rows = Rows::new(&px, n, dim).expect("rows");
        let groups: Vec<usize> = (0..n).map(|i| (i * 13) % 5).collect();
        for metric in [Metric::L1, Metric::L2] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
                pool.expect("pool")
                    .install(|| knn_u8_across_groups(rows, &groups, 40, metric))
                    .expect("search")
            };
            let one = run(1);
            assert_eq!(one, naive(&px, dim, &groups, 40, metric), "{metric}");
            for threads in [2, 3, 7] {
                assert_eq!(run(threads), one, "{metric} {threads} threads");
            }
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let px = [1u8, 2, 3, 4, 5, 6];
        let rows = Rows::new(&px, 3, 2).expect("rows");
        let call = |groups: &[usize], k, metric| knn_u8_across_groups(rows, groups, k, metric);
        assert_eq!(call(&[0, 1, 1], 0, Metric::L1), Err(LinalgError::ZeroK));
        assert_eq!(
            call(&[0, 1, 1], 2, Metric::L1),
            Err(LinalgError::KTooLargeForGroups { k: 2, group: 1, n_other: 1 })
        );
        // one group: no row has any candidate
        assert_eq!(
            call(&[4, 4, 4], 1, Metric::L2),
            Err(LinalgError::KTooLargeForGroups { k: 1, group: 4, n_other: 0 })
        );
        assert_eq!(
            call(&[0, 1], 1, Metric::L1),
            Err(LinalgError::GroupsLen { expected: 3, found: 2 })
        );
        assert_eq!(
            call(&[0, 1, 2, 3], 1, Metric::L1),
            Err(LinalgError::GroupsLen { expected: 3, found: 4 })
        );
        assert!(matches!(
            call(&[0, 1, 2], 1, Metric::Cosine),
            Err(LinalgError::UnsupportedMetric { .. })
        ));
        let long = vec![0u8; max_dim_plus_one()];
        let r = Rows::new(&long, 1, long.len()).expect("rows");
        assert!(matches!(
            knn_u8_across_groups(r, &[0], 1, Metric::L2),
            Err(LinalgError::RowTooLong { .. })
        ));
        // no rows: nothing to search, nothing refused but k = 0
        let empty = Rows::new(&[], 0, 4).expect("rows");
        assert_eq!(knn_u8_across_groups(empty, &[], 3, Metric::L1).map(|nb| nb.n_queries()), Ok(0));
    }

    fn max_dim_plus_one() -> usize {
        crate::max_u8_dim(Metric::L2) + 1
    }
}
