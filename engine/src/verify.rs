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

use crate::kernels::Kernel;
use crate::ternary::parallel;
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
    /// `k[j] = Σ_i h(i) · t[i][j]` with a fixed pseudo-random 31-bit weight `h(i)` per row
    /// ([`confirm_weight`]): confirms a single-error correction. Two checksums alone let some
    /// multi-output error patterns pass as a single error, and so, rarely, does any polynomial
    /// weight: the verification experiment caught `(i+1)²` accepting a corrupted activation in
    /// a 64-row projection (its error pattern is a whole weight column) as one wrong output.
    /// With unstructured weights such a pattern passes with probability about 2^-31. Used only
    /// on mismatch.
    pub confirm: Vec<i64>,
    /// Whether [`expected`](Self::expected) may sum in f64 (exact while rows²·cols < 2^46).
    exact_f64: bool,
}

impl Checksums {
    pub fn new(t: &Ternary) -> Checksums {
        let mut col = vec![0i32; t.cols()];
        let mut weighted = vec![0i64; t.cols()];
        let mut confirm = vec![0i64; t.cols()];
        for i in 0..t.rows() {
            let (w, h) = (i as i64 + 1, confirm_weight(i));
            for (j, &v) in t.row(i).iter().enumerate() {
                col[j] += v as i32;
                weighted[j] += w * v as i64;
                confirm[j] += h * v as i64;
            }
        }
        let (r, c) = (t.rows() as f64, t.cols() as f64);
        Checksums {
            col,
            weighted,
            confirm,
            exact_f64: r * r * c < 2f64.powi(46),
        }
    }

    /// `Σ_j k[j]·x[j]` in i128 (cold path).
    fn expected_confirm(&self, x: &[i8]) -> i128 {
        self.confirm
            .iter()
            .zip(x)
            .map(|(&q, &v)| q as i128 * v as i128)
            .sum()
    }

