//! HNSW (Malkov & Yashunin, 2018): a hierarchy of proximity graphs. Node levels are drawn
//! as `⌊−ln U · 1/ln m⌋`; search descends greedily through the upper layers and runs a beam
//! search of width `ef` on layer 0. Links are chosen with the paper's heuristic (keep a
//! candidate only if it is closer to the new node than to every link already kept).
//!
//! Deterministic parallel build: nodes are inserted in index order in batches. Every node
//! of a batch searches the graph as it stood before the batch (in parallel), then its links
//! are set and the reverse links merged per target node (in parallel over targets, sources in
//! index order). Batches grow from 1 (the first 1,024 nodes are inserted one by one) to 256,
//! fixed by the node count, so the graph does not depend on the number of threads.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use imgclass_core::rng::SplitMix64;
use rayon::prelude::*;

use super::dist::Kernel;
use super::{AnnError, Cand, Space, Visited, prefetch_bytes};

/// Highest level a node may get.
const MAX_LEVEL: usize = 16;

/// The graph: `links[i][l]` are node `i`'s neighbours on layer `l` (`0..=level(i)`).
///
/// Searches read layer 0 from `flat0`, a copy of every node's `links[i][0]` back to back in
/// one array, node `i`'s list at `flat0[start0[i]..start0[i + 1]]`: one offset and one or
/// two cache lines per node instead of two dependent pointer hops. Its size is the number of
/// links (a corrupt file cannot make it larger than its own link section). It is derived
/// from `links` (by [`Hnsw::new`]), so the saved format does not change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hnsw {
    pub(crate) m: usize,
    pub(crate) links: Vec<Vec<Vec<u32>>>,
    pub(crate) entry: u32,
    pub(crate) max_level: usize,
    flat0: Vec<u32>,
    start0: Vec<usize>,
}

/// Neighbour lists of one layer.
trait Adjacency {
    fn of(&self, i: u32) -> &[u32];
    /// Hints the CPU to fetch the list of `i` (expanded soon).
    fn prefetch(&self, _i: u32) {}
}

/// Layer `l` of the nested lists (used while building).
struct Nested<'a> {
    links: &'a [Vec<Vec<u32>>],
    l: usize,
}

impl Adjacency for Nested<'_> {
    #[inline]
    fn of(&self, i: u32) -> &[u32] {
        &self.links[i as usize][self.l]
    }
}

/// Layer 0 flattened (searches).
struct Flat<'a> {
    data: &'a [u32],
    start: &'a [usize],
}

impl Adjacency for Flat<'_> {
    #[inline]
    fn of(&self, i: u32) -> &[u32] {
        let i = i as usize;
        &self.data[self.start[i]..self.start[i + 1]]
    }
    #[inline]
    fn prefetch(&self, i: u32) {
        let i = i as usize;
        if let (Some(&a), Some(&b)) = (self.start.get(i), self.start.get(i + 1))
            && let Some(list) = self.data.get(a..b)
        {
            prefetch_bytes(list);
        }
    }
}

fn batch_size(inserted: usize) -> usize {
    if inserted < 1024 { 1 } else { (inserted / 32).clamp(1, 256) }
}

