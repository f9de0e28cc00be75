//! The 512-bit vector operations the AVX-512 / VNNI kernels are written in, as a trait with a
//! native and an emulated instance.
//!
//! - [`Native<VNNI>`]: each method one AVX-512 intrinsic (two or three for `dpbusd` without
//!   VNNI). Its methods are only ever inlined into `#[target_feature(enable = "avx512f,
//!   avx512bw[,avx512vnni]")]` entry points that run with a [`Kernel`](crate::kernels::Kernel)
//!   proving the CPU has those features: that is the safety argument of every `unsafe` here.
//! - [`Emulated`]: the same operations on `[u8; 64]` in portable Rust, following Intel's
//!   pseudo-code, so the kernels' *logic* is checked bit-exactly against the oracle on every
//!   machine, with or without AVX-512 (`Kernel::emulated`). The emulation of each operation is
//!   itself checked against the hardware where the hardware exists (AVX2 halves everywhere,
//!   the AVX-512 instructions on machines that have them: `tests/kernels.rs`).

/// The AVX-512 operations the kernels use (names follow the intrinsics).
pub trait Simd512: Copy {
    type V: Copy;
    /// True when [`dpbusd`](Simd512::dpbusd) is one `vpdpbusd`.
    const VNNI: bool;
    /// # Safety
    /// `p` must point to 64 readable bytes.
    unsafe fn loadu(p: *const u8) -> Self::V;
    /// # Safety
    /// `p` must point to 64 writable bytes.
    unsafe fn storeu(p: *mut u8, v: Self::V);
    /// `vpbroadcastd` from memory: the four bytes at `p` in every 32-bit lane.
    /// # Safety
    /// `p` must point to 4 readable bytes.
    unsafe fn bcast4(p: *const u8) -> Self::V;
    /// A 64-bit mask loaded from memory (`kmovq k, m64`).
    /// # Safety
    /// `p` must point to a readable, aligned `u64`.
    unsafe fn load_mask(p: *const u64) -> u64 {
        // SAFETY: forwarded from the caller.
        unsafe { *p }
    }
    /// Hint that the cache line at `p` will be read soon (no-op where not native).
    #[inline(always)]
    fn prefetch(_p: *const u8) {}
    fn zero() -> Self::V;
    fn set1_epi8(x: i8) -> Self::V;
    fn set1_epi16(x: i16) -> Self::V;
    fn xor(a: Self::V, b: Self::V) -> Self::V;
    fn and(a: Self::V, b: Self::V) -> Self::V;
    fn add_epi16(a: Self::V, b: Self::V) -> Self::V;
    fn add_epi32(a: Self::V, b: Self::V) -> Self::V;
    fn sub_epi8(a: Self::V, b: Self::V) -> Self::V;
    fn add_epi8(a: Self::V, b: Self::V) -> Self::V;
    /// `vpaddb {k}`: `a + b` where mask bit set, else `a`.
    fn mask_add_epi8(a: Self::V, k: u64, b: Self::V) -> Self::V;
    /// `(a & b) | c` in one `vpternlogd` (immediate 0xEA).
    fn and_or(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `vpermb` (AVX-512 VBMI): byte `i` of the result is `table[idx[i] & 63]`.
    fn permutexvar_epi8(idx: Self::V, table: Self::V) -> Self::V;
    /// `vptestmb`: bit `i` set where `a[i] & b[i] ≠ 0`.
    fn test_epi8_mask(a: Self::V, b: Self::V) -> u64;
    /// `vmovdqu8 [p]{k}`: store the bytes of `v` whose mask bit is set.
    /// # Safety
    /// `p + i` must be writable for every set bit `i` of `k` (other bytes are not touched).
    unsafe fn mask_storeu_epi8(p: *mut u8, k: u64, v: Self::V);
    /// Store bytes `16·L .. 16·L + 16` of `v` to `p` (`vextracti32x4` + a 16-byte store).
    /// # Safety
    /// `p .. p + 16` must be writable.
    unsafe fn store_lane128<const L: i32>(p: *mut u8, v: Self::V);
    /// Shift each 16-bit lane right by `n` ∈ {2, 4, 6}.
    fn srli_epi16(a: Self::V, n: u32) -> Self::V;
    /// `vpmaddubsw`: u8 × i8 pairs summed into saturated i16.
    fn maddubs_epi16(a: Self::V, b: Self::V) -> Self::V;
    /// `vpmaddwd`: i16 × i16 pairs summed into i32.
    fn madd_epi16(a: Self::V, b: Self::V) -> Self::V;
    /// `acc + Σ_{i<4} a[4l+i]·b[4l+i]` per 32-bit lane `l` (`a` unsigned, `b` signed bytes):
    /// `vpdpbusd` with VNNI; without it `vpmaddubsw` + `vpmaddwd(1)` + `vpaddd`, which is the
    /// same integer as long as every adjacent product pair fits an i16 — true for every caller
    /// here (sign products: |pair| ≤ 2·255; code products: |pair| ≤ 2·2·128).
    fn dpbusd(acc: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// `vmovdqu8 {k}{z}`: bytes of `a` where mask bit set, else 0.
    fn maskz_mov_epi8(k: u64, a: Self::V) -> Self::V;
    /// `vmovdqu8 {k}`: bytes of `a` where mask bit set, else `src`.
    fn mask_mov_epi8(src: Self::V, k: u64, a: Self::V) -> Self::V;
    /// `vpunpckldq` / `vpunpckhdq` / `vpunpcklqdq` / `vpunpckhqdq` (within 128-bit lanes).
    fn unpacklo_epi32(a: Self::V, b: Self::V) -> Self::V;
    fn unpackhi_epi32(a: Self::V, b: Self::V) -> Self::V;
    fn unpacklo_epi64(a: Self::V, b: Self::V) -> Self::V;
    fn unpackhi_epi64(a: Self::V, b: Self::V) -> Self::V;
    fn reduce_add_epi32(a: Self::V) -> i32;
    fn to_i32x16(a: Self::V) -> [i32; 16];
}

/// Portable emulation of the operations (Intel pseudo-code, little-endian lanes).
#[derive(Clone, Copy, Debug)]
pub struct Emulated;

fn lane16(v: &[u8; 64], i: usize) -> u16 {
    u16::from_le_bytes([v[2 * i], v[2 * i + 1]])
}
fn put16(v: &mut [u8; 64], i: usize, x: u16) {
    v[2 * i..2 * i + 2].copy_from_slice(&x.to_le_bytes());
}
fn lane32(v: &[u8; 64], i: usize) -> u32 {
    u32::from_le_bytes(v[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}
fn put32(v: &mut [u8; 64], i: usize, x: u32) {
    v[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
}

/// Per 128-bit lane: interleave elements of `w` bytes from the low (`hi = false`) or high half
/// of each lane of `a` and `b` (the `vpunpck*` family).
fn unpack(a: &[u8; 64], b: &[u8; 64], w: usize, hi: bool) -> [u8; 64] {
    let mut v = [0u8; 64];
    let per = 16 / w; // elements per 128-bit lane
    for lane in 0..4 {
        for i in 0..per / 2 {
            let src = lane * 16 + (i + if hi { per / 2 } else { 0 }) * w;
            let dst = lane * 16 + 2 * i * w;
            v[dst..dst + w].copy_from_slice(&a[src..src + w]);
            v[dst + w..dst + 2 * w].copy_from_slice(&b[src..src + w]);
        }
    }
    v
}

impl Simd512 for Emulated {
    type V = [u8; 64];
    const VNNI: bool = true;
    unsafe fn loadu(p: *const u8) -> [u8; 64] {
        let mut v = [0u8; 64];
        // SAFETY: the caller guarantees 64 readable bytes at `p`.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), 64) };
        v
    }
    unsafe fn storeu(p: *mut u8, v: [u8; 64]) {
        // SAFETY: the caller guarantees 64 writable bytes at `p`.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p, 64) };
    }
    unsafe fn bcast4(p: *const u8) -> [u8; 64] {
        let mut d = [0u8; 4];
        // SAFETY: the caller guarantees 4 readable bytes at `p`.
        unsafe { std::ptr::copy_nonoverlapping(p, d.as_mut_ptr(), 4) };
        std::array::from_fn(|i| d[i % 4])
    }
    fn zero() -> [u8; 64] {
        [0; 64]
    }
    fn set1_epi8(x: i8) -> [u8; 64] {
        [x as u8; 64]
    }
    fn set1_epi16(x: i16) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..32 {
            put16(&mut v, i, x as u16);
        }
        v
    }
    fn xor(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| a[i] ^ b[i])
    }
    fn and(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| a[i] & b[i])
    }
    fn add_epi16(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..32 {
            put16(&mut v, i, lane16(&a, i).wrapping_add(lane16(&b, i)));
        }
        v
    }
    fn add_epi32(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..16 {
            put32(&mut v, i, lane32(&a, i).wrapping_add(lane32(&b, i)));
        }
        v
    }
    fn sub_epi8(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| a[i].wrapping_sub(b[i]))
    }
    fn add_epi8(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| a[i].wrapping_add(b[i]))
    }
    fn mask_add_epi8(a: [u8; 64], k: u64, b: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| {
            if k >> i & 1 == 1 {
                a[i].wrapping_add(b[i])
            } else {
                a[i]
            }
        })
    }
    fn and_or(a: [u8; 64], b: [u8; 64], c: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| (a[i] & b[i]) | c[i])
    }
    fn permutexvar_epi8(idx: [u8; 64], table: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| table[(idx[i] & 63) as usize])
    }
    fn test_epi8_mask(a: [u8; 64], b: [u8; 64]) -> u64 {
        (0..64).fold(0u64, |k, i| k | (((a[i] & b[i]) != 0) as u64) << i)
    }
    unsafe fn mask_storeu_epi8(p: *mut u8, k: u64, v: [u8; 64]) {
        for (i, &b) in v.iter().enumerate() {
            if k >> i & 1 == 1 {
                // SAFETY: byte i is writable for every set bit (caller).
                unsafe { *p.wrapping_add(i) = b };
            }
        }
    }
    unsafe fn store_lane128<const L: i32>(p: *mut u8, v: [u8; 64]) {
        let l = L as usize;
        // SAFETY: 16 writable bytes at p (caller).
        unsafe { std::ptr::copy_nonoverlapping(v[16 * l..].as_ptr(), p, 16) }
    }
    fn srli_epi16(a: [u8; 64], n: u32) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..32 {
            put16(&mut v, i, lane16(&a, i) >> n);
        }
        v
    }
    fn maddubs_epi16(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..32 {
            let s = a[2 * i] as i32 * b[2 * i] as i8 as i32
                + a[2 * i + 1] as i32 * b[2 * i + 1] as i8 as i32;
            put16(
                &mut v,
                i,
                s.clamp(i16::MIN as i32, i16::MAX as i32) as i16 as u16,
            );
        }
        v
    }
    fn madd_epi16(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for i in 0..16 {
            let p = |j: usize| lane16(&a, j) as i16 as i32 * lane16(&b, j) as i16 as i32;
            put32(&mut v, i, p(2 * i).wrapping_add(p(2 * i + 1)) as u32);
        }
        v
    }
    fn dpbusd(acc: [u8; 64], a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        let mut v = [0u8; 64];
        for l in 0..16 {
            let s: i32 = (0..4)
                .map(|i| a[4 * l + i] as i32 * b[4 * l + i] as i8 as i32)
                .sum();
            put32(&mut v, l, (lane32(&acc, l) as i32).wrapping_add(s) as u32);
        }
        v
    }
    fn maskz_mov_epi8(k: u64, a: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| if k >> i & 1 == 1 { a[i] } else { 0 })
    }
    fn mask_mov_epi8(src: [u8; 64], k: u64, a: [u8; 64]) -> [u8; 64] {
        std::array::from_fn(|i| if k >> i & 1 == 1 { a[i] } else { src[i] })
    }
    fn unpacklo_epi32(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        unpack(&a, &b, 4, false)
    }
    fn unpackhi_epi32(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        unpack(&a, &b, 4, true)
    }
    fn unpacklo_epi64(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        unpack(&a, &b, 8, false)
    }
    fn unpackhi_epi64(a: [u8; 64], b: [u8; 64]) -> [u8; 64] {
        unpack(&a, &b, 8, true)
    }
    fn reduce_add_epi32(a: [u8; 64]) -> i32 {
        (0..16).fold(0u32, |s, i| s.wrapping_add(lane32(&a, i))) as i32
    }
    fn to_i32x16(a: [u8; 64]) -> [i32; 16] {
        std::array::from_fn(|i| lane32(&a, i) as i32)
    }
}

