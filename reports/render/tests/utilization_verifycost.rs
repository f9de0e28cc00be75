//! The two newest experiments at CI size through the renderer: their tiny runs' CSV become the
//! utilization and verification-cost figures and tables.

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
    let machine = harness::this_machine();
    for stem in [
        "utilization-bandwidth",
        "utilization-peak",
        "utilization-ratio",
        "verifycost-time",
    ] {
        let p = figures.join(&machine).join(format!("{stem}.svg"));
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 5_000,
            "{} missing or empty ({len} bytes)",
            p.display()
        );
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
