#!/usr/bin/env python3
"""Compare llama.cpp's logits (llama-cpp-python) on `stretch export --format gguf`
with stretch's own (build/bench_logits) and with a reference that models
llama.cpp's arithmetic (bench/gguf_ggml_ref.py), at a length beyond the
original context.

Not part of the test suite: needs llama-cpp-python (pip install
llama-cpp-python; it builds llama.cpp from source), gguf and numpy.

  python3 bench/gguf_llamacpp_check.py                 # trains a demo-sized model first
  python3 bench/gguf_llamacpp_check.py --ckpt C.h5 --stages 1,2 [--text-tokenizer F.gguf]

Without --ckpt it trains a demo-sized model (schedules/demo-cpu.yaml's
architecture: dim 64, 2 layers, 4 heads, theta 100, original context 128,
byte tokenizer) for a few steps with three stages: default RoPE at 128, YaRN
to 512 (factor 4) and linear to 512 (factor 4). For every exported stage and
every type (f32, f16, bf16, q8_0) it runs T = --len tokens (default 400 >
128) through

  * stretch on the checkpoint (float32)                          -> ref
  * stretch on `stretch import --gguf` of the export             -> deq
  * gguf_ggml_ref.py on the export, ggml's rules, float64        -> G64
    (activations rounded to each weight type's vec_dot type, f32 RoPE angles)
  * gguf_ggml_ref.py without ggml's rules, float64               -> X64
  * llama.cpp on the export (CPU, KV cache in F32, one batch)    -> cpp

All differences are max |a - b| / max |ref|. The tolerances are stated (and
printed) before llama.cpp runs; a check above its tolerance is a bug to find,
not a tolerance to retune.

Each op, fed llama.cpp's own input (its tensors read through the scheduler's
eval callback, in the blocks --op-layers): RMSNorm times its weight, the
attn_q/k/v/output and ffn_gate/up/down matmuls, RoPE of Q and K, KQ, softmax
and KQV (the last micro-batch's queries), SwiGLU, both residual adds, the
output norm and the head. G64 of that input is exact but for ggml's f32
arithmetic, so elementwise |cpp - G64(in)| <= the a priori bound of
gguf_err_bounds.py (gamma_n sum |x||w| for inner products, small multiples of
u |y| for the rest), reported as the largest |cpp - G64| / bound (<= 1).
Against X64 (no rules) the matmuls' bound adds the activation conversion's
own bound, so that check says the rules are the whole difference.

End to end and each block fed llama.cpp's residual stream (no compounding
across layers): a worst-case bound over 30 layers is useless, so the f32
error is propagated instead: --draws perturbed float64 runs (gguf_ggml_ref
Forward with rng: every op output moved by +-its f32 error scale, sqrt(n) u
sum|x||w| for inner products, Higham and Mary's probabilistic bound with
lambda = 1, the a priori bound for the other ops; ggml's rounding rules act
on the perturbed values, so flipped roundings are included), and

  |cpp - G64| <= 2 max_d |GP_d - G64|    |deq - X64| <= 2 max_d |XP_d - X64|

(factor 2: the largest of a few draws is itself a sample, and llama.cpp
is one more; the draws' spreads are printed with the tolerance). Printed too:
|G64 - X64| (what ggml's rounding does), |cpp - deq| and |cpp - ref| (the
export's quantization included), argmax agreement with ref, and as a
control how much stretch's logits move when the checkpoint runs with stage
0's (unscaled) RoPE. Exit 1 if a check fails.

Long runs (SmolLM2 beyond 8192 tokens): --first 8192 keeps the logits of the
positions beyond the original context only (T x V does not fit in memory),
--no-stretch leaves stretch's forwards out (llama.cpp against G64 only),
--no-forward the reference's end-to-end forwards (llama.cpp's ops and cpp
against stretch are then what is checked).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

SPREAD_K = 2.0  # end-to-end and per-block tolerance: SPREAD_K times the perturbed runs' largest spread
DRAWS = 3  # perturbed runs per check (--draws)

RUN = """model: {{dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 4, ffn_dim: 128, rope_theta: 100.0,
        max_position_embeddings: 128}}
