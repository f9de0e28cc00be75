//! Process and machine probes: peak resident memory, and memory bandwidth for rooflines.

use std::time::Instant;

use rayon::prelude::*;

/// Peak resident set size of this process (`VmHWM`), in bytes, where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Current resident set size (`VmRSS`), in bytes.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The buffer the read-bandwidth probe streams by default: 1 GiB, beyond any last-level cache
/// we run on (300 MB of L3 on the Xeon).
pub const PROBE_BYTES: usize = 1 << 30;

/// Read bandwidth in bytes/s: the best read this machine gives, and the one figure every
/// roofline in the project divides by (`rotor bench`, every experiment).
///
/// Every thread of the current rayon pool (one task each, via `broadcast`) streams its own
/// share of a buffer of `bytes` (far beyond the last-level cache; filled with data, so the
/// pages are real) through the widest loads the CPU has (64-byte AVX-512, else 32-byte AVX2),
/// four independent streams per thread and eight accumulators, so neither the adds nor a
/// single stream's prefetcher is the limit. Best of `reps` passes (wall time of the slowest
/// thread in each).
pub fn read_bandwidth(bytes: usize, reps: usize) -> f64 {
    let threads = rayon::current_num_threads().max(1);
    // Whole 256-byte units per stream, four streams per thread.
    let unit = 256 * 4 * threads;
    let n = (bytes / unit).max(1) * unit;
    let words = n / 8;
    let buf: Vec<u64> = (0..words as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let per = words / threads;
    let mut best = f64::INFINITY;
    let mut sink = 0u64;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let sums = rayon::broadcast(|ctx| {
            let i = ctx.index();
            sum_words(&buf[i * per..(i + 1) * per])
        });
        best = best.min(t.elapsed().as_secs_f64());
        sink = sums.iter().fold(sink, |a, &b| a.wrapping_add(b));
    }
    std::hint::black_box(sink);
    (per * threads * 8) as f64 / best
}

/// Sum of `w` (wrapping) in four interleaved streams, with the widest loads available.
fn sum_words(w: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::kernels::isa::has_avx512() {
            // SAFETY: AVX-512F checked on the line above.
            return unsafe { simd::sum_avx512(w) };
        }
        if crate::kernels::isa::has_avx2() {
            // SAFETY: AVX2 checked on the line above.
            return unsafe { simd::sum_avx2(w) };
        }
    }
    let q = w.len() / 4;
    let mut acc = [0u64; 8];
    for i in (0..q).step_by(2) {
        for s in 0..4 {
            for l in 0..2 {
                let j = s * q + i + l;
                if j < w.len() {
                    acc[2 * s + l] = acc[2 * s + l].wrapping_add(w[j]);
                }
            }
        }
    }
    acc.iter().fold(0, |a, &b| a.wrapping_add(b))
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// Four streams (quarters of `w`), two 64-byte loads per stream per step.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sum_avx512(w: &[u64]) -> u64 {
        let q = w.len() / 4 / 16 * 16; // words per stream, whole 128-byte steps
        let p = w.as_ptr();
        let mut acc = [_mm512_setzero_si512(); 8];
        let mut i = 0;
        while i < q {
            for s in 0..4 {
                for l in 0..2 {
                    // SAFETY: s·q + i + 8l + 8 ≤ 4q ≤ w.len() words.
                    let v = unsafe { _mm512_loadu_si512(p.add(s * q + i + 8 * l) as *const _) };
                    acc[2 * s + l] = _mm512_add_epi64(acc[2 * s + l], v);
                }
            }
            i += 16;
        }
        let mut t = _mm512_setzero_si512();
        for a in acc {
            t = _mm512_add_epi64(t, a);
        }
        let mut out = [0u64; 8];
        // SAFETY: 64 writable bytes.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut _, t) };
        out.iter().fold(0, |a, &b| a.wrapping_add(b))
    }

    /// As [`sum_avx512`] with 32-byte loads.
    #[target_feature(enable = "avx2")]
    pub unsafe fn sum_avx2(w: &[u64]) -> u64 {
        let q = w.len() / 4 / 8 * 8;
        let p = w.as_ptr();
        let mut acc = [_mm256_setzero_si256(); 8];
        let mut i = 0;
        while i < q {
            for s in 0..4 {
                for l in 0..2 {
                    // SAFETY: s·q + i + 4l + 4 ≤ 4q ≤ w.len() words.
                    let v = unsafe { _mm256_loadu_si256(p.add(s * q + i + 4 * l) as *const _) };
                    acc[2 * s + l] = _mm256_add_epi64(acc[2 * s + l], v);
                }
            }
            i += 8;
        }
        let mut t = _mm256_setzero_si256();
        for a in acc {
            t = _mm256_add_epi64(t, a);
        }
        let mut out = [0u64; 4];
        // SAFETY: 32 writable bytes.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut _, t) };
        out.iter().fold(0, |a, &b| a.wrapping_add(b))
    }
}

/// The core clock as this thread sees it, in Hz: a dependent chain of integer multiplies (3
/// cycles each on every x86 core since 2008) timed for ~20 ms. Used to turn kernel times into
/// cycles per 64 weights; on a shared VM it is the clock *this process got*, which is what
/// the kernels got too.
pub fn core_clock_hz() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let n: u64 = 4_000_000;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            // SAFETY: register-only arithmetic; no memory, stack or flags assumptions beyond
            // what the operands declare.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "imul {x}, {x}",
                    "imul {x}, {x}",
                    "imul {x}, {x}",
                    "imul {x}, {x}",
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) n => _,
                    x = inout(reg) 3u64 => _,
                    options(nomem, nostack)
                );
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        (n * 12) as f64 / best
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        f64::NAN
    }
}

/// Copy bandwidth in bytes/s (bytes copied per second, `memcpy` of `bytes`), best of `reps`.
pub fn copy_bandwidth(bytes: usize, reps: usize) -> f64 {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        dst.par_chunks_mut(1 << 20)
            .zip(src.par_chunks(1 << 20))
            .for_each(|(d, s)| d.copy_from_slice(s));
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(&dst);
    }
    bytes as f64 / best
}
