//! The BitNet b1.58 model: configuration, checkpoint loading and conversion, forward pass.
//!
//! Weights are addressed by their Hugging Face names. Loading reads `config.json`, maps the
//! safetensors file(s), checks every tensor, and converts each ternary projection into the
//! chosen layout straight from the checkpoint bytes (packed) or by absmean ternarization of the
//! bf16 master (online), in parallel. The tied output head stays bf16 in the mapping.

pub mod config;
pub mod forward;
pub mod load;
pub mod rope;

use std::path::Path;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use safetensors::Dtype;

pub use config::{Config, QuantMode};
pub use forward::{KvCache, Logits, PREFILL_BATCH, Stage, State, Timings};
pub use load::{Bf16Matrix, Checkpoint};

use crate::error::{Error, Result};
use crate::kernels::Kernel;
use crate::quant::{self, ActPrecision};
use crate::ternary::parallel;
use crate::ternary::{ActBuf, LayoutKind, Ternary, TernaryLayout};
use crate::verify::{Checksums, Fault, Policy, VerifyStats};

/// How a projection's dequantized output is scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// `y = (Σ q·t) / s · w` (`autobitlinear`; online master with `w = 1/s_w`).
    Multiply(f32),
    /// `y = (Σ q·t) / (s · w)` (legacy `bitlinear`).
    Divide(f32),
}

/// The feed-forward activation `act(gate) · up`.
///
/// BitNet b1.58 (`hidden_act: relu2`) uses the squared ReLU, and that is the only activation a
/// `config.json` can select. [`FfnAct::Silu`] is a **research switch** (`--ffn-act silu`): it
/// reproduces llama.cpp's BitNet graph, which builds the block with SiLU whatever the model was
/// trained with, so the two engines can be compared on the same function. It is never used
/// for the real model's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FfnAct {
    /// `relu(g)² · u` (BitNet b1.58, transformers' `relu2`).
    #[default]
    Relu2,
    /// `g / (1 + e^-g) · u` (llama.cpp's `LLM_FFN_SILU, LLM_FFN_PAR`).
    Silu,
}

