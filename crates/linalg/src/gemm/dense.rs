//! [`sgemm`]: the general f32 matrix product `C = α·op(A)·op(B) + β·C` on row-major slices,
//! for feature matrices (the linear classifiers' f32 path, and every model whose inputs are
//! not raw pixels); [`gemm`] is the same for any [`GemmScalar`] (`f32`, and `f64` for
//! gradient checks in double precision).
//!
//! It wraps the `matrixmultiply` crate (the packed, cache-blocked kernels behind ndarray and
//! nalgebra, AVX-512F with its `avx512` feature, else AVX2/FMA, selected at run time) instead
//! of a fourth hand-written product: the u8 kernels of this crate exist because they fuse
//! the pixels' affine preprocessing and use integer instructions, which buys the raw-pixel
//! SGD its speed; an f32 × f32 product has nothing to fuse. Built without its `threading`
//! feature, so a product's bits never depend on the thread count.
//!
//! **Kept by measurement** (issue 16 item 3) against the `gemm` crate (0.19, AVX-512 with its
//! `x86-v4` feature, `Parallelism::None`): one thread, row-major f32 with the callers'
//! transposes, `C = A·B`, GFLOP/s (2·m·n·k per product; criterion's median, best of two runs),
//! 2026-12-04 21:37-21:47 UTC on the project's 2-vCPU Xeon (AVX-512F/BW/VL/VNNI), load 2.3-3.5
//! (other builds running), `cargo bench -p imgclass-linalg --bench products`; the last two rows
//! run the net's two halves at once on the two threads, as the net does:
//!
//! | product (m x n x k) | used by | `matrixmultiply` 0.3 | `gemm` 0.19 | ratio |
//! | --- | --- | ---: | ---: | ---: |
//! | 100 x 500 x 3072, A·W1ᵀ | net forward, pixels | 105 | 87 | 0.83x |
//! | 100 x 500 x 6400, A·W1ᵀ | net forward, k-means features | 110 | 112 | 1.03x |
//! | 100 x 500 x 154, A·W1ᵀ | net forward, HOG | 122 | 133 | 1.09x |
//! | 100 x 10 x 500, H·W2ᵀ | net forward, layer 2 | 41 | 41 | 0.98x |
//! | 500 x 3072 x 100, dHᵀ·X | net backward dW1, pixels | 145 | 156 | 1.07x |
//! | 500 x 6400 x 100, dHᵀ·X | net backward dW1, k-means | 140 | 152 | 1.09x |
//! | 500 x 154 x 100, dHᵀ·X | net backward dW1, HOG | 140 | 135 | 0.96x |
//! | 10 x 500 x 100, dSᵀ·H | net backward dW2 | 53 | 76 | 1.44x |
//! | 100 x 500 x 10, dS·W2 | net backward dH | 77 | 98 | 1.26x |
//! | 256 x 1600 x 108, X_b·Cᵀ | k-means learner block | 141 | 148 | 1.05x |
//! | 729 x 1600 x 108, X·Cᵀ | k-means extraction, one image | 148 | 161 | 1.09x |
//! | 5832 x 108 x 108, X·W | whitening, 8 images | 123 | 144 | 1.18x |
//! | 1024 x 1024 x 1024 | reference | 142 | 161 | 1.14x |
//! | 2 x (100 x 500 x 3072, A·W1ᵀ), two threads | net forward, pixels, 2 halves | 199 | 159 | 0.80x |
//! | 2 x (500 x 3072 x 100, dHᵀ·X), two threads | net backward dW1, pixels, 2 halves | 262 | 283 | 1.08x |
//!
//! `gemm` is not clearly faster where the net spends its time: on pixels it is 0.8x on the
//! forward product with W1 and 1.07x on the backward one (one thread, or the two halves at
//! once), and the two-layer net's iteration was slower with it (16.8 → 18.3 ms, load 2.5-3.5,
//! docs/bench/net.md); it is 1.03-1.18x on the k-means products and wins clearly only on the
//! small products (`dSᵀ H`, `dS W2`, under 1 % of the net's work). So `matrixmultiply` stays
//! (the smaller dependency: `gemm` brings its f16/complex kernels and `pulp`). Before this
//! measurement `matrixmultiply` was built here without `avx512` (AVX2 only: 41-51 GFLOP/s on
//! the larger shapes, a third to a half of the above), and got it only through nalgebra's
//! default features in the binaries; the feature is now explicit, so tests and binaries run the
//! same kernels. `faer`'s matmul was not measured. linalg's own AVX-512 `F32Tile` micro-kernel
//! of the f32 k-NN (12 x 32 over packed panels) is not a general product: serving these callers
//! would need packing for both transposes, edge tiles, cache blocking and `α`/`β` around it, a
//! GEMM's worth of new code. The one narrower case that pays for its own kernel is a fixed
//! right operand used for many products, [`PackedNt`](super::PackedNt) (the k-means features:
//! `B` packed once, sgemm's bits, 1.2-1.4x on the extraction on the project's Xeon, where the
//! 16 x 16 AVX-512 kernel here is bound by its loads).
//!
//! `matrixmultiply` does its own run-time dispatch, so this product needs nothing from
//! [`crate::KernelKind`] and is not affected by `IMGCLASS_KERNEL` (its portable fallback kernel
//! and each SIMD kernel are tested by the crate against a reference product); the tests here
//! check the product the CPU selects against a naive f64 triple loop on adversarial shapes
//! (empty, vectors, k of 1 and 2, odd and blocked sizes, every transpose, f32 and f64, `β = 0`
//! over NaN), and that its bits do not depend on the buffers' alignment or on concurrent
//! callers.

