//! Which kernel (and which rotor variant) runs: chosen from a measurement on this CPU, not
//! from the widest instruction set.
//!
//! The first time a choice is needed for a layout in a process, every kernel this CPU runs
//! natively for it is timed on the same single-token product (512 × 2560, the model's width;
//! about 0.3 MB of weights in the rotor layouts, so the kernels' instruction cost decides, not
//! the memory system, which every kernel saturates alike once its instructions keep up): best
//! of 9 runs on the calling thread, the candidates interleaved. The table is kept for the
//! process ([`calibration_of`]). From it:
//! - [`LayoutKind::best_kernel`](super::LayoutKind::best_kernel) — `--kernel auto`, the
//!   default — is the fastest kernel of a layout;
//! - [`LayoutKind::rotor`](super::LayoutKind::rotor) — `--layout rotor`, the default — is
//!   the fastest rotor variant (with its fastest kernel);
//! - batched products (prefill) use the widest family with a batched inner product
//!   ([`gemm_kernel`]): AMX tiles where present, else `vpdpbusd`, else the GEMV kernel itself.
//!
//! A faster candidate must beat the incumbent (listed first: the wider family, the simpler
//! variant) by 5 % to replace it, so that noise between near-equal kernels does not flip the
//! choice from run to run. A layout's calibration takes a few milliseconds (`rotor kernels`
//! measures them all).

use std::sync::OnceLock;
use std::time::Instant;

use super::{ActBuf, LayoutKind, Ternary};
use crate::kernels::{Kernel, KernelKind, gemm};

/// One calibrated pair.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub layout: LayoutKind,
    pub kernel: Kernel,
    /// Best time of the product, in seconds.
    pub seconds: f64,
    /// Weights per second (rows × cols / seconds).
    pub weights_per_s: f64,
}

const ROWS: usize = 512;
const COLS: usize = 2560;
const REPS: usize = 9;

/// The calibration of `layout` (measured once per process, on first use).
pub fn calibration_of(layout: LayoutKind) -> Vec<Timing> {
    static TABLE: OnceLock<std::sync::Mutex<Vec<(LayoutKind, Vec<Timing>)>>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, v)) = t.iter().find(|(l, _)| *l == layout) {
        return v.clone();
    }
    let v = measure(layout);
    t.push((layout, v.clone()));
    v
}

/// The calibration of every layout.
pub fn calibration() -> Vec<Timing> {
    LayoutKind::all()
        .into_iter()
        .flat_map(calibration_of)
        .collect()
}

fn measure(layout: LayoutKind) -> Vec<Timing> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let t = Ternary::from_fn(ROWS, COLS, |_, _| (next() % 3) as i8 - 1);
    let xs: Vec<i8> = (0..COLS).map(|_| next() as i8).collect();
    let x = ActBuf::from_rows(&xs, 1, COLS);
    let w = layout.from_dense(&t);
    // The candidates are timed round-robin (one run of each in turn, best of REPS), so that a
    // noisy neighbour slows them all alike. The `amx` family runs the same single-token code
    // as `avx512vnni` (tiles serve batches only), so it is not a separate candidate; the
    // scalar kernel (the oracle) only where there is nothing else.
    let natives: Vec<Kernel> = Kernel::available()
        .into_iter()
        .filter(|k| layout.kernels().contains(&k.kind()) && k.kind() != KernelKind::Amx)
        .collect();
    let cands: Vec<Kernel> = if natives.len() > 1 {
        natives
            .into_iter()
            .filter(|k| k.kind() != KernelKind::Scalar)
            .collect()
    } else {
        natives
    };
    let mut best = vec![f64::INFINITY; cands.len()];
    let mut y = vec![0i32; ROWS];
    let units = w.rows() / w.groups();
    for _ in 0..REPS {
        for (i, k) in cands.iter().enumerate() {
            let t0 = Instant::now();
            let mut parts: Vec<&mut [i32]> = y.chunks_mut(units).collect();
            w.gemm_block(*k, &x.view(), 0..units, &mut parts);
            best[i] = best[i].min(t0.elapsed().as_secs_f64());
        }
    }
    cands
        .iter()
        .zip(best)
        .map(|(kernel, seconds)| Timing {
            layout,
            kernel: *kernel,
            seconds,
            weights_per_s: (ROWS * COLS) as f64 / seconds,
        })
        .collect()
}

