//! Report renderer: reads only `reports/results/**/*.csv` (the tidy schema of
//! experiments/harness) with polars, draws figures with plotters into `reports/figures/`
//! (`<experiment>-<what>.svg` and `.png`), and rewrites the generated tables between
//! `<!-- BEGIN generated:NAME -->` / `<!-- END generated:NAME -->` markers in
//! `reports/README.md`. Rendering never runs an experiment, so figures can be rebuilt on any
//! machine from committed results.

pub mod charts;
pub mod data;
pub mod layouts;
pub mod magnitude;
pub mod peers;
pub mod perplexity;
pub mod report;
pub mod speed;
pub mod verification;

use std::path::Path;

use anyhow::{Context, Result};

/// Render every experiment found under `results`.
pub fn run(results: &Path, figures: &Path, readme: Option<&Path>) -> Result<Vec<String>> {
    charts::init_fonts();
    std::fs::create_dir_all(figures).with_context(|| format!("creating {}", figures.display()))?;
    let df = data::load(results)?;
    let mut sections = vec![];
    sections.extend(layouts::render(&df, figures)?);
    sections.extend(magnitude::render(&df, figures)?);
    sections.extend(peers::render(&df, figures)?);
    sections.extend(verification::render(&df, figures)?);
    sections.extend(speed::render(&df, figures)?);
    sections.extend(perplexity::render(&df, figures)?);
    let names: Vec<String> = sections.iter().map(|s| s.0.clone()).collect();
    if let Some(r) = readme {
        let missing = report::update_readme(r, &sections)?;
        for m in missing {
            eprintln!("render: {} has no markers for section `{m}`", r.display());
        }
    }
    Ok(names)
}