    /// Expected `(Σ_i y[i], Σ_i (i+1)·y[i])` for one activation row.
    ///
    /// Computed in f64, which vectorizes and is exact while `rows²·cols < 2^46`: then
    /// `|w[j]·x[j]| ≤ rows²/2 · 128` and the sum over `cols` stay below 2^53 (2B-4T: at most
    /// 6912²·6912 ≈ 2^38). Larger matrices take the i64 path.
    pub fn expected(&self, x: &[i8]) -> (i64, i64) {
        if !self.exact_f64 {
            let s = self
                .col
                .iter()
                .zip(x)
                .map(|(&c, &v)| c as i64 * v as i64)
                .sum();
            let w = self
                .weighted
                .iter()
                .zip(x)
                .map(|(&c, &v)| c * v as i64)
                .sum();
            return (s, w);
        }
        let mut s = [0f64; 4];
        let mut w = [0f64; 4];
        let n = self.col.len().min(x.len());
        let (cc, wc, xc) = (&self.col[..n], &self.weighted[..n], &x[..n]);
        let mut i = 0;
        while i + 4 <= n {
            for l in 0..4 {
                let v = xc[i + l] as f64;
                s[l] += cc[i + l] as f64 * v;
                w[l] += wc[i + l] as f64 * v;
            }
            i += 4;
        }
        for j in i..n {
            let v = xc[j] as f64;
            s[0] += cc[j] as f64 * v;
            w[0] += wc[j] as f64 * v;
        }
        (
            ((s[0] + s[1]) + (s[2] + s[3])) as i64,
            ((w[0] + w[1]) + (w[2] + w[3])) as i64,
        )
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
            // Both sums must hold: an error pattern whose plain sum cancels (e.g. a corrupted
            // activation in a column whose weights sum to zero) still moves the weighted one.
            if got == want && got_w == want_w {
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
            if e != 0 && dw % e == 0 {
                let r = dw / e - 1;
                if (0..rows as i64).contains(&r) {
                    let r = r as usize;
                    let old = y[r * batch + b];
                    y[r * batch + b] = (old as i64 - e) as i32;
                    if sums(y, rows, batch, b) == (want, want_w)
                        && confirm_sum(y, rows, batch, b) == self.expected_confirm(xr)
                    {
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
                panels: &[],
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

/// The confirmation weight of row `i`: SplitMix64 of `i`, kept to 31 bits and odd (never 0).
/// Bounds: `|k[j]| ≤ rows · 2^31 < 2^48`; `Σ_i h(i)·y[i]` over 2^17 rows of |y| < 2^20 < 2^68,
/// summed in i128.
pub fn confirm_weight(i: usize) -> i64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z & 0x7FFF_FFFF) | 1) as i64
}

fn confirm_sum(y: &[i32], rows: usize, batch: usize, b: usize) -> i128 {
    (0..rows)
        .map(|r| confirm_weight(r) as i128 * y[r * batch + b] as i128)
        .sum()
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

/// Where an injected fault lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// A bit of the weight storage (after the checksums were taken).
    Weights,
    /// A bit of an int8 activation as the kernel reads it (the checksum sees the original).
    Activations,
    /// A bit of an i32 output accumulator.
    Accumulators,
    /// A bit of the precomputed column checksum.
    Checksums,
}

impl Site {
    pub const ALL: [Site; 4] = [
        Site::Weights,
        Site::Activations,
        Site::Accumulators,
        Site::Checksums,
    ];

    pub fn parse(s: &str) -> Result<Site, String> {
        match s {
            "weights" => Ok(Site::Weights),
            "activations" => Ok(Site::Activations),
            "accumulators" => Ok(Site::Accumulators),
            "checksums" => Ok(Site::Checksums),
            o => Err(format!(
                "unknown fault site `{o}` (weights, activations, accumulators, checksums)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Site::Weights => "weights",
            Site::Activations => "activations",
            Site::Accumulators => "accumulators",
            Site::Checksums => "checksums",
        }
    }
}

/// What one injected fault did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultOutcome {
    /// The integer product differed from the fault-free one.
    pub output_changed: bool,
    /// A checksum flagged the product.
    pub detected: bool,
    /// After the policy's repair, the product equals the fault-free one.
    pub corrected: bool,
    /// Which bit was flipped (in the site's own numbering).
    pub bit: u64,
}

/// A single armed fault: it hits the first product computed by linear number `target`
/// (`Linear::index`), flipping the bit chosen by `selector` at `site`.
#[derive(Debug)]
pub struct Fault {
    pub target: usize,
    pub site: Site,
    pub selector: u64,
    outcome: std::sync::Mutex<Option<FaultOutcome>>,
}

impl Fault {
    pub fn new(target: usize, site: Site, selector: u64) -> Fault {
        Fault {
            target,
            site,
            selector,
            outcome: std::sync::Mutex::new(None),
        }
    }
    /// `Some` once the fault has fired.
    pub fn outcome(&self) -> Option<FaultOutcome> {
        *self.outcome.lock().expect("fault lock")
    }
    pub(crate) fn armed_for(&self, index: usize) -> bool {
        index == self.target && self.outcome().is_none()
    }
}

/// Compute `acc = t · x` for a linear whose fault is armed: inject it, check with `policy`,
/// and record the outcome. Off the hot path: only runs when a fault targets this product.
pub fn faulty_product(
    fault: &Fault,
    checks: &Checksums,
    layout: &dyn TernaryLayout,
    k: Kernel,
    x: &crate::ternary::ActBuf,
    acc: &mut [i32],
    policy: Policy,
    stats: &VerifyStats,
) {
    let (rows, batch, cols) = (layout.rows(), x.batch, x.cols);
    let mut clean = vec![0i32; rows * batch];
    parallel::gemm(layout, k, &x.view(), &mut clean);
    let mut bad_checks = None;
    let bit;
    match fault.site {
        Site::Weights => {
            bit = fault.selector % layout.storage_bits();
            let faulty = layout.with_bit_flipped(bit);
            parallel::gemm(faulty.as_ref(), k, &x.view(), acc);
        }
        Site::Activations => {
            bit = fault.selector % (batch * cols * 8) as u64;
            let (b, c, i) = (
                (bit / 8) as usize / cols,
                (bit / 8) as usize % cols,
                bit % 8,
            );
            let mut x2 = x.clone();
            let v = &mut x2.data[b * x2.stride + c];
            let old = *v;
            *v = ((*v as u8) ^ (1 << i)) as i8;
            x2.sums[b] += *v as i32 - old as i32;
            x2.prepare_panels();
            parallel::gemm(layout, k, &x2.view(), acc);
        }
        Site::Accumulators => {
            bit = fault.selector % (rows * batch * 32) as u64;
            acc.copy_from_slice(&clean);
            acc[(bit / 32) as usize] ^= 1 << (bit % 32);
        }
        Site::Checksums => {
            bit = fault.selector % (checks.col.len() * 32) as u64;
            acc.copy_from_slice(&clean);
            let mut c = checks.clone();
            c.col[(bit / 32) as usize] ^= 1 << (bit % 32);
            bad_checks = Some(c);
        }
    }
    let output_changed = *acc != clean[..];
    let used = bad_checks.as_ref().unwrap_or(checks);
    let failed = used.check(policy, layout, &x.view(), acc, stats);
    let outcome = FaultOutcome {
        output_changed,
        detected: failed > 0,
        corrected: *acc == clean[..],
        bit,
    };
    *fault.outcome.lock().expect("fault lock") = Some(outcome);
}

/// The seed's ratio form of the check, in floating point: `Σ_i y[i] / (s_w · Σ_j c[j]·x[j])`
/// for dequantized outputs `y` (f32) and dequantized activations `x` (f32). Equals 1 up to
/// rounding when nothing is wrong — so it needs a tolerance, and any tolerance trades false
/// alarms against missed faults (measured by the verification experiment).
pub fn float_ratio(y: &[f32], x: &[f32], col: &[i32], weight_scale: f32) -> f64 {
    let num: f32 = y.iter().sum();
    let den: f32 = col.iter().zip(x).map(|(&c, &v)| c as f32 * v).sum::<f32>() * weight_scale;
    num as f64 / den as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ternary::{ActBuf, LayoutKind};

    fn setup() -> (Ternary, ActBuf) {
        let mut s = 7u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let t = Ternary::from_fn(64, 300, |_, _| (next() % 3) as i8 - 1);
        let x: Vec<i8> = (0..3 * 300).map(|_| (next() % 255) as i8).collect();
        (t, ActBuf::from_rows(&x, 3, 300))
    }

    #[test]
    fn checksum_bounds_keep_f64_exact() {
        // The largest 2B-4T matrix, all +1, activations all −128: the extreme sums.
        let t = Ternary::from_fn(6912, 2560, |_, _| 1);
        let c = Checksums::new(&t);
        assert!(c.exact_f64);
        let (s, w) = c.expected(&vec![-128i8; 2560]);
        assert_eq!(s, -6912i64 * 2560 * 128);
        assert_eq!(w, -(6912i64 * 6913 / 2) * 128 * 2560);
        // A matrix past the f64 bound takes the i64 path and agrees.
        let mut big = c.clone();
        big.exact_f64 = false;
        assert_eq!(big.expected(&vec![-128i8; 2560]), (s, w));
    }

    #[test]
    fn single_faults_in_every_site_are_detected_and_outputs_restored() {
        let (t, x) = setup();
        let checks = Checksums::new(&t);
        for layout in LayoutKind::all() {
            let w = layout.from_dense(&t);
            for site in Site::ALL {
                for sel in 0..40u64 {
                    let f = Fault::new(0, site, sel.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let stats = VerifyStats::default();
                    let mut acc = vec![0i32; 64 * 3];
                    faulty_product(
                        &f,
                        &checks,
                        w.as_ref(),
                        Kernel::scalar(),
                        &x,
                        &mut acc,
                        Policy::Correct,
                        &stats,
                    );
                    let o = f.outcome().unwrap();
                    if o.output_changed {
                        assert!(o.detected, "{layout} {site:?} bit {}: missed", o.bit);
                    }
                    if site != Site::Weights {
                        // Transient faults: the repair restores the exact product.
                        assert!(
                            o.corrected,
                            "{layout} {site:?} bit {}: not corrected",
                            o.bit
                        );
                    }
                    if site == Site::Checksums {
                        assert!(o.detected && !o.output_changed);
                    }
                }
            }
        }
    }

    #[test]
    fn no_false_alarms_without_faults() {
        let (t, x) = setup();
        let c = Checksums::new(&t);
        let w = LayoutKind::ROTOR_DEFAULT.from_dense(&t);
        let mut y = t.gemm_oracle(&x.view());
        let stats = VerifyStats::default();
        assert_eq!(
            c.check(Policy::Correct, w.as_ref(), &x.view(), &mut y, &stats),
            0
        );
        assert_eq!(stats.snapshot()[1], 0);
    }

    #[test]
    fn a_column_error_that_mimics_a_single_error_is_recomputed_not_miscorrected() {
        // Column 0 holds +1 at (1-based) rows 1, 5, 6, 10 and −1 at rows 2, 3, 7. A corrupted
        // activation x[0] + 1 moves exactly those outputs: plain sum +1, weighted sum
        // 1+5+6+10−2−3−7 = 10, and {1,5,6} / {2,3,7} have equal sums and equal sums of squares
        // (Prouhet–Tarry–Escott), so Σ(i+1)²·Δy = 100 = 10² too: every polynomial check up to
        // degree 2 reads it as "row 10 is off by one". The correction must not believe it.
        let mut t = Ternary::from_fn(16, 8, |r, c| ((r * 7 + c * 3) % 3) as i8 - 1);
        for r in 0..16 {
            t.set(r, 0, 0);
        }
        for (r, v) in [(1, 1), (5, 1), (6, 1), (10, 1), (2, -1), (3, -1), (7, -1)] {
            t.set(r - 1, 0, v);
        }
        let x: Vec<i8> = (0..8).map(|j| (j as i8 - 3) * 9).collect();
        let clean = ActBuf::from_rows(&x, 1, 8);
        let mut bad = x.clone();
        bad[0] += 1;
        let want = t.gemm_oracle(&clean.view());
        let mut y = t.gemm_oracle(&ActBuf::from_rows(&bad, 1, 8).view());
        let (dy, dw): (i64, i64) = (0..16).fold((0, 0), |(s, w), r| {
            let d = (y[r] - want[r]) as i64;
            (s + d, w + (r as i64 + 1) * d)
        });
        assert_eq!(
            (dy, dw),
            (1, 10),
            "the pattern looks like one error at row 10"
        );
        let c = Checksums::new(&t);
        let w = LayoutKind::ROTOR_DEFAULT.from_dense(&t);
        let stats = VerifyStats::default();
        assert_eq!(
            c.check(Policy::Correct, w.as_ref(), &clean.view(), &mut y, &stats),
            1
        );
        assert_eq!(y, want, "restored by recomputation");
        let [_, mismatches, corrected, recomputed, _] = stats.snapshot();
        assert_eq!((mismatches, corrected, recomputed), (1, 0, 1));
    }
}
