//! Distance helpers for the approximate indices: exact integer distances on `u8` rows and
//! `f32` distances in the search space (raw pixels as `f32`, or a PCA projection).
//!
//! ```text
//! L2²(a, b) = Σ_j (a_j − b_j)²      L1(a, b) = Σ_j |a_j − b_j|
//! ```
//!
//! The `u8` versions accumulate in `u32` and are exact for rows of up to
//! [`MAX_DIM`](super::MAX_DIM) features. The `f32` versions use sixteen independent partial
//! sums (so the compiler can vectorise them) added pairwise in a fixed order: the result does
//! not depend on the thread that computes it.
//!
//! Why these single-pair f32 kernels stay here rather than in linalg (issue 13, item 5):
//! linalg's f32 path is now the blocked search of `imgclass_linalg::knn_f32` (32 queries x
//! 12 training rows per micro-kernel call, L2 through the GEMM form), the wrong shape for a
//! graph or tree walk that needs one query against one scattered candidate at a time, and
//! its GEMM-form L2 rounds differently from the direct difference these kernels sum (the
//! kd-tree's bounds compare against direct per-coordinate terms). linalg's own single-pair
//! f32 kernels, dead since the ANN carried these, were deleted, so no f32 kernel exists
//! twice. No ANN code changed, so `cargo xtask bench ann` was not rerun.
//!
//! ```
//! use imgclass_knn::ann::{Metric, distance_u8};
//! // (1 − 4)² + (2 − 6)² = 9 + 16 = 25; |1 − 4| + |2 − 6| = 7
//! assert_eq!(distance_u8(Metric::L2, &[1, 2], &[4, 6]), 25);
//! assert_eq!(distance_u8(Metric::L1, &[1, 2], &[4, 6]), 7);
//! ```

use super::Metric;
use imgclass_linalg::{KernelError, KernelKind};

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

/// Exact distance between two `u8` rows under `metric` (squared for [`Metric::L2`]), summed in
/// `u64`, so exact for rows of any length (the indices' `u32` kernels are bounded by
/// [`MAX_DIM`](super::MAX_DIM) instead). Cosine has no integer form (the indices take it on f32
/// features only): for it this returns the squared L2 distance.
pub fn distance_u8(metric: Metric, a: &[u8], b: &[u8]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = u64::from(x.abs_diff(y));
            match metric {
                Metric::L2 | Metric::Cosine => d * d,
                Metric::L1 => d,
            }
        })
        .sum()
}

const LANES: usize = 16;

/// Squared Euclidean distance between two `f32` rows (fixed summation order).
///
/// The reference for the AVX2 / AVX-512 copies below, which compute the same lanes with
/// explicit vectors (the compiler vectorised this loop only two lanes at a time).
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
    fold_lanes(acc) + s
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
    fold_lanes(acc) + s
}

/// Sums the lanes pairwise (lane `l` plus lane `l + 8`, then `+ 4`, `+ 2`, `+ 1`): a fixed
/// order, so every compilation gives the same bits, and four dependent additions instead of
/// fifteen (the SIMD copies turn each step into one vector addition).
#[inline(always)]
fn fold_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut half = LANES / 2;
    while half > 0 {
        for l in 0..half {
            acc[l] += acc[l + half];
        }
        half /= 2;
    }
    acc[0]
}

/// Search-space distance under `metric` (the portable kernel).
#[cfg(test)]
pub(crate) fn dist_f32(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 | Metric::Cosine => l2sq_f32(a, b),
        Metric::L1 => l1_f32(a, b),
    }
}

/// The kernel level: imgclass-linalg's one selection rule ([`KernelKind::detect`]: unset
/// means the best this CPU runs, `IMGCLASS_KERNEL=scalar|avx2|avx512` forces that path, an
/// unknown or unrunnable value is an error). The kernels themselves stay here.
fn level() -> Result<KernelKind, KernelError> {
    KernelKind::detect()
}

/// The search-space distance kernel, chosen once per build or search call (never per pair):
/// the portable loops, or the same loops compiled for AVX2 or AVX-512 when the CPU has them
/// (`IMGCLASS_KERNEL=scalar|avx2|avx512` forces one). All add the same products in the same
/// order (no fused multiply-add), so they return bit-identical distances.
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

