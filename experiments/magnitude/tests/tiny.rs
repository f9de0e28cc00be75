//! The whole experiment at CI size: `--tiny` writes the CSV with every encoding's timing,
//! operation counts and per-token energy rows, and passes its own oracle checks.

use std::collections::BTreeSet;

#[test]
fn tiny_run_writes_every_encoding() {
    let dir = std::env::temp_dir().join(format!("rotor-magnitude-tiny-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args: Vec<String> = ["magnitude", "--tiny", "--out", dir.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    magnitude::run(&args).expect("magnitude experiment (tiny)");
    let csv = harness::result_csv(&dir, "magnitude");
    assert!(csv.exists(), "no CSV at {}", csv.display());
    assert!(csv.with_extension("meta.json").exists());

    let mut r = csv::Reader::from_path(&csv).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (layout, kernel, metric, variant) =
        (col("layout"), col("kernel"), col("metric"), col("variant"));
    let mut timed = BTreeSet::new();
    let mut energy = BTreeSet::new();
    let mut ops = BTreeSet::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        match &rec[metric] {
            "gemv_us" => {
                timed.insert((
                    rec[layout].to_string(),
                    rec[kernel].to_string(),
                    rec[variant].to_string(),
                ));
            }
            "token_energy_arith_uj" | "token_energy_dram_uj" => {
                energy.insert((
                    rec[layout].to_string(),
                    rec[kernel].to_string(),
                    rec[variant].to_string(),
                ));
            }
            m if m.starts_with("ops_") && &rec[kernel] == "formula" => {
                ops.insert(rec[layout].to_string());
            }
            _ => {}
        }
    }
    for e in magnitude::encodings::Enc::ALL {
        for k in magnitude::kernels(e) {
            for d in magnitude::acts::Dist::ALL {
                assert!(
                    timed.contains(&(e.name().into(), k.name().into(), d.name().into())),
                    "no timing for {} / {} / {}",
                    e.name(),
                    k.name(),
                    d.name()
                );
            }
        }
        assert!(ops.contains(e.name()), "no op counts for {}", e.name());
        for t in ["horowitz45", "bitnet7nm"] {
            assert!(
                energy.contains(&(e.name().into(), t.into(), "real".into())),
                "no {t} energy for {}",
                e.name()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
