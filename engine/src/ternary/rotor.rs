//! The rotor layout: two bit-planes per weight row.
//!
//! Each row of `W[rows][cols]` is stored as two planes of 64-bit words over the columns, bit
//! `i` of word `k` standing for column `64k + i` (LSB = lowest column). Zero is `00`. Two
//! encodings:
//! - **P/N** ([`Encoding::Pn`]): plane A = P, set where `t = +1`; plane B = N, set where
//!   `t = −1` (`11` never occurs). `dot(t, x) = Σ_{c∈P} x[c] − Σ_{c∈N} x[c]`.
//! - **M/S** ([`Encoding::Ms`]): plane A = M (magnitude), set where `t ≠ 0`; plane B = S
//!   (sign), set where `t = −1` (S without M never occurs). `P = M ∧ ¬S`, `N = M ∧ S`.
//!
//! The two planes of a row are interleaved in blocks of `B` words ([`Block`]):
//! ```text
//!   row r occupies data[r·2W .. (r+1)·2W]   (W = words per plane per row, a multiple of B)
//!   block b of the row:  [ A(bB) .. A(bB+B−1) | B(bB) .. B(bB+B−1) ]
//!
//!   B = 1  (`rotor-pn`):      P0 N0 P1 N1 P2 N2 ...          one 16-byte load per 64 columns
//!   B = 4  (`rotor-pn-b4`):   P0 P1 P2 P3 N0 N1 N2 N3 ...    256 columns per 64-byte line
//!   B = W  (`rotor-pn-row`):  P0 .. P(W−1) N0 .. N(W−1)      planes separate within the row
//! ```
//! Padding columns (from `cols` up to `64·W`) are `00`. Same 2 bits per weight as the packed
//! checkpoint (plus padding). A row's weight sum `Σ_c t[r][c]` is kept beside the planes:
//! kernels that feed activations as unsigned bytes (`x + 128`) subtract `128 · Σ t`.

use std::ops::Range;

use super::{Acts, Ternary, TernaryLayout};
use crate::kernels::views::RotorView;
use crate::kernels::{Kernel, KernelKind, scalar};
use crate::ternary::parallel;

/// Which two planes a row stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Plus-plane and minus-plane.
    Pn,
    /// Magnitude-plane and sign-plane.
    Ms,
}

/// How the two planes of a row are interleaved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Block {
    /// Blocks of this many 64-bit words per plane.
    Words(usize),
    /// One block per row: the planes are separate (`[A row][B row]`).
    Row,
}

pub(crate) const KERNELS: &[KernelKind] = &[
    KernelKind::Scalar,
    KernelKind::Avx2,
    KernelKind::Avx512,
    KernelKind::Avx512Vnni,
    KernelKind::Amx,
];

pub(crate) fn variant_name(enc: Encoding, block: Block) -> &'static str {
    match (enc, block) {
        (Encoding::Pn, Block::Words(1)) => "rotor-pn",
        (Encoding::Pn, Block::Words(4)) => "rotor-pn-b4",
        (Encoding::Pn, Block::Row) => "rotor-pn-row",
        (Encoding::Ms, Block::Words(1)) => "rotor-ms",
        (Encoding::Ms, Block::Words(4)) => "rotor-ms-b4",
        (Encoding::Ms, Block::Row) => "rotor-ms-row",
        (Encoding::Pn, Block::Words(_)) => "rotor-pn-custom",
        (Encoding::Ms, Block::Words(_)) => "rotor-ms-custom",
    }
}

/// A ternary matrix as two bit-planes per row.
#[derive(Clone, Debug)]
pub struct Rotor {
    enc: Encoding,
    block: Block,
    /// Words per plane per block (resolved: `W` for [`Block::Row`]).
    bw: usize,
    rows: usize,
    cols: usize,
    /// Words per plane per row.
    wpr: usize,
    /// `rows × 2·wpr` words.
    data: Vec<u64>,
    /// `Σ_c t[r][c]` per row.
    row_sums: Vec<i32>,
}

impl Rotor {
    fn empty(rows: usize, cols: usize, enc: Encoding, block: Block) -> Rotor {
        let words = cols.div_ceil(64);
        let (bw, wpr) = match block {
            Block::Words(b) => {
                assert!(b >= 1, "block of at least one word");
                (b, words.div_ceil(b) * b)
            }
            Block::Row => (words.max(1), words.max(1)),
        };
        Rotor {
            enc,
            block,
            bw,
            rows,
            cols,
            wpr,
            data: vec![0; rows * 2 * wpr],
            row_sums: vec![0; rows],
        }
    }

