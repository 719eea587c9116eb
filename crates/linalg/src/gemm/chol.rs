//! Dense Cholesky factorisation `A = L·Lᵀ` of a symmetric positive definite f64 matrix, and
//! the solve `A·x = b` with the factor: the normal equations of
//! [`imgclass_linear`'s Newton solver](https://docs.rs/imgclass-linear) (the Hessian of the
//! squared hinge on one class's active rows, a few thousand wide).
//!
//! Blocked, right-looking: a panel of [`PANEL`] columns is factored column by column (dots of
//! at most `PANEL` terms), then the trailing matrix takes `A₂₂ −= L₂₁·L₂₁ᵀ` through
//! [`gemm`](super::gemm) (matrixmultiply's f64 kernel), where nearly all of the `n³/3`
//! multiply-adds go. Single-threaded, so a caller may factor several matrices at once.
//!
//! ```
//! use imgclass_linalg::gemm::{cholesky, cholesky_solve};
//! // A = [[4, 2], [2, 3]] = L·Lᵀ with L = [[2, 0], [1, √2]]
//! let mut a = vec![4.0, 2.0, 2.0, 3.0];
//! cholesky(&mut a, 2)?;
//! assert_eq!(a[0], 2.0);
//! assert!((a[3] - 2f64.sqrt()).abs() < 1e-15);
//! let mut b = vec![8.0, 8.0]; // A·[1, 2]
//! cholesky_solve(&a, 2, &mut b)?;
//! assert!((b[0] - 1.0).abs() < 1e-12 && (b[1] - 2.0).abs() < 1e-12);
//! # Ok::<(), imgclass_linalg::gemm::GemmError>(())
//! ```

use super::{GemmError, Op, gemm};

/// Columns per panel of the blocked factorisation.
pub const PANEL: usize = 96;

/// Factors the `n x n` row-major symmetric positive definite `a` in place: on return its lower
/// triangle (diagonal included) holds `L` with `A = L·Lᵀ`; the strict upper triangle is left
/// as it was. Only the lower triangle of `a` is read.
///
/// # Errors
/// [`GemmError::ShapeMismatch`] when `a.len() != n²`; [`GemmError::NotPositiveDefinite`] at
/// the first pivot that is not positive (or not finite): `a` is then partly overwritten.
pub fn cholesky(a: &mut [f64], n: usize) -> Result<(), GemmError> {
    if a.len() != n.saturating_mul(n) {
        return Err(GemmError::ShapeMismatch { what: "a", expected: n * n, found: a.len() });
    }
    let mut panel = Vec::new();
    let mut prod = Vec::new();
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + PANEL).min(n);
        // the panel's columns, one after the other, over every row below the diagonal
        for j in j0..j1 {
            let row_j = &mut a[j * n..(j + 1) * n];
            let d = row_j[j] - dot(&row_j[j0..j], &row_j[j0..j]);
            if !(d > 0.0 && d.is_finite()) {
                return Err(GemmError::NotPositiveDefinite { pivot: j });
            }
            let ljj = d.sqrt();
            row_j[j] = ljj;
            let (upto, below) = a.split_at_mut((j + 1) * n);
            let lj = &upto[j * n + j0..j * n + j];
            for row_i in below.chunks_exact_mut(n) {
                row_i[j] = (row_i[j] - dot(&row_i[j0..j], lj)) / ljj;
            }
        }
        // A₂₂ −= L₂₁·L₂₁ᵀ on the lower triangle
        let m = n - j1;
        if m > 0 {
            let w = j1 - j0;
            panel.clear();
            for i in j1..n {
                panel.extend_from_slice(&a[i * n + j0..i * n + j1]);
            }
            prod.resize(m * m, 0.0);
            gemm(m, m, w, 1.0, &panel, Op::N, &panel, Op::T, 0.0, &mut prod)?;
            for (r, i) in (j1..n).enumerate() {
                let row = &mut a[i * n + j1..i * n + i + 1];
                for (v, p) in row.iter_mut().zip(&prod[r * m..r * m + r + 1]) {
                    *v -= p;
                }
            }
        }
        j0 = j1;
    }
    Ok(())
}