use super::GemmError;

/// Whether an operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// As stored (row-major `rows x cols`).
    N,
    /// Transposed: the operand is stored row-major with its dimensions swapped.
    T,
}

/// `c = alpha · op(a) · op(b) + beta · c` with `op(a)` of `m x k`, `op(b)` of `k x n`, `c` of
/// `m x n`, all row-major (`a` stored `m x k`, or `k x m` with [`Op::T`]; likewise `b`).
/// With `beta == 0` the old contents of `c` are ignored (NaN included).
///
/// ```
/// use imgclass_linalg::gemm::{Op, sgemm};
/// // [1 2; 3 4] · [5 6; 7 8]ᵀ = [17 23; 39 53]
/// let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
/// let mut c = [0.0f32; 4];
/// sgemm(2, 2, 2, 1.0, &a, Op::N, &b, Op::T, 0.0, &mut c)?;
/// assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
/// # Ok::<(), imgclass_linalg::gemm::GemmError>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    beta: f32,
    c: &mut [f32],
) -> Result<(), GemmError> {
    gemm(m, n, k, alpha, a, op_a, b, op_b, beta, c)
}

/// A scalar [`gemm`] multiplies: `f32` or `f64` (sealed by the `matrixmultiply` kernels it
/// forwards to).
pub trait GemmScalar:
    Copy + Default + PartialEq + std::ops::Mul<Output = Self> + Send + Sync + 'static
{
    /// The raw product with strides.
    ///
    /// # Safety
    /// As `matrixmultiply::sgemm`: every element addressed through the strides lies inside
    /// the buffers, and `c` aliases neither `a` nor `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl GemmScalar for f32 {
    unsafe fn raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract
        unsafe {
            matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
}

impl GemmScalar for f64 {
    unsafe fn raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract
        unsafe {
            matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
}

/// [`sgemm`] for any [`GemmScalar`].
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: GemmScalar>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    op_a: Op,
    b: &[T],
    op_b: Op,
    beta: T,
    c: &mut [T],
) -> Result<(), GemmError> {
    let len = |r: usize, s: usize| r.saturating_mul(s);
    for (what, expected, found) in
        [("a", len(m, k), a.len()), ("b", len(k, n), b.len()), ("out", len(m, n), c.len())]
    {
        if expected != found {
            return Err(GemmError::ShapeMismatch { what, expected, found });
        }
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        for v in c.iter_mut() {
            // `T::default()` is 0 for both floats
            *v = if beta == T::default() { T::default() } else { beta * *v };
        }
        return Ok(());
    }
    let (rsa, csa) = match op_a {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match op_b {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    // SAFETY: the lengths were checked above: with these strides every element read of `a`
    // (`m x k`), `b` (`k x n`) and written of `c` (`m x n`, row stride n) lies inside its
    // slice, and `c` does not alias `a` or `b` (it is a unique borrow).
    unsafe {
        T::raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform values in [-0.5, 0.5) from a fixed LCG.
    fn values(seed: u64, len: usize) -> Vec<f64> {
        let mut g = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                g = g.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((g >> 40) as f64 / (1u64 << 24) as f64) - 0.5
            })
            .collect()
    }

    /// `alpha · op(a) · op(b) + beta · c0` by a naive f64 triple loop (beta == 0 ignores c0).
    #[allow(clippy::too_many_arguments)]
    fn naive(
        (m, n, k): (usize, usize, usize),
        alpha: f64,
        a: &[f64],
        op_a: Op,
        b: &[f64],
        op_b: Op,
        beta: f64,
        c0: &[f64],
    ) -> Vec<f64> {
        let at = |i: usize, p: usize| match op_a {
            Op::N => a[i * k + p],
            Op::T => a[p * m + i],
        };
        let bt = |p: usize, j: usize| match op_b {
            Op::N => b[p * n + j],
            Op::T => b[j * k + p],
        };
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                let old = if beta == 0.0 { 0.0 } else { beta * c0[i * n + j] };
                out[i * n + j] = alpha * dot + old;
            }
        }
        out
    }

    /// Adversarial shapes: empty, vectors (m or n of 1), k of 1 and 2, tiny outputs, odd
    /// sizes that are multiples of no tile (masked kernel edges), and sizes past the cache
    /// blocking (several k and n blocks).
    const SHAPES: &[(usize, usize, usize)] = &[
        (0, 0, 0),
        (0, 3, 2),
        (3, 0, 2),
        (1, 1, 1),
        (1, 1, 17),
        (1, 37, 5),
        (37, 1, 5),
        (5, 7, 1),
        (9, 13, 2),
        (3, 5, 7),
        (16, 16, 40),
        (17, 9, 33),
        (64, 10, 129),
        (100, 10, 500),
        (10, 500, 100),
        (33, 47, 600),
        (131, 67, 1031),
    ];

    #[test]
    fn matches_a_naive_product_for_every_transpose_shape_and_scale() {
        for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
            let seed = 10 * s as u64;
            let (a, b) = (values(seed + 1, m * k), values(seed + 2, k * n));
            let c0 = values(seed + 3, m * n);
            for op_a in [Op::N, Op::T] {
                for op_b in [Op::N, Op::T] {
                    for (alpha, beta) in [(1.0, 0.0), (2.0, 0.5), (-0.5, 1.0)] {
                        let want = naive((m, n, k), alpha, &a, op_a, &b, op_b, beta, &c0);
                        let tol = 1e-6 * (k as f64 + 1.0);
                        // f32
                        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
                        let mut c = f(&c0);
                        let (a32, b32) = (f(&a), f(&b));
                        sgemm(m, n, k, alpha as f32, &a32, op_a, &b32, op_b, beta as f32, &mut c)
                            .expect("shapes");
                        for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                            assert!(
                                (f64::from(got) - w).abs() < tol,
                                "f32 {m}x{n}x{k} {op_a:?}{op_b:?} α={alpha} β={beta} [{i}]: {got} vs {w}"
                            );
                        }
                        // f64
                        let mut c = c0.clone();
                        gemm(m, n, k, alpha, &a, op_a, &b, op_b, beta, &mut c).expect("shapes");
                        for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                            assert!(
                                (got - w).abs() < 1e-12 * (k as f64 + 1.0),
                                "f64 {m}x{n}x{k} {op_a:?}{op_b:?} α={alpha} β={beta} [{i}]: {got} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn beta_zero_ignores_nan_in_the_output_on_every_shape() {
        for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
            let (a, b) = (values(s as u64, m * k), values(s as u64 + 99, k * n));
            let (a, b): (Vec<f32>, Vec<f32>) =
                (a.iter().map(|&x| x as f32).collect(), b.iter().map(|&x| x as f32).collect());
            for op_a in [Op::N, Op::T] {
                for op_b in [Op::N, Op::T] {
                    let mut c = vec![f32::NAN; m * n];
                    sgemm(m, n, k, 1.0, &a, op_a, &b, op_b, 0.0, &mut c).expect("shapes");
                    assert!(c.iter().all(|v| v.is_finite()), "{m}x{n}x{k} {op_a:?}{op_b:?}");
                }
            }
        }
    }

    #[test]
    fn wrong_lengths_are_typed_errors_and_empty_k_scales_the_output() {
        let mut c = [f32::NAN; 2];
        sgemm(1, 2, 1, 1.0, &[2.0], Op::N, &[3.0, 4.0], Op::N, 0.0, &mut c).expect("ok");
        assert_eq!(c, [6.0, 8.0]);
        let e = sgemm(1, 2, 1, 1.0, &[2.0], Op::N, &[3.0], Op::N, 0.0, &mut c).unwrap_err();
        assert_eq!(e, GemmError::ShapeMismatch { what: "b", expected: 2, found: 1 });
        let e = sgemm(1, 2, 1, 1.0, &[2.0], Op::N, &[3.0, 4.0], Op::N, 0.0, &mut c[..1]);
        assert_eq!(e, Err(GemmError::ShapeMismatch { what: "out", expected: 2, found: 1 }));
        let mut z = [f32::NAN];
        sgemm(1, 1, 0, 1.0, &[], Op::N, &[], Op::N, 0.0, &mut z).expect("empty k");
        assert_eq!(z, [0.0]);
        let mut z = [3.0f32, -1.0];
        sgemm(2, 1, 0, 1.0, &[], Op::N, &[], Op::N, 2.0, &mut z).expect("empty k");
        assert_eq!(z, [6.0, -2.0]);
    }

    /// The bits of a product depend only on the operands' values and shapes: not on where
    /// the buffers sit in memory (alignment) nor on which or how many threads call it at
    /// once, which is what lets callers split work over rayon and still get the same bits at
    /// any thread count.
    #[test]
    fn same_bits_at_any_alignment_and_from_concurrent_threads() {
        use rayon::prelude::*;
        let (m, n, k) = (100, 500, 307);
        let a: Vec<f32> = values(7, m * k).iter().map(|&x| x as f32).collect();
        let b: Vec<f32> = values(8, k * n).iter().map(|&x| x as f32).collect();
        let product = |shift: usize| {
            // copies at `shift` floats past a fresh allocation's start
            let mut ab = vec![0f32; shift + a.len()];
            ab[shift..].copy_from_slice(&a);
            let mut bb = vec![0f32; shift + b.len()];
            bb[shift..].copy_from_slice(&b);
            let mut c = vec![0f32; shift + m * n];
            sgemm(m, n, k, 1.0, &ab[shift..], Op::N, &bb[shift..], Op::T, 0.0, &mut c[shift..])
                .expect("shapes");
            c.split_off(shift)
        };
        let want = product(0);
        for shift in 1..8 {
            assert_eq!(product(shift), want, "shift {shift}");
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
        let all: Vec<Vec<f32>> = pool.install(|| (0..8).into_par_iter().map(product).collect());
        assert!(all.iter().all(|c| *c == want));
    }
}
