//! `rotor`: run BitNet b1.58 models with ternary weights in the rotor layout.
//!
//! The commands and their JSON outputs are a contract (DESIGN.md): tests, experiments and
//! outside checks call them. Errors go to stderr as one sentence and exit with status 1.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use rotor::Kernel;
use rotor::generate::{GenerateOptions, Stop, generate};
use rotor::model::{Config, KvCache, LoadOptions, Logits, Model, State, VerifyCtx};
use rotor::perplexity::{PplOptions, perplexity};
use rotor::sample::SamplerConfig;
use rotor::synth::{Preset, SynthOptions, Variant, synth};
use rotor::ternary::LayoutKind;
use rotor::tokenizer::Tokenizer;
use rotor::verify::{Policy, VerifyStats};

#[derive(Parser)]
#[command(
    name = "rotor",
    version,
    about = "BitNet b1.58 inference with ternary weights in the rotor bit-plane layout",
    long_about = "BitNet b1.58 inference with ternary weights in the rotor bit-plane layout.\n\n\
        Every command takes a model directory as downloaded from Hugging Face \
        (microsoft/bitnet-b1.58-2B-4T: config.json, model.safetensors, tokenizer.json), or one \
        written by `rotor synth`.\n\nEnvironment: ROTOR_KERNEL=scalar|avx2|avx512 overrides the \
        kernel choice; RAYON_NUM_THREADS is ignored in favour of --threads."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a random model in the exact checkpoint format (config, safetensors, tokenizer).
    Synth(SynthArgs),
    /// Show a model's config, tensor table and bytes per layout.
    Inspect(InspectArgs),
    /// Print logits for every position of a token sequence as JSON.
    Logits(LogitsArgs),
    /// Generate text (streamed to stdout).
    Generate(GenerateArgs),
    /// Perplexity of a text file (llama.cpp convention by default).
    Perplexity(PplArgs),
    /// Measure load, conversion, prefill and decode speed, memory and roofline fraction.
    Bench(BenchArgs),
    /// Inject seeded single bit flips and count what the exact checksums detect and correct.
    Faults(FaultsArgs),
    /// Write the model as a GGUF file for llama.cpp (ternary TQ2_0/TQ1_0, or bitnet.cpp's I2_S).
    Export(ExportArgs),
    /// List every layout's kernels, what this CPU runs, and the start-up measurement behind
    /// `--layout rotor` and `--kernel auto`.
    Kernels(KernelsArgs),
}

