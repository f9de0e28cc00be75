//! Choosing the next token: greedy, temperature, top-k, top-p (nucleus), with a seeded RNG.
//!
//! The RNG is SplitMix64 (Vigna): tiny, fast, and stable across versions, so a seed gives the
//! same text forever. Greedy ties resolve to the lowest id.

/// SplitMix64: a 64-bit generator with a 2^64 period; good enough for sampling and synthesis.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Mix several values into one seed (for per-tensor, per-chunk streams).
    pub fn seed_from(parts: &[u64]) -> u64 {
        let mut r = Rng(0x2545_F491_4F6C_DD1D);
        for &p in parts {
            r.0 ^= p;
            r.next_u64();
        }
        r.next_u64()
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    #[inline]
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Approximately standard normal (Irwin–Hall of four 16-bit uniforms, scaled to unit
    /// variance): cheap, symmetric, bounded at ±3.46.
    #[inline]
    pub fn next_normalish(&mut self) -> f32 {
        let r = self.next_u64();
        let s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
        (s as f32 / 65536.0 - 2.0) * 1.732_050_8
    }
}

/// Sampling settings.
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: usize,
    /// 1 = off.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!("--temperature {} must be ≥ 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("--top-p {} must be in (0, 1]", self.top_p));
        }
        Ok(())
    }
}

pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    cand: Vec<(f32, u32)>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let rng = Rng::new(cfg.seed);
        Sampler {
            cfg,
            rng,
            cand: Vec::new(),
        }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.temperature == 0.0 {
            return argmax(logits);
        }
        let c = &mut self.cand;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
        let by_logit = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if self.cfg.top_k > 0 && self.cfg.top_k < c.len() {
            c.select_nth_unstable_by(self.cfg.top_k - 1, by_logit);
            c.truncate(self.cfg.top_k);
        }
        c.sort_unstable_by(by_logit);
        let m = c[0].0;
        let t = self.cfg.temperature;
        let mut sum = 0f32;
        for e in c.iter_mut() {
            e.0 = ((e.0 - m) / t).exp();
            sum += e.0;
        }
        if self.cfg.top_p < 1.0 {
            let mut cum = 0f32;
            let mut keep = c.len();
            for (i, e) in c.iter().enumerate() {
                cum += e.0 / sum;
                if cum >= self.cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep);
            sum = c.iter().map(|e| e.0).sum();
        }
        let mut r = self.rng.next_f32() * sum;
        for e in c.iter() {
            if r < e.0 {
                return e.1;
            }
            r -= e.0;
        }
        c.last().map(|e| e.1).unwrap_or(0)
    }
}

/// Index of the largest value (lowest index on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_k_top_p_and_seeds() {
        let logits = [0.0f32, 3.0, 1.0, 2.9];
        assert_eq!(Sampler::new(SamplerConfig::default()).sample(&logits), 1);
        // top-k 1 is greedy whatever the temperature.
        let cfg = SamplerConfig {
            temperature: 5.0,
            top_k: 1,
            ..Default::default()
        };
        for seed in 0..20 {
            let mut s = Sampler::new(SamplerConfig {
                seed,
                ..cfg.clone()
            });
            assert_eq!(s.sample(&logits), 1);
        }
        // top-p small keeps only the best token.
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_p: 0.01,
            ..Default::default()
        };
        assert_eq!(Sampler::new(cfg).sample(&logits), 1);
        // Same seed, same draws; temperature 1 over near-equal logits visits both 1 and 3.
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 2,
            seed: 7,
            ..Default::default()
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(cfg.clone());
            (0..64).map(|_| s.sample(&logits)).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(cfg);
            (0..64).map(|_| s.sample(&logits)).collect()
        };
        assert_eq!(a, b);
        assert!(a.contains(&1) && a.contains(&3) && !a.contains(&0));
    }

    #[test]
    fn normalish_has_unit_variance() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let (mut s, mut s2) = (0f64, 0f64);
        for _ in 0..n {
            let v = r.next_normalish() as f64;
            s += v;
            s2 += v * v;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
