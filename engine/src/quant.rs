//! Quantization as BitNet b1.58 defines it (FORMAT.md §3, §4).
//!
//! - Activations: per token (row), absmax to int8. `s = 127 / max(max|x|, 1e-5)` in f32,
//!   `q = clamp(round_half_even(x·s), −128, 127)`. Because `s` maps the largest magnitude to
//!   exactly 127, `q` never goes below −127. The dequantized projection output is
//!   `(Σ q·t) / s · weight_scale`, computed from the exact integer sum.
//! - Weights (the bf16 master checkpoint, `online` mode): per tensor absmean.
//!   `s = 1 / max(mean|W|, 1e-5)`, `t = clamp(round_half_even(W·s), −1, 1)`, effective scale
//!   `1/s` (all in f32, as transformers' `WeightQuant`).

use crate::ternary::ActBuf;

/// The floor under a row's absmax (transformers clamps at 1e-5).
pub const ABSMAX_FLOOR: f32 = 1e-5;

/// Round half to even, for |x| < 2^22 (larger magnitudes come back within one unit, with their
/// sign: fine for every caller, which clamps to a few units). Adding and subtracting 1.5·2^23
/// leaves no fraction bits, so the FPU's round-to-nearest-even does the rounding; unlike
/// `f32::round_ties_even` this needs no SSE4.1 `roundss` or libm call on baseline x86_64.
#[inline(always)]
pub fn round_half_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    (x + MAGIC) - MAGIC
}

/// How projection inputs are quantized before the ternary product.
///
/// `Int(8)` is BitNet b1.58 (FORMAT.md §3) and the default. `Int(b)` for `b < 8` is the same
/// absmax rule with `Q_b = 2^(b−1) − 1` levels per sign (lossy research variants: the integer
/// path stays exact, only the inputs are coarser). `F32` skips quantization: the projections
/// multiply the unquantized activations by the ternary weights in f32 (a slow reference path
/// for the perplexity experiment, through the dense ternary form; no verification there).
/// `Q8K` emulates llama.cpp's activations for its TQ types: int8 per block of 256 values
/// (ggml's `Q8_K`: scale `max/127` of each block, the signed extreme maps to ∓127, round half
/// to even), dequantized and multiplied in f32 on the same reference path — a research variant
/// that lets the `crosscheck` experiment measure how much of the difference from llama.cpp this
/// one choice makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActPrecision {
    Int(u8),
    F32,
    Q8K,
}

impl Default for ActPrecision {
    fn default() -> Self {
        ActPrecision::Int(8)
    }
}

impl ActPrecision {
    /// `int8` (default), `int2`..`int7`, or `f32`.
    pub fn parse(s: &str) -> crate::Result<ActPrecision> {
        let bad = || {
            crate::Error::Invalid(format!(
                "unknown activation precision {s:?}: expected int8 (BitNet b1.58), int2..int7 \
                 (lossy), f32 (unquantized) or q8k (llama.cpp's int8 per 256-block, emulated \
                 in f32)"
            ))
        };
        match s {
            "f32" => Ok(ActPrecision::F32),
            "q8k" | "q8_k" => Ok(ActPrecision::Q8K),
            _ => {
                let bits: u8 = s
                    .strip_prefix("int")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if (2..=8).contains(&bits) {
                    Ok(ActPrecision::Int(bits))
                } else {
                    Err(bad())
                }
            }
        }
    }

    pub fn name(self) -> String {
        match self {
            ActPrecision::Int(b) => format!("int{b}"),
            ActPrecision::F32 => "f32".into(),
            ActPrecision::Q8K => "q8k".into(),
        }
    }

    /// The largest quantized magnitude (`127` for int8), or `None` for f32.
    pub fn qmax(self) -> Option<f32> {
        match self {
            ActPrecision::Int(b) => Some(((1i32 << (b - 1)) - 1) as f32),
            ActPrecision::F32 | ActPrecision::Q8K => None,
        }
    }
}

/// `max |x|` (0 for an empty row), in eight independent lanes: `max` is exact and order-free,
/// so this is the same value as a left fold, without a chain of dependent `max`es (a serial
/// fold spent ≈ 4 cycles per element on it).
pub fn absmax(x: &[f32]) -> f32 {
    let mut m = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (mi, &v) in m.iter_mut().zip(c) {
            *mi = mi.max(v.abs());
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |a, &v| a.max(v.abs()));
    m.iter().fold(tail, |a, &v| a.max(v))
}

