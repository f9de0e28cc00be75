#!/usr/bin/env python3
"""Time llama.cpp on one GGUF file through its Python binding (llama-cpp-python).

The llama.cpp arm of the `peers` experiment (experiments/peers). It mirrors `rotor bench`
(engine/src/bin/rotor.rs, `cmd_bench`) step for step, in one process:

  load      Llama(model_path, ...) with mmap on and mlock off (rotor maps the checkpoint too)
  prompt    --prompt-tokens pseudo-random token ids (the ids do not change the work done)
  prefill   one untimed evaluation of the prompt, then --runs timed ones, each from an empty KV
            cache; one llama_decode per run (n_batch = n_ubatch >= prompt), logits for the
            last position only; tokens/s = prompt tokens / wall time
  decode    --runs timed runs; each truncates the KV cache to the prompt, then --gen-tokens
            steps of llama_decode on one token + llama.cpp's greedy sampler (argmax over the
            vocabulary); tokens/s = gen tokens / wall time of the run

Prints one JSON object on stdout with the same keys as `rotor bench --json` where they exist
(prefill_tok_s and decode_tok_s are medians over runs, decode_tok_s_min/max the extremes), plus
llama.cpp's own counters (llama_perf_context: t_p_eval_ms / t_eval_ms) as *_internal.

`--info` prints the binding's version and llama.cpp's system info without loading a model.
`--check` loads the model, compares its metadata with --expect-* values, evaluates a few tokens
and tokenizes --text, and prints what it found; it exits non-zero when the file does not load
or a check fails.

Threads: n_threads (decode) = n_threads_batch (prefill) = --threads. Without OpenMP (as
setup-llama.sh builds it), ggml computes each graph on a thread pool it creates for that call
(the binding attaches no persistent pool), whose workers poll ("hybrid polling", level 50)
between operations before they sleep.
"""

import argparse
import json
import random
import resource
import sys
import time


def die(msg):
    print(f"llama_bench: {msg}", file=sys.stderr)
    sys.exit(1)


def version_info():
    import llama_cpp

    return {
        "llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"),
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    }


def load(path, threads, n_ctx, n_batch):
    from llama_cpp import Llama

    t = time.perf_counter()
    llm = Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_batch=n_batch,
        n_ubatch=n_batch,
        n_threads=threads,
        n_threads_batch=threads,
        use_mmap=True,
        use_mlock=False,
        logits_all=False,
        flash_attn=False,
        verbose=False,
    )
    return llm, time.perf_counter() - t


def median(v):
    s = sorted(v)
    return s[len(s) // 2]


def bench(a):
    import llama_cpp

    cap = a.prompt_tokens + a.gen_tokens + 1
    n_ctx = (cap + 255) // 256 * 256
    llm, load_s = load(a.model, a.threads, n_ctx, max(a.prompt_tokens, 32))
    ctx = llm._ctx.ctx
    n_vocab = llm.n_vocab()
    rng = random.Random(42)
    prompt = [rng.randrange(n_vocab) for _ in range(a.prompt_tokens)]
    greedy = llama_cpp.llama_sampler_init_greedy()
    runs = max(a.runs, 1)

    # Prefill: one warm-up, then timed runs from an empty cache.
    llm.reset()
    llm.eval(prompt)
    llama_cpp.llama_perf_context_reset(ctx)
    prefill = []
    for _ in range(runs):
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt)
        prefill.append(a.prompt_tokens / (time.perf_counter() - t))
    perf = llama_cpp.llama_perf_context(ctx)
    prefill_internal = perf.n_p_eval / (perf.t_p_eval_ms / 1e3) if perf.t_p_eval_ms > 0 else None

    # Decode: greedy steps after the prompt, timed per run.
    llama_cpp.llama_perf_context_reset(ctx)
    decode = []
    for _ in range(runs):
        llm.n_tokens = a.prompt_tokens  # eval() drops the cache beyond n_tokens
        nxt = prompt[-1]
        t = time.perf_counter()
        for _ in range(a.gen_tokens):
            llm.eval([nxt])
            nxt = llama_cpp.llama_sampler_sample(greedy, ctx, -1)
        decode.append(a.gen_tokens / (time.perf_counter() - t))
    perf = llama_cpp.llama_perf_context(ctx)
    decode_internal = perf.n_eval / (perf.t_eval_ms / 1e3) if perf.t_eval_ms > 0 else None
    llama_cpp.llama_sampler_free(greedy)

    out = {
        "engine": "llama.cpp",
        "model": a.model,
        "load_s": load_s,
        "prefill_tok_s": median(prefill),
        "prefill_tok_s_min": min(prefill),
        "prefill_tok_s_max": max(prefill),
        "decode_tok_s": median(decode),
        "decode_tok_s_min": min(decode),
        "decode_tok_s_max": max(decode),
        "prefill_tok_s_internal": prefill_internal,
        "decode_tok_s_internal": decode_internal,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": a.threads,
        "n_ctx": llm.n_ctx(),
        "n_batch": llm.n_batch,
        "flash_attn": False,
        "prompt_tokens": a.prompt_tokens,
        "gen_tokens": a.gen_tokens,
        "runs": runs,
        "last_token": nxt,
    }
    out.update(version_info())
    return out


