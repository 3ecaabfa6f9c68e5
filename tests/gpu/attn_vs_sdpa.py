#!/usr/bin/env python3
"""Compares stretch's bf16 attention (libstretch_attn_shim.so) with
torch.nn.functional.scaled_dot_product_attention on the same bf16 inputs.

Part 1: causal GQA and non-causal MHA, B=1, D 64 and 128, sequence 4K..32K,
one document, SDPA's flash backend; out, dq, dk, dv. Both are bf16
approximations of the same function, so each is also measured against an
fp32 reference (SDPA math backend on the upcast inputs) where it fits
(T <= --ref-max): stretch no worse than TOL_VS_REF, within TOL_VS_SDPA of
SDPA (||x - y|| / ||y||).

Part 2: packed documents (random lengths, crossing every tile edge) at a
ragged T (not a multiple of any tile), B=2, causal GQA, D 64 and 128:
stretch with segment ids against SDPA with the explicit block-diagonal
causal mask (memory-efficient backend), the ring block form (keys in 3
blocks merged by log-sum-exp, each block's backward from the final lse and
delta) against the whole, and both against an fp32 reference built here,
element by element: |x - ref| <= ATOL + RTOL |ref| + CTOL mag, where mag is
the sum of the absolute values of the element's terms (as
tests/gpu/test_gpu_attn.c), so a dropped or doubled tile fails even where a
gradient is 1/T of its maximum.
Exit 0 pass, 1 fail, 77 no GPU.

  python3 tests/gpu/attn_vs_sdpa.py [--lib build/libstretch_attn_shim.so] [--seqs 4096,8192]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "gpu"))
from stretch_attn import StretchAttn, doc_mask, sdpa, sdpa_masked  # noqa: E402

TOL_VS_SDPA = 2e-2
TOL_VS_REF = 1e-2
ATOL, RTOL, CTOL = 3e-7, 8e-3, 8e-3  # bf16 P, dS and out: 4x 2^-9 (test_gpu_attn.c)


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


def ref_with_mags(q, k, v, dout, mask):
    """fp32 attention under a boolean mask (B, Tq, Tk), its gradients, and per
    element the sum of the absolute values of its terms; one head at a time."""
    B, Tq, H, D = q.shape
    rep = H // k.shape[2]
    scale = D ** -0.5
    qf, kf, vf, df = (x.float() for x in (q, k, v, dout))
    out, dq, m_out, m_dq = (torch.zeros_like(qf) for _ in range(4))
    dk, dv, m_dk, m_dv = (torch.zeros_like(kf) for _ in range(4))
    for h in range(H):
        g = h // rep
        Q, K, V, dO = qf[:, :, h], kf[:, :, g], vf[:, :, g], df[:, :, h]
        S = (Q @ K.transpose(1, 2) * scale).masked_fill(~mask, float("-inf"))
        lse = torch.logsumexp(S, -1, keepdim=True)
        P = torch.where(mask, torch.exp(S - lse), torch.zeros_like(S))
        O = P @ V
        dP = dO @ V.transpose(1, 2)
        delta = (dO * O).sum(-1, keepdim=True)
        dmag = (dO * O).abs().sum(-1, keepdim=True)
        dS = P * (dP - delta) * scale
        A = P * (dP.abs() + dmag) * scale
        out[:, :, h], m_out[:, :, h] = O, P @ V.abs()
        dq[:, :, h], m_dq[:, :, h] = dS @ K, A @ K.abs()
        dk[:, :, g] += dS.transpose(1, 2) @ Q
        m_dk[:, :, g] += A.transpose(1, 2) @ Q.abs()
        dv[:, :, g] += P.transpose(1, 2) @ dO
        m_dv[:, :, g] += P.transpose(1, 2) @ dO.abs()
    return (out, dq, dk, dv), (m_out, m_dq, m_dk, m_dv)


def worst_ratio(x, ref, mag):
    """max |x - ref| / (ATOL + RTOL |ref| + CTOL mag); inf for non-finite x."""
    x = x.float()
    if not torch.isfinite(x).all():
        return float("inf")
    return ((x - ref).abs() / (ATOL + RTOL * ref.abs() + CTOL * mag)).max().item()


def packed_seg(B, T, gen, dev):
    """Segment ids (B, T) int32: documents of random lengths 1..3000 in order."""
    seg = torch.empty(B, T, dtype=torch.int32)
    for b in range(B):
        t, doc = 0, 0
        while t < T:
            n = int(torch.randint(1, 3001, (1,), generator=gen))
            seg[b, t:t + n] = doc
            t, doc = t + n, doc + 1
    return seg.to(dev)


def packed_cases(st, dev, T, fails):
    """Part 2 (see the module doc); returns the failure count."""
    gen = torch.Generator().manual_seed(2)
    print(f"\npacked documents, T={T}, B=2, causal GQA 16/4: worst |err| / tolerance per tensor"
          " (<= 1 passes); vs SDPA with the block-diagonal mask: norm-relative")
    for D in (128, 64):
        B, H, Hkv = 2, 16, 4
        q, dout = (torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
        k, v = (torch.randn(B, T, Hkv, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
        seg = packed_seg(B, T, gen, dev)
        mask = doc_mask(seg, seg, 0, 0, True)
        ref, mags = ref_with_mags(q, k, v, dout, mask)

        out = torch.full_like(q, float("nan"))
        out, lse = st.forward_seg(q, k, v, seg, True, out=out)
        dq = torch.zeros(B, T, H, D, device=dev)
        dk, dv = torch.zeros(B, T, Hkv, D, device=dev), torch.zeros(B, T, Hkv, D, device=dev)
        st.backward_seg(dout, q, k, v, out, lse, seg, True, dq, dk, dv)
        whole = [worst_ratio(x, r, m) for x, r, m in zip((out, dq, dk, dv), ref, mags)]

        qr, kr, vr = (x.clone().requires_grad_(True) for x in (q, k, v))
        o = sdpa_masked(qr, kr, vr, mask)
        gq, gk, gv = torch.autograd.grad(o, (qr, kr, vr), dout)
        vs_sdpa = [rel(out, o), rel(dq, gq), rel(dk, gk), rel(dv, gv)]
        sdpa_ratio = [worst_ratio(x, r, m) for x, r, m in zip((o, gq, gk, gv), ref, mags)]

        # Ring block form: keys in 3 blocks of their own arrays (as a ring step
        # receives them), merged into a running fp32 result from (0, -inf).
        acc = torch.zeros(B, T, H, D, device=dev)
        lse_acc = torch.full((B, H, T), float("-inf"), device=dev)
        cuts = [0, T // 3 + 5, 2 * T // 3 - 7, T]
        for a, b in zip(cuts[:-1], cuts[1:]):
            st.block_forward(acc, lse_acc, q, k[:, a:b].contiguous(), v[:, a:b].contiguous(), seg,
                             seg[:, a:b].contiguous(), 0, a, True)
        delta = st.delta(dout, out)
        bq = torch.zeros_like(dq)
        bk, bv = torch.zeros_like(dk), torch.zeros_like(dv)
        for a, b in zip(cuts[:-1], cuts[1:]):
            gk_b, gv_b = torch.zeros_like(dk[:, a:b]), torch.zeros_like(dv[:, a:b])
            st.block_backward(bq, gk_b, gv_b, dout, q, k[:, a:b].contiguous(), v[:, a:b].contiguous(),
                              lse, delta, seg, seg[:, a:b].contiguous(), 0, a, True)
            bk[:, a:b], bv[:, a:b] = gk_b, gv_b
        # The merged output is fp32 (no bf16 rounding of out): RTOL on out
        # still holds, the blocks' gradients use the whole forward's lse.
        blocks = [worst_ratio(x, r, m) for x, r, m in zip((acc, bq, bk, bv), ref, mags)]

        bad = max(whole + blocks) > 1.0 or max(vs_sdpa) > TOL_VS_SDPA
        print(f"D={D:<3} stretch: out {whole[0]:.3f} dq {whole[1]:.3f} dk {whole[2]:.3f} dv {whole[3]:.3f}"
              f" | 3 blocks merged: out {blocks[0]:.3f} dq {blocks[1]:.3f} dk {blocks[2]:.3f}"
              f" dv {blocks[3]:.3f} | sdpa (same tolerance): "
              + " ".join(f"{x:.3f}" for x in sdpa_ratio)
              + " | stretch vs sdpa: " + " ".join(f"{x:.2e}" for x in vs_sdpa)
              + ("  FAIL" if bad else ""))
        fails += bad
        torch.cuda.empty_cache()
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=None)
    ap.add_argument("--seqs", default="4096,8192,16384,32768")
    ap.add_argument("--ref-max", type=int, default=4096)
    ap.add_argument("--packed-T", type=int, default=4133, help="T of part 2 (ragged on purpose)")
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
    fails = packed_cases(st, dev, args.packed_T, fails)
    print(f"{'FAIL' if fails else 'PASS'}: {fails} failure(s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
