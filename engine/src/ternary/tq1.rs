//! A base-3 layout at 1.6 bits per weight: five trits per byte (the TQ1_0 / TL2 idea).
//!
//! Rows are stored one after another, each cut into blocks of 160 weights held in 32 bytes.
//! Byte `m` of a block holds the five weights at columns `m, m+32, m+64, m+96, m+128` as the
//! base-3 number `v = Σ_{i<5} d_i · 3^(4−i)` (digit `d_i = t + 1`, `i = 0` most significant),
//! stored as the fixed-point fraction `byte = ⌈v · 256 / 243⌉`:
//! ```text
//!   block = 32 bytes, byte m (0..32) = ⌈(81·d(m) + 27·d(m+32) + 9·d(m+64) + 3·d(m+96) + d(m+128)) · 256/243⌉
//!   decode digit i:  q = (byte · 3^i) mod 256;   d_i = (q · 3) >> 8
//! ```
//! Multiplying by `3^i` modulo 256 shifts the base-3 fraction left by `i` digits, and `(q·3)>>8`
//! reads the top digit; rounding up makes this exact for all 243 values (tested exhaustively).
//! The decode is four byte-multiplies per digit: cheaper than a table, dearer than a 2-bit
//! shift — the size/speed trade-off this layout exists to measure. Padding weights are zero.

use std::ops::Range;

use super::{Acts, Ternary, TernaryLayout};
use crate::kernels::{Kernel, KernelKind, gemm, scalar};
use crate::ternary::parallel;

pub(crate) const KERNELS: &[KernelKind] = &[
    KernelKind::Scalar,
    KernelKind::Avx2,
    KernelKind::Avx512Vnni,
    KernelKind::Amx,
];

pub use crate::kernels::views::tq1code::{BLOCK, BLOCK_BYTES, POW3, decode_digit, encode5};

#[derive(Clone, Debug)]
pub struct Tq1 {
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl Tq1 {
    fn empty(rows: usize, cols: usize) -> Tq1 {
        let row_bytes = cols.div_ceil(BLOCK) * BLOCK_BYTES;
        Tq1 {
            rows,
            cols,
            row_bytes,
            data: vec![encode5([1; 5]); rows * row_bytes],
        }
    }

    pub fn from_dense(t: &Ternary) -> Tq1 {
        let mut m = Tq1::empty(t.rows(), t.cols());
        let rb = m.row_bytes;
        for r in 0..t.rows() {
            let codes: Vec<u8> = t.row(r).iter().map(|&v| (v + 1) as u8).collect();
            encode_codes(&codes, &mut m.data[r * rb..(r + 1) * rb]);
        }
        m
    }

    /// Convert from the checkpoint's packed bytes, in parallel over packed rows.
    pub fn from_hf_packed(_k: Kernel, packed: &[u8], rows: usize, cols: usize) -> Tq1 {
        let mut m = Tq1::empty(rows, cols);
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
    pub fn view(&self) -> crate::kernels::views::Tq1View<'_> {
        crate::kernels::views::Tq1View {
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
}

/// Encode one row of codes (`t + 1`) into blocks; columns past the row's end are zero weights.
fn encode_codes(codes: &[u8], dst: &mut [u8]) {
    for (blk, out) in dst.chunks_exact_mut(BLOCK_BYTES).enumerate() {
        for (m, o) in out.iter_mut().enumerate() {
            let mut d = [1u8; 5];
            for (i, di) in d.iter_mut().enumerate() {
                let c = blk * BLOCK + m + 32 * i;
                if c < codes.len() {
                    *di = codes[c];
                }
            }
            *o = encode5(d);
        }
    }
}

/// Code (`t + 1`) of column `c` in a Tq1 row.
#[inline(always)]
pub fn code_at(row: &[u8], c: usize) -> u8 {
    let (blk, j) = (c / BLOCK, c % BLOCK);
    decode_digit(row[blk * BLOCK_BYTES + j % 32], j / 32)
}

impl TernaryLayout for Tq1 {
    fn name(&self) -> &'static str {
        "tq1"
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
        if x.batch > 1 && gemm::has_tiles(k) {
            let s = units.start;
            let decode = |rr: Range<usize>, dst: &mut [u8]| {
                self.decode_codes(s + rr.start..s + rr.end, dst, x.stride)
            };
            return gemm::gemm_codes(k, x, units.len(), &decode, out[0]);
        }
        #[cfg(target_arch = "x86_64")]
        if k.native_kind().is_some_and(|k| k.has_avx2()) {
            // SAFETY: `k` proves the CPU has AVX2; the kernel bounds-checks its slices.
            return unsafe {
                crate::kernels::x86_64::avx2::tq1_gemm(&self.view(), x, units, out[0])
            };
        }
        scalar::tq1_gemm(&self.view(), x, units, out[0])
    }
}

impl Tq1 {
    /// Codes `t + 1` of rows `rows` into `dst` (`stride` bytes a row) for the batched path.
    pub fn decode_codes(&self, rows: Range<usize>, dst: &mut [u8], stride: usize) {
        for (i, r) in rows.enumerate() {
            let d = &mut dst[i * stride..(i + 1) * stride];
            d.fill(1);
            for (blk, bytes) in self.row(r).chunks_exact(BLOCK_BYTES).enumerate() {
                for (m, &byte) in bytes.iter().enumerate() {
                    for digit in 0..5 {
                        let c = blk * BLOCK + 32 * digit + m;
                        if c < stride {
                            d[c] = decode_digit(byte, digit);
                        }
                    }
                }
            }
        }
    }
}
