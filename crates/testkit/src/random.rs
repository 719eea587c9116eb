//! Seeded generators of random and adversarial u8/f32 rows, and the naive reference loops
//! (the lecture's "compute every distance, sort by (distance, index), vote") that the fast
//! distance and k-NN code is tested against.

use imgclass_core::rng::SplitMix64;
use imgclass_linalg::Metric;

/// `n * dim` bytes, each uniform in `0..=max`, from `seed`.
pub fn u8_rows(seed: u64, n: usize, dim: usize, max: u8) -> Vec<u8> {
    let mut g = SplitMix64::new(seed);
    (0..n * dim).map(|_| g.below(u64::from(max) + 1) as u8).collect()
}

/// `n * dim` bytes mixing adversarial rows: row `i % 5` is all 0, all 255, alternating
/// 0/255, alternating 255/0, or uniform random.
pub fn adversarial_u8_rows(seed: u64, n: usize, dim: usize) -> Vec<u8> {
    let mut g = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        for j in 0..dim {
            out.push(match i % 5 {
                0 => 0,
                1 => 255,
                2 => {
                    if j % 2 == 0 {
                        0
                    } else {
                        255
                    }
                }
                3 => {
                    if j % 2 == 0 {
                        255
                    } else {
                        0
                    }
                }
                _ => g.below(256) as u8,
            });
        }
    }
    out
}

/// `n * dim` f32 values, standard normal, from `seed`.
pub fn f32_rows(seed: u64, n: usize, dim: usize) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    (0..n * dim).map(|_| g.next_normal() as f32).collect()
}

/// The naive distance between two u8 rows, in i64 straight from the definition.
///
/// # Panics
/// On [`Metric::Cosine`], which has no integer form (use [`naive_distance_f32`]).
pub fn naive_distance_u8(a: &[u8], b: &[u8], metric: Metric) -> u64 {
    let mut s: i64 = 0;
    for (&x, &y) in a.iter().zip(b) {
        let d = i64::from(x) - i64::from(y);
        s += match metric {
            Metric::L1 => d.abs(),
            Metric::L2 => d * d,
            Metric::Cosine => panic!("cosine has no integer distance: use naive_distance_f32"),
        };
    }
    s as u64
}

/// The naive distance between two f32 rows, accumulated in f64 (cosine: `1 − a·b / (|a| |b|)`,
/// and 1 when either row is all zeros).
pub fn naive_distance_f32(a: &[f32], b: &[f32], metric: Metric) -> f64 {
    if metric == Metric::Cosine {
        let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
        let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        return if na == 0.0 || nb == 0.0 { 1.0 } else { 1.0 - dot / (na * nb) };
    }
    let mut s = 0.0f64;
    for (&x, &y) in a.iter().zip(b) {
        let d = f64::from(x) - f64::from(y);
        s += match metric {
            Metric::L1 => d.abs(),
            Metric::L2 | Metric::Cosine => d * d,
        };
    }
    s
}

/// Every distance between `queries` and `train` (rows of `dim` bytes), row-major
/// `out[q * n_train + t]`. `dim` must be positive unless both buffers are empty.
pub fn naive_pairwise_u8(
    queries: &[u8],
    n_queries: usize,
    train: &[u8],
    n_train: usize,
    dim: usize,
    metric: Metric,
) -> Vec<u64> {
    let mut out = Vec::with_capacity(n_queries * n_train);
    for q in 0..n_queries {
        let qr = &queries[q * dim..(q + 1) * dim];
        for t in 0..n_train {
            out.push(naive_distance_u8(qr, &train[t * dim..(t + 1) * dim], metric));
        }
    }
    out
}

/// The lecture's k-NN loop: for each query, sort all `(distance, index)` pairs and keep the
/// first `k`. Returns `(indices, distances)`, `n_queries * k` each.
pub fn naive_knn<D: Copy + PartialOrd>(
    dists: &[D],
    n_queries: usize,
    n_train: usize,
    k: usize,
) -> (Vec<u32>, Vec<D>) {
    let mut idx = Vec::with_capacity(n_queries * k);
    let mut dst = Vec::with_capacity(n_queries * k);
    for q in 0..n_queries {
        let row = &dists[q * n_train..(q + 1) * n_train];
        let mut pairs: Vec<(D, usize)> = row.iter().copied().zip(0..).collect();
        pairs.sort_by(|a, b| {
            a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1))
        });
        for &(d, i) in pairs.iter().take(k) {
            idx.push(i as u32);
            dst.push(d);
        }
    }
    (idx, dst)
}

/// Naive majority vote over `labels` (the neighbours' labels): the most frequent label, ties
/// broken toward the smaller label.
pub fn naive_majority(labels: &[u32]) -> u32 {
    let mut best = (0usize, u32::MAX);
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    for &l in &sorted {
        let c = labels.iter().filter(|&&x| x == l).count();
        if c > best.0 || (c == best.0 && l < best.1) {
            best = (c, l);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_seeded_and_bounded() {
        assert_eq!(u8_rows(3, 4, 5, 2), u8_rows(3, 4, 5, 2));
        assert!(u8_rows(3, 40, 5, 2).iter().all(|&b| b <= 2));
        let a = adversarial_u8_rows(1, 5, 4);
        assert_eq!(&a[..8], &[0, 0, 0, 0, 255, 255, 255, 255]);
        assert_eq!(&a[8..16], &[0, 255, 0, 255, 255, 0, 255, 0]);
    }

    #[test]
    fn naive_loops_on_a_worked_example() {
        // q = (1, 2, 3); t0 = (4, 0, 3): L1 = 5, L2 = 13; t1 = q: 0; t2 = (1, 2, 4): 1, 1
        let q = [1u8, 2, 3];
        let t = [4u8, 0, 3, 1, 2, 3, 1, 2, 4];
        assert_eq!(naive_pairwise_u8(&q, 1, &t, 3, 3, Metric::L1), vec![5, 0, 1]);
        assert_eq!(naive_pairwise_u8(&q, 1, &t, 3, 3, Metric::L2), vec![13, 0, 1]);
        let (i, d) = naive_knn(&[3u64, 1, 3, 1], 1, 4, 3);
        assert_eq!((i, d), (vec![1, 3, 0], vec![1, 1, 3]));
        assert_eq!(naive_majority(&[2, 1, 2, 1]), 1);
        assert_eq!(naive_majority(&[2, 1, 2]), 2);
    }
}
