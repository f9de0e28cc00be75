//! The encodings under study: eight ways to compute `y[r] = Σ_c t[r][c] · x[c]` for ternary
//! `t` and one int8 activation row `x`, each as a portable scalar kernel that runs through an
//! [`Alu`] (so it can be counted), with the closed-form operation count of the same algorithm
//! in [`formula`]. The AVX2 versions are in [`crate::avx2`].
//!
//! | encoding      | weights read                 | per nonzero/any weight                          | exact |
//! |---------------|------------------------------|-------------------------------------------------|-------|
//! | `f32_mac`     | f32, 32 bits/weight          | one f32 multiply + one f32 add                  | yes¹  |
//! | `int8_mac`    | i8, 8 bits/weight            | one 8-bit multiply + one 32-bit add             | yes   |
//! | `sign_select` | rotor P/N planes, 2 bits     | skip zeros; one 32-bit add or subtract          | yes   |
//! | `bit_serial`  | rotor P/N planes, 2 bits     | per 64 weights and activation bit: 2 AND, 2 popcount | yes |
//! | `unary`       | rotor P/N planes, 2 bits     | \|x\| increments of ±1 (and a down-counter)       | yes   |
//! | `thermometer` | rotor P/N planes, 2 bits     | per 64 weights and level k ≤ max\|x\|: 2 AND, 2 popcount | yes |
//! | `tl_pn4`      | rotor P/N planes, 2 bits     | per 4 weights: 2 lookups in 16-entry subset-sum tables | yes |
//! | `tl_b3`       | base-3 index per 4 weights, 2 bits | per 4 weights: 1 lookup in an 81-entry table | yes |
//!
//! ¹ f32 is exact here because every partial sum is an integer of magnitude ≤ 128·cols < 2^24
//! (cols ≤ 131072), where f32 represents every integer.
//!
//! Per-token preparation (bit-planes, thermometer levels, lookup tables) is part of every
//! GEMV call and of its count: at batch 1 it is paid once per projection input.
//!
//! The `unary` kernel hides its accumulator from the optimiser at each step; without that,
//! LLVM replaces the counting loop by its closed form — one multiply.

use std::ops::Range;

use rotor::ternary::{ActBuf, Block, Encoding, Rotor, Ternary, act_stride};

use crate::ops::{Alu, Kind, Ops};

/// An encoding of the activation magnitude.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Enc {
    F32Mac,
    Int8Mac,
    SignSelect,
    BitSerial,
    Unary,
    Thermometer,
    TlPn4,
    TlB3,
}

impl Enc {
    pub const ALL: [Enc; 8] = [
        Enc::F32Mac,
        Enc::Int8Mac,
        Enc::SignSelect,
        Enc::BitSerial,
        Enc::Unary,
        Enc::Thermometer,
        Enc::TlPn4,
        Enc::TlB3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Enc::F32Mac => "f32_mac",
            Enc::Int8Mac => "int8_mac",
            Enc::SignSelect => "sign_select",
            Enc::BitSerial => "bit_serial",
            Enc::Unary => "unary",
            Enc::Thermometer => "thermometer",
            Enc::TlPn4 => "tl_pn4",
            Enc::TlB3 => "tl_b3",
        }
    }

    pub fn parse(s: &str) -> Option<Enc> {
        Enc::ALL.into_iter().find(|e| e.name() == s)
    }

    /// Bits of weight storage per weight that the kernel streams.
    pub fn weight_bits(self) -> f64 {
        match self {
            Enc::F32Mac => 32.0,
            Enc::Int8Mac => 8.0,
            _ => 2.0,
        }
    }

    /// Every encoding here is exact (no lossy variant is timed); kept as a method so a lossy
    /// one added later must say so.
    pub fn exact(self) -> bool {
        true
    }
}