/// Quantize one row into `out` (the first `x.len()` entries; the rest is left alone).
/// Returns the scale `s` and `Σ q`.
#[inline]
pub fn quantize_row(x: &[f32], out: &mut [i8]) -> (f32, i32) {
    quantize_row_to(x, 127.0, out)
}

/// [`quantize_row`] with `qmax` levels per sign: `s = qmax / max|x|`,
/// `q = clamp(round_half_even(x·s), −qmax, qmax)` (for `qmax = 127` the clamp never binds
/// below −127, so this is exactly FORMAT.md's `[−128, 127]` clamp).
#[inline]
pub fn quantize_row_to(x: &[f32], qmax: f32, out: &mut [i8]) -> (f32, i32) {
    let s = qmax / absmax(x).max(ABSMAX_FLOOR);
    let mut sum = 0i32;
    for (o, &v) in out.iter_mut().zip(x) {
        let q = round_half_even(v * s).clamp(-qmax, qmax) as i8;
        *o = q;
        sum += q as i32;
    }
    (s, sum)
}

/// Quantize `batch` rows of `cols` values into a padded activation buffer; `scales[b] = s`.
pub fn quantize_batch(
    x: &[f32],
    batch: usize,
    cols: usize,
    buf: &mut ActBuf,
    scales: &mut Vec<f32>,
) {
    quantize_batch_as(x, batch, cols, ActPrecision::Int(8), buf, scales)
}

/// [`quantize_batch`] at precision `p`. For [`ActPrecision::F32`] the rows are copied into
/// `buf.float` unquantized (integer data all zero) and every scale is 1.
pub fn quantize_batch_as(
    x: &[f32],
    batch: usize,
    cols: usize,
    p: ActPrecision,
    buf: &mut ActBuf,
    scales: &mut Vec<f32>,
) {
    assert_eq!(x.len(), batch * cols);
    buf.reset(batch, cols);
    scales.clear();
    let Some(qmax) = p.qmax() else {
        buf.float.extend_from_slice(x);
        if p == ActPrecision::Q8K {
            for row in buf.float.chunks_exact_mut(cols) {
                for block in row.chunks_mut(256) {
                    q8k_block(block);
                }
            }
        }
        scales.resize(batch, 1.0);
        return;
    };
    let stride = buf.stride;
    // Rows are independent; several (prefill) run in parallel on the current pool.
    let per_row = |(xr, dr): (&[f32], &mut [i8])| quantize_row_to(xr, qmax, &mut dr[..cols]);
    let res: Vec<(f32, i32)> = if batch >= 4 {
        use rayon::prelude::*;
        x.par_chunks_exact(cols)
            .zip(buf.data.par_chunks_exact_mut(stride))
            .map(per_row)
            .collect()
    } else {
        x.chunks_exact(cols)
            .zip(buf.data.chunks_exact_mut(stride))
            .map(per_row)
            .collect()
    };
    for (b, (s, sum)) in res.into_iter().enumerate() {
        buf.sums[b] = sum;
        scales.push(s);
    }
    buf.prepare_panels();
}

/// Quantize one block to int8 as ggml's `quantize_row_q8_K_ref` does and write back the
/// dequantized values: `iscale = −127 / x_m` where `x_m` is the element of largest magnitude
/// (the first one on ties), `q = min(127, round_half_even(iscale · x))`, `x̂ = q / iscale`; an
/// all-zero block stays zero.
pub fn q8k_block(x: &mut [f32]) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x.iter() {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        x.fill(0.0);
        return;
    }
    let iscale = -127.0f32 / max;
    let d = 1.0f32 / iscale;
    for v in x.iter_mut() {
        *v = round_half_even(iscale * *v).min(127.0) * d;
    }
}

