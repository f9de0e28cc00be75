//! Quick kernel timing for kernel development (not a benchmark of record — use the `layouts`
//! experiment or `cargo bench`). Several layout×kernel pairs are timed *interleaved* (one rep
//! of each in turn), so a noisy neighbour slows them all alike; the median and the best rep are
//! printed.
//!
//! `cargo run --release --example kbench -- [--rows R] [--cols C] [--batch B] [--reps N]
//!  [--threads T] [--dram] PAIR...` where PAIR is `layout:kernel` (e.g. `rotor-pn:avx512vnni`).
//! `--dram` cycles over enough copies of the matrix (> 1 GiB) that every rep streams its
//! weights from memory; otherwise the one matrix stays hot in cache.

use std::time::Instant;

use rotor::kernels::Kernel;
use rotor::sample::Rng;
use rotor::ternary::parallel;
use rotor::ternary::{ActBuf, LayoutKind, Ternary, TernaryLayout};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rows = 6912;
    let mut cols = 2560;
    let mut batch = 1;
    let mut reps = 200;
    let mut threads = 1;
    let mut dram = false;
    let mut pairs = vec![];
    let mut i = 0;
    while i < args.len() {
        let v = || args[i + 1].parse::<usize>().expect("number");
        match args[i].as_str() {
            "--rows" => rows = v(),
            "--cols" => cols = v(),
            "--batch" => batch = v(),
            "--reps" => reps = v(),
            "--threads" => threads = v(),
            "--dram" => {
                dram = true;
                i -= 1;
            }
            p => {
                pairs.push(p.to_string());
                i -= 1;
            }
        }
        i += 2;
    }
    let mut r = Rng::new(1);
    let t = Ternary::from_fn(rows, cols, |_, _| (r.next_u64() % 3) as i8 - 1);
    let xs: Vec<i8> = (0..batch * cols)
        .map(|_| (r.next_u64() % 255) as i8)
        .collect();
    let x = ActBuf::from_rows(&xs, batch, cols);
    let want = t.gemm_oracle(&x.view());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut setups: Vec<(String, Vec<Box<dyn TernaryLayout>>, Kernel)> = vec![];
    for p in &pairs {
        let (l, k) = p.split_once(':').expect("layout:kernel");
        let layout = LayoutKind::parse(l).unwrap();
        let k = Kernel::by_name(k).unwrap();
        let w = layout.from_dense(&t);
        let copies = if dram {
            (1usize << 30).div_ceil(w.storage_bytes()).max(2)
        } else {
            1
        };
        let ws: Vec<Box<dyn TernaryLayout>> = (0..copies).map(|_| layout.from_dense(&t)).collect();
        let mut y = vec![0i32; rows * batch];
        pool.install(|| parallel::gemm(ws[0].as_ref(), k, &x.view(), &mut y));
        assert_eq!(y, want, "{p} differs from the oracle");
        setups.push((format!("{} {}", layout.name(), k.name()), ws, k));
    }
    let bw = pool.install(|| rotor::sys::read_bandwidth(1 << 30, 3));
    let clock = rotor::sys::core_clock_hz();
    let mut times: Vec<Vec<f64>> = vec![vec![]; setups.len()];
    let mut y = vec![0i32; rows * batch];
    let mut cursor = vec![0usize; setups.len()];
    for _ in 0..reps {
        for (s, (_, ws, k)) in setups.iter().enumerate() {
            let w = &ws[cursor[s] % ws.len()];
            cursor[s] += 1;
            let t0 = Instant::now();
            pool.install(|| parallel::gemm(w.as_ref(), *k, &x.view(), &mut y));
            times[s].push(t0.elapsed().as_secs_f64());
        }
    }
    println!(
        "{rows}x{cols} batch {batch}, {threads} thread(s), {} weights, read bandwidth {:.1} GB/s, core clock {:.2} GHz",
        if dram { "DRAM" } else { "hot" },
        bw / 1e9,
        clock / 1e9
    );
    for (s, (name, ws, _)) in setups.iter().enumerate() {
        let v = &mut times[s];
        v.sort_by(f64::total_cmp);
        let (best, med) = (v[0], v[v.len() / 2]);
        let bytes = ws[0].storage_bytes() as f64;
        println!(
            "  {name:<28} median {:>8.1} us  best {:>8.1} us  {:>6.2} GB/s ({:>3.0}% of read bw)  {:>6.1} G weights·batch/s  {:>5.2} cycles/64 weights/thread",
            med * 1e6,
            best * 1e6,
            bytes / med / 1e9,
            100.0 * bytes / med / bw,
            (rows * cols * batch) as f64 / med / 1e9,
            med * clock * threads as f64 / ((rows * cols * batch) as f64 / 64.0)
        );
    }
}
