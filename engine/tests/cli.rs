//! The `rotor` command line end to end on synthesized models: the JSON contracts of DESIGN.md,
//! and a clear error (exit code 1, a sentence naming what and where, never a panic) for every
//! kind of bad input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde_json::Value;

struct TmpDir(PathBuf);

impl TmpDir {
    fn new(name: &str) -> TmpDir {
        let p = std::env::temp_dir().join(format!("rotor-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TmpDir(p)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rotor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .env_remove("ROTOR_KERNEL")
        .output()
        .expect("run rotor")
}

fn ok(args: &[&str]) -> String {
    let o = rotor(args);
    assert!(
        o.status.success(),
        "rotor {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Run and expect failure with every `needle` in stderr (and no panic).
fn fails(args: &[&str], needles: &[&str]) {
    let o = rotor(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "rotor {args:?} should fail cleanly; stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "rotor {args:?} panicked:\n{err}");
    for n in needles {
        assert!(
            err.contains(n),
            "rotor {args:?}: stderr lacks `{n}`:\n{err}"
        );
    }
}

fn synth(dir: &Path, preset: &str, variant: &str, seed: u64) {
    ok(&[
        "synth",
        "--preset",
        preset,
        "--seed",
        &seed.to_string(),
        "--variant",
        variant,
        "--out",
        dir.to_str().unwrap(),
    ]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Rewrite `model.safetensors` of `dir`, letting `edit` change the tensor list.
fn rewrite(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut ts: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    edit(&mut ts);
    let views: Vec<(String, TensorView)> = ts
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize_to_file(views, Some(meta), &path).unwrap();
}

fn logits(dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--tokens",
        "1,5,9,300,7",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

#[test]
fn synth_inspect_logits_generate_perplexity() {
    let t = TmpDir::new("e2e");
    let m = t.0.join("tiny");
    synth(&m, "tiny", "packed", 3);
    let ms = m.to_str().unwrap();

    let info: Value = serde_json::from_str(&ok(&["inspect", "--model", ms, "--json"])).unwrap();
    assert_eq!(info["tensor_count"], 2 * 18 + 2);
    assert_eq!(info["has_lm_head"], false);
    assert_eq!(info["layouts"]["rotor-pn"]["bits_per_weight"], 2.0);

    let l = logits(&m, &[]);
    assert_eq!(l["tokens"].as_array().unwrap().len(), 5);
    let rows = l["logits"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].as_array().unwrap().len(), 1024);
    // Every layout and kernel: the same numbers, bit for bit.
    for layout in ["rotor", "rotor-ms", "hf_packed", "i2", "tq1", "dense"] {
        for kernel in ["scalar", "avx2"] {
            if kernel == "avx2" && !std::is_x86_feature_detected!("avx2") {
                continue;
            }
            let o = logits(&m, &["--layout", layout, "--kernel", kernel]);
            assert_eq!(o["logits"], l["logits"], "{layout} × {kernel}");
        }
    }
    // Verification on: same logits, and a summary line.
    let o = rotor(&[
        "logits",
        "--model",
        ms,
        "--tokens",
        "1,5,9,300,7",
        "--verify",
    ]);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["logits"], l["logits"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 mismatches"));

    let g: Value = serde_json::from_str(&ok(&[
        "generate",
        "--model",
        ms,
        "--tokens",
        "1,2,3",
        "--max-tokens",
        "6",
        "--temperature",
        "0",
        "--json",
    ]))
    .unwrap();
    assert_eq!(g["prompt_ids"], serde_json::json!([1, 2, 3]));
    let ids = g["generated_ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 6);
    // Greedy is the argmax of the logits.
    let l3 = logits_of(&m, &[1, 2, 3]);
    let first = argmax(l3.last().unwrap());
    assert_eq!(ids[0].as_u64().unwrap() as usize, first);

    // Text in, text out (tokenizer), chat format, sampling with a seed is reproducible.
    let gen_ids = || -> Value {
        let v: Value = serde_json::from_str(&ok(&[
            "generate",
            "--model",
            ms,
            "--prompt",
            "Emma was",
            "--max-tokens",
            "8",
            "--seed",
            "5",
            "--json",
        ]))
        .unwrap();
        v["generated_ids"].clone()
    };
    assert_eq!(gen_ids(), gen_ids());
    let c: Value = serde_json::from_str(&ok(&[
        "generate",
        "--model",
        ms,
        "--prompt",
        "Hi",
        "--chat",
        "--max-tokens",
        "3",
        "--json",
    ]))
    .unwrap();
    assert!(c["prompt_ids"].as_array().unwrap().len() > 3);

    // Perplexity on shipped text: a random model is near-uniform (PPL of the order of vocab).
    let text = t.0.join("t.txt");
    std::fs::write(
        &text,
        include_str!("../../datasets/corpus/test.txt")
            .chars()
            .take(20_000)
            .collect::<String>(),
    )
    .unwrap();
    let ppl_args = [
        "perplexity",
        "--model",
        ms,
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "64",
        "--chunks",
        "4",
        "--json",
    ];
    let p: Value = serde_json::from_str(&ok(&ppl_args)).unwrap();
    let ppl = p["ppl"].as_f64().unwrap();
    assert!(ppl > 50.0 && ppl < 1e5, "{p}");
    assert_eq!(p["tokens_scored"], 4 * (64 - 32 - 1));
    assert_eq!(p["ffn_act"], "relu2");

    // The research switch: SiLU computes a different function (another perplexity, another
    // set of logits), says so on stderr, and an unknown activation is a clear error.
    let o = rotor(&[&ppl_args[..], &["--ffn-act", "silu"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("research switch"));
    let q: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(q["ffn_act"], "silu");
    assert_ne!(q["mean_nll"], p["mean_nll"], "{q} vs {p}");
    fails(
        &[
            "logits",
            "--model",
            ms,
            "--tokens",
            "1,2",
            "--ffn-act",
            "gelu",
        ],
        &["unknown FFN activation `gelu`"],
    );
}

fn logits_of(m: &Path, ids: &[u32]) -> Vec<Vec<f32>> {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let v: Value = serde_json::from_str(&ok(&[
        "logits",
        "--model",
        m.to_str().unwrap(),
        "--tokens",
        &ids.join(","),
    ]))
    .unwrap();
    v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

#[test]
fn packed_and_bf16_master_releases_of_one_model_agree() {
    let t = TmpDir::new("variants");
    let (p, b) = (t.0.join("packed"), t.0.join("bf16"));
    synth(&p, "tiny", "packed", 11);
    synth(&b, "tiny", "bf16", 11);
    let (lp, lb) = (
        logits_of(&p, &[1, 2, 3, 4, 5, 6]),
        logits_of(&b, &[1, 2, 3, 4, 5, 6]),
    );
    let maxabs = lp.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
    let diff = lp
        .iter()
        .flatten()
        .zip(lb.iter().flatten())
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    println!("packed vs bf16 master: max |Δlogit| {diff} of max |logit| {maxabs}");
    // The releases differ only by the rounding of the scale (bf16 vs f32), FORMAT.md §4.
    assert!(diff <= 0.05 * maxabs, "{diff} vs {maxabs}");
}

#[test]
fn sharded_checkpoint_loads_like_the_single_file() {
    let t = TmpDir::new("shards");
    let m = t.0.join("m");
    synth(&m, "tiny", "packed", 4);
    let want = logits_of(&m, &[3, 1, 4, 1, 5]);
    let s = t.0.join("sharded");
    copy_dir(&m, &s);
    let bytes = std::fs::read(s.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (i, part) in [a, b].iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let views: Vec<(String, TensorView)> = part
            .iter()
            .map(|n| (n.clone(), st.tensor(n).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, &s.join(&file)).unwrap();
        for n in part.iter() {
            map.insert(n.clone(), Value::String(file.clone()));
        }
    }
    drop(st);
    std::fs::remove_file(s.join("model.safetensors")).unwrap();
    std::fs::write(
        s.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    assert_eq!(logits_of(&s, &[3, 1, 4, 1, 5]), want);
}

/// `--model` naming nothing, or a file where a directory is expected, says exactly that — before
/// any other complaint (a missing tokenizer, a missing config.json).
#[test]
fn model_path_errors_say_what_is_wrong() {
    let t = TmpDir::new("paths");
    let m = t.0.join("tiny");
    synth(&m, "tiny", "packed", 2);
    let missing = t.0.join("nonexistent");
    let ms = missing.to_str().unwrap();
    let no_dir = format!("--model {ms}: no such directory");
    for args in [
        vec!["generate", "--model", ms, "--prompt", "hi"],
        vec!["generate", "--model", ms, "--tokens", "1,2"],
        vec!["logits", "--model", ms, "--prompt", "hi"],
        vec!["perplexity", "--model", ms, "--text", "x.txt"],
        vec!["inspect", "--model", ms],
        vec!["bench", "--model", ms],
        vec!["export", "--model", ms, "--out", "x.gguf"],
    ] {
        fails(&args, &[&no_dir]);
        let o = rotor(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("tokenizer") && !err.contains("config.json:"),
            "{args:?} blames something else:\n{err}"
        );
    }
    // A file given where the model directory is expected: named, with the directory to pass.
    let cfg = m.join("config.json");
    let st = m.join("model.safetensors");
    for f in [&cfg, &st] {
        let fs = f.to_str().unwrap();
        for args in [
            vec!["generate", "--model", fs, "--prompt", "hi"],
            vec!["logits", "--model", fs, "--tokens", "1"],
            vec!["inspect", "--model", fs],
        ] {
            fails(
                &args,
                &[
                    &format!("--model {fs} is a file, not a model directory"),
                    &format!("pass the directory that holds it ({})", m.display()),
                ],
            );
        }
    }
    // A directory that exists but holds no model: the missing file is named.
    let empty = t.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(
        &[
            "logits",
            "--model",
            empty.to_str().unwrap(),
            "--tokens",
            "1",
        ],
        &["config.json", "No such file"],
    );
    // A GGUF file has no tokenizer.json: --prompt says so and points to --tokens.
    let g = t.0.join("tiny.gguf");
    std::fs::copy(&st, &g).unwrap(); // not valid GGUF, but the tokenizer check comes first
    fails(
        &["generate", "--model", g.to_str().unwrap(), "--prompt", "hi"],
        &["is a GGUF file", "--tokens"],
    );
}

/// `--tokens` lists: every malformed entry is named (clap reports the error, exit status 2).
#[test]
fn token_lists_are_parsed_strictly() {
    let t = TmpDir::new("tokens");
    let m = t.0.join("tiny");
    synth(&m, "tiny", "packed", 2);
    let ms = m.to_str().unwrap();
    for (list, needle) in [
        ("1,,2", "entry 2 is empty"),
        ("1,2,", "entry 3 is empty"),
        ("1,x", "entry 2 `x` is not a token id"),
        ("-1", "entry 1 `-1` is not a token id"),
        ("4294967296", "larger than the largest token id 4294967295"),
        ("", "no token ids given"),
    ] {
        let o = rotor(&["logits", "--model", ms, &format!("--tokens={list}")]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{list:?}: {err}");
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{list:?}: {err}"
        );
    }
    // Spaces around ids are fine, and the result is the same as without.
    let a = logits(&m, &[]);
    let o = ok(&["logits", "--model", ms, "--tokens", "1, 5 ,9,300,7"]);
    assert_eq!(
        serde_json::from_str::<Value>(&o).unwrap()["logits"],
        a["logits"]
    );
    // generate --max-tokens at the top of usize: bounded by the context, no overflow.
    let g: Value = serde_json::from_str(&ok(&[
        "generate",
        "--model",
        ms,
        "--tokens",
        "1,2",
        "--max-tokens",
        &usize::MAX.to_string(),
        "--temperature",
        "0",
        "--json",
    ]))
    .unwrap();
    // The context (512) holds the prompt and every generated token but the last, which is
    // sampled without being fed back.
    let n = g["generated_ids"].as_array().unwrap().len();
    assert!(n <= 512 - 2 + 1, "{n} tokens, stop {}", g["stop"]);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let t = TmpDir::new("bad");
    let good = t.0.join("good");
    synth(&good, "tiny", "packed", 1);
    let case = |name: &str| -> PathBuf {
        let d = t.0.join(name);
        copy_dir(&good, &d);
        d
    };
    let run_logits = |d: &Path| -> Vec<String> {
        vec![
            "logits".into(),
            "--model".into(),
            d.to_str().unwrap().into(),
            "--tokens".into(),
            "1,2".into(),
        ]
    };
    let check = |d: &Path, needles: &[&str]| {
        let a = run_logits(d);
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        fails(&a, needles);
    };

    // Truncated download.
    let d = case("truncated");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("model.safetensors"))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 1000).unwrap();
    check(&d, &["model.safetensors", "truncated"]);

    // Not a safetensors file at all.
    let d = case("garbage");
    std::fs::write(d.join("model.safetensors"), b"this is not a checkpoint").unwrap();
    check(&d, &["model.safetensors", "not a valid safetensors file"]);

    // Missing tensor.
    let d = case("missing");
    rewrite(&d, |ts| {
        ts.retain(|t| t.0 != "model.layers.1.mlp.up_proj.weight")
    });
    check(&d, &["model.layers.1.mlp.up_proj.weight", "missing"]);

    // Wrong dtype and wrong shape.
    let d = case("dtype");
    rewrite(&d, |ts| {
        let t = ts
            .iter_mut()
            .find(|t| t.0 == "model.layers.0.self_attn.q_proj.weight")
            .unwrap();
        t.1 = Dtype::I8;
    });
    check(&d, &["model.layers.0.self_attn.q_proj.weight", "U8", "I8"]);
    let d = case("shape");
    rewrite(&d, |ts| {
        let t = ts
            .iter_mut()
            .find(|t| t.0 == "model.layers.0.self_attn.o_proj.weight")
            .unwrap();
        t.2 = vec![t.2[1], t.2[0]];
    });
    check(
        &d,
        &["model.layers.0.self_attn.o_proj.weight", "expected shape"],
    );

    // NaN, zero, negative weight_scale.
    for (name, v) in [("nan", f32::NAN), ("zero", 0.0), ("negative", -1.5)] {
        let d = case(name);
        rewrite(&d, |ts| {
            let t = ts
                .iter_mut()
                .find(|t| t.0 == "model.layers.1.mlp.down_proj.weight_scale")
                .unwrap();
            t.3 = half::bf16::from_f32(v).to_le_bytes().to_vec();
        });
        check(
            &d,
            &[
                "model.layers.1.mlp.down_proj.weight_scale",
                "weight_scale is",
            ],
        );
    }

    // A weight byte holding the invalid code 3.
    let d = case("code3");
    rewrite(&d, |ts| {
        let t = ts
            .iter_mut()
            .find(|t| t.0 == "model.layers.0.mlp.gate_proj.weight")
            .unwrap();
        t.3[5] = 0xff;
    });
    check(&d, &["model.layers.0.mlp.gate_proj.weight", "code 3"]);

    // Config problems.
    let edit_config = |name: &str, f: &dyn Fn(&mut Value)| -> PathBuf {
        let d = case(name);
        let mut c: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(d.join("config.json"), c.to_string()).unwrap();
        d
    };
    let d = edit_config("act", &|c| c["hidden_act"] = "silu".into());
    check(&d, &["config.json", "hidden_act `silu`"]);
    let d = edit_config("heads", &|c| c["num_key_value_heads"] = 3.into());
    check(
        &d,
        &["config.json", "not a multiple of num_key_value_heads"],
    );
    let d = edit_config("online", &|c| {
        c["quantization_config"]["quantization_mode"] = "online".into()
    });
    check(&d, &["quantization_mode online"]);
    let d = edit_config("noquant", &|c| {
        c.as_object_mut().unwrap().remove("quantization_config");
    });
    check(&d, &["no quantization_config"]);

    // Token id out of range, context overflow, missing tokenizer, unknown names.
    let gs = good.to_str().unwrap();
    fails(
        &["logits", "--model", gs, "--tokens", "1,5000"],
        &["token id 5000", "vocab_size = 1024"],
    );
    let long: Vec<String> = (0..600).map(|i| (i % 100).to_string()).collect();
    fails(
        &["logits", "--model", gs, "--tokens", &long.join(",")],
        &["600 tokens", "context of 512"],
    );
    fails(
        &["generate", "--model", gs, "--tokens", &long.join(",")],
        &["context"],
    );
    // A tokenizer.json cut off inside its `decoder` object (tokenizers 0.23 panicked on this;
    // found by the model_dir fuzz target).
    let d = case("cuttok");
    let tj = std::fs::read_to_string(d.join("tokenizer.json")).unwrap();
    let cut = tj
        .find("\"decoder\"")
        .expect("synth tokenizer has a decoder")
        + 20;
    std::fs::write(d.join("tokenizer.json"), &tj[..cut]).unwrap();
    fails(
        &[
            "generate",
            "--model",
            d.to_str().unwrap(),
            "--prompt",
            "hello",
        ],
        &["tokenizer.json", "not valid JSON", "EOF"],
    );
    let d = case("notok");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    fails(
        &[
            "generate",
            "--model",
            d.to_str().unwrap(),
            "--prompt",
            "hello",
        ],
        &["no tokenizer.json", "--tokens"],
    );
    fails(
        &[
            "logits", "--model", gs, "--tokens", "1", "--layout", "rotor9",
        ],
        &["unknown layout `rotor9`"],
    );
    fails(
        &["logits", "--model", gs, "--tokens", "1", "--kernel", "neon"],
        &["unknown kernel `neon`"],
    );
    if !std::is_x86_feature_detected!("avx512bw") {
        fails(
            &[
                "logits", "--model", gs, "--tokens", "1", "--kernel", "avx512",
            ],
            &["cannot run the `avx512` kernel"],
        );
    }
    fails(
        &["logits", "--model", "/nonexistent/model", "--tokens", "1"],
        &["--model /nonexistent/model: no such directory"],
    );
    fails(
        &[
            "synth",
            "--preset",
            "huge",
            "--out",
            t.0.join("x").to_str().unwrap(),
        ],
        &["unknown preset `huge`"],
    );
    fails(
        &["generate", "--model", gs, "--tokens", "1", "--top-p", "0"],
        &["--top-p"],
    );
}
