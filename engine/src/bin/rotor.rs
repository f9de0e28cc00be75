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
use rotor::gguf::quants::i2s;
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
    /// I2_S byte order to write (and to read a .gguf source in): x86 (bitnet.cpp's default x86
    /// build), arm (its ARM build), 1x4 (x86 without ACT_PARALLEL). See docs/FORMAT.md §8.3.
    #[arg(long, default_value = "x86", value_name = "ORDER")]
    i2s_order: String,
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
    /// Token ids to run, comma-separated (default: 16 fixed pseudo-random ids).
    #[arg(long, value_parser = token_list)]
    tokens: Option<TokenList>,
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
    /// int2..int7 (the same absmax rule with fewer levels: lossy research variants), f32
    /// (unquantized activations, a slow scalar reference path), or q8k (llama.cpp's int8 per
    /// 256-value block, emulated on the f32 path: a research variant for comparing engines).
    #[arg(long, default_value = "int8", value_name = "PRECISION")]
    acts: String,
    /// Byte order of I2_S tensors in a .gguf model: x86 (the default, bitnet.cpp's x86 build and
    /// Microsoft's converter), arm (bitnet.cpp's ARM build), 1x4 (x86 built without
    /// ACT_PARALLEL). The file cannot say which; see docs/FORMAT.md §8.3.
    #[arg(long, value_name = "ORDER")]
    i2s_order: Option<String>,
    /// Feed-forward activation: relu2 (BitNet b1.58's `hidden_act`, the default) or silu — a
    /// research switch that reproduces llama.cpp's BitNet graph (it builds the block with
    /// SiLU); it computes a different function from the one the model was trained with.
    #[arg(long, default_value = "relu2", value_name = "ACT")]
    ffn_act: String,
}

/// A `--tokens` list, parsed by [`rotor::tokenizer::parse_token_ids`].
#[derive(Clone, Debug)]
struct TokenList(Vec<u32>);

fn token_list(s: &str) -> std::result::Result<TokenList, String> {
    rotor::tokenizer::parse_token_ids(s)
        .map(TokenList)
        .map_err(|e| e.to_string())
}

/// What `--model` names, checked before anything is read: a missing path, or a file that is
/// not a `.gguf`, is an error that says exactly that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelPath {
    Dir,
    Gguf,
}

fn model_path(p: &Path) -> Result<ModelPath> {
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            {
                bail!("--model {}: no such file", p.display())
            }
            bail!(
                "--model {}: no such directory (a model directory holds config.json and model.safetensors; a .gguf file also works)",
                p.display()
            )
        }
        Err(e) => bail!("--model {}: {e}", p.display()),
    };
    if meta.is_dir() {
        return Ok(if rotor::gguf::gguf_path(p).is_some() {
            ModelPath::Gguf
        } else {
            ModelPath::Dir
        });
    }
    if rotor::gguf::gguf_path(p).is_some() {
        return Ok(ModelPath::Gguf);
    }
    let hint = match p.extension().and_then(|e| e.to_str()) {
        Some("safetensors") | Some("json") => format!(
            ": pass the directory that holds it ({})",
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .display()
        ),
        _ => String::new(),
    };
    bail!(
        "--model {} is a file, not a model directory (nor a .gguf file){hint}",
        p.display()
    )
}

fn parse_i2s_order(s: Option<&str>) -> Result<i2s::Order> {
    s.map_or(Ok(i2s::Order::default()), |s| {
        i2s::Order::parse(s).map_err(anyhow::Error::msg)
    })
}

/// The tokenizer of `--model`: `tokenizer.json` of a model directory. A GGUF file's tokenizer
/// metadata is not turned into a tokenizer, so text input needs a directory.
fn tokenizer_of(model: &Path) -> Result<Option<Tokenizer>> {
    match model_path(model)? {
        ModelPath::Dir => Ok(Tokenizer::from_dir(model)?),
        ModelPath::Gguf if model.is_dir() => Ok(Tokenizer::from_dir(model)?),
        ModelPath::Gguf => Ok(None),
    }
}

