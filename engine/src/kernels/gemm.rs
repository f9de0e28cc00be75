//! Batched ternary products (prefill): decode each block of weight rows once, reuse it for the
//! whole batch.
//!
//! For a batch of more than one activation row, a kernel that re-expands the weights for
//! every token spends its time decoding, not multiplying. Here a layout's *decoder* turns
//! [`MR`] rows of its storage into codes `t + 1 ∈ {0, 1, 2}` (one unsigned byte per weight,
//! row-major, `stride` bytes a row) in a thread-local buffer of `MR · stride` bytes (≤ 221 KiB
//! at the model's widest input, 6912 → stride 7680: L2-resident), and a shared *inner product*
//! multiplies that block by every 16-token panel of the activations
//! ([`Acts::panels`](super::acts::Acts)):
//!
//! - `amx`: `tdpbusd` on tiles — A = 16 rows × 64 codes (u8), B = 16 column groups × 16 tokens
//!   × 4 bytes (i8, exactly one 1 KiB slice of a panel), C = 16 rows × 16 tokens (i32); two A
//!   and two B tiles per step feed four C tiles (32 rows × 32 tokens, 8 tile registers).
//! - `avx512vnni`: `vpdpbusd` zmm — a weight dword (four codes of one row) broadcast against a
//!   panel's 64-byte group (four columns of sixteen tokens); 8 rows × 2 panels = 16
//!   accumulators, each a row's sixteen token sums.
//!
//! Both compute `C[r][b] = Σ_c code[r][c] · x[b][c] = Σ_c t·x + Σ_c x[b][c]`, and the driver
//! subtracts the activation row sums: exact integers (products ≤ 2·128, four per dword lane,
//! no saturation anywhere), the same as the oracle. Both are written over a trait with an
//! emulated instance (`x86_64::amx::Emulated`, `simd512::Emulated`), so the logic is tested on
//! any machine.

use std::cell::RefCell;
use std::ops::Range;

use super::Kernel;
use super::acts::{Acts, PANEL, build_panels};

/// Weight rows decoded per block (two AMX A-tiles).
pub const MR: usize = 32;

thread_local! {
    static CODES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static PANELS: RefCell<Vec<i8>> = const { RefCell::new(Vec::new()) };
}

/// True when `k` has a batched inner product here (otherwise layouts use their own kernels).
pub fn has_tiles(k: Kernel) -> bool {
    k.kind().has_vnni512()
}

/// `out[r·batch + b] = Σ_c t[r][c] · x[b][c]` for `rows` local rows, where `decode(r0..r1,
/// dst)` writes the codes of local rows `r0..r1` into `dst` (`(r1 − r0) · x.stride` bytes,
/// every byte written; columns past the matrix may hold any code, the activations are 0
/// there).
pub fn gemm_codes(
    k: Kernel,
    x: &Acts,
    rows: usize,
    decode: &dyn Fn(Range<usize>, &mut [u8]),
    out: &mut [i32],
) {
    #[cfg(target_arch = "x86_64")]
    let pf = super::x86_64::amx::TILE_PF_STEPS;
    #[cfg(not(target_arch = "x86_64"))]
    let pf = 0;
    gemm_codes_pf(k, x, rows, decode, out, pf)
}

