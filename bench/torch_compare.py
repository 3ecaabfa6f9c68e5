#!/usr/bin/env python3
"""Run the same Llama in stretch and in transformers (PyTorch, CPU) on one
machine and print stretch/torch speed and the max differences of loss,
logits and gradients.

    python3 bench/torch_compare.py [--build build] [--seq 1024] [--layers 6] ...

Needs torch and transformers (pip); stretch itself never uses Python.
The model is transformers' own LlamaForCausalLM, an implementation written
independently of stretch, loaded with stretch's weights by HF name.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        cmd = [os.path.join(a.build, "bench_model"), "--layers", str(a.layers), "--dim", str(a.dim),
               "--heads", str(a.heads), "--kv-heads", str(a.kv_heads), "--ffn", str(a.ffn),
               "--vocab", str(a.vocab), "--seq", str(a.seq), "--steps", str(a.steps), "--dump", d]
        print("$", " ".join(cmd))
        subprocess.run(cmd, check=True)
        meta = json.load(open(os.path.join(d, "meta.json")))
        load = lambda name, dt: np.fromfile(os.path.join(d, name), dtype=dt)
        params, grads = load("params.bin", np.float32), load("grads.bin", np.float32)
        tokens, targets = load("tokens.bin", np.int32), load("targets.bin", np.int32)
        pos, logits_c = load("pos.bin", np.int32), load("logits.bin", np.float32)

    torch.set_num_threads(a.threads)
    cfg = LlamaConfig(hidden_size=meta["dim"], intermediate_size=meta["ffn_dim"],
                      num_hidden_layers=meta["n_layers"], num_attention_heads=meta["n_heads"],
                      num_key_value_heads=meta["n_kv_heads"], head_dim=meta["head_dim"],
                      vocab_size=meta["vocab_size"], rms_norm_eps=meta["norm_eps"],
                      rope_theta=meta["rope_theta"], max_position_embeddings=meta["T"],
                      tie_word_embeddings=False, attention_bias=False, mlp_bias=False)
    model = LlamaForCausalLM(cfg).float()
    sd = {}
    for t in meta["tensors"]:
        n = t["shape"][0] * t["shape"][1]
        shape = t["shape"] if t["shape"][1] != 1 else [t["shape"][0]]
        sd[t["name"]] = torch.from_numpy(params[t["offset"]:t["offset"] + n].reshape(shape).copy())
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "rotary_emb" not in k]
    assert not missing and not unexpected, (missing, unexpected)

    ids = torch.from_numpy(tokens.astype(np.int64)).view(1, -1)
    pids = torch.from_numpy(pos.astype(np.int64)).view(1, -1)
    tgt = torch.from_numpy(targets.astype(np.int64)).view(-1)

    def step():
        model.zero_grad(set_to_none=False)
        logits = model(input_ids=ids, position_ids=pids).logits.view(-1, meta["vocab_size"])
        loss = torch.nn.functional.cross_entropy(logits, tgt, ignore_index=-1)
        loss.backward()
        return loss, logits

    step()  # warm-up
    best = 1e30
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss, logits = step()
        best = min(best, time.perf_counter() - t0)

    rows = meta["logit_rows"]
    dl = np.abs(logits[:rows].detach().numpy().ravel() - logits_c).max()
    print(f"loss: stretch {meta['loss_mean']:.6f}  torch {loss.item():.6f}  "
          f"|diff| {abs(meta['loss_mean'] - loss.item()):.2e}")
    print(f"logits (first {rows} rows): max |diff| {dl:.2e}")
    worst = 0.0
    for t in meta["tensors"]:
        n = t["shape"][0] * t["shape"][1]
        g_t = dict(model.named_parameters())[t["name"]].grad.numpy().ravel()
        g_c = grads[t["offset"]:t["offset"] + n]
        rel = np.abs(g_t - g_c).max() / max(np.abs(g_t).max(), 1e-30)
        worst = max(worst, rel)
    print(f"gradients: worst tensor max|diff|/max|grad| = {worst:.2e} over {len(meta['tensors'])} tensors")
    print(f"speed (fwd+bwd, {meta['T']} tokens, {a.threads} threads): stretch {meta['step_seconds']*1e3:.1f} ms, "
          f"torch {best*1e3:.1f} ms, stretch/torch time ratio {meta['step_seconds']/best:.2f}")


if __name__ == "__main__":
    sys.exit(main())
