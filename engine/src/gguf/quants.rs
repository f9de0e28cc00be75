//! Block formats of the ggml types rotor reads and writes, each with an encoder and a decoder.
//!
//! Ternary types ([`tq2_0`], [`tq1_0`], [`i2s`]) are handled as *codes* `c = t + 1 ∈ {0, 1, 2}`
//! so that encode → decode is exact and no float is involved; their scale is returned apart.
//! Float types ([`q8_0`], [`q6_k`], f16/bf16) convert to and from f32; quantizing them is lossy
//! (the error bounds are stated per type and tested in `tests/gguf.rs`).
//!
//! Every layout was written from the block definitions and reference functions in ggml, read at
//! Eddie-Wang1120/llama.cpp@406a5036 (`merge-dev`, the bitnet.cpp submodule fork; these functions
//! are the same upstream): `ggml/src/ggml-common.h` (structs, lines 186–327) and
//! `ggml/src/ggml-quants.c` (`quantize_row_q8_0_ref` 848, `dequantize_row_q8_0` 1616,
//! `quantize_row_q6_K_ref` 2907, `dequantize_row_q6_K` 2977, `quantize_row_tq1_0_ref` 3318,
//! `quantize_row_tq2_0_ref` 3384, `dequantize_row_tq1_0` 3443, `dequantize_row_tq2_0` 3482), and
//! for I2_S from microsoft/BitNet@16da220 `src/ggml-bitnet-mad.cpp` (`quantize_i2_s`, lines
//! 51–92) and `utils/convert-hf-to-gguf-bitnet.py` (`quantize_to_i2_s`, lines 666–721).
//! No code was copied; all multi-byte fields are little-endian.

use half::{bf16, f16};

/// f32 → IEEE half bits, round to nearest even (what `GGML_FP32_TO_FP16` does).
#[inline]
pub fn f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    bf16::from_bits(bits).to_f32()
}

#[inline]
fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

/// Little-endian F32/F16/BF16 elements to f32.
pub fn floats_to_f32(ty: super::GgmlType, bytes: &[u8], out: &mut [f32]) {
    use super::GgmlType as T;
    match ty {
        T::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        T::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        T::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        other => unreachable!("floats_to_f32 called with {other}"),
    }
}

/// `Q8_0`: 32 weights in 34 bytes, one f16 scale per block.
///
/// ```text
///   bytes 0..2   d       f16, = amax / 127
///   bytes 2..34  qs[32]  i8,  x[j] ≈ qs[j] · d
/// ```
/// The encoder is ggml's reference (`quantize_row_q8_0_ref`): `d = amax/127`, `qs = roundf(x·(1/d))`
/// with the reciprocal of the *unrounded* d and rounding half away from zero; then d is stored as
/// f16. Error bound per weight: `|x − x̂| ≤ d/2 + 127·|d − f16(d)| ≤ (0.5 + 127·2⁻¹¹)·d ≈ 0.562·d`.
pub mod q8_0 {
    use super::{f16_bits, f16_to_f32, u16_at};

    pub const BLOCK: usize = 32;
    pub const BYTES: usize = 34;

    /// Quantize `x` (a multiple of 32 long) and append the blocks to `out`.
    pub fn quantize(x: &[f32], out: &mut Vec<u8>) {
        assert!(
            x.len().is_multiple_of(BLOCK),
            "Q8_0 needs whole blocks of 32"
        );
        for blk in x.chunks_exact(BLOCK) {
            let d = crate::quant::absmax(blk) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&f16_bits(d).to_le_bytes());
            for &v in blk {
                out.push((v * id).round().clamp(-127.0, 127.0) as i8 as u8);
            }
        }
    }

    /// Decode whole blocks into `out` (`out.len() == bytes.len() / 34 · 32`).
    pub fn dequantize(bytes: &[u8], out: &mut [f32]) {
        for (b, o) in bytes.chunks_exact(BYTES).zip(out.chunks_exact_mut(BLOCK)) {
            let d = f16_to_f32(u16_at(b, 0));
            for (y, &q) in o.iter_mut().zip(&b[2..BYTES]) {
                *y = q as i8 as f32 * d;
            }
        }
    }
}

