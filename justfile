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

# Needs no download: the 2B-4T-shape model is synthesized into target/models/ on first use
# (~10 s, 1.2 GB); the trained tiny model ships in datasets/. Timed steps hold ROTOR_BENCH_LOCK
# (default /tmp/rotor-build.lock; `none`: no lock) so two heavy jobs never overlap.
# `--full` for the long sweep, `--tiny` for a smoke run; flags are checked (`--help` on any
# experiment binary lists them). Results go to reports/results/<experiment>/<machine>.csv,
# replacing only this machine's files. verifycost uses valgrind when installed.
# Run every experiment (quick mode), write CSV to reports/results/, redraw figures and tables.
bench-all *FLAGS:
    #!/usr/bin/env bash
    set -euo pipefail
    lock="${ROTOR_BENCH_LOCK:-/tmp/rotor-build.lock}"
    run() { if [ "$lock" = none ]; then "$@"; else flock "$lock" "$@"; fi; }
    run cargo build --release -p rotor -p layouts -p magnitude -p verification -p verifycost -p utilization -p speed -p perplexity
    run just build-render
    for e in layouts magnitude verification verifycost utilization speed perplexity; do
        echo "== experiment $e {{FLAGS}}" >&2
        run ./target/release/$e {{FLAGS}}
    done
    ./target/render/render --results reports/results --figures reports/figures --readme reports/README.md

# Rebuild figures and tables from the committed CSV (no engine run).
report: build-render
    ./target/render/render --results reports/results --figures reports/figures --readme reports/README.md

# The renderer alone, in its own fast-compiling profile (`[profile.render]`: polars unoptimized,
# built alone so its features never unify with other crates): compiled once per machine,
# whichever of bench-all, report and bench-peers runs first.
build-render:
    cargo build --profile render -p render

# criterion benchmarks of every layout × kernel at the model's shapes.
bench:
    cargo bench -p rotor --bench kernels

# Fuzz every parser a user's file reaches (GGUF, safetensors, config.json, tokenizer directory,
# --tokens) and every kernel against the oracle: cargo-fuzz with AddressSanitizer, SECONDS per
# target, one target after another (`just fuzz 600 gguf_bytes` runs one). The committed seeds
# in fuzz/corpus/<target>/ are read only; new inputs go to fuzz/target/corpus/<target>/. An
# input that takes over 10 s (-timeout) or a process above 2048 MB (-rss_limit_mb, also the
# largest single allocation) is a failure, like a panic; so is a leak, except the one known
# false report in fuzz/lsan.supp. See docs/RELIABILITY.md.
fuzz SECONDS="60" *TARGETS:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    cd fuzz
    targets="{{TARGETS}}"
    [ -n "$targets" ] || targets=$(cargo fuzz list)
    for t in $targets; do
        mkdir -p "target/corpus/$t" "corpus/$t"
        LSAN_OPTIONS="suppressions=$PWD/lsan.supp" RUSTC_BOOTSTRAP=1 \
            cargo fuzz run "$t" "target/corpus/$t" "corpus/$t" -- \
            -max_total_time={{SECONDS}} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
    done

# Rebuild fuzz/corpus/ from real files (engine/examples/fuzz_seeds.rs), minimized with
# `cargo fuzz cmin` (the smallest set of inputs with the same coverage).
fuzz-seeds:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    rm -rf fuzz/target/seeds-raw
    cargo run --release -p rotor --example fuzz_seeds -- fuzz/target/seeds-raw
    cd fuzz
    for t in $(cargo fuzz list); do
        rm -rf "corpus/$t" && mkdir -p "corpus/$t" && cp "target/seeds-raw/$t"/* "corpus/$t/"
        LSAN_OPTIONS="suppressions=$PWD/lsan.supp" RUSTC_BOOTSTRAP=1 \
            cargo fuzz cmin "$t" "corpus/$t" -- -rss_limit_mb=2048 -timeout=10
    done

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

# The second shipped model, for llama.cpp: the same trainer with intermediate 768, so every
# projection input (256, 768) is a multiple of 256 and the model fits TQ2_0/TQ1_0/I2_S GGUF.
train-tiny-i768 MINUTES="25":
    cargo build --release -p rotor -p train-tiny
    nice -n 10 ./target/release/train-tiny --minutes {{MINUTES}} --inter 768 --out datasets/models/austen-tiny-i768 --init-out target/train-tiny/init-i768

# Do rotor and llama.cpp compute the same model? The trained austen-tiny-i768 in rotor
# (safetensors; TQ2_0/TQ1_0/I2_S GGUF; ReLU² and the --ffn-act silu research switch) and in
# llama.cpp (llama-cpp-python, built once into ~/.cache/rotor/peers-venv like bench-peers) on
# the same test chunks: perplexity, per-position logit agreement, tokenizer agreement. CSV in
# reports/results/crosscheck/, then the report. A few minutes; not part of `just test` or CI
# (the tests run its rotor arms in tiny mode).
bench-crosscheck *FLAGS:
    #!/usr/bin/env bash
    set -euo pipefail
    lock="${ROTOR_BENCH_LOCK:-/tmp/rotor-build.lock}"
    run() { if [ "$lock" = none ]; then "$@"; else flock "$lock" "$@"; fi; }
    run cargo build --release -p crosscheck
    py=$(run bash experiments/peers/setup-llama.sh | tail -n 1)
    run ./target/release/crosscheck --python "$py" {{FLAGS}}
    run just report

# Exports the synthesized 2B-4T-shape model to TQ2_0 / TQ1_0 GGUF, checks each file loads in
# llama.cpp and in rotor, then times `rotor bench` and llama.cpp (llama-cpp-python from PyPI,
# compiled once into ~/.cache/rotor/peers-venv, ~12 min) alternately; CSV in
# reports/results/peers/, then the report. Not part of `just test` or CI. Every heavy step holds
# ROTOR_BENCH_LOCK (default /tmp/rotor-build.lock; `none`: no lock). `--full`: more cases.
# Speed next to llama.cpp, in one run, on the same model (see experiments/peers/README.md).
bench-peers *FLAGS:
    #!/usr/bin/env bash
    set -euo pipefail
    lock="${ROTOR_BENCH_LOCK:-/tmp/rotor-build.lock}"
    run() { if [ "$lock" = none ]; then "$@"; else flock "$lock" "$@"; fi; }
    run cargo build --release -p rotor -p peers
    [ -f {{models}}/2b4t/model.safetensors ] || run ./target/release/rotor synth --preset 2b4t --out {{models}}/2b4t --force
    py=$(run bash experiments/peers/setup-llama.sh | tail -n 1)
    ./target/release/peers --model {{models}}/2b4t --python "$py" --lock "$lock" {{FLAGS}}
    run just report
