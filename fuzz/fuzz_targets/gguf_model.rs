//! A valid GGUF prefix with a fuzzed remainder: the tiny model in `fuzz/fixtures/` (made by
//! `rotor export`, see docs/RELIABILITY.md) is cut at one of its structural boundaries — the end
//! of the metadata, the end of the tensor infos, or the start of any tensor's data — and the
//! fuzzer's bytes become the rest of the file. The first input byte picks the cut and the I2_S
//! byte order; the model is then built, so the fuzzer spends its time past the header: tensor
//! infos, sizes, offsets, codes, scales, norms, and the config they imply.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use rotor::gguf::quants::i2s;
use rotor::gguf::{GgufFile, build_model};
use rotor::model::LoadOptions;

static FIXTURE: &[u8] = include_bytes!("../fixtures/tiny-i2s-arm.gguf");

/// Byte offsets where the prefix may end (the same list `engine/examples/fuzz_seeds.rs` uses).
fn cuts() -> &'static [usize] {
    static CUTS: OnceLock<Vec<usize>> = OnceLock::new();
    CUTS.get_or_init(|| {
        let f = GgufFile::from_bytes(Path::new("fixture.gguf"), FIXTURE.to_vec())
            .expect("the fixture is a valid GGUF");
        let mut v = vec![f.tensor_info_offset, f.data_offset];
        v.extend(f.tensors().iter().map(|t| t.start));
        v
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let cuts = cuts();
    let cut = cuts[sel as usize % cuts.len()];
    let order = i2s::Order::ALL[(sel as usize / cuts.len()) % 3];
    let mut bytes = FIXTURE[..cut].to_vec();
    bytes.extend_from_slice(rest);
    let Ok(mut f) = GgufFile::from_bytes(Path::new("fuzz.gguf"), bytes) else {
        return;
    };
    f.set_i2s_order(order);
    let opts = LoadOptions {
        threads: Some(1),
        ..Default::default()
    };
    let _ = build_model(&f, &opts, false, Instant::now());
});
