//! Figures and tables of the `verification` experiment.

use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

use crate::charts::{Bar, Grouped, Lines};
use crate::data::{self, Rec};
use crate::report::{f, table};

pub fn render(all: &DataFrame, figures: &Path) -> Result<Vec<(String, String)>> {
    let df = data::select(all, &[("experiment", "verification")])?;
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let sub = data::machine_line(&df)?;
    let recs = data::records(&df)?;
    let mut sections = vec![];

    // --- overhead
    let tok: Vec<&Rec> = recs.iter().filter(|r| r.metric == "decode_tok_s").collect();
    let mut groups: Vec<(String, i64)> = vec![];
    for r in &tok {
        if !groups.contains(&(r.shape.clone(), r.threads)) {
            groups.push((r.shape.clone(), r.threads));
        }
    }
    let policies = ["off", "detect", "correct"];
    if !tok.is_empty() {
        // Normalize per model so both models fit one axis: tok/s relative to "off".
        let values = policies
            .iter()
            .map(|p| {
                groups
                    .iter()
                    .map(|(s, t)| {
                        let base = tok
                            .iter()
                            .find(|r| &r.shape == s && r.threads == *t && r.variant == "off")?;
                        let r = tok
                            .iter()
                            .find(|r| &r.shape == s && r.threads == *t && r.variant == *p)?;
                        Some(Bar {
                            value: r.value / base.value,
                            err: Some((r.min / base.value, r.max / base.value)),
                        })
                    })
                    .collect()
            })
            .collect();
        Grouped {
            title: "Decode speed with exact verification, relative to verification off".into(),
            subtitle: format!("{sub} · whiskers: min–max over interleaved runs"),
            y_label: "decode tokens/s ÷ tokens/s with verification off".into(),
            groups: groups
                .iter()
                .map(|(s, t)| format!("{s}, {t} thread(s)"))
                .collect(),
            series: policies.iter().map(|p| format!("verify {p}")).collect(),
            values,
            lines: vec![(1.0, "no overhead".into())],
            log_y: false,
        }
        .save(&figures.join("verification-overhead"))?;
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|(s, t)| {
                let get = |p: &str| {
                    tok.iter()
                        .find(|r| &r.shape == s && r.threads == *t && r.variant == p)
                        .map(|r| r.value)
                };
                let ov = |p: &str| {
                    recs.iter()
                        .find(|r| {
                            r.metric == "overhead_pct"
                                && &r.shape == s
                                && r.threads == *t
                                && r.variant == p
                        })
                        .map(|r| r.value)
                };
                vec![
                    s.clone(),
                    t.to_string(),
                    get("off").map(|v| f(v, 2)).unwrap_or("–".into()),
                    get("detect").map(|v| f(v, 2)).unwrap_or("–".into()),
                    ov("detect")
                        .map(|v| format!("{v:+.2}%"))
                        .unwrap_or("–".into()),
                    get("correct").map(|v| f(v, 2)).unwrap_or("–".into()),
                    ov("correct")
                        .map(|v| format!("{v:+.2}%"))
                        .unwrap_or("–".into()),
                ]
            })
            .collect();
        sections.push((
            "verification-overhead".to_string(),
            table(
                &[
                    "model",
                    "threads",
                    "off tok/s",
                    "detect tok/s",
                    "detect overhead",
                    "correct tok/s",
                    "correct overhead",
                ],
                &rows,
            ) + &format!("\nMedians of interleaved runs. {sub}\n"),
        ));
    }

    // --- detection
    let det: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.shape == "small" && r.metric == "injected")
        .collect();
    if !det.is_empty() {
        let mut sites: Vec<String> = vec![];
        let mut layouts: Vec<String> = vec![];
        for r in &det {
            if !sites.contains(&r.variant) {
                sites.push(r.variant.clone());
            }
            if !layouts.contains(&r.layout) {
                layouts.push(r.layout.clone());
            }
        }
        let get = |m: &str, site: &str, l: &str| {
            recs.iter()
                .find(|r| r.metric == m && r.variant == site && r.layout == l && r.shape == "small")
                .map(|r| r.value)
        };
        let mut series = vec![];
        let mut values = vec![];
        for l in &layouts {
            for (m, label) in [
                ("detected_fraction", "detected"),
                ("corrected_fraction", "corrected"),
            ] {
                series.push(format!("{l}: {label}"));
                values.push(
                    sites
                        .iter()
                        .map(|s| {
                            get(m, s, l).map(|v| Bar {
                                value: v,
                                err: None,
                            })
                        })
                        .collect(),
                );
            }
        }
        Grouped {
            title: "Single bit flips: share of output-changing faults detected and corrected"
                .into(),
            subtitle: format!(
                "{sub} · small synthesized model, seeded faults, one per forward pass"
            ),
            y_label: "fraction of faults that changed the integer product".into(),
            groups: sites.clone(),
            series,
            values,
            lines: vec![(1.0, "all".into())],
            log_y: false,
        }
        .save(&figures.join("verification-detection"))?;
        let mut rows = vec![];
        for l in &layouts {
            for s in &sites {
                let g = |m: &str| get(m, s, l).unwrap_or(f64::NAN);
                rows.push(vec![
                    format!("`{l}`"),
                    s.clone(),
                    f(g("injected"), 0),
                    f(g("output_changed"), 0),
                    f(g("detected_fraction"), 3),
                    f(g("corrected_fraction"), 3),
                    f(g("missed"), 0),
                    f(g("false_positives"), 0),
                    format!(
                        "{} / {}",
                        f(g("logits_changed_unrepaired"), 0),
                        f(g("max_logit_delta_unrepaired"), 2)
                    ),
                    format!(
                        "{} / {}",
                        f(g("logits_changed_repaired"), 0),
                        f(g("max_logit_delta_repaired"), 2)
                    ),
                ]);
            }
        }
        sections.push((
            "verification-detection".to_string(),
            table(
                &[
                    "layout", "site", "injected", "changed output", "detected", "corrected", "missed",
                    "false positives", "logits moved without repair (count / max Δ)", "with repair",
                ],
                &rows,
            ) + "\n`false positives` for the checksums site are alarms raised by a corrupted checksum over a correct product: the check cannot tell which side is wrong, so the product is recomputed.\n",
        ));
    }

    // --- false positives: integer vs float ratio
    let fp_int = recs
        .iter()
        .find(|r| r.metric == "integer_false_positives")
        .map(|r| r.value);
    let checked = recs
        .iter()
        .find(|r| r.metric == "integer_checks")
        .map(|r| r.value);
    let mut pts_fp = vec![];
    let mut pts_miss = vec![];
    let mut rows = vec![];
    for r in recs.iter().filter(|r| r.metric == "float_tolerance") {
        let fp = recs
            .iter()
            .find(|x| x.metric == "float_false_positive_rate" && x.shape == r.shape)
            .map(|x| x.value)
            .unwrap_or(f64::NAN);
        let miss = recs
            .iter()
            .find(|x| x.metric == "float_miss_rate" && x.shape == r.shape)
            .map(|x| x.value)
            .unwrap_or(f64::NAN);
        pts_fp.push((r.value.log10(), fp.max(1e-7)));
        pts_miss.push((r.value.log10(), miss.max(1e-7)));
        rows.push(vec![format!("{:.0e}", r.value), f(fp, 4), f(miss, 4)]);
    }
    if !pts_fp.is_empty() {
        Lines {
            title: "The seed's float ratio check (B·C)/A = 1: false alarms vs missed faults by tolerance".into(),
            subtitle: format!(
                "{sub} · exact integer check on the same products: {} false positives in {} checks, 0 misses",
                fp_int.map(|v| f(v, 0)).unwrap_or("–".into()),
                checked.map(|v| f(v, 0)).unwrap_or("–".into())
            ),
            x_label: "log10 tolerance on |ratio − 1|".into(),
            y_label: "rate (log scale; 1e-7 = none)".into(),
            series: vec![
                ("false-alarm rate on clean products".into(), pts_fp),
                ("miss rate on products with one flipped accumulator bit".into(), pts_miss),
            ],
            log_y: true,
        }
        .save(&figures.join("verification-float-ratio"))?;
        sections.push((
            "verification-false-positives".to_string(),
            format!(
                "Exact integer check: **{} false positives in {} verified products**.\n\n",
                fp_int.map(|v| f(v, 0)).unwrap_or("–".into()),
                checked.map(|v| f(v, 0)).unwrap_or("–".into())
            ) + &table(&["float tolerance", "false-alarm rate", "miss rate"], &rows),
        ));
    }
    Ok(sections)
}
