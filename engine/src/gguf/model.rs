//! A BitNet b1.58 model from a GGUF file: llama.cpp's `bitnet` architecture (and bitnet.cpp's
//! `bitnet-b1.58` / `bitnet-25`, which use the same key and tensor names) mapped onto the
//! engine's [`Config`] and weights.
//!
//! | GGUF (ggml dims, ne0 first)                    | engine                                       |
//! |------------------------------------------------|----------------------------------------------|
//! | `token_embd.weight` {hidden, vocab}            | `embed` [vocab][hidden] (bf16)               |
//! | `output.weight` {hidden, vocab} (optional)     | untied `lm_head`; absent → tied head         |
//! | `output_norm.weight` {hidden}                  | `norm`                                       |
//! | `blk.N.attn_norm.weight` {hidden}              | `input_layernorm`                            |
//! | `blk.N.attn_q/k/v.weight` {hidden, q/kv dim}   | `q_proj`, `k_proj`, `v_proj`                 |
//! | `blk.N.attn_sub_norm.weight` {q dim}           | `attn_sub_norm`                              |
//! | `blk.N.attn_output.weight` {q dim, hidden}     | `o_proj`                                     |
//! | `blk.N.ffn_norm.weight` {hidden}               | `post_attention_layernorm`                   |
//! | `blk.N.ffn_gate/up.weight` {hidden, inter}     | `gate_proj`, `up_proj`                       |
//! | `blk.N.ffn_sub_norm.weight` {inter}            | `ffn_sub_norm`                               |
//! | `blk.N.ffn_down.weight` {inter, hidden}        | `down_proj`                                  |
//! | `blk.N.<proj>.scale` {1} (optional)            | multiplies that projection's scale           |
//!
//! A GGUF 2-D tensor `{ne0, ne1}` is row-major with rows of `ne0`: exactly torch's `[out, in]`
//! weight with `ne0 = in`, so no transpose is needed. Sources: the tensor list and shapes of
//! `LLM_ARCH_BITNET` (Eddie-Wang1120/llama.cpp@406a5036 `src/llama.cpp` lines 1331–1349 and
//! 8601–8637; current ggml-org/llama.cpp `src/models/bitnet.cpp`), where the `.scale` tensors
//! are `TENSOR_NOT_REQUIRED` and applied with `ggml_mul` on the projection output.
//!
//! **RoPE and q/k order.** llama.cpp runs `LLM_ARCH_BITNET` with NEOX-style RoPE (pairs offset
//! by n_rot/2, `llama_model_rope_type`), the same rotate_half convention as transformers, and
//! neither the upstream converter (`BitnetModel`, a `TextModel`, not `LlamaModel`) nor
//! microsoft/BitNet's `convert-hf-to-gguf-bitnet.py` permutes q/k rows (its `permute` calls are
//! commented out). So q/k rows are read as stored. Only Microsoft's GPU runtime permutes
//! (FORMAT.md §3). A file made by a converter that *did* permute for interleaved RoPE would load
//! without error and give wrong logits; nothing in the metadata says so.
//!
//! **Activation.** llama.cpp's `bitnet` graph applies SiLU in the FFN; BitNet b1.58 2B-4T uses
//! ReLU² (FORMAT.md §3). rotor always runs ReLU², the model's own activation.
//!
//! **I2_S byte order.** bitnet.cpp writes I2_S in one of three byte orders that the file does
//! not record (FORMAT.md §8.3); [`GgufOptions::i2s_order`] says which to decode (default x86).

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::json;

use super::quants::i2s;
use super::read::{GgufFile, TensorInfo};
use super::types::{GgmlType, Value};
use crate::error::{Error, Result};
use crate::model::{Bf16Matrix, Config, LoadOptions, Model, ProjectionData, Scale, TernarySource};

/// Architecture names whose tensors and keys this loader maps.
pub const ARCHITECTURES: [&str; 3] = ["bitnet", "bitnet-b1.58", "bitnet-25"];

/// The seven projections of a layer, in the order [`Model::from_parts`] takes them, with their
/// GGUF names.
pub const PROJECTIONS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

/// `path` itself if it names a `.gguf` file, or the one `*.gguf` inside a directory that has
/// no safetensors checkpoint; `None` otherwise (the safetensors loader takes it).
pub fn gguf_path(path: &Path) -> Option<std::path::PathBuf> {
    let is_gguf = |p: &Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    };
    if path.is_file() {
        return is_gguf(path).then(|| path.to_path_buf());
    }
    if !path.is_dir()
        || path.join("model.safetensors").exists()
        || path.join("model.safetensors.index.json").exists()
    {
        return None;
    }
    let mut found: Vec<_> = std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_gguf(p))
        .collect();
    (found.len() == 1).then(|| found.pop().expect("one"))
}

