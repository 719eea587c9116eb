//! The exact-integer forward product of the linear classifier: `S = X̃ W'ᵀ + β` with `W'`
//! quantised per class to 24-bit fixed point and split into three balanced `i8` limbs, so that
//! AVX-512 VNNI (`vpdpbusd`: 64 u8 x i8 multiply-adds per instruction, against 16 for an f32
//! FMA) computes the integer part of every score exactly, with 3 instructions per 64 features
//! and class instead of 4 FMAs plus the byte-to-float conversions.
//!
//! For class `j` over the packed features `k` (`x̃_ik = x_ik · scale_k + offset_k`, as in
//! [`crate::gemm`]):
//!
//! ```text
//! W'_jk = W_jk · scale_k                                       (exact, in f64)
//! e_j   = the largest integer with max_k |W'_jk| · 2^e_j <= Q_MAX = 127·65536 + 127·256 + 127
//!         (e_j = 0 for a class whose W' is all zero)
//! q_jk  = round_half_even(W'_jk · 2^e_j)                       (an integer, |q_jk| <= Q_MAX)
//!       = d2_jk · 65536 + d1_jk · 256 + d0_jk                 (balanced digits, each in [−128, 127])
//! β_j   = Σ_k offset_k · W_jk                                 (f64, from the unquantised W)
//! T_ij  = 65536 · Σ_k x_ik d2_jk + 256 · Σ_k x_ik d1_jk + Σ_k x_ik d0_jk
//!         (each limb sum exact in i32: |Σ| <= K·255·128 < 2^31 for K <= FWD_I8_MAX_K; T in i64)
//! s_ij  = f32( f64(T_ij) · 2^−e_j + β_j )
//! ```
//!
//! `f64(T_ij) · 2^−e_j` is exact (`|T| < 2^53`), so the integer part carries only the
//! quantisation error, at most half a quantum per weight; `β_j` is a sum of exact `f32 x f32`
//! products in 32 `f64` lanes (then a fixed tree); the final addition rounds in `f64` and the
//! result once more to `f32`. Against the exact score `s*_ij = Σ_k x̃_ik W_jk`:
//!
//! ```text
//! |s_ij − s*_ij| <= 2^−(e_j+1) · Σ_k x_ik                      (quantisation)
//!                 + (K/32 + 6) · 2^−53 · Σ_k |offset_k W_jk|   (β in f64)
//!                 + 2^−24 · |s_ij| + 2^−53 · |s*_ij|            (the two final roundings)
//! ```
//!
//! Since `max_k |W'_jk| · 2^e_j >= 2^22`, the quantum `2^−e_j` is at most `2^−22` of the
//! class's largest `|W'_jk|`: the quantisation error of a weight is below that of storing the
//! largest one in `f32`. The error bound is tested against an `f64` product on the
//! unquantised `W'`.
//!
//! The limbs are packed so that each `i32` lane of a vector is one output: per 4 features
//! (a quad), a 64-byte vector holds in lane `t = 3c + l` the limb-`l` digits of class `5v + c`
//! for those 4 features (15 of 16 lanes used; `ceil(n / 5)` vectors per quad, zero-padded
//! to 16 features). The AVX-512 kernel (`avx512f` + `avx512bw` + `avx512vnni`, detected at
//! run time behind [`KernelKind::Avx512`]) broadcasts each row's 4 bytes of a quad and
//! multiplies them with the quad's vectors (`vpdpbusd`), 8 rows x 2 vectors (10 classes) per
//! register block: every lane accumulates one (row, class, limb) sum, so no horizontal
//! reduction is needed (a first version with one accumulator per (row, class, limb) over 64
//! features spent a fifth of its time reducing them). The last `K mod 4` bytes of a row are
//! read one by one, never past its end. The scalar twin (every other kernel, and AVX-512
//! without VNNI) computes the same integers and the same final `f64` operations, so the two
//! give the same bits. Packing runs once per `W` update (the caller repacks every SGD
//! iteration), vectorised with AVX-512 when the product is.
//!
//! ```
//! use imgclass_linalg::gemm::{Affine, KernelKind, NtPackedI8, gemm_nt_u8_i8_serial};
//!
//! // two 3-pixel images, mean [1, 2, 3] subtracted (scale 1, offset −mean)
//! let rows: [&[u8]; 2] = [&[2, 2, 5], &[0, 4, 3]];
//! let (scale, offset) = ([1.0f32; 3], [-1.0f32, -2.0, -3.0]);
//! let pre = Affine { scale: &scale, offset: &offset };
//! // W: one row per class; every weight here is a multiple of the class's quantum, so the
//! // scores are exact
//! let w: [&[f32]; 2] = [&[1.0, 1.0, 1.0], &[0.5, -1.0, 2.0]];
//! let mut packed = NtPackedI8::new(KernelKind::Scalar);
//! packed.pack(pre, &w)?;
//! let mut s = [0.0f32; 4];
//! gemm_nt_u8_i8_serial(&rows, pre, &packed, &mut s)?;
//! assert_eq!(s, [3.0, 4.5, 1.0, -2.5]);
//! // class 0: max |W'| = 1, so e = 22 (2^22 <= Q_MAX < 2^23)
//! assert_eq!(packed.exponents(), &[22, 21]);
//! # Ok::<(), imgclass_linalg::gemm::GemmError>(())
//! ```

use super::{Affine, GemmError, KernelError, KernelKind, check};

/// The largest quantised weight: `127·65536 + 127·256 + 127`, the top of the balanced
/// three-digit base-256 range.
pub const FWD_I8_Q_MAX: i32 = 127 * 65536 + 127 * 256 + 127;

/// The most features [`NtPackedI8::pack`] accepts: `K · 255 · 128` must fit an `i32` so that
/// each limb's sum is exact.
pub const FWD_I8_MAX_K: usize = (i32::MAX as usize) / (255 * 128);

/// Classes per packed vector: 5 classes x 3 limbs fill 15 of its 16 `i32` lanes.
const CPV: usize = 5;

/// Lanes of the `f64` partial sums of `β` (feature `k` goes to lane `k mod 32`).
const BETA_LANES: usize = 32;

/// One packed vector (64 bytes: 16 `i32` lanes of 4 digits), aligned to a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([i8; 64]);

