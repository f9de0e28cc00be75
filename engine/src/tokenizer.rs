//! Text ↔ token ids through the `tokenizers` library and the model directory's
//! `tokenizer.json` (the Llama-3 byte-level BPE for 2B-4T), plus the 2B-4T chat format, the
//! `--tokens` list parser, the end-of-sequence ids a model directory declares, and a builder for
//! Llama-3-style tokenizers trained on shipped text (for synthesized models).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokenizers::Tokenizer as HfTokenizer;

use crate::error::{Error, Result};
use crate::model::Config;

/// Parse a comma-separated list of token ids (`--tokens 128000,9906,1917`). Spaces around an id
/// are allowed; an empty list, an empty entry (`1,,2`, a trailing comma) or anything but a
/// decimal integer below 2^32 is an error naming the entry.
pub fn parse_token_ids(s: &str) -> Result<Vec<u32>> {
    if s.trim().is_empty() {
        return Err(Error::Invalid(
            "no token ids given (expected e.g. 1,2,3)".into(),
        ));
    }
    s.split(',')
        .enumerate()
        .map(|(i, piece)| {
            let p = piece.trim();
            if p.is_empty() {
                return Err(Error::Invalid(format!(
                    "token id list `{}`: entry {} is empty (ids are separated by single commas)",
                    shorten(s),
                    i + 1
                )));
            }
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::Invalid(format!(
                    "token id list: entry {} `{}` is not a token id (a decimal integer from 0 to {})",
                    i + 1,
                    shorten(p),
                    u32::MAX
                )));
            }
            p.parse::<u32>().map_err(|_| {
                Error::Invalid(format!(
                    "token id list: entry {} `{}` is larger than the largest token id {}",
                    i + 1,
                    shorten(p),
                    u32::MAX
                ))
            })
        })
        .collect()
}

/// At most 40 characters of user input for a message.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(40).collect::<String>())
    }
}

/// Every id that ends generation for the model in `dir`: `config.json`'s `eos_token_id`, those
/// listed in `generation_config.json` (when the directory has one), and the tokenizer's
/// `<|eot_id|>` / `<|end_of_text|>`. Ids outside the vocabulary are dropped (they can never be
/// sampled); a `generation_config.json` that is not valid JSON, or whose `eos_token_id` is not a
/// token id or a list of them, is an error naming the file. Sorted, without duplicates.
pub fn stop_ids(dir: &Path, config: &Config, tok: Option<&Tokenizer>) -> Result<Vec<u32>> {
    let mut ids = config.eos_token_ids.clone();
    if let Some(t) = tok {
        for s in ["<|eot_id|>", "<|end_of_text|>"] {
            ids.extend(t.token_to_id(s));
        }
    }
    let path = dir.join("generation_config.json");
    if dir.is_dir() && path.is_file() {
        let bad = |msg: String| Error::Config {
            path: path.clone(),
            msg,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        ids.extend(
            crate::model::config::token_ids("eos_token_id", obj.get("eos_token_id"))
                .map_err(bad)?,
        );
    }
    ids.retain(|&i| (i as usize) < config.vocab_size);
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The pre-tokenizer split pattern of Llama-3's `tokenizer.json`.
pub const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Llama-3's 256 special tokens in id order (offset from the first special id).
pub fn llama3_specials() -> Vec<String> {
    let named = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|reserved_special_token_2|>",
        "<|reserved_special_token_3|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|reserved_special_token_4|>",
        "<|eot_id|>",
    ];
    let mut v: Vec<String> = named.iter().map(|s| s.to_string()).collect();
    v.extend((5..251).map(|i| format!("<|reserved_special_token_{i}|>")));
    v
}

thread_local! {
    /// Set while this thread runs inside [`guard`].
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run a call into the `tokenizers` library, turning a panic inside it into an error naming the
/// file. The library has `expect`s on paths that malformed files reach (0.23: a syntax error
/// inside the `decoder` object panics in `DecoderHelper::deserialize`; a bad
/// `precompiled_charsmap` panics in the normalizer), and a user's file must give an error, not a
/// crash. While the call runs, the panic hook stays silent on this thread (the message becomes
/// the error); panics anywhere else are reported as before.
fn guard<T>(path: &Path, what: &str, f: impl FnOnce() -> T) -> Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(|g| g.get()) {
                previous(info)
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    r.map_err(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "no message".into());
        Error::Tokenizer {
            path: path.to_path_buf(),
            msg: format!(
                "the tokenizers library failed while {what} ({msg}): the file is malformed or uses a feature it cannot handle"
            ),
        }
    })
}

/// A loaded tokenizer.
pub struct Tokenizer {
    inner: HfTokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({})", self.path.display())
    }
}

