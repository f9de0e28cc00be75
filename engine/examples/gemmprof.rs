//! Where the batched (prefill) path spends its time: one 6912 × 2560 product at batch 128 on
//! one thread, split into its two halves — decoding the weights into codes (per layout) and
//! the shared inner product (AMX tiles or VNNI) — each timed alone, next to the whole product.
//! Not a benchmark of record; used for docs/KERNELS.md's prefill section. x86_64 with
//! AVX-512 VBMI only.
//!
//! `cargo run --release -p rotor --example gemmprof -- [--rows R] [--cols C] [--batch B]`

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::time::Instant;

    use rotor::kernels::acts::act_stride;
    use rotor::kernels::gemm::{self, MR};
    use rotor::kernels::x86_64::vnni;
    use rotor::kernels::{Kernel, KernelKind};
    use rotor::ternary::hf_packed::HfPacked;
    use rotor::ternary::rotor_tl::RotorTl;
    use rotor::ternary::{ActBuf, Ternary, TernaryLayout};

    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str, d: usize| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].parse().expect("number"))
            .unwrap_or(d)
    };
    let (rows, cols, batch) = (
        arg("--rows", 6912),
        arg("--cols", 2560),
        arg("--batch", 128),
    );
    let Some(vnni_k) = Kernel::by_name("avx512vnni").ok() else {
        eprintln!("needs AVX-512 VNNI + VBMI");
        return;
    };
    let amx_k = Kernel::by_name("amx").ok();
    let mut seed = 1u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let t = Ternary::from_fn(rows, cols, |_, _| (next() % 3) as i8 - 1);
    let xs: Vec<i8> = (0..batch * cols).map(|_| (next() % 255) as i8).collect();
    let x = ActBuf::from_rows(&xs, batch, cols);
    let stride = act_stride(cols);
    let tl = RotorTl::from_dense(&t);
    let hp = HfPacked::from_dense(&t);
    let macs = (rows * cols * batch) as f64;
    let clock = rotor::sys::core_clock_hz();
    let reps = 15;
    let time = |f: &mut dyn FnMut()| {
        f();
        let mut v: Vec<f64> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                f();
                t0.elapsed().as_secs_f64()
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[reps / 2]
    };
    println!(
        "{rows}x{cols} batch {batch}, 1 thread, clock {:.2} GHz, codes block {} KiB",
        clock / 1e9,
        MR * stride / 1024
    );
    let report = |what: &str, s: f64, work: f64, unit: &str| {
        println!(
            "  {what:<44} {:>9.1} us  {:>8.1} {unit}  {:>6.3} cycles/weight",
            s * 1e6,
            work / s / 1e9,
            s * clock / (rows * cols) as f64
        );
    };
    let mut codes = vec![1u8; MR * stride];
    // Decoders alone, every block of MR rows into the same L1/L2-resident buffer.
    let d_tl = time(&mut || {
        for r0 in (0..rows).step_by(MR) {
            let n = (rows - r0).min(MR);
            // SAFETY: the kernel above proves AVX-512 F+BW+VBMI.
            unsafe { vnni::native::tl_decode(&tl.view(), r0..r0 + n, &mut codes, stride) };
        }
    });
    report(
        "decode rotor-tl → codes",
        d_tl,
        (rows * cols) as f64,
        "G w/s",
    );
    let d_hp = time(&mut || {
        let units = rows / 4;
        for g in 0..4 {
            for u0 in (0..units).step_by(MR) {
                let n = (units - u0).min(MR);
                // SAFETY: as above.
                unsafe {
                    vnni::native::packed_decode(&hp.view(), g, u0..u0 + n, &mut codes, stride)
                };
            }
        }
    });
    report(
        "decode hf_packed → codes",
        d_hp,
        (rows * cols) as f64,
        "G w/s",
    );
    let mut out = vec![0i32; rows * batch];
    let xv = x.view();
    let mut kernels = vec![vnni_k];
    kernels.extend(amx_k);
    for k in kernels {
        let name = match k.kind() {
            KernelKind::Amx => "amx",
            _ => "avx512vnni",
        };
        // Inner product alone: a decoder that writes nothing (the codes stay as they are), at
        // several tile-prefetch distances (AMX only; interleaved, so drift hits all alike).
        let noop = |_: std::ops::Range<usize>, _: &mut [u8]| {};
        let pfs: &[usize] = if k.kind() == KernelKind::Amx {
            &[0, 1, 2, 4]
        } else {
            &[0]
        };
        let mut ts: Vec<Vec<f64>> = vec![vec![]; pfs.len()];
        for _ in 0..reps {
            for (i, &pf) in pfs.iter().enumerate() {
                let t0 = Instant::now();
                gemm::gemm_codes_pf(k, &xv, rows, &noop, &mut out, pf);
                ts[i].push(t0.elapsed().as_secs_f64());
            }
        }
        for (i, &pf) in pfs.iter().enumerate() {
            ts[i].sort_by(f64::total_cmp);
            let what = format!("inner product only ({name}, tile prefetch {pf})");
            report(&what, ts[i][reps / 2], macs, "GMAC/s");
        }
        let whole_tl = time(&mut || {
            let mut o = [&mut out[..]];
            tl.gemm_block(k, &xv, 0..rows, &mut o)
        });
        report(
            &format!("rotor-tl whole ({name})"),
            whole_tl,
            macs,
            "GMAC/s",
        );
        let whole_hp = time(&mut || {
            // One packed byte row holds four output rows: four output groups.
            let mut o: Vec<&mut [i32]> = out.chunks_mut(rows / 4 * batch).collect();
            hp.gemm_block(k, &xv, 0..rows / 4, &mut o)
        });
        report(
            &format!("hf_packed whole ({name})"),
            whole_hp,
            macs,
            "GMAC/s",
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("gemmprof measures x86_64 kernels");
}
