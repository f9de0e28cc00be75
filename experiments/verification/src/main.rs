//! `verification [--tiny|--quick|--full] [--out DIR] [--models DIR]`: see the library docs or
//! `--help`.

fn main() {
    harness::main(
        "verification",
        verification::ABOUT,
        verification::USES,
        verification::run,
    );
}
