//! Activation rows to feed the encodings: synthetic distributions, and the real per-token
//! absmax-quantized inputs of a model's projections, captured while it runs.
//!
//! Capture wraps each projection's weight layout in a [`Recorder`] (a [`TernaryLayout`] that
//! copies the int8 activation rows it is given, then delegates), runs one prefill over text from
//! the shipped corpus, and keeps the rows of four projection inputs per layer: `qkv` (the
//! normed residual stream, shared by q/k/v), `o` (the attention output after its sub-norm),
//! `gate_up` (the normed residual after attention) and `down` (the ReLU²-gated FFN activation
//! after its sub-norm). These are exactly the integers the engine's kernels multiply.
//!
//! A trained tiny model has narrower projections than 2B-4T (e.g. hidden 256 instead of 2560),
//! so a "real" row at a 2B-4T width is the concatenation of captured rows of the matching kind
//! from successive tokens. Each piece keeps its own absmax (127 somewhere in every piece), so
//! such a row has ⌈2560/h⌉ values at ±127 where a 2560-wide model would have one; the bulk of
//! the magnitude distribution — what unary and thermometer costs depend on — is the model's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rotor::kernels::{Kernel, KernelKind};
use rotor::model::{KvCache, LoadOptions, Logits, Model, State, VerifyCtx};
use rotor::sample::Rng;
use rotor::ternary::{Acts, LayoutKind, Ternary, TernaryLayout};

/// Activation distributions swept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dist {
    /// Uniform over the whole int8 range [−128, 127].
    Uniform,
    /// Standard normal values, absmax-quantized per token (a model-free stand-in).
    Gauss,
    /// Captured from a running model (see the module docs).
    Real,
    /// Small magnitudes: uniform over [−8, 7] (4-bit activations).
    Small,
}

impl Dist {
    pub const ALL: [Dist; 4] = [Dist::Uniform, Dist::Gauss, Dist::Real, Dist::Small];
    pub fn name(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Gauss => "gauss",
            Dist::Real => "real",
            Dist::Small => "small",
        }
    }
}

/// A synthetic row of `cols` values.
pub fn synthetic(d: Dist, cols: usize, seed: u64) -> Vec<i8> {
    let mut r = Rng::new(seed);
    match d {
        Dist::Uniform => (0..cols).map(|_| r.next_u64() as u8 as i8).collect(),
        Dist::Small => (0..cols).map(|_| (r.next_u64() % 16) as i8 - 8).collect(),
        Dist::Gauss | Dist::Real => {
            // Box–Muller normals, then the engine's own per-token absmax quantization.
            let v: Vec<f32> = (0..cols)
                .map(|_| {
                    let u1 = (r.next_f32() as f64).max(1e-12);
                    let u2 = r.next_f32() as f64;
                    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                })
                .collect();
            let mut q = vec![0i8; cols];
            rotor::quant::quantize_row(&v, &mut q);
            q
        }
    }
}

/// Projection inputs recorded per layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    Qkv,
    O,
    GateUp,
    Down,
}

impl Site {
    pub const ALL: [Site; 4] = [Site::Qkv, Site::O, Site::GateUp, Site::Down];
    pub fn name(self) -> &'static str {
        match self {
            Site::Qkv => "qkv",
            Site::O => "o",
            Site::GateUp => "gate_up",
            Site::Down => "down",
        }
    }
}

type Log = Arc<Mutex<Vec<(Site, Vec<i8>)>>>;

/// A layout that records the activation rows it multiplies, then delegates.
#[derive(Debug)]
struct Recorder {
    inner: Box<dyn TernaryLayout>,
    site: Site,
    log: Log,
}

impl TernaryLayout for Recorder {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn rows(&self) -> usize {
        self.inner.rows()
    }
    fn cols(&self) -> usize {
        self.inner.cols()
    }
    fn storage_bytes(&self) -> usize {
        self.inner.storage_bytes()
    }
    fn to_dense(&self) -> Ternary {
        self.inner.to_dense()
    }
    fn kernels(&self) -> &'static [KernelKind] {
        self.inner.kernels()
    }
    fn groups(&self) -> usize {
        self.inner.groups()
    }
    fn with_bit_flipped(&self, bit: u64) -> Box<dyn TernaryLayout> {
        self.inner.with_bit_flipped(bit)
    }
    fn gemm_block(
        &self,
        k: Kernel,
        x: &Acts,
        units: std::ops::Range<usize>,
        out: &mut [&mut [i32]],
    ) {
        // Work is split into unit ranges; exactly one of them starts at 0.
        if units.start == 0 {
            let mut log = self.log.lock().expect("recorder log");
            for b in 0..x.batch {
                log.push((self.site, x.row(b)[..x.cols].to_vec()));
            }
        }
        self.inner.gemm_block(k, x, units, out)
    }
}

/// Rows captured from a model, by site.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// Which model (directory name) and how it was obtained.
    pub model: String,
    pub hidden: usize,
    pub inter: usize,
    pub layers: usize,
    pub tokens: usize,
    pub rows: Vec<(Site, Vec<i8>)>,
}

impl Captured {
    pub fn site(&self, s: Site) -> impl Iterator<Item = &Vec<i8>> {
        self.rows.iter().filter(move |r| r.0 == s).map(|r| &r.1)
    }

