//! Rotary position embedding, `rotate_half` (NeoX) convention, default (unscaled) type.
//!
//! `inv_freq[i] = 1 / θ^(2i/d)` for `i < d/2`; the angle at position `p` is `inv_freq[i] · p`,
//! both rounded to f32 as transformers computes them; cos/sin are evaluated in f64 and rounded
//! once. Dimension `i` pairs with `i + d/2`:
//! `q'[i] = q[i]·cos − q[i+d/2]·sin`, `q'[i+d/2] = q[i+d/2]·cos + q[i]·sin`.
//!
//! [`Rope::ggml`] is a research variant for comparing engines: the angles as ggml's CPU RoPE
//! computes them (`θ_i = p · s^i` by `i` successive f32 multiplications with
//! `s = θ^(−2/d)` from `powf`, then f32 `cosf`/`sinf`), which differ from transformers' in the
//! last bits and more so at later positions. The model never uses it.

/// Entries (positions × d/2) of the precomputed tables: 4 MB each at most. Positions past the
/// table are computed on the fly by the same formula, so results never depend on the cap; the
/// cap only keeps a config that claims an enormous context from allocating for it (2B-4T's
/// 4096 positions × 64 fit with room to spare).
const TABLE_ENTRIES: usize = 1 << 20;

/// Precomputed cos/sin tables `[position][d/2]` for the first `table_pos` positions.
#[derive(Debug, Clone)]
pub struct Rope {
    half: usize,
    max_pos: usize,
    table_pos: usize,
    inv: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// `Some(s)`: ggml's angles with `theta_scale = s` ([`Rope::ggml`]).
    ggml_scale: Option<f32>,
}

/// ggml's angle of pair `i` at position `pos`: `pos · s · s · …` (`i` f32 multiplications),
/// and its f32 cosine and sine.
fn ggml_cos_sin(s: f32, pos: usize, i: usize) -> (f32, f32) {
    let mut t = pos as f32;
    for _ in 0..i {
        t *= s;
    }
    (t.cos(), t.sin())
}

/// The rotation angle of frequency `f` at position `pos`: rounded to f32 as transformers
/// computes it, then widened for an accurate cos/sin.
#[inline]
fn angle(f: f32, pos: usize) -> f64 {
    (f * pos as f32) as f64
}

impl Rope {
    pub fn new(head_dim: usize, theta: f32, max_pos: usize) -> Rope {
        Rope::capped(head_dim, theta, max_pos, None)
    }

    /// Tables for as many positions as [`TABLE_ENTRIES`] allows.
    fn capped(head_dim: usize, theta: f32, max_pos: usize, ggml_scale: Option<f32>) -> Rope {
        let table_pos = max_pos.min(TABLE_ENTRIES / (head_dim / 2).max(1));
        Rope::with_table(head_dim, theta, max_pos, table_pos, ggml_scale)
    }

    /// Tables for the first `table_pos` positions (the rest computed on the fly), with
    /// transformers' angles, or ggml's when `ggml_scale` is set.
    fn with_table(
        head_dim: usize,
        theta: f32,
        max_pos: usize,
        table_pos: usize,
        ggml_scale: Option<f32>,
    ) -> Rope {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                let e = (2 * i) as f32 / head_dim as f32;
                let p = (theta as f64).powf(e as f64) as f32;
                1.0f32 / p
            })
            .collect();
        let mut r = Rope {
            half,
            max_pos,
            table_pos,
            inv,
            cos: Vec::with_capacity(table_pos * half),
            sin: Vec::with_capacity(table_pos * half),
            ggml_scale,
        };
        for pos in 0..table_pos {
            for i in 0..half {
                let (c, s) = r.cos_sin(pos, i);
                r.cos.push(c);
                r.sin.push(s);
            }
        }
        r
    }

    /// The research variant with ggml's angles (see the module docs).
    pub fn ggml(head_dim: usize, theta: f32, max_pos: usize) -> Rope {
        let s = theta.powf(-2.0 / head_dim as f32);
        Rope::capped(head_dim, theta, max_pos, Some(s))
    }

    /// cos and sin of pair `i`'s angle at position `pos`, by this table's formula.
    fn cos_sin(&self, pos: usize, i: usize) -> (f32, f32) {
        match self.ggml_scale {
            Some(g) => ggml_cos_sin(g, pos, i),
            None => {
                let t = angle(self.inv[i], pos);
                (t.cos() as f32, t.sin() as f32)
            }
        }
    }

    pub fn max_positions(&self) -> usize {
        self.max_pos
    }

    /// Rotate one head vector (`2·half` values) in place for position `pos`.
    #[inline]
    pub fn apply(&self, v: &mut [f32], pos: usize) {
        let h = self.half;
        if pos >= self.table_pos {
            let (a, b) = v.split_at_mut(h);
            for i in 0..h {
                let (c, s) = self.cos_sin(pos, i);
                let (x, y) = (a[i], b[i]);
                a[i] = x * c - y * s;
                b[i] = y * c + x * s;
            }
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_past_the_table_equal_the_table_formula() {
        // head_dim 4096: the table holds 512 positions; 600 and 4000 are computed on the fly.
        let big = Rope::new(4096, 500000.0, 5000);
        assert_eq!(big.table_pos, TABLE_ENTRIES / 2048);
        let full = Rope::with_table(4096, 500000.0, 5000, 5000, None);
        for pos in [0, 511, 512, 600, 4000, 4999] {
            let v0: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.37).sin()).collect();
            let (mut a, mut b) = (v0.clone(), v0);
            big.apply(&mut a, pos);
            full.apply(&mut b, pos);
            assert_eq!(a, b, "position {pos}");
        }
    }

    #[test]
    fn ggml_angles_are_close_to_and_not_the_same_as_transformers() {
        let (hf, gg) = (Rope::new(64, 500000.0, 300), Rope::ggml(64, 500000.0, 300));
        assert_eq!((gg.cos[0], gg.sin[0]), (1.0, 0.0));
        let d = hf
            .cos
            .iter()
            .zip(&gg.cos)
            .chain(hf.sin.iter().zip(&gg.sin))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d > 0.0 && d < 1e-3, "max difference {d}");
        // Past the table, the on-the-fly path computes the same angles as the table.
        let small = Rope {
            table_pos: 10,
            ..Rope::ggml(64, 500000.0, 300)
        };
        let v0: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let (mut a, mut b) = (v0.clone(), v0);
        small.apply(&mut a, 250);
        gg.apply(&mut b, 250);
        assert_eq!(a, b);
    }

    #[test]
    fn an_enormous_context_allocates_only_the_table() {
        let r = Rope::new(128, 500000.0, usize::MAX / 2);
        assert_eq!(r.max_positions(), usize::MAX / 2);
        assert_eq!(r.cos.len(), TABLE_ENTRIES);
    }
}
