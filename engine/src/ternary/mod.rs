//! Ternary weight matrices in several storage layouts, behind one trait.
//!
//! The oracle form is [`Ternary`]: a dense row-major `[rows][cols]` matrix of `i8` in {-1, 0, 1}.
//! Every other layout stores the same matrix more compactly and computes the same integers:
//!
//! | name            | type               | bits/weight | idea                                             |
//! |-----------------|--------------------|-------------|--------------------------------------------------|
//! | `dense`         | [`Dense`]          | 8           | one `i8` per weight; the int8 multiply baseline  |
//! | `rotor-pn[-…]`  | [`Rotor`]          | 2           | two bit-planes per row: plus, minus              |
//! | `rotor-ms[-…]`  | [`Rotor`]          | 2           | two bit-planes per row: magnitude, sign          |
//! | `hf_packed`     | [`HfPacked`]       | 2           | the checkpoint's own bytes (FORMAT.md §2.1)      |
//! | `i2`            | [`I2`]             | 2           | 2-bit codes arranged for SIMD (bitnet.cpp I2_S)  |
//! | `tq1`           | [`Tq1`]            | 1.6         | base-3, five trits per byte (TQ1_0 / TL2 idea)   |
//!
//! All layouts multiply a batch of int8 activation rows ([`Acts`]) into exact `i32` outputs laid
//! out `[row][batch]` (row-major over output rows, so that a thread owning a range of rows owns a
//! contiguous slice of the output). Activation rows are zero-padded to [`act_stride`] columns, so
//! a kernel may read whole SIMD blocks past `cols`: the padding contributes nothing.
//!
//! Integer bounds: |Σ_c t·x| ≤ 127·cols (activations from symmetric absmax quantization lie in
//! [-127, 127]; -128 is tolerated by every kernel and tested) — below 2^31 for any cols < 16.9 M.

pub mod dense;
pub mod hf_packed;
pub mod i2;
pub mod parallel;
pub mod rotor;
pub mod rotor_tl;
pub mod select;
pub mod tq1;

pub use dense::{Dense, Ternary};
pub use hf_packed::HfPacked;
pub use i2::I2;
pub use rotor::{Block, Encoding, Rotor};
pub use rotor_tl::RotorTl;
pub use tq1::Tq1;

use std::ops::Range;

use crate::error::{Error, Result};
pub use crate::kernels::acts::{ACT_ALIGN, ActBuf, Acts, act_stride};
use crate::kernels::{Kernel, KernelKind};

/// One ternary matrix in one storage layout.
///
/// Implementations compute `y[r][b] = Σ_c t[r][c] · x[b][c]` exactly. The output of a layout
/// is split into [`groups`](TernaryLayout::groups) equal contiguous parts; a *unit* `u` of
/// work produces row `g·units + u` of every group `g` (for most layouts there is one group and
/// a unit is a row; `hf_packed` stores four rows `r, r+R, r+2R, r+3R` in one byte row).
pub trait TernaryLayout: Send + Sync + std::fmt::Debug {
    /// Layout name as used on the command line and in CSV rows.
    fn name(&self) -> &'static str;
    fn rows(&self) -> usize;
    fn cols(&self) -> usize;
    /// Bytes of weight storage (including padding), the figure memory traffic is made of.
    fn storage_bytes(&self) -> usize;
    fn bits_per_weight(&self) -> f64 {
        self.storage_bytes() as f64 * 8.0 / (self.rows() * self.cols()) as f64
    }
    /// Back to the oracle form; `from_dense(t).to_dense() == t` for every layout.
    fn to_dense(&self) -> Ternary;
    /// Kernel families this layout has kernels for.
    fn kernels(&self) -> &'static [KernelKind];
    fn supports(&self, k: KernelKind) -> bool {
        self.kernels().contains(&k)
    }
    fn groups(&self) -> usize {
        1
    }
    /// Work is handed to threads in multiples of this many units (a layout whose storage
    /// interleaves blocks of rows asks for whole blocks).
    fn unit_align(&self) -> usize {
        8
    }
    /// Bits of weight storage (fault injection numbers them `0..storage_bits()`).
    fn storage_bits(&self) -> u64 {
        self.storage_bytes() as u64 * 8
    }
    /// A copy of this matrix with storage bit `bit` flipped, derived data (row sums) left as
    /// they were — what a fault in memory does. Fault injection only; not a hot path.
    fn with_bit_flipped(&self, bit: u64) -> Box<dyn TernaryLayout>;
    /// Compute work units `units` for every activation row: `out[g]` receives, for each unit
    /// `u` in `units`, `batch` values at `(u - units.start) * batch ..`.
    fn gemm_block(&self, k: Kernel, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]);
}

/// The layouts selectable by name. `rotor` is an alias for the default rotor variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayoutKind {
    Dense,
    Rotor(Encoding, Block),
    /// Rotor P/N nibbles in table-lookup order ([`RotorTl`]).
    RotorTl,
    HfPacked,
    I2,
    Tq1,
}

impl LayoutKind {
    /// The portable rotor variant (P/N planes, one word per block): what `rotor` falls back to
    /// where no faster variant is measured. `rotor` itself is [`LayoutKind::rotor`].
    pub const ROTOR_DEFAULT: LayoutKind = LayoutKind::Rotor(Encoding::Pn, Block::Words(1));

    /// The rotor variant `--layout rotor` stands for on this CPU: the fastest one in this
    /// process's calibration ([`select`]).
    pub fn rotor() -> LayoutKind {
        select::best_rotor().0
    }

    /// True for every variant of the rotor layout (two bit-planes per weight).
    pub fn is_rotor(self) -> bool {
        matches!(self, LayoutKind::Rotor(..) | LayoutKind::RotorTl)
    }

