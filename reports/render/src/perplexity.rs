//! Figures and tables of the `perplexity` experiment: the trained tiny model (and the real one
//! when it was scored) per layout × kernel, activation precision, head and verification.

use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

use crate::charts::{Bar, Grouped};
use crate::data::{self, Rec};
use crate::report::{f, table};

pub fn render(all: &DataFrame, figures: &Path) -> Result<Vec<(String, String)>> {
    let df = data::select(all, &[("experiment", "perplexity")])?;
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let sub = data::machine_line(&df)?;
    let recs = data::records(&df)?;
    let mut shapes: Vec<String> = vec![];
    for r in recs.iter().filter(|r| !r.variant.starts_with("baseline")) {
        if !shapes.contains(&r.shape) {
            shapes.push(r.shape.clone());
        }
    }
    let model_of = |shape: &str| shape.split('/').next().unwrap_or(shape).to_string();
    let mut sections = vec![];
    let mut text = String::new();
    for shape in &shapes {
        let model = model_of(shape);
        let mine: Vec<&Rec> = recs
            .iter()
            .filter(|r| model_of(&r.shape) == model)
            .collect();
        let ppl_rows: Vec<&Rec> = mine
            .iter()
            .copied()
            .filter(|r| {
                r.metric == "ppl" && &r.shape == shape && !r.variant.starts_with("baseline")
            })
            .collect();
        let same = |a: &Rec, m: &str| {
            mine.iter().copied().find(|r| {
                r.metric == m
                    && r.variant == a.variant
                    && r.layout == a.layout
                    && r.kernel == a.kernel
                    && r.threads == a.threads
                    && r.shape == a.shape
            })
        };
        let Some(reference) = ppl_rows.iter().copied().find(|r| r.variant == "reference") else {
            continue;
        };
        let ref_nll = same(reference, "mean_nll")
            .map(|r| r.value)
            .unwrap_or(f64::NAN);
        let tokens = same(reference, "tokens_scored")
            .map(|r| r.value)
            .unwrap_or(0.0);
        let base = |name: &str| {
            mine.iter()
                .copied()
                .find(|r| r.variant == format!("baseline:{name}") && r.metric == "ppl")
        };

        // Figure: PPL by activation precision, baselines as lines.
        let order = [
            "f32", "int8", "int7", "int6", "int5", "int4", "int3", "int2",
        ];
        let acts: Vec<(&str, &Rec)> = order
            .iter()
            .filter_map(|&a| {
                let r = if a == "int8" {
                    Some(reference)
                } else {
                    ppl_rows
                        .iter()
                        .copied()
                        .find(|r| r.variant == format!("acts:{a}"))
                };
                r.map(|r| (a, r))
            })
            .collect();
        let mut lines = vec![];
        for (name, label) in [
            ("unigram", "unigram baseline"),
            ("untrained", "untrained model"),
            ("uniform", "uniform (vocabulary size)"),
        ] {
            if let Some(b) = base(name) {
                lines.push((b.value, format!("{label}: {}", f(b.value, 1))));
            }
        }
        Grouped {
            title: format!("Perplexity of {model} by activation precision (test split)"),
            subtitle: format!(
                "{sub} · {} scored tokens · whiskers: ± one standard error",
                tokens as u64
            ),
            y_label: "perplexity (log scale; lower is better)".into(),
            groups: acts.iter().map(|a| a.0.to_string()).collect(),
            series: vec![format!("{model}, ternary weights")],
            values: vec![
                acts.iter()
                    .map(|a| {
                        Some(Bar {
                            value: a.1.value,
                            err: Some((a.1.min, a.1.max)),
                        })
                    })
                    .collect(),
            ],
            lines,
            log_y: true,
        }
        .save(&figures.join(format!("perplexity-acts-{model}")))?;

        // Figure: evaluation throughput per layout × kernel (the PPL is identical).
        let grid: Vec<&Rec> = ppl_rows
            .iter()
            .copied()
            .filter(|r| r.variant == "layout" || r.variant == "reference")
            .collect();
        let mut layouts: Vec<String> = vec![];
        let mut kernels: Vec<String> = vec![];
        for r in &grid {
            if !layouts.contains(&r.layout) {
                layouts.push(r.layout.clone());
            }
            if !kernels.contains(&r.kernel) {
                kernels.push(r.kernel.clone());
            }
        }
        let identical = grid
            .iter()
            .filter(|r| same(r, "mean_nll").is_some_and(|n| n.value.to_bits() == ref_nll.to_bits()))
            .count();
        Grouped {
            title: format!(
                "Perplexity evaluation speed of {model} per layout and kernel (prefill path)"
            ),
            subtitle: format!(
                "{sub} · PPL bit-identical in {identical} of {} configurations ({})",
                grid.len(),
                f(reference.value, 4)
            ),
            y_label: "tokens/s".into(),
            groups: layouts.clone(),
            series: kernels.clone(),
            values: kernels
                .iter()
                .map(|k| {
                    layouts
                        .iter()
                        .map(|l| {
                            grid.iter()
                                .find(|r| &r.layout == l && &r.kernel == k)
                                .and_then(|r| same(r, "tokens_per_s"))
                                .map(|t| Bar {
                                    value: t.value,
                                    err: None,
                                })
                        })
                        .collect()
                })
                .collect(),
            lines: vec![],
            log_y: false,
        }
        .save(&figures.join(format!("perplexity-layouts-{model}")))?;

        // Table: every configuration, then the baselines.
        let mut rows = vec![];
        for r in &ppl_rows {
            let nll = same(r, "mean_nll").map(|n| n.value).unwrap_or(f64::NAN);
            let (group, setting) = r.variant.split_once(':').unwrap_or((&r.variant, ""));
            rows.push(vec![
                group.to_string(),
                if setting.is_empty() {
                    "–".into()
                } else {
                    setting.to_string()
                },
                format!("`{}`", r.layout),
                r.kernel.clone(),
                r.threads.to_string(),
                format!("{} ± {}", f(r.value, 3), f(r.value - r.min, 3)),
                format!("{nll:.12}"),
                if nll.to_bits() == ref_nll.to_bits() {
                    "identical".into()
                } else {
                    format!("{:+.3}%", 100.0 * (r.value / reference.value - 1.0))
                },
                same(r, "tokens_per_s")
                    .map(|t| f(t.value, 0))
                    .unwrap_or("–".into()),
            ]);
        }
        for name in ["unigram", "untrained", "uniform"] {
            if let Some(b) = base(name) {
                rows.push(vec![
                    "baseline".into(),
                    name.into(),
                    "–".into(),
                    "–".into(),
                    "–".into(),
                    f(b.value, 1),
                    "–".into(),
                    format!("{:+.0}%", 100.0 * (b.value / reference.value - 1.0)),
                    "–".into(),
                ]);
            }
        }
        text.push_str(&format!(
            "**{model}** (`{shape}`, {} scored tokens)\n\n",
            tokens as u64
        ));
        text.push_str(&table(
            &[
                "group",
                "setting",
                "layout",
                "kernel",
                "threads",
                "PPL ± s.e.",
                "mean NLL (nats)",
                "vs reference",
                "tok/s",
            ],
            &rows,
        ));
        text.push('\n');
    }
    text.push_str(
        "`reference` = the default rotor layout at its best kernel, int8 activations, bf16 head, \
         no verification. `identical` = the mean NLL has the same bits as the reference's. \
         The `untrained` baseline was scored by rotor on the whole test split when the model was \
         trained (`training.json`); the unigram baseline is scored on exactly the tokens above.\n",
    );
    sections.push(("perplexity".to_string(), text));
    Ok(sections)
}
