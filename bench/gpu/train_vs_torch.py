#!/usr/bin/env python3
"""Training-step throughput, MFU and peak memory: stretch vs Hugging Face
transformers, same GPU, 135M Llama (30 layers, dim 576, 9 heads / 3 kv heads,
ffn 1536, vocab 49152, tied embeddings), one sequence of 4K / 32K / 128K
tokens per step.

stretch:  build/bench_train_step SEQ (bf16 activations, fp32 master weights
          and AdamW, per-layer recomputation, chunked loss, flash attention).
torch:    LlamaForCausalLM(attn_implementation="sdpa"), bf16 weights and
          activations (torch.autocast is not used: the model is cast to bf16),
          gradient checkpointing, torch.optim.AdamW(fused=True); the step is
          forward + backward + clip_grad_norm_ + optimizer.step.

MFU = tokens/s x model FLOPs per token / peak bf16 FLOP/s (default 989e12,
H100 SXM dense; --peak-tflops to change). Model FLOPs per token, the same
for both: 6 x matmul parameters + 6 x layers x T x heads x head_dim (causal
attention), recomputation NOT counted. Peak memory: torch's
max_memory_allocated; stretch's backend peak (its cudaMalloc'd buffers and
scratch; the cuBLAS workspace is not counted) and its planned total.

usage: python3 bench/gpu/train_vs_torch.py [--build build] [--lengths 4096,32768,131072]
                                            [--steps 5] [--skip-torch] [--peak-tflops 989]
Nothing here was measured on the machine that wrote it (no GPU there).
"""
import argparse
import json
import os
import subprocess
import sys
import time

CFG = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
           intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True,
           rms_norm_eps=1e-5, rope_theta=100000.0)


def flops_per_token(n_matmul_params, T):
    return 6.0 * n_matmul_params + 6.0 * CFG["num_hidden_layers"] * T * CFG["num_attention_heads"] * 64


def run_stretch(build, T, steps):
    exe = os.path.join(build, "bench_train_step")
    p = subprocess.run([exe, str(T), str(steps), "bf16"], capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    if p.returncode != 0:
        sys.stdout.write(p.stderr)
        return {"error": f"rc {p.returncode}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": "no RESULT line"}


def run_torch(T, steps):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(max_position_embeddings=T, **CFG)
    model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", torch_dtype=torch.bfloat16).cuda()
    model.gradient_checkpointing_enable()
    model.config.use_cache = False
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    ids = torch.randint(0, CFG["vocab_size"], (1, T), device="cuda")
    n_matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2)
    torch.cuda.reset_peak_memory_stats()
    times = []
    try:
        for i in range(steps + 2):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - t0)
    except torch.cuda.OutOfMemoryError as e:
        del model, opt
        torch.cuda.empty_cache()
        return {"error": "OOM: " + str(e).splitlines()[0]}
    times.sort()
    t = times[len(times) // 2]
    res = {"impl": "torch", "seq_len": T, "step_s": t, "tokens_per_s": T / t,
           "flops_per_token": flops_per_token(n_matmul, T),
           "peak_bytes": torch.cuda.max_memory_allocated(), "loss": float(out.loss)}
    del model, opt, out
    torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--lengths", default="4096,32768,131072")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    peak = a.peak_tflops * 1e12
    rows = []
    for T in [int(x) for x in a.lengths.split(",")]:
        s = run_stretch(a.build, T, a.steps)
        t = {"error": "skipped"} if a.skip_torch else run_torch(T, a.steps)
        rows.append((T, s, t))
        print(json.dumps({"seq_len": T, "stretch": s, "torch": t}), flush=True)

    def cell(r):
        if "error" in r:
            return f"{r['error'][:38]:>38}"
        mfu = r["tokens_per_s"] * r["flops_per_token"] / peak
        return f"{r['tokens_per_s']:10.0f} {100 * mfu:6.1f}% {r['peak_bytes'] / 1e9:8.2f} GB"

    print()
    print(f"{'tokens':>7} | {'stretch tok/s    MFU     peak':>30} | {'torch tok/s    MFU     peak':>30} | speed x  mem x")
    for T, s, t in rows:
        ratio = mem = "-"
        if "error" not in s and "error" not in t:
            ratio = f"{s['tokens_per_s'] / t['tokens_per_s']:.2f}"
            mem = f"{t['peak_bytes'] / max(s['peak_bytes'], 1):.2f}"
        print(f"{T:7d} | {cell(s):>30} | {cell(t):>30} | {ratio:>7} {mem:>6}")
    print("speed x = stretch tokens/s / torch tokens/s; mem x = torch peak / stretch peak")


if __name__ == "__main__":
    main()
