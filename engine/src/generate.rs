//! Autoregressive generation: prefill the prompt once (batched), then decode one token per
//! step from the KV cache, sampling each next token, stopping at an end-of-sequence id, the
//! token budget, or the end of the context.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::{KvCache, Logits, Model, State, VerifyCtx};
use crate::sample::{Sampler, SamplerConfig};

/// Settings for [`generate`].
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Ids that end generation (EOS, `<|eot_id|>`).
    pub stop_ids: Vec<u32>,
    /// Context length (defaults to the model's `max_position_embeddings`).
    pub ctx: Option<usize>,
    /// Tokens per prefill chunk.
    pub prefill_batch: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 64,
            sampler: SamplerConfig::default(),
            stop_ids: vec![],
            ctx: None,
            prefill_batch: crate::model::PREFILL_BATCH,
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Eos(u32),
    MaxTokens,
    Context,
}

/// The outcome of [`generate`].
#[derive(Clone, Debug)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    pub generated_ids: Vec<u32>,
    pub stop: Stop,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

impl Generation {
    pub fn prefill_tok_s(&self) -> f64 {
        self.prompt_ids.len() as f64 / self.prefill_time.as_secs_f64().max(1e-9)
    }
    /// Decode steps per second (the first generated token comes from the prefill).
    pub fn decode_tok_s(&self) -> f64 {
        let steps = self.generated_ids.len().saturating_sub(1);
        steps as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// Generate up to `opts.max_tokens` tokens after `prompt`, calling `on_token` for each.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    opts: &GenerateOptions,
    verify: VerifyCtx,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(Error::Invalid(
            "the prompt is empty: nothing to condition on".into(),
        ));
    }
    opts.sampler.validate().map_err(Error::Invalid)?;
    let ctx = opts
        .ctx
        .unwrap_or(model.config.max_position_embeddings)
        .min(model.config.max_position_embeddings);
    if prompt.len() >= ctx {
        return Err(Error::Context {
            len: prompt.len() + 1,
            max: ctx,
        });
    }
    // `max_tokens` is user input: saturate instead of overflowing, and size buffers by what
    // the context can hold, not by the request.
    let cap = prompt.len().saturating_add(opts.max_tokens).min(ctx);
    let mut cache = KvCache::new(model, cap);
    let mut st = State::new(model, opts.prefill_batch.min(prompt.len()).max(1), cap);
    let mut sampler = Sampler::new(opts.sampler.clone());
    let mut out = Vec::with_capacity(cap - prompt.len());

    let t0 = Instant::now();
    let logits = model.forward(prompt, &mut cache, &mut st, Logits::Last, verify)?;
    check_finite(logits, prompt.len() - 1)?;
    let mut next = sampler.sample(logits);
    let prefill_time = t0.elapsed();

    let t1 = Instant::now();
    let stop = loop {
        if out.len() == opts.max_tokens {
            break Stop::MaxTokens;
        }
        out.push(next);
        on_token(next)?;
        if opts.stop_ids.contains(&next) {
            break Stop::Eos(next);
        }
        if out.len() == opts.max_tokens {
            break Stop::MaxTokens;
        }
        if cache.len() + 1 > cap {
            break Stop::Context;
        }
        let logits = model.forward(&[next], &mut cache, &mut st, Logits::Last, verify)?;
        check_finite(logits, cache.len() - 1)?;
        next = sampler.sample(logits);
    };
    Ok(Generation {
        prompt_ids: prompt.to_vec(),
        generated_ids: out,
        stop,
        prefill_time,
        decode_time: t1.elapsed(),
    })
}

fn check_finite(logits: &[f32], pos: usize) -> Result<()> {
    if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!(
            "the model produced a non-finite logit ({}) for token {i} at position {pos}: \
             the checkpoint's weights or norms are corrupt",
            logits[i]
        )));
    }
    Ok(())
}
