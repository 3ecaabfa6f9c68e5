#!/usr/bin/env python3
"""Times stretch's attention (libstretch_attn_shim.so) against
torch.nn.functional.scaled_dot_product_attention (flash backend) on the same
bf16 inputs, causal, GQA, B=1, D 64 and 128, sequence 4K..32K, forward and
backward. Prints median time (CUDA events), TFLOP/s (causal counted as half;
backward = 2.5x forward, the usual FlashAttention count) and the ratio
stretch / sdpa (> 1: stretch is slower).

Then packed 2K-token documents (segment ids; causal within each document):
stretch (its document bounds rebuilt inside every call, as cheap as it is)
against FlashAttention-2's varlen kernel (flash_attn_varlen_func, when the
flash_attn package is installed) and SDPA with the explicit block-diagonal
mask (memory-efficient backend, up to --mask-max tokens: the mask is T x T);
TFLOP/s over the visible pairs only.

  python3 bench/gpu/attn_sdpa.py [--lib build/libstretch_attn_shim.so] [--seqs 4096,8192]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stretch_attn import SDPA_GQA_MODE, StretchAttn, attn_flops, doc_mask, sdpa, sdpa_masked  # noqa: E402

DOC = 2048


def median_ms(fn, warmup=3, reps=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=None)
    ap.add_argument("--seqs", default="4096,8192,16384,32768")
    ap.add_argument("--dims", default="128,64")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--packed-seqs", default="32768,131072")
    ap.add_argument("--mask-max", type=int, default=16384)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 77
    st = StretchAttn(args.lib)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    rows = []
    for D in [int(x) for x in args.dims.split(",")]:
        H, Hkv = (32, 8) if D == 64 else (16, 4)
        for T in [int(x) for x in args.seqs.split(",")]:
            B, causal = 1, True
            q = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
            k = torch.randn(B, T, Hkv, D, device=dev, dtype=torch.bfloat16)
            v = torch.randn(B, T, Hkv, D, device=dev, dtype=torch.bfloat16)
            dout = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)

            # stretch
            out, lse = st.forward(q, k, v, causal)
            dq = torch.zeros(B, T, H, D, device=dev, dtype=torch.float32)
            dk = torch.zeros(B, T, Hkv, D, device=dev, dtype=torch.float32)
            dv = torch.zeros_like(dk)
            delta = torch.empty(B, H, T, device=dev, dtype=torch.float32)
            t_sf = median_ms(lambda: st.forward(q, k, v, causal, out, lse), reps=args.reps)
            t_sb = median_ms(lambda: st.backward(dout, q, k, v, out, lse, causal, dq, dk, dv, delta),
                             reps=args.reps)

            # torch sdpa (flash): forward alone, and backward alone via retain_graph
            qr, kr, vr = (x.clone().requires_grad_(True) for x in (q, k, v))
            t_tf = median_ms(lambda: sdpa(qr, kr, vr, causal), reps=args.reps)
            o = sdpa(qr, kr, vr, causal)
            t_tb = median_ms(lambda: torch.autograd.grad(o, (qr, kr, vr), dout, retain_graph=True),
                             reps=args.reps)
            ff, fb = attn_flops(B, T, H, D, causal), attn_flops(B, T, H, D, causal, True)
            rows.append((D, T, H, Hkv, t_sf, t_tf, t_sb, t_tb, ff, fb))
            del q, k, v, dout, out, lse, dq, dk, dv, delta, qr, kr, vr, o
            torch.cuda.empty_cache()

    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  bf16 causal GQA B=1;"
          f" sdpa GQA by {SDPA_GQA_MODE['mode']} (repeat: the k/v repeat is inside the sdpa time)")
    print(f"{'D':>4} {'T':>6} {'H/Hkv':>6} | {'fwd ms':>8} {'TF/s':>6} {'sdpa ms':>8} {'TF/s':>6} {'ratio':>6} |"
          f" {'bwd ms':>8} {'TF/s':>6} {'sdpa ms':>8} {'TF/s':>6} {'ratio':>6}")
    for D, T, H, Hkv, sf, tf, sb, tb, ff, fb in rows:
        print(f"{D:>4} {T:>6} {H:>3}/{Hkv:<2} | {sf:8.3f} {ff / sf / 1e9:6.1f} {tf:8.3f} {ff / tf / 1e9:6.1f}"
              f" {sf / tf:6.2f} | {sb:8.3f} {fb / sb / 1e9:6.1f} {tb:8.3f} {fb / tb / 1e9:6.1f} {sb / tb:6.2f}")
    packed(st, dev, args)
    return 0


def packed(st, dev, args):
    """Packed 2K-token documents: stretch vs FA2 varlen (if installed) vs SDPA with a mask."""
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        flash_attn_varlen_func = None
    print(f"\npacked {DOC}-token documents, causal, B=1: fwd / bwd ms (ratio = stretch / other);"
          f" flash_attn varlen {'present' if flash_attn_varlen_func else 'not installed'}")
    print(f"{'D':>4} {'T':>7} | {'stretch':>15} {'TF/s':>11} | {'fa2 varlen':>15} {'ratio':>11} |"
          f" {'sdpa+mask':>15} {'ratio':>11}")
    for D in [int(x) for x in args.dims.split(",")]:
        H, Hkv = (32, 8) if D == 64 else (16, 4)
        for T in [int(x) for x in args.packed_seqs.split(",")]:
            B = 1
            q, dout = (torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
            k, v = (torch.randn(B, T, Hkv, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
            seg = (torch.arange(T, device=dev, dtype=torch.int32) // DOC)[None].contiguous()
            out, lse = st.forward_seg(q, k, v, seg, True)
            dq = torch.zeros(B, T, H, D, device=dev)
            dk, dv = torch.zeros(B, T, Hkv, D, device=dev), torch.zeros(B, T, Hkv, D, device=dev)
            sf = median_ms(lambda: st.forward_seg(q, k, v, seg, True, out, lse), reps=args.reps)
            sb = median_ms(lambda: st.backward_seg(dout, q, k, v, out, lse, seg, True, dq, dk, dv),
                           reps=args.reps)
            pairs = sum(n * (n + 1) / 2 for n in [DOC] * (T // DOC) + ([T % DOC] if T % DOC else []))
            ff = 4.0 * H * D * pairs
            line = f"{D:>4} {T:>7} | {sf:7.3f} {sb:7.3f} {ff / sf / 1e9:5.0f} {2.5 * ff / sb / 1e9:5.0f} |"
            if flash_attn_varlen_func:
                cu = torch.arange(0, T + DOC, DOC, device=dev, dtype=torch.int32).clamp_max(T).unique()
                qv, kv_, vv = (x[0].clone().requires_grad_(True) for x in (q, k, v))
                fwd = lambda: flash_attn_varlen_func(qv, kv_, vv, cu, cu, DOC, DOC, causal=True)
                ft = median_ms(fwd, reps=args.reps)
                o = fwd()
                fb = median_ms(lambda: torch.autograd.grad(o, (qv, kv_, vv), dout[0], retain_graph=True),
                               reps=args.reps)
                line += f" {ft:7.3f} {fb:7.3f} {sf / ft:5.2f} {sb / fb:5.2f} |"
            else:
                line += f" {'-':>15} {'-':>11} |"
            if T <= args.mask_max:
                mask = doc_mask(seg, seg, 0, 0, True)
                qr, kr, vr = (x.clone().requires_grad_(True) for x in (q, k, v))
                mt = median_ms(lambda: sdpa_masked(qr, kr, vr, mask), reps=args.reps)
                o = sdpa_masked(qr, kr, vr, mask)
                mb = median_ms(lambda: torch.autograd.grad(o, (qr, kr, vr), dout, retain_graph=True),
                               reps=args.reps)
                line += f" {mt:7.3f} {mb:7.3f} {sf / mt:5.2f} {sb / mb:5.2f}"
            else:
                line += f" {'(mask too big)':>15}"
            print(line)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
