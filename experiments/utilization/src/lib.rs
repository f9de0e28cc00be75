//! Experiment `utilization`: the seed's claim "Ternary: 95 % hardware utilization, FP32: 35 % —
//! 10× better throughput", measured.
//!
//! The same matrix — random ternary weights, one third zeros — at the four 2B-4T projection
//! shapes, as every product this project can compute:
//! - **ternary**: each layout (quick: `rotor-pn`, `hf_packed`, `i2`, `tq1`; full: all) with the
//!   best kernel the engine picks for it (`LayoutKind::best_kernel`), int8 activations;
//! - **int8 dense**: the engine's `dense` layout (8-bit weights), same kernels' family;
//! - **FP32**: `matrixmultiply::sgemm` (a BLAS-class GEMM with AVX/FMA/AVX-512 microkernels;
//!   two threads = the rows split in two), and at batch 1 also a SIMD GEMV (the engine's
//!   explicit-SIMD f32 dot per row);
//! - **BF16**: the engine's bf16 head kernel (bf16 weights widened to f32 in registers).
//!
//! Batch 1 (decode) streams the weights from DRAM: the shape is stacked until each format's
//! matrix exceeds the working-set size (quick: 512 MiB, beyond the 300 MiB L3 this host
//! reports), so one call is many products of the shape. Batch 64 and 128 (prefill) use one
//! matrix of the shape. All formats compute exactly the same integers (ternary × int8 values,
//! sums < 2^24, exact even in f32 and bf16); every output is compared with the oracle.
//!
//! Utilization two ways, both against quantities measured in the same run:
//! - **bandwidth**: bytes of weights read per second ÷ the read bandwidth of the harness probe
//!   (`rotor::sys::read_bandwidth`) at the same thread count — the bound at batch 1;
//! - **compute**: MACs per second ÷ the peak MAC rate of the ISA for that number format,
//!   measured by [`peak`] (the best of the instructions this CPU has for the class: f32 FMA for
//!   FP32 and BF16 — the engine's bf16 kernel multiplies in f32 —, int8 dot products for ternary
//!   and int8) — the bound at large batches.
//!
//! The throughput ratio is the best ternary layout's MAC rate ÷ the best FP32 product's (and ÷
//! BF16, ÷ int8 dense) per shape, batch and thread count, interleaved in the same rounds.

pub mod peak;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use harness::{Checks, Csv, Mode, Row, RunMeta, pool, probe, thread_counts};
use layouts::{random_acts, random_ternary, tiled_packed};
use rayon::prelude::*;
use rotor::kernels::{Kernel, float};
use rotor::ternary::parallel;
use rotor::ternary::{ActBuf, LayoutKind, Ternary, TernaryLayout};

/// The experiment-specific flags this binary takes (besides the mode and `--out`).
pub const USES: &[harness::Flag] = &[];

/// What `utilization --help` says.
pub const ABOUT: &str = "The seed's utilization claim: ternary kernels (best kernel per layout) \
vs FP32 (matrixmultiply GEMM, SIMD GEMV), BF16 and int8 dense products at the 2B-4T shapes, \
batch 1/64/128, 1..N threads; utilization as a fraction of the read bandwidth and of the peak \
MAC rate measured in the same run; ternary ÷ FP32 throughput. Writes \
reports/results/utilization/<machine>.csv.";

