//! Every encoding × every kernel this CPU has equals the dense oracle, and every instrumented
//! scalar count equals its closed-form formula — on random shapes (odd widths, partial words
//! and groups, odd word counts) and activations, plus edge rows (all −128, all 127, zeros).

use magnitude::acts::{Dist, synthetic};
use magnitude::encodings::{self, Act, Enc, Scratch, Stats, Weights};
use proptest::prelude::*;
use rotor::sample::Rng;
use rotor::ternary::{ActBuf, Ternary};

fn oracle(t: &Ternary, x: &Act) -> Vec<i32> {
    t.gemm_oracle(&ActBuf::from_rows(x.values(), 1, x.cols).view())
}

fn ternary(rows: usize, cols: usize, seed: u64, zeros: u64) -> Ternary {
    let mut r = Rng::new(seed);
    Ternary::from_fn(rows, cols, |_, _| {
        let v = r.next_u64() % 100;
        if v < zeros {
            0
        } else if v.is_multiple_of(2) {
            1
        } else {
            -1
        }
    })
}

/// Check every encoding and kernel on one problem; returns a description of the first failure.
fn check_all(t: Ternary, x: &[i8]) -> Result<(), String> {
    let w = Weights::new(t);
    let x = Act::new(x);
    let want = oracle(&w.t, &x);
    let mut s = Scratch::default();
    for e in Enc::ALL {
        for k in magnitude::kernels(e) {
            let mut y = vec![0i32; w.rows];
            magnitude::gemv(e, k, &w, &x, &mut s, &mut y);
            if y != want {
                let bad = y.iter().zip(&want).position(|(a, b)| a != b).unwrap();
                return Err(format!(
                    "{} / {} {}×{}: row {bad}: {} vs oracle {}",
                    e.name(),
                    k.name(),
                    w.rows,
                    w.cols,
                    y[bad],
                    want[bad]
                ));
            }
        }
        let (counted, y) = encodings::count(e, &w, &x, 0..w.rows);
        if y != want {
            return Err(format!("{}: instrumented run ≠ oracle", e.name()));
        }
        let f = encodings::formula(e, &Stats::new(&w.t, &x, 0..w.rows), true, true);
        if counted != f {
            return Err(format!(
                "{}: counted ≠ formula: {}",
                e.name(),
                counted.diff(&f).join(", ")
            ));
        }
        // Prep + rows terms add up to the whole.
        let st = Stats::new(&w.t, &x, 0..w.rows);
        let parts = encodings::formula(e, &st, true, false)
            .plus(&encodings::formula(e, &st, false, true), 1);
        if parts != f {
            return Err(format!("{}: prep + rows ≠ total", e.name()));
        }
    }
    Ok(())
}

#[test]
fn edge_rows_and_widths() {
    let widths = [
        1, 3, 4, 5, 63, 64, 65, 127, 128, 129, 150, 191, 192, 257, 1280, 1281,
    ];
    for (i, &cols) in widths.iter().enumerate() {
        for (j, fill) in [Some(-128i8), Some(127), Some(0), Some(-1), None]
            .into_iter()
            .enumerate()
        {
            let x: Vec<i8> = match fill {
                Some(v) => vec![v; cols],
                // Alternating extremes.
                None => (0..cols)
                    .map(|c| if c % 2 == 0 { -128 } else { 127 })
                    .collect(),
            };
            for rows in [1, 5, 33] {
                let t = ternary(rows, cols, (i * 10 + j) as u64, 30);
                check_all(t, &x).unwrap_or_else(|e| panic!("cols {cols}, fill {fill:?}: {e}"));
            }
        }
    }
}

#[test]
fn all_zero_and_all_nonzero_weights() {
    for zeros in [0, 100] {
        let t = ternary(40, 200, 5, zeros);
        let x = synthetic(Dist::Uniform, 200, 9);
        check_all(t, &x).unwrap();
    }
}

#[test]
fn every_distribution() {
    for d in [Dist::Uniform, Dist::Gauss, Dist::Small] {
        let x = synthetic(d, 700, 3);
        check_all(ternary(70, 700, 4, 33), &x).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_problems(
        rows in 1usize..70,
        cols in 1usize..400,
        seed in any::<u64>(),
        zeros in 0u64..100,
        small in any::<bool>(),
    ) {
        let mut r = Rng::new(seed ^ 0x5eed);
        let x: Vec<i8> = (0..cols)
            .map(|_| if small { (r.next_u64() % 9) as i8 - 4 } else { r.next_u64() as u8 as i8 })
            .collect();
        let res = check_all(ternary(rows, cols, seed, zeros), &x);
        prop_assert!(res.is_ok(), "{}", res.unwrap_err());
    }
}