fn cfg_err(f: &GgufFile, msg: impl std::fmt::Display) -> Error {
    Error::Config {
        path: f.path.clone(),
        msg: msg.to_string(),
    }
}

/// The architecture name, checked.
pub fn architecture(f: &GgufFile) -> Result<String> {
    let arch = f
        .get_str("general.architecture")
        .ok_or_else(|| cfg_err(f, "no general.architecture string: not a model file"))?;
    if !ARCHITECTURES.contains(&arch) {
        return Err(cfg_err(
            f,
            format!(
                "general.architecture is `{arch}`, not a BitNet b1.58 model (expected one of {})",
                ARCHITECTURES.join(", ")
            ),
        ));
    }
    Ok(arch.to_string())
}

/// An integer key; per-layer arrays (llama.cpp allows them for head counts) must be uniform.
fn uint(f: &GgufFile, key: &str) -> Result<Option<u64>> {
    let Some(v) = f.get(key) else { return Ok(None) };
    if let Some(a) = v.as_array() {
        let vals: Vec<Option<u64>> = a.iter().map(Value::as_u64).collect();
        return match vals.first() {
            Some(Some(x)) if vals.iter().all(|y| *y == Some(*x)) => Ok(Some(*x)),
            _ => Err(cfg_err(
                f,
                format!(
                    "{key} is {} with differing or non-integer values; per-layer values are not supported",
                    v.describe()
                ),
            )),
        };
    }
    v.as_u64().map(Some).ok_or_else(|| {
        cfg_err(
            f,
            format!("{key} is {}, expected a non-negative integer", v.describe()),
        )
    })
}

fn float(f: &GgufFile, key: &str) -> Result<Option<f64>> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| cfg_err(f, format!("{key} is {}, expected a number", v.describe()))),
    }
}

/// Map the file's metadata onto a [`Config`]: the keys are rewritten as the `config.json` a
/// Hugging Face checkpoint of the same model would carry, then validated by
/// [`Config::from_json`] (one set of checks for both loaders). `quant` is `PackedMultiply`: every
/// GGUF ternary type stores a scale that multiplies.
pub fn config(f: &GgufFile) -> Result<Config> {
    let arch = architecture(f)?;
    let k = |s: &str| format!("{arch}.{s}");
    let req = |key: String| -> Result<u64> {
        uint(f, &key)?.ok_or_else(|| cfg_err(f, format!("missing metadata key {key}")))
    };
    let hidden = req(k("embedding_length"))?;
    let layers = req(k("block_count"))?;
    let inter = req(k("feed_forward_length"))?;
    let heads = req(k("attention.head_count"))?;
    let ctx = req(k("context_length"))?;
    let kv_heads = uint(f, &k("attention.head_count_kv"))?.unwrap_or(heads);
    let eps = float(f, &k("attention.layer_norm_rms_epsilon"))?.ok_or_else(|| {
        cfg_err(
            f,
            format!(
                "missing metadata key {}",
                k("attention.layer_norm_rms_epsilon")
            ),
        )
    })?;
    // llama.cpp's default when the key is absent.
    let theta = float(f, &k("rope.freq_base"))?.unwrap_or(10000.0);
    let head_dim = match uint(f, &k("attention.key_length"))? {
        Some(d) => d,
        None if heads > 0 => hidden / heads,
        None => 0,
    };
    if let Some(v) = uint(f, &k("attention.value_length"))?
        && v != head_dim
    {
        return Err(cfg_err(
            f,
            format!(
                "attention.value_length {v} differs from key_length {head_dim} (not supported)"
            ),
        ));
    }
    if let Some(r) = uint(f, &k("rope.dimension_count"))?
        && r != head_dim
    {
        return Err(cfg_err(
            f,
            format!(
                "rope.dimension_count {r} is not the head dimension {head_dim}: partial RoPE is not supported"
            ),
        ));
    }
    if let Some(t) = f.get_str(&k("rope.scaling.type")) {
        let factor = float(f, &k("rope.scaling.factor"))?.unwrap_or(1.0);
        if !(t == "none" || (t == "linear" && factor == 1.0)) {
            return Err(cfg_err(
                f,
                format!(
                    "rope.scaling.type `{t}` (factor {factor}) is not supported (only unscaled RoPE)"
                ),
            ));
        }
    }
    // Vocabulary: the embedding's rows are what the model computes with; the token list and
    // vocab_size key must agree with them when present.
    let embd = f.require("token_embd.weight")?;
    let vocab = if embd.dims.len() == 2 {
        embd.dims[1]
    } else {
        0
    };
    if let Some(v) = uint(f, &k("vocab_size"))?
        && v != vocab
    {
        return Err(cfg_err(
            f,
            format!(
                "{} = {v} but token_embd.weight has {vocab} rows",
                k("vocab_size")
            ),
        ));
    }
    if let Some(Value::Array(_, toks)) = f.get("tokenizer.ggml.tokens")
        && toks.len() as u64 != vocab
    {
        return Err(cfg_err(
            f,
            format!(
                "tokenizer.ggml.tokens has {} entries but token_embd.weight has {vocab} rows",
                toks.len()
            ),
        ));
    }
    let bos = uint(f, "tokenizer.ggml.bos_token_id")?;
    let mut eos = vec![];
    for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
        if let Some(id) = uint(f, key)?
            && !eos.contains(&id)
        {
            eos.push(id);
        }
    }
    let json = json!({
        "model_type": "bitnet",
        "hidden_act": "relu2",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": ctx,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "tie_word_embeddings": f.tensor("output.weight").is_none(),
        "bos_token_id": bos,
        "eos_token_id": eos,
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                "quantization_mode": "offline"},
    });
    Config::from_json(&json.to_string(), &f.path)
}

