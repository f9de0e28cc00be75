//! The trained models that ship in `datasets/models/` still are what their training record
//! says: each loads through the unchanged checkpoint loader, and rotor's perplexity on the
//! first test chunks reproduces `training.json`'s `export_check.exported_rotor_ppl` (the same
//! engine scored the same files when they were written). The crosscheck model must also fit
//! llama.cpp's 256-blocks, which is why it exists.

use std::path::{Path, PathBuf};

use rotor::model::{LoadOptions, Model, VerifyCtx};
use rotor::perplexity::{PplOptions, perplexity};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(name: &str) -> Model {
    let dir = root().join("datasets/models").join(name);
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("training.json")).unwrap()).unwrap();
    let model = Model::load(&dir, &LoadOptions::default()).expect("shipped model loads");
    let tok = rotor::tokenizer::Tokenizer::from_dir(&dir)
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(root().join("datasets/corpus/test.txt")).unwrap();
    let tokens = tok.encode(&text, true).unwrap();
    assert_eq!(
        tokens.len() as u64,
        rec["data"]["test_tokens"].as_u64().unwrap(),
        "{name}: the tokenizer gives another token count than in training"
    );
    let chunks = rec["export_check"]["chunks"].as_u64().unwrap() as usize;
    let ctx = rec["rotor_perplexity"]["test"]["ctx"].as_u64().unwrap() as usize;
    let want = rec["export_check"]["exported_rotor_ppl"].as_f64().unwrap();
    let r = perplexity(
        &model,
        &tokens,
        model.config.bos_token_id,
        &PplOptions {
            ctx,
            stride: None,
            max_chunks: Some(chunks),
            batch: 64,
        },
        VerifyCtx::default(),
        |_, _| {},
    )
    .unwrap();
    assert!(
        (r.ppl / want - 1.0).abs() < 1e-4,
        "{name}: PPL {} on the first {chunks} test chunks, training.json says {want}",
        r.ppl
    );
    // A trained model: far below the unigram baseline of its record.
    let unigram = rec["baselines"]["unigram_add_one_test_ppl"]
        .as_f64()
        .unwrap();
    assert!(
        r.ppl < unigram / 2.0,
        "{name}: PPL {} vs unigram {unigram}",
        r.ppl
    );
    model
}

#[test]
fn austen_tiny_reproduces_its_training_record() {
    check("austen-tiny");
}

#[test]
fn austen_tiny_i768_reproduces_its_training_record_and_fits_256_blocks() {
    let m = check("austen-tiny-i768");
    let c = &m.config;
    for (what, n) in [
        ("hidden_size", c.hidden_size),
        ("intermediate_size", c.intermediate_size),
        ("q_dim", c.q_dim()),
    ] {
        assert_eq!(n % 256, 0, "{what} = {n} is not a multiple of 256");
    }
}
