//! `config.json` of a BitNet checkpoint: a serde mirror of the file, then a validated [`Config`].
//!
//! Validation rejects what the forward pass does not implement (another activation, attention
//! biases, scaled RoPE, an in-layer RMSNorm) with the offending key named, instead of running
//! a different model silently.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// `config.json` as written by transformers (only the keys the engine reads).
#[derive(Debug, Clone, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub hidden_act: String,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub bos_token_id: Option<Value>,
    #[serde(default)]
    pub eos_token_id: Option<Value>,
    #[serde(default)]
    pub quantization_config: Option<RawQuantConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawQuantConfig {
    pub quant_method: String,
    #[serde(default)]
    pub linear_class: Option<String>,
    #[serde(default)]
    pub quantization_mode: Option<String>,
    #[serde(default)]
    pub use_rms_norm: Option<bool>,
}

/// How the projections are stored and what `weight_scale` means (FORMAT.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantMode {
    /// `autobitlinear` + `offline`: U8 `[out/4, in]` + BF16 `weight_scale` that **multiplies**
    /// (the released 2B-4T checkpoint).
    PackedMultiply,
    /// `bitlinear` (legacy): U8 packed weights whose `weight_scale` **divides** the output.
    PackedDivide,
    /// `autobitlinear` + `online`: bf16 master `[out, in]`, absmean-ternarized at load.
    OnlineMaster,
}

/// A validated model configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub quant: QuantMode,
}

/// Special token ids: a number, a list of numbers, or absent/null. Anything else — and an id
/// that is negative, fractional or does not fit a `u32` — is an error naming the key.
pub fn token_ids(key: &str, v: Option<&Value>) -> std::result::Result<Vec<u32>, String> {
    let one = |x: &Value| -> std::result::Result<u32, String> {
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                format!("{key} holds {x}, which is not a token id (an integer in 0..2^32)")
            })
    };
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(x) => one(x).map(|id| vec![id]),
    }
}

