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
use crate::kernels::acts::PANEL;
use crate::kernels::gemm::MR;
use crate::kernels::views::{I2View, PackedView, RotorView, TlView};

/// Software prefetch distance, in blocks of rows ahead of the block being computed (each
/// kernel's block: 2 packed byte rows, 4 I2_S rows, 2 × 16 rotor-tl rows; the rotor mask
/// kernel prefetches one block of 4 rows ahead). Measured on the Xeon, one thread, weights from
/// DRAM: 1, 2 and 4 blocks gave 77 / 77 / 67 % (hf_packed), 75 / 75 / 69 % (rotor-tl),
/// 69 / 79 / 73 % (i2), 71 / 50 / 48 % (rotor-pn) of the read bandwidth — within the host's
/// noise except that 4 is never better.
pub const PF_BLOCKS: usize = 2;

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
                S::prefetch(
                    rows[j]
                        .as_ptr()
                        .wrapping_add(PF_BLOCKS * PACKED_ROWS * cols + 64 * k),
                );
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
                S::prefetch(row[j].wrapping_add(PF_BLOCKS * I2_ROWS * rb + 64 * q));
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
// rotor-tl: table lookups (T-MAC style) over P/N nibbles

/// The lookup tables of one activation row for [`tl_gemv`]: per quad of 16 columns, 128 bytes
/// `[TL | TH]`, where byte `16q + m` of TL is `Σ_{i ∈ m} (x[16Q+4q+i] & 15)` and of TH is
/// `Σ_{i ∈ m} (x[16Q+4q+i] >> 4)` (arithmetic shift), so that `x = 16·xh + xl` exactly and
/// every subset sum fits a byte ([0, 60] and [−32, 28]). Portable; the oracle of
/// [`tl_tables`].
pub fn tl_tables_scalar(x: &[i8], words: usize, out: &mut Vec<u8>) {
    let quads = 4 * words;
    out.clear();
    out.resize(quads * 128, 0);
    for g in 0..4 * quads {
        let (quad, q) = (g / 4, g % 4);
        let xs = &x[4 * g..4 * g + 4];
        let t = &mut out[quad * 128..quad * 128 + 128];
        for m in 1..16usize {
            let (rest, i) = (m & (m - 1), m.trailing_zeros() as usize);
            t[16 * q + m] = t[16 * q + rest].wrapping_add(xs[i] as u8 & 15);
            t[64 + 16 * q + m] = t[64 + 16 * q + rest].wrapping_add((xs[i] >> 4) as u8);
        }
    }
}

/// [`tl_tables_scalar`] in vector code: per 64 activations, `xl = x & 15` and `xh` (the high
/// nibble sign-extended through a 16-entry `vpermb` lookup), then each quad's table is four
/// masked byte adds of `vpermb`-gathered activations (entry `16q + m` adds activation
/// `4q + i` where bit `i` of `m` is set): 16 operations per table of 64 entries.
#[inline(always)]
pub fn tl_tables<S: Simd512>(x: &[i8], words: usize, out: &mut Vec<u8>) {
    let quads = 4 * words;
    assert!(x.len() >= 64 * words);
    out.clear();
    out.resize(quads * 128, 0);
    // Gather indices: entry 16q + m of quad Q' (of the word) reads activation 16Q' + 4q + i.
    let idx = |qq: usize, i: usize| {
        let v: [u8; 64] = std::array::from_fn(|e| (16 * qq + 4 * (e / 16) + i) as u8);
        // SAFETY: 64 readable bytes.
        unsafe { S::loadu(v.as_ptr()) }
    };
    let gather: [[S::V; 4]; 4] = std::array::from_fn(|qq| std::array::from_fn(|i| idx(qq, i)));
    // Entries whose subset m contains activation i.
    let masks: [u64; 4] =
        std::array::from_fn(|i| (0..64).fold(0u64, |k, e| k | (((e % 16) >> i & 1) as u64) << e));
    let low = S::set1_epi8(0x0f);
    // High nibble n → n − 16·(n ≥ 8): the arithmetic shift x >> 4 by table.
    let sext = {
        let v: [u8; 64] =
            std::array::from_fn(|e| ((e % 16) as i8 - if e % 16 >= 8 { 16 } else { 0 }) as u8);
        // SAFETY: 64 readable bytes.
        unsafe { S::loadu(v.as_ptr()) }
    };
    let op = out.as_mut_ptr();
    for k in 0..words {
        // SAFETY: 64·k + 64 ≤ 64·words ≤ x.len() (asserted).
        let xv = unsafe { S::loadu(x.as_ptr().add(64 * k) as *const u8) };
        let xl = S::and(xv, low);
        let xh = S::permutexvar_epi8(S::and(S::srli_epi16(xv, 4), low), sext);
        for qq in 0..4 {
            let (mut tl, mut th) = (S::zero(), S::zero());
            for i in 0..4 {
                tl = S::mask_add_epi8(tl, masks[i], S::permutexvar_epi8(gather[qq][i], xl));
                th = S::mask_add_epi8(th, masks[i], S::permutexvar_epi8(gather[qq][i], xh));
            }
            let quad = 4 * k + qq;
            // SAFETY: quad·128 + 128 ≤ quads·128 = out.len().
            unsafe {
                S::storeu(op.add(quad * 128), tl);
                S::storeu(op.add(quad * 128 + 64), th);
            }
        }
    }
}

