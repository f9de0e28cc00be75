//! GGUF in and out: read BitNet b1.58 models from llama.cpp / bitnet.cpp GGUF files, and write
//! them for llama.cpp.
//!
//! - [`read`]: the container (GGUF v2/v3 over an mmap) with bounds-checked parsing and
//!   tensor decoding ([`GgufFile`]).
//! - [`quants`]: the block formats — `TQ2_0`, `TQ1_0`, `I2_S` (ternary, exact), `Q8_0`, `Q6_K`,
//!   F16, BF16 (the embedding/head) — each with a byte/bit diagram and its source.
//! - [`model`]: GGUF metadata and tensor names → [`crate::model::Config`] and
//!   [`Model::from_parts`](crate::model::Model::from_parts) ([`load_model`]).
//! - [`write`]: a streaming GGUF writer and the exporter behind `rotor export` ([`export`]).
//!
//! [`Model::load`](crate::model::Model::load) delegates here when given a `.gguf` file, or a
//! directory holding exactly one `*.gguf` and no safetensors checkpoint.
//!
//! **What is exact.** Ternary weights round-trip bit for bit through every ternary type. The
//! per-tensor scale is f32 in I2_S (exact) and f16 in TQ1_0/TQ2_0 (exact for the released
//! checkpoint's bf16 `weight_scale` whenever it lies in f16's normal range, rounded for an f32
//! absmean from bf16 masters). A BF16 head is exact; F16 is exact for bf16 values in f16's
//! normal range (bf16's 8 significant bits fit f16's 11); Q8_0/Q6_K are lossy.
//!
//! **When not to use it.** The engine runs ternary projections with one scale per tensor:
//! files quantized with per-block scales that differ (llama-quantize from non-ternary weights),
//! or with Q4/Q8 projections, are refused with a message saying so. bitnet.cpp's TL1/TL2 are
//! not read. Upstream llama.cpp cannot load `I2_S` at all (type 36 exists only in bitnet.cpp's
//! fork).
//!
//! **I2_S is ambiguous.** bitnet.cpp writes type 36 in three byte orders — x86 (128-weight /
//! 32-byte blocks), ARM (64 / 16) and, for x86 builds without `ACT_PARALLEL`, four rows
//! interleaved per byte — and nothing in the file says which (FORMAT.md §8.3). Every byte is
//! valid in every order, so a file in another order than the one assumed loads without error and
//! gives wrong logits. The reader assumes x86 (what Microsoft's converter writes) unless told
//! otherwise ([`GgufOptions::i2s_order`], `--i2s-order`); `rotor inspect` says so for every
//! I2_S file.

pub mod model;
pub mod quants;
pub mod read;
pub mod types;
pub mod write;

pub use model::{GgufOptions, build_model, gguf_path, load_model, load_model_with};
pub use read::{GgufFile, TensorInfo};
pub use types::{GgmlType, Value, ValueType};
pub use write::{
    ExportOptions, ExportReport, HeadType, TensorSpec, TernaryType, export, write_gguf,
};
