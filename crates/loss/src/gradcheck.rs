//! A central-difference gradient checker: compares an analytic gradient with
//! `(f(x + h e_i) − f(x − h e_i)) / 2h` coordinate by coordinate.
//!
//! ```text
//! numeric_i = (f(x + h·e_i) − f(x − h·e_i)) / (2h)
//! rel_err_i = |analytic_i − numeric_i| / max(|analytic_i|, |numeric_i|, floor)
//! ```
//!
//! The `floor` ([`REL_ERROR_FLOOR`] = 1e-4) keeps coordinates whose true derivative is zero
//! (a bias whose hinge terms cancel, say) from dividing round-off noise by zero: below the
//! floor the error is the absolute difference scaled by `1/floor`. With `h = 1e-5` in `f64`
//! the round-off of the difference quotient is about `1e-11 · |f|`, far below the floor.
//! Example: `f(x) = x₀² + 3x₁` has gradient `(2x₀, 3)`.
//!
//! ```
//! use imgclass_loss::check_gradient;
//!
//! let f = |x: &[f64]| x[0] * x[0] + 3.0 * x[1];
//! let x = [1.5, -2.0];
//! let good = check_gradient(f, &x, &[3.0, 3.0], 1e-5);
//! assert!(good.max_rel_error < 1e-9);
//! let bad = check_gradient(f, &x, &[3.0, 2.0], 1e-5);
//! assert_eq!(bad.worst_index, 1);
//! assert!((bad.max_rel_error - 1.0 / 3.0).abs() < 1e-6);
//! ```

/// Derivatives smaller than this are compared by absolute difference scaled by `1/floor`.
pub const REL_ERROR_FLOOR: f64 = 1e-4;

/// The outcome of [`check_gradient`].
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheck {
    /// The largest relative error over all coordinates.
    pub max_rel_error: f64,
    /// The coordinate where it occurs.
    pub worst_index: usize,
    /// The numerical gradient.
    pub numeric: Vec<f64>,
}

/// Compares `analytic` with the central-difference gradient of `f` at `x` with step `h`.
/// `analytic` must have the length of `x` (missing coordinates count as 0).
pub fn check_gradient<F>(mut f: F, x: &[f64], analytic: &[f64], h: f64) -> GradCheck
where
    F: FnMut(&[f64]) -> f64,
{
    let mut xs = x.to_vec();
    let mut numeric = Vec::with_capacity(x.len());
    let mut worst = (0.0f64, 0usize);
    for i in 0..x.len() {
        let orig = xs[i];
        xs[i] = orig + h;
        let fp = f(&xs);
        xs[i] = orig - h;
        let fm = f(&xs);
        xs[i] = orig;
        let num = (fp - fm) / (2.0 * h);
        let a = analytic.get(i).copied().unwrap_or(0.0);
        let denom = a.abs().max(num.abs()).max(REL_ERROR_FLOOR);
        let err = (a - num).abs() / denom;
        if err > worst.0 || err.is_nan() {
            worst = (err, i);
        }
        numeric.push(num);
    }
    GradCheck { max_rel_error: worst.0, worst_index: worst.1, numeric }
}
