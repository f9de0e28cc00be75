//! Experiment `verification`: what exact checksums on every ternary product cost and catch.
//!
//! (a) **Overhead**: decode tokens/s with verification off / detect / correct, on a small
//!     synthesized model and on the 2B-4T-shape one, threads 1..N, the three policies
//!     interleaved (A B C A B C …) so drift on this shared machine hits them alike.
//! (b) **Detection**: seeded single bit flips in weights, activations, accumulators and the
//!     checksums themselves (`rotor::faults::campaign`): the fraction that changed the integer
//!     product, was detected, was corrected, and how far the logits moved with and without repair.
//! (c) **False positives**: at least 10^6 verified products without faults (quick mode: 10^6;
//!     must be 0), and the seed's floating-point ratio check `(B·C)/A = 1` on the same products
//!     and on faulted ones, across tolerances: its false-alarm rate and miss rate.
//!
//! Models are synthesized into `--models DIR` (default `target/models`) when absent.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use harness::{Checks, Csv, Mode, Row, RunMeta, ensure_model, thread_counts};
use rotor::model::{KvCache, LoadOptions, Logits, Model, Scale, State, VerifyCtx};
use rotor::sample::Rng;
use rotor::synth::Preset;
use rotor::ternary::{ActBuf, LayoutKind};
use rotor::verify::{Checksums, Fault, Policy, Site, VerifyStats, faulty_product, float_ratio};

fn load(dir: &Path, threads: usize, checksums: bool) -> Result<Model> {
    Model::load(
        dir,
        &LoadOptions {
            layout: LayoutKind::ROTOR_DEFAULT,
            kernel: None,
            threads: Some(threads),
            checksums,
            ..Default::default()
        },
    )
    .with_context(|| format!("loading {}", dir.display()))
}

/// Seconds per decode step for `steps` tokens after a 16-token prompt.
fn decode_time(m: &Model, steps: usize, policy: Policy) -> Result<f64> {
    let stats = VerifyStats::default();
    let v = VerifyCtx {
        policy,
        stats: (policy != Policy::Off).then_some(&stats),
        fault: None,
    };
    let prompt: Vec<u32> = (0..16)
        .map(|i| (i * 37 % m.config.vocab_size) as u32)
        .collect();
    let mut cache = KvCache::new(m, prompt.len() + steps + 1);
    let mut st = State::new(m, 16, prompt.len() + steps + 1);
    m.forward(&prompt, &mut cache, &mut st, Logits::Last, v)?;
    let t = Instant::now();
    let mut next = 1u32;
    for _ in 0..steps {
        let l = m.forward(&[next], &mut cache, &mut st, Logits::Last, v)?;
        next = rotor::sample::argmax(l);
    }
    let dt = t.elapsed().as_secs_f64() / steps as f64;
    if policy != Policy::Off && stats.snapshot()[1] != 0 {
        anyhow::bail!(
            "verification flagged {} mismatches in a fault-free run",
            stats.snapshot()[1]
        );
    }
    Ok(dt)
}

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = &[harness::Flag::Models];

/// What `verification --help` says.
pub const ABOUT: &str = "Exact checksum verification: decode overhead (off/detect/correct), \
fault detection and correction by site, false positives against the float ratio check. Writes \
reports/results/verification/<machine>.csv; models are synthesized into --models when absent.";