/// The sixteen lane sums of a `f32` kernel with explicit vectors: lane `l` adds the term of
/// coordinates `l, l + 16, ...` in order, exactly as the portable loop does (no fused
/// multiply-add); the callers finish with [`fold_lanes`] and the portable tail. `SQUARE` picks
/// `δ²` (true) or `|δ|` (false).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn lanes_avx512<const SQUARE: bool>(a: &[f32], b: &[f32]) -> [f32; LANES] {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let main = n - n % LANES;
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < main {
        // SAFETY: `i + 16 <= main <= n`: the 16-float loads are inside `a` and `b`.
        let (x, y) =
            unsafe { (_mm512_loadu_ps(a.as_ptr().add(i)), _mm512_loadu_ps(b.as_ptr().add(i))) };
        let d = _mm512_sub_ps(x, y);
        let t = if SQUARE { _mm512_mul_ps(d, d) } else { _mm512_abs_ps(d) };
        acc = _mm512_add_ps(acc, t);
        i += LANES;
    }
    let mut out = [0f32; LANES];
    // SAFETY: `out` holds 16 floats; unaligned store.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), acc) };
    out
}

/// [`lanes_avx512`] with two 8-lane AVX2 vectors (lanes 0-7 and 8-15).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes_avx2<const SQUARE: bool>(a: &[f32], b: &[f32]) -> [f32; LANES] {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let main = n - n % LANES;
    let sign = _mm256_set1_ps(-0.0);
    let mut lo = _mm256_setzero_ps();
    let mut hi = _mm256_setzero_ps();
    let mut i = 0;
    while i < main {
        // SAFETY: `i + 16 <= main <= n`: the two 8-float loads are inside `a` and `b`.
        let (x0, y0, x1, y1) = unsafe {
            (
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                _mm256_loadu_ps(a.as_ptr().add(i + 8)),
                _mm256_loadu_ps(b.as_ptr().add(i + 8)),
            )
        };
        let (d0, d1) = (_mm256_sub_ps(x0, y0), _mm256_sub_ps(x1, y1));
        let (t0, t1) = if SQUARE {
            (_mm256_mul_ps(d0, d0), _mm256_mul_ps(d1, d1))
        } else {
            (_mm256_andnot_ps(sign, d0), _mm256_andnot_ps(sign, d1))
        };
        lo = _mm256_add_ps(lo, t0);
        hi = _mm256_add_ps(hi, t1);
        i += LANES;
    }
    let mut out = [0f32; LANES];
    // SAFETY: `out` holds 16 floats; the two unaligned 8-float stores fill it.
    unsafe {
        _mm256_storeu_ps(out.as_mut_ptr(), lo);
        _mm256_storeu_ps(out.as_mut_ptr().add(8), hi);
    }
    out
}

/// Adds the tail (the coordinates past the last full group of 16) as the portable loop does.
#[inline(always)]
fn tail<const SQUARE: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let main = n - n % LANES;
    let mut s = 0f32;
    for (x, y) in a[main..n].iter().zip(&b[main..n]) {
        let d = x - y;
        s += if SQUARE { d * d } else { d.abs() };
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: this function only runs where AVX2 is available (its own requirement).
    fold_lanes(unsafe { lanes_avx2::<true>(a, b) }) + tail::<true>(a, b)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: this function only runs where AVX2 is available (its own requirement).
    fold_lanes(unsafe { lanes_avx2::<false>(a, b) }) + tail::<false>(a, b)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn l2sq_avx512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: this function only runs where AVX-512 F is available (its own requirement).
    fold_lanes(unsafe { lanes_avx512::<true>(a, b) }) + tail::<true>(a, b)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn l1_avx512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: this function only runs where AVX-512 F is available (its own requirement).
    fold_lanes(unsafe { lanes_avx512::<false>(a, b) }) + tail::<false>(a, b)
}

impl Kernel {
    /// The kernel for `metric` at the level [`level`] selects.
    pub(crate) fn select(metric: Metric) -> Result<Self, KernelError> {
        Ok(Self::at(level()?, metric))
    }

