//! The perplexity experiment in tiny mode on the shipped trained model: every layout × kernel
//! gives the bit-identical mean NLL (the run's own checks), and the CSV has every group.

#[test]
fn tiny_run_is_identical_across_layouts_and_writes_csv() {
    let dir = std::env::temp_dir().join(format!("rotor-ppl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args: Vec<String> = ["perplexity", "--tiny", "--out", dir.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    perplexity::run(&args).expect("perplexity experiment (tiny)");
    let csv = std::fs::read_to_string(harness::result_csv(&dir, "perplexity")).unwrap();
    for v in [
        "reference",
        "layout",
        "verify:correct",
        "acts:int4",
        "acts:f32",
        "head:int8",
        "baseline:unigram",
        "baseline:uniform",
    ] {
        assert!(csv.contains(v), "CSV lacks {v}");
    }
    // The trained model beats the unigram baseline even on two short chunks.
    let ppl = |variant: &str| -> f64 {
        csv.lines()
            .find(|l| l.contains(&format!(",{variant},")) && l.contains(",ppl,"))
            .and_then(|l| l.split(',').nth(8))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no ppl row for {variant}"))
    };
    assert!(ppl("reference") < ppl("baseline:unigram"));
    let _ = std::fs::remove_dir_all(&dir);
}
