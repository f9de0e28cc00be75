//! The energy model: counted operations × per-operation energies from a cited table.
//!
//! Tables live in a data file (`experiments/magnitude/energy.csv`, compiled in as the
//! default; `--energy FILE` swaps in another file with the same columns): one row per
//! `(table, op)` with the energy in pJ, whether the figure is `cited`, `interpolated`,
//! `derived` or `assumed`, and its source. Shipped: `horowitz45` (Horowitz, ISSCC 2014, 45 nm)
//! and `bitnet7nm` (the 7 nm table of the BitNet paper, arXiv:2310.11453 Table 2).
//!
//! Three terms per GEMV or per token:
//! - **arithmetic**: Σ over the ALU kinds (adds, multiplies, popcounts, logic) of count × energy;
//! - **on-chip**: activation bytes / 8 + table reads + table writes, each a 64-bit access to an
//!   SRAM the size of the encoding's working set (energy interpolated in log2(size) between
//!   Horowitz's 8 KB, 32 KB and 1 MB points). This assumes no reuse in registers across rows,
//!   an upper bound a register-blocked kernel divides by its row block;
//! - **DRAM**: weight bytes / 8 × the 64-bit DRAM access energy (batch-1 decode streams every
//!   weight once per token).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use crate::ops::{Kind, Ops};

/// The shipped tables.
pub const DEFAULT_CSV: &str = include_str!("../energy.csv");

/// One row of the data file.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Entry {
    pub table: String,
    pub op: String,
    pub energy_pj: f64,
    pub basis: String,
    pub source: String,
}

/// One energy table: op name → pJ.
#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    pub pj: BTreeMap<String, f64>,
}

/// Names every table must define.
const REQUIRED: [&str; 13] = [
    "add8", "add16", "add32", "inc32", "mul8", "fadd32", "fmul32", "popcnt64", "bitop64",
    "sram_8k", "sram_32k", "sram_1m", "dram",
];

/// Parse a data file into its entries and tables (in file order).
pub fn parse(text: &str) -> Result<(Vec<Entry>, Vec<Table>)> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let mut entries = vec![];
    for e in r.deserialize() {
        let e: Entry = e.context("energy table row")?;
        if !(e.energy_pj.is_finite() && e.energy_pj >= 0.0) {
            bail!("energy table {}: {} = {} pJ", e.table, e.op, e.energy_pj);
        }
        entries.push(e);
    }
    let mut tables: Vec<Table> = vec![];
    for e in &entries {
        match tables.iter_mut().find(|t| t.name == e.table) {
            Some(t) => {
                t.pj.insert(e.op.clone(), e.energy_pj);
            }
            None => tables.push(Table {
                name: e.table.clone(),
                pj: BTreeMap::from([(e.op.clone(), e.energy_pj)]),
            }),
        }
    }
    for t in &tables {
        for op in REQUIRED {
            if !t.pj.contains_key(op) {
                bail!("energy table `{}` has no `{op}` row", t.name);
            }
        }
    }
    Ok((entries, tables))
}

/// Modelled energy of one operation count, in pJ.
#[derive(Clone, Copy, Debug, Default)]
pub struct Energy {
    pub arith: f64,
    pub onchip: f64,
    pub dram: f64,
}

impl Energy {
    pub fn with_dram(&self) -> f64 {
        self.arith + self.dram
    }
    pub fn total(&self) -> f64 {
        self.arith + self.onchip + self.dram
    }
    pub fn plus(self, o: Energy, times: f64) -> Energy {
        Energy {
            arith: self.arith + o.arith * times,
            onchip: self.onchip + o.onchip * times,
            dram: self.dram + o.dram * times,
        }
    }
}

impl Table {
    pub fn get(&self, op: &str) -> f64 {
        self.pj[op]
    }

    /// Energy of one ALU kind (0 for the memory kinds).
    pub fn op(&self, k: Kind) -> f64 {
        if Kind::ARITH.contains(&k) {
            self.get(k.name())
        } else {
            0.0
        }
    }

    /// 64-bit access energy of an SRAM holding `bytes`: Horowitz's points (8 KB, 32 KB, 1 MB)
    /// interpolated linearly in log2(size), clamped at both ends.
    pub fn sram(&self, bytes: u64) -> f64 {
        let pts = [
            (13.0, self.get("sram_8k")),
            (15.0, self.get("sram_32k")),
            (20.0, self.get("sram_1m")),
        ];
        let l = (bytes.max(1) as f64).log2();
        if l <= pts[0].0 {
            return pts[0].1;
        }
        for w in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            if l <= x1 {
                return y0 + (y1 - y0) * (l - x0) / (x1 - x0);
            }
        }
        pts[2].1
    }

    /// The three energy terms of `ops`, with an on-chip working set of `ws` bytes.
    pub fn energy(&self, ops: &Ops, ws: u64) -> Energy {
        let arith = Kind::ARITH
            .iter()
            .map(|&k| ops.get(k) as f64 * self.op(k))
            .sum();
        let accesses = ops.get(Kind::ActBytes) as f64 / 8.0
            + ops.get(Kind::TableRead) as f64
            + ops.get(Kind::TableWrite) as f64;
        Energy {
            arith,
            onchip: accesses * self.sram(ws),
            dram: ops.get(Kind::WeightBytes) as f64 / 8.0 * self.get("dram"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_tables_parse_and_reproduce_the_cited_ratios() {
        let (_, tables) = parse(DEFAULT_CSV).unwrap();
        let h = tables.iter().find(|t| t.name == "horowitz45").unwrap();
        let b = tables.iter().find(|t| t.name == "bitnet7nm").unwrap();
        // The seed's 1.85×: one FP32 multiply against twenty 32-bit adds.
        assert!((h.get("fmul32") / (20.0 * h.get("add32")) - 1.85).abs() < 1e-9);
        // BitNet b1.58's 71.4×: an FP16 multiply-add against one INT8 add, at 7 nm.
        let r = (b.get("fmul16") + b.get("fadd16")) / b.get("add8");
        assert!((r - 71.43).abs() < 0.01, "{r}");
        assert_eq!(h.sram(8 << 10), 10.0);
        assert_eq!(h.sram(1), 10.0);
        assert!((h.sram(32 << 10) - 20.0).abs() < 1e-9);
        assert!((h.sram(1 << 20) - 100.0).abs() < 1e-9);
        assert!(h.sram(100 << 10) > 20.0 && h.sram(100 << 10) < 100.0);
    }

    #[test]
    fn a_table_missing_an_op_is_rejected() {
        let bad = "table,op,energy_pj,basis,source\nx,add8,0.1,cited,s\n";
        assert!(parse(bad).is_err());
    }
}
