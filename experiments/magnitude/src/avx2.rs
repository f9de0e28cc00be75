//! AVX2 versions of the encodings (x86_64 only; every `pub` kernel here has
//! `#[target_feature(enable = "avx2,fma,popcnt")]` and is called only after
//! [`available`] returned true). Each computes the same exact integers as its scalar
//! counterpart in [`crate::encodings`]; the *operation counts* of the experiment are those of
//! the scalar algorithms, since a SIMD kernel picks whatever instructions the ISA offers:
//!
//! - `f32_mac`: 8-lane FMA, four accumulators.
//! - `int8_mac`: `vpmaddubsw` on `x + 128` (unsigned) × `t` (signed), `i16` pair sums flushed
//!   to `i32` every 32 steps, minus `128·Σt` (the engine's dense kernel, here on four rows).
//! - `sign_select` (no multiply anywhere): plane bits expanded to byte masks, `x + 128`
//!   selected with AND, summed with `vpsadbw` (an adder tree) per plane, minus `128·Σt`.
//! - `bit_serial`: weight words AND activation planes, popcount by nibble lookup
//!   (`vpshufb`), byte tallies flushed with `vpsadbw` every 31 steps.
//! - `thermometer`: sign-adjusted planes, then the same AND + popcount per level.
//! - `tl_pn4`: T-MAC style: weights re-laid out so one register holds the P|N nibbles of 32
//!   rows for one group of four columns; the group's 16-entry subset-sum tables sit in a
//!   register and `vpshufb` looks up 32 rows at once. To stay exact with 8-bit table lanes the
//!   activation is split `x = 16·xh + xl` (`xl ∈ [0,15]`, `xh ∈ [−8,7]`): subset sums of four
//!   fit `[0,60]` and `[−32,28]`, their P−N differences `[−60,60]`, two of which still fit an
//!   `i8`; `i16` sums are flushed to `i32` every 256 pair steps (256·120 < 2^15).
//!
//! `unary` and `tl_b3` have no AVX2 version: the unary counter is inherently one step per
//! unit (its data-parallel form *is* the thermometer kernel), and 81-entry tables do not fit
//! `vpshufb`'s 16 (TL2 uses three weights and a sign bit to get to 14 entries; gathers from
//! an 81-entry table are slower than the arithmetic they replace).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::ops::Range;

use rotor::ternary::Rotor;

use crate::encodings::{Act, Weights};

/// Rows per block of the `tl_pn4` AVX2 weight layout.
pub const TL_ROWS: usize = 32;

/// The AVX2 kernels' prepared activations.
#[derive(Clone, Debug, Default)]
pub struct SimdScratch {
    /// bit_serial: per plane `4·ceil(W/2)` words `[X_2j, X_2j, X_2j+1, X_2j+1]` (duplicated so
    /// one 256-bit AND meets the interleaved `P N P N` row words).
    pub bs2: Vec<u64>,
    pub k: usize,
    /// thermometer: duplicated sign words, levels per word pair (`kp[j]` blocks of four words
    /// from `toff[j]`; a word's levels past its own maximum are zero).
    pub ts2: Vec<u64>,
    pub tl2: Vec<u64>,
    pub toff: Vec<u32>,
    pub kp: Vec<u8>,
    /// tl_pn4: per group of four columns 32 bytes: 16 subset sums of the low nibbles (u8),
    /// then 16 of the high nibbles (i8).
    pub tlx: Vec<u8>,
}

