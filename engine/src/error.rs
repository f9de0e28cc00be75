//! The engine's error type: every way a user's input can be wrong, each naming what and where.
//!
//! Bad input (a truncated file, a missing tensor, a NaN scale, a token id outside the vocabulary)
//! must reach the user as a sentence, never as a panic. Library functions return [`Error`]; the
//! CLI adds context with `anyhow` and exits non-zero.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    #[error("{path}: invalid config: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("tensor `{name}` is missing from the checkpoint ({where_})")]
    MissingTensor { name: String, where_: String },
    #[error("tensor `{name}`: expected dtype {expected}, found {found}")]
    Dtype {
        name: String,
        expected: String,
        found: String,
    },
    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}`: {msg}")]
    BadTensor { name: String, msg: String },
    #[error("token id {id} at position {pos} is outside the vocabulary (vocab_size = {vocab})")]
    TokenId { id: u32, pos: usize, vocab: usize },
    #[error(
        "sequence of {len} tokens does not fit the context of {max} positions (max_position_embeddings or --ctx)"
    )]
    Context { len: usize, max: usize },
    #[error("tokenizer {path}: {msg}")]
    Tokenizer { path: PathBuf, msg: String },
    #[error("kernel: {0}")]
    Kernel(String),
    #[error("layout: {0}")]
    Layout(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
