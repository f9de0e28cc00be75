//! Every layout × every kernel this CPU has × 1 and 2 threads against the dense oracle,
//! bit-exactly, on random shapes (odd sizes, 1×1, single rows/columns) and random int8
//! activations including the extremes −128 and 127.

use proptest::prelude::*;
use rotor::kernels::{Kernel, KernelKind};
use rotor::ternary::parallel;
use rotor::ternary::{ActBuf, LayoutKind, Ternary, tq1};

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn ternary_strategy(max_rows: usize, max_cols: usize) -> impl Strategy<Value = Ternary> {
    (1..=max_rows, 1..=max_cols, any::<u64>(), 0u8..4).prop_map(|(r, c, seed, density)| {
        // density 0: all zero, 3: no zeros, else mixed — covers empty and full planes.
        let mut s = seed | 1;
        Ternary::from_fn(r, c, |_, _| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match density {
                0 => 0,
                3 => {
                    if s & 1 == 0 {
                        1
                    } else {
                        -1
                    }
                }
                _ => (s % 3) as i8 - 1,
            }
        })
    })
}

fn acts_strategy(batch: usize, cols: usize, seed: u64) -> ActBuf {
    let mut s = seed | 1;
    let rows: Vec<i8> = (0..batch * cols)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match i % 11 {
                0 => -128,
                1 => 127,
                _ => s as i8,
            }
        })
        .collect();
    ActBuf::from_rows(&rows, batch, cols)
}

/// Every kernel this CPU runs natively, and the emulated instances of every family whose
/// kernels are generic (AVX-512, VNNI, AMX), so their logic is checked on any machine.
fn kernels_under_test() -> Vec<Kernel> {
    let mut ks = Kernel::available();
    ks.extend(KernelKind::ALL.into_iter().filter_map(Kernel::emulated));
    ks
}

fn check_all(t: &Ternary, batch: usize, seed: u64) -> Result<(), TestCaseError> {
    check_all_with(t, &acts_strategy(batch, t.cols(), seed))
}