#[derive(Args)]
struct KernelsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// Model directory (or a .gguf file) to export.
    #[arg(long)]
    model: PathBuf,
    /// Output format (only `gguf`).
    #[arg(long, default_value = "gguf")]
    format: String,
    /// Ternary weight type: tq2_0, tq1_0 (llama.cpp), i2_s (bitnet.cpp's fork only).
    #[arg(long = "type", default_value = "tq2_0")]
    weight_type: String,
    /// Embedding / output head type: f16, bf16 (exact), q8_0, q6_k (lossy).
    #[arg(long, default_value = "f16")]
    head: String,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct FaultsArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// weights | activations | accumulators | checksums
    #[arg(long)]
    site: String,
    /// Faults to inject, one per forward pass.
    #[arg(long, default_value_t = 100)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Token ids to run (default: 16 fixed pseudo-random ids).
    #[arg(long, value_delimiter = ',')]
    tokens: Vec<u32>,
    #[arg(long, default_value = "rotor")]
    layout: String,
    #[arg(long)]
    kernel: Option<String>,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SynthArgs {
    /// Shapes: tiny (2 layers, hidden 64), small (4 layers, hidden 256), 2b4t (the real
    /// BitNet b1.58 2B-4T shapes, ~1.2 GB).
    #[arg(long, default_value = "tiny")]
    preset: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// `packed` (U8 + weight_scale, like the 2B-4T release) or `bf16` (master weights, like
    /// the -bf16 release).
    #[arg(long, default_value = "packed")]
    variant: String,
    /// Overwrite an existing model in --out.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Model directory (config.json + model.safetensors [+ tokenizer.json]).
    #[arg(long)]
    model: PathBuf,
    /// Weight layout: rotor (the fastest rotor variant on this CPU, measured: see `rotor
    /// kernels`), rotor-pn, rotor-ms, rotor-pn-b4, rotor-pn-row, rotor-ms-b4, rotor-ms-row,
    /// rotor-tl, hf_packed, i2, tq1, dense.
    #[arg(long, default_value = "rotor")]
    layout: String,
    /// Kernel family: auto (the default: ROTOR_KERNEL if set, else the fastest kernel this
    /// CPU has for the layout, measured at start-up, with AMX or VNNI tiles for prefill),
    /// scalar, avx2, avx512, avx512vnni, amx (a named family runs every product, single-token
    /// and batched).
    #[arg(long)]
    kernel: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Check every ternary product with exact checksums: `detect` counts mismatches,
    /// `correct` (the default when the flag has no value) also repairs them.
    #[arg(long, num_args = 0..=1, default_missing_value = "correct", value_name = "POLICY")]
    verify: Option<String>,
    /// Output head precision: bf16 (exact, the checkpoint's values) or int8 (per-row scales;
    /// half the bytes per token, lossy).
    #[arg(long, default_value = "bf16")]
    head: String,
    /// Activation precision of the ternary projections: int8 (BitNet b1.58, the default),
    /// int2..int7 (the same absmax rule with fewer levels: lossy research variants), or f32
    /// (unquantized activations, a slow scalar reference path).
    #[arg(long, default_value = "int8", value_name = "PRECISION")]
    acts: String,
}

impl ModelArgs {
    fn policy(&self) -> Result<Policy> {
        match &self.verify {
            None => Ok(Policy::Off),
            Some(p) => Policy::parse(p).map_err(anyhow::Error::msg),
        }
    }

    fn load(&self) -> Result<Model> {
        let kernel = match self.kernel.as_deref().map(str::trim) {
            Some("auto") => None,
            Some(k) => Some(Kernel::by_name(k)?),
            None => match std::env::var("ROTOR_KERNEL") {
                Ok(v) if !v.trim().is_empty() && v.trim() != "auto" => Some(Kernel::from_env()?),
                _ => None,
            },
        };
        // `rotor` with a named kernel: the fastest rotor variant that has that kernel.
        let layout = match kernel {
            Some(k) if self.layout.trim().eq_ignore_ascii_case("rotor") => {
                rotor::ternary::select::best_rotor_with(k.kind())
            }
            _ => LayoutKind::parse(&self.layout)?,
        };
        if !self.model.is_dir() && rotor::gguf::gguf_path(&self.model).is_none() {
            bail!(
                "--model {}: not a directory (nor a .gguf file)",
                self.model.display()
            );
        }
        let opts = LoadOptions {
            layout,
            kernel,
            threads: self.threads,
            checksums: self.policy()? != Policy::Off,
            head: rotor::model::HeadKind::parse(&self.head)?,
            acts: rotor::quant::ActPrecision::parse(&self.acts)?,
        };
        if opts.acts == rotor::quant::ActPrecision::F32 && opts.checksums {
            bail!("--verify checks integer products; it cannot be combined with --acts f32");
        }
        Model::load(&self.model, &opts).with_context(|| format!("loading {}", self.model.display()))
    }
}

