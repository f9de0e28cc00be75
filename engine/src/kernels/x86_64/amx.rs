//! AMX-INT8 tiles for the batched inner product (`kernels/gemm.rs`), as a trait with a native
//! instance (inline assembly: the AMX intrinsics are not stable Rust) and an emulated one that
//! follows Intel's pseudo-code on portable arrays, so the block below is tested bit-exactly
//! on every machine and natively where the CPU has AMX.
//!
//! Configuration (palette 1): all eight tiles are 16 rows × 64 bytes. Tiles 0–3 accumulate C
//! (16 rows × 16 i32), 4–5 hold A (16 weight rows × 64 codes, u8), 6–7 hold B (16 column
//! groups × 16 tokens × 4 activations, i8 — one 1 KiB slice of a 16-token panel). One step of
//! 64 columns is four loads and four `tdpbusd` (4 × 16·16·64 = 65 536 multiply-adds).

use crate::kernels::acts::PANEL;
use crate::kernels::gemm::MR;

/// The tile operations of the block, tile numbers as const generics (assembly needs literal
/// register names).
pub trait Tiles {
    /// Configure the eight 16 × 64-byte tiles (once per run of blocks).
    fn configure(&mut self);
    /// Zero C tiles 0–3.
    fn start(&mut self);
    /// Load tile `T` from 16 rows of 64 bytes at `p`, `stride` bytes apart.
    /// # Safety
    /// `p + i·stride .. + 64` must be readable for i < 16.
    unsafe fn load<const T: usize>(&mut self, p: *const u8, stride: usize);
    /// `C += A · B` with `C`, `A`, `B` tile numbers (`tdpbusd`).
    fn dpbusd<const C: usize, const A: usize, const B: usize>(&mut self);
    /// Store tile `T` (16 rows × 16 i32) to `out`.
    fn store<const T: usize>(&mut self, out: &mut [i32; 256]);
    /// Release the tile state (after the last block of a run).
    fn finish(&mut self);
    /// Hint that the 64 bytes at `p` are needed soon (no effect on results; never faults).
    fn prefetch(&self, _p: *const u8) {}
}

/// Tile steps (64 columns) ahead of the step being computed whose A rows and B slices are
/// prefetched into L1. `tileloadd` from L2 streams far below the rate `tdpbusd` consumes (see
/// docs/KERNELS.md §4): without it the block measured ≈ 1 cycle per weight at batch 128.
pub const TILE_PF_STEPS: usize = 2;

/// Portable emulation (Intel's pseudo-code for `tileloadd`, `tdpbusd`, `tilestored`).
pub struct Emulated {
    t: [[u8; 1024]; 8],
}

impl Default for Emulated {
    fn default() -> Self {
        Emulated { t: [[0; 1024]; 8] }
    }
}

impl Tiles for Emulated {
    fn configure(&mut self) {}
    fn start(&mut self) {
        for t in 0..4 {
            self.t[t] = [0; 1024];
        }
    }
    unsafe fn load<const T: usize>(&mut self, p: *const u8, stride: usize) {
        for i in 0..16 {
            // SAFETY: 64 readable bytes at p + i·stride (caller).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    p.add(i * stride),
                    self.t[T][64 * i..].as_mut_ptr(),
                    64,
                )
            };
        }
    }
    fn dpbusd<const C: usize, const A: usize, const B: usize>(&mut self) {
        for m in 0..16 {
            for n in 0..16 {
                let mut acc = i32::from_le_bytes(
                    self.t[C][64 * m + 4 * n..64 * m + 4 * n + 4]
                        .try_into()
                        .expect("4"),
                );
                for k in 0..16 {
                    for i in 0..4 {
                        let a = self.t[A][64 * m + 4 * k + i] as i32;
                        let b = self.t[B][64 * k + 4 * n + i] as i8 as i32;
                        acc = acc.wrapping_add(a * b);
                    }
                }
                self.t[C][64 * m + 4 * n..64 * m + 4 * n + 4].copy_from_slice(&acc.to_le_bytes());
            }
        }
    }
    fn store<const T: usize>(&mut self, out: &mut [i32; 256]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = i32::from_le_bytes(self.t[T][4 * i..4 * i + 4].try_into().expect("4"));
        }
    }
    fn finish(&mut self) {}
}

