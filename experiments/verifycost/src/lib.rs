//! Experiment `verifycost`: what exact checksum verification costs, measured below this
//! machine's run-to-run noise.
//!
//! (a) **Instruction counts** (`valgrind --tool=callgrind`; valgrind runs AVX2 and scalar code,
//!     not AVX-512, so the AVX2 kernels are used): the experiment re-runs itself under callgrind
//!     (role in `ROTOR_VERIFYCOST_CHILD`) for a short decode of the small synthesized model and
//!     for single products at each 2B-4T projection shape, with verification off / detect /
//!     correct. Products are counted inside the function that runs them (set-up excluded);
//!     decode is counted inside the model's layer and head functions at two lengths (N and 2N
//!     tokens) and differenced, so the prompt cancels (when those functions cannot be found by
//!     name, whole runs are counted and differenced). Added instructions = (policy − off) ÷ off.
//! (b) **Time on the 2B-4T shape**: decode steps of the synthesized 2B-4T-shape model with the
//!     three policies, interleaved step by step (off, detect, correct, off, …) for ≥ 30 rounds;
//!     the overhead is the median of the per-round ratios policy ÷ off, with a bootstrap 95 %
//!     interval (2000 resamples of the rounds).
//! (c) **Verification on another thread** (the seed's "parallel execution"): the 210 ternary
//!     products of one 2B-4T token (30 layers × q, k, v, o, gate, up, down, distinct random
//!     matrices, 520 MB of `rotor-pn` weights streamed from DRAM) computed in sequence with no
//!     check, with the check inline after each product (what the engine does), and with the
//!     check of product i handed to a dedicated checker thread while product i+1 runs (the
//!     token ends when the checker has drained). Interleaved rounds, overhead vs no check with
//!     a bootstrap interval, at 1 and 2 compute threads. The model code is not changed: this
//!     measures the idea on the products that dominate decode, not inside `Model::forward`.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use harness::{Checks, Csv, Mode, Row, RunMeta, ensure_model, pool, thread_counts};
use layouts::{random_acts, random_ternary};
use rotor::kernels::Kernel;
use rotor::model::{KvCache, LoadOptions, Logits, Model, State, VerifyCtx};
use rotor::sample::Rng;
use rotor::synth::Preset;
use rotor::ternary::parallel;
use rotor::ternary::{ActBuf, LayoutKind, TernaryLayout};
use rotor::verify::{Checksums, Policy, VerifyStats};

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = &[harness::Flag::Models];

/// What `verifycost --help` says.
pub const ABOUT: &str = "What exact verification costs: callgrind instruction counts (decode of \
the small model and each 2B-4T projection shape, off/detect/correct), interleaved paired decode \
timings on the 2B-4T shape with bootstrap 95 % intervals, and checking on another thread while \
the next product runs. Writes reports/results/verifycost/<machine>.csv.";

const CHILD: &str = "ROTOR_VERIFYCOST_CHILD";
const POLICIES: [Policy; 3] = [Policy::Off, Policy::Detect, Policy::Correct];

/// The 2B-4T projection shapes (out × in) and how many of each a token runs.
const SHAPES: [(&str, usize, usize, usize); 4] = [
    ("q_o", 2560, 2560, 2),
    ("k_v", 640, 2560, 2),
    ("gate_up", 6912, 2560, 2),
    ("down", 2560, 6912, 1),
];

