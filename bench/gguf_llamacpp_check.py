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
  * the same in float32 arithmetic                               -> G32
  * gguf_ggml_ref.py without ggml's rules, float64 / float32     -> X64 / X32
  * llama.cpp on the export (CPU, KV cache in F32, one batch)    -> cpp

All differences are max |a - b| / max |ref|. Checked, with tolerances
derived before llama.cpp runs from the one source of difference left in
each pair, f32 arithmetic (summation order, FMA, ggml's expf):

  |cpp - G64| <= 4 |G32 - G64|   llama.cpp is one more f32 evaluation of G's
  |deq - X64| <= 4 |X32 - X64|   rules (X's for stretch); two independent f32
                                 runs differ by ~sqrt(2) times one run's error,
                                 and the kernels' own ulp-level differences
                                 (ggml's vectorized expf, the BF16 dot
                                 instruction) are allowed another factor 2.

With the rounding rules on, f32 arithmetic also flips rounding decisions (an
activation a hair from a BF16 or Q8_0 boundary), so G32 - G64 includes that
amplification, as cpp - G64 does. |G64 - X64| is what ggml's own rounding
does: with |X64 - deq| ~ f32 noise it accounts for |cpp - deq|. Printed too:
|cpp - deq| and |cpp - ref| (the export's quantization included), argmax
agreement with ref, and as a control how much stretch's logits move when the
checkpoint runs with stage 0's (unscaled) RoPE.

Then llama.cpp's own tensors, read through its scheduler eval callback: every
matmul (attn_q/k/v/output, ffn_gate/up/down, the head) and RoPE of Q and K in
the blocks --op-layers, fed llama.cpp's own input, against G64 / X64 of that
input, and each block fed llama.cpp's residual stream (no compounding across
layers); same rule, |cpp - G64(in)| <= 4 |G32(in) - G64(in)|. Exit 1 if a
check fails.

Long runs (SmolLM2 beyond 8192 tokens): --first 8192 keeps the logits of the
positions beyond the original context only (T x V does not fit in memory),
--no-forward skips the reference's end-to-end forwards (hours on 2 cores), so
llama.cpp's ops and cpp against stretch are what is checked there.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

MARGIN = 4.0  # see the docstring

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
CAPTURED = {"attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "ffn_norm", "ffn_gate", "ffn_up",
            "ffn_swiglu", "ffn_out"}


def llamacpp_run(path, ids, threads, ubatch, op_layers, first=0):
    """llama.cpp's logits (T, V) and tensors of its graph read through the scheduler's eval callback
    (CPU, KV cache F32, no flash attention): "embd", "l_out-N", "result_norm" and, for the blocks in
    op_layers, every matmul's input and output (CAPTURED; a name the graph gives twice gets "#k" for its
    k-th repeat: "Qcur-N#2" is Q after RoPE). Each -> (T * rows per token, row length) float32.
    Logits of positions first..T-1 only (the last block's FFN and the head then see those rows only)."""
    import ctypes
    import llama_cpp as lc
    base = ctypes.CDLL(os.path.join(os.path.dirname(lc.__file__), "lib", "libggml-base.so"))
    base.ggml_get_name.restype, base.ggml_get_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    base.ggml_nelements.restype, base.ggml_nelements.argtypes = ctypes.c_int64, [ctypes.c_void_p]
    base.ggml_nrows.restype, base.ggml_nrows.argtypes = ctypes.c_int64, [ctypes.c_void_p]
    base.ggml_get_data_f32.restype = ctypes.POINTER(ctypes.c_float)
    base.ggml_get_data_f32.argtypes = [ctypes.c_void_p]
    parts, seen = {}, {}

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
        k = seen.get(name, 0)
        seen[name] = k + 1
        n, rows = base.ggml_nelements(t), base.ggml_nrows(t)
        if n == 0:  # a micro-batch without output rows: the last block's FFN and the head are empty
            return True
        a = np.ctypeslib.as_array(base.ggml_get_data_f32(t), shape=(n,)).reshape(rows, n // rows).copy()
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


def per_op(m, cap, op_layers, fw):
    """Every matmul of the blocks in op_layers, and the head, fed llama.cpp's own input; RoPE of Q and K
    fed llama.cpp's own Q and K. Returns {check: (max d_g, max d_x, worst d_g / tol, tol there)} with d_g
    = max|cpp_out - G64(cpp_in)| / max|cpp_out|, d_x the same without the rules (X64), tol = MARGIN
    max|G32(cpp_in) - G64(cpp_in)| / max|cpp_out|."""
    g64, g32, x64 = fw
    res = {}

    def add(check, y, a, ax, a32):
        s = float(np.abs(y).max())
        dg, dx, tol = rel(a, y, s), rel(ax, y, s), MARGIN * rel(a32, a, s)
        old = res.get(check, (0.0, 0.0, 0.0, 0.0))
        ratio = dg / tol if tol > 0 else (0.0 if dg == 0 else np.inf)
        res[check] = (max(old[0], dg), max(old[1], dx), max(old[2], ratio), tol if ratio >= old[2] else old[3])

    for l in op_layers:
        for check, src, dst, w in OPS:
            x, y, name = cap[f"{src}-{l}"], cap[f"{dst}-{l}"], f"blk.{l}.{w}.weight"
            add(check, y, g64.mm(x, name), x64.mm(x, name), g32.mm(x, name))
        for check, src, heads in (("rope_q", "Qcur", m.H), ("rope_k", "Kcur", m.Hkv)):
            x, y = cap[f"{src}-{l}"].reshape(-1, heads, m.D), cap[f"{src}-{l}#2"].reshape(-1, heads, m.D)
            add(check, y, gr_rope(g64, x), gr_rope(x64, x), gr_rope(g32, x))
    add("head", cap["result_output"], g64.head(cap["result_norm"]), x64.head(cap["result_norm"]),
        g32.head(cap["result_norm"]))
    return res


def gr_rope(f, x):
    import gguf_ggml_ref as gr
    return gr._rope(np.asarray(x, f.dtype), f.cos, f.sin)


def per_layer(m, ids, cap, fw):
    """Each block fed llama.cpp's own residual stream: no compounding across layers. Per block:
    max|cpp_out - G64(cpp_in)| / max|cpp_out|, the same for X64 (no rounding rules), and the tolerance
    MARGIN |G32(cpp_in) - G64(cpp_in)| / max|cpp_out|; the embedding lookup must be exact (dequantized
    rows). Returns rows (name, d_g, d_x, tol)."""
    g64, g32, x64 = fw
    rows = [("embed", rel(g64.embed(ids), cap["embd"], 1.0), 0.0, 0.0)]
    prev = cap["embd"]
    for l in range(m.L):
        out = cap[f"l_out-{l}"]
        s = float(np.abs(out).max())
        a = g64.layer(l, prev)
        rows.append((f"blk.{l}", rel(a, out, s), rel(x64.layer(l, prev), out, s),
                     MARGIN * rel(g32.layer(l, prev), a, s)))
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
    ap.add_argument("--op-layers", help="blocks whose every matmul is checked (default: all up to 2048 "
                    "tokens, else the first, middle and last)")
    ap.add_argument("--first", type=int, default=0, help="compare the logits of positions FIRST.. only "
                    "(long runs: T x V logits do not fit in memory); implies --no-blocks when > 0")
    ap.add_argument("--no-forward", action="store_true", help="skip the reference's end-to-end forwards "
                    "(4 numpy forwards: hours at 8K tokens on 2 cores); implies --no-blocks")
    ap.add_argument("--ops-only", action="store_true", help="llama.cpp and its op checks only (no stretch "
                    "forward, no end-to-end reference); implies --no-forward")
    ap.add_argument("--no-blocks", action="store_true", help="skip the per-block check (3 forwards)")
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
    a.no_blocks |= first > 0 or a.no_forward  # llama.cpp's last block then computes its FFN for the output rows only
    op_layers = [int(x) for x in a.op_layers.split(",")] if a.op_layers else None
    ids_path = os.path.join(tmp, "ids.bin")
    np.array(ids, dtype=np.int32).tofile(ids_path)
    print(f"checkpoint {ckpt}, {a.len} tokens; checks: |cpp-G64| <= {MARGIN:g} |G32-G64|, "
          f"|deq-X64| <= {MARGIN:g} |X32-X64| (all / max|ref|)", flush=True)
    all_ok = True
    for stage in [int(s) for s in a.stages.split(",")]:
        if a.ops_only:
            ref = scale = None
        else:
            ref = stretch_logits(bench, ckpt, stage, ids_path, os.path.join(tmp, "ref.bin"), a.len, first)
            scale = float(np.abs(ref).max())
        # control: how far the logits move with another stage's RoPE (stage 0: unscaled), so that the
        # agreement below is known to depend on the exported RoPE being the right one
        if stage != 0 and not a.no_control and not a.ops_only:
            other = stretch_logits(bench, ckpt, 0, ids_path, os.path.join(tmp, "other.bin"), a.len, first)
            print(f"stage {stage}: control: stretch with stage 0's RoPE differs by {rel(other, ref, scale):.2e}"
                  + (f" (positions < 128: {rel(other[:128], ref[:128], scale):.2e})" if first == 0 else ""),
                  flush=True)
        for typ in a.types.split(","):
            g = os.path.join(tmp, f"s{stage}_{typ}.gguf")
            sh([stretch, "export", "--ckpt", ckpt, "--format", "gguf", "--stage", str(stage), "--type", typ, "--out", g])
            imp = os.path.join(tmp, f"s{stage}_{typ}.h5")
            if not a.ops_only:
                sh([stretch, "import", "--gguf", g, "--out", imp])
                deq = stretch_logits(bench, imp, None, ids_path, os.path.join(tmp, "deq.bin"), a.len, first)
            m = gr.Model(g)
            if op_layers is None:
                op_layers = list(range(m.L)) if a.len <= 2048 else sorted({0, m.L // 2, m.L - 1})
            if a.no_forward:  # long runs: only llama.cpp's own ops are checked, and cpp against stretch
                cpp, cap = llamacpp_run(g, ids, a.threads, a.ubatch or a.len, op_layers, first)
                if a.ops_only:
                    print(f"stage {stage} {typ:5s}: llama.cpp ran {len(ids)} tokens, max|logit| "
                          f"{float(np.abs(cpp).max()):.3f} at positions {first}..", flush=True)
                else:
                    print(f"stage {stage} {typ:5s}: |cpp-deq| {rel(cpp, deq, scale):.2e}; |cpp-ref| "
                          f"{rel(cpp, ref, scale):.2e}; quantization |deq-ref| {rel(deq, ref, scale):.2e}; "
                          f"argmax agreement {float((cpp.argmax(1) == ref.argmax(1)).mean()):.4f}; "
                          f"max|ref| {scale:.3f}", flush=True)
            else:
                G64 = gr.forward(m, ids, ggml=True, dtype=np.float64, first=first)
                G32 = gr.forward(m, ids, ggml=True, dtype=np.float32, first=first)
                X64 = gr.forward(m, ids, ggml=False, dtype=np.float64, first=first)
                X32 = gr.forward(m, ids, ggml=False, dtype=np.float32, first=first)
                tol_cpp, tol_deq = MARGIN * rel(G32, G64, scale), MARGIN * rel(X32, X64, scale)
                print(f"stage {stage} {typ:5s}: tolerances stated before llama.cpp runs: |cpp-G64| {tol_cpp:.2e}, "
                      f"|deq-X64| {tol_deq:.2e}", flush=True)
                cpp, cap = llamacpp_run(g, ids, a.threads, a.ubatch or a.len, op_layers, first)
                meta = {k: v.contents() for k, v in __import__("gguf").GGUFReader(g).fields.items()
                        if k.startswith("llama.rope")}
                d_cpp, d_deq = rel(cpp, G64, scale), rel(deq, X64, scale)
                ok = d_cpp <= tol_cpp and d_deq <= tol_deq
                all_ok &= ok
                rope = meta.get("llama.rope.scaling.type", "?")
                print(f"stage {stage} ({rope}, factor {meta.get('llama.rope.scaling.factor', '-')}) {typ:5s}: "
                      f"|cpp-G64| {d_cpp:.2e} (tol {tol_cpp:.2e}); |deq-X64| {d_deq:.2e} (tol {tol_deq:.2e}) "
                      f"{'ok' if ok else 'EXCEEDED'}; ggml rounding |G64-X64| {rel(G64, X64, scale):.2e}; "
                      f"|cpp-deq| {rel(cpp, deq, scale):.2e}; |cpp-ref| {rel(cpp, ref, scale):.2e}; "
                      f"quantization |deq-ref| {rel(deq, ref, scale):.2e}; argmax agreement "
                      f"{float((cpp.argmax(1) == ref.argmax(1)).mean()):.4f}; max|ref| {scale:.3f}; "
                      f"rms: cpp-G64 {rms(cpp, G64, scale):.2e}, G32-G64 {rms(G32, G64, scale):.2e}, "
                      f"cpp-X64 {rms(cpp, X64, scale):.2e}", flush=True)
            fw = [gr.Forward(m, len(ids), ggml, dt) for ggml, dt in ((True, np.float64), (True, np.float32),
                                                                     (False, np.float64))]
            bad = []
            if not a.no_blocks:
                rows = per_layer(m, ids, cap, fw)
                bad = [r[0] for r in rows if r[1] > r[3]]
                worst = max(rows, key=lambda r: r[1] / r[3] if r[3] > 0 else (np.inf if r[1] > 0 else 0.0))
                print(f"stage {stage} {typ:5s} each block fed llama.cpp's input: max|cpp-G64| "
                      f"{max(r[1] for r in rows):.2e}, without the rules max|cpp-X64| "
                      f"{max(r[2] for r in rows):.2e}; closest to its tolerance: {worst[0]} {worst[1]:.2e} "
                      f"(tol {worst[3]:.2e}); {'ok' if not bad else 'EXCEEDED in ' + ', '.join(bad)}", flush=True)
            ops = per_op(m, cap, op_layers, fw)
            del m, fw, cap
            for check, (dg, dx, ratio, tol) in ops.items():
                ok = ratio <= 1.0
                bad += [] if ok else [check]
                print(f"stage {stage} {typ:5s} {check:11s} fed llama.cpp's input ({len(op_layers)} blocks): "
                      f"max|cpp-G64| {dg:.2e}, without the rules max|cpp-X64| {dx:.2e}; worst |cpp-G64| / tol "
                      f"{ratio:.2f} (tol there {tol:.2e}) {'ok' if ok else 'EXCEEDED'}", flush=True)
            mm = [v for k, v in ops.items() if not k.startswith("rope")]
            rp = [v for k, v in ops.items() if k.startswith("rope")]
            print(f"stage {stage} {typ:5s} summary, each op fed llama.cpp's input: matmuls max|cpp-G64| "
                  f"{max(v[0] for v in mm):.1e} (without the rules {min(v[1] for v in mm):.1e}.."
                  f"{max(v[1] for v in mm):.1e}), RoPE {max(v[0] for v in rp):.1e} (exact angles "
                  f"{max(v[1] for v in rp):.1e}); worst |cpp-G64| / tol {max(v[2] for v in ops.values()):.2f}",
                  flush=True)
            all_ok &= not bad
    print("all within tolerance" if all_ok else "TOLERANCE EXCEEDED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
