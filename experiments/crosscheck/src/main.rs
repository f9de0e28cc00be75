//! `crosscheck [--tiny|--quick] [--out DIR] [--model DIR] [--text FILE] [--python PY]`: see the
//! library docs or `--help`.

fn main() {
    harness::main(
        "crosscheck",
        crosscheck::ABOUT,
        crosscheck::USES,
        crosscheck::run,
    );
}
