//! AVX2 kernels for every layout (32 int8 lanes per register).
//!
//! The workhorse is `vpmaddubsw` (`_mm256_maddubs_epi16`): unsigned bytes × signed bytes,
//! adjacent pairs summed into `i16`. Each layout arranges for one operand to be unsigned:
//! - 2-bit code layouts (`hf_packed`, `i2`, `tq1`) multiply codes `t+1 ∈ {0,1,2}` (unsigned) by
//!   the activations (signed) and subtract `Σ x` at the end;
//! - sign layouts (`rotor`, `dense`) multiply `x + 128` (unsigned; `x ^ 0x80`) by `t ∈ {−1,0,1}`
//!   and subtract `128 · Σ t` (precomputed per row). This is exact for x = −128 too, which the
//!   `vpsignb` trick is not (−(−128) wraps).
//!
//! `i16` bounds (saturation would silently corrupt results): a code product pair is at most
//! 2·2·128 = 512 and a sign product pair at most 2·255 = 510, so 32 accumulated pairs stay
//! below 2^14 and 64 below 32767; every `i16` accumulator here is flushed into `i32`
//! (`_mm256_madd_epi16` with ones) at least every 32 steps.
//!
//! The rotor planes must be expanded from bits to byte masks (broadcast, shuffle, and, compare:
//! three operations per 32 bits per plane, plus one to combine the planes), because AVX2 has no
//! mask registers — the layout's natural home is AVX-512 (`avx512.rs`), where a plane word is
//! a `__mmask64`.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::kernels::acts::Acts;
use crate::kernels::views::{
    DenseView, I2_BLOCK, I2_BLOCK_BYTES, I2View, PackedView, RotorView, Tq1View, tq1code,
};

/// Steps of `i16` accumulation between flushes (see the module bounds).
const FLUSH: usize = 32;

