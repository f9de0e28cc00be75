//! Figures and tables of the `utilization` experiment: the seed's "95 % vs 35 % utilization,
//! 10× throughput" claim against measured bandwidth and peak MAC rates.

use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

use crate::charts::{Bar, Grouped};
use crate::data::{self, Rec};
use crate::report::{f, table};

fn order(products: &mut Vec<String>, recs: &[Rec]) {
    let rank = |p: &str| -> (usize, String) {
        let class = recs
            .iter()
            .find(|r| r.layout == p)
            .map(|r| r.variant.split('/').next().unwrap_or("").to_string())
            .unwrap_or_default();
        let c = match class.as_str() {
            "ternary" => 0,
            "int8" => 1,
            "bf16" => 2,
            _ => 3,
        };
        (c, p.to_string())
    };
    products.sort_by_key(|p| rank(p));
}

pub fn render(all: &DataFrame, figures: &Path) -> Result<Vec<(String, String)>> {
    let df = data::select(all, &[("experiment", "utilization")])?;
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let sub = data::machine_line(&df)?;
    let recs = data::records(&df)?;
    let max_t = recs.iter().map(|r| r.threads).max().unwrap_or(1);
    let threads: Vec<i64> = {
        let mut t: Vec<i64> = recs.iter().map(|r| r.threads).collect();
        t.sort();
        t.dedup();
        t
    };
    let batches: Vec<i64> = {
        let mut b: Vec<i64> = recs
            .iter()
            .filter(|r| r.metric == "gmac_s")
            .map(|r| r.batch)
            .collect();
        b.sort();
        b.dedup();
        b
    };
    let big = *batches.last().unwrap_or(&1);
    let mut shapes: Vec<String> = vec![];
    for r in recs.iter().filter(|r| r.metric == "gmac_s") {
        if !shapes.contains(&r.shape) {
            shapes.push(r.shape.clone());
        }
    }
    let mut products: Vec<String> = vec![];
    for r in recs.iter().filter(|r| r.metric == "gmac_s") {
        if !products.contains(&r.layout) {
            products.push(r.layout.clone());
        }
    }
    order(&mut products, &recs);
    let find = |metric: &str, p: &str, shape: &str, batch: i64, t: i64| -> Option<&Rec> {
        recs.iter().find(|r| {
            r.metric == metric
                && r.layout == p
                && r.shape == shape
                && r.batch == batch
                && r.threads == t
        })
    };
    let mean = |metric: &str, p: &str, batch: i64, t: i64| -> f64 {
        let v: Vec<f64> = shapes
            .iter()
            .filter_map(|s| find(metric, p, s, batch, t).map(|r| r.value))
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let bar_chart = |metric: &str, batch: i64, title: String, y: &str, stem: &str| -> Result<()> {
        let series: Vec<String> = products
            .iter()
            .filter(|p| {
                shapes
                    .iter()
                    .any(|s| find(metric, p, s, batch, max_t).is_some())
            })
            .cloned()
            .collect();
        Grouped {
            title,
            subtitle: format!(
                "{sub} · {max_t} thread(s) · whiskers: min–max over interleaved rounds"
            ),
            y_label: y.into(),
            groups: shapes.clone(),
            series: series.clone(),
            values: series
                .iter()
                .map(|p| {
                    shapes
                        .iter()
                        .map(|s| {
                            find(metric, p, s, batch, max_t).map(|r| Bar {
                                value: r.value,
                                err: Some((r.min, r.max)),
                            })
                        })
                        .collect()
                })
                .collect(),
            lines: vec![
                (1.0, "100 %".into()),
                (0.95, "the seed: ternary 95 %".into()),
                (0.35, "the seed: FP32 35 %".into()),
            ],
            log_y: false,
        }
        .save(&figures.join(stem))
    };
    bar_chart(
        "bandwidth_fraction",
        1,
        "Batch 1 (decode), weights from DRAM: weight bytes/s ÷ read bandwidth measured in the run"
            .into(),
        "fraction of the measured read bandwidth",
        "utilization-bandwidth",
    )?;
    bar_chart(
        "peak_fraction",
        big,
        format!(
            "Batch {big} (prefill): MAC/s ÷ measured peak MAC rate of the format's instructions"
        ),
        "fraction of the peak MAC rate",
        "utilization-peak",
    )?;
    // Throughput ratio ternary ÷ FP32 per shape and batch, one series per thread count.
    let ratio = |shape: &str, batch: i64, t: i64, other: &str| -> Option<&Rec> {
        recs.iter().find(|r| {
            r.metric == "ternary_over"
                && r.variant == other
                && r.shape == shape
                && r.batch == batch
                && r.threads == t
        })
    };
    let groups: Vec<(String, i64)> = batches
        .iter()
        .flat_map(|&b| shapes.iter().map(move |s| (s.clone(), b)))
        .collect();
    Grouped {
        title: "Throughput ratio: best ternary layout ÷ best FP32 product (same shape, batch, run)"
            .into(),
        subtitle: sub.clone(),
        y_label: "ternary MAC/s ÷ FP32 MAC/s".into(),
        groups: groups.iter().map(|(s, b)| format!("{s} b{b}")).collect(),
        series: threads.iter().map(|t| format!("{t} thread(s)")).collect(),
        values: threads
            .iter()
            .map(|&t| {
                groups
                    .iter()
                    .map(|(s, b)| {
                        ratio(s, *b, t, "f32").map(|r| Bar {
                            value: r.value,
                            err: None,
                        })
                    })
                    .collect()
            })
            .collect(),
        lines: vec![(10.0, "the seed's 10×".into()), (1.0, "equal".into())],
        log_y: true,
    }
    .save(&figures.join("utilization-ratio"))?;

    let mut sections = vec![];
    // Per product: means over the shapes.
    let mut header: Vec<String> = vec!["product".into(), "class".into(), "kernel".into()];
    for &t in &threads {
        header.push(format!("b1 GB/s, {t}t"));
        header.push(format!("b1 ÷ read bw, {t}t"));
    }
    for &t in &threads {
        header.push(format!("b{big} GMAC/s, {t}t"));
        header.push(format!("b{big} ÷ peak, {t}t"));
    }
    let rows: Vec<Vec<String>> = products
        .iter()
        .map(|p| {
            let any = recs.iter().find(|r| r.metric == "gmac_s" && &r.layout == p);
            let mut row = vec![
                format!("`{p}`"),
                any.map(|r| r.variant.clone()).unwrap_or_default(),
                any.map(|r| r.kernel.clone()).unwrap_or_default(),
            ];
            for &t in &threads {
                row.push(f(mean("weight_gbs", p, 1, t), 2));
                row.push(pct(mean("bandwidth_fraction", p, 1, t)));
            }
            for &t in &threads {
                row.push(f(mean("gmac_s", p, big, t), 1));
                row.push(pct(mean("peak_fraction", p, big, t)));
            }
            row
        })
        .collect();
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    let bw: Vec<String> = threads
        .iter()
        .filter_map(|&t| {
            recs.iter()
                .find(|r| r.metric == "read_bandwidth" && r.threads == t)
                .map(|r| format!("{:.1} GB/s at {t} thread(s)", r.value))
        })
        .collect();
    sections.push((
        "utilization-table".into(),
        table(&h, &rows)
            + &format!(
                "\nMeans over the {} projection shapes. Read bandwidth measured in the same run: {}. \
                 Peak: the best measured instruction of the format's class (table below); FP32 and BF16 \
                 against f32 FMA (the engine's bf16 kernel widens to f32), ternary and int8 against \
                 int8 dot products.\n{sub}\n",
                shapes.len(),
                bw.join(", ")
            ),
    ));
    // Peaks.
    let mut instrs: Vec<String> = vec![];
    for r in recs.iter().filter(|r| r.metric == "peak_gmac_s") {
        if !instrs.contains(&r.layout) {
            instrs.push(r.layout.clone());
        }
    }
    let mut header: Vec<String> = vec!["instruction".into(), "class".into(), "MACs".into()];
    for &t in &threads {
        header.push(format!("GMAC/s, {t}t"));
    }
    let rows: Vec<Vec<String>> = instrs
        .iter()
        .map(|i| {
            let any = recs
                .iter()
                .find(|r| r.metric == "peak_gmac_s" && &r.layout == i);
            let mut row = vec![
                format!("`{i}`"),
                any.map(|r| r.variant.clone()).unwrap_or_default(),
                any.map(|r| r.kernel.clone()).unwrap_or_default(),
            ];
            for &t in &threads {
                row.push(
                    recs.iter()
                        .find(|r| r.metric == "peak_gmac_s" && &r.layout == i && r.threads == t)
                        .map(|r| f(r.value, 1))
                        .unwrap_or_else(|| "–".into()),
                );
            }
            row
        })
        .collect();
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    sections.push((
        "utilization-peaks".into(),
        table(&h, &rows)
            + "\nTwelve independent instructions per loop iteration, operands in registers, on every \
               thread at once; best of 3.\n",
    ));
    // Ratios.
    let mut rows = vec![];
    for &b in &batches {
        for s in &shapes {
            for &t in &threads {
                let g = |o: &str| {
                    ratio(s, b, t, o)
                        .map(|r| format!("{:.2}×", r.value))
                        .unwrap_or_else(|| "–".into())
                };
                rows.push(vec![
                    s.clone(),
                    b.to_string(),
                    t.to_string(),
                    g("f32"),
                    g("bf16"),
                    g("int8"),
                ]);
            }
        }
    }
    sections.push((
        "utilization-ratio".into(),
        table(
            &[
                "shape",
                "batch",
                "threads",
                "ternary ÷ FP32",
                "ternary ÷ BF16",
                "ternary ÷ int8 dense",
            ],
            &rows,
        ) + "\nBest ternary layout's median MAC rate ÷ the best product of the other format, timed in the same interleaved rounds.\n",
    ));
    Ok(sections)
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0} %", v * 100.0)
    } else {
        "–".into()
    }
}
