//! [`PackedI8Nt`]: exact 8-bit products for one fixed right operand (see the type).

use super::{GemmError, KernelKind, check};

/// Columns of `C` per packed block (four AVX-512 vectors of `i32`).
const NB: usize = 64;
/// Rows of `C` per register block.
const MR: usize = 6;

/// The longest shared dimension [`PackedI8Nt`] accepts: `k · 255 · 128` must fit an `i32`.
pub const PACKED_I8_MAX_K: usize = (i32::MAX as usize) / (255 * 128);

/// [`PackedI8Nt`]: `C = (A − 128)·Bᵀ` exactly in `i32`, for `u8` codes `A` and one fixed `i8`
/// matrix `B` packed once (the k-means extraction's integer products: every image's 729
/// quantised whitened patches against the same quantised centroids).
///
/// ```text
/// c[i, j] = Σ_t (a[i, t] − 128) · b[j, t]      a: u8 (m x k), b: i8 (n x k), c: i32 (m x n)
/// ```
///
/// (`a[i, t] − 128` is a signed value in `[−128, 127]` stored with an offset, so that it is the
/// unsigned operand `vpdpbusd` takes.)
///
/// **Kernel.** AVX-512 VNNI's `vpdpbusd` adds four `u8 x i8` products to each `i32` lane: 64
/// multiply-adds an instruction, against 16 for an f32 FMA at the same instruction rate on
/// the project's Xeon. `B` is packed by blocks of 64 columns, `k` in quads (one `i32` holds
/// four consecutive `k` of one column; the last quad and the last block zero-padded); a 6 x 64
/// register block broadcasts one quad of each of six rows of `A` and loads four vectors of
/// `B` per quad, 10 loads for 24 instructions (the shape of [`PackedNt`](super::PackedNt)'s
/// f32 kernel). It sums the codes as they are and subtracts `128 Σ_t b[j, t]`, computed when
/// packing. What pays for it: the k-means extraction's product 3.8x faster than f32 by
/// blocks of 48 patches, and `bench features --products i8` at 13.5x the numpy port
/// (docs/bench/features.md).
///
/// **Exact.** Every partial sum is bounded by `k · 255 · 128`, which fits an `i32` for
/// `k ≤` [`PACKED_I8_MAX_K`] (checked when packing), so the kernel and the portable twin
/// (plain loops, also the [`KernelKind::Avx2`] and [`KernelKind::Scalar`] path) give the same
/// integers; tests compare both with an `i64` reference on random and extreme codes.
///
/// ```
/// use imgclass_linalg::gemm::PackedI8Nt;
///
/// // B: two rows of k = 3; A: one row of codes (value + 128)
/// let b = [1i8, 2, 3, /* row 1 */ -128, 0, 127];
/// let p = PackedI8Nt::new(&b, 2, 3)?;
/// let mut c = [0i32; 2];
/// p.product(&[129, 126, 255], 1, &mut c)?; // the values 1, −2, 127
/// assert_eq!(c, [1 - 4 + 381, -128 + 127 * 127]);
/// # Ok::<(), imgclass_linalg::gemm::GemmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PackedI8Nt {
    n: usize,
    k: usize,
    kernel: KernelKind,
    layout: Layout,
}

/// `B` as the product that runs takes it.
#[derive(Debug, Clone)]
enum Layout {
    /// The VNNI kernel (AVX-512 BW + VNNI behind [`KernelKind::Avx512`]): blocks of [`NB`]
    /// columns by quads of `k` (`ceil(k/4) x NB` words a block), and `128 Σ_t b[j, t]` per
    /// column of `C`.
    #[cfg(target_arch = "x86_64")]
    Vnni { data: Vec<i32>, offset: Vec<i32> },
    /// The portable twin: `B` as given.
    Plain(Vec<i8>),
}

impl PackedI8Nt {
    /// Packs `b` (`n x k`, row-major) for the kernel of [`KernelKind::detect`].
    pub fn new(b: &[i8], n: usize, k: usize) -> Result<Self, GemmError> {
        Self::with_kernel(KernelKind::detect()?, b, n, k)
    }

