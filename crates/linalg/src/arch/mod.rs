//! Distance micro-kernels: the portable [`scalar`] twin and the x86-64 SIMD paths.
//!
//! Every u8 kernel works the same way (the "broadcast" layout of GEMM micro-kernels): a panel
//! of `QP` queries is packed once so that one vector load holds the same few dimensions of
//! many queries (one query per lane); a tile of `TR` training rows is read in place, a few
//! bytes of each broadcast to every lane. A `TR x QP` block of accumulators stays in
//! registers for the whole row length, so no horizontal sums are needed, training rows can be
//! gathered by index for free, and each loaded vector is reused `TR` (or `QP / lanes`) times.

pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

use crate::Metric;

/// A u8 distance micro-kernel for one metric.
///
/// `tile` writes, for `r < TR` and `q < QP`, `out[r * QP + q]` = the kernel's raw value over
/// the first `dim_main` dimensions (a multiple of `STEP`): the L1 distance for
/// [`Metric::L1`]; for [`Metric::L2`] the dot product `q . t` minus `DOT_BIAS * sum(q)`.
/// The driver adds the tail dimensions and, for L2, the norms.
pub(crate) trait U8Kernel: Copy + Send + Sync {
    /// The metric this kernel computes.
    const METRIC: Metric;
    /// Queries per packed panel.
    const QP: usize;
    /// Training rows per tile.
    const TR: usize;
    /// Dimensions consumed per step; `dim_main` is a multiple of it.
    const STEP: usize;
    /// For L2 kernels: the raw value is `q . t - DOT_BIAS * sum(q[..dim_main])`.
    const DOT_BIAS: i32;

    /// Bytes of one packed panel of `dim_main` dimensions.
    fn panel_len(dim_main: usize) -> usize;

    /// Packs up to `QP` query rows (their first `dim_main` bytes) into `out`
    /// (`panel_len(dim_main)` bytes); missing rows are zero.
    fn pack(rows: &[&[u8]], dim_main: usize, out: &mut [u8]);

    /// Computes one `TR x QP` tile. `train` has `TR` rows of at least `dim_main` bytes, `panel`
    /// came from [`U8Kernel::pack`] with the same `dim_main`, `out` has `TR * QP` entries.
    fn tile(&self, panel: &[u8], dim_main: usize, train: &[&[u8]], out: &mut [i32]);
}

/// Checks a tile call's slice lengths; every kernel calls it before touching memory, so
/// the unchecked reads inside are in bounds.
#[inline]
pub(crate) fn check_tile<K: U8Kernel>(panel: &[u8], dim_main: usize, train: &[&[u8]], out: &[i32]) {
    assert_eq!(dim_main % K::STEP, 0, "dim_main not a multiple of the step");
    assert_eq!(panel.len(), K::panel_len(dim_main), "packed panel length");
    assert_eq!(train.len(), K::TR, "tile row count");
    assert!(train.iter().all(|r| r.len() >= dim_main), "training row shorter than dim_main");
    assert_eq!(out.len(), K::TR * K::QP, "tile output length");
}

/// Queries per f32 panel (two 16-lane or four 8-lane vectors).
pub(crate) const F32_QP: usize = 32;
/// Training rows per f32 tile.
pub(crate) const F32_TR: usize = 12;

/// An f32 micro-kernel: `tile(panel, bpack, c, ldc)` updates, for `r < F32_TR` and
/// `q < F32_QP`, `c[r * ldc + q]` by every step `k < kc` in increasing `k`:
/// `c = fma(a, b, c)` (dot product, `L1 == false`) or `c = c + |a − b|` (`L1 == true`),
/// with `a = panel[k * F32_QP + q]` and `b = bpack[k * F32_TR + r]`. `kc = panel.len() / F32_QP`.
///
/// Every kernel performs exactly these roundings in exactly this order (one lane per
/// `(r, q)`), so every kernel returns the same bits as the scalar twin.
pub(crate) type F32Tile = fn(&[f32], &[f32], &mut [f32], usize);

/// Checks an f32 tile call's slice lengths (the unchecked SIMD reads rely on it).
#[inline]
pub(crate) fn check_f32_tile(panel: &[f32], bpack: &[f32], c: &[f32], ldc: usize) -> usize {
    let kc = panel.len() / F32_QP;
    assert_eq!(panel.len(), kc * F32_QP, "f32 panel length");
    assert_eq!(bpack.len(), kc * F32_TR, "f32 packed tile length");
    assert!(ldc >= F32_QP && c.len() >= (F32_TR - 1) * ldc + F32_QP, "f32 tile output length");
    kc
}

/// `Σ acc` in a fixed tree (halves added pairwise), so the order never depends on the caller.
#[inline(always)]
pub(crate) fn reduce<T: Copy + std::ops::AddAssign, const L: usize>(mut acc: [T; L]) -> T {
    let mut w = L;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            acc[j] += acc[j + w];
        }
    }
    acc[0]
}
