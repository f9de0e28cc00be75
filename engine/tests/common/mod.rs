//! Shared helpers for the integration tests: fixture paths and expected tensors.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

/// Reference fixtures made by `datasets/reference/generate.py` (transformers 5.24, f32).
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/reference/fixtures")
        .join(name)
}

pub struct Expected {
    pub f32s: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub i64s: HashMap<String, Vec<i64>>,
}

impl Expected {
    pub fn load(name: &str) -> Expected {
        let bytes = std::fs::read(fixture_dir(name).join("expected.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut f32s = HashMap::new();
        let mut i64s = HashMap::new();
        for (n, t) in st.tensors() {
            match t.dtype() {
                Dtype::F32 => {
                    let v = t
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    f32s.insert(n, (t.shape().to_vec(), v));
                }
                Dtype::I64 => {
                    let v = t
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    i64s.insert(n, v);
                }
                d => panic!("unexpected dtype {d:?} for {n}"),
            }
        }
        Expected { f32s, i64s }
    }
    pub fn f(&self, name: &str) -> &[f32] {
        &self
            .f32s
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"))
            .1
    }
    pub fn shape(&self, name: &str) -> &[usize] {
        &self.f32s[name].0
    }
    pub fn ids(&self, name: &str) -> Vec<u32> {
        self.i64s[name].iter().map(|&v| v as u32).collect()
    }
}

pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