/// `Q6_K`: 256 weights in 210 bytes; 16 sub-blocks of 16 with an i8 scale each, one f16 `d`.
///
/// ```text
///   bytes   0..128  ql[128]     low 4 bits of the 6-bit codes L = q + 32 ∈ [0, 64)
///   bytes 128..192  qh[64]      high 2 bits
///   bytes 192..208  scales[16]  i8, one per 16 consecutive weights
///   bytes 208..210  d           f16
///   weight e (0..256) = d · scales[e / 16] · (L[e] − 32)
///
///   within each half h (weights 128h .. 128h+127; ql += 64h, qh += 32h), for l in 0..32:
///     ql[l]      = L[l]      & 0xF  |  (L[l+64] & 0xF) << 4
///     ql[l + 32] = L[l + 32] & 0xF  |  (L[l+96] & 0xF) << 4
///     qh[l]      = L[l] >> 4 | (L[l+32] >> 4) << 2 | (L[l+64] >> 4) << 4 | (L[l+96] >> 4) << 6
/// ```
/// The decoder follows `dequantize_row_q6_K`; the encoder is rotor's implementation of the
/// reference algorithm of `quantize_row_q6_K_ref` (see [`q6_k::quantize`]). Error per weight:
/// `|d·scales[j]|/2` for a weight inside the code range, `|x| − 31·|d·scales[j]|` for a clamped
/// one. A sub-block's step is `d·scales[j]` with `scales[j]` an integer, so a sub-block much
/// smaller than the block's largest gets a coarser step than its ideal `amax_j/32` (on normal
/// data, sub-blocks with at least a quarter of the block's amax measured ≤ 1.08× in
/// `tests/gguf.rs`; relative RMS error 1.7%).
pub mod q6_k {
    use super::{f16_bits, f16_to_f32, u16_at};

    pub const BLOCK: usize = 256;
    pub const BYTES: usize = 210;

    /// ggml's "all zero" threshold (`GROUP_MAX_EPS`).
    const GROUP_MAX_EPS: f32 = 1e-15;

    /// `nearest_int`: round half to even (ggml's magic-number trick under the default FP mode).
    #[inline]
    fn nearest_int(x: f32) -> i32 {
        x.round_ties_even() as i32
    }

