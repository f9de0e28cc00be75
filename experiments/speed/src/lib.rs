//! Experiment `speed`: the whole model, end to end — prefill and decode tokens/s, the time per
//! stage, peak memory and the fraction of the memory roofline, per layout × kernel × threads ×
//! head precision, on the 2B-4T-shape synthesized model (and a small one).
//!
//! Each configuration is a separate `rotor bench --json` process, so load/convert times and the
//! peak resident memory belong to that configuration alone. The `rotor` binary is looked up
//! next to this executable (same build profile), or taken from `ROTOR_BIN`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use harness::{Checks, Csv, Mode, Row, RunMeta, ensure_model, thread_counts};
use rotor::Kernel;
use rotor::synth::Preset;
use rotor::ternary::LayoutKind;
use serde_json::Value;

fn rotor_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("ROTOR_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable directory")?;
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let p = d.join("rotor");
        if p.exists() {
            return Ok(p);
        }
    }
    bail!(
        "no `rotor` binary next to {} (build it: cargo build --release -p rotor, or set ROTOR_BIN)",
        exe.display()
    )
}

struct Config {
    layout: LayoutKind,
    kernel: Kernel,
    threads: usize,
    head: &'static str,
}

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = &[harness::Flag::Models];

/// What `speed --help` says.
pub const ABOUT: &str = "End-to-end decode and prefill speed with `rotor bench` (one process per \
configuration: layouts × threads × head) on synthesized models; tokens/s, stages, roofline \
fraction, peak RSS. Writes reports/results/speed/<machine>.csv.";

