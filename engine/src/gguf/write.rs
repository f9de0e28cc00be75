//! Writing GGUF: a generic streaming writer ([`write_gguf`]) and the model exporter
//! ([`export`]) behind `rotor export --format gguf`.
//!
//! The writer lays tensors out the way current llama.cpp insists on (`gguf_init_from_reader`
//! in ggml-org/llama.cpp `ggml/src/gguf.cpp` rejects a file whose tensor i does not start at
//! `Σ_{j<i} PAD(nbytes_j, alignment)`): densely, in tensor-info order, each zero-padded to the
//! alignment, with the data section itself aligned.
//!
//! The exporter writes llama.cpp's `bitnet` architecture (FORMAT.md §8):
//!
//! | key                                               | value                                   |
//! |---------------------------------------------------|-----------------------------------------|
//! | `general.architecture`                            | `"bitnet"`                              |
//! | `general.name`                                    | the model directory's name              |
//! | `general.file_type`                               | 37 TQ2_0, 36 TQ1_0 (llama.h `LLAMA_FTYPE_MOSTLY_*`), 40 I2_S (bitnet.cpp's fork) |
//! | `general.quantization_version`                    | 2                                       |
//! | `general.alignment`                               | 32                                      |
//! | `bitnet.vocab_size` / `.context_length` / `.embedding_length` / `.block_count` / `.feed_forward_length` | u32 |
//! | `bitnet.attention.head_count` / `.head_count_kv`  | u32                                     |
//! | `bitnet.attention.key_length` / `.value_length`   | u32, only when head_dim ≠ hidden/heads  |
//! | `bitnet.attention.layer_norm_rms_epsilon`         | f32                                     |
//! | `bitnet.rope.freq_base`                           | f32 (llama.cpp would assume 10000)      |
//! | `bitnet.rope.dimension_count`                     | u32 = head_dim                          |
//! | `tokenizer.ggml.model` / `.pre`                   | `"gpt2"` / `"llama-bpe"`                |
//! | `tokenizer.ggml.tokens` / `.token_type` / `.merges` | from `tokenizer.json` (special added tokens: type 3, other added: 4, normal: 1, ids the tokenizer lacks: `[PAD{id}]`, type 5) |
//! | `tokenizer.ggml.bos_token_id` / `.eos_token_id` / `.eot_token_id` / `.add_bos_token` | u32 / u32 / u32 / true |
//! | `tokenizer.chat_template`                         | from `tokenizer_config.json`, if any    |
//!
//! Tensors: `token_embd.weight` in the head type (the tied embedding *is* the head: llama.cpp's
//! `bitnet` graph always multiplies by `tok_embd`, and rejects a file with tensors it does not
//! create, so no `output.weight` is written for a tied model), norms in F32, the seven
//! projections per layer in the chosen ternary type with the scale inside the tensor (TQ: every
//! block's `d` = f16(weight_scale); I2_S: the f32 after the packed data, in the byte order of
//! [`ExportOptions::i2s_order`], x86 unless asked otherwise). No `.scale` tensors.
//!
//! When exporting from a GGUF file, its `tokenizer.*` metadata is copied as it is.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::quants::{self, i2s, q6_k, q8_0, tq1_0, tq2_0};
use super::read::{DEFAULT_ALIGNMENT, GgufFile, MAGIC};
use super::types::{GgmlType, Value, ValueType};
use crate::error::{Error, Result};
use crate::model::{LoadOptions, Model, Scale};
use crate::ternary::LayoutKind;

/// One tensor to write: name, ggml dims (ne0 first) and type.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

impl TensorSpec {
    pub fn nbytes(&self) -> Result<usize> {
        self.ty
            .nbytes(&self.dims)
            .map(|n| n as usize)
            .map_err(|m| Error::BadTensor {
                name: self.name.clone(),
                msg: m,
            })
    }
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    w.extend_from_slice(&(s.len() as u64).to_le_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_value(w: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => w.push(*x),
        Value::I8(x) => w.push(*x as u8),
        Value::U16(x) => w.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => w.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => w.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => w.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => w.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => w.push(*x as u8),
        Value::String(s) => put_str(w, s),
        Value::Array(t, items) => {
            w.extend_from_slice(&(*t as u32).to_le_bytes());
            w.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                put_value(w, it);
            }
        }
        Value::U64(x) => w.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => w.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => w.extend_from_slice(&x.to_le_bytes()),
    }
}

