//! [`ReportError`]: why a report could not be rendered.

/// Why a report could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// There is nothing to draw.
    #[error("cannot render an empty {what}")]
    Empty {
        /// What was empty.
        what: &'static str,
    },
    /// An image has the wrong number of bytes for its shape.
    #[error("image has {found} bytes, expected {expected}")]
    ShapeMismatch {
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The PNG encoder failed.
    #[error("png encoding failed: {reason}")]
    Encode {
        /// The encoder's message.
        reason: String,
    },
}
