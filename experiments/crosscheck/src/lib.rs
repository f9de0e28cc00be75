//! Experiment `crosscheck`: do rotor and llama.cpp compute the same model?
//!
//! Every speed comparison with llama.cpp (`experiments/peers`) runs random weights, which says
//! nothing about whether the two engines compute the same function. This experiment runs one
//! *trained* ternary model — `datasets/models/austen-tiny-i768`, whose every projection input
//! is a multiple of 256 so that llama.cpp's TQ types can hold it — through both engines on the
//! same chunks of the shipped test split, scored the same way:
//!
//! 1. **Files.** The checkpoint is exported with `rotor::gguf::export` to `TQ2_0`, `TQ1_0` and
//!    `I2_S` GGUF (the tied head in f16, which holds the checkpoint's bf16 values exactly).
//! 2. **Chunks.** The test split is tokenized once by rotor's tokenizer (BOS first) and cut as
//!    llama.cpp's `llama-perplexity` does: non-overlapping chunks of `ctx` tokens, the first
//!    token of each replaced by BOS. Each chunk runs from an empty KV cache, and every position's
//!    negative log-likelihood of the next token is kept; the perplexity scores the second half
//!    (positions `ctx/2 .. ctx−2` predict `ctx/2+1 .. ctx−1`), exactly as [`rotor::perplexity`].
//! 3. **Arms.** rotor on the safetensors checkpoint and on each GGUF, each with the model's
//!    ReLU² feed-forward (`relu2`) and with the research switch `--ffn-act silu`
//!    ([`rotor::model::FfnAct`]); llama.cpp (llama-cpp-python, `llama_logits.py`) on each GGUF it
//!    loads, with its default f16 KV cache, and on TQ2_0 also with an f32 cache (rotor's).
//!    On TQ2_0 rotor also runs SiLU with llama.cpp's activation quantization emulated
//!    (`rotor silu q8k`: int8 per 256-block, [`ActPrecision::Q8K`], on the f32 reference path),
//!    and that with ggml's RoPE angles as well (`rotor silu q8k ggml-rope`,
//!    [`rotor::model::rope::Rope::ggml`]).
//!    llama.cpp's negative log-likelihoods are computed in float64 from its float32 logits by
//!    the script; the same positions are then scored by the same code here.
//! 4. **Agreement.** For the first `full` chunks both engines' full logits are kept, and each
//!    pair of arms is compared per position: KL(A ‖ B) of the next-token distributions, the
//!    largest and the mean |Δ logit|, and whether the top-1 token agrees; over all chunks, the
//!    mean |Δ NLL| of the scored tokens.
//! 5. **Tokenizer.** llama.cpp also tokenizes the whole test text with the GGUF's tokenizer
//!    metadata; the ids are compared with rotor's.
//!
//! Checks (a failure makes the run exit non-zero): rotor's arm on the checkpoint gives the
//! mean NLL of [`rotor::perplexity::perplexity`] (the code behind `rotor perplexity`); rotor
//! from every GGUF gives the checkpoint's logits within 1e-4 (f16 subnormal rounding of the
//! head is the only difference) and the same perplexity within 1e-5; every loaded arm's values
//! are finite; the SiLU arm differs from the ReLU² arm (the switch switches).
//!
//! CSV (`reports/results/crosscheck/<machine>.csv`): arm rows have `variant` = `rotor relu2`,
//! `rotor silu`, `rotor silu q8k`, `rotor silu q8k ggml-rope`, `llama.cpp` or
//! `llama.cpp kv-f32`, `layout` = the file (`safetensors`,
//! `TQ2_0`, `TQ1_0`, `I2_S`), `kernel` = rotor's kernel or `ggml-cpu@<llama.cpp commit>`,
//! `shape` = `<model>/ctx<N>`, `batch` = tokens per forward (`ctx`); metrics `ppl` (min/max =
//! ± one standard error), `mean_nll`, `tokens_scored`, `loads` (1/0: a file llama.cpp cannot
//! read has only this row), `seconds`. Agreement rows have `variant` = `agree: A vs B`, `layout`
//! = the file; metrics `mean_kl`, `max_kl`, `max_abs_logit_diff`, `mean_abs_logit_diff`,
//! `top1_agreement`, `mean_abs_nll_diff`, `ppl_ratio` (A ÷ B), and `kl_by_position` with
//! `batch` = the position in the chunk (mean over the `full` chunks). Tokenizer rows:
//! `variant` = `tokenizer`, metrics `tokens_identical` (1/0), `llama_tokens`, `rotor_tokens`.
//!
//! The llama.cpp arm needs llama-cpp-python (`experiments/peers/setup-llama.sh`, ~8–14 min once);
//! `just bench-crosscheck` builds it and runs this. Without `--python`, `--tiny` (the tests)
//! runs the rotor arms only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use harness::{Checks, Csv, Mode, Row, RunMeta};
use rotor::gguf::{ExportOptions, HeadType, TernaryType};
use rotor::model::{FfnAct, KvCache, LoadOptions, Logits, Model, State, VerifyCtx};
use rotor::perplexity::{PplOptions, neg_log_softmax, perplexity};
use rotor::quant::ActPrecision;
use rotor::tokenizer::Tokenizer;
use rotor::verify::Policy;
use serde_json::{Value, json};