/// The header (magic through tensor infos, padded to `alignment`) of a GGUF v3 file.
/// Returns the bytes and each tensor's size.
pub fn header(
    kvs: &[(String, Value)],
    tensors: &[TensorSpec],
    alignment: usize,
) -> Result<(Vec<u8>, Vec<usize>)> {
    assert!(alignment.is_power_of_two());
    let mut h = Vec::new();
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        if let Value::Array(t, items) = v
            && let Some(bad) = items.iter().find(|i| i.value_type() != *t)
        {
            return Err(Error::Invalid(format!(
                "metadata `{k}`: array of {t:?} holds a {:?}",
                bad.value_type()
            )));
        }
        put_str(&mut h, k);
        h.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
        put_value(&mut h, v);
    }
    let mut sizes = Vec::with_capacity(tensors.len());
    let mut off = 0usize;
    for t in tensors {
        if t.name.len() >= 64 {
            return Err(Error::BadTensor {
                name: t.name.clone(),
                msg: "tensor names must be shorter than 64 bytes (ggml's GGML_MAX_NAME)".into(),
            });
        }
        let n = t.nbytes()?;
        put_str(&mut h, &t.name);
        h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&t.ty.0.to_le_bytes());
        h.extend_from_slice(&(off as u64).to_le_bytes());
        off += n.div_ceil(alignment) * alignment;
        sizes.push(n);
    }
    h.resize(h.len().div_ceil(alignment) * alignment, 0);
    Ok((h, sizes))
}

/// Stream a GGUF v3 file: header, then `data(i)` for each tensor in order (checked against the
/// size its type and dims imply), each zero-padded to `alignment`. Returns the bytes written.
pub fn write_gguf<W: Write>(
    w: &mut W,
    path: &Path,
    kvs: &[(String, Value)],
    tensors: &[TensorSpec],
    alignment: usize,
    mut data: impl FnMut(usize) -> Result<Vec<u8>>,
) -> Result<u64> {
    let io = |e| Error::io(path, e);
    let (h, sizes) = header(kvs, tensors, alignment)?;
    w.write_all(&h).map_err(io)?;
    let mut total = h.len() as u64;
    let zeros = vec![0u8; alignment];
    for (i, t) in tensors.iter().enumerate() {
        let bytes = data(i)?;
        if bytes.len() != sizes[i] {
            return Err(Error::BadTensor {
                name: t.name.clone(),
                msg: format!(
                    "{} bytes of data for {} {:?}, which takes {}",
                    bytes.len(),
                    t.ty,
                    t.dims,
                    sizes[i]
                ),
            });
        }
        w.write_all(&bytes).map_err(io)?;
        let pad = bytes.len().div_ceil(alignment) * alignment - bytes.len();
        w.write_all(&zeros[..pad]).map_err(io)?;
        total += (bytes.len() + pad) as u64;
    }
    Ok(total)
}

/// The ternary weight type of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TernaryType {
    Tq2_0,
    Tq1_0,
    I2S,
}

impl TernaryType {
    pub fn parse(s: &str) -> Result<TernaryType> {
        match s.to_ascii_lowercase().as_str() {
            "tq2_0" => Ok(TernaryType::Tq2_0),
            "tq1_0" => Ok(TernaryType::Tq1_0),
            "i2_s" => Ok(TernaryType::I2S),
            other => Err(Error::Invalid(format!(
                "--type `{other}`: expected tq2_0, tq1_0 or i2_s"
            ))),
        }
    }
    pub fn ggml(self) -> GgmlType {
        match self {
            TernaryType::Tq2_0 => GgmlType::TQ2_0,
            TernaryType::Tq1_0 => GgmlType::TQ1_0,
            TernaryType::I2S => GgmlType::I2_S,
        }
    }
    /// `general.file_type` (llama.h `LLAMA_FTYPE_MOSTLY_TQ1_0 = 36`, `TQ2_0 = 37`; bitnet.cpp's
    /// converter writes 40 for I2_S, microsoft/BitNet `utils/convert-hf-to-gguf-bitnet.py` l.159).
    pub fn file_type(self) -> u32 {
        match self {
            TernaryType::Tq2_0 => 37,
            TernaryType::Tq1_0 => 36,
            TernaryType::I2S => 40,
        }
    }
    /// Weights per block along ne0 that every projection's input size must be a multiple of
    /// (for I2_S: what bitnet.cpp's kernels for that byte order walk a row in).
    pub fn row_multiple(self, order: i2s::Order) -> usize {
        match (self, order) {
            (TernaryType::Tq2_0 | TernaryType::Tq1_0, _) => 256,
            (TernaryType::I2S, i2s::Order::Arm) => i2s::ARM_BLOCK,
            (TernaryType::I2S, _) => i2s::BLOCK,
        }
    }
}

