//! Pairwise L1, squared-L2 and cosine distances between rows.
//!
//! ```text
//! L1(q, t)     = Σ_i |q_i − t_i|
//! L2²(q, t)    = Σ_i (q_i − t_i)²  =  ||q||² + ||t||² − 2 q·t
//! cosine(q, t) = 1 − q·t / (||q|| ||t||)   in [0, 2];  1 when q or t is the zero vector
//! ```
//!
//! Cosine exists on f32 rows only (u8 entry points refuse it with
//! [`LinalgError::UnsupportedMetric`]: pixels are converted to features first). A zero
//! vector has no direction; its cosine similarity to anything is defined as 0 (distance 1),
//! as scikit-learn's `cosine_distances` does.
//!
//! On u8 rows both are exact integers accumulated in u32 (the largest L2² over 3,072
//! dimensions is 3,072 · 255² = 199,756,800); rows longer than [`max_u8_dim`] (66,051 for
//! L2) could wrap and are refused with [`LinalgError::RowTooLong`]. The SIMD kernels compute L2² through the
//! right-hand form with exact integer dot products, so every kernel returns the same bits as
//! the scalar twin. [`Metric::L2`] means the squared distance (it ranks like L2).
//!
//! On f32 rows every kernel returns the same bits (one sequential chain per pair, L2 in the
//! GEMM form `||q||² + ||t||² − 2 q·t` with the dot product by fused multiply-add, clamped
//! at 0); the blocking, error bound and NaN rule are in `flat.rs` and [`knn_f32`](crate::knn_f32).
//!
//! Worked example: q = (1, 2, 3), t = (4, 0, 3): L1 = 3 + 2 + 0 = 5, L2² = 9 + 4 + 0 = 13.
//!
//! ```
//! use imgclass_linalg::{Metric, Rows, pairwise_u8};
//! let q = [1u8, 2, 3];
//! let t = [4u8, 0, 3, 1, 2, 3];
//! let mut out = [0u32; 2];
//! pairwise_u8(Rows::new(&q, 1, 3)?, Rows::new(&t, 2, 3)?, Metric::L1, &mut out)?;
//! assert_eq!(out, [5, 0]);
//! pairwise_u8(Rows::new(&q, 1, 3)?, Rows::new(&t, 2, 3)?, Metric::L2, &mut out)?;
//! assert_eq!(out, [13, 0]);
//! # Ok::<(), imgclass_linalg::LinalgError>(())
//! ```

use rayon::prelude::*;

use crate::arch::U8Kernel;
use crate::driver::{block_queries, block_u8, norms};
use crate::{KernelKind, LinalgError, RowsF32, RowsU8};

/// A distance between rows: the one metric type of the workspace (exact and approximate
/// k-NN, saved models, the experiment's configuration). Serialised as its lowercase
/// [`name`](Self::name) (`"l1"`, `"l2"`); [`FromStr`](std::str::FromStr) reads the same
/// names. A new variant is added here, to [`Metric::ALL`] and to the kernel dispatch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Manhattan distance `Σ |q_i − t_i|`.
    L1,
    /// Squared Euclidean distance `Σ (q_i − t_i)²` (ranks like Euclidean). The default.
    #[default]
    L2,
    /// Cosine distance `1 − q·t / (||q|| ||t||)` (1 if either row is zero); f32 rows only.
    Cosine,
}

impl Metric {
    /// Every metric, in the order error messages list them.
    pub const ALL: [Metric; 3] = [Metric::L1, Metric::L2, Metric::Cosine];

    /// The lowercase name (`"l1"`, `"l2"` or `"cosine"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
            Self::Cosine => "cosine",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric name that names no [`Metric`] (in any case); the message lists the valid names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?} (valid: {valid})", valid = metric_names())]
pub struct UnknownMetric(pub String);

