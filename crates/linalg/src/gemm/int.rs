//! The exact integer backward product for integer-valued gradients: with a multiclass SVM
//! (hinge) loss, `N·dS` has integer entries in `[−(C−1), 1]`, so `(N·dS)ᵀ X` over u8 pixels
//! is an integer matrix, computed here exactly in `i32`:
//!
//! ```text
//! out[j, k − k0] = Σ_i g[i, j] · x_ik        g: i8 (m x n), x: u8 rows, out: i32 n x (k1 − k0)
//! ```
//!
//! The caller turns it into `dW = (out · scale + (Σ_i g[i, j]) · offset) / N` (the affine map of
//! the forward pass), with one rounding. The AVX-512 VNNI kernel multiplies 4 rows at once
//! (`vpdpbusd`: four u8 x i8 products summed into each i32 lane, 64 multiply-adds per
//! instruction against 16 for an f32 FMA) on a copy of the batch interleaved 4 rows by 4;
//! the scalar twin is plain loops. Both are exact, so they agree bit for bit.

use super::{GemmError, KernelError, KernelKind, check};

/// The most rows [`gemm_tn_i8u8_cols_with`] accepts: `128 · 255 · rows` must fit an `i32`.
pub const I8U8_MAX_ROWS: usize = (i32::MAX as usize) / (128 * 255);

/// True when [`gemm_tn_i8u8_cols_with`] runs a SIMD kernel for `kernel` on this CPU (AVX-512
/// BW + VNNI behind the `avx512` kernel); otherwise it runs the scalar twin, exact but slower than
/// the f32 product.
pub fn i8u8_is_simd(kernel: KernelKind) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kernel == KernelKind::Avx512
            && kernel.is_available()
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = kernel;
        false
    }
}

/// An `i8` gradient `g` (row-major `m x n`) prepared once for any number of
/// [`gemm_tn_i8u8_cols_prepared`] calls (one per feature block): for the VNNI kernel, each
/// `i32` holds 4 consecutive rows' values of one class.
pub struct I8Grad<'a> {
    g: &'a [i8],
    n: usize,
    quads: Vec<i32>,
}

impl<'a> I8Grad<'a> {
    /// Prepares `g` (`m x n`, `m = g.len() / n`) for `kernel`.
    pub fn new(kernel: KernelKind, g: &'a [i8], n: usize) -> Result<Self, GemmError> {
        if n == 0 || !g.len().is_multiple_of(n) {
            return Err(GemmError::ShapeMismatch {
                what: "g",
                expected: g.len().next_multiple_of(n.max(1)),
                found: g.len(),
            });
        }
        let mut quads = Vec::new();
        if i8u8_is_simd(kernel) {
            let m = g.len() / n;
            quads = vec![0i32; m.div_ceil(4) * n];
            for (i, grow) in g.chunks_exact(n).enumerate() {
                let shift = 8 * (i % 4);
                for (p, &v) in quads[(i / 4) * n..(i / 4 + 1) * n].iter_mut().zip(grow) {
                    *p |= i32::from(v as u8) << shift;
                }
            }
        }
        Ok(Self { g, n, quads })
    }
}

/// Columns `k0..k1` of `Gᵀ X` in exact integer arithmetic: `g` is row-major
/// `rows.len() x n`, `out` row-major `n x (k1 − k0)`. At most [`I8U8_MAX_ROWS`] rows.
#[allow(clippy::too_many_arguments)]
pub fn gemm_tn_i8u8_cols_with(
    kernel: KernelKind,
    g: &[i8],
    n: usize,
    rows: &[&[u8]],
    k0: usize,
    k1: usize,
    out: &mut [i32],
) -> Result<(), GemmError> {
    check("g", rows.len() * n, g.len())?;
    if n == 0 {
        return Ok(());
    }
    gemm_tn_i8u8_cols_prepared(kernel, &I8Grad::new(kernel, g, n)?, rows, k0, k1, out)
}