    /// Every layout, every rotor variant included.
    pub fn all() -> Vec<LayoutKind> {
        let mut v = vec![LayoutKind::Dense];
        for enc in [Encoding::Pn, Encoding::Ms] {
            for block in [Block::Words(1), Block::Words(4), Block::Row] {
                v.push(LayoutKind::Rotor(enc, block));
            }
        }
        v.push(LayoutKind::RotorTl);
        v.extend([LayoutKind::HfPacked, LayoutKind::I2, LayoutKind::Tq1]);
        v
    }

    /// The layouts named in DESIGN.md's CLI contract (plus `dense`).
    pub fn main() -> Vec<LayoutKind> {
        vec![
            LayoutKind::rotor(),
            LayoutKind::HfPacked,
            LayoutKind::I2,
            LayoutKind::Tq1,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            LayoutKind::Dense => "dense",
            LayoutKind::Rotor(enc, block) => rotor::variant_name(enc, block),
            LayoutKind::RotorTl => "rotor-tl",
            LayoutKind::HfPacked => "hf_packed",
            LayoutKind::I2 => "i2",
            LayoutKind::Tq1 => "tq1",
        }
    }

    pub fn parse(name: &str) -> Result<LayoutKind> {
        let n = name.trim().to_ascii_lowercase().replace('-', "_");
        if n == "rotor" {
            return Ok(LayoutKind::rotor());
        }
        LayoutKind::all()
            .into_iter()
            .find(|k| k.name().replace('-', "_") == n)
            .ok_or_else(|| {
                Error::Layout(format!(
                    "unknown layout `{name}` (known: rotor, {})",
                    LayoutKind::all()
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// Kernel families this layout has kernels for.
    pub fn kernels(self) -> &'static [KernelKind] {
        match self {
            LayoutKind::Dense => dense::KERNELS,
            LayoutKind::Rotor(..) => rotor::KERNELS,
            LayoutKind::RotorTl => rotor_tl::KERNELS,
            LayoutKind::HfPacked => hf_packed::KERNELS,
            LayoutKind::I2 => i2::KERNELS,
            LayoutKind::Tq1 => tq1::KERNELS,
        }
    }

    /// The fastest kernel this CPU runs for this layout, from this process's calibration
    /// ([`select`]): what `--kernel auto` (the default) means.
    pub fn best_kernel(self) -> Kernel {
        select::best_kernel(self)
    }

    /// Check that this layout has a kernel for `k`.
    pub fn check_kernel(self, k: Kernel) -> Result<()> {
        if self.kernels().contains(&k.kind()) {
            Ok(())
        } else {
            Err(Error::Layout(format!(
                "layout `{}` has no `{}` kernel (it has: {})",
                self.name(),
                k.name(),
                self.kernels()
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    pub fn from_dense(self, t: &Ternary) -> Box<dyn TernaryLayout> {
        match self {
            LayoutKind::Dense => Box::new(Dense::from_dense(t)),
            LayoutKind::Rotor(enc, block) => Box::new(Rotor::from_dense(t, enc, block)),
            LayoutKind::RotorTl => Box::new(RotorTl::from_dense(t)),
            LayoutKind::HfPacked => Box::new(HfPacked::from_dense(t)),
            LayoutKind::I2 => Box::new(I2::from_dense(t)),
            LayoutKind::Tq1 => Box::new(Tq1::from_dense(t)),
        }
    }

    /// Convert straight from the checkpoint's packed bytes (FORMAT.md §2.1), without going
    /// through the dense form. `packed` is `[rows/4][cols]`.
    pub fn from_hf_packed(
        self,
        k: Kernel,
        packed: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Box<dyn TernaryLayout>> {
        hf_packed::check_packed(packed, rows, cols)?;
        Ok(match self {
            LayoutKind::Dense => Box::new(Dense::from_dense(&Ternary::from_hf_packed(
                packed, rows, cols,
            )?)),
            LayoutKind::Rotor(enc, block) => {
                Box::new(Rotor::from_hf_packed(k, packed, rows, cols, enc, block))
            }
            LayoutKind::RotorTl => Box::new(RotorTl::from_hf_packed(k, packed, rows, cols)),
            LayoutKind::HfPacked => Box::new(HfPacked::from_bytes(packed.to_vec(), rows, cols)?),
            LayoutKind::I2 => Box::new(I2::from_hf_packed(k, packed, rows, cols)),
            LayoutKind::Tq1 => Box::new(Tq1::from_hf_packed(k, packed, rows, cols)),
        })
    }
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl LayoutKind {
    /// Bytes this layout needs for a `rows × cols` matrix (equals `storage_bytes()` of a built
    /// matrix; tested).
    pub fn storage_bytes(self, rows: usize, cols: usize) -> usize {
        match self {
            LayoutKind::Dense => rows * cols.div_ceil(64) * 64,
            LayoutKind::Rotor(_, block) => {
                let words = cols.div_ceil(64);
                let wpr = match block {
                    Block::Words(b) => words.div_ceil(b) * b,
                    Block::Row => words.max(1),
                };
                rows * 2 * wpr * 8
            }
            LayoutKind::RotorTl => {
                rows.div_ceil(rotor_tl::TL_ROWS) * cols.div_ceil(64).max(1) * 256
            }
            LayoutKind::HfPacked => rows / 4 * cols,
            LayoutKind::I2 => rows * cols.div_ceil(i2::BLOCK) * i2::BLOCK_BYTES,
            LayoutKind::Tq1 => rows * cols.div_ceil(tq1::BLOCK) * tq1::BLOCK_BYTES,
        }
    }
}
