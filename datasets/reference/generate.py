#!/usr/bin/env python3
"""Reference-fixture generator for rotor (BitNet b1.58 inference in Rust).

Builds small, seeded, random BitNet b1.58 checkpoints in the layout of
microsoft/bitnet-b1.58-2B-4T (packed, "offline") and of its -bf16 sibling
(bf16 masters, "online"), loads each one back through Hugging Face
transformers' own BitNet code, and dumps float32 reference outputs that the
Rust tests compare against.

See README.md next to this file and docs/FORMAT.md at the repository root
(sections 2, 5, 7).

Usage:
    python generate.py [--out DIR] [--only a,b,...]

DIR defaults to ./fixtures next to this script.  Output is deterministic:
two runs give byte-identical files.
"""

import os

# FORMAT.md §5.2: transformers' unpack_weights / ActQuant / WeightQuant are
# @torch.compile'd.  Compiled and eager results are bit-identical, so run
# eager by default (no C-compiler round trips).  Export
# TORCHDYNAMO_DISABLE=0 to run the compiled path instead.
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
# Keep every library single-threaded and quiet.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import argparse
import hashlib
import json
import platform
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

import accelerate
import safetensors
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from transformers.integrations.bitnet import AutoBitLinear, pack_weights

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()

SCRIPT_DIR = Path(__file__).resolve().parent

SEQ_LEN = 24
PROJ_POSITIONS = [0, 5, 23]
GREEDY_PROMPT_LEN = 8
GREEDY_NEW_TOKENS = 16

ATTN_PROJS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_PROJS = ["gate_proj", "up_proj", "down_proj"]
PROJS = ATTN_PROJS + MLP_PROJS

# The model table from the task brief.  Every seed below is derived from `seed`.
MODELS = OrderedDict(
    [
        ("a", dict(vocab=512, hidden=128, intermediate=256, layers=3, heads=4, kv_heads=2,
                   rope_theta=500000.0, rms_norm_eps=1e-5, max_pos=256, mode="offline", seed=1001)),
        ("b", dict(vocab=1000, hidden=192, intermediate=512, layers=4, heads=6, kv_heads=2,
                   rope_theta=10000.0, rms_norm_eps=1e-5, max_pos=128, mode="offline", seed=1002)),
        ("c", dict(vocab=300, hidden=80, intermediate=200, layers=2, heads=5, kv_heads=1,
                   rope_theta=500000.0, rms_norm_eps=1e-6, max_pos=64, mode="offline", seed=1003)),
        ("d", dict(vocab=512, hidden=128, intermediate=256, layers=2, heads=4, kv_heads=2,
                   rope_theta=500000.0, rms_norm_eps=1e-5, max_pos=256, mode="online", seed=1004)),
    ]
)

# Standard deviations of the random bf16 masters.
#
# With a tied head the logit of a token v is <gain * rmsnorm(h), e_v>, so EMBED_STD sets the
# logit scale (std ~ EMBED_STD * sqrt(hidden)).  If the residual stream h were dominated by the
# embedding of the current token, every position would predict its own token and the layers
# would hardly matter; so the projections that write into the residual stream (o_proj,
# down_proj) get a larger master std.  A projection's ternary t does not depend on the master's
# scale, only weight_scale does (the released 2B-4T has weight_scale ~1.5, i.e. large masters).
# q/k get a moderate gain so attention is neither uniform nor one-hot.
EMBED_STD = 0.5
NORM_GAIN_NOISE = 0.1  # RMSNorm gains = 1 + N(0, 0.1^2), so they are not all ones
PROJ_GAIN = {"q_proj": 2.0, "k_proj": 2.0, "v_proj": 1.0, "o_proj": 8.0,
             "gate_proj": 1.0, "up_proj": 1.0, "down_proj": 8.0}  # master std = gain / sqrt(in)


# ---------------------------------------------------------------------------
# config.json
# ---------------------------------------------------------------------------