/// Blocks of 16 rows processed together (they share every table load).
const TL_BLOCKS: usize = 2;

/// `rotor-tl` GEMV: `out[i] = Σ_c t[rows.start + i][c] · x[c]`. Per quad of 16 columns and
/// block of 16 rows: one 64-byte weight load, P and N indices (`vpternlogd`, `vpsrlw` +
/// `vpternlogd`: the low nibble with the group number `q` put in bits 4–5), four `vpermb`
/// (TL[P], TL[N], TH[P], TH[N]), two `vpsubb`, and two `vpdpbusd` that add each row's four
/// group differences into its 32-bit lane (×1 for TL, ×16 for TH): 11 vector operations per
/// 256 weights, and the 16 row sums come out in one register (no horizontal reduction).
#[inline(always)]
pub fn tl_gemv<S: Simd512>(
    w: &TlView,
    x: &[i8],
    tables: &mut Vec<u8>,
    rows: Range<usize>,
    out: &mut [i32],
) {
    let bb = w.block_bytes();
    let quads = 4 * w.words;
    assert!(
        x.len() >= 64 * w.words,
        "activation row shorter than the weights"
    );
    assert!(rows.end <= w.rows && w.data.len() >= w.rows.div_ceil(16) * bb);
    assert!(out.len() >= rows.len());
    tl_tables::<S>(x, w.words, tables);
    let low = S::set1_epi8(0x0f);
    // Bits 4–5 of byte 4i + q = q: selects group q's 16 entries of the 64-byte table.
    let qsel = {
        let mut v = [0u8; 64];
        for (i, b) in v.iter_mut().enumerate() {
            *b = ((i % 4) as u8) << 4;
        }
        // SAFETY: 64 readable bytes.
        unsafe { S::loadu(v.as_ptr()) }
    };
    let ones = S::set1_epi8(1);
    let sixteen = S::set1_epi8(16);
    let tp = tables.as_ptr();
    let blocks = rows.start / 16..rows.end.div_ceil(16);
    let mut b = blocks.start;
    while b < blocks.end {
        let nb = (blocks.end - b).min(TL_BLOCKS);
        let base: [*const u8; TL_BLOCKS] = std::array::from_fn(|j| {
            // SAFETY: block b + min(j, nb−1) < ceil(rows/16): within `data` (asserted).
            unsafe { w.data.as_ptr().add((b + j.min(nb - 1)) * bb) }
        });
        let mut lo = [S::zero(); TL_BLOCKS];
        let mut hi = [S::zero(); TL_BLOCKS];
        for quad in 0..quads {
            // SAFETY: quad·128 + 128 ≤ tables.len() = quads·128.
            let (tl, th) = unsafe {
                (
                    S::loadu(tp.add(quad * 128)),
                    S::loadu(tp.add(quad * 128 + 64)),
                )
            };
            for j in 0..TL_BLOCKS {
                S::prefetch(base[j].wrapping_add(PF_BLOCKS * TL_BLOCKS * bb + quad * 64));
                // SAFETY: quad·64 + 64 ≤ bb: within the block.
                let v = unsafe { S::loadu(base[j].add(quad * 64)) };
                let pi = S::and_or(v, low, qsel);
                let ni = S::and_or(S::srli_epi16(v, 4), low, qsel);
                let dl = S::sub_epi8(S::permutexvar_epi8(pi, tl), S::permutexvar_epi8(ni, tl));
                let dh = S::sub_epi8(S::permutexvar_epi8(pi, th), S::permutexvar_epi8(ni, th));
                lo[j] = S::dpbusd(lo[j], ones, dl);
                hi[j] = S::dpbusd(hi[j], sixteen, dh);
            }
        }
        for j in 0..nb {
            let sums = S::to_i32x16(S::add_epi32(lo[j], hi[j]));
            for (i, &v) in sums.iter().enumerate() {
                let r = (b + j) * 16 + i;
                if rows.contains(&r) {
                    out[r - rows.start] = v;
                }
            }
        }
        b += nb;
    }
}

// ---------------------------------------------------------------------------------------------
// batched inner product (kernels/gemm.rs) on zmm registers