impl Tokenizer {
    /// `dir/tokenizer.json`, or `None` if the directory has none.
    pub fn from_dir(dir: &Path) -> Result<Option<Tokenizer>> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Ok(None);
        }
        Tokenizer::from_file(&path).map(Some)
    }

    /// Load a `tokenizer.json`. The text is checked to be JSON first, so a truncated or
    /// corrupt file is reported with its line and column; then `tokenizers` builds the
    /// tokenizer inside [`guard`] (it panics on some malformed files).
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let err = |msg: String| Error::Tokenizer {
            path: path.to_path_buf(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            err(format!(
                "not UTF-8 text (invalid byte at offset {}): not a tokenizer.json",
                e.utf8_error().valid_up_to()
            ))
        })?;
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| err(format!("not valid JSON: {e} (truncated download?)")))?;
        let inner = guard(path, "reading the file", || {
            text.parse::<HfTokenizer>().map_err(|e| err(e.to_string()))
        })??;
        Ok(Tokenizer {
            inner,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            msg: e.to_string(),
        }
    }

    /// Token ids of `text`; `add_special` runs the post-processor (BOS for Llama-3).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = guard(&self.path, "encoding text", || {
            self.inner.encode(text, add_special)
        })?
        .map_err(|e| self.err(e))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        guard(&self.path, "decoding ids", || {
            self.inner.decode(ids, skip_special)
        })?
        .map_err(|e| self.err(e))
    }

    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        guard(&self.path, "looking up a token", || {
            self.inner.token_to_id(s)
        })
        .ok()
        .flatten()
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        guard(&self.path, "looking up an id", || {
            self.inner.id_to_token(id)
        })
        .ok()
        .flatten()
    }

    /// Size including added tokens.
    pub fn vocab_size(&self) -> usize {
        guard(&self.path, "counting the vocabulary", || {
            self.inner.get_vocab_size(true)
        })
        .unwrap_or(0)
    }

    /// The BitNet b1.58 2B-4T chat format (its `tokenizer_config.json` chat template):
    /// each message as `Role: content<|eot_id|>`, then `Assistant: `. BOS comes from the
    /// tokenizer's post-processor, not the template.
    pub fn chat_prompt(messages: &[(&str, &str)]) -> String {
        let mut s = String::new();
        for (role, content) in messages {
            let mut r = role.chars();
            let cap: String = match r.next() {
                Some(f) => f.to_uppercase().chain(r).collect(),
                None => String::new(),
            };
            s.push_str(&format!("{cap}: {}<|eot_id|>", content.trim()));
        }
        s.push_str("Assistant: ");
        s
    }

    /// A streaming decoder that yields text as soon as it is complete UTF-8.
    pub fn stream(&self) -> TextStream<'_> {
        TextStream {
            tok: self,
            ids: Vec::new(),
            printed: 0,
        }
    }
}

/// Incremental detokenization: decode the whole sequence each step and emit the new suffix,
/// holding back while the tail is an incomplete UTF-8 sequence (`�`). Ids the tokenizer does not
/// know (possible with synthesized models whose vocabulary has gaps) are shown as `⟨id⟩`.
pub struct TextStream<'t> {
    tok: &'t Tokenizer,
    ids: Vec<u32>,
    printed: usize,
}

impl TextStream<'_> {
    pub fn push(&mut self, id: u32) -> Result<String> {
        if self.tok.id_to_token(id).is_none() {
            let mut out = self.flush()?;
            out.push_str(&format!("⟨{id}⟩"));
            return Ok(out);
        }
        self.ids.push(id);
        let text = self.tok.decode(&self.ids, true)?;
        // Hold back while the tail is incomplete UTF-8, or when a decoder is not prefix-stable
        // and the text printed so far no longer ends on a character boundary.
        let Some(new) = text
            .get(self.printed..)
            .filter(|_| !text.ends_with('\u{FFFD}'))
            .map(str::to_string)
        else {
            return Ok(String::new());
        };
        self.printed = text.len();
        // Keep the context short: re-decoding from scratch costs O(n) per token.
        if self.ids.len() > 64 {
            self.ids.clear();
            self.printed = 0;
        }
        Ok(new)
    }

    pub fn flush(&mut self) -> Result<String> {
        let text = self.tok.decode(&self.ids, true)?;
        let out = text.get(self.printed..).unwrap_or("").to_string();
        self.ids.clear();
        self.printed = 0;
        Ok(out)
    }
}

