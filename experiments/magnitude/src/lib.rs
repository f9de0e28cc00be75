//! Experiment `magnitude`: how activation magnitudes meet ternary weights.
//!
//! With ternary weights `t ∈ {−1, 0, 1}` the product `Σ_c t[c]·x[c]` needs no multiplier,
//! and the seed claims more: that the magnitude of `x` can be spent as repeated ±1 steps
//! ("minus 20 is −1, twenty times"), that twenty integer additions cost less energy than one
//! FP32 multiply (1.85×), and that a "counter method" is 7.4× more efficient. This experiment
//! implements eight encodings of the dot product ([`encodings::Enc`]) — f32 MAC, int8 MAC,
//! sign-select + add, bit-serial popcount, unary counter, thermometer code, and two table
//! lookups — each exact, each as a counted scalar kernel and (where it makes sense) an AVX2
//! kernel, and measures, at the four BitNet 2B-4T projection shapes:
//! - time per GEMV (one thread, weights hot in cache where they fit; every output compared
//!   with the dense oracle — a mismatch fails the run);
//! - operations by kind, from closed-form formulas, each validated against an instrumented
//!   scalar run that counts what it executes ([`ops`]);
//! - modelled energy per token (operations × cited per-operation energies, [`energy`]),
//!   arithmetic only, plus on-chip accesses, plus DRAM weight traffic;
//!
//! for four activation distributions ([`acts::Dist`]): uniform int8, absmax-quantized
//! Gaussian, the real inputs captured from a running model, and small (4-bit) magnitudes.
//!
//! CSV (`reports/results/magnitude/magnitude.csv`, the harness's tidy schema) columns used:
//! `layout` = encoding (or op name / capture site for table and statistics rows), `variant` =
//! activation distribution, `kernel` = kernel (`scalar`, `popcnt`, `avx2`, `engine-avx2`), or
//! `formula` / `instrumented` for counts, or the energy table's name for energy rows;
//! `shape` = `out×in`, or `2b4t-token` for per-token totals.
//!
//! Usage: `magnitude [--quick|--full|--tiny] [--out DIR] [--energy FILE]`.

pub mod acts;
pub mod avx2;
pub mod encodings;
pub mod energy;
pub mod ops;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use harness::{Checks, Csv, Mode, Row, RunMeta, time};
use rotor::sample::Rng;
use rotor::ternary::{ActBuf, Ternary, TernaryLayout};

use acts::{Dist, Site};
use encodings::{Act, Enc, Scratch, Stats, Weights};
use ops::{Kind, Ops};

/// Kernels (implementations) of an encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kern {
    /// Portable Rust through the [`ops::Fast`] ALU (LLVM may auto-vectorize with SSE2).
    Scalar,
    /// The scalar code compiled with the hardware `popcnt` instruction.
    Popcnt,
    /// This crate's AVX2 kernel.
    Avx2,
    /// The engine's own AVX2 rotor kernel (`vpmaddubsw` on ±1 bytes expanded from the planes:
    /// sign-select done *with* the multiplier).
    Engine,
}

impl Kern {
    pub fn name(self) -> &'static str {
        match self {
            Kern::Scalar => "scalar",
            Kern::Popcnt => "popcnt",
            Kern::Avx2 => "avx2",
            Kern::Engine => "engine-avx2",
        }
    }
}

/// The kernels of `e` this CPU can run.
pub fn kernels(e: Enc) -> Vec<Kern> {
    let mut v = vec![Kern::Scalar];
    let simd = avx2::available();
    match e {
        Enc::BitSerial | Enc::Thermometer => {
            if avx2::has_popcnt() {
                v.push(Kern::Popcnt);
            }
            if simd {
                v.push(Kern::Avx2);
            }
        }
        Enc::SignSelect => {
            if simd {
                v.push(Kern::Avx2);
            }
            if rotor::Kernel::avx2().is_some() {
                v.push(Kern::Engine);
            }
        }
        Enc::F32Mac | Enc::Int8Mac | Enc::TlPn4 => {
            if simd {
                v.push(Kern::Avx2);
            }
        }
        Enc::Unary | Enc::TlB3 => {}
    }
    v
}

#[cfg(target_arch = "x86_64")]
mod popcnt {
    use super::*;
    use crate::ops::Fast;

    #[target_feature(enable = "popcnt")]
    pub fn bit_serial(w: &Weights, x: &Act, s: &mut Scratch, y: &mut [i32]) {
        encodings::bit_serial(&mut Fast, w, x, s, 0..w.rows, y)
    }
    #[target_feature(enable = "popcnt")]
    pub fn thermometer(w: &Weights, x: &Act, s: &mut Scratch, y: &mut [i32]) {
        encodings::thermometer(&mut Fast, w, x, s, 0..w.rows, y)
    }
}

