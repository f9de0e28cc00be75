//! `rotor bench`: load, conversion, prefill and decode speed of a loaded model, memory, and
//! the fraction of the memory roofline reached — the numbers behind issue "speed" and the
//! `speed` experiment.
//!
//! Prefill runs a fixed pseudo-random prompt through the batched path (timed `runs` times
//! after a warm-up); decode then runs `gen_tokens` single-token steps from the KV cache, `runs`
//! times, reporting the median and min–max. The roofline is `bytes read per token / read
//! bandwidth`, with the bandwidth measured in the same process and thread pool.

use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{KvCache, Logits, Model, State, VerifyCtx};
use crate::verify::{Policy, VerifyStats};

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub runs: usize,
    pub policy: Policy,
    /// Measure the read bandwidth for the roofline (≈ 0.5 s).
    pub measure_bandwidth: bool,
}

/// Decode milliseconds per token by stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageMs {
    pub ternary: f64,
    pub attention: f64,
    pub norms_quant: f64,
    pub head: f64,
}

/// What `rotor bench --json` prints (keys are a contract).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub load_s: f64,
    pub convert_s: f64,
    pub prefill_tok_s: f64,
    pub prefill_tok_s_min: f64,
    pub prefill_tok_s_max: f64,
    pub decode_tok_s: f64,
    pub decode_tok_s_min: f64,
    pub decode_tok_s_max: f64,
    pub peak_rss_bytes: Option<u64>,
    pub bytes_per_token: usize,
    pub read_bandwidth_bytes_s: f64,
    pub roofline_fraction: f64,
    pub roofline_tok_s: f64,
    pub threads: usize,
    pub layout: String,
    pub kernel: String,
    pub head: String,
    pub verify: String,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub runs: usize,
    pub decode_ms_per_token_by_stage: StageMs,
    /// Milliseconds of one prefill of `prompt_tokens`, by stage (mean of the timed runs).
    pub prefill_ms_by_stage: StageMs,
    /// The kernel of batched products (prefill); `kernel` is the single-token one.
    pub gemm_kernel: String,
    /// Ternary multiply-adds per token (2.08 G for 2B-4T).
    pub ternary_macs_per_token: usize,
    /// Ternary multiply-adds per second during prefill (prompt × MACs per token / the
    /// prefill's ternary time).
    pub prefill_ternary_gmacs: f64,
    /// The core clock this process saw (`sys::core_clock_hz`), for cycles per weight.
    pub core_clock_hz: f64,
    pub kv_cache_bytes: usize,
    pub model_weight_bytes: usize,
}

fn stats3(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

pub fn run(model: &Model, o: &BenchOptions, stats: &VerifyStats) -> Result<BenchReport> {
    let verify = VerifyCtx {
        policy: o.policy,
        stats: (o.policy != Policy::Off).then_some(stats),
        fault: None,
    };
    let c = &model.config;
    let n_prompt = o.prompt_tokens.max(1);
    let runs = o.runs.max(1);
    let cap = n_prompt + o.gen_tokens + 1;
    if cap > c.max_position_embeddings {
        return Err(Error::Context {
            len: cap,
            max: c.max_position_embeddings,
        });
    }
    // Deterministic pseudo-random prompt ids.
    let mut rng = crate::sample::Rng::new(42);
    let prompt: Vec<u32> = (0..n_prompt)
        .map(|_| (rng.next_u64() % c.vocab_size as u64) as u32)
        .collect();
    let mut cache = KvCache::new(model, cap);
    let mut st = State::new(model, crate::model::PREFILL_BATCH.min(n_prompt), cap);
    model.forward(&prompt, &mut cache, &mut st, Logits::Last, verify)?;
    let mut prefill = vec![];
    st.timings = Default::default();
    for _ in 0..runs {
        cache.clear();
        let t = Instant::now();
        model.forward(&prompt, &mut cache, &mut st, Logits::Last, verify)?;
        prefill.push(n_prompt as f64 / t.elapsed().as_secs_f64());
    }
    let pt = st.timings;
    let mut decode = vec![];
    st.timings = Default::default();
    for _ in 0..runs {
        cache.truncate(n_prompt);
        // The ids fed do not change the work done per step.
        let mut next = prompt[n_prompt - 1];
        let t = Instant::now();
        for _ in 0..o.gen_tokens {
            let l = model.forward(&[next], &mut cache, &mut st, Logits::Last, verify)?;
            next = crate::sample::argmax(l);
        }
        decode.push(o.gen_tokens as f64 / t.elapsed().as_secs_f64());
    }
    let (pmin, pmed, pmax) = stats3(&mut prefill);
    let (dmin, dmed, dmax) = stats3(&mut decode);
    let head_bytes = model.head_bytes();
    let bytes_per_token = model.ternary_bytes() + head_bytes;
    // The peak before the bandwidth probe: its 1 GiB buffer is the probe's, not the model's.
    let peak_rss_bytes = crate::sys::peak_rss_bytes();
    let bw = if o.measure_bandwidth {
        model
            .pool
            .install(|| crate::sys::read_bandwidth(crate::sys::PROBE_BYTES, 3))
    } else {
        f64::NAN
    };
    let steps = (runs * o.gen_tokens).max(1) as f64;
    let tm = st.timings;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / steps;
    Ok(BenchReport {
        load_s: model.times.load.as_secs_f64(),
        convert_s: model.times.convert.as_secs_f64(),
        prefill_tok_s: pmed,
        prefill_tok_s_min: pmin,
        prefill_tok_s_max: pmax,
        decode_tok_s: dmed,
        decode_tok_s_min: dmin,
        decode_tok_s_max: dmax,
        peak_rss_bytes,
        bytes_per_token,
        read_bandwidth_bytes_s: bw,
        roofline_fraction: bytes_per_token as f64 * dmed / bw,
        roofline_tok_s: bw / bytes_per_token as f64,
        threads: model.threads(),
        layout: model.layout.name().into(),
        kernel: model.kernel.name().into(),
        head: if model.head_int8.is_some() {
            "int8"
        } else {
            "bf16"
        }
        .into(),
        verify: o.policy.name().into(),
        prompt_tokens: n_prompt,
        gen_tokens: o.gen_tokens,
        runs,
        prefill_ms_by_stage: StageMs {
            ternary: pt.ternary.as_secs_f64() * 1e3 / runs as f64,
            attention: pt.attention.as_secs_f64() * 1e3 / runs as f64,
            norms_quant: pt.norms.as_secs_f64() * 1e3 / runs as f64,
            head: pt.head.as_secs_f64() * 1e3 / runs as f64,
        },
        gemm_kernel: model.gemm_kernel.name().into(),
        ternary_macs_per_token: model.ternary_macs_per_token(),
        prefill_ternary_gmacs: (n_prompt * model.ternary_macs_per_token()) as f64
            / (pt.ternary.as_secs_f64() / runs as f64)
            / 1e9,
        core_clock_hz: crate::sys::core_clock_hz(),
        decode_ms_per_token_by_stage: StageMs {
            ternary: ms(tm.ternary),
            attention: ms(tm.attention),
            norms_quant: ms(tm.norms),
            head: ms(tm.head),
        },
        kv_cache_bytes: cache.bytes(),
        model_weight_bytes: bytes_per_token,
    })
}
