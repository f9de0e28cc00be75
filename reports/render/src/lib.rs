//! Report renderer: reads only `reports/results/**/*.csv` (the tidy schema of
//! experiments/harness) with polars, draws figures with plotters into `reports/figures/`
//! (`<experiment>-<what>.svg` and `.png`), and rewrites the generated tables between
//! `<!-- BEGIN generated:NAME -->` / `<!-- END generated:NAME -->` markers in
//! `reports/README.md`. Rendering never runs an experiment, so figures can be rebuilt on any
//! machine from committed results.

pub mod charts;
pub mod crosscheck;
pub mod data;
pub mod layouts;
pub mod magnitude;
pub mod peers;
pub mod perplexity;
pub mod report;
pub mod speed;
pub mod utilization;
pub mod verification;
pub mod verifycost;

use std::path::Path;

use anyhow::{Context, Result};

/// One experiment's renderer: its sections from the rows of one machine, figures into a
/// directory.
type Renderer = fn(&polars::prelude::DataFrame, &Path) -> Result<Vec<(String, String)>>;

/// The experiments in report order.
pub const EXPERIMENTS: [(&str, Renderer); 9] = [
    ("layouts", layouts::render),
    ("magnitude", magnitude::render),
    ("peers", peers::render),
    ("crosscheck", crosscheck::render),
    ("verification", verification::render),
    ("verifycost", verifycost::render),
    ("utilization", utilization::render),
    ("speed", speed::render),
    ("perplexity", perplexity::render),
];

/// Render every experiment found under `results`, once per machine: figures go to
/// `figures/<machine>/`, and each generated section holds one block per machine (in machine
/// name order). Each experiment also gets a section `<experiment>-figures`: a table with one
/// column per machine and one row per figure, so the machines' figures sit side by side.
pub fn run(results: &Path, figures: &Path, readme: Option<&Path>) -> Result<Vec<String>> {
    charts::init_fonts();
    std::fs::create_dir_all(figures).with_context(|| format!("creating {}", figures.display()))?;
    let df = data::load(results)?;
    let machines = data::machines(&df)?;
    // Link prefix of the figures directory as seen from the README.
    let link = readme
        .and_then(|r| r.parent())
        .and_then(|d| {
            let d = d.canonicalize().ok()?;
            let f = figures.canonicalize().ok()?;
            f.strip_prefix(&d)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "figures".into());
    // name -> [(machine label, content)], in order of first appearance.
    let mut merged: Vec<(String, Vec<(String, String)>)> = vec![];
    // experiment -> figure stems in order, and which machines drew each.
    let mut figs: Vec<(String, Vec<(String, Vec<String>)>)> = vec![];
    for (m, label) in &machines {
        let dm = data::select(&df, &[("machine", m)])?;
        let dir = figures.join(m);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (exp, render) in EXPERIMENTS {
            charts::take_saved();
            let sections = render(&dm, &dir)?;
            // Each block names the machine and the revision and date it was measured at:
            // machines are measured at different revisions.
            let de = data::select(&dm, &[("experiment", exp)])?;
            let label = match (
                data::strings(&de, "git_rev")?.first(),
                data::strings(&de, "date")?.first(),
            ) {
                (Some(rev), Some(date)) => {
                    format!(
                        "{label} — git {rev}, {}",
                        date.split('T').next().unwrap_or(date)
                    )
                }
                _ => label.clone(),
            };
            for (name, content) in sections {
                match merged.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => v.push((label.clone(), content)),
                    None => merged.push((name, vec![(label.clone(), content)])),
                }
            }
            let stems: Vec<String> = charts::take_saved()
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            if stems.is_empty() {
                continue;
            }
            let e = match figs.iter().position(|(n, _)| n == exp) {
                Some(i) => &mut figs[i].1,
                None => {
                    figs.push((exp.to_string(), vec![]));
                    &mut figs.last_mut().unwrap().1
                }
            };
            for s in stems {
                match e.iter_mut().find(|(n, _)| *n == s) {
                    Some((_, ms)) => ms.push(m.clone()),
                    None => e.push((s, vec![m.clone()])),
                }
            }
        }
    }
    let mut sections: Vec<(String, String)> = merged
        .into_iter()
        .map(|(name, blocks)| {
            let text = blocks
                .iter()
                .map(|(label, c)| format!("**{label}**\n\n{}", c.trim_end()))
                .collect::<Vec<_>>()
                .join("\n\n");
            (name, text)
        })
        .collect();
    for (exp, stems) in &figs {
        let present: Vec<&(String, String)> = machines
            .iter()
            .filter(|(m, _)| stems.iter().any(|(_, ms)| ms.contains(m)))
            .collect();
        let header: Vec<&str> = present.iter().map(|(_, l)| l.as_str()).collect();
        let rows: Vec<Vec<String>> = stems
            .iter()
            .map(|(stem, ms)| {
                present
                    .iter()
                    .map(|(m, l)| {
                        if ms.contains(m) {
                            format!("![{stem}, {l}]({link}/{m}/{stem}.svg)")
                        } else {
                            "–".into()
                        }
                    })
                    .collect()
            })
            .collect();
        sections.push((format!("{exp}-figures"), report::table(&header, &rows)));
    }
    let names: Vec<String> = sections.iter().map(|s| s.0.clone()).collect();
    if let Some(r) = readme {
        let missing = report::update_readme(r, &sections)?;
        for m in missing {
            eprintln!("render: {} has no markers for section `{m}`", r.display());
        }
    }
    Ok(names)
}
