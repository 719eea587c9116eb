//! [`PackedNt`]: `C = A·Bᵀ` in f32 for one fixed `B` and many `A` (the k-means extraction:
//! every image's 729 whitened patches against the same 1,600 centroids), with `B` packed
//! once and the bits of [`sgemm`](super::sgemm).
//!
//! **Why not `sgemm`.** `matrixmultiply`'s AVX-512 kernel is a 16 x 16 block that loads one
//! vector of `B` and broadcasts sixteen elements of `A` per step of `k`: 17 loads for 16
//! FMAs, so the two load ports, not the two FMA units, set its pace; it also packs `B` again
//! on every call. On the project's Xeon it ran the extraction's 729 x 1,600 x 108 product at
//! about 45 % of the FMA peak (`xtask/examples`-style microbenchmarks: `vfmadd231ps` 2 a
//! cycle, ~100 G multiply-adds/s a core; the product 40-45 G/s a core). The kernel here
//! keeps a 6 x 64 block of `C` in 24 registers and per step of `k` loads four vectors of
//! `B` and broadcasts six elements of `A`: 10 loads for 24 FMAs, bound by the FMA units.
//! `B` is packed once, by blocks of 64 columns, `k`-major (`k x 64` floats a block, the last
//! block zero-padded), and the column blocks are the outer loop, so a block (27 KiB at
//! `k = 108`) stays in L1 while every row of `A` passes over it.
//!
//! **The same bits as [`sgemm`](super::sgemm)** (`matrixmultiply` 0.3, `β = 0`, `α = 1`).
//! That product computes each element as one FMA chain over `k` in increasing order,
//! starting from `+0`, in blocks of `KC = 256` (its `S_KC`): the first block's chain is the
//! element, each later block's chain (again from `+0`) is added to it with one rounding.
//! Its AVX-512 and AVX2/FMA kernels both do this. The kernel here computes the same chains
//! in the same order (`fma(a_ik, b_jk, acc)`; the product of two floats is commutative, so
//! the operand order inside the FMA does not matter) and adds later blocks through memory
//! the same way; the portable twin does it with [`f32::mul_add`], which is the correctly
//! rounded fused operation on every target. Tests compare the AVX-512 kernel, the twin and
//! `sgemm` bit for bit (NaN compared as NaN: its payload may depend on the instruction
//! form) on random and adversarial input, `k` across the 256 boundary.
//!
//! Dispatch: [`KernelKind::Avx512`] runs the kernel here, [`KernelKind::Avx2`] `sgemm` (its
//! own FMA kernel: the same chains), [`KernelKind::Scalar`] the twin.
//!
//! ```
//! use imgclass_linalg::gemm::PackedNt;
//!
//! // B: two rows of k = 3; A: one row
//! let b = [1.0f32, 2.0, 3.0, /* row 1 */ 0.5, -1.0, 0.0];
//! let p = PackedNt::new(&b, 2, 3)?;
//! let mut c = [0.0f32; 2];
//! p.product(&[1.0, 1.0, 2.0], 1, &mut c)?;
//! assert_eq!(c, [9.0, -0.5]);
//! # Ok::<(), imgclass_linalg::gemm::GemmError>(())
//! ```

use super::{GemmError, KernelKind, Op, check, sgemm};

/// Columns of `C` per packed block (four AVX-512 vectors).
const NB: usize = 64;
/// Rows of `C` per register block.
const MR: usize = 6;
/// `matrixmultiply`'s `k` block for f32 (`S_KC`): the chain restarts from `+0` every `KC`
/// elements of `k` and is added to the element.
const KC: usize = 256;

/// `B` (`n x k`, row-major: the right operand of `A·Bᵀ`) packed for repeated products
/// `C = A·Bᵀ`: `B` packed once by blocks of 64 columns, products with `sgemm`'s bits.
#[derive(Debug, Clone)]
pub struct PackedNt {
    n: usize,
    k: usize,
    kernel: KernelKind,
    /// Blocks of [`NB`] columns, `k`-major, for the AVX-512 kernel; `B` as given otherwise.
    data: Vec<f32>,
}

