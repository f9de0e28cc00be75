//! Experiment `peers`: how fast is rotor next to llama.cpp, on the same machine, in the same
//! run, on the same model?
//!
//! The model is the synthesized 2B-4T-shape checkpoint (`rotor synth --preset 2b4t`). It is
//! exported with `rotor export` to GGUF files llama.cpp reads (`TQ2_0` and `TQ1_0` ternary
//! projections; the tied embedding/head in `f16`, and in `q8_0` or `q6_k`), and then:
//!
//! 1. **Checks** (every timed file is also a correctness check, rebar-style): each GGUF must
//!    load in llama.cpp through its Python binding with the model's vocabulary, width, depth and
//!    head count, tokenize a sentence exactly as rotor's tokenizer does, and give finite
//!    logits; and it must load in rotor and give the logits the safetensors checkpoint gives
//!    (for an f16 head within 1e-4: bf16 values below 2^-17 are f16 subnormals and round; the
//!    maximum difference is recorded; lossy heads are only reported). A failed check makes the run exit non-zero.
//! 2. **Timing**, alternating engines A B A B: for each repetition, for each thread count, every
//!    case runs once as its own process — `rotor bench --json` (load, one prefill warm-up,
//!    `--runs` timed prefills of `--prompt-tokens`, `--runs` timed greedy decodes of
//!    `--gen-tokens`) and `llama_bench.py` (the same steps through llama-cpp-python).
//!    Every timed process runs under `flock LOCK` so no other heavy job on the machine overlaps.
//!
//! Output, per machine: `reports/results/peers/<machine>.csv` (the harness schema, see below),
//! `<machine>.meta.json` (run metadata), `<machine>.env.json` (llama.cpp version and build, the
//! plan, file sizes, check results) and `<machine>.runs.jsonl` (every process's raw JSON, in run
//! order).
//!
//! CSV columns as used here: `variant` = engine (`rotor`, `llama.cpp`, or `ratio` for
//! rotor ÷ llama.cpp), `layout` = weights (rotor's layout, or the GGUF type `TQ2_0`/`TQ1_0`;
//! `rotor-pn/TQ2_0` on ratio rows), `kernel` = rotor's kernel or `ggml-cpu@<llama.cpp commit>`, `shape` =
//! `2b4t/<head type>` (rotor: `bf16`; ratio rows: `<rotor head>÷<llama.cpp head>`), `batch` =
//! tokens per forward pass (prompt length for prefill, 1 for decode). Metrics: `prefill_tok_s`,
//! `decode_tok_s` (value = median over processes of each process's median over runs; min/max =
//! extremes over every run), llama.cpp's own counters `prefill_tok_s_internal` /
//! `decode_tok_s_internal`, `load_s`, `peak_rss_bytes`, and `prefill_ratio` / `decode_ratio`.
//!
//! Not part of `just test` or CI: it needs llama-cpp-python (compiled from source, ~12 minutes)
//! and a 1.2 GB model. Run it with `just bench-peers`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use harness::{Checks, Csv, Mode, Row, RunMeta};
use serde_json::{Value, json};

/// One GGUF file llama.cpp runs: weights type and head type as `rotor export` names them.
#[derive(Clone, Debug)]
pub struct GgufCase {
    pub weights: &'static str,
    pub head: &'static str,
}

impl GgufCase {
    pub fn file_name(&self) -> String {
        format!("{}-{}.gguf", self.weights, self.head)
    }
    /// The ggml type name (`TQ2_0`).
    pub fn weights_upper(&self) -> String {
        self.weights.to_ascii_uppercase()
    }
}

/// What one run measures.
#[derive(Clone, Debug)]
pub struct Plan {
    pub reps: usize,
    pub threads: Vec<usize>,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub runs: usize,
    /// rotor layouts (`--layout`); the first is the one ratios are taken against.
    pub rotor_layouts: Vec<String>,
    pub gguf: Vec<GgufCase>,
}

