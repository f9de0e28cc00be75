//! Quick single-kernel timing for kernel development (not a benchmark of record — use the
//! `layouts` experiment or `cargo bench`): `cargo run --release --example kbench -- LAYOUT
//! KERNEL ROWS COLS BATCH ITERS`.

use std::time::Instant;

use rotor::kernels::{Kernel, parallel};
use rotor::sample::Rng;
use rotor::ternary::{ActBuf, LayoutKind, Ternary};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let layout = LayoutKind::parse(&arg(1, "rotor")).unwrap();
    let k = Kernel::by_name(&arg(2, "avx2")).unwrap();
    let rows: usize = arg(3, "6912").parse().unwrap();
    let cols: usize = arg(4, "2560").parse().unwrap();
    let batch: usize = arg(5, "1").parse().unwrap();
    let iters: usize = arg(6, "300").parse().unwrap();
    let mut r = Rng::new(1);
    let t = Ternary::from_fn(rows, cols, |_, _| (r.next_u64() % 3) as i8 - 1);
    let xs: Vec<i8> = (0..batch * cols)
        .map(|_| (r.next_u64() % 255) as i8)
        .collect();
    let x = ActBuf::from_rows(&xs, batch, cols);
    let w = layout.from_dense(&t);
    let want = t.gemm_oracle(&x.view());
    let mut y = vec![0i32; rows * batch];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| parallel::gemm(w.as_ref(), k, &x.view(), &mut y));
    assert_eq!(y, want);
    let t0 = Instant::now();
    pool.install(|| {
        for _ in 0..iters {
            parallel::gemm(w.as_ref(), k, &x.view(), &mut y);
        }
    });
    let s = t0.elapsed().as_secs_f64() / iters as f64;
    println!(
        "{layout} {k} {rows}x{cols} b{batch}: {:.1} us, {:.2} GB/s weights, {:.1} GMAC/s",
        s * 1e6,
        w.storage_bytes() as f64 / s / 1e9,
        (rows * cols * batch) as f64 / s / 1e9
    );
}
