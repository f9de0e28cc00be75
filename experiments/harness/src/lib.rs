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
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tiny => "tiny",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

pub use args::{Args, Flag};

/// The command line every experiment binary shares (clap): one struct, one `--help`, and an
/// error for any flag a binary does not know or does not use.
pub mod args {
    use std::path::PathBuf;

    use clap::{CommandFactory, FromArgMatches, Parser, error::ErrorKind};

    use super::{Mode, workspace_root};

    /// The flags of every experiment binary. Flags marked with an experiment's name are used by
    /// that experiment only; giving one to another experiment is an error.
    #[derive(Parser, Clone, Debug, Default)]
    #[command(disable_version_flag = true)]
    #[command(group = clap::ArgGroup::new("mode").args(["tiny", "quick", "full"]))]
    pub struct Args {
        /// Smoke-test sizes (the tests' mode; seconds).
        #[arg(long)]
        pub tiny: bool,
        /// The default: what `just bench-all` runs (minutes).
        #[arg(long)]
        pub quick: bool,
        /// The long sweep (`just bench-all --full`).
        #[arg(long)]
        pub full: bool,
        /// Results root; CSV goes to DIR/<experiment>/<machine>.csv [default: reports/results].
        #[arg(long, value_name = "DIR")]
        pub out: Option<PathBuf>,
        /// Where synthesized models are written and reused [default: target/models].
        #[arg(long, value_name = "DIR")]
        pub models: Option<PathBuf>,
        /// [perplexity] a real checkpoint to score too (or ROTOR_MODEL); [peers] the
        /// 2B-4T-shape model [default: target/models/2b4t]; [crosscheck] the trained model
        /// [default: datasets/models/austen-tiny-i768].
        #[arg(long, value_name = "DIR")]
        pub model: Option<PathBuf>,
        /// [perplexity] the text to score the real model on (or ROTOR_WIKITEXT); [crosscheck]
        /// the text both engines score [default: datasets/corpus/test.txt].
        #[arg(long, value_name = "FILE")]
        pub text: Option<PathBuf>,
        /// [magnitude] per-operation energies instead of experiments/magnitude/energy.csv.
        #[arg(long, value_name = "FILE")]
        pub energy: Option<PathBuf>,
        /// [peers] where the GGUF exports go [default: <model>-gguf]; [crosscheck] default
        /// target/crosscheck/<model>-<mode>.
        #[arg(long, value_name = "DIR")]
        pub gguf_dir: Option<PathBuf>,
        /// [peers] the rotor binary [default: target/release/rotor].
        #[arg(long, value_name = "BIN")]
        pub rotor: Option<PathBuf>,
        /// [peers, crosscheck] the Python with llama-cpp-python [default: the peers venv's;
        /// crosscheck --tiny: none, the llama.cpp arms are skipped].
        #[arg(long, value_name = "PY")]
        pub python: Option<PathBuf>,
        /// [peers] lock file held by heavy steps, or `none` [default: ROTOR_BENCH_LOCK or
        /// /tmp/rotor-build.lock].
        #[arg(long, value_name = "FILE|none")]
        pub lock: Option<String>,
        /// [peers] alternating repetitions.
        #[arg(long, value_name = "N")]
        pub reps: Option<usize>,
        /// [peers] thread counts, comma-separated (e.g. 1,2).
        #[arg(long, value_name = "LIST")]
        pub threads: Option<String>,
        /// [peers] prompt length of the prefill runs.
        #[arg(long, value_name = "N")]
        pub prompt_tokens: Option<usize>,
        /// [peers] tokens generated per decode run.
        #[arg(long, value_name = "N")]
        pub gen_tokens: Option<usize>,
        /// [peers] timed runs per process.
        #[arg(long, value_name = "N")]
        pub runs: Option<usize>,
    }

