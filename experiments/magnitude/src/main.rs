//! `magnitude [--quick|--full|--tiny] [--out DIR] [--energy FILE]`: see the library docs.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = magnitude::run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