def check(a):
    import llama_cpp

    try:
        llm, load_s = load(a.model, a.threads, 256, 64)
    except Exception as e:  # the binding raises ValueError("Failed to load model from file")
        return {"loaded": False, "error": f"{type(e).__name__}: {e}"}
    md = dict(llm.metadata)
    model = llm._model.model
    found = {
        "n_vocab": llm.n_vocab(),
        "n_embd": llama_cpp.llama_model_n_embd(model),
        "n_layer": llama_cpp.llama_model_n_layer(model),
        "n_head": llama_cpp.llama_model_n_head(model),
    }
    want = {
        "n_vocab": a.expect_vocab,
        "n_embd": a.expect_hidden,
        "n_layer": a.expect_layers,
        "n_head": a.expect_heads,
    }
    failures = [f"{k}: llama.cpp reads {found[k]}, expected {v}" for k, v in want.items() if v is not None and found[k] != v]
    desc = ctypes_str(llama_cpp.llama_model_desc, model)
    tokens = llm.tokenize(a.text.encode(), add_bos=True, special=False)
    if a.expect_tokens:
        exp = [int(x) for x in a.expect_tokens.split(",")]
        if tokens != exp:
            failures.append(f"tokenizer: llama.cpp gives {tokens}, rotor gives {exp}")
    import numpy as np

    llm.eval(tokens)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
    finite = bool(np.isfinite(logits).all())
    if not finite:
        failures.append("logits of the last prompt position are not all finite")
    return {
        "loaded": True,
        "load_s": load_s,
        "desc": desc,
        "architecture": md.get("general.architecture"),
        "file_type": md.get("general.file_type"),
        **found,
        "text": a.text,
        "tokens": tokens,
        "logits_finite": finite,
        "argmax": int(np.argmax(logits)),
        "max_logit": float(np.max(logits)),
        "failures": failures,
        **version_info(),
    }


def ctypes_str(fn, model):
    import ctypes

    buf = ctypes.create_string_buffer(256)
    fn(model, buf, 256)
    return buf.value.decode(errors="replace")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="GGUF file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--gen-tokens", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--info", action="store_true")
    p.add_argument("--check", action="store_true")
    p.add_argument("--text", default="It is a truth universally acknowledged")
    p.add_argument("--expect-tokens", help="comma-separated ids rotor's tokenizer gives for --text")
    p.add_argument("--expect-vocab", type=int)
    p.add_argument("--expect-hidden", type=int)
    p.add_argument("--expect-layers", type=int)
    p.add_argument("--expect-heads", type=int)
    a = p.parse_args()
    if a.info:
        print(json.dumps(version_info()))
        return
    if not a.model:
        die("--model FILE is required")
    if a.check:
        r = check(a)
        print(json.dumps(r))
        if not r["loaded"] or r["failures"]:
            sys.exit(2)
        return
    print(json.dumps(bench(a)))


if __name__ == "__main__":
    main()