/// `c[r][pi][j]` for `r < 32` rows of `codes` (u8, `stride` apart) against panels `b0`, `b1`:
/// eight rows × two panels at a time in sixteen accumulators (lane = token); per column group,
/// two 64-byte panel loads, eight broadcast code dwords, sixteen `vpdpbusd`.
#[inline(always)]
pub fn gemm_block<S: Simd512>(
    codes: &[u8],
    stride: usize,
    b0: &[i8],
    b1: &[i8],
    c: &mut [i32; MR * PANEL * 2],
) {
    assert!(codes.len() >= MR * stride && b0.len() >= PANEL * stride && b1.len() >= PANEL * stride);
    let groups = stride / 4;
    let (a, p0, p1) = (
        codes.as_ptr(),
        b0.as_ptr() as *const u8,
        b1.as_ptr() as *const u8,
    );
    for r8 in (0..MR).step_by(8) {
        let mut acc = [[S::zero(); 2]; 8];
        for g in 0..groups {
            // SAFETY: 64·g + 64 ≤ 16·stride = panel length (asserted).
            let (v0, v1) = unsafe { (S::loadu(p0.add(64 * g)), S::loadu(p1.add(64 * g))) };
            for i in 0..8 {
                // SAFETY: row r8 + i < 32, column 4g + 4 ≤ stride: within `codes` (asserted).
                let w = unsafe { S::bcast4(a.add((r8 + i) * stride + 4 * g)) };
                acc[i][0] = S::dpbusd(acc[i][0], w, v0);
                acc[i][1] = S::dpbusd(acc[i][1], w, v1);
            }
        }
        for i in 0..8 {
            for pi in 0..2 {
                let v = S::to_i32x16(acc[i][pi]);
                let dst = (r8 + i) * 2 * PANEL + pi * PANEL;
                c[dst..dst + PANEL].copy_from_slice(&v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tile decoders: weight rows → codes t + 1 (u8), for the batched inner product

/// Codes of rotor rows `rows` into `dst` (`stride` bytes a row): two masked byte moves per
/// 64 weights (`1`, then `2` where plane A, then `0` where plane B — right for P/N and for
/// M/S alike, since S ⊂ M).
#[inline(always)]
pub fn rotor_decode<S: Simd512>(w: &RotorView, rows: Range<usize>, dst: &mut [u8], stride: usize) {
    let wpr = w.wpr;
    assert!(stride >= 64 * wpr && dst.len() >= rows.len() * stride);
    assert!(rows.end <= w.rows && w.words.len() >= w.rows * 2 * wpr);
    let (one, two, zero) = (S::set1_epi8(1), S::set1_epi8(2), S::zero());
    for (i, r) in rows.enumerate() {
        let row = &w.words[r * 2 * wpr..(r + 1) * 2 * wpr];
        let d = &mut dst[i * stride..(i + 1) * stride];
        for k in 0..wpr {
            let (ia, ib) = w.plane_idx::<{ usize::MAX }>(k);
            let v = S::mask_mov_epi8(S::mask_mov_epi8(one, row[ia], two), row[ib], zero);
            // SAFETY: 64·k + 64 ≤ 64·wpr ≤ stride = d.len().
            unsafe { S::storeu(d.as_mut_ptr().add(64 * k), v) };
        }
        d[64 * wpr..].fill(1);
    }
}

/// Codes of output rows `g·rows/4 + units` of the packed layout: `(byte >> 2g) & 3`, one
/// shift and one and per 64 weights.
#[inline(always)]
pub fn packed_decode<S: Simd512>(
    w: &PackedView,
    g: usize,
    units: Range<usize>,
    dst: &mut [u8],
    stride: usize,
) {
    let cols = w.cols;
    let full = cols / 64 * 64;
    assert!(stride >= cols && dst.len() >= units.len() * stride && g < 4);
    let m3 = S::set1_epi8(3);
    for (i, u) in units.enumerate() {
        let src = &w.data[u * cols..(u + 1) * cols];
        let d = &mut dst[i * stride..(i + 1) * stride];
        for c in (0..full).step_by(64) {
            // SAFETY: c + 64 ≤ full ≤ cols = src.len() ≤ d.len().
            unsafe {
                let v = S::loadu(src.as_ptr().add(c));
                let v = if g == 0 {
                    v
                } else {
                    S::srli_epi16(v, 2 * g as u32)
                };
                S::storeu(d.as_mut_ptr().add(c), S::and(v, m3));
            }
        }
        for c in full..cols {
            d[c] = (src[c] >> (2 * g)) & 3;
        }
        d[cols..].fill(1);
    }
}

/// Codes of `rotor-tl` rows `rows` into `dst` (`stride` bytes a row). Per 64-byte load
/// (16 rows × one quad of 16 columns): for each group of four rows, one `vpermb` spreads each
/// row's four nibble bytes over its sixteen columns, two `vptestmb` pick each column's P and N
/// bit, two masked moves make the codes, and four 16-byte stores (`vextracti32x4`) put each
/// row's 16 bytes in place. (Four 64-byte masked stores, each enabling one row's 16 bytes at an
/// offset address, measured twice as slow: 0.37 against 0.19 cycles per weight.)
#[inline(always)]
pub fn tl_decode<S: Simd512>(w: &TlView, rows: Range<usize>, dst: &mut [u8], stride: usize) {
    let bb = w.block_bytes();
    let quads = 4 * w.words;
    assert!(stride >= 16 * quads && dst.len() >= rows.len() * stride);
    assert!(rows.end <= w.rows && w.data.len() >= w.rows.div_ceil(16) * bb);
    let vec = |f: &dyn Fn(usize) -> u8| {
        let v: [u8; 64] = std::array::from_fn(f);
        // SAFETY: 64 readable bytes.
        unsafe { S::loadu(v.as_ptr()) }
    };
    // Output byte 16·r + c (row r of a group of four, column c) reads input byte 4·(g4 + r) + c/4.
    let spread: [S::V; 4] =
        std::array::from_fn(|g| vec(&|e| (4 * (4 * g + e / 16) + (e % 16) / 4) as u8));
    let bit_p = vec(&|e| 1 << (e % 4));
    let bit_n = vec(&|e| 16 << (e % 4));
    let (one, two, zero) = (S::set1_epi8(1), S::set1_epi8(2), S::zero());
    let d = dst.as_mut_ptr();
    for b in rows.start / 16..rows.end.div_ceil(16) {
        let block = &w.data[b * bb..(b + 1) * bb];
        for quad in 0..quads {
            // SAFETY: quad·64 + 64 ≤ bb = block.len().
            let v = unsafe { S::loadu(block.as_ptr().add(quad * 64)) };
            for (g, sp) in spread.iter().enumerate() {
                let r0 = 16 * b + 4 * g; // first row of the group
                if r0 + 4 <= rows.start || r0 >= rows.end {
                    continue;
                }
                let x = S::permutexvar_epi8(*sp, v);
                let codes = S::mask_mov_epi8(
                    S::mask_mov_epi8(one, S::test_epi8_mask(x, bit_p), two),
                    S::test_epi8_mask(x, bit_n),
                    zero,
                );
                // Row r0 + r, columns 16·quad .. +16 (inside `dst`: row < rows.end and
                // 16·quad + 16 ≤ stride, asserted); rows outside the range are skipped.
                let at = |r: usize| {
                    let row = r0 + r;
                    rows.contains(&row)
                        .then(|| d.wrapping_add((row - rows.start) * stride + 16 * quad))
                };
                // SAFETY (all four): 16 writable bytes at a pointer `at` returned.
                unsafe {
                    if let Some(p) = at(0) {
                        S::store_lane128::<0>(p, codes);
                    }
                    if let Some(p) = at(1) {
                        S::store_lane128::<1>(p, codes);
                    }
                    if let Some(p) = at(2) {
                        S::store_lane128::<2>(p, codes);
                    }
                    if let Some(p) = at(3) {
                        S::store_lane128::<3>(p, codes);
                    }
                }
            }
        }
    }
    for i in 0..rows.len() {
        dst[i * stride + 16 * quads..(i + 1) * stride].fill(1);
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
    /// The CPU must have AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn rotor_decode(w: &RotorView, rows: Range<usize>, dst: &mut [u8], stride: usize) {
        super::rotor_decode::<Native<true>>(w, rows, dst, stride)
    }

    /// # Safety
    /// The CPU must have AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn packed_decode(
        w: &PackedView,
        g: usize,
        units: Range<usize>,
        dst: &mut [u8],
        stride: usize,
    ) {
        super::packed_decode::<Native<true>>(w, g, units, dst, stride)
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm_block(
        codes: &[u8],
        stride: usize,
        b0: &[i8],
        b1: &[i8],
        c: &mut [i32; MR * PANEL * 2],
    ) {
        super::gemm_block::<Native<true>>(codes, stride, b0, b1, c)
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VBMI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub unsafe fn tl_decode(w: &TlView, rows: Range<usize>, dst: &mut [u8], stride: usize) {
        super::tl_decode::<Native<true>>(w, rows, dst, stride)
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW, VNNI and VBMI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
    pub unsafe fn tl_gemv(
        w: &TlView,
        x: &[i8],
        tables: &mut Vec<u8>,
        rows: Range<usize>,
        out: &mut [i32],
    ) {
        super::tl_gemv::<Native<true>>(w, x, tables, rows, out)
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn i2_gemv(w: &I2View, xp: &[i8], xsum: i32, rows: Range<usize>, out: &mut [i32]) {
        super::i2_gemv::<Native<true>>(w, xp, xsum, rows, out)
    }
}
