//! Dataset readers for imgclass: CIFAR-10/100 binary, IDX (MNIST), image folders; checksums,
//! safe archive extraction, splits and folds, preprocessing.
//!
//! This is the only library crate that reads files (docs/ARCHITECTURE.md, invariant 2).

pub mod archive;
pub mod checksum;
