//! Experiment `perplexity`: does the model still mean the same thing in every configuration?
//!
//! Perplexity is how this field says whether a kernel, layout or encoding change is right. The
//! model is the project's own trained tiny BitNet b1.58 (`datasets/models/austen-tiny`, QAT on
//! the Austen train split) scored on the shipped test split (`datasets/corpus/test.txt`) with
//! llama.cpp's convention (non-overlapping chunks of `ctx`, BOS first, second half scored; see
//! [`rotor::perplexity`]). Groups of runs (CSV `variant`):
//!
//! - `layout` — every layout × every kernel this CPU runs: the integer path is exact, so the
//!   mean NLL must be **bit-identical** to the reference run (a difference fails the run);
//! - `threads:N` — the reference at each thread count: identical;
//! - `verify:detect` / `verify:correct` — runtime verification on: identical, zero mismatches;
//! - `acts:P` — activation precision: `f32` (unquantized, the float path), `int8` (BitNet
//!   b1.58) and the lossy `int7` … `int2` (the same absmax rule with fewer levels — the
//!   "magnitude" question: how many activation bits does the model need?);
//! - `head:int8` — the int8 output head against the exact bf16 one;
//! - `baseline:*` — what the numbers are measured against: `uniform` (the vocabulary size),
//!   `unigram` (train-split token frequencies, add-one smoothing, scored on exactly the tokens
//!   the model is scored on) and `untrained` (the same architecture at its initialization,
//!   scored by rotor when the model was trained; read from the model's `training.json`).
//!
//! With `ROTOR_MODEL` and `ROTOR_WIKITEXT` (or `--model DIR --text FILE`) pointing at the real
//! 2B-4T and WikiText-2's raw test split, the same groups (layouts at their best kernel, int8
//! vs int4 activations, the int8 head) run on that model too (`shape` = its directory name).
//!
//! Rows: `metric` = `ppl` (min/max = ± one standard error), `mean_nll` (nats; exact equality
//! is checked on this value), `tokens_scored`, `tokens_per_s`, `mismatches` (verify runs).
//! `shape` = `<model>/ctx<N>`; `batch` = the prefill batch.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use harness::{Checks, Csv, Mode, Row, RunMeta};
use rotor::Kernel;
use rotor::model::{HeadKind, LoadOptions, Model, VerifyCtx};
use rotor::perplexity::{PplOptions, PplResult, perplexity};
use rotor::quant::ActPrecision;
use rotor::ternary::LayoutKind;
use rotor::tokenizer::Tokenizer;
use rotor::verify::{Policy, VerifyStats};

/// One configuration of the engine.
#[derive(Clone, Debug)]
pub struct Case {
    /// The CSV `variant`: the group and its setting (`layout`, `acts:int4`, …).
    pub variant: String,
    pub layout: LayoutKind,
    pub kernel: Kernel,
    pub threads: usize,
    pub head: HeadKind,
    pub acts: ActPrecision,
    pub policy: Policy,
}

/// A model and the text it is scored on.
pub struct Subject {
    pub name: String,
    pub dir: PathBuf,
    pub text: PathBuf,
    /// Train split for the unigram baseline (the shipped model only).
    pub train: Option<PathBuf>,
    pub ctx: usize,
    pub full_grid: bool,
}

/// What one case measured.
pub struct Scored {
    pub r: PplResult,
    pub mismatches: u64,
    pub checked: u64,
}

