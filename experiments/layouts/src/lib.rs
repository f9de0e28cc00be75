//! Experiment `layouts`: does the rotor layout make ternary matrix products faster than the
//! checkpoint's packed layout at the same size?
//!
//! For every layout (rotor P/N and M/S with three interleavings, hf_packed, i2, tq1, and the
//! 8-bit dense baseline) × every kernel this CPU has × threads 1..N × the four projection shapes
//! of BitNet 2B-4T, it measures:
//! - bytes per weight (exact, from storage);
//! - conversion of the whole 2B-4T-shape model (210 projections) from the checkpoint bytes,
//!   against a `memcpy` of the same bytes;
//! - GEMV with the weights streamed from DRAM (a tall matrix of the shape's row length, far
//!   larger than the last-level cache) as GB/s of weights and as a fraction of the read
//!   bandwidth measured in the same run;
//! - GEMV and GEMM (batch 8, 64) with the weights hot in cache.
//! Every timed output is compared with the dense oracle; a mismatch fails the run.
//!
//! Usage: `layouts [--quick|--full|--tiny] [--out DIR]` (quick is the default).
//! The binary is `src/main.rs`; [`run`] is public so the report pipeline test can call it.

use std::time::{Duration, Instant};

use anyhow::Result;
use harness::{Checks, Csv, Mode, Row, RunMeta, pool, probe, thread_counts, time};
use rayon::prelude::*;
use rotor::kernels::{Kernel, KernelKind};
use rotor::sample::Rng;
use rotor::ternary::parallel;
use rotor::ternary::{ActBuf, LayoutKind, Ternary, TernaryLayout};

/// (name, out, in) of the 2B-4T projections.
const SHAPES: [(&str, usize, usize); 4] = [
    ("q_o", 2560, 2560),
    ("k_v", 640, 2560),
    ("gate_up", 6912, 2560),
    ("down", 2560, 6912),
];

/// How many of each shape the 2B-4T model has (30 layers).
const COUNTS: [usize; 4] = [60, 60, 60, 30];

struct Plan {
    shapes: Vec<(String, usize, usize)>,
    counts: Vec<usize>,
    dram_bytes: usize,
    batches: Vec<usize>,
    /// Interleaved rounds (each round times every layout × kernel once) and time budgets.
    dram_rounds: usize,
    dram_budget: Duration,
    hot_rounds: usize,
    hot_budget: Duration,
}

fn plan(mode: Mode) -> Plan {
    match mode {
        Mode::Tiny => Plan {
            shapes: vec![("q_o".into(), 128, 256), ("down".into(), 256, 344)],
            counts: vec![2, 1],
            dram_bytes: 4 << 20,
            batches: vec![1, 8],
            dram_rounds: 3,
            dram_budget: Duration::from_millis(50),
            hot_rounds: 3,
            hot_budget: Duration::from_millis(50),
        },
        Mode::Quick => Plan {
            shapes: SHAPES
                .iter()
                .map(|&(n, o, i)| (n.to_string(), o, i))
                .collect(),
            counts: COUNTS.to_vec(),
            dram_bytes: 192 << 20,
            batches: vec![1, 8, 64],
            dram_rounds: 9,
            dram_budget: Duration::from_secs(6),
            hot_rounds: 41,
            hot_budget: Duration::from_secs(3),
        },
        Mode::Full => Plan {
            shapes: SHAPES
                .iter()
                .map(|&(n, o, i)| (n.to_string(), o, i))
                .collect(),
            counts: COUNTS.to_vec(),
            dram_bytes: 512 << 20,
            batches: vec![1, 8, 64],
            dram_rounds: 21,
            dram_budget: Duration::from_secs(30),
            hot_rounds: 201,
            hot_budget: Duration::from_secs(10),
        },
    }
}

