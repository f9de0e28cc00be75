//! Synthesized models in the exact checkpoint format, for tests and full-size speed runs.
//!
//! `rotor synth` writes what a user downloads from Hugging Face — `config.json`,
//! `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`, `generation_config.json` —
//! with the real tensor names, dtypes and packing (FORMAT.md §2), so the loader takes the code
//! path the real checkpoint takes. Weights are absmean-ternarized from seeded bf16-style
//! masters exactly as Microsoft's converter does (`t = clamp(round(W / mean|W|), −1, 1)`,
//! `weight_scale = bf16(mean|W|)`); the tokenizer is a Llama-3-style byte-level BPE trained on
//! shipped public-domain text, with the 256 special tokens at the config's ids.
//!
//! Every random stream is seeded from (seed, tensor, chunk), so the output is identical for a
//! seed whatever the thread count.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::json;

use crate::error::{Error, Result};
use crate::sample::Rng;
use crate::ternary::Ternary;
use crate::tokenizer;

/// Public-domain text the synthesized tokenizers are trained on (Jane Austen, *Northanger
/// Abbey*: the validation split of the shipped corpus).
const TOKENIZER_TEXT: &str = include_str!("../../datasets/corpus/validation.txt");

/// Model shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// 2 layers, hidden 64: unit tests.
    Tiny,
    /// 4 layers, hidden 256: quick experiments.
    Small,
    /// The real BitNet b1.58 2B-4T shapes (30 layers, hidden 2560, vocab 128256; ~1.2 GB).
    B2b4t,
}

/// The shape of a preset.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub vocab: usize,
    pub hidden: usize,
    pub inter: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub max_pos: usize,
    /// Regular BPE tokens in the tokenizer (the 256 specials sit at `vocab − 256`).
    pub n_bpe: usize,
}

