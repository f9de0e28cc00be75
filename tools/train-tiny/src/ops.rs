//! Fused CPU ops with hand-written backward passes, for training speed.
//!
//! candle composes `rmsnorm`, softmax, RoPE and the quantizers from a dozen elementwise ops each;
//! every op allocates a fresh tensor, and on 2 shared cores the allocation, page faults and the
//! thread-pool barriers cost more than the matrix products (profiled: gemm was ~17% of a step before, ~34% after).
//! Each op here is one pass forward and one pass backward. The composed versions stay in
//! `model::reference` as the oracle; the tests below compare values and gradients.
//!
//! All ops take contiguous f32 tensors (they bail otherwise) and run on the CPU only.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};

fn f32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        (CpuStorage::F32(_), None) => bail!("{op}: input must be contiguous"),
        _ => bail!("{op}: input must be f32"),
    }
}

/// A tensor's values as a row-major vector.
fn vals(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

fn last_dim(l: &Layout) -> usize {
    *l.dims().last().unwrap_or(&1)
}

/// Per-token absmax int8 fake quantization (transformers' `ActQuant`), backward = identity
/// (straight-through estimator). Rounding is half-to-even, as `torch.round` and the engine.
pub struct ActQuant;

impl CustomOp1 for ActQuant {
    fn name(&self) -> &'static str {
        "act-quant"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let d = last_dim(l);
        let mut out = vec![0f32; x.len()];
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let amax = xr.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-5);
            let a = 127.0 / amax;
            for (o, &v) in or.iter_mut().zip(xr) {
                *o = rotor::quant::round_half_even(v * a).clamp(-128.0, 127.0) / a;
            }
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, _x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(g.clone()))
    }
}

/// Per-tensor absmean ternary fake quantization (transformers' `WeightQuant`), backward =
/// identity. `t = clamp(round(W / mean|W|), −1, 1)` with the mean summed in f64 and rounded to
/// f32 once — the same codes `rotor::synth::ternarize_and_pack` writes at export.
pub struct WeightQuant;

/// `max(mean|W|, 1e-5)` as the export computes it.
pub fn absmean(w: &[f32]) -> f32 {
    let sum: f64 = w.iter().map(|v| v.abs() as f64).sum();
    ((sum / w.len() as f64) as f32).max(1e-5)
}

impl CustomOp1 for WeightQuant {
    fn name(&self) -> &'static str {
        "weight-quant"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = f32s(s, l, self.name())?;
        let mean = absmean(w);
        let out = w
            .iter()
            .map(|&v| rotor::quant::round_half_even(v / mean).clamp(-1.0, 1.0) * mean)
            .collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, _w: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(g.clone()))
    }
}

/// `y = w · x / sqrt(mean(x²) + eps)` over the last dimension (x `[.., d]`, w `[d]`), in the
/// engine's order (`g · (v · r)`, mean of squares in f64).
pub struct RmsNorm {
    pub eps: f32,
}

fn inv_rms(xr: &[f32], eps: f32) -> f32 {
    let ms = (xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / xr.len() as f64) as f32;
    1.0 / (ms + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let w = f32s(s2, l2, self.name())?;
        let d = last_dim(l1);
        if w.len() != d {
            bail!("rms-norm: gain has {} entries, rows have {d}", w.len());
        }
        let mut out = vec![0f32; x.len()];
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let r = inv_rms(xr, self.eps);
            for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
                *o = g * (v * r);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    /// With x̂ = x·r, gw = g·w: dx = r·(gw − x̂·mean(gw·x̂)), dw = Σ_rows g·x̂.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xv, wv, gv) = (vals(x)?, vals(w)?, vals(g)?);
        let d = wv.len();
        let mut dx = vec![0f32; xv.len()];
        let mut dw = vec![0f64; d];
        let mut xhat = vec![0f32; d];
        for ((xr, gr), dr) in xv
            .chunks_exact(d)
            .zip(gv.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let r = inv_rms(xr, self.eps);
            let mut c = 0f64;
            for i in 0..d {
                xhat[i] = xr[i] * r;
                c += (gr[i] * wv[i] * xhat[i]) as f64;
                dw[i] += (gr[i] * xhat[i]) as f64;
            }
            let c = (c / d as f64) as f32;
            for i in 0..d {
                dr[i] = r * (gr[i] * wv[i] - xhat[i] * c);
            }
        }
        let dw: Vec<f32> = dw.into_iter().map(|v| v as f32).collect();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, d, w.device())?),
        ))
    }
}

