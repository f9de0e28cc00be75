//! Floating-point kernels: the tied bf16 output head and the dot products of attention.
//!
//! Results must not depend on the kernel chosen (logits are bit-identical across every layout
//! and kernel), so every implementation follows one fixed summation order — sixteen
//! interleaved partial sums over columns (lane `l` takes columns `c ≡ l mod 16` in order),
//! reduced pairwise (lanes `l` and `l+8`, then `l+4`, `l+2`, `l+1`) — with separate multiply
//! and add (never FMA, which rounds once instead of twice). The portable version is the
//! definition; the AVX2 (two 8-lane registers) and AVX-512 (one 16-lane register) versions do
//! the same operations in the same order, and a property test checks they are bit-identical.
//! (Letting LLVM auto-vectorize the portable code was measured at 8.5 GB/s for the 2B-4T head;
//! it produced 128-bit code with scalar inserts.)

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

/// `Σ x[c] · w[c]`, `w` in bf16, in the canonical order (identical for every kernel).
#[inline]
pub fn dot_bf16(k: Kernel, x: &[f32], w: &[u16]) -> f32 {
    assert_eq!(x.len(), w.len());
    match k.float_kind() {
        // SAFETY: `k` proves the CPU has the features each function enables.
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 => unsafe { simd::dot_bf16_avx2(x, w) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512 => unsafe { simd::dot_bf16_avx512(x, w) },
        _ => dot_bf16_generic(x, w),
    }
}

/// `Σ a[c] · b[c]` in the canonical order (identical for every kernel).
#[inline]
pub fn dot_f32(k: Kernel, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    match k.float_kind() {
        // SAFETY: `k` proves the CPU has AVX2.
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 | KernelKind::Avx512 => unsafe { simd::dot_f32_avx2(a, b) },
        _ => dot_f32_generic(a, b),
    }
}

/// Four dot products of one vector `a` with `b[0..4]`, each exactly [`dot_f32`] (same
/// canonical order, bit for bit): the SIMD version loads `a` once for the four (attention
/// scores, four keys per query).
#[inline]
pub fn dot_f32_x4(k: Kernel, a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    assert!(b.iter().all(|v| v.len() == a.len()));
    match k.float_kind() {
        // SAFETY: `k` proves the CPU has AVX2.
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 | KernelKind::Avx512 if a.len() % 16 == 0 => unsafe {
            simd::dot_f32_x4_avx2(a, b)
        },
        _ => b.map(|v| dot_f32(k, a, v)),
    }
}

/// Four bf16 rows against one vector, each exactly [`dot_bf16`] (same canonical order, bit for
/// bit): the SIMD version loads `x` once for the four rows and runs four independent
/// accumulator chains, so the add latency no longer bounds the head's single-token GEMV.
#[inline]
pub fn dot_bf16_x4(k: Kernel, x: &[f32], w: [&[u16]; 4]) -> [f32; 4] {
    dot_bf16_x4_ahead(k, x, w, 0)
}

/// [`dot_bf16_x4`] that also prefetches the cache lines `ahead` elements past each row's (a
/// hint: nothing is read; 0 = no prefetch). The head passes four rows, so that the next four
/// rows of the matrix are on their way while these are summed.
#[inline]
pub fn dot_bf16_x4_ahead(k: Kernel, x: &[f32], w: [&[u16]; 4], ahead: usize) -> [f32; 4] {
    assert!(w.iter().all(|v| v.len() == x.len()));
    match k.float_kind() {
        // SAFETY: `k` proves the CPU has AVX-512F (and AVX2).
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512 if x.len() % 16 == 0 => unsafe { simd::dot_bf16_x4_avx512(x, w, ahead) },
        _ => w.map(|v| dot_bf16(k, x, v)),
    }
}

/// Serial block of the head: out `[row][batch]` for rows `rows`.
pub fn head_block(
    k: Kernel,
    w: &[u16],
    cols: usize,
    rows: std::ops::Range<usize>,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
) {
    if batch == 1 {
        let mut i = 0;
        let rs: Vec<usize> = rows.collect();
        while i + 4 <= rs.len() {
            let wr: [&[u16]; 4] =
                std::array::from_fn(|j| &w[rs[i + j] * cols..(rs[i + j] + 1) * cols]);
            out[i..i + 4].copy_from_slice(&dot_bf16_x4_ahead(k, x, wr, 4 * cols));
            i += 4;
        }
        for (o, &r) in out[i..].iter_mut().zip(&rs[i..]) {
            *o = dot_bf16(k, x, &w[r * cols..(r + 1) * cols]);
        }
        return;
    }
    for (i, r) in rows.enumerate() {
        let wr = &w[r * cols..(r + 1) * cols];
        for b in 0..batch {
            out[i * batch + b] = dot_bf16(k, &x[b * cols..(b + 1) * cols], wr);
        }
    }
}

/// The canonical order with explicit SIMD: lanes 0–7 and 8–15 of the sixteen partial sums in
/// two AVX2 registers (or one AVX-512 register), multiply then add (no FMA), and the same
/// pairwise reduction as [`reduce`].
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// Sixteen partial sums → one, as `reduce`: (l, l+8), then (l, l+4), (l, l+2), (l, l+1).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reduce16(lo: __m256, hi: __m256) -> f32 {
        let s8 = _mm256_add_ps(lo, hi);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4)); // [s4[0]+s4[2], s4[1]+s4[3], ..]
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 0b01));
        _mm_cvtss_f32(s1)
    }

    /// Eight bf16 values (16 bytes at `p`) widened to f32.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn bf16x8(p: *const u16) -> __m256 {
        // SAFETY: the caller guarantees 16 readable bytes at `p`.
        let v = unsafe { _mm_loadu_si128(p as *const __m128i) };
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16))
    }

    #[target_feature(enable = "avx2")]
    pub fn dot_bf16_avx2(x: &[f32], w: &[u16]) -> f32 {
        let n = x.len().min(w.len());
        let full = n / 16 * 16;
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut c = 0;
        while c < full {
            // SAFETY: c + 16 ≤ n elements of both slices.
            unsafe {
                let (w0, w1) = (bf16x8(wp.add(c)), bf16x8(wp.add(c + 8)));
                let (x0, x1) = (_mm256_loadu_ps(xp.add(c)), _mm256_loadu_ps(xp.add(c + 8)));
                lo = _mm256_add_ps(lo, _mm256_mul_ps(x0, w0));
                hi = _mm256_add_ps(hi, _mm256_mul_ps(x1, w1));
            }
            c += 16;
        }
        if full < n {
            // The tail goes to lanes 0.. in order, exactly as the portable code adds it.
            let mut tx = [0f32; 16];
            let mut tw = [0u16; 16];
            tx[..n - full].copy_from_slice(&x[full..n]);
            tw[..n - full].copy_from_slice(&w[full..n]);
            // SAFETY: 16-element stack arrays.
            unsafe {
                let (w0, w1) = (bf16x8(tw.as_ptr()), bf16x8(tw.as_ptr().add(8)));
                let (x0, x1) = (
                    _mm256_loadu_ps(tx.as_ptr()),
                    _mm256_loadu_ps(tx.as_ptr().add(8)),
                );
                lo = _mm256_add_ps(lo, _mm256_mul_ps(x0, w0));
                hi = _mm256_add_ps(hi, _mm256_mul_ps(x1, w1));
            }
        }
        reduce16(lo, hi)
    }

    #[target_feature(enable = "avx2")]
    pub fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let full = n / 16 * 16;
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let mut c = 0;
        while c < full {
            // SAFETY: c + 16 ≤ n elements of both slices.
            unsafe {
                lo = _mm256_add_ps(
                    lo,
                    _mm256_mul_ps(_mm256_loadu_ps(ap.add(c)), _mm256_loadu_ps(bp.add(c))),
                );
                hi = _mm256_add_ps(
                    hi,
                    _mm256_mul_ps(
                        _mm256_loadu_ps(ap.add(c + 8)),
                        _mm256_loadu_ps(bp.add(c + 8)),
                    ),
                );
            }
            c += 16;
        }
        if full < n {
            let mut ta = [0f32; 16];
            let mut tb = [0f32; 16];
            ta[..n - full].copy_from_slice(&a[full..n]);
            tb[..n - full].copy_from_slice(&b[full..n]);
            // SAFETY: 16-element stack arrays.
            unsafe {
                lo = _mm256_add_ps(
                    lo,
                    _mm256_mul_ps(_mm256_loadu_ps(ta.as_ptr()), _mm256_loadu_ps(tb.as_ptr())),
                );
                hi = _mm256_add_ps(
                    hi,
                    _mm256_mul_ps(
                        _mm256_loadu_ps(ta.as_ptr().add(8)),
                        _mm256_loadu_ps(tb.as_ptr().add(8)),
                    ),
                );
            }
        }
        reduce16(lo, hi)
    }

    /// Four dot products sharing the loads of `a` (`a.len()` a multiple of 16): per dot the
    /// same two 8-lane partial sums, multiplies and adds as [`dot_f32_avx2`].
    #[target_feature(enable = "avx2")]
    pub fn dot_f32_x4_avx2(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
        let n = a.len();
        debug_assert!(n % 16 == 0 && b.iter().all(|v| v.len() == n));
        let mut lo = [_mm256_setzero_ps(); 4];
        let mut hi = [_mm256_setzero_ps(); 4];
        let ap = a.as_ptr();
        let bp = b.map(|v| v.as_ptr());
        let mut c = 0;
        while c < n {
            // SAFETY: c + 16 ≤ n elements of `a` and of every `b[j]` (asserted by the caller).
            unsafe {
                let (a0, a1) = (_mm256_loadu_ps(ap.add(c)), _mm256_loadu_ps(ap.add(c + 8)));
                for j in 0..4 {
                    lo[j] = _mm256_add_ps(lo[j], _mm256_mul_ps(a0, _mm256_loadu_ps(bp[j].add(c))));
                    hi[j] =
                        _mm256_add_ps(hi[j], _mm256_mul_ps(a1, _mm256_loadu_ps(bp[j].add(c + 8))));
                }
            }
            c += 16;
        }
        std::array::from_fn(|j| reduce16(lo[j], hi[j]))
    }

    /// AVX-512: the sixteen partial sums in one register; the reduction splits it into the
    /// same two halves as the AVX2 version.
    #[target_feature(enable = "avx512f,avx2")]
    pub fn dot_bf16_avx512(x: &[f32], w: &[u16]) -> f32 {
        let n = x.len().min(w.len());
        let full = n / 16 * 16;
        let mut acc = _mm512_setzero_ps();
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut c = 0;
        while c < full {
            // SAFETY: c + 16 ≤ n elements of both slices.
            unsafe {
                let wv = _mm256_loadu_si256(wp.add(c) as *const __m256i);
                let wf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(wv), 16));
                acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(xp.add(c)), wf));
            }
            c += 16;
        }
        let lo = _mm512_castps512_ps256(acc);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
        if full < n {
            let mut tx = [0f32; 16];
            let mut tw = [0u16; 16];
            tx[..n - full].copy_from_slice(&x[full..n]);
            tw[..n - full].copy_from_slice(&w[full..n]);
            return reduce16_tail(lo, hi, &tx, &tw);
        }
        reduce16(lo, hi)
    }

    /// Four rows of [`dot_bf16_avx512`] sharing the loads of `x` (`x.len()` a multiple of 16).
    #[target_feature(enable = "avx512f,avx2")]
    pub fn dot_bf16_x4_avx512(x: &[f32], w: [&[u16]; 4], ahead: usize) -> [f32; 4] {
        let n = x.len();
        let mut acc = [_mm512_setzero_ps(); 4];
        let xp = x.as_ptr();
        let wp = w.map(|v| v.as_ptr());
        let mut c = 0;
        while c < n {
            // SAFETY: c + 16 ≤ n elements of `x` and of every row (asserted by the caller);
            // prefetches never fault, whatever the address.
            unsafe {
                if ahead > 0 && c % 32 == 0 {
                    for p in &wp {
                        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(ahead + c) as *const i8);
                    }
                }
                let xv = _mm512_loadu_ps(xp.add(c));
                for j in 0..4 {
                    let wv = _mm256_loadu_si256(wp[j].add(c) as *const __m256i);
                    let wf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(wv), 16));
                    acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(xv, wf));
                }
            }
            c += 16;
        }
        std::array::from_fn(|j| {
            let lo = _mm512_castps512_ps256(acc[j]);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[j]), 1));
            reduce16(lo, hi)
        })
    }

    #[target_feature(enable = "avx2")]
    fn reduce16_tail(mut lo: __m256, mut hi: __m256, tx: &[f32; 16], tw: &[u16; 16]) -> f32 {
        // SAFETY: 16-element arrays.
        unsafe {
            let (w0, w1) = (bf16x8(tw.as_ptr()), bf16x8(tw.as_ptr().add(8)));
            let (x0, x1) = (
                _mm256_loadu_ps(tx.as_ptr()),
                _mm256_loadu_ps(tx.as_ptr().add(8)),
            );
            lo = _mm256_add_ps(lo, _mm256_mul_ps(x0, w0));
            hi = _mm256_add_ps(hi, _mm256_mul_ps(x1, w1));
        }
        reduce16(lo, hi)
    }
}

/// For the tests: the portable canonical-order dot products.
pub fn dot_bf16_portable(x: &[f32], w: &[u16]) -> f32 {
    dot_bf16_generic(x, w)
}
pub fn dot_f32_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_f32_generic(a, b)
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