/// A random ternary matrix, about one third zeros (shared with the utilization and verifycost experiments).
pub fn random_ternary(rows: usize, cols: usize, seed: u64) -> Ternary {
    let mut r = Rng::new(seed);
    // About one third zeros, as absmean ternarization of a Gaussian master gives.
    Ternary::from_fn(rows, cols, |_, _| (r.next_u64() % 3) as i8 - 1)
}

/// Random int8 activations in [-127, 127], `batch` rows of `cols`.
pub fn random_acts(batch: usize, cols: usize, seed: u64) -> ActBuf {
    let mut r = Rng::new(seed);
    let v: Vec<i8> = (0..batch * cols)
        .map(|_| ((r.next_u64() % 255) as i32 - 127) as i8)
        .collect();
    ActBuf::from_rows(&v, batch, cols)
}

/// The checkpoint bytes of `small` stacked `k` times along the rows (so the product's
/// expected output is the small oracle's output repeated `k` times).
pub fn tiled_packed(small: &Ternary, k: usize) -> Vec<u8> {
    let (out, cols) = (small.rows(), small.cols());
    let rows = out * k;
    let r4 = rows / 4;
    let mut packed = vec![0u8; r4 * cols];
    packed
        .par_chunks_mut(cols)
        .enumerate()
        .for_each(|(r, dst)| {
            for j in 0..4 {
                let src = small.row((j * r4 + r) % out);
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d |= ((v + 1) as u8) << (2 * j);
                }
            }
        });
    packed
}

/// Random valid checkpoint bytes (every 2-bit code in {0, 1, 2}).
fn random_packed(n: usize, seed: u64) -> Vec<u8> {
    let valid: Vec<u8> = (0..=255u8).filter(|b| (b & (b >> 1)) & 0x55 == 0).collect();
    let mut v = vec![0u8; n];
    v.par_chunks_mut(1 << 16).enumerate().for_each(|(i, c)| {
        let mut r = Rng::new(Rng::seed_from(&[seed, i as u64]));
        for b in c {
            *b = valid[(r.next_u64() % valid.len() as u64) as usize];
        }
    });
    v
}