    /// One sub-block's scale by the reference search (`make_qx_quants(16, 32, x, L, 1, NULL)`):
    /// map the signed extreme `m` to −32 (`iscale = −32/m`), then try `iscale = −(32 + 0.1·k)/m`
    /// for k = −9..9 and keep the one that maximizes `(Σ w·x·l)² / Σ w·l²` with weights
    /// `w = x²`; the scale is the least-squares `Σ w·x·l / Σ w·l²`. Codes go to `l` (+32).
    fn sub_scale(x: &[f32], l_out: &mut [u8]) -> f32 {
        const NMAX: f32 = 32.0;
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax < GROUP_MAX_EPS {
            l_out.fill(0);
            return 0.0;
        }
        let sums = |iscale: f32| -> (f32, f32) {
            let (mut sumlx, mut suml2) = (0f32, 0f32);
            for &v in x {
                let l = nearest_int(iscale * v).clamp(-32, 31) as f32;
                let w = v * v;
                sumlx += w * v * l;
                suml2 += w * l * l;
            }
            (sumlx, suml2)
        };
        let fill = |iscale: f32, l_out: &mut [u8]| {
            for (o, &v) in l_out.iter_mut().zip(x) {
                *o = (nearest_int(iscale * v).clamp(-32, 31) + 32) as u8;
            }
        };
        let iscale = -NMAX / max;
        fill(iscale, l_out);
        let (sumlx, suml2) = sums(iscale);
        let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
        let mut best = scale * sumlx;
        for k in -9..=9 {
            if k == 0 {
                continue;
            }
            let iscale = -(NMAX + 0.1 * k as f32) / max;
            let (sumlx, suml2) = sums(iscale);
            if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
                fill(iscale, l_out);
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        scale
    }

    /// Quantize `x` (a multiple of 256 long) and append the blocks to `out`, by the reference
    /// algorithm of `quantize_row_q6_K_ref`: a searched scale per 16-weight sub-block
    /// ([`sub_scale`]); the sub-block scale of largest magnitude maps to −128
    /// (`iscale = −128/max_scale`, `d = f16(1/iscale)`, `scales[j] = min(127, nearest(iscale·s_j))`);
    /// then every weight is re-coded against the stored `d·scales[j]`:
    /// `L = clamp(nearest(x / (d·scales[j])), −32, 31) + 32`. An all-zero block is all zero bytes.
    pub fn quantize(x: &[f32], out: &mut Vec<u8>) {
        assert!(
            x.len().is_multiple_of(BLOCK),
            "Q6_K needs whole blocks of 256"
        );
        for blk in x.chunks_exact(BLOCK) {
            let mut codes = [0u8; BLOCK];
            let mut sub = [0f32; 16];
            for j in 0..16 {
                sub[j] = sub_scale(&blk[16 * j..16 * j + 16], &mut codes[16 * j..16 * j + 16]);
            }
            let (mut max_scale, mut max_abs) = (0f32, 0f32);
            for &s in &sub {
                if s.abs() > max_abs {
                    max_abs = s.abs();
                    max_scale = s;
                }
            }
            let mut b = [0u8; BYTES];
            if max_abs < GROUP_MAX_EPS {
                out.extend_from_slice(&b);
                continue;
            }
            let iscale = -128.0 / max_scale;
            let dbits = f16_bits(1.0 / iscale);
            let d16 = f16_to_f32(dbits);
            let mut scales = [0i8; 16];
            for j in 0..16 {
                scales[j] = nearest_int(iscale * sub[j]).min(127) as i8;
                let d = d16 * scales[j] as f32;
                if d == 0.0 {
                    continue;
                }
                for (c, &v) in codes[16 * j..16 * j + 16]
                    .iter_mut()
                    .zip(&blk[16 * j..16 * j + 16])
                {
                    *c = (nearest_int(v / d).clamp(-32, 31) + 32) as u8;
                }
            }
            for h in 0..2 {
                let (ql, qh, l0) = (64 * h, 128 + 32 * h, 128 * h);
                for l in 0..32 {
                    let c = |k: usize| codes[l0 + l + 32 * k];
                    b[ql + l] = (c(0) & 0xF) | ((c(2) & 0xF) << 4);
                    b[ql + l + 32] = (c(1) & 0xF) | ((c(3) & 0xF) << 4);
                    b[qh + l] =
                        (c(0) >> 4) | ((c(1) >> 4) << 2) | ((c(2) >> 4) << 4) | ((c(3) >> 4) << 6);
                }
            }
            for j in 0..16 {
                b[192 + j] = scales[j] as u8;
            }
            b[208..210].copy_from_slice(&dbits.to_le_bytes());
            out.extend_from_slice(&b);
        }
    }

    /// Decode whole blocks into `out` (`out.len() == bytes.len() / 210 · 256`).
    pub fn dequantize(bytes: &[u8], out: &mut [f32]) {
        for (b, o) in bytes.chunks_exact(BYTES).zip(out.chunks_exact_mut(BLOCK)) {
            let d = f16_to_f32(u16_at(b, 208));
            for h in 0..2 {
                let (ql, qh, l0) = (64 * h, 128 + 32 * h, 128 * h);
                for l in 0..32 {
                    let lo = [
                        b[ql + l] & 0xF,
                        b[ql + l + 32] & 0xF,
                        b[ql + l] >> 4,
                        b[ql + l + 32] >> 4,
                    ];
                    for (k, &lo) in lo.iter().enumerate() {
                        let e = l0 + l + 32 * k;
                        let code = lo | (((b[qh + l] >> (2 * k)) & 3) << 4);
                        let sc = b[192 + e / 16] as i8 as f32;
                        o[e] = d * sc * (code as i32 - 32) as f32;
                    }
                }
            }
        }
    }
}

/// `TQ2_0`: 256 ternary weights in 66 bytes, 2 bits each, one f16 scale `d`.
///
/// ```text
///   bytes 0..64   qs[64]   two halves of 32 bytes; weight 128h + 32n + m (h<2, n<4, m<32)
///                          is the code c = t + 1 in bits 2n+1:2n of qs[32h + m]
///   bytes 64..66  d        f16; weight = (c − 1) · d
///
///   qs[32h + m]:  bits 7 6        5 4         3 2         1 0
///                    c[128h+96+m] c[128h+64+m] c[128h+32+m] c[128h+m]
/// ```
/// Group 0 sits in the low bits — the reverse of I2_S. llama.cpp's quantizer sets
/// `d = f16(amax of the block)`; for BitNet weights `W = scale · t` that is `f16(scale)` in every
/// block that has a nonzero weight, so rotor writes `d = f16(weight_scale)` in every block.
pub mod tq2_0 {
    use super::u16_at;

