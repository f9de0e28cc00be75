//! `speed [--tiny|--quick|--full] [--out DIR] [--models DIR]`: see the library docs or `--help`.

fn main() {
    harness::main("speed", speed::ABOUT, speed::USES, speed::run);
}
