#!/usr/bin/env python3
"""Compare llama.cpp's logits (llama-cpp-python) on `stretch export --format gguf`
with stretch's own (build/bench_logits), at a length beyond the original context.

Not part of the test suite: needs llama-cpp-python (pip install
llama-cpp-python; it builds llama.cpp from source) and numpy.

  python3 bench/gguf_llamacpp_check.py                 # trains a demo-sized model first
  python3 bench/gguf_llamacpp_check.py --ckpt C.h5 --stages 1,2

Without --ckpt it trains a demo-sized model (schedules/demo-cpu.yaml's
architecture: dim 64, 2 layers, 4 heads, theta 100, original context 128,
byte tokenizer) for a few steps with three stages: default RoPE at 128, YaRN
to 512 (factor 4) and linear to 512 (factor 4). For every exported stage and
every type (f32, f16, bf16, q8_0) it runs T = --len tokens (default 400 >
128) through

  * stretch on the checkpoint (float32)                       -> ref
  * stretch on `stretch import --gguf` of the export          -> deq (the
    exported weights as stretch reads them back: quantization included)
  * llama.cpp on the export (CPU, KV cache in F32, one batch) -> cpp

and prints max |cpp - deq| and max |cpp - ref|, both relative to max |ref|,
and the argmax agreement; as a control, how much stretch's own logits move
when the checkpoint runs with stage 0's (unscaled) RoPE instead. Tolerances (max |cpp - deq| / max |ref|), which
cover llama.cpp's own arithmetic on the exported weights: f32 1e-4 (float
sums in another order); f16 and bf16 5e-3 (ggml rounds the activations to
the weight type before the matmul: F16 2^-11, BF16 2^-8 relative per
product, averaging out over a dot product); q8_0 2e-2 (activations
quantized to Q8_0 blocks, 8 bits per element). Exit 1 if one is exceeded.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

TOL = {"f32": 1e-4, "f16": 5e-3, "bf16": 5e-3, "q8_0": 2e-2}

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


def llamacpp_logits(path, ids, threads):
    from llama_cpp import Llama
    T = len(ids)
    llm = Llama(model_path=path, n_ctx=T, n_batch=T, n_ubatch=T, logits_all=True, n_threads=threads,
                type_k=0, type_v=0, flash_attn=False, verbose=False)  # type 0 = GGML_TYPE_F32 cache
    llm.eval(ids)
    out = np.array(llm.scores[:T], dtype=np.float32)
    meta = dict(llm.metadata)
    llm.close()
    return out, meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--ckpt", help="a checkpoint (default: train the demo-sized model)")
    ap.add_argument("--stages", default="1,2", help="stages to export (default: yarn and linear)")
    ap.add_argument("--types", default="f32,f16,bf16,q8_0")
    ap.add_argument("--len", type=int, default=400, help="tokens (beyond the original context 128)")
    ap.add_argument("--steps", type=int, default=60, help="stage-0 steps when training")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
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
    text = open("/usr/share/common-licenses/GPL-3", "rb").read()[:a.len]
    ids = list(text)  # byte tokenizer: id = byte
    ids_path = os.path.join(tmp, "ids.bin")
    np.array(ids, dtype=np.int32).tofile(ids_path)
    print(f"checkpoint {ckpt}, {a.len} tokens; tolerances (max|cpp - deq| / max|ref|): {TOL}")
    worst_ok = True
    for stage in [int(s) for s in a.stages.split(",")]:
        ref = stretch_logits(bench, ckpt, stage, ids_path, os.path.join(tmp, "ref.bin"), tmp)
        V = ref.size // a.len
        ref = ref.reshape(a.len, V)
        scale = float(np.abs(ref).max())
        # control: how far the logits move with another stage's RoPE (stage 0: unscaled), so that the
        # agreement below is known to depend on the exported RoPE being the right one
        if stage != 0:
            other = stretch_logits(bench, ckpt, 0, ids_path, os.path.join(tmp, "other.bin"), tmp).reshape(a.len, V)
            print(f"stage {stage}: control: stretch with stage 0's RoPE differs by max|.|/max|ref| "
                  f"{float(np.abs(other - ref).max()) / scale:.2e} (positions < 128: "
                  f"{float(np.abs(other[:128] - ref[:128]).max()) / scale:.2e})")
        for typ in a.types.split(","):
            g = os.path.join(tmp, f"s{stage}_{typ}.gguf")
            log = sh([stretch, "export", "--ckpt", ckpt, "--format", "gguf", "--stage", str(stage), "--type", typ,
                      "--out", g])
            imp = os.path.join(tmp, f"s{stage}_{typ}.h5")
            sh([stretch, "import", "--gguf", g, "--out", imp])
            deq = stretch_logits(bench, imp, None, ids_path, os.path.join(tmp, "deq.bin"), tmp).reshape(a.len, V)
            cpp, meta = llamacpp_logits(g, ids, a.threads)
            d_deq = float(np.abs(cpp - deq).max()) / scale
            d_ref = float(np.abs(cpp - ref).max()) / scale
            q_ref = float(np.abs(deq - ref).max()) / scale
            agree = float((cpp.argmax(1) == ref.argmax(1)).mean())
            ok = d_deq <= TOL[typ]
            worst_ok &= ok
            rope = meta.get("llama.rope.scaling.type", "?")
            print(f"stage {stage} ({rope}, factor {meta.get('llama.rope.scaling.factor', '-')}) {typ:5s}: "
                  f"max|cpp-deq|/max|ref| {d_deq:.2e} (tol {TOL[typ]:.0e}) {'ok' if ok else 'EXCEEDED'}; "
                  f"max|cpp-ref| {d_ref:.2e}; quantization alone max|deq-ref| {q_ref:.2e}; "
                  f"argmax agreement {agree:.4f}; max|ref| {scale:.3f}")
    print("all within tolerance" if worst_ok else "TOLERANCE EXCEEDED")
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
