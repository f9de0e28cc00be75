//! The forward pass, top to bottom (FORMAT.md §3), with a KV cache.
//!
//! ```text
//! h = embed[ids]
//! for each layer:
//!     x = rmsnorm(h, input_norm);        q, k, v = Wq x, Wk x, Wv x   (int8 x, ternary W)
//!     q, k = rope(q), rope(k);           cache ← k, v
//!     a = softmax(q kᵀ / √d + causal) v  (GQA: query head j reads kv head j / group)
//!     h += Wo quant(rmsnorm(a, attn_sub_norm))
//!     x = rmsnorm(h, post_attn_norm)
//!     h += Wdown quant(rmsnorm(relu(Wgate x)² · Wup x, ffn_sub_norm))
//! logits = rmsnorm(h, norm) · embedᵀ
//! ```
//! (`relu(·)²` is [`Model::ffn_act`]: always ReLU² except in the `--ffn-act silu` research runs
//! that reproduce llama.cpp's BitNet graph, see [`FfnAct`](super::FfnAct).)
//! A call processes `T` new tokens at positions `cache.len() ..`; prefill passes the prompt
//! (in chunks of at most `State::max_batch`), decode passes one token. All buffers live in
//! [`State`], sized once; the decode loop allocates nothing. No intrinsics here: the ternary
//! products go through the layout trait, the float dot products through `kernels::float`.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::{Layer, Model, VerifyCtx, forward_multi};
use crate::error::{Error, Result};
use crate::kernels::float;
use crate::quant;
use crate::ternary::ActBuf;

/// Tokens per prefill chunk by default: large enough that the batched kernels decode each
/// weight block once for many tokens (AMX/VNNI panels of 16), small enough that the chunk's
/// activations stay a few tens of MB at the model's widths.
pub const PREFILL_BATCH: usize = 256;

/// Queries per block of the prompt's attention (rows of the score matrix computed together).
const QB: usize = 4;

/// Key/value cache: `[layer][kv_head][position][head_dim]` for keys and for values.
#[derive(Debug, Clone)]
pub struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    kv_heads: usize,
    head_dim: usize,
    cap: usize,
    len: usize,
}

impl KvCache {
    pub fn new(model: &Model, capacity: usize) -> KvCache {
        let c = &model.config;
        let n = c.num_layers * c.num_kv_heads * capacity * c.head_dim;
        KvCache {
            k: vec![0.0; n],
            v: vec![0.0; n],
            kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            cap: capacity,
            len: 0,
        }
    }
    /// Positions filled.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Forget positions from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 4
    }
    fn base(&self, layer: usize, head: usize) -> usize {
        ((layer * self.kv_heads + head) * self.cap) * self.head_dim
    }
}

/// Which logits a call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// One row per token of the call.
    All,
    /// Only the last token's row.
    Last,
    /// None (prefill whose logits are not needed).
    None,
}

/// Stages of the forward pass, for the time split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Ternary matrix products (and their dequantization).
    Ternary,
    /// Attention (RoPE, cache, scores, softmax, weighted sum).
    Attention,
    /// RMSNorms, activation quantization, residual adds, ReLU².
    Norms,
    /// Final norm and output head.
    Head,
}

/// Accumulated time per stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub ternary: Duration,
    pub attention: Duration,
    pub norms: Duration,
    pub head: Duration,
}

impl Timings {
    fn add(&mut self, s: Stage, t: Instant) {
        let d = t.elapsed();
        match s {
            Stage::Ternary => self.ternary += d,
            Stage::Attention => self.attention += d,
            Stage::Norms => self.norms += d,
            Stage::Head => self.head += d,
        }
    }
    pub fn total(&self) -> Duration {
        self.ternary + self.attention + self.norms + self.head
    }
}

/// Activations of one call, allocated once for up to `max_batch` tokens and `max_ctx` positions.
#[derive(Debug)]
pub struct State {
    pub max_batch: usize,
    max_ctx: usize,
    h: Vec<f32>,      // [T, hidden]       residual stream
    x: Vec<f32>,      // [T, hidden]       normed input of a block
    q: Vec<f32>,      // [T, heads·hd]
    k: Vec<f32>,      // [T, kv·hd]
    v: Vec<f32>,      // [T, kv·hd]
    att: Vec<f32>,    // [T, heads·hd]     attention output
    att_h: Vec<f32>,  // [heads, T, hd]    per-head output before interleaving
    gate: Vec<f32>,   // [T, inter]
    up: Vec<f32>,     // [T, inter]
    down: Vec<f32>,   // [T, hidden]       projection output before the residual add
    scores: Vec<f32>, // [heads, QB, max_ctx]  attention weights of a block of queries
    acts: ActBuf,     // quantized activations of the current product
    scales: Vec<f32>, // [T] activation scales
    acc: Vec<i32>,    // [rows, T] integer products
    normed: Vec<f32>, // [T, hidden] final norm
    logits: Vec<f32>, // [T, vocab]
    head_tmp: Vec<f32>,
    head_q: Vec<i8>, // [T, hidden] int8 activations for the int8 head
    pub timings: Timings,
}

