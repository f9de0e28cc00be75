//! Compute kernels and their runtime dispatch.
//!
//! Every ternary layout has a portable scalar kernel (the oracle for that layout, compiled on
//! every target and never deleted) and, on x86_64, AVX2 and AVX-512 kernels in
//! [`x86_64`]. Which one runs is chosen once at runtime from the CPU's features, can be
//! overridden with `ROTOR_KERNEL=scalar|avx2|avx512` or `--kernel`, and is reported by name in
//! every experiment row.
//!
//! A [`Kernel`] value is a *proof of availability*: it can only be made by checking the CPU, so
//! code holding `Kernel` with kind [`KernelKind::Avx2`] may call AVX2 functions. That is the
//! safety argument of every `unsafe` call into [`x86_64`].

pub mod acts;
pub mod float;
pub mod gemm;
pub mod int8;
pub mod isa;
pub mod scalar;
pub mod views;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use crate::error::{Error, Result};

/// The kernel families, one per instruction-set level a kernel is written for.
///
/// A family names what the *batch-1* (decode) product and the *batched* (prefill) product run
/// on; each level implies the ones below it except where noted:
///
/// | family       | needs                              | GEMV (decode)          | GEMM (prefill)            |
/// |--------------|------------------------------------|------------------------|---------------------------|
/// | `scalar`     | nothing                            | portable loops         | portable loops            |
/// | `avx2`       | AVX2 + FMA                         | `vpmaddubsw` / `vpshufb` | `vpmaddubsw` micro-kernel |
/// | `avx512`     | AVX-512 F + BW (+ AVX2)            | mask registers, `vpmaddubsw` | `vpmaddubsw` zmm     |
/// | `avx512vnni` | `avx512` + AVX-512 VNNI + VBMI     | mask registers, `vpdpbusd` | `vpdpbusd` zmm        |
/// | `amx`        | `avx512vnni` + AMX-TILE/INT8 + the OS's tile-data permission | as `avx512vnni` | `tdpbusd` tiles |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelKind {
    Scalar,
    Avx2,
    Avx512,
    Avx512Vnni,
    Amx,
}

impl KernelKind {
    pub const ALL: [KernelKind; 5] = [
        KernelKind::Scalar,
        KernelKind::Avx2,
        KernelKind::Avx512,
        KernelKind::Avx512Vnni,
        KernelKind::Amx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Scalar => "scalar",
            KernelKind::Avx2 => "avx2",
            KernelKind::Avx512 => "avx512",
            KernelKind::Avx512Vnni => "avx512vnni",
            KernelKind::Amx => "amx",
        }
    }

    pub fn parse(name: &str) -> Result<KernelKind> {
        let n = name.trim().to_ascii_lowercase().replace(['-', '_'], "");
        KernelKind::ALL
            .into_iter()
            .find(|k| k.name() == n)
            .ok_or_else(|| {
                Error::Kernel(format!(
                    "unknown kernel `{}` (known: auto, {})",
                    name.trim(),
                    KernelKind::ALL.map(|k| k.name()).join(", ")
                ))
            })
    }

    /// True when this family's code may use AVX2 (every x86 family above scalar does).
    pub fn has_avx2(self) -> bool {
        self >= KernelKind::Avx2
    }

    /// True when this family's code may use AVX-512 F + BW.
    pub fn has_avx512(self) -> bool {
        self >= KernelKind::Avx512
    }

    /// True when this family's code may use `vpdpbusd` on zmm registers.
    pub fn has_vnni512(self) -> bool {
        self >= KernelKind::Avx512Vnni
    }
}

/// A kernel family that can run here. Only constructible through feature detection — a
/// *proof of availability*, so code holding a native `Kernel` of kind `Avx512Vnni` may call
/// functions compiled with those features — or as an explicitly [emulated](Kernel::emulated)
/// kernel, which runs the same generic kernel code on portable emulated registers (slow; it
/// exists so that the logic of every ISA's kernels is tested on machines without that ISA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    kind: KernelKind,
    emulated: bool,
}

impl Kernel {
    /// The portable kernel; always available.
    pub fn scalar() -> Kernel {
        Kernel {
            kind: KernelKind::Scalar,
            emulated: false,
        }
    }

    fn native(kind: KernelKind) -> Kernel {
        Kernel {
            kind,
            emulated: false,
        }
    }

    /// AVX2 (+FMA, used by the bf16 head), if this CPU has it.
    pub fn avx2() -> Option<Kernel> {
        isa::has_avx2().then(|| Kernel::native(KernelKind::Avx2))
    }

    /// AVX-512 F+BW (64 int8 lanes, 64-bit masks), if this CPU has it.
    pub fn avx512() -> Option<Kernel> {
        isa::has_avx512().then(|| Kernel::native(KernelKind::Avx512))
    }

