//! `verifycost [--tiny|--quick|--full] [--out DIR] [--models DIR]`: see the library docs or
//! `--help`.

fn main() {
    harness::main(
        "verifycost",
        verifycost::ABOUT,
        verifycost::USES,
        verifycost::run,
    );
}
