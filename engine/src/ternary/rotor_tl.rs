//! `rotor-tl`: the rotor P/N planes in the order a table-lookup kernel consumes them.
//!
//! The same two bit-planes per row as [`Rotor`](super::Rotor) P/N — plus-plane and
//! minus-plane, zero = both bits off, 2 bits per weight — cut into nibbles (four columns) and
//! interleaved over blocks of sixteen rows:
//! ```text
//!   block b (rows 16b .. 16b+15), quad Q (columns 16Q .. 16Q+15):  64 bytes at (b·NQ + Q)·64
//!   byte 4i + q = P nibble | N nibble << 4   of row 16b + i, columns 16Q + 4q .. 16Q + 4q + 3
//!   (NQ = 4·W quads per row, W = ceil(cols/64); rows and columns past the matrix are 0)
//! ```
//! One 64-byte load thus holds sixteen rows × four column groups, byte `4i + q` belonging to
//! row `i` — the order in which `vpermb` looks up four different 16-entry tables (one per
//! column group, index bits 4–5 = `q`) and `vpdpbusd` then adds the four groups of a row into
//! that row's 32-bit lane (the AVX-512 kernel in `kernels/x86_64/vnni.rs`). A nibble of P
//! indexes the table of subset sums of its four activations (T-MAC's idea); the N nibble
//! indexes the same table, and the row's dot product is `T[P] − T[N]`. To stay exact with
//! byte tables the activations are split `x = 16·xh + xl` (`xl ∈ [0,15]`, `xh ∈ [−8,7]`),
//! with one table per part (`[0,60]` and `[−32,28]`).

use std::ops::Range;

use super::{Acts, Ternary, TernaryLayout};
use crate::kernels::views::TlView;
use crate::kernels::{Kernel, KernelKind, gemm, scalar};
use crate::ternary::parallel;

/// Rows per block.
pub const TL_ROWS: usize = 16;

pub(crate) const KERNELS: &[KernelKind] =
    &[KernelKind::Scalar, KernelKind::Avx512Vnni, KernelKind::Amx];

/// A ternary matrix as rotor P/N nibbles in table-lookup order (module docs).
#[derive(Clone, Debug)]
pub struct RotorTl {
    rows: usize,
    cols: usize,
    /// Words (64 columns) per row.
    words: usize,
    data: Vec<u8>,
}

impl RotorTl {
    fn empty(rows: usize, cols: usize) -> RotorTl {
        let words = cols.div_ceil(64).max(1);
        RotorTl {
            rows,
            cols,
            words,
            data: vec![0; rows.div_ceil(TL_ROWS) * words * 256],
        }
    }

    /// Bytes per block of sixteen rows.
    fn block_bytes(&self) -> usize {
        self.words * 256
    }

