//! x86_64 SIMD kernels. Every function here is `#[target_feature]`-gated and only called
//! through a [`Kernel`](crate::kernels::Kernel) value, which proves the features are present.

pub mod amx;
pub mod avx2;
pub mod avx512;
pub mod simd512;
pub mod vnni;
