//! placeholder

use std::path::Path;

use anyhow::Result;
use polars::prelude::DataFrame;

pub fn render(_all: &DataFrame, _figures: &Path) -> Result<Vec<(String, String)>> {
    Ok(vec![])
}