impl State {
    /// Buffers for calls of up to `max_batch` tokens with up to `max_ctx` cached positions.
    pub fn new(model: &Model, max_batch: usize, max_ctx: usize) -> State {
        let c = &model.config;
        let b = max_batch.max(1);
        let (hd, qd, kvd, inter) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        State {
            max_batch: b,
            max_ctx,
            h: vec![0.0; b * hd],
            x: vec![0.0; b * hd.max(qd)],
            q: vec![0.0; b * qd],
            k: vec![0.0; b * kvd],
            v: vec![0.0; b * kvd],
            att: vec![0.0; b * qd],
            att_h: vec![0.0; b * qd],
            gate: vec![0.0; b * inter],
            up: vec![0.0; b * inter],
            down: vec![0.0; b * hd],
            scores: vec![0.0; c.num_heads * QB * max_ctx],
            acts: ActBuf::default(),
            scales: Vec::with_capacity(b),
            acc: Vec::with_capacity(b * inter.max(qd).max(hd)),
            normed: vec![0.0; b * hd],
            logits: Vec::new(),
            head_tmp: Vec::new(),
            head_q: Vec::new(),
            timings: Timings::default(),
        }
    }

    /// The residual stream of the last call, `[T][hidden]`.
    pub fn hidden(&self, t: usize, hidden: usize) -> &[f32] {
        &self.h[..t * hidden]
    }
}

/// `out = x / sqrt(mean(x²) + eps) · w` per row (transformers' BitNetRMSNorm in f32). Rows
/// are independent: several rows (prefill) run in parallel on the current pool, each with the
/// same arithmetic as a single row (decode), so results do not depend on the batch.
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    let one = |xr: &[f32], or: &mut [f32]| {
        let ms = (xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / n as f64) as f32;
        let r = 1.0f32 / (ms + eps).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = g * (v * r);
        }
    };
    if x.len() >= 4 * n {
        x.par_chunks_exact(n)
            .zip(out.par_chunks_exact_mut(n))
            .for_each(|(xr, or)| one(xr, or));
    } else {
        for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            one(xr, or);
        }
    }
}

