//! The crosscheck experiment at CI size (rotor arms only) through the renderer: the perplexity
//! figure, the KL-by-position figure and both tables.

mod common;

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
    let readme = common::readme_with_markers(&dir, &names);
    let figures = dir.join("figures");
    let got = render::run(&results, &figures, Some(&readme)).expect("render");
    common::assert_sections(&got, &names);
    let machine = harness::this_machine();
    for stem in ["crosscheck-ppl", "crosscheck-kl"] {
        let p = figures.join(&machine).join(format!("{stem}.svg"));
        common::assert_figure(&p);
    }
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(!text.contains("old"), "{text}");
    assert!(text.contains("| `TQ2_0` |"), "{text}");
    assert!(text.contains("rotor silu vs rotor relu2"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
