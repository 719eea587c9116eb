//! kd-trees: the single exact/`(1 + eps)` tree of Arya & Mount's ANN (widest dimension,
//! median split) and FLANN's randomised forest (random choice among the five
//! highest-variance dimensions), searched with incremental cell distances.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use imgclass_core::rng::SplitMix64;
use rayon::prelude::*;

use super::dist::Kernel;
use super::{AnnError, Cand, KBest, Metric, Space, Visited};

/// Marks a leaf in [`KdTree::split_dim`].
pub(crate) const LEAF: u32 = u32::MAX;
/// Dimensions a randomised split chooses among.
const TOP_DIMS: usize = 5;
/// Points sampled to estimate variances in a randomised node (as FLANN).
const VAR_SAMPLE: usize = 100;
/// Leaf size of the forest's trees.
pub(crate) const FOREST_LEAF: usize = 4;

/// A kd-tree over search-space rows, stored as flat arrays (node 0 is the root).
///
/// Internal node `i`: split on `split_dim[i]` at `cut[i]`; children `a[i]` (values `<= cut`)
/// and `b[i]` (values `>= cut`). Leaf: `split_dim[i] == LEAF`, points `perm[a[i]..b[i]]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KdTree {
    pub(crate) split_dim: Vec<u32>,
    pub(crate) cut: Vec<f32>,
    pub(crate) a: Vec<u32>,
    pub(crate) b: Vec<u32>,
    pub(crate) perm: Vec<u32>,
}

impl KdTree {
    /// Builds over all rows of `space`. `rng: None` splits the widest dimension (ANN);
    /// `Some` splits a random one of the top-variance dimensions (FLANN).
    pub(crate) fn build(space: &Space, leaf_size: usize, mut rng: Option<SplitMix64>) -> Self {
        let n = space.len();
        let mut t = Self {
            split_dim: Vec::new(),
            cut: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
            perm: (0..n as u32).collect(),
        };
        // explicit stack of (node id, lo, hi); children are allocated when the parent splits
        t.push_node(LEAF, 0.0, 0, n as u32);
        let mut stack = vec![(0usize, 0usize, n)];
        while let Some((node, lo, hi)) = stack.pop() {
            if hi - lo <= leaf_size.max(1) {
                continue;
            }
            let d = match rng.as_mut() {
                None => widest_dim(space, &t.perm[lo..hi]),
                Some(g) => random_top_variance_dim(space, &t.perm[lo..hi], g),
            };
            let slice = &mut t.perm[lo..hi];
            let mid = slice.len() / 2;
            slice.select_nth_unstable_by(mid, |&x, &y| {
                space.row(x as usize)[d].total_cmp(&space.row(y as usize)[d]).then(x.cmp(&y))
            });
            let cut = space.row(slice[mid] as usize)[d];
            let left = t.push_node(LEAF, 0.0, lo as u32, (lo + mid) as u32);
            let right = t.push_node(LEAF, 0.0, (lo + mid) as u32, hi as u32);
            t.split_dim[node] = d as u32;
            t.cut[node] = cut;
            t.a[node] = left as u32;
            t.b[node] = right as u32;
            stack.push((right, lo + mid, hi));
            stack.push((left, lo, lo + mid));
        }
        t
    }

    fn push_node(&mut self, d: u32, cut: f32, a: u32, b: u32) -> usize {
        self.split_dim.push(d);
        self.cut.push(cut);
        self.a.push(a);
        self.b.push(b);
        self.split_dim.len() - 1
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        (self.split_dim.len() * 4) * 4 + self.perm.len() * 4
    }

    /// Checks that every child and leaf range is in bounds and the tree is acyclic
    /// (children have larger ids than their parent, as the builder allocates them).
    pub(crate) fn validate(&self, n: usize, dim: usize) -> Result<(), AnnError> {
        let m = self.split_dim.len();
        let bad = |reason: String| Err(AnnError::Corrupt { reason });
        if m == 0 || self.cut.len() != m || self.a.len() != m || self.b.len() != m {
            return bad("kd-tree arrays have inconsistent lengths".into());
        }
        if self.perm.len() != n || self.perm.iter().any(|&p| p as usize >= n) {
            return bad("kd-tree permutation is out of range".into());
        }
        for i in 0..m {
            let (a, b) = (self.a[i] as usize, self.b[i] as usize);
            if self.split_dim[i] == LEAF {
                if a > b || b > n {
                    return bad(format!("kd-tree leaf {i} has range {a}..{b} beyond {n} points"));
                }
            } else if self.split_dim[i] as usize >= dim || a <= i || b <= i || a >= m || b >= m {
                return bad(format!("kd-tree node {i} has invalid split or children"));
            }
        }
        Ok(())
    }

    /// Best `r` candidates with ANN's `(1 + eps)` pruning: a far cell is skipped when its
    /// lower bound times `(1 + eps)^p` (p = 2 for squared L2, 1 for L1) exceeds the current
    /// `r`-th distance.
    pub(crate) fn search_eps(
        &self,
        space: &Space,
        metric: Kernel,
        q: &[f32],
        r: usize,
        eps: f32,
    ) -> Vec<u32> {
        let fac = match metric.metric {
            Metric::L2 | Metric::Cosine => (1.0 + eps) * (1.0 + eps),
            Metric::L1 => 1.0 + eps,
        };
        let mut top = KBest::new(r);
        let mut off = vec![0f32; space.dim];
        self.descend_eps(0, 0.0, &mut off, space, metric, q, fac, &mut top);
        top.into_indices()
    }

