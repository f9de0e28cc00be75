//! The experiment harness: everything the experiment binaries share.
//!
//! - [`RunMeta`]: captured once per run (git rev + dirty flag, rustc, CPU model, SIMD features,
//!   default kernel, threads, seed, date, quick/full) and written beside the CSV as
//!   `<experiment>.meta.json`; its key fields are also repeated in every CSV row.
//! - [`Csv`]: one fixed tidy schema ([`Row`]) for every experiment: one measured quantity per
//!   row, with its unit and, for timings, repetitions and min/median/max.
//! - [`time`]: warm-up, then repetitions until a time budget, reporting min/median/max.
//! - [`probe`]: read and copy bandwidth of this machine, measured in the same run, so every
//!   throughput can be stated as a fraction of it.
//! - [`check`]: every timed kernel's output is compared with the oracle; a mismatch makes the
//!   experiment exit non-zero.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

/// Quick (CI, `just bench-all`) or full (the long sweep).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Tiny,
    Quick,
    Full,
}

impl Mode {
    /// From the command line: `--full`, `--tiny` (tests), else quick.
    pub fn from_args(args: &[String]) -> Mode {
        if args.iter().any(|a| a == "--full") {
            Mode::Full
        } else if args.iter().any(|a| a == "--tiny") {
            Mode::Tiny
        } else {
            Mode::Quick
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tiny => "tiny",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// `--out DIR` from the command line, else `reports/results` at the workspace root.
pub fn results_root(args: &[String]) -> PathBuf {
    arg_value(args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("reports/results"))
}

/// Where synthesized models go: `--models DIR`, else `target/models` in the workspace.
pub fn models_root(args: &[String]) -> PathBuf {
    arg_value(args, "--models")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/models"))
}

/// The value after flag `name` (`--name VALUE`), if given.
pub fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The workspace root (two levels above this crate at build time; the current directory if
/// that does not exist at run time).
pub fn workspace_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if p.join("Cargo.toml").exists() {
        p.canonicalize().unwrap_or(p)
    } else {
        PathBuf::from(".")
    }
}

fn cmd(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run metadata, captured once.
#[derive(Clone, Debug, Serialize)]
pub struct RunMeta {
    pub experiment: String,
    pub mode: Mode,
    pub git_rev: String,
    pub git_dirty: bool,
    pub rustc: String,
    pub cpu: String,
    pub simd: String,
    pub kernel_default: String,
    pub threads_available: usize,
    pub seed: u64,
    pub date: String,
    pub os: String,
    pub profile: String,
}

impl RunMeta {
    pub fn capture(experiment: &str, mode: Mode, seed: u64) -> RunMeta {
        let root = workspace_root();
        let root_s = root.to_string_lossy().to_string();
        let git_rev = cmd("git", &["-C", &root_s, "rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        let git_dirty = cmd(
            "git",
            &[
                "-C",
                &root_s,
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
        )
        .map(|s| !s.is_empty())
        .unwrap_or(false);
        let rustc = cmd("rustc", &["--version"]).unwrap_or_else(|| "unknown".into());
        let (cpu, feats) = rotor::kernels::cpu_description();
        let date = cmd("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default();
        RunMeta {
            experiment: experiment.to_string(),
            mode,
            git_rev,
            git_dirty,
            rustc,
            cpu,
            simd: feats.join(" "),
            kernel_default: rotor::Kernel::best().name().to_string(),
            threads_available: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed,
            date,
            os: std::env::consts::OS.to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
        }
    }

    /// The SIMD level in one word (the widest family this CPU has).
    pub fn simd_level(&self) -> String {
        self.kernel_default.clone()
    }
}

/// One row of the tidy schema shared by every experiment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub experiment: String,
    /// What varies that no other column names (e.g. "dram" / "hot", an encoding, a policy).
    pub variant: String,
    pub layout: String,
    pub kernel: String,
    /// e.g. "2560x6912" (out × in) or a model name.
    pub shape: String,
    pub threads: usize,
    pub batch: usize,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub reps: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    // Run metadata, repeated so each row stands alone.
    pub git_rev: String,
    pub cpu: String,
    pub simd: String,
    pub date: String,
    pub mode: String,
}

impl Row {
    /// A row for a plain value (no repetitions).
    pub fn value(metric: &str, value: f64, unit: &str) -> Row {
        Row {
            metric: metric.into(),
            value,
            unit: unit.into(),
            reps: 1,
            min: value,
            median: value,
            max: value,
            ..Default::default()
        }
    }
    /// A row for a timing-derived value, `f` mapping seconds to the reported unit.
    pub fn timed(metric: &str, t: &Timing, unit: &str, f: impl Fn(f64) -> f64) -> Row {
        let (a, m, b) = (f(t.min), f(t.median), f(t.max));
        Row {
            metric: metric.into(),
            value: m,
            unit: unit.into(),
            reps: t.reps,
            min: a.min(b),
            median: m,
            max: a.max(b),
            ..Default::default()
        }
    }
    pub fn with(mut self, f: impl FnOnce(&mut Row)) -> Row {
        f(&mut self);
        self
    }
}

/// A CSV file of [`Row`]s plus its metadata file.
pub struct Csv {
    w: csv::Writer<std::fs::File>,
    meta: RunMeta,
    pub path: PathBuf,
    rows: usize,
}

impl Csv {
    /// Create `<root>/<experiment>/<name>.csv` and `<name>.meta.json`.
    pub fn create(root: &Path, meta: &RunMeta, name: &str) -> Result<Csv> {
        let dir = root.join(&meta.experiment);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.csv"));
        let w = csv::Writer::from_path(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mp = dir.join(format!("{name}.meta.json"));
        std::fs::write(&mp, serde_json::to_string_pretty(meta)? + "\n")
            .with_context(|| format!("writing {}", mp.display()))?;
        Ok(Csv {
            w,
            meta: meta.clone(),
            path,
            rows: 0,
        })
    }

    pub fn write(&mut self, mut r: Row) -> Result<()> {
        r.experiment = self.meta.experiment.clone();
        r.git_rev = format!(
            "{}{}",
            self.meta.git_rev,
            if self.meta.git_dirty { "+dirty" } else { "" }
        );
        r.cpu = self.meta.cpu.clone();
        r.simd = self.meta.simd_level();
        r.date = self.meta.date.clone();
        r.mode = self.meta.mode.name().into();
        self.w.serialize(&r)?;
        self.w.flush()?;
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Repetition statistics of a timed closure, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub reps: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// Time `f`: `warmup` untimed calls, then at least `min_reps` and at most `max_reps` timed
/// calls, stopping once `budget` has elapsed (after `min_reps`).
pub fn time(
    warmup: usize,
    min_reps: usize,
    max_reps: usize,
    budget: Duration,
    mut f: impl FnMut(),
) -> Timing {
    for _ in 0..warmup {
        f();
    }
    let start = Instant::now();
    let mut v = Vec::new();
    while v.len() < max_reps.max(1) && (v.len() < min_reps.max(1) || start.elapsed() < budget) {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Timing {
        reps: v.len(),
        min: v[0],
        median: v[v.len() / 2],
        max: v[v.len() - 1],
    }
}

/// Time several closures *interleaved*: after `warmup` calls each, run `rounds` rounds in
/// which every closure is called once in turn (A B C A B C …), so slow drift of a shared
/// machine hits all of them alike and their ratios stay fair. Stops early (after at least
/// three rounds) when `budget` is spent.
pub fn time_interleaved(
    fs: &mut [&mut dyn FnMut()],
    warmup: usize,
    rounds: usize,
    budget: Duration,
) -> Vec<Timing> {
    for f in fs.iter_mut() {
        for _ in 0..warmup {
            f();
        }
    }
    let start = Instant::now();
    let mut v: Vec<Vec<f64>> = vec![Vec::new(); fs.len()];
    for round in 0..rounds.max(1) {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            v[i].push(t.elapsed().as_secs_f64());
        }
        if round >= 2 && start.elapsed() > budget {
            break;
        }
    }
    v.into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            Timing {
                reps: s.len(),
                min: s[0],
                median: s[s.len() / 2],
                max: s[s.len() - 1],
            }
        })
        .collect()
}

/// Machine probes, run inside the rayon pool whose thread count they should use.
pub mod probe {
    /// Read bandwidth (bytes/s) over a buffer far beyond the last-level cache.
    pub fn read_bandwidth(bytes: usize) -> f64 {
        rotor::sys::read_bandwidth(bytes, 5)
    }
    /// `memcpy` bandwidth (bytes copied per second).
    pub fn copy_bandwidth(bytes: usize) -> f64 {
        rotor::sys::copy_bandwidth(bytes, 5)
    }
}

/// Correctness checks inside experiments: failures are collected and make the run fail.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            let w = what();
            eprintln!("CHECK FAILED: {w}");
            self.failures.push(w);
        }
    }
    /// Print the tally; an error if anything failed.
    pub fn finish(&self, experiment: &str) -> Result<()> {
        eprintln!(
            "{experiment}: {} passed, {} failed",
            self.passed,
            self.failures.len()
        );
        if self.failures.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(
                "{experiment}: {} correctness checks failed (first: {})",
                self.failures.len(),
                self.failures[0]
            )
        }
    }
}

/// A rayon pool of `n` threads.
pub fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .expect("thread pool")
}

/// Thread counts to sweep: 1..=available (quick/full), 1 only in tiny mode.
pub fn thread_counts(mode: Mode) -> Vec<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    match mode {
        Mode::Tiny => vec![1],
        _ => {
            let mut v: Vec<usize> = (0..).map(|i| 1usize << i).take_while(|&t| t < n).collect();
            v.push(n);
            v
        }
    }
}

/// A synthesized model of `preset`, written once.
pub fn ensure_model(
    dir: &std::path::Path,
    preset: rotor::synth::Preset,
) -> anyhow::Result<std::path::PathBuf> {
    let out = dir.join(preset.name());
    if !out.join("model.safetensors").exists() {
        eprintln!(
            "  synthesizing {} model into {}",
            preset.name(),
            out.display()
        );
        rotor::synth::synth(&rotor::synth::SynthOptions {
            preset,
            seed: 0,
            out: out.clone(),
            variant: rotor::synth::Variant::Packed,
            force: true,
            progress: false,
        })?;
    }
    Ok(out)
}