#[derive(Args)]
struct InspectArgs {
    #[arg(long)]
    model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LogitsArgs {
    #[command(flatten)]
    m: ModelArgs,
    /// Comma-separated token ids, e.g. 128000,9906,1917.
    #[arg(long, value_delimiter = ',', required_unless_present = "prompt")]
    tokens: Vec<u32>,
    /// Text to tokenize instead of --tokens (needs tokenizer.json).
    #[arg(long, conflicts_with = "tokens")]
    prompt: Option<String>,
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    m: ModelArgs,
    /// Prompt text (needs tokenizer.json in the model directory).
    #[arg(long, required_unless_present = "tokens")]
    prompt: Option<String>,
    /// Prompt as comma-separated token ids (works without a tokenizer).
    #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
    tokens: Vec<u32>,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Keep the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches P (1 = off).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Wrap the prompt in the 2B-4T chat format (`User: …<|eot_id|>Assistant: `).
    #[arg(long)]
    chat: bool,
    /// Context length (default: max_position_embeddings).
    #[arg(long)]
    ctx: Option<usize>,
    /// Print {"prompt_ids", "generated_ids", "text", ...} as JSON instead of streaming.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PplArgs {
    #[command(flatten)]
    m: ModelArgs,
    /// UTF-8 text file.
    #[arg(long)]
    text: PathBuf,
    /// Tokens per chunk.
    #[arg(long, default_value_t = 512)]
    ctx: usize,
    /// Sliding-window stride (Hugging Face convention) instead of llama.cpp's chunks.
    #[arg(long)]
    stride: Option<usize>,
    /// Only the first N chunks.
    #[arg(long)]
    chunks: Option<usize>,
    /// Tokens per prefill batch (the batched kernels' batch).
    #[arg(long, default_value_t = rotor::model::PREFILL_BATCH)]
    batch: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    m: ModelArgs,
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 32)]
    gen_tokens: usize,
    /// Decode runs (the median is reported with min–max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Synth(a) => cmd_synth(a),
        Cmd::Inspect(a) => cmd_inspect(a),
        Cmd::Logits(a) => cmd_logits(a),
        Cmd::Generate(a) => cmd_generate(a),
        Cmd::Perplexity(a) => cmd_perplexity(a),
        Cmd::Bench(a) => cmd_bench(a),
        Cmd::Faults(a) => cmd_faults(a),
        Cmd::Export(a) => cmd_export(a),
        Cmd::Kernels(a) => cmd_kernels(a),
    };
    if let Err(e) = r {
        // A closed pipe (`rotor inspect | head`) is not an error.
        if e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        }) {
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn cmd_synth(a: SynthArgs) -> Result<()> {
    let variant = match a.variant.as_str() {
        "packed" => Variant::Packed,
        "bf16" => Variant::Bf16,
        v => bail!("--variant `{v}`: expected packed or bf16"),
    };
    let opts = SynthOptions {
        preset: Preset::parse(&a.preset)?,
        seed: a.seed,
        out: a.out.clone(),
        variant,
        force: a.force,
        progress: true,
    };
    let r = synth(&opts)?;
    eprintln!(
        "wrote {} ({} preset, {} tensors, {:.1} MB) in {:.2} s",
        a.out.display(),
        opts.preset.name(),
        r.tensors,
        r.bytes as f64 / 1e6,
        r.time.as_secs_f64()
    );
    Ok(())
}

fn cmd_inspect(a: InspectArgs) -> Result<()> {
    let config = Config::from_dir(&a.model)?;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let ck = rotor::model::Checkpoint::open(&a.model)?;
    let tensors: Vec<_> = ck.tensors().collect();
    let mut layouts = serde_json::Map::new();
    let shapes = projection_shapes(&config);
    let weights: usize = shapes.iter().map(|(r, c)| r * c).sum();
    for k in LayoutKind::all() {
        let bytes: usize = shapes.iter().map(|&(r, c)| k.storage_bytes(r, c)).sum();
        layouts.insert(
            k.name().into(),
            json!({"bytes": bytes, "bits_per_weight": bytes as f64 * 8.0 / weights as f64}),
        );
    }
    let has_lm_head = ck.contains("lm_head.weight");
    if a.json {
        let t: Vec<_> = tensors
            .iter()
            .map(|t| json!({"name": t.name, "dtype": format!("{:?}", t.dtype), "shape": t.shape}))
            .collect();
        let out = json!({
            "config": {
                "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
                "intermediate_size": config.intermediate_size, "num_layers": config.num_layers,
                "num_heads": config.num_heads, "num_kv_heads": config.num_kv_heads,
                "head_dim": config.head_dim, "max_position_embeddings": config.max_position_embeddings,
                "rms_norm_eps": config.rms_norm_eps, "rope_theta": config.rope_theta,
                "tie_word_embeddings": config.tie_word_embeddings,
                "quant": format!("{:?}", config.quant),
            },
            "tensor_count": tensors.len(),
            "has_lm_head": has_lm_head,
            "file_bytes": ck.file_bytes(),
            "ternary_weights": weights,
            "tensors": t,
            "layouts": layouts,
        });
        writeln!(w, "{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    writeln!(w, "{}", a.model.display())?;
    writeln!(
        w,
        "  bitnet: {} layers, hidden {}, ffn {}, heads {} (kv {}, head_dim {}), vocab {}, ctx {}",
        config.num_layers,
        config.hidden_size,
        config.intermediate_size,
        config.num_heads,
        config.num_kv_heads,
        config.head_dim,
        config.vocab_size,
        config.max_position_embeddings
    )?;
    writeln!(
        w,
        "  rope_theta {}, rms_norm_eps {:e}, quantization {:?}, tied head: {}{}",
        config.rope_theta,
        config.rms_norm_eps,
        config.quant,
        config.tie_word_embeddings,
        if has_lm_head {
            " (lm_head.weight present)"
        } else {
            " (no lm_head.weight)"
        }
    )?;
    writeln!(
        w,
        "  {} tensors, {:.1} MB on disk, {} ternary weights",
        tensors.len(),
        ck.file_bytes() as f64 / 1e6,
        weights
    )?;
    writeln!(w, "\n  {:<58} {:>6}  shape", "tensor", "dtype")?;
    for t in &tensors {
        writeln!(
            w,
            "  {:<58} {:>6}  {:?}",
            t.name,
            format!("{:?}", t.dtype),
            t.shape
        )?;
    }
    writeln!(w, "\n  ternary weight bytes per layout:")?;
    for (name, v) in &layouts {
        writeln!(
            w,
            "    {:<14} {:>14} bytes  {:.3} bits/weight",
            name,
            v["bytes"],
            v["bits_per_weight"].as_f64().unwrap_or(0.0)
        )?;
    }
    Ok(())
}

fn projection_shapes(c: &Config) -> Vec<(usize, usize)> {
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let mut v = vec![];
    for _ in 0..c.num_layers {
        v.extend([
            (c.q_dim(), h),
            (c.kv_dim(), h),
            (c.kv_dim(), h),
            (h, c.q_dim()),
            (i, h),
            (i, h),
            (h, i),
        ]);
    }
    v
}

fn tokenizer_or_err(dir: &Path) -> Result<Tokenizer> {
    Tokenizer::from_dir(dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no tokenizer.json: pass token ids with --tokens instead of text",
            dir.display()
        )
    })
}

fn verify_report(policy: Policy, stats: &VerifyStats) {
    if policy != Policy::Off {
        eprintln!("{} (policy {})", stats.summary(), policy.name());
    }
}

fn cmd_logits(a: LogitsArgs) -> Result<()> {
    let model = a.m.load()?;
    let tokens = match &a.prompt {
        Some(p) => tokenizer_or_err(&a.m.model)?.encode(p, true)?,
        None => a.tokens.clone(),
    };
    if tokens.is_empty() {
        bail!("no tokens given");
    }
    let policy = a.m.policy()?;
    let stats = VerifyStats::default();
    let verify = VerifyCtx {
        policy,
        stats: Some(&stats),
        fault: None,
    };
    let cap = tokens.len();
    let mut cache = KvCache::new(&model, cap);
    let mut st = State::new(&model, rotor::model::PREFILL_BATCH, cap);
    let logits = model.forward(&tokens, &mut cache, &mut st, Logits::All, verify)?;
    let v = model.config.vocab_size;
    let rows: Vec<&[f32]> = logits.chunks_exact(v).collect();
    let out = json!({"tokens": tokens, "logits": rows, "layout": model.layout.name(), "kernel": model.kernel.name()});
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    serde_json::to_writer(&mut w, &out)?;
    writeln!(w)?;
    verify_report(policy, &stats);
    Ok(())
}

fn stop_ids(dir: &Path, model: &Model, tok: Option<&Tokenizer>) -> Vec<u32> {
    let mut ids = model.config.eos_token_ids.clone();
    if let Some(t) = tok {
        for s in ["<|eot_id|>", "<|end_of_text|>"] {
            if let Some(id) = t.token_to_id(s) {
                ids.push(id);
            }
        }
    }
    // generation_config.json may list more EOS ids.
    if let Ok(text) = std::fs::read_to_string(dir.join("generation_config.json"))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
    {
        match &v["eos_token_id"] {
            serde_json::Value::Number(n) => ids.extend(n.as_u64().map(|x| x as u32)),
            serde_json::Value::Array(a) => {
                ids.extend(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32))
            }
            _ => {}
        }
    }
    ids.retain(|&i| (i as usize) < model.config.vocab_size);
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn cmd_generate(a: GenerateArgs) -> Result<()> {
    let tok = Tokenizer::from_dir(&a.m.model)?;
    let prompt_ids = match &a.prompt {
        Some(p) => {
            let t = tok.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has no tokenizer.json: pass token ids with --tokens instead of --prompt",
                    a.m.model.display()
                )
            })?;
            let text = if a.chat {
                Tokenizer::chat_prompt(&[("user", p)])
            } else {
                p.clone()
            };
            t.encode(&text, true)?
        }
        None => {
            if a.chat {
                bail!("--chat needs --prompt text");
            }
            a.tokens.clone()
        }
    };
    let model = a.m.load()?;
    let policy = a.m.policy()?;
    let stats = VerifyStats::default();
    let verify = VerifyCtx {
        policy,
        stats: Some(&stats),
        fault: None,
    };
    let opts = GenerateOptions {
        max_tokens: a.max_tokens,
        sampler: SamplerConfig {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            seed: a.seed,
        },
        stop_ids: stop_ids(&a.m.model, &model, tok.as_ref()),
        ctx: a.ctx,
        prefill_batch: rotor::model::PREFILL_BATCH,
    };
    let stdout = std::io::stdout();
    let mut stream = tok.as_ref().map(|t| t.stream());
    if !a.json
        && let Some(t) = &tok
    {
        // Echo the prompt, then stream the continuation.
        let mut out = stdout.lock();
        write!(out, "{}", t.decode(&prompt_ids, true)?)?;
        out.flush()?;
    }
    let g = generate(&model, &prompt_ids, &opts, verify, |id| {
        if a.json {
            return Ok(());
        }
        let mut out = stdout.lock();
        match stream.as_mut() {
            Some(s) => {
                write!(out, "{}", s.push(id)?).map_err(|e| rotor::Error::Invalid(e.to_string()))?
            }
            None => write!(out, "{id} ").map_err(|e| rotor::Error::Invalid(e.to_string()))?,
        }
        out.flush()
            .map_err(|e| rotor::Error::Invalid(e.to_string()))?;
        Ok(())
    })?;
    let text = match &tok {
        Some(t) => Some(t.decode(&g.generated_ids, true)?),
        None => None,
    };
    let stop = match g.stop {
        Stop::Eos(id) => format!("eos({id})"),
        Stop::MaxTokens => "max_tokens".into(),
        Stop::Context => "context".into(),
    };
    if a.json {
        let out = json!({
            "prompt_ids": g.prompt_ids, "generated_ids": g.generated_ids, "text": text,
            "stop": stop, "prefill_tok_s": g.prefill_tok_s(), "decode_tok_s": g.decode_tok_s(),
            "layout": model.layout.name(), "kernel": model.kernel.name(), "threads": model.threads(),
        });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        if let Some(s) = stream.as_mut() {
            print!("{}", s.flush()?);
        }
        println!();
        eprintln!(
            "[{} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s, stop: {stop}; {} × {}, {} threads]",
            g.prompt_ids.len(),
            g.prefill_tok_s(),
            g.generated_ids.len(),
            g.decode_tok_s(),
            model.layout.name(),
            model.kernel.name(),
            model.threads()
        );
    }
    verify_report(policy, &stats);
    Ok(())
}