/// Absmean ternarization of a master weight tensor (`online` mode, transformers' `WeightQuant`).
/// Returns the ternary values and the effective per-tensor scale `1/s`.
pub fn absmean_ternarize(w: &[f32]) -> (Vec<i8>, f32) {
    // The mean in f64, rounded once to f32: the correctly rounded mean (torch's own f32
    // reduction can differ from it by an ulp; FORMAT.md tolerances cover that).
    let mean = (w.iter().map(|&v| v.abs() as f64).sum::<f64>() / w.len().max(1) as f64) as f32;
    let s = 1.0f32 / mean.max(ABSMAX_FLOOR);
    let t = w
        .iter()
        .map(|&v| round_half_even(v * s).clamp(-1.0, 1.0) as i8)
        .collect();
    (t, 1.0f32 / s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn q8k_block_is_ggmls_rule() {
        // x_m = −4: iscale = 31.75; 2·31.75 = 63.5 rounds to even 64; the extreme to −127.
        let mut x = [2.0f32, -4.0, 1.0, 0.0];
        super::q8k_block(&mut x);
        let d = 1.0f32 / 31.75;
        assert_eq!(x, [64.0 * d, -127.0 * d, 32.0 * d, 0.0]);
        assert_eq!(x[1], -4.0);
        let mut z = [0.0f32; 5];
        super::q8k_block(&mut z);
        assert_eq!(z, [0.0; 5]);
        // Blocks of 256 are independent: a large value in one block does not coarsen another.
        let mut buf = crate::ternary::ActBuf::default();
        let mut scales = vec![];
        let row: Vec<f32> = (0..512)
            .map(|i| if i < 256 { 1000.0 } else { 0.5 })
            .collect();
        super::quantize_batch_as(
            &row,
            1,
            512,
            super::ActPrecision::Q8K,
            &mut buf,
            &mut scales,
        );
        // 1000 comes back as −127 / (−127/1000) = 999.99994 in f32, as in ggml.
        assert!(buf.float[..256].iter().all(|&v| (v - 1000.0).abs() < 1e-3));
        assert!(
            buf.float[256..].iter().all(|&v| v == 0.5),
            "{:?}",
            &buf.float[256..260]
        );
        assert_eq!(
            super::ActPrecision::parse("q8k").unwrap(),
            super::ActPrecision::Q8K
        );
    }

    #[test]
    fn absmax_is_the_serial_fold() {
        let mut seed = 7u32;
        for n in 0..40 {
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 8) as f32 / 65536.0 - 128.0
                })
                .collect();
            let want = x.iter().fold(0f32, |m, &v| m.max(v.abs()));
            assert_eq!(absmax(&x).to_bits(), want.to_bits(), "length {n}");
        }
    }

    use super::*;

    #[test]
    fn rounds_half_to_even_and_maps_absmax_to_127() {
        // x·s lands exactly on .5 for these: 127/254 = 0.5 per unit.
        let x = [254.0f32, 1.0, 3.0, -1.0, -5.0, 0.0];
        let mut q = [0i8; 6];
        let (s, sum) = quantize_row(&x, &mut q);
        assert_eq!(s, 0.5);
        assert_eq!(q, [127, 0, 2, 0, -2, 0]); // 0.5→0, 1.5→2, -0.5→-0, -2.5→-2
        assert_eq!(sum, 127);
    }

    #[test]
    fn magic_rounding_equals_round_ties_even() {
        let mut r = crate::sample::Rng::new(3);
        for i in 0..2_000_000 {
            let x = match i % 4 {
                0 => (r.next_f32() - 0.5) * 300.0,
                1 => ((r.next_u64() % 600) as f32 - 300.0) * 0.5, // exact ties
                2 => (r.next_f32() - 0.5) * 8e6,
                _ => f32::from_bits(r.next_u64() as u32 & 0xca7f_ffff), // |x| < 2^22, both signs
            };
            assert_eq!(round_half_even(x), x.round_ties_even(), "{x}");
        }
    }

    #[test]
    fn all_zero_row_uses_the_floor() {
        let mut q = [1i8; 3];
        let (s, sum) = quantize_row(&[0.0; 3], &mut q);
        assert_eq!(s, 127.0 / ABSMAX_FLOOR);
        assert_eq!((q, sum), ([0; 3], 0));
    }

    #[test]
    fn absmean_matches_the_definition() {
        let w = [0.1f32, -0.3, 0.05, 0.2, -0.02, 0.0];
        let (t, scale) = absmean_ternarize(&w);
        let mean = w.iter().map(|v| v.abs()).sum::<f32>() / 6.0; // 0.11166…
        assert!((scale - mean).abs() < 1e-7);
        assert_eq!(t, vec![1, -1, 0, 1, 0, 0]);
    }
}