struct Plan {
    decode_preset: Preset,
    /// Decode tokens counted under callgrind (and twice that).
    cg_tokens: usize,
    /// Products per shape counted under callgrind (and twice that).
    cg_products: usize,
    cg_shapes: Vec<(&'static str, usize, usize)>,
    time_preset: Preset,
    rounds: usize,
    steps: usize,
    layers: usize,
    par_shapes: Vec<(&'static str, usize, usize, usize)>,
    bootstrap: usize,
}

fn plan(mode: Mode) -> Plan {
    let full_shapes: Vec<_> = SHAPES.iter().map(|s| (s.0, s.1, s.2)).collect();
    match mode {
        Mode::Tiny => Plan {
            decode_preset: Preset::Tiny,
            cg_tokens: 2,
            cg_products: 2,
            cg_shapes: vec![("tiny", 128, 256)],
            time_preset: Preset::Tiny,
            rounds: 5,
            steps: 2,
            layers: 2,
            par_shapes: vec![("a", 128, 256, 2), ("b", 256, 128, 1)],
            bootstrap: 200,
        },
        Mode::Quick => Plan {
            decode_preset: Preset::Small,
            cg_tokens: 8,
            cg_products: 4,
            cg_shapes: full_shapes,
            time_preset: Preset::B2b4t,
            rounds: 36,
            steps: 2,
            layers: 30,
            par_shapes: SHAPES.to_vec(),
            bootstrap: 2000,
        },
        Mode::Full => Plan {
            decode_preset: Preset::Small,
            cg_tokens: 16,
            cg_products: 8,
            cg_shapes: full_shapes,
            time_preset: Preset::B2b4t,
            rounds: 100,
            steps: 4,
            layers: 30,
            par_shapes: SHAPES.to_vec(),
            bootstrap: 5000,
        },
    }
}

/// The kernel callgrind can run: AVX2 if this CPU has it, else scalar.
fn valgrind_kernel() -> Kernel {
    Kernel::avx2().unwrap_or_else(Kernel::scalar)
}

fn load(dir: &Path, threads: usize, kernel: Option<Kernel>) -> Result<Model> {
    Model::load(
        dir,
        &LoadOptions {
            layout: LayoutKind::ROTOR_DEFAULT,
            kernel,
            threads: Some(threads),
            checksums: true,
            ..Default::default()
        },
    )
    .with_context(|| format!("loading {}", dir.display()))
}

/// `steps` decode steps after a 4-token prompt; seconds per step.
fn decode(
    m: &Model,
    cache: &mut KvCache,
    st: &mut State,
    steps: usize,
    policy: Policy,
) -> Result<f64> {
    let stats = VerifyStats::default();
    let v = VerifyCtx {
        policy,
        stats: (policy != Policy::Off).then_some(&stats),
        fault: None,
    };
    cache.clear();
    let prompt: Vec<u32> = (0..4)
        .map(|i| (i * 37 % m.config.vocab_size) as u32)
        .collect();
    m.forward(&prompt, cache, st, Logits::Last, v)?;
    let t = Instant::now();
    let mut next = 1u32;
    for _ in 0..steps {
        let l = m.forward(&[next], cache, st, Logits::Last, v)?;
        next = rotor::sample::argmax(l);
    }
    let dt = t.elapsed().as_secs_f64() / steps.max(1) as f64;
    if stats.snapshot()[1] != 0 {
        bail!("verification flagged mismatches in a fault-free run");
    }
    Ok(dt)
}

/// One product's checksums and inputs.
struct Mat {
    layout: Box<dyn TernaryLayout>,
    cs: Checksums,
}

fn make_mat(rows: usize, cols: usize, seed: u64, kernel: Kernel) -> Mat {
    let t = random_ternary(rows, cols, seed);
    let cs = Checksums::new(&t);
    let layout = LayoutKind::ROTOR_DEFAULT.from_dense(&t);
    let _ = kernel;
    Mat { layout, cs }
}

/// `n` products and their checks on this thread (RAYON_NUM_THREADS=1: `parallel::gemm` runs
/// serially); callgrind counts only inside this function ([`PRODUCT_FUNCTIONS`]).
#[inline(never)]
fn measured_products(mat: &Mat, k: Kernel, x: &ActBuf, y: &mut [i32], policy: Policy, n: usize) {
    let stats = VerifyStats::default();
    for _ in 0..n {
        parallel::gemm(mat.layout.as_ref(), k, &x.view(), y);
        mat.cs
            .check(policy, mat.layout.as_ref(), &x.view(), y, &stats);
    }
}

const PRODUCT_FUNCTIONS: [&str; 1] = ["*measured_products*"];

/// Under callgrind: the work of one counted run.
fn child(role: &str) -> Result<()> {
    let parts: Vec<&str> = role.split(':').collect();
    let k = valgrind_kernel();
    match parts.as_slice() {
        ["decode", dir, policy, n] => {
            let policy = Policy::parse(policy).map_err(anyhow::Error::msg)?;
            let n: usize = n.parse()?;
            let m = load(Path::new(dir), 1, Some(k))?;
            let mut cache = KvCache::new(&m, n + 8);
            let mut st = State::new(&m, 4, n + 8);
            decode(&m, &mut cache, &mut st, n, policy)?;
        }
        ["product", rows, cols, policy, n] => {
            let (rows, cols, n): (usize, usize, usize) = (rows.parse()?, cols.parse()?, n.parse()?);
            let policy = Policy::parse(policy).map_err(anyhow::Error::msg)?;
            let mat = make_mat(rows, cols, 3, k);
            let x = random_acts(1, cols, 4);
            let mut y = vec![0i32; rows];
            measured_products(&mat, k, &x, &mut y, policy, n);
            std::hint::black_box(&y);
        }
        _ => bail!("{CHILD}={role}: unknown role"),
    }
    Ok(())
}

/// The model's per-token work, counted by name under callgrind so the model's idle rayon
/// worker, whose spinning between parallel regions varies from run to run, stays out of the
/// count: the layers and the head (verification touches only the layers).
const DECODE_FUNCTIONS: [&str; 2] = ["*forward_chunk*", "*head_into*"];

/// Instructions (callgrind's total `Ir`, all threads) of this binary in role `role`, counted
/// only inside functions matching `toggles` when given; `None` if that count is zero (the
/// functions were inlined or renamed).
fn callgrind(role: &str, tmp: &Path, toggles: &[&str]) -> Result<Option<u64>> {
    let exe = std::env::current_exe()?;
    let out = tmp.join(format!("cg.{}.out", role.replace(['/', ':'], "_")));
    let mut args = vec![
        "--tool=callgrind".to_string(),
        "--quiet".into(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    if !toggles.is_empty() {
        args.push("--collect-atstart=no".into());
        for t in toggles {
            args.push(format!("--toggle-collect={t}"));
        }
    }
    let st = Command::new("valgrind")
        .args(&args)
        .arg(&exe)
        .env(CHILD, role)
        .env("RAYON_NUM_THREADS", "1")
        .status()
        .context("running valgrind")?;
    if !st.success() {
        bail!("callgrind run {role} failed ({st})");
    }
    let text = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    let n: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .context("no totals in callgrind output")?;
    Ok((n > 0).then_some(n))
}

/// Median of `v` (sorted copy).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Bootstrap 95 % percentile interval of the median of `v`.
pub fn bootstrap_median(v: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut r = Rng::new(seed);
    let mut meds: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            let s: Vec<f64> = (0..v.len())
                .map(|_| v[(r.next_u64() % v.len() as u64) as usize])
                .collect();
            median(&s)
        })
        .collect();
    meds.sort_by(f64::total_cmp);
    let at = |q: f64| meds[((meds.len() - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
}

/// Rows for paired timings: per-round seconds of each setting (index 0 = baseline).
#[allow(clippy::too_many_arguments)]
fn paired_rows(
    csv: &mut Csv,
    names: &[&str],
    secs: &[Vec<f64>],
    unit_scale: f64,
    unit: &str,
    time_metric: &str,
    shape: &str,
    threads: usize,
    layout: &str,
    kernel: &str,
    resamples: usize,
) -> Result<Vec<(f64, f64, f64)>> {
    let mut out = vec![];
    for (i, name) in names.iter().enumerate() {
        let s = &secs[i];
        let mut sorted = s.clone();
        sorted.sort_by(f64::total_cmp);
        let label = |r: &mut Row| {
            r.variant = name.to_string();
            r.shape = shape.into();
            r.threads = threads;
            r.batch = 1;
            r.layout = layout.into();
            r.kernel = kernel.into();
        };
        csv.write(
            Row {
                metric: time_metric.into(),
                value: median(s) * unit_scale,
                unit: unit.into(),
                reps: s.len(),
                min: sorted[0] * unit_scale,
                median: median(s) * unit_scale,
                max: sorted[sorted.len() - 1] * unit_scale,
                ..Default::default()
            }
            .with(label),
        )?;
        if i == 0 {
            continue;
        }
        let ratios: Vec<f64> = s.iter().zip(&secs[0]).map(|(a, b)| a / b - 1.0).collect();
        let m = median(&ratios) * 100.0;
        let (lo, hi) = bootstrap_median(&ratios, resamples, 17 + i as u64);
        csv.write(
            Row {
                metric: "overhead_pct".into(),
                value: m,
                unit: "%".into(),
                reps: ratios.len(),
                min: lo * 100.0,
                median: m,
                max: hi * 100.0,
                ..Default::default()
            }
            .with(label),
        )?;
        out.push((m, lo * 100.0, hi * 100.0));
    }
    Ok(out)
}

pub fn run(args: &[String]) -> Result<()> {
    if let Ok(role) = std::env::var(CHILD) {
        return child(&role);
    }
    let a = harness::Args::parse_for("verifycost", ABOUT, USES, args)?;
    let mode = a.mode();
    let root = a.results_root();
    let meta = RunMeta::capture("verifycost", mode, 13);
    let mut csv = Csv::create(&root, &meta)?;
    let mut checks = Checks::default();
    let p = plan(mode);
    let mdir = a.models_root();
    let t0 = Instant::now();
    let threads = thread_counts(mode);
    // Callgrind re-runs this binary; from another one (a test harness calling `run`) it cannot.
    let is_binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s == "verifycost"))
        .unwrap_or(false);
    let have_valgrind = is_binary
        && Command::new("valgrind")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    let progress = harness::Progress::new(
        "verifycost",
        usize::from(have_valgrind) * (1 + p.cg_shapes.len()) + 2 * threads.len(),
    );
    harness::say!(
        "verifycost ({} mode): callgrind {}, {} timed rounds",
        mode.name(),
        if have_valgrind {
            "yes"
        } else {
            "absent (skipped)"
        },
        p.rounds
    );

    // (a) instruction counts.
    if have_valgrind {
        let tmp = std::env::temp_dir().join(format!("rotor-verifycost-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        let kname = valgrind_kernel().name();
        let dir = ensure_model(&mdir, p.decode_preset)?;
        type Job = (String, String, Box<dyn Fn(Policy, usize) -> String>, usize);
        let mut jobs: Vec<Job> = vec![];
        {
            let d = dir.to_string_lossy().into_owned();
            jobs.push((
                format!("decode {}", p.decode_preset.name()),
                "decode".into(),
                Box::new(move |pol: Policy, n| format!("decode:{d}:{}:{n}", pol.name())),
                p.cg_tokens,
            ));
        }
        for &(name, rows, cols) in &p.cg_shapes {
            jobs.push((
                format!("{rows}x{cols}"),
                name.to_string(),
                Box::new(move |pol: Policy, n| format!("product:{rows}:{cols}:{}:{n}", pol.name())),
                p.cg_products,
            ));
        }
        for (shape, what, role, n) in &jobs {
            progress.step(format!("callgrind, {what} {shape}"));
            let mut per = vec![];
            let decode = what == "decode";
            let mut toggles: &[&str] = if decode {
                &DECODE_FUNCTIONS
            } else {
                &PRODUCT_FUNCTIONS
            };
            for pol in POLICIES {
                let run = |n: usize, t: &[&str]| callgrind(&role(pol, n), &tmp, t);
                // Products counted inside `measured_products` have no set-up in the count: one
                // run. Decode (the prompt runs through the same functions) and whole-process
                // counts: N and 2N, differenced.
                let (mut single, mut first) = (None, None);
                if !toggles.is_empty() {
                    match run(*n, toggles)? {
                        Some(c) if !decode => single = Some(c),
                        Some(c) => first = Some(c),
                        None => {
                            harness::say!(
                                "  callgrind: {toggles:?} not found, counting whole runs"
                            );
                            toggles = &[];
                        }
                    }
                }
                let each = match single {
                    Some(c) => c as f64 / *n as f64,
                    None => {
                        let a1 = match first {
                            Some(c) => c,
                            None => run(*n, toggles)?.context("callgrind counted nothing")?,
                        };
                        let a2 = run(2 * n, toggles)?.context("callgrind counted nothing")?;
                        checks.check(a2 > a1, || {
                            format!("callgrind {shape} {}: 2N ≤ N", pol.name())
                        });
                        (a2.saturating_sub(a1)) as f64 / *n as f64
                    }
                };
                per.push(each);
                let unit = match (decode, toggles.is_empty()) {
                    (false, true) => "Ir/product (whole process)".to_string(),
                    (false, false) => "Ir/product".to_string(),
                    (true, true) => "Ir/token (whole process)".to_string(),
                    (true, false) => "Ir/token (layers + head)".to_string(),
                };
                csv.write(Row::value("instructions", each, &unit).with(|r| {
                    r.variant = pol.name().into();
                    r.shape = shape.clone();
                    r.layout = LayoutKind::ROTOR_DEFAULT.name().into();
                    r.kernel = kname.into();
                    r.threads = 1;
                    r.batch = 1;
                    r.reps = *n;
                }))?;
            }
            for (i, pol) in POLICIES.iter().enumerate().skip(1) {
                let frac = per[i] / per[0] - 1.0;
                csv.write(
                    Row::value("added_instructions_pct", frac * 100.0, "%").with(|r| {
                        r.variant = pol.name().into();
                        r.shape = shape.clone();
                        r.layout = LayoutKind::ROTOR_DEFAULT.name().into();
                        r.kernel = kname.into();
                        r.threads = 1;
                        r.batch = 1;
                    }),
                )?;
                harness::say!(
                    "  callgrind {what} {shape}: {} adds {:+.3} % instructions ({:.0} vs {:.0} per {})",
                    pol.name(),
                    frac * 100.0,
                    per[i],
                    per[0],
                    if what == "decode" { "token" } else { "product" }
                );
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }

    // (b) paired decode timings on the 2B-4T shape.
    let dir = ensure_model(&mdir, p.time_preset)?;
    for &th in &threads {
        progress.step(format!(
            "paired decode timings, {}, {th} thread(s)",
            p.time_preset.name()
        ));
        let m = load(&dir, th, None)?;
        let mut cache = KvCache::new(&m, p.steps + 8);
        let mut st = State::new(&m, 4, p.steps + 8);
        decode(&m, &mut cache, &mut st, 1, Policy::Off)?; // warm-up
        let mut secs: Vec<Vec<f64>> = vec![vec![]; 3];
        for round in 0..p.rounds {
            // Rotate the order each round so no policy always follows another.
            for j in 0..3 {
                let i = (round + j) % 3;
                secs[i].push(decode(&m, &mut cache, &mut st, p.steps, POLICIES[i])?);
            }
        }
        let r = paired_rows(
            &mut csv,
            &["off", "detect", "correct"],
            &secs,
            1e3,
            "ms/token",
            "decode_ms",
            &format!("{} decode", p.time_preset.name()),
            th,
            m.layout.name(),
            m.kernel.name(),
            p.bootstrap,
        )?;
        harness::say!(
            "  decode {th}t: detect {:+.2} % [{:+.2}, {:+.2}], correct {:+.2} % [{:+.2}, {:+.2}] over {} rounds",
            r[0].0,
            r[0].1,
            r[0].2,
            r[1].0,
            r[1].1,
            r[1].2,
            p.rounds
        );
    }

    // (c) checking inline vs on another thread, over one token's products.
    let kern = LayoutKind::ROTOR_DEFAULT.best_kernel();
    let mut mats: Vec<Mat> = vec![];
    for l in 0..p.layers {
        for (si, &(_, rows, cols, count)) in p.par_shapes.iter().enumerate() {
            for c in 0..count {
                mats.push(make_mat(
                    rows,
                    cols,
                    (l * 16 + si * 4 + c) as u64 + 1000,
                    kern,
                ));
            }
        }
    }
    let xs: Vec<ActBuf> = mats
        .iter()
        .map(|m| m.layout.cols())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|c| random_acts(1, c, c as u64))
        .collect();
    let x_of = |cols: usize| xs.iter().find(|x| x.view().cols == cols).unwrap();
    let weight_mb: f64 = mats
        .iter()
        .map(|m| m.layout.storage_bytes() as f64)
        .sum::<f64>()
        / 1e6;
    for &th in &threads {
        progress.step(format!(
            "inline vs offloaded checks, {} products, {th} thread(s)",
            mats.len()
        ));
        let pl = pool(th);
        let stats = VerifyStats::default();
        let mut ys: Vec<Vec<i32>> = mats.iter().map(|m| vec![0; m.layout.rows()]).collect();
        // The three ways of running one token's products.
        let token = |how: usize, ys: &mut Vec<Vec<i32>>| -> f64 {
            let t = Instant::now();
            match how {
                0 => pl.install(|| {
                    for (m, y) in mats.iter().zip(ys.iter_mut()) {
                        let x = x_of(m.layout.cols());
                        parallel::gemm(m.layout.as_ref(), kern, &x.view(), y);
                    }
                }),
                1 => pl.install(|| {
                    for (m, y) in mats.iter().zip(ys.iter_mut()) {
                        let x = x_of(m.layout.cols());
                        parallel::gemm(m.layout.as_ref(), kern, &x.view(), y);
                        m.cs.check(Policy::Detect, m.layout.as_ref(), &x.view(), y, &stats);
                    }
                }),
                _ => std::thread::scope(|s| {
                    let (tx, rx) = mpsc::channel::<(usize, Vec<i32>)>();
                    let stats = &stats;
                    let mats = &mats;
                    let checker = s.spawn(move || {
                        for (i, mut y) in rx {
                            let m: &Mat = &mats[i];
                            let x = x_of(m.layout.cols());
                            m.cs.check(Policy::Detect, m.layout.as_ref(), &x.view(), &mut y, stats);
                        }
                    });
                    pl.install(|| {
                        for (i, (m, y)) in mats.iter().zip(ys.iter_mut()).enumerate() {
                            let x = x_of(m.layout.cols());
                            parallel::gemm(m.layout.as_ref(), kern, &x.view(), y);
                            // The checker gets its own copy: the next product may overwrite y
                            // in a real decode.
                            tx.send((i, y.clone())).expect("checker alive");
                        }
                    });
                    drop(tx);
                    checker.join().expect("checker thread");
                }),
            }
            t.elapsed().as_secs_f64()
        };
        token(0, &mut ys);
        token(2, &mut ys);
        let mut secs: Vec<Vec<f64>> = vec![vec![]; 3];
        for round in 0..p.rounds {
            for j in 0..3 {
                let i = (round + j) % 3;
                secs[i].push(token(i, &mut ys));
            }
        }
        let [checked, mism, ..] = stats.snapshot();
        checks.check(checked > 0 && mism == 0, || {
            format!("offload/inline checks: {checked} checked, {mism} mismatches")
        });
        let r = paired_rows(
            &mut csv,
            &["none", "inline", "other-thread"],
            &secs,
            1e3,
            "ms/token",
            "products_ms",
            &format!("{} products/token", mats.len()),
            th,
            LayoutKind::ROTOR_DEFAULT.name(),
            kern.name(),
            p.bootstrap,
        )?;
        harness::say!(
            "  {} products ({weight_mb:.0} MB) {th}t: inline {:+.2} % [{:+.2}, {:+.2}], other thread {:+.2} % [{:+.2}, {:+.2}]",
            mats.len(),
            r[0].0,
            r[0].1,
            r[0].2,
            r[1].0,
            r[1].1,
            r[1].2
        );
    }
    drop(progress);
    harness::say!(
        "verifycost: {} rows in {} ({:.0} s)",
        csv.rows(),
        csv.path.display(),
        t0.elapsed().as_secs_f64()
    );
    checks.finish("verifycost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_bootstrap_interval() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(bootstrap_median(&[5.0; 10], 100, 1), (5.0, 5.0));
        // The interval holds the sample median and stays inside the data.
        let v: Vec<f64> = (0..40).map(|i| (i * 7 % 40) as f64).collect();
        let (lo, hi) = bootstrap_median(&v, 500, 2);
        let m = median(&v);
        assert!(
            lo <= m && m <= hi && lo >= 0.0 && hi <= 39.0,
            "{lo} {m} {hi}"
        );
        assert!(hi - lo < 20.0, "{lo} {hi}");
    }
}