impl Config {
    /// Read and validate `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Config> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Config::from_json(&text, &path)
    }

    pub fn from_json(text: &str, path: &Path) -> Result<Config> {
        let bad = |msg: String| Error::Config {
            path: path.to_path_buf(),
            msg,
        };
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if let Some(mt) = &raw.model_type
            && mt != "bitnet"
        {
            return Err(bad(format!(
                "model_type is `{mt}`, expected `bitnet` (a BitNet b1.58 checkpoint)"
            )));
        }
        if raw.hidden_act != "relu2" {
            return Err(bad(format!(
                "hidden_act `{}` is not supported (BitNet b1.58 uses `relu2`)",
                raw.hidden_act
            )));
        }
        if raw.attention_bias == Some(true) {
            return Err(bad(
                "attention_bias = true is not supported (BitNet has no biases)".into(),
            ));
        }
        for (k, v) in [
            ("rope_scaling", &raw.rope_scaling),
            ("rope_parameters", &raw.rope_parameters),
        ] {
            if let Some(Value::Object(o)) = v
                && let Some(t) = o.get("rope_type").or_else(|| o.get("type"))
                && t.as_str() != Some("default")
            {
                return Err(bad(format!(
                    "{k}.rope_type = {t} is not supported (only default RoPE)"
                )));
            }
        }
        let positive = |name: &str, v: usize| -> Result<usize> {
            if v == 0 {
                Err(bad(format!("{name} must be positive")))
            } else {
                Ok(v)
            }
        };
        let hidden = positive("hidden_size", raw.hidden_size)?;
        let heads = positive("num_attention_heads", raw.num_attention_heads)?;
        let kv = positive(
            "num_key_value_heads",
            raw.num_key_value_heads.unwrap_or(heads),
        )?;
        positive("vocab_size", raw.vocab_size)?;
        positive("num_hidden_layers", raw.num_hidden_layers)?;
        let inter = positive("intermediate_size", raw.intermediate_size)?;
        if !heads.is_multiple_of(kv) {
            return Err(bad(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}"
            )));
        }
        let head_dim = match raw.head_dim {
            Some(d) => positive("head_dim", d)?,
            None => {
                if !hidden.is_multiple_of(heads) {
                    return Err(bad(format!(
                        "hidden_size {hidden} is not divisible by num_attention_heads {heads}"
                    )));
                }
                hidden / heads
            }
        };
        if !head_dim.is_multiple_of(2) {
            return Err(bad(format!("head_dim {head_dim} must be even for RoPE")));
        }
        // Every size the engine derives from these numbers must fit in a usize: a config that
        // claims more than any file can hold is refused here, not by an overflow later.
        let derived = (|| {
            let q = heads.checked_mul(head_dim)?;
            let k = kv.checked_mul(head_dim)?;
            let per_layer = hidden
                .checked_mul(q)?
                .checked_mul(2)?
                .checked_add(hidden.checked_mul(k)?.checked_mul(2)?)?
                .checked_add(hidden.checked_mul(inter)?.checked_mul(3)?)?;
            per_layer.checked_mul(raw.num_hidden_layers)?;
            raw.vocab_size.checked_mul(hidden)?;
            Some(())
        })();
        if derived.is_none() {
            return Err(bad(format!(
                "the model sizes overflow 64-bit arithmetic (hidden_size {hidden}, intermediate_size {inter}, {} layers, {heads} heads of {head_dim}, {kv} kv heads, vocab {}): not a loadable model",
                raw.num_hidden_layers, raw.vocab_size
            )));
        }
        let theta = raw
            .rope_theta
            .or_else(|| {
                raw.rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|v| v.as_f64())
            })
            .unwrap_or(10000.0);
        // Checked as the f32 the engine computes with, so 1e300 is not "finite".
        if !((theta as f32).is_finite() && theta > 1.0) {
            return Err(bad(format!(
                "rope_theta {theta} must be a finite number > 1"
            )));
        }
        let eps32 = raw.rms_norm_eps as f32;
        if !(eps32.is_finite() && eps32 > 0.0) {
            return Err(bad(format!(
                "rms_norm_eps {} must be a positive number representable as f32",
                raw.rms_norm_eps
            )));
        }
        let quant = match &raw.quantization_config {
            None => {
                return Err(bad(
                    "no quantization_config: not a BitNet b1.58 checkpoint (expected quant_method `bitnet`)".into(),
                ));
            }
            Some(q) => {
                if q.quant_method != "bitnet" {
                    return Err(bad(format!(
                        "quantization_config.quant_method `{}` is not supported (expected `bitnet`)",
                        q.quant_method
                    )));
                }
                if q.use_rms_norm == Some(true) {
                    return Err(bad(
                        "quantization_config.use_rms_norm = true is not supported".into(),
                    ));
                }
                let class = q.linear_class.as_deref().unwrap_or("bitlinear");
                let mode = q.quantization_mode.as_deref().unwrap_or("offline");
                match (class, mode) {
                    ("autobitlinear", "offline") => QuantMode::PackedMultiply,
                    ("autobitlinear", "online") => QuantMode::OnlineMaster,
                    ("bitlinear", "offline") => QuantMode::PackedDivide,
                    (c, m) => {
                        return Err(bad(format!(
                            "quantization_config linear_class `{c}` with quantization_mode `{m}` is not supported"
                        )));
                    }
                }
            }
        };
        if matches!(quant, QuantMode::PackedMultiply | QuantMode::PackedDivide) {
            for (name, v) in [
                ("num_attention_heads × head_dim", heads * head_dim),
                ("num_key_value_heads × head_dim", kv * head_dim),
                ("hidden_size", hidden),
                ("intermediate_size", inter),
            ] {
                if !v.is_multiple_of(4) {
                    return Err(bad(format!(
                        "{name} = {v} is not divisible by 4, so it cannot be 2-bit packed"
                    )));
                }
            }
        }
        let vocab = raw.vocab_size;
        let bos = token_ids("bos_token_id", raw.bos_token_id.as_ref())
            .map_err(bad)?
            .first()
            .copied();
        let eos = token_ids("eos_token_id", raw.eos_token_id.as_ref()).map_err(bad)?;
        for id in bos.iter().chain(&eos) {
            if *id as usize >= vocab {
                return Err(bad(format!("special token id {id} >= vocab_size {vocab}")));
            }
        }
        Ok(Config {
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: inter,
            num_layers: raw.num_hidden_layers,
            num_heads: heads,
            num_kv_heads: kv,
            head_dim,
            // transformers' BitNetConfig default is 2048; the real file says 4096.
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(2048),
            rms_norm_eps: raw.rms_norm_eps as f32,
            rope_theta: theta as f32,
            // BitNetConfig defaults tie_word_embeddings to False; the real file says true.
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            bos_token_id: bos,
            eos_token_ids: eos,
            quant,
        })
    }

    /// Query heads per key/value head.
    pub fn gqa_group(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Ternary weights in all projections.
    pub fn ternary_params(&self) -> usize {
        let (h, i) = (self.hidden_size, self.intermediate_size);
        self.num_layers * (h * self.q_dim() + 2 * h * self.kv_dim() + self.q_dim() * h + 3 * h * i)
    }
}