fn check_dims(f: &GgufFile, t: &TensorInfo, dims: &[usize]) -> Result<()> {
    if t.dims.len() != dims.len() || t.dims.iter().zip(dims).any(|(&a, &b)| a != b as u64) {
        return Err(Error::BadTensor {
            name: t.name.clone(),
            msg: format!(
                "dims {:?} (ggml order, ne0 first), expected {dims:?}, in {}",
                t.dims,
                f.path.display()
            ),
        });
    }
    Ok(())
}

/// A float vector (norm gains), checked for shape and NaN/inf.
pub fn floats(f: &GgufFile, name: &str, n: usize) -> Result<Vec<f32>> {
    let t = f.require(name)?;
    check_dims(f, t, &[n])?;
    let v = f.to_f32(t)?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::BadTensor {
            name: name.to_string(),
            msg: format!("element {i} is {} (not finite)", v[i]),
        });
    }
    Ok(v)
}

/// A `{cols, rows}` matrix as bf16 `[rows][cols]`: BF16 bits are copied, other float and
/// quantized types (F32, F16, Q8_0, Q6_K) are dequantized and rounded to bf16 (nearest even).
pub fn bf16_matrix(f: &GgufFile, name: &str, rows: usize, cols: usize) -> Result<Bf16Matrix> {
    let t = f.require(name)?;
    check_dims(f, t, &[cols, rows])?;
    let data: Vec<u16> = match t.ty {
        GgmlType::BF16 => f
            .data(t)
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect(),
        GgmlType::F32 | GgmlType::F16 | GgmlType::Q8_0 | GgmlType::Q6_K => f
            .to_f32(t)?
            .into_iter()
            .map(|x| half::bf16::from_f32(x).to_bits())
            .collect(),
        other => {
            return Err(Error::Dtype {
                name: name.to_string(),
                expected: "F32, F16, BF16, Q8_0 or Q6_K".into(),
                found: other.to_string(),
            });
        }
    };
    Ok(Bf16Matrix::from_vec(rows, cols, data))
}

/// One projection's ternary codes and effective scale (in-tensor scale × `.scale` tensor).
pub fn projection(
    f: &GgufFile,
    layer: usize,
    proj: &str,
    rows: usize,
    cols: usize,
) -> Result<(Vec<u8>, f32)> {
    let name = format!("blk.{layer}.{proj}.weight");
    let t = f.require(&name)?;
    check_dims(f, t, &[cols, rows])?;
    let (codes, mut scale) = f.ternary_codes(t)?;
    let sname = format!("blk.{layer}.{proj}.scale");
    if let Some(st) = f.tensor(&sname) {
        if st.n_elements() != 1 || st.dims.len() > 1 {
            return Err(Error::Shape {
                name: sname,
                expected: vec![1],
                found: st.dims.iter().map(|&d| d as usize).collect(),
            });
        }
        let s = f.to_f32(st)?[0];
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::BadTensor {
                name: sname,
                msg: format!("scale is {s}; it must be a finite positive number"),
            });
        }
        scale *= s;
    }
    Ok((codes, scale))
}

/// Codes (row-major `[rows][cols]`, `c = t + 1`) into the checkpoint's packed bytes
/// (FORMAT.md §2.1: output row o = j·R + r in bits 2j+1:2j of byte row r).
fn codes_to_hf_packed(codes: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let r4 = rows / 4;
    let mut out = vec![0u8; r4 * cols];
    for j in 0..4 {
        for r in 0..r4 {
            let src = &codes[(j * r4 + r) * cols..(j * r4 + r + 1) * cols];
            for (o, &c) in out[r * cols..(r + 1) * cols].iter_mut().zip(src) {
                *o |= c << (2 * j);
            }
        }
    }
    out
}