data: {{tokenizer: byte, train: [{shard}], passkey_ratio: 0.5, passkey_compact: true}}
optimizer: {{lr: 2.0e-3, warmup_steps: 5}}
train: {{seed: 1, out_dir: {out}, log_every: 10, ckpt_every: 1000, keep_last: 1}}
eval: {{passkey_trials: 0}}
stages:
  - {{name: s128, seq_len: 128, steps: {steps}, batch_tokens: 1024}}
  - {{name: yarn512, seq_len: 512, steps: 2, batch_tokens: 1024,
     rope: {{type: yarn, factor: 4.0, max_position_embeddings: 512, original_max_position_embeddings: 128}}}}
  - {{name: linear512, seq_len: 512, steps: 2, batch_tokens: 1024,
     rope: {{type: linear, factor: 4.0, max_position_embeddings: 512}}}}
"""


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def stretch_logits(bench, ckpt, stage, ids_path, out, T, first):
    """(T - first, V) float32: bench_logits' logits of positions first..T-1."""
    cmd = [bench, "--ckpt", ckpt, "--tokens", ids_path, "--out", out]
    if stage is not None:
        cmd += ["--stage", str(stage)]
    sh(cmd)
    n = os.path.getsize(out) // 4
    x = np.array(np.memmap(out, dtype=np.float32, mode="r", shape=(T, n // T))[first:])
    os.remove(out)
    return x


OPS = (  # (check, input tensor, output tensor, weight) as llama.cpp's llama graph names them
    ("attn_q", "attn_norm", "Qcur", "attn_q"), ("attn_k", "attn_norm", "Kcur", "attn_k"),
    ("attn_v", "attn_norm", "Vcur", "attn_v"), ("attn_output", "kqv_out", "attn_out", "attn_output"),
    ("ffn_gate", "ffn_norm", "ffn_gate", "ffn_gate"), ("ffn_up", "ffn_norm", "ffn_up", "ffn_up"),
    ("ffn_down", "ffn_swiglu", "ffn_out", "ffn_down"))
CAPTURED = {"attn_norm", "Qcur", "Kcur", "Vcur", "kq", "kq_soft_max", "kqv", "kqv_out", "attn_out", "ffn_inp",
            "ffn_norm", "ffn_gate", "ffn_up", "ffn_swiglu", "ffn_out"}
LAST_UBATCH = {"kq", "kq_soft_max", "kqv"}  # (n_kv x ubatch x heads): only the last micro-batch is kept


def llamacpp_run(path, ids, threads, ubatch, op_layers, first=0):
    """llama.cpp's logits (T, V) and tensors of its graph read through the scheduler's eval callback
    (CPU, KV cache F32, no flash attention): "embd", "l_out-N", "result_norm" and, for the blocks in
    op_layers, every matmul's input and output (CAPTURED; a name the graph gives twice gets "#k" for its
    k-th repeat: "Qcur-N#2" is Q after RoPE). Each -> (T * rows per token, row length) float32; of
    "kq-N", "kq_soft_max-N", "kqv-N" (heads * ubatch rows) the last micro-batch only, which starts at
    position "ubatch_start".
    Logits of positions first..T-1 only (the last block's FFN and the head then see those rows only)."""
    import ctypes
    import llama_cpp as lc
    base = ctypes.CDLL(os.path.join(os.path.dirname(lc.__file__), "lib", "libggml-base.so"))
    base.ggml_get_name.restype, base.ggml_get_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    base.ggml_nelements.restype, base.ggml_nelements.argtypes = ctypes.c_int64, [ctypes.c_void_p]
    base.ggml_nrows.restype, base.ggml_nrows.argtypes = ctypes.c_int64, [ctypes.c_void_p]
    base.ggml_get_data_f32.restype = ctypes.POINTER(ctypes.c_float)
    base.ggml_get_data_f32.argtypes = [ctypes.c_void_p]
    parts, seen, pos = {}, {}, {"next": 0, "start": 0}

    def wanted(name):
        if name in ("embd", "result_norm", "result_output"):
            return True
        op, _, layer = name.rpartition("-")
        return op == "l_out" or (op in CAPTURED and layer.isdigit() and int(layer) in op_layers)

    def on_tensor(t, ask, _):
        name = base.ggml_get_name(t).decode()
        if ask:
            return wanted(name)
        if name == "embd":  # the first tensor of every micro-batch
            seen.clear()
            pos["start"] = pos["next"]
            pos["next"] += base.ggml_nrows(t)
        k = seen.get(name, 0)
        seen[name] = k + 1
        n, rows = base.ggml_nelements(t), base.ggml_nrows(t)
        if n == 0:  # a micro-batch without output rows: the last block's FFN and the head are empty
            return True
        a = np.ctypeslib.as_array(base.ggml_get_data_f32(t), shape=(n,)).reshape(rows, n // rows).copy()
        if name.rpartition("-")[0] in LAST_UBATCH:
            parts[name] = [a]
            parts["ubatch_start"] = [np.array([pos["start"]])]
        else:
            parts.setdefault(name if k == 0 else f"{name}#{k}", []).append(a)  # one part per micro-batch
        return True

    T = len(ids)
    quiet = lc.llama_log_callback(lambda level, text, user: None)
    lc.llama_log_set(quiet, None)
    lc.llama_backend_init()
    mp = lc.llama_model_default_params()
    model = lc.llama_model_load_from_file(path.encode(), mp)
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = T, T, ubatch
    cp.n_threads = cp.n_threads_batch = threads
    cp.type_k = cp.type_v = 0  # GGML_TYPE_F32 KV cache
    cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    callback = lc.ggml_backend_sched_eval_callback(on_tensor)  # kept alive until the context is freed
    cp.cb_eval = callback
    ctx = lc.llama_init_from_model(model, cp)
    batch = lc.llama_batch_init(T, 0, 1)
    for i, tok in enumerate(ids):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = int(tok), i, 1, int(i >= first)
        batch.seq_id[i][0] = 0
    batch.n_tokens = T
    if lc.llama_decode(ctx, batch) != 0:
        sys.exit(f"llama_decode failed on {path}")
    V = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
    logits = np.ctypeslib.as_array(lc.llama_get_logits(ctx), shape=((T - first) * V,)).reshape(-1, V).copy()
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    del callback, quiet
    return logits, {k: np.concatenate(v) for k, v in parts.items()}


class OpChecks:
    """Per check: max over elements of |cpp - G64(cpp_in)| / bound (the a priori f32 bound of
    gguf_err_bounds on those operands), the same for X64 where a bound exists (matmuls: + the input
    conversion's bound), and max |cpp - G64| / max|cpp|, |cpp - X64| / max|cpp| for the record."""

    def __init__(self):
        self.res = {}

    def add(self, check, y, a, bound, ax=None, bound_x=None):
        y = np.asarray(y, np.float64)
        s = float(np.abs(y).max()) or 1.0
        r = ratio(y, a, bound)
        rx = ratio(y, ax, bound_x) if bound_x is not None else float("nan")
        dx = rel(ax, y, s) if ax is not None else float("nan")
        old = self.res.get(check)
        new = (r, rx, rel(a, y, s), dx)
        self.res[check] = new if old is None else tuple(np.fmax(o, n) for o, n in zip(old, new))


def ratio(y, a, bound):
    """max |y - a| / bound elementwise (0 / 0 = 0; d / 0 = inf)."""
    d = np.abs(np.asarray(y, np.float64) - a)
    bound = np.broadcast_to(bound, d.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(bound > 0, d / np.where(bound > 0, bound, 1.0), np.where(d > 0, np.inf, 0.0))
    return float(q.max())


def per_op(m, cap, op_layers, g64, x64):
    """Every op of the blocks in op_layers, and the output norm and head, fed llama.cpp's own input:
    RMSNorm (times its weight), the q/k/v/output/gate/up/down matmuls, RoPE of Q and K, KQ, softmax and
    KQV (the last micro-batch's queries), SwiGLU and the residual adds; against G64 (ggml's rules) with
    gguf_err_bounds' a priori f32 bound, and against X64 (no rules) with the bound plus the input
    conversion's for matmuls (for RoPE X64 has exact angles: no bound, reported)."""
    import gguf_err_bounds as eb
    import gguf_ggml_ref as gr
    c = OpChecks()

    def last(x, y):  # the last block computes its FFN for the output rows (positions first..) only
        return x[-y.shape[0]:] if x.shape[0] != y.shape[0] else x

    def matmul(check, x, y, name):
        x = last(x, y)
        w = g64.w[name]
        typ = m.types[name]
        rnd = gr.ROUNDING[typ]
        xr = rnd(x).astype(np.float64) if rnd else np.asarray(x, np.float64)
        aw = np.abs(w)
        bound = eb.inner(np.abs(xr) @ aw.T, w.shape[1])
        bx = bound + (eb.input_rounding(x, typ) @ aw.T if rnd else 0.0)
        c.add(check, y, xr @ w.T, bound, np.asarray(x, np.float64) @ w.T, bx)

    def norm(check, x, y, g):
        x = last(np.asarray(x, np.float64), y)
        a = g64.rms(x, g)
        c.add(check, y, a, eb.rms_norm(a, x.shape[-1]), x64.rms(x, g), eb.rms_norm(a, x.shape[-1]))

    def add(check, x1, x2, y):
        a = last(np.asarray(x1, np.float64), y) + last(np.asarray(x2, np.float64), y)
        c.add(check, y, a, eb.add(a), a, eb.add(a))

    H, Hkv, D = m.H, m.Hkv, m.D
    for l in op_layers:
        p = f"blk.{l}."
        h_in = cap["embd"] if l == 0 else cap[f"l_out-{l - 1}"]
        norm("attn_norm", h_in, cap[f"attn_norm-{l}"], p + "attn_norm.weight")
        for check, src, dst, w in OPS:
            matmul(check, cap[f"{src}-{l}"], cap[f"{dst}-{l}"], p + w + ".weight")
        for check, src, heads in (("rope_q", "Qcur", H), ("rope_k", "Kcur", Hkv)):
            x, y = cap[f"{src}-{l}"].reshape(-1, heads, D), cap[f"{src}-{l}#2"].reshape(-1, heads, D)
            x = np.asarray(x, np.float64)
            c.add(check, y, g64.rope(x), rope_bound(g64, x), x64.rope(x), None)
        attention_ops(c, m, cap, l)
        add("ffn_inp", cap[f"attn_out-{l}"], h_in, cap[f"ffn_inp-{l}"])
        norm("ffn_norm", cap[f"ffn_inp-{l}"], cap[f"ffn_norm-{l}"], p + "ffn_norm.weight")
        g, up, y = cap[f"ffn_gate-{l}"].astype(np.float64), cap[f"ffn_up-{l}"], cap[f"ffn_swiglu-{l}"]
        a = g / (1 + np.exp(-g)) * up
        c.add("swiglu", y, a, eb.swiglu(a), a, eb.swiglu(a))
        add("l_out", cap[f"ffn_out-{l}"], cap[f"ffn_inp-{l}"], cap[f"l_out-{l}"])
    norm("output_norm", cap[f"l_out-{m.L - 1}"], cap["result_norm"], "output_norm.weight")
    matmul("head", cap["result_norm"], cap["result_output"], "output.weight")
    return c.res


def rope_bound(f, x):
    import gguf_ggml_ref as gr
    return gr.rope_bound(x, f.cos[:x.shape[0]], f.sin[:x.shape[0]])


def attention_ops(c, m, cap, l):
    """KQ, softmax(scale KQ + causal mask) and KQV of the last micro-batch's queries (positions
    ubatch_start..), each fed llama.cpp's own input: K and Q after RoPE, its KQ, its softmax and V."""
    import gguf_err_bounds as eb
    H, Hkv, D = m.H, m.Hkv, m.D
    p0 = int(cap["ubatch_start"][0])
    kq = cap[f"kq-{l}"]
    n_kv = kq.shape[1]
    ub = kq.shape[0] // H
    T = cap[f"Kcur-{l}#2"].shape[0] // Hkv
    q = cap[f"Qcur-{l}#2"].reshape(-1, H, D)[p0:p0 + ub].astype(np.float64)
    k = cap[f"Kcur-{l}#2"].reshape(T, Hkv, D).astype(np.float64)
    v = cap[f"Vcur-{l}"].reshape(T, Hkv, D).astype(np.float64)
    kq = kq.reshape(H, ub, n_kv)[:, :, :T].astype(np.float64)
    sm = cap[f"kq_soft_max-{l}"].reshape(H, ub, n_kv)
    if np.any(sm[:, :, T:]):
        c.add("softmax", np.ones(1), np.zeros(1), np.zeros(1))  # weight on an empty cell: fails the check
    sm = sm[:, :, :T].astype(np.float64)
    kqv = cap[f"kqv-{l}"].reshape(H, ub, D)
    scale = 1.0 / np.sqrt(D)
    masked = (p0 + np.arange(ub))[:, None] < np.arange(T)[None]
    for h in range(H):
        kh, vh = k[:, h * Hkv // H], v[:, h * Hkv // H]
        a = q[:, h] @ kh.T
        c.add("kq", kq[h], a, eb.inner(np.abs(q[:, h]) @ np.abs(kh).T, D))
        s = np.float32(scale) * kq[h]
        s[masked] = -np.inf
        a = s - s.max(-1, keepdims=True)
        e = np.exp(a)
        pr = e / e.sum(-1, keepdims=True)
        c.add("softmax", sm[h], pr, eb.softmax(pr, a, s, scale))
        c.add("kqv", kqv[h], sm[h] @ vh, eb.inner(np.abs(sm[h]) @ np.abs(vh), n_kv))


def per_layer(m, ids, cap, g64, x64, gps):
    """Each block fed llama.cpp's own residual stream: no compounding across layers. Per block:
    max|cpp_out - G64(cpp_in)| / max|cpp_out|, the same for X64 (no rounding rules), and the tolerance
    SPREAD_K max_d |GP_d(cpp_in) - G64(cpp_in)| / max|cpp_out| over the perturbed runs GP_d; the
    embedding lookup must be exact (dequantized rows). Returns rows (name, d_g, d_x, tol)."""
    rows = [("embed", rel(g64.embed(ids), cap["embd"], 1.0), 0.0, 0.0)]
    prev = cap["embd"]
    for l in range(m.L):
        out = cap[f"l_out-{l}"]
        s = float(np.abs(out).max())
        a = g64.layer(l, prev)
        rows.append((f"blk.{l}", rel(a, out, s), rel(x64.layer(l, prev), out, s),
                     SPREAD_K * max(rel(gp.layer(l, prev), a, s) for gp in gps)))
        prev = out
    return rows


def rel(a, b, scale):
    return float(np.abs(a - b).max()) / scale


def rms(a, b, scale):
    return float(np.sqrt(np.mean((a - b) ** 2))) / scale


def text_ids(stretch, tokenizer, n, tmp):
    """n ids of the GPL-3 text: bytes (byte tokenizer) or `stretch tokenize --tokenizer` (a GGUF's)."""
    text = "/usr/share/common-licenses/GPL-3"
    if not tokenizer:
        return list(open(text, "rb").read()[:n])
    from gguf_parity import read_shard
    shard = os.path.join(tmp, "text_ids.shard")
    sh([stretch, "tokenize", "--tokenizer", tokenizer, "--out", shard, text, "/usr/share/common-licenses/Apache-2.0"])
    ids = read_shard(shard)
    if ids.size < n:
        sys.exit(f"only {ids.size} tokens in the text, --len {n}")
    return ids[:n].tolist()


def perturbed_spread(m, ids, ggml, ref, first, draws, seed, scale):
    """max over draws of max|P_d - ref| / scale, P_d the perturbed forwards (see gguf_ggml_ref.Forward)."""
    import gguf_ggml_ref as gr
    out = []
    for d in range(draws):
        p = gr.forward(m, ids, ggml=ggml, dtype=np.float64, first=first, rng=np.random.default_rng(seed + d))
        out.append(rel(p, ref, scale))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--ckpt", help="a checkpoint (default: train the demo-sized model)")
    ap.add_argument("--stages", default="1,2", help="stages to export (default: yarn and linear)")
    ap.add_argument("--types", default="f32,f16,bf16,q8_0")
    ap.add_argument("--len", type=int, default=400, help="tokens (beyond the original context 128)")
    ap.add_argument("--steps", type=int, default=60, help="stage-0 steps when training")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--text-tokenizer", help="tokenize the text with this (a GGUF file); default: bytes")
    ap.add_argument("--ubatch", type=int, default=0, help="llama.cpp micro-batch (default: --len, one batch)")
    ap.add_argument("--op-layers", help="blocks whose every op is checked (default: all up to 2048 "
                    "tokens, else the first, middle and last)")
    ap.add_argument("--first", type=int, default=0, help="compare the logits of positions FIRST.. only "
                    "(long runs: T x V logits do not fit in memory); implies --no-blocks when > 0")
    ap.add_argument("--draws", type=int, default=DRAWS, help="perturbed runs per tolerance")
    ap.add_argument("--no-stretch", action="store_true", help="skip stretch's forwards (ref, deq): "
                    "llama.cpp against the reference only")
    ap.add_argument("--no-forward", action="store_true", help="skip the reference's end-to-end forwards "
                    "(1 + 2 draws numpy forwards per side); implies --no-blocks")
    ap.add_argument("--ops-only", action="store_true", help="llama.cpp and its op checks only: "
                    "--no-stretch --no-forward")
    ap.add_argument("--no-blocks", action="store_true", help="skip the per-block check")
    ap.add_argument("--no-control", action="store_true", help="skip the stage-0 RoPE control run")
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gguf_ggml_ref as gr
    stretch = os.path.abspath(os.path.join(a.build, "stretch"))
    bench = os.path.abspath(os.path.join(a.build, "bench_logits"))
    tmp = tempfile.mkdtemp(prefix="gguf_llamacpp_")
    ckpt = a.ckpt
    if not ckpt:
        shard = os.path.join(tmp, "text.shard")
        sh([stretch, "tokenize", "--out", shard, "/usr/share/common-licenses/GPL-3",
            "/usr/share/common-licenses/Apache-2.0"])
        out = os.path.join(tmp, "run")
        yaml = os.path.join(tmp, "run.yaml")
        with open(yaml, "w") as f:
            f.write(RUN.format(shard=shard, out=out, steps=a.steps))
        sh([stretch, "train", yaml], cwd=tmp)
        ckpt = os.path.join(out, open(os.path.join(out, "latest")).read().strip())
    ids = text_ids(stretch, a.text_tokenizer, a.len, tmp)
    first = a.first
    a.no_forward |= a.ops_only
    a.no_stretch |= a.ops_only
    a.no_blocks |= first > 0 or a.no_forward  # llama.cpp's last block then computes its FFN for the output rows only
    op_layers = [int(x) for x in a.op_layers.split(",")] if a.op_layers else None
    ids_path = os.path.join(tmp, "ids.bin")
    np.array(ids, dtype=np.int32).tofile(ids_path)
    print(f"checkpoint {ckpt}, {a.len} tokens; ops: |cpp - G64(cpp's input)| <= the a priori f32 bound, "
          f"elementwise; end to end and per block: |cpp-G64| <= {SPREAD_K:g} max_d |GP_d-G64|, |deq-X64| <= "
          f"{SPREAD_K:g} max_d |XP_d-X64| over {a.draws} perturbed runs (all / max|ref|)", flush=True)
    all_ok = True
    for stage in [int(s) for s in a.stages.split(",")]:
        if a.no_stretch:
            ref = scale = None
        else:
            ref = stretch_logits(bench, ckpt, stage, ids_path, os.path.join(tmp, "ref.bin"), a.len, first)
            scale = float(np.abs(ref).max())
        # control: how far the logits move with another stage's RoPE (stage 0: unscaled), so that the
        # agreement below is known to depend on the exported RoPE being the right one
        if stage != 0 and not a.no_control and not a.no_stretch:
            other = stretch_logits(bench, ckpt, 0, ids_path, os.path.join(tmp, "other.bin"), a.len, first)
            print(f"stage {stage}: control: stretch with stage 0's RoPE differs by {rel(other, ref, scale):.2e}"
                  + (f" (positions < 128: {rel(other[:128], ref[:128], scale):.2e})" if first == 0 else ""),
                  flush=True)
        for typ in a.types.split(","):
            g = os.path.join(tmp, f"s{stage}_{typ}.gguf")
            sh([stretch, "export", "--ckpt", ckpt, "--format", "gguf", "--stage", str(stage), "--type", typ, "--out", g])
            imp = os.path.join(tmp, f"s{stage}_{typ}.h5")
            if not a.no_stretch:
                sh([stretch, "import", "--gguf", g, "--out", imp])
                deq = stretch_logits(bench, imp, None, ids_path, os.path.join(tmp, "deq.bin"), a.len, first)
            m = gr.Model(g)
            meta = {k: v.contents() for k, v in __import__("gguf").GGUFReader(g).fields.items()
                    if k.startswith("llama.rope")}
            rope = f"{meta.get('llama.rope.scaling.type', '?')}, factor {meta.get('llama.rope.scaling.factor', '-')}"
            if op_layers is None:
                op_layers = list(range(m.L)) if a.len <= 2048 else sorted({0, m.L // 2, m.L - 1})
            if not a.no_forward:
                G64 = gr.forward(m, ids, ggml=True, dtype=np.float64, first=first)
                if scale is None:  # --no-stretch: relative to the reference's max|logit|
                    scale = float(np.abs(G64).max())
                sc = scale
                sg = perturbed_spread(m, ids, True, G64, first, a.draws, 1000, sc)
                tol_cpp = SPREAD_K * max(sg)
                line = (f"stage {stage} {typ:5s}: tolerances stated before llama.cpp runs: |cpp-G64| {tol_cpp:.2e} "
                        f"(spreads {', '.join(f'{x:.2e}' for x in sg)})")
                if not a.no_stretch:
                    X64 = gr.forward(m, ids, ggml=False, dtype=np.float64, first=first)
                    sx = perturbed_spread(m, ids, False, X64, first, a.draws, 2000, sc)
                    tol_deq = SPREAD_K * max(sx)
                    line += f", |deq-X64| {tol_deq:.2e} (spreads {', '.join(f'{x:.2e}' for x in sx)})"
                print(line, flush=True)
            cpp, cap = llamacpp_run(g, ids, a.threads, a.ubatch or a.len, op_layers, first)
            if scale is None:
                scale = float(np.abs(cpp).max())
            if a.no_forward:
                if a.no_stretch:
                    print(f"stage {stage} {typ:5s}: llama.cpp ran {len(ids)} tokens, max|logit| "
                          f"{float(np.abs(cpp).max()):.3f} at positions {first}..", flush=True)
                else:
                    print(f"stage {stage} {typ:5s}: |cpp-deq| {rel(cpp, deq, scale):.2e}; |cpp-ref| "
                          f"{rel(cpp, ref, scale):.2e}; quantization |deq-ref| {rel(deq, ref, scale):.2e}; "
                          f"argmax agreement {float((cpp.argmax(1) == ref.argmax(1)).mean()):.4f}; "
                          f"max|ref| {scale:.3f}", flush=True)
            else:
                d_cpp = rel(cpp, G64, scale)
                ok = d_cpp <= tol_cpp
                line = (f"stage {stage} ({rope}) {typ:5s}: |cpp-G64| {d_cpp:.2e} (tol {tol_cpp:.2e}, "
                        f"{d_cpp / tol_cpp:.2f})")
                if not a.no_stretch:
                    d_deq = rel(deq, X64, scale)
                    ok &= d_deq <= tol_deq
                    line += (f"; |deq-X64| {d_deq:.2e} (tol {tol_deq:.2e}, {d_deq / tol_deq:.2f})"
                             f"; ggml rounding |G64-X64| {rel(G64, X64, scale):.2e}; |cpp-deq| {rel(cpp, deq, scale):.2e}"
                             f"; |cpp-ref| {rel(cpp, ref, scale):.2e}; quantization |deq-ref| {rel(deq, ref, scale):.2e}"
                             f"; argmax agreement {float((cpp.argmax(1) == ref.argmax(1)).mean()):.4f}")
                line += f"; max|logit| {scale:.3f} {'ok' if ok else 'EXCEEDED'}"
                all_ok &= ok
                print(line, flush=True)
                del G64
            g64, x64 = gr.Forward(m, len(ids), True), gr.Forward(m, len(ids), False)
            bad = []
            if not a.no_blocks:
                gps = [gr.Forward(m, len(ids), True, rng=np.random.default_rng(3000 + d)) for d in range(a.draws)]
                rows = per_layer(m, ids, cap, g64, x64, gps)
                bad = [r[0] for r in rows if r[1] > r[3]]
                worst = max(rows, key=lambda r: r[1] / r[3] if r[3] > 0 else (np.inf if r[1] > 0 else 0.0))
                print(f"stage {stage} {typ:5s} each block fed llama.cpp's input: max|cpp-G64| "
                      f"{max(r[1] for r in rows):.2e}, without the rules max|cpp-X64| "
                      f"{max(r[2] for r in rows):.2e}; closest to its tolerance: {worst[0]} {worst[1]:.2e} "
                      f"(tol {worst[3]:.2e}, {worst[1] / worst[3]:.2f}); "
                      f"{'ok' if not bad else 'EXCEEDED in ' + ', '.join(bad)}", flush=True)
                del gps
            ops = per_op(m, cap, op_layers, g64, x64)
            del m, g64, x64, cap
            for check, (r, rx, dg, dx) in ops.items():
                ok = r <= 1.0 and not rx > 1.0
                bad += [] if ok else [check]
                print(f"stage {stage} {typ:5s} {check:11s} fed llama.cpp's input ({len(op_layers)} blocks): "
                      f"|cpp-G64| / bound {r:.3f}, |cpp-X64| / bound {rx:.3f}; max|cpp-G64| {dg:.2e}, "
                      f"max|cpp-X64| {dx:.2e} {'ok' if ok else 'EXCEEDED'}", flush=True)
            wg = max(ops, key=lambda k: ops[k][0])
            wx = max((k for k in ops if not np.isnan(ops[k][1])), key=lambda k: ops[k][1])
            nadd = max((k for k in ops if k not in ("ffn_inp", "l_out")), key=lambda k: ops[k][0])
            print(f"stage {stage} {typ:5s} summary, each op fed llama.cpp's input: worst |cpp-G64| / bound "
                  f"{ops[wg][0]:.3f} ({wg}; but for the adds {ops[nadd][0]:.3f}, {nadd}), worst |cpp-X64| / bound "
                  f"{ops[wx][1]:.3f} ({wx})", flush=True)
            all_ok &= not bad
    print("all within tolerance" if all_ok else "TOLERANCE EXCEEDED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