pub fn plan(mode: Mode) -> Plan {
    let threads = harness::thread_counts(Mode::Quick);
    match mode {
        Mode::Full => Plan {
            reps: 5,
            threads,
            prompt_tokens: 128,
            gen_tokens: 32,
            runs: 3,
            rotor_layouts: vec!["rotor".into(), "i2".into(), "tq1".into()],
            gguf: vec![
                GgufCase {
                    weights: "tq2_0",
                    head: "f16",
                },
                GgufCase {
                    weights: "tq1_0",
                    head: "f16",
                },
                GgufCase {
                    weights: "tq2_0",
                    head: "q8_0",
                },
                GgufCase {
                    weights: "tq1_0",
                    head: "q8_0",
                },
                GgufCase {
                    weights: "tq2_0",
                    head: "q6_k",
                },
            ],
        },
        _ => Plan {
            reps: 3,
            threads,
            prompt_tokens: 128,
            gen_tokens: 32,
            runs: 3,
            rotor_layouts: vec!["rotor".into(), "hf_packed".into()],
            gguf: vec![
                GgufCase {
                    weights: "tq2_0",
                    head: "f16",
                },
                GgufCase {
                    weights: "tq1_0",
                    head: "f16",
                },
                GgufCase {
                    weights: "tq2_0",
                    head: "q8_0",
                },
            ],
        },
    }
}

/// Command-line options (paths default to the workspace's own).
#[derive(Clone, Debug)]
pub struct Opts {
    pub mode: Mode,
    pub results: PathBuf,
    pub model: PathBuf,
    pub gguf_dir: PathBuf,
    pub rotor: PathBuf,
    pub python: PathBuf,
    pub script: PathBuf,
    pub lock: Option<PathBuf>,
    pub venv_info: Option<PathBuf>,
    pub plan: Plan,
    /// The `kernel` column of llama.cpp rows: `ggml-cpu@<llama.cpp commit>` when known.
    pub llama_kernel: String,
}

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = {
    use harness::Flag::*;
    &[
        Model,
        GgufDir,
        Rotor,
        Python,
        Lock,
        Reps,
        Threads,
        PromptTokens,
        GenTokens,
        Runs,
    ]
};