/// One ternary matrix in every form the encodings read.
pub struct Weights {
    pub t: Ternary,
    pub rows: usize,
    pub cols: usize,
    /// P/N bit-planes, interleaved per word (`rotor-pn`: P0 N0 P1 N1 …).
    pub rotor: Rotor,
    /// Row stride of `dense` and `f32` (cols rounded up to 64).
    pub stride: usize,
    /// `[rows][stride]` i8 weights (int8 MAC).
    pub dense: Vec<i8>,
    /// `[rows][stride]` f32 weights (the full-precision baseline).
    pub f32: Vec<f32>,
    /// `Σ_c t[r][c]` per row.
    pub row_sums: Vec<i32>,
    /// Groups of four columns for `tl_b3` (`ceil(cols/4)`).
    pub g3: usize,
    /// `[rows][g3]` base-3 group indices `Σ_i (t[4g+i] + 1)·3^i`, in 0..81.
    pub b3: Vec<u8>,
    /// `tl_pn4` AVX2 layout (see `avx2::TL_ROWS`): `[rows/32][16·W][32]` bytes, byte j of a
    /// block = P nibble | N nibble << 4 of row `32·block + j` for 4 columns.
    pub tl_rows: Vec<u8>,
}

impl Weights {
    pub fn new(t: Ternary) -> Weights {
        let (rows, cols) = (t.rows(), t.cols());
        let rotor = Rotor::from_dense(&t, Encoding::Pn, Block::Words(1));
        let stride = cols.div_ceil(64) * 64;
        let mut dense = vec![0i8; rows * stride];
        let mut f = vec![0f32; rows * stride];
        for r in 0..rows {
            for (c, &v) in t.row(r).iter().enumerate() {
                dense[r * stride + c] = v;
                f[r * stride + c] = v as f32;
            }
        }
        let row_sums = (0..rows)
            .map(|r| t.row(r).iter().map(|&v| v as i32).sum())
            .collect();
        let g3 = cols.div_ceil(4);
        let mut b3 = vec![0u8; rows * g3];
        for r in 0..rows {
            for g in 0..g3 {
                let mut idx = 0u8;
                for i in (0..4).rev() {
                    let c = 4 * g + i;
                    let v = if c < cols { t.get(r, c) } else { 0 };
                    idx = idx * 3 + (v + 1) as u8;
                }
                b3[r * g3 + g] = idx;
            }
        }
        let tl_rows = crate::avx2::tl_rows_layout(&rotor, rows);
        Weights {
            t,
            rows,
            cols,
            rotor,
            stride,
            dense,
            f32: f,
            row_sums,
            g3,
            b3,
            tl_rows,
        }
    }

    /// 64-bit words per plane per row.
    pub fn words(&self) -> usize {
        self.rotor.words_per_row()
    }
}

/// One activation row in the forms the encodings take as *input* (prepared outside timing:
/// an f32 model has f32 activations, a quantized one int8).
#[derive(Clone, Debug)]
pub struct Act {
    pub cols: usize,
    /// `act_stride(cols)` values, zero past `cols`.
    pub x: Vec<i8>,
    /// The same values as f32 (the full-precision baseline's native activations).
    pub xf: Vec<f32>,
    /// The engine's padded activation buffer (for the engine's own kernel).
    buf: ActBuf,
}

impl Act {
    pub fn new(values: &[i8]) -> Act {
        let cols = values.len();
        let stride = act_stride(cols).max(64);
        let mut x = vec![0i8; stride];
        x[..cols].copy_from_slice(values);
        let xf = x.iter().map(|&v| v as f32).collect();
        let buf = ActBuf::from_rows(values, 1, cols);
        Act { cols, x, xf, buf }
    }
    pub fn buf(&self) -> &ActBuf {
        &self.buf
    }
    pub fn values(&self) -> &[i8] {
        &self.x[..self.cols]
    }
}

/// Per-token prepared activations, reused across calls (sized on first use, then no
/// allocation).
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    /// bit_serial: `[k][W]` two's-complement bit-planes.
    pub planes: Vec<u64>,
    pub k: usize,
    /// thermometer: sign plane `[W]`, levels per word (`kw[w]` words from `level_off[w]`).
    pub sign: Vec<u64>,
    pub levels: Vec<u64>,
    pub level_off: Vec<u32>,
    pub kw: Vec<u8>,
    /// tl_pn4: `[16·W][16]` subset sums of each group of four activations.
    pub tl16: Vec<i16>,
    /// tl_b3: `[g3][81]` signed sums of each group of four activations.
    pub tlb3: Vec<i16>,
    /// AVX2 kernels' own prepared forms (see `avx2`).
    pub simd: crate::avx2::SimdScratch,
}