fn cmd_perplexity(a: PplArgs) -> Result<()> {
    let tok = tokenizer_or_err(&a.m.model)?;
    let text = std::fs::read_to_string(&a.text)
        .with_context(|| format!("reading --text {}", a.text.display()))?;
    let model = a.m.load()?;
    let tokens = tok.encode(&text, true)?;
    let bos = model
        .config
        .bos_token_id
        .or_else(|| tok.token_to_id("<|begin_of_text|>"));
    let policy = a.m.policy()?;
    let stats = VerifyStats::default();
    let verify = VerifyCtx {
        policy,
        stats: Some(&stats),
        fault: None,
    };
    let opts = PplOptions {
        ctx: a.ctx,
        stride: a.stride,
        max_chunks: a.chunks,
        batch: a.batch,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "ppl [{bar:40}] {pos}/{len} chunks {elapsed} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let r = perplexity(&model, &tokens, bos, &opts, verify, |i, n| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
    })?;
    bar.finish_and_clear();
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["layout"] = json!(model.layout.name());
        v["kernel"] = json!(model.kernel.name());
        v["threads"] = json!(model.threads());
        v["text_tokens"] = json!(tokens.len());
        println!("{}", serde_json::to_string(&v)?);
    } else {
        eprintln!(
            "{} tokens in {}, {} chunks of {} ({}), {} scored, {:.1} tok/s",
            tokens.len(),
            a.text.display(),
            r.chunks,
            r.ctx,
            r.convention,
            r.tokens_scored,
            r.tokens_per_s
        );
        println!("PPL = {:.4} ± {:.4}", r.ppl, r.ppl_stderr);
    }
    verify_report(policy, &stats);
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    let model = a.m.load()?;
    let policy = a.m.policy()?;
    let stats = VerifyStats::default();
    let opts = rotor::bench::BenchOptions {
        prompt_tokens: a.prompt_tokens,
        gen_tokens: a.gen_tokens,
        runs: a.runs,
        policy,
        measure_bandwidth: true,
    };
    let r = rotor::bench::run(&model, &opts, &stats)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    verify_report(policy, &stats);
    Ok(())
}