/// Causal softmax of `scale · scores` over the last dimension, for scores `[.., T, T]` (row `i`
/// of each `T × T` block attends to keys `0..=i`; masked entries are exactly 0).
#[derive(Clone)]
pub struct CausalSoftmax {
    pub scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let t = last_dim(l);
        let mut out = vec![0f32; x.len()];
        for (r, (xr, or)) in x.chunks_exact(t).zip(out.chunks_exact_mut(t)).enumerate() {
            let n = r % t + 1;
            let m = xr[..n].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) * self.scale;
            let mut sum = 0f32;
            for (o, &v) in or[..n].iter_mut().zip(&xr[..n]) {
                *o = (v * self.scale - m).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            for o in &mut or[..n] {
                *o *= inv;
            }
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    /// dx = scale · y · (g − Σ g·y) (zero where masked, since y is).
    fn bwd(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (yv, gv) = (vals(y)?, vals(g)?);
        let t = *x.dims().last().unwrap_or(&1);
        let mut dx = vec![0f32; yv.len()];
        for (r, ((yr, gr), dr)) in yv
            .chunks_exact(t)
            .zip(gv.chunks_exact(t))
            .zip(dx.chunks_exact_mut(t))
            .enumerate()
        {
            let n = r % t + 1;
            let dot: f32 = yr[..n].iter().zip(&gr[..n]).map(|(a, b)| a * b).sum();
            for i in 0..n {
                dr[i] = self.scale * yr[i] * (gr[i] - dot);
            }
        }
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// RoPE in the rotate_half (NeoX) convention on `[.., T, d]` (position = row index mod T):
/// `y = x·cos + rotate_half(x)·sin`, `rotate_half(x) = cat(−x[d/2:], x[:d/2])`; the tables are
/// `[max_t, d/2]` (the two halves share one angle).
pub struct Rope {
    pub cos: Arc<Vec<f32>>,
    pub sin: Arc<Vec<f32>>,
}

impl Rope {
    /// Rotate each row by +angle (`sign = 1`) or −angle (`sign = −1`, the transpose).
    fn rotate(&self, x: &[f32], t: usize, d: usize, sign: f32) -> Vec<f32> {
        let h = d / 2;
        let mut out = vec![0f32; x.len()];
        for (r, (xr, or)) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            let p = r % t;
            let (c, s) = (&self.cos[p * h..(p + 1) * h], &self.sin[p * h..(p + 1) * h]);
            for i in 0..h {
                let (a, b) = (xr[i], xr[i + h]);
                let si = sign * s[i];
                or[i] = a * c[i] - b * si;
                or[i + h] = b * c[i] + a * si;
            }
        }
        out
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let dims = l.dims();
        if dims.len() < 2 {
            bail!("rope: need [.., T, d]");
        }
        let (t, d) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        if t * d / 2 > self.cos.len() {
            bail!("rope: {t} positions exceed the table");
        }
        Ok((
            CpuStorage::F32(self.rotate(x, t, d, 1.0)),
            l.shape().clone(),
        ))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let dims = x.dims();
        let (t, d) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        let dx = self.rotate(&vals(g)?, t, d, -1.0);
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Mean cross-entropy of logits `[N, V]` against u32 targets `[N]`, as a scalar; backward
/// `(softmax − onehot) · g / N` for the logits.
pub struct CrossEntropy;

fn targets(s: &CpuStorage, l: &Layout) -> Result<Vec<usize>> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::U32(v), Some((a, b))) => Ok(v[a..b].iter().map(|&t| t as usize).collect()),
        _ => bail!("cross-entropy: targets must be contiguous u32"),
    }
}

fn log_sum_exp(row: &[f32]) -> f32 {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    m + row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln()
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let tg = targets(s2, l2)?;
        let v = last_dim(l1);
        if x.len() != tg.len() * v {
            bail!(
                "cross-entropy: {} rows of logits, {} targets",
                x.len() / v,
                tg.len()
            );
        }
        let sum: f64 = x
            .chunks_exact(v)
            .zip(&tg)
            .map(|(row, &t)| (log_sum_exp(row) - row[t]) as f64)
            .sum();
        Ok((
            CpuStorage::F32(vec![(sum / tg.len() as f64) as f32]),
            Shape::from(()),
        ))
    }
    fn bwd(
        &self,
        x: &Tensor,
        t: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let xv = vals(x)?;
        let tg = t.flatten_all()?.to_vec1::<u32>()?;
        let v = *x.dims().last().unwrap_or(&1);
        let k = g.flatten_all()?.to_vec1::<f32>()?[0] / tg.len() as f32;
        let mut dx = vec![0f32; xv.len()];
        for ((row, dr), &t) in xv.chunks_exact(v).zip(dx.chunks_exact_mut(v)).zip(&tg) {
            let lse = log_sum_exp(row);
            for (d, &z) in dr.iter_mut().zip(row) {
                *d = (z - lse).exp() * k;
            }
            dr[t as usize] -= k;
        }
        Ok((Some(Tensor::from_vec(dx, x.shape(), x.device())?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reference;
    use candle_core::{D, Device, Var};

    /// Tolerances: f32 recomputation in a different order; values are O(1).
    const TOL_VALUE: f32 = 1e-5;
    const TOL_GRAD: f32 = 1e-5;

    fn rand(shape: &[usize], seed: u64, std: f32) -> Var {
        let mut r = rotor::sample::Rng::new(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| r.next_normalish() * std).collect();
        Var::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn maxdiff(a: &Tensor, b: &Tensor) -> f32 {
        let a = vals(a).unwrap();
        let b = vals(b).unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    /// Compare value and gradient (of Σ y·probe) of a fused op against the composed oracle.
    fn check(name: &str, xs: &[&Var], fused: &dyn Fn() -> Tensor, composed: &dyn Fn() -> Tensor) {
        let yf = fused();
        let yc = composed();
        let probe = rand(yf.dims(), 99, 1.0);
        let gf = (&yf * probe.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gc = (&yc * probe.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let dv = maxdiff(&yf, &yc);
        println!("{name}: max |Δy| = {dv:e}");
        assert!(dv <= TOL_VALUE, "{name}: values differ by {dv}");
        for (i, x) in xs.iter().enumerate() {
            let dg = maxdiff(gf.get(x).unwrap(), gc.get(x).unwrap());
            println!("{name}: input {i} max |Δgrad| = {dg:e}");
            assert!(dg <= TOL_GRAD, "{name}: gradient {i} differs by {dg}");
        }
    }

    #[test]
    fn rmsnorm_matches_composed() {
        let x = rand(&[5, 24], 1, 2.0);
        let w = rand(&[24], 2, 0.3);
        check(
            "rmsnorm",
            &[&x, &w],
            &|| x.apply_op2(w.as_tensor(), RmsNorm { eps: 1e-5 }).unwrap(),
            &|| reference::rmsnorm(&x, &w).unwrap(),
        );
    }

    #[test]
    fn causal_softmax_matches_composed() {
        let x = rand(&[2, 3, 7, 7], 3, 3.0);
        let mut mask = vec![0f32; 49];
        for i in 0..7 {
            for j in i + 1..7 {
                mask[i * 7 + j] = f32::NEG_INFINITY;
            }
        }
        let mask = Tensor::from_vec(mask, (7, 7), &Device::Cpu).unwrap();
        check(
            "causal softmax",
            &[&x],
            &|| x.apply_op1(CausalSoftmax { scale: 0.125 }).unwrap(),
            &|| {
                let s = (x.as_tensor() * 0.125)
                    .unwrap()
                    .broadcast_add(&mask)
                    .unwrap();
                candle_nn::ops::softmax(&s, D::Minus1).unwrap()
            },
        );
    }

    #[test]
    fn rope_matches_composed() {
        let (t, d) = (6, 8);
        let x = rand(&[2, 3, t, d], 4, 1.0);
        let (cos, sin) = reference::rope_tables(t, d, 500_000.0);
        let op = || Rope {
            cos: Arc::new(cos.clone()),
            sin: Arc::new(sin.clone()),
        };
        let full = |h: &[f32]| {
            let v: Vec<f32> = h
                .chunks(d / 2)
                .flat_map(|c| c.iter().chain(c).copied())
                .collect();
            Tensor::from_vec(v, (t, d), &Device::Cpu).unwrap()
        };
        let (c2, s2) = (full(&cos), full(&sin));
        check("rope", &[&x], &|| x.apply_op1(op()).unwrap(), &|| {
            reference::rope(&x, &c2, &s2).unwrap()
        });
    }

    #[test]
    fn quantizers_match_composed() {
        // Values and straight-through gradients. Ties are measure-zero for random inputs, so
        // half-even (fused) and half-away (candle's round) agree.
        let x = rand(&[6, 40], 5, 1.5);
        check(
            "act quant",
            &[&x],
            &|| x.apply_op1(ActQuant).unwrap(),
            &|| reference::act_quant(&x).unwrap(),
        );
        let w = rand(&[16, 12], 6, 0.02);
        check(
            "weight quant",
            &[&w],
            &|| w.apply_op1(WeightQuant).unwrap(),
            &|| reference::weight_quant(&w).unwrap(),
        );
    }

    #[test]
    fn weight_quant_codes_equal_the_export() {
        let (rows, cols) = (16, 12);
        let w = rand(&[rows, cols], 7, 0.02);
        let q = vals(&w.apply_op1(WeightQuant).unwrap()).unwrap();
        let master = vals(&w).unwrap();
        let (packed, scale) = rotor::synth::ternarize_and_pack(&master, rows, cols);
        let mean = absmean(&master);
        assert_eq!(half::bf16::from_f32(mean), scale);
        let t = rotor::synth::unpack(&packed, rows, cols).unwrap();
        let t = t.data();
        for (i, (&qv, &tv)) in q.iter().zip(t).enumerate() {
            assert_eq!(qv, tv as f32 * mean, "element {i}");
        }
    }

    #[test]
    fn cross_entropy_matches_candle() {
        let x = rand(&[9, 11], 8, 2.0);
        let t = Tensor::from_vec(vec![0u32, 3, 10, 5, 5, 1, 2, 9, 7], 9, &Device::Cpu).unwrap();
        let yf = x.apply_op2(&t, CrossEntropy).unwrap();
        let yc = candle_nn::loss::cross_entropy(&x, &t).unwrap();
        let gf = yf.backward().unwrap();
        let gc = yc.backward().unwrap();
        let dv = maxdiff(&yf.reshape(1).unwrap(), &yc.reshape(1).unwrap());
        let dg = maxdiff(gf.get(&x).unwrap(), gc.get(&x).unwrap());
        println!("cross entropy: max |Δloss| = {dv:e}, max |Δgrad| = {dg:e}");
        assert!(dv <= TOL_VALUE && dg <= TOL_GRAD);
    }
}