/// Solves `L·Lᵀ·x = b` in place (`b` becomes `x`), `l` a factor from [`cholesky`] (its lower
/// triangle is read).
///
/// # Errors
/// [`GemmError::ShapeMismatch`] when `l.len() != n²` or `b.len() != n`.
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) -> Result<(), GemmError> {
    if l.len() != n.saturating_mul(n) {
        return Err(GemmError::ShapeMismatch { what: "l", expected: n * n, found: l.len() });
    }
    if b.len() != n {
        return Err(GemmError::ShapeMismatch { what: "b", expected: n, found: b.len() });
    }
    // L·y = b, forward
    for i in 0..n {
        let s = dot(&l[i * n..i * n + i], &b[..i]);
        b[i] = (b[i] - s) / l[i * n + i];
    }
    // Lᵀ·x = y, backward: x_i = (y_i − Σ_{r>i} L_ri x_r) / L_ii, by columns of Lᵀ
    for i in (0..n).rev() {
        b[i] /= l[i * n + i];
        let xi = b[i];
        for (v, &lij) in b[..i].iter_mut().zip(&l[i * n..i * n + i]) {
            *v -= lij * xi;
        }
    }
    Ok(())
}

/// `a·b` in four partial sums.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            s[l] += x[l] * y[l];
        }
    }
    let mut t = (s[0] + s[2]) + (s[1] + s[3]);
    for (x, y) in ra.iter().zip(rb) {
        t += x * y;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random SPD matrix `B·Bᵀ + n·I` and its plain (unblocked, textbook) factor.
    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let b: Vec<f64> = (0..n * n).map(|_| next()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += 0.01 * n as f64;
        }
        a
    }

    fn naive(a: &[f64], n: usize) -> Vec<f64> {
        let mut l = vec![0.0; n * n];
        for j in 0..n {
            let d = a[j * n + j] - (0..j).map(|k| l[j * n + k] * l[j * n + k]).sum::<f64>();
            l[j * n + j] = d.sqrt();
            for i in j + 1..n {
                let s = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
                l[i * n + j] = s / l[j * n + j];
            }
        }
        l
    }

    #[test]
    fn blocked_factor_matches_the_textbook_loop_and_solves() {
        // sizes below, at and across panel boundaries
        for (n, seed) in [(1, 1), (7, 2), (PANEL, 3), (PANEL + 1, 4), (2 * PANEL + 37, 5)] {
            let a = spd(n, seed);
            let want = naive(&a, n);
            let mut l = a.clone();
            cholesky(&mut l, n).expect("spd");
            for i in 0..n {
                for j in 0..=i {
                    let (g, w) = (l[i * n + j], want[i * n + j]);
                    assert!(
                        (g - w).abs() <= 1e-10 * w.abs().max(1.0),
                        "n {n} ({i},{j}): {g} vs {w}"
                    );
                }
            }
            // A·x = b for a known x
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut b: Vec<f64> =
                (0..n).map(|i| (0..n).map(|j| a[i.max(j) * n + i.min(j)] * x[j]).sum()).collect();
            cholesky_solve(&l, n, &mut b).expect("shapes");
            for (g, w) in b.iter().zip(&x) {
                assert!((g - w).abs() < 1e-8, "n {n}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn refuses_indefinite_nan_and_bad_shapes() {
        // [[1, 2], [2, 1]] has eigenvalues 3 and −1: the second pivot is 1 − 4 < 0
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky(&mut a, 2), Err(GemmError::NotPositiveDefinite { pivot: 1 }));
        let mut a = vec![f64::NAN];
        assert_eq!(cholesky(&mut a, 1), Err(GemmError::NotPositiveDefinite { pivot: 0 }));
        let mut a = vec![1.0; 3];
        assert!(matches!(cholesky(&mut a, 2), Err(GemmError::ShapeMismatch { .. })));
        let mut b = vec![1.0; 3];
        assert!(matches!(
            cholesky_solve(&[1.0, 0.0, 0.0, 1.0], 2, &mut b),
            Err(GemmError::ShapeMismatch { what: "b", .. })
        ));
    }
}