/// [`gemm_tn_i8u8_cols_with`] on a gradient prepared by [`I8Grad::new`] (for this kernel).
pub fn gemm_tn_i8u8_cols_prepared(
    kernel: KernelKind,
    grad: &I8Grad<'_>,
    rows: &[&[u8]],
    k0: usize,
    k1: usize,
    out: &mut [i32],
) -> Result<(), GemmError> {
    let (g, n) = (grad.g, grad.n);
    let k = rows.first().map_or(k1, |r| r.len());
    for r in rows {
        check("row", k, r.len())?;
    }
    check("g", rows.len() * n, g.len())?;
    if k0 > k1 || k1 > k {
        return Err(GemmError::ShapeMismatch { what: "columns", expected: k, found: k1 });
    }
    check("out", n * (k1 - k0), out.len())?;
    if rows.len() > I8U8_MAX_ROWS {
        return Err(GemmError::ShapeMismatch {
            what: "rows",
            expected: I8U8_MAX_ROWS,
            found: rows.len(),
        });
    }
    if !kernel.is_available() {
        return Err(GemmError::Kernel(KernelError::Unavailable { name: kernel.name() }));
    }
    if n == 0 || k0 == k1 {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if i8u8_is_simd(kernel) {
        check("prepared g", rows.len().div_ceil(4) * n, grad.quads.len())?;
        // SAFETY: avx512f, bw and vnni detected (`i8u8_is_simd`); shapes checked above.
        unsafe { vnni::tn(g, &grad.quads, n, rows, k0, k1, out) };
        return Ok(());
    }
    scalar_tn(g, n, rows, k0, k1, k0, k1, out);
    Ok(())
}

/// The caller's side of the integer product: `out[j, f] = ((exact[j, f] · scale[f] +
/// colsum[j] · offset[f]) · inv_n) as f32`, computed in `f64` (a product, a product, a sum and
/// a product, each rounded as in IEEE `f64` arithmetic without fused multiply-adds) and
/// rounded once to `f32`; `exact` and `out` are row-major `n x len`, `len = scale.len()`.
/// The AVX-512 kernel (8 lanes of `f64`) and the scalar twin give the same bits.
#[allow(clippy::too_many_arguments)]
pub fn i32_affine_to_f32(
    kernel: KernelKind,
    exact: &[i32],
    scale: &[f32],
    offset: &[f32],
    colsum: &[f64],
    inv_n: f64,
    out: &mut [f32],
) -> Result<(), GemmError> {
    let (n, len) = (colsum.len(), scale.len());
    check("offset", len, offset.len())?;
    check("exact", n * len, exact.len())?;
    check("out", n * len, out.len())?;
    if !kernel.is_available() {
        return Err(GemmError::Kernel(KernelError::Unavailable { name: kernel.name() }));
    }
    #[cfg(target_arch = "x86_64")]
    if kernel == KernelKind::Avx512 {
        // SAFETY: avx512f detected (`is_available`); lengths checked above.
        unsafe { vnni::affine(exact, scale, offset, colsum, inv_n, out) };
        return Ok(());
    }
    affine_scalar(exact, scale, offset, colsum, inv_n, 0, out);
    Ok(())
}

/// The scalar twin of [`i32_affine_to_f32`] from feature `from` of every row on.
fn affine_scalar(
    exact: &[i32],
    scale: &[f32],
    offset: &[f32],
    colsum: &[f64],
    inv_n: f64,
    from: usize,
    out: &mut [f32],
) {
    let len = scale.len();
    if len == 0 {
        return;
    }
    for ((drow, erow), &cs) in out.chunks_exact_mut(len).zip(exact.chunks_exact(len)).zip(colsum) {
        for f in from..len {
            let (e, s, o) = (f64::from(erow[f]), f64::from(scale[f]), f64::from(offset[f]));
            drow[f] = ((e * s + cs * o) * inv_n) as f32;
        }
    }
}

/// The scalar twin on columns `from..to` (inside `k0..k1`, the range `out` covers).
#[allow(clippy::too_many_arguments)]
fn scalar_tn(
    g: &[i8],
    n: usize,
    rows: &[&[u8]],
    k0: usize,
    k1: usize,
    from: usize,
    to: usize,
    out: &mut [i32],
) {
    let ld = k1 - k0;
    for j in 0..n {
        for kk in from..to {
            out[j * ld + kk - k0] = rows
                .iter()
                .enumerate()
                .map(|(i, r)| i32::from(g[i * n + j]) * i32::from(r[kk]))
                .sum();
        }
    }
}

/// AVX-512 VNNI kernel.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
#[allow(clippy::needless_range_loop)]
mod vnni {
    use std::arch::x86_64::*;

    /// Features per group: four 16-lane vectors, the width of one 64-byte load per row.
    const GROUP: usize = 64;

    thread_local! {
        /// The interleaved batch, reused by every call on this thread.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Columns `k0..k1` of `Gᵀ X` (see [`super::gemm_tn_i8u8_cols_with`]).
    ///
    /// `gp` is `g` packed 4 rows to an `i32` ([`super::I8Grad`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512F, BW and VNNI; shapes checked by the caller (`gp` holds
    /// `ceil(m / 4) · n` values).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tn(
        g: &[i8],
        gp: &[i32],
        n: usize,
        rows: &[&[u8]],
        k0: usize,
        k1: usize,
        out: &mut [i32],
    ) {
        let quads = rows.len().div_ceil(4);
        let groups = (k1 - k0) / GROUP;
        let len = groups * quads * GROUP * 4;
        SCRATCH.with_borrow_mut(|packed| {
            if packed.len() < len {
                packed.resize(len, 0);
            }
            // SAFETY: forwarded (same CPU features); `packed` holds `len` bytes.
            unsafe { pack(rows, k0, quads, groups, &mut packed[..len]) };
            let mut j = 0;
            while j < n {
                let nr = (n - j).min(5);
                // SAFETY: forwarded.
                unsafe {
                    dispatch_nr!(nr, block(&packed[..len], gp, quads, groups, n, j, k0, k1, out))
                };
                j += nr;
            }
        });
        let tail = k0 + groups * GROUP;
        super::scalar_tn(g, n, rows, k0, k1, tail, k1, out);
    }

    /// [`super::i32_affine_to_f32`], 8 features at a time (the tail by the scalar twin).
    ///
    /// # Safety
    /// AVX-512F; `exact` and `out` hold `colsum.len() · scale.len()` values, `offset`
    /// `scale.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn affine(
        exact: &[i32],
        scale: &[f32],
        offset: &[f32],
        colsum: &[f64],
        inv_n: f64,
        out: &mut [f32],
    ) {
        let len = scale.len();
        let lv = len / 8 * 8;
        let inv = _mm512_set1_pd(inv_n);
        for (j, &cs) in colsum.iter().enumerate() {
            let csv = _mm512_set1_pd(cs);
            let mut f = 0;
            while f < lv {
                // SAFETY: f + 8 <= len: inside scale, offset and row j of exact and out.
                unsafe {
                    let e = _mm512_cvtepi32_pd(_mm256_loadu_si256(
                        exact.as_ptr().add(j * len + f).cast(),
                    ));
                    let s = _mm512_cvtps_pd(_mm256_loadu_ps(scale.as_ptr().add(f)));
                    let o = _mm512_cvtps_pd(_mm256_loadu_ps(offset.as_ptr().add(f)));
                    let v = _mm512_mul_pd(
                        _mm512_add_pd(_mm512_mul_pd(e, s), _mm512_mul_pd(csv, o)),
                        inv,
                    );
                    _mm256_storeu_ps(out.as_mut_ptr().add(j * len + f), _mm512_cvtpd_ps(v));
                }
                f += 8;
            }
        }
        super::affine_scalar(exact, scale, offset, colsum, inv_n, lv, out);
    }

    /// Interleaves the batch 4 rows by 4: block `(group, quad)` (256 bytes) holds, for 64
    /// features, the 4 rows' bytes of each feature side by side, in the lane order of the
    /// in-lane unpacks (vector `t`, 128-bit lane `L`, i32 lane `u`: feature `16L + 4t + u`;
    /// `block` undoes the permutation when it stores). Missing rows are zero.
    ///
    /// # Safety
    /// AVX-512F and BW; every row has at least `k0 + groups·64` bytes; `packed` holds
    /// `groups · quads · 256` bytes.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn pack(rows: &[&[u8]], k0: usize, quads: usize, groups: usize, packed: &mut [u8]) {
        let zero = [0u8; GROUP];
        for q in 0..quads {
            let src: [&[u8]; 4] =
                [0, 1, 2, 3].map(|t| rows.get(4 * q + t).map_or(&zero[..], |r| &r[k0..]));
            let step: [usize; 4] =
                [0, 1, 2, 3].map(|t| if rows.get(4 * q + t).is_some() { GROUP } else { 0 });
            // the rows of two quads ahead: these loads miss the nearest caches otherwise
            for r in rows.iter().skip(4 * q + 8).take(4) {
                for gi in 0..groups {
                    // SAFETY: inside the row (k0 + gi·64 < k0 + groups·64 <= its length); a
                    // prefetch never faults.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(k0 + gi * GROUP).cast()) };
                }
            }
            for gi in 0..groups {
                // SAFETY: a row is read at gi·64 .. gi·64 + 64 <= groups·64 bytes past k0
                // (inside it); the zero source is never advanced (step 0); block (gi, q) is
                // 256 bytes inside `packed`.
                unsafe {
                    let a0 = _mm512_loadu_si512(src[0].as_ptr().add(gi * step[0]).cast());
                    let a1 = _mm512_loadu_si512(src[1].as_ptr().add(gi * step[1]).cast());
                    let a2 = _mm512_loadu_si512(src[2].as_ptr().add(gi * step[2]).cast());
                    let a3 = _mm512_loadu_si512(src[3].as_ptr().add(gi * step[3]).cast());
                    let lo01 = _mm512_unpacklo_epi8(a0, a1);
                    let hi01 = _mm512_unpackhi_epi8(a0, a1);
                    let lo23 = _mm512_unpacklo_epi8(a2, a3);
                    let hi23 = _mm512_unpackhi_epi8(a2, a3);
                    let d = packed.as_mut_ptr().add((gi * quads + q) * GROUP * 4);
                    _mm512_storeu_si512(d.cast(), _mm512_unpacklo_epi16(lo01, lo23));
                    _mm512_storeu_si512(d.add(64).cast(), _mm512_unpackhi_epi16(lo01, lo23));
                    _mm512_storeu_si512(d.add(128).cast(), _mm512_unpacklo_epi16(hi01, hi23));
                    _mm512_storeu_si512(d.add(192).cast(), _mm512_unpackhi_epi16(hi01, hi23));
                }
            }
        }
    }

    /// Classes `j0..j0 + NR` (at most 5: 4 accumulators each) over every group.
    ///
    /// # Safety
    /// AVX-512F and VNNI; `packed` from `pack` with these `quads` and `groups`; `gp` holds
    /// `quads · n` values; `out` is `n x (k1 − k0)` with `groups·64 <= k1 − k0`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn block<const NR: usize>(
        packed: &[u8],
        gp: &[i32],
        quads: usize,
        groups: usize,
        n: usize,
        j0: usize,
        k0: usize,
        k1: usize,
        out: &mut [i32],
    ) {
        let ld = k1 - k0;
        for gi in 0..groups {
            let mut a = [[_mm512_setzero_si512(); 4]; NR];
            let base = gi * quads * GROUP * 4;
            for q in 0..quads {
                // SAFETY: block (gi, q) spans 256 bytes inside `packed`; q·n + j0 + c <
                // quads·n.
                unsafe {
                    let p = packed.as_ptr().add(base + q * GROUP * 4);
                    let x: [__m512i; 4] =
                        [0, 1, 2, 3].map(|t| _mm512_loadu_si512(p.add(64 * t).cast()));
                    let gq = gp.as_ptr().add(q * n + j0);
                    for c in 0..NR {
                        let gv = _mm512_set1_epi32(*gq.add(c));
                        for t in 0..4 {
                            a[c][t] = _mm512_dpbusd_epi32(a[c][t], x[t], gv);
                        }
                    }
                }
            }
            for c in 0..NR {
                // undo the in-lane order: a[t] lane L holds features 16L + 4t .. + 4, so
                // output vector L gathers lane L of a[0..4] (a 4 x 4 transpose of 128-bit lanes)
                let [v0, v1, v2, v3] = a[c];
                let t0 = _mm512_shuffle_i32x4::<0b01_00_01_00>(v0, v1);
                let t1 = _mm512_shuffle_i32x4::<0b01_00_01_00>(v2, v3);
                let t2 = _mm512_shuffle_i32x4::<0b11_10_11_10>(v0, v1);
                let t3 = _mm512_shuffle_i32x4::<0b11_10_11_10>(v2, v3);
                let o = [
                    _mm512_shuffle_i32x4::<0b10_00_10_00>(t0, t1),
                    _mm512_shuffle_i32x4::<0b11_01_11_01>(t0, t1),
                    _mm512_shuffle_i32x4::<0b10_00_10_00>(t2, t3),
                    _mm512_shuffle_i32x4::<0b11_01_11_01>(t2, t3),
                ];
                let at = (j0 + c) * ld + gi * GROUP;
                for (l, v) in o.iter().enumerate() {
                    // SAFETY: gi·64 + 64 <= ld, so the stores lie in row j0 + c of `out`.
                    unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(at + 16 * l).cast(), *v) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::Gen;

    #[test]
    fn every_kernel_is_exact_on_random_and_extreme_input() {
        let mut r = Gen(77);
        for &(m, n, k, k0, k1) in &[
            (1usize, 1usize, 1usize, 0usize, 1usize),
            (5, 3, 40, 0, 40),
            (200, 10, 3072, 256, 512),
            (203, 10, 300, 32, 300),
            (7, 13, 96, 3, 90),
            (4, 2, 64, 64, 64),
        ] {
            for extreme in [false, true] {
                let rows: Vec<Vec<u8>> = (0..m)
                    .map(|_| (0..k).map(|_| if extreme { 255 } else { r.next() as u8 }).collect())
                    .collect();
                let g: Vec<i8> = (0..m * n)
                    .map(|_| {
                        if extreme {
                            [i8::MIN, 127][(r.next() & 1) as usize]
                        } else {
                            r.next() as i8
                        }
                    })
                    .collect();
                let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
                // independent oracle: i64 sums
                let want: Vec<i32> = (0..n)
                    .flat_map(|j| (k0..k1).map(move |kk| (j, kk)))
                    .map(|(j, kk)| {
                        (0..m)
                            .map(|i| i64::from(g[i * n + j]) * i64::from(rows[i][kk]))
                            .sum::<i64>() as i32
                    })
                    .collect();
                for kernel in KernelKind::available() {
                    let mut got = vec![i32::MIN; n * (k1 - k0)];
                    gemm_tn_i8u8_cols_with(kernel, &g, n, &refs, k0, k1, &mut got).expect("shapes");
                    assert_eq!(
                        got, want,
                        "{kernel:?} m={m} n={n} k={k} {k0}..{k1} extreme={extreme}"
                    );
                }
            }
        }
    }

    #[test]
    fn affine_conversion_kernels_agree_with_the_f64_formula_bit_for_bit() {
        let mut r = Gen(91);
        for &(n, len) in &[(1usize, 1usize), (10, 256), (3, 37), (2, 8), (4, 0)] {
            for extreme in [false, true] {
                let exact: Vec<i32> = (0..n * len)
                    .map(|_| {
                        if extreme {
                            [i32::MIN, i32::MAX, 0, -1][(r.next() & 3) as usize]
                        } else {
                            (r.next() as i32) >> 8
                        }
                    })
                    .collect();
                let unit = |r: &mut Gen| (r.next() >> 40) as f32 / (1u64 << 24) as f32;
                let scale: Vec<f32> = (0..len).map(|_| 0.01 + unit(&mut r)).collect();
                let offset: Vec<f32> = (0..len).map(|_| -255.0 * unit(&mut r)).collect();
                let colsum: Vec<f64> = (0..n)
                    .map(|_| if extreme { -2.5e4 } else { f64::from(unit(&mut r)) * 99.0 })
                    .collect();
                let inv_n = 1.0 / 203.0;
                // independent expectation: the formula, element by element
                let want: Vec<u32> = (0..n * len)
                    .map(|i| {
                        let (j, f) = (i / len, i % len);
                        let v = f64::from(exact[i]) * f64::from(scale[f])
                            + colsum[j] * f64::from(offset[f]);
                        ((v * inv_n) as f32).to_bits()
                    })
                    .collect();
                for kernel in KernelKind::available() {
                    let mut out = vec![f32::NAN; n * len];
                    i32_affine_to_f32(kernel, &exact, &scale, &offset, &colsum, inv_n, &mut out)
                        .expect("shapes");
                    let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(got, want, "{kernel:?} {n}x{len} extreme={extreme}");
                }
            }
        }
        let k = KernelKind::Scalar;
        assert!(i32_affine_to_f32(k, &[1, 2], &[1.0], &[0.0], &[1.0], 1.0, &mut [0.0]).is_err());
    }

    #[test]
    fn rejects_bad_shapes_and_accepts_the_whole_i8_range() {
        let rows: [&[u8]; 2] = [&[1, 2, 3], &[4, 5, 6]];
        let mut out = [0i32; 3];
        let k = KernelKind::Scalar;
        assert!(gemm_tn_i8u8_cols_with(k, &[1, -1], 1, &rows, 0, 3, &mut out).is_ok());
        assert_eq!(out, [-3, -3, -3]);
        assert!(gemm_tn_i8u8_cols_with(k, &[i8::MIN, 1], 1, &rows, 0, 3, &mut out).is_ok());
        assert_eq!(out, [-124, -251, -378]);
        assert!(gemm_tn_i8u8_cols_with(k, &[1, 1], 1, &rows, 2, 4, &mut out).is_err());
        assert!(gemm_tn_i8u8_cols_with(k, &[1], 1, &rows, 0, 3, &mut out).is_err());
    }
}
