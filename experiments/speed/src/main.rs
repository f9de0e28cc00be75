//! `speed [--quick|--full|--tiny] [--out DIR] [--models DIR]`: see the library docs.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = speed::run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
