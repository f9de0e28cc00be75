//! Seed inputs for the cargo-fuzz targets in `fuzz/`, made from real files: the reference
//! fixtures, the shipped tiny model, models synthesized in the exact checkpoint format, and
//! small GGUFs written by `rotor export` (TQ2_0, TQ1_0, I2_S in all three byte orders; heads
//! F16, BF16, Q8_0, Q6_K).
//!
//! ```sh
//! cargo run --release -p rotor --example fuzz_seeds -- OUT_DIR
//! ```
//! writes `OUT_DIR/<target>/<name>` for every target, unminimized; `just fuzz-seeds` runs this
//! and then `cargo fuzz cmin` into `fuzz/corpus/<target>/` (see docs/RELIABILITY.md). The
//! `gguf_model` target's fixture, `fuzz/fixtures/tiny-i2s-arm.gguf`, is written here when it is
//! missing and read back otherwise, so that target's seeds always match the committed fixture.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rotor::gguf::{ExportOptions, GgufFile, HeadType, TernaryType, quants::i2s};
use rotor::sample::Rng;
use rotor::synth::{Preset, SynthOptions, Variant};
use safetensors::{Dtype, tensor::TensorView};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: fuzz_seeds OUT_DIR")?);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = std::env::temp_dir().join(format!("rotor-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let put = |target: &str, name: &str, bytes: &[u8]| -> Result<()> {
        let d = out.join(target);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(name), bytes)?;
        Ok(())
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let fixtures = root.join("datasets/reference/fixtures");
    let austen = root.join("datasets/models/austen-tiny");

    // Synthesized models in the checkpoint format (with tokenizers).
    let tiny = work.join("tiny");
    let small = work.join("small");
    for (dir, preset) in [(&tiny, Preset::Tiny), (&small, Preset::Small)] {
        rotor::synth::synth(&SynthOptions {
            preset,
            seed: 0,
            out: dir.clone(),
            variant: Variant::Packed,
            force: true,
            progress: false,
        })?;
    }

    // config_json: every real config.json the repository has.
    for f in ["a", "b", "c", "d"] {
        put(
            "config_json",
            &format!("fixture-{f}.json"),
            &read(&fixtures.join(f).join("config.json"))?,
        )?;
    }
    put(
        "config_json",
        "austen-tiny.json",
        &read(&austen.join("config.json"))?,
    )?;
    put(
        "config_json",
        "synth-tiny.json",
        &read(&tiny.join("config.json"))?,
    )?;
    put(
        "config_json",
        "synth-small.json",
        &read(&small.join("config.json"))?,
    )?;

    // model_dir: tokenizer.json NUL generation_config.json NUL tokenizer_config.json NUL prompt.
    let prompt =
        b"It is a truth universally acknowledged, that a single man \xe2\x80\x94 \xc3\xa9t\xc3\xa9";
    for (name, dir) in [("synth-tiny", &tiny), ("austen-tiny", &austen)] {
        let mut v = read(&dir.join("tokenizer.json"))?;
        for f in ["generation_config.json", "tokenizer_config.json"] {
            v.push(0);
            v.extend(read(&dir.join(f))?);
        }
        v.push(0);
        v.extend_from_slice(prompt);
        put("model_dir", name, &v)?;
        // Without a generation_config.json.
        put(
            "model_dir",
            &format!("{name}-tokenizer-only"),
            &read(&dir.join("tokenizer.json"))?,
        )?;
    }

    // token_ids: the id sequences the reference fixtures were run on.
    for f in ["a", "b", "c", "d"] {
        let bytes = read(&fixtures.join(f).join("expected.safetensors"))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)?;
        let ids: Vec<String> = st
            .tensor("input_ids")?
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()).to_string())
            .collect();
        put(
            "token_ids",
            &format!("fixture-{f}"),
            ids.join(",").as_bytes(),
        )?;
    }
    put("token_ids", "readme", b"128000,9906,1917")?;
    put("token_ids", "spaces", b" 1, 5 ,9,300,7")?;

    // checkpoint: a valid checkpoint for the target's built-in config, and real files.
    put("checkpoint", "valid-tiny", &checkpoint_for_fuzz_config()?)?;
    put(
        "checkpoint",
        "fixture-c",
        &read(&fixtures.join("c/model.safetensors"))?,
    )?;
    put(
        "checkpoint",
        "fixture-a",
        &read(&fixtures.join("a/model.safetensors"))?,
    )?;

    // kernels: shape bytes followed by real packed weight bytes of the shipped model.
    let st_bytes = read(&austen.join("model.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&st_bytes)?;
    for (i, name) in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.3.mlp.down_proj.weight",
    ]
    .iter()
    .enumerate()
    {
        let w = st.tensor(name)?.data();
        for (j, shape) in [[7u8, 200, 1, 2], [40, 31, 2, 4]].iter().enumerate() {
            let mut v = shape.to_vec();
            v.extend_from_slice(&w[..2048.min(w.len())]);
            put("kernels", &format!("austen-{i}-{j}"), &v)?;
        }
    }

    // GGUF files written by `rotor export`. The tiny preset (hidden 64) only fits I2_S in the ARM
    // order (64-weight blocks); a 256-wide model fits every type.
    let fixture = root.join("fuzz/fixtures/tiny-i2s-arm.gguf");
    if !fixture.exists() {
        std::fs::create_dir_all(fixture.parent().unwrap())?;
        export(
            &tiny,
            &fixture,
            TernaryType::I2S,
            HeadType::Q8_0,
            i2s::Order::Arm,
        )?;
    }
    let fixture_bytes = read(&fixture)?;
    put("gguf_bytes", "tiny-i2s-arm-q8_0.gguf", &fixture_bytes)?;
    let wide = work.join("wide");
    write_wide_model(&wide)?;
    for (ty, head, order, name) in [
        (
            TernaryType::Tq2_0,
            HeadType::F16,
            i2s::Order::X86,
            "tq2_0-f16",
        ),
        (
            TernaryType::Tq1_0,
            HeadType::Q8_0,
            i2s::Order::X86,
            "tq1_0-q8_0",
        ),
        (
            TernaryType::I2S,
            HeadType::Q6K,
            i2s::Order::X86,
            "i2s-x86-q6_k",
        ),
        (
            TernaryType::I2S,
            HeadType::Bf16,
            i2s::Order::Arm,
            "i2s-arm-bf16",
        ),
        (
            TernaryType::I2S,
            HeadType::F16,
            i2s::Order::OneByFour,
            "i2s-1x4-f16",
        ),
    ] {
        let p = work.join(format!("{name}.gguf"));
        export(&wide, &p, ty, head, order)?;
        put("gguf_bytes", &format!("wide-{name}.gguf"), &read(&p)?)?;
    }

    // gguf_model: the fixture cut at each boundary, the rest as the input (first byte = cut).
    let f = GgufFile::from_bytes(Path::new("fixture"), fixture_bytes.clone())?;
    let mut cuts = vec![f.tensor_info_offset, f.data_offset];
    cuts.extend(f.tensors().iter().map(|t| t.start));
    for (k, &cut) in cuts.iter().enumerate() {
        // Selector k + n picks cut k with the ARM order the fixture was written in.
        let sel = k + cuts.len();
        if sel > 255 {
            break;
        }
        let mut v = vec![sel as u8];
        v.extend_from_slice(&fixture_bytes[cut..]);
        put("gguf_model", &format!("cut-{k:02}"), &v)?;
    }

    std::fs::remove_dir_all(&work)?;
    eprintln!("seeds written to {}", out.display());
    Ok(())
}

