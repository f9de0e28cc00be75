//! `utilization [--tiny|--quick|--full] [--out DIR]`: see the library docs or `--help`.

fn main() {
    harness::main(
        "utilization",
        utilization::ABOUT,
        utilization::USES,
        utilization::run,
    );
}
