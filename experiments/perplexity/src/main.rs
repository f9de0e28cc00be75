//! `perplexity [--quick|--full|--tiny] [--out DIR] [--model DIR] [--text FILE]`: see the library docs.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = perplexity::run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
