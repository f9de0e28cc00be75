//! What one parallel region costs: a product too small to matter (16 × 2560), handed to the
//! pool the way the forward pass hands every product, timed over many calls, at 1 and 2
//! threads. Not a benchmark of record; used for docs/KERNELS.md's thread section.

use std::time::Instant;

use rotor::kernels::Kernel;
use rotor::ternary::{ActBuf, LayoutKind, Ternary};

fn main() {
    let t = Ternary::from_fn(64, 2560, |r, c| ((r * 7 + c * 3) % 3) as i8 - 1);
    let xs: Vec<i8> = (0..2560).map(|c| (c % 251) as i8).collect();
    let x = ActBuf::from_rows(&xs, 1, 2560);
    let w = LayoutKind::HfPacked.from_dense(&t);
    let k = Kernel::best();
    let mut y = vec![0i32; 64];
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let n = 20000;
            // Serial: the same product without a region.
            let t0 = Instant::now();
            for _ in 0..n {
                let mut parts: Vec<&mut [i32]> = y.chunks_mut(16).collect();
                w.gemm_block(k, &x.view(), 0..16, &mut parts);
            }
            let serial = t0.elapsed().as_secs_f64() / n as f64;
            // The product in two halves via rayon::join (what a 2-task region costs).
            let split_join = |y: &mut [i32]| {
                let (a, b) = y.split_at_mut(32);
                rayon::join(
                    || {
                        let mut p: Vec<&mut [i32]> = a.chunks_mut(8).collect();
                        w.gemm_block(k, &x.view(), 0..8, &mut p)
                    },
                    || {
                        let mut p: Vec<&mut [i32]> = b.chunks_mut(8).collect();
                        w.gemm_block(k, &x.view(), 8..16, &mut p)
                    },
                );
            };
            // Forced split, back to back.
            let t0 = Instant::now();
            for _ in 0..n {
                split_join(&mut y);
            }
            let joined = t0.elapsed().as_secs_f64() / n as f64;
            // With a gap between regions (as between products, where norms run serially).
            let t0 = Instant::now();
            for _ in 0..n / 10 {
                let s = Instant::now();
                while s.elapsed().as_micros() < 20 {}
                split_join(&mut y);
            }
            let gapped = t0.elapsed().as_secs_f64() / (n / 10) as f64 - 20e-6;
            println!(
                "{threads} thread(s): product {:.2} us serial, {:.2} us as a 2-task join back to back, {:.2} us after a 20 us serial gap",
                serial * 1e6,
                joined * 1e6,
                gapped * 1e6
            );
        });
    }
}