impl Model {
    /// Run `tokens` at positions `cache.len() ..` and return the requested logits
    /// (`[T][vocab]`, or `[1][vocab]` for [`Logits::Last`]). Longer inputs than
    /// `state.max_batch` are processed in chunks.
    pub fn forward<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        st: &'s mut State,
        want: Logits,
        verify: VerifyCtx,
    ) -> Result<&'s [f32]> {
        let c = &self.config;
        let end = cache.len() + tokens.len();
        let max = cache
            .capacity()
            .min(self.rope.max_positions())
            .min(st.max_ctx);
        if end > max {
            return Err(Error::Context { len: end, max });
        }
        for (i, &id) in tokens.iter().enumerate() {
            if id as usize >= c.vocab_size {
                return Err(Error::TokenId {
                    id,
                    pos: cache.len() + i,
                    vocab: c.vocab_size,
                });
            }
        }
        let v = c.vocab_size;
        let rows_out = match want {
            Logits::All => tokens.len(),
            Logits::Last => 1,
            Logits::None => 0,
        };
        let mut logits = std::mem::take(&mut st.logits);
        logits.resize(rows_out * v, 0.0);
        let mut done = 0;
        for chunk in tokens.chunks(st.max_batch) {
            let t = chunk.len();
            self.pool
                .install(|| self.forward_chunk(chunk, cache, st, verify));
            let h = c.hidden_size;
            match want {
                Logits::All => self.pool.install(|| {
                    self.head_into(
                        &st.h[..t * h],
                        t,
                        &mut st.normed,
                        &mut st.head_tmp,
                        &mut st.head_q,
                        &mut logits[done * v..(done + t) * v],
                        &mut st.timings,
                    )
                }),
                // Only the very last row goes through the head.
                Logits::Last if done + t == tokens.len() => self.pool.install(|| {
                    self.head_into(
                        &st.h[(t - 1) * h..t * h],
                        1,
                        &mut st.normed,
                        &mut st.head_tmp,
                        &mut st.head_q,
                        &mut logits[..v],
                        &mut st.timings,
                    )
                }),
                _ => {}
            }
            done += t;
        }
        st.logits = logits;
        Ok(&st.logits[..rows_out * v])
    }

    /// One chunk of at most `max_batch` tokens through every layer; leaves the final residual
    /// stream in `st.h[..T·hidden]`.
    fn forward_chunk(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        st: &mut State,
        verify: VerifyCtx,
    ) {
        let h = self.config.hidden_size;
        let t = tokens.len();
        let t0 = Instant::now();
        for (i, &id) in tokens.iter().enumerate() {
            let row = self.embed.row(id as usize);
            for (o, &b) in st.h[i * h..(i + 1) * h].iter_mut().zip(row) {
                *o = half::bf16::from_bits(b).to_f32();
            }
        }
        st.timings.add(Stage::Norms, t0);
        let pos0 = cache.len();
        for l in 0..self.layers.len() {
            self.layer_forward(l, t, pos0, cache, st, verify);
        }
        cache.len = pos0 + t;
    }

    /// Run layer `l` on `st.h[..T·hidden]` (positions `pos0..pos0+T`), writing its keys and
    /// values into the cache. Public for teacher-forced layer tests.
    pub fn layer_forward(
        &self,
        l: usize,
        t: usize,
        pos0: usize,
        cache: &mut KvCache,
        st: &mut State,
        verify: VerifyCtx,
    ) {
        let c = &self.config;
        let layer: &Layer = &self.layers[l];
        let (h, qd, kvd, inter) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let k = if t > 1 { self.gemm_kernel } else { self.kernel };
        let eps = c.rms_norm_eps;

        // --- attention block
        let t0 = Instant::now();
        rmsnorm(&st.h[..t * h], &layer.input_norm, eps, &mut st.x[..t * h]);
        quant::quantize_batch_as(
            &st.x[..t * h],
            t,
            h,
            self.acts,
            &mut st.acts,
            &mut st.scales,
        );
        st.timings.add(Stage::Norms, t0);
        let t0 = Instant::now();
        forward_multi(
            &[&layer.q, &layer.k, &layer.v],
            k,
            &st.acts,
            &st.scales,
            &mut st.acc,
            &mut [
                &mut st.q[..t * qd],
                &mut st.k[..t * kvd],
                &mut st.v[..t * kvd],
            ],
            &verify,
        );
        st.timings.add(Stage::Ternary, t0);

        let t0 = Instant::now();
        self.attention(l, t, pos0, cache, st);
        st.timings.add(Stage::Attention, t0);

        let t0 = Instant::now();
        rmsnorm(
            &st.att[..t * qd],
            &layer.attn_sub_norm,
            eps,
            &mut st.x[..t * qd],
        );
        quant::quantize_batch_as(
            &st.x[..t * qd],
            t,
            qd,
            self.acts,
            &mut st.acts,
            &mut st.scales,
        );
        st.timings.add(Stage::Norms, t0);
        let t0 = Instant::now();
        layer.o.forward(
            k,
            &st.acts,
            &st.scales,
            &mut st.acc,
            &mut st.down[..t * h],
            &verify,
        );
        st.timings.add(Stage::Ternary, t0);

        // --- feed-forward block
        let t0 = Instant::now();
        for (a, &d) in st.h[..t * h].iter_mut().zip(&st.down[..t * h]) {
            *a += d;
        }
        rmsnorm(
            &st.h[..t * h],
            &layer.post_attn_norm,
            eps,
            &mut st.x[..t * h],
        );
        quant::quantize_batch_as(
            &st.x[..t * h],
            t,
            h,
            self.acts,
            &mut st.acts,
            &mut st.scales,
        );
        st.timings.add(Stage::Norms, t0);
        let t0 = Instant::now();
        forward_multi(
            &[&layer.gate, &layer.up],
            k,
            &st.acts,
            &st.scales,
            &mut st.acc,
            &mut [&mut st.gate[..t * inter], &mut st.up[..t * inter]],
            &verify,
        );
        st.timings.add(Stage::Ternary, t0);
        let t0 = Instant::now();
        self.ffn_act
            .apply(&mut st.gate[..t * inter], &st.up[..t * inter]);
        rmsnorm(
            &st.gate[..t * inter],
            &layer.ffn_sub_norm,
            eps,
            &mut st.up[..t * inter],
        );
        quant::quantize_batch_as(
            &st.up[..t * inter],
            t,
            inter,
            self.acts,
            &mut st.acts,
            &mut st.scales,
        );
        st.timings.add(Stage::Norms, t0);
        let t0 = Instant::now();
        layer.down.forward(
            k,
            &st.acts,
            &st.scales,
            &mut st.acc,
            &mut st.down[..t * h],
            &verify,
        );
        st.timings.add(Stage::Ternary, t0);
        let t0 = Instant::now();
        for (a, &d) in st.h[..t * h].iter_mut().zip(&st.down[..t * h]) {
            *a += d;
        }
        st.timings.add(Stage::Norms, t0);
    }

    /// RoPE, cache write, and causal GQA attention for `T` tokens at `pos0..`, from
    /// `st.q/k/v` into `st.att` (`[T][heads·hd]`).
    fn attention(&self, l: usize, t: usize, pos0: usize, cache: &mut KvCache, st: &mut State) {
        let c = &self.config;
        let (hd, nh, nkv) = (c.head_dim, c.num_heads, c.num_kv_heads);
        let group = c.gqa_group();
        for i in 0..t {
            let pos = pos0 + i;
            for j in 0..nh {
                self.rope
                    .apply(&mut st.q[(i * nh + j) * hd..(i * nh + j + 1) * hd], pos);
            }
            for j in 0..nkv {
                let kv = &mut st.k[(i * nkv + j) * hd..(i * nkv + j + 1) * hd];
                self.rope.apply(kv, pos);
                let dst = cache.base(l, j) + pos * hd;
                cache.k[dst..dst + hd].copy_from_slice(kv);
                cache.v[dst..dst + hd]
                    .copy_from_slice(&st.v[(i * nkv + j) * hd..(i * nkv + j + 1) * hd]);
            }
        }
        let scale = (hd as f32).powf(-0.5);
        let kern = self.kernel;
        let max_ctx = st.max_ctx;
        let q = &st.q;
        let cache = &*cache;
        // One task per query head: its attention-weight rows and its [T][hd] output block.
        // Within a head, the prompt's queries go in blocks of QB as small matrix products:
        // scores Q·Kᵀ with four keys per load of a query, the causal mask by row length, a
        // softmax per row, then P·V with every value row loaded once for the block. Each
        // score is the canonical `dot_f32` and each output element adds its terms in key order
        // with a separate multiply and add, exactly as one query alone would (decode), so
        // prefill and token-by-token decoding give the same bits.
        st.att_h[..nh * t * hd]
            .par_chunks_mut(t * hd)
            .zip(st.scores.par_chunks_mut(QB * max_ctx))
            .enumerate()
            .for_each(|(j, (out, scores))| {
                let kvh = j / group;
                let base = cache.base(l, kvh);
                let key = |p: usize| &cache.k[base + p * hd..base + (p + 1) * hd];
                let val = |p: usize| &cache.v[base + p * hd..base + (p + 1) * hd];
                let mut i0 = 0;
                while i0 < t {
                    let nq = (t - i0).min(QB);
                    let mut sums = [0f32; QB];
                    for qi in 0..nq {
                        let i = i0 + qi;
                        let n = pos0 + i + 1; // causal: keys 0..=pos
                        let qv = &q[(i * nh + j) * hd..(i * nh + j + 1) * hd];
                        let sc = &mut scores[qi * max_ctx..qi * max_ctx + n];
                        let mut p = 0;
                        while p + 4 <= n {
                            let d4 = float::dot_f32_x4(
                                kern,
                                qv,
                                [key(p), key(p + 1), key(p + 2), key(p + 3)],
                            );
                            for (s, d) in sc[p..p + 4].iter_mut().zip(d4) {
                                *s = d * scale;
                            }
                            p += 4;
                        }
                        for (pp, s) in sc.iter_mut().enumerate().skip(p) {
                            *s = float::dot_f32(kern, qv, key(pp)) * scale;
                        }
                        let m = sc.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                        let mut sum = 0f32;
                        for s in sc.iter_mut() {
                            *s = (*s - m).exp();
                            sum += *s;
                        }
                        sums[qi] = sum;
                        out[i * hd..(i + 1) * hd].fill(0.0);
                    }
                    // P·V: each value row once for the block; query qi takes keys 0..n(qi).
                    let n_max = pos0 + i0 + nq;
                    for p in 0..n_max {
                        let vp = val(p);
                        for qi in 0..nq {
                            let i = i0 + qi;
                            if p > pos0 + i {
                                continue;
                            }
                            let w = scores[qi * max_ctx + p] / sums[qi];
                            for (a, &b) in out[i * hd..(i + 1) * hd].iter_mut().zip(vp) {
                                *a += w * b;
                            }
                        }
                    }
                    i0 += nq;
                }
            });
        // [heads][T][hd] -> [T][heads·hd]
        for j in 0..nh {
            for i in 0..t {
                let src = &st.att_h[(j * t + i) * hd..(j * t + i + 1) * hd];
                st.att[(i * nh + j) * hd..(i * nh + j + 1) * hd].copy_from_slice(src);
            }
        }
    }

    /// Final norm and output head for `t` rows of `x` (`[t][hidden]`), into `out` (`[t][vocab]`).
    #[allow(clippy::too_many_arguments)]
    fn head_into(
        &self,
        x: &[f32],
        t: usize,
        normed: &mut [f32],
        tmp: &mut Vec<f32>,
        q: &mut Vec<i8>,
        out: &mut [f32],
        timings: &mut Timings,
    ) {
        let c = &self.config;
        let h = c.hidden_size;
        let t0 = Instant::now();
        rmsnorm(x, &self.norm, c.rms_norm_eps, &mut normed[..t * h]);
        match &self.head_int8 {
            None => {
                let head = self.head();
                float::head_gemm(
                    self.kernel,
                    head.data(),
                    head.rows,
                    head.cols,
                    &normed[..t * h],
                    t,
                    out,
                    tmp,
                );
            }
            Some(h8) => {
                // Per-token absmax int8 activations, exact integer dots, one scale per row.
                q.resize(t * h, 0);
                let sx: Vec<f32> = (0..t)
                    .map(|b| {
                        quant::quantize_row(&normed[b * h..(b + 1) * h], &mut q[b * h..(b + 1) * h])
                            .0
                    })
                    .collect();
                let k = self.kernel;
                let v = h8.rows;
                let q = &q[..];
                // [row][batch] so that each task owns a contiguous block (as `head_gemm`).
                let dst: &mut [f32] = if t == 1 {
                    &mut out[..v]
                } else {
                    tmp.resize(v * t, 0.0);
                    &mut tmp[..]
                };
                dst.par_chunks_mut(256 * t).enumerate().for_each(|(ci, o)| {
                    for (i, orow) in o.chunks_mut(t).enumerate() {
                        let r = ci * 256 + i;
                        let er = &h8.data[r * h..(r + 1) * h];
                        for (b, ov) in orow.iter_mut().enumerate() {
                            let acc = crate::kernels::int8::dot_i8(k, er, &q[b * h..(b + 1) * h]);
                            *ov = acc as f32 / (h8.scales[r] * sx[b]);
                        }
                    }
                });
                if t > 1 {
                    let tmp = &tmp[..];
                    out.par_chunks_mut(v).enumerate().for_each(|(b, orow)| {
                        for (r, o) in orow.iter_mut().enumerate() {
                            *o = tmp[r * t + b];
                        }
                    });
                }
            }
        }
        timings.add(Stage::Head, t0);
    }

    /// Final norm of the first `t` rows of `st.h` (for tests against `final_norm`).
    pub fn final_norm(&self, st: &State, t: usize) -> Vec<f32> {
        let h = self.config.hidden_size;
        let mut out = vec![0.0; t * h];
        rmsnorm(
            &st.h[..t * h],
            &self.norm,
            self.config.rms_norm_eps,
            &mut out,
        );
        out
    }

    /// Logits (`[t][vocab]`) from a given residual stream `h` (`[t][hidden]`), e.g. a
    /// reference model's last layer output.
    pub fn logits_from_hidden(&self, st: &mut State, h: &[f32], t: usize) -> Vec<f32> {
        let mut out = vec![0.0; t * self.config.vocab_size];
        let mut normed = vec![0.0; h.len()];
        self.pool.install(|| {
            self.head_into(
                h,
                t,
                &mut normed,
                &mut st.head_tmp,
                &mut st.head_q,
                &mut out,
                &mut st.timings,
            )
        });
        out
    }

    /// Set the residual stream (teacher forcing in tests): `h` is `[T][hidden]`.
    pub fn set_hidden(&self, st: &mut State, h: &[f32]) {
        st.h[..h.len()].copy_from_slice(h);
    }
}