    /// The experiment-specific flags, for [`Args::parse_for`]'s list of what a binary uses.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Flag {
        Models,
        Model,
        Text,
        Energy,
        GgufDir,
        Rotor,
        Python,
        Lock,
        Reps,
        Threads,
        PromptTokens,
        GenTokens,
        Runs,
    }

    impl Args {
        /// Parse `argv` (program name first) for experiment `name`, which uses the common flags
        /// (`--tiny/--quick/--full`, `--out`) and `uses`. Unknown flags, and flags of other
        /// experiments, are errors; `--help` is a [`clap::Error`] of kind `DisplayHelp`.
        pub fn try_parse_for(
            name: &'static str,
            about: &'static str,
            uses: &[Flag],
            argv: &[String],
        ) -> Result<Args, clap::Error> {
            let mut cmd = Args::command().name(name).bin_name(name).about(about);
            let m = cmd.try_get_matches_from_mut(argv)?;
            let a = Args::from_arg_matches(&m)?;
            let given: [(Flag, &str, bool); 13] = [
                (Flag::Models, "--models", a.models.is_some()),
                (Flag::Model, "--model", a.model.is_some()),
                (Flag::Text, "--text", a.text.is_some()),
                (Flag::Energy, "--energy", a.energy.is_some()),
                (Flag::GgufDir, "--gguf-dir", a.gguf_dir.is_some()),
                (Flag::Rotor, "--rotor", a.rotor.is_some()),
                (Flag::Python, "--python", a.python.is_some()),
                (Flag::Lock, "--lock", a.lock.is_some()),
                (Flag::Reps, "--reps", a.reps.is_some()),
                (Flag::Threads, "--threads", a.threads.is_some()),
                (
                    Flag::PromptTokens,
                    "--prompt-tokens",
                    a.prompt_tokens.is_some(),
                ),
                (Flag::GenTokens, "--gen-tokens", a.gen_tokens.is_some()),
                (Flag::Runs, "--runs", a.runs.is_some()),
            ];
            for (f, flag, set) in given {
                if set && !uses.contains(&f) {
                    return Err(cmd.error(
                        ErrorKind::ArgumentConflict,
                        format!("{flag} is not used by the {name} experiment"),
                    ));
                }
            }
            Ok(a)
        }

        /// [`try_parse_for`](Self::try_parse_for) for library entry points (tests): a parse
        /// error becomes an [`anyhow::Error`] with clap's message.
        pub fn parse_for(
            name: &'static str,
            about: &'static str,
            uses: &[Flag],
            argv: &[String],
        ) -> anyhow::Result<Args> {
            Self::try_parse_for(name, about, uses, argv)
                .map_err(|e| anyhow::anyhow!("{}", e.render().to_string().trim_end()))
        }

        pub fn mode(&self) -> Mode {
            if self.full {
                Mode::Full
            } else if self.tiny {
                Mode::Tiny
            } else {
                Mode::Quick
            }
        }

        /// `--out DIR`, else `reports/results` at the workspace root.
        pub fn results_root(&self) -> PathBuf {
            self.out
                .clone()
                .unwrap_or_else(|| workspace_root().join("reports/results"))
        }

        /// `--models DIR`, else `target/models` in the workspace.
        pub fn models_root(&self) -> PathBuf {
            self.models
                .clone()
                .unwrap_or_else(|| workspace_root().join("target/models"))
        }
    }
}

/// The `main` of an experiment binary: parse the shared flags for `name` (printing `--help` or
/// a usage error and exiting as clap does), then `run(argv)`; an error exits 1.
pub fn main(
    name: &'static str,
    about: &'static str,
    uses: &[Flag],
    run: fn(&[String]) -> Result<()>,
) {
    let argv: Vec<String> = std::env::args().collect();
    if let Err(e) = Args::try_parse_for(name, about, uses, &argv) {
        e.exit();
    }
    if let Err(e) = run(&argv) {
        say(format!("error: {e:#}"));
        progress_clear();
        std::process::exit(1);
    }
}

