//! `magnitude [--tiny|--quick|--full] [--out DIR] [--energy FILE]`: see the library docs or
//! `--help`.

fn main() {
    harness::main(
        "magnitude",
        magnitude::MODULE_DOC,
        magnitude::USES,
        magnitude::run,
    );
}