pub fn run(args: &[String]) -> Result<()> {
    let a = harness::Args::parse_for("verification", ABOUT, USES, args)?;
    let mode = a.mode();
    let root = a.results_root();
    let meta = RunMeta::capture("verification", mode, 11);
    let mut csv = Csv::create(&root, &meta)?;
    let mut checks = Checks::default();
    let mdir = a.models_root();
    let t0 = Instant::now();
    let presets: Vec<Preset> = match mode {
        Mode::Tiny => vec![Preset::Tiny],
        Mode::Quick => vec![Preset::Small, Preset::B2b4t],
        Mode::Full => vec![Preset::Small, Preset::B2b4t],
    };
    harness::say!("verification ({} mode)", mode.name());

    let nt = thread_counts(mode).len();
    let progress = harness::Progress::new("verification", presets.len() * nt + 3 + 1);
    // (a) overhead
    for &preset in &presets {
        let dir = ensure_model(&mdir, preset)?;
        let steps = match (mode, preset) {
            (Mode::Tiny, _) => 8,
            (_, Preset::B2b4t) => {
                if mode == Mode::Full {
                    32
                } else {
                    8
                }
            }
            _ => 64,
        };
        let reps = match mode {
            Mode::Tiny => 2,
            Mode::Quick => 5,
            Mode::Full => 9,
        };
        for &th in &thread_counts(mode) {
            progress.step(format!(
                "decode overhead, {}, {th} thread(s)",
                preset.name()
            ));
            let m = load(&dir, th, true)?;
            let policies = [Policy::Off, Policy::Detect, Policy::Correct];
            let mut times: Vec<Vec<f64>> = vec![vec![]; 3];
            decode_time(&m, steps.min(4), Policy::Off)?; // warm-up
            for _ in 0..reps {
                for (i, &p) in policies.iter().enumerate() {
                    times[i].push(decode_time(&m, steps, p)?);
                }
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                (v[0], v[v.len() / 2], v[v.len() - 1])
            };
            let base = med(&mut times[0].clone()).1;
            for (i, &p) in policies.iter().enumerate() {
                let (lo, mid, hi) = med(&mut times[i]);
                csv.write(Row {
                    variant: p.name().into(),
                    layout: m.layout.name().into(),
                    kernel: m.kernel.name().into(),
                    shape: preset.name().into(),
                    threads: th,
                    batch: 1,
                    metric: "decode_tok_s".into(),
                    value: 1.0 / mid,
                    unit: "tok/s".into(),
                    reps,
                    min: 1.0 / hi,
                    median: 1.0 / mid,
                    max: 1.0 / lo,
                    ..Default::default()
                })?;
                csv.write(
                    Row::value("overhead_pct", (mid / base - 1.0) * 100.0, "%").with(|r| {
                        r.variant = p.name().into();
                        r.layout = m.layout.name().into();
                        r.kernel = m.kernel.name().into();
                        r.shape = preset.name().into();
                        r.threads = th;
                        r.batch = 1;
                    }),
                )?;
                harness::say!(
                    "  {} {th}t {:<7} {:>8.2} tok/s ({:+.2}%)",
                    preset.name(),
                    p.name(),
                    1.0 / mid,
                    (mid / base - 1.0) * 100.0
                );
            }
        }
    }

    // (b) detection and correction
    let small = ensure_model(
        &mdir,
        if mode == Mode::Tiny {
            Preset::Tiny
        } else {
            Preset::Small
        },
    )?;
    let count = match mode {
        Mode::Tiny => 20,
        Mode::Quick => 300,
        Mode::Full => 2000,
    };
    let layouts = [
        LayoutKind::ROTOR_DEFAULT,
        LayoutKind::HfPacked,
        LayoutKind::I2,
    ];
    for layout in layouts {
        progress.step(format!("fault injection, {}", layout.name()));
        let m = Model::load(
            &small,
            &LoadOptions {
                layout,
                kernel: None,
                threads: None,
                checksums: true,
                ..Default::default()
            },
        )?;
        let tokens: Vec<u32> = (0..16)
            .map(|i| (i * 101 % m.config.vocab_size) as u32)
            .collect();
        for site in Site::ALL {
            let r = rotor::faults::campaign(&m, &tokens, site, count, 5, |_| {})?;
            let label = |row: &mut Row| {
                row.variant = site.name().into();
                row.layout = r.layout.clone();
                row.kernel = r.kernel.clone();
                row.shape = "small".into();
            };
            let changed = r.output_changed.max(1) as f64;
            for (metric, v, unit) in [
                ("injected", r.injected as f64, "faults"),
                ("output_changed", r.output_changed as f64, "faults"),
                (
                    "detected_fraction",
                    r.detected.min(r.output_changed) as f64 / changed,
                    "fraction",
                ),
                (
                    "corrected_fraction",
                    r.corrected as f64 / changed,
                    "fraction",
                ),
                ("missed", r.missed as f64, "faults"),
                ("false_positives", r.false_positives as f64, "faults"),
                (
                    "logits_changed_unrepaired",
                    r.logits_changed_unrepaired as f64,
                    "faults",
                ),
                (
                    "logits_changed_repaired",
                    r.logits_changed_repaired as f64,
                    "faults",
                ),
                (
                    "max_logit_delta_unrepaired",
                    r.max_logit_delta_unrepaired as f64,
                    "logit",
                ),
                (
                    "max_logit_delta_repaired",
                    r.max_logit_delta_repaired as f64,
                    "logit",
                ),
            ] {
                csv.write(Row::value(metric, v, unit).with(label))?;
            }
            harness::say!(
                "  {:<10} {:<12} injected {} changed {} detected {} corrected {} missed {} fp {}; logits moved {} unrepaired / {} repaired",
                r.layout,
                site.name(),
                r.injected,
                r.output_changed,
                r.detected,
                r.corrected,
                r.missed,
                r.false_positives,
                r.logits_changed_unrepaired,
                r.logits_changed_repaired
            );
            checks.check(r.missed == 0, || {
                format!("{} {}: {} faults missed", r.layout, site.name(), r.missed)
            });
            if site != Site::Checksums {
                checks.check(r.logits_changed_repaired == 0, || {
                    format!("{} {}: logits moved after repair", r.layout, site.name())
                });
            }
        }
    }

    // (c) false positives: integer check vs float ratio check.
    progress.step("false positives, integer vs float ratio check");
    false_positives(&mut csv, &mut checks, &small, mode)?;
    drop(progress);

    harness::say!(
        "verification: {} rows in {} ({:.0} s)",
        csv.rows(),
        csv.path.display(),
        t0.elapsed().as_secs_f64()
    );
    checks.finish("verification")
}

