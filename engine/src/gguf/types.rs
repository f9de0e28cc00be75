//! GGUF value types (metadata) and ggml tensor types (weights), with their sizes.
//!
//! Ids and sizes follow ggml's `enum ggml_type` and the block structs' `static_assert`s:
//! ggml-org/llama.cpp `ggml/include/ggml.h` and `ggml/src/ggml-common.h` (identical for these
//! types in Eddie-Wang1120/llama.cpp@406a5036 `merge-dev`, the bitnet.cpp submodule fork, at
//! `ggml/include/ggml.h` lines 355–398 and `ggml/src/ggml-common.h` lines 149–419).
//!
//! One id is ambiguous: bitnet.cpp's fork numbers `I2_S = 36`, `I8_S = 37`, `TL1 = 38`,
//! `TL2 = 39`, while upstream ggml left 36–38 unused and later gave 39 to `MXFP4`. This reader
//! takes 36 as `I2_S` (no upstream type uses it), 39 as upstream's `MXFP4`, and rejects 37/38.

use std::fmt;

/// A ggml tensor type id with its name and block geometry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// Block geometry of one ggml type: `block` weights stored in `bytes` bytes.
#[derive(Clone, Copy, Debug)]
struct TypeInfo {
    name: &'static str,
    block: u64,
    bytes: u64,
}

const fn ti(name: &'static str, block: u64, bytes: u64) -> Option<TypeInfo> {
    Some(TypeInfo { name, block, bytes })
}

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const Q6_K: GgmlType = GgmlType(14);
    pub const BF16: GgmlType = GgmlType(30);
    pub const TQ1_0: GgmlType = GgmlType(34);
    pub const TQ2_0: GgmlType = GgmlType(35);
    /// bitnet.cpp's 2-bit type (its fork only; see [`crate::gguf::quants::i2s`]).
    pub const I2_S: GgmlType = GgmlType(36);

    fn info(self) -> Option<TypeInfo> {
        match self.0 {
            0 => ti("F32", 1, 4),
            1 => ti("F16", 1, 2),
            2 => ti("Q4_0", 32, 18),
            3 => ti("Q4_1", 32, 20),
            6 => ti("Q5_0", 32, 22),
            7 => ti("Q5_1", 32, 24),
            8 => ti("Q8_0", 32, 34),
            9 => ti("Q8_1", 32, 36),
            10 => ti("Q2_K", 256, 84),
            11 => ti("Q3_K", 256, 110),
            12 => ti("Q4_K", 256, 144),
            13 => ti("Q5_K", 256, 176),
            14 => ti("Q6_K", 256, 210),
            15 => ti("Q8_K", 256, 292),
            16 => ti("IQ2_XXS", 256, 66),
            17 => ti("IQ2_XS", 256, 74),
            18 => ti("IQ3_XXS", 256, 98),
            19 => ti("IQ1_S", 256, 50),
            20 => ti("IQ4_NL", 32, 18),
            21 => ti("IQ3_S", 256, 110),
            22 => ti("IQ2_S", 256, 82),
            23 => ti("IQ4_XS", 256, 136),
            24 => ti("I8", 1, 1),
            25 => ti("I16", 1, 2),
            26 => ti("I32", 1, 4),
            27 => ti("I64", 1, 8),
            28 => ti("F64", 1, 8),
            29 => ti("IQ1_M", 256, 56),
            30 => ti("BF16", 1, 2),
            31 => ti("Q4_0_4_4", 32, 18),
            32 => ti("Q4_0_4_8", 32, 18),
            33 => ti("Q4_0_8_8", 32, 18),
            34 => ti("TQ1_0", 256, 54),
            35 => ti("TQ2_0", 256, 66),
            // Size is special (see `nbytes`): 4 weights per byte plus a 32-byte tail.
            36 => ti("I2_S", 1, 1),
            39 => ti("MXFP4", 32, 17),
            _ => None,
        }
    }

    /// Whether this reader knows the type's size (every type it can skip over or decode).
    pub fn is_known(self) -> bool {
        self.info().is_some()
    }

    pub fn name(self) -> String {
        match (self.info(), self.0) {
            (Some(i), _) => i.name.to_string(),
            (None, 37) => "I8_S (bitnet.cpp activations)".into(),
            (None, 38) => "TL1 (bitnet.cpp ARM lookup-table layout)".into(),
            (None, id) => format!("unknown type {id}"),
        }
    }

    /// Weights per block along `ne0` (`None` for an unknown type).
    pub fn block_size(self) -> Option<u64> {
        self.info().map(|i| i.block)
    }

    /// Bytes a tensor of this type and these dims occupies, or a sentence saying why not
    /// (unknown type, `ne0` not a multiple of the block, overflow).
    ///
    /// `I2_S` is special-cased exactly as bitnet.cpp's `ggml_nbytes` does
    /// (Eddie-Wang1120/llama.cpp@406a5036 `ggml/src/ggml.c` lines 3472–3482): the element count
    /// as if one byte each, then `/ 4 + 32`.
    pub fn nbytes(self, dims: &[u64]) -> Result<u64, String> {
        let info = self
            .info()
            .ok_or_else(|| format!("tensor type id {} is not a type this reader knows", self.0))?;
        let mut n: u64 = 1;
        for &d in dims {
            n = n
                .checked_mul(d)
                .ok_or_else(|| format!("element count of dims {dims:?} overflows 64 bits"))?;
        }
        if self == GgmlType::I2_S {
            return Ok(n / 4 + 32);
        }
        let ne0 = dims.first().copied().unwrap_or(1);
        if !ne0.is_multiple_of(info.block) {
            return Err(format!(
                "{} packs blocks of {} weights along ne0, but ne0 = {ne0}",
                info.name, info.block
            ));
        }
        (n / info.block)
            .checked_mul(info.bytes)
            .ok_or_else(|| format!("byte size of dims {dims:?} overflows 64 bits"))
    }
}

impl fmt::Debug for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The type tag of a metadata value (GGUF spec, `gguf_metadata_value_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Fixed byte size, or `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The smallest number of bytes one value of this type can take (for bounding counts).
    pub fn min_size(self) -> usize {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Element type and elements (all of that type; arrays may nest).
    Array(ValueType, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any non-negative integer value as u64 (writers differ: u32 is usual, some use i32/u64).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any float or integer value as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v as f64),
            Value::I16(v) => Some(v as f64),
            Value::I32(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, v) => Some(v),
            _ => None,
        }
    }

    /// A short rendering for messages (arrays by type and length).
    pub fn describe(&self) -> String {
        match self {
            Value::String(s) if s.chars().count() > 60 => {
                format!("{:?}…", s.chars().take(60).collect::<String>())
            }
            Value::String(s) => format!("{s:?}"),
            Value::Array(t, v) => format!("array of {} {t:?}", v.len()),
            Value::U8(v) => v.to_string(),
            Value::I8(v) => v.to_string(),
            Value::U16(v) => v.to_string(),
            Value::I16(v) => v.to_string(),
            Value::U32(v) => v.to_string(),
            Value::I32(v) => v.to_string(),
            Value::F32(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
        }
    }
}