    fn at(level: KernelKind, metric: Metric) -> Self {
        // cosine searches unit rows by squared L2 (see `search_rows`)
        let metric = if metric == Metric::Cosine { Metric::L2 } else { metric };
        let f: unsafe fn(&[f32], &[f32]) -> f32 = match (level, metric) {
            #[cfg(target_arch = "x86_64")]
            (KernelKind::Avx512, Metric::L2) => l2sq_avx512,
            #[cfg(target_arch = "x86_64")]
            (KernelKind::Avx512, Metric::L1) => l1_avx512,
            #[cfg(target_arch = "x86_64")]
            (KernelKind::Avx2, Metric::L2) => l2sq_avx2,
            #[cfg(target_arch = "x86_64")]
            (KernelKind::Avx2, Metric::L1) => l1_avx2,
            (_, Metric::L2 | Metric::Cosine) => l2sq_portable,
            (_, Metric::L1) => l1_portable,
        };
        Self { metric, f }
    }

    /// The portable kernel (for tests).
    #[cfg(test)]
    pub(crate) fn portable(metric: Metric) -> Self {
        let f: unsafe fn(&[f32], &[f32]) -> f32 = match metric {
            Metric::L2 | Metric::Cosine => l2sq_portable,
            Metric::L1 => l1_portable,
        };
        Self { metric, f }
    }

    /// Distance between two search-space rows.
    #[inline]
    pub(crate) fn dist(&self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `f` is a portable kernel, or an AVX2 / AVX-512 one that `level` only
        // returns after `is_x86_feature_detected!` confirmed the features on this CPU (tests
        // build the levels they use only after the same check).
        unsafe { (self.f)(a, b) }
    }

    /// A per-coordinate term `δ²` (L2) or `|δ|` (L1).
    #[inline]
    pub(crate) fn coord(&self, delta: f32) -> f32 {
        coord_term(self.metric, delta)
    }
}

/// The exact `u8` distance kernel of the re-rank, chosen once per search call: the portable
/// loops ([`l2sq_u8`], [`l1_u8`]) or AVX2 / AVX-512 BW versions (`IMGCLASS_KERNEL` caps the
/// choice as for [`Kernel`]). Integer sums: every level returns the same `u32`.
///
/// L2 widens bytes to `i16`, subtracts and squares-and-pairs with `pmaddwd` (each `i32`
/// lane gets at most `dim / 16` squares of at most 255², below 2³¹ for `dim <= MAX_DIM`);
/// L1 uses `psadbw`. Lane sums are added with wrapping `u32` arithmetic, exact because the
/// total fits in `u32` ([`MAX_DIM`](super::MAX_DIM)).
#[derive(Clone, Copy)]
pub(crate) struct U8Kernel {
    f: unsafe fn(&[u8], &[u8]) -> u32,
}

impl std::fmt::Debug for U8Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("U8Kernel")
    }
}

unsafe fn l2sq_u8_portable(a: &[u8], b: &[u8]) -> u32 {
    l2sq_u8(a, b)
}
unsafe fn l1_u8_portable(a: &[u8], b: &[u8]) -> u32 {
    l1_u8(a, b)
}

/// AVX-512 BW squared L2 on `u8` rows (32 bytes per step, two accumulators).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn l2sq_u8_avx512(a: &[u8], b: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let main = n - n % 64;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_si512();
    let mut acc1 = _mm512_setzero_si512();
    let mut i = 0;
    while i < main {
        // SAFETY: `i + 64 <= main <= n`, so both 32-byte loads at `i` and `i + 32` are inside
        // `a` and `b`; unaligned loads.
        let (x0, y0, x1, y1) = unsafe {
            (
                _mm256_loadu_si256(pa.add(i).cast()),
                _mm256_loadu_si256(pb.add(i).cast()),
                _mm256_loadu_si256(pa.add(i + 32).cast()),
                _mm256_loadu_si256(pb.add(i + 32).cast()),
            )
        };
        let d0 = _mm512_sub_epi16(_mm512_cvtepu8_epi16(x0), _mm512_cvtepu8_epi16(y0));
        let d1 = _mm512_sub_epi16(_mm512_cvtepu8_epi16(x1), _mm512_cvtepu8_epi16(y1));
        acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(d0, d0));
        acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(d1, d1));
        i += 64;
    }
    let s = _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1)) as u32;
    s.wrapping_add(l2sq_u8(&a[main..n], &b[main..n]))
}

