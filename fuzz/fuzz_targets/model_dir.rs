//! The text side of a model directory, as `rotor generate` reads it: an arbitrary
//! `tokenizer.json`, an optional `generation_config.json`, and a prompt (the input's parts,
//! separated by NUL bytes, which JSON text never contains). The tokenizer is loaded, the stop
//! ids collected, the prompt (plain and in the chat format) encoded, decoded and streamed back.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rotor::model::Config;
use rotor::tokenizer::{Tokenizer, stop_ids};

const CONFIG: &str = r#"{"model_type":"bitnet","vocab_size":1024,"hidden_size":64,
"intermediate_size":192,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,
"hidden_act":"relu2","max_position_embeddings":64,"rms_norm_eps":1e-5,"rope_theta":500000.0,
"tie_word_embeddings":true,"bos_token_id":768,"eos_token_id":769,
"quantization_config":{"quant_method":"bitnet","linear_class":"autobitlinear","quantization_mode":"offline"}}"#;

fn setup() -> &'static (PathBuf, Config) {
    static S: OnceLock<(PathBuf, Config)> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rotor-fuzz-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = Config::from_json(CONFIG, &dir.join("config.json")).unwrap();
        (dir, c)
    })
}

fuzz_target!(|data: &[u8]| {
    let (dir, config) = setup();
    let mut parts = data.splitn(3, |&b| b == 0);
    let tokenizer = parts.next().unwrap_or_default();
    let generation = parts.next();
    let prompt = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    std::fs::write(dir.join("tokenizer.json"), tokenizer).unwrap();
    let gen_path = dir.join("generation_config.json");
    match generation {
        Some(g) => std::fs::write(&gen_path, g).unwrap(),
        None => {
            let _ = std::fs::remove_file(&gen_path);
        }
    }
    let tok = Tokenizer::from_dir(dir).ok().flatten();
    if let Ok(ids) = stop_ids(dir, config, tok.as_ref()) {
        assert!(ids.iter().all(|&i| (i as usize) < config.vocab_size));
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
    let Some(t) = tok else { return };
    let _ = t.vocab_size();
    let _ = t.token_to_id("<|eot_id|>");
    for text in [prompt.clone(), Tokenizer::chat_prompt(&[("user", &prompt)])] {
        let Ok(ids) = t.encode(&text, true) else {
            continue;
        };
        let _ = t.decode(&ids, true);
        let mut stream = t.stream();
        for &id in ids.iter().take(256) {
            let _ = stream.push(id);
        }
        let _ = stream.flush();
    }
});
