//! A 2-bit layout arranged for SIMD: bitnet.cpp's x86 `I2_S` byte order.
//!
//! Rows are stored one after another (row-major), each cut into blocks of 128 weights held in
//! 32 bytes. Weight `j` of a block (`0 ≤ j < 128`) lives in byte `j mod 32` at bit shift
//! `6 − 2·(j div 32)`, as the code `t + 1 ∈ {0, 1, 2}`:
//! ```text
//!   block = 32 bytes, byte m (0..32):
//!     bits  7 6    5 4     3 2     1 0
//!          w[m]  w[m+32] w[m+64] w[m+96]       (w = t + 1)
//! ```
//! So one 32-byte load, shifted by 6/4/2/0 and masked with `0x03`, gives the codes of four
//! consecutive 32-column groups, each lined up with a 32-byte activation load. A kernel adds
//! `code · x` with an unsigned-by-signed byte multiply and subtracts `Σ x` once per output.
//! Rows whose length is not a multiple of 128 are padded with zero weights (code 1).
//!
//! Source of the byte order: microsoft/BitNet, the I2_S x86 packing used by its GGUF converter
//! and its `ggml_vec_dot_i2_i8_s` AVX2 kernel (see notes in reports/README.md). The file
//! format adds one f32 scale after the packed data; here the scale lives in the model.

use std::ops::Range;

use super::{Acts, Ternary, TernaryLayout};
use crate::kernels::views::I2View;
use crate::kernels::{Kernel, KernelKind, gemm, scalar};
use crate::ternary::parallel;

pub(crate) const KERNELS: &[KernelKind] = &[
    KernelKind::Scalar,
    KernelKind::Avx2,
    KernelKind::Avx512Vnni,
    KernelKind::Amx,
];

/// Weights per block.
pub const BLOCK: usize = 128;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 32;
const _: () = assert!(BLOCK_BYTES * 4 == BLOCK);

#[derive(Clone, Debug)]
pub struct I2 {
    rows: usize,
    cols: usize,
    /// Bytes per row (a multiple of 32).
    row_bytes: usize,
    data: Vec<u8>,
}

impl I2 {
    fn empty(rows: usize, cols: usize) -> I2 {
        let row_bytes = cols.div_ceil(BLOCK) * BLOCK_BYTES;
        I2 {
            rows,
            cols,
            row_bytes,
            // Code 1 (= zero weight) in every pair: 0b01010101.
            data: vec![0x55; rows * row_bytes],
        }
    }

    pub fn from_dense(t: &Ternary) -> I2 {
        let mut m = I2::empty(t.rows(), t.cols());
        for r in 0..t.rows() {
            let rb = m.row_bytes;
            encode_row(t.row(r), &mut m.data[r * rb..(r + 1) * rb]);
        }
        m
    }

    /// Convert from the checkpoint's packed bytes, in parallel over packed rows.
    pub fn from_hf_packed(_k: Kernel, packed: &[u8], rows: usize, cols: usize) -> I2 {
        let mut m = I2::empty(rows, cols);
        let r4 = rows / 4;
        let rb = m.row_bytes;
        let groups: Vec<&mut [u8]> = m.data.chunks_mut(r4 * rb).collect();
        parallel::for_each_unit_chunk(groups, rb, r4, 16, |units, outs| {
            let mut codes = vec![0u8; cols];
            for (i, r) in units.clone().enumerate() {
                let src = &packed[r * cols..(r + 1) * cols];
                for j in 0..4 {
                    for (c, &b) in codes.iter_mut().zip(src) {
                        *c = (b >> (2 * j)) & 3;
                    }
                    encode_codes(&codes, &mut outs[j][i * rb..(i + 1) * rb]);
                }
            }
        });
        m
    }

    /// The kernels' view of this matrix.
    pub fn view(&self) -> I2View<'_> {
        I2View {
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
            row_bytes: self.row_bytes,
        }
    }
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }
    #[inline]
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

fn encode_row(t: &[i8], dst: &mut [u8]) {
    let codes: Vec<u8> = t.iter().map(|&v| (v + 1) as u8).collect();
    encode_codes(&codes, dst);
}

/// Place codes (`t + 1`) of one row into I2 blocks; `dst` is pre-filled or overwritten fully.
fn encode_codes(codes: &[u8], dst: &mut [u8]) {
    dst.fill(0x55);
    for (c, &code) in codes.iter().enumerate() {
        let (blk, j) = (c / BLOCK, c % BLOCK);
        let byte = blk * BLOCK_BYTES + j % 32;
        let shift = 6 - 2 * (j / 32);
        dst[byte] = (dst[byte] & !(3 << shift)) | (code << shift);
    }
}

