//! Figures and tables of the `layouts` experiment.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

use crate::charts::{Bar, Grouped};
use crate::data::{self, Rec};
use crate::report::{f, table};

/// Layout display order: rotor variants first, then the packed baselines.
fn order(layouts: &mut Vec<String>) {
    let rank = |l: &str| match l {
        "rotor-pn" => 0,
        "rotor-pn-b4" => 1,
        "rotor-pn-row" => 2,
        "rotor-ms" => 3,
        "rotor-ms-b4" => 4,
        "rotor-ms-row" => 5,
        "rotor-tl" => 6,
        "hf_packed" => 7,
        "i2" => 8,
        "tq1" => 9,
        "dense" => 10,
        _ => 11,
    };
    layouts.sort_by_key(|l| rank(l));
}

/// For each (layout, shape, threads, batch, variant), the record of the fastest kernel.
fn best_kernel(recs: &[Rec]) -> Vec<Rec> {
    let mut best: BTreeMap<(String, String, i64, i64, String), Rec> = BTreeMap::new();
    for r in recs {
        let k = (
            r.layout.clone(),
            r.shape.clone(),
            r.threads,
            r.batch,
            r.variant.clone(),
        );
        match best.get(&k) {
            Some(b) if b.value >= r.value => {}
            _ => {
                best.insert(k, r.clone());
            }
        }
    }
    best.into_values().collect()
}

