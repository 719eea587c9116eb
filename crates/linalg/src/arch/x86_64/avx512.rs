//! AVX-512 kernels: `vpsadbw` on 64-byte vectors for u8 L1, VNNI `vpdpbusd` for the exact u8
//! dot product behind L2 (`||q||^2 + ||t||^2 - 2 q.t`), and the 12 x 32 f32 micro-kernel of the
//! exact f32 search (`flat.rs`).
//!
//! L2 trick: `vpdpbusd` multiplies unsigned by signed bytes, so the training bytes are flipped
//! to signed (`t - 128`, one `vpxord` per broadcast) and `q.(t - 128) + 128 * sum(q)` recovers
//! `q.t` exactly (`DOT_BIAS = 128`; the driver adds `128 * sum(q)`).

// The AVX-512 intrinsics are stable since Rust 1.89; the workspace's rust-version (1.85) predates
// them but the toolchain in use (rust-toolchain: 1.95) has them, as the gemm kernels also assume.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use crate::arch::{U8Kernel, check_tile};
use crate::{KernelKind, Metric};

const TR: usize = 6;

/// AVX-512 BW L1 kernel (`vpsadbw`): 6 training rows x 32 queries per tile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L1 {
    _detected: (),
}

/// AVX-512 VNNI L2 dot kernel (`vpdpbusd`): 6 training rows x 64 queries per tile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L2 {
    _detected: (),
}

impl L1 {
    /// The kernel, if this CPU has AVX-512 F/BW/VL/VNNI.
    pub(crate) fn new() -> Option<Self> {
        KernelKind::Avx512.is_available().then_some(Self { _detected: () })
    }
}

impl L2 {
    /// The kernel, if this CPU has AVX-512 F/BW/VL/VNNI.
    pub(crate) fn new() -> Option<Self> {
        KernelKind::Avx512.is_available().then_some(Self { _detected: () })
    }
}

const L1_QP: usize = 32;
const L2_QP: usize = 64;

impl U8Kernel for L1 {
    const METRIC: Metric = Metric::L1;
    const QP: usize = L1_QP;
    const TR: usize = TR;
    const STEP: usize = 8;
    const DOT_BIAS: i32 = 0;

    fn panel_len(dim_main: usize) -> usize {
        dim_main * L1_QP
    }

    /// Step `s` (8 dims) holds 4 groups of 8 queries, 8 bytes each: byte offset
    /// `s * 256 + g * 64 + j * 8` for query `8 g + j`.
    fn pack(rows: &[&[u8]], dim_main: usize, out: &mut [u8]) {
        out.fill(0);
        for (q, row) in rows.iter().enumerate().take(L1_QP) {
            let (g, j) = (q / 8, q % 8);
            for (s, chunk) in row[..dim_main].chunks_exact(8).enumerate() {
                let o = s * 256 + g * 64 + j * 8;
                out[o..o + 8].copy_from_slice(chunk);
            }
        }
    }

