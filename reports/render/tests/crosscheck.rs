//! The crosscheck experiment at CI size (rotor arms only) through the renderer: the perplexity
//! figure, the KL-by-position figure and both tables.

#[test]
fn tiny_crosscheck_run_renders() {
    let dir = std::env::temp_dir().join(format!("rotor-render-cc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let results = dir.join("results");
    let args: Vec<String> = [
        "crosscheck",
        "--tiny",
        "--out",
        results.to_str().unwrap(),
        "--gguf-dir",
        dir.join("gguf").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    crosscheck::run(&args).expect("crosscheck (tiny)");
    let names = ["crosscheck", "crosscheck-agreement", "crosscheck-figures"];
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
    for stem in ["crosscheck-ppl", "crosscheck-kl"] {
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
    assert!(text.contains("| `TQ2_0` |"), "{text}");
    assert!(text.contains("rotor silu vs rotor relu2"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
