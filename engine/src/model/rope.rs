//! Rotary position embedding, `rotate_half` (NeoX) convention, default (unscaled) type.
//!
//! `inv_freq[i] = 1 / θ^(2i/d)` for `i < d/2`; the angle at position `p` is `inv_freq[i] · p`,
//! both rounded to f32 as transformers computes them; cos/sin are evaluated in f64 and rounded
//! once. Dimension `i` pairs with `i + d/2`:
//! `q'[i] = q[i]·cos − q[i+d/2]·sin`, `q'[i+d/2] = q[i+d/2]·cos + q[i]·sin`.

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
}

/// The rotation angle of frequency `f` at position `pos`: rounded to f32 as transformers
/// computes it, then widened for an accurate cos/sin.
#[inline]
fn angle(f: f32, pos: usize) -> f64 {
    (f * pos as f32) as f64
}

impl Rope {
    pub fn new(head_dim: usize, theta: f32, max_pos: usize) -> Rope {
        let table_pos = max_pos.min(TABLE_ENTRIES / (head_dim / 2).max(1));
        Rope::with_table(head_dim, theta, max_pos, table_pos)
    }

    /// Tables for the first `table_pos` positions (the rest computed on the fly).
    fn with_table(head_dim: usize, theta: f32, max_pos: usize, table_pos: usize) -> Rope {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                let e = (2 * i) as f32 / head_dim as f32;
                let p = (theta as f64).powf(e as f64) as f32;
                1.0f32 / p
            })
            .collect();
        let mut cos = Vec::with_capacity(table_pos * half);
        let mut sin = Vec::with_capacity(table_pos * half);
        for pos in 0..table_pos {
            for &f in &inv {
                let a = angle(f, pos);
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Rope {
            half,
            max_pos,
            table_pos,
            inv,
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
        if pos >= self.table_pos {
            let (a, b) = v.split_at_mut(h);
            for i in 0..h {
                let t = angle(self.inv[i], pos);
                let (c, s) = (t.cos() as f32, t.sin() as f32);
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
        let full = Rope::with_table(4096, 500000.0, 5000, 5000);
        for pos in [0, 511, 512, 600, 4000, 4999] {
            let v0: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.37).sin()).collect();
            let (mut a, mut b) = (v0.clone(), v0);
            big.apply(&mut a, pos);
            full.apply(&mut b, pos);
            assert_eq!(a, b, "position {pos}");
        }
    }

    #[test]
    fn an_enormous_context_allocates_only_the_table() {
        let r = Rope::new(128, 500000.0, usize::MAX / 2);
        assert_eq!(r.max_positions(), usize::MAX / 2);
        assert_eq!(r.cos.len(), TABLE_ENTRIES);
    }
}
