//! The speed experiment in tiny mode: every configuration's `rotor bench` runs and lands in CSV.

#[test]
fn tiny_run_writes_csv() {
    let dir = std::env::temp_dir().join(format!("rotor-speed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // SAFETY-free: env var for the child lookup only.
    let bin = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/rotor");
    if !bin.exists() {
        // `cargo test` at the workspace root builds the `rotor` binary first; a lone
        // `cargo test -p speed` may not have: build it then.
        let st = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "rotor", "--bin", "rotor"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    // SAFETY: single-threaded at this point of the test.
    unsafe { std::env::set_var("ROTOR_BIN", &bin) };
    let args: Vec<String> = [
        "speed",
        "--tiny",
        "--out",
        dir.join("results").to_str().unwrap(),
        "--models",
        dir.join("models").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    speed::run(&args).expect("speed experiment (tiny)");
    let csv = std::fs::read_to_string(harness::result_csv(&dir.join("results"), "speed")).unwrap();
    for m in [
        "prefill_tok_s",
        "decode_tok_s",
        "roofline_fraction",
        "peak_rss",
        "decode_ms_head",
    ] {
        assert!(csv.contains(m), "CSV lacks {m}");
    }
    assert!(csv.contains("int8"));
    let _ = std::fs::remove_dir_all(&dir);
}
