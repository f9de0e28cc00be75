//! `layouts [--quick|--full|--tiny] [--out DIR]`: see the library docs.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = layouts::run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