/// One GEMV (all rows of `w`) with encoding `e` and kernel `k`, preparation included.
/// `k` must come from [`kernels`]`(e)`.
pub fn gemv(e: Enc, k: Kern, w: &Weights, x: &Act, s: &mut Scratch, y: &mut [i32]) {
    let rows = 0..w.rows;
    match k {
        Kern::Scalar => encodings::scalar(e, &mut ops::Fast, w, x, s, rows, y),
        #[cfg(target_arch = "x86_64")]
        Kern::Popcnt => {
            assert!(avx2::has_popcnt());
            // SAFETY: the CPU has popcnt (asserted); the function only adds that feature.
            match e {
                Enc::BitSerial => unsafe { popcnt::bit_serial(w, x, s, y) },
                Enc::Thermometer => unsafe { popcnt::thermometer(w, x, s, y) },
                _ => panic!("no popcnt kernel for {}", e.name()),
            }
        }
        #[cfg(target_arch = "x86_64")]
        Kern::Avx2 => {
            assert!(avx2::available());
            // SAFETY: the CPU has AVX2, FMA and popcnt (asserted); the kernels bounds-check
            // every slice they load from.
            unsafe {
                match e {
                    Enc::F32Mac => avx2::f32_mac(w, x, rows, y),
                    Enc::Int8Mac => avx2::int8_mac(w, x, rows, y),
                    Enc::SignSelect => avx2::sign_select(w, x, rows, y),
                    Enc::BitSerial => avx2::bit_serial(w, x, &mut s.simd, rows, y),
                    Enc::Thermometer => avx2::thermometer(w, x, &mut s.simd, rows, y),
                    Enc::TlPn4 => avx2::tl_pn4(w, x, &mut s.simd, rows, y),
                    _ => panic!("no avx2 kernel for {}", e.name()),
                }
            }
        }
        Kern::Engine => {
            let kernel = rotor::Kernel::avx2().expect("engine AVX2 kernel");
            w.rotor
                .gemm_block(kernel, &x.buf().view(), rows, &mut [&mut y[..]]);
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => panic!("kernel {} not available on this target", k.name()),
    }
}

/// A projection shape of the plan.
#[derive(Clone, Debug)]
struct Shape {
    name: &'static str,
    rows: usize,
    cols: usize,
    /// Projections of this shape per token.
    count: u64,
    /// Activation preparations per token charged to this shape (inputs shared by several
    /// projections are prepared once: q/k/v share one, gate/up share one).
    preps: u64,
    /// Capture sites whose rows make the "real" activation of this shape.
    sites: &'static [Site],
}

impl Shape {
    fn label(&self) -> String {
        format!("{}x{}", self.rows, self.cols)
    }
}

struct Plan {
    shapes: Vec<Shape>,
    token_label: &'static str,
    warmup: usize,
    min_reps: usize,
    max_reps: usize,
    budget: Duration,
    /// Rows of each GEMV run instrumented to validate the formulas (all when ≥ rows).
    validate_rows: usize,
    capture_tokens: usize,
    synth_preset: &'static str,
}

/// The four 2B-4T projection shapes (30 layers): q/o 2560→2560 (60), k/v 2560→640 (60),
/// gate/up 2560→6912 (60), down 6912→2560 (30).
fn shapes_2b4t() -> Vec<Shape> {
    vec![
        Shape {
            name: "q_o",
            rows: 2560,
            cols: 2560,
            count: 60,
            preps: 60,
            sites: &[Site::Qkv, Site::O],
        },
        Shape {
            name: "k_v",
            rows: 640,
            cols: 2560,
            count: 60,
            preps: 0,
            sites: &[Site::Qkv],
        },
        Shape {
            name: "gate_up",
            rows: 6912,
            cols: 2560,
            count: 60,
            preps: 30,
            sites: &[Site::GateUp],
        },
        Shape {
            name: "down",
            rows: 2560,
            cols: 6912,
            count: 30,
            preps: 30,
            sites: &[Site::Down],
        },
    ]
}

fn plan(mode: Mode) -> Plan {
    match mode {
        Mode::Tiny => Plan {
            shapes: vec![
                Shape {
                    name: "q_o",
                    rows: 96,
                    cols: 256,
                    count: 2,
                    preps: 2,
                    sites: &[Site::Qkv, Site::O],
                },
                Shape {
                    name: "down",
                    rows: 64,
                    cols: 150,
                    count: 1,
                    preps: 1,
                    sites: &[Site::Down],
                },
            ],
            token_label: "tiny-token",
            warmup: 0,
            min_reps: 1,
            max_reps: 5,
            budget: Duration::from_millis(2),
            validate_rows: usize::MAX,
            capture_tokens: 16,
            synth_preset: "tiny",
        },
        Mode::Quick => Plan {
            shapes: shapes_2b4t(),
            token_label: "2b4t-token",
            warmup: 1,
            min_reps: 3,
            max_reps: 400,
            budget: Duration::from_millis(70),
            validate_rows: 16,
            capture_tokens: 96,
            synth_preset: "small",
        },
        Mode::Full => Plan {
            shapes: shapes_2b4t(),
            token_label: "2b4t-token",
            warmup: 2,
            min_reps: 7,
            max_reps: 2000,
            budget: Duration::from_millis(400),
            validate_rows: usize::MAX,
            capture_tokens: 256,
            synth_preset: "small",
        },
    }
}

/// Random ternary weights with about one third zeros (as absmean ternarization of a
/// Gaussian master gives: P(|w| < mean|w|/2) ≈ 0.31).
fn random_ternary(rows: usize, cols: usize, seed: u64) -> Ternary {
    let mut r = Rng::new(seed);
    Ternary::from_fn(rows, cols, |_, _| (r.next_u64() % 3) as i8 - 1)
}

/// The dense oracle's output for one activation row.
fn oracle(t: &Ternary, x: &Act) -> Vec<i32> {
    let b = ActBuf::from_rows(x.values(), 1, x.cols);
    t.gemm_oracle(&b.view())
}

/// Per (shape, dist, encoding): the formula counts of the row term and the preparation term.
#[derive(Clone, Debug)]
struct ShapeCounts {
    rows: Ops,
    prep: Ops,
    ws: u64,
}

/// Run the experiment with command-line style arguments.
pub fn run(args: &[String]) -> Result<()> {
    let a = harness::Args::parse_for("magnitude", MODULE_DOC, USES, args)?;
    let mode = a.mode();
    let root = a.results_root();
    let seed = 7;
    let meta = RunMeta::capture("magnitude", mode, seed);
    let mut csv = Csv::create(&root, &meta)?;
    let mut checks = Checks::default();
    let p = plan(mode);
    let t_start = Instant::now();

    // --- energy tables
    let energy_text = match &a.energy {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => energy::DEFAULT_CSV.to_string(),
    };
    let (entries, tables) = energy::parse(&energy_text)?;
    for e in &entries {
        csv.write(Row::value("op_energy_pj", e.energy_pj, "pJ").with(|r| {
            r.layout = e.op.clone();
            r.kernel = e.table.clone();
            r.variant = e.basis.clone();
        }))?;
    }

    // --- real activations
    let ws_root = harness::workspace_root();
    let scratch_dir = std::env::temp_dir().join(format!("rotor-magnitude-{}", std::process::id()));
    let (dir, label) = acts::model_dir(&ws_root, p.synth_preset, &scratch_dir)?;
    let cap = acts::capture(&dir, &label, &ws_root, p.capture_tokens)?;
    let _ = std::fs::remove_dir_all(&scratch_dir);
    harness::say!(
        "magnitude ({} mode): real activations from {} ({} tokens, hidden {}, inter {}, {} layers, {} rows)",
        mode.name(),
        cap.model,
        cap.tokens,
        cap.hidden,
        cap.inter,
        cap.layers,
        cap.rows.len()
    );
    csv.write(
        Row::value("capture_tokens", cap.tokens as f64, "tokens").with(|r| {
            r.layout = cap.model.clone();
            r.shape = format!(
                "hidden {}, inter {}, {} layers",
                cap.hidden, cap.inter, cap.layers
            );
            r.variant = "real".into();
        }),
    )?;
    for site in Site::ALL {
        let rows: Vec<&Vec<i8>> = cap.site(site).collect();
        let width = rows.first().map_or(0, |r| r.len());
        let s = acts::summarize(rows.iter().map(|r| r.as_slice()));
        write_summary(
            &mut csv,
            &s,
            "real",
            &format!("site:{}", site.name()),
            &width.to_string(),
        )?;
    }

    for e in Enc::ALL {
        csv.write(
            Row::value("weight_bits", e.weight_bits(), "bits").with(|r| {
                r.layout = e.name().into();
            }),
        )?;
    }

    // --- per shape × distribution × encoding × kernel
    let mut counts: BTreeMap<(Dist, Enc, &'static str), ShapeCounts> = BTreeMap::new();
    let mut timings: BTreeMap<(Dist, Enc, Kern, &'static str), harness::Timing> = BTreeMap::new();
    let mut scratch = Scratch::default();
    let progress = harness::Progress::new("magnitude", p.shapes.len() * Dist::ALL.len());
    for (si, sh) in p.shapes.iter().enumerate() {
        let shape = sh.label();
        let t = random_ternary(sh.rows, sh.cols, Rng::seed_from(&[seed, si as u64]));
        let w = Weights::new(t);
        harness::say!("  shape {} {shape}", sh.name);
        for d in Dist::ALL {
            progress.step(format!(
                "shape {} {shape}, {} activations",
                sh.name,
                d.name()
            ));
            let values = match d {
                Dist::Real => cap.row(sh.sites, sh.cols, si as u64 * 7 + 1),
                _ => acts::synthetic(d, sh.cols, Rng::seed_from(&[seed, si as u64, d as u64])),
            };
            let x = Act::new(&values);
            let want = oracle(&w.t, &x);
            let summary = acts::summarize(std::iter::once(x.values()));
            write_summary(&mut csv, &summary, d.name(), "input", &shape)?;
            let full = Stats::new(&w.t, &x, 0..w.rows);
            let vrows = 0..p.validate_rows.min(w.rows);
            let vstats = Stats::new(&w.t, &x, vrows.clone());
            let mut line = format!("    {:<8}", d.name());
            for e in Enc::ALL {
                // Formulas, validated against the instrumented scalar run.
                let f_rows = encodings::formula(e, &full, false, true);
                let f_prep = encodings::formula(e, &full, true, false);
                let f_all = encodings::formula(e, &full, true, true);
                let (counted, y) = encodings::count(e, &w, &x, vrows.clone());
                let f_check = encodings::formula(e, &vstats, true, true);
                let diff = counted.diff(&f_check);
                checks.check(diff.is_empty(), || {
                    format!(
                        "{} {shape} {}: counted ≠ formula: {}",
                        e.name(),
                        d.name(),
                        diff.join(", ")
                    )
                });
                checks.check(y == want[vrows.clone()], || {
                    format!(
                        "{} {shape} {}: instrumented scalar ≠ oracle",
                        e.name(),
                        d.name()
                    )
                });
                csv.write(
                    Row::value("ops_validated_rows", vrows.len() as f64, "rows").with(|r| {
                        r.layout = e.name().into();
                        r.kernel = "instrumented".into();
                        r.variant = d.name().into();
                        r.shape = shape.clone();
                    }),
                )?;
                for k in Kind::ALL {
                    if f_all.get(k) == 0 {
                        continue;
                    }
                    csv.write(
                        Row::value(&format!("ops_{}", k.name()), f_all.get(k) as f64, "count")
                            .with(|r| {
                                r.layout = e.name().into();
                                r.kernel = "formula".into();
                                r.variant = d.name().into();
                                r.shape = shape.clone();
                            }),
                    )?;
                }
                counts.insert(
                    (d, e, sh.name),
                    ShapeCounts {
                        rows: f_rows,
                        prep: f_prep,
                        ws: encodings::working_set_bytes(e, &full),
                    },
                );
                // Timing, every output checked.
                for k in kernels(e) {
                    let mut y = vec![0i32; w.rows];
                    let tm = time(p.warmup, p.min_reps, p.max_reps, p.budget, || {
                        gemv(e, k, &w, &x, &mut scratch, &mut y)
                    });
                    checks.check(y == want, || {
                        let bad = y.iter().zip(&want).filter(|(a, b)| a != b).count();
                        format!(
                            "{} × {} {shape} {}: {bad} outputs ≠ oracle",
                            e.name(),
                            k.name(),
                            d.name()
                        )
                    });
                    csv.write(Row::timed("gemv_us", &tm, "us", |s| s * 1e6).with(|r| {
                        r.layout = e.name().into();
                        r.kernel = k.name().into();
                        r.variant = d.name().into();
                        r.shape = shape.clone();
                        r.threads = 1;
                        r.batch = 1;
                    }))?;
                    timings.insert((d, e, k, sh.name), tm);
                    line += &format!(" {}/{} {:.0}", e.name(), k.name(), tm.median * 1e6);
                }
            }
            harness::say!("{line} (µs)");
        }
    }

    // --- per-token totals: operations, energy, time
    let token = p.token_label;
    let weights_token: u64 = p
        .shapes
        .iter()
        .map(|s| s.count * (s.rows * s.cols) as u64)
        .sum();
    csv.write(
        Row::value("weights_token", weights_token as f64, "weights").with(|r| {
            r.shape = token.into();
        }),
    )?;
    for d in Dist::ALL {
        for e in Enc::ALL {
            let mut ops = Ops::default();
            let mut en: BTreeMap<&str, energy::Energy> = BTreeMap::new();
            for sh in &p.shapes {
                let c = &counts[&(d, e, sh.name)];
                ops = ops.plus(&c.rows, sh.count).plus(&c.prep, sh.preps);
                for t in &tables {
                    let ge = t.energy(&c.rows, c.ws);
                    let pe = t.energy(&c.prep, c.ws);
                    let acc = en.entry(t.name.as_str()).or_default();
                    *acc = acc.plus(ge, sh.count as f64).plus(pe, sh.preps as f64);
                }
            }
            let label = |r: &mut Row| {
                r.layout = e.name().into();
                r.variant = d.name().into();
                r.shape = token.into();
            };
            for k in Kind::ALL {
                if ops.get(k) > 0 {
                    csv.write(
                        Row::value(
                            &format!("token_ops_{}", k.name()),
                            ops.get(k) as f64,
                            "count",
                        )
                        .with(|r| {
                            label(r);
                            r.kernel = "formula".into();
                        }),
                    )?;
                }
            }
            for (tname, v) in &en {
                for (m, val) in [
                    ("token_energy_arith_uj", v.arith),
                    ("token_energy_onchip_uj", v.onchip),
                    ("token_energy_dram_uj", v.dram),
                ] {
                    csv.write(Row::value(m, val * 1e-6, "uJ").with(|r| {
                        label(r);
                        r.kernel = tname.to_string();
                    }))?;
                }
            }
            for k in kernels(e) {
                let ts: Vec<(&Shape, &harness::Timing)> = p
                    .shapes
                    .iter()
                    .filter_map(|s| timings.get(&(d, e, k, s.name)).map(|t| (s, t)))
                    .collect();
                if ts.len() != p.shapes.len() {
                    continue;
                }
                let sum = |f: fn(&harness::Timing) -> f64| -> f64 {
                    ts.iter().map(|(s, t)| s.count as f64 * f(t)).sum::<f64>() * 1e3
                };
                let (lo, med, hi) = (sum(|t| t.min), sum(|t| t.median), sum(|t| t.max));
                let reps = ts.iter().map(|(_, t)| t.reps).min().unwrap_or(0);
                csv.write(
                    Row {
                        metric: "token_ms".into(),
                        value: med,
                        unit: "ms".into(),
                        reps,
                        min: lo,
                        median: med,
                        max: hi,
                        ..Default::default()
                    }
                    .with(|r| {
                        label(r);
                        r.kernel = k.name().into();
                        r.threads = 1;
                        r.batch = 1;
                    }),
                )?;
            }
        }
    }
    harness::say!(
        "magnitude: {} rows in {} ({:.0} s)",
        csv.rows(),
        csv.path.display(),
        t_start.elapsed().as_secs_f64()
    );
    checks.finish("magnitude")
}

fn write_summary(
    csv: &mut Csv,
    s: &acts::Summary,
    variant: &str,
    layout: &str,
    shape: &str,
) -> Result<()> {
    for (m, v, unit) in [
        ("act_mean_abs", s.mean_abs, "|x|"),
        ("act_zero_frac", s.zero_frac, "fraction"),
        ("act_p50_abs", s.p50_abs, "|x|"),
        ("act_p90_abs", s.p90_abs, "|x|"),
        ("act_planes", s.planes, "planes"),
        ("act_levels", s.levels, "levels/word"),
    ] {
        csv.write(Row::value(m, v, unit).with(|r| {
            r.variant = variant.into();
            r.layout = layout.into();
            r.shape = shape.into();
        }))?;
    }
    Ok(())
}

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = &[harness::Flag::Energy];

/// What `magnitude --help` says.
pub const MODULE_DOC: &str = "Eight encodings of the ternary dot product (f32 MAC, int8 MAC, sign-select, \
bit-serial popcount, unary counter, thermometer, two table lookups), each checked against the \
oracle, timed per GEMV at the 2B-4T projection shapes, counted by operation kind (formulas \
validated by an instrumented scalar run) and priced with per-operation energies (Horowitz 45 nm, \
BitNet 7 nm; energy.csv) for uniform, Gaussian, real (captured from a model) and small \
activations. Writes reports/results/magnitude/<machine>.csv; exits non-zero on any mismatch.";