/// True when this CPU can run every kernel in this module.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// True when the CPU has the `popcnt` instruction.
pub fn has_popcnt() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The `tl_pn4` AVX2 weight layout (portable code; built once per matrix):
/// ```text
///   block b (rows 32b .. 32b+31), group g (columns 4g .. 4g+3):  32 bytes at (b·G + g)·32
///   byte j = P nibble of row 32b+j | N nibble of row 32b+j << 4     (G = 16·W groups)
/// ```
/// Rows past the matrix are zero (they contribute nothing and are not written out).
pub fn tl_rows_layout(rot: &Rotor, rows: usize) -> Vec<u8> {
    let words = rot.words_per_row();
    let groups = 16 * words;
    let blocks = rows.div_ceil(TL_ROWS);
    let mut out = vec![0u8; blocks * groups * TL_ROWS];
    for r in 0..rows {
        let (b, j) = (r / TL_ROWS, r % TL_ROWS);
        let row = rot.row_words(r);
        for k in 0..words {
            let (p, n) = rot.pn_word(row, k);
            for q in 0..16 {
                let g = 16 * k + q;
                let byte = ((p >> (4 * q)) & 15) as u8 | ((((n >> (4 * q)) & 15) as u8) << 4);
                out[(b * groups + g) * TL_ROWS + j] = byte;
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_i8(s: &[i8]) -> __m256i {
        assert!(s.len() >= 32);
        // SAFETY: 32 readable bytes at s.as_ptr() (asserted); unaligned load.
        unsafe { _mm256_loadu_si256(s.as_ptr() as *const __m256i) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_u8(s: &[u8]) -> __m256i {
        assert!(s.len() >= 32);
        // SAFETY: 32 readable bytes at s.as_ptr() (asserted); unaligned load.
        unsafe { _mm256_loadu_si256(s.as_ptr() as *const __m256i) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_u64(s: &[u64]) -> __m256i {
        assert!(s.len() >= 4);
        // SAFETY: 32 readable bytes at s.as_ptr() (asserted); unaligned load.
        unsafe { _mm256_loadu_si256(s.as_ptr() as *const __m256i) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_f32(s: &[f32]) -> __m256 {
        assert!(s.len() >= 8);
        // SAFETY: 32 readable bytes at s.as_ptr() (asserted); unaligned load.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    /// 16 bytes broadcast into both 128-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bcast16(s: &[u8]) -> __m256i {
        assert!(s.len() >= 16);
        // SAFETY: 16 readable bytes at s.as_ptr() (asserted); unaligned load.
        let v = unsafe { _mm_loadu_si128(s.as_ptr() as *const __m128i) };
        _mm256_broadcastsi128_si256(v)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn lanes64(v: __m256i) -> [i64; 4] {
        [
            _mm256_extract_epi64(v, 0),
            _mm256_extract_epi64(v, 1),
            _mm256_extract_epi64(v, 2),
            _mm256_extract_epi64(v, 3),
        ]
    }

    /// 32 bits → 32 byte masks (0xFF where set), bit i → byte i.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn expand_bits(m: u32) -> __m256i {
        let v = _mm256_set1_epi32(m as i32);
        let shuf = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
            3, 3, 3,
        );
        let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(v, shuf), bits), bits)
    }

    /// Per-byte population count (0..=8) by nibble lookup.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn popcnt8(v: __m256i) -> __m256i {
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let lo = _mm256_and_si256(v, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi))
    }

    /// Byte tallies of `popcnt8` steps before they must be flushed (31·8 = 248 ≤ 255).
    const BYTE_STEPS: usize = 31;

    // ---------------------------------------------------------------------------------
    // (1) f32 multiply-accumulate

    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn f32_mac(w: &Weights, x: &Act, rows: Range<usize>, y: &mut [i32]) {
        let st = w.stride; // multiple of 64
        let xf = &x.xf[..st];
        for (i, r) in rows.enumerate() {
            let wr = &w.f32[r * st..(r + 1) * st];
            let mut acc = [_mm256_setzero_ps(); 4];
            for (wc, xc) in wr.chunks_exact(32).zip(xf.chunks_exact(32)) {
                for j in 0..4 {
                    acc[j] =
                        _mm256_fmadd_ps(load_f32(&wc[8 * j..]), load_f32(&xc[8 * j..]), acc[j]);
                }
            }
            // Exact: every partial sum is an integer below 2^24.
            let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` has 8 writable f32; unaligned store.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
            y[i] = lanes.iter().sum::<f32>() as i32;
        }
    }

    // ---------------------------------------------------------------------------------
    // (2) int8 multiply-accumulate (maddubs)

    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn int8_mac(w: &Weights, x: &Act, rows: Range<usize>, y: &mut [i32]) {
        let start = rows.start;
        let mut r = rows.start;
        while r + 4 <= rows.end {
            let v = int8_rows::<4>(w, x, r);
            y[r - start..r - start + 4].copy_from_slice(&v);
            r += 4;
        }
        while r < rows.end {
            y[r - start] = int8_rows::<1>(w, x, r)[0];
            r += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::needless_range_loop)] // `j` indexes several per-row arrays
    fn int8_rows<const R: usize>(w: &Weights, x: &Act, r0: usize) -> [i32; R] {
        let st = w.stride;
        let bias = _mm256_set1_epi8(-128);
        let ones = _mm256_set1_epi16(1);
        let mut acc32 = [_mm256_setzero_si256(); R];
        let mut acc16 = [_mm256_setzero_si256(); R];
        // i16 bound: a pair of (x+128)·t is at most 2·255 in magnitude for ternary t, so
        // 32 steps stay below 2^14; flushed every 32 steps.
        for (k, c) in (0..st).step_by(32).enumerate() {
            let xu = _mm256_xor_si256(load_i8(&x.x[c..]), bias);
            for j in 0..R {
                let wv = load_i8(&w.dense[(r0 + j) * st + c..]);
                acc16[j] = _mm256_add_epi16(acc16[j], _mm256_maddubs_epi16(xu, wv));
            }
            if k % 32 == 31 {
                for j in 0..R {
                    acc32[j] = _mm256_add_epi32(acc32[j], _mm256_madd_epi16(acc16[j], ones));
                    acc16[j] = _mm256_setzero_si256();
                }
            }
        }
        std::array::from_fn(|j| {
            let a = _mm256_add_epi32(acc32[j], _mm256_madd_epi16(acc16[j], ones));
            hsum32(a) - 128 * w.row_sums[r0 + j]
        })
    }

    // ---------------------------------------------------------------------------------
    // (3) sign-select + add, no multiply

    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn sign_select(w: &Weights, x: &Act, rows: Range<usize>, y: &mut [i32]) {
        let start = rows.start;
        let mut r = rows.start;
        while r + 4 <= rows.end {
            let v = select_rows::<4>(w, x, r);
            y[r - start..r - start + 4].copy_from_slice(&v);
            r += 4;
        }
        while r < rows.end {
            y[r - start] = select_rows::<1>(w, x, r)[0];
            r += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::needless_range_loop)] // `j`, `h` index several per-row arrays
    fn select_rows<const R: usize>(w: &Weights, x: &Act, r0: usize) -> [i32; R] {
        let bias = _mm256_set1_epi8(-128);
        let zero = _mm256_setzero_si256();
        let rows: [&[u64]; R] = std::array::from_fn(|j| w.rotor.row_words(r0 + j));
        // u64 lanes of byte sums: no overflow for any realistic width.
        let mut accp = [zero; R];
        let mut accn = [zero; R];
        for k in 0..w.words() {
            let xu = [
                _mm256_xor_si256(load_i8(&x.x[64 * k..]), bias),
                _mm256_xor_si256(load_i8(&x.x[64 * k + 32..]), bias),
            ];
            for j in 0..R {
                let (p, n) = w.rotor.pn_word(rows[j], k);
                for h in 0..2 {
                    let pm = expand_bits((p >> (32 * h)) as u32);
                    let nm = expand_bits((n >> (32 * h)) as u32);
                    accp[j] = _mm256_add_epi64(
                        accp[j],
                        _mm256_sad_epu8(_mm256_and_si256(xu[h], pm), zero),
                    );
                    accn[j] = _mm256_add_epi64(
                        accn[j],
                        _mm256_sad_epu8(_mm256_and_si256(xu[h], nm), zero),
                    );
                }
            }
        }
        std::array::from_fn(|j| {
            let d = lanes64(_mm256_sub_epi64(accp[j], accn[j]));
            (d.iter().sum::<i64>() - 128 * w.row_sums[r0 + j] as i64) as i32
        })
    }

    // ---------------------------------------------------------------------------------
    // (4) bit-serial

    /// Two's-complement planes, duplicated per word pair (see [`SimdScratch::bs2`]).
    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn prep_bit_planes(x: &Act, words: usize, s: &mut SimdScratch) {
        let k = crate::encodings::planes_needed(x.values());
        let pairs = words.div_ceil(2);
        s.k = k;
        s.bs2.clear();
        s.bs2.resize(k * 4 * pairs, 0);
        for w in 0..words {
            let v = [load_i8(&x.x[64 * w..]), load_i8(&x.x[64 * w + 32..])];
            let (j, odd) = (w / 2, w % 2);
            for b in 0..k {
                // Shift bit b of every byte to bit 7, where movemask reads it.
                let sh = _mm_cvtsi32_si128(7 - b as i32);
                let m0 = _mm256_movemask_epi8(_mm256_sll_epi16(v[0], sh)) as u32 as u64;
                let m1 = _mm256_movemask_epi8(_mm256_sll_epi16(v[1], sh)) as u32 as u64;
                let word = m0 | (m1 << 32);
                let at = b * 4 * pairs + 4 * j + 2 * odd;
                s.bs2[at] = word;
                s.bs2[at + 1] = word;
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn bit_serial(
        w: &Weights,
        x: &Act,
        s: &mut SimdScratch,
        rows: Range<usize>,
        y: &mut [i32],
    ) {
        let words = w.words();
        prep_bit_planes(x, words, s);
        let (k, full, pairs) = (s.k, words / 2, words.div_ceil(2));
        let zero = _mm256_setzero_si256();
        for (i, r) in rows.enumerate() {
            let row = w.rotor.row_words(r);
            let mut acc = 0i64;
            for b in 0..k {
                let plane = &s.bs2[b * 4 * pairs..(b + 1) * 4 * pairs];
                let (mut a8, mut a64, mut steps) = (zero, zero, 0);
                for j in 0..full {
                    let v = _mm256_and_si256(load_u64(&row[4 * j..]), load_u64(&plane[4 * j..]));
                    a8 = _mm256_add_epi8(a8, popcnt8(v));
                    steps += 1;
                    if steps == BYTE_STEPS {
                        a64 = _mm256_add_epi64(a64, _mm256_sad_epu8(a8, zero));
                        (a8, steps) = (zero, 0);
                    }
                }
                a64 = _mm256_add_epi64(a64, _mm256_sad_epu8(a8, zero));
                // lanes: P count, N count, P count, N count.
                let l = lanes64(a64);
                let mut d = l[0] + l[2] - l[1] - l[3];
                if words % 2 == 1 {
                    let (p, n) = w.rotor.pn_word(row, words - 1);
                    let xb = plane[4 * full];
                    d += (p & xb).count_ones() as i64 - (n & xb).count_ones() as i64;
                }
                acc += if b == k - 1 { -(d << b) } else { d << b };
            }
            y[i] = acc as i32;
        }
    }

    // ---------------------------------------------------------------------------------
    // (5b) thermometer

    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn prep_thermometer(x: &Act, words: usize, s: &mut SimdScratch) {
        let pairs = words.div_ceil(2);
        s.ts2.clear();
        s.ts2.resize(4 * pairs, 0);
        s.kp.clear();
        s.toff.clear();
        s.tl2.clear();
        for j in 0..pairs {
            // |x| as unsigned bytes (|−128| = 0x80 = 128), 4 chunks of 32 columns; chunks of
            // the phantom word past an odd `words` are zero.
            let mut mag = [_mm256_setzero_si256(); 4];
            let mut kw = [0u8; 2];
            for h in 0..2 {
                let w = 2 * j + h;
                if w >= words {
                    continue;
                }
                let v = [load_i8(&x.x[64 * w..]), load_i8(&x.x[64 * w + 32..])];
                let sign = (_mm256_movemask_epi8(v[0]) as u32 as u64)
                    | ((_mm256_movemask_epi8(v[1]) as u32 as u64) << 32);
                s.ts2[4 * j + 2 * h] = sign;
                s.ts2[4 * j + 2 * h + 1] = sign;
                for c in 0..2 {
                    mag[2 * h + c] = _mm256_abs_epi8(v[c]);
                    let mut b = [0u8; 32];
                    // SAFETY: `b` has 32 writable bytes; unaligned store.
                    unsafe { _mm256_storeu_si256(b.as_mut_ptr() as *mut __m256i, mag[2 * h + c]) };
                    kw[h] = kw[h].max(*b.iter().max().unwrap_or(&0));
                }
            }
            let kp = kw[0].max(kw[1]);
            s.kp.push(kp);
            s.toff.push(s.tl2.len() as u32);
            for l in 0..kp as i32 {
                // |x| ≥ l+1  ⇔  max_u8(|x|, l+1) == |x|
                let t = _mm256_set1_epi8((l + 1) as u8 as i8);
                let m: [u64; 4] = std::array::from_fn(|c| {
                    let ge = _mm256_cmpeq_epi8(_mm256_max_epu8(mag[c], t), mag[c]);
                    _mm256_movemask_epi8(ge) as u32 as u64
                });
                let (w0, w1) = (m[0] | (m[1] << 32), m[2] | (m[3] << 32));
                s.tl2.extend_from_slice(&[w0, w0, w1, w1]);
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn thermometer(
        w: &Weights,
        x: &Act,
        s: &mut SimdScratch,
        rows: Range<usize>,
        y: &mut [i32],
    ) {
        let words = w.words();
        prep_thermometer(x, words, s);
        let full = words / 2;
        let zero = _mm256_setzero_si256();
        for (i, r) in rows.enumerate() {
            let row = w.rotor.row_words(r);
            let (mut a8, mut a64, mut steps) = (zero, zero, 0);
            for j in 0..full {
                let v = load_u64(&row[4 * j..]);
                let sg = load_u64(&s.ts2[4 * j..]);
                // [P N P N] → [N P N P], then P' = P∧¬S ∨ N∧S, N' = N∧¬S ∨ P∧S.
                let sw = _mm256_shuffle_epi32(v, 0b01_00_11_10);
                let pn = _mm256_or_si256(_mm256_andnot_si256(sg, v), _mm256_and_si256(sg, sw));
                let off = s.toff[j] as usize;
                for l in 0..s.kp[j] as usize {
                    let lv = load_u64(&s.tl2[off + 4 * l..]);
                    a8 = _mm256_add_epi8(a8, popcnt8(_mm256_and_si256(pn, lv)));
                    steps += 1;
                    if steps == BYTE_STEPS {
                        a64 = _mm256_add_epi64(a64, _mm256_sad_epu8(a8, zero));
                        (a8, steps) = (zero, 0);
                    }
                }
            }
            a64 = _mm256_add_epi64(a64, _mm256_sad_epu8(a8, zero));
            let l = lanes64(a64);
            let mut d = l[0] + l[2] - l[1] - l[3];
            if words % 2 == 1 {
                let (p, n) = w.rotor.pn_word(row, words - 1);
                let sg = s.ts2[4 * full];
                let (pp, nn) = ((p & !sg) | (n & sg), (n & !sg) | (p & sg));
                let off = s.toff[full] as usize;
                for lv in 0..s.kp[full] as usize {
                    let t = s.tl2[off + 4 * lv];
                    d += (pp & t).count_ones() as i64 - (nn & t).count_ones() as i64;
                }
            }
            y[i] = d as i32;
        }
    }

    // ---------------------------------------------------------------------------------
    // (6a) table lookup, T-MAC style

    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn prep_tl(x: &Act, words: usize, s: &mut SimdScratch) {
        let groups = 16 * words;
        s.tlx.clear();
        s.tlx.resize(groups * 32, 0);
        for g in 0..groups {
            let v: [i8; 4] = std::array::from_fn(|i| x.x[4 * g + i]);
            let lo: [u8; 4] = std::array::from_fn(|i| v[i] as u8 & 15);
            let hi: [i8; 4] = std::array::from_fn(|i| v[i] >> 4);
            let t = &mut s.tlx[32 * g..32 * g + 32];
            for m in 1..16usize {
                let (rest, i) = (m & (m - 1), m.trailing_zeros() as usize);
                t[m] = t[rest] + lo[i];
                t[16 + m] = (t[16 + rest] as i8 + hi[i]) as u8;
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and popcnt ([`available`]).
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub fn tl_pn4(w: &Weights, x: &Act, s: &mut SimdScratch, rows: Range<usize>, y: &mut [i32]) {
        let words = w.words();
        prep_tl(x, words, s);
        let groups = 16 * words; // even
        let low = _mm256_set1_epi8(0x0f);
        let start = rows.start;
        for blk in rows.start / TL_ROWS..rows.end.div_ceil(TL_ROWS) {
            let wb = &w.tl_rows[blk * groups * TL_ROWS..(blk + 1) * groups * TL_ROWS];
            let mut acc32 = [_mm256_setzero_si256(); 4];
            let mut l16 = [_mm256_setzero_si256(); 2];
            let mut h16 = [_mm256_setzero_si256(); 2];
            let mut steps = 0;
            for g in (0..groups).step_by(2) {
                let (mut l8, mut h8) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for gg in g..g + 2 {
                    let wv = load_u8(&wb[gg * TL_ROWS..]);
                    let pi = _mm256_and_si256(wv, low);
                    let ni = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low);
                    let tlo = bcast16(&s.tlx[32 * gg..]);
                    let thi = bcast16(&s.tlx[32 * gg + 16..]);
                    // Differences in [−60, 60]; two of them fit an i8.
                    let dl =
                        _mm256_sub_epi8(_mm256_shuffle_epi8(tlo, pi), _mm256_shuffle_epi8(tlo, ni));
                    let dh =
                        _mm256_sub_epi8(_mm256_shuffle_epi8(thi, pi), _mm256_shuffle_epi8(thi, ni));
                    l8 = _mm256_add_epi8(l8, dl);
                    h8 = _mm256_add_epi8(h8, dh);
                }
                l16[0] = _mm256_add_epi16(l16[0], _mm256_cvtepi8_epi16(_mm256_castsi256_si128(l8)));
                l16[1] = _mm256_add_epi16(
                    l16[1],
                    _mm256_cvtepi8_epi16(_mm256_extracti128_si256(l8, 1)),
                );
                h16[0] = _mm256_add_epi16(h16[0], _mm256_cvtepi8_epi16(_mm256_castsi256_si128(h8)));
                h16[1] = _mm256_add_epi16(
                    h16[1],
                    _mm256_cvtepi8_epi16(_mm256_extracti128_si256(h8, 1)),
                );
                steps += 1;
                // i16 bound: each step adds at most 120; 256 steps < 2^15.
                if steps == 256 || g + 2 == groups {
                    for q in 0..2 {
                        for half in 0..2 {
                            let l = if half == 0 {
                                _mm256_castsi256_si128(l16[q])
                            } else {
                                _mm256_extracti128_si256(l16[q], 1)
                            };
                            let h = if half == 0 {
                                _mm256_castsi256_si128(h16[q])
                            } else {
                                _mm256_extracti128_si256(h16[q], 1)
                            };
                            let v = _mm256_add_epi32(
                                _mm256_slli_epi32(_mm256_cvtepi16_epi32(h), 4),
                                _mm256_cvtepi16_epi32(l),
                            );
                            acc32[2 * q + half] = _mm256_add_epi32(acc32[2 * q + half], v);
                        }
                        l16[q] = _mm256_setzero_si256();
                        h16[q] = _mm256_setzero_si256();
                    }
                    steps = 0;
                }
            }
            let mut out = [0i32; TL_ROWS];
            for (q, a) in acc32.iter().enumerate() {
                // SAFETY: `out[8q..8q+8]` is 8 writable i32; unaligned store.
                unsafe { _mm256_storeu_si256(out[8 * q..].as_mut_ptr() as *mut __m256i, *a) };
            }
            for (j, &v) in out.iter().enumerate() {
                let r = blk * TL_ROWS + j;
                if rows.contains(&r) {
                    y[r - start] = v;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub use imp::*;
