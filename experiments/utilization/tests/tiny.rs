//! The utilization experiment in tiny mode: every product is checked against the oracle (the
//! run fails otherwise) and the CSV holds peaks, bandwidth, fractions and ratios.

#[test]
fn tiny_run_writes_fractions_and_ratios() {
    let dir = std::env::temp_dir().join(format!("rotor-utilization-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args: Vec<String> = ["utilization", "--tiny", "--out", dir.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    utilization::run(&args).expect("utilization experiment (tiny)");
    let csv = std::fs::read_to_string(harness::result_csv(&dir, "utilization")).unwrap();
    for metric in [
        "read_bandwidth",
        "peak_gmac_s",
        "gmac_s",
        "bandwidth_fraction",
        "peak_fraction",
        "ternary_over",
    ] {
        assert!(csv.contains(metric), "CSV lacks {metric}");
    }
    // `rotor` is the fastest rotor variant on this CPU (measured by the engine).
    assert!(
        csv.contains(rotor::ternary::LayoutKind::rotor().name()),
        "CSV lacks the rotor layout"
    );
    for product in ["hf_packed", "int8-dense", "f32-gemm", "f32-gemv", "bf16"] {
        assert!(csv.contains(product), "CSV lacks {product}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn peak_loops_run_every_available_instruction() {
    for i in utilization::peak::available() {
        let r = harness::pool(1).install(|| utilization::peak::peak_macs(i, 1000, 1));
        assert!(r.is_finite() && r > 0.0, "{}: {r}", i.name);
    }
}