impl Hnsw {
    pub(crate) fn build(space: &Space, metric: Kernel, m: usize, ef_c: usize, seed: u64) -> Self {
        let n = space.len();
        let root = SplitMix64::new(seed);
        let ml = 1.0 / (m as f64).ln();
        let levels: Vec<usize> = (0..n)
            .map(|i| {
                let u = 1.0 - root.fork(i as u64).next_f64(); // (0, 1]
                ((-u.ln() * ml).floor() as usize).min(MAX_LEVEL)
            })
            .collect();
        let mut h = Self {
            m,
            links: levels.iter().map(|&l| vec![Vec::new(); l + 1]).collect(),
            entry: 0,
            max_level: levels.first().copied().unwrap_or(0),
            flat0: Vec::new(),
            start0: Vec::new(),
        };
        let mut inserted = 1.min(n);
        while inserted < n {
            let end = (inserted + batch_size(inserted)).min(n);
            let batch: Vec<usize> = (inserted..end).collect();
            let found: Vec<Vec<Vec<u32>>> = batch
                .par_iter()
                .map_init(
                    || Visited::new(n),
                    |vis, &q| h.connect_new(space, metric, q, levels[q], ef_c, vis),
                )
                .collect();
            // set the new nodes' links and gather reverse links (target, layer, source)
            let mut reverse: Vec<(u32, u32, u32)> = Vec::new();
            for (&q, lists) in batch.iter().zip(found) {
                for (l, list) in lists.into_iter().enumerate() {
                    for &e in &list {
                        reverse.push((e, l as u32, q as u32));
                    }
                    h.links[q][l] = list;
                }
            }
            reverse.sort_unstable();
            let groups: Vec<&[(u32, u32, u32)]> =
                reverse.chunk_by(|x, y| x.0 == y.0 && x.1 == y.1).collect();
            let updates: Vec<(usize, usize, Vec<u32>)> = groups
                .par_iter()
                .map(|g| {
                    let (e, l) = (g[0].0 as usize, g[0].1 as usize);
                    let mut list = h.links[e][l].clone();
                    list.extend(g.iter().map(|x| x.2));
                    let cap = if l == 0 { 2 * m } else { m };
                    if list.len() > cap {
                        let base = space.row(e);
                        let mut cands: Vec<Cand> = list
                            .iter()
                            .map(|&c| Cand { d: metric.dist(base, space.row(c as usize)), i: c })
                            .collect();
                        cands.sort_unstable();
                        list = select_heuristic(space, metric, &cands, cap);
                    }
                    (e, l, list)
                })
                .collect();
            for (e, l, list) in updates {
                h.links[e][l] = list;
            }
            for &q in &batch {
                if levels[q] > h.max_level {
                    h.max_level = levels[q];
                    h.entry = q as u32;
                }
            }
            inserted = end;
        }
        Self::new(h.m, h.links, h.entry, h.max_level)
    }

    /// A graph from its parts, with the flat layer-0 copy derived from `links`.
    pub(crate) fn new(m: usize, links: Vec<Vec<Vec<u32>>>, entry: u32, max_level: usize) -> Self {
        let total: usize = links.iter().filter_map(|n| n.first()).map(Vec::len).sum();
        let mut flat0 = Vec::with_capacity(total);
        let mut start0 = Vec::with_capacity(links.len() + 1);
        start0.push(0);
        for node in &links {
            if let Some(l0) = node.first() {
                flat0.extend_from_slice(l0);
            }
            start0.push(flat0.len());
        }
        Self { m, links, entry, max_level, flat0, start0 }
    }

    fn layer0(&self) -> Flat<'_> {
        Flat { data: &self.flat0, start: &self.start0 }
    }

    /// Links of a new node `q` on layers `0..=level` against the current graph.
    fn connect_new(
        &self,
        space: &Space,
        metric: Kernel,
        q: usize,
        level: usize,
        ef_c: usize,
        vis: &mut Visited,
    ) -> Vec<Vec<u32>> {
        let qv = space.row(q);
        let mut out = vec![Vec::new(); level + 1];
        let mut ep =
            vec![Cand { d: metric.dist(qv, space.row(self.entry as usize)), i: self.entry }];
        for l in (level + 1..=self.max_level).rev() {
            ep = vec![self.greedy(space, metric, qv, ep[0], l)];
        }
        for l in (0..=level.min(self.max_level)).rev() {
            let adj = Nested { links: &self.links, l };
            let w = search_layer(&adj, space, metric, qv, &ep, ef_c, vis);
            out[l] = select_heuristic(space, metric, &w, self.m);
            ep = w;
        }
        out
    }

    fn greedy(&self, space: &Space, metric: Kernel, q: &[f32], mut cur: Cand, l: usize) -> Cand {
        loop {
            let mut changed = false;
            for &e in &self.links[cur.i as usize][l] {
                let c = Cand { d: metric.dist(q, space.row(e as usize)), i: e };
                if c < cur {
                    cur = c;
                    changed = true;
                }
            }
            if !changed {
                return cur;
            }
        }
    }

    /// The `r` best candidates for a query after a beam of width `ef` on layer 0.
    pub(crate) fn search(
        &self,
        space: &Space,
        metric: Kernel,
        q: &[f32],
        r: usize,
        ef: usize,
        vis: &mut Visited,
    ) -> Vec<u32> {
        let mut cur = Cand { d: metric.dist(q, space.row(self.entry as usize)), i: self.entry };
        for l in (1..=self.max_level).rev() {
            cur = self.greedy(space, metric, q, cur, l);
        }
        let w = search_layer(&self.layer0(), space, metric, q, &[cur], ef.max(r), vis);
        w.iter().take(r).map(|c| c.i).collect()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        let nested: usize = self
            .links
            .iter()
            .map(|ls| 24 + ls.iter().map(|l| 24 + 4 * l.capacity()).sum::<usize>())
            .sum();
        nested + 4 * self.flat0.len() + 8 * self.start0.len()
    }

    pub(crate) fn validate(&self, n: usize) -> Result<(), AnnError> {
        let bad = |reason: &str| Err(AnnError::Corrupt { reason: reason.to_string() });
        if self.links.len() != n || self.m < 2 {
            return bad("hnsw graph has the wrong node count");
        }
        if self.entry as usize >= n || self.links[self.entry as usize].len() != self.max_level + 1 {
            return bad("hnsw entry point is invalid");
        }
        for node in &self.links {
            if node.is_empty() || node.len() > self.max_level + 1 {
                return bad("hnsw node level is invalid");
            }
            for (l, list) in node.iter().enumerate() {
                if list.iter().any(|&e| e as usize >= n || self.links[e as usize].len() <= l) {
                    return bad("hnsw link points to a missing node or layer");
                }
            }
        }
        Ok(())
    }
}