def config_json(row):
    """config.json with exactly the keys (and key order) of the real repo (FORMAT.md §1)."""
    return OrderedDict(
        [
            ("architectures", ["BitNetForCausalLM"]),
            ("auto_map", OrderedDict([
                ("AutoConfig", "configuration_bitnet.BitNetConfig"),
                ("AutoModelForCausalLM", "modeling_bitnet.BitNetForCausalLM"),
            ])),
            ("bos_token_id", 1),
            ("eos_token_id", 2),
            ("hidden_act", "relu2"),
            ("hidden_size", row["hidden"]),
            ("initializer_range", 0.02),
            ("intermediate_size", row["intermediate"]),
            ("max_position_embeddings", row["max_pos"]),
            ("model_type", "bitnet"),
            ("rms_norm_eps", row["rms_norm_eps"]),
            ("num_attention_heads", row["heads"]),
            ("num_hidden_layers", row["layers"]),
            ("num_key_value_heads", row["kv_heads"]),
            ("rope_theta", row["rope_theta"]),
            ("tie_word_embeddings", True),
            ("torch_dtype", "bfloat16"),
            ("use_cache", True),
            ("vocab_size", row["vocab"]),
            ("quantization_config", OrderedDict([
                ("quant_method", "bitnet"),
                ("linear_class", "autobitlinear"),
                ("quantization_mode", row["mode"]),
            ])),
        ]
    )


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------

def bf16_from_normal(rng, shape, mean, std):
    """Seeded normal draw (numpy, float64) -> float32 -> bfloat16 (round to nearest even)."""
    x = rng.normal(mean, std, size=shape).astype(np.float32)
    return torch.from_numpy(x).to(torch.bfloat16)


def proj_shapes(row):
    head_dim = row["hidden"] // row["heads"]
    h, i = row["hidden"], row["intermediate"]
    q_out = row["heads"] * head_dim
    kv_out = row["kv_heads"] * head_dim
    # (out_features, in_features)
    return {
        "q_proj": (q_out, h),
        "k_proj": (kv_out, h),
        "v_proj": (kv_out, h),
        "o_proj": (h, q_out),
        "gate_proj": (i, h),
        "up_proj": (i, h),
        "down_proj": (h, i),
    }


def proj_key(layer, p):
    sub = "self_attn" if p in ATTN_PROJS else "mlp"
    return f"model.layers.{layer}.{sub}.{p}"


def make_masters(row):
    """All bf16 master tensors, keyed by their checkpoint names (projections unquantized)."""
    rng = np.random.default_rng(row["seed"])
    h, i = row["hidden"], row["intermediate"]
    masters = OrderedDict()
    masters["model.embed_tokens.weight"] = bf16_from_normal(rng, (row["vocab"], h), 0.0, EMBED_STD)
    shapes = proj_shapes(row)
    for layer in range(row["layers"]):
        pre = f"model.layers.{layer}"
        masters[f"{pre}.input_layernorm.weight"] = bf16_from_normal(rng, (h,), 1.0, NORM_GAIN_NOISE)
        masters[f"{pre}.post_attention_layernorm.weight"] = bf16_from_normal(rng, (h,), 1.0, NORM_GAIN_NOISE)
        masters[f"{pre}.self_attn.attn_sub_norm.weight"] = bf16_from_normal(rng, (h,), 1.0, NORM_GAIN_NOISE)
        masters[f"{pre}.mlp.ffn_sub_norm.weight"] = bf16_from_normal(rng, (i,), 1.0, NORM_GAIN_NOISE)
        for p in PROJS:
            out_f, in_f = shapes[p]
            masters[f"{proj_key(layer, p)}.weight"] = bf16_from_normal(
                rng, (out_f, in_f), 0.0, PROJ_GAIN[p] / np.sqrt(in_f))
    masters["model.norm.weight"] = bf16_from_normal(rng, (h,), 1.0, NORM_GAIN_NOISE)
    return masters


