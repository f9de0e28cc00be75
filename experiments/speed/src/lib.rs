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
    /// `None`: `--kernel auto` (the engine's measured choice: the fastest single-token kernel
    /// and the widest batched family); the rows name the kernels it chose.
    kernel: Option<Kernel>,
    threads: usize,
    head: &'static str,
    /// Prompt tokens of the prefill.
    prompt: usize,
    /// Decode measured too (only at the default prompt length).
    decode: bool,
}

/// Multiply-adds per cycle per core of a batched kernel family, by design: AMX `tdpbusd` is
/// 16·16·64 = 16 384 multiply-adds every 16 cycles; `vpdpbusd` zmm is 64 per instruction at
/// two per cycle (measured 0.5 cycles each with enough accumulators on the Xeon);
/// `vpmaddubsw` + `vpmaddwd` + `vpaddd` is 64 per three instructions on zmm (32 on ymm) at two
/// per cycle; scalar one per cycle.
fn peak_macs_per_cycle(kernel: &str) -> f64 {
    match kernel {
        "amx" => 1024.0,
        "avx512vnni" => 128.0,
        "avx512" => 128.0 / 3.0,
        "avx2" => 32.0 * 2.0 / 3.0,
        _ => 1.0,
    }
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
    // `rotor` is whatever the engine measures fastest on this CPU; the named rotor variants
    // and the packed layouts beside it.
    let layouts: Vec<LayoutKind> = match mode {
        Mode::Tiny => vec![LayoutKind::rotor(), LayoutKind::HfPacked],
        Mode::Quick => vec![
            LayoutKind::rotor(),
            LayoutKind::ROTOR_DEFAULT,
            LayoutKind::RotorTl,
            LayoutKind::HfPacked,
            LayoutKind::I2,
            LayoutKind::Tq1,
        ],
        Mode::Full => LayoutKind::all(),
    };
    let mut layouts_dedup: Vec<LayoutKind> = vec![];
    for l in layouts {
        if !layouts_dedup.contains(&l) {
            layouts_dedup.push(l);
        }
    }
    let layouts = layouts_dedup;
    harness::say!(
        "speed ({} mode): {} layouts via {}",
        mode.name(),
        layouts.len(),
        bin.display()
    );
    let mut configs = vec![];
    for &layout in &layouts {
        for &threads in &thread_counts(mode) {
            configs.push(Config {
                layout,
                kernel: None,
                threads,
                head: "bf16",
                prompt,
                decode: true,
            });
            if mode == Mode::Full {
                configs.push(Config {
                    layout,
                    kernel: Some(Kernel::scalar()),
                    threads,
                    head: "bf16",
                    prompt,
                    decode: true,
                });
            }
        }
    }
    // The int8 head on the rotor layout and the fastest packed layout.
    for layout in [LayoutKind::rotor(), LayoutKind::HfPacked] {
        for &threads in &thread_counts(mode) {
            configs.push(Config {
                layout,
                kernel: None,
                threads,
                head: "int8",
                prompt,
                decode: true,
            });
        }
    }
    // Prefill at other prompt lengths (all threads): the batched kernels' GMAC/s.
    let max_threads = *thread_counts(mode).iter().max().unwrap_or(&1);
    let sweep: &[usize] = match mode {
        Mode::Tiny => &[4],
        _ => &[32, 512],
    };
    for &p in sweep {
        for layout in [LayoutKind::rotor(), LayoutKind::HfPacked] {
            configs.push(Config {
                layout,
                kernel: None,
                threads: max_threads,
                head: "bf16",
                prompt: p,
                decode: false,
            });
        }
    }
    let progress = harness::Progress::new("speed", models.len() * configs.len());
    for &preset in &models {
        let dir = ensure_model(&mdir, preset)?;
        for c in &configs {
            let kname = c.kernel.map_or("auto", |k| k.name());
            progress.step(format!(
                "{} {} {} {}t head {} prompt {}",
                preset.name(),
                c.layout.name(),
                kname,
                c.threads,
                c.head,
                c.prompt
            ));
            let out = Command::new(&bin)
                .args([
                    "bench",
                    "--model",
                    dir.to_str().context("path")?,
                    "--layout",
                    c.layout.name(),
                    "--kernel",
                    kname,
                    "--threads",
                    &c.threads.to_string(),
                    "--head",
                    c.head,
                    "--prompt-tokens",
                    &c.prompt.to_string(),
                    "--gen-tokens",
                    &(if c.decode { gen_tokens } else { 1 }).to_string(),
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
                    kname,
                    c.threads,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            if !ok {
                continue;
            }
            let v: Value = serde_json::from_slice(&out.stdout).context("bench JSON")?;
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            // The kernels the engine ran (auto: its measured choice).
            let kernel = v["kernel"].as_str().unwrap_or("?").to_string();
            let gemm_kernel = v["gemm_kernel"].as_str().unwrap_or("?").to_string();
            let layout = v["layout"].as_str().unwrap_or("?").to_string();
            let label = |r: &mut Row| {
                r.variant = c.head.into();
                r.layout = layout.clone();
                r.kernel = kernel.clone();
                r.shape = preset.name().into();
                r.threads = c.threads;
            };
            let glabel = |r: &mut Row| {
                label(r);
                r.kernel = gemm_kernel.clone();
                r.batch = c.prompt;
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
                .with(glabel),
            )?;
            // Ternary GMAC/s of the prefill against the batched family's peak at the clock
            // this process measured (peak_macs_per_cycle × clock × threads).
            let gmacs = f("prefill_ternary_gmacs");
            let peak =
                peak_macs_per_cycle(&gemm_kernel) * f("core_clock_hz") * c.threads as f64 / 1e9;
            csv.write(Row::value("prefill_ternary_gmacs", gmacs, "GMAC/s").with(glabel))?;
            csv.write(Row::value("prefill_peak_gmacs", peak, "GMAC/s").with(glabel))?;
            csv.write(Row::value("prefill_peak_fraction", gmacs / peak, "fraction").with(glabel))?;
            for stage in ["ternary", "attention", "norms_quant", "head"] {
                let ms = v["prefill_ms_by_stage"][stage].as_f64().unwrap_or(f64::NAN);
                csv.write(Row::value(&format!("prefill_ms_{stage}"), ms, "ms").with(glabel))?;
            }
            if !c.decode {
                harness::say!(
                    "  {:<5} {:<13} {:<10} {}t prompt {:>4}: prefill {:>7.1} tok/s, ternary {:.0} GMAC/s ({:.0}% of {:.0})",
                    preset.name(),
                    layout,
                    gemm_kernel,
                    c.threads,
                    c.prompt,
                    f("prefill_tok_s"),
                    gmacs,
                    100.0 * gmacs / peak,
                    peak
                );
                continue;
            }
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
                ("core_clock", "GHz", f("core_clock_hz") / 1e9),
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
                "  {:<5} {:<13} {:<10} {}t head {:<4}: prefill {:>7.1} tok/s, decode {:>6.2} tok/s ({:.0}% of roofline), peak RSS {:.0} MB",
                preset.name(),
                layout,
                kernel,
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
