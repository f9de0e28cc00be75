//! The BitNet b1.58 decoder (FORMAT.md §3) in candle, trainable, with quantization-aware
//! training exactly as transformers' `AutoBitLinear` in online mode (FORMAT.md §4).
//!
//! ```text
//! h = E[ids]
//! for each layer:
//!     x = rmsnorm(h, input_norm);     q, k, v = BitLinear_{q,k,v}(x)
//!     q, k = rope(q), rope(k)         (rotate_half, θ = 500000)
//!     a = softmax(q kᵀ/√d + causal) v (GQA: query head j reads kv head j / group)
//!     h += BitLinear_o(rmsnorm(a, attn_sub_norm))
//!     x = rmsnorm(h, post_attn_norm)
//!     h += BitLinear_down(rmsnorm(relu(BitLinear_gate x)² · BitLinear_up x, ffn_sub_norm))
//! logits = rmsnorm(h, norm) · Eᵀ      (tied head)
//! ```
//!
//! `BitLinear(x) = ActQuant(x) · WeightQuant(W)ᵀ` where both quantizers are fake-quant (quantize
//! then dequantize) with the straight-through estimator `x + (q(x) − x).detach()`: the forward
//! sees exactly what the exported ternary model computes (up to the bf16 rounding of the scale),
//! the backward treats the quantizers as the identity. Masters stay in f32.
//!
//! Not for inference: the engine (`rotor`) runs the exported checkpoint. This file exists only to
//! produce masters that the engine then loads.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};

use rotor::sample::Rng;

use crate::ops::{ActQuant, CausalSoftmax, RmsNorm, Rope, WeightQuant};

/// Model shape (the `config.json` numbers).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Shape {
    pub vocab: usize,
    pub hidden: usize,
    pub inter: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// `max_position_embeddings` written into the exported config.
    pub max_pos: usize,
}

pub const RMS_EPS: f64 = 1e-5;
pub const ROPE_THETA: f64 = 500_000.0;

/// One projection: an f32 master `[out, in]`, named as in the checkpoint.
pub struct Proj {
    pub name: String,
    pub w: Var, // [out, in]
}

pub struct Norm {
    pub name: String,
    pub w: Var, // [n]
}

pub struct Block {
    pub input_norm: Norm,     // [hidden]
    pub post_attn_norm: Norm, // [hidden]
    pub attn_sub_norm: Norm,  // [heads·hd]
    pub ffn_sub_norm: Norm,   // [inter]
    pub q: Proj,              // hidden -> heads·hd
    pub k: Proj,              // hidden -> kv·hd
    pub v: Proj,              // hidden -> kv·hd
    pub o: Proj,              // heads·hd -> hidden
    pub gate: Proj,           // hidden -> inter
    pub up: Proj,             // hidden -> inter
    pub down: Proj,           // inter -> hidden
}

impl Block {
    pub fn projs(&self) -> [&Proj; 7] {
        [
            &self.q, &self.k, &self.v, &self.o, &self.gate, &self.up, &self.down,
        ]
    }
    pub fn norms(&self) -> [&Norm; 4] {
        [
            &self.input_norm,
            &self.post_attn_norm,
            &self.attn_sub_norm,
            &self.ffn_sub_norm,
        ]
    }
}

pub struct Model {
    pub shape: Shape,
    pub embed: Var, // [vocab, hidden], tied output head
    pub blocks: Vec<Block>,
    pub norm: Norm,     // [hidden]
    cos: Arc<Vec<f32>>, // [max_t, hd/2]: cos(p · θ^(−2i/hd))
    sin: Arc<Vec<f32>>, // [max_t, hd/2]
    device: Device,
}

/// Seeded approximately-normal values (rotor's SplitMix64 stream, so the init does not depend on
/// candle's RNG or the thread count).
fn normal(n: usize, std: f32, seed: u64, tensor: u64) -> Vec<f32> {
    let mut r = Rng::new(Rng::seed_from(&[seed, tensor]));
    (0..n).map(|_| r.next_normalish() * std).collect()
}