pub fn render(all: &DataFrame, figures: &Path) -> Result<Vec<(String, String)>> {
    let df = data::select(all, &[("experiment", "layouts")])?;
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let sub = data::machine_line(&df)?;
    let recs = data::records(&df)?;
    let max_threads = recs.iter().map(|r| r.threads).max().unwrap_or(1);
    let by = |metric: &str, variant: &str| -> Vec<Rec> {
        recs.iter()
            .filter(|r| r.metric == metric && r.variant == variant)
            .cloned()
            .collect()
    };
    let mut sections = vec![];

    // --- DRAM-streamed GEMV throughput per layout and shape (best kernel, all threads).
    let gemv = best_kernel(&by("gemv_weight_gbs", "dram"));
    let mut layouts: Vec<String> = gemv.iter().map(|r| r.layout.clone()).collect();
    layouts.dedup();
    layouts.sort();
    layouts.dedup();
    order(&mut layouts);
    let mut shapes: Vec<String> = vec![];
    for r in &gemv {
        if !shapes.contains(&r.shape) {
            shapes.push(r.shape.clone());
        }
    }
    let read_bw = recs
        .iter()
        .find(|r| r.metric == "read_bandwidth" && r.threads == max_threads)
        .map(|r| r.value);
    if !gemv.is_empty() {
        let values = shapes
            .iter()
            .map(|s| {
                layouts
                    .iter()
                    .map(|l| {
                        gemv.iter()
                            .find(|r| &r.layout == l && &r.shape == s && r.threads == max_threads)
                            .map(|r| Bar {
                                value: r.value,
                                err: Some((r.min, r.max)),
                            })
                    })
                    .collect()
            })
            .collect();
        Grouped {
            title: format!("Ternary GEMV, weights streamed from DRAM ({max_threads} threads, best kernel per layout)"),
            subtitle: sub.clone(),
            y_label: "weight bytes read per second (GB/s)".into(),
            groups: layouts.clone(),
            series: shapes.iter().map(|s| format!("out×in {s}")).collect(),
            values,
            lines: read_bw
                .map(|b| vec![(b, format!("read bandwidth, {max_threads} threads ({b:.1} GB/s)"))])
                .unwrap_or_default(),
            log_y: false,
        }
        .save(&figures.join("layouts-gemv-dram"))?;
    }

    // --- Roofline fraction per layout and thread count (mean over shapes, min–max over shapes).
    let roof = best_kernel(&by("roofline_fraction", "dram"));
    let mut threads: Vec<i64> = roof.iter().map(|r| r.threads).collect();
    threads.sort();
    threads.dedup();
    if !roof.is_empty() {
        let values = threads
            .iter()
            .map(|&t| {
                layouts
                    .iter()
                    .map(|l| {
                        let v: Vec<f64> = roof
                            .iter()
                            .filter(|r| &r.layout == l && r.threads == t)
                            .map(|r| r.value)
                            .collect();
                        (!v.is_empty()).then(|| Bar {
                            value: v.iter().sum::<f64>() / v.len() as f64,
                            err: Some((
                                v.iter().cloned().fold(f64::INFINITY, f64::min),
                                v.iter().cloned().fold(0.0, f64::max),
                            )),
                        })
                    })
                    .collect()
            })
            .collect();
        Grouped {
            title: "Fraction of the memory read bandwidth reached by DRAM-streamed GEMV".into(),
            subtitle: format!("{sub} · bars: mean over the four 2B-4T shapes, whiskers: min–max"),
            y_label: "fraction of measured read bandwidth".into(),
            groups: layouts.clone(),
            series: threads.iter().map(|t| format!("{t} thread(s)")).collect(),
            values,
            lines: vec![(1.0, "roofline (1.0)".into())],
            log_y: false,
        }
        .save(&figures.join("layouts-roofline"))?;
    }

    // --- Hot GEMM throughput per batch on the largest shape.
    let gemm = best_kernel(&by("gemm_gmacs", "hot"));
    let big_shape = shapes
        .iter()
        .max_by_key(|s| {
            s.split('x')
                .map(|v| v.parse::<usize>().unwrap_or(0))
                .product::<usize>()
        })
        .cloned()
        .unwrap_or_default();
    let mut batches: Vec<i64> = gemm.iter().map(|r| r.batch).collect();
    batches.sort();
    batches.dedup();
    if !gemm.is_empty() {
        let values = batches
            .iter()
            .map(|&b| {
                layouts
                    .iter()
                    .map(|l| {
                        gemm.iter()
                            .find(|r| {
                                &r.layout == l
                                    && r.shape == big_shape
                                    && r.batch == b
                                    && r.threads == max_threads
                            })
                            .map(|r| Bar {
                                value: r.value,
                                err: Some((r.min, r.max)),
                            })
                    })
                    .collect()
            })
            .collect();
        Grouped {
            title: format!(
                "Ternary GEMV/GEMM, weights hot in cache, shape {big_shape} ({max_threads} threads)"
            ),
            subtitle: sub.clone(),
            y_label: "multiply-accumulates per second (GMAC/s)".into(),
            groups: layouts.clone(),
            series: batches.iter().map(|b| format!("batch {b}")).collect(),
            values,
            lines: vec![],
            log_y: true,
        }
        .save(&figures.join("layouts-gemm"))?;
    }

    // --- Whole-model conversion time from the checkpoint bytes.
    let conv: Vec<Rec> = recs
        .iter()
        .filter(|r| r.metric == "convert_model_s")
        .cloned()
        .collect();
    let mut conv_layouts: Vec<String> = layouts.clone();
    conv_layouts.push("memcpy".into());
    if !conv.is_empty() {
        let values = threads
            .iter()
            .map(|&t| {
                conv_layouts
                    .iter()
                    .map(|l| {
                        conv.iter()
                            .find(|r| &r.layout == l && r.threads == t)
                            .map(|r| Bar {
                                value: r.value * 1e3,
                                err: Some((r.min * 1e3, r.max * 1e3)),
                            })
                    })
                    .collect()
            })
            .collect();
        Grouped {
            title:
                "Converting the whole 2B-4T-shape model (210 projections) from the checkpoint bytes"
                    .into(),
            subtitle: sub.clone(),
            y_label: "milliseconds (log scale)".into(),
            groups: conv_layouts.clone(),
            series: threads.iter().map(|t| format!("{t} thread(s)")).collect(),
            values,
            lines: vec![(1000.0, "1 s".into())],
            log_y: true,
        }
        .save(&figures.join("layouts-conversion"))?;
    }

    // --- rotor / packed speed ratios: per case, the fastest rotor variant (each with its
    // fastest kernel) against each packed layout's fastest kernel — a verdict on the layouts,
    // not on one variant.
    let mut cats: Vec<(String, String, i64, String)> = vec![]; // (label, shape, batch, variant)
    for s in &shapes {
        cats.push((format!("{s} DRAM b1"), s.clone(), 1, "dram".into()));
    }
    for &b in &batches {
        cats.push((
            format!("{big_shape} hot b{b}"),
            big_shape.clone(),
            b,
            "hot".into(),
        ));
    }
    let tput = |l: &str, shape: &str, b: i64, v: &str| -> Option<Rec> {
        let metric = if v == "dram" {
            "gemv_weight_gbs"
        } else {
            "gemm_gmacs"
        };
        let pool: Vec<Rec> = recs
            .iter()
            .filter(|r| {
                r.metric == metric
                    && r.variant == v
                    && r.layout == l
                    && r.shape == shape
                    && r.batch == b
                    && r.threads == max_threads
            })
            .cloned()
            .collect();
        best_kernel(&pool).into_iter().next()
    };
    let rotors: Vec<String> = layouts
        .iter()
        .filter(|l| l.starts_with("rotor"))
        .cloned()
        .collect();
    let best_rotor = |shape: &str, b: i64, v: &str| -> Option<Rec> {
        rotors
            .iter()
            .filter_map(|l| tput(l, shape, b, v))
            .max_by(|a, c| a.value.total_cmp(&c.value))
    };
    let others = ["hf_packed", "i2"];
    let mut ratio_rows = vec![];
    let values: Vec<Vec<Option<Bar>>> = others
        .iter()
        .map(|o| {
            cats.iter()
                .map(|(label, s, b, v)| {
                    let (a, c) = (best_rotor(s, *b, v)?, tput(o, s, *b, v)?);
                    // Throughput ratio; whiskers from the extremes of both.
                    let bar = Bar {
                        value: a.value / c.value,
                        err: Some((a.min / c.max, a.max / c.min)),
                    };
                    ratio_rows.push(vec![
                        label.clone(),
                        format!("best rotor / {o}"),
                        format!("{} ({} {})", f(a.value, 2), a.layout, a.kernel),
                        format!("{} ({})", f(c.value, 2), c.kernel),
                        f(bar.value, 2),
                        format!("{}–{}", f(a.min / c.max, 2), f(a.max / c.min, 2)),
                    ]);
                    Some(bar)
                })
                .collect()
        })
        .collect();
    if !ratio_rows.is_empty() {
        Grouped {
            title: format!("Speed of the fastest rotor variant relative to the packed layouts ({max_threads} threads)"),
            subtitle: format!("{sub} · >1 means rotor is faster; whiskers: min/max over repetitions"),
            y_label: "throughput ratio rotor / other".into(),
            groups: cats.iter().map(|c| c.0.clone()).collect(),
            series: others.iter().map(|o| format!("best rotor / {o}")).collect(),
            values,
            lines: vec![(1.0, "equal speed".into())],
            log_y: false,
        }
        .save(&figures.join("layouts-ratio"))?;
        sections.push((
            "layouts-ratio".to_string(),
            table(
                &["case", "ratio", "best rotor (unit, layout kernel)", "other (kernel)", "median ratio", "min–max"],
                &ratio_rows,
            ) + "\nUnits: GB/s of weights for DRAM rows, GMAC/s for hot rows; kernel in brackets.\n",
        ));
    }

    // --- Summary table per layout.
    let mut rows = vec![];
    for l in &layouts {
        let bpw = recs
            .iter()
            .find(|r| r.metric == "bytes_per_weight" && &r.layout == l)
            .map(|r| r.value * 8.0)
            .unwrap_or(f64::NAN);
        let mean_gemv = |t: i64| {
            let v: Vec<f64> = gemv
                .iter()
                .filter(|r| &r.layout == l && r.threads == t)
                .map(|r| r.value)
                .collect();
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let roof_max: Vec<f64> = roof
            .iter()
            .filter(|r| &r.layout == l && r.threads == max_threads)
            .map(|r| r.value)
            .collect();
        let roof_mean = if roof_max.is_empty() {
            f64::NAN
        } else {
            roof_max.iter().sum::<f64>() / roof_max.len() as f64
        };
        let g64 = gemm
            .iter()
            .find(|r| {
                &r.layout == l
                    && r.shape == big_shape
                    && r.threads == max_threads
                    && r.batch == *batches.last().unwrap_or(&1)
            })
            .map(|r| r.value)
            .unwrap_or(f64::NAN);
        let conv_t = conv
            .iter()
            .find(|r| &r.layout == l && r.threads == max_threads);
        let memcpy_t = conv
            .iter()
            .find(|r| r.layout == "memcpy" && r.threads == max_threads);
        let kernel = gemv
            .iter()
            .find(|r| &r.layout == l && r.threads == max_threads)
            .map(|r| r.kernel.clone())
            .unwrap_or_default();
        rows.push(vec![
            format!("`{l}`"),
            f(bpw, 3),
            kernel,
            f(mean_gemv(1), 2),
            f(mean_gemv(max_threads), 2),
            f(roof_mean, 2),
            f(g64, 1),
            conv_t
                .map(|c| format!("{} ms", f(c.value * 1e3, 0)))
                .unwrap_or("–".into()),
            match (conv_t, memcpy_t) {
                (Some(c), Some(m)) => format!("{}×", f(c.value / m.value, 2)),
                _ => "–".into(),
            },
        ]);
    }
    let b_last = batches.last().copied().unwrap_or(1);
    sections.push((
        "layouts-summary".to_string(),
        table(
            &[
                "layout",
                "bits/weight",
                "kernel",
                "DRAM GEMV GB/s, 1 thread",
                &format!("DRAM GEMV GB/s, {max_threads} threads"),
                &format!("roofline fraction, {max_threads} threads"),
                &format!("hot GEMM b{b_last} GMAC/s ({big_shape})"),
                &format!("model conversion, {max_threads} threads"),
                "vs memcpy",
            ],
            &rows,
        ) + &format!(
            "\nDRAM GEMV: mean over the 2B-4T projection shapes; read bandwidth measured in the same run: {}.\n{sub}\n",
            read_bw.map(|b| format!("{b:.1} GB/s at {max_threads} threads")).unwrap_or("–".into())
        ),
    ));
    Ok(sections)
}