impl FfnAct {
    pub fn parse(s: &str) -> Result<FfnAct> {
        match s.trim().to_ascii_lowercase().as_str() {
            "relu2" => Ok(FfnAct::Relu2),
            "silu" => Ok(FfnAct::Silu),
            _ => Err(Error::Invalid(format!(
                "unknown FFN activation `{s}` (relu2 = BitNet b1.58, silu = llama.cpp's BitNet graph)"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            FfnAct::Relu2 => "relu2",
            FfnAct::Silu => "silu",
        }
    }
    /// `act(g) · u`, in place over `gate`.
    pub fn apply(self, gate: &mut [f32], up: &[f32]) {
        match self {
            FfnAct::Relu2 => {
                for (g, &u) in gate.iter_mut().zip(up) {
                    let r = g.max(0.0);
                    *g = r * r * u;
                }
            }
            FfnAct::Silu => {
                for (g, &u) in gate.iter_mut().zip(up) {
                    *g = *g / (1.0 + (-*g).exp()) * u;
                }
            }
        }
    }
}

/// One ternary projection (`AutoBitLinear`): weights in some layout and a per-tensor scale.
#[derive(Debug)]
pub struct Linear {
    pub name: String,
    /// Position among all projections (layer · 7 + q,k,v,o,gate,up,down), for fault targets.
    pub index: usize,
    pub weight: Box<dyn TernaryLayout>,
    pub scale: Scale,
    /// Exact checksums for runtime verification, when enabled.
    pub checks: Option<Checksums>,
    /// The dense ternary form, built on first use by the f32-activation path only.
    pub dense: std::sync::OnceLock<Ternary>,
}

impl Linear {
    pub fn rows(&self) -> usize {
        self.weight.rows()
    }
    pub fn cols(&self) -> usize {
        self.weight.cols()
    }

    /// `y[b][r] = dequant(Σ_c t[r][c] · q[b][c])` for a quantized batch; `acc` is scratch.
    pub fn forward(
        &self,
        k: Kernel,
        x: &ActBuf,
        scales: &[f32],
        acc: &mut Vec<i32>,
        y: &mut [f32],
        verify: &VerifyCtx,
    ) {
        if !x.float.is_empty() {
            return self.forward_f32(x, y);
        }
        let (rows, batch) = (self.rows(), x.batch);
        acc.resize(rows * batch, 0);
        if let (Some(f), Some(c), Some(stats)) = (verify.fault, &self.checks, verify.stats)
            && f.armed_for(self.index)
        {
            crate::verify::faulty_product(
                f,
                c,
                self.weight.as_ref(),
                k,
                x,
                &mut acc[..rows * batch],
                verify.policy,
                stats,
            );
        } else {
            parallel::gemm(self.weight.as_ref(), k, &x.view(), &mut acc[..rows * batch]);
        }
        if verify.fault.is_some_and(|f| f.target == self.index) {
            // The faulted product was checked (and repaired) inside `faulty_product`; only
            // dequantize.
            self.dequantize(&acc[..rows * batch], batch, scales, y);
        } else {
            self.finish(x, scales, &mut acc[..rows * batch], y, verify);
        }
    }

    /// The f32-activation research path ([`ActPrecision::F32`]): `y[b][r] = (Σ_c t[r][c] ·
    /// x[b][c]) · w` in f32 over the unquantized rows in `x.float`, from the dense ternary form
    /// (built once). Slow (tokens of a batch in parallel, each row a plain loop); not
    /// verified (checksums are integer identities). Every output is computed the same way
    /// whatever the thread count.
    fn forward_f32(&self, x: &ActBuf, y: &mut [f32]) {
        let (rows, cols, batch) = (self.rows(), self.cols(), x.batch);
        let t = self.dense.get_or_init(|| self.weight.to_dense());
        y[..batch * rows]
            .par_chunks_mut(rows)
            .enumerate()
            .for_each(|(b, yb)| {
                let xb = &x.float[b * cols..(b + 1) * cols];
                for r in 0..rows {
                    // Eight independent partial sums (so the compiler can vectorize), then a fixed
                    // reduction order: deterministic, not bit-equal to a sequential sum.
                    let (w, mut part) = (t.row(r), [0f32; 8]);
                    let mut wc = w.chunks_exact(8);
                    let mut xc = xb.chunks_exact(8);
                    for (w8, x8) in (&mut wc).zip(&mut xc) {
                        for i in 0..8 {
                            part[i] += w8[i] as f32 * x8[i];
                        }
                    }
                    let mut sum = part.iter().sum::<f32>();
                    for (&w, &v) in wc.remainder().iter().zip(xc.remainder()) {
                        sum += w as f32 * v;
                    }
                    yb[r] = match self.scale {
                        Scale::Multiply(w) => sum * w,
                        Scale::Divide(w) => sum / w,
                    };
                }
            });
    }

    /// Check (when verifying) and dequantize an integer product `acc` (`[row][batch]`).
    fn finish(
        &self,
        x: &ActBuf,
        scales: &[f32],
        acc: &mut [i32],
        y: &mut [f32],
        verify: &VerifyCtx,
    ) {
        if let (Some(c), Some(stats)) = (&self.checks, verify.stats) {
            c.check(verify.policy, self.weight.as_ref(), &x.view(), acc, stats);
        }
        self.dequantize(acc, x.batch, scales, y);
    }

    /// `y[b][r] = acc[r][b] / s_b · w` (or `/ (s_b · w)` for legacy `bitlinear`). For a
    /// batch, in parallel over tokens (the division per element made it a serial tail of
    /// every batched product); the same arithmetic per element as a single token, so prefill
    /// and decode give the same bits.
    fn dequantize(&self, acc: &[i32], batch: usize, scales: &[f32], y: &mut [f32]) {
        let rows = self.rows();
        let one = |b: usize, yr: &mut [f32]| {
            let s = scales[b];
            match self.scale {
                Scale::Multiply(w) => {
                    for (r, o) in yr.iter_mut().enumerate() {
                        *o = acc[r * batch + b] as f32 / s * w;
                    }
                }
                Scale::Divide(w) => {
                    let d = s * w;
                    for (r, o) in yr.iter_mut().enumerate() {
                        *o = acc[r * batch + b] as f32 / d;
                    }
                }
            }
        };
        // acc is [row][batch]; y is [batch][row].
        let y = &mut y[..batch * rows];
        if batch >= 8 {
            y.par_chunks_mut(rows)
                .enumerate()
                .for_each(|(b, yr)| one(b, yr));
        } else {
            for (b, yr) in y.chunks_mut(rows).enumerate() {
                one(b, yr);
            }
        }
    }
}

/// Several projections of the same quantized activations in one parallel region (q/k/v,
/// gate/up), each then checked and dequantized as [`Linear::forward`] does.
pub fn forward_multi(
    linears: &[&Linear],
    k: Kernel,
    x: &ActBuf,
    scales: &[f32],
    acc: &mut Vec<i32>,
    ys: &mut [&mut [f32]],
    verify: &VerifyCtx,
) {
    // Faults target single products, and f32 activations have their own path: one call per
    // projection.
    if verify.fault.is_some() || !x.float.is_empty() {
        for (l, y) in linears.iter().zip(ys.iter_mut()) {
            l.forward(k, x, scales, acc, y, verify);
        }
        return;
    }
    let batch = x.batch;
    let sizes: Vec<usize> = linears.iter().map(|l| l.rows() * batch).collect();
    acc.resize(sizes.iter().sum(), 0);
    {
        let mut rest = &mut acc[..];
        let mut outs: Vec<&mut [i32]> = Vec::with_capacity(linears.len());
        for &n in &sizes {
            let (a, b) = rest.split_at_mut(n);
            outs.push(a);
            rest = b;
        }
        let layouts: Vec<&dyn TernaryLayout> = linears.iter().map(|l| l.weight.as_ref()).collect();
        parallel::gemm_multi(&layouts, k, &x.view(), &mut outs);
    }
    let mut off = 0;
    for ((l, y), &n) in linears.iter().zip(ys.iter_mut()).zip(&sizes) {
        l.finish(x, scales, &mut acc[off..off + n], y, verify);
        off += n;
    }
}

/// Verification settings for one forward pass.
#[derive(Clone, Copy, Default)]
pub struct VerifyCtx<'a> {
    pub policy: Policy,
    pub stats: Option<&'a VerifyStats>,
    /// A fault to inject (fault-injection runs only).
    pub fault: Option<&'a Fault>,
}

/// One decoder layer's weights (shapes for 2B-4T in comments).
#[derive(Debug)]
pub struct Layer {
    pub input_norm: Vec<f32>,     // [2560]
    pub post_attn_norm: Vec<f32>, // [2560]
    pub attn_sub_norm: Vec<f32>,  // [2560] (n_heads · head_dim)
    pub ffn_sub_norm: Vec<f32>,   // [6912]
    pub q: Linear,                // 2560 -> 2560
    pub k: Linear,                // 2560 -> 640
    pub v: Linear,                // 2560 -> 640
    pub o: Linear,                // 2560 -> 2560
    pub gate: Linear,             // 2560 -> 6912
    pub up: Linear,               // 2560 -> 6912
    pub down: Linear,             // 6912 -> 2560
}

impl Layer {
    pub fn linears(&self) -> [&Linear; 7] {
        [
            &self.q, &self.k, &self.v, &self.o, &self.gate, &self.up, &self.down,
        ]
    }
}

/// Precision of the output head (the tied embedding read every token).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadKind {
    /// The checkpoint's bf16 values, f32 dot products: exact (the default).
    #[default]
    Bf16,
    /// Int8 rows with a per-row absmax scale, int8 activations: half the bytes per token, lossy
    /// (its effect on logits and perplexity is measured by the perplexity experiment).
    Int8,
}

impl HeadKind {
    pub fn parse(s: &str) -> Result<HeadKind> {
        match s {
            "bf16" => Ok(HeadKind::Bf16),
            "int8" => Ok(HeadKind::Int8),
            o => Err(Error::Invalid(format!(
                "--head `{o}`: expected bf16 or int8"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Bf16 => "bf16",
            HeadKind::Int8 => "int8",
        }
    }
}

/// An int8 copy of the output head: `q[r][c] = round(e[r][c] · s_r)`, `s_r = 127 / max|e[r]|`,
/// so `logit ≈ (Σ_c q[r][c] · q_x[c]) / (s_r · s_x)`.
#[derive(Debug)]
pub struct Int8Head {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<i8>,
    pub scales: Vec<f32>,
}

impl Int8Head {
    pub fn from_bf16(m: &Bf16Matrix) -> Int8Head {
        let (rows, cols) = (m.rows, m.cols);
        let mut data = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows];
        data.par_chunks_mut(cols)
            .zip(scales.par_iter_mut())
            .enumerate()
            .for_each(|(r, (q, s))| {
                let row: Vec<f32> = m
                    .row(r)
                    .iter()
                    .map(|&b| half::bf16::from_bits(b).to_f32())
                    .collect();
                *s = quant::quantize_row(&row, q).0;
            });
        Int8Head {
            rows,
            cols,
            data,
            scales,
        }
    }

    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * self.scales.len()
    }
}

/// Options for [`Model::load`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub layout: LayoutKind,
    /// `None` (`--kernel auto`): the fastest kernel this CPU has for the layout
    /// ([`select`]), with the widest batched family for prefill.
    pub kernel: Option<Kernel>,
    /// Worker threads (`None`: all cores).
    pub threads: Option<usize>,
    /// Precompute checksums for runtime verification.
    pub checksums: bool,
    /// Output head precision.
    pub head: HeadKind,
    /// Activation precision of the projections (int8 is BitNet b1.58).
    pub acts: ActPrecision,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            layout: LayoutKind::rotor(),
            kernel: None,
            threads: None,
            checksums: false,
            head: HeadKind::Bf16,
            acts: ActPrecision::Int(8),
        }
    }
}

