//! `peers [--quick|--full] [--model DIR] [--python PY] ...`: see the library docs.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = peers::run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
