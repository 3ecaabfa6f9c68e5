#!/usr/bin/env python3
"""Compare stretch's logits with Hugging Face transformers (CPU, float32).

Two directions (not part of the test suite; needs torch and transformers):

  export: a stretch checkpoint -> `stretch export --format hf` -> transformers
      python3 bench/hf_transformers_check.py --ckpt out/run/ckpt-00000036.h5

  import: a random tiny LlamaForCausalLM made and saved by transformers, with
  the given rope scaling -> `stretch import` -> stretch's forward
      python3 bench/hf_transformers_check.py --random yarn
  (--reexport: transformers then loads `stretch export` of the imported
  checkpoint instead of its own files: the export path on large weights)

Both run the same token ids (a fixed text as UTF-8 bytes, positions 0..T-1)
through stretch (build/bench_logits) and transformers (eager attention) and
print the max abs difference of the logits.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

TEXT = ("The quick brown fox jumps over the lazy dog. Stretch extends the context window of "
        "RoPE language models in stages; this sentence is only here to make a fixed input.")

ROPE = {  # rope_scaling for --random, relative to an original context of 64
    "default": None,
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 4.0},
    # yarn as transformers 4.4x and 5 read it alike (max_position_embeddings = the original context)
    "yarn": {"rope_type": "yarn", "factor": 4.0},
    # yarn as 4.5x and 5 read it (4.4x ignores original_max_position_embeddings: different frequencies)
    "yarn_v5": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64},
    "longrope": {"rope_type": "longrope", "original_max_position_embeddings": 64,
                 "short_factor": [1.0 + 0.05 * i for i in range(8)],
                 "long_factor": [1.0 + 0.5 * i for i in range(8)]},
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


def stretch_logits(bench, ckpt, ids, tmp):
    tok = os.path.join(tmp, "ids.bin")
    out = os.path.join(tmp, "logits.bin")
    np.asarray(ids, dtype="<i4").tofile(tok)
    print(run([bench, "--ckpt", ckpt, "--tokens", tok, "--out", out]).strip())
    return np.fromfile(out, dtype="<f4").reshape(len(ids), -1)


def hf_logits(model_dir, ids):
    dtype = {"dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype": torch.float32}
    model = LlamaForCausalLM.from_pretrained(model_dir, attn_implementation="eager", **dtype)
    model.eval()
    with torch.no_grad():
        x = torch.tensor([ids])
        pos = torch.arange(len(ids))[None]
        return model(input_ids=x, position_ids=pos).logits[0].numpy(), model.config


def random_model(kind, path, vocab):
    rope = ROPE[kind]
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=vocab, rms_norm_eps=1e-5,
                      # dynamic NTK (and yarn without original_max_position_embeddings) scale beyond
                      # max_position_embeddings, the original context
                      max_position_embeddings=256 if rope and kind not in ("dynamic", "yarn") else 64,
                      rope_theta=10000.0, rope_scaling=rope,
                      tie_word_embeddings=kind == "linear")
    if kind == "longrope":  # Phi-3 style: transformers v4 reads the original context only here
        cfg.original_max_position_embeddings = 64
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # larger than the init so that RoPE matters in the logits
        for p in model.parameters():
            p.normal_(0.0, 0.2 if p.dim() > 1 else 1.0)
    model.save_pretrained(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="stretch checkpoint to export and compare")
    src.add_argument("--random", choices=sorted(ROPE), help="make a random HF model with this rope scaling, import it")
    ap.add_argument("--build", default="build", help="directory with stretch and bench_logits")
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="export dtype")
    ap.add_argument("--yarn-v4", action="store_true", help="export yarn in the form transformers 4.4x reads")
    ap.add_argument("--reexport", action="store_true", help="with --random: compare on stretch's export of the import")
    a = ap.parse_args()
    stretch = os.path.join(a.build, "stretch")
    bench = os.path.join(a.build, "bench_logits")
    ids = list(a.text.encode("utf-8"))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, T = {len(ids)} tokens")
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = os.path.join(tmp, "hf")
        export = [stretch, "export", "--format", "hf", "--out", hf_dir, "--dtype", a.dtype]
        export += ["--yarn-v4"] if a.yarn_v4 else []
        if a.ckpt:
            print(run(export + ["--ckpt", a.ckpt]).strip())
            ckpt = a.ckpt
        else:
            made = os.path.join(tmp, "made") if a.reexport else hf_dir
            random_model(a.random, made, 259)
            ckpt = os.path.join(tmp, "imported.h5")
            print(run([stretch, "import", "--hf", made, "--out", ckpt]).splitlines()[0])
            if a.reexport:
                print(run(export + ["--ckpt", ckpt]).strip())
        ref, config = hf_logits(hf_dir, ids)
        got = stretch_logits(bench, ckpt, ids, tmp)
    rope = getattr(config, "rope_parameters", None) or config.rope_scaling or {}  # v5 / v4
    print("rope:", json.dumps({k: v for k, v in rope.items() if k not in ("short_factor", "long_factor")}))
    diff = np.abs(got - ref)
    print(f"logits: max |transformers| = {np.abs(ref).max():.4g}, max abs diff = {diff.max():.3e}, "
          f"mean abs diff = {diff.mean():.3e}, argmax agrees at {np.mean(got.argmax(1) == ref.argmax(1)) * 100:.1f}% "
          f"of positions")


if __name__ == "__main__":
    main()
