#!/usr/bin/env python3
"""Compares stretch's bf16 attention (libstretch_attn_shim.so) with
torch.nn.functional.scaled_dot_product_attention (flash backend) on the same
bf16 inputs: causal, GQA (and MHA), B=1, D 64 and 128, sequence 4K..32K;
out, dq, dk, dv. Both are bf16 approximations of the same function, so each
is also measured against an fp32 reference (SDPA math backend on the upcast
inputs) where it fits (T <= --ref-max), and the check is that stretch is no
worse than TOL_VS_REF and within TOL_VS_SDPA of SDPA.
Error: ||x - y|| / ||y||. Exit 0 pass, 1 fail, 77 no GPU.

  python3 tests/gpu/attn_vs_sdpa.py [--lib build/libstretch_attn_shim.so] [--seqs 4096,8192]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "gpu"))
from stretch_attn import StretchAttn, sdpa  # noqa: E402

TOL_VS_SDPA = 2e-2
TOL_VS_REF = 1e-2


def rel(x, y):
    x, y = x.float(), y.float()
    if not torch.isfinite(x).all():
        return float("inf")
    return ((x - y).norm() / y.norm().clamp_min(1e-30)).item()


def ref_fp32(q, k, v, dout, causal):
    """fp32 attention by the SDPA math backend on upcast inputs, and its grads."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    rep = q.shape[2] // k.shape[2]
    qf, kf, vf = (x.float().transpose(1, 2).requires_grad_(True) for x in (q, k, v))
    with sdpa_kernel(SDPBackend.MATH):
        o = F.scaled_dot_product_attention(qf, kf.repeat_interleave(rep, 1), vf.repeat_interleave(rep, 1),
                                           is_causal=causal)
    g = torch.autograd.grad(o, (qf, kf, vf), dout.float().transpose(1, 2))
    return (o.transpose(1, 2).detach(),) + tuple(x.transpose(1, 2) for x in g)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=None)
    ap.add_argument("--seqs", default="4096,8192,16384,32768")
    ap.add_argument("--ref-max", type=int, default=4096)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 77
    st = StretchAttn(args.lib)
    dev = torch.device("cuda")
    torch.manual_seed(1)
    fails = 0
    print(f"{'D':>4} {'T':>6} {'H/Hkv':>6} {'causal':>6} | vs sdpa: {'out':>9} {'dq':>9} {'dk':>9} {'dv':>9}"
          f" | stretch vs fp32: {'out':>9} {'dq':>9} | sdpa vs fp32: {'out':>9} {'dq':>9}")
    for D in (128, 64):
        for T in [int(x) for x in args.seqs.split(",")]:
            for H, Hkv, causal in ((16, 4, True), (16, 16, False)):
                B = 1
                q = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
                k = torch.randn(B, T, Hkv, D, device=dev, dtype=torch.bfloat16)
                v = torch.randn(B, T, Hkv, D, device=dev, dtype=torch.bfloat16)
                dout = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)

                out = torch.full_like(q, float("nan"))
                out, lse = st.forward(q, k, v, causal, out=out)
                dq = torch.zeros(B, T, H, D, device=dev, dtype=torch.float32)
                dk = torch.zeros(B, T, Hkv, D, device=dev, dtype=torch.float32)
                dv = torch.zeros_like(dk)
                st.backward(dout, q, k, v, out, lse, causal, dq, dk, dv)

                qr, kr, vr = (x.clone().requires_grad_(True) for x in (q, k, v))
                o = sdpa(qr, kr, vr, causal)
                gq, gk, gv = torch.autograd.grad(o, (qr, kr, vr), dout)
                e = [rel(out, o), rel(dq, gq), rel(dk, gk), rel(dv, gv)]
                bad = any(x > TOL_VS_SDPA for x in e)
                line = (f"{D:>4} {T:>6} {H:>3}/{Hkv:<2} {str(causal):>6} | vs sdpa: "
                        + " ".join(f"{x:9.2e}" for x in e))
                if T <= args.ref_max:
                    ro, rq, rk, rv = ref_fp32(q, k, v, dout, causal)
                    es = [rel(out, ro), rel(dq, rq), rel(dk, rk), rel(dv, rv)]
                    et = [rel(o, ro), rel(gq, rq)]
                    bad |= any(x > TOL_VS_REF for x in es)
                    line += (f" | stretch vs fp32: {es[0]:9.2e} {es[1]:9.2e}"
                             f" | sdpa vs fp32: {et[0]:9.2e} {et[1]:9.2e}")
                print(line + ("  FAIL" if bad else ""))
                fails += bad
                del q, k, v, dout, out, lse, dq, dk, dv, qr, kr, vr, o, gq, gk, gv
                torch.cuda.empty_cache()
    print(f"{'FAIL' if fails else 'PASS'}: {fails} failure(s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
