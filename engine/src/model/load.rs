//! Reading a checkpoint: `model.safetensors` (or a sharded set with
//! `model.safetensors.index.json`) memory-mapped, every tensor checked by name, dtype and shape
//! before use.
//!
//! Tensors are borrowed from the mapping (no copy) where their bytes are used as they are: the
//! packed ternary weights feed the converters, and the bf16 embedding (the tied output head)
//! stays in the mapping for the model's lifetime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// Where one tensor's bytes live.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    shard: usize,
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct Shard {
    path: PathBuf,
    mmap: Arc<Mmap>,
}

/// An opened checkpoint: every shard mapped, every tensor's header entry validated.
#[derive(Debug)]
pub struct Checkpoint {
    pub dir: PathBuf,
    shards: Vec<Shard>,
    tensors: BTreeMap<String, TensorRef>,
}

fn map_file(path: &Path) -> Result<Mmap> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the mapping is read-only and private to this process; like every mmap-based
    // loader we assume the checkpoint file is not truncated or rewritten while the model runs
    // (documented in the README). Length and header are validated before any tensor is read.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}

impl Checkpoint {
    /// Open `dir/model.safetensors`, or the shards listed in `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Safetensors {
                    path: index.clone(),
                    msg: format!("index is not valid JSON: {e}"),
                })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::Safetensors {
                    path: index.clone(),
                    msg: "index has no `weight_map` object".into(),
                })?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            files.sort();
            files.dedup();
            files.iter().map(|f| dir.join(f)).collect()
        } else {
            return Err(Error::io(
                &single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model.safetensors or model.safetensors.index.json in the model directory",
                ),
            ));
        };
        let mut shards = Vec::new();
        let mut tensors = BTreeMap::new();
        for (si, path) in files.into_iter().enumerate() {
            let mmap = map_file(&path)?;
            let (n, meta) = SafeTensors::read_metadata(&mmap).map_err(|e| Error::Safetensors {
                path: path.clone(),
                msg: describe(&e, mmap.len()),
            })?;
            let base = 8 + n;
            for (name, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                if let Some(prev) = tensors.insert(
                    name.clone(),
                    TensorRef {
                        name: name.clone(),
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        shard: si,
                        start: base + s,
                        end: base + e,
                    },
                ) {
                    let prev: TensorRef = prev;
                    return Err(Error::Safetensors {
                        path: path.clone(),
                        msg: format!("tensor `{}` appears in two shards", prev.name),
                    });
                }
            }
            shards.push(Shard {
                path,
                mmap: Arc::new(mmap),
            });
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            shards,
            tensors,
        })
    }

    pub fn tensors(&self) -> impl Iterator<Item = &TensorRef> {
        self.tensors.values()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn file_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.mmap.len()).sum()
    }

    pub fn get(&self, name: &str) -> Result<&TensorRef> {
        self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            where_: self
                .shards
                .iter()
                .map(|s| s.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    pub fn bytes(&self, t: &TensorRef) -> &[u8] {
        &self.shards[t.shard].mmap[t.start..t.end]
    }

    /// Tell the OS that a tensor's pages will not be read again (after conversion), so they
    /// leave the resident set instead of doubling the model's memory. Whole pages inside the
    /// tensor only; a no-op where unsupported.
    pub fn release(&self, t: &TensorRef) {
        #[cfg(unix)]
        {
            const PAGE: usize = 4096;
            let start = t.start.div_ceil(PAGE) * PAGE;
            let end = t.end / PAGE * PAGE;
            if end > start {
                // SAFETY: the mapping is read-only and file-backed (`Mmap`, not `MmapMut`), so
                // MADV_DONTNEED only drops clean page-cache references: a later read faults the
                // same bytes back in from the file, and no `&[u8]` into the range changes.
                let _ = unsafe {
                    self.shards[t.shard].mmap.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
    }

    /// The tensor's bytes after checking dtype and shape.
    pub fn expect(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&[u8]> {
        let t = self.get(name)?;
        check_dtype(t, &[dtype])?;
        check_shape(t, shape)?;
        Ok(self.bytes(t))
    }

    /// A float tensor (BF16, F16 or F32) of the given shape, as f32, checked for NaN/inf.
    pub fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.get(name)?;
        check_dtype(t, &[Dtype::BF16, Dtype::F16, Dtype::F32])?;
        check_shape(t, shape)?;
        let v = to_f32(t.dtype, self.bytes(t));
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::BadTensor {
                name: name.to_string(),
                msg: format!("element {i} is {} (not finite)", v[i]),
            });
        }
        Ok(v)
    }

    /// A bf16 matrix `[rows][cols]` kept in the mapping when its bytes are 2-byte aligned
    /// (always, for files written by safetensors), copied otherwise. F16/F32 are converted.
    pub fn bf16_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Bf16Matrix> {
        let t = self.get(name)?;
        check_dtype(t, &[Dtype::BF16, Dtype::F16, Dtype::F32])?;
        check_shape(t, &[rows, cols])?;
        let bytes = self.bytes(t);
        if t.dtype == Dtype::BF16 && (bytes.as_ptr() as usize).is_multiple_of(2) {
            return Ok(Bf16Matrix {
                rows,
                cols,
                storage: Storage::Mapped {
                    mmap: self.shards[t.shard].mmap.clone(),
                    start: t.start,
                    len: rows * cols,
                },
            });
        }
        let v: Vec<u16> = to_f32(t.dtype, bytes)
            .into_iter()
            .map(|x| half::bf16::from_f32(x).to_bits())
            .collect();
        Ok(Bf16Matrix {
            rows,
            cols,
            storage: Storage::Owned(v),
        })
    }

    /// A per-tensor scalar (`weight_scale`, shape `[1]` or `[]`), as f32.
    pub fn scalar(&self, name: &str) -> Result<f32> {
        let t = self.get(name)?;
        check_dtype(t, &[Dtype::BF16, Dtype::F16, Dtype::F32])?;
        if t.shape.iter().product::<usize>() != 1 || t.shape.len() > 1 {
            return Err(Error::Shape {
                name: name.to_string(),
                expected: vec![1],
                found: t.shape.clone(),
            });
        }
        Ok(to_f32(t.dtype, self.bytes(t))[0])
    }
}

fn describe(e: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::MetadataIncompleteBuffer => format!(
            "the header describes more data than the file holds ({len} bytes): truncated download?"
        ),
        E::HeaderTooSmall => format!("file of {len} bytes is too small to hold a header"),
        E::InvalidHeaderLength => {
            format!(
                "header length points past the end of the file ({len} bytes): truncated or not safetensors"
            )
        }
        other => other.to_string(),
    }
}

fn check_dtype(t: &TensorRef, allowed: &[Dtype]) -> Result<()> {
    if allowed.contains(&t.dtype) {
        Ok(())
    } else {
        Err(Error::Dtype {
            name: t.name.clone(),
            expected: allowed
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(" or "),
            found: format!("{:?}", t.dtype),
        })
    }
}

fn check_shape(t: &TensorRef, shape: &[usize]) -> Result<()> {
    if t.shape == shape {
        Ok(())
    } else {
        Err(Error::Shape {
            name: t.name.clone(),
            expected: shape.to_vec(),
            found: t.shape.clone(),
        })
    }
}

/// Decode little-endian BF16/F16/F32 bytes.
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        other => panic!("to_f32: unsupported dtype {other:?} (callers check dtypes first)"),
    }
}

