//! Figures and tables of the `verifycost` experiment: verification overhead as instruction
//! counts and as paired timings with bootstrap intervals.

use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

use crate::charts::{Bar, Grouped};
use crate::data::{self, Rec};
use crate::report::{f, table};

pub fn render(all: &DataFrame, figures: &Path) -> Result<Vec<(String, String)>> {
    let df = data::select(all, &[("experiment", "verifycost")])?;
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let sub = data::machine_line(&df)?;
    let recs = data::records(&df)?;
    let mut sections = vec![];

    // --- instruction counts
    let ins: Vec<&Rec> = recs.iter().filter(|r| r.metric == "instructions").collect();
    let mut shapes: Vec<String> = vec![];
    for r in &ins {
        if !shapes.contains(&r.shape) {
            shapes.push(r.shape.clone());
        }
    }
    let added = |s: &str, p: &str| {
        recs.iter()
            .find(|r| r.metric == "added_instructions_pct" && r.shape == s && r.variant == p)
    };
    if !shapes.is_empty() {
        Grouped {
            title: "Instructions added by verification (callgrind, AVX2 kernels)".into(),
            subtitle: sub.clone(),
            y_label: "added instructions, % of verification off".into(),
            groups: shapes.clone(),
            series: vec!["detect".into(), "correct".into()],
            values: ["detect", "correct"]
                .iter()
                .map(|p| {
                    shapes
                        .iter()
                        .map(|s| {
                            added(s, p).map(|r| Bar {
                                value: r.value,
                                err: None,
                            })
                        })
                        .collect()
                })
                .collect(),
            lines: vec![],
            log_y: false,
        }
        .save(&figures.join("verifycost-instructions"))?;
        let mut rows: Vec<Vec<String>> = shapes
            .iter()
            .map(|s| {
                let n = |p: &str| {
                    ins.iter()
                        .find(|r| &r.shape == s && r.variant == p)
                        .map(|r| format!("{:.0}", r.value))
                        .unwrap_or_else(|| "–".into())
                };
                let a = |p: &str| {
                    added(s, p)
                        .map(|r| format!("{:+.3} %", r.value))
                        .unwrap_or_else(|| "–".into())
                };
                let unit = ins
                    .iter()
                    .find(|r| &r.shape == s)
                    .map(|r| {
                        if r.shape.starts_with("decode") {
                            "token"
                        } else {
                            "product"
                        }
                    })
                    .unwrap_or("");
                vec![
                    s.clone(),
                    unit.into(),
                    n("off"),
                    n("detect"),
                    n("correct"),
                    a("detect"),
                    a("correct"),
                ]
            })
            .collect();
        // One 2B-4T token's ternary products: q and o (2560x2560), k and v (640x2560), gate
        // and up (6912x2560), down (2560x6912), in each of 30 layers.
        let per_token = [
            ("2560x2560", 2.0),
            ("640x2560", 2.0),
            ("6912x2560", 2.0),
            ("2560x6912", 1.0),
        ];
        let tok = |p: &str| -> Option<f64> {
            per_token
                .iter()
                .map(|(s, m)| {
                    ins.iter()
                        .find(|r| r.shape == *s && r.variant == p)
                        .map(|r| 30.0 * m * r.value)
                })
                .sum()
        };
        if let (Some(off), Some(d), Some(c)) = (tok("off"), tok("detect"), tok("correct")) {
            rows.push(vec![
                "2B-4T token: its 210 ternary products".into(),
                "token".into(),
                format!("{off:.0}"),
                format!("{d:.0}"),
                format!("{c:.0}"),
                format!("{:+.3} %", (d / off - 1.0) * 100.0),
                format!("{:+.3} %", (c / off - 1.0) * 100.0),
            ]);
        }
        sections.push((
            "verifycost-instructions".into(),
            table(
                &[
                    "what",
                    "per",
                    "instructions, off",
                    "detect",
                    "correct",
                    "added, detect",
                    "added, correct",
                ],
                &rows,
            ) + &format!(
                "\nCallgrind instruction counts (all threads), set-up excluded (products: counted inside the \
                 function that runs them; decode: inside the model's layer and head functions, N and 2N tokens \
                 differenced); one thread; AVX2 kernel (valgrind \
                 runs no AVX-512). The 2B-4T token row sums the shapes' products as a token runs them (30 layers × \
                 q, k, v, o, gate, up, down), without attention, norms and the head.\n{sub}\n"
            ),
        ));
    }

    // --- timings with intervals
    let ov: Vec<&Rec> = recs.iter().filter(|r| r.metric == "overhead_pct").collect();
    let mut groups: Vec<(String, i64)> = vec![];
    for r in &ov {
        if !groups.contains(&(r.shape.clone(), r.threads)) {
            groups.push((r.shape.clone(), r.threads));
        }
    }
    let series = ["detect", "correct", "inline", "other-thread"];
    if !groups.is_empty() {
        let find = |s: &str, t: i64, v: &str| {
            ov.iter()
                .find(|r| r.shape == s && r.threads == t && r.variant == v)
        };
        Grouped {
            title:
                "Verification overhead on time: median of paired ratios, bootstrap 95 % interval"
                    .into(),
            subtitle: sub.clone(),
            y_label: "overhead, % of no verification".into(),
            groups: groups.iter().map(|(s, t)| format!("{s}, {t}t")).collect(),
            series: series.iter().map(|s| s.to_string()).collect(),
            values: series
                .iter()
                .map(|v| {
                    groups
                        .iter()
                        .map(|(s, t)| {
                            find(s, *t, v).map(|r| Bar {
                                value: r.value,
                                err: Some((r.min, r.max)),
                            })
                        })
                        .collect()
                })
                .collect(),
            lines: vec![(0.0, "no overhead".into())],
            log_y: false,
        }
        .save(&figures.join("verifycost-time"))?;
        let rows: Vec<Vec<String>> = ov
            .iter()
            .map(|r| {
                let base = recs.iter().find(|b| {
                    (b.metric == "decode_ms" || b.metric == "products_ms")
                        && b.shape == r.shape
                        && b.threads == r.threads
                        && (b.variant == "off" || b.variant == "none")
                });
                let this = recs.iter().find(|b| {
                    (b.metric == "decode_ms" || b.metric == "products_ms")
                        && b.shape == r.shape
                        && b.threads == r.threads
                        && b.variant == r.variant
                });
                vec![
                    r.shape.clone(),
                    r.threads.to_string(),
                    r.variant.clone(),
                    base.map(|b| f(b.value, 1)).unwrap_or_else(|| "–".into()),
                    this.map(|b| f(b.value, 1)).unwrap_or_else(|| "–".into()),
                    format!("{:+.2} %", r.value),
                    format!("[{:+.2} %, {:+.2} %]", r.min, r.max),
                    r.reps.to_string(),
                ]
            })
            .collect();
        sections.push((
            "verifycost-time".into(),
            table(
                &[
                    "what",
                    "threads",
                    "verification",
                    "ms/token without",
                    "ms/token with",
                    "overhead (median of pairs)",
                    "95 % interval",
                    "pairs",
                ],
                &rows,
            ) + &format!(
                "\nEach round runs every setting once, in rotating order; the overhead is the median of \
                 the per-round ratios, its interval a percentile bootstrap over rounds.\n{sub}\n"
            ),
        ));
    }
    Ok(sections)
}
