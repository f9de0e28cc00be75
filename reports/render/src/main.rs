//! `render --results DIR --figures DIR [--readme FILE]`: figures and tables from CSV.

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str, default: &str| -> PathBuf {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "render --results reports/results --figures reports/figures --readme reports/README.md"
        );
        return;
    }
    let results = get("--results", "reports/results");
    let figures = get("--figures", "reports/figures");
    let readme = get("--readme", "reports/README.md");
    let readme = readme.exists().then_some(readme);
    match render::run(&results, &figures, readme.as_deref()) {
        Ok(names) => eprintln!(
            "render: {} tables from {} into {}",
            names.len(),
            results.display(),
            figures.display()
        ),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
