//! Figures and tables of the `crosscheck` experiment: one trained model in rotor and in
//! llama.cpp, perplexity side by side and per-position agreement.
//!
//! Rows (see experiments/crosscheck): arm rows with `variant` = `rotor relu2`, `rotor silu`,
//! `llama.cpp`, `llama.cpp kv-f32` and `layout` = the file; metrics `ppl` (min/max = ± one
//! standard error), `mean_nll`, `tokens_scored`, `loads`. Agreement rows with `variant` =
//! `agree: A vs B`; metrics `mean_kl`, `max_abs_logit_diff`, `top1_agreement`,
//! `mean_abs_nll_diff`, `ppl_ratio`, and `kl_by_position` (`batch` = position). Tokenizer rows
//! with `variant` = `tokenizer`.

use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

use crate::charts::{Bar, Grouped, Lines};
use crate::data::{self, Rec};
use crate::report::{f, table};

const ARMS: [&str; 6] = [
    "rotor relu2",
    "rotor silu",
    "rotor silu q8k",
    "rotor silu q8k ggml-rope",
    "llama.cpp",
    "llama.cpp kv-f32",
];

fn sci(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2e}")
    } else {
        "–".into()
    }
}

pub fn render(all: &DataFrame, figures: &Path) -> Result<Vec<(String, String)>> {
    let df = data::select(all, &[("experiment", "crosscheck")])?;
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let sub = data::machine_line(&df)?;
    let recs = data::records(&df)?;
    let shape = recs.first().map(|r| r.shape.clone()).unwrap_or_default();
    let mut files: Vec<String> = vec![];
    for r in recs.iter().filter(|r| ARMS.contains(&r.variant.as_str())) {
        if !files.contains(&r.layout) {
            files.push(r.layout.clone());
        }
    }
    let arms: Vec<&str> = ARMS
        .iter()
        .copied()
        .filter(|a| recs.iter().any(|r| r.variant == *a))
        .collect();
    let find = |variant: &str, file: &str, metric: &str| -> Option<&Rec> {
        recs.iter()
            .find(|r| r.variant == variant && r.layout == file && r.metric == metric)
    };

    // Figure: perplexity per file and arm (whiskers ± one standard error).
    let values = arms
        .iter()
        .map(|a| {
            files
                .iter()
                .map(|fl| {
                    find(a, fl, "ppl").map(|r| Bar {
                        value: r.value,
                        err: Some((r.min, r.max)),
                    })
                })
                .collect()
        })
        .collect();
    let relu_ref = find("rotor relu2", "safetensors", "ppl").map(|r| r.value);
    Grouped {
        title: format!("Same trained weights, two engines: perplexity ({shape})"),
        subtitle: format!(
            "{sub} · whiskers: ± one standard error · a gap: the engine does not load the file"
        ),
        y_label: "perplexity (test split)".into(),
        groups: files.clone(),
        series: arms.iter().map(|a| a.to_string()).collect(),
        values,
        lines: relu_ref
            .map(|v| vec![(v, "rotor, the model's ReLU²".to_string())])
            .unwrap_or_default(),
        log_y: false,
    }
    .save(&figures.join("crosscheck-ppl"))?;

    // Figure: KL per position for the pairs that have it.
    let mut pairs: Vec<String> = vec![];
    for r in recs.iter().filter(|r| r.metric == "kl_by_position") {
        if !pairs.contains(&r.variant) {
            pairs.push(r.variant.clone());
        }
    }
    if !pairs.is_empty() {
        let series = pairs
            .iter()
            .map(|p| {
                let pts: Vec<(f64, f64)> = recs
                    .iter()
                    .filter(|r| &r.variant == p && r.metric == "kl_by_position")
                    .map(|r| (r.batch as f64, r.value.max(1e-12)))
                    .collect();
                let layout = recs
                    .iter()
                    .find(|r| &r.variant == p && r.metric == "kl_by_position")
                    .map(|r| r.layout.clone())
                    .unwrap_or_default();
                (
                    format!("{} [{layout}]", p.trim_start_matches("agree: ")),
                    pts,
                )
            })
            .collect();
        let chunks = recs
            .iter()
            .find(|r| r.metric == "kl_by_position")
            .map(|r| r.reps)
            .unwrap_or(0);
        Lines {
            title: "Next-token distributions, position by position: KL(A ‖ B)".into(),
            subtitle: format!("{sub} · mean over the first {chunks} test chunk(s)"),
            x_label: "position in the chunk".into(),
            y_label: "KL divergence (nats, log scale)".into(),
            series,
            log_y: true,
        }
        .save(&figures.join("crosscheck-kl"))?;
    }

    // Table: perplexity per file × arm.
    let cell = |a: &str, fl: &str| -> String {
        match (find(a, fl, "ppl"), find(a, fl, "loads")) {
            (Some(r), _) => format!("{} ± {}", f(r.value, 3), f(r.max - r.value, 3)),
            (None, Some(l)) if l.value == 0.0 => "does not load".into(),
            _ => "–".into(),
        }
    };
    let mut rows = vec![];
    for fl in &files {
        let mut row = vec![format!("`{fl}`")];
        for a in &arms {
            row.push(cell(a, fl));
        }
        let gap = match (find("llama.cpp", fl, "ppl"), find("rotor silu", fl, "ppl")) {
            (Some(l), Some(s)) => format!("{:+.3} %", 100.0 * (l.value / s.value - 1.0)),
            _ => "–".into(),
        };
        row.push(gap);
        rows.push(row);
    }
    let mut header = vec!["file"];
    header.extend(arms.iter().copied());
    header.push("llama.cpp ÷ rotor silu − 1");
    let tokens = find("rotor relu2", "safetensors", "tokens_scored")
        .map(|r| r.value)
        .unwrap_or(f64::NAN);
    let chunks = find("rotor relu2", "safetensors", "ppl")
        .map(|r| r.reps)
        .unwrap_or(0);
    let tok_line = {
        let t: Vec<String> = recs
            .iter()
            .filter(|r| r.variant == "tokenizer" && r.metric == "tokens_identical")
            .map(|r| {
                let n = recs
                    .iter()
                    .find(|x| {
                        x.variant == "tokenizer"
                            && x.layout == r.layout
                            && x.metric == "llama_tokens"
                    })
                    .map(|x| x.value)
                    .unwrap_or(f64::NAN);
                format!(
                    "{} ({} tokens) from the `{}` file",
                    if r.value == 1.0 {
                        "identical"
                    } else {
                        "different"
                    },
                    f(n, 0),
                    r.layout
                )
            })
            .collect();
        if t.is_empty() {
            String::new()
        } else {
            format!(
                " llama.cpp's tokenizer (read from the GGUF metadata) against rotor's on the whole text: {}.",
                t.join("; ")
            )
        }
    };
    let text = table(&header, &rows)
        + &format!(
            "\nPerplexity ± one standard error on {} chunks of the test split ({} scored tokens, \
             llama.cpp's convention), every arm on the same token ids; `{shape}`. `rotor relu2` is \
             the model as trained; `rotor silu` is rotor with `--ffn-act silu`; `rotor silu q8k` \
             adds llama.cpp's activation quantization (int8 per 256-value block instead of per \
             token, `--acts q8k`, emulated on rotor's f32 reference path), `ggml-rope` also \
             ggml's RoPE angles (f32 products `p·s^i` and f32 `cosf`/`sinf`); `llama.cpp` is \
             llama-cpp-python with its default f16 KV cache, `kv-f32` with an f32 one.{tok_line} \
             {sub}.\n",
            chunks,
            f(tokens, 0)
        );

    // Table: agreement.
    let mut pv: Vec<(String, String)> = vec![];
    for r in recs.iter().filter(|r| r.variant.starts_with("agree: ")) {
        let k = (r.variant.clone(), r.layout.clone());
        if !pv.contains(&k) {
            pv.push(k);
        }
    }
    let get = |v: &str, l: &str, m: &str| {
        recs.iter()
            .find(|r| r.variant == v && r.layout == l && r.metric == m)
            .map(|r| r.value)
            .unwrap_or(f64::NAN)
    };
    let arows: Vec<Vec<String>> = pv
        .iter()
        .map(|(v, l)| {
            vec![
                v.trim_start_matches("agree: ").to_string(),
                format!("`{l}`"),
                sci(get(v, l, "mean_kl")),
                sci(get(v, l, "max_abs_logit_diff")),
                format!("{} %", f(100.0 * get(v, l, "top1_agreement"), 2)),
                sci(get(v, l, "mean_abs_nll_diff")),
                f(get(v, l, "ppl_ratio"), 5),
            ]
        })
        .collect();
    let positions = recs
        .iter()
        .find(|r| r.variant.starts_with("agree: ") && r.metric == "mean_kl")
        .map(|r| r.reps)
        .unwrap_or(0);
    let atext = table(
        &[
            "A vs B",
            "file(s)",
            "mean KL(A ‖ B), nats",
            "max \\|Δ logit\\|",
            "top-1 agreement",
            "mean \\|Δ NLL\\| (scored tokens)",
            "PPL A ÷ B",
        ],
        &arows,
    ) + &format!(
        "\nKL, \\|Δ logit\\| and top-1 over {positions} positions (the first chunks' every position); \
         \\|Δ NLL\\| and the PPL ratio over every scored token. {sub}.\n"
    );
    Ok(vec![
        ("crosscheck".to_string(), text),
        ("crosscheck-agreement".to_string(), atext),
    ])
}
