//! AVX2 kernels: `vpsadbw` on 32-byte vectors for u8 L1; for the exact u8 dot behind L2, bytes
//! widened to i16 and multiplied with `vpmaddwd` (`vpmaddubsw` would saturate); and the f32
//! micro-kernel of the exact f32 search (`flat.rs`) in four 8-lane strips with FMA.

use std::arch::x86_64::*;

use crate::arch::{U8Kernel, check_tile};
use crate::{KernelKind, Metric};

/// AVX2 L1 kernel (`vpsadbw`): 6 training rows x 8 queries per tile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L1 {
    _detected: (),
}

/// AVX2 L2 dot kernel (`vpmaddwd`): 4 training rows x 16 queries per tile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L2 {
    _detected: (),
}

impl L1 {
    /// The kernel, if this CPU has AVX2 and FMA.
    pub(crate) fn new() -> Option<Self> {
        KernelKind::Avx2.is_available().then_some(Self { _detected: () })
    }
}

impl L2 {
    /// The kernel, if this CPU has AVX2 and FMA.
    pub(crate) fn new() -> Option<Self> {
        KernelKind::Avx2.is_available().then_some(Self { _detected: () })
    }
}

const L1_QP: usize = 8;
const L1_TR: usize = 6;
const L2_QP: usize = 16;
const L2_TR: usize = 4;

impl U8Kernel for L1 {
    const METRIC: Metric = Metric::L1;
    const QP: usize = L1_QP;
    const TR: usize = L1_TR;
    const STEP: usize = 8;
    const DOT_BIAS: i32 = 0;

    fn panel_len(dim_main: usize) -> usize {
        dim_main * L1_QP
    }

    /// Step `s` (8 dims) holds 2 groups of 4 queries, 8 bytes each: byte offset
    /// `s * 64 + g * 32 + j * 8` for query `4 g + j`.
    fn pack(rows: &[&[u8]], dim_main: usize, out: &mut [u8]) {
        out.fill(0);
        for (q, row) in rows.iter().enumerate().take(L1_QP) {
            let (g, j) = (q / 4, q % 4);
            for (s, chunk) in row[..dim_main].chunks_exact(8).enumerate() {
                let o = s * 64 + g * 32 + j * 8;
                out[o..o + 8].copy_from_slice(chunk);
            }
        }
    }