impl Model {
    /// A freshly initialised model: embeddings and projections ~N(0, 0.02²), the residual
    /// output projections (o, down) scaled by 1/√(2·layers) as in GPT-2; norm gains 1.
    pub fn new(shape: Shape, max_t: usize, seed: u64, device: &Device) -> Result<Model> {
        let s = shape;
        let (qd, kvd) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
        let mut tid = 0u64;
        let mut var = |rows: usize, cols: usize, std: f32| -> Result<Var> {
            tid += 1;
            Var::from_vec(normal(rows * cols, std, seed, tid), (rows, cols), device)
        };
        let std = 0.02f32;
        let resid = std / (2.0 * s.layers as f32).sqrt();
        let embed = var(s.vocab, s.hidden, std)?;
        let ones = |name: String, n: usize| -> Result<Norm> {
            Ok(Norm {
                name,
                w: Var::ones(n, DType::F32, device)?,
            })
        };
        let mut blocks = Vec::with_capacity(s.layers);
        for l in 0..s.layers {
            let p = format!("model.layers.{l}");
            let mut proj = |n: &str, rows: usize, cols: usize, std: f32| -> Result<Proj> {
                Ok(Proj {
                    name: format!("{p}.{n}"),
                    w: var(rows, cols, std)?,
                })
            };
            let q = proj("self_attn.q_proj", qd, s.hidden, std)?;
            let k = proj("self_attn.k_proj", kvd, s.hidden, std)?;
            let v = proj("self_attn.v_proj", kvd, s.hidden, std)?;
            let o = proj("self_attn.o_proj", s.hidden, qd, resid)?;
            let gate = proj("mlp.gate_proj", s.inter, s.hidden, std)?;
            let up = proj("mlp.up_proj", s.inter, s.hidden, std)?;
            let down = proj("mlp.down_proj", s.hidden, s.inter, resid)?;
            blocks.push(Block {
                input_norm: ones(format!("{p}.input_layernorm"), s.hidden)?,
                post_attn_norm: ones(format!("{p}.post_attention_layernorm"), s.hidden)?,
                attn_sub_norm: ones(format!("{p}.self_attn.attn_sub_norm"), qd)?,
                ffn_sub_norm: ones(format!("{p}.mlp.ffn_sub_norm"), s.inter)?,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
            });
        }
        let norm = ones("model.norm".into(), s.hidden)?;

        let (cos, sin) = reference::rope_tables(max_t, s.head_dim, ROPE_THETA);
        Ok(Model {
            shape: s,
            embed,
            blocks,
            norm,
            cos: Arc::new(cos),
            sin: Arc::new(sin),
            device: device.clone(),
        })
    }

    /// Every trainable tensor, split into (projection masters: weight-decayed; embeddings and
    /// norm gains: not decayed).
    pub fn vars(&self) -> (Vec<Var>, Vec<Var>) {
        let mut decay = vec![];
        let mut plain = vec![self.embed.clone(), self.norm.w.clone()];
        for b in &self.blocks {
            decay.extend(b.projs().iter().map(|p| p.w.clone()));
            plain.extend(b.norms().iter().map(|n| n.w.clone()));
        }
        (decay, plain)
    }

    pub fn n_params(&self) -> usize {
        let (a, b) = self.vars();
        a.iter().chain(&b).map(|v| v.elem_count()).sum()
    }

    /// Logits `[B·T, vocab]` for `ids` `[B, T]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let s = &self.shape;
        let (b, t) = ids.dims2()?;
        let (nh, nkv, hd) = (s.heads, s.kv_heads, s.head_dim);
        let group = nh / nkv;
        let rope = |x: Tensor| -> Result<Tensor> {
            x.apply_op1(Rope {
                cos: self.cos.clone(),
                sin: self.sin.clone(),
            })
        };
        let softmax = CausalSoftmax {
            scale: (hd as f32).powf(-0.5),
        };