/// Code (`t + 1`) of column `c` in an I2 row.
#[inline(always)]
pub fn code_at(row: &[u8], c: usize) -> u8 {
    let (blk, j) = (c / BLOCK, c % BLOCK);
    (row[blk * BLOCK_BYTES + j % 32] >> (6 - 2 * (j / 32))) & 3
}

impl TernaryLayout for I2 {
    fn name(&self) -> &'static str {
        "i2"
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn storage_bytes(&self) -> usize {
        self.data.len()
    }
    fn to_dense(&self) -> Ternary {
        Ternary::from_fn(self.rows, self.cols, |r, c| {
            code_at(self.row(r), c) as i8 - 1
        })
    }
    fn with_bit_flipped(&self, bit: u64) -> Box<dyn TernaryLayout> {
        let mut m = self.clone();
        m.data[(bit / 8) as usize] ^= 1 << (bit % 8);
        Box::new(m)
    }
    fn kernels(&self) -> &'static [KernelKind] {
        KERNELS
    }
    fn gemm_block(&self, k: Kernel, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::x86_64::{avx2, simd512::Emulated, vnni};
            if x.batch > 1 && gemm::has_tiles(k) {
                let s = units.start;
                let decode = |rr: Range<usize>, dst: &mut [u8]| {
                    self.decode_codes(s + rr.start..s + rr.end, dst, x.stride)
                };
                return gemm::gemm_codes(k, x, units.len(), &decode, out[0]);
            }
            if k.kind().has_vnni512() && x.batch == 1 {
                // The activation row in the order the codes come out of a 64-byte load, built
                // once per call (a few KiB against rows × cols weights).
                thread_local!(static PERM: std::cell::RefCell<Vec<i8>> = const { std::cell::RefCell::new(Vec::new()) });
                return PERM.with_borrow_mut(|xp| {
                    vnni::i2_permute_acts(x.row(0), self.row_bytes, xp);
                    match k.native_kind() {
                        // SAFETY: `k` proves AVX-512 F+BW+VNNI; the kernel bounds-checks.
                        Some(_) => unsafe {
                            vnni::native::i2_gemv(&self.view(), xp, x.sums[0], units, out[0])
                        },
                        None => {
                            vnni::i2_gemv::<Emulated>(&self.view(), xp, x.sums[0], units, out[0])
                        }
                    }
                });
            }
            if k.native_kind().is_some_and(|k| k.has_avx2()) {
                // SAFETY: `k` proves the CPU has AVX2; the kernel bounds-checks its slices.
                return unsafe { avx2::i2_gemm(&self.view(), x, units, out[0]) };
            }
        }
        scalar::i2_gemm(&self.view(), x, units, out[0])
    }
}

impl I2 {
    /// Codes `t + 1` of rows `rows` into `dst` (`stride` bytes a row) for the batched path.
    /// Per block, eight bytes at a time as one `u64`: a shift by `6 − 2g` and a mask of `0x03`
    /// in every byte gives eight codes of column group `g` (bits that cross from the
    /// neighbouring byte land above bit 1 and are masked off): about 0.4 integer operations per
    /// weight, where a byte-by-byte loop cost several.
    pub fn decode_codes(&self, rows: Range<usize>, dst: &mut [u8], stride: usize) {
        const M: u64 = 0x0303_0303_0303_0303;
        for (i, r) in rows.enumerate() {
            let d = &mut dst[i * stride..(i + 1) * stride];
            let mut done = 0;
            for (blk, bytes) in self.row(r).chunks_exact(BLOCK_BYTES).enumerate() {
                let base = blk * BLOCK;
                if base + BLOCK <= d.len() {
                    let words: [u64; 4] = std::array::from_fn(|k| {
                        u64::from_le_bytes(bytes[8 * k..8 * k + 8].try_into().expect("8 bytes"))
                    });
                    for g in 0..4 {
                        let sh = 6 - 2 * g as u32;
                        for (k, w) in words.iter().enumerate() {
                            let at = base + 32 * g + 8 * k;
                            d[at..at + 8].copy_from_slice(&((w >> sh) & M).to_le_bytes());
                        }
                    }
                    done = base + BLOCK;
                } else {
                    for (m, &byte) in bytes.iter().enumerate() {
                        for g in 0..4 {
                            let c = base + 32 * g + m;
                            if c < stride {
                                d[c] = (byte >> (6 - 2 * g)) & 3;
                            }
                        }
                    }
                    done = stride;
                }
            }
            d[done.min(stride)..].fill(1);
        }
    }
}
