//! criterion benchmarks: GEMV and GEMM (batch 8, 64) for every layout × kernel at the four
//! projection shapes of BitNet 2B-4T, and conversion from the checkpoint bytes. Every timed
//! kernel's output is checked against the oracle before it is timed.
//!
//! `cargo bench -p rotor --bench kernels [-- FILTER]`; throughput is reported both in weights/s
//! (elements) and, for GEMV, bytes of weights per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rotor::kernels::Kernel;
use rotor::sample::Rng;
use rotor::ternary::parallel;
use rotor::ternary::{ActBuf, LayoutKind, Ternary};

const SHAPES: [(&str, usize, usize); 4] = [
    ("q_o", 2560, 2560),
    ("k_v", 640, 2560),
    ("gate_up", 6912, 2560),
    ("down", 2560, 6912),
];

fn ternary(rows: usize, cols: usize, seed: u64) -> Ternary {
    let mut r = Rng::new(seed);
    Ternary::from_fn(rows, cols, |_, _| (r.next_u64() % 3) as i8 - 1)
}

fn acts(batch: usize, cols: usize, seed: u64) -> ActBuf {
    let mut r = Rng::new(seed);
    let v: Vec<i8> = (0..batch * cols)
        .map(|_| ((r.next_u64() % 255) as i32 - 127) as i8)
        .collect();
    ActBuf::from_rows(&v, batch, cols)
}

fn bench_products(c: &mut Criterion) {
    for (name, out, cols) in SHAPES {
        let t = ternary(out, cols, out as u64 ^ cols as u64);
        let packed = t.to_hf_packed();
        for batch in [1usize, 8, 64] {
            let x = acts(batch, cols, batch as u64);
            let want = t.gemm_oracle(&x.view());
            let mut g = c.benchmark_group(format!("gemm/{name}_{out}x{cols}/b{batch}"));
            g.sample_size(10)
                .warm_up_time(std::time::Duration::from_millis(300))
                .measurement_time(std::time::Duration::from_secs(1));
            g.throughput(Throughput::Elements((out * cols * batch) as u64));
            for layout in LayoutKind::all() {
                let w = layout
                    .from_hf_packed(Kernel::best(), &packed, out, cols)
                    .unwrap();
                for k in Kernel::available() {
                    if !layout.kernels().contains(&k.kind())
                        || (k.kind() == rotor::KernelKind::Scalar && batch > 1)
                    {
                        continue;
                    }
                    let mut y = vec![0i32; out * batch];
                    parallel::gemm(w.as_ref(), k, &x.view(), &mut y);
                    assert_eq!(y, want, "{layout} × {k} differs from the oracle");
                    g.bench_with_input(BenchmarkId::new(layout.name(), k.name()), &k, |b, &k| {
                        b.iter(|| parallel::gemm(w.as_ref(), k, &x.view(), &mut y))
                    });
                }
            }
            g.finish();
        }
    }
}

fn bench_conversion(c: &mut Criterion) {
    let (out, cols) = (6912, 2560);
    let t = ternary(out, cols, 1);
    let packed = t.to_hf_packed();
    let mut g = c.benchmark_group("convert/6912x2560");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(packed.len() as u64));
    g.bench_function("memcpy", |b| {
        let mut d = vec![0u8; packed.len()];
        b.iter(|| d.copy_from_slice(&packed))
    });
    for layout in LayoutKind::all() {
        let k = layout.best_kernel();
        assert_eq!(
            layout
                .from_hf_packed(k, &packed, out, cols)
                .unwrap()
                .to_dense(),
            t
        );
        g.bench_function(layout.name(), |b| {
            b.iter(|| layout.from_hf_packed(k, &packed, out, cols).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_products, bench_conversion);
criterion_main!(benches);