    /// Build from the oracle form.
    pub fn from_dense(t: &Ternary, enc: Encoding, block: Block) -> Rotor {
        let mut m = Rotor::empty(t.rows(), t.cols(), enc, block);
        for r in 0..t.rows() {
            let mut p = vec![0u64; m.wpr];
            let mut n = vec![0u64; m.wpr];
            for (c, &v) in t.row(r).iter().enumerate() {
                match v {
                    1 => p[c / 64] |= 1 << (c % 64),
                    -1 => n[c / 64] |= 1 << (c % 64),
                    _ => {}
                }
            }
            m.set_row_pn(r, &p, &n);
        }
        m
    }

    /// Convert straight from the checkpoint's packed bytes (`[rows/4][cols]`, FORMAT.md §2.1),
    /// in parallel over packed rows, with the SIMD bit extraction of `k`.
    pub fn from_hf_packed(
        k: Kernel,
        packed: &[u8],
        rows: usize,
        cols: usize,
        enc: Encoding,
        block: Block,
    ) -> Rotor {
        let mut m = Rotor::empty(rows, cols, enc, block);
        let r4 = rows / 4;
        let row_len = 2 * m.wpr;
        let (bw, wpr) = (m.bw, m.wpr);
        // Four groups of output rows: group j holds rows j·R .. (j+1)·R, fed by bit pair j.
        let groups: Vec<&mut [u64]> = m.data.chunks_mut(r4 * row_len).collect();
        let sums: Vec<&mut [i32]> = m.row_sums.chunks_mut(r4).collect();
        parallel::for_each_unit_chunk2(groups, row_len, sums, 1, r4, 16, |units, outs, souts| {
            let mut p = [
                vec![0u64; wpr],
                vec![0u64; wpr],
                vec![0u64; wpr],
                vec![0u64; wpr],
            ];
            let mut n = p.clone();
            for (i, r) in units.clone().enumerate() {
                let src = &packed[r * cols..(r + 1) * cols];
                packed_row_planes(k, src, &mut p, &mut n);
                for j in 0..4 {
                    let dst = &mut outs[j][i * row_len..(i + 1) * row_len];
                    write_row(dst, enc, bw, &p[j], &n[j]);
                    souts[j][i] = row_sum(&p[j], &n[j]);
                }
            }
        });
        m
    }

    fn set_row_pn(&mut self, r: usize, p: &[u64], n: &[u64]) {
        let row_len = 2 * self.wpr;
        let (enc, bw) = (self.enc, self.bw);
        write_row(
            &mut self.data[r * row_len..(r + 1) * row_len],
            enc,
            bw,
            p,
            n,
        );
        self.row_sums[r] = row_sum(p, n);
    }

    pub fn encoding(&self) -> Encoding {
        self.enc
    }
    pub fn block(&self) -> Block {
        self.block
    }
    /// Words per plane per block.
    pub fn block_words(&self) -> usize {
        self.bw
    }
    /// Words per plane per row.
    pub fn words_per_row(&self) -> usize {
        self.wpr
    }
    /// The `2·W` words of row `r`.
    #[inline]
    pub fn row_words(&self, r: usize) -> &[u64] {
        &self.data[r * 2 * self.wpr..(r + 1) * 2 * self.wpr]
    }
    pub fn row_sums(&self) -> &[i32] {
        &self.row_sums
    }
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// The kernels' view of this matrix.
    pub fn view(&self) -> RotorView<'_> {
        RotorView {
            words: &self.data,
            rows: self.rows,
            wpr: self.wpr,
            bw: self.bw,
            row_sums: &self.row_sums,
            ms: self.enc == Encoding::Ms,
        }
    }

    /// Plane words (A, B) of word `w` in a row (raw: P/N or M/S by encoding).
    #[inline(always)]
    pub fn raw_word(&self, row: &[u64], w: usize) -> (u64, u64) {
        let (blk, i) = (w / self.bw, w % self.bw);
        let base = blk * 2 * self.bw;
        (row[base + i], row[base + self.bw + i])
    }

    /// Indices of the two plane words of word `k` for a kernel specialised on the interleave
    /// `BW` (1 or 4 words; 0 = planes separate per row; anything else = this matrix's block
    /// size, computed at run time). `BW` must match [`block`](Self::block).
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

    /// P and N words from raw plane words A and B.
    #[inline(always)]
    pub fn pn_of(&self, a: u64, b: u64) -> (u64, u64) {
        match self.enc {
            Encoding::Pn => (a, b),
            Encoding::Ms => (a & !b, a & b),
        }
    }

    /// Plus and minus bits of word `w` in a row, whatever the encoding.
    #[inline(always)]
    pub fn pn_word(&self, row: &[u64], w: usize) -> (u64, u64) {
        let (a, b) = self.raw_word(row, w);
        match self.enc {
            Encoding::Pn => (a, b),
            Encoding::Ms => (a & !b, a & b),
        }
    }
}

