#!/usr/bin/python3
"""An independent float64 numpy forward of a Hugging Face Llama directory
(config.json + model.safetensors, as `stretch export --format hf` writes it),
compared with stretch's own logits of the same tokens.

    hf_forward.py HF_DIR IDS.bin STRETCH_LOGITS.bin

IDS.bin: T int32 token ids (positions 0 .. T-1, one sequence); STRETCH_LOGITS.bin:
(T, V) float32 (bench/bench_logits). Nothing of stretch is used: the
safetensors file is parsed here, the Llama forward (RMSNorm, GQA attention
with rotate_half RoPE, SwiGLU, tied or untied head) is written out in float64
as bench/gguf_parity.py's reference does, and the RoPE follows the
rules of transformers' modeling_rope_utils for the config's rope_scaling:

  default    inv_freq_i = 1 / theta^(2i/d), attention factor 1
  longrope   original = the top-level original_max_position_embeddings
             (transformers v5 standardize_rope_params; v4 reads it there too),
             else rope_scaling's, else max_position_embeddings;
             factor = rope_scaling.factor, else max_position_embeddings / original;
             attention factor = rope_scaling.attention_factor, else
             sqrt(1 + ln(factor) / ln(original)) (1 when factor <= 1), ONE value
             for the model, applied at every length;
             inv_freq_i = 1 / (ext_i * theta^(2i/d)), ext = long_factor when the
             sequence length max(position_ids) + 1 > original, else short_factor
             (transformers' longrope_frequency_update).

It prints the max |stretch - reference| and checks it against the tolerance
(1e-5 of the largest |logit| + 1e-6: fp32 against float64), and, to show the
check can fail, the same against the reference with the OTHER longrope window
(long factors at a short length, short ones at a long length), which must be
off by more than 100x the tolerance. Exit 0 when both hold, 1 otherwise.
"""
import json
import math
import os
import sys

import numpy as np


def read_safetensors(path):
    b = open(path, "rb").read()
    n = int.from_bytes(b[:8], "little")
    header = json.loads(b[8:8 + n])
    base, out = 8 + n, {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        raw = b[base + lo:base + hi]
        if t["dtype"] == "F32":
            x = np.frombuffer(raw, "<f4")
        elif t["dtype"] == "BF16":
            x = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view("<f4")
        else:
            sys.exit(f"{path}: tensor {name}: dtype {t['dtype']} not handled here")
        out[name] = x.astype(np.float64).reshape(t["shape"])
    return out


def rope_tables(cfg, T, flip_window=False):
    """(inv_freq, attention factor, window) for a sequence of T tokens."""
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    theta, max_pos = cfg["rope_theta"], cfg["max_position_embeddings"]
    f = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    rs = cfg.get("rope_scaling")
    if rs is None or rs.get("rope_type", rs.get("type")) == "default":
        return f, 1.0, "default"
    kind = rs.get("rope_type", rs.get("type"))
    if kind != "longrope":
        sys.exit(f"rope_type {kind}: only default and longrope are written out here")
    orig = cfg.get("original_max_position_embeddings") or rs.get("original_max_position_embeddings") or max_pos
    factor = rs.get("factor") or max_pos / orig
    if abs(factor - max_pos / orig) > 1e-12:  # v4.4x derives max / original instead of reading factor
        print(f"note: factor {factor} != max_position_embeddings / original: transformers v4.4x and v5 differ")
    a = rs.get("attention_factor")
    if a is None:
        a = 1.0 if factor <= 1.0 else math.sqrt(1.0 + math.log(factor) / math.log(orig))
    long_window = (T > orig) != flip_window
    ext = np.asarray(rs["long_factor" if long_window else "short_factor"], dtype=np.float64)
    assert ext.shape == f.shape, f"{len(ext)} factors for {len(f)} pairs"
    return f / ext, a, "long" if long_window else "short"


def forward(cfg, w, ids, inv, a):
    H, Hkv, C = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"]
    D = cfg.get("head_dim") or C // H
    eps, T = cfg["rms_norm_eps"], len(ids)
    rms = lambda x, g: x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None]
    cos = a * np.cos(np.concatenate([ang, ang], -1))
    sin = a * np.sin(np.concatenate([ang, ang], -1))
    rope = lambda x: x * cos[:, None] + np.concatenate([-x[..., D // 2:], x[..., :D // 2]], -1) * sin[:, None]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    h = w["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = lambda n: w[f"model.layers.{l}.{n}.weight"]
        x = rms(h, p("input_layernorm"))
        q = rope((x @ p("self_attn.q_proj").T).reshape(T, H, D))
        k = rope((x @ p("self_attn.k_proj").T).reshape(T, Hkv, D))
        v = (x @ p("self_attn.v_proj").T).reshape(T, Hkv, D)
        k, v = np.repeat(k, H // Hkv, 1), np.repeat(v, H // Hkv, 1)
        s = np.einsum("thd,shd->hts", q, k) / math.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        h = h + np.einsum("hts,shd->thd", s, v).reshape(T, H * D) @ p("self_attn.o_proj").T
        x = rms(h, p("post_attention_layernorm"))
        g = x @ p("mlp.gate_proj").T
        h = h + (g / (1 + np.exp(-g)) * (x @ p("mlp.up_proj").T)) @ p("mlp.down_proj").T
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return rms(h, w["model.norm.weight"]) @ head.T


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    hf, ids_path, ours_path = sys.argv[1:]
    cfg = json.load(open(os.path.join(hf, "config.json")))
    w = read_safetensors(os.path.join(hf, "model.safetensors"))
    ids = np.fromfile(ids_path, dtype="<i4").astype(np.int64)
    T, V = len(ids), cfg["vocab_size"]
    ours = np.fromfile(ours_path, dtype="<f4").astype(np.float64).reshape(T, V)
    inv, a, window = rope_tables(cfg, T)
    ref = forward(cfg, w, ids, inv, a)
    tol = 1e-5 * np.abs(ref).max() + 1e-6
    err = np.abs(ours - ref).max()
    ok = err <= tol
    line = (f"T={T}: {window} window (attention factor {a:.6f}), max |logit| {np.abs(ref).max():.3f}: "
            f"stretch vs float64 reference max abs diff {err:.3e} (tol {tol:.1e})")
    if window != "default":
        inv_w, _, other = rope_tables(cfg, T, flip_window=True)
        wrong = np.abs(ours - forward(cfg, w, ids, inv_w, a)).max()
        line += f"; vs the {other} window {wrong:.3e}"
        ok = ok and wrong > 100 * tol
    print(line + (" PASS" if ok else " FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