/// Progress of a long experiment on stderr: which step, how many done, roughly how long left.
/// Drawn only when stderr is a terminal (indicatif hides it otherwise); log lines printed with
/// [`say`] (or [`say!`]) go above the bar, or plainly to stderr when there is no bar.
pub struct Progress {
    pb: indicatif::ProgressBar,
}

static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

impl Progress {
    /// A bar of `total` steps for `experiment`, the one [`say`] prints above until dropped.
    pub fn new(experiment: &str, total: usize) -> Progress {
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix}: step {pos}/{len} done, now {wide_msg} [{elapsed_precise}, ~{eta} left]",
            )
            .expect("progress template"),
        );
        pb.set_prefix(experiment.to_string());
        *BAR.lock().unwrap() = Some(pb.clone());
        Progress { pb }
    }

    /// Start the next step (`what`); the previous one counts as done.
    pub fn step(&self, what: impl Into<String>) {
        if self.pb.message().is_empty() && self.pb.position() == 0 {
            self.pb.set_message(what.into());
            self.pb.tick();
        } else {
            self.pb.inc(1);
            self.pb.set_message(what.into());
        }
    }

    /// How many steps were started.
    pub fn len(&self) -> u64 {
        self.pb.length().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.pb.finish_and_clear();
        let mut g = BAR.lock().unwrap();
        *g = None;
    }
}

fn progress_clear() {
    if let Some(pb) = BAR.lock().unwrap().take() {
        pb.finish_and_clear();
    }
}

/// Print a log line on stderr, above the progress bar when one is drawn.
pub fn say(line: impl AsRef<str>) {
    let g = BAR.lock().unwrap();
    match g.as_ref() {
        Some(pb) if !pb.is_hidden() => pb.println(line.as_ref()),
        _ => eprintln!("{}", line.as_ref()),
    }
}

/// `eprintln!` that keeps the progress bar intact ([`say`]).
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => { $crate::say(format!($($t)*)) };
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
    /// `/proc/loadavg` (1, 5, 15 min) when the run started: what else the machine was doing.
    pub load_avg: String,
    /// Free text from `ROTOR_RUN_NOTES` (e.g. "two other builds running").
    pub notes: String,
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
            load_avg: std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            notes: std::env::var("ROTOR_RUN_NOTES").unwrap_or_default(),
        }
    }

    /// The SIMD level in one word (the widest family this CPU has).
    pub fn simd_level(&self) -> String {
        self.kernel_default.clone()
    }

    /// This run's machine name ([`machine_name`] of the CPU model and SIMD level).
    pub fn machine(&self) -> String {
        machine_name(&self.cpu, &self.simd_level())
    }
}

/// A machine's name for result files: the CPU model reduced to lowercase words (trademarks,
/// "Processor", "CPU" and the clock dropped) and the SIMD level, joined by `-`:
/// `"AMD EPYC"`, `avx2` → `amd-epyc-avx2`; `"Intel(R) Xeon(R) Processor"`, `avx512` →
/// `intel-xeon-avx512`. The renderer derives the same name from the CSV's `cpu` and `simd`.
pub fn machine_name(cpu: &str, simd: &str) -> String {
    let cpu = cpu.split('@').next().unwrap_or("").to_lowercase();
    let cpu = cpu.replace("(r)", " ").replace("(tm)", " ");
    let mut words: Vec<String> = cpu
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !["processor", "cpu", "core"].contains(w))
        .map(str::to_string)
        .collect();
    if words.is_empty() {
        words.push("unknown".into());
    }
    let simd: String = simd
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    // The vector class names the machine: an AVX-512 machine stays `…-avx512` whether its
    // best kernel family is `avx512`, `avx512vnni` or `amx`, so its reruns replace its files.
    let simd = match simd.as_str() {
        "avx512vnni" | "amx" => "avx512".to_string(),
        _ => simd,
    };
    if !simd.is_empty() {
        words.push(simd);
    }
    words.join("-")
}