/// The fastest of `candidates` (in preference order: a later one must be 5 % faster).
fn fastest(candidates: impl Iterator<Item = Timing>) -> Option<Timing> {
    candidates.fold(None, |best: Option<Timing>, t| match best {
        Some(b) if t.seconds >= b.seconds * 0.95 => Some(b),
        _ => Some(t),
    })
}

/// The fastest kernel of `layout` on this CPU (scalar if it has no other).
pub fn best_kernel(layout: LayoutKind) -> Kernel {
    // Wider families first: they are the incumbents.
    let mut c = calibration_of(layout);
    c.sort_by(|a, b| b.kernel.kind().cmp(&a.kernel.kind()));
    fastest(c.into_iter()).map_or_else(Kernel::scalar, |t| t.kernel)
}

/// The fastest rotor variant on this CPU, with its fastest kernel.
pub fn best_rotor() -> (LayoutKind, Kernel) {
    static BEST: OnceLock<(LayoutKind, Kernel)> = OnceLock::new();
    *BEST.get_or_init(|| {
        let variants: Vec<LayoutKind> = LayoutKind::all()
            .into_iter()
            .filter(|l| l.is_rotor())
            .collect();
        // Incumbent order: rotor-tl, then rotor-pn, then the other variants.
        let first = [LayoutKind::RotorTl, LayoutKind::ROTOR_DEFAULT];
        let order = first
            .into_iter()
            .chain(variants.into_iter().filter(|l| !first.contains(l)));
        let best = fastest(
            order
                .into_iter()
                .map(|l| (l, best_kernel(l)))
                .filter_map(|(l, k)| calibration_of(l).into_iter().find(|t| t.kernel == k)),
        );
        best.map_or((LayoutKind::ROTOR_DEFAULT, Kernel::scalar()), |t| {
            (t.layout, t.kernel)
        })
    })
}

/// The fastest rotor variant that has a kernel of family `kind` (for `--layout rotor
/// --kernel K`): among the variants with that kernel, the one whose `kind` kernel measured
/// fastest (the incumbent order as in [`best_rotor`]).
pub fn best_rotor_with(kind: crate::kernels::KernelKind) -> LayoutKind {
    let (l, k) = best_rotor();
    if k.kind() == kind || l.kernels().contains(&kind) {
        return l;
    }
    // AMX shares avx512vnni's single-token timing.
    let timed = if kind == KernelKind::Amx {
        KernelKind::Avx512Vnni
    } else {
        kind
    };
    let first = [LayoutKind::RotorTl, LayoutKind::ROTOR_DEFAULT];
    let order = first.into_iter().chain(
        LayoutKind::all()
            .into_iter()
            .filter(|l| l.is_rotor() && !first.contains(l)),
    );
    fastest(
        order
            .filter(|l| l.kernels().contains(&kind))
            .filter_map(|l| {
                calibration_of(l)
                    .into_iter()
                    .find(|t| t.kernel.kind() == timed)
            }),
    )
    .map_or(LayoutKind::ROTOR_DEFAULT, |t| t.layout)
}

/// The kernel batched products (prefill) run with, given the single-token kernel `k`: the
/// widest native family with a batched inner product (AMX over `vpdpbusd`) that the layout
/// has, else `k`.
pub fn gemm_kernel(layout: LayoutKind, k: Kernel) -> Kernel {
    Kernel::available()
        .into_iter()
        .rev()
        .find(|c| gemm::has_tiles(*c) && layout.kernels().contains(&c.kind()))
        .unwrap_or(k)
}