    fn tile(&self, panel: &[u8], dim_main: usize, train: &[&[u8]], out: &mut [i32]) {
        check_tile::<Self>(panel, dim_main, train, out);
        let t: [*const u8; L1_TR] = std::array::from_fn(|r| train[r].as_ptr());
        // SAFETY: `self` exists only if `new` detected AVX2; `check_tile` proved the panel,
        // rows and output are as long as the loop reads and writes.
        unsafe { l1_tile(panel.as_ptr(), dim_main / 8, t, out.as_mut_ptr()) }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn l1_tile(p: *const u8, steps: usize, t: [*const u8; L1_TR], out: *mut i32) {
    let mut acc = [[_mm256_setzero_si256(); 2]; L1_TR];
    for s in 0..steps {
        // SAFETY: `s < steps`, so the 64 bytes at `p + 64 s` lie in the panel and the 8
        // bytes at `t[r] + 8 s` lie in each row (caller's contract, checked by `check_tile`).
        unsafe {
            let pp = p.add(s * 64);
            let q0 = _mm256_loadu_si256(pp.cast());
            let q1 = _mm256_loadu_si256(pp.add(32).cast());
            for r in 0..L1_TR {
                let tb = _mm256_set1_epi64x(t[r].add(s * 8).cast::<i64>().read_unaligned());
                acc[r][0] = _mm256_add_epi64(acc[r][0], _mm256_sad_epu8(q0, tb));
                acc[r][1] = _mm256_add_epi64(acc[r][1], _mm256_sad_epu8(q1, tb));
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (g, &v) in row.iter().enumerate() {
            let mut lanes = [0i64; 4];
            // SAFETY: `lanes` is 32 bytes, the size of one vector store.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
            for (j, &v) in lanes.iter().enumerate() {
                // SAFETY: `out` has L1_TR * 8 entries and `r * 8 + g * 4 + j < L1_TR * 8`.
                unsafe { *out.add(r * L1_QP + g * 4 + j) = v as i32 };
            }
        }
    }
}

impl U8Kernel for L2 {
    const METRIC: Metric = Metric::L2;
    const QP: usize = L2_QP;
    const TR: usize = L2_TR;
    const STEP: usize = 4;
    const DOT_BIAS: i32 = 0;

    fn panel_len(dim_main: usize) -> usize {
        dim_main * L2_QP * 2
    }

    /// Bytes widened to little-endian i16. Step `s` (4 dims) holds two halves (dims 0-1 and
    /// 2-3), each 2 groups of 8 queries of 2 i16: byte offset
    /// `s * 128 + h * 64 + g * 32 + j * 4 + e * 2` for dim `4 s + 2 h + e` of query `8 g + j`.
    fn pack(rows: &[&[u8]], dim_main: usize, out: &mut [u8]) {
        out.fill(0);
        for (q, row) in rows.iter().enumerate().take(L2_QP) {
            let (g, j) = (q / 8, q % 8);
            for (s, chunk) in row[..dim_main].chunks_exact(4).enumerate() {
                for h in 0..2 {
                    for e in 0..2 {
                        out[s * 128 + h * 64 + g * 32 + j * 4 + e * 2] = chunk[2 * h + e];
                    }
                }
            }
        }
    }

    fn tile(&self, panel: &[u8], dim_main: usize, train: &[&[u8]], out: &mut [i32]) {
        check_tile::<Self>(panel, dim_main, train, out);
        let t: [*const u8; L2_TR] = std::array::from_fn(|r| train[r].as_ptr());
        // SAFETY: `self` exists only if `new` detected AVX2; `check_tile` proved the panel,
        // rows and output are as long as the loop reads and writes.
        unsafe { l2_tile(panel.as_ptr(), dim_main / 4, t, out.as_mut_ptr()) }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn l2_tile(p: *const u8, steps: usize, t: [*const u8; L2_TR], out: *mut i32) {
    // vpshufb masks turning a broadcast dword [t0 t1 t2 t3] into i16 pairs (t0, t1) / (t2, t3)
    let lo_mask = _mm256_set1_epi32(0x8001_8000u32 as i32);
    let hi_mask = _mm256_set1_epi32(0x8003_8002u32 as i32);
    let mut acc = [[_mm256_setzero_si256(); 2]; L2_TR];
    for s in 0..steps {
        // SAFETY: `s < steps`, so the 128 bytes at `p + 128 s` lie in the panel and the 4
        // bytes at `t[r] + 4 s` lie in each row (caller's contract, checked by `check_tile`).
        unsafe {
            let pp = p.add(s * 128);
            let q: [__m256i; 4] =
                std::array::from_fn(|i| _mm256_loadu_si256(pp.add(i * 32).cast()));
            for r in 0..L2_TR {
                let b = _mm256_set1_epi32(t[r].add(s * 4).cast::<i32>().read_unaligned());
                let lo = _mm256_shuffle_epi8(b, lo_mask);
                let hi = _mm256_shuffle_epi8(b, hi_mask);
                for g in 0..2 {
                    let x = _mm256_add_epi32(
                        _mm256_madd_epi16(q[g], lo),
                        _mm256_madd_epi16(q[2 + g], hi),
                    );
                    acc[r][g] = _mm256_add_epi32(acc[r][g], x);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (g, &v) in row.iter().enumerate() {
            // SAFETY: `out` has L2_TR * 16 entries; this writes 8 of them at `r * 16 + g * 8`.
            unsafe { _mm256_storeu_si256(out.add(r * L2_QP + g * 8).cast(), v) };
        }
    }
}

/// f32 micro-kernel ([`F32Tile`](crate::arch::F32Tile)): 12 training rows x 32 queries,
/// done as four 8-query column strips of 12 ymm accumulators each (AVX2 has 16 registers).
///
/// # Safety
/// The CPU must support AVX2 and FMA; the lengths must pass `check_f32_tile`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn tile_f32<const L1: bool>(
    panel: &[f32],
    bpack: &[f32],
    c: &mut [f32],
    ldc: usize,
) {
    use crate::arch::{F32_QP, F32_TR};
    let kc = crate::arch::check_f32_tile(panel, bpack, c, ldc);
    let (ap, bp, cp) = (panel.as_ptr(), bpack.as_ptr(), c.as_mut_ptr());
    let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    // SAFETY (all raw accesses below): `check_f32_tile` proved panel = kc x 32, bpack = kc x 12
    // and c holds rows r * ldc .. r * ldc + 32 for r < 12.
    unsafe {
        for strip in 0..F32_QP / 8 {
            let o = strip * 8;
            let mut acc = [_mm256_setzero_ps(); F32_TR];
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(cp.add(r * ldc + o));
            }
            for k in 0..kc {
                let av = _mm256_loadu_ps(ap.add(k * F32_QP + o));
                for (r, a) in acc.iter_mut().enumerate() {
                    let b = _mm256_set1_ps(*bp.add(k * F32_TR + r));
                    *a = if L1 {
                        _mm256_add_ps(*a, _mm256_and_ps(_mm256_sub_ps(av, b), absmask))
                    } else {
                        _mm256_fmadd_ps(av, b, *a)
                    };
                }
            }
            for (r, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(cp.add(r * ldc + o), *a);
            }
        }
    }
}