/// The real instructions; `VNNI` selects `vpdpbusd` for [`Simd512::dpbusd`].
#[derive(Clone, Copy, Debug)]
pub struct Native<const VNNI: bool>;

#[cfg(target_arch = "x86_64")]
mod native {
    use super::{Native, Simd512};
    use std::arch::x86_64::*;

    impl<const VNNI: bool> Simd512 for Native<VNNI> {
        type V = __m512i;
        const VNNI: bool = VNNI;
        #[inline(always)]
        unsafe fn loadu(p: *const u8) -> __m512i {
            // SAFETY: 64 readable bytes (caller); AVX-512F present (module contract).
            unsafe { _mm512_loadu_si512(p as *const _) }
        }
        #[inline(always)]
        unsafe fn storeu(p: *mut u8, v: __m512i) {
            // SAFETY: 64 writable bytes (caller); AVX-512F present (module contract).
            unsafe { _mm512_storeu_si512(p as *mut _, v) }
        }
        #[inline(always)]
        unsafe fn bcast4(p: *const u8) -> __m512i {
            // SAFETY: 4 readable bytes (caller); unaligned read; AVX-512F present.
            unsafe { _mm512_set1_epi32(std::ptr::read_unaligned(p as *const i32)) }
        }
        #[inline(always)]
        unsafe fn load_mask(p: *const u64) -> u64 {
            // SAFETY: an aligned readable u64 (caller); AVX-512BW present (module contract).
            unsafe { _load_mask64(p) }
        }
        #[inline(always)]
        fn prefetch(p: *const u8) {
            // SAFETY: prefetch never faults, whatever the address; SSE is baseline x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
        }
        #[inline(always)]
        fn zero() -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_setzero_si512() }
        }
        #[inline(always)]
        fn set1_epi8(x: i8) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_set1_epi8(x) }
        }
        #[inline(always)]
        fn set1_epi16(x: i16) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_set1_epi16(x) }
        }
        #[inline(always)]
        fn xor(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_xor_si512(a, b) }
        }
        #[inline(always)]
        fn and(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_and_si512(a, b) }
        }
        #[inline(always)]
        fn add_epi16(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_add_epi16(a, b) }
        }
        #[inline(always)]
        fn add_epi32(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_add_epi32(a, b) }
        }
        #[inline(always)]
        fn sub_epi8(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_sub_epi8(a, b) }
        }
        #[inline(always)]
        fn add_epi8(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_add_epi8(a, b) }
        }
        #[inline(always)]
        fn mask_add_epi8(a: __m512i, k: u64, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_mask_add_epi8(a, k, a, b) }
        }
        #[inline(always)]
        fn and_or(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_ternarylogic_epi32::<0xEA>(a, b, c) }
        }
        #[inline(always)]
        fn permutexvar_epi8(idx: __m512i, table: __m512i) -> __m512i {
            // SAFETY: AVX-512 VBMI present: only instantiated in entry points compiled with it,
            // reached with a kernel proving it (module contract).
            unsafe { _mm512_permutexvar_epi8(idx, table) }
        }
        #[inline(always)]
        fn test_epi8_mask(a: __m512i, b: __m512i) -> u64 {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_test_epi8_mask(a, b) }
        }
        #[inline(always)]
        unsafe fn mask_storeu_epi8(p: *mut u8, k: u64, v: __m512i) {
            // SAFETY: the masked bytes are writable (caller); masked-off bytes are neither
            // read nor written and cannot fault. AVX-512BW present (module contract).
            unsafe { _mm512_mask_storeu_epi8(p as *mut i8, k, v) }
        }
        #[inline(always)]
        unsafe fn store_lane128<const L: i32>(p: *mut u8, v: __m512i) {
            // SAFETY: 16 writable bytes at p (caller); AVX-512F present (module contract).
            unsafe { _mm_storeu_si128(p as *mut __m128i, _mm512_extracti32x4_epi32::<L>(v)) }
        }
        #[inline(always)]
        fn srli_epi16(a: __m512i, n: u32) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe {
                match n {
                    2 => _mm512_srli_epi16::<2>(a),
                    4 => _mm512_srli_epi16::<4>(a),
                    6 => _mm512_srli_epi16::<6>(a),
                    _ => _mm512_srl_epi16(a, _mm_cvtsi32_si128(n as i32)),
                }
            }
        }
        #[inline(always)]
        fn maddubs_epi16(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_maddubs_epi16(a, b) }
        }
        #[inline(always)]
        fn madd_epi16(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_madd_epi16(a, b) }
        }
        #[inline(always)]
        fn dpbusd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
            if VNNI {
                // SAFETY: `Native<true>` is only instantiated in entry points compiled with
                // avx512vnni and called with a kernel proving it (module contract).
                unsafe { _mm512_dpbusd_epi32(acc, a, b) }
            } else {
                // SAFETY: AVX-512BW present (module contract).
                unsafe {
                    _mm512_add_epi32(
                        acc,
                        _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1)),
                    )
                }
            }
        }
        #[inline(always)]
        fn maskz_mov_epi8(k: u64, a: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_maskz_mov_epi8(k, a) }
        }
        #[inline(always)]
        fn mask_mov_epi8(src: __m512i, k: u64, a: __m512i) -> __m512i {
            // SAFETY: AVX-512BW present (module contract).
            unsafe { _mm512_mask_mov_epi8(src, k, a) }
        }
        #[inline(always)]
        fn unpacklo_epi32(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_unpacklo_epi32(a, b) }
        }
        #[inline(always)]
        fn unpackhi_epi32(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_unpackhi_epi32(a, b) }
        }
        #[inline(always)]
        fn unpacklo_epi64(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_unpacklo_epi64(a, b) }
        }
        #[inline(always)]
        fn unpackhi_epi64(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_unpackhi_epi64(a, b) }
        }
        #[inline(always)]
        fn reduce_add_epi32(a: __m512i) -> i32 {
            // SAFETY: AVX-512F present (module contract).
            unsafe { _mm512_reduce_add_epi32(a) }
        }
        #[inline(always)]
        fn to_i32x16(a: __m512i) -> [i32; 16] {
            let mut out = [0i32; 16];
            // SAFETY: 64 writable bytes; AVX-512F present (module contract).
            unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut _, a) };
            out
        }
    }
}

/// Sums of four accumulators at once: `[Σ a, Σ b, Σ c, Σ d]` over their sixteen 32-bit lanes
/// (three unpack/add rounds in registers, then the four 128-bit lanes in scalar code): about
/// three operations per accumulator instead of a full horizontal reduction each.
#[inline(always)]
pub fn reduce4<S: Simd512>(a: S::V, b: S::V, c: S::V, d: S::V) -> [i32; 4] {
    let ab = S::add_epi32(S::unpacklo_epi32(a, b), S::unpackhi_epi32(a, b));
    let cd = S::add_epi32(S::unpacklo_epi32(c, d), S::unpackhi_epi32(c, d));
    let abcd = S::add_epi32(S::unpacklo_epi64(ab, cd), S::unpackhi_epi64(ab, cd));
    let l = S::to_i32x16(abcd);
    std::array::from_fn(|j| {
        l[j].wrapping_add(l[4 + j])
            .wrapping_add(l[8 + j])
            .wrapping_add(l[12 + j])
    })
}