/// Run the experiment with command-line style arguments (`--tiny`, `--full`, `--out DIR`).
pub fn run(args: &[String]) -> Result<()> {
    let a = harness::Args::parse_for("layouts", module_doc(), USES, args)?;
    let mode = a.mode();
    let root = a.results_root();
    let seed = 7;
    let meta = RunMeta::capture("layouts", mode, seed);
    let mut csv = Csv::create(&root, &meta)?;
    let mut checks = Checks::default();
    let p = plan(mode);
    let layouts = LayoutKind::all();
    let kernels = Kernel::available();
    let t_start = Instant::now();
    harness::say!(
        "layouts ({} mode): {} layouts × kernels [{}] × threads {:?} × {} shapes",
        mode.name(),
        layouts.len(),
        kernels
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", "),
        thread_counts(mode),
        p.shapes.len()
    );

    let nt = thread_counts(mode).len();
    let progress = harness::Progress::new("layouts", nt * (2 + p.shapes.len()));

    // --- machine probes
    let mut read_bw = std::collections::HashMap::new();
    for &th in &thread_counts(mode) {
        progress.step(format!("bandwidth probe, {th} thread(s)"));
        let bytes = p.dram_bytes.max(64 << 20);
        let (rb, cb) = pool(th).install(|| {
            (
                probe::read_bandwidth(bytes),
                probe::copy_bandwidth(bytes / 2),
            )
        });
        read_bw.insert(th, rb);
        csv.write(Row::value("read_bandwidth", rb / 1e9, "GB/s").with(|r| r.threads = th))?;
        csv.write(Row::value("copy_bandwidth", cb / 1e9, "GB/s").with(|r| r.threads = th))?;
        harness::say!(
            "  {th} thread(s): read {:.1} GB/s, memcpy {:.1} GB/s",
            rb / 1e9,
            cb / 1e9
        );
    }

    // --- bytes per weight over the model's projections
    let weights: usize = p
        .shapes
        .iter()
        .zip(&p.counts)
        .map(|((_, o, i), c)| o * i * c)
        .sum();
    for &l in &layouts {
        let bytes: usize = p
            .shapes
            .iter()
            .zip(&p.counts)
            .map(|((_, o, i), c)| l.storage_bytes(*o, *i) * c)
            .sum();
        csv.write(
            Row::value("bytes_per_weight", bytes as f64 / weights as f64, "bytes").with(|r| {
                r.layout = l.name().into();
                r.shape = "model".into();
            }),
        )?;
    }

    // --- whole-model conversion from the checkpoint bytes
    let mats: Vec<(usize, usize, Vec<u8>)> = p
        .shapes
        .iter()
        .zip(&p.counts)
        .enumerate()
        .flat_map(|(si, ((_, o, i), &c))| (0..c).map(move |k| (si, k, *o, *i)))
        .map(|(si, k, o, i)| {
            (
                o,
                i,
                random_packed(o / 4 * i, Rng::seed_from(&[seed, si as u64, k as u64])),
            )
        })
        .collect();
    let packed_bytes: usize = mats.iter().map(|m| m.2.len()).sum();
    harness::say!(
        "  conversion of {} matrices, {:.0} MB of checkpoint bytes",
        mats.len(),
        packed_bytes as f64 / 1e6
    );
    for &th in &thread_counts(mode) {
        progress.step(format!("model conversion, {th} thread(s)"));
        let pl = pool(th);
        let mut dst: Vec<Vec<u8>> = mats.iter().map(|m| vec![0u8; m.2.len()]).collect();
        let memcpy = pl.install(|| {
            time(1, 3, 10, Duration::from_secs(1), || {
                dst.par_iter_mut()
                    .zip(&mats)
                    .for_each(|(d, m)| d.copy_from_slice(&m.2));
            })
        });
        drop(dst);
        csv.write(
            Row::timed("convert_model_s", &memcpy, "s", |s| s).with(|r| {
                r.layout = "memcpy".into();
                r.shape = "2b4t".into();
                r.threads = th;
            }),
        )?;
        // A copy into fresh memory (page faults included), as every conversion allocates.
        let memcpy_alloc = pl.install(|| {
            time(0, 3, 10, Duration::from_secs(1), || {
                let v: Vec<Vec<u8>> = mats.par_iter().map(|m| m.2.to_vec()).collect();
                std::hint::black_box(&v);
            })
        });
        csv.write(
            Row::timed("convert_model_s", &memcpy_alloc, "s", |s| s).with(|r| {
                r.layout = "memcpy+alloc".into();
                r.shape = "2b4t".into();
                r.threads = th;
            }),
        )?;
        for &l in &layouts {
            let k = l.best_kernel();
            let t = pl.install(|| {
                time(0, 2, 5, Duration::from_secs(2), || {
                    let v: Vec<Box<dyn TernaryLayout>> = mats
                        .par_iter()
                        .map(|(o, i, b)| l.from_hf_packed(k, b, *o, *i).expect("valid bytes"))
                        .collect();
                    std::hint::black_box(&v);
                })
            });
            csv.write(Row::timed("convert_model_s", &t, "s", |s| s).with(|r| {
                r.layout = l.name().into();
                r.kernel = k.name().into();
                r.shape = "2b4t".into();
                r.threads = th;
            }))?;
            csv.write(
                Row::value("convert_vs_memcpy", t.median / memcpy.median, "ratio").with(|r| {
                    r.layout = l.name().into();
                    r.kernel = k.name().into();
                    r.shape = "2b4t".into();
                    r.threads = th;
                }),
            )?;
            csv.write(
                Row::value(
                    "convert_vs_memcpy_alloc",
                    t.median / memcpy_alloc.median,
                    "ratio",
                )
                .with(|r| {
                    r.layout = l.name().into();
                    r.kernel = k.name().into();
                    r.shape = "2b4t".into();
                    r.threads = th;
                }),
            )?;
            harness::say!(
                "    {th}t {:<13} {:>7.3} s  ({:.2}× memcpy {:.3} s, {:.2}× alloc+memcpy {:.3} s)",
                l.name(),
                t.median,
                t.median / memcpy.median,
                memcpy.median,
                t.median / memcpy_alloc.median,
                memcpy_alloc.median
            );
        }
    }
    drop(mats);

    // --- kernels: every (layout, kernel) pair of a shape is timed interleaved, round by round,
    // so the ratios between layouts are measured under the same machine conditions.
    for (si, (sname, out, cols)) in p.shapes.iter().enumerate() {
        let shape = format!("{out}x{cols}");
        let small = random_ternary(*out, *cols, Rng::seed_from(&[seed, 100 + si as u64]));
        let small_packed = small.to_hf_packed();
        // Tall matrix for DRAM streaming: the shape stacked k times.
        let k_tile = (p.dram_bytes / (out * cols / 4)).max(1);
        let big_packed = tiled_packed(&small, k_tile);
        let xs: Vec<ActBuf> = p
            .batches
            .iter()
            .map(|&b| random_acts(b, *cols, seed + b as u64))
            .collect();
        let want: Vec<Vec<i32>> = xs.iter().map(|x| small.gemm_oracle(&x.view())).collect();
        harness::say!(
            "  shape {sname} {shape} (DRAM: ×{k_tile} rows, {:.0} MB packed)",
            big_packed.len() as f64 / 1e6
        );
        let hot: Vec<Box<dyn TernaryLayout>> = layouts
            .iter()
            .map(|l| l.from_hf_packed(Kernel::scalar(), &small_packed, *out, *cols))
            .collect::<Result<_, _>>()?;
        for (l, h) in layouts.iter().zip(&hot) {
            checks.check(h.to_dense() == small, || {
                format!("{} conversion of {shape}", l.name())
            });
        }
        let big: Vec<Box<dyn TernaryLayout>> = layouts
            .iter()
            .map(|l| l.from_hf_packed(l.best_kernel(), &big_packed, out * k_tile, *cols))
            .collect::<Result<_, _>>()?;
        drop(big_packed);
        // (layout index, kernel) pairs this CPU can run.
        let pairs: Vec<(usize, Kernel)> = layouts
            .iter()
            .enumerate()
            .flat_map(|(li, l)| {
                kernels
                    .iter()
                    .filter(|k| l.kernels().contains(&k.kind()))
                    .map(move |&k| (li, k))
            })
            .collect();
        for &th in &thread_counts(mode) {
            progress.step(format!("shape {sname} {shape}, {th} thread(s)"));
            let pl = pool(th);
            // DRAM-streamed GEMV (batch 1). Scalar kernels are slow: full mode only.
            let sel: Vec<(usize, Kernel)> = pairs
                .iter()
                .copied()
                .filter(|(_, k)| k.kind() != KernelKind::Scalar || mode != Mode::Quick)
                .collect();
            let x = &xs[0];
            let mut ys: Vec<Vec<i32>> = sel.iter().map(|_| vec![0i32; out * k_tile]).collect();
            let times = pl.install(|| {
                let mut fs: Vec<Box<dyn FnMut() + '_>> = sel
                    .iter()
                    .zip(ys.iter_mut())
                    .map(|(&(li, k), y)| {
                        let w = big[li].as_ref();
                        Box::new(move || parallel::gemm(w, k, &x.view(), y)) as Box<dyn FnMut()>
                    })
                    .collect();
                let mut refs: Vec<&mut dyn FnMut()> = fs
                    .iter_mut()
                    .map(|f| f.as_mut() as &mut dyn FnMut())
                    .collect();
                harness::time_interleaved(&mut refs, 1, p.dram_rounds, p.dram_budget)
            });
            for ((&(li, k), t), y) in sel.iter().zip(&times).zip(&ys) {
                let l = layouts[li];
                let ok = y.chunks_exact(*out).all(|c| c == want[0].as_slice());
                checks.check(ok, || {
                    format!("{} × {} × {th}t DRAM GEMV {shape}", l.name(), k.name())
                });
                let bytes = big[li].storage_bytes() as f64;
                let label = |r: &mut Row| {
                    r.layout = l.name().into();
                    r.kernel = k.name().into();
                    r.shape = shape.clone();
                    r.threads = th;
                    r.variant = "dram".into();
                    r.batch = 1;
                };
                csv.write(
                    Row::timed("gemv_weight_gbs", t, "GB/s", |s| bytes / s / 1e9).with(label),
                )?;
                csv.write(
                    Row::timed("gemv_gweights_s", t, "Gweights/s", |s| {
                        (out * k_tile * cols) as f64 / s / 1e9
                    })
                    .with(label),
                )?;
                csv.write(
                    Row::value(
                        "roofline_fraction",
                        bytes / t.median / read_bw[&th],
                        "fraction",
                    )
                    .with(label),
                )?;
            }
            // Hot GEMV / GEMM, interleaved per batch size.
            for (bi, &b) in p.batches.iter().enumerate() {
                let sel: Vec<(usize, Kernel)> = pairs
                    .iter()
                    .copied()
                    .filter(|(_, k)| {
                        !(k.kind() == KernelKind::Scalar && b > 1 && mode == Mode::Quick)
                    })
                    .collect();
                let x = &xs[bi];
                let mut ys: Vec<Vec<i32>> = sel.iter().map(|_| vec![0i32; out * b]).collect();
                let times = pl.install(|| {
                    let mut fs: Vec<Box<dyn FnMut() + '_>> = sel
                        .iter()
                        .zip(ys.iter_mut())
                        .map(|(&(li, k), y)| {
                            let w = hot[li].as_ref();
                            Box::new(move || parallel::gemm(w, k, &x.view(), y)) as Box<dyn FnMut()>
                        })
                        .collect();
                    let mut refs: Vec<&mut dyn FnMut()> = fs
                        .iter_mut()
                        .map(|f| f.as_mut() as &mut dyn FnMut())
                        .collect();
                    harness::time_interleaved(&mut refs, 2, p.hot_rounds, p.hot_budget)
                });
                for ((&(li, k), t), y) in sel.iter().zip(&times).zip(&ys) {
                    let l = layouts[li];
                    checks.check(*y == want[bi], || {
                        format!("{} × {} × {th}t hot batch {b} {shape}", l.name(), k.name())
                    });
                    let macs = (out * cols * b) as f64;
                    let label = |r: &mut Row| {
                        r.layout = l.name().into();
                        r.kernel = k.name().into();
                        r.shape = shape.clone();
                        r.threads = th;
                        r.variant = "hot".into();
                        r.batch = b;
                    };
                    csv.write(
                        Row::timed("gemm_gmacs", t, "GMAC/s", |s| macs / s / 1e9).with(label),
                    )?;
                    if b == 1 {
                        let bytes = hot[li].storage_bytes() as f64;
                        csv.write(
                            Row::timed("gemv_weight_gbs", t, "GB/s", |s| bytes / s / 1e9)
                                .with(label),
                        )?;
                    }
                }
            }
            harness::say!("    {th} thread(s): {} pairs timed", pairs.len());
        }
    }
    harness::say!(
        "layouts: {} rows in {} ({:.0} s)",
        csv.rows(),
        csv.path.display(),
        t_start.elapsed().as_secs_f64()
    );
    checks.finish("layouts")
}

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = &[];

/// What `layouts --help` says.
pub fn module_doc() -> &'static str {
    "Measures bytes/weight, whole-model conversion time (vs memcpy), DRAM-streamed GEMV and \
     hot GEMV/GEMM throughput for every layout × kernel × thread count at the 2B-4T projection \
     shapes; writes reports/results/layouts/<machine>.csv and exits non-zero if any output differs \
     from the oracle."
}