        let mut h = self.embed.index_select(&ids.flatten_all()?, 0)?; // [B·T, hidden]
        for blk in &self.blocks {
            // --- attention block
            let x = act_quant(&rmsnorm(&h, &blk.input_norm.w)?)?;
            let heads = |p: &Proj, n: usize| -> Result<Tensor> {
                // [B·T, n·hd] -> [B, n, T, hd]
                bitlinear_q(&x, p)?
                    .reshape((b, t, n, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = rope(heads(&blk.q, nh)?)?;
            let k = rope(heads(&blk.k, nkv)?)?;
            let v = heads(&blk.v, nkv)?;
            // repeat_kv: kv head j serves query heads j·group .. j·group+group−1.
            let rep = |z: Tensor| -> Result<Tensor> {
                z.unsqueeze(2)?
                    .expand((b, nkv, group, t, hd))?
                    .reshape((b, nh, t, hd))
            };
            let (k, v) = (rep(k)?, rep(v)?);
            let p = q.matmul(&k.t()?)?.apply_op1(softmax.clone())?; // [B, nh, T, T]
            let a = p
                .matmul(&v)? // [B, nh, T, hd]
                .transpose(1, 2)?
                .reshape((b * t, nh * hd))?;
            let a = act_quant(&rmsnorm(&a, &blk.attn_sub_norm.w)?)?;
            h = (h + bitlinear_q(&a, &blk.o)?)?;

            // --- feed-forward block
            let x = act_quant(&rmsnorm(&h, &blk.post_attn_norm.w)?)?;
            let g = bitlinear_q(&x, &blk.gate)?.relu()?.sqr()?;
            let m = (g * bitlinear_q(&x, &blk.up)?)?;
            let m = act_quant(&rmsnorm(&m, &blk.ffn_sub_norm.w)?)?;
            h = (h + bitlinear_q(&m, &blk.down)?)?;
        }
        rmsnorm(&h, &self.norm.w)?.matmul(&self.embed.t()?)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// The composed (candle primitive) versions of the fused ops in [`crate::ops`]: the oracle the
/// fused ops are tested against, and the first implementation (kept for that purpose).
#[allow(dead_code)] // everything but `rope_tables` is used only by the tests, as the oracle
pub mod reference {
    use candle_core::{D, Result, Tensor};

    /// `x / sqrt(mean(x²) + eps) · w` over the last dimension.
    pub fn rmsnorm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + super::RMS_EPS)?.sqrt()?)?
            .broadcast_mul(w)
    }

    /// `[t, d/2]` cos and sin tables of the default RoPE: angle `p · θ^(−2i/d)`.
    pub fn rope_tables(t: usize, d: usize, theta: f64) -> (Vec<f32>, Vec<f32>) {
        let h = d / 2;
        let (mut cos, mut sin) = (vec![0f32; t * h], vec![0f32; t * h]);
        for p in 0..t {
            for i in 0..h {
                let a = p as f64 / theta.powf(2.0 * i as f64 / d as f64);
                cos[p * h + i] = a.cos() as f32;
                sin[p * h + i] = a.sin() as f32;
            }
        }
        (cos, sin)
    }

    /// `x·cos + rotate_half(x)·sin`, `rotate_half(x) = cat(−x[d/2:], x[:d/2])`; `x` is
    /// `[B, H, T, d]`, the tables `[T, d]` (halves repeated). candle-nn's `rope` has no
    /// backward, hence primitives.
    pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(cos)? + rot.broadcast_mul(sin)?
    }

    /// Straight-through estimator: the forward value of `q`, the gradient of `x`.
    fn ste(x: &Tensor, q: &Tensor) -> Result<Tensor> {
        x + (q - x)?.detach()
    }

    /// Per-token absmax int8 fake quantization (transformers' `ActQuant`):
    /// `a = 127 / max(max|x|, 1e-5)`, `x̂ = clamp(round(x·a), −128, 127) / a`.
    pub fn act_quant(x: &Tensor) -> Result<Tensor> {
        let a = (x
            .abs()?
            .max_keepdim(D::Minus1)?
            .clamp(1e-5f32, f32::MAX)?
            .recip()?
            * 127.0)?;
        let q = x
            .broadcast_mul(&a)?
            .round()?
            .clamp(-128f32, 127f32)?
            .broadcast_div(&a)?;
        ste(x, &q)
    }

    /// Per-tensor absmean ternary fake quantization (transformers' `WeightQuant`):
    /// `s = 1 / max(mean|W|, 1e-5)`, `Ŵ = clamp(round(W·s), −1, 1) / s`.
    pub fn weight_quant(w: &Tensor) -> Result<Tensor> {
        let mean = w.abs()?.mean_all()?.clamp(1e-5f32, f32::MAX)?;
        let q = w
            .broadcast_div(&mean)?
            .round()?
            .clamp(-1f32, 1f32)?
            .broadcast_mul(&mean)?;
        ste(w, &q)
    }
}

fn rmsnorm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.apply_op2(
        w,
        RmsNorm {
            eps: RMS_EPS as f32,
        },
    )
}

fn act_quant(x: &Tensor) -> Result<Tensor> {
    x.apply_op1(ActQuant)
}

/// `x̂ · Ŵᵀ` for an already activation-quantized `x̂` `[N, in]` (the quantized input is shared
/// by the projections that read the same activations: q/k/v and gate/up).
fn bitlinear_q(xq: &Tensor, p: &Proj) -> Result<Tensor> {
    xq.matmul(&p.w.as_tensor().apply_op1(WeightQuant)?.t()?)
}
