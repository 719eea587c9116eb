//! [`sgemm`]: the general f32 matrix product `C = α·op(A)·op(B) + β·C` on row-major slices,
//! for feature matrices (the linear classifiers' f32 path, and every model whose inputs are
//! not raw pixels); [`gemm`] is the same for any [`GemmScalar`] (`f32`, and `f64` for
//! gradient checks in double precision).
//!
//! It wraps the `matrixmultiply` crate (the packed, cache-blocked kernels behind ndarray and
//! nalgebra, AVX2/FMA selected at run time) instead of a fourth hand-written product: the u8
//! kernels of this crate exist because they fuse the pixels' affine preprocessing and use
//! integer instructions, which buys the raw-pixel SGD its speed; an f32 × f32 product has
//! nothing to fuse, and `matrixmultiply` is within reach of the machine's f32 peak. Built
//! without its `threading` feature, so a product's bits never depend on the thread count.

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

    /// The product against a naive f64 triple loop, for every combination of transposes,
    /// odd shapes (not multiples of any kernel's tile) and β.
    #[test]
    fn matches_a_naive_product_for_every_transpose_and_odd_shapes() {
        let mut g = 12345u64;
        let mut next = || {
            g = g.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((g >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (64, 10, 129)] {
            for op_a in [Op::N, Op::T] {
                for op_b in [Op::N, Op::T] {
                    let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
                    let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
                    let c0: Vec<f32> = (0..m * n).map(|_| next()).collect();
                    let at = |i: usize, p: usize| match op_a {
                        Op::N => a[i * k + p],
                        Op::T => a[p * m + i],
                    };
                    let bt = |p: usize, j: usize| match op_b {
                        Op::N => b[p * n + j],
                        Op::T => b[j * k + p],
                    };
                    let mut c = c0.clone();
                    sgemm(m, n, k, 2.0, &a, op_a, &b, op_b, 0.5, &mut c).expect("shapes");
                    for i in 0..m {
                        for j in 0..n {
                            let want: f64 = (0..k)
                                .map(|p| f64::from(at(i, p)) * f64::from(bt(p, j)))
                                .sum::<f64>()
                                * 2.0
                                + 0.5 * f64::from(c0[i * n + j]);
                            let got = f64::from(c[i * n + j]);
                            assert!((got - want).abs() < 1e-4, "{m}x{n}x{k} {op_a:?}{op_b:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_lengths_are_typed_errors_and_beta_zero_ignores_nan() {
        let mut c = [f32::NAN; 2];
        sgemm(1, 2, 1, 1.0, &[2.0], Op::N, &[3.0, 4.0], Op::N, 0.0, &mut c).expect("ok");
        assert_eq!(c, [6.0, 8.0]);
        let e = sgemm(1, 2, 1, 1.0, &[2.0], Op::N, &[3.0], Op::N, 0.0, &mut c).unwrap_err();
        assert_eq!(e, GemmError::ShapeMismatch { what: "b", expected: 2, found: 1 });
        let mut z = [f32::NAN];
        sgemm(1, 1, 0, 1.0, &[], Op::N, &[], Op::N, 0.0, &mut z).expect("empty k");
        assert_eq!(z, [0.0]);
    }
}
