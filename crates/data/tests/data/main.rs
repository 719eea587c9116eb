//! Integration tests of imgclass-data: every reader on fixtures written by
//! `imgclass_testkit::fixtures` (an independent, hand-built encoding), every malformed input,
//! the split functions' invariants, and the real CIFAR-10 image folder when
//! `IMGCLASS_CIFAR10_JPEG` is set.

mod cifar;
#[cfg(feature = "images")]
mod folder;
mod idx;
mod preprocess;
mod real;
mod split;

/// A fresh temporary directory (removed when dropped).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}
