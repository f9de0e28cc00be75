//! What the renderer's tests share: a README whose generated sections the renderer must
//! replace, and the checks that it did.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};

/// `dir/README.md` with one generated section per name, each holding `old`.
pub fn readme_with_markers(dir: &Path, names: &[&str]) -> PathBuf {
    let readme = dir.join("README.md");
    let mut text = String::from("# r\n");
    for n in names {
        text += &format!("<!-- BEGIN generated:{n} -->\nold\n<!-- END generated:{n} -->\n");
    }
    std::fs::write(&readme, text).unwrap();
    readme
}

/// Every name in `names` is among the sections `render::run` returned.
pub fn assert_sections(got: &[String], names: &[&str]) {
    for n in names {
        assert!(
            got.iter().any(|g| g == n),
            "section {n} missing from {got:?}"
        );
    }
}

/// A figure file exists and is not empty (a drawn chart is well above 5 kB).
pub fn assert_figure(p: &Path) {
    let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(
        len > 5_000,
        "{} missing or empty ({len} bytes)",
        p.display()
    );
}
