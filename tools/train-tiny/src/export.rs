//! Export the f32 masters in the exact packed checkpoint format (FORMAT.md §1–2), the format of
//! `microsoft/bitnet-b1.58-2B-4T` and of `rotor synth`: `config.json` with a bitnet
//! `quantization_config` {autobitlinear, offline}; `model.safetensors` with U8 `[out/4, in]`
//! projections (2-bit codes, rows blocked by quarter) and a BF16 `weight_scale [1]` =
//! bf16(mean|W|) each — produced by the engine's own `rotor::synth::ternarize_and_pack` —, BF16
//! embeddings and norm gains, no `lm_head.weight`, metadata {"format": "pt"}; plus
//! `tokenizer.json`, `tokenizer_config.json` and `generation_config.json`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use safetensors::{Dtype, tensor::TensorView};
use serde_json::json;

use crate::model::{Model, RMS_EPS, ROPE_THETA};

/// Ids of the special tokens, from the first special id (Llama-3 order).
pub const BOS_OFFSET: u32 = 0;
pub const EOS_OFFSET: u32 = 1;
pub const EOT_OFFSET: u32 = 9;

fn f32s(v: &candle_core::Var) -> Result<Vec<f32>> {
    Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?)
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect()
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Sizes in bytes of the files written.
pub fn export(
    model: &Model,
    tokenizer_json: &str,
    special_base: u32,
    dir: &Path,
) -> Result<Vec<(String, u64)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let s = &model.shape;
    let bos = special_base + BOS_OFFSET;
    let eos = special_base + EOS_OFFSET;
    let eot = special_base + EOT_OFFSET;
    write_json(
        &dir.join("config.json"),
        &json!({
            "architectures": ["BitNetForCausalLM"],
            // Left over from remote code in the real config (FORMAT.md §1); kept for fidelity.
            "auto_map": {"AutoConfig": "configuration_bitnet.BitNetConfig",
                         "AutoModelForCausalLM": "modeling_bitnet.BitNetForCausalLM"},
            "bos_token_id": bos,
            "eos_token_id": eos,
            "hidden_act": "relu2",
            "hidden_size": s.hidden,
            "initializer_range": 0.02,
            "intermediate_size": s.inter,
            "max_position_embeddings": s.max_pos,
            "model_type": "bitnet",
            "rms_norm_eps": RMS_EPS,
            "num_attention_heads": s.heads,
            "num_hidden_layers": s.layers,
            "num_key_value_heads": s.kv_heads,
            "rope_theta": ROPE_THETA,
            "tie_word_embeddings": true,
            "torch_dtype": "bfloat16",
            "use_cache": true,
            "vocab_size": s.vocab,
            "quantization_config": {
                "quant_method": "bitnet",
                "linear_class": "autobitlinear",
                "quantization_mode": "offline"
            }
        }),
    )?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({"bos_token_id": bos, "eos_token_id": [eos, eot], "do_sample": false}),
    )?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &rotor::tokenizer::tokenizer_config_json(),
    )?;
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json)?;

    // (name, dtype, shape, bytes)
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![(
        "model.embed_tokens.weight".into(),
        Dtype::BF16,
        vec![s.vocab, s.hidden],
        bf16_bytes(&f32s(&model.embed)?),
    )];
    for b in &model.blocks {
        for n in b.norms() {
            let w = f32s(&n.w)?;
            tensors.push((
                format!("{}.weight", n.name),
                Dtype::BF16,
                vec![w.len()],
                bf16_bytes(&w),
            ));
        }
        for p in b.projs() {
            let (rows, cols) = p.w.as_tensor().dims2()?;
            anyhow::ensure!(
                rows % 4 == 0,
                "{}: {rows} rows are not a multiple of 4",
                p.name
            );
            let (packed, scale) = rotor::synth::ternarize_and_pack(&f32s(&p.w)?, rows, cols);
            tensors.push((
                format!("{}.weight", p.name),
                Dtype::U8,
                vec![rows / 4, cols],
                packed,
            ));
            tensors.push((
                format!("{}.weight_scale", p.name),
                Dtype::BF16,
                vec![1],
                scale.to_le_bytes().to_vec(),
            ));
        }
    }
    let w = f32s(&model.norm.w)?;
    tensors.push((
        "model.norm.weight".into(),
        Dtype::BF16,
        vec![w.len()],
        bf16_bytes(&w),
    ));

    let views = tensors
        .iter()
        .map(|(n, d, shape, bytes)| Ok((n.clone(), TensorView::new(*d, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let path = dir.join("model.safetensors");
    safetensors::serialize_to_file(views, Some(meta), &path)
        .with_context(|| format!("writing {}", path.display()))?;
    // The safetensors crate writes through a private temporary file (mode 0600); make the
    // checkpoint readable like the other files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }

    let mut sizes = vec![];
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        sizes.push((f.to_string(), std::fs::metadata(dir.join(f))?.len()));
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Shape;
    use candle_core::{Device, Tensor};
    use rotor::model::{KvCache, LoadOptions, Logits, State, VerifyCtx};

    /// FORMAT.md §6 acceptance level 3 (end-to-end logits), for a model that differs from the
    /// training forward only by the bf16 rounding of scales, embeddings and norm gains.
    const TOL_LOGITS_REL: f32 = 0.05;

    /// Export a small model and run it through the engine: same logits as the training
    /// forward, within the end-to-end tolerance.
    #[test]
    fn engine_loads_the_export_and_agrees() {
        let shape = Shape {
            vocab: 512,
            hidden: 64,
            inter: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            max_pos: 64,
        };
        let dev = Device::Cpu;
        let m = Model::new(shape, 32, 7, &dev).unwrap();
        // Larger embeddings than the 0.02 init, so the logits are not all near zero.
        m.embed.set(&(m.embed.as_tensor() * 20.0).unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("train-tiny-export-{}", std::process::id()));
        let text = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.";
        let tok = rotor::tokenizer::train_llama3_style(text, 256, 256).unwrap();
        export(&m, &tok, 256, &dir).unwrap();

        let ids: Vec<u32> = (0..24u32).map(|i| (i * 37 + 5) % 512).collect();
        let want = m
            .forward(&Tensor::from_slice(&ids, (1, ids.len()), &dev).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();

        let engine = rotor::model::Model::load(&dir, &LoadOptions::default()).unwrap();
        let mut cache = KvCache::new(&engine, 32);
        let mut st = State::new(&engine, 32, 32);
        let got = engine
            .forward(&ids, &mut cache, &mut st, Logits::All, VerifyCtx::default())
            .unwrap()
            .to_vec();
        std::fs::remove_dir_all(&dir).ok();

        let max_logit = want.iter().fold(0f32, |a, b| a.max(b.abs()));
        let maxdiff = want
            .iter()
            .zip(&got)
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        println!("max |Δlogit| = {maxdiff:e} (max |logit| = {max_logit})");
        assert!(max_logit > 1.0, "logits too small to compare: {max_logit}");
        assert!(maxdiff <= TOL_LOGITS_REL * max_logit);
    }
}