fn cmd_faults(a: FaultsArgs) -> Result<()> {
    let site = rotor::verify::Site::parse(&a.site).map_err(anyhow::Error::msg)?;
    let m = ModelArgs {
        model: a.model.clone(),
        layout: a.layout.clone(),
        kernel: a.kernel.clone(),
        threads: a.threads,
        verify: Some("correct".into()),
        head: "bf16".into(),
        acts: "int8".into(),
    };
    let model = m.load()?;
    let tokens: Vec<u32> = if a.tokens.is_empty() {
        let mut r = rotor::sample::Rng::new(1);
        (0..16)
            .map(|_| (r.next_u64() % model.config.vocab_size as u64) as u32)
            .collect()
    } else {
        a.tokens.clone()
    };
    let bar = indicatif::ProgressBar::new(a.count as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "faults [{bar:40}] {pos}/{len} {elapsed} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let r = rotor::faults::campaign(&model, &tokens, site, a.count, a.seed, |i| {
        bar.set_position(i as u64)
    })?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(())
}

fn cmd_export(a: ExportArgs) -> Result<()> {
    if a.format != "gguf" {
        bail!("--format `{}`: only gguf is supported", a.format);
    }
    let opts = rotor::gguf::ExportOptions {
        weights: rotor::gguf::TernaryType::parse(&a.weight_type)?,
        head: rotor::gguf::HeadType::parse(&a.head)?,
        threads: a.threads,
    };
    let r = rotor::gguf::export(&a.model, &a.out, &opts)
        .with_context(|| format!("exporting {}", a.model.display()))?;
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    if r.scales_rounded > 0 {
        eprintln!(
            "note: {} projection scales were rounded to f16 (max relative change {:.2e})",
            r.scales_rounded, r.max_scale_rel_err
        );
    }
    eprintln!(
        "wrote {} ({} tensors, {:.1} MB, weights {}, head {}) in {:.2} s",
        r.path.display(),
        r.tensors,
        r.bytes as f64 / 1e6,
        opts.weights.ggml(),
        opts.head.ggml(),
        r.time.as_secs_f64()
    );
    Ok(())
}