/// The shipped model this experiment is about.
pub const MODEL: &str = "datasets/models/austen-tiny-i768";

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = &[
    harness::Flag::Model,
    harness::Flag::Text,
    harness::Flag::GgufDir,
    harness::Flag::Python,
];

/// What `crosscheck --help` says.
pub const ABOUT: &str = "Runs one trained ternary model (datasets/models/austen-tiny-i768) in \
rotor (safetensors and TQ2_0/TQ1_0/I2_S GGUF, with ReLU² and with the --ffn-act silu research \
switch) and in llama.cpp (llama-cpp-python) on the same test chunks: perplexity, per-position \
logit agreement, tokenizer agreement. Writes reports/results/crosscheck/<machine>.csv. \
`just bench-crosscheck` builds llama-cpp-python and runs it; --tiny without --python runs the \
rotor arms only.";

/// Sizes of one run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub ctx: usize,
    /// Chunks scored (`None`: every whole chunk of the text).
    pub chunks: Option<usize>,
    /// Chunks whose full logits are compared position by position.
    pub full: usize,
}

pub fn plan(mode: Mode) -> Plan {
    match mode {
        Mode::Tiny => Plan {
            ctx: 64,
            chunks: Some(3),
            full: 1,
        },
        Mode::Quick => Plan {
            ctx: 256,
            chunks: None,
            full: 4,
        },
        Mode::Full => Plan {
            ctx: 256,
            chunks: None,
            full: 16,
        },
    }
}

/// One model file both engines read.
#[derive(Clone, Debug)]
struct Source {
    /// `safetensors`, or the GGUF weight type (`TQ2_0`).
    label: String,
    path: PathBuf,
    gguf: bool,
}

/// One engine configuration's results on one file.
struct Arm {
    variant: String,
    source: String,
    kernel: String,
    /// `[chunks][ctx−1]`: NLL of token j+1 given 0..=j, every j.
    nll: Vec<f64>,
    /// `[full][ctx][vocab]`.
    logits: Vec<f32>,
    seconds: f64,
}

/// An arm's `[chunks][ctx−1]` NLLs and `[full][ctx][vocab]` logits.
type Scores = (Vec<f64>, Vec<f32>);

/// Perplexity of the scored half of every chunk (llama.cpp's convention).
#[derive(Clone, Copy, Debug)]
pub struct Ppl {
    pub ppl: f64,
    pub stderr: f64,
    pub mean_nll: f64,
    pub count: usize,
}

/// The scored NLLs of `nll` (`[chunks][ctx−1]`): indices `ctx/2 .. ctx−1` of each chunk.
pub fn scored(nll: &[f64], ctx: usize) -> impl Iterator<Item = f64> + '_ {
    nll.chunks_exact(ctx - 1)
        .flat_map(move |c| c[ctx / 2..].iter().copied())
}

/// PPL and its standard error, as `rotor perplexity` computes them.
pub fn ppl_of(nll: &[f64], ctx: usize) -> Ppl {
    let v: Vec<f64> = scored(nll, ctx).collect();
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let mean2 = v.iter().map(|x| x * x).sum::<f64>() / n;
    let sigma = if v.len() > 1 {
        ((mean2 - mean * mean).max(0.0) / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Ppl {
        ppl: mean.exp(),
        stderr: sigma * mean.exp(),
        mean_nll: mean,
        count: v.len(),
    }
}

/// Per-position comparison of two logit rows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowCmp {
    /// KL(P_a ‖ P_b) of the softmax distributions, nats.
    pub kl: f64,
    pub max_abs: f64,
    pub mean_abs: f64,
    pub top1_same: bool,
}

/// Compare two logit rows of one position.
pub fn compare_rows(a: &[f32], b: &[f32]) -> RowCmp {
    let lse = |r: &[f32]| {
        let m = r.iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y)) as f64;
        r.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln() + m
    };
    let (la, lb) = (lse(a), lse(b));
    let mut kl = 0.0;
    let mut max_abs = 0f64;
    let mut sum_abs = 0.0;
    for (&x, &y) in a.iter().zip(b) {
        let (pa, lpa, lpb) = (((x as f64) - la).exp(), x as f64 - la, y as f64 - lb);
        kl += pa * (lpa - lpb);
        let d = (x as f64 - y as f64).abs();
        max_abs = max_abs.max(d);
        sum_abs += d;
    }
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv { (i, v) } else { (bi, bv) }
            })
            .0
    };
    RowCmp {
        kl: kl.max(0.0),
        max_abs,
        mean_abs: sum_abs / a.len().max(1) as f64,
        top1_same: argmax(a) == argmax(b),
    }
}

