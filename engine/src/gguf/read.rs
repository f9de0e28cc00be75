//! Parsing a GGUF file (versions 2 and 3) over a read-only memory map.
//!
//! ```text
//!   offset 0   "GGUF"            magic, 4 bytes (0x46554747 as a little-endian u32)
//!          4   version           u32 (3; 2 has the same layout; 1 used 32-bit counts)
//!          8   tensor_count      u64
//!         16   metadata_kv_count u64
//!         24   metadata          kv_count × { key: string, type: u32, value }
//!              tensor infos      tensor_count × { name: string, n_dims: u32, ne: n_dims × u64
//!                                                 (ne0 first: the contiguous dimension),
//!                                                 type: u32 (ggml type), offset: u64 }
//!              padding           zeros to a multiple of `general.alignment` (u32, default 32)
//!   data_offset  tensor data     each tensor at data_offset + its offset (a multiple of the
//!                                alignment), zero-padded to the alignment
//!
//!   string = u64 byte length + UTF-8 bytes (no NUL);  array = u32 element type + u64 count +
//!   elements;  value types 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte),
//!   8 string, 9 array, 10 u64, 11 i64, 12 f64.  Everything little-endian.
//! ```
//! Sources: ggml-org/ggml `docs/gguf.md`; ggml-org/llama.cpp `ggml/src/gguf.cpp`
//! (`gguf_init_from_reader`: alignment must be a u32 power of two, at most 4 dims, tensor names
//! shorter than 64 bytes, no duplicate keys or names, `ne0` a multiple of the type's block, and
//! — in current llama.cpp — each tensor's offset equal to the padded sum of the sizes before it).
//!
//! Every length and count is checked against the bytes left before anything is allocated, and
//! every size computation is checked for overflow, so a corrupt or truncated file gives an error
//! naming the file and the first thing that is wrong, never a panic or a huge allocation.
//! Strings that are not valid UTF-8 are decoded lossily (`U+FFFD`); rotor only interprets the
//! ASCII keys and the architecture name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::quants::{self, i2s, q6_k, q8_0, tq1_0, tq2_0};
use super::types::{GgmlType, Value, ValueType};
use crate::error::{Error, Result};
use crate::ternary::Ternary;

/// The GGUF magic, `"GGUF"`.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// Array nesting this reader follows (the spec allows nesting; llama.cpp itself allows none).
const MAX_DEPTH: usize = 8;
/// Array elements in all the metadata together. A decoded [`Value`] takes 32 bytes however
/// small its encoding (one byte for a `u8`), so without a bound a file could make the reader
/// allocate 32 times its own size. 2^24 elements (≤ 512 MiB of values) is 30 times what a real
/// tokenizer needs: 2B-4T's token list, token types and merges are about 540 000 elements.
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 24;

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// One tensor's header entry, checked against the file.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` = ne0, the contiguous (input) dimension.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset relative to the data section, as stored.
    pub offset: u64,
    /// Absolute byte range in the file.
    pub start: usize,
    pub len: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product::<u64>() as usize
    }
    /// `ne0`, the length of one contiguous row.
    pub fn ne0(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }
    /// Number of rows (`ne1 · ne2 · ne3`).
    pub fn rows(&self) -> usize {
        self.n_elements() / self.ne0().max(1)
    }
}