/// The type of the embedding / head in an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadType {
    F16,
    Bf16,
    Q8_0,
    Q6K,
}

impl HeadType {
    pub fn parse(s: &str) -> Result<HeadType> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(HeadType::F16),
            "bf16" => Ok(HeadType::Bf16),
            "q8_0" => Ok(HeadType::Q8_0),
            "q6_k" => Ok(HeadType::Q6K),
            other => Err(Error::Invalid(format!(
                "--head `{other}`: expected f16, bf16, q8_0 or q6_k"
            ))),
        }
    }
    pub fn ggml(self) -> GgmlType {
        match self {
            HeadType::F16 => GgmlType::F16,
            HeadType::Bf16 => GgmlType::BF16,
            HeadType::Q8_0 => GgmlType::Q8_0,
            HeadType::Q6K => GgmlType::Q6_K,
        }
    }
}

/// Options of [`export`].
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub weights: TernaryType,
    pub head: HeadType,
    /// Worker threads for loading and encoding (`None`: all cores).
    pub threads: Option<usize>,
    /// Byte order of I2_S projections (FORMAT.md §8.3); ignored for the TQ types. Also the order
    /// I2_S tensors of a GGUF *source* are read in.
    pub i2s_order: i2s::Order,
    /// A progress bar over the tensors written (stderr, terminals only).
    pub progress: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            weights: TernaryType::Tq2_0,
            head: HeadType::F16,
            threads: None,
            i2s_order: i2s::Order::X86,
            progress: false,
        }
    }
}

/// What [`export`] wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    pub path: PathBuf,
    pub tensors: usize,
    pub bytes: u64,
    /// Projections whose scale changed when stored as f16 (TQ types only).
    pub scales_rounded: usize,
    /// Largest relative change of a scale stored as f16.
    pub max_scale_rel_err: f32,
    /// Things the user should know (e.g. an untied head llama.cpp will not load).
    pub notes: Vec<String>,
    pub time: Duration,
}

fn kv(k: &str, v: Value) -> (String, Value) {
    (k.to_string(), v)
}