impl Preset {
    pub fn parse(s: &str) -> Result<Preset> {
        match s {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "2b4t" | "2b-4t" | "2B-4T" => Ok(Preset::B2b4t),
            other => Err(Error::Invalid(format!(
                "unknown preset `{other}` (tiny, small, 2b4t)"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::B2b4t => "2b4t",
        }
    }
    pub fn shape(self) -> Shape {
        match self {
            Preset::Tiny => Shape {
                vocab: 1024,
                hidden: 64,
                inter: 192,
                layers: 2,
                heads: 4,
                kv_heads: 2,
                max_pos: 512,
                n_bpe: 768,
            },
            Preset::Small => Shape {
                vocab: 4096,
                hidden: 256,
                inter: 704,
                layers: 4,
                heads: 8,
                kv_heads: 2,
                max_pos: 2048,
                n_bpe: 3840,
            },
            Preset::B2b4t => Shape {
                vocab: 128256,
                hidden: 2560,
                inter: 6912,
                layers: 30,
                heads: 20,
                kv_heads: 5,
                max_pos: 4096,
                // The real vocabulary has 128000 regular tokens; a BPE trained on 430 KB of
                // text saturates far earlier, so ids 8000..128000 are unused (decoded as ⟨id⟩).
                n_bpe: 8000,
            },
        }
    }
}

/// Which release format to write (FORMAT.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// U8 packed projections + BF16 `weight_scale` (`autobitlinear` / `offline`), like
    /// `microsoft/bitnet-b1.58-2B-4T`.
    Packed,
    /// BF16 master projections (`online`), like `microsoft/bitnet-b1.58-2B-4T-bf16`.
    Bf16,
}

#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub preset: Preset,
    pub seed: u64,
    pub out: PathBuf,
    pub variant: Variant,
    /// Overwrite an existing model directory.
    pub force: bool,
    pub progress: bool,
}

#[derive(Clone, Debug)]
pub struct SynthReport {
    pub tensors: usize,
    pub bytes: u64,
    pub time: Duration,
}

enum Data {
    Embedding,
    Norm(usize),
    Proj {
        rows: usize,
        cols: usize,
        gain: f32,
    },
    /// The scale of the projection just before it in the file.
    Scale,
}

struct Spec {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    data: Data,
}

impl Spec {
    fn bytes(&self) -> usize {
        let n: usize = self.shape.iter().product();
        match self.dtype {
            "U8" => n,
            _ => 2 * n,
        }
    }
}

fn specs(s: &Shape, variant: Variant) -> Vec<Spec> {
    let hd = s.hidden / s.heads;
    let (q, kv) = (s.heads * hd, s.kv_heads * hd);
    let mut v = vec![Spec {
        name: "model.embed_tokens.weight".into(),
        dtype: "BF16",
        shape: vec![s.vocab, s.hidden],
        data: Data::Embedding,
    }];
    for l in 0..s.layers {
        let p = format!("model.layers.{l}");
        for (n, d) in [
            ("input_layernorm", s.hidden),
            ("post_attention_layernorm", s.hidden),
            ("self_attn.attn_sub_norm", q),
            ("mlp.ffn_sub_norm", s.inter),
        ] {
            v.push(Spec {
                name: format!("{p}.{n}.weight"),
                dtype: "BF16",
                shape: vec![d],
                data: Data::Norm(d),
            });
        }
        for (n, rows, cols, gain) in [
            ("self_attn.q_proj", q, s.hidden, 2.0),
            ("self_attn.k_proj", kv, s.hidden, 2.0),
            ("self_attn.v_proj", kv, s.hidden, 1.0),
            ("self_attn.o_proj", s.hidden, q, 8.0),
            ("mlp.gate_proj", s.inter, s.hidden, 1.0),
            ("mlp.up_proj", s.inter, s.hidden, 1.0),
            ("mlp.down_proj", s.hidden, s.inter, 8.0),
        ] {
            let data = Data::Proj { rows, cols, gain };
            match variant {
                Variant::Packed => {
                    v.push(Spec {
                        name: format!("{p}.{n}.weight"),
                        dtype: "U8",
                        shape: vec![rows / 4, cols],
                        data,
                    });
                    v.push(Spec {
                        name: format!("{p}.{n}.weight_scale"),
                        dtype: "BF16",
                        shape: vec![1],
                        data: Data::Scale,
                    });
                }
                Variant::Bf16 => v.push(Spec {
                    name: format!("{p}.{n}.weight"),
                    dtype: "BF16",
                    shape: vec![rows, cols],
                    data,
                }),
            }
        }
    }
    v.push(Spec {
        name: "model.norm.weight".into(),
        dtype: "BF16",
        shape: vec![s.hidden],
        data: Data::Norm(s.hidden),
    });
    v
}

const CHUNK: usize = 1 << 16;

/// Fill `buf` with approximately normal values of standard deviation `std`, each rounded to
/// bf16 (the master is a bf16 tensor, as in the -bf16 release), in parallel chunks each seeded
/// from `(seed, tensor, chunk)`; returns `Σ |v|` (summed in chunk order, so the result does
/// not depend on the thread count).
fn fill_normals(buf: &mut [f32], std: f32, seed: u64, tensor: u64) -> f64 {
    let sums: Vec<f64> = buf
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(i, c)| {
            let mut r = Rng::new(Rng::seed_from(&[seed, tensor, i as u64]));
            let mut s = 0f64;
            for x in c {
                *x = half::bf16::from_f32(r.next_normalish() * std).to_f32();
                s += x.abs() as f64;
            }
            s
        })
        .collect();
    sums.iter().sum()
}