def absmean_ternarize(w_bf16):
    """FORMAT.md §7 step 2.  Returns (t as float32 in {-1,0,1}, mean|W| in f32, weight_scale bf16 [1])."""
    w32 = w_bf16.to(torch.float32)
    m = w32.abs().mean()                       # float32 mean
    t = torch.clamp(torch.round(w32 / m), -1.0, 1.0)   # torch.round: half to even
    ws = m.reshape(1).to(torch.bfloat16)       # rounded to bf16, shape [1]
    # How close did any element come to a rounding boundary (|W/m| = 0.5 or 1.5)?
    r = (w32 / m).abs().to(torch.float64)
    near = torch.minimum((r - 0.5).abs(), (r - 1.5).abs()).min().item()
    return t, m, ws, near


def pack_ternary(t):
    """Own implementation of FORMAT.md §2.1: U8 [out/4, in], rows blocked (byte row r = rows r, r+R, r+2R, r+3R)."""
    out_f = t.shape[0]
    assert out_f % 4 == 0, out_f
    R = out_f // 4
    codes = (t.to(torch.int16) + 1)           # 0, 1, 2
    assert int(codes.min()) >= 0 and int(codes.max()) <= 2
    packed = torch.zeros((R,) + tuple(t.shape[1:]), dtype=torch.int16)
    for j in range(4):
        packed |= codes[j * R:(j + 1) * R] << (2 * j)
    return packed.to(torch.uint8)


def unpack_ternary(packed):
    """Inverse of pack_ternary: t[j*R + r][c] = ((packed[r][c] >> 2j) & 3) - 1."""
    p = packed.to(torch.int16)
    return torch.cat([((p >> (2 * j)) & 3) - 1 for j in range(4)], dim=0).to(torch.float32)


def self_test_packing():
    # Worked example of FORMAT.md §2.1.
    t = torch.tensor([[1], [0], [-1], [1], [0], [0], [-1], [-1]], dtype=torch.float32)
    packed = pack_ternary(t)
    assert packed.flatten().tolist() == [18, 25], packed
    assert torch.equal(unpack_ternary(packed), t)
    assert torch.equal(pack_weights(t.clone()), packed)


def build_checkpoint(row):
    """Returns (tensors to save, per-projection info dict, check results)."""
    masters = make_masters(row)
    tensors = OrderedDict()
    info = {}
    offline = row["mode"] == "offline"
    checks = {}
    if offline:
        checks["pack_matches_transformers_pack_weights"] = True
        checks["unpack_roundtrip"] = True
    min_dist_to_boundary = float("inf")
    for name, w in masters.items():
        is_proj = name.endswith("_proj.weight")
        if not is_proj:
            tensors[name] = w.contiguous()
            continue
        base = name[: -len(".weight")]
        t, m, ws, near = absmean_ternarize(w)
        min_dist_to_boundary = min(min_dist_to_boundary, near)
        entry = {
            "absmean_f32": float(m.item()),
            "frac_zero": float((t == 0).to(torch.float64).mean().item()),
        }
        if offline:
            packed = pack_ternary(t)
            ref = pack_weights(t.clone())      # pack_weights mutates its argument
            if ref.dtype != torch.uint8 or not torch.equal(ref, packed):
                checks["pack_matches_transformers_pack_weights"] = False
            if not torch.equal(unpack_ternary(packed), t):
                checks["unpack_roundtrip"] = False
            tensors[name] = packed.contiguous()
            tensors[f"{base}.weight_scale"] = ws.contiguous()
            entry["weight_scale_bf16"] = float(ws.to(torch.float32).item())
        else:
            tensors[name] = w.contiguous()     # bf16 master [out, in], no weight_scale
        info[base] = dict(entry, t=t, master=w)
    if offline:
        # min over elements of | |W/m| - 0.5 | and | |W/m| - 1.5 | (informational: t is stored)
        checks["ternarize_min_distance_to_rounding_boundary"] = min_dist_to_boundary
        assert checks["pack_matches_transformers_pack_weights"], "own packer disagrees with pack_weights"
        assert checks["unpack_roundtrip"]
    else:
        checks["online_ternarization_stability"] = online_ternarization_stability(info)
    return tensors, info, checks