/// Tokenizer metadata from `dir/tokenizer.json` (+ `tokenizer_config.json` for the chat
/// template), for a model of `vocab` embedding rows. `None` when there is no tokenizer.json.
pub fn tokenizer_metadata(
    dir: &Path,
    vocab: usize,
    bos: Option<u32>,
    eos: &[u32],
) -> Result<Option<Vec<(String, Value)>>> {
    let path = dir.join("tokenizer.json");
    if !path.exists() {
        return Ok(None);
    }
    let bad = |msg: String| Error::Tokenizer {
        path: path.clone(),
        msg,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let j: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let model = &j["model"];
    if model["type"].as_str().is_some_and(|t| t != "BPE") {
        return Err(bad(format!(
            "model type {} is not BPE: only byte-level BPE (Llama-3 style) tokenizers export as gpt2",
            model["type"]
        )));
    }
    let mut tokens: Vec<Option<String>> = vec![None; vocab];
    let mut types = vec![1i32; vocab];
    let mut place = |id: u64, s: &str, ty: Option<i32>| -> Result<()> {
        let i = id as usize;
        if i >= vocab {
            return Err(bad(format!(
                "token {s:?} has id {id}, outside the model's vocabulary of {vocab} (embedding rows)"
            )));
        }
        tokens[i] = Some(s.to_string());
        if let Some(t) = ty {
            types[i] = t;
        }
        Ok(())
    };
    let v = model["vocab"]
        .as_object()
        .ok_or_else(|| bad("model.vocab is not an object".into()))?;
    for (s, id) in v {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(format!("vocab entry {s:?} has a non-integer id")))?;
        place(id, s, None)?;
    }
    if let Some(added) = j["added_tokens"].as_array() {
        for a in added {
            let (Some(id), Some(s)) = (a["id"].as_u64(), a["content"].as_str()) else {
                return Err(bad("an added_tokens entry lacks id or content".into()));
            };
            // llama.cpp token types: 3 = CONTROL (special), 4 = USER_DEFINED.
            let ty = if a["special"].as_bool().unwrap_or(false) {
                3
            } else {
                4
            };
            place(id, s, Some(ty))?;
        }
    }
    let mut toks = Vec::with_capacity(vocab);
    for (i, t) in tokens.into_iter().enumerate() {
        match t {
            Some(s) => toks.push(Value::String(s)),
            None => {
                // As llama.cpp's converter fills gaps: a unique placeholder of type UNUSED (5).
                toks.push(Value::String(format!("[PAD{i}]")));
                types[i] = 5;
            }
        }
    }
    let merges = model["merges"]
        .as_array()
        .ok_or_else(|| bad("model.merges is not an array".into()))?
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Ok(Value::String(s.clone())),
            // tokenizers ≥ 0.20 may write a merge as a pair.
            serde_json::Value::Array(p) if p.len() == 2 => match (p[0].as_str(), p[1].as_str()) {
                (Some(a), Some(b)) => Ok(Value::String(format!("{a} {b}"))),
                _ => Err(bad(format!("merge {m} is not a pair of strings"))),
            },
            other => Err(bad(format!("merge {other} is neither \"a b\" nor [a, b]"))),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = vec![
        kv("tokenizer.ggml.model", Value::String("gpt2".into())),
        kv("tokenizer.ggml.pre", Value::String("llama-bpe".into())),
        kv(
            "tokenizer.ggml.tokens",
            Value::Array(ValueType::String, toks),
        ),
        kv(
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
        ),
        kv(
            "tokenizer.ggml.merges",
            Value::Array(ValueType::String, merges),
        ),
    ];
    let find = |s: &str| -> Option<u32> {
        j["added_tokens"].as_array().and_then(|a| {
            a.iter()
                .find(|t| t["content"].as_str() == Some(s))
                .and_then(|t| t["id"].as_u64())
                .map(|x| x as u32)
        })
    };
    if let Some(b) = bos.or_else(|| find("<|begin_of_text|>")) {
        out.push(kv("tokenizer.ggml.bos_token_id", Value::U32(b)));
        out.push(kv("tokenizer.ggml.add_bos_token", Value::Bool(true)));
    }
    if let Some(e) = eos.first().copied().or_else(|| find("<|end_of_text|>")) {
        out.push(kv("tokenizer.ggml.eos_token_id", Value::U32(e)));
    }
    if let Some(e) = find("<|eot_id|>") {
        out.push(kv("tokenizer.ggml.eot_token_id", Value::U32(e)));
    }
    let tc = dir.join("tokenizer_config.json");
    if let Ok(text) = std::fs::read_to_string(&tc)
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(t) = v["chat_template"].as_str()
    {
        out.push(kv("tokenizer.chat_template", Value::String(t.to_string())));
    }
    Ok(Some(out))
}

/// Encode a head/embedding matrix (bf16 bits, `[rows][cols]`) in `ty`.
pub fn encode_head(data: &[u16], cols: usize, ty: HeadType) -> Vec<u8> {
    match ty {
        HeadType::Bf16 => data.iter().flat_map(|b| b.to_le_bytes()).collect(),
        HeadType::F16 => data
            .par_iter()
            .flat_map_iter(|&b| quants::f16_bits(quants::bf16_to_f32(b)).to_le_bytes())
            .collect(),
        HeadType::Q8_0 | HeadType::Q6K => data
            .par_chunks(cols)
            .flat_map_iter(|row| {
                let x: Vec<f32> = row.iter().map(|&b| quants::bf16_to_f32(b)).collect();
                let mut out = Vec::new();
                if ty == HeadType::Q8_0 {
                    q8_0::quantize(&x, &mut out);
                } else {
                    q6_k::quantize(&x, &mut out);
                }
                out
            })
            .collect(),
    }
}

/// Encode one projection's codes (`[rows][cols]`, `c = t + 1`) with its scale (I2_S in the
/// default x86 order).
pub fn encode_ternary(codes: &[u8], cols: usize, ty: TernaryType, scale: f32) -> Vec<u8> {
    encode_ternary_ordered(codes, cols, ty, scale, i2s::Order::X86)
}

