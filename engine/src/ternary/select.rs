//! Which kernel (and which rotor variant) runs: chosen from a measurement on this CPU, not
//! from the widest instruction set.
//!
//! The first time a choice is needed in a process, every (layout, kernel) pair this CPU can
//! run natively is timed on the same single-token product (1024 × 2560, the model's width;
//! about 0.6 MB of weights in the rotor layouts, so the kernels' instruction cost decides, not
//! the memory system, which every kernel saturates alike once its instructions keep up): best
//! of 15 runs on the calling thread, the candidates interleaved. The table is kept for the process
//! ([`calibration`]). From it:
//! - [`LayoutKind::best_kernel`](super::LayoutKind::best_kernel) — `--kernel auto`, the
//!   default — is the fastest kernel of a layout;
//! - [`LayoutKind::rotor`](super::LayoutKind::rotor) — `--layout rotor`, the default — is
//!   the fastest rotor variant (with its fastest kernel);
//! - batched products (prefill) use the widest family with a batched inner product
//!   ([`gemm_kernel`]): AMX tiles where present, else `vpdpbusd`, else the GEMV kernel itself.
//!
//! A faster candidate must beat the incumbent (listed first: the wider family, the simpler
//! variant) by 5 % to replace it, so that noise between near-equal kernels does not flip the
//! choice from run to run. The whole calibration takes a few tens of milliseconds.

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

const ROWS: usize = 1024;
const COLS: usize = 2560;
const REPS: usize = 15;

/// The calibration table of this process (measured once, on first use).
pub fn calibration() -> &'static [Timing] {
    static TABLE: OnceLock<Vec<Timing>> = OnceLock::new();
    TABLE.get_or_init(measure)
}

fn measure() -> Vec<Timing> {
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
    // Every candidate built first, then timed round-robin (one run of each in turn, best of
    // REPS), so that a noisy neighbour slows them all alike. The `amx` family runs the same
    // single-token code as `avx512vnni` (tiles serve batches only), so it is not a separate
    // candidate here.
    let built: Vec<_> = LayoutKind::all()
        .into_iter()
        .map(|l| (l, l.from_dense(&t)))
        .collect();
    let mut cands = Vec::new();
    for (layout, w) in &built {
        for k in Kernel::available() {
            if layout.kernels().contains(&k.kind()) && k.kind() != KernelKind::Amx {
                cands.push((*layout, k, w.as_ref()));
            }
        }
    }
    let mut best = vec![f64::INFINITY; cands.len()];
    let mut y = vec![0i32; ROWS];
    for _ in 0..REPS {
        for (i, (_, k, w)) in cands.iter().enumerate() {
            let units = w.rows() / w.groups();
            let t0 = Instant::now();
            let mut parts: Vec<&mut [i32]> = y.chunks_mut(units).collect();
            w.gemm_block(*k, &x.view(), 0..units, &mut parts);
            best[i] = best[i].min(t0.elapsed().as_secs_f64());
        }
    }
    cands
        .iter()
        .zip(best)
        .map(|((layout, kernel, _), seconds)| Timing {
            layout: *layout,
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
    let mut c: Vec<Timing> = calibration()
        .iter()
        .filter(|t| t.layout == layout)
        .copied()
        .collect();
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
                .filter_map(|(l, k)| {
                    calibration()
                        .iter()
                        .find(|t| t.layout == l && t.kernel == k)
                        .copied()
                }),
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
                calibration()
                    .iter()
                    .find(|t| t.layout == l && t.kernel.kind() == timed)
                    .copied()
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