/// Run ≥ 10^6 products of the model's projections on random per-token-quantized activations:
/// the integer check must never fire; the float ratio check is scored across tolerances on the
/// same clean products and on products with one accumulator or weight bit flipped.
fn false_positives(csv: &mut Csv, checks: &mut Checks, dir: &Path, mode: Mode) -> Result<()> {
    let m = load(dir, 2, true)?;
    let target: u64 = match mode {
        Mode::Tiny => 20_000,
        Mode::Quick => 1_000_000,
        Mode::Full => 4_000_000,
    };
    let lins: Vec<&rotor::model::Linear> = m.layers.iter().flat_map(|l| l.linears()).collect();
    let stats = VerifyStats::default();
    let mut rng = Rng::new(99);
    let batch = 64;
    let tols: Vec<f64> = (0..=14)
        .map(|i| 10f64.powf(-8.0 + 0.5 * i as f64))
        .collect();
    let mut clean_dev: Vec<f64> = vec![];
    let mut fault_dev: Vec<f64> = vec![];
    let t = Instant::now();
    let mut products = 0u64;
    let mut li = 0usize;
    while stats.snapshot()[0] < target {
        let lin = lins[li % lins.len()];
        li += 1;
        let cols = lin.cols();
        // Per-token absmax quantization of normal activations (what the model feeds).
        let mut xf = vec![0f32; batch * cols];
        for v in xf.iter_mut() {
            *v = rng.next_normalish();
        }
        let mut acts = ActBuf::default();
        let mut scales = vec![];
        rotor::quant::quantize_batch(&xf, batch, cols, &mut acts, &mut scales);
        let c: &Checksums = lin.checks.as_ref().expect("checksums");
        let mut acc = vec![0i32; lin.rows() * batch];
        m.pool.install(|| {
            rotor::ternary::parallel::gemm(lin.weight.as_ref(), m.kernel, &acts.view(), &mut acc)
        });
        let n_fp = c.check(
            Policy::Detect,
            lin.weight.as_ref(),
            &acts.view(),
            &mut acc,
            &stats,
        );
        checks.check(n_fp == 0, || {
            format!("integer check fired on a clean product of {}", lin.name)
        });
        products += batch as u64;
        // Float ratio on a sample of rows (clean), and with one fault each (faulty).
        let ws = match lin.scale {
            Scale::Multiply(w) => w,
            Scale::Divide(w) => 1.0 / w,
        };
        if clean_dev.len() < 200_000 {
            let rows = lin.rows();
            for b in 0..batch.min(8) {
                let s = scales[b];
                let xq: Vec<f32> = acts.view().row(b)[..cols]
                    .iter()
                    .map(|&q| q as f32 / s)
                    .collect();
                let y: Vec<f32> = (0..rows)
                    .map(|r| acc[r * batch + b] as f32 / s * ws)
                    .collect();
                clean_dev.push((float_ratio(&y, &xq, &c.col, ws) - 1.0).abs());
                // One accumulator fault (a random bit of a random output).
                let f = Fault::new(0, Site::Accumulators, rng.next_u64());
                let one = ActBuf::from_rows(&acts.view().row(b)[..cols], 1, cols);
                let mut a1 = vec![0i32; rows];
                faulty_product(
                    &f,
                    c,
                    lin.weight.as_ref(),
                    m.kernel,
                    &one,
                    &mut a1,
                    Policy::Detect,
                    &VerifyStats::default(),
                );
                if f.outcome().is_some_and(|o| o.output_changed) {
                    let yf: Vec<f32> = a1.iter().map(|&v| v as f32 / s * ws).collect();
                    fault_dev.push((float_ratio(&yf, &xq, &c.col, ws) - 1.0).abs());
                }
            }
        }
        if t.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    let checked = stats.snapshot()[0];
    csv.write(
        Row::value("integer_checks", checked as f64, "products")
            .with(|r| r.variant = "integer".into()),
    )?;
    csv.write(
        Row::value(
            "integer_false_positives",
            stats.snapshot()[1] as f64,
            "products",
        )
        .with(|r| r.variant = "integer".into()),
    )?;
    checks.check(checked >= target, || {
        format!("only {checked} products checked")
    });
    harness::say!(
        "  integer check: {checked} products, {} false positives ({products} activation rows, {:.0} s)",
        stats.snapshot()[1],
        t.elapsed().as_secs_f64()
    );
    for &tol in &tols {
        let fp =
            clean_dev.iter().filter(|&&d| d > tol).count() as f64 / clean_dev.len().max(1) as f64;
        let miss =
            fault_dev.iter().filter(|&&d| d <= tol).count() as f64 / fault_dev.len().max(1) as f64;
        let label = |r: &mut Row| {
            r.variant = "float_ratio".into();
            r.shape = format!("{tol:.1e}");
        };
        csv.write(Row::value("float_false_positive_rate", fp, "fraction").with(label))?;
        csv.write(Row::value("float_miss_rate", miss, "fraction").with(label))?;
        csv.write(Row::value("float_tolerance", tol, "relative").with(label))?;
    }
    harness::say!(
        "  float ratio check: {} clean and {} faulty products scored across {} tolerances",
        clean_dev.len(),
        fault_dev.len(),
        tols.len()
    );
    Ok(())
}