fn cmd_kernels(a: KernelsArgs) -> Result<()> {
    use rotor::KernelKind;
    use rotor::ternary::select;
    let (cpu, feats) = rotor::kernels::cpu_description();
    let available: Vec<&str> = Kernel::available().iter().map(|k| k.name()).collect();
    let table = select::calibration();
    let (rotor_layout, rotor_kernel) = select::best_rotor();
    let layouts: Vec<serde_json::Value> = LayoutKind::all()
        .into_iter()
        .map(|l| {
            let auto = l.best_kernel();
            let kernels: Vec<serde_json::Value> = l
                .kernels()
                .iter()
                .map(|&kind: &KernelKind| {
                    let t = table
                        .iter()
                        .find(|t| t.layout == l && t.kernel.kind() == kind);
                    json!({
                        "kernel": kind.name(),
                        "available": Kernel::of(kind).is_ok(),
                        "calibration_us": t.map(|t| t.seconds * 1e6),
                        "g_weights_per_s": t.map(|t| t.weights_per_s / 1e9),
                        "timed": t.is_some(),
                    })
                })
                .collect();
            json!({
                "layout": l.name(),
                "kernels": kernels,
                "auto": auto.name(),
                "auto_batched": select::gemm_kernel(l, auto).name(),
            })
        })
        .collect();
    if a.json {
        let out = json!({
            "cpu": cpu, "features": feats, "available": available,
            "rotor": {"layout": rotor_layout.name(), "kernel": rotor_kernel.name()},
            "calibration": {"rows": 512, "cols": 2560, "batch": 1, "threads": 1, "reps": 9},
            "layouts": layouts,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    use std::fmt::Write as _;
    let mut o = String::new();
    macro_rules! outln {
        ($o:expr, $($t:tt)*) => { writeln!($o, $($t)*).expect("writing to a String") };
    }
    outln!(o, "CPU: {cpu}");
    outln!(o, "features: {}", feats.join(" "));
    outln!(o, "kernel families this CPU runs: {}", available.join(", "));
    outln!(
        o,
        "--layout rotor = {} with {} (fastest rotor variant in the start-up measurement)",
        rotor_layout.name(),
        rotor_kernel.name()
    );
    outln!(
        o,
        "\nstart-up measurement: one 512×2560 single-token product, best of 9 interleaved runs, one thread (amx runs the avx512vnni single-token code; scalar is timed only where it is the only kernel)\n"
    );
    outln!(
        o,
        "{:<14} {:<12} {:>10} {:>12}   auto (decode / prefill)",
        "layout",
        "kernel",
        "µs",
        "G weights/s"
    );
    for l in &layouts {
        let mut first = true;
        for k in l["kernels"].as_array().expect("array") {
            let (us, gw) = match (k["calibration_us"].as_f64(), k["g_weights_per_s"].as_f64()) {
                (Some(us), Some(g)) => (format!("{us:.1}"), format!("{g:.1}")),
                _ if k["available"].as_bool() == Some(true) => ("—".into(), "as avx512vnni".into()),
                _ => ("—".into(), "not on this CPU".into()),
            };
            outln!(
                o,
                "{:<14} {:<12} {:>10} {:>12}   {}",
                if first {
                    l["layout"].as_str().unwrap_or("")
                } else {
                    ""
                },
                k["kernel"].as_str().unwrap_or(""),
                us,
                gw,
                if first {
                    format!(
                        "{} / {}",
                        l["auto"].as_str().unwrap_or(""),
                        l["auto_batched"].as_str().unwrap_or("")
                    )
                } else {
                    String::new()
                }
            );
            first = false;
        }
    }
    std::io::Write::write_all(&mut std::io::stdout(), o.as_bytes())?;
    Ok(())
}
