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

pub mod float;
pub mod int8;
pub mod parallel;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use crate::error::{Error, Result};

/// The instruction-set families a kernel can be written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelKind {
    Scalar,
    Avx2,
    Avx512,
}

impl KernelKind {
    pub const ALL: [KernelKind; 3] = [KernelKind::Scalar, KernelKind::Avx2, KernelKind::Avx512];

    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Scalar => "scalar",
            KernelKind::Avx2 => "avx2",
            KernelKind::Avx512 => "avx512",
        }
    }

    pub fn parse(name: &str) -> Result<KernelKind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(KernelKind::Scalar),
            "avx2" => Ok(KernelKind::Avx2),
            "avx512" => Ok(KernelKind::Avx512),
            other => Err(Error::Kernel(format!(
                "unknown kernel `{other}` (known: scalar, avx2, avx512)"
            ))),
        }
    }
}

/// A kernel family that this CPU can run. Only constructible through feature detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel(KernelKind);

impl Kernel {
    /// The portable kernel; always available.
    pub fn scalar() -> Kernel {
        Kernel(KernelKind::Scalar)
    }

    /// AVX2 (+FMA, used by the bf16 head), if this CPU has it.
    pub fn avx2() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Some(Kernel(KernelKind::Avx2));
            }
        }
        None
    }

    /// AVX-512 F+BW (64 int8 lanes, 64-bit masks), if this CPU has it.
    pub fn avx512() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
            {
                return Some(Kernel(KernelKind::Avx512));
            }
        }
        None
    }

    /// The kernel of the given family, or a clear error when the CPU lacks it.
    pub fn of(kind: KernelKind) -> Result<Kernel> {
        let k = match kind {
            KernelKind::Scalar => Some(Kernel::scalar()),
            KernelKind::Avx2 => Kernel::avx2(),
            KernelKind::Avx512 => Kernel::avx512(),
        };
        k.ok_or_else(|| {
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
            Ok(v) if !v.trim().is_empty() => {
                Kernel::by_name(&v).map_err(|e| Error::Kernel(format!("ROTOR_KERNEL={v}: {e}")))
            }
            _ => Ok(Kernel::best()),
        }
    }

    pub fn kind(self) -> KernelKind {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
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
            "avxvnni"
        );
    }
    (model, feats)
}
