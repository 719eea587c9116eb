//! Dense f32/u8 kernels for imgclass: GEMM, pairwise L1 and squared-L2 distances, streaming
//! top-k; scalar twin plus SIMD with runtime dispatch.
//!
//! linalg knows nothing of images, labels, datasets or files: slices, shapes and strides only
//! (docs/ARCHITECTURE.md, invariant 1).

pub mod gemm;
