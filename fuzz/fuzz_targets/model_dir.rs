//! The text side of a model directory, as `rotor generate` and `rotor export` read it: an
//! arbitrary `tokenizer.json`, an optional `generation_config.json`, an optional
//! `tokenizer_config.json`, and a prompt (the input's parts, separated by NUL bytes, which JSON
//! text never contains). The tokenizer is loaded, the stop ids collected, the prompt (plain and
//! in the chat format) encoded, decoded and streamed back, and the GGUF tokenizer metadata that
//! `rotor export` writes (token list, merges, special ids, chat template) built.
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
    let mut parts = data.splitn(4, |&b| b == 0);
    let tokenizer = parts.next().unwrap_or_default();
    let generation = parts.next();
    let tokenizer_config = parts.next();
    let prompt = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    std::fs::write(dir.join("tokenizer.json"), tokenizer).unwrap();
    for (name, content) in [
        ("generation_config.json", generation),
        ("tokenizer_config.json", tokenizer_config),
    ] {
        let path = dir.join(name);
        match content {
            Some(c) => std::fs::write(&path, c).unwrap(),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    if let Ok(Some(meta)) = rotor::gguf::write::tokenizer_metadata(
        dir,
        config.vocab_size,
        config.bos_token_id,
        &config.eos_token_ids,
    ) {
        // What the exporter would write must be writable (arrays of one type).
        let mut sink = Vec::new();
        rotor::gguf::write_gguf(&mut sink, dir, &meta, &[], 32, |_| Ok(vec![])).unwrap();
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