struct Opts {
    mode: Mode,
    results: PathBuf,
    model: PathBuf,
    text: PathBuf,
    gguf_dir: PathBuf,
    python: Option<PathBuf>,
    script: PathBuf,
    plan: Plan,
}

fn parse(args: &[String]) -> Result<Opts> {
    let a = harness::Args::parse_for("crosscheck", ABOUT, USES, args)?;
    let root = harness::workspace_root();
    let mode = a.mode();
    let model = a.model.clone().unwrap_or_else(|| root.join(MODEL));
    let name = model_name(&model);
    let python = match (&a.python, mode) {
        (Some(p), _) => Some(p.clone()),
        (None, Mode::Tiny) => None,
        (None, _) => {
            let venv = std::env::var_os("ROTOR_PEERS_VENV")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/rotor/peers-venv"))
                })
                .ok_or_else(|| anyhow!("no HOME and no ROTOR_PEERS_VENV: pass --python"))?;
            Some(venv.join("bin/python"))
        }
    };
    Ok(Opts {
        mode,
        results: a.results_root(),
        text: a
            .text
            .clone()
            .unwrap_or_else(|| root.join("datasets/corpus/test.txt")),
        gguf_dir: a
            .gguf_dir
            .clone()
            .unwrap_or_else(|| root.join(format!("target/crosscheck/{name}-{}", mode.name()))),
        model,
        python,
        script: root.join("experiments/crosscheck/llama_logits.py"),
        plan: plan(mode),
    })
}

fn model_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

fn write_u32(path: &Path, v: &[u32]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn read_le<T, const N: usize>(path: &Path, f: fn([u8; N]) -> T) -> Result<Vec<T>> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if b.len() % N != 0 {
        bail!(
            "{}: {} bytes is not a whole number of values",
            path.display(),
            b.len()
        );
    }
    Ok(b.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk of N")))
        .collect())
}

/// Run every chunk through `model` (from an empty cache), returning `[chunks][ctx−1]` NLLs
/// and the full logits of the first `full` chunks.
fn rotor_arm(model: &Model, chunks: &[Vec<u32>], full: usize) -> Result<(Vec<f64>, Vec<f32>)> {
    let ctx = chunks[0].len();
    let v = model.config.vocab_size;
    let mut cache = KvCache::new(model, ctx);
    let mut st = State::new(model, ctx, ctx);
    let off = VerifyCtx {
        policy: Policy::Off,
        stats: None,
        fault: None,
    };
    let mut nll = Vec::with_capacity(chunks.len() * (ctx - 1));
    let mut kept = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        cache.clear();
        let logits = model.forward(c, &mut cache, &mut st, Logits::All, off)?;
        for j in 0..ctx - 1 {
            nll.push(neg_log_softmax(
                &logits[j * v..(j + 1) * v],
                c[j + 1] as usize,
            ));
        }
        if i < full {
            kept.extend_from_slice(logits);
        }
    }
    Ok((nll, kept))
}

/// The llama.cpp commit of the peers venv's build record, when there is one.
fn llama_commit(python: &Path) -> Option<String> {
    let rec = python.parent()?.parent()?.join("rotor-peers-build.json");
    let j: Value = serde_json::from_str(&std::fs::read_to_string(rec).ok()?).ok()?;
    j["llama_cpp_commit"]
        .as_str()
        .filter(|c| c.len() >= 9)
        .map(|c| c[..9].to_string())
}

