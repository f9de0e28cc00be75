//! `peers [--quick|--full] [--out DIR] [--model DIR] …`: see the library docs or `--help`.

fn main() {
    harness::main("peers", peers::ABOUT, peers::USES, peers::run);
}
