//! Exact runtime verification of ternary matrix products (algorithm-based fault tolerance
//! without tolerances).
//!
//! Ternary weights times int8 activations give exact integers, so a checksum can be exact:
//! with the column sums `c[j] = Σ_i t[i][j]` precomputed once per matrix, every product must
//! satisfy `Σ_i y[i] = Σ_j c[j] · x[j]` — no rounding, so no threshold, no false positives.
//! A second, weighted checksum `w[j] = Σ_i (i+1) · t[i][j]` locates a single wrong output:
//! if `y[r]` is off by `e`, the plain check is off by `e` and the weighted one by `(r+1)·e`,
//! so `r = Δw/Δ − 1`, and subtracting `e` corrects it.
//!
//! Bounds: |y[i]| ≤ 127·cols < 2^20 for 2B-4T; sums over ≤ 2^17 rows weighted by ≤ 2^17 stay
//! far inside i64.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::kernels::{Kernel, parallel};
use crate::ternary::{Acts, Ternary, TernaryLayout};

/// What to do with a matrix product's checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// No check (the checksums are not even computed at load).
    #[default]
    Off,
    /// Check every product and count mismatches.
    Detect,
    /// Check, locate and correct a single wrong output; recompute with the scalar kernel when
    /// more than one output is wrong.
    Correct,
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "off" | "none" => Ok(Policy::Off),
            "detect" => Ok(Policy::Detect),
            "correct" | "" => Ok(Policy::Correct),
            other => Err(format!(
                "unknown verification policy `{other}` (off, detect, correct)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Policy::Off => "off",
            Policy::Detect => "detect",
            Policy::Correct => "correct",
        }
    }
}

/// Counters shared by all products of a run (atomics: products run on several threads).
#[derive(Debug, Default)]
pub struct VerifyStats {
    /// Activation rows checked (one per product per token).
    pub checked: AtomicU64,
    /// Checks that failed.
    pub mismatches: AtomicU64,
    /// Failures repaired by locating and fixing a single output.
    pub corrected: AtomicU64,
    /// Failures repaired by recomputing with the scalar kernel.
    pub recomputed: AtomicU64,
    /// Failures left in place (detect policy, or repair impossible).
    pub uncorrected: AtomicU64,
}

impl VerifyStats {
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.checked.load(Ordering::Relaxed),
            self.mismatches.load(Ordering::Relaxed),
            self.corrected.load(Ordering::Relaxed),
            self.recomputed.load(Ordering::Relaxed),
            self.uncorrected.load(Ordering::Relaxed),
        ]
    }

    /// One line for the end of a command.
    pub fn summary(&self) -> String {
        let [c, m, k, r, u] = self.snapshot();
        format!(
            "verify: {c} products checked, {m} mismatches, {k} corrected, {r} recomputed, {u} uncorrected"
        )
    }
}

/// Precomputed checksums of one ternary matrix.
#[derive(Clone, Debug)]
pub struct Checksums {
    /// `c[j] = Σ_i t[i][j]`.
    pub col: Vec<i32>,
    /// `w[j] = Σ_i (i+1) · t[i][j]`.
    pub weighted: Vec<i64>,
}

impl Checksums {
    pub fn new(t: &Ternary) -> Checksums {
        let mut col = vec![0i32; t.cols()];
        let mut weighted = vec![0i64; t.cols()];
        for i in 0..t.rows() {
            for (j, &v) in t.row(i).iter().enumerate() {
                col[j] += v as i32;
                weighted[j] += (i as i64 + 1) * v as i64;
            }
        }
        Checksums { col, weighted }
    }

    /// Expected `(Σ_i y[i], Σ_i (i+1)·y[i])` for one activation row.
    pub fn expected(&self, x: &[i8]) -> (i64, i64) {
        let mut s = 0i64;
        let mut w = 0i64;
        for ((&c, &cw), &v) in self.col.iter().zip(&self.weighted).zip(x) {
            s += c as i64 * v as i64;
            w += cw * v as i64;
        }
        (s, w)
    }

    /// Check (and under [`Policy::Correct`], repair) the `[row][batch]` products `y`.
    /// Returns the number of activation rows whose check failed.
    pub fn check(
        &self,
        policy: Policy,
        layout: &dyn TernaryLayout,
        x: &Acts,
        y: &mut [i32],
        stats: &VerifyStats,
    ) -> usize {
        if policy == Policy::Off {
            return 0;
        }
        let (rows, batch) = (layout.rows(), x.batch);
        let mut failed = 0;
        for b in 0..batch {
            stats.checked.fetch_add(1, Ordering::Relaxed);
            let xr = &x.row(b)[..x.cols];
            let (want, want_w) = self.expected(xr);
            let (got, got_w) = sums(y, rows, batch, b);
            if got == want {
                continue;
            }
            failed += 1;
            stats.mismatches.fetch_add(1, Ordering::Relaxed);
            if policy == Policy::Detect {
                stats.uncorrected.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // Single-error hypothesis: y[r] is off by e = got − want.
            let e = got - want;
            let dw = got_w - want_w;
            if dw % e == 0 {
                let r = dw / e - 1;
                if (0..rows as i64).contains(&r) {
                    let r = r as usize;
                    let old = y[r * batch + b];
                    y[r * batch + b] = (old as i64 - e) as i32;
                    if sums(y, rows, batch, b) == (want, want_w) {
                        stats.corrected.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    y[r * batch + b] = old;
                }
            }
            // More than one wrong output: recompute this row with the scalar kernel.
            let one = Acts {
                data: x.row(b),
                sums: &x.sums[b..b + 1],
                batch: 1,
                cols: x.cols,
                stride: x.stride,
            };
            let mut fresh = vec![0i32; rows];
            parallel::gemm(layout, Kernel::scalar(), &one, &mut fresh);
            for (r, v) in fresh.iter().enumerate() {
                y[r * batch + b] = *v;
            }
            if sums(y, rows, batch, b) == (want, want_w) {
                stats.recomputed.fetch_add(1, Ordering::Relaxed);
            } else {
                // The weights themselves disagree with their checksums (corrupted storage).
                stats.uncorrected.fetch_add(1, Ordering::Relaxed);
            }
        }
        failed
    }
}

fn sums(y: &[i32], rows: usize, batch: usize, b: usize) -> (i64, i64) {
    let mut s = 0i64;
    let mut w = 0i64;
    for r in 0..rows {
        let v = y[r * batch + b] as i64;
        s += v;
        w += (r as i64 + 1) * v;
    }
    (s, w)
}
