//! Distance helpers for the approximate indices: exact integer distances on `u8` rows and
//! `f32` distances in the search space (raw pixels as `f32`, or a PCA projection).
//!
//! ```text
//! L2²(a, b) = Σ_j (a_j − b_j)²      L1(a, b) = Σ_j |a_j − b_j|
//! ```
//!
//! The `u8` versions accumulate in `u32` and are exact for rows of up to
//! [`MAX_DIM`](super::MAX_DIM) features. The `f32` versions use sixteen independent partial
//! sums (so the compiler can vectorise them) added in a fixed order: the result does not
//! depend on the thread that computes it.
//!
//! ```
//! use imgclass_knn::ann::{Metric, distance_u8};
//! // (1 − 4)² + (2 − 6)² = 9 + 16 = 25; |1 − 4| + |2 − 6| = 7
//! assert_eq!(distance_u8(Metric::L2, &[1, 2], &[4, 6]), 25);
//! assert_eq!(distance_u8(Metric::L1, &[1, 2], &[4, 6]), 7);
//! ```

use super::Metric;

/// Exact squared Euclidean distance between two `u8` rows.
#[inline]
pub(crate) fn l2sq_u8(a: &[u8], b: &[u8]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as i32 - y as i32;
            (d * d) as u32
        })
        .sum()
}

/// Exact L1 distance between two `u8` rows.
#[inline]
pub(crate) fn l1_u8(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| (x as i32 - y as i32).unsigned_abs()).sum()
}

/// Exact distance between two `u8` rows under `metric` (squared for [`Metric::L2`]).
///
/// Rows longer than [`MAX_DIM`](super::MAX_DIM) may overflow; the indices reject them.
pub fn distance_u8(metric: Metric, a: &[u8], b: &[u8]) -> u32 {
    match metric {
        Metric::L2 => l2sq_u8(a, b),
        Metric::L1 => l1_u8(a, b),
    }
}

const LANES: usize = 16;

/// Squared Euclidean distance between two `f32` rows (fixed summation order).
#[inline]
pub(crate) fn l2sq_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        s += d * d;
    }
    acc.iter().sum::<f32>() + s
}

/// L1 distance between two `f32` rows (fixed summation order).
#[inline]
pub(crate) fn l1_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += (x[l] - y[l]).abs();
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y).abs();
    }
    acc.iter().sum::<f32>() + s
}

/// Dot product of two `f32` rows (fixed summation order).
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

/// Search-space distance under `metric` (the portable kernel).
#[cfg(test)]
pub(crate) fn dist_f32(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2sq_f32(a, b),
        Metric::L1 => l1_f32(a, b),
    }
}

/// The search-space distance kernel, chosen once per build or search call (never per pair):
/// the portable loops, or the same loops compiled for AVX2 when the CPU has it (set
/// `IMGCLASS_KERNEL=scalar` to force the portable one). Both add the same products in the
/// same order (no fused multiply-add), so they return bit-identical distances.
#[derive(Clone, Copy)]
pub(crate) struct Kernel {
    pub(crate) metric: Metric,
    f: unsafe fn(&[f32], &[f32]) -> f32,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("metric", &self.metric).finish()
    }
}

