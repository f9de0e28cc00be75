//! Fuzz every layout × kernel (this CPU's) × conversion path against the dense oracle.
//! Input bytes: rows, cols, batch, then weights (mod 3) and activations (raw i8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotor::kernels::Kernel;
use rotor::ternary::parallel;
use rotor::ternary::{ActBuf, LayoutKind, Ternary};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let rows = 1 + data[0] as usize % 48;
    let cols = 1 + (data[1] as usize | (data[2] as usize & 3) << 8) % 700;
    let batch = 1 + data[3] as usize % 5;
    let body = &data[4..];
    if body.is_empty() {
        return;
    }
    let byte = |i: usize| body[i % body.len()];
    let t = Ternary::from_fn(rows, cols, |r, c| (byte(r * cols + c) % 3) as i8 - 1);
    let xs: Vec<i8> = (0..batch * cols)
        .map(|i| byte(rows * cols + i) as i8)
        .collect();
    let x = ActBuf::from_rows(&xs, batch, cols);
    let want = t.gemm_oracle(&x.view());
    let packed = (rows % 4 == 0).then(|| t.to_hf_packed());
    for kind in LayoutKind::all() {
        if kind == LayoutKind::HfPacked && rows % 4 != 0 {
            continue;
        }
        let layout = kind.from_dense(&t);
        assert_eq!(layout.to_dense(), t, "{kind} round trip");
        for k in Kernel::available() {
            if let Some(p) = &packed {
                let conv = kind.from_hf_packed(k, p, rows, cols).unwrap();
                assert_eq!(conv.to_dense(), t, "{kind} from packed with {k}");
            }
            if !layout.supports(k.kind()) {
                continue;
            }
            let mut y = vec![0i32; rows * batch];
            parallel::gemm(layout.as_ref(), k, &x.view(), &mut y);
            assert_eq!(y, want, "{kind} × {k} on {rows}x{cols} batch {batch}");
        }
    }
});