/// What the GGUF loader needs beyond [`LoadOptions`].
#[derive(Clone, Debug, Default)]
pub struct GgufOptions {
    /// The byte order of I2_S tensors (the file cannot say; FORMAT.md §8.3).
    pub i2s_order: i2s::Order,
    /// A progress bar over the projections while they are decoded (stderr, terminals only).
    pub progress: bool,
}

/// Load a BitNet b1.58 model from a GGUF file (see the module docs for the mapping), I2_S in
/// the default x86 order.
pub fn load_model(path: &Path, opts: &LoadOptions) -> Result<Model> {
    load_model_with(path, opts, &GgufOptions::default())
}

/// [`load_model`] with GGUF-specific options.
pub fn load_model_with(path: &Path, opts: &LoadOptions, gopts: &GgufOptions) -> Result<Model> {
    let t0 = Instant::now();
    let mut f = GgufFile::open(path)?;
    f.set_i2s_order(gopts.i2s_order);
    build_model(&f, opts, gopts.progress, t0)
}

/// Build the model from a parsed file (the fuzz targets call this on in-memory files).
pub fn build_model(f: &GgufFile, opts: &LoadOptions, progress: bool, t0: Instant) -> Result<Model> {
    let config = config(f)?;
    let c = &config;
    // Each layer needs eleven tensors: a block count the file cannot hold is an error here,
    // before anything is sized by it.
    if c.num_layers > f.tensors().len() / 11 {
        return Err(cfg_err(
            f,
            format!(
                "block_count {} needs {} layer tensors, but the file has {} tensors in all",
                c.num_layers,
                c.num_layers.saturating_mul(11),
                f.tensors().len()
            ),
        ));
    }
    let (h, inter, q, kv) = (c.hidden_size, c.intermediate_size, c.q_dim(), c.kv_dim());
    let embed = bf16_matrix(f, "token_embd.weight", c.vocab_size, h)?;
    let lm_head = if c.tie_word_embeddings {
        None
    } else {
        Some(bf16_matrix(f, "output.weight", c.vocab_size, h)?)
    };
    let norm = floats(f, "output_norm.weight", h)?;
    let mut norms = Vec::with_capacity(c.num_layers);
    let mut jobs = Vec::with_capacity(7 * c.num_layers);
    for l in 0..c.num_layers {
        let p = format!("blk.{l}");
        norms.push([
            floats(f, &format!("{p}.attn_norm.weight"), h)?,
            floats(f, &format!("{p}.ffn_norm.weight"), h)?,
            floats(f, &format!("{p}.attn_sub_norm.weight"), q)?,
            floats(f, &format!("{p}.ffn_sub_norm.weight"), inter)?,
        ]);
        for (proj, rows, cols) in [
            ("attn_q", q, h),
            ("attn_k", kv, h),
            ("attn_v", kv, h),
            ("attn_output", h, q),
            ("ffn_gate", inter, h),
            ("ffn_up", inter, h),
            ("ffn_down", h, inter),
        ] {
            // Check presence up front so a missing tensor is reported before any decoding.
            f.require(&format!("{p}.{proj}.weight"))?;
            jobs.push((l, proj, rows, cols));
        }
    }
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("thread pool: {e}")))?;
    // Decode straight to the checkpoint's packed bytes (2 bits a weight) when the rows allow,
    // so the whole model never sits in memory at one byte a weight.
    let bar = crate::progress::bar(progress, jobs.len() as u64, "decoding", "projections");
    let projections: Vec<ProjectionData> = pool.install(|| {
        jobs.par_iter()
            .map(|&(l, proj, rows, cols)| {
                let _tick = Tick(&bar);
                let (codes, scale) = projection(f, l, proj, rows, cols)?;
                let source = if rows.is_multiple_of(4) {
                    TernarySource::HfPacked(codes_to_hf_packed(&codes, rows, cols))
                } else {
                    let data = codes.into_iter().map(|c| c as i8 - 1).collect();
                    TernarySource::Dense(crate::ternary::Ternary::new(rows, cols, data)?)
                };
                Ok(ProjectionData {
                    name: format!("blk.{l}.{proj}"),
                    rows,
                    cols,
                    source,
                    scale: Scale::Multiply(scale),
                })
            })
            .collect::<Result<Vec<_>>>()
    })?;
    drop(pool);
    bar.finish_and_clear();
    let bytes = f.file_len();
    Model::from_parts(
        config,
        embed,
        lm_head,
        norm,
        norms,
        projections,
        opts,
        bytes,
        t0.elapsed(),
    )
}

/// Advances a progress bar when dropped (so an early `?` return still counts the step).
struct Tick<'a>(&'a indicatif::ProgressBar);

impl Drop for Tick<'_> {
    fn drop(&mut self) {
        self.0.inc(1);
    }
}