#[inline]
#[target_feature(enable = "avx2")]
fn load(s: &[u8]) -> __m256i {
    assert!(s.len() >= 32);
    // SAFETY: 32 readable bytes at s.as_ptr() (asserted); unaligned load.
    unsafe { _mm256_loadu_si256(s.as_ptr() as *const __m256i) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_i8(s: &[i8]) -> __m256i {
    assert!(s.len() >= 32);
    // SAFETY: 32 readable bytes at s.as_ptr() (asserted); unaligned load.
    unsafe { _mm256_loadu_si256(s.as_ptr() as *const __m256i) }
}

/// Horizontal sum of eight `i32` lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Widen `i16` pair sums into `i32` lanes and add to `acc32`.
#[inline]
#[target_feature(enable = "avx2")]
fn flush(acc32: __m256i, acc16: __m256i) -> __m256i {
    _mm256_add_epi32(acc32, _mm256_madd_epi16(acc16, _mm256_set1_epi16(1)))
}

/// Shuffle controls that spread bytes 0..3 (half 0) or 4..7 (half 1) of a broadcast 64-bit
/// word over 32 lanes, eight lanes per byte (`vpshufb` works within 128-bit lanes, and the
/// broadcast puts the whole word in both).
#[inline]
#[target_feature(enable = "avx2")]
fn spread(h: usize) -> __m256i {
    if h == 0 {
        _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
            3, 3, 3,
        )
    } else {
        _mm256_setr_epi8(
            4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7,
            7, 7, 7,
        )
    }
}

/// Byte masks (0xFF where the bit is set) of the 32 columns of half `h` of a broadcast plane
/// word: shuffle the byte holding each column's bit into its lane, keep that bit, compare.
#[inline]
#[target_feature(enable = "avx2")]
fn plane_mask(word: __m256i, ctrl: __m256i) -> __m256i {
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(
        _mm256_and_si256(_mm256_shuffle_epi8(word, ctrl), bits),
        bits,
    )
}

/// Ternary bytes (+1 / −1 / 0) of half `h` (32 columns) of one rotor word, from its two
/// broadcast plane words `a`, `b`: P/N gives `N − P` of the masks (masks are −1 where set);
/// M/S gives `2·S − M` (+1 where M without S, −1 where both).
#[inline]
#[target_feature(enable = "avx2")]
fn word_signs<const MS: bool>(a: __m256i, b: __m256i, ctrl: __m256i) -> __m256i {
    let (ma, mb) = (plane_mask(a, ctrl), plane_mask(b, ctrl));
    if MS {
        _mm256_sub_epi8(_mm256_add_epi8(mb, mb), ma)
    } else {
        _mm256_sub_epi8(mb, ma)
    }
}

// ---------------------------------------------------------------------------------------------
// dense (int8 weights)

#[target_feature(enable = "avx2")]
pub fn dense_gemm(w: &DenseView, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let batch = x.batch;
    let stride = w.stride; // multiple of 64
    let bias = _mm256_set1_epi8(-128);
    for (i, r) in units.enumerate() {
        let row = &w.data[r * stride..(r + 1) * stride];
        let row_sum = w.row_sums[r];
        for b in 0..batch {
            let xr = &x.row(b)[..stride];
            let (mut acc32, mut acc16) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for (k, (wc, xc)) in row.chunks_exact(32).zip(xr.chunks_exact(32)).enumerate() {
                let xu = _mm256_xor_si256(load_i8(xc), bias); // x + 128 as u8
                acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(xu, load_i8(wc)));
                if k % FLUSH == FLUSH - 1 {
                    acc32 = flush(acc32, acc16);
                    acc16 = _mm256_setzero_si256();
                }
            }
            out[i * batch + b] = hsum(flush(acc32, acc16)) - 128 * row_sum;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rotor (bit-planes)

#[target_feature(enable = "avx2")]
pub fn rotor_gemm(w: &RotorView, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    // Encoding and interleave as compile-time parameters: the index arithmetic of the plane
    // words and the sign combination are then straight-line code.
    let row = w.bw == w.wpr;
    match (w.ms, row, w.bw) {
        (false, true, _) => rotor_gemm_enc::<false, 0>(w, x, units, out),
        (false, _, 1) => rotor_gemm_enc::<false, 1>(w, x, units, out),
        (false, _, 4) => rotor_gemm_enc::<false, 4>(w, x, units, out),
        (true, true, _) => rotor_gemm_enc::<true, 0>(w, x, units, out),
        (true, _, 1) => rotor_gemm_enc::<true, 1>(w, x, units, out),
        (true, _, 4) => rotor_gemm_enc::<true, 4>(w, x, units, out),
        (false, ..) => rotor_gemm_enc::<false, { usize::MAX }>(w, x, units, out),
        (true, ..) => rotor_gemm_enc::<true, { usize::MAX }>(w, x, units, out),
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn rotor_gemm_enc<const MS: bool, const BW: usize>(
    w: &RotorView,
    x: &Acts,
    units: Range<usize>,
    out: &mut [i32],
) {
    if x.batch == 1 {
        // One weight row at a time: one sequential weight stream (see i2_gemm).
        let xr = x.row(0);
        for (i, r) in units.enumerate() {
            out[i] = rotor_row_dot::<MS, BW>(w, w.row_words(r), xr) - 128 * w.row_sums[r];
        }
    } else {
        rotor_gemm_expanded::<MS, BW>(w, x, units, out)
    }
}

/// `Σ_c (x[c] + 128) · t[c]` over one rotor row.
#[inline]
#[target_feature(enable = "avx2")]
fn rotor_row_dot<const MS: bool, const BW: usize>(w: &RotorView, row: &[u64], xr: &[i8]) -> i32 {
    let bias = _mm256_set1_epi8(-128);
    let ctrl = [spread(0), spread(1)];
    let mut acc32 = _mm256_setzero_si256();
    let mut acc16 = _mm256_setzero_si256();
    let wpr = w.wpr;
    assert!(row.len() == 2 * wpr && xr.len() >= 64 * wpr);
    for k in 0..wpr {
        let (ia, ib) = w.plane_idx::<BW>(k);
        let (a, b) = (
            _mm256_set1_epi64x(row[ia] as i64),
            _mm256_set1_epi64x(row[ib] as i64),
        );
        let xs = &xr[k * 64..k * 64 + 64];
        for h in 0..2 {
            let xu = _mm256_xor_si256(load_i8(&xs[32 * h..32 * h + 32]), bias);
            let t = word_signs::<MS>(a, b, ctrl[h]);
            acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(xu, t));
        }
        // Two i16 steps per word: flush every FLUSH/2 words.
        if k % (FLUSH / 2) == FLUSH / 2 - 1 {
            acc32 = flush(acc32, acc16);
            acc16 = _mm256_setzero_si256();
        }
    }
    hsum(flush(acc32, acc16))
}

/// A batch of activation rows: expand each weight row's planes to sign bytes once, then run
/// it against up to four activation rows at a time.
#[inline]
#[target_feature(enable = "avx2")]
fn rotor_gemm_expanded<const MS: bool, const BW: usize>(
    w: &RotorView,
    x: &Acts,
    units: Range<usize>,
    out: &mut [i32],
) {
    let batch = x.batch;
    let wpr = w.wpr;
    let ctrl = [spread(0), spread(1)];
    let mut signs = vec![0i8; wpr * 64];
    for (i, r) in units.enumerate() {
        let row = w.row_words(r);
        for k in 0..wpr {
            let (ia, ib) = w.plane_idx::<BW>(k);
            let (a, b) = (
                _mm256_set1_epi64x(row[ia] as i64),
                _mm256_set1_epi64x(row[ib] as i64),
            );
            for h in 0..2 {
                let t = word_signs::<MS>(a, b, ctrl[h]);
                let dst = &mut signs[k * 64 + 32 * h..k * 64 + 32 * h + 32];
                // SAFETY: dst has 32 writable bytes; unaligned store.
                unsafe { _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, t) };
            }
        }
        let bias = 128 * w.row_sums[r];
        let mut b = 0;
        while b + 4 <= batch {
            let res = signed_dot::<4>(&signs, x, b);
            for t in 0..4 {
                out[i * batch + b + t] = res[t] - bias;
            }
            b += 4;
        }
        while b < batch {
            out[i * batch + b] = signed_dot::<1>(&signs, x, b)[0] - bias;
            b += 1;
        }
    }
}

/// `Σ_c (x[b][c] + 128) · t[c]` for `NB` activation rows from `b0`, over `t.len()` columns.
#[inline]
#[target_feature(enable = "avx2")]
fn signed_dot<const NB: usize>(t: &[i8], x: &Acts, b0: usize) -> [i32; NB] {
    let bias = _mm256_set1_epi8(-128);
    let xr: [&[i8]; NB] = std::array::from_fn(|j| x.row(b0 + j));
    let mut acc32 = [_mm256_setzero_si256(); NB];
    let mut acc16 = [_mm256_setzero_si256(); NB];
    for (k, tc) in t.chunks_exact(32).enumerate() {
        let tv = load_i8(tc);
        for j in 0..NB {
            let xu = _mm256_xor_si256(load_i8(&xr[j][k * 32..k * 32 + 32]), bias);
            acc16[j] = _mm256_add_epi16(acc16[j], _mm256_maddubs_epi16(xu, tv));
        }
        if k % FLUSH == FLUSH - 1 {
            for j in 0..NB {
                acc32[j] = flush(acc32[j], acc16[j]);
                acc16[j] = _mm256_setzero_si256();
            }
        }
    }
    std::array::from_fn(|j| hsum(flush(acc32[j], acc16[j])))
}

// ---------------------------------------------------------------------------------------------
// hf_packed (the checkpoint's bytes)

#[target_feature(enable = "avx2")]
pub fn hf_packed_gemm(w: &PackedView, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
    let batch = x.batch;
    let cols = w.cols;
    let full = cols / 32 * 32;
    let m3 = _mm256_set1_epi8(3);
    let mut tail = [0x55u8; 32]; // code 1 (zero weight) in every pair
    for (i, r) in units.enumerate() {
        let bytes = w.byte_row(r);
        tail[..cols - full].copy_from_slice(&bytes[full..]);
        for b in 0..batch {
            let xr = x.row(b);
            let mut acc32 = [_mm256_setzero_si256(); 4];
            let mut acc16 = [_mm256_setzero_si256(); 4];
            let steps = cols.div_ceil(32);
            for k in 0..steps {
                let v = if k * 32 < full {
                    load(&bytes[k * 32..k * 32 + 32])
                } else {
                    load(&tail)
                };
                let xv = load_i8(&xr[k * 32..k * 32 + 32]);
                for j in 0..4 {
                    let codes = _mm256_and_si256(shift_right_pairs(v, j), m3);
                    acc16[j] = _mm256_add_epi16(acc16[j], _mm256_maddubs_epi16(codes, xv));
                }
                if k % FLUSH == FLUSH - 1 {
                    for j in 0..4 {
                        acc32[j] = flush(acc32[j], acc16[j]);
                        acc16[j] = _mm256_setzero_si256();
                    }
                }
            }
            for j in 0..4 {
                out[j][i * batch + b] = hsum(flush(acc32[j], acc16[j])) - x.sums[b];
            }
        }
    }
}

/// Shift every byte right by `2·j` bits (bits crossing from the neighbouring byte land above
/// bit 1 and are masked off by the caller).
#[inline]
#[target_feature(enable = "avx2")]
fn shift_right_pairs(v: __m256i, j: usize) -> __m256i {
    match j {
        0 => v,
        1 => _mm256_srli_epi16(v, 2),
        2 => _mm256_srli_epi16(v, 4),
        _ => _mm256_srli_epi16(v, 6),
    }
}

/// P/N planes of the four output rows of one packed byte row (see `scalar::hf_to_planes`).
#[target_feature(enable = "avx2")]
pub fn hf_to_planes(src: &[u8], p: &mut [Vec<u64>; 4], n: &mut [Vec<u64>; 4]) {
    let full = src.len() / 32 * 32;
    let m3 = _mm256_set1_epi8(3);
    let two = _mm256_set1_epi8(2);
    let zero = _mm256_setzero_si256();
    for c in (0..full).step_by(32) {
        let v = load(&src[c..c + 32]);
        let (wd, sh) = (c / 64, c % 64);
        for j in 0..4 {
            let codes = _mm256_and_si256(shift_right_pairs(v, j), m3);
            let pm = _mm256_movemask_epi8(_mm256_cmpeq_epi8(codes, two)) as u32 as u64;
            let nm = _mm256_movemask_epi8(_mm256_cmpeq_epi8(codes, zero)) as u32 as u64;
            p[j][wd] |= pm << sh;
            n[j][wd] |= nm << sh;
        }
    }
    for c in full..src.len() {
        let (wd, bit) = (c / 64, c % 64);
        for j in 0..4 {
            let code = (src[c] >> (2 * j)) & 3;
            p[j][wd] |= ((code == 2) as u64) << bit;
            n[j][wd] |= ((code == 0) as u64) << bit;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// i2 (bitnet.cpp I2_S order)

#[target_feature(enable = "avx2")]
pub fn i2_gemm(w: &I2View, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let batch = x.batch;
    if batch == 1 {
        // GEMV: one weight row at a time. Sharing activation loads over several rows was
        // measured slower (13.5 GB/s for one row, 8.0 for two, 6.4 for four, hot in L3 on
        // Zen 3): one sequential weight stream prefetches best; activations stay in L1.
        let xr = x.row(0);
        for (i, r) in units.enumerate() {
            out[i] = i2_rows::<1>(w, xr, r)[0] - x.sums[0];
        }
        return;
    }
    for (i, r) in units.enumerate() {
        let row = w.row(r);
        let mut b = 0;
        while b + 4 <= batch {
            let res = i2_row::<4>(row, x, b);
            for t in 0..4 {
                out[i * batch + b + t] = res[t];
            }
            b += 4;
        }
        while b < batch {
            out[i * batch + b] = i2_row::<1>(row, x, b)[0];
            b += 1;
        }
    }
}

/// `Σ code·x` for `R` consecutive rows against one activation row.
#[inline]
#[target_feature(enable = "avx2")]
fn i2_rows<const R: usize>(w: &I2View, xr: &[i8], r0: usize) -> [i32; R] {
    let m3 = _mm256_set1_epi8(3);
    let rows: [&[u8]; R] = std::array::from_fn(|j| w.row(r0 + j));
    let mut acc32 = [_mm256_setzero_si256(); R];
    let mut acc16 = [_mm256_setzero_si256(); R];
    let nblk = w.row_bytes / I2_BLOCK_BYTES;
    for blk in 0..nblk {
        let xb = &xr[blk * I2_BLOCK..(blk + 1) * I2_BLOCK];
        let xv = [
            load_i8(&xb[..32]),
            load_i8(&xb[32..64]),
            load_i8(&xb[64..96]),
            load_i8(&xb[96..128]),
        ];
        for j in 0..R {
            let v = load(&rows[j][blk * I2_BLOCK_BYTES..(blk + 1) * I2_BLOCK_BYTES]);
            let c0 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
            let c1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
            let c2 = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
            let c3 = _mm256_and_si256(v, m3);
            let s01 = _mm256_add_epi16(
                _mm256_maddubs_epi16(c0, xv[0]),
                _mm256_maddubs_epi16(c1, xv[1]),
            );
            let s23 = _mm256_add_epi16(
                _mm256_maddubs_epi16(c2, xv[2]),
                _mm256_maddubs_epi16(c3, xv[3]),
            );
            acc16[j] = _mm256_add_epi16(acc16[j], _mm256_add_epi16(s01, s23));
        }
        // Four i16 steps per block: flush every FLUSH/4 blocks.
        if blk % (FLUSH / 4) == FLUSH / 4 - 1 {
            for j in 0..R {
                acc32[j] = flush(acc32[j], acc16[j]);
                acc16[j] = _mm256_setzero_si256();
            }
        }
    }
    std::array::from_fn(|j| hsum(flush(acc32[j], acc16[j])))
}

#[inline]
#[target_feature(enable = "avx2")]
fn i2_row<const NB: usize>(row: &[u8], x: &Acts, b0: usize) -> [i32; NB] {
    let m3 = _mm256_set1_epi8(3);
    let xr: [&[i8]; NB] = std::array::from_fn(|j| x.row(b0 + j));
    let mut acc32 = [_mm256_setzero_si256(); NB];
    let mut acc16 = [_mm256_setzero_si256(); NB];
    for (blk, bytes) in row.chunks_exact(I2_BLOCK_BYTES).enumerate() {
        let v = load(bytes);
        // Group g (columns 32g..32g+32 of the block) sits at shift 6 − 2g.
        let codes = [
            _mm256_and_si256(_mm256_srli_epi16(v, 6), m3),
            _mm256_and_si256(_mm256_srli_epi16(v, 4), m3),
            _mm256_and_si256(_mm256_srli_epi16(v, 2), m3),
            _mm256_and_si256(v, m3),
        ];
        for j in 0..NB {
            let xb = &xr[j][blk * I2_BLOCK..(blk + 1) * I2_BLOCK];
            for (g, c) in codes.iter().enumerate() {
                let xv = load_i8(&xb[32 * g..32 * g + 32]);
                acc16[j] = _mm256_add_epi16(acc16[j], _mm256_maddubs_epi16(*c, xv));
            }
        }
        // Four i16 steps per block: flush every FLUSH/4 blocks.
        if blk % (FLUSH / 4) == FLUSH / 4 - 1 {
            for j in 0..NB {
                acc32[j] = flush(acc32[j], acc16[j]);
                acc16[j] = _mm256_setzero_si256();
            }
        }
    }
    std::array::from_fn(|j| hsum(flush(acc32[j], acc16[j])) - x.sums[b0 + j])
}

// ---------------------------------------------------------------------------------------------
// tq1 (base-3, five trits per byte)

#[target_feature(enable = "avx2")]
pub fn tq1_gemm(w: &Tq1View, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let batch = x.batch;
    for (i, r) in units.enumerate() {
        let row = w.row(r);
        let mut b = 0;
        while b + 4 <= batch {
            let res = tq1_row::<4>(row, x, b);
            for t in 0..4 {
                out[i * batch + b + t] = res[t];
            }
            b += 4;
        }
        while b < batch {
            out[i * batch + b] = tq1_row::<1>(row, x, b)[0];
            b += 1;
        }
    }
}

/// Digit `d` (0 = most significant) of 32 packed bytes: `((byte · 3^d) mod 256 · 3) >> 8`.
/// Even and odd bytes are multiplied in separate 16-bit lanes so no carry crosses a byte.
#[inline]
#[target_feature(enable = "avx2")]
fn tq1_digit(v: __m256i, pow3: i16) -> __m256i {
    let lo_mask = _mm256_set1_epi16(0x00ff);
    let pow = _mm256_set1_epi16(pow3);
    // even bytes: low byte of each lane
    let q_lo = _mm256_and_si256(_mm256_mullo_epi16(v, pow), lo_mask);
    let d_lo = _mm256_mulhi_epu16(q_lo, _mm256_set1_epi16(3 << 8)); // (q·768)>>16 = (3q)>>8
    // odd bytes: high byte of each lane, multiplied in place (low byte zero)
    let q_hi = _mm256_mullo_epi16(_mm256_andnot_si256(lo_mask, v), pow);
    let d_hi = _mm256_mulhi_epu16(q_hi, _mm256_set1_epi16(3)); // (q·256·3)>>16 = (3q)>>8
    _mm256_or_si256(d_lo, _mm256_slli_epi16(d_hi, 8))
}

#[inline]
#[target_feature(enable = "avx2")]
fn tq1_row<const NB: usize>(row: &[u8], x: &Acts, b0: usize) -> [i32; NB] {
    let xr: [&[i8]; NB] = std::array::from_fn(|j| x.row(b0 + j));
    let mut acc32 = [_mm256_setzero_si256(); NB];
    let mut acc16 = [_mm256_setzero_si256(); NB];
    for (blk, bytes) in row.chunks_exact(tq1code::BLOCK_BYTES).enumerate() {
        let v = load(bytes);
        for d in 0..5 {
            let digits = tq1_digit(v, tq1code::POW3[d] as i16);
            for j in 0..NB {
                let off = blk * tq1code::BLOCK + 32 * d;
                let xv = load_i8(&xr[j][off..off + 32]);
                acc16[j] = _mm256_add_epi16(acc16[j], _mm256_maddubs_epi16(digits, xv));
            }
        }
        // Five i16 steps per block: flush every 6 blocks (30 steps ≤ FLUSH).
        if blk % 6 == 5 {
            for j in 0..NB {
                acc32[j] = flush(acc32[j], acc16[j]);
                acc16[j] = _mm256_setzero_si256();
            }
        }
    }
    std::array::from_fn(|j| hsum(flush(acc32[j], acc16[j])) - x.sums[b0 + j])
}
