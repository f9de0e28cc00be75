//! Single-token (GEMV) kernels on 512-bit registers with `vpdpbusd`, for the `avx512vnni`
//! and `amx` families (and, instantiated without VNNI, nothing else: the `avx512` family keeps
//! its `vpmaddubsw` kernels in `avx512.rs`). Written once over [`Simd512`]; the emulated
//! instance runs the same code in the tests on every machine.
//!
//! Instructions per 64 weights of one row (the inner loop, by design):
//!
//! | layout      | per 64 weights and row                                          | shared per 64 columns |
//! |-------------|-----------------------------------------------------------------|-----------------------|
//! | rotor (any) | 2 mask loads, `vmovdqu8{z}` (+1 where P), `vmovdqu8` (−1 where N/S), `vpdpbusd` | 1 load + 1 `vpxor` (x+128) per `R` rows |
//! | hf_packed   | ¾ shift, 1 and, 1 `vpdpbusd` (one byte row = four output rows)   | 1 weight load + 1 x load per 4 rows |
//! | i2          | ¾ shift, 1 and, 1 `vpdpbusd`                                    | 1 weight load per 4 col-blocks |
//!
//! Rotor consumes its planes as they are stored: a plane word is loaded straight into a mask
//! register (`kmovq k, m64`: a load, no shuffle port), and two masked byte moves turn the pair
//! into sign bytes {+1, 0, −1} for `vpdpbusd` against `x + 128` (unsigned), corrected by
//! `−128 · Σ t` per row; the same two moves serve P/N and M/S (S ⊂ M, so "−1 where S" over
//! "+1 where M" is the sign). That is three vector operations per 64 weights: 1.5 cycles on the
//! two 512-bit ports, ≈ 43 weights per cycle, above one core's share of memory bandwidth.
//!
//! Exactness: `vpdpbusd` adds four u8 × i8 products (|Σ| ≤ 4·255 or 4·2·128) to an i32 lane
//! with no intermediate saturation; a lane sees cols/16 such steps, far from 2^31.

use std::ops::Range;

use super::simd512::{Simd512, reduce4};
use crate::kernels::views::{I2View, PackedView, RotorView};

/// Rows of a rotor matrix that share each activation load.
const ROTOR_ROWS: usize = 4;

/// Rotor GEMV: `out[i] = Σ_c t[rows.start + i][c] · x[c]`. `x` holds at least `64·wpr` values
/// (the padded activation row).
#[inline(always)]
pub fn rotor_gemv<S: Simd512>(w: &RotorView, x: &[i8], rows: Range<usize>, out: &mut [i32]) {
    match (w.bw == w.wpr, w.bw) {
        (true, _) => rotor_gemv_bw::<S, 0>(w, x, rows, out),
        (_, 1) => rotor_gemv_bw::<S, 1>(w, x, rows, out),
        (_, 4) => rotor_gemv_bw::<S, 4>(w, x, rows, out),
        _ => rotor_gemv_bw::<S, { usize::MAX }>(w, x, rows, out),
    }
}

#[inline(always)]
fn rotor_gemv_bw<S: Simd512, const BW: usize>(
    w: &RotorView,
    x: &[i8],
    rows: Range<usize>,
    out: &mut [i32],
) {
    let wpr = w.wpr;
    let rl = 2 * wpr;
    assert!(
        x.len() >= 64 * wpr,
        "activation row shorter than the planes"
    );
    assert!(rows.end <= w.rows && w.words.len() >= w.rows * rl && w.row_sums.len() >= rows.end);
    assert!(out.len() >= rows.len());
    let bias = S::set1_epi8(-128);
    let one = S::set1_epi8(1);
    let mone = S::set1_epi8(-1);
    let xp = x.as_ptr() as *const u8;
    let mut r = rows.start;
    while r < rows.end {
        let nr = (rows.end - r).min(ROTOR_ROWS);
        // Rows past the range repeat the last one (their results are dropped).
        let base: [*const u64; ROTOR_ROWS] = std::array::from_fn(|j| {
            // SAFETY: row `r + min(j, nr−1)` < rows.end ≤ w.rows: within `words` (asserted).
            unsafe { w.words.as_ptr().add((r + j.min(nr - 1)) * rl) }
        });
        let mut acc = [S::zero(); ROTOR_ROWS];
        for k in 0..wpr {
            let (ia, ib) = w.plane_idx::<BW>(k);
            if k % 4 == 0 {
                // The same place in the next block of rows, one block ahead of the loads: the
                // rows of a block are short (≈ 20 lines each at the model's widths), too short
                // for the hardware prefetcher to ramp up on four interleaved streams.
                for j in 0..ROTOR_ROWS {
                    S::prefetch(base[j].wrapping_add(ROTOR_ROWS * rl + ia) as *const u8);
                }
            }
            // SAFETY: 64·k + 64 ≤ 64·wpr ≤ x.len() (asserted above).
            let xu = S::xor(unsafe { S::loadu(xp.add(64 * k)) }, bias);
            for j in 0..ROTOR_ROWS {
                // SAFETY: ia, ib < 2·wpr = row length; base[j] points at a whole row.
                let (a, b) =
                    unsafe { (S::load_mask(base[j].add(ia)), S::load_mask(base[j].add(ib))) };
                let t = S::mask_mov_epi8(S::maskz_mov_epi8(a, one), b, mone);
                acc[j] = S::dpbusd(acc[j], xu, t);
            }
        }
        let s = reduce4::<S>(acc[0], acc[1], acc[2], acc[3]);
        for j in 0..nr {
            out[r + j - rows.start] = s[j].wrapping_sub(128 * w.row_sums[r + j]);
        }
        r += nr;
    }
}