struct Plan {
    shapes: Vec<(&'static str, usize, usize)>,
    batches: Vec<usize>,
    /// Bytes each format's batch-1 matrix must exceed.
    dram_bytes: usize,
    rounds: usize,
    budget: Duration,
    layouts: Vec<LayoutKind>,
    peak_iters: u64,
}

fn plan(mode: Mode) -> Plan {
    let shapes = vec![
        ("q_o", 2560, 2560),
        ("k_v", 640, 2560),
        ("gate_up", 6912, 2560),
        ("down", 2560, 6912),
    ];
    let ternary = |all: bool| -> Vec<LayoutKind> {
        if all {
            LayoutKind::all()
                .into_iter()
                .filter(|l| *l != LayoutKind::Dense)
                .collect()
        } else {
            LayoutKind::main()
        }
    };
    match mode {
        Mode::Tiny => Plan {
            shapes: vec![("q_o", 128, 256), ("down", 256, 384)],
            batches: vec![1, 64],
            dram_bytes: 1 << 20,
            rounds: 3,
            budget: Duration::from_millis(200),
            layouts: ternary(false),
            peak_iters: 10_000,
        },
        Mode::Quick => Plan {
            shapes,
            batches: vec![1, 64, 128],
            dram_bytes: 512 << 20,
            rounds: 7,
            budget: Duration::from_secs(3),
            layouts: ternary(false),
            peak_iters: 2_000_000,
        },
        Mode::Full => Plan {
            shapes,
            batches: vec![1, 8, 64, 128],
            dram_bytes: 1 << 30,
            rounds: 15,
            budget: Duration::from_secs(10),
            layouts: ternary(true),
            peak_iters: 10_000_000,
        },
    }
}

/// One way of computing the product, over a matrix `k` times the shape's rows.
struct Product {
    /// `layout` column: the layout, or `int8-dense`, `f32-gemm`, `f32-gemv`, `bf16`.
    name: String,
    /// `variant` column: "ternary", "int8", "f32", "bf16".
    class: &'static str,
    kernel: String,
    /// Copies of the shape stacked along the rows.
    k: usize,
    /// Weight bytes of one product of the shape.
    bytes: usize,
    w: Weights,
}

enum Weights {
    Ternary(Box<dyn TernaryLayout>, Kernel),
    F32Gemm(Vec<f32>),
    F32Gemv(Vec<f32>, Kernel),
    Bf16(Vec<u16>, Kernel),
}

/// Inputs of one batch: int8 for integer products, the same values as f32 for float ones.
struct Input {
    q: ActBuf,
    f: Vec<f32>,
    batch: usize,
    cols: usize,
}

impl Product {
    /// Compute the `k·rows × batch` product into `y` (`[row][batch]`, as f64 for comparison).
    fn run(
        &self,
        x: &Input,
        rows: usize,
        yi: &mut Vec<i32>,
        yf: &mut Vec<f32>,
        tmp: &mut Vec<f32>,
    ) {
        let (n, b, c) = (rows * self.k, x.batch, x.cols);
        match &self.w {
            Weights::Ternary(l, kern) => {
                yi.resize(n * b, 0);
                parallel::gemm(l.as_ref(), *kern, &x.q.view(), yi);
            }
            Weights::F32Gemm(w) => {
                yf.resize(n * b, 0.0);
                let parts = rayon::current_num_threads().max(1);
                let per = n.div_ceil(parts);
                yf.par_chunks_mut(per * b)
                    .zip(w.par_chunks(per * c))
                    .for_each(|(ys, ws)| {
                        let m = ws.len() / c;
                        // SAFETY: ws is m×c row-major, x.f is b×c row-major (read as c×b with
                        // strides 1, c), ys is m×b row-major; all in bounds.
                        unsafe {
                            matrixmultiply::sgemm(
                                m,
                                c,
                                b,
                                1.0,
                                ws.as_ptr(),
                                c as isize,
                                1,
                                x.f.as_ptr(),
                                1,
                                c as isize,
                                0.0,
                                ys.as_mut_ptr(),
                                b as isize,
                                1,
                            );
                        }
                    });
            }
            Weights::F32Gemv(w, kern) => {
                assert_eq!(b, 1);
                yf.resize(n, 0.0);
                yf.par_chunks_mut(256)
                    .zip(w.par_chunks(256 * c))
                    .for_each(|(ys, ws)| {
                        for (y, wr) in ys.iter_mut().zip(ws.chunks_exact(c)) {
                            *y = float::dot_f32(*kern, wr, &x.f);
                        }
                    });
            }
            Weights::Bf16(w, kern) => {
                // head_gemm writes [batch][row]; the comparison transposes.
                yf.resize(n * b, 0.0);
                float::head_gemm(*kern, w, n, c, &x.f, b, yf, tmp);
            }
        }
    }

