//! AVX-512 (F + BW) kernels for the rotor and hf_packed layouts: 64 int8 lanes per register,
//! and 64-bit mask registers — a rotor plane word *is* a `__mmask64`, so the planes are consumed
//! by masked moves with no bit-to-byte expansion.
//!
//! The kernels are written once, generic over [`Simd512`], and instantiated twice:
//! - [`Native`]: each method one AVX-512 intrinsic, used by the `avx512` kernel;
//! - [`Emulated`]: the same operations on `[u8; 64]` in portable Rust, following Intel's
//!   pseudo-code, so the kernel *logic* is tested bit-exactly against the oracle on every
//!   machine, including those without AVX-512 (this project's development machine is one).
//! Only the one-line wrappers of `Native` need AVX-512 hardware to be checked; the property
//! tests run them wherever the CPU has it.
//!
//! Bounds as for AVX2 (`avx2.rs`): sign kernels feed `x + 128` (u8) against t ∈ {−1,0,1}
//! (pair sums ≤ 510), code kernels feed codes {0,1,2} against x (pair sums ≤ 512); `i16`
//! accumulators are flushed to `i32` at least every 32 steps (32·512 < 2^15).

use std::ops::Range;

use crate::kernels::acts::Acts;
use crate::kernels::views::{PackedView, RotorView};

pub use super::simd512::{Emulated, Native, Simd512};

const FLUSH: usize = 32;

#[inline(always)]
fn load64<S: Simd512>(s: &[u8]) -> S::V {
    assert!(s.len() >= 64);
    // SAFETY: 64 readable bytes (asserted).
    unsafe { S::loadu(s.as_ptr()) }
}

#[inline(always)]
fn load64_i8<S: Simd512>(s: &[i8]) -> S::V {
    assert!(s.len() >= 64);
    // SAFETY: 64 readable bytes (asserted).
    unsafe { S::loadu(s.as_ptr() as *const u8) }
}

#[inline(always)]
fn flush<S: Simd512>(acc32: S::V, acc16: S::V) -> S::V {
    S::add_epi32(acc32, S::madd_epi16(acc16, S::set1_epi16(1)))
}

/// Sign bytes (+1 / −1 / 0) of 64 columns straight from the P and N mask words.
#[inline(always)]
fn signs<S: Simd512>(p: u64, n: u64) -> S::V {
    S::mask_mov_epi8(S::maskz_mov_epi8(p, S::set1_epi8(1)), n, S::set1_epi8(-1))
}

// ---------------------------------------------------------------------------------------------
// rotor