    /// A row of `cols` values: pieces of captured rows from `sites` (taken in turn), starting
    /// at piece `seed`, concatenated and cut to `cols`.
    pub fn row(&self, sites: &[Site], cols: usize, seed: u64) -> Vec<i8> {
        let pools: Vec<Vec<&Vec<i8>>> = sites.iter().map(|&s| self.site(s).collect()).collect();
        let mut out = Vec::with_capacity(cols);
        let mut i = seed as usize;
        while out.len() < cols {
            let pool = &pools[i % pools.len()];
            let piece = pool[(i / pools.len()) % pool.len()];
            let take = piece.len().min(cols - out.len());
            out.extend_from_slice(&piece[..take]);
            i += 1;
        }
        out
    }
}

/// The model to capture from: `datasets/models/austen-tiny` when it exists, else a model
/// synthesized (`preset`, random weights) into `scratch`.
pub fn model_dir(root: &Path, preset: &str, scratch: &Path) -> Result<(PathBuf, String)> {
    let trained = root.join("datasets/models/austen-tiny");
    if trained.join("model.safetensors").exists() {
        return Ok((trained, "austen-tiny (trained)".into()));
    }
    let dir = scratch.join(format!("synth-{preset}"));
    if !dir.join("model.safetensors").exists() {
        rotor::synth::synth(&rotor::synth::SynthOptions {
            preset: rotor::synth::Preset::parse(preset)?,
            seed: 7,
            out: dir.clone(),
            variant: rotor::synth::Variant::Packed,
            force: true,
            progress: false,
        })
        .with_context(|| format!("synthesizing a {preset} model into {}", dir.display()))?;
    }
    Ok((dir, format!("synth-{preset} (random weights)")))
}

/// Run one prefill of `tokens` tokens of the shipped test text through the model at `dir`
/// and record every projection input.
pub fn capture(dir: &Path, label: &str, root: &Path, tokens: usize) -> Result<Captured> {
    let mut model = Model::load(
        dir,
        &LoadOptions {
            layout: LayoutKind::ROTOR_DEFAULT,
            threads: Some(1),
            ..Default::default()
        },
    )
    .with_context(|| format!("loading {}", dir.display()))?;
    let log: Log = Arc::default();
    for layer in &mut model.layers {
        for (lin, site) in [
            (&mut layer.q, Site::Qkv),
            (&mut layer.o, Site::O),
            (&mut layer.gate, Site::GateUp),
            (&mut layer.down, Site::Down),
        ] {
            let placeholder = LayoutKind::Dense.from_dense(&Ternary::zeros(1, 1));
            let inner = std::mem::replace(&mut lin.weight, placeholder);
            lin.weight = Box::new(Recorder {
                inner,
                site,
                log: log.clone(),
            });
        }
    }
    let text_path = root.join("datasets/corpus/test.txt");
    let text = std::fs::read_to_string(&text_path)
        .with_context(|| format!("reading {}", text_path.display()))?;
    let tok = rotor::tokenizer::Tokenizer::from_dir(dir)?
        .with_context(|| format!("{} has no tokenizer.json", dir.display()))?;
    // Skip the opening lines (title page) and take `tokens` ids from running prose.
    let start = text.len() / 3;
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let mut ids = tok.encode(&text[start..(start + 40 * tokens).min(text.len())], false)?;
    ids.truncate(tokens);
    let vocab = model.config.vocab_size as u32;
    ids.retain(|&i| i < vocab);
    let t = ids.len();
    anyhow::ensure!(t > 0, "no tokens to run");
    let mut st = State::new(&model, t, t);
    let mut cache = KvCache::new(&model, t);
    model.forward(
        &ids,
        &mut cache,
        &mut st,
        Logits::None,
        VerifyCtx::default(),
    )?;
    let rows = std::mem::take(&mut *log.lock().expect("recorder log"));
    let c = &model.config;
    Ok(Captured {
        model: label.to_string(),
        hidden: c.hidden_size,
        inter: c.intermediate_size,
        layers: c.num_layers,
        tokens: t,
        rows,
    })
}

/// Summary statistics of a set of rows (over all their values).
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub mean_abs: f64,
    pub zero_frac: f64,
    pub p50_abs: f64,
    pub p90_abs: f64,
    /// Mean two's-complement planes per row.
    pub planes: f64,
    /// Mean over 64-column words of max |x| (thermometer levels per word).
    pub levels: f64,
}

pub fn summarize<'a>(rows: impl Iterator<Item = &'a [i8]>) -> Summary {
    let mut hist = [0u64; 129];
    let (mut n, mut planes, mut nrows, mut lv, mut nw) = (0u64, 0f64, 0f64, 0f64, 0f64);
    for r in rows {
        for &v in r {
            hist[v.unsigned_abs() as usize] += 1;
            n += 1;
        }
        planes += crate::encodings::planes_needed(r) as f64;
        nrows += 1.0;
        let words = r.len().div_ceil(64);
        lv += crate::encodings::word_max_abs(r, words)
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>();
        nw += words as f64;
    }
    if n == 0 {
        return Summary::default();
    }
    let quant = |q: f64| {
        let target = (q * n as f64).ceil() as u64;
        let mut acc = 0;
        for (m, &c) in hist.iter().enumerate() {
            acc += c;
            if acc >= target.max(1) {
                return m as f64;
            }
        }
        128.0
    };
    Summary {
        mean_abs: hist
            .iter()
            .enumerate()
            .map(|(m, &c)| m as f64 * c as f64)
            .sum::<f64>()
            / n as f64,
        zero_frac: hist[0] as f64 / n as f64,
        p50_abs: quant(0.5),
        p90_abs: quant(0.9),
        planes: planes / nrows,
        levels: lv / nw.max(1.0),
    }
}
