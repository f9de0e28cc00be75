# rotor — the verbs a user types. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Where synthesized models go (not committed).
models := "target/models"

default:
    @just --list

# Every test: unit, property (every layout × kernel vs the oracle), reference (transformers
# fixtures), CLI, experiments in tiny mode, the report renderer, and the dataset scripts.
test:
    cargo test --all-targets
    bash datasets/fetch/selftest.sh

# Run every experiment (quick mode; `just bench-all --full` for the long sweep), then the report.
bench-all *FLAGS:
    cargo build --release -p rotor -p rotor-experiments
    ./target/release/rotor-experiments all {{FLAGS}}
    just report

# Rebuild figures and tables from the committed CSV (no engine run).
report:
    cargo run -p render --quiet -- --results reports/results --figures reports/figures --readme reports/README.md

# criterion benchmarks of every layout × kernel at the model's shapes.
bench:
    cargo bench -p rotor --bench kernels

# Fuzz every kernel family against the scalar oracle (cargo-fuzz; SECONDS per target).
fuzz SECONDS="60":
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    cd fuzz && for t in $(cargo fuzz list); do RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time={{SECONDS}}; done

# Generate text with the shipped trained model (or a synthesized one if it is absent).
demo PROMPT="It is a truth universally acknowledged":
    cargo build --release -p rotor
    if [ -d datasets/models/austen-tiny ]; then m=datasets/models/austen-tiny; else m={{models}}/small; [ -d $m ] || ./target/release/rotor synth --preset small --out $m; fi; \
    ./target/release/rotor generate --model $m --prompt "{{PROMPT}}" --max-tokens 80

# Write a synthesized model with the real 2B-4T shapes (~1.2 GB) for speed runs.
synth-2b4t:
    cargo build --release -p rotor
    ./target/release/rotor synth --preset 2b4t --out {{models}}/2b4t --force

# Train the shipped tiny BitNet b1.58 (QAT on the Austen train split) for MINUTES minutes, export it
# in the exact checkpoint format to datasets/models/austen-tiny, and score it with the engine.
train-tiny MINUTES="25":
    cargo build --release -p rotor -p train-tiny
    nice -n 10 ./target/release/train-tiny --minutes {{MINUTES}} --out datasets/models/austen-tiny