    /// Packs `b` for `kernel`, which must run on this CPU; `k` at most [`PACKED_I8_MAX_K`].
    pub fn with_kernel(
        kernel: KernelKind,
        b: &[i8],
        n: usize,
        k: usize,
    ) -> Result<Self, GemmError> {
        check("b", n.saturating_mul(k), b.len())?;
        if k > PACKED_I8_MAX_K {
            return Err(GemmError::ShapeMismatch {
                what: "k",
                expected: PACKED_I8_MAX_K,
                found: k,
            });
        }
        if !kernel.is_available() {
            return Err(GemmError::Kernel(crate::KernelError::Unavailable { name: kernel.name() }));
        }
        #[cfg(target_arch = "x86_64")]
        if super::i8u8_is_simd(kernel) {
            let offset: Vec<i32> = b
                .chunks_exact(k.max(1))
                .take(n)
                .map(|r| 128 * r.iter().map(|&v| i32::from(v)).sum::<i32>())
                .chain(std::iter::repeat(0)) // k = 0: no rows to sum
                .take(n)
                .collect();
            let kq = k.div_ceil(4);
            let mut d = vec![0i32; n.div_ceil(NB) * kq * NB];
            for (j, row) in b.chunks_exact(k.max(1)).enumerate().take(n) {
                let block = &mut d[(j / NB) * kq * NB..][..kq * NB];
                for (t, &v) in row.iter().enumerate() {
                    block[(t / 4) * NB + j % NB] |= i32::from(v as u8) << (8 * (t % 4));
                }
            }
            return Ok(Self { n, k, kernel, layout: Layout::Vnni { data: d, offset } });
        }
        Ok(Self { n, k, kernel, layout: Layout::Plain(b.to_vec()) })
    }

    /// Columns of `C` (rows of `B`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The shared dimension.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The kernel tier the products were packed for.
    pub fn kernel(&self) -> KernelKind {
        self.kernel
    }

    /// Whether the VNNI kernel runs (otherwise the portable twin: the same integers).
    pub fn is_simd(&self) -> bool {
        !matches!(self.layout, Layout::Plain(_))
    }

    /// `c = (a − 128)·Bᵀ` with `a` of `m x k` codes and `c` of `m x n`, row-major; `c`'s old
    /// contents are ignored. Serial: callers split rows across threads.
    pub fn product(&self, a: &[u8], m: usize, c: &mut [i32]) -> Result<(), GemmError> {
        let (n, k) = (self.n, self.k);
        check("a", m.saturating_mul(k), a.len())?;
        check("out", m.saturating_mul(n), c.len())?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        match &self.layout {
            // SAFETY: `with_kernel` found AVX-512 F, BW and VNNI (`i8u8_is_simd`); the shapes
            // were checked above and the packed buffer is `ceil(n / NB) * ceil(k / 4) * NB` long
            #[cfg(target_arch = "x86_64")]
            Layout::Vnni { data, offset } => unsafe { vnni::product(data, offset, n, k, a, m, c) },
            Layout::Plain(b) => twin(b, n, k, a, m, c),
        }
        Ok(())
    }
}

