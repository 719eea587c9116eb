//! [`LinalgError`]: why a distance or nearest-neighbour call rejected its input.

/// Why a distance or nearest-neighbour call rejected its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinalgError {
    /// A row buffer's length is not `n_rows * dim`.
    #[error("row buffer has {found} elements, expected {expected} ({n_rows} rows of {dim})")]
    BufferLen {
        /// Expected element count.
        expected: usize,
        /// Actual element count.
        found: usize,
        /// Number of rows.
        n_rows: usize,
        /// Elements per row.
        dim: usize,
    },
    /// Queries and training rows have different dimensions.
    #[error("dimension mismatch: training rows have {expected} elements, queries have {found}")]
    ShapeMismatch {
        /// Training row dimension.
        expected: usize,
        /// Query row dimension.
        found: usize,
    },
    /// A gathered row index is out of range.
    #[error("row index {index} is out of range for {len} rows")]
    IndexOutOfRange {
        /// The offending index.
        index: usize,
        /// Number of rows in the buffer.
        len: usize,
    },
    /// An output buffer has the wrong length.
    #[error("output buffer has {found} elements, expected {expected}")]
    OutputLen {
        /// Expected element count.
        expected: usize,
        /// Actual element count.
        found: usize,
    },
    /// u8 rows too long for the exact `u32` distance (the sum of squared byte differences
    /// could exceed `u32::MAX`, so a far row could be reported near).
    #[error(
        "rows of {dim} u8 elements are too long for exact {metric} distances (at most {max}: \
         the u32 sum could wrap)"
    )]
    RowTooLong {
        /// The row length given.
        dim: usize,
        /// The longest row accepted for this metric ([`crate::max_u8_dim`]).
        max: usize,
        /// The metric's name (`l1` or `l2`).
        metric: &'static str,
    },
    /// `k` is zero.
    #[error("k must be at least 1")]
    ZeroK,
    /// `k` exceeds the number of training rows.
    #[error("k = {k} exceeds the {n_train} training rows")]
    KTooLarge {
        /// Requested neighbours.
        k: usize,
        /// Training rows available.
        n_train: usize,
    },
    /// `k` exceeds the rows outside some row's group ([`crate::knn_u8_across_groups`]).
    #[error("k = {k} exceeds the {n_other} rows outside group {group}")]
    KTooLargeForGroups {
        /// Requested neighbours.
        k: usize,
        /// The largest group (the first in id order among equally large ones).
        group: usize,
        /// Rows outside it: the most `k` can be.
        n_other: usize,
    },
    /// The group ids do not give one group per row ([`crate::knn_u8_across_groups`]).
    #[error("{found} group ids for {expected} rows")]
    GroupsLen {
        /// Number of rows.
        expected: usize,
        /// Number of group ids given.
        found: usize,
    },
    /// More training rows than a `u32` index can name.
    #[error("{n_train} training rows exceed the u32 index range")]
    TooManyRows {
        /// Training rows given.
        n_train: usize,
    },
    /// No kernel could be selected (`IMGCLASS_KERNEL` unknown, or names a path this CPU
    /// cannot run).
    #[error(transparent)]
    Kernel(#[from] crate::KernelError),
    /// The metric has no kernel for this element type ([`Metric::Cosine`](crate::Metric) on
    /// u8 pixels: convert them to f32 features first).
    #[error("metric {metric} is not available on {dtype} rows (convert them to f32 features)")]
    UnsupportedMetric {
        /// The metric's name.
        metric: &'static str,
        /// The element type (`u8`).
        dtype: &'static str,
    },
}
