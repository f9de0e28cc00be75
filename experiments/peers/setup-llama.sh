#!/usr/bin/env bash
# Install llama.cpp's Python binding (llama-cpp-python, from PyPI) into a cached venv, or reuse it.
#
# pip compiles the llama.cpp sources vendored in the sdist (13 min 40 s for a fresh venv on this
# project's shared 2-core machine under `nice -n 19`, 798 s of it the compile), so the venv
# is kept outside the repository and outside `target/` (a `cargo clean` must not cost a rebuild):
#   ROTOR_PEERS_VENV          venv directory  (default ~/.cache/rotor/peers-venv)
#   LLAMA_CPP_PYTHON_VERSION  pinned version  (default below)
# The venv is reused when its stamp names the same version and CMake flags; otherwise it is
# rebuilt from scratch. The build's facts (version, vendored llama.cpp commit, CMake flags, build
# seconds) go to $VENV/rotor-peers-build.json, which `peers` copies into its results.
#
# CMake flags: CPU only, this CPU's instruction set (-march=native via GGML_NATIVE), no OpenMP
# (ggml then uses its own thread pool), no BLAS, no GPU backends, no libcurl.
# The last line of stdout is the venv's python.
set -euo pipefail

VENV=${ROTOR_PEERS_VENV:-$HOME/.cache/rotor/peers-venv}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
FLAGS="-DGGML_NATIVE=ON -DGGML_OPENMP=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_HIP=OFF -DGGML_SYCL=OFF -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release"
want="llama-cpp-python==$VERSION $FLAGS"
stamp="$VENV/rotor-peers-stamp"
info="$VENV/rotor-peers-build.json"

# The sdist of the pinned version, downloaded once into $VENV/sdist (no build).
# `--no-binary llama-cpp-python` names the one package that must come as source: pip still
# prepares the sdist's metadata in an isolated build environment, and with `--no-binary :all:`
# that environment's own packages (scikit-build-core, hatchling, setuptools, cmake) would be
# compiled from source too, which takes longer than llama.cpp itself (and a fresh venv has no
# scikit-build-core for `--no-build-isolation`). Wheels for the build tools are what we want.
fetch_sdist() {
    mkdir -p "$VENV/sdist"
    if ! ls "$VENV"/sdist/llama_cpp_python-"$VERSION".tar.gz >/dev/null 2>&1; then
        "$VENV/bin/python" -m pip download --quiet --no-deps --no-binary llama-cpp-python \
            "llama-cpp-python==$VERSION" -d "$VENV/sdist" >&2
    fi
    ls "$VENV"/sdist/llama_cpp_python-"$VERSION".tar.gz
}

# The llama.cpp commit the sdist vendors (its git submodule HEAD), or "unknown".
vendored_commit() {
    local t
    t=$(tar -tzf "$1" | grep -m1 '/.git/modules/vendor/llama.cpp/HEAD$' || true)
    if [ -n "$t" ]; then tar -xzOf "$1" "$t" | head -c 40; else echo unknown; fi
}

write_info() { # secs commit
    cat >"$info" <<JSON
{"package": "llama-cpp-python", "version": "$VERSION", "llama_cpp_commit": "$2", "cmake_args": "$FLAGS", "build_seconds": $1, "nproc": $(nproc), "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
JSON
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
    echo "setup-llama: reusing $VENV (llama-cpp-python $VERSION)" >&2
    if ! grep -q llama_cpp_commit "$info" 2>/dev/null; then
        secs=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("build_seconds", "null"))' "$info" 2>/dev/null || echo null)
        # Only from a kept sdist: the commit is informational and not worth a download.
        sd=$(ls "$VENV"/sdist/llama_cpp_python-"$VERSION".tar.gz 2>/dev/null || true)
        write_info "$secs" "$(if [ -n "$sd" ]; then vendored_commit "$sd"; else echo unknown; fi)"
    fi
    echo "$VENV/bin/python"
    exit 0
fi

echo "setup-llama: building llama-cpp-python $VERSION into $VENV (compiles llama.cpp; ~14 min on 2 cores)" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
sdist=$(fetch_sdist)
commit=$(vendored_commit "$sdist")
start=$(date +%s)
# --no-cache-dir: never reuse a wheel pip built earlier with other CMake flags; the sdist is
# compiled here, so -march=native means this machine.
CMAKE_ARGS="$FLAGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/python" -m pip install --no-cache-dir "$sdist" >"$VENV/pip-build.log" 2>&1 || {
    tail -40 "$VENV/pip-build.log" >&2
    echo "setup-llama: pip install failed; full log in $VENV/pip-build.log" >&2
    exit 1
}
secs=$(($(date +%s) - start))
write_info "$secs" "$commit"
echo "$want" >"$stamp"
echo "setup-llama: built in ${secs} s (llama.cpp $commit)" >&2
echo "$VENV/bin/python"
