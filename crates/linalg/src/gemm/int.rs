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

use super::{GemmError, GemmKernel, check};

/// The most rows [`gemm_tn_i8u8_cols_with`] accepts: `128 · 255 · rows` must fit an `i32`.
pub const I8U8_MAX_ROWS: usize = (i32::MAX as usize) / (128 * 255);

/// True when [`gemm_tn_i8u8_cols_with`] runs a SIMD kernel for `kernel` on this CPU (AVX-512
/// BW + VNNI behind the `avx512` kernel); otherwise it runs the scalar twin, exact but slower than
/// the f32 product.
pub fn i8u8_is_simd(kernel: GemmKernel) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kernel == GemmKernel::Avx512
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

/// Columns `k0..k1` of `Gᵀ X` in exact integer arithmetic: `g` is row-major
/// `rows.len() x n`, `out` row-major `n x (k1 − k0)`. At most [`I8U8_MAX_ROWS`] rows.
#[allow(clippy::too_many_arguments)]
pub fn gemm_tn_i8u8_cols_with(
    kernel: GemmKernel,
    g: &[i8],
    n: usize,
    rows: &[&[u8]],
    k0: usize,
    k1: usize,
    out: &mut [i32],
) -> Result<(), GemmError> {
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
        return Err(GemmError::KernelUnavailable { kernel: kernel.name() });
    }
    if n == 0 || k0 == k1 {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if i8u8_is_simd(kernel) {
        // SAFETY: avx512f, bw and vnni detected (`i8u8_is_simd`); shapes checked above.
        unsafe { vnni::tn(g, n, rows, k0, k1, out) };
        return Ok(());
    }
    scalar_tn(g, n, rows, k0, k1, k0, k1, out);
    Ok(())
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
    /// # Safety
    /// The CPU must support AVX-512F, BW and VNNI; shapes checked by the caller.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tn(
        g: &[i8],
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
            // the gradient packed the same way: one i32 = 4 rows' i8 of one class
            let mut gp = vec![0i32; quads * n];
            for (i, grow) in g.chunks_exact(n).enumerate() {
                let shift = 8 * (i % 4);
                for (p, &v) in gp[(i / 4) * n..(i / 4 + 1) * n].iter_mut().zip(grow) {
                    *p |= i32::from(v as u8) << shift;
                }
            }
            let mut j = 0;
            while j < n {
                let nr = (n - j).min(5);
                // SAFETY: forwarded.
                unsafe {
                    dispatch_nr!(nr, block(&packed[..len], &gp, quads, groups, n, j, k0, k1, out))
                };
                j += nr;
            }
        });
        let tail = k0 + groups * GROUP;
        super::scalar_tn(g, n, rows, k0, k1, tail, k1, out);
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

    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

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
                for kernel in GemmKernel::available() {
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
    fn rejects_bad_shapes_and_accepts_the_whole_i8_range() {
        let rows: [&[u8]; 2] = [&[1, 2, 3], &[4, 5, 6]];
        let mut out = [0i32; 3];
        let k = GemmKernel::Scalar;
        assert!(gemm_tn_i8u8_cols_with(k, &[1, -1], 1, &rows, 0, 3, &mut out).is_ok());
        assert_eq!(out, [-3, -3, -3]);
        assert!(gemm_tn_i8u8_cols_with(k, &[i8::MIN, 1], 1, &rows, 0, 3, &mut out).is_ok());
        assert_eq!(out, [-124, -251, -378]);
        assert!(gemm_tn_i8u8_cols_with(k, &[1, 1], 1, &rows, 2, 4, &mut out).is_err());
        assert!(gemm_tn_i8u8_cols_with(k, &[1], 1, &rows, 0, 3, &mut out).is_err());
    }
}