/// The error for text input without a tokenizer. `flag` is the text option the user gave
/// (`--prompt`), for which `--tokens` is the alternative; `None` when there is none (perplexity).
fn no_tokenizer(model: &Path, flag: Option<&str>) -> anyhow::Error {
    let what = if model.is_file() {
        format!(
            "{} is a GGUF file and rotor reads no tokenizer from GGUF metadata",
            model.display()
        )
    } else {
        format!("{} has no tokenizer.json", model.display())
    };
    match flag {
        Some(flag) => anyhow::anyhow!(
            "{what}: pass token ids with --tokens instead of {flag}, or use a model directory with tokenizer.json"
        ),
        None => anyhow::anyhow!(
            "{what}, and tokenizing the text needs one: use a model directory with tokenizer.json (a .gguf file in it is loaded as the model)"
        ),
    }
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
        let kind = model_path(&self.model)?;
        let i2s_order = parse_i2s_order(self.i2s_order.as_deref())?;
        if kind == ModelPath::Dir && self.i2s_order.is_some() {
            bail!(
                "--i2s-order applies to GGUF files with I2_S tensors; {} is a safetensors checkpoint",
                self.model.display()
            );
        }
        let ffn_act = rotor::model::FfnAct::parse(&self.ffn_act)?;
        let opts = LoadOptions {
            layout,
            kernel,
            threads: self.threads,
            checksums: self.policy()? != Policy::Off,
            head: rotor::model::HeadKind::parse(&self.head)?,
            acts: rotor::quant::ActPrecision::parse(&self.acts)?,
        };
        if opts.acts.qmax().is_none() && opts.checksums {
            bail!(
                "--verify checks integer products; it cannot be combined with --acts {} (a float path)",
                opts.acts.name()
            );
        }
        let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let m = match kind {
            ModelPath::Gguf => {
                let path = rotor::gguf::gguf_path(&self.model).expect("checked by model_path");
                rotor::gguf::load_model_with(
                    &path,
                    &opts,
                    &rotor::gguf::GgufOptions {
                        i2s_order,
                        progress: show,
                    },
                )
            }
            ModelPath::Dir => {
                // The conversion is one parallel pass inside the library: a spinner with the
                // elapsed time shows that it is running.
                let spin = rotor::progress::spinner(
                    show,
                    format!(
                        "loading {} into {}",
                        self.model.display(),
                        opts.layout.name()
                    ),
                );
                let m = Model::load(&self.model, &opts);
                spin.finish_and_clear();
                m
            }
        };
        let mut m = m.with_context(|| format!("loading {}", self.model.display()))?;
        if ffn_act != rotor::model::FfnAct::Relu2 {
            eprintln!(
                "note: --ffn-act {} is a research switch: the feed-forward block computes {}(gate)·up, not the model's relu(gate)²·up",
                ffn_act.name(),
                ffn_act.name()
            );
        }
        m.ffn_act = ffn_act;
        Ok(m)
    }
}

#[derive(Args)]
struct InspectArgs {
    /// Model directory or .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Byte order to check I2_S tensors against (see `rotor logits --help`).
    #[arg(long, value_name = "ORDER")]
    i2s_order: Option<String>,
}

#[derive(Args)]
struct LogitsArgs {
    #[command(flatten)]
    m: ModelArgs,
    /// Comma-separated token ids, e.g. 128000,9906,1917.
    #[arg(long, value_parser = token_list, required_unless_present = "prompt")]
    tokens: Option<TokenList>,
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
    #[arg(long, value_parser = token_list, conflicts_with = "prompt")]
    tokens: Option<TokenList>,
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

/// Bytes of the ternary weights in every layout, for a config's projection shapes.
fn layout_bytes(config: &Config) -> (usize, serde_json::Map<String, serde_json::Value>) {
    let mut layouts = serde_json::Map::new();
    let shapes = projection_shapes(config);
    let weights: usize = shapes.iter().map(|(r, c)| r * c).sum();
    for k in LayoutKind::all() {
        let bytes: usize = shapes.iter().map(|&(r, c)| k.storage_bytes(r, c)).sum();
        layouts.insert(
            k.name().into(),
            json!({"bytes": bytes, "bits_per_weight": bytes as f64 * 8.0 / weights as f64}),
        );
    }
    (weights, layouts)
}

fn config_json(config: &Config) -> serde_json::Value {
    json!({
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size, "num_layers": config.num_layers,
        "num_heads": config.num_heads, "num_kv_heads": config.num_kv_heads,
        "head_dim": config.head_dim, "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.rms_norm_eps, "rope_theta": config.rope_theta,
        "tie_word_embeddings": config.tie_word_embeddings,
        "quant": format!("{:?}", config.quant),
    })
}

fn write_config_lines(w: &mut impl Write, config: &Config) -> std::io::Result<()> {
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
    )
}