/// [`encode_ternary`] with the I2_S byte order `order` (ignored for the TQ types).
pub fn encode_ternary_ordered(
    codes: &[u8],
    cols: usize,
    ty: TernaryType,
    scale: f32,
    order: i2s::Order,
) -> Vec<u8> {
    match ty {
        TernaryType::I2S => {
            let mut out = vec![0u8; i2s::nbytes(codes.len())];
            let rows = codes.len().checked_div(cols).unwrap_or(0);
            i2s::encode_ordered(codes, rows, cols, scale, order, &mut out);
            out
        }
        TernaryType::Tq2_0 | TernaryType::Tq1_0 => {
            assert!(cols.is_multiple_of(256) && codes.len().is_multiple_of(256));
            let d = quants::f16_bits(scale);
            let bb = if ty == TernaryType::Tq2_0 {
                tq2_0::BYTES
            } else {
                tq1_0::BYTES
            };
            let mut out = vec![0u8; codes.len() / 256 * bb];
            out.par_chunks_mut(bb)
                .zip(codes.par_chunks(256))
                .for_each(|(o, c)| {
                    if ty == TernaryType::Tq2_0 {
                        tq2_0::encode_block(c, d, o)
                    } else {
                        tq1_0::encode_block(c, d, o)
                    }
                });
            out
        }
    }
}

/// What one tensor of the export is made from.
enum Source {
    Embed,
    LmHead,
    Norm,
    LayerNorm(usize, usize),
    Proj(usize, usize),
}