    /// Store the P/N words of row `i` of a block (`p[k]`, `n[k]` for 64-column word `k`) into
    /// `block`, the bytes of the row's block: per column quad, one 32-bit store of four
    /// `P nibble | N nibble << 4` bytes, built from the plane bytes through a 256-entry table
    /// that spreads a byte's two nibbles into the low nibbles of two bytes.
    fn put_row(block: &mut [u8], i: usize, p: &[u64], n: &[u64]) {
        const SPREAD: [u16; 256] = {
            let mut t = [0u16; 256];
            let mut b = 0;
            while b < 256 {
                t[b] = (b as u16 & 15) | ((b as u16 >> 4) << 8);
                b += 1;
            }
            t
        };
        for (k, (&pw, &nw)) in p.iter().zip(n).enumerate() {
            for qq in 0..4 {
                // Columns 16·qq .. 16·qq + 15 of the word: two bytes of each plane.
                let (pb, nb) = ((pw >> (16 * qq)) as u16, (nw >> (16 * qq)) as u16);
                let lo = SPREAD[(pb & 255) as usize] | SPREAD[(nb & 255) as usize] << 4;
                let hi = SPREAD[(pb >> 8) as usize] | SPREAD[(nb >> 8) as usize] << 4;
                let v = lo as u32 | (hi as u32) << 16;
                let at = (4 * k + qq) * 64 + 4 * i;
                block[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }

    pub fn from_dense(t: &Ternary) -> RotorTl {
        let mut m = RotorTl::empty(t.rows(), t.cols());
        let bb = m.block_bytes();
        let mut p = vec![0u64; m.words];
        let mut n = vec![0u64; m.words];
        for r in 0..t.rows() {
            p.fill(0);
            n.fill(0);
            for (c, &v) in t.row(r).iter().enumerate() {
                match v {
                    1 => p[c / 64] |= 1 << (c % 64),
                    -1 => n[c / 64] |= 1 << (c % 64),
                    _ => {}
                }
            }
            let b = r / TL_ROWS;
            RotorTl::put_row(&mut m.data[b * bb..(b + 1) * bb], r % TL_ROWS, &p, &n);
        }
        m
    }

    /// Convert straight from the checkpoint's packed bytes (`[rows/4][cols]`), in parallel:
    /// byte rows `16c .. 16c+15` feed whole blocks of each quarter of the rows when a quarter
    /// is a whole number of blocks (every model shape); other shapes go through the dense form.
    pub fn from_hf_packed(k: Kernel, packed: &[u8], rows: usize, cols: usize) -> RotorTl {
        let r4 = rows / 4;
        if r4 % TL_ROWS != 0 {
            let t = Ternary::from_hf_packed(packed, rows, cols).expect("validated by the caller");
            return RotorTl::from_dense(&t);
        }
        let mut m = RotorTl::empty(rows, cols);
        let bb = m.block_bytes();
        let words = m.words;
        let blocks4 = r4 / TL_ROWS;
        let groups: Vec<&mut [u8]> = m.data.chunks_mut(blocks4 * bb).collect();
        parallel::for_each_unit_chunk(groups, bb, blocks4, 1, |units, outs| {
            let mut p: [Vec<u64>; 4] = std::array::from_fn(|_| vec![0u64; words]);
            let mut n = p.clone();
            for (bi, b) in units.clone().enumerate() {
                for i in 0..TL_ROWS {
                    let r = b * TL_ROWS + i;
                    super::rotor::packed_row_planes(
                        k,
                        &packed[r * cols..(r + 1) * cols],
                        &mut p,
                        &mut n,
                    );
                    for j in 0..4 {
                        RotorTl::put_row(&mut outs[j][bi * bb..(bi + 1) * bb], i, &p[j], &n[j]);
                    }
                }
            }
        });
        m
    }

    /// The kernels' view of this matrix.
    pub fn view(&self) -> TlView<'_> {
        TlView {
            data: &self.data,
            rows: self.rows,
            words: self.words,
        }
    }
}

impl TernaryLayout for RotorTl {
    fn name(&self) -> &'static str {
        "rotor-tl"
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
        let bb = self.block_bytes();
        Ternary::from_fn(self.rows, self.cols, |r, c| {
            let (b, i) = (r / TL_ROWS, r % TL_ROWS);
            let (quad, q, bit) = (c / 16, (c % 16) / 4, c % 4);
            let byte = self.data[b * bb + quad * 64 + 4 * i + q];
            ((byte >> bit) & 1) as i8 - ((byte >> (4 + bit)) & 1) as i8
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
    fn unit_align(&self) -> usize {
        TL_ROWS
    }
    fn gemm_block(&self, k: Kernel, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
        let out = &mut *out[0];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::x86_64::{simd512::Emulated, vnni};
            if x.batch > 1 && gemm::has_tiles(k) {
                let s = units.start;
                let v = self.view();
                let decode = |rr: Range<usize>, dst: &mut [u8]| {
                    let rows = s + rr.start..s + rr.end;
                    match k.native_kind() {
                        // SAFETY: `k` proves AVX-512 F+BW+VBMI (the vnni families); the decoder
                        // bounds-checks.
                        Some(_) => unsafe { vnni::native::tl_decode(&v, rows, dst, x.stride) },
                        None => vnni::tl_decode::<Emulated>(&v, rows, dst, x.stride),
                    }
                };
                return gemm::gemm_codes(k, x, units.len(), &decode, out);
            }
            if k.kind().has_vnni512() && x.batch == 1 {
                thread_local!(static TABLES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
                return TABLES.with_borrow_mut(|tables| match k.native_kind() {
                    // SAFETY: `k` proves AVX-512 F+BW+VNNI+VBMI; the kernel bounds-checks.
                    Some(_) => unsafe {
                        vnni::native::tl_gemv(&self.view(), x.row(0), tables, units, out)
                    },
                    None => vnni::tl_gemv::<Emulated>(&self.view(), x.row(0), tables, units, out),
                });
            }
        }
        scalar::tl_gemm(&self.view(), x, units, out)
    }
}