/// Wall-clock cost of loading.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadTimes {
    /// Config, mapping, header validation, norms.
    pub load: Duration,
    /// Converting (or ternarizing) every projection into the layout.
    pub convert: Duration,
}

/// A loaded model, ready to run.
pub struct Model {
    pub config: Config,
    pub layout: LayoutKind,
    /// The kernel of single-token products (decode).
    pub kernel: Kernel,
    /// The kernel of batched products (prefill): [`select::gemm_kernel`] unless `--kernel`
    /// named one.
    pub gemm_kernel: Kernel,
    pub embed: Bf16Matrix, // [vocab][hidden]
    /// Untied output head (`lm_head.weight`), when the checkpoint has one.
    pub lm_head: Option<Bf16Matrix>,
    /// The int8 head, when loaded with [`HeadKind::Int8`].
    pub head_int8: Option<Int8Head>,
    /// How projection inputs are quantized (see [`ActPrecision`]).
    pub acts: ActPrecision,
    /// The feed-forward activation: [`FfnAct::Relu2`] after loading (the model's own); a
    /// research run may set [`FfnAct::Silu`] (see there).
    pub ffn_act: FfnAct,
    pub layers: Vec<Layer>,
    pub norm: Vec<f32>, // [hidden]
    pub rope: rope::Rope,
    pub pool: rayon::ThreadPool,
    pub times: LoadTimes,
    pub checkpoint_bytes: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("layout", &self.layout)
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

const PROJS: [(&str, &str); 7] = [
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
];

impl Model {
    /// Load a model directory as downloaded from Hugging Face.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Model> {
        // A `.gguf` file, or a directory with exactly one and no safetensors: the GGUF loader.
        if let Some(gguf) = crate::gguf::gguf_path(dir) {
            return crate::gguf::load_model(&gguf, opts);
        }
        let t0 = Instant::now();
        let config = Config::from_dir(dir)?;
        let ck = Checkpoint::open(dir)?;
        let (kernel, pool) = runtime(opts)?;
        let c = &config;
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let embed = ck.bf16_matrix("model.embed_tokens.weight", c.vocab_size, h)?;
        let lm_head = if ck.contains("lm_head.weight") && !c.tie_word_embeddings {
            Some(ck.bf16_matrix("lm_head.weight", c.vocab_size, h)?)
        } else if !c.tie_word_embeddings {
            return Err(Error::MissingTensor {
                name: "lm_head.weight".into(),
                where_: format!(
                    "{} (config.json has tie_word_embeddings = false)",
                    dir.display()
                ),
            });
        } else {
            None
        };
        let norm = ck.floats("model.norm.weight", &[h])?;
        let mut norms = Vec::new();
        for l in 0..c.num_layers {
            let p = format!("model.layers.{l}");
            norms.push([
                ck.floats(&format!("{p}.input_layernorm.weight"), &[h])?,
                ck.floats(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                ck.floats(&format!("{p}.self_attn.attn_sub_norm.weight"), &[c.q_dim()])?,
                ck.floats(&format!("{p}.mlp.ffn_sub_norm.weight"), &[inter])?,
            ]);
        }
        // Validate every projection's tensors before converting any.
        let shapes = |proj: &str| -> (usize, usize) {
            match proj {
                "q_proj" => (c.q_dim(), h),
                "k_proj" | "v_proj" => (c.kv_dim(), h),
                "o_proj" => (h, c.q_dim()),
                "gate_proj" | "up_proj" => (inter, h),
                _ => (h, inter),
            }
        };
        let mut jobs = Vec::new();
        for l in 0..c.num_layers {
            for (part, proj) in PROJS {
                let name = format!("model.layers.{l}.{part}.{proj}");
                let (rows, cols) = shapes(proj);
                jobs.push(ProjJob { name, rows, cols });
            }
        }
        let mut scales = Vec::with_capacity(jobs.len());
        for j in &jobs {
            scales.push(check_projection(&ck, c.quant, j)?);
        }
        let load_time = t0.elapsed();

        let t1 = Instant::now();
        let layout = opts.layout;
        let checksums = opts.checksums;
        let linears: Vec<Linear> = pool.install(|| {
            jobs.par_iter()
                .zip(scales.par_iter())
                .enumerate()
                .map(|(i, (j, &scale))| {
                    convert_projection(&ck, c.quant, j, scale, layout, kernel, checksums)
                        .map(|l| Linear { index: i, ..l })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let convert_time = t1.elapsed();

        let times = LoadTimes {
            load: load_time,
            convert: convert_time,
        };
        Ok(finish(
            config,
            opts,
            layout,
            kernel,
            pool,
            embed,
            lm_head,
            norm,
            norms,
            linears,
            times,
            ck.file_bytes(),
        ))
    }

    /// Build a model from weights read by another loader (e.g. GGUF): each projection's
    /// ternary matrix is converted into `opts.layout` in parallel, as [`Model::load`] does.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        config: Config,
        embed: Bf16Matrix,
        lm_head: Option<Bf16Matrix>,
        norm: Vec<f32>,
        layer_norms: Vec<[Vec<f32>; 4]>,
        projections: Vec<ProjectionData>,
        opts: &LoadOptions,
        source_bytes: usize,
        load_time: Duration,
    ) -> Result<Model> {
        let c = &config;
        if layer_norms.len() != c.num_layers || projections.len() != 7 * c.num_layers {
            return Err(Error::Invalid(format!(
                "model parts: {} layers of norms and {} projections for {} layers",
                layer_norms.len(),
                projections.len(),
                c.num_layers
            )));
        }
        let (kernel, pool) = runtime(opts)?;
        let layout = opts.layout;
        let t1 = Instant::now();
        let linears: Vec<Linear> = pool.install(|| {
            projections
                .into_par_iter()
                .enumerate()
                .map(|(index, p)| {
                    let (weight, dense): (Box<dyn TernaryLayout>, Option<Ternary>) = match p.source
                    {
                        TernarySource::HfPacked(bytes) => (
                            layout
                                .from_hf_packed(kernel, &bytes, p.rows, p.cols)
                                .map_err(|e| Error::BadTensor {
                                    name: p.name.clone(),
                                    msg: e.to_string(),
                                })?,
                            None,
                        ),
                        TernarySource::Dense(t) => (layout.from_dense(&t), Some(t)),
                    };
                    let checks = opts
                        .checksums
                        .then(|| Checksums::new(&dense.unwrap_or_else(|| weight.to_dense())));
                    Ok(Linear {
                        name: p.name,
                        index,
                        weight,
                        scale: p.scale,
                        checks,
                        dense: Default::default(),
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let times = LoadTimes {
            load: load_time,
            convert: t1.elapsed(),
        };
        Ok(finish(
            config,
            opts,
            layout,
            kernel,
            pool,
            embed,
            lm_head,
            norm,
            layer_norms,
            linears,
            times,
            source_bytes,
        ))
    }

    /// Threads in the model's pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Bytes of ternary weight storage in the chosen layout.
    pub fn ternary_bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| l.linears())
            .map(|p| p.weight.storage_bytes())
            .sum()
    }

    /// Ternary multiply-adds per token (Σ rows × cols over every projection).
    pub fn ternary_macs_per_token(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| l.linears())
            .map(|p| p.weight.rows() * p.weight.cols())
            .sum()
    }

    /// Bytes the output head reads per token (bf16 matrix or the int8 copy).
    pub fn head_bytes(&self) -> usize {
        match &self.head_int8 {
            Some(h) => h.bytes(),
            None => self.head().data().len() * 2,
        }
    }

    /// The output head matrix (tied embedding unless the checkpoint has `lm_head.weight`).
    pub fn head(&self) -> &Bf16Matrix {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }
}

/// A projection's ternary weights as another loader found them.
#[derive(Debug)]
pub enum TernarySource {
    /// The checkpoint's packed bytes `[rows/4][cols]` (FORMAT.md §2.1).
    HfPacked(Vec<u8>),
    /// Dense ternary values.
    Dense(Ternary),
}

/// One projection for [`Model::from_parts`], in layer order q, k, v, o, gate, up, down.
#[derive(Debug)]
pub struct ProjectionData {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub source: TernarySource,
    pub scale: Scale,
}

/// The kernel and thread pool of a load.
fn runtime(opts: &LoadOptions) -> Result<(Kernel, rayon::ThreadPool)> {
    let kernel = match opts.kernel {
        Some(k) => {
            opts.layout.check_kernel(k)?;
            k
        }
        None => opts.layout.best_kernel(),
    };
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        return Err(Error::Invalid("--threads must be at least 1".into()));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("thread pool: {e}")))?;
    Ok((kernel, pool))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    config: Config,
    opts: &LoadOptions,
    layout: LayoutKind,
    kernel: Kernel,
    pool: rayon::ThreadPool,
    embed: Bf16Matrix,
    lm_head: Option<Bf16Matrix>,
    norm: Vec<f32>,
    norms: Vec<[Vec<f32>; 4]>,
    mut linears: Vec<Linear>,
    mut times: LoadTimes,
    checkpoint_bytes: usize,
) -> Model {
    let c = &config;
    let t = Instant::now();
    let head_int8 = (opts.head == HeadKind::Int8)
        .then(|| pool.install(|| Int8Head::from_bf16(lm_head.as_ref().unwrap_or(&embed))));
    times.convert += t.elapsed();
    let mut layers = Vec::with_capacity(c.num_layers);
    let mut it = linears.drain(..);
    for [input_norm, post_attn_norm, attn_sub_norm, ffn_sub_norm] in norms {
        let mut next = || it.next().expect("seven projections per layer");
        layers.push(Layer {
            input_norm,
            post_attn_norm,
            attn_sub_norm,
            ffn_sub_norm,
            q: next(),
            k: next(),
            v: next(),
            o: next(),
            gate: next(),
            up: next(),
            down: next(),
        });
    }
    drop(it);
    let rope = rope::Rope::new(c.head_dim, c.rope_theta, c.max_position_embeddings);
    let gemm_kernel = match opts.kernel {
        Some(k) => k,
        None => crate::ternary::select::gemm_kernel(layout, kernel),
    };
    Model {
        checkpoint_bytes,
        acts: opts.acts,
        ffn_act: FfnAct::Relu2,
        config,
        layout,
        kernel,
        gemm_kernel,
        embed,
        lm_head,
        head_int8,
        layers,
        norm,
        rope,
        pool,
        times,
    }
}

struct ProjJob {
    name: String,
    rows: usize,
    cols: usize,
}

/// Check one projection's tensors against the quantization mode; returns the stored scale.
fn check_projection(ck: &Checkpoint, mode: QuantMode, j: &ProjJob) -> Result<Option<f32>> {
    let wname = format!("{}.weight", j.name);
    let sname = format!("{}.weight_scale", j.name);
    match mode {
        QuantMode::PackedMultiply | QuantMode::PackedDivide => {
            let t = ck.get(&wname)?;
            if t.dtype != Dtype::U8 {
                return Err(Error::Dtype {
                    name: wname,
                    expected: "U8 (packed ternary; config says quantization_mode offline)".into(),
                    found: format!("{:?}", t.dtype),
                });
            }
            ck.expect(&wname, Dtype::U8, &[j.rows / 4, j.cols])?;
            let s = ck.scalar(&sname)?;
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::BadTensor {
                    name: sname,
                    msg: format!("weight_scale is {s}; it must be a finite positive number"),
                });
            }
            Ok(Some(s))
        }
        QuantMode::OnlineMaster => {
            let t = ck.get(&wname)?;
            if t.dtype == Dtype::U8 {
                return Err(Error::Dtype {
                    name: wname,
                    expected: "BF16/F16/F32 master weights (config says quantization_mode online)"
                        .into(),
                    found: "U8 (packed)".into(),
                });
            }
            if ck.contains(&sname) {
                return Err(Error::BadTensor {
                    name: sname,
                    msg: "a weight_scale is present but config.json says quantization_mode online \
                          (bf16 master weights have none): config and weights disagree"
                        .into(),
                });
            }
            if t.shape != [j.rows, j.cols] {
                return Err(Error::Shape {
                    name: wname,
                    expected: vec![j.rows, j.cols],
                    found: t.shape.clone(),
                });
            }
            Ok(None)
        }
    }
}

fn convert_projection(
    ck: &Checkpoint,
    mode: QuantMode,
    j: &ProjJob,
    stored_scale: Option<f32>,
    layout: LayoutKind,
    kernel: Kernel,
    checksums: bool,
) -> Result<Linear> {
    let wname = format!("{}.weight", j.name);
    let (weight, scale, dense): (Box<dyn TernaryLayout>, Scale, Option<Ternary>) = match mode {
        QuantMode::PackedMultiply | QuantMode::PackedDivide => {
            let tref = ck.get(&wname)?;
            let bytes = ck.bytes(tref);
            let w = layout
                .from_hf_packed(kernel, bytes, j.rows, j.cols)
                .map_err(|e| Error::BadTensor {
                    name: wname.clone(),
                    msg: e.to_string(),
                })?;
            ck.release(tref);
            let s = stored_scale.expect("checked");
            let scale = if mode == QuantMode::PackedMultiply {
                Scale::Multiply(s)
            } else {
                Scale::Divide(s)
            };
            (w, scale, None)
        }
        QuantMode::OnlineMaster => {
            let master = ck.floats(&wname, &[j.rows, j.cols])?;
            let (t, s) = quant::absmean_ternarize(&master);
            let t = Ternary::new(j.rows, j.cols, t)?;
            (layout.from_dense(&t), Scale::Multiply(s), Some(t))
        }
    };
    let checks = if checksums {
        let t = match dense {
            Some(t) => t,
            None => weight.to_dense(),
        };
        Some(Checksums::new(&t))
    } else {
        None
    };
    Ok(Linear {
        name: j.name.clone(),
        index: 0,
        weight,
        scale,
        checks,
        dense: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::FfnAct;

    #[test]
    fn ffn_activations() {
        let up = [3.0f32, 3.0, 3.0, 2.0];
        let mut g = [-1.0f32, 0.0, 2.0, 30.0];
        FfnAct::Relu2.apply(&mut g, &up);
        assert_eq!(g, [0.0, 0.0, 12.0, 1800.0]);
        let mut g = [-1.0f32, 0.0, 2.0, 30.0];
        FfnAct::Silu.apply(&mut g, &up);
        let silu = |x: f32| x / (1.0 + (-x).exp());
        assert_eq!(
            g,
            [silu(-1.0) * 3.0, 0.0, silu(2.0) * 3.0, silu(30.0) * 2.0]
        );
        assert!(
            g[0] < 0.0,
            "SiLU lets negative gates through, ReLU² does not"
        );
        assert_eq!(FfnAct::parse("SiLU").unwrap(), FfnAct::Silu);
        assert_eq!(FfnAct::default(), FfnAct::Relu2);
        assert!(FfnAct::parse("gelu").is_err());
    }
}
