//! `config.json` parsing and validation: arbitrary text must give a validated `Config` or a
//! clear `Err`, and everything derived from a validated config must be computable (no
//! overflow: the validation checks every product the engine forms).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rotor::model::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::from_json(text, Path::new("config.json")) {
        assert!(c.num_heads % c.num_kv_heads == 0 && c.head_dim % 2 == 0);
        let _ = (c.q_dim(), c.kv_dim(), c.gqa_group(), c.ternary_params());
        for id in c.bos_token_id.iter().chain(&c.eos_token_ids) {
            assert!((*id as usize) < c.vocab_size);
        }
        assert!(c.rms_norm_eps.is_finite() && c.rms_norm_eps > 0.0);
        assert!(c.rope_theta.is_finite() && c.rope_theta > 1.0);
    }
});
