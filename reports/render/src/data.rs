//! Loading the tidy CSV (every experiment shares one schema, see experiments/harness) into a
//! polars DataFrame, and small typed accessors for the charts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use polars::prelude::*;

/// The harness's fixed column schema.
pub fn schema() -> Schema {
    let s = |n: &str| Field::new(n.into(), DataType::String);
    let i = |n: &str| Field::new(n.into(), DataType::Int64);
    let f = |n: &str| Field::new(n.into(), DataType::Float64);
    Schema::from_iter([
        s("experiment"),
        s("variant"),
        s("layout"),
        s("kernel"),
        s("shape"),
        i("threads"),
        i("batch"),
        s("metric"),
        f("value"),
        s("unit"),
        i("reps"),
        f("min"),
        f("median"),
        f("max"),
        s("git_rev"),
        s("cpu"),
        s("simd"),
        s("date"),
        s("mode"),
    ])
}

fn csv_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            csv_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "csv") {
            out.push(p);
        }
    }
    Ok(())
}

/// Every `*.csv` under `dir` (recursively), concatenated. Files whose header is not the tidy
/// schema (e.g. a training loss curve) are skipped.
pub fn load(dir: &Path) -> Result<DataFrame> {
    let mut files = vec![];
    csv_files(dir, &mut files)?;
    let want = schema();
    let header: Vec<String> = want.iter_names().map(|n| n.to_string()).collect();
    let mut frames = vec![];
    for f in files {
        let first = std::fs::read_to_string(&f)
            .with_context(|| format!("reading {}", f.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        if first.split(',').map(str::to_string).collect::<Vec<_>>() != header {
            continue;
        }
        let path = PlRefPath::try_from_path(&f)?;
        let lf = LazyCsvReader::new(path)
            .with_has_header(true)
            .with_schema(Some(Arc::new(want.clone())))
            .finish()
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", f.display()))?;
        frames.push(lf);
    }
    if frames.is_empty() {
        return Ok(DataFrame::empty_with_schema(&want));
    }
    Ok(concat(frames, UnionArgs::default())?.collect()?)
}

/// Rows where every `(column, value)` string equality holds.
pub fn select(df: &DataFrame, eq: &[(&str, &str)]) -> Result<DataFrame> {
    let mut e = lit(true);
    for (c, v) in eq {
        e = e.and(col(*c).eq(lit(*v)));
    }
    Ok(df.clone().lazy().filter(e).collect()?)
}

/// Rows where integer column `c` equals `v`.
pub fn select_int(df: &DataFrame, c: &str, v: i64) -> Result<DataFrame> {
    Ok(df.clone().lazy().filter(col(c).eq(lit(v))).collect()?)
}

pub fn strings(df: &DataFrame, c: &str) -> Result<Vec<String>> {
    Ok(df
        .column(c)?
        .str()?
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect())
}

pub fn floats(df: &DataFrame, c: &str) -> Result<Vec<f64>> {
    Ok(df
        .column(c)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

pub fn ints(df: &DataFrame, c: &str) -> Result<Vec<i64>> {
    Ok(df
        .column(c)?
        .i64()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

/// Distinct values of a string column, in order of first appearance.
pub fn distinct(df: &DataFrame, c: &str) -> Result<Vec<String>> {
    let mut v: Vec<String> = vec![];
    for s in strings(df, c)? {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    Ok(v)
}

/// One record of the tidy schema, for code that is clearer row by row.
#[derive(Clone, Debug)]
pub struct Rec {
    pub variant: String,
    pub layout: String,
    pub kernel: String,
    pub shape: String,
    pub threads: i64,
    pub batch: i64,
    pub metric: String,
    pub value: f64,
    pub min: f64,
    pub max: f64,
    pub reps: i64,
}

pub fn records(df: &DataFrame) -> Result<Vec<Rec>> {
    let (v, l, k, s, m) = (
        strings(df, "variant")?,
        strings(df, "layout")?,
        strings(df, "kernel")?,
        strings(df, "shape")?,
        strings(df, "metric")?,
    );
    let (t, b, r) = (ints(df, "threads")?, ints(df, "batch")?, ints(df, "reps")?);
    let (val, lo, hi) = (floats(df, "value")?, floats(df, "min")?, floats(df, "max")?);
    Ok((0..df.height())
        .map(|i| Rec {
            variant: v[i].clone(),
            layout: l[i].clone(),
            kernel: k[i].clone(),
            shape: s[i].clone(),
            threads: t[i],
            batch: b[i],
            metric: m[i].clone(),
            value: val[i],
            min: lo[i],
            max: hi[i],
            reps: r[i],
        })
        .collect())
}

/// "CPU, SIMD, date, git rev" of the first row of an experiment, for chart subtitles.
pub fn machine_line(df: &DataFrame) -> Result<String> {
    if df.height() == 0 {
        return Ok(String::new());
    }
    let g = |c: &str| -> Result<String> { Ok(strings(df, c)?[0].clone()) };
    Ok(format!(
        "{} · {} · {} · git {} · {} mode",
        g("cpu")?,
        g("simd")?,
        g("date")?,
        g("git_rev")?,
        g("mode")?
    ))
}

/// Mean of a group-by over `keys` of column `value` (a polars aggregation, for tables).
pub fn mean_by(df: &DataFrame, keys: &[&str]) -> Result<DataFrame> {
    let k: Vec<Expr> = keys.iter().map(|c| col(*c)).collect();
    Ok(df
        .clone()
        .lazy()
        .group_by_stable(k)
        .agg([
            col("value").mean().alias("value"),
            col("min").min().alias("min"),
            col("max").max().alias("max"),
        ])
        .collect()?)
}
