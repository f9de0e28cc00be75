//! Figures and tables of the `speed` experiment (whole-model `rotor bench` runs).

use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

use crate::charts::{Bar, Grouped};
use crate::data::{self, Rec};
use crate::report::{f, table};

pub fn render(all: &DataFrame, figures: &Path) -> Result<Vec<(String, String)>> {
    let df = data::select(all, &[("experiment", "speed")])?;
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let sub = data::machine_line(&df)?;
    let recs = data::records(&df)?;
    let get =
        |m: &str, shape: &str, layout: &str, kernel: &str, t: i64, head: &str| -> Option<&Rec> {
            recs.iter().find(|r| {
                r.metric == m
                    && r.shape == shape
                    && r.layout == layout
                    && r.kernel == kernel
                    && r.threads == t
                    && r.variant == head
            })
        };
    // Prefill rows name the batched kernel that ran (`amx`, `avx512vnni`, …), which can differ
    // from the single-token kernel of the decode rows, and the prompt length is their batch:
    // the 128-token prompt (or the only one a run has) is the configuration's prefill.
    let getp = |m: &str, shape: &str, layout: &str, t: i64, head: &str| -> Option<&Rec> {
        let all: Vec<&Rec> = recs
            .iter()
            .filter(|r| {
                r.metric == m
                    && r.shape == shape
                    && r.layout == layout
                    && r.threads == t
                    && r.variant == head
            })
            .collect();
        all.iter()
            .find(|r| r.batch == 128)
            .or_else(|| all.iter().find(|r| r.batch != 32 && r.batch != 512))
            .copied()
    };
    // Configurations in order of appearance.
    let mut cfgs: Vec<(String, String, String, i64, String)> = vec![];
    for r in recs.iter().filter(|r| r.metric == "decode_tok_s") {
        let c = (
            r.shape.clone(),
            r.layout.clone(),
            r.kernel.clone(),
            r.threads,
            r.variant.clone(),
        );
        if !cfgs.contains(&c) {
            cfgs.push(c);
        }
    }
    let mut threads: Vec<i64> = cfgs.iter().map(|c| c.3).collect();
    threads.sort();
    threads.dedup();
    let max_t = threads.last().copied().unwrap_or(1);
    let big = if cfgs.iter().any(|c| c.0 == "2b4t") {
        "2b4t"
    } else {
        "tiny"
    };
    let mut sections = vec![];

    // Groups: (layout, kernel, head) of the big model.
    let mut groups: Vec<(String, String, String)> = vec![];
    for c in cfgs.iter().filter(|c| c.0 == big) {
        let g = (c.1.clone(), c.2.clone(), c.4.clone());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let glabel = |g: &(String, String, String)| {
        if g.2 == "bf16" {
            format!("{} {}", g.0, g.1)
        } else {
            format!("{} {} +int8 head", g.0, g.1)
        }
    };
    for (metric, stem, title, unit) in [
        (
            "decode_tok_s",
            "speed-decode",
            "Decode speed, 2B-4T shapes (synthesized), KV cache",
            "tokens/s (one new token per step)",
        ),
        (
            "prefill_tok_s",
            "speed-prefill",
            "Prefill speed, 2B-4T shapes, 128-token prompt",
            "prompt tokens/s",
        ),
    ] {
        let values = threads
            .iter()
            .map(|&t| {
                groups
                    .iter()
                    .map(|g| {
                        let r = if metric.starts_with("prefill") {
                            getp(metric, big, &g.0, t, &g.2)
                        } else {
                            get(metric, big, &g.0, &g.1, t, &g.2)
                        };
                        r.map(|r| Bar {
                            value: r.value,
                            err: Some((r.min, r.max)),
                        })
                    })
                    .collect()
            })
            .collect();
        let mut lines = vec![];
        if metric == "decode_tok_s" {
            // The roofline of the exact bf16 head at the most threads.
            if let Some(r) = recs.iter().find(|r| {
                r.metric == "roofline_tok_s"
                    && r.shape == big
                    && r.threads == max_t
                    && r.variant == "bf16"
            }) {
                lines.push((
                    r.value,
                    format!(
                        "memory roofline, bf16 head, {max_t} threads ({:.1} tok/s)",
                        r.value
                    ),
                ));
            }
            if let Some(r) = recs.iter().find(|r| {
                r.metric == "roofline_tok_s"
                    && r.shape == big
                    && r.threads == max_t
                    && r.variant == "int8"
            }) {
                lines.push((
                    r.value,
                    format!("memory roofline, int8 head ({:.1} tok/s)", r.value),
                ));
            }
        }
        Grouped {
            title: title.into(),
            subtitle: format!("{sub} · whiskers: min–max over runs"),
            y_label: unit.into(),
            groups: groups.iter().map(glabel).collect(),
            series: threads.iter().map(|t| format!("{t} thread(s)")).collect(),
            values,
            lines,
            log_y: false,
        }
        .save(&figures.join(stem))?;
    }
    // Time per decode step by stage at the most threads.
    let stages = ["ternary", "head", "attention", "norms_quant"];
    let values = stages
        .iter()
        .map(|s| {
            groups
                .iter()
                .map(|g| {
                    get(&format!("decode_ms_{s}"), big, &g.0, &g.1, max_t, &g.2).map(|r| Bar {
                        value: r.value,
                        err: None,
                    })
                })
                .collect()
        })
        .collect();
    Grouped {
        title: format!("Where a decode step goes, 2B-4T shapes, {max_t} threads"),
        subtitle: sub.clone(),
        y_label: "milliseconds per token".into(),
        groups: groups.iter().map(glabel).collect(),
        series: stages.iter().map(|s| s.replace('_', " + ")).collect(),
        values,
        lines: vec![],
        log_y: false,
    }
    .save(&figures.join("speed-stages"))?;

    let mut rows = vec![];
    for c in &cfgs {
        let g = |m: &str| get(m, &c.0, &c.1, &c.2, c.3, &c.4);
        let v = |m: &str| g(m).map(|r| r.value).unwrap_or(f64::NAN);
        let d = g("decode_tok_s");
        rows.push(vec![
            c.0.clone(),
            format!("`{}`", c.1),
            c.2.clone(),
            c.3.to_string(),
            c.4.clone(),
            getp("prefill_tok_s", &c.0, &c.1, c.3, &c.4)
                .map(|r| format!("{} ({})", f(r.value, 1), r.kernel))
                .unwrap_or("–".into()),
            d.map(|r| format!("{} ({}–{})", f(r.value, 2), f(r.min, 2), f(r.max, 2)))
                .unwrap_or("–".into()),
            format!("{}%", f(100.0 * v("roofline_fraction"), 0)),
            f(v("bytes_per_token"), 0),
            f(v("peak_rss"), 0),
            format!("{} / {}", f(v("load_s"), 2), f(v("convert_s"), 2)),
        ]);
    }
    sections.push((
        "speed-table".to_string(),
        table(
            &[
                "model",
                "layout",
                "kernel",
                "threads",
                "head",
                "prefill tok/s (batched kernel)",
                "decode tok/s (min–max)",
                "of roofline",
                "MB read / token",
                "peak RSS MB",
                "load / convert s",
            ],
            &rows,
        ) + &format!("\n{sub}\n"),
    ));
    // The prefill sweep: every prompt length, with the batched kernel's multiply-add rate
    // against its peak (the peak's arithmetic is in the experiment: MACs per instruction ×
    // instructions per cycle × the clock measured in the run × threads).
    let mut sweep: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.metric == "prefill_tok_s" && r.shape == big)
        .collect();
    sweep.sort_by(|a, b| {
        (a.threads, &a.variant, a.batch)
            .cmp(&(b.threads, &b.variant, b.batch))
            .then(a.layout.cmp(&b.layout))
    });
    let mut srows = vec![];
    for r in sweep {
        let m = |name: &str| {
            recs.iter()
                .find(|x| {
                    x.metric == name
                        && x.shape == r.shape
                        && x.layout == r.layout
                        && x.kernel == r.kernel
                        && x.threads == r.threads
                        && x.variant == r.variant
                        && x.batch == r.batch
                })
                .map(|x| x.value)
                .unwrap_or(f64::NAN)
        };
        srows.push(vec![
            format!("`{}`", r.layout),
            r.kernel.clone(),
            r.threads.to_string(),
            r.variant.clone(),
            r.batch.to_string(),
            format!("{} ({}–{})", f(r.value, 1), f(r.min, 1), f(r.max, 1)),
            f(m("prefill_ternary_gmacs"), 0),
            f(m("prefill_peak_gmacs"), 0),
            format!("{}%", f(100.0 * m("prefill_peak_fraction"), 1)),
            format!(
                "{} / {} / {} / {}",
                f(m("prefill_ms_ternary"), 0),
                f(m("prefill_ms_attention"), 0),
                f(m("prefill_ms_norms_quant"), 0),
                f(m("prefill_ms_head"), 0)
            ),
        ]);
    }
    if !srows.is_empty() {
        sections.push((
            "speed-prefill".to_string(),
            table(
                &[
                    "layout",
                    "batched kernel",
                    "threads",
                    "head",
                    "prompt tokens",
                    "prefill tok/s (min–max)",
                    "ternary GMAC/s",
                    "peak GMAC/s",
                    "of peak",
                    "ms: ternary / attention / norms+quant / head",
                ],
                &srows,
            ) + &format!("\n{sub}\n"),
        ));
    }
    Ok(sections)
}