/// Portable kernels as `unsafe fn` pointers (they have no safety requirement).
unsafe fn l2sq_portable(a: &[f32], b: &[f32]) -> f32 {
    l2sq_f32(a, b)
}
unsafe fn l1_portable(a: &[f32], b: &[f32]) -> f32 {
    l1_f32(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
    l2sq_f32(a, b)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
    l1_f32(a, b)
}

impl Kernel {
    /// The fastest kernel this CPU runs for `metric`.
    pub(crate) fn select(metric: Metric) -> Self {
        let forced_scalar = std::env::var("IMGCLASS_KERNEL").is_ok_and(|v| v == "scalar");
        #[cfg(target_arch = "x86_64")]
        if !forced_scalar && std::arch::is_x86_feature_detected!("avx2") {
            let f: unsafe fn(&[f32], &[f32]) -> f32 = match metric {
                Metric::L2 => l2sq_avx2,
                Metric::L1 => l1_avx2,
            };
            return Self { metric, f };
        }
        let _ = forced_scalar;
        let f: unsafe fn(&[f32], &[f32]) -> f32 = match metric {
            Metric::L2 => l2sq_portable,
            Metric::L1 => l1_portable,
        };
        Self { metric, f }
    }

    /// The portable kernel (for tests).
    #[cfg(test)]
    pub(crate) fn portable(metric: Metric) -> Self {
        let f: unsafe fn(&[f32], &[f32]) -> f32 = match metric {
            Metric::L2 => l2sq_portable,
            Metric::L1 => l1_portable,
        };
        Self { metric, f }
    }

    /// Distance between two search-space rows.
    #[inline]
    pub(crate) fn dist(&self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `f` is a portable kernel, or an AVX2 one that `select` only picks after
        // `is_x86_feature_detected!("avx2")` returned true on this CPU.
        unsafe { (self.f)(a, b) }
    }

    /// A per-coordinate term `δ²` (L2) or `|δ|` (L1).
    #[inline]
    pub(crate) fn coord(&self, delta: f32) -> f32 {
        coord_term(self.metric, delta)
    }
}

/// A per-coordinate contribution `|δ|` raised to the metric's power (δ² for L2, |δ| for L1).
#[inline]
pub(crate) fn coord_term(metric: Metric, delta: f32) -> f32 {
    match metric {
        Metric::L2 => delta * delta,
        Metric::L1 => delta.abs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgclass_core::rng::SplitMix64;

    #[test]
    fn f32_kernels_match_naive_loops_for_every_tail() {
        let mut g = SplitMix64::new(3);
        for d in [0usize, 1, 7, 15, 16, 17, 64, 65, 3072] {
            let a: Vec<f32> = (0..d).map(|_| g.next_below_255()).collect();
            let b: Vec<f32> = (0..d).map(|_| g.next_below_255()).collect();
            let l2: f64 = a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
            let l1: f64 = a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).abs()).sum();
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| (x * y) as f64).sum();
            // integer-valued inputs: exact while sums stay below 2^24
            assert_eq!(l1_f32(&a, &b) as f64, l1);
            if l2 < (1u64 << 24) as f64 {
                assert_eq!(l2sq_f32(&a, &b) as f64, l2);
            } else {
                assert!((l2sq_f32(&a, &b) as f64 - l2).abs() / l2 < 1e-5);
            }
            assert!((dot_f32(&a, &b) as f64 - dot).abs() <= 1e-5 * dot.max(1.0));
            let au: Vec<u8> = a.iter().map(|&x| x as u8).collect();
            let bu: Vec<u8> = b.iter().map(|&x| x as u8).collect();
            assert_eq!(l2sq_u8(&au, &bu) as f64, l2);
            assert_eq!(l1_u8(&au, &bu) as f64, l1);
        }
    }

    #[test]
    fn selected_kernel_is_bit_identical_to_the_portable_one() {
        let mut g = SplitMix64::new(5);
        for d in [0usize, 1, 15, 16, 17, 64, 100, 3072] {
            let a: Vec<f32> = (0..d).map(|_| g.next_normal() as f32 * 37.5).collect();
            let b: Vec<f32> = (0..d).map(|_| g.next_normal() as f32 * 12.25).collect();
            for m in [Metric::L1, Metric::L2] {
                let fast = Kernel::select(m).dist(&a, &b);
                let slow = Kernel::portable(m).dist(&a, &b);
                assert_eq!(fast.to_bits(), slow.to_bits(), "d {d} {m:?}");
                assert_eq!(slow.to_bits(), dist_f32(m, &a, &b).to_bits());
            }
        }
    }

    trait Byte {
        fn next_below_255(&mut self) -> f32;
    }
    impl Byte for SplitMix64 {
        fn next_below_255(&mut self) -> f32 {
            self.below(256) as f32
        }
    }
}