fn check_all_with(t: &Ternary, x: &ActBuf) -> Result<(), TestCaseError> {
    let batch = x.batch;
    let want = t.gemm_oracle(&x.view());
    for kind in LayoutKind::all() {
        if kind == LayoutKind::HfPacked && t.rows() % 4 != 0 {
            continue;
        }
        let layout = kind.from_dense(t);
        prop_assert_eq!(&layout.to_dense(), t, "{} round trip", kind);
        for k in kernels_under_test() {
            if !layout.supports(k.kind()) {
                continue;
            }
            for threads in [1, 2] {
                let mut y = vec![i32::MIN; t.rows() * batch];
                pool(threads).install(|| parallel::gemm(layout.as_ref(), k, &x.view(), &mut y));
                prop_assert!(
                    y == want,
                    "{} × {} × {} threads differs from the oracle on {}×{} batch {}",
                    kind,
                    k,
                    threads,
                    t.rows(),
                    t.cols(),
                    batch
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_layout_and_kernel_equals_the_oracle(t in ternary_strategy(40, 700), batch in 1usize..7, seed in any::<u64>()) {
        check_all(&t, batch, seed)?;
    }

    #[test]
    fn single_row_and_single_column(n in 1usize..300, seed in any::<u64>(), batch in 1usize..3) {
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s % 3) as i8 - 1 };
        let row = Ternary::from_fn(1, n, |_, _| next());
        let col = Ternary::from_fn(n, 1, |_, _| next());
        check_all(&row, batch, seed)?;
        check_all(&col, batch, seed)?;
    }

    #[test]
    fn conversion_from_checkpoint_bytes_equals_conversion_from_dense(
        t in ternary_strategy(48, 600).prop_filter("rows divisible by 4", |t| t.rows() % 4 == 0)
    ) {
        let packed = t.to_hf_packed();
        for kind in LayoutKind::all() {
            for k in Kernel::available() {
                for threads in [1, 2] {
                    let layout = pool(threads)
                        .install(|| kind.from_hf_packed(k, &packed, t.rows(), t.cols()))
                        .unwrap();
                    prop_assert_eq!(&layout.to_dense(), &t, "{} from packed bytes with {}", kind, k);
                }
            }
        }
    }
}

/// The AVX-512 kernels' logic, run on emulated registers: checked on every machine, with or
/// without AVX-512 hardware (the native instantiation is checked above where the CPU has it).
#[cfg(target_arch = "x86_64")]
fn check_avx512_emulated(t: &Ternary, batch: usize, seed: u64) -> Result<(), TestCaseError> {
    use rotor::kernels::x86_64::avx512::emulated;
    use rotor::ternary::{Block, Encoding, HfPacked, Rotor};
    let x = acts_strategy(batch, t.cols(), seed);
    let want = t.gemm_oracle(&x.view());
    for enc in [Encoding::Pn, Encoding::Ms] {
        for block in [Block::Words(1), Block::Words(4), Block::Row] {
            let r = Rotor::from_dense(t, enc, block);
            let mut y = vec![i32::MIN; t.rows() * batch];
            emulated::rotor_gemm(&r.view(), &x.view(), 0..t.rows(), &mut y);
            prop_assert!(
                y == want,
                "emulated avx512 {:?}/{:?} on {}x{} batch {}",
                enc,
                block,
                t.rows(),
                t.cols(),
                batch
            );
        }
    }
    if t.rows() % 4 == 0 {
        let h = HfPacked::from_dense(t);
        let mut y = vec![i32::MIN; t.rows() * batch];
        let r4 = t.rows() / 4;
        let mut groups: Vec<&mut [i32]> = y.chunks_mut(r4 * batch).collect();
        emulated::hf_packed_gemm(&h.view(), &x.view(), 0..r4, &mut groups);
        prop_assert!(
            y == want,
            "emulated avx512 hf_packed on {}x{} batch {}",
            t.rows(),
            t.cols(),
            batch
        );
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn avx512_kernel_logic_on_emulated_registers_equals_the_oracle(
        t in ternary_strategy(24, 300), batch in 1usize..6, seed in any::<u64>()
    ) {
        check_avx512_emulated(&t, batch, seed)?;
    }
}

#[test]
fn model_shapes_are_exact() {
    // The projections of BitNet 2B-4T, cut down in rows (the kernels loop over rows).
    for (rows, cols) in [(64, 2560), (16, 6912), (40, 2560)] {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let t = Ternary::from_fn(rows, cols, |_, _| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 3) as i8 - 1
        });
        for batch in [1, 8] {
            check_all(&t, batch, rows as u64 * 31 + batch as u64).unwrap();
        }
    }
}

/// The accumulator bounds written beside each kernel, at their worst case: rows as long as the
/// model's longest (6912) and beyond, every weight +1 (or −1, or alternating), every activation
/// at an extreme (127, −128, −127, or alternating 127/−128). Random data never gets near these
/// bounds (its sums are random walks), so an i16 accumulator flushed too rarely passes every
/// random test; this one fails it (checked by hand: flushing the AVX2 rotor kernel's i16
/// accumulator every 64 words instead of 16 passes the proptests and fails here).
#[test]
fn worst_case_sums_stay_within_the_accumulator_bounds() {
    for cols in [6912, 8192 + 37] {
        for w in [1i8, -1, 0] {
            // w = 0 stands for alternating +1/−1 by column.
            let t = Ternary::from_fn(8, cols, |_, c| if w == 0 { [1, -1][c % 2] } else { w });
            for a in [127i8, -128, -127, 0] {
                // a = 0 stands for alternating 127/−128.
                let row: Vec<i8> = (0..cols)
                    .map(|c| if a == 0 { [127, -128][c % 2] } else { a })
                    .collect();
                for batch in [1, 5] {
                    let rows: Vec<i8> = row.iter().copied().cycle().take(batch * cols).collect();
                    check_all_with(&t, &ActBuf::from_rows(&rows, batch, cols)).unwrap();
                }
            }
        }
    }
}

#[test]
fn checkpoint_packing_worked_example() {
    // FORMAT.md §2.1: out = 8, one column, t = [+1, 0, -1, +1, 0, 0, -1, -1] -> [18, 25].
    let t = Ternary::new(8, 1, vec![1, 0, -1, 1, 0, 0, -1, -1]).unwrap();
    assert_eq!(t.to_hf_packed(), vec![18, 25]);
    assert_eq!(Ternary::from_hf_packed(&[18, 25], 8, 1).unwrap(), t);
}

#[test]
fn packed_code_3_is_rejected_with_its_position() {
    let err = Ternary::from_hf_packed(&[0x55, 0x57], 4, 2).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("code 3") && msg.contains("column 1"), "{msg}");
}

#[test]
fn base3_digits_decode_exactly_for_all_243_values() {
    for v in 0..243u32 {
        let d: [u8; 5] = std::array::from_fn(|i| ((v / 3u32.pow(4 - i as u32)) % 3) as u8);
        let byte = tq1::encode5(d);
        for (i, &di) in d.iter().enumerate() {
            assert_eq!(tq1::decode_digit(byte, i), di, "value {v} digit {i}");
        }
    }
}