    pub const BLOCK: usize = 256;
    pub const BYTES: usize = 66;

    /// Encode one block of 256 codes (each 0, 1 or 2) with scale bits `d` into `out[..66]`.
    pub fn encode_block(codes: &[u8], d: u16, out: &mut [u8]) {
        debug_assert_eq!(codes.len(), BLOCK);
        for h in 0..2 {
            for m in 0..32 {
                let mut q = 0u8;
                for n in 0..4 {
                    q |= (codes[128 * h + 32 * n + m] & 3) << (2 * n);
                }
                out[32 * h + m] = q;
            }
        }
        out[64..66].copy_from_slice(&d.to_le_bytes());
    }

    /// Decode one block into 256 codes; returns the scale bits `d`. A code may be 3 in a
    /// corrupt file: the caller checks.
    pub fn decode_block(b: &[u8], codes: &mut [u8]) -> u16 {
        for h in 0..2 {
            for m in 0..32 {
                let q = b[32 * h + m];
                for n in 0..4 {
                    codes[128 * h + 32 * n + m] = (q >> (2 * n)) & 3;
                }
            }
        }
        u16_at(b, 64)
    }
}

/// `TQ1_0`: 256 ternary weights in 54 bytes, base 3 (five trits per byte), one f16 scale `d`.
///
/// ```text
///   bytes  0..32  qs[0..32)   byte m holds the codes of weights m + 32n,        n = 0..5
///   bytes 32..48  qs[32..48)  byte m holds the codes of weights 160 + m + 16n,  n = 0..5
///   bytes 48..52  qh[4]       byte j holds the codes of weights 240 + j + 4n,   n = 0..4
///   bytes 52..54  d           f16; weight = (c − 1) · d
///
///   a byte packs codes c0..c4 (c0 = n 0, most significant):
///     v    = ((((c0·3 + c1)·3 + c2)·3 + c3)·3 + c4)          ∈ [0, 243)
///     byte = ⌈v · 256 / 243⌉ = (v·256 + 242) / 243            (qh: 4 codes, then v·3, so c0 is
///                                                              still the top trit)
///   decode trit n:  q = (byte · 3ⁿ) mod 256;  c = (q · 3) >> 8
/// ```
/// The fixed-point form makes each trit a multiply and a shift; the ceiling keeps `q·3 >> 8` from
/// falling one short.
pub mod tq1_0 {
    use super::u16_at;

    pub const BLOCK: usize = 256;
    pub const BYTES: usize = 54;
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];

    pub(super) fn pack(cs: impl Iterator<Item = u8>) -> u8 {
        let v = cs.fold(0u16, |v, c| v * 3 + c as u16);
        (v * 256).div_ceil(243) as u8
    }

    #[inline]
    pub(super) fn trit(byte: u8, n: usize) -> u8 {
        let q = byte.wrapping_mul(POW3[n]);
        ((q as u16 * 3) >> 8) as u8
    }

    /// Encode one block of 256 codes (each 0, 1 or 2) with scale bits `d` into `out[..54]`.
    pub fn encode_block(codes: &[u8], d: u16, out: &mut [u8]) {
        debug_assert_eq!(codes.len(), BLOCK);
        for m in 0..32 {
            out[m] = pack((0..5).map(|n| codes[m + 32 * n]));
        }
        for m in 0..16 {
            out[32 + m] = pack((0..5).map(|n| codes[160 + m + 16 * n]));
        }
        for j in 0..4 {
            // Four trits, then one more (zero) in the lowest place.
            out[48 + j] = pack((0..4).map(|n| codes[240 + j + 4 * n]).chain([0]));
        }
        out[52..54].copy_from_slice(&d.to_le_bytes());
    }

    /// Decode one block into 256 codes (always 0..=2); returns the scale bits `d`.
    pub fn decode_block(b: &[u8], codes: &mut [u8]) -> u16 {
        for n in 0..5 {
            for m in 0..32 {
                codes[m + 32 * n] = trit(b[m], n);
            }
            for m in 0..16 {
                codes[160 + m + 16 * n] = trit(b[32 + m], n);
            }
        }
        for n in 0..4 {
            for j in 0..4 {
                codes[240 + j + 4 * n] = trit(b[48 + j], n);
            }
        }
        u16_at(b, 52)
    }
}