/// Two's-complement bit-planes needed for `x`: the smallest `k` with every value in
/// `[−2^(k−1), 2^(k−1) − 1]` (1 for an all-zero row).
pub fn planes_needed(x: &[i8]) -> usize {
    let (lo, hi) = x.iter().fold((0i32, 0i32), |(lo, hi), &v| {
        (lo.min(v as i32), hi.max(v as i32))
    });
    (1..=8)
        .find(|&k| lo >= -(1i32 << (k - 1)) && hi < (1i32 << (k - 1)))
        .unwrap_or(8)
}

/// Largest |x| per 64-column word (the thermometer levels that word needs).
pub fn word_max_abs(x: &[i8], words: usize) -> Vec<u8> {
    (0..words)
        .map(|w| {
            x.iter()
                .skip(64 * w)
                .take(64)
                .map(|v| v.unsigned_abs())
                .max()
                .unwrap_or(0)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scalar kernels. Each computes rows `rows` of the product into `y[..rows.len()]`.

/// (1) f32 multiply-accumulate.
#[inline(always)]
pub fn f32_mac<A: Alu>(a: &mut A, w: &Weights, x: &Act, rows: Range<usize>, y: &mut [i32]) {
    let n = w.cols;
    for (i, r) in rows.enumerate() {
        let wr = &w.f32[r * w.stride..r * w.stride + n];
        a.read_weights(4 * n as u64);
        a.read_acts(4 * n as u64);
        let mut acc = 0f32;
        for (&wv, &xv) in wr.iter().zip(&x.xf[..n]) {
            let p = a.fmul(wv, xv);
            acc = a.fadd(acc, p);
        }
        // Exact: an integer below 2^24 in magnitude (module docs).
        y[i] = acc as i32;
    }
}

/// (2) int8 multiply-accumulate into a 32-bit accumulator.
#[inline(always)]
pub fn int8_mac<A: Alu>(a: &mut A, w: &Weights, x: &Act, rows: Range<usize>, y: &mut [i32]) {
    let n = w.cols;
    for (i, r) in rows.enumerate() {
        let wr = &w.dense[r * w.stride..r * w.stride + n];
        a.read_weights(n as u64);
        a.read_acts(n as u64);
        // i32 is safe: |Σ| ≤ 128·cols < 2^31.
        let mut acc = 0i32;
        for (&wv, &xv) in wr.iter().zip(&x.x[..n]) {
            let p = a.mul8(wv, xv);
            acc = a.add32(acc, p as i32);
        }
        y[i] = acc;
    }
}

/// (3) Sign-select and add: the P plane selects `+x`, the N plane `−x`, zeros are skipped
/// (the set bits of each plane word are visited with bit-scan and clear-lowest).
#[inline(always)]
pub fn sign_select<A: Alu>(a: &mut A, w: &Weights, x: &Act, rows: Range<usize>, y: &mut [i32]) {
    let words = w.words();
    for (i, r) in rows.enumerate() {
        let row = w.rotor.row_words(r);
        let mut acc = 0i32;
        for k in 0..words {
            let (mut p, mut m) = w.rotor.pn_word(row, k);
            a.read_weights(16);
            let xs = &x.x[64 * k..64 * k + 64];
            while p != 0 {
                let c = a.tz(p) as usize;
                a.read_acts(1);
                acc = a.add32(acc, xs[c] as i32);
                p = a.clear_lowest(p);
            }
            while m != 0 {
                let c = a.tz(m) as usize;
                a.read_acts(1);
                acc = a.sub32(acc, xs[c] as i32);
                m = a.clear_lowest(m);
            }
        }
        y[i] = acc;
    }
}

/// Bit-serial preparation: `k` two's-complement bit-planes of `x`, `planes[b·W + w]`.
#[inline(always)]
pub fn prep_bit_planes<A: Alu>(a: &mut A, x: &Act, words: usize, s: &mut Scratch) {
    let n = x.cols;
    let k = planes_needed(x.values());
    s.k = k;
    s.planes.clear();
    s.planes.resize(k * words, 0);
    for w in 0..words {
        let mut acc = [0u64; 8];
        for i in 0..64.min(n.saturating_sub(64 * w)) {
            let v = x.x[64 * w + i] as u8 as u64;
            a.read_acts(1);
            for (b, word) in acc.iter_mut().enumerate().take(k) {
                let sh = a.shr(v, b as u32);
                let bit = a.and(sh, 1);
                let at = a.shl(bit, i as u32);
                *word = a.or(*word, at);
            }
        }
        for (b, &word) in acc.iter().enumerate().take(k) {
            a.table_write(&mut s.planes, b * words + w, word);
        }
    }
}

/// (4) Bit-serial: `Σ_b c_b (popcount(P∧X_b) − popcount(N∧X_b))` with `c_b = 2^b` below the
/// top plane and `c_{k−1} = −2^(k−1)` (two's complement).
#[inline(always)]
pub fn bit_serial<A: Alu>(
    a: &mut A,
    w: &Weights,
    x: &Act,
    s: &mut Scratch,
    rows: Range<usize>,
    y: &mut [i32],
) {
    let words = w.words();
    prep_bit_planes(a, x, words, s);
    let k = s.k;
    for (i, r) in rows.enumerate() {
        let row = w.rotor.row_words(r);
        // i16 tallies are safe: each is at most 64·W = cols ≤ 32767 (asserted by the caller's
        // shapes; 6912 for 2B-4T).
        let mut cp = [0i16; 8];
        let mut cn = [0i16; 8];
        for wi in 0..words {
            let (p, m) = w.rotor.pn_word(row, wi);
            a.read_weights(16);
            for b in 0..k {
                let xb = s.planes[b * words + wi];
                a.read_acts(8);
                let t1 = a.and(p, xb);
                let c1 = a.popcnt(t1) as i16;
                cp[b] = a.add16(cp[b], c1);
                let t2 = a.and(m, xb);
                let c2 = a.popcnt(t2) as i16;
                cn[b] = a.add16(cn[b], c2);
            }
        }
        let mut acc = 0i32;
        for b in 0..k {
            let d = a.sub32(cp[b] as i32, cn[b] as i32);
            let t = a.shl32(d, b as u32);
            acc = if b == k - 1 {
                a.sub32(acc, t)
            } else {
                a.add32(acc, t)
            };
        }
        y[i] = acc;
    }
}

/// An optimisation barrier that costs no instruction: the compiler must assume `v` changed.
#[inline(always)]
fn opaque(v: i32) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut v = v;
        // SAFETY: an empty assembly block with one register operand; it reads and writes only
        // that register (no memory, no stack, no flags that Rust relies on).
        unsafe { std::arch::asm!("/* {0:e} */", inout(reg) v, options(pure, nomem, nostack)) };
        v
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::hint::black_box(v)
    }
}

/// (5a) Unary / counter, the seed's literal method: for every nonzero weight, add
/// `sign(t)·sign(x)` to the accumulator |x| times ("minus 20 is −1, twenty times"), with an
/// 8-bit down-counter that says when to stop.
#[inline(always)]
pub fn unary<A: Alu>(a: &mut A, w: &Weights, x: &Act, rows: Range<usize>, y: &mut [i32]) {
    let words = w.words();
    for (i, r) in rows.enumerate() {
        let row = w.rotor.row_words(r);
        let mut acc = 0i32;
        for k in 0..words {
            let (p, m) = w.rotor.pn_word(row, k);
            a.read_weights(16);
            let xs = &x.x[64 * k..64 * k + 64];
            for (mut bits, neg) in [(p, false), (m, true)] {
                while bits != 0 {
                    let c = a.tz(bits) as usize;
                    a.read_acts(1);
                    let v = xs[c];
                    let mut left = a.abs8(v);
                    let step = a.select((v < 0) != neg, -1, 1);
                    while left != 0 {
                        acc = opaque(a.inc32(acc, step));
                        left = a.sub8(left, 1);
                    }
                    bits = a.clear_lowest(bits);
                }
            }
        }
        y[i] = acc;
    }
}

/// Thermometer preparation: the sign plane `S[w]` and, per word, levels `L_1 … L_{kw[w]}`
/// with `L_j = {c : |x_c| ≥ j}` (a unary code of each magnitude, 64 columns per word).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `i` is the column and the bit position alike
pub fn prep_thermometer<A: Alu>(a: &mut A, x: &Act, words: usize, s: &mut Scratch) {
    let n = x.cols;
    s.sign.clear();
    s.sign.resize(words, 0);
    s.kw.clear();
    s.kw.resize(words, 0);
    s.level_off.clear();
    s.levels.clear();
    let mut lv = [0u64; 128];
    for w in 0..words {
        let cnt = 64.min(n.saturating_sub(64 * w));
        let mut mags = [0u8; 64];
        let mut kmax = 0u8;
        let mut sign = 0u64;
        for i in 0..cnt {
            let v = x.x[64 * w + i];
            a.read_acts(1);
            mags[i] = a.abs8(v);
            // max via one 8-bit compare.
            let _ = a.sub8(mags[i], kmax);
            kmax = kmax.max(mags[i]);
            let sb = a.shr(v as u8 as u64, 7);
            let at = a.shl(sb, i as u32);
            sign = a.or(sign, at);
        }
        // |x| ≤ 128 levels.
        let kw = kmax as usize;
        lv[..kw].fill(0);
        for (i, &m) in mags.iter().enumerate().take(cnt) {
            for l in lv.iter_mut().take(m as usize) {
                let at = a.shl(1, i as u32);
                *l = a.or(*l, at);
            }
        }
        a.table_write(&mut s.sign, w, sign);
        s.kw[w] = kmax;
        s.level_off.push(s.levels.len() as u32);
        for &l in &lv[..kw] {
            s.levels.push(0);
            let at = s.levels.len() - 1;
            a.table_write(&mut s.levels, at, l);
        }
    }
}

/// (5b) Thermometer: the weight planes are sign-adjusted per word (`P' = P∧¬S ∨ N∧S`,
/// `N' = N∧¬S ∨ P∧S`), then each level adds `popcount(P'∧L_j) − popcount(N'∧L_j)`: the
/// counter method done 64 columns at a time.
#[inline(always)]
pub fn thermometer<A: Alu>(
    a: &mut A,
    w: &Weights,
    x: &Act,
    s: &mut Scratch,
    rows: Range<usize>,
    y: &mut [i32],
) {
    let words = w.words();
    prep_thermometer(a, x, words, s);
    for (i, r) in rows.enumerate() {
        let row = w.rotor.row_words(r);
        // i32 tallies: at most 128·cols.
        let (mut cp, mut cn) = (0i32, 0i32);
        for wi in 0..words {
            let (p, m) = w.rotor.pn_word(row, wi);
            a.read_weights(16);
            let sg = s.sign[wi];
            a.read_acts(9); // the sign word and the level count
            let (p1, p2) = (a.andnot(p, sg), a.and(m, sg));
            let pp = a.or(p1, p2);
            let (n1, n2) = (a.andnot(m, sg), a.and(p, sg));
            let nn = a.or(n1, n2);
            let off = s.level_off[wi] as usize;
            for &l in &s.levels[off..off + s.kw[wi] as usize] {
                a.read_acts(8);
                let t1 = a.and(pp, l);
                let c1 = a.popcnt(t1) as i32;
                cp = a.add32(cp, c1);
                let t2 = a.and(nn, l);
                let c2 = a.popcnt(t2) as i32;
                cn = a.add32(cn, c2);
            }
        }
        y[i] = a.sub32(cp, cn);
    }
}

/// Non-singleton masks of four bits, in an order where `m & (m−1)` is always built first.
const MULTI: [usize; 11] = [3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15];

/// tl_pn4 preparation: for every group of four columns `g` (over the padded words), the 16
/// subset sums `T[g][m] = Σ_{i∈m} x[4g+i]`; 11 adds per group (singletons are copies).
#[inline(always)]
pub fn prep_tl_pn4<A: Alu>(a: &mut A, x: &Act, words: usize, s: &mut Scratch) {
    let groups = 16 * words;
    s.tl16.clear();
    s.tl16.resize(groups * 16, 0);
    for g in 0..groups {
        a.read_acts(4);
        let v: [i16; 4] = std::array::from_fn(|i| x.x[4 * g + i] as i16);
        let mut t = [0i16; 16];
        for (i, &vi) in v.iter().enumerate() {
            t[1 << i] = vi;
        }
        for m in MULTI {
            // i16 is safe: |subset sum| ≤ 4·128.
            t[m] = a.add16(t[m & (m - 1)], v[m.trailing_zeros() as usize]);
        }
        for (m, &tv) in t.iter().enumerate() {
            a.table_write(&mut s.tl16, g * 16 + m, tv);
        }
    }
}

/// (6a) Table lookup on the rotor planes: each plane word's nibbles index the subset-sum
/// tables, `y = Σ_g T[g][P nibble] − T[g][N nibble]`.
#[inline(always)]
pub fn tl_pn4<A: Alu>(
    a: &mut A,
    w: &Weights,
    x: &Act,
    s: &mut Scratch,
    rows: Range<usize>,
    y: &mut [i32],
) {
    let words = w.words();
    prep_tl_pn4(a, x, words, s);
    for (i, r) in rows.enumerate() {
        let row = w.rotor.row_words(r);
        let mut acc = 0i32;
        for k in 0..words {
            let (p, m) = w.rotor.pn_word(row, k);
            a.read_weights(16);
            let tab = &s.tl16[k * 256..k * 256 + 256];
            for j in 0..16 {
                let ps = a.shr(p, 4 * j);
                let pi = a.and(ps, 15) as usize;
                let ns = a.shr(m, 4 * j);
                let ni = a.and(ns, 15) as usize;
                let tp = a.table_read(tab, 16 * j as usize + pi);
                acc = a.add32(acc, tp as i32);
                let tn = a.table_read(tab, 16 * j as usize + ni);
                acc = a.sub32(acc, tn as i32);
            }
        }
        y[i] = acc;
    }
}

/// tl_b3 preparation: for every group of four columns, the 81 sums `Σ_i (d_i − 1)·x[4g+i]`
/// indexed by `Σ_i d_i·3^i`, built as 9 + 9 pair sums and 81 sums of pairs.
#[inline(always)]
pub fn prep_tl_b3<A: Alu>(a: &mut A, x: &Act, g3: usize, s: &mut Scratch) {
    s.tlb3.clear();
    s.tlb3.resize(g3 * 81, 0);
    for g in 0..g3 {
        a.read_acts(4);
        let v: [i16; 4] = std::array::from_fn(|i| x.x[4 * g + i] as i16);
        // sel[i][d] = (d − 1)·v[i]; i16 is safe: |sum| ≤ 4·128.
        let sel: [[i16; 3]; 4] = std::array::from_fn(|i| [a.sub16(0, v[i]), 0, v[i]]);
        let mut lo = [0i16; 9];
        let mut hi = [0i16; 9];
        for d1 in 0..3 {
            for d0 in 0..3 {
                lo[d0 + 3 * d1] = a.add16(sel[0][d0], sel[1][d1]);
                hi[d0 + 3 * d1] = a.add16(sel[2][d0], sel[3][d1]);
            }
        }
        for (bi, &h) in hi.iter().enumerate() {
            for (ai, &l) in lo.iter().enumerate() {
                let v = a.add16(l, h);
                a.table_write(&mut s.tlb3, g * 81 + ai + 9 * bi, v);
            }
        }
    }
}

/// (6b) Table lookup on base-3 weight groups (the TL2 / TQ1 idea): one byte per four weights
/// indexes an 81-entry table of signed activation sums; one lookup and one add per 4 weights.
#[inline(always)]
pub fn tl_b3<A: Alu>(
    a: &mut A,
    w: &Weights,
    x: &Act,
    s: &mut Scratch,
    rows: Range<usize>,
    y: &mut [i32],
) {
    prep_tl_b3(a, x, w.g3, s);
    for (i, r) in rows.enumerate() {
        let idx = &w.b3[r * w.g3..(r + 1) * w.g3];
        a.read_weights(w.g3 as u64);
        let mut acc = 0i32;
        for (g, &d) in idx.iter().enumerate() {
            let v = a.table_read(&s.tlb3, g * 81 + d as usize);
            acc = a.add32(acc, v as i32);
        }
        y[i] = acc;
    }
}

/// Run encoding `e`'s scalar kernel (preparation included) over `rows`.
#[inline(always)]
pub fn scalar<A: Alu>(
    e: Enc,
    a: &mut A,
    w: &Weights,
    x: &Act,
    s: &mut Scratch,
    rows: Range<usize>,
    y: &mut [i32],
) {
    match e {
        Enc::F32Mac => f32_mac(a, w, x, rows, y),
        Enc::Int8Mac => int8_mac(a, w, x, rows, y),
        Enc::SignSelect => sign_select(a, w, x, rows, y),
        Enc::BitSerial => bit_serial(a, w, x, s, rows, y),
        Enc::Unary => unary(a, w, x, rows, y),
        Enc::Thermometer => thermometer(a, w, x, s, rows, y),
        Enc::TlPn4 => tl_pn4(a, w, x, s, rows, y),
        Enc::TlB3 => tl_b3(a, w, x, s, rows, y),
    }
}

/// The operations the instrumented scalar kernel executes over `rows` (preparation
/// included), and its output.
pub fn count(e: Enc, w: &Weights, x: &Act, rows: Range<usize>) -> (Ops, Vec<i32>) {
    let mut a = crate::ops::Count::default();
    let mut s = Scratch::default();
    let mut y = vec![0i32; rows.len()];
    scalar(e, &mut a, w, x, &mut s, rows, &mut y);
    (a.0, y)
}

// ---------------------------------------------------------------------------------------------
// Formulas: the same counts in closed form, from the weights and activations alone.

/// Quantities the formulas need, computed from the dense oracle and the activation row.
#[derive(Clone, Debug)]
pub struct Stats {
    pub rows: u64,
    pub cols: u64,
    /// 64-bit words per plane per row.
    pub words: u64,
    /// Nonzero weights in the row range.
    pub nnz: u64,
    /// `Σ_{r, c: t≠0} |x_c|` (unary steps).
    pub unary_steps: u64,
    /// `Σ_c |x_c|`.
    pub sum_abs: u64,
    /// Bit-planes of the row (two's complement).
    pub k: u64,
    /// `Σ_w max_{c∈w} |x_c|` (thermometer levels per row).
    pub levels: u64,
    /// Groups of four columns (tl_b3).
    pub g3: u64,
}

impl Stats {
    pub fn new(t: &Ternary, x: &Act, rows: Range<usize>) -> Stats {
        let n = t.cols();
        let words = n.div_ceil(64);
        let mut col_nnz = vec![0u64; n];
        let mut nnz = 0;
        for r in rows.clone() {
            for (c, &v) in t.row(r).iter().enumerate() {
                if v != 0 {
                    col_nnz[c] += 1;
                    nnz += 1;
                }
            }
        }
        let xv = x.values();
        Stats {
            rows: rows.len() as u64,
            cols: n as u64,
            words: words as u64,
            nnz,
            unary_steps: xv
                .iter()
                .zip(&col_nnz)
                .map(|(&v, &k)| v.unsigned_abs() as u64 * k)
                .sum(),
            sum_abs: xv.iter().map(|v| v.unsigned_abs() as u64).sum(),
            k: planes_needed(xv) as u64,
            levels: word_max_abs(xv, words).iter().map(|&v| v as u64).sum(),
            g3: n.div_ceil(4) as u64,
        }
    }
}

/// The operation count of encoding `e`'s scalar algorithm, in closed form. `prep` selects
/// the per-token preparation term, `rows` the per-row term; a GEMV is both.
pub fn formula(e: Enc, st: &Stats, prep: bool, rows: bool) -> Ops {
    use Kind::*;
    let (r, n, w) = (st.rows, st.cols, st.words);
    let mut o = Ops::default();
    let (p, q) = (prep as u64, rows as u64);
    match e {
        Enc::F32Mac => {
            o = o
                .with(FMul, q * r * n)
                .with(FAdd, q * r * n)
                .with(WeightBytes, q * 4 * r * n)
                .with(ActBytes, q * 4 * r * n);
        }
        Enc::Int8Mac => {
            o = o
                .with(Mul8, q * r * n)
                .with(Add32, q * r * n)
                .with(WeightBytes, q * r * n)
                .with(ActBytes, q * r * n);
        }
        Enc::SignSelect => {
            // per nonzero: bit-scan, clear-lowest, one add; zeros cost nothing.
            o = o
                .with(Add32, q * st.nnz)
                .with(Bitop, q * 2 * st.nnz)
                .with(WeightBytes, q * 16 * w * r)
                .with(ActBytes, q * st.nnz);
        }
        Enc::BitSerial => {
            let k = st.k;
            o = o
                // rows: per word and plane 2 AND + 2 popcount + 2 i16 adds; per row and
                // plane 1 subtract + 1 shift + 1 accumulate.
                .with(Add16, q * 2 * k * w * r)
                .with(Popcnt, q * 2 * k * w * r)
                .with(Add32, q * 2 * k * r)
                // prep: 4 logic ops per column and plane (shift, and, shift, or).
                .with(Bitop, q * (2 * k * w * r + k * r) + p * 4 * k * n)
                .with(TableWrite, p * k * w)
                .with(WeightBytes, q * 16 * w * r)
                .with(ActBytes, q * 8 * k * w * r + p * n);
        }
        Enc::Unary => {
            // per nonzero: bit-scan, clear-lowest, |x|, sign select; per unit of |x|: one
            // ±1 increment and one down-count.
            o = o
                .with(Inc32, q * st.unary_steps)
                .with(Add8, q * st.unary_steps)
                .with(Bitop, q * 4 * st.nnz)
                .with(WeightBytes, q * 16 * w * r)
                .with(ActBytes, q * st.nnz);
        }
        Enc::Thermometer => {
            let l = st.levels;
            o = o
                // rows: per word 6 logic ops (sign adjust); per level 2 AND, 2 popcount,
                // 2 adds; per row one subtract.
                .with(Popcnt, q * 2 * l * r)
                .with(Add32, q * (2 * l * r + r))
                // prep: per column |x|, 3 logic ops for the sign bit, one 8-bit compare;
                // per unit of |x| a shift and an or.
                .with(
                    Bitop,
                    q * (6 * w * r + 2 * l * r) + p * (4 * n + 2 * st.sum_abs),
                )
                .with(Add8, p * n)
                .with(TableWrite, p * (w + l))
                .with(WeightBytes, q * 16 * w * r)
                .with(ActBytes, q * (9 * w * r + 8 * l * r) + p * n);
        }
        Enc::TlPn4 => {
            let g = 16 * w;
            o = o
                .with(Add16, p * 11 * g)
                .with(TableWrite, p * 16 * g)
                .with(Bitop, q * 4 * g * r)
                .with(TableRead, q * 2 * g * r)
                .with(Add32, q * 2 * g * r)
                .with(WeightBytes, q * 16 * w * r)
                .with(ActBytes, p * 4 * g);
        }
        Enc::TlB3 => {
            let g = st.g3;
            o = o
                // prep: 4 negations, 9 + 9 pair sums, 81 sums.
                .with(Add16, p * 103 * g)
                .with(TableWrite, p * 81 * g)
                .with(TableRead, q * g * r)
                .with(Add32, q * g * r)
                .with(WeightBytes, q * g * r)
                .with(ActBytes, p * 4 * g);
        }
    }
    o
}

/// Bytes of the table (or prepared activation working set) each lookup/read touches, for
/// the on-chip access energy: f32 row, int8 row, planes, levels, tables.
pub fn working_set_bytes(e: Enc, st: &Stats) -> u64 {
    match e {
        Enc::F32Mac => 4 * st.cols,
        Enc::Int8Mac | Enc::SignSelect | Enc::Unary => st.cols,
        Enc::BitSerial => 8 * st.k * st.words,
        Enc::Thermometer => 8 * (st.words + st.levels),
        Enc::TlPn4 => 2 * 16 * 16 * st.words,
        Enc::TlB3 => 2 * 81 * st.g3,
    }
}
