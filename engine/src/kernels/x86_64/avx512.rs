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

use crate::ternary::{Acts, HfPacked, Rotor, TernaryLayout};

const FLUSH: usize = 32;

/// The AVX-512 operations the kernels use (names follow the intrinsics).
pub trait Simd512: Copy {
    type V: Copy;
    /// # Safety
    /// `p` must point to 64 readable bytes.
    unsafe fn loadu(p: *const u8) -> Self::V;
    fn zero() -> Self::V;
    fn set1_epi8(x: i8) -> Self::V;
    fn set1_epi16(x: i16) -> Self::V;
    fn xor(a: Self::V, b: Self::V) -> Self::V;
    fn and(a: Self::V, b: Self::V) -> Self::V;
    fn add_epi16(a: Self::V, b: Self::V) -> Self::V;
    fn add_epi32(a: Self::V, b: Self::V) -> Self::V;
    /// Shift each 16-bit lane right by `n` ∈ {2, 4, 6}.
    fn srli_epi16(a: Self::V, n: u32) -> Self::V;
    /// `vpmaddubsw`: u8 × i8 pairs summed into saturated i16.
    fn maddubs_epi16(a: Self::V, b: Self::V) -> Self::V;
    /// `vpmaddwd`: i16 × i16 pairs summed into i32.
    fn madd_epi16(a: Self::V, b: Self::V) -> Self::V;
    /// `vmovdqu8 {k}{z}`: bytes of `a` where mask bit set, else 0.
    fn maskz_mov_epi8(k: u64, a: Self::V) -> Self::V;
    /// `vmovdqu8 {k}`: bytes of `a` where mask bit set, else `src`.
    fn mask_mov_epi8(src: Self::V, k: u64, a: Self::V) -> Self::V;
    fn reduce_add_epi32(a: Self::V) -> i32;
}

/// Portable emulation of the operations (Intel pseudo-code, little-endian lanes).
#[derive(Clone, Copy, Debug)]
pub struct Emulated;

fn lane16(v: &[u8; 64], i: usize) -> u16 {
    u16::from_le_bytes([v[2 * i], v[2 * i + 1]])
}
fn put16(v: &mut [u8; 64], i: usize, x: u16) {
    v[2 * i..2 * i + 2].copy_from_slice(&x.to_le_bytes());
}
fn lane32(v: &[u8; 64], i: usize) -> u32 {
    u32::from_le_bytes(v[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}
fn put32(v: &mut [u8; 64], i: usize, x: u32) {
    v[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
}

impl Simd512 for Emulated {
    type V = [u8; 64];
    unsafe fn loadu(p: *const u8) -> [u8; 64] {
        let mut v = [0u8; 64];
        // SAFETY: the caller guarantees 64 readable bytes at `p`.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), 64) };
        v
    }
    fn zero() -> [u8; 64] {
        [0; 64]
    }
    fn set1_epi8(x: i8) -> [u8; 64] {
        [x as u8; 64]
    }
    fn set1_epi16(x: i16) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..32 {
            put16(&mut v, i, x as u16);
        }
        v
    }
    fn xor(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| a[i] ^ b[i])
    }
    fn and(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| a[i] & b[i])
    }
    fn add_epi16(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..32 {
            put16(&mut v, i, lane16(&a, i).wrapping_add(lane16(&b, i)));
        }
        v
    }
    fn add_epi32(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..16 {
            put32(&mut v, i, lane32(&a, i).wrapping_add(lane32(&b, i)));
        }
        v
    }
    fn srli_epi16(a: [u8; 64], n: u32) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..32 {
            put16(&mut v, i, lane16(&a, i) >> n);
        }
        v
    }
    fn maddubs_epi16(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..32 {
            let s = a[2 * i] as i32 * b[2 * i] as i8 as i32
                + a[2 * i + 1] as i32 * b[2 * i + 1] as i8 as i32;
            put16(
                &mut v,
                i,
                s.clamp(i16::MIN as i32, i16::MAX as i32) as i16 as u16,
            );
        }
        v
    }
    fn madd_epi16(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..16 {
            let p = |j: usize| lane16(&a, j) as i16 as i32 * lane16(&b, j) as i16 as i32;
            put32(&mut v, i, p(2 * i).wrapping_add(p(2 * i + 1)) as u32);
        }
        v
    }
    fn maskz_mov_epi8(k: u64, a: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| if k >> i & 1 == 1 { a[i] } else { 0 })
    }
    fn mask_mov_epi8(src: [u8; 64], k: u64, a: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| if k >> i & 1 == 1 { a[i] } else { src[i] })
    }
    fn reduce_add_epi32(a: [u8; 64]) -> i32 {
        (0..16).fold(0u32, |s, i| s.wrapping_add(lane32(&a, i))) as i32
    }
}