/// The valid metric names, comma-separated (`"l1, l2"`).
fn metric_names() -> String {
    Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

impl std::str::FromStr for Metric {
    type Err = UnknownMetric;

    /// `"l1"`, `"l2"` or `"cosine"`, ignoring ASCII case and surrounding whitespace.
    ///
    /// ```
    /// use imgclass_linalg::Metric;
    /// assert_eq!(" L1 ".parse::<Metric>(), Ok(Metric::L1));
    /// assert_eq!("l2".parse::<Metric>(), Ok(Metric::L2));
    /// let err = "chebyshev".parse::<Metric>().unwrap_err();
    /// assert_eq!(err.to_string(), r#"unknown metric "chebyshev" (valid: l1, l2, cosine)"#);
    /// ```
    fn from_str(s: &str) -> Result<Self, UnknownMetric> {
        let name = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| UnknownMetric(s.to_string()))
    }
}

/// Dispatches `$body` with `$k` bound to the u8 kernel value for `$kind` and `$metric`.
macro_rules! with_u8_kernel {
    ($kind:expr, $metric:expr, |$k:ident| $body:expr) => {{
        use $crate::arch::scalar as s;
        match ($kind, $metric) {
            (_, $crate::Metric::Cosine) => {
                Err($crate::LinalgError::UnsupportedMetric { metric: "cosine", dtype: "u8" })
            }
            ($crate::KernelKind::Scalar, $crate::Metric::L1) => {
                let $k = s::L1;
                Ok($body)
            }
            ($crate::KernelKind::Scalar, $crate::Metric::L2) => {
                let $k = s::L2;
                Ok($body)
            }
            #[cfg(target_arch = "x86_64")]
            ($crate::KernelKind::Avx2, $crate::Metric::L1) => {
                match $crate::arch::x86_64::avx2::L1::new() {
                    Some($k) => Ok($body),
                    None => Err($crate::LinalgError::Kernel($crate::KernelError::Unavailable {
                        name: "avx2",
                    })),
                }
            }
            #[cfg(target_arch = "x86_64")]
            ($crate::KernelKind::Avx2, $crate::Metric::L2) => {
                match $crate::arch::x86_64::avx2::L2::new() {
                    Some($k) => Ok($body),
                    None => Err($crate::LinalgError::Kernel($crate::KernelError::Unavailable {
                        name: "avx2",
                    })),
                }
            }
            #[cfg(target_arch = "x86_64")]
            ($crate::KernelKind::Avx512, $crate::Metric::L1) => {
                match $crate::arch::x86_64::avx512::L1::new() {
                    Some($k) => Ok($body),
                    None => Err($crate::LinalgError::Kernel($crate::KernelError::Unavailable {
                        name: "avx512",
                    })),
                }
            }
            #[cfg(target_arch = "x86_64")]
            ($crate::KernelKind::Avx512, $crate::Metric::L2) => {
                match $crate::arch::x86_64::avx512::L2::new() {
                    Some($k) => Ok($body),
                    None => Err($crate::LinalgError::Kernel($crate::KernelError::Unavailable {
                        name: "avx512",
                    })),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            (other, _) => Err($crate::LinalgError::Kernel($crate::KernelError::Unavailable {
                name: other.name(),
            })),
        }
    }};
}
pub(crate) use with_u8_kernel;

/// The longest u8 row whose exact distance under `metric` fits the `u32` every u8 kernel
/// returns: `u32::MAX / 255²` = 66,051 elements for [`Metric::L2`] (3 x 148 x 148 images),
/// `u32::MAX / 255` = 16,843,009 for [`Metric::L1`], 0 for [`Metric::Cosine`] (no u8
/// kernel). Every u8 entry point
/// ([`pairwise_u8`], [`knn_u8`](crate::knn_u8)) refuses longer rows with
/// [`LinalgError::RowTooLong`] rather than return a wrapped distance.
///
/// ```
/// use imgclass_linalg::{Metric, max_u8_dim};
/// assert_eq!(max_u8_dim(Metric::L2), 66_051);
/// assert_eq!(max_u8_dim(Metric::L1), 16_843_009);
/// ```
pub const fn max_u8_dim(metric: Metric) -> usize {
    match metric {
        Metric::L1 => (u32::MAX / 255) as usize,
        Metric::L2 => (u32::MAX / (255 * 255)) as usize,
        Metric::Cosine => 0,
    }
}

/// Checks that u8 rows of `dim` elements have an exact `u32` distance under `metric`.
pub(crate) fn check_u8_dim(dim: usize, metric: Metric) -> Result<(), LinalgError> {
    if metric == Metric::Cosine {
        return Err(LinalgError::UnsupportedMetric { metric: "cosine", dtype: "u8" });
    }
    let max = max_u8_dim(metric);
    if dim > max {
        return Err(LinalgError::RowTooLong { dim, max, metric: metric.name() });
    }
    Ok(())
}

/// Checks that queries and training rows have the same dimension.
pub(crate) fn check_dims<T>(
    q: &crate::Rows<'_, T>,
    t: &crate::Rows<'_, T>,
) -> Result<(), LinalgError> {
    if q.dim() != t.dim() {
        return Err(LinalgError::ShapeMismatch { expected: t.dim(), found: q.dim() });
    }
    Ok(())
}

/// All distances between `queries` and `train` into `out` (row-major:
/// `out[q * train.len() + t]`), with the kernel chosen by [`KernelKind::detect`].
pub fn pairwise_u8(
    queries: RowsU8<'_>,
    train: RowsU8<'_>,
    metric: Metric,
    out: &mut [u32],
) -> Result<(), LinalgError> {
    pairwise_u8_with(KernelKind::detect()?, queries, train, metric, out)
}

/// [`pairwise_u8`] with an explicit kernel (an error if this CPU cannot run it).
pub fn pairwise_u8_with(
    kernel: KernelKind,
    queries: RowsU8<'_>,
    train: RowsU8<'_>,
    metric: Metric,
    out: &mut [u32],
) -> Result<(), LinalgError> {
    check_dims(&queries, &train)?;
    check_u8_dim(train.dim(), metric)?;
    let expected = queries.len() * train.len();
    if out.len() != expected {
        return Err(LinalgError::OutputLen { expected, found: out.len() });
    }
    with_u8_kernel!(kernel, metric, |k| pairwise_impl(k, queries, train, out))
}

fn pairwise_impl<K: U8Kernel>(k: K, queries: RowsU8<'_>, train: RowsU8<'_>, out: &mut [u32]) {
    let n_train = train.len();
    if n_train == 0 || queries.is_empty() {
        return;
    }
    let tn = if K::METRIC == Metric::L2 { norms(train) } else { Vec::new() };
    let bq = block_queries::<K>(queries.len());
    out.par_chunks_mut(bq * n_train).enumerate().for_each(|(b, chunk)| {
        let q0 = b * bq;
        let block = queries.slice(q0, (q0 + bq).min(queries.len()));
        block_u8(k, block, train, &tn, |q, t, d| chunk[q * n_train + t] = d);
    });
}

/// All f32 distances between `queries` and `train` into `out` (row-major), with the kernel
/// chosen by [`KernelKind::detect`].
pub fn pairwise_f32(
    queries: RowsF32<'_>,
    train: RowsF32<'_>,
    metric: Metric,
    out: &mut [f32],
) -> Result<(), LinalgError> {
    pairwise_f32_with(KernelKind::detect()?, queries, train, metric, out)
}

/// [`pairwise_f32`] with an explicit kernel.
pub fn pairwise_f32_with(
    kernel: KernelKind,
    queries: RowsF32<'_>,
    train: RowsF32<'_>,
    metric: Metric,
    out: &mut [f32],
) -> Result<(), LinalgError> {
    check_dims(&queries, &train)?;
    let expected = queries.len() * train.len();
    if out.len() != expected {
        return Err(LinalgError::OutputLen { expected, found: out.len() });
    }
    let tile = crate::flat::tile_fn(kernel, metric)?;
    let n_train = train.len();
    if n_train == 0 || queries.is_empty() {
        return Ok(());
    }
    let bq = crate::flat::block_queries(queries.len());
    let mut states: Vec<&mut [f32]> = out.chunks_mut(bq * n_train).collect();
    crate::flat::search_f32(tile, metric, queries, train, bq, &mut states, |c, q, t, d| {
        c[q * n_train + t] = d;
    });
    Ok(())
}
