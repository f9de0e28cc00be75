//! The whole report pipeline at CI size: the layouts experiment in tiny mode writes CSV, the
//! renderer turns it into figures and README tables.

use std::path::PathBuf;

#[test]
fn tiny_layouts_run_renders_figures_and_tables() {
    let dir = std::env::temp_dir().join(format!("rotor-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let results = dir.join("results");
    let args: Vec<String> = ["layouts", "--tiny", "--out", results.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    layouts::run(&args).expect("layouts experiment (tiny)");
    let csv = results.join("layouts/layouts.csv");
    assert!(csv.exists(), "no CSV at {}", csv.display());
    assert!(results.join("layouts/layouts.meta.json").exists());

    let readme = dir.join("README.md");
    std::fs::write(
        &readme,
        "# r\n<!-- BEGIN generated:layouts-summary -->\nold\n<!-- END generated:layouts-summary -->\n\
         <!-- BEGIN generated:layouts-ratio -->\nold\n<!-- END generated:layouts-ratio -->\n",
    )
    .unwrap();
    let figures = dir.join("figures");
    let names = render::run(&results, &figures, Some(&readme)).expect("render");
    assert!(names.contains(&"layouts-summary".to_string()), "{names:?}");
    for stem in ["gemv-dram", "roofline", "gemm", "conversion", "ratio"] {
        for ext in ["svg", "png"] {
            let p: PathBuf = figures.join(format!("layouts-{stem}.{ext}"));
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            assert!(
                len > 5_000,
                "{} missing or empty ({len} bytes)",
                p.display()
            );
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
    let _ = std::fs::remove_dir_all(&dir);
}