/// `I2_S` (bitnet.cpp, x86 layout): the whole tensor's codes in 128-weight / 32-byte blocks,
/// then a 32-byte tail whose first 4 bytes are the tensor's f32 scale.
///
/// ```text
///   tensor of n = ne0·ne1 weights, flattened row-major (ne0 fastest), cut into blocks of 128:
///   block b = bytes 32b .. 32b+32; weight j of the block (j < 128) is in byte j mod 32 at bits
///   (7 − 2·(j div 32)) : (6 − 2·(j div 32)), as the code c = t + 1 (−1 → 0, 0 → 1, +1 → 2):
///
///     byte m:  bits 7 6      5 4        3 2        1 0
///                 c[m]     c[m+32]    c[m+64]    c[m+96]
///
///   bytes n/4 .. n/4+4     scale   f32, weight = (c − 1) · scale
///   bytes n/4+4 .. n/4+32  zero
///   total n/4 + 32 bytes   (= ggml_nbytes for type 36 in bitnet.cpp's fork)
/// ```
/// Sources: `quantize_i2_s` (microsoft/BitNet@16da220 `src/ggml-bitnet-mad.cpp` lines 51–92,
/// the `ACT_PARALLEL` path that `include/gemm-config.h` selects; unchanged since 2024) — it loops
/// `n / 128` blocks with `group_idx = j / 32`, `group_pos = j % 32`, shift `6 − 2·group_idx`,
/// writes the scale at byte `n / 4` and returns `n/4 + 32` ("32B for alignment");
/// `quantize_to_i2_s` in `utils/convert-hf-to-gguf-bitnet.py` lines 666–721 packs
/// `q.reshape(n/128, 4, 32)` as `q0<<6 | q1<<4 | q2<<2 | q3` and puts the scale (the checkpoint's
/// `weight_scale`, as f32) in the first 4 tail bytes. bitnet.cpp's C quantizer stores `max|w|`
/// of an already-ternarized tensor, which is the same multiplier.
///
/// **The same type id has two more byte orders** ([`Order`]; FORMAT.md §8.3): ARM builds of
/// bitnet.cpp (`QK_I2_S = 64`) write 64-weight / 16-byte blocks, and x86 builds without
/// `ACT_PARALLEL` write four rows interleaved per byte. Nothing in a file says which order it
/// holds; [`Order::X86`] (this diagram) is the default, the others are chosen explicitly.
///
/// A block never straddles rows when `ne0` is a multiple of 128 (every 2B-4T matrix): then row r
/// starts at byte r·ne0/4 and the layout is per-row, as [`crate::ternary::I2`] stores it. The
/// decoder accepts any n that is a multiple of 128; the encoder asks for `ne0 % 128 == 0`
/// because bitnet.cpp's kernel walks each row in whole blocks.
pub mod i2s {
    pub const BLOCK: usize = 128;
    pub const BLOCK_BYTES: usize = 32;
    pub const TAIL: usize = 32;

    /// Bytes of an I2_S tensor of `n` weights.
    pub fn nbytes(n: usize) -> usize {
        n / 4 + TAIL
    }

    /// Encode `codes` (n = a multiple of 128, each 0..=2) and the scale into `out`
    /// (`out.len() == n/4 + 32`).
    pub fn encode(codes: &[u8], scale: f32, out: &mut [u8]) {
        let n = codes.len();
        assert!(n.is_multiple_of(BLOCK), "I2_S needs whole blocks of 128");
        assert_eq!(out.len(), nbytes(n));
        out.fill(0);
        for (blk, dst) in codes
            .chunks_exact(BLOCK)
            .zip(out.chunks_exact_mut(BLOCK_BYTES))
        {
            encode_block(blk, dst);
        }
        out[n / 4..n / 4 + 4].copy_from_slice(&scale.to_le_bytes());
    }

    /// One 128-code block into 32 bytes.
    pub fn encode_block(codes: &[u8], dst: &mut [u8]) {
        for m in 0..32 {
            dst[m] = (codes[m] & 3) << 6
                | (codes[m + 32] & 3) << 4
                | (codes[m + 64] & 3) << 2
                | (codes[m + 96] & 3);
        }
    }

