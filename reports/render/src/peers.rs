//! Figures and table of the `peers` experiment: rotor next to llama.cpp ("Speed vs llama.cpp").
//!
//! Rows (see experiments/peers): `variant` = engine (`rotor`, `llama.cpp`, `ratio`), `layout` =
//! weights, `kernel` = rotor's kernel or `ggml-cpu@<llama.cpp commit>`, `shape` =
//! `2b4t/<head type>`, metrics `prefill_tok_s` / `decode_tok_s` (+ `*_ratio` on ratio rows).

use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

use crate::charts::{Bar, Grouped};
use crate::data::{self, Rec};
use crate::report::{f, table};

/// The head type from `shape` = `2b4t/<head>`.
fn head(r: &Rec) -> &str {
    r.shape.split_once('/').map_or("", |(_, h)| h)
}

/// A case: (engine, weights, head), in order of first appearance with rotor first.
fn cases(recs: &[Rec]) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = vec![];
    for r in recs.iter().filter(|r| r.variant != "ratio") {
        let k = (r.variant.clone(), r.layout.clone(), head(r).to_string());
        if !v.contains(&k) {
            v.push(k);
        }
    }
    v.sort_by_key(|k| k.0 != "rotor");
    v
}

fn label(c: &(String, String, String)) -> String {
    format!("{} {} ({} head)", c.0, c.1, c.2)
}

pub fn render(all: &DataFrame, figures: &Path) -> Result<Vec<(String, String)>> {
    let df = data::select(all, &[("experiment", "peers")])?;
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let sub = data::machine_line(&df)?;
    let recs = data::records(&df)?;
    let cases = cases(&recs);
    let mut threads: Vec<i64> = recs.iter().map(|r| r.threads).collect();
    threads.sort();
    threads.dedup();
    let llama_build = recs
        .iter()
        .find(|r| r.variant == "llama.cpp")
        .map(|r| r.kernel.replace("ggml-cpu@", "llama.cpp "))
        .unwrap_or_default();
    let find = |c: &(String, String, String), metric: &str, t: i64| -> Option<&Rec> {
        recs.iter().find(|r| {
            r.variant == c.0
                && r.layout == c.1
                && head(r) == c.2
                && r.metric == metric
                && r.threads == t
        })
    };
    let prompt = recs
        .iter()
        .find(|r| r.metric == "prefill_tok_s")
        .map(|r| r.batch)
        .unwrap_or(0);

    for (metric, what, stem) in [
        (
            "decode_tok_s",
            "decode (one token per step, greedy)",
            "peers-decode",
        ),
        ("prefill_tok_s", "prefill", "peers-prefill"),
    ] {
        let values = cases
            .iter()
            .map(|c| {
                threads
                    .iter()
                    .map(|&t| {
                        find(c, metric, t).map(|r| Bar {
                            value: r.value,
                            err: Some((r.min, r.max)),
                        })
                    })
                    .collect()
            })
            .collect();
        let title = if metric == "prefill_tok_s" {
            format!("Speed vs llama.cpp: {what} of a {prompt}-token prompt, 2B-4T-shape model")
        } else {
            format!("Speed vs llama.cpp: {what}, 2B-4T-shape model")
        };
        Grouped {
            title,
            subtitle: format!("{sub} · {llama_build} · whiskers: min–max over runs"),
            y_label: "tokens per second".into(),
            groups: threads.iter().map(|t| format!("{t} thread(s)")).collect(),
            series: cases.iter().map(label).collect(),
            values,
            lines: vec![],
            log_y: false,
        }
        .save(&figures.join(stem))?;
    }

    // Table: one row per case and thread count; ratios rotor ÷ this llama.cpp case.
    let ratio = |c: &(String, String, String), metric: &str, t: i64| -> String {
        recs.iter()
            .find(|r| {
                r.variant == "ratio"
                    && r.metric == metric
                    && r.threads == t
                    && r.layout.split_once('/').map(|x| x.1) == Some(c.1.as_str())
                    && r.shape.ends_with(&format!("÷{}", c.2))
            })
            .map(|r| format!("{} ({}–{})", f(r.value, 2), f(r.min, 2), f(r.max, 2)))
            .unwrap_or_else(|| "–".into())
    };
    let cell = |r: Option<&Rec>| {
        r.map(|r| format!("{} ({}–{})", f(r.value, 2), f(r.min, 2), f(r.max, 2)))
            .unwrap_or_else(|| "–".into())
    };
    let mut rows = vec![];
    for &t in &threads {
        for c in &cases {
            let pre = find(c, "prefill_tok_s", t);
            if pre.is_none() && find(c, "decode_tok_s", t).is_none() {
                continue;
            }
            let is_llama = c.0 == "llama.cpp";
            rows.push(vec![
                c.0.clone(),
                format!("`{}`", c.1),
                c.2.clone(),
                t.to_string(),
                cell(pre),
                cell(find(c, "decode_tok_s", t)),
                if is_llama {
                    ratio(c, "prefill_ratio", t)
                } else {
                    "–".into()
                },
                if is_llama {
                    ratio(c, "decode_ratio", t)
                } else {
                    "–".into()
                },
                find(c, "peak_rss_bytes", t)
                    .map(|r| format!("{} GB", f(r.value / 1e9, 2)))
                    .unwrap_or_else(|| "–".into()),
            ]);
        }
    }
    let reps = recs
        .iter()
        .find(|r| r.metric == "decode_tok_s")
        .map(|r| r.reps)
        .unwrap_or(0);
    let text = table(
        &[
            "engine",
            "weights",
            "head",
            "threads",
            "prefill tok/s (min–max)",
            "decode tok/s (min–max)",
            "rotor ÷ this, prefill",
            "rotor ÷ this, decode",
            "peak RSS",
        ],
        &rows,
    ) + &format!(
        "\nMedians over processes that alternated engine by engine in one run ({reps} timed runs per \
         cell), prompt {prompt} tokens; rotor ÷ this > 1 means rotor is faster. {sub}; {llama_build}.\n\n\
         **Not the same computation.** llama.cpp's `bitnet` graph applies SiLU in the FFN where \
         BitNet b1.58 2B-4T uses ReLU² (what that does to a trained model is measured in the \
         crosscheck section; for speed it is one element-wise op over 6912 values per layer). Its weights are the GGUF types (TQ2_0: 2.06 \
         bits/weight, TQ1_0: 1.69) with activations quantized per 256-block (Q8_K), not rotor's \
         layouts with per-token int8; the head is the tied embedding in the GGUF's type (f16 has \
         the bytes of rotor's bf16 head; q8_0 is about half). The model is synthesized (random \
         weights), so only the speeds mean something.\n"
    );
    Ok(vec![("peers".to_string(), text)])
}