/// The portable twin: plain sums of exact products.
fn twin(b: &[i8], n: usize, k: usize, a: &[u8], m: usize, c: &mut [i32]) {
    if k == 0 {
        c[..m * n].fill(0);
        return;
    }
    for (ar, cr) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)).take(m) {
        for (o, br) in cr.iter_mut().zip(b.chunks_exact(k)) {
            *o = ar.iter().zip(br).map(|(&x, &y)| (i32::from(x) - 128) * i32::from(y)).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod vnni {
    use std::arch::x86_64::*;

    use super::{MR, NB};

    /// `c = (a − 128)·Bᵀ` over the packed blocks: column blocks outer (one stays in L1),
    /// register blocks of [`MR`] rows inner, the last rows by a smaller block.
    ///
    /// # Safety
    /// AVX-512 F, BW and VNNI must be available; `packed` holds `ceil(n / NB)` blocks of
    /// `ceil(k / 4) x NB` words, `offset` `n` values, `a` is `m x k`, `c` is `m x n`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn product(
        packed: &[i32],
        offset: &[i32],
        n: usize,
        k: usize,
        a: &[u8],
        m: usize,
        c: &mut [i32],
    ) {
        let kq = k.div_ceil(4);
        for jb in 0..n.div_ceil(NB) {
            let bp = packed[jb * kq * NB..][..kq * NB].as_ptr();
            let cols = (n - jb * NB).min(NB);
            let off = &offset[jb * NB..][..cols];
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                let ap = &a[i * k..][..rows * k];
                let cp = c[i * n + jb * NB..].as_mut_ptr();
                // SAFETY: `rows` rows of `a` from row `i` and of `c` from row `i`, column
                // `jb * NB` (at most `cols` written per row), as the caller guarantees
                unsafe {
                    match rows {
                        6 => tile::<6>(ap, k, bp, off, cp, n),
                        5 => tile::<5>(ap, k, bp, off, cp, n),
                        4 => tile::<4>(ap, k, bp, off, cp, n),
                        3 => tile::<3>(ap, k, bp, off, cp, n),
                        2 => tile::<2>(ap, k, bp, off, cp, n),
                        _ => tile::<1>(ap, k, bp, off, cp, n),
                    }
                }
                i += rows;
            }
        }
    }

    /// One `R x NB` block of `C` (the first `off.len()` columns stored): `R x 4` accumulators
    /// from 0, one `vpdpbusd` each per quad of `k`, minus the offsets.
    ///
    /// # Safety
    /// AVX-512 F, BW and VNNI; `a` holds `R` rows of `k` codes, `bp` points at a packed block
    /// (`ceil(k / 4) x NB` words), `c` at `R` rows of at least `off.len()` values, `ldc` apart.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    #[allow(clippy::needless_range_loop)]
    unsafe fn tile<const R: usize>(
        a: &[u8],
        k: usize,
        bp: *const i32,
        off: &[i32],
        c: *mut i32,
        ldc: usize,
    ) {
        let cols = off.len();
        // the valid lanes of each of the four vectors of a row of C
        let mut masks = [0u16; 4];
        for (v, m) in masks.iter_mut().enumerate() {
            let valid = cols.saturating_sub(16 * v).min(16);
            *m = if valid == 16 { u16::MAX } else { (1u16 << valid) - 1 };
        }
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        let full = k / 4;
        let base = a.as_ptr();
        let mut b = bp;
        for q in 0..full {
            // SAFETY: quad `q < ceil(k / 4)` of the block; bytes `4q..4q + 4 <= k` of row `r`
            unsafe {
                let bv = [
                    _mm512_loadu_si512(b.cast()),
                    _mm512_loadu_si512(b.add(16).cast()),
                    _mm512_loadu_si512(b.add(32).cast()),
                    _mm512_loadu_si512(b.add(48).cast()),
                ];
                for r in 0..R {
                    let quad = base.add(r * k + 4 * q).cast::<i32>().read_unaligned();
                    let av = _mm512_set1_epi32(quad);
                    for v in 0..4 {
                        acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
                    }
                }
                b = b.add(NB);
            }
        }
        if full * 4 < k {
            // the last, partial quad: its missing codes meet the packing's zero padding (the
            // loop's body again: one helper for both, taking the rows' quads as an array, ran
            // the extraction's product at half the speed, 0.46-0.66 → 1.14 ms an image)
            // SAFETY: quad `full < ceil(k / 4)` of the block
            unsafe {
                let bv = [
                    _mm512_loadu_si512(b.cast()),
                    _mm512_loadu_si512(b.add(16).cast()),
                    _mm512_loadu_si512(b.add(32).cast()),
                    _mm512_loadu_si512(b.add(48).cast()),
                ];
                for r in 0..R {
                    let mut bytes = [0u8; 4];
                    bytes[..k - 4 * full].copy_from_slice(&a[r * k + 4 * full..(r + 1) * k]);
                    let av = _mm512_set1_epi32(i32::from_le_bytes(bytes));
                    for v in 0..4 {
                        acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
                    }
                }
            }
        }
        for v in 0..4 {
            if masks[v] == 0 {
                continue;
            }
            // SAFETY: lanes masked to the `cols` offsets and columns of each row of C
            unsafe {
                let o = _mm512_maskz_loadu_epi32(masks[v], off.as_ptr().add(16 * v));
                for r in 0..R {
                    let p = c.add(r * ldc + 16 * v);
                    _mm512_mask_storeu_epi32(p, masks[v], _mm512_sub_epi32(acc[r][v], o));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::Gen;

    /// The `i64` reference: no packing, no offset trick.
    fn reference(a: &[u8], b: &[i8], m: usize, n: usize, k: usize) -> Vec<i64> {
        let mut c = vec![0i64; m * n];
        for i in 0..m {
            for j in 0..n {
                for t in 0..k {
                    c[i * n + j] += (i64::from(a[i * k + t]) - 128) * i64::from(b[j * k + t]);
                }
            }
        }
        c
    }

    /// Every kernel the CPU has against the reference, on random codes and on the extremes
    /// (`a` at 0 and 255, `b` at −128 and 127: the largest products of either sign), shapes
    /// across the quad, register-block and column-block edges.
    #[test]
    fn products_are_exact_on_every_kernel() {
        let mut g = Gen(0x5eed_1234);
        for (m, n, k) in
            [(1, 1, 1), (7, 65, 3), (13, 64, 4), (6, 130, 5), (11, 63, 108), (2, 200, 131)]
        {
            for kind in 0..3u8 {
                let a: Vec<u8> = (0..m * k)
                    .map(|i| match kind {
                        0 => (g.next() >> 56) as u8,
                        1 => [0, 255][i % 2],
                        _ => 0,
                    })
                    .collect();
                let b: Vec<i8> = (0..n * k)
                    .map(|i| match kind {
                        0 => (g.next() >> 56) as u8 as i8,
                        1 => [-128, 127][(i / 3) % 2],
                        _ => -128,
                    })
                    .collect();
                let want = reference(&a, &b, m, n, k);
                for kernel in KernelKind::available() {
                    let p = PackedI8Nt::with_kernel(kernel, &b, n, k).expect("packs");
                    let mut c = vec![i32::MIN; m * n];
                    p.product(&a, m, &mut c).expect("shapes");
                    let got: Vec<i64> = c.iter().map(|&v| i64::from(v)).collect();
                    assert_eq!(
                        got,
                        want,
                        "{kernel:?} simd {} ({m}, {n}, {k}) kind {kind}",
                        p.is_simd()
                    );
                }
            }
        }
    }

    /// The largest accepted `k` with every product at its extreme stays exact; one more is an
    /// error.
    #[test]
    fn longest_k_is_exact_and_longer_is_refused() {
        let k = PACKED_I8_MAX_K;
        let a = vec![255u8; k];
        let b = vec![-128i8; k];
        for kernel in KernelKind::available() {
            let p = PackedI8Nt::with_kernel(kernel, &b, 1, k).expect("packs");
            let mut c = [0i32];
            p.product(&a, 1, &mut c).expect("shapes");
            assert_eq!(i64::from(c[0]), -(127 * 128) * k as i64, "{kernel:?}");
            assert!(matches!(
                PackedI8Nt::with_kernel(kernel, &vec![0i8; k + 1], 1, k + 1),
                Err(GemmError::ShapeMismatch { what: "k", .. })
            ));
        }
    }

    /// Wrong lengths are typed errors; empty shapes are no-ops; `k = 0` gives zeros.
    #[test]
    fn shapes_are_checked() {
        assert!(matches!(
            PackedI8Nt::new(&[1; 5], 2, 3),
            Err(GemmError::ShapeMismatch { what: "b", expected: 6, found: 5 })
        ));
        for kernel in KernelKind::available() {
            let p = PackedI8Nt::with_kernel(kernel, &[1; 6], 2, 3).expect("packs");
            assert_eq!((p.n(), p.k(), p.kernel()), (2, 3, kernel));
            let mut c = [7i32; 2];
            assert!(matches!(
                p.product(&[1; 2], 1, &mut c),
                Err(GemmError::ShapeMismatch { what: "a", .. })
            ));
            assert!(matches!(
                p.product(&[1; 3], 1, &mut c[..1]),
                Err(GemmError::ShapeMismatch { what: "out", .. })
            ));
            p.product(&[], 0, &mut []).expect("no rows");
            let z = PackedI8Nt::with_kernel(kernel, &[], 2, 0).expect("packs");
            z.product(&[], 1, &mut c).expect("k = 0");
            assert_eq!(c, [0, 0]);
        }
    }
}
