//! The verifycost binary in tiny mode: callgrind counts (when valgrind is installed), paired
//! timings with intervals and the checker-thread comparison, all written to its CSV.

use std::process::Command;

#[test]
fn tiny_run_writes_every_part() {
    let dir = std::env::temp_dir().join(format!("rotor-verifycost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_verifycost"))
        .args(["--tiny", "--out"])
        .arg(dir.join("results"))
        .arg("--models")
        .arg(dir.join("models"))
        .output()
        .expect("running verifycost");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verifycost --tiny failed:\n{err}");
    let csv = std::fs::read_to_string(harness::result_csv(&dir.join("results"), "verifycost"))
        .expect("CSV");
    for metric in ["decode_ms", "products_ms", "overhead_pct"] {
        assert!(csv.contains(metric), "CSV lacks {metric}");
    }
    for v in ["detect", "correct", "inline", "other-thread"] {
        assert!(csv.contains(v), "no {v} rows");
    }
    let valgrind = Command::new("valgrind").arg("--version").output();
    if valgrind.is_ok_and(|o| o.status.success()) {
        assert!(
            csv.contains("added_instructions_pct"),
            "valgrind is installed but no instruction counts were written:\n{err}"
        );
    }
    // Unknown flags are refused, like every experiment binary's.
    let bad = Command::new(env!("CARGO_BIN_EXE_verifycost"))
        .arg("--ful")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