/// One block: `c[r][pi][j]` for `r < 32`, panels `b0`, `b1` (each `16 · stride` bytes),
/// prefetching `pf_steps` tile steps ahead (0: none).
#[inline(always)]
pub fn block_with<T: Tiles>(
    t: &mut T,
    pf_steps: usize,
    codes: &[u8],
    stride: usize,
    b0: &[i8],
    b1: &[i8],
    c: &mut [i32; MR * PANEL * 2],
) {
    assert!(codes.len() >= MR * stride && b0.len() >= PANEL * stride && b1.len() >= PANEL * stride);
    assert!(stride % 64 == 0);
    t.start();
    let (a, p0, p1) = (
        codes.as_ptr(),
        b0.as_ptr() as *const u8,
        b1.as_ptr() as *const u8,
    );
    for kk in (0..stride).step_by(64) {
        let ahead = kk + 64 * pf_steps;
        if pf_steps > 0 && ahead < stride {
            for r in 0..MR {
                t.prefetch(a.wrapping_add(r * stride + ahead));
            }
            for l in 0..16 {
                t.prefetch(p0.wrapping_add(ahead * 16 + 64 * l));
                t.prefetch(p1.wrapping_add(ahead * 16 + 64 * l));
            }
        }
        // SAFETY: A rows 0–15 / 16–31 at column kk (64 bytes each, stride apart) lie within
        // `codes` (MR · stride bytes); B = 16 groups × 64 bytes at group kk/4 of each panel,
        // (kk/4)·64 + 1024 ≤ 16·stride bytes (asserted above).
        unsafe {
            t.load::<4>(a.add(kk), stride);
            t.load::<5>(a.add(16 * stride + kk), stride);
            t.load::<6>(p0.add(kk * 16), 64);
            t.load::<7>(p1.add(kk * 16), 64);
        }
        t.dpbusd::<0, 4, 6>();
        t.dpbusd::<1, 4, 7>();
        t.dpbusd::<2, 5, 6>();
        t.dpbusd::<3, 5, 7>();
    }
    let mut tile = [0i32; 256];
    for (ti, (rbase, pi)) in [(0, 0), (0, 1), (16, 0), (16, 1)].into_iter().enumerate() {
        match ti {
            0 => t.store::<0>(&mut tile),
            1 => t.store::<1>(&mut tile),
            2 => t.store::<2>(&mut tile),
            _ => t.store::<3>(&mut tile),
        }
        for m in 0..16 {
            let dst = (rbase + m) * 2 * PANEL + pi * PANEL;
            c[dst..dst + PANEL].copy_from_slice(&tile[16 * m..16 * m + 16]);
        }
    }
    t.finish();
}

/// A run of blocks on one tile file: configured once, released at the end.
pub fn run<T: Tiles + Default, R>(f: impl FnOnce(&mut T) -> R) -> R {
    let mut t = T::default();
    t.configure();
    let r = f(&mut t);
    t.finish();
    r
}

/// The real tiles (AMX-TILE + AMX-INT8, permission granted: `isa::amx_ready`).
#[cfg(target_arch = "x86_64")]
pub struct Native {
    cfg: [u8; 64],
}

#[cfg(target_arch = "x86_64")]
impl Default for Native {
    fn default() -> Self {
        let mut cfg = [0u8; 64];
        cfg[0] = 1; // palette 1
        for t in 0..8 {
            cfg[16 + 2 * t] = 64; // bytes per row
            cfg[48 + t] = 16; // rows
        }
        Native { cfg }
    }
}

#[cfg(target_arch = "x86_64")]
macro_rules! tile_match {
    ($t:expr, $($n:pat => $body:expr),*) => {
        match $t { $($n => $body,)* _ => unreachable!("tile number") }
    };
}

