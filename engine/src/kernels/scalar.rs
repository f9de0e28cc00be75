//! Portable kernels, one per layout: the per-layout oracles.
//!
//! Plain loops with no intrinsics and no unsafe, compiled on every target. Each is checked
//! bit-exactly against [`Ternary::gemm_oracle`](crate::ternary::Ternary::gemm_oracle) by the
//! property tests, and each SIMD kernel is checked against both. Outputs are `[row][batch]`.
//!
//! Accumulators are `i32`: |Σ| ≤ 128·cols, safe for any cols < 2^24.

use std::ops::Range;

use crate::kernels::acts::Acts;
use crate::kernels::views::{
    DenseView, I2_BLOCK, I2_BLOCK_BYTES, I2View, PackedView, RotorView, Tq1View, tq1code,
};

/// Int8 multiply-accumulate over the dense layout.
pub fn dense_gemm(w: &DenseView, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let (batch, cols) = (x.batch, w.cols);
    for (i, r) in units.enumerate() {
        let row = &w.data[r * w.stride..r * w.stride + cols];
        for b in 0..batch {
            let xr = &x.row(b)[..cols];
            out[i * batch + b] = row.iter().zip(xr).map(|(&a, &v)| a as i32 * v as i32).sum();
        }
    }
}

/// Sign-select and add: walk the set bits of the P and N planes, add or subtract `x[c]`.
/// Cost follows the number of non-zero weights; no multiply anywhere.
pub fn rotor_gemm(w: &RotorView, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let batch = x.batch;
    for (i, r) in units.enumerate() {
        let row = w.row_words(r);
        for b in 0..batch {
            let xr = x.row(b);
            let mut acc = 0i32;
            for (k, ia, ib) in w.word_index() {
                let (mut p, mut n) = w.pn(row[ia], row[ib]);
                let xs = &xr[k * 64..k * 64 + 64];
                while p != 0 {
                    acc += xs[p.trailing_zeros() as usize] as i32;
                    p &= p - 1;
                }
                while n != 0 {
                    acc -= xs[n.trailing_zeros() as usize] as i32;
                    n &= n - 1;
                }
            }
            out[i * batch + b] = acc;
        }
    }
}

/// The checkpoint layout: each packed byte row feeds four output rows (groups).
pub fn hf_packed_gemm(w: &PackedView, x: &Acts, units: Range<usize>, out: &mut [&mut [i32]]) {
    let batch = x.batch;
    for (i, r) in units.enumerate() {
        let bytes = w.byte_row(r);
        for b in 0..batch {
            let xr = x.row(b);
            let mut acc = [0i32; 4];
            for (&byte, &v) in bytes.iter().zip(xr) {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += ((byte >> (2 * j)) & 3) as i32 * v as i32;
                }
            }
            for (j, a) in acc.iter().enumerate() {
                out[j][i * batch + b] = a - x.sums[b];
            }
        }
    }
}

/// I2: codes `t + 1` times `x`, minus `Σ x`.
pub fn i2_gemm(w: &I2View, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let batch = x.batch;
    for (i, r) in units.enumerate() {
        let row = w.row(r);
        for b in 0..batch {
            let xr = x.row(b);
            let mut acc = 0i32;
            for (blk, bytes) in row.chunks_exact(I2_BLOCK_BYTES).enumerate() {
                let xb = &xr[blk * I2_BLOCK..(blk + 1) * I2_BLOCK];
                for (m, &byte) in bytes.iter().enumerate() {
                    for g in 0..4 {
                        let code = (byte >> (6 - 2 * g)) & 3;
                        acc += code as i32 * xb[32 * g + m] as i32;
                    }
                }
            }
            out[i * batch + b] = acc - x.sums[b];
        }
    }
}

/// Tq1: decode five base-3 digits per byte, multiply, minus `Σ x`.
pub fn tq1_gemm(w: &Tq1View, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let batch = x.batch;
    for (i, r) in units.enumerate() {
        let row = w.row(r);
        for b in 0..batch {
            let xr = x.row(b);
            let mut acc = 0i32;
            for (blk, bytes) in row.chunks_exact(tq1code::BLOCK_BYTES).enumerate() {
                let xb = &xr[blk * tq1code::BLOCK..(blk + 1) * tq1code::BLOCK];
                for (m, &byte) in bytes.iter().enumerate() {
                    for d in 0..5 {
                        acc += tq1code::decode_digit(byte, d) as i32 * xb[32 * d + m] as i32;
                    }
                }
            }
            out[i * batch + b] = acc - x.sums[b];
        }
    }
}

/// Extract the P/N planes of the four output rows held by one packed byte row
/// (`src[c]` for every column). `p[j]`/`n[j]` must be zeroed, one word per 64 columns.
pub fn hf_to_planes(src: &[u8], p: &mut [Vec<u64>; 4], n: &mut [Vec<u64>; 4]) {
    for (c, &byte) in src.iter().enumerate() {
        let (w, bit) = (c / 64, c % 64);
        for j in 0..4 {
            let code = (byte >> (2 * j)) & 3;
            p[j][w] |= ((code == 2) as u64) << bit;
            n[j][w] |= ((code == 0) as u64) << bit;
        }
    }
}

/// The `rotor-tl` order: walk each row's P and N nibbles (`TlView` docs), add or subtract.
pub fn tl_gemm(w: &crate::kernels::views::TlView, x: &Acts, units: Range<usize>, out: &mut [i32]) {
    let batch = x.batch;
    let bb = w.block_bytes();
    for (o, r) in units.enumerate() {
        let (b, i) = (r / 16, r % 16);
        let block = &w.data[b * bb..(b + 1) * bb];
        for bt in 0..batch {
            let xr = x.row(bt);
            let mut acc = 0i32;
            for quad in 0..4 * w.words {
                for q in 0..4 {
                    let byte = block[quad * 64 + 4 * i + q];
                    for bit in 0..4 {
                        let v = xr[16 * quad + 4 * q + bit] as i32;
                        acc +=
                            ((byte >> bit) & 1) as i32 * v - ((byte >> (4 + bit)) & 1) as i32 * v;
                    }
                }
            }
            out[o * batch + bt] = acc;
        }
    }
}
