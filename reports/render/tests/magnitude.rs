//! The magnitude experiment at CI size through the renderer: its tiny run's CSV becomes the
//! six figures and the generated tables, including the claims table.

mod common;

#[test]
fn tiny_magnitude_run_renders_figures_and_tables() {
    let dir = std::env::temp_dir().join(format!("rotor-render-magnitude-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let results = dir.join("results");
    let args: Vec<String> = ["magnitude", "--tiny", "--out", results.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    magnitude::run(&args).expect("magnitude experiment (tiny)");

    let names = [
        "magnitude-gemv",
        "magnitude-ops",
        "magnitude-energy",
        "magnitude-dist",
        "magnitude-optable",
        "magnitude-claims",
    ];
    let readme = common::readme_with_markers(&dir, &names);
    let figures = dir.join("figures");
    let got = render::run(&results, &figures, Some(&readme)).expect("render");
    common::assert_sections(&got, &names);
    for stem in [
        "time-energy",
        "ops",
        "energy",
        "dist-time",
        "dist-energy",
        "gemv",
    ] {
        for ext in ["svg", "png"] {
            let p = figures
                .join(harness::this_machine())
                .join(format!("magnitude-{stem}.{ext}"));
            common::assert_figure(&p);
        }
    }
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(
        !text.contains("\nold\n"),
        "generated sections were not replaced:\n{text}"
    );
    assert!(
        text.contains("`sign_select`") && text.contains("`tl_pn4`"),
        "{text}"
    );
    assert!(
        text.contains("1. With ternary weights the multiply disappears"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
