//! Loading the tidy CSV (every experiment shares one schema, see experiments/harness) into a
//! polars DataFrame, and small typed accessors for the charts.

use std::path::{Path, PathBuf};

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

/// Every `*.csv` under `dir` (recursively), concatenated into one polars DataFrame, plus a
/// `machine` column ([`machine_name`] of `cpu` and `simd`). Files whose header is not the tidy
/// schema (e.g. a training loss curve) are skipped. The files are parsed with the `csv` crate
/// (polars' own CSV reader pulls in its streaming engine, minutes of build for a few hundred kB).
pub fn load(dir: &Path) -> Result<DataFrame> {
    let mut files = vec![];
    csv_files(dir, &mut files)?;
    let want = schema();
    let header: Vec<String> = want.iter_names().map(|n| n.to_string()).collect();
    let kinds: Vec<DataType> = want.iter_fields().map(|f| f.dtype().clone()).collect();
    let n = header.len();
    let mut text: Vec<Vec<String>> = vec![vec![]; n];
    let mut int: Vec<Vec<Option<i64>>> = vec![vec![]; n];
    let mut float: Vec<Vec<Option<f64>>> = vec![vec![]; n];
    for f in files {
        let mut r =
            csv::Reader::from_path(&f).with_context(|| format!("reading {}", f.display()))?;
        let h: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
        if h != header {
            continue;
        }
        for (line, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("{}: record {}", f.display(), line + 1))?;
            if rec.len() != n {
                anyhow::bail!(
                    "{}: record {} has {} fields",
                    f.display(),
                    line + 1,
                    rec.len()
                );
            }
            for (c, v) in rec.iter().enumerate() {
                let bad = || {
                    format!(
                        "{}: record {}, {} = {v:?}",
                        f.display(),
                        line + 1,
                        header[c]
                    )
                };
                match kinds[c] {
                    DataType::Int64 => int[c].push(if v.is_empty() {
                        None
                    } else {
                        Some(anyhow::Context::with_context(v.parse(), bad)?)
                    }),
                    DataType::Float64 => float[c].push(if v.is_empty() {
                        None
                    } else {
                        Some(anyhow::Context::with_context(v.parse(), bad)?)
                    }),
                    _ => text[c].push(v.to_string()),
                }
            }
        }
    }
    let mut cols: Vec<Column> = (0..n)
        .map(|c| {
            let name = header[c].as_str().into();
            match kinds[c] {
                DataType::Int64 => Column::new(name, std::mem::take(&mut int[c])),
                DataType::Float64 => Column::new(name, std::mem::take(&mut float[c])),
                _ => Column::new(name, std::mem::take(&mut text[c])),
            }
        })
        .collect();
    let ci = header.iter().position(|h| h == "cpu").expect("cpu column");
    let si = header
        .iter()
        .position(|h| h == "simd")
        .expect("simd column");
    let machine: Vec<String> = {
        let (c, s) = (cols[ci].str()?, cols[si].str()?);
        c.iter()
            .zip(s.iter())
            .map(|(c, s)| machine_name(c.unwrap_or(""), s.unwrap_or("")))
            .collect()
    };
    cols.push(Column::new("machine".into(), machine));
    Ok(DataFrame::new_infer_height(cols)?)
}

/// A machine's name from its CPU model and SIMD level: the same rule as the harness's
/// `machine_name`, which names the result files (`amd-epyc-avx2`, `intel-xeon-avx512`).
pub fn machine_name(cpu: &str, simd: &str) -> String {
    let cpu = cpu.split('@').next().unwrap_or("").to_lowercase();
    let cpu = cpu.replace("(r)", " ").replace("(tm)", " ");
    let mut words: Vec<String> = cpu
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !["processor", "cpu", "core"].contains(w))
        .map(str::to_string)
        .collect();
    if words.is_empty() {
        words.push("unknown".into());
    }
    let simd: String = simd
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    // The vector class names the machine: an AVX-512 machine stays `…-avx512` whether its
    // best kernel family is `avx512`, `avx512vnni` or `amx`, so its reruns replace its files.
    let simd = match simd.as_str() {
        "avx512vnni" | "amx" => "avx512".to_string(),
        _ => simd,
    };
    if !simd.is_empty() {
        words.push(simd);
    }
    words.join("-")
}

/// The machines in `df` (sorted by name) with a label for headings: `(name, "CPU · SIMD")`.
pub fn machines(df: &DataFrame) -> Result<Vec<(String, String)>> {
    let (m, c, s) = (
        strings(df, "machine")?,
        strings(df, "cpu")?,
        strings(df, "simd")?,
    );
    let mut v: Vec<(String, String)> = vec![];
    for i in 0..m.len() {
        if !v.iter().any(|(n, _)| *n == m[i]) {
            v.push((m[i].clone(), format!("{} · {}", c[i], s[i])));
        }
    }
    v.sort();
    Ok(v)
}

/// Rows where every `(column, value)` string equality holds.
pub fn select(df: &DataFrame, eq: &[(&str, &str)]) -> Result<DataFrame> {
    let mut mask = BooleanChunked::full("mask".into(), true, df.height());
    for (c, v) in eq {
        mask = &mask & &df.column(c)?.str()?.equal(*v);
    }
    Ok(df.filter(&mask)?)
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
