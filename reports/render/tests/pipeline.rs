//! The whole report pipeline at CI size: the layouts experiment in tiny mode writes this
//! machine's CSV, a second machine's results sit beside it, and the renderer draws both side by
//! side — per-machine figure directories, one block per machine in every table, one column per
//! machine in the figure table. A rerun replaces only this machine's file.

mod common;

use std::path::PathBuf;

#[test]
fn tiny_layouts_run_renders_figures_and_tables_per_machine() {
    let dir = std::env::temp_dir().join(format!("rotor-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let results = dir.join("results");
    let args: Vec<String> = ["layouts", "--tiny", "--out", results.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    layouts::run(&args).expect("layouts experiment (tiny)");
    let csv = harness::result_csv(&results, "layouts");
    assert!(csv.exists(), "no CSV at {}", csv.display());
    assert!(csv.with_extension("meta.json").exists());
    let here = harness::this_machine();

    // A second machine: the same rows with another CPU model and SIMD level.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let h = r.headers().unwrap().clone();
    let (ci, si) = (
        h.iter().position(|c| c == "cpu").unwrap(),
        h.iter().position(|c| c == "simd").unwrap(),
    );
    let other = results.join("layouts/test-chip-9000-avx512.csv");
    let mut w = csv::Writer::from_path(&other).unwrap();
    w.write_record(&h).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        let row: Vec<&str> = rec
            .iter()
            .enumerate()
            .map(|(i, v)| match i {
                _ if i == ci => "Test(R) Chip 9000 @ 3GHz",
                _ if i == si => "avx512",
                _ => v,
            })
            .collect();
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let other_bytes = std::fs::read(&other).unwrap();

    // A rerun on this machine replaces its own file and leaves the other machine's alone.
    layouts::run(&args).expect("layouts experiment (tiny), rerun");
    assert_eq!(std::fs::read(&other).unwrap(), other_bytes);
    let files: Vec<String> = std::fs::read_dir(results.join("layouts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");

    let readme = common::readme_with_markers(
        &dir,
        &["layouts-summary", "layouts-ratio", "layouts-figures"],
    );
    let figures = dir.join("figures");
    let names = render::run(&results, &figures, Some(&readme)).expect("render");
    assert!(names.contains(&"layouts-summary".to_string()), "{names:?}");
    assert!(names.contains(&"layouts-figures".to_string()), "{names:?}");
    for machine in [here.as_str(), "test-chip-9000-avx512"] {
        for stem in ["gemv-dram", "roofline", "gemm", "conversion", "ratio"] {
            for ext in ["svg", "png"] {
                let p: PathBuf = figures.join(machine).join(format!("layouts-{stem}.{ext}"));
                common::assert_figure(&p);
            }
        }
    }
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(
        !text.contains("old"),
        "generated sections were not replaced:\n{text}"
    );
    assert!(
        text.contains("| `rotor-pn` |") && text.contains("hf_packed"),
        "{text}"
    );
    // Both machines, in every table, and side by side in the figure table.
    let summary = section(&text, "layouts-summary");
    assert!(
        summary.contains("**Test(R) Chip 9000 @ 3GHz · avx512"),
        "{summary}"
    );
    assert_eq!(summary.matches("| `rotor-pn` |").count(), 2, "{summary}");
    let figs = section(&text, "layouts-figures");
    let header = figs.lines().next().unwrap();
    assert_eq!(header.matches(" | ").count(), 1, "two columns: {header}");
    assert!(
        figs.contains(&format!("(figures/{here}/layouts-gemv-dram.svg)"))
            && figs.contains("(figures/test-chip-9000-avx512/layouts-gemv-dram.svg)"),
        "{figs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let b = format!("<!-- BEGIN generated:{name} -->\n");
    let e = format!("<!-- END generated:{name} -->");
    let i = text.find(&b).unwrap() + b.len();
    let j = text.find(&e).unwrap();
    &text[i..j]
}
