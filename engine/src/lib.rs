//! rotor: a BitNet b1.58 inference engine with ternary weights in the rotor bit-plane layout.
//!
//! - [`ternary`]: one ternary matrix, many storage layouts behind one trait, a dense oracle.
//! - [`kernels`]: scalar and SIMD kernels, chosen at runtime; float kernels for the head.
//! - [`quant`]: per-token absmax int8 activation quantization, absmean weight ternarization.
//! - [`model`]: config, checkpoint loading (safetensors over mmap), conversion, forward pass.
//! - [`tokenizer`], [`sample`], [`generate`]: text in, text out.
//! - [`synth`]: random models in the exact checkpoint format, for tests and speed runs.

pub mod error;
pub mod kernels;
pub mod ternary;

pub use error::{Error, Result};
pub use kernels::{Kernel, KernelKind};
pub use ternary::{LayoutKind, Ternary, TernaryLayout};
pub mod bench;
pub mod faults;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod perplexity;
pub mod progress;
pub mod quant;
pub mod sample;
pub mod synth;
pub mod sys;
pub mod tokenizer;
pub mod verify;