/// `W` packed for [`gemm_nt_u8_i8_serial`]: per class a power-of-two exponent, `β` and the
/// three balanced `i8` limbs of the quantised `W' = W · diag(scale)` (see the module docs).
/// Made empty by [`NtPackedI8::new`], filled (and refilled, reusing its buffers) by
/// [`NtPackedI8::pack`]. [`Default`] is an empty packing for the scalar kernel.
#[derive(Clone)]
pub struct NtPackedI8 {
    kernel: KernelKind,
    packed: bool,
    n: usize,
    k: usize,
    /// Vectors per 4-feature quad: `ceil(n / 5)`.
    nv: usize,
    /// Quads packed (`ceil(k / 16) · 4`, zero past `k`).
    nq: usize,
    /// Quad `q`, vector `v` at `q·nv + v`: its `i32` lane `t = 3c + l` (`t < 15`) holds the
    /// limb-`l` digits of class `5v + c` for features `4q .. 4q + 4` (one byte each); lane 15
    /// and absent classes are zero.
    lines: Vec<Line>,
    exps: Vec<i32>,
    /// `2^−e_j`.
    unit: Vec<f64>,
    beta: Vec<f64>,
    /// Scratch of the AVX-512 packing: the offsets in `f64`, the digits class by class.
    off: Vec<f64>,
    zs: Vec<Line>,
}

impl Default for NtPackedI8 {
    fn default() -> Self {
        Self::new(KernelKind::Scalar)
    }
}

impl NtPackedI8 {
    /// An empty packing for `kernel` (no product can use it before [`Self::pack`]).
    pub fn new(kernel: KernelKind) -> Self {
        Self {
            kernel,
            packed: false,
            n: 0,
            k: 0,
            nv: 0,
            nq: 0,
            lines: Vec::new(),
            exps: Vec::new(),
            unit: Vec::new(),
            beta: Vec::new(),
            off: Vec::new(),
            zs: Vec::new(),
        }
    }

    /// The kernel this packing is for.
    pub fn kernel(&self) -> KernelKind {
        self.kernel
    }

    /// True when packing and products run the AVX-512 VNNI code (`kernel` is
    /// [`KernelKind::Avx512`] and this CPU has AVX-512 BW and VNNI); otherwise the scalar
    /// twin runs, with the same results.
    pub fn is_simd(&self) -> bool {
        super::i8u8_is_simd(self.kernel)
    }

    /// The per-class exponents `e_j` of the last packing (the quantum of class `j` is
    /// `2^−e_j`); empty before the first.
    pub fn exponents(&self) -> &[i32] {
        &self.exps
    }

    /// Quantises and packs `W` given as one slice per class (`segs[j]` holds class `j`'s
    /// weights of the `k = pre.scale.len()` features this packing covers), with
    /// `β_j = Σ_k offset_k W_jk`. Reuses the buffers of the previous packing.
    ///
    /// Errors: a segment or `offset` whose length is not `k`, more than [`FWD_I8_MAX_K`]
    /// features, a non-finite weight, scale or offset, or a kernel this CPU cannot run. After
    /// an error the packing is empty.
    pub fn pack<S: AsRef<[f32]>>(&mut self, pre: Affine<'_>, segs: &[S]) -> Result<(), GemmError> {
        self.packed = false;
        let k = pre.scale.len();
        check("offset", k, pre.offset.len())?;
        for s in segs {
            check("segment", k, s.as_ref().len())?;
        }
        if k > FWD_I8_MAX_K {
            return Err(GemmError::ShapeMismatch {
                what: "features",
                expected: FWD_I8_MAX_K,
                found: k,
            });
        }
        if !self.kernel.is_available() {
            return Err(GemmError::Kernel(KernelError::Unavailable { name: self.kernel.name() }));
        }
        let n = segs.len();
        let (nv, nq) = (n.div_ceil(CPV), k.div_ceil(16) * 4);
        self.n = n;
        self.k = k;
        self.nv = nv;
        self.nq = nq;
        // every byte is written below: no clearing
        self.lines.resize(nq * nv, Line([0; 64]));
        self.exps.resize(n, 0);
        self.unit.resize(n, 1.0);
        self.beta.resize(n, 0.0);
        if n > 0 {
            if !all_finite(pre.scale) {
                return Err(first_non_finite(pre, segs));
            }
            #[cfg(target_arch = "x86_64")]
            if self.is_simd() {
                // SAFETY: avx512f and avx512bw detected (`is_simd`); segments have k floats
                // (checked), `lines` holds nq · nv lines and the other buffers n values.
                let finite = unsafe {
                    vnni::pack(
                        pre,
                        segs,
                        nq,
                        &mut self.lines,
                        &mut self.exps,
                        &mut self.beta,
                        &mut self.off,
                        &mut self.zs,
                    )
                };
                if !finite {
                    return Err(first_non_finite(pre, segs));
                }
                for (u, &e) in self.unit.iter_mut().zip(&self.exps) {
                    *u = pow2(-e);
                }
                self.packed = true;
                return Ok(());
            }
            pack_scalar(pre, segs, &mut self.lines, &mut self.exps, &mut self.beta)?;
            for (u, &e) in self.unit.iter_mut().zip(&self.exps) {
                *u = pow2(-e);
            }
        }
        self.packed = true;
        Ok(())
    }
}