/// [`gemm_codes`] with the AMX tile prefetch distance given (in 64-column steps; 0: none), for
/// measuring it (`examples/gemmprof.rs`). Results do not depend on it.
pub fn gemm_codes_pf(
    k: Kernel,
    x: &Acts,
    rows: usize,
    decode: &dyn Fn(Range<usize>, &mut [u8]),
    out: &mut [i32],
    pf: usize,
) {
    assert!(
        has_tiles(k),
        "gemm_codes needs a kernel with a batched inner product"
    );
    let stride = x.stride;
    assert!(stride % 64 == 0 && out.len() >= rows * x.batch);
    PANELS.with_borrow_mut(|own| {
        let panels: &[i8] = if x.has_panels() {
            x.panels
        } else {
            build_panels(x.data, x.batch, stride, own);
            own
        };
        CODES.with_borrow_mut(|codes| {
            codes.resize(MR * stride, 1);
            let job = Job {
                x,
                panels,
                rows,
                decode,
            };
            #[cfg(target_arch = "x86_64")]
            {
                use super::KernelKind;
                use super::x86_64::{amx, simd512, vnni};
                match (k.native_kind(), k.kind()) {
                    (Some(KernelKind::Amx), _) => {
                        // SAFETY: `k` proves AMX-INT8 and the tile-data permission.
                        unsafe {
                            amx::native_run(|t| {
                                job.run(codes, out, |a, b0, b1, c| {
                                    amx::block_with(t, pf, a, stride, b0, b1, c)
                                })
                            })
                        }
                    }
                    (None, KernelKind::Amx) => amx::run::<amx::Emulated, _>(|t| {
                        job.run(codes, out, |a, b0, b1, c| {
                            amx::block_with(t, pf, a, stride, b0, b1, c)
                        })
                    }),
                    (Some(_), _) => job.run(codes, out, |a, b0, b1, c| {
                        // SAFETY: `has_tiles(k)` and native: `k` proves AVX-512 F+BW+VNNI.
                        unsafe { vnni::native::gemm_block(a, stride, b0, b1, c) }
                    }),
                    (None, _) => job.run(codes, out, |a, b0, b1, c| {
                        vnni::gemm_block::<simd512::Emulated>(a, stride, b0, b1, c)
                    }),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            job.run(codes, out, |a, b0, b1, c| {
                block_scalar(a, stride, b0, b1, c)
            })
        });
    });
}

/// One batched product: the activations (and their panels), the rows and their decoder.
struct Job<'a> {
    x: &'a Acts<'a>,
    panels: &'a [i8],
    rows: usize,
    decode: &'a dyn Fn(Range<usize>, &mut [u8]),
}

impl Job<'_> {
    /// Decode each block of [`MR`] rows once, run `block` on it for every pair of panels,
    /// subtract the activation sums.
    fn run(
        &self,
        codes: &mut [u8],
        out: &mut [i32],
        mut block: impl FnMut(&[u8], &[i8], &[i8], &mut [i32; MR * PANEL * 2]),
    ) {
        let (x, stride, batch) = (self.x, self.x.stride, self.x.batch);
        let pan = |p: usize| &self.panels[p * PANEL * stride..(p + 1) * PANEL * stride];
        let mut c = [0i32; MR * PANEL * 2];
        let np = batch.div_ceil(PANEL);
        let mut r0 = 0;
        while r0 < self.rows {
            let n = (self.rows - r0).min(MR);
            (self.decode)(r0..r0 + n, &mut codes[..n * stride]);
            // Rows past the matrix in the last block: zero weights (their sums are dropped).
            codes[n * stride..].fill(1);
            let mut p = 0;
            while p < np {
                // Two panels per step (the second repeats the first at an odd end).
                let p1 = (p + 1).min(np - 1);
                block(codes, pan(p), pan(p1), &mut c);
                for (pi, pp) in [p, p1].into_iter().enumerate() {
                    if pi == 1 && p1 == p {
                        break;
                    }
                    let m = PANEL.min(batch - pp * PANEL);
                    for r in 0..n {
                        let o = &mut out[(r0 + r) * batch + pp * PANEL..][..m];
                        let src = &c[r * 2 * PANEL + pi * PANEL..][..m];
                        for ((o, &v), &s) in o.iter_mut().zip(src).zip(&x.sums[pp * PANEL..]) {
                            *o = v.wrapping_sub(s);
                        }
                    }
                }
                p += 2;
            }
            r0 += n;
        }
    }
}

/// The inner product in portable code (the oracle of the SIMD and tile versions).
pub fn block_scalar(
    codes: &[u8],
    stride: usize,
    b0: &[i8],
    b1: &[i8],
    c: &mut [i32; MR * PANEL * 2],
) {
    for r in 0..MR {
        let a = &codes[r * stride..(r + 1) * stride];
        for (pi, b) in [b0, b1].into_iter().enumerate() {
            for j in 0..PANEL {
                let mut s = 0i32;
                for g in 0..stride / 4 {
                    for i in 0..4 {
                        s += a[4 * g + i] as i32 * b[g * 64 + 4 * j + i] as i32;
                    }
                }
                c[r * 2 * PANEL + pi * PANEL + j] = s;
            }
        }
    }
}
