//! The two newest experiments at CI size through the renderer: their tiny runs' CSV become the
//! utilization and verification-cost figures and tables.

mod common;

#[test]
fn tiny_utilization_and_verifycost_runs_render() {
    let dir = std::env::temp_dir().join(format!("rotor-render-util-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let results = dir.join("results");
    let argv = |name: &str| -> Vec<String> {
        [
            name,
            "--tiny",
            "--out",
            results.to_str().unwrap(),
            "--models",
            dir.join("models").to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut u = argv("utilization");
    u.truncate(4); // utilization takes no --models
    utilization::run(&u).expect("utilization (tiny)");
    verifycost::run(&argv("verifycost")).expect("verifycost (tiny)");

    let names = [
        "utilization-table",
        "utilization-peaks",
        "utilization-ratio",
        "utilization-figures",
        "verifycost-time",
        "verifycost-figures",
    ];
    let readme = common::readme_with_markers(&dir, &names);
    let figures = dir.join("figures");
    let got = render::run(&results, &figures, Some(&readme)).expect("render");
    common::assert_sections(&got, &names);
    let machine = harness::this_machine();
    for stem in [
        "utilization-bandwidth",
        "utilization-peak",
        "utilization-ratio",
        "verifycost-time",
    ] {
        let p = figures.join(&machine).join(format!("{stem}.svg"));
        common::assert_figure(&p);
    }
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(!text.contains("old"), "{text}");
    assert!(text.contains("| `hf_packed` | ternary |"), "{text}");
    assert!(
        text.contains("ternary ÷ FP32") && text.contains("95 % interval"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