/// This machine's name, as a run here would write it ([`machine_name`]).
pub fn this_machine() -> String {
    let (cpu, _) = rotor::kernels::cpu_description();
    machine_name(&cpu, rotor::Kernel::best().name())
}

/// Where experiment `experiment` writes this machine's CSV under `root`.
pub fn result_csv(root: &Path, experiment: &str) -> PathBuf {
    root.join(experiment)
        .join(format!("{}.csv", this_machine()))
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
    /// Create this machine's `<root>/<experiment>/<machine>.csv` and `<machine>.meta.json`,
    /// replacing only this machine's files: results of other machines stay beside them.
    pub fn create(root: &Path, meta: &RunMeta) -> Result<Csv> {
        let dir = root.join(&meta.experiment);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = meta.machine();
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

    /// The directory this CSV is in (`<root>/<experiment>`), for an experiment's side files,
    /// which it names `<machine>.<what>` too.
    pub fn dir(&self) -> &Path {
        self.path.parent().expect("CSV path has a directory")
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
    /// Read bandwidth (bytes/s): the engine's probe (`rotor::sys::read_bandwidth`, the same
    /// code and buffer size as `rotor bench`), over at least [`rotor::sys::PROBE_BYTES`] so
    /// that no last-level cache holds it (the Xeon here has 300 MB of L3).
    pub fn read_bandwidth(bytes: usize) -> f64 {
        rotor::sys::read_bandwidth(bytes.max(rotor::sys::PROBE_BYTES), 5)
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
            say!("CHECK FAILED: {w}");
            self.failures.push(w);
        }
    }
    /// Print the tally; an error if anything failed.
    pub fn finish(&self, experiment: &str) -> Result<()> {
        say!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names() {
        assert_eq!(machine_name("AMD EPYC", "avx2"), "amd-epyc-avx2");
        assert_eq!(
            machine_name("Intel(R) Xeon(R) Processor", "avx512"),
            "intel-xeon-avx512"
        );
        for level in ["avx512vnni", "amx"] {
            assert_eq!(
                machine_name("Intel(R) Xeon(R) Processor", level),
                "intel-xeon-avx512"
            );
        }
        assert_eq!(
            machine_name("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", "avx2"),
            "intel-i7-8650u-avx2"
        );
        assert_eq!(machine_name("", "scalar"), "unknown-scalar");
    }

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_are_parsed_and_unknown_or_foreign_ones_rejected() {
        let a = Args::parse_for("x", "", &[], &argv(&["x", "--tiny", "--out", "/tmp/r"])).unwrap();
        assert_eq!(a.mode(), Mode::Tiny);
        assert_eq!(a.results_root(), PathBuf::from("/tmp/r"));
        let a = Args::parse_for("x", "", &[], &argv(&["x"])).unwrap();
        assert_eq!(a.mode(), Mode::Quick);
        let e = Args::parse_for("x", "", &[], &argv(&["x", "--ful"])).unwrap_err();
        assert!(e.to_string().contains("--ful"), "{e}");
        let e = Args::parse_for("x", "", &[], &argv(&["x", "--tiny", "--full"])).unwrap_err();
        assert!(e.to_string().contains("cannot be used with"), "{e}");
        let e = Args::parse_for("x", "", &[], &argv(&["x", "--energy", "f.csv"])).unwrap_err();
        assert!(
            e.to_string().contains("not used by the x experiment"),
            "{e}"
        );
        let a = Args::parse_for("x", "", &[Flag::Energy], &argv(&["x", "--energy", "f.csv"]));
        assert_eq!(a.unwrap().energy, Some(PathBuf::from("f.csv")));
        let h = Args::try_parse_for("x", "about x", &[], &argv(&["x", "--help"])).unwrap_err();
        assert_eq!(h.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(h.to_string().contains("about x") && h.to_string().contains("--full"));
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
        say!(
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
