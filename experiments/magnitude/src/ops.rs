//! Counted arithmetic: every scalar kernel of this experiment performs its arithmetic through an
//! [`Alu`], so the same code runs at full speed ([`Fast`], every method an inlined plain
//! operation) and instrumented ([`Count`], every method also bumps a counter). The instrumented
//! run therefore counts the operations the algorithm *actually executed*, which the experiment
//! compares with the closed-form formulas in `encodings::formula`.
//!
//! Operation kinds ([`Kind`]) are chosen to match the rows of a per-operation energy table
//! (Horowitz, ISSCC 2014): integer adds by width, 8-bit multiplies, f32 add/mul, plus the kinds
//! Horowitz has no figure for (64-bit popcount, 64-bit logic/shift/bit-scan; their energies in
//! `energy.csv` are labelled assumptions), table accesses, and bytes read.
//!
//! What is not counted: loop control, address arithmetic, loads of constants, and register
//! moves — the instruction overhead Horowitz puts at ~70 pJ per instruction on a CPU. The
//! counts describe the datapath an accelerator would build, not the instructions a CPU issues.

use serde::Serialize;

/// The kinds of counted operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    /// 8-bit integer add/sub/compare (e.g. the unary loop's down-counter).
    Add8,
    /// 16-bit integer add/sub (table build, short popcount tallies).
    Add16,
    /// 32-bit integer add/sub (accumulators).
    Add32,
    /// ±1 increment of a 32-bit accumulator (the unary "counter" step).
    Inc32,
    /// 8-bit × 8-bit integer multiply.
    Mul8,
    /// f32 add.
    FAdd,
    /// f32 multiply.
    FMul,
    /// Population count of a 64-bit word.
    Popcnt,
    /// 64-bit logic op (and, or, andnot, xor), shift, bit-scan, abs, select.
    Bitop,
    /// Read of one table entry (a random access: one on-chip memory access each).
    TableRead,
    /// Write of one table entry or one prepared activation word.
    TableWrite,
    /// Bytes of weights read (streamed from DRAM once per token at batch 1).
    WeightBytes,
    /// Bytes of activations (or activation planes) read.
    ActBytes,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Add8,
        Kind::Add16,
        Kind::Add32,
        Kind::Inc32,
        Kind::Mul8,
        Kind::FAdd,
        Kind::FMul,
        Kind::Popcnt,
        Kind::Bitop,
        Kind::TableRead,
        Kind::TableWrite,
        Kind::WeightBytes,
        Kind::ActBytes,
    ];

    /// The arithmetic/logic kinds (what the "arithmetic only" energy sums).
    pub const ARITH: [Kind; 9] = [
        Kind::Add8,
        Kind::Add16,
        Kind::Add32,
        Kind::Inc32,
        Kind::Mul8,
        Kind::FAdd,
        Kind::FMul,
        Kind::Popcnt,
        Kind::Bitop,
    ];

    /// Name in CSV rows and in `energy.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Add8 => "add8",
            Kind::Add16 => "add16",
            Kind::Add32 => "add32",
            Kind::Inc32 => "inc32",
            Kind::Mul8 => "mul8",
            Kind::FAdd => "fadd32",
            Kind::FMul => "fmul32",
            Kind::Popcnt => "popcnt64",
            Kind::Bitop => "bitop64",
            Kind::TableRead => "table_read",
            Kind::TableWrite => "table_write",
            Kind::WeightBytes => "weight_bytes",
            Kind::ActBytes => "act_bytes",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A count per [`Kind`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ops(pub [u64; 13]);

impl Ops {
    pub fn get(&self, k: Kind) -> u64 {
        self.0[k as usize]
    }
    pub fn add(&mut self, k: Kind, n: u64) {
        self.0[k as usize] += n;
    }
    /// `self + other·times`.
    pub fn plus(mut self, other: &Ops, times: u64) -> Ops {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b * times;
        }
        self
    }
    /// Builder: set kind `k` to `n`.
    pub fn with(mut self, k: Kind, n: u64) -> Ops {
        self.0[k as usize] = n;
        self
    }
    /// The kinds that differ, as "kind: a vs b".
    pub fn diff(&self, other: &Ops) -> Vec<String> {
        Kind::ALL
            .iter()
            .filter(|&&k| self.get(k) != other.get(k))
            .map(|&k| format!("{}: {} vs {}", k.name(), self.get(k), other.get(k)))
            .collect()
    }
}

/// Arithmetic through which the scalar kernels run. Every method performs the operation (with
/// wrapping semantics where Rust would check overflow: the kernels document their bounds, and
/// the oracle comparison catches any violation) and, in the counting implementation, counts it.
pub trait Alu {
    fn tally(&mut self, k: Kind, n: u64);

