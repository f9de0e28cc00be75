//! What this CPU (and OS) lets the kernels use, detected once.
//!
//! AVX2/AVX-512 come from `is_x86_feature_detected!`. AMX has no stable detection macro, so
//! its CPUID bits are read directly (leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8), and on
//! Linux the process must also ask the kernel for the tile-data state
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`) before its first tile instruction;
//! a refusal (old kernel, a hypervisor that hides the state) leaves AMX unavailable, and the
//! `amx` family is then simply not offered.

use std::sync::OnceLock;

pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512 VNNI *and* VBMI (`vpermb`): what the `avx512vnni` family assumes (Ice Lake,
/// Sapphire Rapids, Zen 4 and later have both; Cascade Lake's VNNI without VBMI gets the
/// `avx512` family).
pub fn has_avx512vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx512()
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub fn has_avx512vbmi() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx512() && std::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The CPU reports AMX-TILE and AMX-INT8 (whether the OS allows them is [`amx_ready`]).
pub fn has_amx_int8() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID is always available on x86_64; leaf 7 exists on every CPU with AVX2 (checked
        // first so that old CPUs are not asked).
        if !has_avx2() {
            return false;
        }
        let c = std::arch::x86_64::__cpuid_count(7, 0);
        (c.edx >> 24) & 1 == 1 && (c.edx >> 25) & 1 == 1
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AMX-INT8 present *and* the tile-data permission granted to this process (asked once).
pub fn amx_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| has_amx_int8() && request_tile_permission())
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM takes two integer arguments and touches no
    // memory of ours; it only changes which XSAVE states this process may use.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    rc == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn request_tile_permission() -> bool {
    false
}