/// AVX-512 BW L1 on `u8` rows (`vpsadbw`, 64 bytes per step).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn l1_u8_avx512(a: &[u8], b: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let main = n - n % 64;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm512_setzero_si512();
    let mut i = 0;
    while i < main {
        // SAFETY: `i + 64 <= main <= n`: the 64-byte loads are inside `a` and `b`.
        let (x, y) =
            unsafe { (_mm512_loadu_si512(pa.add(i).cast()), _mm512_loadu_si512(pb.add(i).cast())) };
        acc = _mm512_add_epi64(acc, _mm512_sad_epu8(x, y));
        i += 64;
    }
    let s = _mm512_reduce_add_epi64(acc) as u32;
    s.wrapping_add(l1_u8(&a[main..n], &b[main..n]))
}

/// AVX2 squared L2 on `u8` rows (16 bytes per step, two accumulators).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn l2sq_u8_avx2(a: &[u8], b: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let main = n - n % 32;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    let mut i = 0;
    while i < main {
        // SAFETY: `i + 32 <= main <= n`: the 16-byte loads at `i` and `i + 16` are inside
        // `a` and `b`.
        let (x0, y0, x1, y1) = unsafe {
            (
                _mm_loadu_si128(pa.add(i).cast()),
                _mm_loadu_si128(pb.add(i).cast()),
                _mm_loadu_si128(pa.add(i + 16).cast()),
                _mm_loadu_si128(pb.add(i + 16).cast()),
            )
        };
        let d0 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(x0), _mm256_cvtepu8_epi16(y0));
        let d1 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(x1), _mm256_cvtepu8_epi16(y1));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(d0, d0));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(d1, d1));
        i += 32;
    }
    let mut lanes = [0u32; 8];
    // SAFETY: `lanes` is 32 bytes; unaligned store.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_add_epi32(acc0, acc1)) };
    let s = lanes.iter().fold(0u32, |s, &x| s.wrapping_add(x));
    s.wrapping_add(l2sq_u8(&a[main..n], &b[main..n]))
}

/// AVX2 L1 on `u8` rows (`vpsadbw`, 32 bytes per step).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn l1_u8_avx2(a: &[u8], b: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let main = n - n % 32;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i < main {
        // SAFETY: `i + 32 <= main <= n`: the 32-byte loads are inside `a` and `b`.
        let (x, y) =
            unsafe { (_mm256_loadu_si256(pa.add(i).cast()), _mm256_loadu_si256(pb.add(i).cast())) };
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(x, y));
        i += 32;
    }
    let mut lanes = [0u64; 4];
    // SAFETY: `lanes` is 32 bytes; unaligned store.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
    let s = lanes.iter().sum::<u64>() as u32;
    s.wrapping_add(l1_u8(&a[main..n], &b[main..n]))
}

impl U8Kernel {
    /// The kernel for `metric` at the level [`level`] selects.
    pub(crate) fn select(metric: Metric) -> Result<Self, KernelError> {
        Ok(Self::at(level()?, metric))
    }

    fn at(level: KernelKind, metric: Metric) -> Self {
        let f: unsafe fn(&[u8], &[u8]) -> u32 = match (level, metric) {
            #[cfg(target_arch = "x86_64")]
            (KernelKind::Avx512, Metric::L2) => l2sq_u8_avx512,
            #[cfg(target_arch = "x86_64")]
            (KernelKind::Avx512, Metric::L1) => l1_u8_avx512,
            #[cfg(target_arch = "x86_64")]
            (KernelKind::Avx2, Metric::L2) => l2sq_u8_avx2,
            #[cfg(target_arch = "x86_64")]
            (KernelKind::Avx2, Metric::L1) => l1_u8_avx2,
            // cosine never reaches a u8 kernel: it needs f32 features (see `search_rows`)
            (_, Metric::L2 | Metric::Cosine) => l2sq_u8_portable,
            (_, Metric::L1) => l1_u8_portable,
        };
        Self { f }
    }

    /// Exact distance between two `u8` rows of equal length.
    #[inline]
    pub(crate) fn dist(&self, a: &[u8], b: &[u8]) -> u32 {
        // SAFETY: `f` is a portable kernel, or an AVX2 / AVX-512 BW one that `level` only
        // returns after `is_x86_feature_detected!` confirmed the features on this CPU.
        unsafe { (self.f)(a, b) }
    }
}

