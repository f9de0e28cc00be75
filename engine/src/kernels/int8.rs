//! Int8 × int8 dot products for the optional int8 output head.
//!
//! Exact integer arithmetic, so the scalar and SIMD versions agree bit for bit. Both operands
//! come from symmetric absmax quantization and lie in [−127, 127]; the AVX2 kernel uses
//! `vpmaddubsw(|a|, sign(b, a))`, whose pair sums are at most 2·127·127 = 32258 < 2^15 (no
//! saturation; −128 would break `vpsignb`, and never occurs), widened to i32 every step.

use crate::kernels::{Kernel, KernelKind};

/// `Σ a[c]·b[c]` (both in [−127, 127]).
#[inline]
pub fn dot_i8(k: Kernel, a: &[i8], b: &[i8]) -> i32 {
    assert_eq!(a.len(), b.len());
    match k.float_kind() {
        // SAFETY: `k` proves the CPU has AVX2.
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 | KernelKind::Avx512 => unsafe { avx2::dot_i8(a, b) },
        _ => dot_i8_scalar(a, b),
    }
}

/// The portable version (the oracle).
pub fn dot_i8_scalar(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let full = n / 32 * 32;
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_si256();
        let mut c = 0;
        while c < full {
            // SAFETY: c + 32 ≤ n bytes of both slices.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().add(c) as *const __m256i),
                    _mm256_loadu_si256(b.as_ptr().add(c) as *const __m256i),
                )
            };
            let p = _mm256_maddubs_epi16(_mm256_abs_epi8(va), _mm256_sign_epi8(vb, va));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
            c += 32;
        }
        let s = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256(acc, 1),
        );
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        let mut total = _mm_cvtsi128_si32(s);
        for i in full..n {
            total += a[i] as i32 * b[i] as i32;
        }
        total
    }
}