impl PackedNt {
    /// Packs `b` (`n x k`, row-major) for the kernel of [`KernelKind::detect`].
    pub fn new(b: &[f32], n: usize, k: usize) -> Result<Self, GemmError> {
        Self::with_kernel(KernelKind::detect()?, b, n, k)
    }

    /// Packs `b` for `kernel`, which must run on this CPU.
    pub fn with_kernel(
        kernel: KernelKind,
        b: &[f32],
        n: usize,
        k: usize,
    ) -> Result<Self, GemmError> {
        check("b", n.saturating_mul(k), b.len())?;
        if !kernel.is_available() {
            return Err(GemmError::Kernel(crate::KernelError::Unavailable { name: kernel.name() }));
        }
        let data = if kernel == KernelKind::Avx512 {
            let blocks = n.div_ceil(NB);
            let mut d = vec![0f32; blocks * k * NB];
            for (j, row) in b.chunks_exact(k.max(1)).enumerate().take(n) {
                let block = &mut d[(j / NB) * k * NB..][..k * NB];
                for (kk, &v) in row.iter().enumerate() {
                    block[kk * NB + j % NB] = v;
                }
            }
            d
        } else {
            b.to_vec()
        };
        Ok(Self { n, k, kernel, data })
    }

    /// Columns of `C` (rows of `B`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The shared dimension.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The kernel the products run.
    pub fn kernel(&self) -> KernelKind {
        self.kernel
    }

    /// `c = a·Bᵀ` with `a` of `m x k` and `c` of `m x n`, row-major; `c`'s old contents are
    /// ignored (NaN included). Serial: callers split rows across threads.
    pub fn product(&self, a: &[f32], m: usize, c: &mut [f32]) -> Result<(), GemmError> {
        let (n, k) = (self.n, self.k);
        check("a", m.saturating_mul(k), a.len())?;
        check("out", m.saturating_mul(n), c.len())?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            c.fill(0.0);
            return Ok(());
        }
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `with_kernel` checked that this CPU runs the Avx512 tier; the shapes
            // were checked above and the packed buffer is `ceil(n / NB) * k * NB` long
            KernelKind::Avx512 => unsafe { avx512::product(&self.data, n, k, a, m, c) },
            KernelKind::Avx2 => sgemm(m, n, k, 1.0, a, Op::N, &self.data, Op::T, 0.0, c)?,
            _ => twin(&self.data, n, k, a, m, c),
        }
        Ok(())
    }
}

