//! Token streams of the three corpus splits, training windows, and the unigram baseline.
//!
//! Every window imitates what `rotor perplexity` (llama.cpp convention) feeds the model: `ctx`
//! tokens of running text whose first token is replaced by BOS. Training on exactly that shape
//! means the model is evaluated on the distribution it was trained on.

use rotor::sample::Rng;

/// A random training window: `ctx + 1` consecutive tokens from a uniform start, first one
/// replaced by `bos`; inputs are `w[..ctx]`, targets `w[1..]`.
pub fn random_window(tokens: &[u32], ctx: usize, bos: u32, rng: &mut Rng, out: &mut Vec<u32>) {
    let n = tokens.len() - ctx - 1;
    let start = (rng.next_u64() % n as u64) as usize;
    out.clear();
    out.extend_from_slice(&tokens[start..start + ctx + 1]);
    out[0] = bos;
}

/// Fixed evaluation windows: `count` evenly spaced, non-overlapping windows of `ctx + 1` tokens
/// (first replaced by BOS).
pub fn eval_windows(tokens: &[u32], ctx: usize, bos: u32, count: usize) -> Vec<Vec<u32>> {
    let avail = tokens.len() / (ctx + 1);
    let count = count.min(avail);
    let step = avail / count.max(1);
    (0..count)
        .map(|i| {
            let s = i * step * (ctx + 1);
            let mut w = tokens[s..s + ctx + 1].to_vec();
            w[0] = bos;
            w
        })
        .collect()
}

/// Which targets `rotor perplexity` scores (llama.cpp): the text cut into chunks of `ctx`
/// tokens (tail dropped); in each, targets at positions `ctx/2 + 1 .. ctx − 1`.
pub fn llamacpp_targets(tokens: &[u32], ctx: usize) -> Vec<u32> {
    let mut v = vec![];
    for c in 0..tokens.len() / ctx {
        v.extend_from_slice(&tokens[c * ctx + ctx / 2 + 1..(c + 1) * ctx]);
    }
    v
}

/// Unigram model from `train` token counts with add-one (Laplace) smoothing over the whole
/// vocabulary; returns the perplexity of `targets`.
pub fn unigram_ppl(train: &[u32], vocab: usize, targets: &[u32]) -> f64 {
    let mut counts = vec![1u64; vocab];
    for &t in train {
        counts[t as usize] += 1;
    }
    let total: u64 = counts.iter().sum();
    let nll: f64 = targets
        .iter()
        .map(|&t| -(counts[t as usize] as f64 / total as f64).ln())
        .sum();
    (nll / targets.len() as f64).exp()
}
