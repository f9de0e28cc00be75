//! The checkpoint's own layout (FORMAT.md §2.1), used in place with no conversion.
//!
//! Four ternary values per byte, packed along the *output* dimension, rows blocked by quarters:
//! ```text
//!   R = rows / 4;   packed: [R][cols] bytes
//!   packed[r][c] bits:   7 6 | 5 4 | 3 2 | 1 0
//!                        row  | row | row | row
//!                        r+3R |r+2R | r+R |  r       code = t + 1  ∈ {0, 1, 2}
//! ```
//! One byte row feeds four output rows from one activation load: a kernel reads 32 packed
//! bytes and 32 activations, and for each bit pair `j` adds `code_j · x` (an unsigned-by-signed
//! byte multiply), then subtracts `Σ x` once per output (the `+1` offset).

use std::ops::Range;

use super::{Acts, Ternary, TernaryLayout};
use crate::error::{Error, Result};
use crate::kernels::views::PackedView;
use crate::kernels::{Kernel, KernelKind, gemm, scalar};

pub(crate) const KERNELS: &[KernelKind] = &[
    KernelKind::Scalar,
    KernelKind::Avx2,
    KernelKind::Avx512,
    KernelKind::Avx512Vnni,
    KernelKind::Amx,
];

/// Check the byte count and that no code 3 occurs.
pub(crate) fn check_packed(packed: &[u8], rows: usize, cols: usize) -> Result<()> {
    if !rows.is_multiple_of(4) {
        return Err(Error::Layout(format!(
            "packed ternary weights need out_features divisible by 4, got {rows}"
        )));
    }
    if packed.len() != rows / 4 * cols {
        return Err(Error::Layout(format!(
            "packed ternary weights: {} bytes for [{}/4, {}] (expected {})",
            packed.len(),
            rows,
            cols,
            rows / 4 * cols
        )));
    }
    // Code 3 (both bits of a pair set) never occurs in a valid checkpoint: detect it with
    // one pass of bit arithmetic (hi & lo bits of every pair), OR-reduced over 64-byte chunks
    // (vectorizes; a position search would not), and located only if a chunk is bad.
    let bad = packed
        .chunks(64)
        .position(|c| c.iter().fold(0u8, |a, &b| a | (b & (b >> 1))) & 0b0101_0101 != 0)
        .and_then(|ci| {
            packed[ci * 64..]
                .iter()
                .position(|&b| (b & (b >> 1)) & 0b0101_0101 != 0)
                .map(|i| ci * 64 + i)
        });
    if let Some(i) = bad {
        return Err(Error::Layout(format!(
            "packed ternary weights: byte {} (row {}, column {}) = {:#04x} holds the invalid code 3",
            i,
            i / cols.max(1),
            i % cols.max(1),
            packed[i]
        )));
    }
    Ok(())
}

/// The checkpoint's packed bytes, `[rows/4][cols]`.
#[derive(Clone, Debug)]
pub struct HfPacked {
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl HfPacked {
    pub fn from_dense(t: &Ternary) -> HfPacked {
        HfPacked {
            rows: t.rows(),
            cols: t.cols(),
            data: t.to_hf_packed(),
        }
    }

    pub fn from_bytes(data: Vec<u8>, rows: usize, cols: usize) -> Result<HfPacked> {
        check_packed(&data, rows, cols)?;
        Ok(HfPacked { rows, cols, data })
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The kernels' view of this matrix.
    pub fn view(&self) -> PackedView<'_> {
        PackedView {
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
        }
    }
    pub fn byte_row(&self, r: usize) -> &[u8] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

impl TernaryLayout for HfPacked {
    fn name(&self) -> &'static str {
        "hf_packed"
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
        Ternary::from_hf_packed(&self.data, self.rows, self.cols).expect("validated at build")
    }
    fn with_bit_flipped(&self, bit: u64) -> Box<dyn TernaryLayout> {
        let mut m = self.clone();
        m.data[(bit / 8) as usize] ^= 1 << (bit % 8);
        Box::new(m)
    }
    fn kernels(&self) -> &'static [KernelKind] {
        KERNELS
    }
    fn groups(&self) -> usize {
        4
    }
    fn gemm_block(&self, k: Kernel, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::x86_64::{avx2, avx512, simd512::Emulated, vnni};
            match (k.native_kind(), k.kind()) {
                (Some(KernelKind::Avx2), _) => {
                    // SAFETY: `k` proves the CPU has AVX2; the kernel bounds-checks its slices.
                    return unsafe { avx2::hf_packed_gemm(&self.view(), x, units, out) };
                }
                (Some(KernelKind::Avx512), _) => {
                    // SAFETY: `k` proves the CPU has AVX-512 F+BW; the kernel bounds-checks.
                    return unsafe { avx512::hf_packed_gemm(&self.view(), x, units, out) };
                }
                (native, kind) if kind.has_vnni512() => {
                    let v = self.view();
                    if x.batch == 1 {
                        return match native {
                            // SAFETY: `k` proves AVX-512 F+BW+VNNI; the kernel bounds-checks.
                            Some(_) => unsafe {
                                vnni::native::packed_gemv(&v, x.row(0), x.sums[0], units, out)
                            },
                            None => {
                                vnni::packed_gemv::<Emulated>(&v, x.row(0), x.sums[0], units, out)
                            }
                        };
                    }
                    let s = units.start;
                    for (g, o) in out.iter_mut().enumerate() {
                        let decode = |rr: Range<usize>, dst: &mut [u8]| {
                            let u = s + rr.start..s + rr.end;
                            match native {
                                // SAFETY: as above; the decoder bounds-checks.
                                Some(_) => unsafe {
                                    vnni::native::packed_decode(&v, g, u, dst, x.stride)
                                },
                                None => vnni::packed_decode::<Emulated>(&v, g, u, dst, x.stride),
                            }
                        };
                        gemm::gemm_codes(k, x, units.len(), &decode, o);
                    }
                    return;
                }
                (None, kind) if kind.has_avx512() => {
                    return avx512::emulated::hf_packed_gemm(&self.view(), x, units, out);
                }
                _ => {}
            }
        }
        scalar::hf_packed_gemm(&self.view(), x, units, out)
    }
}