    /// Whether the last output equals the oracle `want` (`[row][batch]` of one shape copy),
    /// for every copy.
    fn matches(&self, want: &[i32], rows: usize, batch: usize, yi: &[i32], yf: &[f32]) -> bool {
        let n = rows * self.k;
        let got = |r: usize, b: usize| -> f64 {
            match &self.w {
                Weights::Ternary(..) => yi[r * batch + b] as f64,
                Weights::Bf16(..) => yf[b * n + r] as f64,
                _ => yf[r * batch + b] as f64,
            }
        };
        (0..n).all(|r| (0..batch).all(|b| got(r, b) == want[(r % rows) * batch + b] as f64))
    }
}

fn bf16_of(v: f32) -> u16 {
    // Exact for the values used here (−1, 0, 1).
    (v.to_bits() >> 16) as u16
}

/// Build every product of `small` for `batch` (batch 1: stacked past `dram_bytes`).
fn products(p: &Plan, small: &Ternary, batch: usize) -> Result<Vec<Product>> {
    let (rows, cols) = (small.rows(), small.cols());
    let copies = |bytes_per_copy: usize| -> usize {
        if batch == 1 {
            p.dram_bytes.div_ceil(bytes_per_copy).max(1)
        } else {
            1
        }
    };
    let mut v = vec![];
    let packed = small.to_hf_packed();
    for &l in p.layouts.iter().chain([&LayoutKind::Dense]) {
        let bytes = l.storage_bytes(rows, cols);
        let k = copies(bytes);
        let kern = l.best_kernel();
        let tall = if k == 1 {
            packed.clone()
        } else {
            tiled_packed(small, k)
        };
        let m = l.from_hf_packed(kern, &tall, rows * k, cols)?;
        v.push(Product {
            name: if l == LayoutKind::Dense {
                "int8-dense".into()
            } else {
                l.name().into()
            },
            class: if l == LayoutKind::Dense {
                "int8"
            } else {
                "ternary"
            },
            kernel: kern.name().into(),
            k,
            bytes,
            w: Weights::Ternary(m, kern),
        });
    }
    let f: Vec<f32> = small.data().iter().map(|&t| t as f32).collect();
    let tile = |k: usize| -> Vec<f32> {
        let mut w = Vec::with_capacity(f.len() * k);
        for _ in 0..k {
            w.extend_from_slice(&f);
        }
        w
    };
    let best = Kernel::best();
    let k = copies(rows * cols * 4);
    v.push(Product {
        name: "f32-gemm".into(),
        class: "f32",
        kernel: "matrixmultiply".into(),
        k,
        bytes: rows * cols * 4,
        w: Weights::F32Gemm(tile(k)),
    });
    if batch == 1 {
        v.push(Product {
            name: "f32-gemv".into(),
            class: "f32",
            kernel: best.name().into(),
            k,
            bytes: rows * cols * 4,
            w: Weights::F32Gemv(tile(k), best),
        });
    }
    let k = copies(rows * cols * 2);
    let h: Vec<u16> = tile(k).iter().map(|&x| bf16_of(x)).collect();
    v.push(Product {
        name: "bf16".into(),
        class: "bf16",
        kernel: best.name().into(),
        k,
        bytes: rows * cols * 2,
        w: Weights::Bf16(h, best),
    });
    Ok(v)
}

pub fn run(args: &[String]) -> Result<()> {
    let a = harness::Args::parse_for("utilization", ABOUT, USES, args)?;
    let mode = a.mode();
    let root = a.results_root();
    let seed = 5;
    let meta = RunMeta::capture("utilization", mode, seed);
    let mut csv = Csv::create(&root, &meta)?;
    let mut checks = Checks::default();
    let p = plan(mode);
    let threads = thread_counts(mode);
    let t0 = Instant::now();
    harness::say!(
        "utilization ({} mode): {} shapes × batches {:?} × threads {:?}; ternary layouts {:?}",
        mode.name(),
        p.shapes.len(),
        p.batches,
        threads,
        p.layouts.iter().map(|l| l.name()).collect::<Vec<_>>()
    );
    let progress = harness::Progress::new(
        "utilization",
        threads.len() + p.shapes.len() * p.batches.len(),
    );

    // --- the machine: read bandwidth and peak MAC rates, per thread count.
    let mut read_bw = HashMap::new();
    let mut peaks: HashMap<(usize, &'static str), (f64, &'static str)> = HashMap::new();
    for &th in &threads {
        progress.step(format!("bandwidth and peak MAC rates, {th} thread(s)"));
        let pl = pool(th);
        let rb = pl.install(|| probe::read_bandwidth(p.dram_bytes));
        read_bw.insert(th, rb);
        csv.write(Row::value("read_bandwidth", rb / 1e9, "GB/s").with(|r| r.threads = th))?;
        for ins in peak::available() {
            let macs = pl.install(|| peak::peak_macs(ins, p.peak_iters, 3));
            csv.write(Row::value("peak_gmac_s", macs / 1e9, "GMAC/s").with(|r| {
                r.threads = th;
                r.layout = ins.name.into();
                r.variant = ins.class.into();
                r.kernel = format!("{} MAC/instr", ins.macs);
            }))?;
            let e = peaks.entry((th, ins.class)).or_insert((0.0, ""));
            if macs > e.0 {
                *e = (macs, ins.name);
            }
            harness::say!("  {th} thread(s): {} {:.1} GMAC/s", ins.name, macs / 1e9);
        }
        harness::say!("  {th} thread(s): read {:.1} GB/s", rb / 1e9);
    }
    // Peak for a product class: FP32 and BF16 multiply in f32.
    let peak_of = |th: usize, class: &str| -> Option<(f64, &'static str)> {
        let c = match class {
            "ternary" | "int8" => "int8",
            _ => "f32",
        };
        peaks.get(&(th, c)).copied()
    };

    // --- the products.
    for (si, &(sname, rows, cols)) in p.shapes.iter().enumerate() {
        let shape = format!("{rows}x{cols}");
        let small = random_ternary(rows, cols, seed * 100 + si as u64);
        for &batch in &p.batches {
            progress.step(format!("shape {sname} {shape}, batch {batch}"));
            let q = random_acts(batch, cols, seed + si as u64 * 7 + batch as u64);
            let want = small.gemm_oracle(&q.view());
            let view = q.view();
            let f: Vec<f32> = (0..batch)
                .flat_map(|b| {
                    view.row(b)[..cols]
                        .iter()
                        .map(|&v| v as f32)
                        .collect::<Vec<_>>()
                })
                .collect();
            let x = Input { q, f, batch, cols };
            let prods = products(&p, &small, batch)?;
            let regime = if batch == 1 { "dram" } else { "hot" };
            for &th in &threads {
                let pl = pool(th);
                let n = prods.len();
                let mut yi: Vec<Vec<i32>> = vec![vec![]; n];
                let mut yf: Vec<Vec<f32>> = vec![vec![]; n];
                let mut tmp: Vec<Vec<f32>> = vec![vec![]; n];
                let xr = &x;
                let times = pl.install(|| {
                    let mut fs: Vec<Box<dyn FnMut() + '_>> = prods
                        .iter()
                        .zip(yi.iter_mut().zip(yf.iter_mut().zip(tmp.iter_mut())))
                        .map(|(pr, (a, (b, c)))| {
                            Box::new(move || pr.run(xr, rows, a, b, c)) as Box<dyn FnMut()>
                        })
                        .collect();
                    let mut refs: Vec<&mut dyn FnMut()> = fs
                        .iter_mut()
                        .map(|f| f.as_mut() as &mut dyn FnMut())
                        .collect();
                    harness::time_interleaved(&mut refs, 1, p.rounds, p.budget)
                });
                let mut best: HashMap<&str, f64> = HashMap::new();
                for (i, (pr, t)) in prods.iter().zip(&times).enumerate() {
                    checks.check(pr.matches(&want, rows, batch, &yi[i], &yf[i]), || {
                        format!(
                            "{} {shape} batch {batch} {th}t differs from the oracle",
                            pr.name
                        )
                    });
                    let macs = (rows * cols * batch * pr.k) as f64;
                    let bytes = (pr.bytes * pr.k) as f64;
                    let label = |r: &mut Row| {
                        r.variant = pr.class.into();
                        r.layout = pr.name.clone();
                        r.kernel = pr.kernel.clone();
                        r.shape = shape.clone();
                        r.threads = th;
                        r.batch = batch;
                    };
                    let per = pr.k as f64;
                    csv.write(Row::timed("product_us", t, "µs", |s| s / per * 1e6).with(label))?;
                    csv.write(Row::timed("gmac_s", t, "GMAC/s", |s| macs / s / 1e9).with(label))?;
                    csv.write(
                        Row::timed("weight_gbs", t, "GB/s", |s| bytes / s / 1e9).with(label),
                    )?;
                    csv.write(
                        Row::timed("bandwidth_fraction", t, "fraction", |s| {
                            bytes / s / read_bw[&th]
                        })
                        .with(label)
                        .with(|r| r.variant = format!("{}/{regime}", pr.class)),
                    )?;
                    if let Some((pk, ins)) = peak_of(th, pr.class) {
                        csv.write(
                            Row::timed("peak_fraction", t, "fraction", |s| macs / s / pk)
                                .with(label)
                                .with(|r| r.kernel = format!("{} vs {ins}", pr.kernel)),
                        )?;
                    }
                    let rate = macs / t.median;
                    let e = best.entry(pr.class).or_insert(0.0);
                    *e = e.max(rate);
                }
                let tern = best.get("ternary").copied().unwrap_or(f64::NAN);
                for other in ["f32", "bf16", "int8"] {
                    if let Some(&o) = best.get(other) {
                        csv.write(Row::value("ternary_over", tern / o, "ratio").with(|r| {
                            r.variant = other.into();
                            r.shape = shape.clone();
                            r.threads = th;
                            r.batch = batch;
                        }))?;
                    }
                }
                harness::say!(
                    "  {sname} {shape} b{batch} {th}t: best ternary {:.1} GMAC/s, f32 {:.1}, bf16 {:.1}, int8 {:.1} → ternary ÷ f32 {:.2}",
                    tern / 1e9,
                    best.get("f32").copied().unwrap_or(f64::NAN) / 1e9,
                    best.get("bf16").copied().unwrap_or(f64::NAN) / 1e9,
                    best.get("int8").copied().unwrap_or(f64::NAN) / 1e9,
                    tern / best.get("f32").copied().unwrap_or(f64::NAN)
                );
            }
        }
    }
    drop(progress);
    harness::say!(
        "utilization: {} rows in {} ({:.0} s)",
        csv.rows(),
        csv.path.display(),
        t0.elapsed().as_secs_f64()
    );
    checks.finish("utilization")
}