/// `n` approximately normal values as little-endian bf16 bytes (same streams as
/// [`fill_normals`]).
fn normals_bf16(n: usize, std: f32, seed: u64, tensor: u64) -> Vec<u8> {
    let mut out = vec![0u8; n * 2];
    out.par_chunks_mut(2 * CHUNK)
        .enumerate()
        .for_each(|(i, c)| {
            let mut r = Rng::new(Rng::seed_from(&[seed, tensor, i as u64]));
            for b in c.chunks_exact_mut(2) {
                b.copy_from_slice(&half::bf16::from_f32(r.next_normalish() * std).to_le_bytes());
            }
        });
    out
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; v.len() * 2];
    out.par_chunks_mut(2 * CHUNK)
        .zip(v.par_chunks(CHUNK))
        .for_each(|(o, x)| {
            for (b, &f) in o.chunks_exact_mut(2).zip(x) {
                b.copy_from_slice(&half::bf16::from_f32(f).to_le_bytes());
            }
        });
    out
}

/// Absmean ternarization of a master (`weight_scale = bf16(mean|W|)` — the f32 mean rounded
/// once — and `t = clamp(round_half_even(W / mean), −1, 1)`), packed as the checkpoint packs.
pub fn ternarize_and_pack(master: &[f32], rows: usize, cols: usize) -> (Vec<u8>, half::bf16) {
    let sum: f64 = master
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|v| v.abs() as f64).sum::<f64>())
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    pack_with_mean(master, rows, cols, (sum / master.len() as f64) as f32)
}

fn pack_with_mean(master: &[f32], rows: usize, cols: usize, mean: f32) -> (Vec<u8>, half::bf16) {
    let r4 = rows / 4;
    let mut packed = vec![0u8; r4 * cols];
    packed
        .par_chunks_mut(cols)
        .enumerate()
        .for_each(|(r, out)| {
            for j in 0..4 {
                let src = &master[(j * r4 + r) * cols..(j * r4 + r + 1) * cols];
                for (o, &w) in out.iter_mut().zip(src) {
                    let t = crate::quant::round_half_even(w / mean).clamp(-1.0, 1.0) as i8;
                    *o |= ((t + 1) as u8) << (2 * j);
                }
            }
        });
    (packed, half::bf16::from_f32(mean))
}

