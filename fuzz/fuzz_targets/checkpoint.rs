//! Fuzz the checkpoint loader: arbitrary bytes as `model.safetensors` beside a valid tiny
//! `config.json` must give `Ok` or a clear `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotor::model::{LoadOptions, Model};

const CONFIG: &str = r#"{"architectures":["BitNetForCausalLM"],"model_type":"bitnet","vocab_size":16,
"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,
"num_key_value_heads":1,"hidden_act":"relu2","max_position_embeddings":16,"rms_norm_eps":1e-5,
"rope_theta":500000.0,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2,
"quantization_config":{"quant_method":"bitnet","linear_class":"autobitlinear","quantization_mode":"offline"}}"#;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("rotor-fuzz-ck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    std::fs::write(dir.join("model.safetensors"), data).unwrap();
    let opts = LoadOptions {
        threads: Some(1),
        ..Default::default()
    };
    let _ = Model::load(&dir, &opts);
});
