//! The dense oracle form ([`Ternary`]) and the int8 layout ([`Dense`]).
//!
//! [`Ternary::gemm_oracle`] is the definition of a correct result: a triple loop with no
//! cleverness, compared bit-exactly against every layout and kernel.

use std::ops::Range;

use super::{Acts, TernaryLayout, act_stride};
use crate::error::{Error, Result};
use crate::kernels::gemm;
use crate::kernels::{Kernel, KernelKind, scalar};

/// A dense ternary matrix, row-major `[rows][cols]`, every value in {-1, 0, 1}.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ternary {
    rows: usize,
    cols: usize,
    data: Vec<i8>,
}

impl Ternary {
    /// Wrap `rows × cols` values, rejecting anything outside {-1, 0, 1}.
    pub fn new(rows: usize, cols: usize, data: Vec<i8>) -> Result<Ternary> {
        if data.len() != rows * cols {
            return Err(Error::Invalid(format!(
                "ternary matrix: {} values for {rows}×{cols}",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|&v| !(-1..=1).contains(&v)) {
            return Err(Error::Invalid(format!(
                "ternary matrix: value {} at row {}, column {} is not in {{-1, 0, 1}}",
                data[i],
                i / cols.max(1),
                i % cols.max(1)
            )));
        }
        Ok(Ternary { rows, cols, data })
    }

    pub fn zeros(rows: usize, cols: usize) -> Ternary {
        Ternary {
            rows,
            cols,
            data: vec![0; rows * cols],
        }
    }

    /// Build from a function of (row, col); values are clamped into {-1, 0, 1}.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> i8) -> Ternary {
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                data.push(f(r, c).clamp(-1, 1));
            }
        }
        Ternary { rows, cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn data(&self) -> &[i8] {
        &self.data
    }
    pub fn get(&self, r: usize, c: usize) -> i8 {
        self.data[r * self.cols + c]
    }
    pub fn set(&mut self, r: usize, c: usize, v: i8) {
        assert!((-1..=1).contains(&v));
        self.data[r * self.cols + c] = v;
    }
    pub fn row(&self, r: usize) -> &[i8] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Unpack the checkpoint's `[rows/4][cols]` bytes (FORMAT.md §2.1):
    /// `t[o][c] = ((packed[o mod R][c] >> (2·(o div R))) & 3) − 1`, `R = rows/4`.
    pub fn from_hf_packed(packed: &[u8], rows: usize, cols: usize) -> Result<Ternary> {
        super::hf_packed::check_packed(packed, rows, cols)?;
        let r4 = rows / 4;
        let mut data = vec![0i8; rows * cols];
        for (r, prow) in packed.chunks_exact(cols.max(1)).enumerate().take(r4) {
            for j in 0..4 {
                let out = &mut data[(j * r4 + r) * cols..(j * r4 + r + 1) * cols];
                for (o, &b) in out.iter_mut().zip(prow) {
                    *o = ((b >> (2 * j)) & 3) as i8 - 1;
                }
            }
        }
        Ok(Ternary { rows, cols, data })
    }

    /// Pack into the checkpoint's bytes: `packed[r][c] = Σ_j (t[j·R + r][c] + 1) << 2j`.
    pub fn to_hf_packed(&self) -> Vec<u8> {
        assert!(
            self.rows.is_multiple_of(4),
            "hf packing needs rows divisible by 4"
        );
        let r4 = self.rows / 4;
        let mut out = vec![0u8; r4 * self.cols];
        for j in 0..4 {
            for r in 0..r4 {
                let src = self.row(j * r4 + r);
                for (o, &v) in out[r * self.cols..(r + 1) * self.cols].iter_mut().zip(src) {
                    *o |= ((v + 1) as u8) << (2 * j);
                }
            }
        }
        out
    }

    /// The oracle: `y[r][b] = Σ_c t[r][c] · x[b][c]`, output `[row][batch]`.
    pub fn gemm_oracle(&self, x: &Acts) -> Vec<i32> {
        assert_eq!(x.cols, self.cols, "activation width");
        let mut y = vec![0i32; self.rows * x.batch];
        for r in 0..self.rows {
            let w = self.row(r);
            for b in 0..x.batch {
                let xr = x.row(b);
                let mut acc = 0i32;
                for c in 0..self.cols {
                    acc += w[c] as i32 * xr[c] as i32;
                }
                y[r * x.batch + b] = acc;
            }
        }
        y
    }

    /// Column sums `c[j] = Σ_i t[i][j]` (the exact checksum vector).
    pub fn column_sums(&self) -> Vec<i32> {
        let mut s = vec![0i32; self.cols];
        for r in 0..self.rows {
            for (a, &v) in s.iter_mut().zip(self.row(r)) {
                *a += v as i32;
            }
        }
        s
    }
}

pub(crate) const KERNELS: &[KernelKind] = &[
    KernelKind::Scalar,
    KernelKind::Avx2,
    KernelKind::Avx512Vnni,
    KernelKind::Amx,
];

/// One `i8` per weight, rows zero-padded to a multiple of 64 columns.
///
/// ```text
///   row r:  [ t[r][0] t[r][1] ... t[r][cols-1] 0 ... 0 ]   (i8, stride = cols rounded up to 64)
/// ```
/// The 8-bit baseline: what an int8 multiply-accumulate engine reads. Four times the bytes of
/// the 2-bit layouts.
#[derive(Clone, Debug)]
pub struct Dense {
    rows: usize,
    cols: usize,
    stride: usize,
    data: Vec<i8>,
    /// `Σ_c t[r][c]` per row (kernels feeding `x + 128` subtract `128 · Σ t`).
    row_sums: Vec<i32>,
}

impl Dense {
    pub fn from_dense(t: &Ternary) -> Dense {
        let stride = t.cols.div_ceil(64) * 64;
        let mut data = vec![0i8; t.rows * stride];
        for r in 0..t.rows {
            data[r * stride..r * stride + t.cols].copy_from_slice(t.row(r));
        }
        let row_sums = (0..t.rows)
            .map(|r| t.row(r).iter().map(|&v| v as i32).sum())
            .collect();
        Dense {
            rows: t.rows,
            cols: t.cols,
            stride,
            data,
            row_sums,
        }
    }

    pub fn stride(&self) -> usize {
        self.stride
    }
    /// The kernels' view of this matrix.
    pub fn view(&self) -> crate::kernels::views::DenseView<'_> {
        crate::kernels::views::DenseView {
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
            stride: self.stride,
            row_sums: &self.row_sums,
        }
    }
    pub fn row_sums(&self) -> &[i32] {
        &self.row_sums
    }
    pub fn data(&self) -> &[i8] {
        &self.data
    }
}

impl TernaryLayout for Dense {
    fn name(&self) -> &'static str {
        "dense"
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
        Ternary::from_fn(self.rows, self.cols, |r, c| self.data[r * self.stride + c])
    }
    fn with_bit_flipped(&self, bit: u64) -> Box<dyn TernaryLayout> {
        let mut m = self.clone();
        let w = &mut m.data[(bit / 8) as usize];
        *w = ((*w as u8) ^ (1 << (bit % 8))) as i8;
        Box::new(m)
    }
    fn kernels(&self) -> &'static [KernelKind] {
        KERNELS
    }
    fn gemm_block(&self, k: Kernel, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
        debug_assert!(x.stride >= self.stride && act_stride(self.cols) == x.stride);
        if x.batch > 1 && gemm::has_tiles(k) {
            let s = units.start;
            let decode = |rr: Range<usize>, dst: &mut [u8]| {
                for (i, r) in (s + rr.start..s + rr.end).enumerate() {
                    let d = &mut dst[i * x.stride..(i + 1) * x.stride];
                    let row = &self.data[r * self.stride..r * self.stride + self.cols];
                    for (o, &t) in d.iter_mut().zip(row) {
                        *o = (t + 1) as u8;
                    }
                    d[self.cols..].fill(1);
                }
            };
            return gemm::gemm_codes(k, x, units.len(), &decode, out[0]);
        }
        #[cfg(target_arch = "x86_64")]
        if k.native_kind().is_some_and(|k| k.has_avx2()) {
            // SAFETY: `k` proves the CPU has AVX2 (a Kernel is only constructed after
            // feature detection); the kernel bounds-checks every slice it reads.
            return unsafe {
                crate::kernels::x86_64::avx2::dense_gemm(&self.view(), x, units, out[0])
            };
        }
        scalar::dense_gemm(&self.view(), x, units, out[0])
    }
}
