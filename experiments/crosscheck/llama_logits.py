#!/usr/bin/env python3
"""Score token chunks with llama.cpp (llama-cpp-python) and write what the crosscheck needs.

The llama.cpp arm of the `crosscheck` experiment (experiments/crosscheck). rotor builds the
chunks (llama.cpp's perplexity convention: non-overlapping, BOS first) and writes them as
little-endian u32 [n_chunks][ctx] to --chunks; this script evaluates each chunk from an empty
KV cache in one llama_decode with logits for every position, and writes:

  --out PREFIX.nll      f64 [n_chunks][ctx-1]: -log softmax(logits[j])[chunk[j+1]], every j,
                        computed in float64 from llama.cpp's float32 logits (rotor picks the
                        scored positions, so both engines are scored by the same code)
  --out PREFIX.logits   f32 [--full][ctx][n_vocab]: the raw logits of the first --full chunks
                        (per-position agreement)

and prints one JSON object on stdout (loaded, error, versions, n_vocab, seconds, and, with
--tokenize, how llama.cpp's tokenizer compares with rotor's on the whole text).

A file llama.cpp cannot load is not an error of this script: it prints {"loaded": false,
"error": ...} and exits 0, so the experiment can record it.

--kv f16|f32 sets the KV cache type (llama.cpp's default is f16; f32 matches rotor's cache).
"""

import argparse
import json
import sys
import time


def die(msg):
    print(f"llama_logits: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="GGUF file")
    p.add_argument("--chunks", required=True, help="u32 little-endian [n][ctx] token ids")
    p.add_argument("--ctx", type=int, required=True)
    p.add_argument("--full", type=int, default=0, help="chunks whose full logits are written")
    p.add_argument("--out", required=True, help="output prefix")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kv", choices=["f16", "f32"], default="f16")
    p.add_argument("--tokenize", help="UTF-8 text to tokenize (BOS first) and compare")
    p.add_argument("--expect", help="u32 little-endian token ids rotor gives for --tokenize")
    a = p.parse_args()

    import numpy as np
    import llama_cpp
    from llama_cpp import Llama

    info = {
        "llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"),
        "kv": a.kv,
        "threads": a.threads,
    }
    ids = np.fromfile(a.chunks, dtype="<u4")
    if a.ctx < 2 or ids.size % a.ctx != 0:
        die(f"{a.chunks}: {ids.size} ids are not a whole number of chunks of {a.ctx}")
    chunks = ids.reshape(-1, a.ctx)
    kv_type = {"f16": 1, "f32": 0}[a.kv]  # GGML_TYPE_F16, GGML_TYPE_F32
    t0 = time.perf_counter()
    try:
        llm = Llama(
            model_path=a.model,
            n_ctx=a.ctx,
            n_batch=a.ctx,
            n_ubatch=a.ctx,
            n_threads=a.threads,
            n_threads_batch=a.threads,
            logits_all=True,
            flash_attn=False,
            type_k=kv_type,
            type_v=kv_type,
            use_mmap=True,
            verbose=False,
        )
    except Exception as e:  # the binding raises ValueError("Failed to load model from file")
        info.update({"loaded": False, "error": f"{type(e).__name__}: {e}"})
        print(json.dumps(info))
        return
    info["loaded"] = True
    info["load_s"] = time.perf_counter() - t0
    n_vocab = llm.n_vocab()
    info["n_vocab"] = n_vocab
    info["desc"] = llm.metadata.get("general.name")

    if a.tokenize:
        text = open(a.tokenize, encoding="utf-8").read()
        got = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        want = np.fromfile(a.expect, dtype="<u4").tolist() if a.expect else []
        first = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), None)
        if first is None and len(got) != len(want):
            first = min(len(got), len(want))
        info["tokenize"] = {
            "llama_tokens": len(got),
            "rotor_tokens": len(want),
            "identical": first is None,
            "first_difference": first,
            "llama_around": got[max(0, (first or 0) - 3) : (first or 0) + 3] if first is not None else [],
            "rotor_around": want[max(0, (first or 0) - 3) : (first or 0) + 3] if first is not None else [],
        }

    t1 = time.perf_counter()
    nll = np.empty((chunks.shape[0], a.ctx - 1), dtype="<f8")
    full = min(a.full, chunks.shape[0])
    with open(a.out + ".logits", "wb") as lf:
        for i, c in enumerate(chunks):
            llm.reset()
            llm.eval(c.tolist())
            logits = np.array(llm.scores[: a.ctx], dtype=np.float32)
            if logits.shape != (a.ctx, n_vocab):
                die(f"chunk {i}: logits have shape {logits.shape}, expected {(a.ctx, n_vocab)}")
            x = logits[:-1].astype(np.float64)
            m = x.max(axis=1, keepdims=True)
            lse = np.log(np.exp(x - m).sum(axis=1)) + m[:, 0]
            nll[i] = lse - x[np.arange(a.ctx - 1), c[1:].astype(np.int64)]
            if i < full:
                lf.write(logits.astype("<f4").tobytes())
            if sys.stderr.isatty():
                print(f"\rllama.cpp: chunk {i + 1}/{chunks.shape[0]}", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    nll.tofile(a.out + ".nll")
    info["chunks"] = int(chunks.shape[0])
    info["full"] = full
    info["eval_s"] = time.perf_counter() - t1
    info["finite"] = bool(np.isfinite(nll).all())
    print(json.dumps(info))


if __name__ == "__main__":
    main()