# ---------------------------------------------------------------------------
# Reference forward passes
# ---------------------------------------------------------------------------

def load_f32(model_dir):
    model, loading_info = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    # FORMAT.md §5.1: embeddings and RMSNorm gains stay bf16 after dtype=float32.
    dtypes_before = sorted({str(p.dtype) for p in model.parameters()} |
                           {str(b.dtype) for b in model.buffers()})
    bf16_left = sorted(n for n, p in model.named_parameters() if p.dtype != torch.float32)
    # Confirm FORMAT.md §5.1: without .to(float32) the forward fails on mixed dtypes.
    probe = "not tried: every parameter is already float32"
    if bf16_left:
        try:
            with torch.no_grad():
                model(input_ids=torch.tensor([[3, 4]]), use_cache=False)
            probe = "forward succeeded without .to(torch.float32)"
        except RuntimeError as e:
            probe = "RuntimeError: " + str(e).splitlines()[0]
    model = model.to(torch.float32)
    model.eval()
    return model, loading_info, dtypes_before, bf16_left, probe


def top2_margin(logits):
    top = torch.topk(logits, 2, dim=-1).values
    return top[..., 0] - top[..., 1]


def verify_loaded(model, row, info):
    checks = {}
    cfg = model.config
    assert cfg.rope_parameters["rope_theta"] == row["rope_theta"], cfg.rope_parameters
    assert cfg.rms_norm_eps == row["rms_norm_eps"]
    assert cfg.max_position_embeddings == row["max_pos"]
    assert cfg.tie_word_embeddings is True
    assert cfg.hidden_act == "relu2"
    head_dim = row["hidden"] // row["heads"]
    inv = 1.0 / (row["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    assert torch.equal(model.model.rotary_emb.inv_freq, inv)
    for mod in model.modules():
        if mod.__class__.__name__ == "BitNetRMSNorm":
            assert mod.variance_epsilon == row["rms_norm_eps"]
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head not tied"
    checks["rope_theta_loaded"] = cfg.rope_parameters["rope_theta"]
    checks["lm_head_tied_to_embed_tokens"] = True

    online = row["mode"] == "online"
    for layer in range(row["layers"]):
        for p in PROJS:
            key = proj_key(layer, p)
            mod = model.get_submodule(key)
            assert isinstance(mod, AutoBitLinear), (key, type(mod))
            assert mod.online_quant == online
            assert mod.bias is None
            assert mod.weight.dtype == torch.float32
            if online:
                assert not hasattr(mod, "weight_scale")
                assert torch.equal(mod.weight, info[key]["master"].to(torch.float32)), key
            else:
                assert torch.equal(mod.weight, info[key]["t"]), key
                ws = mod.weight_scale
                assert ws.shape == (1,) and ws.dtype == torch.float32
                assert ws.item() == info[key]["weight_scale_bf16"], key
    checks["projections_are_AutoBitLinear"] = True
    if online:
        checks["loaded_weights_equal_bf16_masters"] = True
    else:
        checks["unpacked_weights_equal_t"] = True
        checks["weight_scale_loaded_equals_bf16_absmean"] = True
    return checks


@torch.no_grad()
def reference_forward(model, row, input_ids):
    """One full forward (no cache) with hooks; returns dict of tensors."""
    L = row["layers"]
    pos = torch.tensor(PROJ_POSITIONS, dtype=torch.long)
    captured = {}
    handles = []

    def first_tensor(x):
        return x[0] if isinstance(x, (tuple, list)) else x

    def save_output(name):
        def hook(_mod, _args, out):
            captured[name] = first_tensor(out)[0].detach().clone()
        return hook

    def save_proj(name):
        def hook(_mod, args, out):
            captured[f"{name}.in"] = args[0][0, pos].detach().clone()
            captured[f"{name}.out"] = out[0, pos].detach().clone()
        return hook

    handles.append(model.model.embed_tokens.register_forward_hook(save_output("embed")))
    for i, layer in enumerate(model.model.layers):
        handles.append(layer.register_forward_hook(save_output(f"layer.{i}")))
        for p in PROJS:
            mod = model.get_submodule(proj_key(i, p))
            handles.append(mod.register_forward_hook(save_proj(f"proj.{i}.{p}")))
    handles.append(model.model.norm.register_forward_hook(save_output("final_norm")))
    try:
        out = model(input_ids=input_ids[None, :], use_cache=False)
    finally:
        for hnd in handles:
            hnd.remove()
    logits = out.logits[0].detach().clone()

    res = OrderedDict()
    res["input_ids"] = input_ids.clone()
    res["logits"] = logits
    res["streams"] = torch.stack([captured["embed"]] + [captured[f"layer.{i}"] for i in range(L)])
    res["final_norm"] = captured["final_norm"]
    for i in range(L):
        for p in PROJS:
            res[f"proj.{i}.{p}.in"] = captured[f"proj.{i}.{p}.in"]
            res[f"proj.{i}.{p}.out"] = captured[f"proj.{i}.{p}.out"]
    res["proj_positions"] = pos.clone()
    res["top_margins"] = top2_margin(logits)
    return res


@torch.no_grad()
def greedy(model, prompt, n_new):
    ids = prompt.clone()
    new_ids, margins = [], []
    for _ in range(n_new):
        logits = model(input_ids=ids[None, :], use_cache=False).logits[0, -1]
        nxt = int(torch.argmax(logits).item())
        new_ids.append(nxt)
        margins.append(top2_margin(logits))
        ids = torch.cat([ids, torch.tensor([nxt], dtype=torch.long)])
    return torch.tensor(new_ids, dtype=torch.long), torch.stack(margins).to(torch.float32)


def check_shapes(res, row):
    L, V, H = row["layers"], row["vocab"], row["hidden"]
    shapes = proj_shapes(row)
    want = {
        "input_ids": ((SEQ_LEN,), torch.int64),
        "logits": ((SEQ_LEN, V), torch.float32),
        "streams": ((L + 1, SEQ_LEN, H), torch.float32),
        "final_norm": ((SEQ_LEN, H), torch.float32),
        "proj_positions": ((3,), torch.int64),
        "greedy_prompt": ((GREEDY_PROMPT_LEN,), torch.int64),
        "greedy_ids": ((GREEDY_NEW_TOKENS,), torch.int64),
        "greedy_margins": ((GREEDY_NEW_TOKENS,), torch.float32),
        "top_margins": ((SEQ_LEN,), torch.float32),
    }
    for i in range(L):
        for p in PROJS:
            out_f, in_f = shapes[p]
            want[f"proj.{i}.{p}.in"] = ((3, in_f), torch.float32)
            want[f"proj.{i}.{p}.out"] = ((3, out_f), torch.float32)
    assert set(want) == set(res), set(want) ^ set(res)
    for k, (shape, dt) in want.items():
        assert tuple(res[k].shape) == shape and res[k].dtype == dt, (k, res[k].shape, res[k].dtype)
        if dt == torch.float32:
            assert torch.isfinite(res[k]).all(), k


def act_quant_own(x):
    """ActQuant written out (FORMAT.md §3): per-row absmax, round half to even, clamp [-128, 127]."""
    x = x.to(torch.float32)
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    q = torch.clamp(torch.round(x * s), -128.0, 127.0)
    return q, s


def online_weight_own(w32):
    """WeightQuant written out (FORMAT.md §4): s = 1/mean|W| (f32), W' = clamp(round(W*s), -1, 1) / s."""
    s = 1.0 / w32.abs().mean().clamp(min=1e-5)
    return torch.clamp(torch.round(w32 * s), -1.0, 1.0) / s


def recompute_projections(res, row, info):
    """Recompute every captured projection output from its captured input with code written here
    (not transformers'), two ways: the fake-quant float path transformers uses, and the
    integer-domain path (sum q*t exactly, then / s * weight_scale, in float64)."""
    worst_float, worst_int = 0.0, 0.0
    for i in range(row["layers"]):
        for p in PROJS:
            key = proj_key(i, p)
            x, y = res[f"proj.{i}.{p}.in"], res[f"proj.{i}.{p}.out"]
            q, s = act_quant_own(x)
            if row["mode"] == "offline":
                t = info[key]["t"]
                ws = info[key]["weight_scale_bf16"]
                y_float = torch.nn.functional.linear(q / s, t) * ws
                y_int = (q.double() @ t.double().T) / s.double() * ws
            else:
                w32 = info[key]["master"].to(torch.float32)
                wq = online_weight_own(w32)
                y_float = torch.nn.functional.linear(q / s, wq)
                y_int = (q.double() @ wq.double().T) / s.double()
            scale = y.abs().max().item()
            worst_float = max(worst_float, (y_float - y).abs().max().item() / scale)
            worst_int = max(worst_int, (y_int - y.double()).abs().max().item() / scale)
    assert worst_float < 1e-5 and worst_int < 1e-5, (worst_float, worst_int)
    return {
        "proj_out_recomputed_float_path_max_rel_err": worst_float,
        "proj_out_recomputed_integer_path_f64_max_rel_err": worst_int,
    }


def online_ternarization_stability(info):
    """For the online model: does the ternary weight depend on how the f32 absmean is summed?
    Compares torch's f32 mean with the float64 mean rounded to f32, and reports how close any
    W*s comes to a rounding boundary (0.5 or 1.5)."""
    out = OrderedDict()
    n_mean_differs, n_t_differs, nearest = 0, 0, float("inf")
    for key, v in info.items():
        w32 = v["master"].to(torch.float32)
        m_t = w32.abs().mean()
        m_64 = torch.tensor(w32.double().abs().mean().item(), dtype=torch.float32)
        if m_t.item() != m_64.item():
            n_mean_differs += 1
        t_a = torch.clamp(torch.round(w32 * (1.0 / m_t)), -1, 1)
        t_b = torch.clamp(torch.round(w32 * (1.0 / m_64)), -1, 1)
        if not torch.equal(t_a, t_b):
            n_t_differs += 1
        r = (w32 * (1.0 / m_t)).abs().double()
        nearest = min(nearest, torch.minimum((r - 0.5).abs(), (r - 1.5).abs()).min().item())
    out["projections"] = len(info)
    out["f32_mean_differs_from_f64_mean_rounded"] = n_mean_differs
    out["ternary_differs_between_those_means"] = n_t_differs
    out["min_distance_of_W_times_s_to_rounding_boundary"] = nearest
    return out


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def versions():
    return OrderedDict([
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("transformers", transformers.__version__),
        ("safetensors", safetensors.__version__),
        ("accelerate", accelerate.__version__),
        ("numpy", np.__version__),
    ])


def generate_one(name, row, out_root):
    out_dir = out_root / name
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(row["seed"])
    np.random.seed(row["seed"])

    # 1. checkpoint
    tensors, info, checks = build_checkpoint(row)
    (out_dir / "config.json").write_text(json.dumps(config_json(row), indent=2) + "\n")
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    # The file on disk must read back to exactly what we meant to write.
    back = load_file(str(out_dir / "model.safetensors"))
    assert list(sorted(back)) == list(sorted(tensors))
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    assert "lm_head.weight" not in back

    # 2. load back through transformers (f32 compute)
    model, loading_info, dtypes_before, bf16_left, probe = load_f32(out_dir)
    load_checks = verify_loaded(model, row, info)
    checks.update(load_checks)
    checks["loading_info"] = {k: sorted(map(str, v)) for k, v in loading_info.items()}
    checks["param_dtypes_after_from_pretrained_f32_before_to"] = dtypes_before
    checks["params_left_bf16_by_from_pretrained_f32"] = bf16_left
    checks["forward_before_to_f32"] = probe

    # 3. reference outputs
    ids_rng = np.random.default_rng(row["seed"] + 500)
    input_ids = torch.from_numpy(ids_rng.integers(3, row["vocab"], size=SEQ_LEN).astype(np.int64))
    res = reference_forward(model, row, input_ids)

    # Consistency: a plain second forward (no hooks) gives identical logits; final norm + tied head
    # applied to streams[L] reproduce logits.
    with torch.no_grad():
        again = model(input_ids=input_ids[None, :], use_cache=False).logits[0]
        head = model.model.norm(res["streams"][-1][None])[0] @ model.model.embed_tokens.weight.T
    checks["rerun_logits_bit_identical"] = bool(torch.equal(again, res["logits"]))
    assert checks["rerun_logits_bit_identical"]
    assert torch.equal(model.model.norm(res["streams"][-1][None])[0], res["final_norm"])
    checks["head_from_final_stream_max_abs_diff"] = float((head - res["logits"]).abs().max().item())

    checks.update(recompute_projections(res, row, info))

    prompt = input_ids[:GREEDY_PROMPT_LEN].clone()
    g_ids, g_margins = greedy(model, prompt, GREEDY_NEW_TOKENS)
    # Step 0 of greedy sees exactly the first 8 tokens: it must agree with argmax of logits[7].
    assert int(g_ids[0]) == int(torch.argmax(res["logits"][GREEDY_PROMPT_LEN - 1]))
    res["greedy_prompt"] = prompt
    res["greedy_ids"] = g_ids
    res["greedy_margins"] = g_margins
    check_shapes(res, row)

    ordered = OrderedDict((k, res[k].contiguous()) for k in sorted(res))
    save_file(ordered, str(out_dir / "expected.safetensors"), metadata={"format": "pt"})

    # 4. optional bf16-compute comparison (model a)
    bf16_cmp = None
    if name == "a":
        bf16_cmp = bf16_comparison(out_dir, input_ids, res["logits"])

    # 5. meta.json
    max_abs_logit = float(res["logits"].abs().max().item())
    tm = res["top_margins"]
    meta = OrderedDict()
    meta["name"] = name
    meta["generator"] = "datasets/reference/generate.py"
    meta["versions"] = versions()
    meta["torchdynamo_disabled"] = os.environ.get("TORCHDYNAMO_DISABLE") == "1"
    meta["torch_num_threads"] = torch.get_num_threads()
    meta["seed"] = row["seed"]
    meta["input_ids_seed"] = row["seed"] + 500
    meta["model"] = OrderedDict([(k, row[k]) for k in
                                 ("vocab", "hidden", "intermediate", "layers", "heads", "kv_heads",
                                  "rope_theta", "rms_norm_eps", "max_pos")])
    meta["model"]["head_dim"] = row["hidden"] // row["heads"]
    meta["model"]["variant"] = ("packed (offline)" if row["mode"] == "offline" else "bf16 master (online)")
    meta["model"]["quantization_mode"] = row["mode"]
    meta["init"] = OrderedDict([
        ("embed_tokens", f"bf16(N(0, {EMBED_STD}^2))"),
        ("rmsnorm_gains", f"bf16(N(1, {NORM_GAIN_NOISE}^2))"),
        ("projections", "bf16(N(0, (gain/sqrt(in_features))^2)), gain per projection: " +
                        ", ".join(f"{k} {v}" for k, v in PROJ_GAIN.items())),
        ("ternarization", "m = mean|f32(W)| (f32); t = clamp(round_half_even(f32(W)/m), -1, 1); "
                          "weight_scale = bf16(m)" if row["mode"] == "offline" else
                          "none stored: transformers' WeightQuant ternarizes the bf16 master per forward "
                          "with the f32 absmean (listed per projection below)"),
    ])
    meta["max_abs_logit"] = max_abs_logit
    meta["argmax_logits"] = [int(x) for x in torch.argmax(res["logits"], dim=-1)]
    meta["min_top_margin"] = float(tm.min().item())
    meta["positions_with_top_margin_below_0.5"] = [int(i) for i in torch.nonzero(tm < 0.5).flatten()]
    meta["greedy_ids"] = [int(x) for x in g_ids]
    meta["min_greedy_margin"] = float(g_margins.min().item())
    meta["greedy_steps_with_margin_below_0.5"] = [int(i) for i in torch.nonzero(g_margins < 0.5).flatten()]
    meta["max_abs_stream"] = [float(s.abs().max().item()) for s in res["streams"]]
    meta["projections"] = OrderedDict(
        (k, OrderedDict((kk, vv) for kk, vv in v.items() if kk not in ("t", "master"))) for k, v in info.items())
    meta["checks"] = checks
    if bf16_cmp is not None:
        meta["bf16_compute_vs_f32"] = bf16_cmp
    meta["files"] = OrderedDict([
        ("model.safetensors", sha256(out_dir / "model.safetensors")),
        ("expected.safetensors", sha256(out_dir / "expected.safetensors")),
        ("config.json", sha256(out_dir / "config.json")),
    ])
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    print(f"[{name}] {row['mode']:7s} vocab={row['vocab']} hidden={row['hidden']} layers={row['layers']}  "
          f"max|logit|={max_abs_logit:.4f}  min top margin={meta['min_top_margin']:.4f}")
    print(f"[{name}] greedy prompt={prompt.tolist()}")
    print(f"[{name}] greedy ids   ={meta['greedy_ids']}  (min margin {meta['min_greedy_margin']:.4f})")
    if bf16_cmp is not None:
        print(f"[{name}] bf16 compute vs f32: max|dlogit|={bf16_cmp['max_abs_dlogit']:.4f}, "
              f"argmax agree {bf16_cmp['argmax_agree_positions']}/{SEQ_LEN}")
    del model


@torch.no_grad()
def bf16_comparison(model_dir, input_ids, logits_f32):
    """FORMAT.md §6 last paragraph: default-dtype (bf16) transformers run vs the f32 reference."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    model.eval()
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    raw = model(input_ids=input_ids[None, :], use_cache=False).logits[0]
    logits = raw.to(torch.float32)
    d = (logits - logits_f32).abs()
    agree = int((torch.argmax(logits, -1) == torch.argmax(logits_f32, -1)).sum().item())
    out = OrderedDict([
        ("load", "AutoModelForCausalLM.from_pretrained(dir, attn_implementation='eager') (default dtype)"),
        ("param_dtypes", dtypes),
        ("logits_dtype", str(raw.dtype)),
        ("max_abs_dlogit", float(d.max().item())),
        ("mean_abs_dlogit", float(d.mean().item())),
        ("argmax_agree_positions", agree),
        ("argmax_disagree_at", [int(i) for i in torch.nonzero(
            torch.argmax(logits, -1) != torch.argmax(logits_f32, -1)).flatten()]),
    ])
    del model
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(SCRIPT_DIR / "fixtures"),
                    help="output directory (default: fixtures/ next to this script)")
    ap.add_argument("--only", default=",".join(MODELS), help="comma-separated subset of models")
    args = ap.parse_args()
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    self_test_packing()
    for name in args.only.split(","):
        generate_one(name, MODELS[name], out_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
