//! FLANN's hierarchical k-means tree: each internal node clusters its points into
//! `branching` groups (k-means++ seeding, a fixed number of Lloyd steps); leaves hold fewer
//! than `branching` points. Search is best-bin-first under a `checks` budget.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use imgclass_core::rng::SplitMix64;
use rayon::prelude::*;

use super::dist::Kernel;
use super::kdtree::OrdF32;
use super::{AnnError, Cand, KBest, Space};

/// Nodes in breadth-first order (node 0 is the root); the children of an internal node are
/// contiguous: `first[i] .. first[i] + count[i]`. A leaf (`leaf[i] == 1`) holds the points
/// `perm[first[i] .. first[i] + count[i]]`. `centers` holds one search-space row per node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KMeansTree {
    pub(crate) dim: usize,
    pub(crate) centers: Vec<f32>,
    pub(crate) first: Vec<u32>,
    pub(crate) count: Vec<u32>,
    pub(crate) leaf: Vec<u8>,
    pub(crate) perm: Vec<u32>,
}

/// Points parallelised over in one assignment step above this size.
const PAR_MIN: usize = 2048;

impl KMeansTree {
    pub(crate) fn build(
        space: &Space,
        metric: Kernel,
        branching: usize,
        iterations: usize,
        seed: u64,
    ) -> Self {
        let dim = space.dim;
        let n = space.len();
        let mut t = Self {
            dim,
            centers: Vec::new(),
            first: Vec::new(),
            count: Vec::new(),
            leaf: Vec::new(),
            perm: Vec::with_capacity(n),
        };
        let root_rng = SplitMix64::new(seed);
        // the root's center is the mean of all points
        let all: Vec<u32> = (0..n as u32).collect();
        let c = mean_of(space, &all);
        t.push(&c);
        let mut queue: VecDeque<(usize, Vec<u32>)> = VecDeque::new();
        queue.push_back((0, all));
        while let Some((node, pts)) = queue.pop_front() {
            let clusters = if pts.len() < branching.max(2) {
                None
            } else {
                let mut g = root_rng.fork(node as u64);
                let cl = kmeans(space, metric, &pts, branching, iterations, &mut g);
                // a split that leaves every point in one cluster cannot make progress
                if cl.iter().filter(|(_, m)| !m.is_empty()).count() < 2 { None } else { Some(cl) }
            };
            match clusters {
                None => {
                    t.leaf[node] = 1;
                    t.first[node] = t.perm.len() as u32;
                    t.count[node] = pts.len() as u32;
                    t.perm.extend_from_slice(&pts);
                }
                Some(cl) => {
                    let first = t.leaf.len();
                    let mut count = 0;
                    for (center, members) in cl.into_iter().filter(|(_, m)| !m.is_empty()) {
                        let id = t.push(&center);
                        queue.push_back((id, members));
                        count += 1;
                    }
                    t.first[node] = first as u32;
                    t.count[node] = count;
                }
            }
        }
        t
    }

    fn push(&mut self, center: &[f32]) -> usize {
        self.centers.extend_from_slice(center);
        self.first.push(0);
        self.count.push(0);
        self.leaf.push(0);
        self.leaf.len() - 1
    }

    fn center(&self, i: usize) -> &[f32] {
        &self.centers[i * self.dim..(i + 1) * self.dim]
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.centers.len() * 4 + self.first.len() * 9 + self.perm.len() * 4
    }

    pub(crate) fn validate(&self, n: usize, dim: usize) -> Result<(), AnnError> {
        let m = self.leaf.len();
        let bad = |reason: &str| Err(AnnError::Corrupt { reason: reason.to_string() });
        if m == 0
            || self.dim != dim
            || self.centers.len() != m * dim
            || self.first.len() != m
            || self.count.len() != m
        {
            return bad("k-means tree arrays have inconsistent lengths");
        }
        if self.perm.len() != n || self.perm.iter().any(|&p| p as usize >= n) {
            return bad("k-means tree permutation is out of range");
        }
        for i in 0..m {
            let (f, c) = (self.first[i] as usize, self.count[i] as usize);
            if self.leaf[i] == 1 {
                if f + c > n {
                    return bad("k-means tree leaf range is out of range");
                }
            } else if self.leaf[i] != 0 || c == 0 || f <= i || f + c > m {
                return bad("k-means tree node has invalid children");
            }
        }
        Ok(())
    }

