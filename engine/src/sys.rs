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

/// Read bandwidth in bytes/s: `threads` workers summing a buffer of `bytes` (well beyond the
/// last-level cache), best of `reps`. Run inside the pool whose thread count it should use.
pub fn read_bandwidth(bytes: usize, reps: usize) -> f64 {
    let n = bytes / 8;
    let buf: Vec<u64> = (0..n as u64).collect();
    let mut best = f64::INFINITY;
    let mut sink = 0u64;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let s: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| {
                // Eight independent lanes so the sum is not latency-bound.
                let mut acc = [0u64; 8];
                for w in c.chunks_exact(8) {
                    for l in 0..8 {
                        acc[l] = acc[l].wrapping_add(w[l]);
                    }
                }
                acc.iter().fold(0u64, |a, &b| a.wrapping_add(b))
            })
            .reduce(|| 0, |a, b| a.wrapping_add(b));
        best = best.min(t.elapsed().as_secs_f64());
        sink = sink.wrapping_add(s);
    }
    std::hint::black_box(sink);
    (n * 8) as f64 / best
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
