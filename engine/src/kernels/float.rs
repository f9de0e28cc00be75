//! Floating-point kernels: the tied bf16 output head and the dot products of attention.
//!
//! Results must not depend on the kernel chosen (logits are bit-identical across every layout
//! and kernel), so each function is written once in portable Rust with a fixed summation
//! order — sixteen interleaved partial sums over columns, reduced pairwise (lanes `l` and
//! `l+8`, then `l+4`, `l+2`, `l+1`) — and separate multiply and add (Rust never contracts
//! them into FMA). The same source is then compiled three times: baseline, and inside
//! `#[target_feature]` wrappers for AVX2 and AVX-512, where LLVM turns the sixteen lanes
//! into vector registers. Same operations, same order: bit-identical results, full speed.

use rayon::prelude::*;

use crate::kernels::{Kernel, KernelKind};

const LANES: usize = 16;

#[inline(always)]
fn bf16_to_f32(v: u16) -> f32 {
    f32::from_bits((v as u32) << 16)
}

#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    let mut s8 = [0f32; 8];
    for l in 0..8 {
        s8[l] = acc[l] + acc[l + 8];
    }
    let mut s4 = [0f32; 4];
    for l in 0..4 {
        s4[l] = s8[l] + s8[l + 4];
    }
    let s2 = [s4[0] + s4[2], s4[1] + s4[3]];
    s2[0] + s2[1]
}

/// `Σ x[c] · w[c]` with `w` in bf16, in the canonical order.
#[inline(always)]
fn dot_bf16_generic(x: &[f32], w: &[u16]) -> f32 {
    debug_assert_eq!(x.len(), w.len());
    let mut acc = [0f32; LANES];
    let mut xc = x.chunks_exact(LANES);
    let mut wc = w.chunks_exact(LANES);
    for (xs, ws) in (&mut xc).zip(&mut wc) {
        for l in 0..LANES {
            acc[l] += xs[l] * bf16_to_f32(ws[l]);
        }
    }
    for (l, (&a, &b)) in xc.remainder().iter().zip(wc.remainder()).enumerate() {
        acc[l] += a * bf16_to_f32(b);
    }
    reduce(acc)
}

/// `Σ a[c] · b[c]` in f32, in the canonical order.
#[inline(always)]
fn dot_f32_generic(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let mut ac = a.chunks_exact(LANES);
    let mut bc = b.chunks_exact(LANES);
    for (xs, ys) in (&mut ac).zip(&mut bc) {
        for l in 0..LANES {
            acc[l] += xs[l] * ys[l];
        }
    }
    for (l, (&x, &y)) in ac.remainder().iter().zip(bc.remainder()).enumerate() {
        acc[l] += x * y;
    }
    reduce(acc)
}

/// Rows `rows` of `w` (bf16, `[_][cols]`) against `batch` rows of `x`: out `[row][batch]`.
#[inline(always)]
fn head_block_generic(
    w: &[u16],
    cols: usize,
    rows: std::ops::Range<usize>,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
) {
    for (i, r) in rows.enumerate() {
        let wr = &w[r * cols..(r + 1) * cols];
        for b in 0..batch {
            out[i * batch + b] = dot_bf16_generic(&x[b * cols..(b + 1) * cols], wr);
        }
    }
}

macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)? => $generic:ident) => {
        $(#[$m])*
        pub fn $name(k: Kernel, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            mod arch {
                use super::*;
                #[target_feature(enable = "avx2")]
                pub fn avx2($($arg: $ty),*) $(-> $ret)? { $generic($($arg),*) }
                #[target_feature(enable = "avx512f,avx512bw")]
                pub fn avx512($($arg: $ty),*) $(-> $ret)? { $generic($($arg),*) }
            }
            match k.kind() {
                // SAFETY: `k` proves the CPU has the features each wrapper enables.
                #[cfg(target_arch = "x86_64")]
                KernelKind::Avx2 => unsafe { arch::avx2($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                KernelKind::Avx512 => unsafe { arch::avx512($($arg),*) },
                _ => $generic($($arg),*),
            }
        }
    };
}

multiversion! {
    /// `Σ x[c] · w[c]`, `w` in bf16 (canonical order; identical for every kernel).
    fn dot_bf16(x: &[f32], w: &[u16]) -> f32 => dot_bf16_generic
}

multiversion! {
    /// `Σ a[c] · b[c]` (canonical order; identical for every kernel).
    fn dot_f32(a: &[f32], b: &[f32]) -> f32 => dot_f32_generic
}

multiversion! {
    /// Serial block of the head: out `[row][batch]` for rows `rows`.
    fn head_block(w: &[u16], cols: usize, rows: std::ops::Range<usize>, x: &[f32], batch: usize, out: &mut [f32]) => head_block_generic
}

/// The tied output head: `out[b][r] = Σ_c x[b][c] · w[r][c]` for a bf16 matrix
/// `w [rows][cols]`, in parallel over rows. `tmp` is scratch of `rows × batch` (reused).
pub fn head_gemm(
    k: Kernel,
    w: &[u16],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
    tmp: &mut Vec<f32>,
) {
    assert_eq!(w.len(), rows * cols);
    assert_eq!(x.len(), batch * cols);
    assert_eq!(out.len(), batch * rows);
    let chunk = 256;
    let dst: &mut [f32] = if batch == 1 {
        out
    } else {
        tmp.resize(rows * batch, 0.0);
        &mut tmp[..]
    };
    dst.par_chunks_mut(chunk * batch)
        .enumerate()
        .for_each(|(i, o)| {
            let r = i * chunk..((i + 1) * chunk).min(rows);
            head_block(k, w, cols, r, x, batch, o);
        });
    if batch > 1 {
        // [row][batch] -> [batch][row]
        out.par_chunks_mut(rows).enumerate().for_each(|(b, orow)| {
            for (r, o) in orow.iter_mut().enumerate() {
                *o = tmp[r * batch + b];
            }
        });
    }
}