fn row_sum(p: &[u64], n: &[u64]) -> i32 {
    p.iter().map(|w| w.count_ones() as i32).sum::<i32>()
        - n.iter().map(|w| w.count_ones() as i32).sum::<i32>()
}

/// Store one row's P/N words in the layout's encoding and interleave.
fn write_row(dst: &mut [u64], enc: Encoding, bw: usize, p: &[u64], n: &[u64]) {
    for w in 0..p.len() {
        let (a, b) = match enc {
            Encoding::Pn => (p[w], n[w]),
            Encoding::Ms => (p[w] | n[w], n[w]),
        };
        let (blk, i) = (w / bw, w % bw);
        dst[blk * 2 * bw + i] = a;
        dst[blk * 2 * bw + bw + i] = b;
    }
}

/// Extract the P/N planes of the four output rows held by one packed byte row (`p[j]`,
/// `n[j]`: one word per 64 columns; zeroed here).
pub(crate) fn packed_row_planes(
    k: Kernel,
    src: &[u8],
    p: &mut [Vec<u64>; 4],
    n: &mut [Vec<u64>; 4],
) {
    for j in 0..4 {
        p[j].fill(0);
        n[j].fill(0);
    }
    match k.native_kind() {
        #[cfg(target_arch = "x86_64")]
        Some(kind) if kind.has_avx2() => {
            // SAFETY: `k` proves AVX2 is available (Avx512 kernels require AVX2 too).
            unsafe { crate::kernels::x86_64::avx2::hf_to_planes(src, p, n) }
        }
        _ => scalar::hf_to_planes(src, p, n),
    }
}

impl TernaryLayout for Rotor {
    fn name(&self) -> &'static str {
        variant_name(self.enc, self.block)
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn storage_bytes(&self) -> usize {
        self.data.len() * 8
    }
    fn to_dense(&self) -> Ternary {
        Ternary::from_fn(self.rows, self.cols, |r, c| {
            let (p, n) = self.pn_word(self.row_words(r), c / 64);
            let bit = 1u64 << (c % 64);
            (p & bit != 0) as i8 - (n & bit != 0) as i8
        })
    }
    fn with_bit_flipped(&self, bit: u64) -> Box<dyn TernaryLayout> {
        let mut m = self.clone();
        m.data[(bit / 64) as usize] ^= 1 << (bit % 64);
        Box::new(m)
    }
    fn kernels(&self) -> &'static [KernelKind] {
        KERNELS
    }
    fn gemm_block(&self, k: Kernel, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
        let out = &mut *out[0];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::gemm;
            use crate::kernels::x86_64::{avx2, avx512, simd512::Emulated, vnni};
            match (k.native_kind(), k.kind()) {
                (Some(KernelKind::Avx2), _) => {
                    // SAFETY: `k` proves the CPU has AVX2; the kernel bounds-checks its slices.
                    return unsafe { avx2::rotor_gemm(&self.view(), x, units, out) };
                }
                (Some(KernelKind::Avx512), _) => {
                    // SAFETY: `k` proves the CPU has AVX-512 F+BW; the kernel bounds-checks.
                    return unsafe { avx512::rotor_gemm(&self.view(), x, units, out) };
                }
                (native, kind) if kind.has_vnni512() => {
                    let v = self.view();
                    if x.batch == 1 {
                        return match native {
                            // SAFETY: `k` proves AVX-512 F+BW+VNNI; the kernel bounds-checks.
                            Some(_) => unsafe {
                                vnni::native::rotor_gemv(&v, x.row(0), units, out)
                            },
                            None => vnni::rotor_gemv::<Emulated>(&v, x.row(0), units, out),
                        };
                    }
                    let s = units.start;
                    let decode = |rr: Range<usize>, dst: &mut [u8]| {
                        let rows = s + rr.start..s + rr.end;
                        match native {
                            // SAFETY: as above; the decoder bounds-checks.
                            Some(_) => unsafe {
                                vnni::native::rotor_decode(&v, rows, dst, x.stride)
                            },
                            None => vnni::rotor_decode::<Emulated>(&v, rows, dst, x.stride),
                        }
                    };
                    return gemm::gemm_codes(k, x, units.len(), &decode, out);
                }
                (None, kind) if kind.has_avx512() => {
                    return avx512::emulated::rotor_gemm(&self.view(), x, units, out);
                }
                _ => {}
            }
        }
        scalar::rotor_gemm(&self.view(), x, units, out)
    }
}