/// Export the model at `model` (a checkpoint directory or a `.gguf` file) to a GGUF file at
/// `out`. The file is written next to `out` under a temporary name and renamed when complete.
pub fn export(model: &Path, out: &Path, opts: &ExportOptions) -> Result<ExportReport> {
    let t0 = Instant::now();
    let src_gguf = super::gguf_path(model);
    // Load into a layout that keeps 2 bits a weight and converts back to dense losslessly.
    let layout = match &src_gguf {
        Some(p) => {
            let f = GgufFile::open(p)?;
            let c = super::model::config(&f)?;
            pick_layout(&c)
        }
        None => pick_layout(&crate::model::Config::from_dir(model)?),
    };
    let load_opts = LoadOptions {
        layout,
        kernel: None,
        threads: opts.threads,
        checksums: false,
        ..Default::default()
    };
    let m = match &src_gguf {
        Some(p) => super::load_model_with(
            p,
            &load_opts,
            &super::GgufOptions {
                i2s_order: opts.i2s_order,
                progress: opts.progress,
            },
        )?,
        None => {
            let spin = crate::progress::spinner(
                opts.progress,
                format!("loading {} into {}", model.display(), layout.name()),
            );
            let m = Model::load(model, &load_opts);
            spin.finish_and_clear();
            m?
        }
    };
    let c = &m.config;
    let (h, inter, q, kvd) = (c.hidden_size, c.intermediate_size, c.q_dim(), c.kv_dim());
    let mut notes = vec![];

    // Shapes the chosen types can hold, checked before anything is written.
    let need = opts.weights.row_multiple(opts.i2s_order);
    for (what, n) in [
        ("hidden_size", h),
        ("intermediate_size", inter),
        ("num_heads × head_dim", q),
    ] {
        if !n.is_multiple_of(need) {
            let ty = opts.weights.ggml();
            return Err(Error::Invalid(format!(
                "cannot export as {ty}: {what} = {n} is an input size (ne0) of some projection, and {ty} packs blocks of {need} weights along ne0, so every projection's input size must be a multiple of {need} (this model: hidden {h}, intermediate {inter}, q dim {q})"
            )));
        }
    }
    if opts.weights == TernaryType::I2S {
        for (what, rows, cols) in [
            ("q projection", q, h),
            ("k/v projection", kvd, h),
            ("o projection", h, q),
            ("gate/up projection", inter, h),
            ("down projection", h, inter),
        ] {
            if let Err(m) = opts.i2s_order.check(rows, cols) {
                return Err(Error::Invalid(format!(
                    "cannot export as I2_S in the {} order: the {what} ({rows} × {cols}): {m}",
                    opts.i2s_order.name()
                )));
            }
        }
    }
    if let Some(b) = opts.head.ggml().block_size()
        && !h.is_multiple_of(b as usize)
    {
        return Err(Error::Invalid(format!(
            "cannot export the head as {}: hidden_size {h} is not a multiple of its {b}-weight block",
            opts.head.ggml()
        )));
    }

    // Metadata.
    let arch = "bitnet";
    let k = |s: &str| format!("{arch}.{s}");
    let name = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bitnet".into());
    let u = |x: usize| Value::U32(x as u32);
    let mut kvs = vec![
        kv("general.architecture", Value::String(arch.into())),
        kv("general.name", Value::String(name)),
        kv("general.file_type", Value::U32(opts.weights.file_type())),
        kv("general.quantization_version", Value::U32(2)),
        kv("general.alignment", Value::U32(DEFAULT_ALIGNMENT as u32)),
        kv(&k("vocab_size"), u(c.vocab_size)),
        kv(&k("context_length"), u(c.max_position_embeddings)),
        kv(&k("embedding_length"), u(h)),
        kv(&k("block_count"), u(c.num_layers)),
        kv(&k("feed_forward_length"), u(inter)),
        kv(&k("attention.head_count"), u(c.num_heads)),
        kv(&k("attention.head_count_kv"), u(c.num_kv_heads)),
        kv(
            &k("attention.layer_norm_rms_epsilon"),
            Value::F32(c.rms_norm_eps),
        ),
        kv(&k("rope.freq_base"), Value::F32(c.rope_theta)),
        kv(&k("rope.dimension_count"), u(c.head_dim)),
    ];
    if c.head_dim * c.num_heads != h {
        kvs.push(kv(&k("attention.key_length"), u(c.head_dim)));
        kvs.push(kv(&k("attention.value_length"), u(c.head_dim)));
        notes.push(format!(
            "num_heads × head_dim = {q} differs from hidden_size {h}: llama.cpp's bitnet graph assumes they are equal"
        ));
    }
    let tok = match &src_gguf {
        Some(p) => {
            let f = GgufFile::open(p)?;
            let t: Vec<_> = f
                .metadata()
                .filter(|(key, _)| key.starts_with("tokenizer."))
                .map(|(key, v)| (key.to_string(), v.clone()))
                .collect();
            (!t.is_empty()).then_some(t)
        }
        None => tokenizer_metadata(model, c.vocab_size, c.bos_token_id, &c.eos_token_ids)?,
    };
    match tok {
        Some(t) => kvs.extend(t),
        None => notes.push(
            "no tokenizer.json: the file has no tokenizer metadata (llama.cpp loads it without a vocabulary)".into(),
        ),
    }

    // Tensors.
    let mut specs = vec![];
    let mut sources = vec![];
    let mut add = |name: String, dims: Vec<usize>, ty: GgmlType, s: Source| {
        specs.push(TensorSpec {
            name,
            dims: dims.into_iter().map(|d| d as u64).collect(),
            ty,
        });
        sources.push(s);
    };
    add(
        "token_embd.weight".into(),
        vec![h, c.vocab_size],
        opts.head.ggml(),
        Source::Embed,
    );
    add(
        "output_norm.weight".into(),
        vec![h],
        GgmlType::F32,
        Source::Norm,
    );
    if m.lm_head.is_some() {
        add(
            "output.weight".into(),
            vec![h, c.vocab_size],
            opts.head.ggml(),
            Source::LmHead,
        );
        notes.push(
            "the model has an untied lm_head, written as output.weight: rotor reads it, but llama.cpp's bitnet architecture has no output tensor and will refuse the file".into(),
        );
    }
    let wt = opts.weights.ggml();
    let names = super::model::PROJECTIONS;
    let dims = [
        (h, q),
        (h, kvd),
        (h, kvd),
        (q, h),
        (h, inter),
        (h, inter),
        (inter, h),
    ];
    for l in 0..c.num_layers {
        let p = format!("blk.{l}");
        add(
            format!("{p}.attn_norm.weight"),
            vec![h],
            GgmlType::F32,
            Source::LayerNorm(l, 0),
        );
        for (i, proj) in names.iter().enumerate().take(3) {
            add(
                format!("{p}.{proj}.weight"),
                vec![dims[i].0, dims[i].1],
                wt,
                Source::Proj(l, i),
            );
        }
        add(
            format!("{p}.attn_sub_norm.weight"),
            vec![q],
            GgmlType::F32,
            Source::LayerNorm(l, 2),
        );
        add(
            format!("{p}.attn_output.weight"),
            vec![q, h],
            wt,
            Source::Proj(l, 3),
        );
        add(
            format!("{p}.ffn_norm.weight"),
            vec![h],
            GgmlType::F32,
            Source::LayerNorm(l, 1),
        );
        add(
            format!("{p}.ffn_gate.weight"),
            vec![h, inter],
            wt,
            Source::Proj(l, 4),
        );
        add(
            format!("{p}.ffn_up.weight"),
            vec![h, inter],
            wt,
            Source::Proj(l, 5),
        );
        add(
            format!("{p}.ffn_sub_norm.weight"),
            vec![inter],
            GgmlType::F32,
            Source::LayerNorm(l, 3),
        );
        add(
            format!("{p}.ffn_down.weight"),
            vec![inter, h],
            wt,
            Source::Proj(l, 6),
        );
    }

    // Scales: the multiplier each projection applies, and what TQ's f16 `d` makes of it.
    let mut scales_rounded = 0;
    let mut max_rel = 0f32;
    for (l, layer) in m.layers.iter().enumerate() {
        for (i, lin) in layer.linears().iter().enumerate() {
            let s = match lin.scale {
                Scale::Multiply(w) => w,
                Scale::Divide(w) => 1.0 / w,
            };
            let name = format!("blk.{l}.{}.weight", names[i]);
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::BadTensor {
                    name,
                    msg: format!("scale {s} is not a finite positive number"),
                });
            }
            if wt != GgmlType::I2_S {
                let d = quants::f16_to_f32(quants::f16_bits(s));
                if !(d.is_normal() && d > 0.0) {
                    return Err(Error::BadTensor {
                        name,
                        msg: format!(
                            "scale {s} cannot be stored as a normal f16 TQ block scale (stored as {d})"
                        ),
                    });
                }
                if d != s {
                    scales_rounded += 1;
                    max_rel = max_rel.max(((d - s) / s).abs());
                }
            }
        }
    }

    // Write to a temporary file, then rename.
    let tmp = out.with_extension("gguf.partial");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = BufWriter::with_capacity(1 << 22, file);
    let ty = opts.weights;
    let head_ty = opts.head;
    let norms_of = |l: usize, j: usize| -> &Vec<f32> {
        let layer = &m.layers[l];
        match j {
            0 => &layer.input_norm,
            1 => &layer.post_attn_norm,
            2 => &layer.attn_sub_norm,
            _ => &layer.ffn_sub_norm,
        }
    };
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let order = opts.i2s_order;
    let bar = crate::progress::bar(opts.progress, specs.len() as u64, "export", "tensors");
    let result = m.pool.install(|| {
        write_gguf(&mut w, out, &kvs, &specs, DEFAULT_ALIGNMENT, |i| {
            bar.set_position(i as u64);
            Ok(match sources[i] {
                Source::Embed => encode_head(m.embed.data(), h, head_ty),
                Source::LmHead => {
                    encode_head(m.lm_head.as_ref().expect("lm_head").data(), h, head_ty)
                }
                Source::Norm => f32_bytes(&m.norm),
                Source::LayerNorm(l, j) => f32_bytes(norms_of(l, j)),
                Source::Proj(l, p) => {
                    let lin = m.layers[l].linears()[p];
                    let s = match lin.scale {
                        Scale::Multiply(w) => w,
                        Scale::Divide(w) => 1.0 / w,
                    };
                    let t = lin.weight.to_dense();
                    let codes: Vec<u8> = t.data().iter().map(|&v| (v + 1) as u8).collect();
                    encode_ternary_ordered(&codes, t.cols(), ty, s, order)
                }
            })
        })
        .and_then(|n| w.flush().map(|_| n).map_err(|e| Error::io(&tmp, e)))
    });
    bar.finish_and_clear();
    let bytes = match result {
        Ok(n) => n,
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    drop(w);
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(ExportReport {
        path: out.to_path_buf(),
        tensors: specs.len(),
        bytes,
        scales_rounded,
        max_scale_rel_err: max_rel,
        notes,
        time: t0.elapsed(),
    })
}

/// `hf_packed` (2 bits a weight, exact to convert back) when every projection's row count is a
/// multiple of 4, else `dense`.
fn pick_layout(c: &crate::model::Config) -> LayoutKind {
    if [c.q_dim(), c.kv_dim(), c.hidden_size, c.intermediate_size]
        .iter()
        .all(|n| n.is_multiple_of(4))
    {
        LayoutKind::HfPacked
    } else {
        LayoutKind::Dense
    }
}