    /// Best-bin-first: descend to the closest child, queueing the siblings by their
    /// center distance; continue from the closest queued branch until `checks` leaf points
    /// were examined and `r` candidates are held.
    pub(crate) fn search(
        &self,
        space: &Space,
        metric: Kernel,
        q: &[f32],
        r: usize,
        checks: usize,
    ) -> Vec<u32> {
        let mut top = KBest::new(r);
        let mut queue: BinaryHeap<Reverse<(OrdF32, u32)>> = BinaryHeap::new();
        queue.push(Reverse((OrdF32(0.0), 0)));
        let mut checked = 0usize;
        while let Some(Reverse((_, start))) = queue.pop() {
            if checked >= checks && top.is_full() {
                break;
            }
            let mut node = start as usize;
            loop {
                let (f, c) = (self.first[node] as usize, self.count[node] as usize);
                if self.leaf[node] == 1 {
                    for &p in &self.perm[f..f + c] {
                        checked += 1;
                        top.push(Cand { d: metric.dist(q, space.row(p as usize)), i: p });
                    }
                    break;
                }
                let mut best = (f32::INFINITY, f);
                let mut ds = Vec::with_capacity(c);
                for ch in f..f + c {
                    let d = metric.dist(q, self.center(ch));
                    ds.push(d);
                    if d < best.0 {
                        best = (d, ch);
                    }
                }
                for (j, &d) in ds.iter().enumerate() {
                    if f + j != best.1 {
                        queue.push(Reverse((OrdF32(d), (f + j) as u32)));
                    }
                }
                node = best.1;
            }
        }
        top.into_indices()
    }
}

fn mean_of(space: &Space, pts: &[u32]) -> Vec<f32> {
    let mut acc = vec![0f64; space.dim];
    for &p in pts {
        for (a, &v) in acc.iter_mut().zip(space.row(p as usize)) {
            *a += v as f64;
        }
    }
    let n = pts.len().max(1) as f64;
    acc.iter().map(|&a| (a / n) as f32).collect()
}

/// Index of the closest center (ties to the smaller index).
fn closest(space: &Space, metric: Kernel, p: u32, centers: &[Vec<f32>]) -> usize {
    let row = space.row(p as usize);
    let mut best = (f32::INFINITY, 0);
    for (j, c) in centers.iter().enumerate() {
        let d = metric.dist(row, c);
        if d < best.0 {
            best = (d, j);
        }
    }
    best.1
}

/// k-means over `pts` (k-means++ seeding, `iterations` Lloyd steps); returns the centers
/// and members of each cluster, in center order.
fn kmeans(
    space: &Space,
    metric: Kernel,
    pts: &[u32],
    k: usize,
    iterations: usize,
    g: &mut SplitMix64,
) -> Vec<(Vec<f32>, Vec<u32>)> {
    // k-means++ seeding (on a sample of at most 64 points per center, for speed)
    let sample_len = pts.len().min(64 * k);
    let sample: Vec<u32> = (0..sample_len).map(|t| pts[t * pts.len() / sample_len]).collect();
    let mut centers: Vec<Vec<f32>> = Vec::with_capacity(k);
    centers.push(space.row(sample[g.below(sample.len() as u64) as usize] as usize).to_vec());
    let mut dmin: Vec<f64> =
        sample.iter().map(|&p| metric.dist(space.row(p as usize), &centers[0]) as f64).collect();
    while centers.len() < k {
        let total: f64 = dmin.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut x = g.next_f64() * total;
        let mut pick = sample.len() - 1;
        for (j, &d) in dmin.iter().enumerate() {
            if x < d {
                pick = j;
                break;
            }
            x -= d;
        }
        let c = space.row(sample[pick] as usize).to_vec();
        for (j, &p) in sample.iter().enumerate() {
            dmin[j] = dmin[j].min(metric.dist(space.row(p as usize), &c) as f64);
        }
        centers.push(c);
    }
    let mut assign: Vec<usize> = Vec::new();
    for it in 0..iterations {
        let new_assign: Vec<usize> = if pts.len() >= PAR_MIN {
            pts.par_iter().map(|&p| closest(space, metric, p, &centers)).collect()
        } else {
            pts.iter().map(|&p| closest(space, metric, p, &centers)).collect()
        };
        let converged = it > 0 && new_assign == assign;
        assign = new_assign;
        if converged {
            break;
        }
        // update: mean of members, in point order; an empty cluster keeps its center
        let mut sums = vec![vec![0f64; space.dim]; centers.len()];
        let mut counts = vec![0usize; centers.len()];
        for (&p, &a) in pts.iter().zip(&assign) {
            counts[a] += 1;
            for (s, &v) in sums[a].iter_mut().zip(space.row(p as usize)) {
                *s += v as f64;
            }
        }
        for (j, c) in centers.iter_mut().enumerate() {
            if counts[j] > 0 {
                for (x, s) in c.iter_mut().zip(&sums[j]) {
                    *x = (*s / counts[j] as f64) as f32;
                }
            }
        }
        if it + 1 == iterations {
            // final assignment against the updated centers
            assign = if pts.len() >= PAR_MIN {
                pts.par_iter().map(|&p| closest(space, metric, p, &centers)).collect()
            } else {
                pts.iter().map(|&p| closest(space, metric, p, &centers)).collect()
            };
        }
    }
    let mut members = vec![Vec::new(); centers.len()];
    for (&p, &a) in pts.iter().zip(&assign) {
        members[a].push(p);
    }
    centers.into_iter().zip(members).collect()
}
