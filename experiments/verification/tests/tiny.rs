//! The verification experiment in tiny mode: runs, writes its CSV, and its checks pass.

#[test]
fn tiny_run_writes_csv() {
    let dir = std::env::temp_dir().join(format!("rotor-verif-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args: Vec<String> = [
        "verification",
        "--tiny",
        "--out",
        dir.join("results").to_str().unwrap(),
        "--models",
        dir.join("models").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    verification::run(&args).expect("verification experiment (tiny)");
    let csv =
        std::fs::read_to_string(harness::result_csv(&dir.join("results"), "verification")).unwrap();
    for metric in [
        "decode_tok_s",
        "overhead_pct",
        "detected_fraction",
        "integer_false_positives",
        "float_miss_rate",
    ] {
        assert!(csv.contains(metric), "CSV lacks {metric}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