/// Scores `out = X̃ W'ᵀ + β` (`out`: `rows.len() x n` row-major) for the `W` last given to
/// [`NtPackedI8::pack`] with this `pre`, on the calling thread only (no rayon tasks). Each
/// `rows[i]` holds the `k = pre.scale.len()` bytes of the packed features (any alignment).
/// Every score is computed the same way whatever rows it is computed with, and both kernels
/// give the same bits.
pub fn gemm_nt_u8_i8_serial(
    rows: &[&[u8]],
    pre: Affine<'_>,
    packed: &NtPackedI8,
    out: &mut [f32],
) -> Result<(), GemmError> {
    let k = pre.scale.len();
    if !packed.packed {
        return Err(GemmError::ShapeMismatch { what: "packed", expected: k, found: 0 });
    }
    check("packed features", packed.k, k)?;
    for r in rows {
        check("row", k, r.len())?;
    }
    let n = packed.n;
    check("out", rows.len() * n, out.len())?;
    if n == 0 || rows.is_empty() {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if packed.is_simd() {
        // SAFETY: avx512f, bw and vnni detected (`is_simd`); rows have k bytes, `out` holds
        // rows.len() · n floats, and `packed` holds nq · nv lines for this k and n.
        unsafe { vnni::nt(rows, packed, out) };
        return Ok(());
    }
    nt_scalar(rows, packed, out);
    Ok(())
}

/// `2^e` for `−1022 <= e <= 1023`.
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The largest `e` with `m · 2^e <= Q_MAX` (`m >= 0` finite, `m = max_k |W'_jk|`); 0 for
/// `m = 0`. `m` is a product of two `f32`, so `m >= 2^−298` when non-zero: a normal `f64`,
/// and `e` lies in `[−234, 320]`.
fn exponent_for(m: f64) -> i32 {
    if m == 0.0 {
        return 0;
    }
    let big_e = ((m.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    // m · 2^(22 − E) lies in [2^22, 2^23): at most Q_MAX or not
    let e = 22 - big_e;
    if m * pow2(e) > f64::from(FWD_I8_Q_MAX) { e - 1 } else { e }
}

/// The balanced base-256 digits `[d0, d1, d2]` of `q` (`|q| <= Q_MAX`):
/// `q = d2·65536 + d1·256 + d0`, each digit in `[−128, 127]`.
fn digits(q: i32) -> [i8; 3] {
    let d0 = (q << 24) >> 24;
    let q1 = (q - d0) >> 8;
    let d1 = (q1 << 24) >> 24;
    let d2 = (q1 - d1) >> 8;
    [d0 as i8, d1 as i8, d2 as i8]
}

/// `Σ` of the 32 lanes of `β` in a fixed tree (both kernels call this).
fn reduce_lanes(l: &[f64; BETA_LANES]) -> f64 {
    crate::arch::reduce(*l)
}

/// One score from its three exact limb sums (both kernels call this).
#[inline(always)]
fn finish(s: [i32; 3], unit: f64, beta: f64) -> f32 {
    let t = (i64::from(s[2]) << 16) + (i64::from(s[1]) << 8) + i64::from(s[0]);
    (t as f64 * unit + beta) as f32
}

/// True when no value is NaN or infinite (branch-free, so it vectorises).
fn all_finite(v: &[f32]) -> bool {
    v.iter().fold(0u32, |acc, x| acc | u32::from(x.to_bits() & 0x7f80_0000 == 0x7f80_0000)) == 0
}

/// The first non-finite input in the order scale, offset, then `W` class by class (the error
/// both kernels report); `ShapeMismatch` on `w` if there is none (not reached).
fn first_non_finite<S: AsRef<[f32]>>(pre: Affine<'_>, segs: &[S]) -> GemmError {
    let k = pre.scale.len();
    if let Some(index) = pre.scale.iter().position(|v| !v.is_finite()) {
        return GemmError::NonFinite { what: "scale", index };
    }
    if let Some(index) = pre.offset.iter().position(|v| !v.is_finite()) {
        return GemmError::NonFinite { what: "offset", index };
    }
    for (j, s) in segs.iter().enumerate() {
        if let Some(kk) = s.as_ref().iter().position(|v| !v.is_finite()) {
            return GemmError::NonFinite { what: "w", index: j * k + kk };
        }
    }
    GemmError::NonFinite { what: "w", index: usize::MAX }
}

/// The scalar packing: the reference the AVX-512 packing reproduces bit for bit.
fn pack_scalar<S: AsRef<[f32]>>(
    pre: Affine<'_>,
    segs: &[S],
    lines: &mut [Line],
    exps: &mut [i32],
    beta: &mut [f64],
) -> Result<(), GemmError> {
    let k = pre.scale.len();
    let nv = segs.len().div_ceil(CPV);
    lines.fill(Line([0; 64]));
    for (j, seg) in segs.iter().enumerate() {
        let w = seg.as_ref();
        let mut m = 0.0f64;
        let mut lanes = [0.0f64; BETA_LANES];
        for kk in 0..k {
            let wk = f64::from(w[kk]);
            m = m.max((wk * f64::from(pre.scale[kk])).abs());
            lanes[kk % BETA_LANES] += f64::from(pre.offset[kk]) * wk;
        }
        let b = reduce_lanes(&lanes);
        if !b.is_finite() {
            return Err(first_non_finite(pre, segs));
        }
        beta[j] = b;
        let e = exponent_for(m);
        exps[j] = e;
        let f = pow2(e);
        let (v, c) = (j / CPV, j % CPV);
        for kk in 0..k {
            let q = ((f64::from(w[kk]) * f64::from(pre.scale[kk])) * f).round_ties_even() as i32;
            for (l, d) in digits(q).into_iter().enumerate() {
                lines[(kk / 4) * nv + v].0[4 * (3 * c + l) + kk % 4] = d;
            }
        }
    }
    Ok(())
}

/// The scalar twin of the product: exact `i32` limb sums, then [`finish`].
fn nt_scalar(rows: &[&[u8]], p: &NtPackedI8, out: &mut [f32]) {
    let (n, nv) = (p.n, p.nv);
    for (r, o) in rows.iter().zip(out.chunks_exact_mut(n)) {
        for (j, oj) in o.iter_mut().enumerate() {
            let (v, c) = (j / CPV, j % CPV);
            let mut s = [0i32; 3];
            for (kk, &x) in r.iter().enumerate() {
                let line = &p.lines[(kk / 4) * nv + v].0;
                for (l, sl) in s.iter_mut().enumerate() {
                    *sl += i32::from(x) * i32::from(line[4 * (3 * c + l) + kk % 4]);
                }
            }
            *oj = finish(s, p.unit[j], p.beta[j]);
        }
    }
}

/// AVX-512 VNNI kernels (packing needs F and BW; the product F, BW and VNNI).
///
/// The AVX-512 intrinsics are stable since Rust 1.89; the workspace's declared
/// `rust-version` (1.85) predates them, hence the `incompatible_msrv` allowance, as in
/// `gemm::int`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
#[allow(clippy::needless_range_loop)]
mod vnni {
    use super::{BETA_LANES, CPV, Line, NtPackedI8, exponent_for, finish, pow2, reduce_lanes};
    use crate::gemm::Affine;
    use std::arch::x86_64::*;

    /// Rows per register block.
    const MR: usize = 8;
    /// Packed vectors (of 5 classes) per register block.
    const NV: usize = 2;

    /// The mask of the first `min(rem, 16)` lanes.
    #[inline(always)]
    fn mask16(rem: usize) -> u16 {
        if rem >= 16 { u16::MAX } else { (1u16 << rem) - 1 }
    }

    /// 16 floats from `p` (only the first `min(rem, 16)`; the rest zero).
    ///
    /// # Safety
    /// AVX-512F; `p .. p + min(rem, 16)` readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(p: *const f32, rem: usize) -> __m512 {
        // SAFETY: a masked load reads only the unmasked lanes, inside the caller's range.
        unsafe {
            if rem >= 16 { _mm512_loadu_ps(p) } else { _mm512_maskz_loadu_ps(mask16(rem), p) }
        }
    }

    /// The two `f64` halves of 16 floats.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn halves(v: __m512) -> [__m512d; 2] {
        let hi = _mm256_castsi256_ps(_mm512_extracti64x4_epi64::<1>(_mm512_castps_si512(v)));
        [_mm512_cvtps_pd(_mm512_castps512_ps256(v)), _mm512_cvtps_pd(hi)]
    }

    /// The balanced digits of 16 quantised weights `q` (`|q| <= Q_MAX`, features `4L ..
    /// 4L + 4` in 128-bit lane `L`) as bytes: lane `L` holds `[d0 x 4, d1 x 4, d2 x 4, 0 x 4]`
    /// of its 4 features, i.e. `u32` element `4L + l` is limb `l` of quad `L` (the same
    /// digits as [`super::digits`]).
    ///
    /// With `u = q + 0x8080`: `d2 = u >> 16` (which fits an `i8`, so it is byte 2 of `u`);
    /// `d1`, the low byte of `(q + 128) >> 8`, is byte 1 of `u` minus `0x80` (the added
    /// `0x8000`), and `d0`, the low byte of `q`, is byte 0 of `u` minus `0x80`. So the bytes
    /// of `(q + 0x8080) ^ 0x8080` are `[d0, d1, d2, ·]`, and one byte shuffle transposes each
    /// 4 x 4 block.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn digit_lanes(q: __m512i) -> __m512i {
        let c = _mm512_set1_epi32(0x8080);
        let v = _mm512_xor_si512(_mm512_add_epi32(q, c), c);
        let ctrl = _mm512_broadcast_i32x4(_mm_setr_epi8(
            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, -128, -128, -128, -128,
        ));
        _mm512_shuffle_epi8(v, ctrl)
    }

    /// The packing of [`super::pack_scalar`] (same exponents, limbs and `β`, bit for bit);
    /// returns false, leaving the buffers partly written, when some `β_j` is not finite (a
    /// non-finite weight or offset; the scale was checked by the caller). `off` and `zs` are
    /// scratch.
    ///
    /// With `scale = 1` everywhere (mean subtraction) and an exponent inside the `f32` range,
    /// `W' = W` and `W · 2^e` are exact in `f32`, so the maximum and the quantisation run on
    /// 16 `f32` lanes instead of 8 `f64` ones, with the same results. The digits of 5 classes
    /// x 16 features are turned into 4 packed vectors (one per quad) by 3 lane permutations
    /// each.
    ///
    /// # Safety
    /// AVX-512F and BW; every segment holds `k = pre.scale.len()` floats, `offset` too;
    /// `nq = ceil(k / 16) · 4`; `lines` holds `nq · ceil(n / 5)` lines; `exps` and `beta`
    /// `segs.len()` values.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn pack<S: AsRef<[f32]>>(
        pre: Affine<'_>,
        segs: &[S],
        nq: usize,
        lines: &mut [Line],
        exps: &mut [i32],
        beta: &mut [f64],
        off: &mut Vec<f64>,
        zs: &mut Vec<Line>,
    ) -> bool {
        const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        let k = pre.scale.len();
        let n = segs.len();
        let nv = n.div_ceil(CPV);
        off.clear();
        off.extend(pre.offset.iter().map(|&o| f64::from(o)));
        off.resize(k.next_multiple_of(32), 0.0);
        let unit = pre.scale.iter().fold(true, |a, &s| a & (s == 1.0));
        let (sp, opd) = (pre.scale.as_ptr(), off.as_ptr());
        // pass 1, class by class: max |W'| and β in 4 x 8 lanes (feature kk in lane kk mod 32)
        for (j, seg) in segs.iter().enumerate() {
            let wp = seg.as_ref().as_ptr();
            let mut mx32 = _mm512_setzero_ps();
            let mut mx = [_mm512_setzero_pd(); 2];
            let mut b = [_mm512_setzero_pd(); 4];
            let mut kk = 0;
            while kk < k {
                for h in 0..2 {
                    let at = kk + 16 * h;
                    let rem = k.saturating_sub(at);
                    // SAFETY: `load16` reads at..at + min(rem, 16) <= k floats of the segment
                    // and the scale (at.min(k) keeps the pointer in bounds when rem = 0).
                    let wv = unsafe { load16(wp.add(at.min(k)), rem) };
                    let [w0, w1] = halves(wv);
                    if unit {
                        mx32 = _mm512_max_ps(_mm512_abs_ps(wv), mx32);
                    } else {
                        // SAFETY: as above.
                        let [s0, s1] = halves(unsafe { load16(sp.add(at.min(k)), rem) });
                        mx[0] = _mm512_max_pd(_mm512_abs_pd(_mm512_mul_pd(w0, s0)), mx[0]);
                        mx[1] = _mm512_max_pd(_mm512_abs_pd(_mm512_mul_pd(w1, s1)), mx[1]);
                    }
                    // SAFETY: at + 16 <= kk + 32 <= off.len() (k rounded up to 32).
                    let (o0, o1) =
                        unsafe { (_mm512_loadu_pd(opd.add(at)), _mm512_loadu_pd(opd.add(at + 8))) };
                    // o·w is exact in f64, so the fused multiply-add rounds like the scalar
                    // `+=` of a product
                    b[2 * h] = _mm512_fmadd_pd(o0, w0, b[2 * h]);
                    b[2 * h + 1] = _mm512_fmadd_pd(o1, w1, b[2 * h + 1]);
                }
                kk += 32;
            }
            let mut lanes = [0.0f64; BETA_LANES];
            for (q, v) in b.iter().enumerate() {
                // SAFETY: 8 f64 into lanes[8q .. 8q + 8].
                unsafe { _mm512_storeu_pd(lanes.as_mut_ptr().add(8 * q), *v) };
            }
            let bj = reduce_lanes(&lanes);
            if !bj.is_finite() {
                return false;
            }
            beta[j] = bj;
            let m = if unit {
                f64::from(_mm512_reduce_max_ps(mx32))
            } else {
                _mm512_reduce_max_pd(_mm512_max_pd(mx[0], mx[1]))
            };
            exps[j] = exponent_for(m);
        }
        // pass 2: q and its digits class by class into `zs` (one vector per 16 features),
        // then per 16 features the 5 classes' digits transposed so that lane t = 3c + l of
        // quad qq's vector is u32 element 4qq + l of class c's
        let ng = nq / 4;
        if zs.len() < CPV * ng {
            zs.resize(CPV * ng, Line([0; 64]));
        }
        let mut idx = [_mm512_setzero_si512(); 4];
        for (qq, v) in idx.iter_mut().enumerate() {
            let mut t = [0i32; 16];
            for (lane, x) in t.iter_mut().enumerate().take(15) {
                let (c, l) = (lane / 3, lane % 3);
                *x = ((c % 2) * 16 + 4 * qq + l) as i32;
            }
            // SAFETY: 16 i32 from a 16-element array.
            *v = unsafe { _mm512_loadu_si512(t.as_ptr().cast()) };
        }
        let base = lines.as_mut_ptr();
        let zp = zs.as_mut_ptr();
        for v in 0..nv {
            for c in 0..CPV {
                let j = v * CPV + c;
                if j >= n {
                    for g in 0..ng {
                        // SAFETY: line c·ng + g of `zs` (CPV · ng lines).
                        unsafe {
                            _mm512_store_si512(zp.add(c * ng + g).cast(), _mm512_setzero_si512())
                        };
                    }
                    continue;
                }
                let e = exps[j];
                let wp = segs[j].as_ref().as_ptr();
                let fast = unit && (-126..=127).contains(&e);
                let f32e =
                    _mm512_set1_ps(f32::from_bits(((e.clamp(-126, 127) + 127) as u32) << 23));
                let f = _mm512_set1_pd(pow2(e));
                for g in 0..ng {
                    let at = 16 * g;
                    let rem = k.saturating_sub(at);
                    // SAFETY: as above.
                    let wv = unsafe { load16(wp.add(at.min(k)), rem) };
                    let q = if fast {
                        _mm512_cvt_roundps_epi32::<RNE>(_mm512_mul_ps(wv, f32e))
                    } else {
                        let [w0, w1] = halves(wv);
                        // SAFETY: as above.
                        let [s0, s1] = halves(unsafe { load16(sp.add(at.min(k)), rem) });
                        let q0 = _mm512_cvt_roundpd_epi32::<RNE>(_mm512_mul_pd(
                            _mm512_mul_pd(w0, s0),
                            f,
                        ));
                        let q1 = _mm512_cvt_roundpd_epi32::<RNE>(_mm512_mul_pd(
                            _mm512_mul_pd(w1, s1),
                            f,
                        ));
                        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q0), q1)
                    };
                    // SAFETY: line c·ng + g of `zs`.
                    unsafe { _mm512_store_si512(zp.add(c * ng + g).cast(), digit_lanes(q)) };
                }
            }
            for g in 0..ng {
                // SAFETY: lines c·ng + g of `zs` (64-byte aligned).
                let z: [__m512i; CPV] = unsafe {
                    [0, 1, 2, 3, 4].map(|c| _mm512_load_si512(zp.add(c * ng + g).cast()))
                };
                for (qq, ix) in idx.iter().enumerate() {
                    let lo = _mm512_maskz_permutex2var_epi32(0x003f, z[0], *ix, z[1]);
                    let mid = _mm512_maskz_permutex2var_epi32(0x0fc0, z[2], *ix, z[3]);
                    let hi = _mm512_maskz_permutexvar_epi32(0x7000, *ix, z[4]);
                    let o = _mm512_or_si512(_mm512_or_si512(lo, mid), hi);
                    // SAFETY: quad 4g + qq < nq and v < nv: a line of `lines` (64-byte aligned).
                    unsafe { _mm512_store_si512(base.add((4 * g + qq) * nv + v).cast(), o) };
                }
            }
        }
        true
    }

    /// The product (see [`super::gemm_nt_u8_i8_serial`]): blocks of up to 8 rows x 2 packed
    /// vectors (10 classes), one `i32` accumulator lane per (row, class, limb), so no
    /// horizontal sums: per 4 features, each row's 4 bytes are broadcast and multiplied
    /// (`vpdpbusd`) with the packed vectors. During the first vector pair the next block's
    /// rows are prefetched (they are random rows of a large dataset).
    ///
    /// # Safety
    /// AVX-512F, BW and VNNI; every row holds `p.k` bytes; `out` holds `rows.len() · p.n`
    /// floats; `p` is packed.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn nt(rows: &[&[u8]], p: &NtPackedI8, out: &mut [f32]) {
        let (m, nv) = (rows.len(), p.nv);
        let mut v0 = 0;
        while v0 < nv {
            let nvb = (nv - v0).min(NV);
            let mut i = 0;
            while i < m {
                let nr = (m - i).min(MR);
                let next = if v0 == 0 { &rows[i + nr..(i + nr + MR).min(m)] } else { &[][..] };
                let blk = &rows[i..i + nr];
                macro_rules! go {
                    ($($r:literal),*) => {
                        match (nr, nvb) {
                            $(($r, 2) => block::<$r, 2>(blk, next, p, i, v0, out),)*
                            $(($r, _) => block::<$r, 1>(blk, next, p, i, v0, out),)*
                            _ => unreachable!(),
                        }
                    };
                }
                // SAFETY: forwarded; i + nr <= m rows, v0 + nvb <= nv vectors.
                unsafe { go!(8, 7, 6, 5, 4, 3, 2, 1) };
                i += nr;
            }
            v0 += nvb;
        }
    }

    /// Rows `i0 .. i0 + R` (`rows`) against packed vectors `v0 .. v0 + V`.
    ///
    /// # Safety
    /// As [`nt`]; `rows.len() == R`, `v0 + V <= p.nv`, `i0 + R <= out.len() / p.n`.
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn block<const R: usize, const V: usize>(
        rows: &[&[u8]],
        next: &[&[u8]],
        p: &NtPackedI8,
        i0: usize,
        v0: usize,
        out: &mut [f32],
    ) {
        let (k, nv, n) = (p.k, p.nv, p.n);
        let full = k / 4;
        let w = p.lines.as_ptr();
        let mut acc = [[_mm512_setzero_si512(); V]; R];
        let mut ptr = [std::ptr::null::<u8>(); R];
        for r in 0..R {
            ptr[r] = rows[r].as_ptr();
        }
        let mut q0 = 0;
        while q0 < full {
            let q1 = (q0 + 16).min(full);
            for r in next {
                // SAFETY: 4·q0 < 4·full <= k = the row's length; a prefetch never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(4 * q0).cast()) };
            }
            for q in q0..q1 {
                // SAFETY: line q·nv + v0 + v < nq·nv (q < full <= nq); bytes 4q .. 4q + 4 <= k
                // of each row.
                unsafe {
                    let mut wv = [_mm512_setzero_si512(); V];
                    for v in 0..V {
                        wv[v] = _mm512_load_si512(w.add(q * nv + v0 + v).cast());
                    }
                    for r in 0..R {
                        let x = _mm512_set1_epi32(ptr[r].add(4 * q).cast::<i32>().read_unaligned());
                        for v in 0..V {
                            acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], x, wv[v]);
                        }
                    }
                }
            }
            q0 = q1;
        }
        if full * 4 < k {
            // the last 1 to 3 features: the row's bytes read one by one (never past its end)
            // SAFETY: line full·nv + v0 + v < nq·nv (full < ceil(k / 4) <= nq); the row bytes
            // are read through a bounds-checked slice.
            unsafe {
                let mut wv = [_mm512_setzero_si512(); V];
                for v in 0..V {
                    wv[v] = _mm512_load_si512(w.add(full * nv + v0 + v).cast());
                }
                for r in 0..R {
                    let mut b = [0u8; 4];
                    b[..k - 4 * full].copy_from_slice(&rows[r][4 * full..k]);
                    let x = _mm512_set1_epi32(i32::from_le_bytes(b));
                    for v in 0..V {
                        acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], x, wv[v]);
                    }
                }
            }
        }
        for r in 0..R {
            for v in 0..V {
                let mut s = [0i32; 16];
                // SAFETY: 16 i32 into a 16-element array.
                unsafe { _mm512_storeu_si512(s.as_mut_ptr().cast(), acc[r][v]) };
                for c in 0..CPV {
                    let j = (v0 + v) * CPV + c;
                    if j < n {
                        out[(i0 + r) * n + j] =
                            finish([s[3 * c], s[3 * c + 1], s[3 * c + 2]], p.unit[j], p.beta[j]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::Gen;

    /// Uniform in [−1, 1).
    fn sym(r: &mut Gen) -> f32 {
        (r.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Both kernels (the SIMD one when this CPU has it) on the same input: same exponents,
    /// same scores bit for bit. Returns the scalar scores.
    fn both(rows: &[&[u8]], pre: Affine<'_>, w: &[Vec<f32>]) -> (Vec<f32>, Vec<i32>) {
        let n = w.len();
        let mut want = vec![f32::NAN; rows.len() * n];
        let mut sp = NtPackedI8::new(KernelKind::Scalar);
        sp.pack(pre, w).expect("pack");
        gemm_nt_u8_i8_serial(rows, pre, &sp, &mut want).expect("product");
        for kernel in KernelKind::available() {
            let mut p = NtPackedI8::new(kernel);
            p.pack(pre, w).expect("pack");
            assert_eq!(p.exponents(), sp.exponents(), "{kernel:?}");
            assert_eq!(
                p.beta.iter().map(|b| b.to_bits()).collect::<Vec<_>>(),
                sp.beta.iter().map(|b| b.to_bits()).collect::<Vec<_>>(),
                "{kernel:?} beta"
            );
            let lb = |p: &NtPackedI8| p.lines.iter().flat_map(|l| l.0).collect::<Vec<i8>>();
            assert_eq!(lb(&p), lb(&sp), "{kernel:?} limbs");
            let mut got = vec![f32::NAN; rows.len() * n];
            gemm_nt_u8_i8_serial(rows, pre, &p, &mut got).expect("product");
            assert_eq!(bits(&got), bits(&want), "{kernel:?} k={}", pre.scale.len());
        }
        (want, sp.exps.clone())
    }

    /// The error bound of the module docs against an f64 product on the unquantised `W`.
    /// Returns the largest ratio of the error to its bound.
    fn check_bound(
        rows: &[&[u8]],
        pre: Affine<'_>,
        w: &[Vec<f32>],
        s: &[f32],
        exps: &[i32],
    ) -> f64 {
        let (k, n) = (pre.scale.len(), w.len());
        let mut worst = 0.0f64;
        for (i, r) in rows.iter().enumerate() {
            for j in 0..n {
                let (mut exact, mut xsum, mut ob, mut mag) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                for kk in 0..k {
                    let x = f64::from(r[kk]);
                    let (sc, of, wk) =
                        (f64::from(pre.scale[kk]), f64::from(pre.offset[kk]), f64::from(w[j][kk]));
                    exact += (x * sc + of) * wk;
                    xsum += x;
                    ob += (of * wk).abs();
                    mag += (x * sc * wk).abs() + (of * wk).abs();
                }
                let got = f64::from(s[i * n + j]);
                let eps = f64::EPSILON / 2.0;
                let bound = pow2(-(exps[j] + 1)) * xsum * (1.0 + 1e-9)
                    + (k as f64 / 32.0 + 6.0) * eps * ob
                    + 2f64.powi(-24) * got.abs()
                    + 2.0 * eps * exact.abs()
                    // the f64 reference's own rounding
                    + 3.0 * (k as f64) * eps * mag;
                worst = worst.max((got - exact).abs() / bound);
                assert!(
                    (got - exact).abs() <= bound,
                    "[{i},{j}] k={k}: {got} vs {exact} (bound {bound}, e={})",
                    exps[j]
                );
            }
        }
        worst
    }

    fn rand_rows(r: &mut Gen, m: usize, k: usize, kind: u8) -> Vec<Vec<u8>> {
        (0..m)
            .map(|_| {
                (0..k)
                    .map(|_| match kind {
                        0 => r.next() as u8,
                        1 => 255,
                        2 => 0,
                        _ => [0u8, 255][(r.next() & 1) as usize],
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn digits_round_trip_over_the_whole_range() {
        let mut q = -FWD_I8_Q_MAX;
        while q <= FWD_I8_Q_MAX {
            let [d0, d1, d2] = digits(q);
            assert_eq!(i32::from(d2) * 65536 + i32::from(d1) * 256 + i32::from(d0), q, "{q}");
            q += if q.abs() < 70_000 { 1 } else { 997 };
        }
        for q in [FWD_I8_Q_MAX, -FWD_I8_Q_MAX, 128, -128, 127, -129, 32767, 32768, -32896, 32895] {
            let [d0, d1, d2] = digits(q);
            assert_eq!(i32::from(d2) * 65536 + i32::from(d1) * 256 + i32::from(d0), q, "{q}");
        }
        assert_eq!(digits(FWD_I8_Q_MAX), [127, 127, 127]);
        assert_eq!(digits(-FWD_I8_Q_MAX), [-127, -127, -127]);
        assert_eq!(digits(128), [-128, 1, 0]);
        assert_eq!(digits(-128), [-128, 0, 0]);
    }

    #[test]
    fn exponent_is_the_largest_that_keeps_q_in_range() {
        for m in [1.0f64, 0.75, 1e-30, 3.3e20, f64::from(FWD_I8_Q_MAX), 8_355_711.5, 2.5e-90, 1e77]
        {
            let e = exponent_for(m);
            assert!(m * 2f64.powi(e) <= f64::from(FWD_I8_Q_MAX), "{m}");
            assert!(m * 2f64.powi(e + 1) > f64::from(FWD_I8_Q_MAX), "{m}");
        }
        assert_eq!(exponent_for(0.0), 0);
        assert_eq!(exponent_for(1.0), 22);
        assert_eq!(exponent_for(f64::from(FWD_I8_Q_MAX)), 0);
        assert_eq!(exponent_for(f64::from(FWD_I8_Q_MAX) + 0.25), -1);
    }

    #[test]
    fn kernels_agree_bit_for_bit_and_within_the_error_bound() {
        let mut r = Gen(2024);
        let mut worst = 0.0f64;
        for &k in &[1usize, 15, 63, 64, 65, 127, 200, 1536, 3072] {
            for kind in 0..4u8 {
                let (m, n) = (7usize, 5usize);
                // rows at odd offsets inside longer buffers: never 64-byte aligned
                let bufs = rand_rows(&mut r, m, k + 3, kind);
                let rows: Vec<&[u8]> =
                    bufs.iter().enumerate().map(|(i, b)| &b[1 + i % 3..1 + i % 3 + k]).collect();
                let scale: Vec<f32> =
                    (0..k).map(|_| 0.25 + (r.next() % 1000) as f32 / 500.0).collect();
                let offset: Vec<f32> = (0..k).map(|_| -127.5 + 20.0 * sym(&mut r)).collect();
                let mut w: Vec<Vec<f32>> = (0..n)
                    .map(|j| {
                        (0..k)
                            .map(|_| {
                                // magnitudes from 1e-20 to 1e10 across classes and features
                                let mag = 10f32.powi((j as i32) * 6 - 20 + (r.next() % 5) as i32);
                                mag * sym(&mut r)
                            })
                            .collect()
                    })
                    .collect();
                w[2].fill(0.0); // an all-zero class
                w[3][k / 2] = 3e30; // one huge element
                let pre = Affine { scale: &scale, offset: &offset };
                let (s, exps) = both(&rows, pre, &w);
                assert_eq!(exps[2], 0);
                worst = worst.max(check_bound(&rows, pre, &w, &s, &exps));
            }
        }
        // the bound is not vacuous: some score comes close to it (0.86 when written)
        assert!(worst > 0.5, "{worst}");
    }

    #[test]
    fn extreme_digits_and_full_range_weights_stay_exact() {
        // weights quantising to exactly ±Q_MAX and to digits at −128 / 127: with scale 1 and
        // W' = q · 2^−e for integers q (and max |q| = Q_MAX so e is that power), the scores'
        // integer parts are exact: compare with an i64 reference.
        let mut r = Gen(7);
        for &k in &[1usize, 63, 64, 65, 1536, 3072] {
            let e = 10i32;
            let qs: Vec<Vec<i32>> = (0..4)
                .map(|j| {
                    (0..k)
                        .map(|kk| {
                            if kk == 0 {
                                if j % 2 == 0 { FWD_I8_Q_MAX } else { -FWD_I8_Q_MAX }
                            } else {
                                match j {
                                    0 => -FWD_I8_Q_MAX,
                                    1 => [
                                        128,
                                        -128,
                                        32768 + 128,
                                        -32896,
                                        127 * 65536 + 127 * 256 - 128,
                                    ][kk % 5],
                                    2 => {
                                        (r.next() % (2 * FWD_I8_Q_MAX as u64 + 1)) as i32
                                            - FWD_I8_Q_MAX
                                    }
                                    _ => -(128 * 65536) + 129 * 256 + 128 + (kk % 3) as i32,
                                }
                            }
                        })
                        .collect()
                })
                .collect();
            let w: Vec<Vec<f32>> =
                qs.iter().map(|q| q.iter().map(|&v| v as f32 * 2f32.powi(-e)).collect()).collect();
            let scale = vec![1.0f32; k];
            let offset = vec![0.0f32; k];
            for kind in 0..4u8 {
                let bufs = rand_rows(&mut r, 5, k + 1, kind);
                let rows: Vec<&[u8]> = bufs.iter().map(|b| &b[1..]).collect();
                let pre = Affine { scale: &scale, offset: &offset };
                let (s, exps) = both(&rows, pre, &w);
                assert!(exps.iter().all(|&x| x == e), "{exps:?}");
                for (i, row) in rows.iter().enumerate() {
                    for (j, q) in qs.iter().enumerate() {
                        let t: i64 =
                            row.iter().zip(q).map(|(&x, &v)| i64::from(x) * i64::from(v)).sum();
                        let want = (t as f64 * 2f64.powi(-e)) as f32;
                        assert_eq!(s[i * 4 + j].to_bits(), want.to_bits(), "k={k} [{i},{j}]");
                    }
                }
            }
        }
    }

    #[test]
    fn unit_scale_agrees_at_every_exponent_and_on_ties() {
        // scale 1 takes the f32 quantisation where 2^e fits an f32, f64 elsewhere: classes
        // whose largest weight spans the f32 range (subnormal to near the maximum), and one of
        // exact half-way ties (W · 2^10 = m + 1/2, rounded to even)
        let mut r = Gen(31);
        let k = 150;
        let scale = vec![1.0f32; k];
        let offset: Vec<f32> = (0..k).map(|_| -120.0 + sym(&mut r)).collect();
        let pre = Affine { scale: &scale, offset: &offset };
        let mut w: Vec<Vec<f32>> = [-149i32, -140, -126, -100, -30, 0, 20, 100, 104, 127]
            .iter()
            .map(|&p| {
                // 2^p, subnormal below −126
                let two_p = if p >= -126 {
                    f32::from_bits(((p + 127) as u32) << 23)
                } else {
                    f32::from_bits(1 << (p + 149))
                };
                (0..k).map(|_| two_p * (1.0 + sym(&mut r).abs())).collect()
            })
            .collect();
        w.push(
            (0..k)
                .map(|kk| {
                    if kk == 0 {
                        FWD_I8_Q_MAX as f32 * 2f32.powi(-10)
                    } else {
                        ((kk as i32 - 75) as f32 + 0.5) * 2f32.powi(-10)
                    }
                })
                .collect(),
        );
        let bufs = rand_rows(&mut r, 6, k, 0);
        let rows: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
        let (s, exps) = both(&rows, pre, &w);
        // (no f32 weight is large enough for e < −126: |W| < 2^128)
        assert!(exps.iter().filter(|&&e| e > 127).count() >= 2, "{exps:?}");
        assert_eq!(exps[10], 10);
        let _ = s;
    }

    #[test]
    fn every_row_count_and_odd_class_count_match_the_scalar_twin() {
        let mut r = Gen(99);
        for m in 1..=9usize {
            for n in [1usize, 2, 3, 6, 10, 11] {
                let k = 130;
                let bufs = rand_rows(&mut r, m, k, 0);
                let rows: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
                let scale = vec![1.0f32; k];
                let offset: Vec<f32> = (0..k).map(|_| -100.0 * sym(&mut r).abs()).collect();
                let w: Vec<Vec<f32>> =
                    (0..n).map(|_| (0..k).map(|_| 1e-3 * sym(&mut r)).collect()).collect();
                let pre = Affine { scale: &scale, offset: &offset };
                let (s, exps) = both(&rows, pre, &w);
                assert!(check_bound(&rows, pre, &w, &s, &exps) <= 1.0);
                // a row's scores do not depend on the rows computed with it
                for (i, row) in rows.iter().enumerate() {
                    let mut p = NtPackedI8::new(KernelKind::detect().unwrap_or(KernelKind::Scalar));
                    p.pack(pre, &w).expect("pack");
                    let mut one = vec![0.0f32; n];
                    gemm_nt_u8_i8_serial(&[row], pre, &p, &mut one).expect("product");
                    assert_eq!(bits(&one), bits(&s[i * n..(i + 1) * n]));
                }
            }
        }
    }

    #[test]
    fn repacking_reuses_the_buffers_for_new_shapes() {
        let mut r = Gen(5);
        for kernel in KernelKind::available() {
            let mut p = NtPackedI8::new(kernel);
            for &(n, k) in &[(10usize, 1536usize), (3, 70), (10, 3072), (2, 5)] {
                let bufs = rand_rows(&mut r, 3, k, 0);
                let rows: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
                let (scale, offset) = (vec![1.0f32; k], vec![-3.0f32; k]);
                let pre = Affine { scale: &scale, offset: &offset };
                let w: Vec<Vec<f32>> =
                    (0..n).map(|_| (0..k).map(|_| sym(&mut r)).collect()).collect();
                p.pack(pre, &w).expect("pack");
                let mut got = vec![0.0f32; 3 * n];
                gemm_nt_u8_i8_serial(&rows, pre, &p, &mut got).expect("product");
                let mut fresh = NtPackedI8::new(kernel);
                fresh.pack(pre, &w).expect("pack");
                let mut want = vec![0.0f32; 3 * n];
                gemm_nt_u8_i8_serial(&rows, pre, &fresh, &mut want).expect("product");
                assert_eq!(bits(&got), bits(&want), "{kernel:?} {n}x{k}");
            }
        }
    }

    #[test]
    fn errors_are_typed() {
        let (scale, offset) = ([1.0f32; 3], [0.0f32; 3]);
        let pre = Affine { scale: &scale, offset: &offset };
        for kernel in KernelKind::available() {
            let mut p = NtPackedI8::new(kernel);
            let rows: [&[u8]; 1] = [&[1, 2, 3]];
            let mut out = [0.0f32; 2];
            // not packed yet
            assert!(matches!(
                gemm_nt_u8_i8_serial(&rows, pre, &p, &mut out),
                Err(GemmError::ShapeMismatch { what: "packed", .. })
            ));
            assert_eq!(
                p.pack(pre, &[vec![1.0f32; 3], vec![1.0; 2]]),
                Err(GemmError::ShapeMismatch { what: "segment", expected: 3, found: 2 })
            );
            assert_eq!(
                p.pack(pre, &[[1.0f32, f32::NAN, 0.0], [0.0, 0.0, f32::INFINITY]]),
                Err(GemmError::NonFinite { what: "w", index: 1 })
            );
            assert_eq!(
                p.pack(pre, &[[1.0f32, 2.0, 0.0], [0.0, 0.0, f32::INFINITY]]),
                Err(GemmError::NonFinite { what: "w", index: 5 })
            );
            let bad_scale = [1.0f32, f32::INFINITY, 1.0];
            assert_eq!(
                p.pack(Affine { scale: &bad_scale, offset: &offset }, &[[0.0f32; 3]]),
                Err(GemmError::NonFinite { what: "scale", index: 1 })
            );
            let bad_offset = [0.0f32, 0.0, f32::NAN];
            assert_eq!(
                p.pack(Affine { scale: &scale, offset: &bad_offset }, &[[0.0f32; 3]]),
                Err(GemmError::NonFinite { what: "offset", index: 2 })
            );
            // a failed pack leaves nothing usable
            assert!(gemm_nt_u8_i8_serial(&rows, pre, &p, &mut out).is_err());
            p.pack(pre, &[[1.0f32, 0.0, 0.0], [0.0, 0.0, 1.0]]).expect("pack");
            gemm_nt_u8_i8_serial(&rows, pre, &p, &mut out).expect("product");
            assert_eq!(out, [1.0, 3.0]);
            let short: [&[u8]; 1] = [&[1, 2]];
            assert_eq!(
                gemm_nt_u8_i8_serial(&short, pre, &p, &mut out),
                Err(GemmError::ShapeMismatch { what: "row", expected: 3, found: 2 })
            );
            assert_eq!(
                gemm_nt_u8_i8_serial(&rows, pre, &p, &mut [0.0; 3]),
                Err(GemmError::ShapeMismatch { what: "out", expected: 2, found: 3 })
            );
            let other = Affine { scale: &scale[..2], offset: &offset[..2] };
            assert!(gemm_nt_u8_i8_serial(&short, other, &p, &mut out).is_err());
            // too many features for exact i32 limb sums
            let k = FWD_I8_MAX_K + 1;
            let (s2, o2) = (vec![1.0f32; k], vec![0.0f32; k]);
            assert_eq!(
                p.pack(Affine { scale: &s2, offset: &o2 }, &[vec![0.0f32; k]]),
                Err(GemmError::ShapeMismatch {
                    what: "features",
                    expected: FWD_I8_MAX_K,
                    found: k
                })
            );
        }
    }
}