/// The models this run scores: the shipped one always, the real one when given.
pub fn subjects(args: &harness::Args, mode: Mode) -> Result<Vec<Subject>> {
    let root = harness::workspace_root();
    let dir = root.join("datasets/models/austen-tiny");
    if !dir.join("model.safetensors").exists() {
        bail!(
            "{}: the shipped trained model is missing (it is committed; `just train-tiny` rebuilds it)",
            dir.display()
        );
    }
    let mut v = vec![Subject {
        name: "austen-tiny".into(),
        dir,
        text: root.join("datasets/corpus/test.txt"),
        train: Some(root.join("datasets/corpus/train.txt")),
        ctx: if mode == Mode::Tiny { 64 } else { 256 },
        full_grid: true,
    }];
    let model = args
        .model
        .clone()
        .or_else(|| std::env::var_os("ROTOR_MODEL").map(PathBuf::from));
    let text = args
        .text
        .clone()
        .or_else(|| std::env::var_os("ROTOR_WIKITEXT").map(PathBuf::from));
    match (model, text) {
        (Some(m), Some(t)) => {
            let dir = m;
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into());
            v.push(Subject {
                name,
                dir,
                text: t,
                train: None,
                ctx: 512,
                full_grid: false,
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            bail!("the real-model run needs both ROTOR_MODEL (--model) and ROTOR_WIKITEXT (--text)")
        }
        (None, None) => harness::say!(
            "  (set ROTOR_MODEL and ROTOR_WIKITEXT to also score the real 2B-4T on WikiText-2)"
        ),
    }
    Ok(v)
}

/// The reference configuration: the default layout at its best kernel, all cores, int8
/// activations, bf16 head, no verification.
pub fn reference(threads: usize) -> Case {
    let layout = LayoutKind::ROTOR_DEFAULT;
    Case {
        variant: "reference".into(),
        layout,
        kernel: layout.best_kernel(),
        threads,
        head: HeadKind::Bf16,
        acts: ActPrecision::Int(8),
        policy: Policy::Off,
    }
}

/// Every case of a subject, the reference first.
pub fn cases(mode: Mode, full_grid: bool) -> Vec<Case> {
    let threads = harness::thread_counts(Mode::Quick);
    let top = *threads.iter().max().unwrap_or(&1);
    let r = reference(top);
    let mut v = vec![r.clone()];
    let with = |variant: String, f: &dyn Fn(&mut Case)| {
        let mut c = r.clone();
        c.variant = variant;
        f(&mut c);
        c
    };
    for layout in LayoutKind::all() {
        let kernels: Vec<Kernel> = if full_grid {
            Kernel::available()
                .into_iter()
                .filter(|k| layout.check_kernel(*k).is_ok())
                .collect()
        } else {
            vec![layout.best_kernel()]
        };
        for kernel in kernels {
            if layout == r.layout && kernel == r.kernel {
                continue;
            }
            v.push(with("layout".into(), &|c| {
                c.layout = layout;
                c.kernel = kernel;
            }));
        }
    }
    if full_grid {
        for &t in threads.iter().filter(|&&t| t != top) {
            v.push(with(format!("threads:{t}"), &|c| c.threads = t));
        }
        for p in [Policy::Detect, Policy::Correct] {
            v.push(with(format!("verify:{}", p.name()), &|c| c.policy = p));
        }
    }
    let bits: &[u8] = match (mode, full_grid) {
        (Mode::Tiny, _) => &[4],
        (_, true) => &[7, 6, 5, 4, 3, 2],
        (_, false) => &[4],
    };
    if full_grid || mode == Mode::Full {
        v.push(with("acts:f32".into(), &|c| c.acts = ActPrecision::F32));
    }
    for &b in bits {
        v.push(with(format!("acts:int{b}"), &|c| {
            c.acts = ActPrecision::Int(b)
        }));
    }
    v.push(with("head:int8".into(), &|c| c.head = HeadKind::Int8));
    v
}

/// Score `tokens` with the model in `dir` configured as `c`.
pub fn score(dir: &Path, tokens: &[u32], c: &Case, opts: &PplOptions) -> Result<Scored> {
    let model = Model::load(
        dir,
        &LoadOptions {
            layout: c.layout,
            kernel: Some(c.kernel),
            threads: Some(c.threads),
            checksums: c.policy != Policy::Off,
            head: c.head,
            acts: c.acts,
        },
    )
    .with_context(|| format!("loading {}", dir.display()))?;
    let bos = model.config.bos_token_id;
    let stats = VerifyStats::default();
    let verify = VerifyCtx {
        policy: c.policy,
        stats: Some(&stats),
        fault: None,
    };
    let r = perplexity(&model, tokens, bos, opts, verify, |_, _| {})?;
    let [checked, mismatches, ..] = stats.snapshot();
    Ok(Scored {
        r,
        mismatches,
        checked,
    })
}

/// The tokens the llama.cpp convention scores: positions `ctx/2+1 .. ctx−1` of each chunk.
pub fn scored_targets(tokens: &[u32], ctx: usize, max_chunks: Option<usize>) -> Vec<u32> {
    let n = (tokens.len() / ctx).min(max_chunks.unwrap_or(usize::MAX));
    (0..n)
        .flat_map(|i| tokens[i * ctx + ctx / 2 + 1..(i + 1) * ctx].iter().copied())
        .collect()
}

/// Unigram perplexity of `targets` under add-one-smoothed frequencies of `train` over `vocab`.
pub fn unigram_ppl(train: &[u32], targets: &[u32], vocab: usize) -> f64 {
    let mut counts = vec![1u64; vocab];
    for &t in train {
        if (t as usize) < vocab {
            counts[t as usize] += 1;
        }
    }
    let total: u64 = counts.iter().sum();
    let nll: f64 = targets
        .iter()
        .map(|&t| -((counts[t as usize] as f64) / total as f64).ln())
        .sum::<f64>()
        / targets.len().max(1) as f64;
    nll.exp()
}

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = &[harness::Flag::Model, harness::Flag::Text];

/// What `perplexity --help` says.
pub const ABOUT: &str = "Perplexity of the shipped trained tiny model in every layout × kernel, \
thread count, verification policy, activation precision and head (and of a real checkpoint with \
--model/--text or ROTOR_MODEL/ROTOR_WIKITEXT); fails unless every exact configuration gives the \
same bits. Writes reports/results/perplexity/<machine>.csv.";

pub fn run(args: &[String]) -> Result<()> {
    let a = harness::Args::parse_for("perplexity", ABOUT, USES, args)?;
    let mode = a.mode();
    let root = a.results_root();
    let meta = RunMeta::capture("perplexity", mode, 0);
    let mut csv = Csv::create(&root, &meta)?;
    let mut checks = Checks::default();
    let subjects = subjects(&a, mode)?;
    let total: usize = subjects
        .iter()
        .map(|s| cases(mode, s.full_grid).len())
        .sum();
    let progress = harness::Progress::new("perplexity", total);
    for subj in subjects {
        let tok = Tokenizer::from_dir(&subj.dir)?
            .with_context(|| format!("{}: no tokenizer.json", subj.dir.display()))?;
        let text = std::fs::read_to_string(&subj.text)
            .with_context(|| format!("reading {}", subj.text.display()))?;
        let tokens = tok.encode(&text, true)?;
        let max_chunks = match (mode, subj.full_grid) {
            (Mode::Tiny, _) => Some(2),
            (Mode::Quick, true) => Some(48),
            (Mode::Quick, false) => Some(16),
            (Mode::Full, _) => None,
        };
        let opts = PplOptions {
            ctx: subj.ctx,
            stride: None,
            max_chunks,
            batch: 64,
        };
        let shape = format!("{}/ctx{}", subj.name, subj.ctx);
        let all = cases(mode, subj.full_grid);
        harness::say!(
            "perplexity: {} on {} ({} tokens, {} chunks of {}), {} configurations",
            subj.name,
            subj.text.display(),
            tokens.len(),
            max_chunks.map_or("all".into(), |c| c.to_string()),
            subj.ctx,
            all.len()
        );
        let mut reference_nll: Option<f64> = None;
        let vocab = tok.vocab_size();
        for (i, c) in all.iter().enumerate() {
            progress.step(format!(
                "{} {} {} {}",
                subj.name,
                c.variant,
                c.layout.name(),
                c.kernel.name()
            ));
            let s = score(&subj.dir, &tokens, c, &opts).with_context(|| {
                format!("{} {} {}", c.variant, c.layout.name(), c.kernel.name())
            })?;
            let r = &s.r;
            harness::say!(
                "  [{}/{}] {:<14} {:<12} {:<7} t={} head={} acts={:<5} PPL {:.4} ± {:.4} ({:.0} tok/s)",
                i + 1,
                all.len(),
                c.variant,
                c.layout.name(),
                c.kernel.name(),
                c.threads,
                c.head.name(),
                c.acts.name(),
                r.ppl,
                r.ppl_stderr,
                r.tokens_per_s
            );
            let exact = c.acts == ActPrecision::Int(8) && c.head == HeadKind::Bf16;
            match reference_nll {
                None => reference_nll = Some(r.mean_nll),
                Some(nll) if exact => checks.check(r.mean_nll.to_bits() == nll.to_bits(), || {
                    format!(
                        "{}: {} {} {}: mean NLL {} differs from the reference {} (the integer path must be exact)",
                        subj.name,
                        c.variant,
                        c.layout.name(),
                        c.kernel.name(),
                        r.mean_nll,
                        nll
                    )
                }),
                Some(_) => {}
            }
            checks.check(r.ppl.is_finite() && r.ppl > 1.0, || {
                format!(
                    "{}: {}: PPL {} is not a perplexity",
                    subj.name, c.variant, r.ppl
                )
            });
            if c.policy != Policy::Off {
                checks.check(s.mismatches == 0 && s.checked > 0, || {
                    format!(
                        "{}: {}: {} mismatches in {} checked products on a fault-free run",
                        subj.name, c.variant, s.mismatches, s.checked
                    )
                });
            }
            let base = |metric: &str, v: f64, unit: &str| {
                Row::value(metric, v, unit).with(|row| {
                    row.variant = c.variant.clone();
                    row.layout = c.layout.name().into();
                    row.kernel = c.kernel.name().into();
                    row.shape = shape.clone();
                    row.threads = c.threads;
                    row.batch = opts.batch;
                })
            };
            csv.write(base("ppl", r.ppl, "ppl").with(|row| {
                row.min = r.ppl - r.ppl_stderr;
                row.max = r.ppl + r.ppl_stderr;
            }))?;
            csv.write(base("mean_nll", r.mean_nll, "nats"))?;
            csv.write(base("tokens_scored", r.tokens_scored as f64, "tokens"))?;
            csv.write(base("tokens_per_s", r.tokens_per_s, "tok/s"))?;
            if c.policy != Policy::Off {
                csv.write(base("mismatches", s.mismatches as f64, "count"))?;
                csv.write(base("products_checked", s.checked as f64, "count"))?;
            }
        }
        // Baselines.
        let baseline = |name: &str, v: f64| {
            Row::value("ppl", v, "ppl").with(|row| {
                row.variant = format!("baseline:{name}");
                row.layout = "-".into();
                row.kernel = "-".into();
                row.shape = shape.clone();
            })
        };
        csv.write(baseline("uniform", vocab as f64))?;
        if let Some(train) = &subj.train {
            let t = std::fs::read_to_string(train)
                .with_context(|| format!("reading {}", train.display()))?;
            let train_tokens = tok.encode(&t, true)?;
            let targets = scored_targets(&tokens, subj.ctx, max_chunks);
            let u = unigram_ppl(&train_tokens, &targets, vocab);
            harness::say!(
                "  unigram baseline PPL {u:.2} ({} scored tokens)",
                targets.len()
            );
            csv.write(baseline("unigram", u))?;
        }
        let tj = subj.dir.join("training.json");
        if let Ok(j) = std::fs::read_to_string(&tj) {
            let v: serde_json::Value =
                serde_json::from_str(&j).with_context(|| format!("parsing {}", tj.display()))?;
            let u = &v["baselines"]["untrained_init_test"];
            if let (Some(p), Some(ctx)) = (u["ppl"].as_f64(), u["ctx"].as_u64()) {
                // Recorded on the whole test split at the training ctx; comparable in kind.
                csv.write(baseline("untrained", p).with(|row| {
                    row.shape = format!("{}/ctx{ctx}", subj.name);
                    row.reps = 0;
                }))?;
            }
        }
    }
    harness::say!("wrote {} rows to {}", csv.rows(), csv.path.display());
    checks.finish("perplexity")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scored_targets_follow_the_llama_cpp_convention() {
        let tokens: Vec<u32> = (0..20).collect();
        // ctx 8: chunks [0..8), [8..16); scored positions 5,6,7 of each; the tail is dropped.
        assert_eq!(scored_targets(&tokens, 8, None), vec![5, 6, 7, 13, 14, 15]);
        assert_eq!(scored_targets(&tokens, 8, Some(1)), vec![5, 6, 7]);
    }

    #[test]
    fn unigram_of_a_uniform_train_set_is_the_vocab() {
        let train: Vec<u32> = (0..4).cycle().take(400).collect();
        let p = unigram_ppl(&train, &[0, 1, 2, 3], 4);
        assert!((p - 4.0).abs() < 1e-9, "{p}");
        // A token seen more often is cheaper than one never seen.
        let train = vec![0u32; 100];
        assert!(unigram_ppl(&train, &[0], 4) < unigram_ppl(&train, &[3], 4));
    }

    #[test]
    fn cases_start_with_the_reference_and_cover_every_layout() {
        let c = cases(Mode::Quick, true);
        assert_eq!(c[0].variant, "reference");
        for l in LayoutKind::all() {
            assert!(c.iter().any(|c| c.layout == l), "{}", l.name());
        }
        assert!(c.iter().any(|c| c.acts == ActPrecision::F32));
        assert!(c.iter().any(|c| c.policy == Policy::Correct));
    }
}