/// What `peers --help` says.
pub const ABOUT: &str = "Times rotor bench and llama.cpp (llama-cpp-python) alternately on the \
same synthesized 2B-4T-shape model and its GGUF exports; writes \
reports/results/peers/<machine>.csv. See experiments/peers/README.md.";

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts> {
        let a = harness::Args::parse_for("peers", ABOUT, USES, args)?;
        let root = harness::workspace_root();
        let mode = a.mode();
        let mut plan = plan(mode);
        if let Some(n) = a.reps {
            plan.reps = n.max(1);
        }
        if let Some(n) = a.prompt_tokens {
            plan.prompt_tokens = n.max(1);
        }
        if let Some(n) = a.gen_tokens {
            plan.gen_tokens = n.max(1);
        }
        if let Some(n) = a.runs {
            plan.runs = n.max(1);
        }
        if let Some(t) = &a.threads {
            plan.threads = t
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse::<usize>()
                        .with_context(|| format!("--threads {t}"))
                })
                .collect::<Result<_>>()?;
        }
        let model = a
            .model
            .clone()
            .unwrap_or_else(|| root.join("target/models/2b4t"));
        let gguf_dir = a.gguf_dir.clone().unwrap_or_else(|| {
            let mut s = model.as_os_str().to_owned();
            s.push("-gguf");
            PathBuf::from(s)
        });
        let venv = std::env::var_os("ROTOR_PEERS_VENV")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/rotor/peers-venv"))
            });
        let python = a.python.clone().unwrap_or_else(|| {
            venv.as_ref()
                .map(|v| v.join("bin/python"))
                .unwrap_or_else(|| "python3".into())
        });
        // The build record sits in the venv (python is VENV/bin/python).
        let venv_info = python
            .parent()
            .and_then(Path::parent)
            .map(|v| v.join("rotor-peers-build.json"))
            .filter(|p| p.exists());
        let lock = match a
            .lock
            .clone()
            .or_else(|| std::env::var("ROTOR_BENCH_LOCK").ok())
        {
            Some(l) if l == "none" || l.is_empty() => None,
            Some(l) => Some(PathBuf::from(l)),
            None => Some(PathBuf::from("/tmp/rotor-build.lock")),
        };
        Ok(Opts {
            mode,
            results: a.results_root(),
            model,
            gguf_dir,
            rotor: a
                .rotor
                .clone()
                .unwrap_or_else(|| root.join("target/release/rotor")),
            python,
            script: root.join("experiments/peers/llama_bench.py"),
            lock,
            venv_info,
            plan,
            llama_kernel: "ggml-cpu".into(),
        })
    }

    /// `prog args…`, under `flock LOCK` when a lock is set: heavy work never overlaps other
    /// engineers' builds and benchmarks, and their jobs never disturb a timing.
    fn command(&self, prog: &Path, args: &[String]) -> Command {
        match &self.lock {
            Some(l) => {
                let mut c = Command::new("flock");
                c.arg(l).arg(prog).args(args);
                c
            }
            None => {
                let mut c = Command::new(prog);
                c.args(args);
                c
            }
        }
    }

    /// Run a command (under the lock) and parse its stdout as one JSON object. On failure the
    /// error carries the tail of stderr. `allow_fail`: return the JSON even on a non-zero exit.
    fn json(&self, prog: &Path, args: &[String], allow_fail: bool) -> Result<Value> {
        let what = format!("{} {}", prog.display(), args.join(" "));
        let out = self
            .command(prog, args)
            .output()
            .with_context(|| format!("starting {what}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = {
            let lines: Vec<&str> = stderr.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        if !out.status.success() && !allow_fail {
            bail!("{what} failed ({}):\n{tail}", out.status);
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| anyhow!("{what} printed no JSON ({}):\n{tail}", out.status))?;
        serde_json::from_str(line).with_context(|| format!("parsing the JSON of {what}"))
    }
}

/// One timed process's result.
#[derive(Clone, Debug)]
struct Sample {
    engine: &'static str,
    weights: String,
    head: String,
    kernel: String,
    threads: usize,
    j: Value,
}

impl Sample {
    fn f(&self, k: &str) -> Option<f64> {
        self.j.get(k).and_then(Value::as_f64)
    }
}

fn bytes_of(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn newer_than(a: &Path, b: &Path) -> bool {
    let t = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((t(a), t(b)), (Some(x), Some(y)) if x >= y)
}

/// Export every GGUF the plan needs (skipped when present and newer than the checkpoint).
fn export_all(o: &Opts) -> Result<()> {
    std::fs::create_dir_all(&o.gguf_dir)
        .with_context(|| format!("creating {}", o.gguf_dir.display()))?;
    let ck = o.model.join("model.safetensors");
    for g in &o.plan.gguf {
        let out = o.gguf_dir.join(g.file_name());
        if out.exists() && newer_than(&out, &ck) {
            harness::say!("peers: reusing {}", out.display());
            continue;
        }
        harness::say!("peers: exporting {}", out.display());
        let args: Vec<String> = [
            "export",
            "--model",
            &o.model.to_string_lossy(),
            "--format",
            "gguf",
            "--type",
            g.weights,
            "--head",
            g.head,
            "--out",
            &out.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let st = o
            .command(&o.rotor, &args)
            .status()
            .context("running rotor export")?;
        if !st.success() {
            bail!("rotor {} failed ({st})", args.join(" "));
        }
    }
    Ok(())
}

fn rotor_logits(o: &Opts, model: &Path, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
    let ids = tokens
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let j = o.json(
        &o.rotor,
        &[
            "logits".into(),
            "--model".into(),
            model.to_string_lossy().into_owned(),
            "--tokens".into(),
            ids,
        ],
        false,
    )?;
    let rows = j["logits"]
        .as_array()
        .ok_or_else(|| anyhow!("rotor logits: no `logits` array"))?;
    Ok(rows
        .iter()
        .map(|r| {
            r.as_array()
                .map(|v| {
                    v.iter()
                        .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect())
}

/// The load checks of every exported file, in llama.cpp and in rotor.
fn check_files(o: &Opts, checks: &mut Checks) -> Result<Value> {
    let config = rotor::model::Config::from_dir(&o.model)?;
    let text = "It is a truth universally acknowledged";
    let tok = rotor::tokenizer::Tokenizer::from_dir(&o.model)?
        .ok_or_else(|| anyhow!("{} has no tokenizer.json", o.model.display()))?;
    let ids = tok.encode(text, true)?;
    let ids_s = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    harness::say!(
        "peers: rotor logits of the checkpoint ({} tokens)",
        ids.len()
    );
    let reference = rotor_logits(o, &o.model, &ids)?;
    let mut report = vec![];
    for g in &o.plan.gguf {
        let file = o.gguf_dir.join(g.file_name());
        harness::say!("peers: checking {}", file.display());
        // llama.cpp
        let args: Vec<String> = vec![
            o.script.to_string_lossy().into_owned(),
            "--check".into(),
            "--model".into(),
            file.to_string_lossy().into_owned(),
            "--threads".into(),
            o.plan
                .threads
                .iter()
                .max()
                .copied()
                .unwrap_or(1)
                .to_string(),
            "--text".into(),
            text.into(),
            "--expect-tokens".into(),
            ids_s.clone(),
            "--expect-vocab".into(),
            config.vocab_size.to_string(),
            "--expect-hidden".into(),
            config.hidden_size.to_string(),
            "--expect-layers".into(),
            config.num_layers.to_string(),
            "--expect-heads".into(),
            config.num_heads.to_string(),
        ];
        let lj = o.json(&o.python, &args, true)?;
        let loaded = lj["loaded"].as_bool() == Some(true);
        checks.check(loaded, || {
            format!(
                "llama.cpp does not load {}: {}",
                file.display(),
                lj["error"]
            )
        });
        if let Some(f) = lj["failures"].as_array() {
            for x in f {
                checks.check(false, || format!("{}: {}", file.display(), x));
            }
        }
        // rotor: the same logits as the checkpoint (exact for an f16 head of bf16 values in
        // f16's normal range; a lossy head is only reported).
        let got = rotor_logits(o, &file, &ids)?;
        let mut maxdiff = 0f32;
        let mut all_finite = true;
        for (a, b) in got.iter().flatten().zip(reference.iter().flatten()) {
            all_finite &= a.is_finite();
            maxdiff = maxdiff.max((a - b).abs());
        }
        let same_shape = got.len() == reference.len()
            && got.iter().zip(&reference).all(|(a, b)| a.len() == b.len());
        harness::say!(
            "peers:   llama.cpp loads it: {loaded} ({}); rotor: logits maxdiff vs checkpoint {maxdiff:.3e}",
            lj["desc"]
        );
        checks.check(same_shape && all_finite, || {
            format!(
                "rotor's logits from {} are malformed or not finite",
                file.display()
            )
        });
        if g.head == "f16" {
            // bf16 → f16 is exact for |v| ≥ 2^-17 (f16's subnormal spacing is 2^-24); the few
            // embedding values below that round, which moves a logit by ~1e-6. Anything
            // larger is a wrong file.
            checks.check(maxdiff <= 1e-4, || {
                format!(
                    "rotor's logits from {} differ from the checkpoint's by {maxdiff:e} (an f16 head of bf16 values may differ only by f16 subnormal rounding, ≤ 1e-4)",
                    file.display()
                )
            });
        }
        report.push(json!({
            "file": g.file_name(),
            "bytes": bytes_of(&file),
            "llama_cpp": lj,
            "rotor_logits_maxdiff_vs_checkpoint": maxdiff,
        }));
    }
    Ok(json!({"text": text, "rotor_tokens": ids, "files": report}))
}

fn rotor_bench(o: &Opts, layout: &str, threads: usize) -> Result<Sample> {
    let p = &o.plan;
    let args: Vec<String> = [
        "bench",
        "--model",
        &o.model.to_string_lossy(),
        "--layout",
        layout,
        "--threads",
        &threads.to_string(),
        "--prompt-tokens",
        &p.prompt_tokens.to_string(),
        "--gen-tokens",
        &p.gen_tokens.to_string(),
        "--runs",
        &p.runs.to_string(),
        "--head",
        "bf16",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let j = o.json(&o.rotor, &args, false)?;
    Ok(Sample {
        engine: "rotor",
        weights: j["layout"].as_str().unwrap_or(layout).to_string(),
        head: j["head"].as_str().unwrap_or("bf16").to_string(),
        kernel: j["kernel"].as_str().unwrap_or("").to_string(),
        threads,
        j,
    })
}

fn llama_bench(o: &Opts, g: &GgufCase, threads: usize) -> Result<Sample> {
    let p = &o.plan;
    let args: Vec<String> = vec![
        o.script.to_string_lossy().into_owned(),
        "--model".into(),
        o.gguf_dir
            .join(g.file_name())
            .to_string_lossy()
            .into_owned(),
        "--threads".into(),
        threads.to_string(),
        "--prompt-tokens".into(),
        p.prompt_tokens.to_string(),
        "--gen-tokens".into(),
        p.gen_tokens.to_string(),
        "--runs".into(),
        p.runs.to_string(),
    ];
    let j = o.json(&o.python, &args, false)?;
    Ok(Sample {
        engine: "llama.cpp",
        weights: g.weights_upper(),
        head: g.head.to_string(),
        kernel: o.llama_kernel.clone(),
        threads,
        j,
    })
}

/// Median, min, max of per-process values.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    s.sort_by(f64::total_cmp);
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

/// The aggregate of one case over repetitions.
struct Agg {
    engine: &'static str,
    weights: String,
    head: String,
    kernel: String,
    threads: usize,
    /// (median of process medians, min over runs, max over runs, runs)
    prefill: (f64, f64, f64, usize),
    decode: (f64, f64, f64, usize),
}

fn aggregate(samples: &[Sample]) -> Vec<(Agg, Vec<&Sample>)> {
    let mut keys: Vec<(&'static str, String, String, usize)> = vec![];
    for s in samples {
        let k = (s.engine, s.weights.clone(), s.head.clone(), s.threads);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|k| {
            let group: Vec<&Sample> = samples
                .iter()
                .filter(|s| (s.engine, s.weights.clone(), s.head.clone(), s.threads) == k)
                .collect();
            let runs: usize = group
                .iter()
                .map(|s| s.j["runs"].as_u64().unwrap_or(1) as usize)
                .sum();
            let agg = |m: &str| {
                let med: Vec<f64> = group.iter().filter_map(|s| s.f(m)).collect();
                let lo: Vec<f64> = group
                    .iter()
                    .filter_map(|s| s.f(&format!("{m}_min")).or(s.f(m)))
                    .collect();
                let hi: Vec<f64> = group
                    .iter()
                    .filter_map(|s| s.f(&format!("{m}_max")).or(s.f(m)))
                    .collect();
                (stats(&med).0, stats(&lo).1, stats(&hi).2, runs)
            };
            (
                Agg {
                    engine: k.0,
                    weights: k.1,
                    head: k.2,
                    kernel: group[0].kernel.clone(),
                    threads: k.3,
                    prefill: agg("prefill_tok_s"),
                    decode: agg("decode_tok_s"),
                },
                group,
            )
        })
        .collect()
}

fn write_csv(o: &Opts, csv: &mut Csv, samples: &[Sample]) -> Result<Vec<String>> {
    let p = &o.plan;
    let aggs = aggregate(samples);
    let mut lines = vec![];
    for (a, group) in &aggs {
        let shape = format!("2b4t/{}", a.head);
        let base = |r: Row, batch: usize| {
            r.with(|r| {
                r.variant = a.engine.into();
                r.layout = a.weights.clone();
                r.kernel = a.kernel.clone();
                r.shape = shape.clone();
                r.threads = a.threads;
                r.batch = batch;
            })
        };
        for (metric, (v, lo, hi, n), batch) in [
            ("prefill_tok_s", a.prefill, p.prompt_tokens),
            ("decode_tok_s", a.decode, 1),
        ] {
            csv.write(base(
                Row {
                    metric: metric.into(),
                    value: v,
                    unit: "tokens/s".into(),
                    reps: n,
                    min: lo,
                    median: v,
                    max: hi,
                    ..Default::default()
                },
                batch,
            ))?;
        }
        let med = |k: &str| stats(&group.iter().filter_map(|s| s.f(k)).collect::<Vec<_>>());
        for (metric, unit, batch) in [
            ("prefill_tok_s_internal", "tokens/s", p.prompt_tokens),
            ("decode_tok_s_internal", "tokens/s", 1),
            ("load_s", "s", 0),
            ("peak_rss_bytes", "bytes", 0),
        ] {
            let (v, lo, hi) = med(metric);
            if v.is_finite() {
                csv.write(base(
                    Row {
                        metric: metric.into(),
                        value: v,
                        unit: unit.into(),
                        reps: group.len(),
                        min: lo,
                        median: v,
                        max: hi,
                        ..Default::default()
                    },
                    batch,
                ))?;
            }
        }
        lines.push(format!(
            "  {:9} {:9} head {:5} {} thread(s): prefill {:7.2} tok/s [{:.2}–{:.2}], decode {:6.2} tok/s [{:.2}–{:.2}]",
            a.engine,
            a.weights,
            a.head,
            a.threads,
            a.prefill.0,
            a.prefill.1,
            a.prefill.2,
            a.decode.0,
            a.decode.1,
            a.decode.2
        ));
    }
    // Ratios rotor ÷ llama.cpp at the same thread count, against the first rotor layout.
    let first_rotor = aggs
        .iter()
        .find(|(a, _)| a.engine == "rotor")
        .map(|(a, _)| a.weights.clone());
    for (r, _) in aggs
        .iter()
        .filter(|(a, _)| a.engine == "rotor" && Some(&a.weights) == first_rotor.as_ref())
    {
        for (l, _) in aggs
            .iter()
            .filter(|(a, _)| a.engine == "llama.cpp" && a.threads == r.threads)
        {
            for (metric, rv, lv, batch) in [
                ("prefill_ratio", r.prefill, l.prefill, p.prompt_tokens),
                ("decode_ratio", r.decode, l.decode, 1),
            ] {
                let v = rv.0 / lv.0;
                csv.write(Row {
                    variant: "ratio".into(),
                    layout: format!("{}/{}", r.weights, l.weights),
                    kernel: format!("{}/{}", r.kernel, l.kernel),
                    shape: format!("2b4t/{}÷{}", r.head, l.head),
                    threads: r.threads,
                    batch,
                    metric: metric.into(),
                    value: v,
                    unit: "ratio".into(),
                    reps: rv.3.min(lv.3),
                    min: rv.1 / lv.2,
                    median: v,
                    max: rv.2 / lv.1,
                    ..Default::default()
                })?;
            }
            lines.push(format!(
                "  rotor {} ÷ llama.cpp {} {} head, {} thread(s): prefill ×{:.2}, decode ×{:.2}",
                r.weights,
                l.weights,
                l.head,
                r.threads,
                r.prefill.0 / l.prefill.0,
                r.decode.0 / l.decode.0
            ));
        }
    }
    Ok(lines)
}

pub fn run(args: &[String]) -> Result<()> {
    let mut o = Opts::parse(args)?;
    if o.mode == Mode::Tiny {
        bail!(
            "peers has no --tiny mode: llama.cpp's TQ types need 256-multiple widths (the 2B-4T shapes)"
        );
    }
    for (what, p) in [("rotor binary", &o.rotor), ("model", &o.model)] {
        if !p.exists() {
            bail!(
                "{what} {} does not exist (run `just bench-peers`)",
                p.display()
            );
        }
    }
    let t0 = Instant::now();
    let meta = RunMeta::capture("peers", o.mode, 42);
    let p = o.plan.clone();
    harness::say!(
        "peers ({} mode): {} reps × threads {:?} × rotor {:?} + llama.cpp {:?}; prompt {} + gen {} tokens, {} runs per process; lock {:?}",
        o.mode.name(),
        p.reps,
        p.threads,
        p.rotor_layouts,
        p.gguf.iter().map(GgufCase::file_name).collect::<Vec<_>>(),
        p.prompt_tokens,
        p.gen_tokens,
        p.runs,
        o.lock
    );
    let info = o
        .json(
            &o.python,
            &[o.script.to_string_lossy().into_owned(), "--info".into()],
            false,
        )
        .context("llama-cpp-python is not importable (run experiments/peers/setup-llama.sh)")?;
    harness::say!(
        "peers: llama-cpp-python {} — {}",
        info["llama_cpp_python"],
        info["system_info"]
    );
    let build: Value = o
        .venv_info
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    if let Some(c) = build["llama_cpp_commit"].as_str().filter(|c| c.len() >= 9) {
        o.llama_kernel = format!("ggml-cpu@{}", &c[..9]);
    }

    export_all(&o)?;
    let mut checks = Checks::default();
    let check_report = check_files(&o, &mut checks)?;
    checks.finish("peers load checks")?;

    // Timing: A B A B.
    let dir = o.results.join("peers");
    std::fs::create_dir_all(&dir)?;
    let machine = meta.machine();
    let mut raw = std::fs::File::create(dir.join(format!("{machine}.runs.jsonl")))?;
    let mut samples = vec![];
    let mut order = vec![];
    let n_cases = p.rotor_layouts.len() + p.gguf.len();
    let progress = harness::Progress::new("peers", p.reps * p.threads.len() * n_cases);
    for rep in 0..p.reps {
        for &t in &p.threads {
            for i in 0..n_cases {
                progress.step(format!(
                    "rep {}/{}, {} thread(s), case {}/{n_cases}",
                    rep + 1,
                    p.reps,
                    t,
                    i + 1
                ));
                let s = if i < p.rotor_layouts.len() {
                    rotor_bench(&o, &p.rotor_layouts[i], t)?
                } else {
                    llama_bench(&o, &p.gguf[i - p.rotor_layouts.len()], t)?
                };
                harness::say!(
                    "peers: rep {}/{} {:9} {:9} head {:5} {} thread(s): prefill {:7.2} tok/s, decode {:6.2} tok/s ({:.0} s elapsed)",
                    rep + 1,
                    p.reps,
                    s.engine,
                    s.weights,
                    s.head,
                    t,
                    s.f("prefill_tok_s").unwrap_or(f64::NAN),
                    s.f("decode_tok_s").unwrap_or(f64::NAN),
                    t0.elapsed().as_secs_f64()
                );
                let rec = json!({"rep": rep, "engine": s.engine, "weights": s.weights, "head": s.head, "threads": t, "result": s.j});
                writeln!(raw, "{rec}")?;
                order.push(format!("{}:{}:{}:{}", s.engine, s.weights, s.head, t));
                samples.push(s);
            }
        }
    }

    drop(progress);
    let mut csv = Csv::create(&o.results, &meta)?;
    let lines = write_csv(&o, &mut csv, &samples)?;
    let env = json!({
        "llama_cpp_python": info,
        "llama_cpp_build": build,
        "plan": {
            "reps": p.reps, "threads": p.threads, "prompt_tokens": p.prompt_tokens,
            "gen_tokens": p.gen_tokens, "runs_per_process": p.runs,
            "rotor_layouts": p.rotor_layouts,
            "gguf": p.gguf.iter().map(GgufCase::file_name).collect::<Vec<_>>(),
            "order_of_one_rep": order.iter().take(order.len() / p.reps.max(1)).collect::<Vec<_>>(),
            "lock": o.lock,
        },
        "model": o.model,
        "checkpoint_bytes": bytes_of(&o.model.join("model.safetensors")),
        "checks": check_report,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    std::fs::write(
        dir.join(format!("{machine}.env.json")),
        serde_json::to_string_pretty(&env)? + "\n",
    )?;
    harness::say!(
        "peers: wrote {} ({} rows) in {:.0} s",
        csv.path.display(),
        csv.rows(),
        t0.elapsed().as_secs_f64()
    );
    for l in lines {
        harness::say!("{l}");
    }
    Ok(())
}