/// A per-coordinate contribution `|δ|` raised to the metric's power (δ² for L2, |δ| for L1).
#[inline]
pub(crate) fn coord_term(metric: Metric, delta: f32) -> f32 {
    match metric {
        Metric::L2 | Metric::Cosine => delta * delta,
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
            // integer-valued inputs: exact while sums stay below 2^24
            assert_eq!(l1_f32(&a, &b) as f64, l1);
            if l2 < (1u64 << 24) as f64 {
                assert_eq!(l2sq_f32(&a, &b) as f64, l2);
            } else {
                assert!((l2sq_f32(&a, &b) as f64 - l2).abs() / l2 < 1e-5);
            }
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
                let fast = Kernel::select(m).unwrap().dist(&a, &b);
                let slow = Kernel::portable(m).dist(&a, &b);
                assert_eq!(fast.to_bits(), slow.to_bits(), "d {d} {m:?}");
                assert_eq!(slow.to_bits(), dist_f32(m, &a, &b).to_bits());
            }
        }
    }

    /// Every level this CPU runs (the portable one always).
    fn levels() -> Vec<KernelKind> {
        KernelKind::available()
    }

    #[test]
    fn every_f32_level_is_bit_identical_to_the_portable_one() {
        let mut g = SplitMix64::new(11);
        for d in [0usize, 1, 15, 16, 17, 64, 96, 100, 3072] {
            let a: Vec<f32> = (0..d).map(|_| g.next_normal() as f32 * 41.5).collect();
            let b: Vec<f32> = (0..d).map(|_| g.next_normal() as f32 * 9.75).collect();
            for m in [Metric::L1, Metric::L2] {
                for lv in levels() {
                    let got = Kernel::at(lv, m).dist(&a, &b);
                    assert_eq!(got.to_bits(), dist_f32(m, &a, &b).to_bits(), "{lv:?} d {d} {m:?}");
                }
            }
        }
    }

    /// Naive `u64` references, independent of the kernels' `u32` lane arithmetic.
    fn naive_u8(m: Metric, a: &[u8], b: &[u8]) -> u64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let d = (x as i64 - y as i64).unsigned_abs();
                if m == Metric::L2 { d * d } else { d }
            })
            .sum()
    }

    #[test]
    fn u8_kernels_match_a_naive_sum_on_random_and_extreme_rows() {
        let mut g = SplitMix64::new(13);
        let lens = [0usize, 1, 15, 16, 31, 32, 33, 63, 64, 65, 100, 127, 3072, 3073];
        for d in lens {
            let rnd: Vec<u8> = (0..d).map(|_| g.below(256) as u8).collect();
            let rnd2: Vec<u8> = (0..d).map(|_| g.below(256) as u8).collect();
            let zeros = vec![0u8; d];
            let full = vec![255u8; d];
            let alt: Vec<u8> = (0..d).map(|j| if j % 2 == 0 { 0 } else { 255 }).collect();
            let cases = [
                (&rnd, &rnd2),
                (&zeros, &full),
                (&full, &zeros),
                (&alt, &zeros),
                (&rnd, &rnd),
                (&full, &alt),
            ];
            for (a, b) in cases {
                for m in [Metric::L1, Metric::L2] {
                    let want = naive_u8(m, a, b);
                    for lv in levels() {
                        assert_eq!(U8Kernel::at(lv, m).dist(a, b) as u64, want, "{lv:?} d {d}");
                    }
                    assert_eq!(distance_u8(m, a, b), want);
                }
            }
        }
        // the longest accepted rows at the largest distance: the sum fills u32 exactly
        let d = crate::ann::MAX_DIM;
        let (z, f) = (vec![0u8; d], vec![255u8; d]);
        for lv in levels() {
            assert_eq!(
                U8Kernel::at(lv, Metric::L2).dist(&z, &f) as u64,
                naive_u8(Metric::L2, &z, &f)
            );
            assert_eq!(
                U8Kernel::at(lv, Metric::L1).dist(&f, &z) as u64,
                naive_u8(Metric::L1, &z, &f)
            );
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