#[cfg(target_arch = "x86_64")]
impl Tiles for Native {
    fn configure(&mut self) {
        // Nothing here: see `start`.
    }
    fn start(&mut self) {
        // The configuration is loaded together with the zeroing, in one assembly block, at
        // every block. Loading it once per run and running other code (the decoder) before the
        // first tile instruction died with SIGILL on a Sapphire Rapids VM: the tile
        // configuration did not survive a context switch taken while the tile data was still
        // in its initial (all-zero) state. `ldtilecfg` costs tens of cycles against the
        // thousands of a block.
        // SAFETY: a valid palette-1 configuration (64 bytes); the caller holds a kernel that
        // proves AMX and the tile permission.
        unsafe {
            std::arch::asm!(
                "ldtilecfg [{cfg}]",
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                cfg = in(reg) self.cfg.as_ptr(),
                options(nostack, readonly)
            )
        }
    }
    unsafe fn load<const T: usize>(&mut self, p: *const u8, stride: usize) {
        // SAFETY: 16 rows of 64 readable bytes (caller); tiles configured by `start`.
        unsafe {
            tile_match!(T,
                4 => std::arch::asm!("tileloadd tmm4, [{p} + {s}*1]", p = in(reg) p, s = in(reg) stride, options(nostack, readonly)),
                5 => std::arch::asm!("tileloadd tmm5, [{p} + {s}*1]", p = in(reg) p, s = in(reg) stride, options(nostack, readonly)),
                6 => std::arch::asm!("tileloadd tmm6, [{p} + {s}*1]", p = in(reg) p, s = in(reg) stride, options(nostack, readonly)),
                7 => std::arch::asm!("tileloadd tmm7, [{p} + {s}*1]", p = in(reg) p, s = in(reg) stride, options(nostack, readonly))
            )
        }
    }
    fn dpbusd<const C: usize, const A: usize, const B: usize>(&mut self) {
        // SAFETY: tiles configured by `start`; register-only.
        unsafe {
            tile_match!((C, A, B),
                (0, 4, 6) => std::arch::asm!("tdpbusd tmm0, tmm4, tmm6", options(nostack, nomem)),
                (1, 4, 7) => std::arch::asm!("tdpbusd tmm1, tmm4, tmm7", options(nostack, nomem)),
                (2, 5, 6) => std::arch::asm!("tdpbusd tmm2, tmm5, tmm6", options(nostack, nomem)),
                (3, 5, 7) => std::arch::asm!("tdpbusd tmm3, tmm5, tmm7", options(nostack, nomem))
            )
        }
    }
    fn store<const T: usize>(&mut self, out: &mut [i32; 256]) {
        let p = out.as_mut_ptr();
        // SAFETY: 16 rows × 64 bytes = the 1 KiB of `out`; tiles configured by `start`.
        unsafe {
            tile_match!(T,
                0 => std::arch::asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) p, s = in(reg) 64usize, options(nostack)),
                1 => std::arch::asm!("tilestored [{p} + {s}*1], tmm1", p = in(reg) p, s = in(reg) 64usize, options(nostack)),
                2 => std::arch::asm!("tilestored [{p} + {s}*1], tmm2", p = in(reg) p, s = in(reg) 64usize, options(nostack)),
                3 => std::arch::asm!("tilestored [{p} + {s}*1], tmm3", p = in(reg) p, s = in(reg) 64usize, options(nostack))
            )
        }
    }
    fn finish(&mut self) {
        // SAFETY: releases the tile state configured by `start`.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) }
    }
    fn prefetch(&self, p: *const u8) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetch never faults, whatever the address; SSE is baseline x86_64.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
}

/// A run of blocks on the real tiles.
///
/// # Safety
/// The CPU must have AMX-TILE and AMX-INT8, and the OS must have granted this process the
/// tile-data permission (`kernels::isa::amx_ready`).
#[cfg(target_arch = "x86_64")]
pub unsafe fn native_run<R>(f: impl FnOnce(&mut Native) -> R) -> R {
    run::<Native, R>(f)
}
