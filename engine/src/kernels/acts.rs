//! Quantized activations as the kernels read them.
//!
//! A batch of int8 rows, each zero-padded to [`act_stride`] columns, with their row sums, and
//! — for batches of more than one row — the same values rearranged into *panels* for the
//! batched (GEMM) kernels:
//! ```text
//!   panel p (tokens 16p .. 16p+15), group g (columns 4g .. 4g+3):   64 bytes at (p·G + g)·64
//!   byte 4j + i = x[16p + j][4g + i]                                (G = stride / 4)
//! ```
//! This is the "VNNI" order of `vpdpbusd` and of AMX's B tiles: one 64-byte load holds four
//! consecutive columns of sixteen tokens, so a single broadcast weight dword (four columns of
//! one row) multiplies sixteen tokens at once, and sixteen consecutive groups form one 1 KiB
//! AMX tile. Tokens past the batch are zero. Panels are built once per product input and shared
//! by every matrix and thread that reads that input.

/// Activation rows are zero-padded to a multiple of this many columns: a common multiple of
/// every layout's block width (64-bit words, 128-column i2 blocks, 160-column tq1 blocks, 256-
/// column rotor blocks), so every kernel can run whole blocks without a tail loop.
pub const ACT_ALIGN: usize = 1280;

/// Tokens per activation panel (the `vpdpbusd` zmm width in dwords, and AMX's tile width).
pub const PANEL: usize = 16;

/// Row stride (in bytes) of a padded activation row of `cols` columns.
pub fn act_stride(cols: usize) -> usize {
    cols.div_ceil(ACT_ALIGN) * ACT_ALIGN
}

/// A batch of int8 activation rows, zero-padded to `stride` columns.
#[derive(Clone, Copy, Debug)]
pub struct Acts<'a> {
    /// `batch × stride` values; columns `cols..stride` of every row are zero.
    pub data: &'a [i8],
    /// Σ_c x[b][c] for every row (layouts with offset codes subtract it).
    pub sums: &'a [i32],
    /// The rows in panel order (module docs), `ceil(batch/16)·16·stride` bytes, or empty when
    /// they were not prepared (batch 1, or a caller that did not ask): kernels that want
    /// panels then build their own.
    pub panels: &'a [i8],
    pub batch: usize,
    pub cols: usize,
    pub stride: usize,
}

impl<'a> Acts<'a> {
    pub fn row(&self, b: usize) -> &'a [i8] {
        &self.data[b * self.stride..(b + 1) * self.stride]
    }

    /// Number of 16-token panels.
    pub fn panel_count(&self) -> usize {
        self.batch.div_ceil(PANEL)
    }

    /// True when [`Acts::panels`] holds this batch's panels.
    pub fn has_panels(&self) -> bool {
        self.panels.len() == self.panel_count() * PANEL * self.stride
    }
}

/// Rearrange `batch` rows of `stride` bytes into panels (module docs); `out` is resized.
pub fn build_panels(data: &[i8], batch: usize, stride: usize, out: &mut Vec<i8>) {
    use rayon::prelude::*;
    let panels = batch.div_ceil(PANEL);
    out.clear();
    out.resize(panels * PANEL * stride, 0);
    let groups = stride / 4;
    out.par_chunks_mut(PANEL * stride)
        .enumerate()
        .for_each(|(p, dst)| {
            for j in 0..PANEL.min(batch - p * PANEL) {
                let src = &data[(p * PANEL + j) * stride..(p * PANEL + j + 1) * stride];
                for g in 0..groups {
                    dst[g * 64 + 4 * j..g * 64 + 4 * j + 4].copy_from_slice(&src[4 * g..4 * g + 4]);
                }
            }
        });
}

/// An owned, reusable buffer of padded activation rows.
#[derive(Clone, Debug, Default)]
pub struct ActBuf {
    pub data: Vec<i8>,
    pub sums: Vec<i32>,
    /// Panel order of `data` for batched kernels ([`ActBuf::prepare_panels`]); empty until
    /// prepared, and cleared by [`ActBuf::reset`].
    pub panels: Vec<i8>,
    /// The unquantized rows (`[batch][cols]`), only in the f32-activation research mode
    /// ([`crate::quant::ActPrecision::F32`]); empty otherwise, and then `data` is the input.
    pub float: Vec<f32>,
    pub batch: usize,
    pub cols: usize,
    pub stride: usize,
}

impl ActBuf {
    /// Copy unpadded rows (`batch × cols`) into a padded buffer and compute row sums (and
    /// panels, for batches of more than one row).
    pub fn from_rows(rows: &[i8], batch: usize, cols: usize) -> ActBuf {
        assert_eq!(rows.len(), batch * cols, "activation rows: batch × cols");
        let mut buf = ActBuf::default();
        buf.reset(batch, cols);
        for b in 0..batch {
            buf.data[b * buf.stride..b * buf.stride + cols]
                .copy_from_slice(&rows[b * cols..(b + 1) * cols]);
            buf.sums[b] = rows[b * cols..(b + 1) * cols]
                .iter()
                .map(|&v| v as i32)
                .sum();
        }
        buf.prepare_panels();
        buf
    }

    /// Resize for `batch` rows of `cols` columns, all zero (panels dropped).
    pub fn reset(&mut self, batch: usize, cols: usize) {
        self.batch = batch;
        self.cols = cols;
        self.stride = act_stride(cols);
        self.data.clear();
        self.data.resize(batch * self.stride, 0);
        self.sums.clear();
        self.sums.resize(batch, 0);
        self.panels.clear();
        self.float.clear();
    }

    /// (Re)build the panels from `data` when the batch has more than one row; call after
    /// changing `data`.
    pub fn prepare_panels(&mut self) {
        if self.batch > 1 {
            build_panels(&self.data, self.batch, self.stride, &mut self.panels);
        } else {
            self.panels.clear();
        }
    }

    pub fn view(&self) -> Acts<'_> {
        Acts {
            data: &self.data[..self.batch * self.stride],
            sums: &self.sums[..self.batch],
            panels: &self.panels,
            batch: self.batch,
            cols: self.cols,
            stride: self.stride,
        }
    }
}
