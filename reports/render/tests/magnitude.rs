//! The magnitude experiment at CI size through the renderer: its tiny run's CSV becomes the
//! six figures and the generated tables, including the claims table.

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
    let readme = dir.join("README.md");
    let mut text = String::from("# r\n");
    for n in names {
        text += &format!("<!-- BEGIN generated:{n} -->\nold\n<!-- END generated:{n} -->\n");
    }
    std::fs::write(&readme, text).unwrap();
    let figures = dir.join("figures");
    let got = render::run(&results, &figures, Some(&readme)).expect("render");
    for n in names {
        assert!(
            got.contains(&n.to_string()),
            "section {n} missing from {got:?}"
        );
    }
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
