//! What the kernels see of a weight matrix: slices and a shape, no layout types.
//!
//! Each layout (in [`crate::ternary`]) owns its storage and conversion and hands its kernels
//! one of these plain views, so kernels are leaves: they depend on nothing in the crate but
//! these structs, [`Acts`](super::acts::Acts) and the vector traits.

/// A rotor matrix: two bit-planes per row (`crate::ternary::rotor` documents the order).
#[derive(Clone, Copy, Debug)]
pub struct RotorView<'a> {
    /// `rows × 2·wpr` words: row `r` at `r·2·wpr`, its planes interleaved in blocks of `bw`
    /// words (`[A(bw words) | B(bw words)]` per block).
    pub words: &'a [u64],
    pub rows: usize,
    /// Words per plane per row.
    pub wpr: usize,
    /// Words per plane per block (`wpr` when the planes are separate per row).
    pub bw: usize,
    /// `Σ_c t[r][c]` per row.
    pub row_sums: &'a [i32],
    /// False: planes are P (+1) and N (−1). True: M (≠ 0) and S (−1).
    pub ms: bool,
}

impl RotorView<'_> {
    /// Index of the two plane words of word `k` of a row, for a kernel specialised on the
    /// interleave `BW` (1 or 4 words; 0 = planes separate per row; any other value = this
    /// view's `bw`, computed at run time).
    #[inline(always)]
    pub fn plane_idx<const BW: usize>(&self, k: usize) -> (usize, usize) {
        match BW {
            1 => (2 * k, 2 * k + 1),
            4 => {
                let a = (k >> 2) * 8 + (k & 3);
                (a, a + 4)
            }
            0 => (k, self.wpr + k),
            _ => {
                let bw = self.bw;
                let a = (k / bw) * 2 * bw + k % bw;
                (a, a + bw)
            }
        }
    }

    /// P and N words from raw plane words `a`, `b`.
    #[inline(always)]
    pub fn pn(&self, a: u64, b: u64) -> (u64, u64) {
        if self.ms { (a & !b, a & b) } else { (a, b) }
    }
}

/// The checkpoint's packed bytes: `[rows/4][cols]`, bit pair `j` of byte `[r][c]` is the code
/// (`t + 1`) of row `j·rows/4 + r`, column `c`.
#[derive(Clone, Copy, Debug)]
pub struct PackedView<'a> {
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

/// bitnet.cpp's I2_S order: per row, blocks of 128 columns in 32 bytes; column `j` of a block
/// is in byte `j % 32` at bit `6 − 2·(j / 32)`; codes are `t + 1`, padding code 1.
#[derive(Clone, Copy, Debug)]
pub struct I2View<'a> {
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
    pub row_bytes: usize,
}

/// The `rotor-tl` order (`crate::ternary::rotor_tl`): per block of 16 rows and quad of 16
/// columns, 64 bytes; byte `4i + q` = P nibble | N nibble << 4 of row `i`, column group `q`.
#[derive(Clone, Copy, Debug)]
pub struct TlView<'a> {
    pub data: &'a [u8],
    pub rows: usize,
    /// 64-column words per row (4 quads each).
    pub words: usize,
}

impl TlView<'_> {
    /// Bytes per block of 16 rows.
    pub fn block_bytes(&self) -> usize {
        self.words * 256
    }
}

impl<'a> RotorView<'a> {
    /// The `2·wpr` words of row `r`.
    #[inline(always)]
    pub fn row_words(&self, r: usize) -> &'a [u64] {
        &self.words[r * 2 * self.wpr..(r + 1) * 2 * self.wpr]
    }

    /// Position of the two plane words of every word `k` of a row, in order, without a
    /// division per word: `(k, index of plane A, index of plane B)`.
    #[inline(always)]
    pub fn word_index(&self) -> impl Iterator<Item = (usize, usize, usize)> + use<> {
        let (bw, wpr) = (self.bw, self.wpr);
        let sh = bw.trailing_zeros();
        (0..wpr).map(move |k| {
            let (blk, i) = if bw == wpr {
                (0, k)
            } else if bw.is_power_of_two() {
                (k >> sh, k & (bw - 1))
            } else {
                (k / bw, k % bw)
            };
            let a = blk * 2 * bw + i;
            (k, a, a + bw)
        })
    }
}

impl<'a> PackedView<'a> {
    /// The `cols` bytes of packed row `r` (four output rows).
    #[inline]
    pub fn byte_row(&self, r: usize) -> &'a [u8] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// I2_S: columns per block, bytes per block.
pub const I2_BLOCK: usize = 128;
pub const I2_BLOCK_BYTES: usize = 32;

impl<'a> I2View<'a> {
    #[inline]
    pub fn row(&self, r: usize) -> &'a [u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
}

/// The base-3 layout (`crate::ternary::tq1`): rows of 32-byte blocks of 160 weights; byte `m`
/// of a block holds columns `m, m+32, …, m+128` as five base-3 digits `t + 1` (module docs of
/// `tq1` for the encoding).
#[derive(Clone, Copy, Debug)]
pub struct Tq1View<'a> {
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
    pub row_bytes: usize,
}

impl<'a> Tq1View<'a> {
    #[inline]
    pub fn row(&self, r: usize) -> &'a [u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
}

/// The base-3 code of [`Tq1View`]: block sizes and digit arithmetic.
pub mod tq1code {
    /// Weights per block.
    pub const BLOCK: usize = 160;
    /// Bytes per block.
    pub const BLOCK_BYTES: usize = 32;
    const _: () = assert!(BLOCK_BYTES * 5 == BLOCK);

    /// `3^i` for the digit extraction.
    pub const POW3: [u8; 5] = [1, 3, 9, 27, 81];

    /// Encode five digits (each `t + 1`, most significant first) into one byte.
    #[inline]
    pub fn encode5(d: [u8; 5]) -> u8 {
        let v = d.iter().fold(0u32, |acc, &x| acc * 3 + x as u32);
        debug_assert!(v < 243);
        (v * 256).div_ceil(243) as u8
    }

    /// Digit `i` (0 = most significant) of an encoded byte.
    #[inline(always)]
    pub fn decode_digit(byte: u8, i: usize) -> u8 {
        let q = byte.wrapping_mul(POW3[i]);
        ((q as u16 * 3) >> 8) as u8
    }
}

/// The int8 (dense) layout: row `r` at `r·stride`, `stride` a multiple of 64, zero past
/// `cols`; `row_sums[r] = Σ_c t[r][c]`.
#[derive(Clone, Copy, Debug)]
pub struct DenseView<'a> {
    pub data: &'a [i8],
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
    pub row_sums: &'a [i32],
}