fn write_layout_lines(
    w: &mut impl Write,
    layouts: &serde_json::Map<String, serde_json::Value>,
) -> std::io::Result<()> {
    writeln!(w, "\n  ternary weight bytes per layout:")?;
    for (name, v) in layouts {
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

fn cmd_inspect(a: InspectArgs) -> Result<()> {
    if model_path(&a.model)? == ModelPath::Gguf {
        let path = rotor::gguf::gguf_path(&a.model).expect("checked by model_path");
        return inspect_gguf(&path, &a);
    }
    if a.i2s_order.is_some() {
        bail!(
            "--i2s-order applies to GGUF files with I2_S tensors; {} is a safetensors checkpoint",
            a.model.display()
        );
    }
    let config = Config::from_dir(&a.model)?;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let ck = rotor::model::Checkpoint::open(&a.model)?;
    let tensors: Vec<_> = ck.tensors().collect();
    let (weights, layouts) = layout_bytes(&config);
    let has_lm_head = ck.contains("lm_head.weight");
    if a.json {
        let t: Vec<_> = tensors
            .iter()
            .map(|t| json!({"name": t.name, "dtype": format!("{:?}", t.dtype), "shape": t.shape}))
            .collect();
        let out = json!({
            "format": "safetensors",
            "config": config_json(&config),
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
    write_config_lines(&mut w, &config)?;
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
    write_layout_lines(&mut w, &layouts)?;
    Ok(())
}

/// A metadata value as JSON: scalars as they are, short arrays element by element, long ones
/// (the token list, merges) by element type and length.
fn value_json(v: &rotor::gguf::Value) -> serde_json::Value {
    use rotor::gguf::Value as V;
    match v {
        V::String(s) => json!(s),
        V::Bool(b) => json!(b),
        V::F32(x) => json!(x),
        V::F64(x) => json!(x),
        V::Array(t, items) if items.len() <= 16 => {
            json!({"array": format!("{t:?}"), "len": items.len(), "values": items.iter().map(value_json).collect::<Vec<_>>()})
        }
        V::Array(t, items) => json!({"array": format!("{t:?}"), "len": items.len()}),
        other => other.as_u64().map_or_else(
            || json!(other.as_f64().unwrap_or(f64::NAN) as i64),
            |u| json!(u),
        ),
    }
}

/// The I2_S byte-order caveat for a file (FORMAT.md §8.3), as one paragraph.
fn i2s_note(order: i2s::Order, explicit: bool, compatible: &[&str]) -> String {
    format!(
        "I2_S byte order: the file does not record it. bitnet.cpp writes type 36 in three orders (x86: 128-weight/32-byte blocks; arm: 64/16; 1x4: four rows interleaved per byte, x86 builds without ACT_PARALLEL), every byte is valid in each, and a file read in the wrong order loads without error into wrong logits. Reading as `{}` ({}); orders this file's tensor shapes allow: {}. A file from bitnet.cpp's ARM build needs --i2s-order arm, from an x86 build without ACT_PARALLEL --i2s-order 1x4 (docs/FORMAT.md §8.3).",
        order.name(),
        if explicit {
            "--i2s-order"
        } else {
            "the default: Microsoft's converter and x86 builds"
        },
        compatible.join(", ")
    )
}

fn inspect_gguf(path: &Path, a: &InspectArgs) -> Result<()> {
    let mut f = rotor::gguf::GgufFile::open(path)?;
    let order = parse_i2s_order(a.i2s_order.as_deref())?;
    f.set_i2s_order(order);
    // The file may be a valid GGUF that is not a BitNet model: show it anyway, and say why it
    // would not load.
    let config = rotor::gguf::model::config(&f);
    let i2s_tensors: Vec<_> = f
        .tensors()
        .iter()
        .filter(|t| t.ty == rotor::gguf::GgmlType::I2_S)
        .collect();
    let compatible: Vec<&str> = i2s::Order::ALL
        .iter()
        .filter(|o| {
            i2s_tensors
                .iter()
                .all(|t| o.check(t.rows(), t.ne0()).is_ok())
        })
        .map(|o| o.name())
        .collect();
    let note =
        (!i2s_tensors.is_empty()).then(|| i2s_note(order, a.i2s_order.is_some(), &compatible));
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if a.json {
        let meta: Vec<_> = f
            .metadata()
            .map(|(k, v)| json!({"key": k, "type": format!("{:?}", v.value_type()), "value": value_json(v)}))
            .collect();
        let t: Vec<_> = f
            .tensors()
            .iter()
            .map(|t| {
                json!({"name": t.name, "type": t.ty.to_string(), "type_id": t.ty.0,
                       "dims": t.dims, "bytes": t.len, "offset": t.offset})
            })
            .collect();
        let (cfg, err, weights, layouts) = match &config {
            Ok(c) => {
                let (wts, l) = layout_bytes(c);
                (
                    config_json(c),
                    serde_json::Value::Null,
                    json!(wts),
                    json!(l),
                )
            }
            Err(e) => (
                serde_json::Value::Null,
                json!(e.to_string()),
                serde_json::Value::Null,
                serde_json::Value::Null,
            ),
        };
        let out = json!({
            "format": "gguf",
            "version": f.version,
            "alignment": f.alignment,
            "data_offset": f.data_offset,
            "file_bytes": f.file_len(),
            "metadata": meta,
            "config": cfg,
            "config_error": err,
            "tensor_count": f.tensors().len(),
            "has_lm_head": f.tensor("output.weight").is_some(),
            "ternary_weights": weights,
            "tensors": t,
            "layouts": layouts,
            "i2s": if i2s_tensors.is_empty() { serde_json::Value::Null } else { json!({
                "tensors": i2s_tensors.len(),
                "order": order.name(),
                "order_source": if a.i2s_order.is_some() { "--i2s-order" } else { "default" },
                "compatible_orders": compatible,
                "note": note,
            })},
        });
        writeln!(w, "{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    writeln!(
        w,
        "{}\n  GGUF v{}, {} metadata entries, {} tensors, {:.1} MB, alignment {}",
        path.display(),
        f.version,
        f.metadata().count(),
        f.tensors().len(),
        f.file_len() as f64 / 1e6,
        f.alignment
    )?;
    match &config {
        Ok(c) => write_config_lines(&mut w, c)?,
        Err(e) => writeln!(w, "  not loadable as a BitNet b1.58 model: {e}")?,
    }
    writeln!(w, "\n  {:<44} {:<8} value", "metadata", "type")?;
    for (k, v) in f.metadata() {
        writeln!(
            w,
            "  {:<44} {:<8} {}",
            k,
            format!("{:?}", v.value_type()),
            v.describe()
        )?;
    }
    writeln!(
        w,
        "\n  {:<36} {:>8} {:>14}  dims (ne0 first)",
        "tensor", "type", "bytes"
    )?;
    for t in f.tensors() {
        writeln!(
            w,
            "  {:<36} {:>8} {:>14}  {:?}",
            t.name,
            t.ty.to_string(),
            t.len,
            t.dims
        )?;
    }
    if let Ok(c) = &config {
        write_layout_lines(&mut w, &layout_bytes(c).1)?;
    }
    if let Some(n) = note {
        writeln!(w, "\n  note: {n}")?;
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

fn tokenizer_or_err(model: &Path, flag: Option<&str>) -> Result<Tokenizer> {
    tokenizer_of(model)?.ok_or_else(|| no_tokenizer(model, flag))
}

fn verify_report(policy: Policy, stats: &VerifyStats) {
    if policy != Policy::Off {
        eprintln!("{} (policy {})", stats.summary(), policy.name());
    }
}

fn cmd_logits(a: LogitsArgs) -> Result<()> {
    let model = a.m.load()?;
    let tokens = match (&a.prompt, &a.tokens) {
        (Some(p), _) => tokenizer_or_err(&a.m.model, Some("--prompt"))?.encode(p, true)?,
        (None, Some(t)) => t.0.clone(),
        (None, None) => vec![],
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

fn cmd_generate(a: GenerateArgs) -> Result<()> {
    let tok = tokenizer_of(&a.m.model)?;
    let prompt_ids = match &a.prompt {
        Some(p) => {
            let t = tok
                .as_ref()
                .ok_or_else(|| no_tokenizer(&a.m.model, Some("--prompt")))?;
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
            a.tokens.as_ref().map(|t| t.0.clone()).unwrap_or_default()
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
        stop_ids: rotor::tokenizer::stop_ids(&a.m.model, &model.config, tok.as_ref())?,
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
    let tok = tokenizer_or_err(&a.m.model, None)?;
    let text = std::fs::read_to_string(&a.text)
        .with_context(|| format!("reading --text {}", a.text.display()))?;
    let model = a.m.load()?;
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let spin = rotor::progress::spinner(
        show,
        format!(
            "tokenizing {} ({:.1} MB)",
            a.text.display(),
            text.len() as f64 / 1e6
        ),
    );
    let tokens = tok.encode(&text, true);
    spin.finish_and_clear();
    let tokens = tokens?;
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
    let bar = rotor::progress::bar(show, 0, "ppl", "chunks");
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
        v["ffn_act"] = json!(model.ffn_act.name());
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
        i2s_order: None,
        ffn_act: "relu2".into(),
    };
    let model = m.load()?;
    let tokens: Vec<u32> = if let Some(t) = &a.tokens {
        t.0.clone()
    } else {
        let mut r = rotor::sample::Rng::new(1);
        (0..16)
            .map(|_| (r.next_u64() % model.config.vocab_size as u64) as u32)
            .collect()
    };
    let bar = rotor::progress::bar(true, a.count as u64, "faults", "faults");
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
    model_path(&a.model)?;
    let opts = rotor::gguf::ExportOptions {
        weights: rotor::gguf::TernaryType::parse(&a.weight_type)?,
        head: rotor::gguf::HeadType::parse(&a.head)?,
        threads: a.threads,
        i2s_order: parse_i2s_order(Some(&a.i2s_order))?,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
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
    let order = if opts.weights == rotor::gguf::TernaryType::I2S {
        format!(" in the {} byte order", opts.i2s_order.name())
    } else {
        String::new()
    };
    eprintln!(
        "wrote {} ({} tensors, {:.1} MB, weights {}{order}, head {}) in {:.2} s",
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
