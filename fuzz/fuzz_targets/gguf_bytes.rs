//! Fully arbitrary bytes as a GGUF file: parse, decode every tensor the header names, map the
//! metadata onto a config, and build the model. Every step must return `Ok` or a clear `Err` —
//! never panic, abort, hang, or allocate more than the file's size justifies (the `just fuzz`
//! recipe runs libFuzzer with `-rss_limit_mb` and `-timeout`).
#![no_main]

use std::path::Path;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use rotor::gguf::quants::i2s;
use rotor::gguf::{GgufFile, build_model, model};
use rotor::model::LoadOptions;

fuzz_target!(|data: &[u8]| {
    let Ok(mut f) = GgufFile::from_bytes(Path::new("fuzz.gguf"), data.to_vec()) else {
        return;
    };
    // The I2_S byte order is the caller's choice: let the input pick it.
    f.set_i2s_order(i2s::Order::ALL[data.len() % 3]);
    let _ = model::config(&f);
    for t in f.tensors().to_vec() {
        let _ = f.to_f32(&t);
        let _ = f.ternary_codes(&t);
    }
    let opts = LoadOptions {
        threads: Some(1),
        ..Default::default()
    };
    let _ = build_model(&f, &opts, false, Instant::now());
});
