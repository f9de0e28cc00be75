//! `layouts [--tiny|--quick|--full] [--out DIR]`: see the library docs or `--help`.

fn main() {
    harness::main(
        "layouts",
        layouts::module_doc(),
        layouts::USES,
        layouts::run,
    );
}
