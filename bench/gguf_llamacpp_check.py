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
checkpoint runs with stage 0's (unscaled) RoPE. Exit 1 if a check fails.
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


def stretch_logits(bench, ckpt, stage, ids_path, out, tmp):
    cmd = [bench, "--ckpt", ckpt, "--tokens", ids_path, "--out", out]
    if stage is not None:
        cmd += ["--stage", str(stage)]
    sh(cmd)
    return np.fromfile(out, dtype=np.float32)


def llamacpp_logits(path, ids, threads, ubatch):
    from llama_cpp import Llama
    T = len(ids)
    llm = Llama(model_path=path, n_ctx=T, n_batch=T, n_ubatch=ubatch, logits_all=True, n_threads=threads,
                type_k=0, type_v=0, flash_attn=False, verbose=False)  # type 0 = GGML_TYPE_F32 cache
    llm.eval(ids)
    out = np.array(llm.scores[:T], dtype=np.float32)
    meta = dict(llm.metadata)
    llm.close()
    return out, meta


def rel(a, b, scale):
    return float(np.abs(a - b).max()) / scale


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
    ids_path = os.path.join(tmp, "ids.bin")
    np.array(ids, dtype=np.int32).tofile(ids_path)
    print(f"checkpoint {ckpt}, {a.len} tokens; checks: |cpp-G64| <= {MARGIN:g} |G32-G64|, "
          f"|deq-X64| <= {MARGIN:g} |X32-X64| (all / max|ref|)", flush=True)
    all_ok = True
    for stage in [int(s) for s in a.stages.split(",")]:
        ref = stretch_logits(bench, ckpt, stage, ids_path, os.path.join(tmp, "ref.bin"), tmp)
        V = ref.size // a.len
        ref = ref.reshape(a.len, V)
        scale = float(np.abs(ref).max())
        # control: how far the logits move with another stage's RoPE (stage 0: unscaled), so that the
        # agreement below is known to depend on the exported RoPE being the right one
        if stage != 0 and not a.no_control:
            other = stretch_logits(bench, ckpt, 0, ids_path, os.path.join(tmp, "other.bin"), tmp).reshape(a.len, V)
            print(f"stage {stage}: control: stretch with stage 0's RoPE differs by {rel(other, ref, scale):.2e} "
                  f"(positions < 128: {rel(other[:128], ref[:128], scale):.2e})", flush=True)
        for typ in a.types.split(","):
            g = os.path.join(tmp, f"s{stage}_{typ}.gguf")
            sh([stretch, "export", "--ckpt", ckpt, "--format", "gguf", "--stage", str(stage), "--type", typ, "--out", g])
            imp = os.path.join(tmp, f"s{stage}_{typ}.h5")
            sh([stretch, "import", "--gguf", g, "--out", imp])
            deq = stretch_logits(bench, imp, None, ids_path, os.path.join(tmp, "deq.bin"), tmp).reshape(a.len, V)
            m = gr.Model(g)
            G64 = gr.forward(m, ids, ggml=True, dtype=np.float64)
            G32 = gr.forward(m, ids, ggml=True, dtype=np.float32)
            X64 = gr.forward(m, ids, ggml=False, dtype=np.float64)
            X32 = gr.forward(m, ids, ggml=False, dtype=np.float32)
            del m
            tol_cpp, tol_deq = MARGIN * rel(G32, G64, scale), MARGIN * rel(X32, X64, scale)
            print(f"stage {stage} {typ:5s}: tolerances stated before llama.cpp runs: |cpp-G64| {tol_cpp:.2e}, "
                  f"|deq-X64| {tol_deq:.2e}", flush=True)
            cpp, meta = llamacpp_logits(g, ids, a.threads, a.ubatch or a.len)
            d_cpp, d_deq = rel(cpp, G64, scale), rel(deq, X64, scale)
            ok = d_cpp <= tol_cpp and d_deq <= tol_deq
            all_ok &= ok
            rope = meta.get("llama.rope.scaling.type", "?")
            print(f"stage {stage} ({rope}, factor {meta.get('llama.rope.scaling.factor', '-')}) {typ:5s}: "
                  f"|cpp-G64| {d_cpp:.2e} (tol {tol_cpp:.2e}); |deq-X64| {d_deq:.2e} (tol {tol_deq:.2e}) "
                  f"{'ok' if ok else 'EXCEEDED'}; ggml rounding |G64-X64| {rel(G64, X64, scale):.2e}; "
                  f"|cpp-deq| {rel(cpp, deq, scale):.2e}; |cpp-ref| {rel(cpp, ref, scale):.2e}; "
                  f"quantization |deq-ref| {rel(deq, ref, scale):.2e}; argmax agreement "
                  f"{float((cpp.argmax(1) == ref.argmax(1)).mean()):.4f}; max|ref| {scale:.3f}", flush=True)
    print("all within tolerance" if all_ok else "TOLERANCE EXCEEDED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