fn export(
    model: &Path,
    out: &Path,
    weights: TernaryType,
    head: HeadType,
    order: i2s::Order,
) -> Result<()> {
    rotor::gguf::export(
        model,
        out,
        &ExportOptions {
            weights,
            head,
            threads: Some(1),
            i2s_order: order,
            progress: false,
        },
    )?;
    Ok(())
}

/// A one-layer model whose every input size is 256 (so TQ2_0, TQ1_0 and every I2_S order fit),
/// with a 64-token vocabulary and no tokenizer: about 100 KB as GGUF.
fn write_wide_model(dir: &Path) -> Result<()> {
    const H: usize = 256;
    const VOCAB: usize = 64;
    std::fs::create_dir_all(dir)?;
    let config = serde_json::json!({
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
        "bos_token_id": 1, "eos_token_id": 2, "hidden_size": H, "intermediate_size": H,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "num_attention_heads": 4,
        "num_hidden_layers": 1, "num_key_value_heads": 1, "rope_theta": 500000.0,
        "tie_word_embeddings": true, "vocab_size": VOCAB,
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                "quantization_mode": "offline"}
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    let mut rng = Rng::new(77);
    let mut tensors = vec![];
    let bf = |v: Vec<f32>| -> Vec<u8> {
        v.into_iter()
            .flat_map(|x| half::bf16::from_f32(x).to_le_bytes())
            .collect()
    };
    let mut normal =
        |n: usize, std: f32| -> Vec<f32> { (0..n).map(|_| rng.next_normalish() * std).collect() };
    tensors.push((
        "model.embed_tokens.weight".to_string(),
        Dtype::BF16,
        vec![VOCAB, H],
        bf(normal(VOCAB * H, 0.5)),
    ));
    tensors.push((
        "model.norm.weight".into(),
        Dtype::BF16,
        vec![H],
        bf(normal(H, 0.1).iter().map(|x| 1.0 + x).collect()),
    ));
    let p = "model.layers.0";
    for n in [
        "input_layernorm",
        "post_attention_layernorm",
        "self_attn.attn_sub_norm",
        "mlp.ffn_sub_norm",
    ] {
        tensors.push((
            format!("{p}.{n}.weight"),
            Dtype::BF16,
            vec![H],
            bf(normal(H, 0.1).iter().map(|x| 1.0 + x).collect()),
        ));
    }
    for (n, rows) in [
        ("self_attn.q_proj", H),
        ("self_attn.k_proj", 64),
        ("self_attn.v_proj", 64),
        ("self_attn.o_proj", H),
        ("mlp.gate_proj", H),
        ("mlp.up_proj", H),
        ("mlp.down_proj", H),
    ] {
        let (packed, scale) = rotor::synth::ternarize_and_pack(&normal(rows * H, 0.06), rows, H);
        tensors.push((
            format!("{p}.{n}.weight"),
            Dtype::U8,
            vec![rows / 4, H],
            packed,
        ));
        tensors.push((
            format!("{p}.{n}.weight_scale"),
            Dtype::BF16,
            vec![1],
            scale.to_le_bytes().to_vec(),
        ));
    }
    write_safetensors(&dir.join("model.safetensors"), &tensors)
}

/// A valid checkpoint for the `checkpoint` target's built-in config (vocab 16, hidden 8,
/// intermediate 8, one layer, 2 heads of 4, 1 KV head).
fn checkpoint_for_fuzz_config() -> Result<Vec<u8>> {
    let mut rng = Rng::new(5);
    let mut tensors = vec![];
    let bf = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect()
    };
    tensors.push((
        "model.embed_tokens.weight".to_string(),
        Dtype::BF16,
        vec![16, 8],
        bf(&(0..128).map(|_| rng.next_normalish()).collect::<Vec<_>>()),
    ));
    tensors.push((
        "model.norm.weight".into(),
        Dtype::BF16,
        vec![8],
        bf(&[1.0; 8]),
    ));
    let p = "model.layers.0";
    for n in [
        "input_layernorm",
        "post_attention_layernorm",
        "self_attn.attn_sub_norm",
        "mlp.ffn_sub_norm",
    ] {
        tensors.push((
            format!("{p}.{n}.weight"),
            Dtype::BF16,
            vec![8],
            bf(&[1.0; 8]),
        ));
    }
    for (n, rows, cols) in [
        ("self_attn.q_proj", 8, 8),
        ("self_attn.k_proj", 4, 8),
        ("self_attn.v_proj", 4, 8),
        ("self_attn.o_proj", 8, 8),
        ("mlp.gate_proj", 8, 8),
        ("mlp.up_proj", 8, 8),
        ("mlp.down_proj", 8, 8),
    ] {
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.next_normalish()).collect();
        let (packed, scale) = rotor::synth::ternarize_and_pack(&w, rows, cols);
        tensors.push((
            format!("{p}.{n}.weight"),
            Dtype::U8,
            vec![rows / 4, cols],
            packed,
        ));
        tensors.push((
            format!("{p}.{n}.weight_scale"),
            Dtype::BF16,
            vec![1],
            scale.to_le_bytes().to_vec(),
        ));
    }
    let path = std::env::temp_dir().join(format!("rotor-fuzz-ck-{}.st", std::process::id()));
    write_safetensors(&path, &tensors)?;
    let bytes = std::fs::read(&path)?;
    std::fs::remove_file(&path)?;
    Ok(bytes)
}

type Tensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn write_safetensors(path: &Path, tensors: &[Tensor]) -> Result<()> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<_>>()?;
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize_to_file(views, Some(meta), path)?;
    Ok(())
}