/// The portable twin: every element one [`f32::mul_add`] chain per block of [`KC`], the
/// blocks' chains added in order.
fn twin(b: &[f32], n: usize, k: usize, a: &[f32], m: usize, c: &mut [f32]) {
    for i in 0..m {
        let ar = &a[i * k..][..k];
        for j in 0..n {
            let br = &b[j * k..][..k];
            let mut total = 0f32;
            for (blk, (ac, bc)) in ar.chunks(KC).zip(br.chunks(KC)).enumerate() {
                let mut acc = 0f32;
                for (&x, &y) in ac.iter().zip(bc) {
                    acc = x.mul_add(y, acc);
                }
                total = if blk == 0 { acc } else { total + acc };
            }
            c[i * n + j] = total;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{KC, MR, NB};

    /// `c = a·Bᵀ` over the packed blocks: column blocks outer (one stays in L1), register
    /// blocks of [`MR`] rows inner, the last rows by a smaller block.
    ///
    /// # Safety
    /// AVX-512 F must be available; `packed` holds `ceil(n / NB)` blocks of `k x NB`, `a` is
    /// `m x k`, `c` is `m x n`, `k >= 1`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(
        packed: &[f32],
        n: usize,
        k: usize,
        a: &[f32],
        m: usize,
        c: &mut [f32],
    ) {
        for jb in 0..n.div_ceil(NB) {
            let bp = packed[jb * k * NB..][..k * NB].as_ptr();
            let cols = (n - jb * NB).min(NB);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                let ap = a[i * k..].as_ptr();
                let cp = c[i * n + jb * NB..].as_mut_ptr();
                // SAFETY: `rows` rows of `a` from row `i` and of `c` from row `i`, column
                // `jb * NB` (at most `cols` written per row), as the caller guarantees
                unsafe {
                    match rows {
                        6 => tile::<6>(ap, k, bp, cp, n, cols),
                        5 => tile::<5>(ap, k, bp, cp, n, cols),
                        4 => tile::<4>(ap, k, bp, cp, n, cols),
                        3 => tile::<3>(ap, k, bp, cp, n, cols),
                        2 => tile::<2>(ap, k, bp, cp, n, cols),
                        _ => tile::<1>(ap, k, bp, cp, n, cols),
                    }
                }
                i += rows;
            }
        }
    }

    /// One `R x NB` block of `C` (the first `cols` columns stored): per [`KC`] block of `k`,
    /// `R x 4` accumulators from `+0`, one FMA each per element of `k`; the first block is
    /// stored, later ones added to `C` (one rounding), as `matrixmultiply` does.
    ///
    /// # Safety
    /// AVX-512 F; `a` points at `R` rows of `k` floats `k` apart, `bp` at a packed block
    /// (`k x NB`), `c` at `R` rows of at least `cols` floats, `ldc` apart.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::needless_range_loop)]
    unsafe fn tile<const R: usize>(
        a: *const f32,
        k: usize,
        bp: *const f32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        // the valid lanes of each of the four vectors of a row of C
        let mut masks = [0u16; 4];
        for (v, m) in masks.iter_mut().enumerate() {
            let valid = cols.saturating_sub(16 * v).min(16);
            *m = if valid == 16 { u16::MAX } else { (1u16 << valid) - 1 };
        }
        let mut k0 = 0;
        while k0 < k {
            let k1 = (k0 + KC).min(k);
            let mut acc = [[_mm512_setzero_ps(); 4]; R];
            // one pointer per row, advanced together: the broadcasts need no index arithmetic
            // SAFETY: row `r` of `a` starts `r * k` floats after `a`
            let mut ar: [*const f32; R] = std::array::from_fn(|r| unsafe { a.add(r * k + k0) });
            // SAFETY: `k0 < k`: inside the packed block
            let mut b = unsafe { bp.add(k0 * NB) };
            for _ in k0..k1 {
                // SAFETY: each pointer stays below its row's (or the block's) end: `k1 - k0`
                // steps from `k0`
                unsafe {
                    let bv = [
                        _mm512_loadu_ps(b),
                        _mm512_loadu_ps(b.add(16)),
                        _mm512_loadu_ps(b.add(32)),
                        _mm512_loadu_ps(b.add(48)),
                    ];
                    for r in 0..R {
                        let av = _mm512_set1_ps(*ar[r]);
                        for v in 0..4 {
                            acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
                        }
                        ar[r] = ar[r].add(1);
                    }
                    b = b.add(NB);
                }
            }
            for r in 0..R {
                for v in 0..4 {
                    if masks[v] == 0 {
                        continue;
                    }
                    // SAFETY: row `r` of C, lanes masked to its `cols` columns
                    unsafe {
                        let p = c.add(r * ldc + 16 * v);
                        let out = if k0 == 0 {
                            acc[r][v]
                        } else {
                            _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], p), acc[r][v])
                        };
                        _mm512_mask_storeu_ps(p, masks[v], out);
                    }
                }
            }
            k0 = k1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::Gen;

    fn uniform(g: &mut Gen) -> f32 {
        (g.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn same(x: &[f32], y: &[f32]) -> bool {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
    }

    fn values(g: &mut Gen, len: usize, kind: u8) -> Vec<f32> {
        (0..len)
            .map(|i| match kind {
                0 => uniform(g),
                // adversarial: huge, tiny, subnormal, signed zeros, exact cancellations
                _ => match i % 9 {
                    0 => 3e19,
                    1 => -3e19,
                    2 => 1e-40,
                    3 => -0.0,
                    4 => 0.0,
                    5 => f32::MAX / 4.0,
                    6 => uniform(g) * 1e-3,
                    7 => -1.0,
                    _ => 1.0 + f32::EPSILON,
                },
            })
            .collect()
    }

    /// Every kernel this CPU runs, the twin and `sgemm` give the same bits, on shapes around
    /// the register block (6 rows), the packed block (64 columns), `matrixmultiply`'s `k`
    /// block (256) and the extraction's own (729 x 1,600 x 108 in part).
    #[test]
    fn kernels_twin_and_sgemm_agree_bit_for_bit() {
        let mut g = Gen(11);
        let shapes = [
            (1, 1, 1),
            (7, 65, 3),
            (6, 64, 108),
            (13, 130, 108),
            (5, 17, 255),
            (9, 70, 256),
            (8, 33, 257),
            (3, 129, 600),
            (40, 1600, 108),
        ];
        for (m, n, k) in shapes {
            for kind in 0..2u8 {
                let a = values(&mut g, m * k, kind);
                let mut b = values(&mut g, n * k, 0);
                if kind == 1 && n * k > 3 {
                    b[2] = f32::NAN;
                    b[3] = f32::INFINITY;
                }
                let mut want = vec![0f32; m * n];
                sgemm(m, n, k, 1.0, &a, Op::N, &b, Op::T, 0.0, &mut want).expect("shapes");
                let mut tw = vec![f32::NAN; m * n];
                twin(&b, n, k, &a, m, &mut tw);
                assert!(same(&tw, &want), "twin vs sgemm {m}x{n}x{k} kind {kind}");
                for kernel in KernelKind::available() {
                    let p = PackedNt::with_kernel(kernel, &b, n, k).expect("packs");
                    let mut c = vec![f32::NAN; m * n];
                    p.product(&a, m, &mut c).expect("shapes");
                    assert!(same(&c, &want), "{kernel:?} {m}x{n}x{k} kind {kind}");
                }
            }
        }
    }

    /// The product is the product: small integers (exact in any order) against a naive loop.
    #[test]
    fn product_of_small_integers_is_exact() {
        let (m, n, k) = (11, 70, 300);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
        for kernel in KernelKind::available() {
            let p = PackedNt::with_kernel(kernel, &b, n, k).expect("packs");
            let mut c = vec![0f32; m * n];
            p.product(&a, m, &mut c).expect("shapes");
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
                    assert_eq!(c[i * n + j], want, "{kernel:?} ({i}, {j})");
                }
            }
        }
    }

    /// Wrong lengths are typed errors; empty shapes are no-ops; `k = 0` gives zeros.
    #[test]
    fn shapes_are_checked() {
        assert!(matches!(
            PackedNt::new(&[1.0; 5], 2, 3),
            Err(GemmError::ShapeMismatch { what: "b", expected: 6, found: 5 })
        ));
        let p = PackedNt::new(&[1.0; 6], 2, 3).expect("packs");
        assert_eq!((p.n(), p.k()), (2, 3));
        let mut c = [0f32; 2];
        assert!(matches!(
            p.product(&[1.0; 2], 1, &mut c),
            Err(GemmError::ShapeMismatch { what: "a", .. })
        ));
        assert!(matches!(
            p.product(&[1.0; 3], 1, &mut [0f32; 3]),
            Err(GemmError::ShapeMismatch { what: "out", .. })
        ));
        p.product(&[], 0, &mut []).expect("empty");
        let z = PackedNt::new(&[], 2, 0).expect("packs");
        let mut c = [f32::NAN; 4];
        z.product(&[], 2, &mut c).expect("k = 0");
        assert_eq!(c, [0.0; 4]);
    }
}