/// A parsed GGUF file: metadata in file order, tensor infos, and the mapped bytes.
pub struct GgufFile {
    pub path: PathBuf,
    bytes: Bytes,
    pub version: u32,
    pub alignment: usize,
    /// Absolute offset of the first tensor info (the end of the metadata).
    pub tensor_info_offset: usize,
    /// Absolute offset of the data section.
    pub data_offset: usize,
    kvs: Vec<(String, Value)>,
    kv_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    t_index: HashMap<String, usize>,
    /// How I2_S tensors are decoded (the file cannot say; FORMAT.md §8.3).
    i2s_order: i2s::Order,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("kvs", &self.kvs.len())
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: not a valid GGUF file: {msg}", path.display()))
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// Array elements decoded so far (bounded by [`MAX_ARRAY_ELEMENTS`]).
    elements: u64,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(bad(
                self.path,
                format!(
                    "truncated: {} at byte {} needs {n} bytes, but the file ends at byte {}",
                    what(),
                    self.pos,
                    self.b.len()
                ),
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes(s.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        let s = self.take(8, what)?;
        Ok(u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.u64(&|| format!("the length of {}", what()))?;
        if n > self.left() as u64 {
            return Err(bad(
                self.path,
                format!(
                    "{} at byte {} claims {n} bytes, but only {} are left in the file",
                    what(),
                    self.pos - 8,
                    self.left()
                ),
            ));
        }
        let s = self.take(n as usize, what)?;
        Ok(String::from_utf8_lossy(s).into_owned())
    }

    fn value(&mut self, ty: ValueType, depth: usize, what: &dyn Fn() -> String) -> Result<Value> {
        let fixed = |c: &mut Self, n: usize| -> Result<&'a [u8]> { c.take(n, what) };
        Ok(match ty {
            ValueType::U8 => Value::U8(fixed(self, 1)?[0]),
            ValueType::I8 => Value::I8(fixed(self, 1)?[0] as i8),
            ValueType::Bool => {
                let b = fixed(self, 1)?[0];
                if b > 1 {
                    return Err(bad(
                        self.path,
                        format!("{} is a bool with byte value {b} (must be 0 or 1)", what()),
                    ));
                }
                Value::Bool(b == 1)
            }
            ValueType::U16 => Value::U16(u16::from_le_bytes(fixed(self, 2)?.try_into().unwrap())),
            ValueType::I16 => Value::I16(i16::from_le_bytes(fixed(self, 2)?.try_into().unwrap())),
            ValueType::U32 => Value::U32(u32::from_le_bytes(fixed(self, 4)?.try_into().unwrap())),
            ValueType::I32 => Value::I32(i32::from_le_bytes(fixed(self, 4)?.try_into().unwrap())),
            ValueType::F32 => Value::F32(f32::from_le_bytes(fixed(self, 4)?.try_into().unwrap())),
            ValueType::U64 => Value::U64(u64::from_le_bytes(fixed(self, 8)?.try_into().unwrap())),
            ValueType::I64 => Value::I64(i64::from_le_bytes(fixed(self, 8)?.try_into().unwrap())),
            ValueType::F64 => Value::F64(f64::from_le_bytes(fixed(self, 8)?.try_into().unwrap())),
            ValueType::String => Value::String(self.string(what)?),
            ValueType::Array => {
                if depth >= MAX_DEPTH {
                    return Err(bad(
                        self.path,
                        format!("{} nests arrays more than {MAX_DEPTH} deep", what()),
                    ));
                }
                let at = self.pos;
                let et = self.u32(&|| format!("the element type of {}", what()))?;
                let et = ValueType::from_id(et).ok_or_else(|| {
                    bad(
                        self.path,
                        format!(
                            "{} at byte {at} is an array of unknown value type {et}",
                            what()
                        ),
                    )
                })?;
                let n = self.u64(&|| format!("the length of {}", what()))?;
                // Bound the count by the bytes left before allocating anything.
                let min = n.checked_mul(et.min_size() as u64);
                if min.is_none_or(|m| m > self.left() as u64) {
                    return Err(bad(
                        self.path,
                        format!(
                            "{} at byte {at} claims {n} elements of type {et:?}, more than the {} bytes left in the file can hold",
                            what(),
                            self.left()
                        ),
                    ));
                }
                self.elements = self.elements.saturating_add(n);
                if self.elements > MAX_ARRAY_ELEMENTS {
                    return Err(bad(
                        self.path,
                        format!(
                            "{} at byte {at} brings the metadata to more than {MAX_ARRAY_ELEMENTS} array elements in all; a real model's tokenizer needs well under a million, so the file is refused rather than decoded into {} bytes of values",
                            what(),
                            self.elements
                                .saturating_mul(std::mem::size_of::<Value>() as u64)
                        ),
                    ));
                }
                let mut v = Vec::with_capacity(n as usize);
                for i in 0..n {
                    v.push(self.value(et, depth + 1, &|| format!("element {i} of {}", what()))?);
                }
                Value::Array(et, v)
            }
        })
    }
}

impl GgufFile {
    /// Map and parse `path`.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only and private to this process; like every mmap-based
        // loader we assume the file is not truncated or rewritten while it is open (the
        // safetensors loader documents the same assumption). The header and every tensor's
        // byte range are validated against the length before any tensor is read.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        GgufFile::parse(path, Bytes::Mapped(mmap))
    }

    /// Parse a GGUF image held in memory; `name` is used in messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<GgufFile> {
        GgufFile::parse(name, Bytes::Owned(bytes))
    }

    fn parse(path: &Path, bytes: Bytes) -> Result<GgufFile> {
        let b: &[u8] = &bytes;
        let mut c = Cursor {
            b,
            pos: 0,
            path,
            elements: 0,
        };
        if b.len() < 4 {
            return Err(bad(
                path,
                format!(
                    "the file has {} bytes, too few for the 4-byte magic",
                    b.len()
                ),
            ));
        }
        if b[..4] != MAGIC {
            return Err(bad(
                path,
                format!(
                    "bad magic {:?} (bytes {:02x?}); a GGUF file starts with \"GGUF\"",
                    String::from_utf8_lossy(&b[..4]),
                    &b[..4]
                ),
            ));
        }
        c.pos = 4;
        let version = c.u32(&|| "the version".into())?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(bad(
                    path,
                    "GGUF version 1 is not supported (32-bit counts; only versions 2 and 3 are read)",
                ));
            }
            v if v & 0xFFFF == 0 => {
                return Err(bad(
                    path,
                    format!(
                        "unsupported version {v:#x}: looks like a big-endian GGUF file (only little-endian versions 2 and 3 are read)"
                    ),
                ));
            }
            v => {
                return Err(bad(
                    path,
                    format!("unsupported GGUF version {v} (only versions 2 and 3 are read)"),
                ));
            }
        }
        let n_tensors = c.u64(&|| "the tensor count".into())?;
        let n_kv = c.u64(&|| "the metadata count".into())?;
        // Minimum sizes: a kv is a key (8 + 1) + type (4) + a 1-byte value; a tensor info is a
        // name (8 + 1) + n_dims (4) + type (4) + offset (8).
        for (n, min, what) in [
            (n_kv, 14u64, "metadata entries"),
            (n_tensors, 25, "tensors"),
        ] {
            if n.checked_mul(min).is_none_or(|m| m > c.left() as u64) {
                return Err(bad(
                    path,
                    format!(
                        "the header claims {n} {what}, more than the {} bytes after it can hold: truncated or corrupt",
                        c.left()
                    ),
                ));
            }
        }
        let mut kvs = Vec::with_capacity(n_kv as usize);
        let mut kv_index = HashMap::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let at = c.pos;
            let key = c.string(&|| format!("the key of metadata entry {i}"))?;
            if key.is_empty() {
                return Err(bad(
                    path,
                    format!("metadata entry {i} at byte {at} has an empty key"),
                ));
            }
            let tid = c.u32(&|| format!("the value type of `{key}`"))?;
            let ty = ValueType::from_id(tid).ok_or_else(|| {
                bad(
                    path,
                    format!("metadata `{key}` has unknown value type {tid}"),
                )
            })?;
            let v = c.value(ty, 0, &|| format!("the value of `{key}`"))?;
            if kv_index.insert(key.clone(), kvs.len()).is_some() {
                return Err(bad(path, format!("metadata key `{key}` appears twice")));
            }
            kvs.push((key, v));
        }
        let alignment = match kv_index.get("general.alignment").map(|&i| &kvs[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if *a != 0 && a.is_power_of_two() => *a as usize,
            Some(Value::U32(a)) => {
                return Err(bad(
                    path,
                    format!("general.alignment = {a} is not a power of two"),
                ));
            }
            Some(other) => {
                return Err(bad(
                    path,
                    format!(
                        "general.alignment must be a u32, found {:?} {}",
                        other.value_type(),
                        other.describe()
                    ),
                ));
            }
        };
        let tensor_info_offset = c.pos;
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
        let mut t_index = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = c.string(&|| format!("the name of tensor {i}"))?;
            let what = |s: &str| format!("{s} of tensor `{name}`");
            let n_dims = c.u32(&|| what("the dimension count"))?;
            if n_dims > 4 {
                return Err(bad(
                    path,
                    format!("tensor `{name}` has {n_dims} dimensions (ggml allows at most 4)"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                dims.push(c.u64(&|| what(&format!("dimension {d}")))?);
            }
            let ty = GgmlType(c.u32(&|| what("the type"))?);
            let offset = c.u64(&|| what("the data offset"))?;
            if !ty.is_known() {
                return Err(bad(
                    path,
                    format!(
                        "tensor `{name}` has ggml type id {} ({}), which this reader does not support",
                        ty.0,
                        ty.name()
                    ),
                ));
            }
            let nbytes = ty
                .nbytes(&dims)
                .map_err(|m| bad(path, format!("tensor `{name}` {dims:?}: {m}")))?;
            if t_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(bad(path, format!("tensor name `{name}` appears twice")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
                start: 0,
                len: usize::try_from(nbytes).map_err(|_| {
                    bad(path, format!("tensor size {nbytes} does not fit in memory"))
                })?,
            });
        }
        let data_offset = c.pos.div_ceil(alignment) * alignment;
        for t in &mut tensors {
            if !t.offset.is_multiple_of(alignment as u64) {
                return Err(bad(
                    path,
                    format!(
                        "tensor `{}` has data offset {}, not a multiple of the alignment {alignment}",
                        t.name, t.offset
                    ),
                ));
            }
            let start = (data_offset as u64).checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.len as u64));
            match (start, end) {
                (Some(s), Some(e)) if e <= b.len() as u64 => t.start = s as usize,
                _ => {
                    return Err(bad(
                        path,
                        format!(
                            "tensor `{}` ({} {:?}, {} bytes at data offset {}) ends past the end of the file ({} bytes; data section at byte {data_offset}): truncated download?",
                            t.name,
                            t.ty,
                            t.dims,
                            t.len,
                            t.offset,
                            b.len()
                        ),
                    ));
                }
            }
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            bytes,
            version,
            alignment,
            tensor_info_offset,
            data_offset,
            kvs,
            kv_index,
            tensors,
            t_index,
            i2s_order: i2s::Order::default(),
        })
    }

    /// Decode I2_S tensors in `order` from now on (default [`i2s::Order::X86`]). bitnet.cpp
    /// writes three byte orders under one type id and nothing in the file tells them apart
    /// (FORMAT.md §8.3), so this is the caller's choice, not something the reader can detect.
    pub fn set_i2s_order(&mut self, order: i2s::Order) {
        self.i2s_order = order;
    }

    /// The byte order I2_S tensors are decoded in.
    pub fn i2s_order(&self) -> i2s::Order {
        self.i2s_order
    }

    /// Whether any tensor is I2_S (whose byte order the file cannot state).
    pub fn has_i2s(&self) -> bool {
        self.tensors.iter().any(|t| t.ty == GgmlType::I2_S)
    }

    /// Bytes of the whole file.
    pub fn file_len(&self) -> usize {
        self.bytes.len()
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kvs.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv_index.get(key).map(|&i| &self.kvs[i].1)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.t_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor, or a `MissingTensor` error naming the file.
    pub fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            where_: self.path.display().to_string(),
        })
    }

    /// The tensor's bytes (bounds were checked when the file was opened).
    pub fn data(&self, t: &TensorInfo) -> &[u8] {
        &self.bytes[t.start..t.start + t.len]
    }

    /// All elements as f32 (F32, F16, BF16, Q8_0, Q6_K; TQ1_0/TQ2_0/I2_S dequantized as
    /// `(c − 1)·scale`).
    pub fn to_f32(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let n = t.n_elements();
        let bytes = self.data(t);
        let mut out = vec![0f32; n];
        match t.ty {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
                quants::floats_to_f32(t.ty, bytes, &mut out)
            }
            GgmlType::Q8_0 => q8_0::dequantize(bytes, &mut out),
            GgmlType::Q6_K => q6_k::dequantize(bytes, &mut out),
            GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::I2_S => {
                let (codes, scales) = self.codes_raw(t)?;
                for (o, (c, s)) in out.iter_mut().zip(codes.into_iter().zip(scales)) {
                    *o = (c as f32 - 1.0) * s;
                }
            }
            other => {
                return Err(Error::Dtype {
                    name: t.name.clone(),
                    expected: "F32, F16, BF16, Q8_0, Q6_K, TQ1_0, TQ2_0 or I2_S".into(),
                    found: other.to_string(),
                });
            }
        }
        Ok(out)
    }

    /// Codes and the per-element scale of a TQ1_0/TQ2_0/I2_S tensor, unchecked.
    fn codes_raw(&self, t: &TensorInfo) -> Result<(Vec<u8>, Vec<f32>)> {
        let n = t.n_elements();
        let bytes = self.data(t);
        let mut codes = vec![0u8; n];
        let mut scales = vec![0f32; n];
        match t.ty {
            GgmlType::TQ2_0 | GgmlType::TQ1_0 => {
                let bb = if t.ty == GgmlType::TQ2_0 {
                    tq2_0::BYTES
                } else {
                    tq1_0::BYTES
                };
                for ((b, c), s) in bytes
                    .chunks_exact(bb)
                    .zip(codes.chunks_exact_mut(256))
                    .zip(scales.chunks_exact_mut(256))
                {
                    let d = if t.ty == GgmlType::TQ2_0 {
                        tq2_0::decode_block(b, c)
                    } else {
                        tq1_0::decode_block(b, c)
                    };
                    s.fill(quants::f16_to_f32(d));
                }
            }
            GgmlType::I2_S => {
                self.check_i2s(t)?;
                i2s::decode_ordered(bytes, t.rows(), t.ne0(), self.i2s_order, &mut codes);
                scales.fill(i2s::scale(bytes, n));
            }
            _ => unreachable!("codes_raw on {}", t.ty),
        }
        Ok((codes, scales))
    }

    fn check_i2s(&self, t: &TensorInfo) -> Result<()> {
        self.i2s_order
            .check(t.rows(), t.ne0())
            .map_err(|m| Error::BadTensor {
                name: t.name.clone(),
                msg: format!(
                    "{m}, so it cannot be decoded (in {}; --i2s-order {})",
                    self.path.display(),
                    self.i2s_order.name()
                ),
            })
    }

    /// A ternary projection: codes `c = t + 1` row-major (`ne1` rows of `ne0`) and its one
    /// per-tensor scale (the multiplier: weight = (c − 1) · scale).
    ///
    /// * TQ1_0 / TQ2_0: the blocks' f16 `d`. All blocks that hold a nonzero weight must share
    ///   one `d` (BitNet has one scale per tensor; the exact-integer path cannot apply per-block
    ///   scales). Blocks of zeros may carry any `d` — llama.cpp's quantizer writes 0 there.
    /// * I2_S: the f32 after the packed data.
    /// * F32 / F16 / BF16 holding `scale · t` (what llama.cpp's own converter writes for
    ///   `--outtype f16` etc.): every element must be 0 or ±s for one s.
    ///
    /// Code 3 (an invalid 2-bit code) and a scale that is not finite and positive are errors.
    pub fn ternary_codes(&self, t: &TensorInfo) -> Result<(Vec<u8>, f32)> {
        let err = |msg: String| Error::BadTensor {
            name: t.name.clone(),
            msg: format!("{msg} (in {})", self.path.display()),
        };
        let (codes, scale) = match t.ty {
            GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::I2_S => {
                let bytes = self.data(t);
                let n = t.n_elements();
                let mut codes = vec![0u8; n];
                let scale;
                if t.ty == GgmlType::I2_S {
                    self.check_i2s(t)?;
                    i2s::decode_ordered(bytes, t.rows(), t.ne0(), self.i2s_order, &mut codes);
                    scale = i2s::scale(bytes, n);
                } else {
                    let bb = if t.ty == GgmlType::TQ2_0 {
                        tq2_0::BYTES
                    } else {
                        tq1_0::BYTES
                    };
                    let mut common: Option<(usize, u16)> = None;
                    let mut first_d = None;
                    for (i, (b, c)) in bytes
                        .chunks_exact(bb)
                        .zip(codes.chunks_exact_mut(256))
                        .enumerate()
                    {
                        let d = if t.ty == GgmlType::TQ2_0 {
                            tq2_0::decode_block(b, c)
                        } else {
                            tq1_0::decode_block(b, c)
                        };
                        first_d.get_or_insert(d);
                        if c.iter().all(|&x| x == 1) {
                            continue; // all zero: d does not matter
                        }
                        match common {
                            None => common = Some((i, d)),
                            Some((j, d0)) if d0 != d => {
                                return Err(err(format!(
                                    "{} block {i} has scale d = {} but block {j} has d = {}: per-block scales are not supported by the exact-integer path (BitNet b1.58 has one scale per tensor)",
                                    t.ty,
                                    quants::f16_to_f32(d),
                                    quants::f16_to_f32(d0)
                                )));
                            }
                            _ => {}
                        }
                    }
                    let d = common.map(|(_, d)| d).or(first_d).unwrap_or(0);
                    scale = quants::f16_to_f32(d);
                }
                if let Some(i) = codes.iter().position(|&c| c > 2) {
                    return Err(err(format!(
                        "weight {i} (row {}, column {}) holds the invalid 2-bit code 3",
                        i / t.ne0().max(1),
                        i % t.ne0().max(1)
                    )));
                }
                (codes, scale)
            }
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
                let v = self.to_f32(t)?;
                let s = v.iter().map(|x| x.abs()).find(|&a| a != 0.0).unwrap_or(1.0);
                let mut codes = Vec::with_capacity(v.len());
                for (i, &x) in v.iter().enumerate() {
                    let c = if x == 0.0 {
                        1
                    } else if x == s {
                        2
                    } else if x == -s {
                        0
                    } else {
                        return Err(err(format!(
                            "{} weights are not ternary: element {i} is {x}, but the first nonzero has magnitude {s} (rotor runs ternary projections only: every element must be 0 or ±one scale)",
                            t.ty
                        )));
                    };
                    codes.push(c);
                }
                (codes, s)
            }
            other => {
                return Err(Error::Dtype {
                    name: t.name.clone(),
                    expected:
                        "a ternary projection: TQ1_0, TQ2_0, I2_S, or ternary-valued F32/F16/BF16"
                            .into(),
                    found: other.to_string(),
                });
            }
        };
        if !(scale.is_finite() && scale > 0.0) {
            return Err(err(format!(
                "the {} scale is {scale}; it must be a finite positive number",
                t.ty
            )));
        }
        Ok((codes, scale))
    }

    /// A ternary projection as the dense oracle form plus its scale (see [`Self::ternary_codes`]).
    pub fn ternary(&self, t: &TensorInfo) -> Result<(Ternary, f32)> {
        let (codes, scale) = self.ternary_codes(t)?;
        let data = codes.into_iter().map(|c| c as i8 - 1).collect();
        Ok((Ternary::new(t.rows(), t.ne0(), data)?, scale))
    }
}