/// Train a byte-level BPE with Llama-3's pre-tokenizer, decoder and post-processor on `text`,
/// with `n_bpe` regular tokens (ids `0..n_bpe`) and Llama-3's 256 special tokens at
/// `special_base ..`. Returns the `tokenizer.json` text.
pub fn train_llama3_style(text: &str, n_bpe: usize, special_base: u32) -> Result<String> {
    use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::{
        DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
        SplitDelimiterBehavior, TokenizerBuilder,
    };
    let bad = |e: &dyn std::fmt::Display| Error::Tokenizer {
        path: PathBuf::from("<trained>"),
        msg: e.to_string(),
    };
    if (special_base as usize) < n_bpe {
        return Err(Error::Invalid(format!(
            "special tokens at {special_base} would overlap {n_bpe} BPE tokens"
        )));
    }
    let split = Split::new(
        SplitPattern::Regex(LLAMA3_SPLIT.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| bad(&e))?;
    let pre = Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
    ]);
    let mut tok = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(pre)))
    .with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())))
    .build()
    .map_err(|e| bad(&e))?;
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(n_bpe)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    tok.train(&mut trainer, text.lines().filter(|l| !l.trim().is_empty()))
        .map_err(|e| bad(&e))?;
    let mut v: Value =
        serde_json::from_str(&tok.to_string(false).map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    let specials = llama3_specials();
    let model = v
        .get_mut("model")
        .and_then(|m| m.as_object_mut())
        .ok_or_else(|| bad(&"no model"))?;
    model.insert("ignore_merges".into(), json!(true));
    model.insert("byte_fallback".into(), json!(false));
    let vocab = model
        .get_mut("vocab")
        .and_then(|x| x.as_object_mut())
        .ok_or_else(|| bad(&"no vocab"))?;
    for (i, s) in specials.iter().enumerate() {
        vocab.insert(s.clone(), json!(special_base + i as u32));
    }
    v["added_tokens"] = Value::Array(
        specials
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({"id": special_base + i as u32, "content": s, "single_word": false,
                       "lstrip": false, "rstrip": false, "normalized": false, "special": true})
            })
            .collect(),
    );
    v["post_processor"] = json!({
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>",
                                 "ids": [special_base], "tokens": ["<|begin_of_text|>"]}}}
        ]
    });
    let out = serde_json::to_string_pretty(&v).map_err(|e| bad(&e))?;
    // Round-trip through the library to prove the file loads.
    let check: HfTokenizer = out.parse().map_err(|e: tokenizers::Error| bad(&e))?;
    if check.token_to_id("<|begin_of_text|>") != Some(special_base) {
        return Err(bad(&"special tokens did not land at their ids"));
    }
    Ok(out)
}

/// `tokenizer_config.json` for a synthesized model (chat template as 2B-4T's).
pub fn tokenizer_config_json() -> Value {
    json!({
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "model_max_length": 4096,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = message['role'] | capitalize + ': '+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,
"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"vocab":{"a":0,"b":1,"ab":2},
"merges":["a b"]}}"#;

    fn load(name: &str, text: &str) -> Result<Tokenizer> {
        let dir = std::env::temp_dir().join(format!("rotor-tok-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tokenizer.json"), text).unwrap();
        let r = Tokenizer::from_dir(&dir).map(|t| t.expect("file exists"));
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn a_minimal_tokenizer_loads_and_round_trips() {
        let t = load("ok", MINIMAL).unwrap();
        let ids = t.encode("ab", false).unwrap();
        assert_eq!(ids, vec![2]);
        assert_eq!(t.decode(&ids, true).unwrap(), "ab");
    }

    /// Regression (fuzz target model_dir, first crash): a syntax error inside the `decoder`
    /// object made `tokenizers` 0.23 panic (`expect("Helper")`) instead of returning an error.
    /// A download cut off inside the decoder does the same.
    #[test]
    fn a_syntax_error_inside_the_decoder_is_an_error() {
        for (name, text) in [
            (
                "mutated",
                MINIMAL.replace(
                    r#""decoder":null"#,
                    r#""decoder":{"type":"ByteLevel", lse, 1:2}"#,
                ),
            ),
            (
                "truncated",
                format!(
                    r#"{}"decoder":{{"type":"Byte"#,
                    &MINIMAL[..MINIMAL.find(r#""decoder""#).unwrap()]
                ),
            ),
        ] {
            let e = load(name, &text).unwrap_err().to_string();
            assert!(
                e.contains("tokenizer.json") && e.contains("not valid JSON"),
                "{e}"
            );
        }
    }

    /// Valid JSON that `tokenizers` 0.23 panics on (`expect("Precompiled")` when the charsmap
    /// is missing): the panic becomes an error naming the file.
    #[test]
    fn a_panic_inside_tokenizers_is_an_error() {
        let text = MINIMAL.replace(
            r#""normalizer":null"#,
            r#""normalizer":{"type":"Precompiled"}"#,
        );
        let e = load("precompiled", &text).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer.json") && e.contains("the tokenizers library failed"),
            "{e}"
        );
        // Other panics are still reported normally afterwards: the guard is not left on.
        assert!(!GUARDED.with(|g| g.get()));
    }

    #[test]
    fn non_utf8_is_an_error() {
        let dir = std::env::temp_dir().join(format!("rotor-tok-{}-bin", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tokenizer.json"), b"{\"a\": \"\xff\"}").unwrap();
        let e = Tokenizer::from_dir(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn token_id_lists() {
        assert_eq!(parse_token_ids("1,2, 3 ").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_token_ids("4294967295").unwrap(), vec![u32::MAX]);
        for bad in [
            "",
            " ",
            "1,",
            ",1",
            "1,,2",
            "+1",
            "0x10",
            "1 2",
            "4294967296",
            "١",
        ] {
            assert!(parse_token_ids(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