    /// One 32-byte block into 128 codes (3 is possible in a corrupt file: the caller checks).
    pub fn decode_block(src: &[u8], codes: &mut [u8]) {
        for m in 0..32 {
            let b = src[m];
            codes[m] = b >> 6;
            codes[m + 32] = (b >> 4) & 3;
            codes[m + 64] = (b >> 2) & 3;
            codes[m + 96] = b & 3;
        }
    }

    /// The scale stored after `n` packed weights.
    pub fn scale(bytes: &[u8], n: usize) -> f32 {
        let s = &bytes[n / 4..n / 4 + 4];
        f32::from_le_bytes([s[0], s[1], s[2], s[3]])
    }

    /// Which of bitnet.cpp's three I2_S byte orders a tensor is in (FORMAT.md §8.3). All three
    /// hold the codes `c = t + 1` two bits each in `n/4` bytes, then the f32 scale, then padding
    /// to `n/4 + 32`; they differ in which weight sits in which bit pair.
    ///
    /// ```text
    ///   X86        128-weight blocks of 32 bytes over the flattened tensor (diagram above):
    ///              weight j of a block in byte j mod 32, bits 7−2(j div 32) : 6−2(j div 32)
    ///   Arm        64-weight blocks of 16 bytes over the flattened tensor:
    ///              weight j of a block in byte j mod 16, bits 7−2(j div 16) : 6−2(j div 16)
    ///                byte m:  bits 7 6 | 5 4     | 3 2     | 1 0
    ///                              c[m] | c[m+16] | c[m+32] | c[m+48]
    ///   OneByFour  rows in groups of four, one byte per column:
    ///              byte g·cols + col = c[4g][col]<<6 | c[4g+1][col]<<4 | c[4g+2][col]<<2 | c[4g+3][col]
    /// ```
    /// Sources (read, not copied): microsoft/BitNet `src/ggml-bitnet-mad.cpp` `quantize_i2_s`
    /// — its `__ARM_NEON` branch (`QK_I2_S 64`, `group_idx = j / 16`, `i2_weight[i * 16 +
    /// group_pos]`) and its x86 branch without `ACT_PARALLEL` ("quantize_i2_s_1x4", which asserts
    /// `nrow % 4 == 0` and writes `out[rg * n_per_row + col]`); `include/gemm-config.h` defines
    /// `ACT_PARALLEL`, so default x86 builds write [`Order::X86`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub enum Order {
        #[default]
        X86,
        Arm,
        OneByFour,
    }

    /// Weights per block of the ARM order.
    pub const ARM_BLOCK: usize = 64;
    /// Bytes per block of the ARM order.
    pub const ARM_BLOCK_BYTES: usize = 16;

    impl Order {
        pub const ALL: [Order; 3] = [Order::X86, Order::Arm, Order::OneByFour];

        /// The name used on the command line (`--i2s-order`).
        pub fn name(self) -> &'static str {
            match self {
                Order::X86 => "x86",
                Order::Arm => "arm",
                Order::OneByFour => "1x4",
            }
        }

        pub fn parse(s: &str) -> Result<Order, String> {
            match s.trim().to_ascii_lowercase().as_str() {
                "x86" => Ok(Order::X86),
                "arm" => Ok(Order::Arm),
                "1x4" => Ok(Order::OneByFour),
                other => Err(format!(
                    "--i2s-order `{other}`: expected x86 (bitnet.cpp's default x86 build), arm (its ARM/NEON build) or 1x4 (x86 built without ACT_PARALLEL)"
                )),
            }
        }

        /// Why a `rows × cols` tensor cannot be held in this order, if it cannot.
        pub fn check(self, rows: usize, cols: usize) -> Result<(), String> {
            let n = rows.checked_mul(cols).ok_or("the weight count overflows")?;
            match self {
                Order::X86 if !n.is_multiple_of(BLOCK) => Err(format!(
                    "I2_S in the x86 order packs whole blocks of {BLOCK} weights, but the tensor has {n}"
                )),
                Order::Arm if !n.is_multiple_of(ARM_BLOCK) => Err(format!(
                    "I2_S in the arm order packs whole blocks of {ARM_BLOCK} weights, but the tensor has {n}"
                )),
                Order::OneByFour if !rows.is_multiple_of(4) => Err(format!(
                    "I2_S in the 1x4 order interleaves groups of 4 rows, but the tensor has {rows} rows"
                )),
                _ => Ok(()),
            }
        }
    }

    /// Encode a `rows × cols` tensor of codes (row-major, each 0..=2) and its scale in `order`
    /// into `out` (`out.len() == rows·cols/4 + 32`). Panics if [`Order::check`] fails.
    pub fn encode_ordered(
        codes: &[u8],
        rows: usize,
        cols: usize,
        scale: f32,
        order: Order,
        out: &mut [u8],
    ) {
        let n = codes.len();
        assert_eq!(n, rows * cols);
        if let Err(e) = order.check(rows, cols) {
            panic!("encode_ordered: {e}");
        }
        assert_eq!(out.len(), nbytes(n));
        out.fill(0);
        match order {
            Order::X86 => {
                for (blk, dst) in codes
                    .chunks_exact(BLOCK)
                    .zip(out.chunks_exact_mut(BLOCK_BYTES))
                {
                    encode_block(blk, dst);
                }
            }
            Order::Arm => {
                for (blk, dst) in codes
                    .chunks_exact(ARM_BLOCK)
                    .zip(out.chunks_exact_mut(ARM_BLOCK_BYTES))
                {
                    for m in 0..ARM_BLOCK_BYTES {
                        dst[m] = (blk[m] & 3) << 6
                            | (blk[m + 16] & 3) << 4
                            | (blk[m + 32] & 3) << 2
                            | (blk[m + 48] & 3);
                    }
                }
            }
            Order::OneByFour => {
                for g in 0..rows / 4 {
                    let r = |k: usize| &codes[(4 * g + k) * cols..(4 * g + k + 1) * cols];
                    let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                    for (c, o) in out[g * cols..(g + 1) * cols].iter_mut().enumerate() {
                        *o = (r0[c] & 3) << 6 | (r1[c] & 3) << 4 | (r2[c] & 3) << 2 | (r3[c] & 3);
                    }
                }
            }
        }
        out[n / 4..n / 4 + 4].copy_from_slice(&scale.to_le_bytes());
    }

    /// Decode a `rows × cols` tensor stored in `order` into row-major codes (a code may be 3 in
    /// a corrupt file: the caller checks). `bytes` holds at least `rows·cols/4` bytes; the
    /// caller has checked the shape with [`Order::check`].
    pub fn decode_ordered(bytes: &[u8], rows: usize, cols: usize, order: Order, codes: &mut [u8]) {
        let n = rows * cols;
        debug_assert!(order.check(rows, cols).is_ok() && codes.len() == n);
        if n == 0 {
            return;
        }
        match order {
            Order::X86 => {
                for (b, c) in bytes
                    .chunks_exact(BLOCK_BYTES)
                    .zip(codes.chunks_exact_mut(BLOCK))
                {
                    decode_block(b, c);
                }
            }
            Order::Arm => {
                for (b, c) in bytes
                    .chunks_exact(ARM_BLOCK_BYTES)
                    .zip(codes.chunks_exact_mut(ARM_BLOCK))
                {
                    for m in 0..ARM_BLOCK_BYTES {
                        let x = b[m];
                        c[m] = x >> 6;
                        c[m + 16] = (x >> 4) & 3;
                        c[m + 32] = (x >> 2) & 3;
                        c[m + 48] = x & 3;
                    }
                }
            }
            Order::OneByFour => {
                for g in 0..rows / 4 {
                    let src = &bytes[g * cols..(g + 1) * cols];
                    for (k, row) in codes[4 * g * cols..(4 * g + 4) * cols]
                        .chunks_exact_mut(cols)
                        .enumerate()
                    {
                        let shift = 6 - 2 * k;
                        for (o, &x) in row.iter_mut().zip(src) {
                            *o = (x >> shift) & 3;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tq1_every_five_trit_group_round_trips() {
        for v in 0..243u16 {
            let cs: Vec<u8> = (0..5)
                .rev()
                .map(|k| ((v / 3u16.pow(k)) % 3) as u8)
                .collect();
            let b = tq1_0::pack(cs.iter().copied());
            for (n, &c) in cs.iter().enumerate() {
                assert_eq!(tq1_0::trit(b, n), c, "v={v} n={n}");
            }
        }
    }
}