    #[inline(always)]
    fn add8(&mut self, a: u8, b: u8) -> u8 {
        self.tally(Kind::Add8, 1);
        a.wrapping_add(b)
    }
    #[inline(always)]
    fn sub8(&mut self, a: u8, b: u8) -> u8 {
        self.tally(Kind::Add8, 1);
        a.wrapping_sub(b)
    }
    #[inline(always)]
    fn add16(&mut self, a: i16, b: i16) -> i16 {
        self.tally(Kind::Add16, 1);
        a.wrapping_add(b)
    }
    #[inline(always)]
    fn sub16(&mut self, a: i16, b: i16) -> i16 {
        self.tally(Kind::Add16, 1);
        a.wrapping_sub(b)
    }
    #[inline(always)]
    fn add32(&mut self, a: i32, b: i32) -> i32 {
        self.tally(Kind::Add32, 1);
        a.wrapping_add(b)
    }
    #[inline(always)]
    fn sub32(&mut self, a: i32, b: i32) -> i32 {
        self.tally(Kind::Add32, 1);
        a.wrapping_sub(b)
    }
    /// `a + s` for `s ∈ {−1, +1}`.
    #[inline(always)]
    fn inc32(&mut self, a: i32, s: i32) -> i32 {
        self.tally(Kind::Inc32, 1);
        a.wrapping_add(s)
    }
    #[inline(always)]
    fn mul8(&mut self, a: i8, b: i8) -> i16 {
        self.tally(Kind::Mul8, 1);
        a as i16 * b as i16
    }
    #[inline(always)]
    fn fadd(&mut self, a: f32, b: f32) -> f32 {
        self.tally(Kind::FAdd, 1);
        a + b
    }
    #[inline(always)]
    fn fmul(&mut self, a: f32, b: f32) -> f32 {
        self.tally(Kind::FMul, 1);
        a * b
    }
    #[inline(always)]
    fn popcnt(&mut self, a: u64) -> u32 {
        self.tally(Kind::Popcnt, 1);
        a.count_ones()
    }
    #[inline(always)]
    fn and(&mut self, a: u64, b: u64) -> u64 {
        self.tally(Kind::Bitop, 1);
        a & b
    }
    #[inline(always)]
    fn andnot(&mut self, a: u64, b: u64) -> u64 {
        self.tally(Kind::Bitop, 1);
        a & !b
    }
    #[inline(always)]
    fn or(&mut self, a: u64, b: u64) -> u64 {
        self.tally(Kind::Bitop, 1);
        a | b
    }
    #[inline(always)]
    fn shr(&mut self, a: u64, s: u32) -> u64 {
        self.tally(Kind::Bitop, 1);
        a >> s
    }
    #[inline(always)]
    fn shl(&mut self, a: u64, s: u32) -> u64 {
        self.tally(Kind::Bitop, 1);
        a << s
    }
    /// Shift an i32 left (a ×2^s by wiring; counted as a logic op).
    #[inline(always)]
    fn shl32(&mut self, a: i32, s: u32) -> i32 {
        self.tally(Kind::Bitop, 1);
        a.wrapping_shl(s)
    }
    /// Index of the lowest set bit (`tzcnt`).
    #[inline(always)]
    fn tz(&mut self, a: u64) -> u32 {
        self.tally(Kind::Bitop, 1);
        a.trailing_zeros()
    }
    /// Clear the lowest set bit (`blsr`).
    #[inline(always)]
    fn clear_lowest(&mut self, a: u64) -> u64 {
        self.tally(Kind::Bitop, 1);
        a & a.wrapping_sub(1)
    }
    /// |x| of an int8 (≤ 128, so it fits a u8).
    #[inline(always)]
    fn abs8(&mut self, x: i8) -> u8 {
        self.tally(Kind::Bitop, 1);
        x.unsigned_abs()
    }
    /// `if c { a } else { b }` (a multiplexer).
    #[inline(always)]
    fn select(&mut self, c: bool, a: i32, b: i32) -> i32 {
        self.tally(Kind::Bitop, 1);
        if c { a } else { b }
    }
    #[inline(always)]
    fn table_read(&mut self, t: &[i16], i: usize) -> i16 {
        self.tally(Kind::TableRead, 1);
        t[i]
    }
    #[inline(always)]
    fn table_write<T: Copy>(&mut self, t: &mut [T], i: usize, v: T) {
        self.tally(Kind::TableWrite, 1);
        t[i] = v;
    }
    #[inline(always)]
    fn read_weights(&mut self, bytes: u64) {
        self.tally(Kind::WeightBytes, bytes);
    }
    #[inline(always)]
    fn read_acts(&mut self, bytes: u64) {
        self.tally(Kind::ActBytes, bytes);
    }
}

/// Uncounted arithmetic: every method is the bare operation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fast;

impl Alu for Fast {
    #[inline(always)]
    fn tally(&mut self, _k: Kind, _n: u64) {}
}

/// Counting arithmetic.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count(pub Ops);

impl Alu for Count {
    #[inline(always)]
    fn tally(&mut self, k: Kind, n: u64) {
        self.0.0[k as usize] += n;
    }
}