#[allow(clippy::too_many_arguments)]
fn llama_arm(
    o: &Opts,
    python: &Path,
    src: &Source,
    kv: &str,
    chunk_file: &Path,
    tokens_file: &Path,
    n_vocab: usize,
    n_chunks: usize,
) -> Result<(Value, Option<Scores>)> {
    let prefix = o
        .gguf_dir
        .join(format!("llama-{}-{kv}", src.label.to_ascii_lowercase()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cmd = Command::new(python);
    cmd.arg(&o.script)
        .arg("--model")
        .arg(&src.path)
        .arg("--chunks")
        .arg(chunk_file)
        .arg("--ctx")
        .arg(o.plan.ctx.to_string())
        .arg("--full")
        .arg(o.plan.full.to_string())
        .arg("--out")
        .arg(&prefix)
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--kv")
        .arg(kv)
        .arg("--tokenize")
        .arg(&o.text)
        .arg("--expect")
        .arg(tokens_file);
    let what = format!(
        "{} {} ({})",
        python.display(),
        o.script.display(),
        src.label
    );
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().collect();
        bail!(
            "{what} failed ({}):\n{}",
            out.status,
            tail[tail.len().saturating_sub(15)..].join("\n")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("{what} printed no JSON:\n{stderr}"))?;
    let j: Value = serde_json::from_str(line).with_context(|| format!("parsing {what}"))?;
    if j["loaded"].as_bool() != Some(true) {
        return Ok((j, None));
    }
    let nll = read_le(&prefix.with_extension("nll"), f64::from_le_bytes)?;
    let logits = read_le(&prefix.with_extension("logits"), f32::from_le_bytes)?;
    let full = o.plan.full.min(n_chunks);
    if nll.len() != n_chunks * (o.plan.ctx - 1) || logits.len() != full * o.plan.ctx * n_vocab {
        bail!(
            "{what}: {} NLLs and {} logits, expected {} and {}",
            nll.len(),
            logits.len(),
            n_chunks * (o.plan.ctx - 1),
            full * o.plan.ctx * n_vocab
        );
    }
    Ok((j, Some((nll, logits))))
}

/// Compare arms `a` and `b` (same chunks): summary rows and, with `by_position`, the mean
/// KL per position.
fn agree(
    csv: &mut Csv,
    shape: &str,
    a: &Arm,
    b: &Arm,
    ctx: usize,
    vocab: usize,
    by_position: bool,
) -> Result<String> {
    let variant = format!("agree: {} vs {}", a.variant, b.variant);
    let layout = if a.source == b.source {
        a.source.clone()
    } else {
        format!("{}/{}", a.source, b.source)
    };
    let rows = a.logits.len().min(b.logits.len()) / vocab;
    let mut kl_pos = vec![0f64; ctx];
    let mut n_pos = vec![0usize; ctx];
    let (mut kl_sum, mut kl_max, mut max_abs, mut mean_abs, mut top1) = (0.0, 0f64, 0f64, 0.0, 0);
    for r in 0..rows {
        let c = compare_rows(
            &a.logits[r * vocab..(r + 1) * vocab],
            &b.logits[r * vocab..(r + 1) * vocab],
        );
        kl_sum += c.kl;
        kl_max = kl_max.max(c.kl);
        max_abs = max_abs.max(c.max_abs);
        mean_abs += c.mean_abs;
        top1 += c.top1_same as usize;
        kl_pos[r % ctx] += c.kl;
        n_pos[r % ctx] += 1;
    }
    let nr = rows.max(1) as f64;
    let d_nll: Vec<f64> = scored(&a.nll, ctx)
        .zip(scored(&b.nll, ctx))
        .map(|(x, y)| (x - y).abs())
        .collect();
    let mean_d_nll = d_nll.iter().sum::<f64>() / d_nll.len().max(1) as f64;
    let (pa, pb) = (ppl_of(&a.nll, ctx), ppl_of(&b.nll, ctx));
    let base = |metric: &str, value: f64, unit: &str| {
        Row::value(metric, value, unit).with(|r| {
            r.variant = variant.clone();
            r.layout = layout.clone();
            r.kernel = format!("{} | {}", a.kernel, b.kernel);
            r.shape = shape.to_string();
            r.batch = ctx;
            r.reps = rows;
        })
    };
    for (m, v, u) in [
        ("mean_kl", kl_sum / nr, "nats"),
        ("max_kl", kl_max, "nats"),
        ("max_abs_logit_diff", max_abs, "logit"),
        ("mean_abs_logit_diff", mean_abs / nr, "logit"),
        ("top1_agreement", top1 as f64 / nr, "fraction"),
        ("mean_abs_nll_diff", mean_d_nll, "nats"),
        ("ppl_ratio", pa.ppl / pb.ppl, "ratio"),
    ] {
        csv.write(base(m, v, u))?;
    }
    if by_position {
        for (p, (&s, &n)) in kl_pos.iter().zip(&n_pos).enumerate() {
            if n > 0 {
                csv.write(base("kl_by_position", s / n as f64, "nats").with(|r| {
                    r.batch = p;
                    r.reps = n;
                }))?;
            }
        }
    }
    Ok(format!(
        "  {variant} [{layout}]: mean KL {:.3e}, max |Δlogit| {:.3e}, top-1 agree {:.2} %, mean |ΔNLL| {:.3e}, PPL {:.3} vs {:.3}",
        kl_sum / nr,
        max_abs,
        100.0 * top1 as f64 / nr,
        mean_d_nll,
        pa.ppl,
        pb.ppl
    ))
}

/// Print an arm's perplexity (`what` says how it ran) and check that its NLLs are finite.
fn announce(arm: &Arm, ctx: usize, what: &str, checks: &mut Checks) {
    let q = ppl_of(&arm.nll, ctx);
    harness::say!(
        "crosscheck: {:14} {:11} PPL {:9.4} ± {:.4} ({} tokens, {:.1} s{what})",
        arm.variant,
        arm.source,
        q.ppl,
        q.stderr,
        q.count,
        arm.seconds
    );
    checks.check(arm.nll.iter().all(|x| x.is_finite()), || {
        format!("{} on {}: a non-finite NLL", arm.variant, arm.source)
    });
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let t0 = Instant::now();
    let p = o.plan.clone();
    if !o.model.join("model.safetensors").exists() {
        bail!(
            "{}: no model.safetensors (the shipped model is committed; `just train-tiny-i768` retrains it)",
            o.model.display()
        );
    }
    let name = model_name(&o.model);
    let shape = format!("{name}/ctx{}", p.ctx);
    let meta = RunMeta::capture("crosscheck", o.mode, 0);

    // --- chunks, llama.cpp's convention
    let tok = Tokenizer::from_dir(&o.model)?
        .ok_or_else(|| anyhow!("{}: no tokenizer.json", o.model.display()))?;
    let text = std::fs::read_to_string(&o.text)
        .with_context(|| format!("reading {}", o.text.display()))?;
    let tokens = tok.encode(&text, true)?;
    let config = rotor::model::Config::from_dir(&o.model)?;
    let bos = config
        .bos_token_id
        .ok_or_else(|| anyhow!("{}: config.json has no bos_token_id", o.model.display()))?;
    let n_chunks = (tokens.len() / p.ctx).min(p.chunks.unwrap_or(usize::MAX));
    if n_chunks == 0 {
        bail!(
            "{}: fewer tokens than one chunk of {}",
            o.text.display(),
            p.ctx
        );
    }
    let chunks: Vec<Vec<u32>> = (0..n_chunks)
        .map(|i| {
            let mut c = tokens[i * p.ctx..(i + 1) * p.ctx].to_vec();
            c[0] = bos;
            c
        })
        .collect();
    let vocab = config.vocab_size;
    harness::say!(
        "crosscheck ({} mode): {} on {} — {} tokens, {} chunks of {}, full logits of {}",
        o.mode.name(),
        o.model.display(),
        o.text.display(),
        tokens.len(),
        n_chunks,
        p.ctx,
        p.full.min(n_chunks)
    );

    // --- files
    std::fs::create_dir_all(&o.gguf_dir)
        .with_context(|| format!("creating {}", o.gguf_dir.display()))?;
    let mut sources = vec![Source {
        label: "safetensors".into(),
        path: o.model.clone(),
        gguf: false,
    }];
    let mut files = vec![];
    for w in [TernaryType::Tq2_0, TernaryType::Tq1_0, TernaryType::I2S] {
        let label = w.ggml().to_string();
        let out = o
            .gguf_dir
            .join(format!("{name}-{}.gguf", label.to_ascii_lowercase()));
        let r = rotor::gguf::export(
            &o.model,
            &out,
            &ExportOptions {
                weights: w,
                head: HeadType::F16,
                threads: None,
                i2s_order: Default::default(),
                progress: false,
            },
        )
        .with_context(|| format!("exporting {} to {label}", o.model.display()))?;
        harness::say!(
            "crosscheck: exported {} ({:.2} MB)",
            out.display(),
            r.bytes as f64 / 1e6
        );
        files.push(json!({"file": out, "weights": label, "bytes": r.bytes, "notes": r.notes}));
        sources.push(Source {
            label,
            path: out,
            gguf: true,
        });
    }

    let mut checks = Checks::default();
    let python = o.python.clone();
    let n_llama = if python.is_some() {
        sources.iter().filter(|s| s.gguf).count() + 1
    } else {
        0
    };
    let progress = harness::Progress::new("crosscheck", sources.len() * 2 + 2 + n_llama);

    // --- rotor arms
    let mut arms: Vec<Arm> = vec![];
    for s in &sources {
        let mut model = Model::load(&s.path, &LoadOptions::default())
            .with_context(|| format!("loading {}", s.path.display()))?;
        for act in [FfnAct::Relu2, FfnAct::Silu] {
            progress.step(format!("rotor {} on {}", act.name(), s.label));
            model.ffn_act = act;
            let t = Instant::now();
            let (nll, logits) = rotor_arm(&model, &chunks, p.full)?;
            let arm = Arm {
                variant: format!("rotor {}", act.name()),
                source: s.label.clone(),
                kernel: model.kernel.name().to_string(),
                nll,
                logits,
                seconds: t.elapsed().as_secs_f64(),
            };
            let what = format!(", layout {}, kernel {}", model.layout.name(), arm.kernel);
            announce(&arm, p.ctx, &what, &mut checks);
            arms.push(arm);
        }
        if !s.gguf {
            // The arm's scoring is `rotor perplexity`'s.
            model.ffn_act = FfnAct::Relu2;
            let r = perplexity(
                &model,
                &tokens,
                Some(bos),
                &PplOptions {
                    ctx: p.ctx,
                    stride: None,
                    max_chunks: Some(n_chunks),
                    batch: rotor::model::PREFILL_BATCH,
                },
                VerifyCtx {
                    policy: Policy::Off,
                    stats: None,
                    fault: None,
                },
                |_, _| {},
            )?;
            let mine = ppl_of(&arms[arms.len() - 2].nll, p.ctx);
            checks.check(
                (r.mean_nll - mine.mean_nll).abs() <= 1e-9 && r.tokens_scored == mine.count,
                || {
                    format!(
                        "the experiment's scoring ({} over {} tokens) is not rotor perplexity's ({} over {})",
                        mine.mean_nll, mine.count, r.mean_nll, r.tokens_scored
                    )
                },
            );
        }
    }
    // rotor with llama.cpp's activation quantization emulated (Q8_K blocks of 256, f32
    // reference path), SiLU, on the TQ2_0 file: how much of what remains is that choice; then
    // also with ggml's RoPE angles (the remaining position-dependent difference).
    {
        let s = &sources[1];
        let mut model = Model::load(
            &s.path,
            &LoadOptions {
                acts: ActPrecision::Q8K,
                ..Default::default()
            },
        )
        .with_context(|| format!("loading {}", s.path.display()))?;
        model.ffn_act = FfnAct::Silu;
        for ggml_rope in [false, true] {
            let variant = if ggml_rope {
                let c = &model.config;
                model.rope = rotor::model::rope::Rope::ggml(
                    c.head_dim,
                    c.rope_theta,
                    c.max_position_embeddings,
                );
                "rotor silu q8k ggml-rope"
            } else {
                "rotor silu q8k"
            };
            progress.step(format!("{variant} on {}", s.label));
            let t = Instant::now();
            let (nll, logits) = rotor_arm(&model, &chunks, p.full)?;
            let arm = Arm {
                variant: variant.into(),
                source: s.label.clone(),
                kernel: "f32-reference".into(),
                nll,
                logits,
                seconds: t.elapsed().as_secs_f64(),
            };
            announce(
                &arm,
                p.ctx,
                ", Q8_K activations on the f32 path",
                &mut checks,
            );
            arms.push(arm);
        }
    }
    let find =
        |arms: &[Arm], v: &str, s: &str| arms.iter().position(|a| a.variant == v && a.source == s);
    for s in sources.iter().filter(|s| s.gguf) {
        for act in ["relu2", "silu"] {
            let v = format!("rotor {act}");
            let (g, c) = (
                &arms[find(&arms, &v, &s.label).expect("arm")],
                &arms[find(&arms, &v, "safetensors").expect("arm")],
            );
            let maxdiff = g
                .logits
                .iter()
                .zip(&c.logits)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            let (pg, pc) = (ppl_of(&g.nll, p.ctx), ppl_of(&c.nll, p.ctx));
            checks.check(maxdiff <= 1e-4 && (pg.mean_nll - pc.mean_nll).abs() <= 1e-5, || {
                format!(
                    "{v}: {} gives logits {maxdiff:e} and mean NLL {:e} away from the checkpoint's",
                    s.label,
                    (pg.mean_nll - pc.mean_nll).abs()
                )
            });
        }
    }
    {
        let (r, s) = (
            ppl_of(
                &arms[find(&arms, "rotor relu2", "safetensors").unwrap()].nll,
                p.ctx,
            ),
            ppl_of(
                &arms[find(&arms, "rotor silu", "safetensors").unwrap()].nll,
                p.ctx,
            ),
        );
        checks.check((r.mean_nll - s.mean_nll).abs() > 1e-6, || {
            "--ffn-act silu gives the same perplexity as relu2: the switch does nothing".into()
        });
    }

    // --- llama.cpp arms
    let mut llama_json = vec![];
    let mut tokenizer_rows = vec![];
    if let Some(py) = &python {
        let chunk_file = o.gguf_dir.join("chunks.u32");
        write_u32(&chunk_file, &chunks.concat())?;
        let tokens_file = o.gguf_dir.join("tokens.u32");
        write_u32(&tokens_file, &tokens)?;
        let kernel = llama_commit(py)
            .map(|c| format!("ggml-cpu@{c}"))
            .unwrap_or_else(|| "ggml-cpu".into());
        let mut runs: Vec<(&Source, &str)> = sources
            .iter()
            .filter(|s| s.gguf)
            .map(|s| (s, "f16"))
            .collect();
        runs.push((&sources[1], "f32"));
        for (s, kv) in runs {
            progress.step(format!("llama.cpp on {} (KV {kv})", s.label));
            let t = Instant::now();
            let (j, got) = llama_arm(&o, py, s, kv, &chunk_file, &tokens_file, vocab, n_chunks)
                .with_context(|| "llama-cpp-python is needed (experiments/peers/setup-llama.sh, or `just bench-crosscheck`)")?;
            let variant = if kv == "f16" {
                "llama.cpp".to_string()
            } else {
                format!("llama.cpp kv-{kv}")
            };
            llama_json.push(json!({"file": s.label, "kv": kv, "result": j}));
            match got {
                None => {
                    harness::say!(
                        "crosscheck: llama.cpp does not load {} ({}): {}",
                        s.label,
                        s.path.display(),
                        j["error"]
                    );
                    arms.push(Arm {
                        variant,
                        source: s.label.clone(),
                        kernel: kernel.clone(),
                        nll: vec![],
                        logits: vec![],
                        seconds: t.elapsed().as_secs_f64(),
                    });
                }
                Some((nll, logits)) => {
                    let arm = Arm {
                        variant,
                        source: s.label.clone(),
                        kernel: kernel.clone(),
                        nll,
                        logits,
                        seconds: t.elapsed().as_secs_f64(),
                    };
                    announce(&arm, p.ctx, "", &mut checks);
                    if let Some(t) = j.get("tokenize").filter(|t| kv == "f16" && t.is_object()) {
                        tokenizer_rows.push((s.label.clone(), kernel.clone(), t.clone()));
                    }
                    arms.push(arm);
                }
            }
        }
    } else {
        harness::say!("crosscheck: no --python in tiny mode: the llama.cpp arms are skipped");
    }
    drop(progress);

    // --- CSV
    let mut csv = Csv::create(&o.results, &meta)?;
    for a in &arms {
        let base = |metric: &str, value: f64, unit: &str| {
            Row::value(metric, value, unit).with(|r| {
                r.variant = a.variant.clone();
                r.layout = a.source.clone();
                r.kernel = a.kernel.clone();
                r.shape = shape.clone();
                r.batch = p.ctx;
                r.threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            })
        };
        let loaded = !a.nll.is_empty();
        csv.write(base("loads", loaded as u8 as f64, "bool"))?;
        if !loaded {
            continue;
        }
        let q = ppl_of(&a.nll, p.ctx);
        csv.write(base("ppl", q.ppl, "ppl").with(|r| {
            r.min = q.ppl - q.stderr;
            r.max = q.ppl + q.stderr;
            r.reps = n_chunks;
        }))?;
        csv.write(base("mean_nll", q.mean_nll, "nats"))?;
        csv.write(base("tokens_scored", q.count as f64, "tokens"))?;
        csv.write(base("seconds", a.seconds, "s"))?;
    }
    for (label, kernel, t) in &tokenizer_rows {
        for (m, v) in [
            (
                "tokens_identical",
                t["identical"]
                    .as_bool()
                    .map_or(f64::NAN, |b| b as u8 as f64),
            ),
            (
                "llama_tokens",
                t["llama_tokens"].as_f64().unwrap_or(f64::NAN),
            ),
            (
                "rotor_tokens",
                t["rotor_tokens"].as_f64().unwrap_or(f64::NAN),
            ),
        ] {
            csv.write(Row::value(m, v, "").with(|r| {
                r.variant = "tokenizer".into();
                r.layout = label.clone();
                r.kernel = kernel.clone();
                r.shape = shape.clone();
            }))?;
        }
        harness::say!(
            "crosscheck: llama.cpp's tokenizer from the {label} GGUF: {} tokens vs rotor's {} — {}",
            t["llama_tokens"],
            t["rotor_tokens"],
            if t["identical"].as_bool() == Some(true) {
                "identical".to_string()
            } else {
                format!("first difference at token {}", t["first_difference"])
            }
        );
    }
    // Agreement: each file against the checkpoint in rotor; llama.cpp against rotor with either
    // activation on the same file; the FFN switch itself; llama.cpp's own KV-type noise.
    let mut pairs: Vec<(String, String, String, String, bool)> = vec![];
    for s in sources.iter().filter(|s| s.gguf) {
        pairs.push((
            "rotor relu2".into(),
            s.label.clone(),
            "rotor relu2".into(),
            "safetensors".into(),
            false,
        ));
        for act in ["relu2", "silu"] {
            pairs.push((
                "llama.cpp".into(),
                s.label.clone(),
                format!("rotor {act}"),
                s.label.clone(),
                s.label == "TQ2_0",
            ));
        }
    }
    // The fixed pairs, in report order: the switch itself, llama.cpp with an f32 cache against
    // SiLU, llama.cpp's own KV-type noise, then the emulations of the remaining differences.
    const FIXED: [(&str, &str, &str, &str, bool); 6] = [
        (
            "rotor silu",
            "safetensors",
            "rotor relu2",
            "safetensors",
            true,
        ),
        ("llama.cpp kv-f32", "TQ2_0", "rotor silu", "TQ2_0", true),
        ("llama.cpp", "TQ2_0", "llama.cpp kv-f32", "TQ2_0", true),
        ("llama.cpp kv-f32", "TQ2_0", "rotor silu q8k", "TQ2_0", true),
        ("rotor silu q8k", "TQ2_0", "rotor silu", "TQ2_0", false),
        (
            "llama.cpp kv-f32",
            "TQ2_0",
            "rotor silu q8k ggml-rope",
            "TQ2_0",
            true,
        ),
    ];
    pairs.extend(
        FIXED
            .iter()
            .map(|&(va, sa, vb, sb, pos)| (va.into(), sa.into(), vb.into(), sb.into(), pos)),
    );
    let mut lines = vec![];
    for (va, sa, vb, sb, by_pos) in pairs {
        let (Some(ia), Some(ib)) = (find(&arms, &va, &sa), find(&arms, &vb, &sb)) else {
            continue;
        };
        if arms[ia].nll.is_empty() || arms[ib].nll.is_empty() {
            continue;
        }
        lines.push(agree(
            &mut csv, &shape, &arms[ia], &arms[ib], p.ctx, vocab, by_pos,
        )?);
    }
    let env = json!({
        "model": o.model,
        "text": o.text,
        "text_tokens": tokens.len(),
        "chunks": n_chunks,
        "ctx": p.ctx,
        "full_logit_chunks": p.full.min(n_chunks),
        "files": files,
        "llama_cpp": llama_json,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    let env_path = csv.dir().join(format!("{}.env.json", meta.machine()));
    std::fs::write(&env_path, serde_json::to_string_pretty(&env)? + "\n")
        .with_context(|| format!("writing {}", env_path.display()))?;
    harness::say!(
        "crosscheck: wrote {} ({} rows) in {:.0} s",
        csv.path.display(),
        csv.rows(),
        t0.elapsed().as_secs_f64()
    );
    for l in lines {
        harness::say!("{l}");
    }
    checks.finish("crosscheck")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppl_scores_the_second_half_of_each_chunk() {
        // ctx 4: NLL indices 2 and 3 of each chunk of 3 are scored.
        let nll = [9.0, 9.0, 1.0, 9.0, 9.0, 3.0];
        let q = ppl_of(&nll, 4);
        assert_eq!(q.count, 2);
        assert!((q.mean_nll - 2.0).abs() < 1e-12);
        assert!((q.ppl - 2f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn identical_rows_agree_and_shifted_rows_have_zero_kl() {
        let a = [1.0f32, 2.0, 3.0, -1.0];
        let c = compare_rows(&a, &a);
        assert_eq!((c.kl, c.max_abs, c.top1_same), (0.0, 0.0, true));
        // A constant shift leaves the distribution unchanged.
        let b: Vec<f32> = a.iter().map(|x| x + 0.5).collect();
        let c = compare_rows(&a, &b);
        assert!(c.kl < 1e-12 && (c.max_abs - 0.5).abs() < 1e-6 && c.top1_same);
        // A different top token: positive KL, top-1 disagrees.
        let d = [3.0f32, 2.0, 1.0, -1.0];
        let c = compare_rows(&a, &d);
        assert!(c.kl > 0.1 && !c.top1_same);
    }
}
