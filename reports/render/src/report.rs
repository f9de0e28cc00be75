//! Markdown tables and the generated sections of `reports/README.md`.

use anyhow::{Context, Result};

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    s.push_str(&format!("| {} |\n", header.join(" | ")));
    s.push_str(&format!(
        "|{}|\n",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 {
                "---".to_string()
            } else {
                "---:".to_string()
            })
            .collect::<Vec<_>>()
            .join("|")
    ));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

/// Replace the text between `<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->`
/// for every `(NAME, content)`. Returns the names that had no markers.
pub fn fill_markers(readme: &str, sections: &[(String, String)]) -> (String, Vec<String>) {
    let mut out = readme.to_string();
    let mut missing = vec![];
    for (name, content) in sections {
        let begin = format!("<!-- BEGIN generated:{name} -->");
        let end = format!("<!-- END generated:{name} -->");
        match (out.find(&begin), out.find(&end)) {
            (Some(b), Some(e)) if e > b => {
                let head = &out[..b + begin.len()];
                let tail = &out[e..];
                out = format!("{head}\n{}\n{tail}", content.trim_end());
            }
            _ => missing.push(name.clone()),
        }
    }
    (out, missing)
}

/// Rewrite the README's generated sections in place.
pub fn update_readme(path: &std::path::Path, sections: &[(String, String)]) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (new, missing) = fill_markers(&text, sections);
    if new != text {
        std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(missing)
}

/// Format a number with `d` decimals, or "–" for NaN.
pub fn f(v: f64, d: usize) -> String {
    if v.is_finite() {
        format!("{v:.d$}")
    } else {
        "–".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_replaced_and_missing_ones_reported() {
        let r = "a\n<!-- BEGIN generated:x -->\nold\n<!-- END generated:x -->\nb\n";
        let (out, missing) =
            fill_markers(r, &[("x".into(), "new".into()), ("y".into(), "z".into())]);
        assert_eq!(
            out,
            "a\n<!-- BEGIN generated:x -->\nnew\n<!-- END generated:x -->\nb\n"
        );
        assert_eq!(missing, vec!["y".to_string()]);
        // Idempotent.
        let (again, _) = fill_markers(&out, &[("x".into(), "new".into())]);
        assert_eq!(again, out);
    }
}
