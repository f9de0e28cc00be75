//! The crosscheck experiment in tiny mode (rotor arms only: no llama.cpp here): the model
//! exported to every GGUF type gives the checkpoint's perplexity, the SiLU research switch
//! changes it, and the run's own checks pass (its scoring is `rotor perplexity`'s).

#[test]
fn tiny_run_matches_across_files_and_the_switch_switches() {
    let dir = std::env::temp_dir().join(format!("rotor-crosscheck-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let gguf = dir.join("gguf");
    let args: Vec<String> = [
        "crosscheck",
        "--tiny",
        "--out",
        dir.to_str().unwrap(),
        "--gguf-dir",
        gguf.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    crosscheck::run(&args).expect("crosscheck experiment (tiny)");
    let csv = std::fs::read_to_string(harness::result_csv(&dir, "crosscheck")).unwrap();
    let ppl = |variant: &str, file: &str| -> f64 {
        csv.lines()
            .find(|l| l.contains(&format!(",{variant},{file},")) && l.contains(",ppl,"))
            .and_then(|l| l.split(',').nth(8))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no ppl row for {variant} on {file}:\n{csv}"))
    };
    let base = ppl("rotor relu2", "safetensors");
    for f in ["TQ2_0", "TQ1_0", "I2_S"] {
        let g = ppl("rotor relu2", f);
        assert!((g - base).abs() <= 1e-4 * base, "{f}: {g} vs {base}");
    }
    let silu = ppl("rotor silu", "safetensors");
    assert!(
        (silu - base).abs() > 1e-3 * base,
        "silu {silu} vs relu2 {base}"
    );
    assert!(csv.contains("agree: rotor silu vs rotor relu2"));
    let _ = std::fs::remove_dir_all(&dir);
}