    fn tile(&self, panel: &[u8], dim_main: usize, train: &[&[u8]], out: &mut [i32]) {
        check_tile::<Self>(panel, dim_main, train, out);
        let t: [*const u8; TR] = std::array::from_fn(|r| train[r].as_ptr());
        // SAFETY: `self` exists only if `new` detected AVX-512 F/BW/VL/VNNI; `check_tile`
        // proved the panel, rows and output are as long as the loop reads and writes.
        unsafe { l1_tile(panel.as_ptr(), dim_main / 8, t, out.as_mut_ptr()) }
    }
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn l1_tile(p: *const u8, steps: usize, t: [*const u8; TR], out: *mut i32) {
    let mut acc = [[_mm512_setzero_si512(); 4]; TR];
    for s in 0..steps {
        // SAFETY: `s < steps`, so the 256 bytes at `p + 256 s` lie in the panel and the 8
        // bytes at `t[r] + 8 s` lie in each row (caller's contract, checked by `check_tile`).
        unsafe {
            let pp = p.add(s * 256);
            let q: [__m512i; 4] =
                std::array::from_fn(|g| _mm512_loadu_si512(pp.add(g * 64).cast()));
            for r in 0..TR {
                let tb = _mm512_set1_epi64(t[r].add(s * 8).cast::<i64>().read_unaligned());
                for g in 0..4 {
                    acc[r][g] = _mm512_add_epi64(acc[r][g], _mm512_sad_epu8(q[g], tb));
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (g, &v) in row.iter().enumerate() {
            // SAFETY: `out` has TR * 32 entries; this writes 8 of them at `r * 32 + g * 8`.
            unsafe {
                _mm256_storeu_si256(out.add(r * L1_QP + g * 8).cast(), _mm512_cvtepi64_epi32(v));
            }
        }
    }
}

impl U8Kernel for L2 {
    const METRIC: Metric = Metric::L2;
    const QP: usize = L2_QP;
    const TR: usize = TR;
    const STEP: usize = 4;
    const DOT_BIAS: i32 = 128;

    fn panel_len(dim_main: usize) -> usize {
        dim_main * L2_QP
    }

    /// Step `s` (4 dims) holds 4 groups of 16 queries, 4 bytes each: byte offset
    /// `s * 256 + g * 64 + j * 4` for query `16 g + j`.
    fn pack(rows: &[&[u8]], dim_main: usize, out: &mut [u8]) {
        out.fill(0);
        for (q, row) in rows.iter().enumerate().take(L2_QP) {
            let (g, j) = (q / 16, q % 16);
            for (s, chunk) in row[..dim_main].chunks_exact(4).enumerate() {
                let o = s * 256 + g * 64 + j * 4;
                out[o..o + 4].copy_from_slice(chunk);
            }
        }
    }

    fn tile(&self, panel: &[u8], dim_main: usize, train: &[&[u8]], out: &mut [i32]) {
        check_tile::<Self>(panel, dim_main, train, out);
        let t: [*const u8; TR] = std::array::from_fn(|r| train[r].as_ptr());
        // SAFETY: `self` exists only if `new` detected AVX-512 F/BW/VL/VNNI; `check_tile`
        // proved the panel, rows and output are as long as the loop reads and writes.
        unsafe { l2_tile(panel.as_ptr(), dim_main / 4, t, out.as_mut_ptr()) }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn l2_tile(p: *const u8, steps: usize, t: [*const u8; TR], out: *mut i32) {
    let flip = _mm512_set1_epi8(-128);
    let mut acc = [[_mm512_setzero_si512(); 4]; TR];
    for s in 0..steps {
        // SAFETY: `s < steps`, so the 256 bytes at `p + 256 s` lie in the panel and the 4
        // bytes at `t[r] + 4 s` lie in each row (caller's contract, checked by `check_tile`).
        unsafe {
            let pp = p.add(s * 256);
            let q: [__m512i; 4] =
                std::array::from_fn(|g| _mm512_loadu_si512(pp.add(g * 64).cast()));
            for r in 0..TR {
                let tb = _mm512_xor_si512(
                    _mm512_set1_epi32(t[r].add(s * 4).cast::<i32>().read_unaligned()),
                    flip,
                );
                for g in 0..4 {
                    acc[r][g] = _mm512_dpbusd_epi32(acc[r][g], q[g], tb);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (g, &v) in row.iter().enumerate() {
            // SAFETY: `out` has TR * 64 entries; this writes 16 of them at `r * 64 + g * 16`.
            unsafe { _mm512_storeu_si512(out.add(r * L2_QP + g * 16).cast(), v) };
        }
    }
}

/// f32 micro-kernel ([`F32Tile`](crate::arch::F32Tile)): 12 training rows x 32 queries,
/// 24 zmm accumulators held over the `kc` steps; each step loads two query vectors and
/// broadcasts one value of each training row (`vfmadd231ps`, or `vsubps`/abs/`vaddps` for L1).
///
/// # Safety
/// The CPU must support AVX-512 F; the lengths must pass `check_f32_tile`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tile_f32<const L1: bool>(
    panel: &[f32],
    bpack: &[f32],
    c: &mut [f32],
    ldc: usize,
) {
    use crate::arch::{F32_QP, F32_TR};
    let kc = crate::arch::check_f32_tile(panel, bpack, c, ldc);
    let (ap, bp, cp) = (panel.as_ptr(), bpack.as_ptr(), c.as_mut_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; F32_TR];
    // SAFETY (all raw accesses below): `check_f32_tile` proved panel = kc x 32, bpack = kc x 12
    // and c holds rows r * ldc .. r * ldc + 32 for r < 12.
    unsafe {
        for (r, a) in acc.iter_mut().enumerate() {
            a[0] = _mm512_loadu_ps(cp.add(r * ldc));
            a[1] = _mm512_loadu_ps(cp.add(r * ldc + 16));
        }
        for k in 0..kc {
            let a0 = _mm512_loadu_ps(ap.add(k * F32_QP));
            let a1 = _mm512_loadu_ps(ap.add(k * F32_QP + 16));
            for (r, a) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(*bp.add(k * F32_TR + r));
                if L1 {
                    a[0] = _mm512_add_ps(a[0], _mm512_abs_ps(_mm512_sub_ps(a0, b)));
                    a[1] = _mm512_add_ps(a[1], _mm512_abs_ps(_mm512_sub_ps(a1, b)));
                } else {
                    a[0] = _mm512_fmadd_ps(a0, b, a[0]);
                    a[1] = _mm512_fmadd_ps(a1, b, a[1]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(cp.add(r * ldc), a[0]);
            _mm512_storeu_ps(cp.add(r * ldc + 16), a[1]);
        }
    }
}