    #[allow(clippy::too_many_arguments)]
    fn descend_eps(
        &self,
        node: usize,
        rd: f32,
        off: &mut [f32],
        space: &Space,
        metric: Kernel,
        q: &[f32],
        fac: f32,
        top: &mut KBest,
    ) {
        let d = self.split_dim[node];
        if d == LEAF {
            for &p in &self.perm[self.a[node] as usize..self.b[node] as usize] {
                top.push(Cand { d: metric.dist(q, space.row(p as usize)), i: p });
            }
            return;
        }
        let d = d as usize;
        let diff = q[d] - self.cut[node];
        let (near, far) = if diff < 0.0 {
            (self.a[node] as usize, self.b[node] as usize)
        } else {
            (self.b[node] as usize, self.a[node] as usize)
        };
        self.descend_eps(near, rd, off, space, metric, q, fac, top);
        let old = off[d];
        // never below zero: rounding may leave a tiny negative remainder
        let rd_far = (rd - metric.coord(old) + metric.coord(diff)).max(0.0);
        if rd_far * fac <= top.worst() {
            off[d] = diff;
            self.descend_eps(far, rd_far, off, space, metric, q, fac, top);
            off[d] = old;
        }
    }
}

fn widest_dim(space: &Space, pts: &[u32]) -> usize {
    let mut lo = space.row(pts[0] as usize).to_vec();
    let mut hi = lo.clone();
    for &p in &pts[1..] {
        for (j, &v) in space.row(p as usize).iter().enumerate() {
            lo[j] = lo[j].min(v);
            hi[j] = hi[j].max(v);
        }
    }
    let mut best = 0;
    for j in 1..space.dim {
        if hi[j] - lo[j] > hi[best] - lo[best] {
            best = j;
        }
    }
    best
}

fn random_top_variance_dim(space: &Space, pts: &[u32], g: &mut SplitMix64) -> usize {
    let s = pts.len().min(VAR_SAMPLE);
    let dim = space.dim;
    let mut mean = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    // a deterministic spread-out sample of the node's points
    for t in 0..s {
        let p = pts[t * pts.len() / s] as usize;
        for (j, &v) in space.row(p).iter().enumerate() {
            mean[j] += v as f64;
            sq[j] += (v as f64) * (v as f64);
        }
    }
    let var: Vec<f64> = (0..dim).map(|j| sq[j] / s as f64 - (mean[j] / s as f64).powi(2)).collect();
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&x, &y| var[y].total_cmp(&var[x]).then(x.cmp(&y)));
    let top = TOP_DIMS.min(dim);
    order[g.below(top as u64) as usize]
}

/// Builds `trees` randomised trees, in parallel; tree `t` uses `SplitMix64::new(seed).fork(t)`.
pub(crate) fn build_forest(space: &Space, trees: usize, seed: u64) -> Vec<KdTree> {
    let root = SplitMix64::new(seed);
    (0..trees)
        .into_par_iter()
        .map(|t| KdTree::build(space, FOREST_LEAF, Some(root.fork(t as u64))))
        .collect()
}

/// FLANN's forest search: descend every tree, keeping the far branches in one priority queue
/// ordered by their accumulated split-plane distance; stop after `checks` leaf points once
/// `r` candidates are held.
pub(crate) fn search_forest(
    forest: &[KdTree],
    space: &Space,
    metric: Kernel,
    q: &[f32],
    r: usize,
    checks: usize,
    vis: &mut Visited,
) -> Vec<u32> {
    vis.clear();
    let mut top = KBest::new(r);
    // (Reverse(lower bound), tree, node); ties resolved by tree then node for determinism
    let mut queue: BinaryHeap<Reverse<(OrdF32, u32, u32)>> = BinaryHeap::new();
    let mut checked = 0usize;
    for t in 0..forest.len() {
        queue.push(Reverse((OrdF32(0.0), t as u32, 0)));
    }
    while let Some(Reverse((OrdF32(rd), t, start))) = queue.pop() {
        if checked >= checks && top.is_full() {
            break;
        }
        let tree = &forest[t as usize];
        let mut node = start as usize;
        loop {
            let d = tree.split_dim[node];
            if d == LEAF {
                for &p in &tree.perm[tree.a[node] as usize..tree.b[node] as usize] {
                    if vis.insert(p) {
                        checked += 1;
                        top.push(Cand { d: metric.dist(q, space.row(p as usize)), i: p });
                    }
                }
                break;
            }
            let diff = q[d as usize] - tree.cut[node];
            let (near, far) = if diff < 0.0 {
                (tree.a[node], tree.b[node])
            } else {
                (tree.b[node], tree.a[node])
            };
            let bound = rd + metric.coord(diff);
            if bound <= top.worst() {
                queue.push(Reverse((OrdF32(bound), t, far)));
            }
            node = near as usize;
        }
    }
    top.into_indices()
}

/// A totally ordered `f32` for priority queues.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrdF32(pub(crate) f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}