#[inline(always)]
fn rotor_gemm_generic<S: Simd512>(w: &RotorView, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let batch = x.batch;
    let bias = S::set1_epi8(-128);
    if batch == 1 {
        let xr = x.row(0);
        let start = units.start;
        let mut r = units.start;
        // Four rows share every activation load.
        while r < units.end {
            let nr = (units.end - r).min(4);
            let rows: [&[u64]; 4] = std::array::from_fn(|j| w.row_words(r + j.min(nr - 1)));
            let mut acc32 = [S::zero(); 4];
            let mut acc16 = [S::zero(); 4];
            for (k, ia, ib) in w.word_index() {
                let xu = S::xor(load64_i8::<S>(&xr[k * 64..k * 64 + 64]), bias);
                for j in 0..4 {
                    let (p, n) = w.pn(rows[j][ia], rows[j][ib]);
                    acc16[j] = S::add_epi16(acc16[j], S::maddubs_epi16(xu, signs::<S>(p, n)));
                }
                if k % FLUSH == FLUSH - 1 {
                    for j in 0..4 {
                        acc32[j] = flush::<S>(acc32[j], acc16[j]);
                        acc16[j] = S::zero();
                    }
                }
            }
            for j in 0..nr {
                out[r + j - start] =
                    S::reduce_add_epi32(flush::<S>(acc32[j], acc16[j])) - 128 * w.row_sums[r + j];
            }
            r += nr;
        }
        return;
    }
    // Batches: per weight row, build the sign bytes once per word and apply them to every
    // activation row.
    for (i, r) in units.enumerate() {
        let row = w.row_words(r);
        let bias_r = 128 * w.row_sums[r];
        let mut b0 = 0;
        while b0 < batch {
            let nb = (batch - b0).min(4);
            let xr: [&[i8]; 4] = std::array::from_fn(|j| x.row(b0 + j.min(nb - 1)));
            let mut acc32 = [S::zero(); 4];
            let mut acc16 = [S::zero(); 4];
            for (k, ia, ib) in w.word_index() {
                let (p, n) = w.pn(row[ia], row[ib]);
                let t = signs::<S>(p, n);
                for j in 0..4 {
                    let xu = S::xor(load64_i8::<S>(&xr[j][k * 64..k * 64 + 64]), bias);
                    acc16[j] = S::add_epi16(acc16[j], S::maddubs_epi16(xu, t));
                }
                if k % FLUSH == FLUSH - 1 {
                    for j in 0..4 {
                        acc32[j] = flush::<S>(acc32[j], acc16[j]);
                        acc16[j] = S::zero();
                    }
                }
            }
            for j in 0..nb {
                out[i * batch + b0 + j] =
                    S::reduce_add_epi32(flush::<S>(acc32[j], acc16[j])) - bias_r;
            }
            b0 += nb;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// hf_packed

#[inline(always)]
fn hf_packed_gemm_generic<S: Simd512>(
    w: &PackedView,
    x: &Acts,
    units: Range<usize>,
    out: &mut [&mut [i32]],
) {
    let batch = x.batch;
    let cols = w.cols;
    let full = cols / 64 * 64;
    let m3 = S::set1_epi8(3);
    let mut tail = [0x55u8; 64]; // code 1 (zero weight) in every pair
    for (i, r) in units.enumerate() {
        let bytes = w.byte_row(r);
        tail[..cols - full].copy_from_slice(&bytes[full..]);
        for b in 0..batch {
            let xr = x.row(b);
            let mut acc32 = [S::zero(); 4];
            let mut acc16 = [S::zero(); 4];
            for k in 0..cols.div_ceil(64) {
                let v = if k * 64 < full {
                    load64::<S>(&bytes[k * 64..k * 64 + 64])
                } else {
                    load64::<S>(&tail)
                };
                let xv = load64_i8::<S>(&xr[k * 64..k * 64 + 64]);
                for j in 0..4 {
                    let shifted = if j == 0 {
                        v
                    } else {
                        S::srli_epi16(v, 2 * j as u32)
                    };
                    let codes = S::and(shifted, m3);
                    acc16[j] = S::add_epi16(acc16[j], S::maddubs_epi16(codes, xv));
                }
                if k % FLUSH == FLUSH - 1 {
                    for j in 0..4 {
                        acc32[j] = flush::<S>(acc32[j], acc16[j]);
                        acc16[j] = S::zero();
                    }
                }
            }
            for j in 0..4 {
                out[j][i * batch + b] =
                    S::reduce_add_epi32(flush::<S>(acc32[j], acc16[j])) - x.sums[b];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// entry points

/// AVX-512 rotor kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub fn rotor_gemm(w: &RotorView, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    rotor_gemm_generic::<Native<false>>(w, x, units, out)
}

/// AVX-512 hf_packed kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub fn hf_packed_gemm(w: &PackedView, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
    hf_packed_gemm_generic::<Native<false>>(w, x, units, out)
}

/// The AVX-512 kernels' logic on emulated registers (portable; for the tests).
pub mod emulated {
    use super::*;

    pub fn rotor_gemm(w: &RotorView, x: &Acts, units: Range<usize>, out: &mut [i32]) {
        rotor_gemm_generic::<Emulated>(w, x, units, out)
    }

    pub fn hf_packed_gemm(w: &PackedView, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
        hf_packed_gemm_generic::<Emulated>(w, x, units, out)
    }
}