pub fn run(args: &[String]) -> Result<()> {
    let a = harness::Args::parse_for("speed", ABOUT, USES, args)?;
    let mode = a.mode();
    let root = a.results_root();
    let meta = RunMeta::capture("speed", mode, 42);
    let mut csv = Csv::create(&root, &meta)?;
    let mut checks = Checks::default();
    let bin = rotor_bin()?;
    let mdir = a.models_root();
    let t0 = Instant::now();
    let (models, prompt, gen_tokens, runs): (Vec<Preset>, usize, usize, usize) = match mode {
        Mode::Tiny => (vec![Preset::Tiny], 16, 8, 2),
        Mode::Quick => (vec![Preset::Small, Preset::B2b4t], 128, 16, 3),
        Mode::Full => (vec![Preset::Small, Preset::B2b4t], 128, 64, 5),
    };
    let layouts: Vec<LayoutKind> = match mode {
        Mode::Tiny => vec![LayoutKind::ROTOR_DEFAULT, LayoutKind::HfPacked],
        Mode::Quick => vec![
            LayoutKind::ROTOR_DEFAULT,
            LayoutKind::parse("rotor-pn-row")?,
            LayoutKind::HfPacked,
            LayoutKind::I2,
            LayoutKind::Tq1,
        ],
        Mode::Full => LayoutKind::all(),
    };
    harness::say!(
        "speed ({} mode): {} via {}",
        mode.name(),
        layouts.len(),
        bin.display()
    );
    let mut configs = vec![];
    for &layout in &layouts {
        for &threads in &thread_counts(mode) {
            let kernel = layout.best_kernel();
            configs.push(Config {
                layout,
                kernel,
                threads,
                head: "bf16",
            });
            if mode == Mode::Full && kernel.kind() != rotor::KernelKind::Scalar {
                configs.push(Config {
                    layout,
                    kernel: Kernel::scalar(),
                    threads,
                    head: "bf16",
                });
            }
        }
    }
    // The int8 head on the fastest packed layout and the default rotor layout.
    for layout in [LayoutKind::HfPacked, LayoutKind::ROTOR_DEFAULT] {
        for &threads in &thread_counts(mode) {
            configs.push(Config {
                layout,
                kernel: layout.best_kernel(),
                threads,
                head: "int8",
            });
        }
    }
    let progress = harness::Progress::new("speed", models.len() * configs.len());
    for &preset in &models {
        let dir = ensure_model(&mdir, preset)?;
        for c in &configs {
            progress.step(format!(
                "{} {} {} {}t head {}",
                preset.name(),
                c.layout.name(),
                c.kernel.name(),
                c.threads,
                c.head
            ));
            let out = Command::new(&bin)
                .args([
                    "bench",
                    "--model",
                    dir.to_str().context("path")?,
                    "--layout",
                    c.layout.name(),
                    "--kernel",
                    c.kernel.name(),
                    "--threads",
                    &c.threads.to_string(),
                    "--head",
                    c.head,
                    "--prompt-tokens",
                    &prompt.to_string(),
                    "--gen-tokens",
                    &gen_tokens.to_string(),
                    "--runs",
                    &runs.to_string(),
                    "--json",
                ])
                .output()
                .with_context(|| format!("running {}", bin.display()))?;
            let ok = out.status.success();
            checks.check(ok, || {
                format!(
                    "rotor bench {} {} {}t failed: {}",
                    c.layout,
                    c.kernel,
                    c.threads,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            if !ok {
                continue;
            }
            let v: Value = serde_json::from_slice(&out.stdout).context("bench JSON")?;
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let label = |r: &mut Row| {
                r.variant = c.head.into();
                r.layout = c.layout.name().into();
                r.kernel = c.kernel.name().into();
                r.shape = preset.name().into();
                r.threads = c.threads;
            };
            let timed = |metric: &str, med: f64, lo: f64, hi: f64| Row {
                metric: metric.into(),
                value: med,
                unit: "tok/s".into(),
                reps: runs,
                min: lo,
                median: med,
                max: hi,
                ..Default::default()
            };
            csv.write(
                timed(
                    "prefill_tok_s",
                    f("prefill_tok_s"),
                    f("prefill_tok_s_min"),
                    f("prefill_tok_s_max"),
                )
                .with(|r| {
                    label(r);
                    r.batch = prompt;
                }),
            )?;
            csv.write(
                timed(
                    "decode_tok_s",
                    f("decode_tok_s"),
                    f("decode_tok_s_min"),
                    f("decode_tok_s_max"),
                )
                .with(|r| {
                    label(r);
                    r.batch = 1;
                }),
            )?;
            for (m, unit, val) in [
                ("roofline_fraction", "fraction", f("roofline_fraction")),
                ("roofline_tok_s", "tok/s", f("roofline_tok_s")),
                ("read_bandwidth", "GB/s", f("read_bandwidth_bytes_s") / 1e9),
                ("bytes_per_token", "MB", f("bytes_per_token") / 1e6),
                ("peak_rss", "MB", f("peak_rss_bytes") / 1e6),
                ("kv_cache", "MB", f("kv_cache_bytes") / 1e6),
                ("load_s", "s", f("load_s")),
                ("convert_s", "s", f("convert_s")),
            ] {
                csv.write(Row::value(m, val, unit).with(label))?;
            }
            for stage in ["ternary", "attention", "norms_quant", "head"] {
                let ms = v["decode_ms_per_token_by_stage"][stage]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                csv.write(Row::value(&format!("decode_ms_{stage}"), ms, "ms/token").with(label))?;
            }
            harness::say!(
                "  {:<5} {:<13} {:<6} {}t head {:<4}: prefill {:>7.1} tok/s, decode {:>6.2} tok/s ({:.0}% of roofline), peak RSS {:.0} MB",
                preset.name(),
                c.layout.name(),
                c.kernel.name(),
                c.threads,
                c.head,
                f("prefill_tok_s"),
                f("decode_tok_s"),
                100.0 * f("roofline_fraction"),
                f("peak_rss_bytes") / 1e6
            );
        }
    }
    harness::say!(
        "speed: {} rows in {} ({:.0} s)",
        csv.rows(),
        csv.path.display(),
        t0.elapsed().as_secs_f64()
    );
    checks.finish("speed")
}
