//! x86-64 SIMD kernels: [`avx2`] and [`avx512`]. Each kernel value can only be built after
//! run-time feature detection succeeded, which is what makes its `#[target_feature]` calls sound.

pub(crate) mod avx2;
pub(crate) mod avx512;
