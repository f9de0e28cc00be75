//! `perplexity [--tiny|--quick|--full] [--out DIR] [--model DIR --text FILE]`: see the library
//! docs or `--help`.

fn main() {
    harness::main(
        "perplexity",
        perplexity::ABOUT,
        perplexity::USES,
        perplexity::run,
    );
}