#[test]
fn unknown_layout_and_kernel_names_are_clear_errors() {
    let e = LayoutKind::parse("rotorx").unwrap_err().to_string();
    assert!(
        e.contains("unknown layout `rotorx`") && e.contains("hf_packed"),
        "{e}"
    );
    let e = rotor::KernelKind::parse("neon").unwrap_err().to_string();
    assert!(e.contains("unknown kernel"), "{e}");
    // `rotor` is the fastest rotor variant on this CPU (measured), always a rotor layout.
    let r = LayoutKind::parse("rotor").unwrap();
    assert!(r.is_rotor() && r == LayoutKind::rotor(), "{r}");
    for k in LayoutKind::all() {
        assert_eq!(LayoutKind::parse(k.name()).unwrap(), k);
    }
}

/// The emulated AVX-512 operations against the real AVX2 instructions with the same per-lane
/// semantics (on each 256-bit half), so the emulation itself is checked on hardware.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_emulation_matches_avx2_hardware_lane_semantics() {
    use rotor::kernels::x86_64::avx512::{Emulated, Simd512};
    use std::arch::x86_64::*;
    if Kernel::avx2().is_none() {
        return;
    }
    #[target_feature(enable = "avx2")]
    fn halves(f: u8, a: &[u8; 64], b: &[u8; 64]) -> [u8; 64] {
        let mut out = [0u8; 64];
        for h in 0..2 {
            // SAFETY: 32-byte loads/stores within the 64-byte arrays.
            unsafe {
                let x = _mm256_loadu_si256(a[32 * h..].as_ptr() as *const __m256i);
                let y = _mm256_loadu_si256(b[32 * h..].as_ptr() as *const __m256i);
                let r = match f {
                    0 => _mm256_maddubs_epi16(x, y),
                    1 => _mm256_madd_epi16(x, y),
                    2 => _mm256_srli_epi16(x, 4),
                    3 => _mm256_add_epi16(x, y),
                    _ => _mm256_add_epi32(x, y),
                };
                _mm256_storeu_si256(out[32 * h..].as_mut_ptr() as *mut __m256i, r);
            }
        }
        out
    }
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut bytes = || -> [u8; 64] {
        std::array::from_fn(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
    };
    for i in 0..2000 {
        let (mut a, b) = (bytes(), bytes());
        if i % 3 == 0 {
            a = [255; 64]; // saturation corner of maddubs
        }
        // SAFETY: AVX2 checked above.
        let hw = |f| unsafe { halves(f, &a, &b) };
        assert_eq!(Emulated::maddubs_epi16(a, b), hw(0), "maddubs");
        assert_eq!(Emulated::madd_epi16(a, b), hw(1), "madd");
        assert_eq!(Emulated::srli_epi16(a, 4), hw(2), "srli");
        assert_eq!(Emulated::add_epi16(a, b), hw(3), "add16");
        assert_eq!(Emulated::add_epi32(a, b), hw(4), "add32");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The float kernels (head, attention) are bit-identical across kernel families: same
    /// operations in the same order, so logits do not depend on the kernel.
    #[test]
    fn float_dots_are_bit_identical_across_kernels(n in prop_oneof![0usize..200, (1usize..20).prop_map(|m| 16 * m)], seed in any::<u64>()) {
        use rotor::kernels::float;
        let mut r = rotor::sample::Rng::new(seed);
        let x: Vec<f32> = (0..n).map(|_| r.next_normalish() * 10f32.powi((r.next_u64() % 7) as i32 - 3)).collect();
        let y: Vec<f32> = (0..n).map(|_| r.next_normalish()).collect();
        let w: Vec<u16> = y.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect();
        let want_b = float::dot_bf16_portable(&x, &w);
        let want_f = float::dot_f32_portable(&x, &y);
        for k in Kernel::available() {
            prop_assert_eq!(float::dot_bf16(k, &x, &w).to_bits(), want_b.to_bits(), "bf16 {}", k);
            prop_assert_eq!(float::dot_f32(k, &x, &y).to_bits(), want_f.to_bits(), "f32 {}", k);
            // The four-at-once versions (head rows, attention keys): each the same bits.
            let w4 = float::dot_bf16_x4(k, &x, [&w, &w, &w, &w]);
            let f4 = float::dot_f32_x4(k, &x, [&y, &y, &y, &y]);
            for j in 0..4 {
                prop_assert_eq!(w4[j].to_bits(), want_b.to_bits(), "bf16 x4 {}", k);
                prop_assert_eq!(f4[j].to_bits(), want_f.to_bits(), "f32 x4 {}", k);
            }
        }
    }
}
