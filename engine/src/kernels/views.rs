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