#[derive(Debug)]
enum Storage {
    Mapped {
        mmap: Arc<Mmap>,
        start: usize,
        len: usize,
    },
    Owned(Vec<u16>),
}

/// A bf16 matrix (bit patterns as `u16`), borrowed from the checkpoint mapping or owned.
#[derive(Debug)]
pub struct Bf16Matrix {
    pub rows: usize,
    pub cols: usize,
    storage: Storage,
}

impl Bf16Matrix {
    pub fn from_vec(rows: usize, cols: usize, data: Vec<u16>) -> Bf16Matrix {
        assert_eq!(data.len(), rows * cols);
        Bf16Matrix {
            rows,
            cols,
            storage: Storage::Owned(data),
        }
    }

    pub fn data(&self) -> &[u16] {
        match &self.storage {
            Storage::Mapped { mmap, start, len } => {
                let bytes = &mmap[*start..*start + 2 * *len];
                // SAFETY: `bf16_matrix` only maps BF16 data whose address is 2-byte aligned;
                // the bytes stay valid while `mmap` (held here) lives; every u16 bit pattern is
                // valid; the target is little-endian x86_64/aarch64 like the file.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const u16, *len) }
            }
            Storage::Owned(v) => v,
        }
    }

    pub fn row(&self, r: usize) -> &[u16] {
        &self.data()[r * self.cols..(r + 1) * self.cols]
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }
}