/// Byte rows of the packed layout that share each activation load (each feeds four outputs).
const PACKED_ROWS: usize = 2;

/// hf_packed GEMV over byte rows `units`: `out[g][i]` = output row `g·rows/4 + units.start + i`.
#[inline(always)]
pub fn packed_gemv<S: Simd512>(
    w: &PackedView,
    x: &[i8],
    xsum: i32,
    units: Range<usize>,
    out: &mut [&mut [i32]],
) {
    let cols = w.cols;
    let full = cols / 64 * 64;
    let steps = cols.div_ceil(64);
    assert!(
        x.len() >= steps * 64,
        "activation row shorter than the weights"
    );
    assert!(units.end * 4 <= w.rows && w.data.len() >= w.rows / 4 * cols);
    assert!(out.len() == 4 && out.iter().all(|o| o.len() >= units.len()));
    let m3 = S::set1_epi8(3);
    let xp = x.as_ptr() as *const u8;
    // Columns past a row's end read this zero-weight tail (code 1 in every pair).
    let mut tails = [[0x55u8; 64]; PACKED_ROWS];
    let mut u = units.start;
    while u < units.end {
        let nu = (units.end - u).min(PACKED_ROWS);
        let rows: [&[u8]; PACKED_ROWS] = std::array::from_fn(|j| {
            let r = u + j.min(nu - 1);
            &w.data[r * cols..(r + 1) * cols]
        });
        for j in 0..PACKED_ROWS {
            tails[j][..cols - full].copy_from_slice(&rows[j][full..]);
        }
        let mut acc = [[S::zero(); 4]; PACKED_ROWS];
        for k in 0..steps {
            for j in 0..PACKED_ROWS {
                // One block of byte rows ahead (see rotor_gemv).
                S::prefetch(rows[j].as_ptr().wrapping_add(PACKED_ROWS * cols + 64 * k));
            }
            // SAFETY: 64·k + 64 ≤ 64·steps ≤ x.len() (asserted above).
            let xv = unsafe { S::loadu(xp.add(64 * k)) };
            for j in 0..PACKED_ROWS {
                let v = if k * 64 < full {
                    // SAFETY: 64·k + 64 ≤ full ≤ cols = row length.
                    unsafe { S::loadu(rows[j].as_ptr().add(64 * k)) }
                } else {
                    // SAFETY: the tail buffer holds 64 bytes.
                    unsafe { S::loadu(tails[j].as_ptr()) }
                };
                for g in 0..4 {
                    let shifted = if g == 0 {
                        v
                    } else {
                        S::srli_epi16(v, 2 * g as u32)
                    };
                    acc[j][g] = S::dpbusd(acc[j][g], S::and(shifted, m3), xv);
                }
            }
        }
        for j in 0..nu {
            let s = reduce4::<S>(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
            for g in 0..4 {
                out[g][u + j - units.start] = s[g].wrapping_sub(xsum);
            }
        }
        u += nu;
    }
}

/// Rows of the I2_S layout that share each (permuted) activation load.
const I2_ROWS: usize = 4;

/// The activation row in the order the I2_S codes come out of a 64-byte load: for every pair
/// of 128-column blocks `q` (columns 256q ..), shift `s` and half `h`:
/// `xp[256q + 64s + 32h + i] = x[256q + 128h + 32s + i]`. Built once per product.
pub fn i2_permute_acts(x: &[i8], row_bytes: usize, out: &mut Vec<i8>) {
    let pairs = (row_bytes / 32).div_ceil(2);
    out.clear();
    out.resize(pairs * 256, 0);
    for q in 0..pairs {
        for s in 0..4 {
            for h in 0..2 {
                let src = 256 * q + 128 * h + 32 * s;
                let dst = 256 * q + 64 * s + 32 * h;
                if src + 32 <= x.len() {
                    out[dst..dst + 32].copy_from_slice(&x[src..src + 32]);
                }
            }
        }
    }
}

/// I2_S GEMV with an activation row permuted by [`i2_permute_acts`].
#[inline(always)]
pub fn i2_gemv<S: Simd512>(w: &I2View, xp: &[i8], xsum: i32, rows: Range<usize>, out: &mut [i32]) {
    let rb = w.row_bytes;
    let blocks = rb / 32;
    let pairs = blocks / 2;
    assert!(xp.len() >= blocks.div_ceil(2) * 256);
    assert!(rows.end <= w.rows && w.data.len() >= w.rows * rb && out.len() >= rows.len());
    let m3 = S::set1_epi8(3);
    let xq = xp.as_ptr() as *const u8;
    let mut r = rows.start;
    while r < rows.end {
        let nr = (rows.end - r).min(I2_ROWS);
        let row: [*const u8; I2_ROWS] = std::array::from_fn(|j| {
            // SAFETY: row r + min(j, nr−1) < w.rows: within `data` (asserted).
            unsafe { w.data.as_ptr().add((r + j.min(nr - 1)) * rb) }
        });
        let mut acc = [S::zero(); I2_ROWS];
        for q in 0..pairs {
            for j in 0..I2_ROWS {
                S::prefetch(row[j].wrapping_add(I2_ROWS * rb + 64 * q));
                // SAFETY: 64·q + 64 ≤ 32·blocks = row_bytes.
                let v = unsafe { S::loadu(row[j].add(64 * q)) };
                for s in 0..4 {
                    // Shift 6 − 2s holds columns 32s.. of each 128-column block.
                    let codes = S::and(S::srli_epi16(v, 6 - 2 * s as u32), m3);
                    // SAFETY: 256q + 64s + 64 ≤ xp.len() (asserted).
                    let xv = unsafe { S::loadu(xq.add(256 * q + 64 * s)) };
                    acc[j] = S::dpbusd(acc[j], codes, xv);
                }
            }
        }
        let mut res = reduce4::<S>(acc[0], acc[1], acc[2], acc[3]);
        if blocks % 2 == 1 {
            // An odd last block: its 32 bytes, and a zero-weight (code 1) upper half.
            for j in 0..nr {
                let mut buf = [0x55u8; 64];
                // SAFETY: the last block's 32 bytes lie within the row.
                unsafe {
                    std::ptr::copy_nonoverlapping(row[j].add(64 * pairs), buf.as_mut_ptr(), 32)
                };
                // SAFETY: buf holds 64 bytes.
                let v = unsafe { S::loadu(buf.as_ptr()) };
                let mut a = S::zero();
                for s in 0..4 {
                    let codes = S::and(S::srli_epi16(v, 6 - 2 * s as u32), m3);
                    // SAFETY: 256·pairs + 64s + 64 ≤ xp.len() (asserted; the permuted row is
                    // zero past the activations, so the padding half adds nothing).
                    let xv = unsafe { S::loadu(xq.add(256 * pairs + 64 * s)) };
                    a = S::dpbusd(a, codes, xv);
                }
                res[j] = res[j].wrapping_add(S::reduce_add_epi32(a));
            }
        }
        for j in 0..nr {
            out[r + j - rows.start] = res[j].wrapping_sub(xsum);
        }
        r += nr;
    }
}

// ---------------------------------------------------------------------------------------------
// entry points

#[cfg(target_arch = "x86_64")]
pub mod native {
    use super::*;
    use crate::kernels::x86_64::simd512::Native;

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn rotor_gemv(w: &RotorView, x: &[i8], rows: Range<usize>, out: &mut [i32]) {
        super::rotor_gemv::<Native<true>>(w, x, rows, out)
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn packed_gemv(
        w: &PackedView,
        x: &[i8],
        xsum: i32,
        units: Range<usize>,
        out: &mut [&mut [i32]],
    ) {
        super::packed_gemv::<Native<true>>(w, x, xsum, units, out)
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn i2_gemv(w: &I2View, xp: &[i8], xsum: i32, rows: Range<usize>, out: &mut [i32]) {
        super::i2_gemv::<Native<true>>(w, xp, xsum, rows, out)
    }
}
