//! Rotary position embedding, `rotate_half` (NeoX) convention, default (unscaled) type.
//!
//! `inv_freq[i] = 1 / θ^(2i/d)` for `i < d/2`; the angle at position `p` is `inv_freq[i] · p`,
//! both rounded to f32 as transformers computes them; cos/sin are evaluated in f64 and rounded
//! once. Dimension `i` pairs with `i + d/2`:
//! `q'[i] = q[i]·cos − q[i+d/2]·sin`, `q'[i+d/2] = q[i+d/2]·cos + q[i]·sin`.

/// Precomputed cos/sin tables `[position][d/2]`.
#[derive(Debug, Clone)]
pub struct Rope {
    half: usize,
    max_pos: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    pub fn new(head_dim: usize, theta: f32, max_pos: usize) -> Rope {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                let e = (2 * i) as f32 / head_dim as f32;
                let p = (theta as f64).powf(e as f64) as f32;
                1.0f32 / p
            })
            .collect();
        let mut cos = Vec::with_capacity(max_pos * half);
        let mut sin = Vec::with_capacity(max_pos * half);
        for pos in 0..max_pos {
            for &f in &inv {
                let a = (f * pos as f32) as f64;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Rope {
            half,
            max_pos,
            cos,
            sin,
        }
    }

    pub fn max_positions(&self) -> usize {
        self.max_pos
    }

    /// Rotate one head vector (`2·half` values) in place for position `pos`.
    #[inline]
    pub fn apply(&self, v: &mut [f32], pos: usize) {
        let h = self.half;
        let (c, s) = (
            &self.cos[pos * h..(pos + 1) * h],
            &self.sin[pos * h..(pos + 1) * h],
        );
        let (a, b) = v.split_at_mut(h);
        for i in 0..h {
            let (x, y) = (a[i], b[i]);
            a[i] = x * c[i] - y * s[i];
            b[i] = y * c[i] + x * s[i];
        }
    }
}