/// The real instructions. Methods are only ever inlined into the `#[target_feature(enable =
/// "avx512f,avx512bw")]` entry points below, which run only with a `Kernel` proving the CPU has
/// both (see `kernels/mod.rs`): that is the safety argument of every `unsafe` here.
#[derive(Clone, Copy, Debug)]
pub struct Native;

#[cfg(target_arch = "x86_64")]
mod native {
    use super::{Native, Simd512};
    use std::arch::x86_64::*;

    impl Simd512 for Native {
        type V = __m512i;
        #[inline(always)]
        unsafe fn loadu(p: *const u8) -> __m512i {
            // SAFETY: 64 readable bytes (caller); AVX-512F present (module contract).
            unsafe { _mm512_loadu_si512(p as *const _) }
        }
        #[inline(always)]
        fn zero() -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_setzero_si512() }
        }
        #[inline(always)]
        fn set1_epi8(x: i8) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_set1_epi8(x) }
        }
        #[inline(always)]
        fn set1_epi16(x: i16) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_set1_epi16(x) }
        }
        #[inline(always)]
        fn xor(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_xor_si512(a, b) }
        }
        #[inline(always)]
        fn and(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_and_si512(a, b) }
        }
        #[inline(always)]
        fn add_epi16(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_add_epi16(a, b) }
        }
        #[inline(always)]
        fn add_epi32(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_add_epi32(a, b) }
        }
        #[inline(always)]
        fn srli_epi16(a: __m512i, n: u32) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe {
                match n {
                    2 => _mm512_srli_epi16::<2>(a),
                    4 => _mm512_srli_epi16::<4>(a),
                    6 => _mm512_srli_epi16::<6>(a),
                    _ => _mm512_srl_epi16(a, _mm_cvtsi32_si128(n as i32)),
                }
            }
        }
        #[inline(always)]
        fn maddubs_epi16(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_maddubs_epi16(a, b) }
        }
        #[inline(always)]
        fn madd_epi16(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_madd_epi16(a, b) }
        }
        #[inline(always)]
        fn maskz_mov_epi8(k: u64, a: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_maskz_mov_epi8(k, a) }
        }
        #[inline(always)]
        fn mask_mov_epi8(src: __m512i, k: u64, a: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_mask_mov_epi8(src, k, a) }
        }
        #[inline(always)]
        fn reduce_add_epi32(a: __m512i) -> i32 {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_reduce_add_epi32(a) }
        }
    }
}

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
fn rotor_gemm_generic<S: Simd512>(w: &Rotor, x: &Acts, units: Range<usize>, out: &mut [i32]) {
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
                    let (p, n) = w.pn_of(rows[j][ia], rows[j][ib]);
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
                    S::reduce_add_epi32(flush::<S>(acc32[j], acc16[j])) - 128 * w.row_sums()[r + j];
            }
            r += nr;
        }
        return;
    }
    // Batches: per weight row, build the sign bytes once per word and apply them to every
    // activation row.
    for (i, r) in units.enumerate() {
        let row = w.row_words(r);
        let bias_r = 128 * w.row_sums()[r];
        let mut b0 = 0;
        while b0 < batch {
            let nb = (batch - b0).min(4);
            let xr: [&[i8]; 4] = std::array::from_fn(|j| x.row(b0 + j.min(nb - 1)));
            let mut acc32 = [S::zero(); 4];
            let mut acc16 = [S::zero(); 4];
            for (k, ia, ib) in w.word_index() {
                let (p, n) = w.pn_of(row[ia], row[ib]);
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
    w: &HfPacked,
    x: &Acts,
    units: Range<usize>,
    out: &mut [&mut [i32]],
) {
    let batch = x.batch;
    let cols = w.cols();
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
pub fn rotor_gemm(w: &Rotor, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    rotor_gemm_generic::<Native>(w, x, units, out)
}

/// AVX-512 hf_packed kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub fn hf_packed_gemm(w: &HfPacked, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
    hf_packed_gemm_generic::<Native>(w, x, units, out)
}

/// The AVX-512 kernels' logic on emulated registers (portable; for the tests).
pub mod emulated {
    use super::*;

    pub fn rotor_gemm(w: &Rotor, x: &Acts, units: Range<usize>, out: &mut [i32]) {
        rotor_gemm_generic::<Emulated>(w, x, units, out)
    }

    pub fn hf_packed_gemm(w: &HfPacked, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
        hf_packed_gemm_generic::<Emulated>(w, x, units, out)
    }
}