/// Beam search on one layer; returns up to `ef` candidates sorted by (distance, index).
///
/// The unvisited neighbours of the expanded node are gathered first and their rows
/// prefetched, then scored: the loads overlap instead of stalling one by one.
fn search_layer<A: Adjacency>(
    adj: &A,
    space: &Space,
    metric: Kernel,
    q: &[f32],
    eps: &[Cand],
    ef: usize,
    vis: &mut Visited,
) -> Vec<Cand> {
    vis.clear();
    // capacities are hints: never sized from a user's `ef` beyond the graph itself
    let hint = ef.min(space.len());
    let mut frontier: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(4 * hint);
    let mut best: BinaryHeap<Cand> = BinaryHeap::with_capacity(hint + 1);
    for &c in eps {
        if vis.insert(c.i) {
            frontier.push(Reverse(c));
            best.push(c);
            if best.len() > ef {
                best.pop();
            }
        }
    }
    let mut fresh: Vec<u32> = Vec::with_capacity(64);
    while let Some(Reverse(c)) = frontier.pop() {
        if best.len() >= ef && best.peek().is_some_and(|w| c > *w) {
            break;
        }
        // the next node to expand is often the current runner-up: fetch its list meanwhile
        if let Some(Reverse(next)) = frontier.peek() {
            adj.prefetch(next.i);
        }
        fresh.clear();
        for &e in adj.of(c.i) {
            if vis.insert(e) {
                prefetch_bytes(space.row(e as usize));
                fresh.push(e);
            }
        }
        for &e in &fresh {
            let cand = Cand { d: metric.dist(q, space.row(e as usize)), i: e };
            if best.len() < ef || best.peek().is_some_and(|w| cand < *w) {
                frontier.push(Reverse(cand));
                best.push(cand);
                if best.len() > ef {
                    best.pop();
                }
            }
        }
    }
    best.into_sorted_vec()
}

/// The heuristic of Malkov & Yashunin (algorithm 4): walk candidates by increasing distance
/// to the base node and keep one only when it is closer to the base than to every kept link.
fn select_heuristic(space: &Space, metric: Kernel, sorted: &[Cand], cap: usize) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(cap.min(sorted.len()));
    for c in sorted {
        if kept.len() >= cap {
            break;
        }
        let row = space.row(c.i as usize);
        if kept.iter().all(|&k| metric.dist(row, space.row(k as usize)) > c.d) {
            kept.push(c.i);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flat_layer_zero_lists_the_nested_links() {
        // a hand-made graph: node 2's layer-0 list (5) is longer than 2m = 4, node 3's empty
        let links = vec![
            vec![vec![1, 2], vec![2]],
            vec![vec![0]],
            vec![vec![0, 1, 3, 4, 5], vec![0]],
            vec![vec![]],
            vec![vec![2]],
            vec![vec![2, 4]],
        ];
        let h = Hnsw::new(2, links.clone(), 0, 1);
        assert!(h.validate(6).is_ok());
        let flat = h.layer0();
        let total: usize = links.iter().map(|n| n[0].len()).sum();
        assert_eq!((total, flat.data.len()), (11, 11));
        for (i, node) in links.iter().enumerate() {
            assert_eq!(flat.of(i as u32), node[0].as_slice(), "node {i}");
            let upper = Nested { links: &h.links, l: 0 };
            assert_eq!(upper.of(i as u32), node[0].as_slice());
        }
    }
}
