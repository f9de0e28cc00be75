//! Perplexity over a token stream.
//!
//! Default convention = llama.cpp's `llama-perplexity`: the text is tokenized once (BOS
//! first), cut into non-overlapping chunks of `ctx` tokens (the tail that does not fill a chunk
//! is dropped), the first token of every chunk is replaced by BOS, the cache is cleared per
//! chunk, and only the second half is scored: the logits at positions `ctx/2 .. ctx−2` predict
//! tokens `ctx/2+1 .. ctx−1` (`ctx − ctx/2 − 1` tokens per chunk). `PPL = exp(mean NLL)` and the
//! error is `σ = sqrt((mean(nll²) − mean²) / (N − 1))`, printed as `PPL ± σ·PPL`.
//!
//! With `stride = Some(s)`, the Hugging Face sliding window is used instead: windows of `ctx`
//! tokens advancing by `s`, each scoring only its last `s` targets (the first window scores
//! all of them), no BOS replacement.
//!
//! Every chunk runs through the batched (prefill) path.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::{KvCache, Logits, Model, State, VerifyCtx};

#[derive(Clone, Debug)]
pub struct PplOptions {
    pub ctx: usize,
    pub stride: Option<usize>,
    /// Stop after this many chunks/windows (quick runs).
    pub max_chunks: Option<usize>,
    pub batch: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PplResult {
    pub ppl: f64,
    /// Standard error of the PPL (σ·PPL).
    pub ppl_stderr: f64,
    pub mean_nll: f64,
    pub tokens_scored: usize,
    pub chunks: usize,
    pub ctx: usize,
    pub convention: String,
    pub tokens_per_s: f64,
    #[serde(skip)]
    pub time: Duration,
}

/// Compute perplexity of `tokens` (already including the leading BOS if the tokenizer adds
/// one). `bos` replaces the first token of each chunk in the llama.cpp convention.
pub fn perplexity(
    model: &Model,
    tokens: &[u32],
    bos: Option<u32>,
    opts: &PplOptions,
    verify: VerifyCtx,
    mut progress: impl FnMut(usize, usize),
) -> Result<PplResult> {
    let ctx = opts.ctx;
    if ctx < 4 {
        return Err(Error::Invalid(format!(
            "--ctx {ctx} is too small (at least 4)"
        )));
    }
    if ctx > model.config.max_position_embeddings {
        return Err(Error::Context {
            len: ctx,
            max: model.config.max_position_embeddings,
        });
    }
    let v = model.config.vocab_size;
    let mut cache = KvCache::new(model, ctx);
    let mut st = State::new(model, opts.batch.max(1), ctx);
    let mut nll = Vec::new();
    let t0 = Instant::now();
    let mut processed = 0usize;

    // (window start, first scored position within the window)
    let windows: Vec<(usize, usize)> = match opts.stride {
        None => (0..tokens.len() / ctx)
            .map(|i| (i * ctx, ctx / 2))
            .collect(),
        Some(s) => {
            if s == 0 || s > ctx {
                return Err(Error::Invalid(format!(
                    "--stride {s} must be in 1..=ctx ({ctx})"
                )));
            }
            let mut w = vec![];
            let mut start = 0;
            while start + ctx <= tokens.len() {
                let first = if start == 0 { 0 } else { ctx - s - 1 };
                w.push((start, first));
                start += s;
            }
            w
        }
    };
    if windows.is_empty() {
        return Err(Error::Invalid(format!(
            "the text has {} tokens, fewer than one context of {ctx}",
            tokens.len()
        )));
    }
    let n = opts.max_chunks.unwrap_or(usize::MAX).min(windows.len());
    let mut buf = Vec::with_capacity(ctx);
    for (i, &(start, first)) in windows.iter().take(n).enumerate() {
        buf.clear();
        buf.extend_from_slice(&tokens[start..start + ctx]);
        if opts.stride.is_none()
            && let Some(b) = bos
        {
            buf[0] = b;
        }
        cache.clear();
        // Unscored prefix without the head, then the scored part with all logits.
        if first > 0 {
            model.forward(&buf[..first], &mut cache, &mut st, Logits::None, verify)?;
        }
        let logits = model.forward(
            &buf[first..ctx - 1],
            &mut cache,
            &mut st,
            Logits::All,
            verify,
        )?;
        for (j, row) in logits.chunks_exact(v).enumerate() {
            let target = buf[first + j + 1] as usize;
            nll.push(neg_log_softmax(row, target));
        }
        processed += ctx;
        progress(i + 1, n);
    }
    let count = nll.len();
    let mean = nll.iter().sum::<f64>() / count as f64;
    let mean2 = nll.iter().map(|x| x * x).sum::<f64>() / count as f64;
    let sigma = if count > 1 {
        ((mean2 - mean * mean).max(0.0) / (count - 1) as f64).sqrt()
    } else {
        0.0
    };
    let ppl = mean.exp();
    let time = t0.elapsed();
    Ok(PplResult {
        ppl,
        ppl_stderr: sigma * ppl,
        mean_nll: mean,
        tokens_scored: count,
        chunks: n,
        ctx,
        convention: match opts.stride {
            None => "llama.cpp: non-overlapping chunks, BOS first, second half scored".into(),
            Some(s) => format!("sliding window, stride {s}"),
        },
        tokens_per_s: processed as f64 / time.as_secs_f64().max(1e-9),
        time,
    })
}

/// `−log softmax(row)[target]`, in f64.
pub fn neg_log_softmax(row: &[f32], target: usize) -> f64 {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln() + m;
    lse - row[target] as f64
}