/// Write a synthesized model directory.
pub fn synth(opts: &SynthOptions) -> Result<SynthReport> {
    let t0 = Instant::now();
    let s = opts.preset.shape();
    let out = &opts.out;
    if out.join("model.safetensors").exists() && !opts.force {
        return Err(Error::Invalid(format!(
            "{} already holds a model.safetensors (pass --force to overwrite)",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let specials_base = (s.vocab - 256) as u32;
    write_json(
        &out.join("config.json"),
        &config_json(&s, opts.variant, specials_base),
    )?;
    write_json(
        &out.join("generation_config.json"),
        &json!({"bos_token_id": specials_base, "eos_token_id": [specials_base + 1, specials_base + 9],
                "do_sample": false, "_synthesized_by": "rotor synth"}),
    )?;
    write_json(
        &out.join("tokenizer_config.json"),
        &tokenizer::tokenizer_config_json(),
    )?;
    let tok = tokenizer::train_llama3_style(TOKENIZER_TEXT, s.n_bpe, specials_base)?;
    let tp = out.join("tokenizer.json");
    std::fs::write(&tp, tok).map_err(|e| Error::io(&tp, e))?;

    let specs = specs(&s, opts.variant);
    let path = out.join("model.safetensors");
    let total = write_safetensors(&path, &specs, opts)?;
    Ok(SynthReport {
        tensors: specs.len(),
        bytes: total,
        time: t0.elapsed(),
    })
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("json") + "\n";
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn config_json(s: &Shape, variant: Variant, specials_base: u32) -> serde_json::Value {
    json!({
        "architectures": ["BitNetForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_bitnet.BitNetConfig",
                     "AutoModelForCausalLM": "modeling_bitnet.BitNetForCausalLM"},
        "bos_token_id": specials_base,
        "eos_token_id": specials_base + 1,
        "hidden_act": "relu2",
        "hidden_size": s.hidden,
        "initializer_range": 0.02,
        "intermediate_size": s.inter,
        "max_position_embeddings": s.max_pos,
        "model_type": "bitnet",
        "rms_norm_eps": 1e-5,
        "num_attention_heads": s.heads,
        "num_hidden_layers": s.layers,
        "num_key_value_heads": s.kv_heads,
        "rope_theta": 500000.0,
        "tie_word_embeddings": true,
        "torch_dtype": "bfloat16",
        "use_cache": true,
        "vocab_size": s.vocab,
        "quantization_config": {
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": match variant { Variant::Packed => "offline", Variant::Bf16 => "online" }
        }
    })
}

/// Header (JSON, offsets in file order, padded to 8 bytes) then every tensor's bytes.
fn write_safetensors(path: &Path, specs: &[Spec], opts: &SynthOptions) -> Result<u64> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut off = 0usize;
    for sp in specs {
        let n = sp.bytes();
        header.insert(
            sp.name.clone(),
            json!({"dtype": sp.dtype, "shape": sp.shape, "data_offsets": [off, off + n]}),
        );
        off += n;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let total = 8 + h.len() + off;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 22, file);
    let io = |e| Error::io(path, e);
    w.write_all(&(h.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&h).map_err(io)?;
    let bar = if opts.progress {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar.set_message("synth");
    let seed = opts.seed;
    // Compute on the rayon pool while a writer thread streams finished tensors to disk.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    std::thread::scope(|scope| -> Result<()> {
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for bytes in rx {
                w.write_all(&bytes)?;
                bar.inc(bytes.len() as u64);
            }
            w.flush()?;
            bar.finish_and_clear();
            Ok(())
        });
        let mut master: Vec<f32> = Vec::new();
        let mut last_scale = half::bf16::ONE;
        for sp in specs.iter() {
            // Streams keyed by tensor name: the packed and bf16 variants of one seed hold the
            // same masters.
            let tid = fnv1a(&sp.name);
            let bytes: Vec<u8> = match sp.data {
                Data::Embedding => {
                    let (v, h) = (sp.shape[0], sp.shape[1]);
                    // Rows of ~N(0, (2/√h)²): logits of a unit-RMS state have std ≈ 2.
                    let std = 2.0 / (h as f32).sqrt();
                    for block in (0..v).step_by(8192) {
                        let rows = (v - block).min(8192);
                        let b = normals_bf16(rows * h, std, seed, tid ^ ((block as u64) << 20));
                        if tx.send(b).is_err() {
                            break;
                        }
                    }
                    continue;
                }
                Data::Norm(n) => {
                    master.resize(n, 0.0);
                    fill_normals(&mut master, 0.1, seed, tid);
                    let v: Vec<f32> = master.iter().map(|x| 1.0 + x).collect();
                    bf16_bytes(&v)
                }
                Data::Proj { rows, cols, gain } => {
                    master.resize(rows * cols, 0.0);
                    let sum = fill_normals(&mut master, gain / (cols as f32).sqrt(), seed, tid);
                    match opts.variant {
                        Variant::Packed => {
                            let mean = (sum / master.len() as f64) as f32;
                            let (packed, scale) = pack_with_mean(&master, rows, cols, mean);
                            last_scale = scale;
                            packed
                        }
                        Variant::Bf16 => bf16_bytes(&master),
                    }
                }
                Data::Scale => last_scale.to_le_bytes().to_vec(),
            };
            debug_assert_eq!(bytes.len(), sp.bytes(), "{}", sp.name);
            if tx.send(bytes).is_err() {
                break;
            }
        }
        drop(tx);
        writer
            .join()
            .map_err(|_| Error::Invalid("writer thread panicked".into()))?
            .map_err(io)
    })?;
    Ok(total as u64)
}

/// FNV-1a hash of a tensor name (stable across versions and platforms).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The ternary matrix a synthesized packed projection holds (for tests).
pub fn unpack(packed: &[u8], rows: usize, cols: usize) -> Result<Ternary> {
    Ternary::from_hf_packed(packed, rows, cols)
}
