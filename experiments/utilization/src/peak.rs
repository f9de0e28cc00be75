//! Peak MAC rates of this CPU, measured: a loop of one SIMD multiply-accumulate instruction on
//! twelve independent registers (no dependency between consecutive instructions, operands in
//! registers, all zeros so no denormal assists), timed on every thread of a pool at once.
//! Written in inline assembly so the compiler can neither hoist nor fold the work.
//!
//! MACs per instruction: `vfmadd231ps` 16 (zmm) / 8 (ymm) f32 lanes; `vpdpbusd` 64 (zmm) /
//! 32 (ymm, AVX-VNNI) u8×i8 products; `vpmaddubsw` 64 (zmm) / 32 (ymm) u8×i8 products (summed
//! pairwise to i16); `vdpbf16ps` 32 bf16 products (zmm).

use std::time::Instant;

/// One measurable instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instr {
    pub name: &'static str,
    /// Which products it serves: "f32", "int8" or "bf16".
    pub class: &'static str,
    pub macs: u64,
}

pub const FMA512: Instr = Instr {
    name: "vfmadd231ps-zmm",
    class: "f32",
    macs: 16,
};
pub const FMA256: Instr = Instr {
    name: "vfmadd231ps-ymm",
    class: "f32",
    macs: 8,
};
pub const DPBUSD512: Instr = Instr {
    name: "vpdpbusd-zmm",
    class: "int8",
    macs: 64,
};
pub const DPBUSD256: Instr = Instr {
    name: "vpdpbusd-ymm",
    class: "int8",
    macs: 32,
};
pub const MADDUBS512: Instr = Instr {
    name: "vpmaddubsw-zmm",
    class: "int8",
    macs: 64,
};
pub const MADDUBS256: Instr = Instr {
    name: "vpmaddubsw-ymm",
    class: "int8",
    macs: 32,
};
pub const DPBF16: Instr = Instr {
    name: "vdpbf16ps-zmm",
    class: "bf16",
    macs: 32,
};

/// The instructions this CPU has.
pub fn available() -> Vec<Instr> {
    let mut v = vec![];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.extend([FMA256, MADDUBS256]);
        }
        if is_x86_feature_detected!("avxvnni") {
            v.push(DPBUSD256);
        }
        if is_x86_feature_detected!("avx512f") {
            v.push(FMA512);
        }
        if is_x86_feature_detected!("avx512bw") {
            v.push(MADDUBS512);
        }
        if is_x86_feature_detected!("avx512vnni") {
            v.push(DPBUSD512);
        }
        if is_x86_feature_detected!("avx512bf16") {
            v.push(DPBF16);
        }
    }
    v
}

/// Twelve independent instructions per iteration, `iters` iterations.
#[cfg(target_arch = "x86_64")]
macro_rules! loop12 {
    ($iters:expr, $zero:literal, $op:literal, $r:literal) => {{
        let mut n: u64 = $iters;
        // SAFETY: the caller checked the CPU has the instruction; only the named vector
        // registers (declared clobbered) and the counter are written.
        unsafe {
            std::arch::asm!(
                concat!($zero, " ", $r, "0, ", $r, "0, ", $r, "0"),
                concat!($zero, " ", $r, "1, ", $r, "1, ", $r, "1"),
                concat!($zero, " ", $r, "2, ", $r, "2, ", $r, "2"),
                concat!($zero, " ", $r, "3, ", $r, "3, ", $r, "3"),
                concat!($zero, " ", $r, "4, ", $r, "4, ", $r, "4"),
                concat!($zero, " ", $r, "5, ", $r, "5, ", $r, "5"),
                concat!($zero, " ", $r, "6, ", $r, "6, ", $r, "6"),
                concat!($zero, " ", $r, "7, ", $r, "7, ", $r, "7"),
                concat!($zero, " ", $r, "8, ", $r, "8, ", $r, "8"),
                concat!($zero, " ", $r, "9, ", $r, "9, ", $r, "9"),
                concat!($zero, " ", $r, "10, ", $r, "10, ", $r, "10"),
                concat!($zero, " ", $r, "11, ", $r, "11, ", $r, "11"),
                concat!($zero, " ", $r, "14, ", $r, "14, ", $r, "14"),
                concat!($zero, " ", $r, "15, ", $r, "15, ", $r, "15"),
                "2:",
                concat!($op, " ", $r, "0, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "1, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "2, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "3, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "4, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "5, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "6, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "7, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "8, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "9, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "10, ", $r, "14, ", $r, "15"),
                concat!($op, " ", $r, "11, ", $r, "14, ", $r, "15"),
                "dec {n}",
                "jnz 2b",
                "vzeroupper",
                n = inout(reg) n,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm14") _, out("xmm15") _,
                options(nostack),
            );
        }
        std::hint::black_box(n);
    }};
}

/// Run `iters` iterations of twelve `instr` (must be [`available`]).
pub fn spin(instr: Instr, iters: u64) {
    #[cfg(target_arch = "x86_64")]
    match instr.name {
        "vfmadd231ps-zmm" => loop12!(iters, "vpxord", "vfmadd231ps", "zmm"),
        "vfmadd231ps-ymm" => loop12!(iters, "vpxor", "vfmadd231ps", "ymm"),
        "vpdpbusd-zmm" => loop12!(iters, "vpxord", "vpdpbusd", "zmm"),
        "vpdpbusd-ymm" => loop12!(iters, "vpxor", "{{vex}} vpdpbusd", "ymm"),
        "vpmaddubsw-zmm" => loop12!(iters, "vpxord", "vpmaddubsw", "zmm"),
        "vpmaddubsw-ymm" => loop12!(iters, "vpxor", "vpmaddubsw", "ymm"),
        "vdpbf16ps-zmm" => loop12!(iters, "vpxord", "vdpbf16ps", "zmm"),
        other => panic!("no loop for {other}"),
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (instr, iters);
}

/// MACs per second of `instr` on every thread of the current rayon pool at once: best of
/// `reps` runs of `iters` iterations per thread.
pub fn peak_macs(instr: Instr, iters: u64, reps: usize) -> f64 {
    let threads = rayon::current_num_threads() as u64;
    let mut best = f64::INFINITY;
    spin(instr, iters / 10 + 1); // warm-up (frequency licence, page-in)
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        rayon::broadcast(|_| spin(instr, iters));
        best = best.min(t.elapsed().as_secs_f64());
    }
    (threads * iters * 12 * instr.macs) as f64 / best
}