    /// AVX-512 F+BW+VNNI (`vpdpbusd`), if this CPU has it.
    pub fn avx512vnni() -> Option<Kernel> {
        isa::has_avx512vnni().then(|| Kernel::native(KernelKind::Avx512Vnni))
    }

    /// AMX-INT8 tiles (with AVX-512 VNNI for single rows), if this CPU has them and the OS
    /// granted this process the tile-data permission (asked once, on first use).
    pub fn amx() -> Option<Kernel> {
        (isa::has_avx512vnni() && isa::amx_ready()).then(|| Kernel::native(KernelKind::Amx))
    }

    /// The kernel family `kind` on emulated registers: the generic SIMD kernel code of that
    /// family instantiated over portable arrays that follow Intel's pseudo-code, so the logic
    /// of AVX-512, VNNI and AMX kernels is tested against the oracle on any machine. Only the
    /// families whose kernels are written generically have an emulated form (`avx512`,
    /// `avx512vnni`, `amx`); `None` for the others (`avx2` kernels are native intrinsics,
    /// tested natively on every x86 machine we run on; `scalar` needs no emulation).
    pub fn emulated(kind: KernelKind) -> Option<Kernel> {
        kind.has_avx512().then_some(Kernel {
            kind,
            emulated: true,
        })
    }

    /// The kernel of the given family, or a clear error when the CPU lacks it.
    pub fn of(kind: KernelKind) -> Result<Kernel> {
        Kernel::of_opt(kind).ok_or_else(|| {
            Error::Kernel(format!(
                "this CPU cannot run the `{}` kernel (available: {})",
                kind.name(),
                Kernel::available()
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Parse a kernel name and check that the CPU has it.
    pub fn by_name(name: &str) -> Result<Kernel> {
        Kernel::of(KernelKind::parse(name)?)
    }

    /// Every kernel family this CPU can run, slowest (scalar) first.
    pub fn available() -> Vec<Kernel> {
        KernelKind::ALL
            .iter()
            .filter_map(|&k| Kernel::of_opt(k))
            .collect()
    }

    fn of_opt(kind: KernelKind) -> Option<Kernel> {
        match kind {
            KernelKind::Scalar => Some(Kernel::scalar()),
            KernelKind::Avx2 => Kernel::avx2(),
            KernelKind::Avx512 => Kernel::avx512(),
            KernelKind::Avx512Vnni => Kernel::avx512vnni(),
            KernelKind::Amx => Kernel::amx(),
        }
    }

    /// The widest kernel family this CPU has.
    pub fn best() -> Kernel {
        *Kernel::available()
            .last()
            .expect("scalar is always available")
    }

    /// `ROTOR_KERNEL` if set (an error if it names a kernel this CPU lacks), else [`Kernel::best`].
    pub fn from_env() -> Result<Kernel> {
        match std::env::var("ROTOR_KERNEL") {
            Ok(v) if !v.trim().is_empty() && v.trim() != "auto" => {
                Kernel::by_name(&v).map_err(|e| Error::Kernel(format!("ROTOR_KERNEL={v}: {e}")))
            }
            _ => Ok(Kernel::best()),
        }
    }

    pub fn kind(self) -> KernelKind {
        self.kind
    }

    /// True for a kernel running on emulated registers ([`Kernel::emulated`]).
    pub fn is_emulated(self) -> bool {
        self.emulated
    }

    /// The family as the native instruction set sees it: `None` for emulated kernels (they
    /// must never reach a `#[target_feature]` function).
    pub fn native_kind(self) -> Option<KernelKind> {
        (!self.emulated).then_some(self.kind)
    }

    /// The widest native family at most `self` for code that only has an AVX2 or AVX-512
    /// version (the float kernels): scalar for emulated kernels.
    pub fn float_kind(self) -> KernelKind {
        match self.native_kind() {
            Some(k) if k.has_avx512() => KernelKind::Avx512,
            Some(k) if k.has_avx2() => KernelKind::Avx2,
            _ => KernelKind::Scalar,
        }
    }

    pub fn name(self) -> &'static str {
        if self.emulated {
            match self.kind {
                KernelKind::Scalar => "scalar",
                KernelKind::Avx2 => "emulated-avx2",
                KernelKind::Avx512 => "emulated-avx512",
                KernelKind::Avx512Vnni => "emulated-avx512vnni",
                KernelKind::Amx => "emulated-amx",
            }
        } else {
            self.kind.name()
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// CPU model and the SIMD features this crate cares about, for run metadata.
pub fn cpu_description() -> (String, Vec<&'static str>) {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    #[allow(unused_mut)]
    let mut feats = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$( if std::is_x86_feature_detected!($f) { feats.push($f); } )*};
        }
        probe!(
            "sse4.2",
            "popcnt",
            "bmi2",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512vpopcntdq",
            "avx512bitalg",
            "avx512bf16",
            "avx512vbmi",
            "avxvnni"
        );
        if isa::has_amx_int8() {
            feats.push("amx-int8");
        }
    }
    (model, feats)
}
