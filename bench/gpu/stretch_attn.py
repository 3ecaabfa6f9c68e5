"""ctypes binding of libstretch_attn_shim.so (bench/gpu/attn_shim.c) for torch tensors.

Layouts are stretch's: q, out, dout (B, T, H, D) bf16; k, v (B, T, Hkv, D) bf16;
lse, delta (B, H, T) fp32; dq, dk, dv fp32, accumulated (+=); seg (B, T) int32
segment ids (packed documents: query i sees key j only if their ids agree).
"""
import ctypes
import os

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LIB = os.path.join(_HERE, "..", "..", "build", "libstretch_attn_shim.so")

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_I = ctypes.c_int


class StretchAttn:
    def __init__(self, lib_path=None):
        path = os.path.abspath(lib_path or os.environ.get("STRETCH_ATTN_SHIM", DEFAULT_LIB))
        self.lib = ctypes.CDLL(path)
        self.lib.stretch_attn_fwd.argtypes = [_P] * 5 + [_I64, _I64, _I, _I, _I, _I, _I, _P]
        self.lib.stretch_attn_fwd.restype = _I
        self.lib.stretch_attn_bwd.argtypes = [_P] * 10 + [_I64, _I64, _I, _I, _I, _I, _I, _P]
        self.lib.stretch_attn_bwd.restype = _I
        self.lib.stretch_attn_docs_ints.argtypes = [_I64, _I64, _I64]
        self.lib.stretch_attn_docs_ints.restype = _I64
        self.lib.stretch_attn_fwd_seg.argtypes = [_P] * 7 + [_I64, _I64, _I, _I, _I, _I, _I, _P]
        self.lib.stretch_attn_fwd_seg.restype = _I
        self.lib.stretch_attn_bwd_seg.argtypes = [_P] * 12 + [_I64, _I64, _I, _I, _I, _I, _I, _P]
        self.lib.stretch_attn_bwd_seg.restype = _I
        blk = [_I64, _I64, _I64, _I, _I, _I, _I64, _I64, _I, _I, _P]
        self.lib.stretch_attn_block_fwd.argtypes = [_P] * 8 + blk
        self.lib.stretch_attn_block_fwd.restype = _I
        self.lib.stretch_attn_block_bwd.argtypes = [_P] * 12 + blk
        self.lib.stretch_attn_block_bwd.restype = _I
        self.lib.stretch_attn_delta.argtypes = [_P] * 3 + [_I64, _I64, _I, _I, _I, _P]
        self.lib.stretch_attn_delta.restype = None

    @staticmethod
    def _stream():
        return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    def forward(self, q, k, v, causal, out=None, lse=None):
        B, T, H, D = q.shape
        Hkv = k.shape[2]
        for x in (q, k, v):
            assert x.is_cuda and x.is_contiguous() and x.dtype in (torch.bfloat16, torch.float32)
        if out is None:
            out = torch.empty_like(q)
        if lse is None:
            lse = torch.empty(B, H, T, device=q.device, dtype=torch.float32)
        rc = self.lib.stretch_attn_fwd(out.data_ptr(), lse.data_ptr(), q.data_ptr(), k.data_ptr(),
                                       v.data_ptr(), B, T, H, Hkv, D, int(causal),
                                       int(q.dtype == torch.bfloat16), self._stream())
        if rc != 0:
            raise ValueError(f"stretch attention does not support B={B} T={T} H={H} Hkv={Hkv} D={D}")
        return out, lse

    def backward(self, dout, q, k, v, out, lse, causal, dq, dk, dv, delta=None):
        """Accumulates into fp32 dq, dk, dv (zero them for plain gradients)."""
        B, T, H, D = q.shape
        Hkv = k.shape[2]
        if delta is None:
            delta = torch.empty(B, H, T, device=q.device, dtype=torch.float32)
        rc = self.lib.stretch_attn_bwd(dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), dout.data_ptr(),
                                       q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                                       lse.data_ptr(), delta.data_ptr(), B, T, H, Hkv, D,
                                       int(causal), int(q.dtype == torch.bfloat16), self._stream())
        if rc != 0:
            raise ValueError("unsupported shape")
        return dq, dk, dv


    def _bounds(self, B, Tq, Tk, dev):
        n = self.lib.stretch_attn_docs_ints(B, Tq, Tk)
        return torch.empty(n, device=dev, dtype=torch.int32)

    @staticmethod
    def _ptr(x):
        return x.data_ptr() if x is not None else None

    def forward_seg(self, q, k, v, seg, causal, out=None, lse=None):
        """forward() with segment ids seg (B, T) int32 (None: one document)."""
        B, T, H, D = q.shape
        Hkv = k.shape[2]
        out = torch.empty_like(q) if out is None else out
        lse = torch.empty(B, H, T, device=q.device, dtype=torch.float32) if lse is None else lse
        bounds = self._bounds(B, T, T, q.device) if seg is not None else None
        rc = self.lib.stretch_attn_fwd_seg(out.data_ptr(), lse.data_ptr(), q.data_ptr(), k.data_ptr(),
                                           v.data_ptr(), self._ptr(seg), self._ptr(bounds), B, T, H,
                                           Hkv, D, int(causal), int(q.dtype == torch.bfloat16),
                                           self._stream())
        if rc != 0:
            raise ValueError("unsupported shape")
        return out, lse

    def backward_seg(self, dout, q, k, v, out, lse, seg, causal, dq, dk, dv):
        B, T, H, D = q.shape
        Hkv = k.shape[2]
        delta = torch.empty(B, H, T, device=q.device, dtype=torch.float32)
        bounds = self._bounds(B, T, T, q.device) if seg is not None else None
        rc = self.lib.stretch_attn_bwd_seg(dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), dout.data_ptr(),
                                           q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                                           lse.data_ptr(), delta.data_ptr(), self._ptr(seg),
                                           self._ptr(bounds), B, T, H, Hkv, D, int(causal),
                                           int(q.dtype == torch.bfloat16), self._stream())
        if rc != 0:
            raise ValueError("unsupported shape")
        return dq, dk, dv

    def block_forward(self, out_acc, lse_acc, q, k, v, seg_q, seg_k, q_start, k_start, causal):
        """Merges key block (k, v at global offset k_start) into the running fp32
        (out_acc (B, Tq, H, D), lse_acc (B, H, Tq)) of queries at offset q_start."""
        B, Tq, H, D = q.shape
        Tk, Hkv = k.shape[1], k.shape[2]
        bounds = self._bounds(B, Tq, Tk, q.device) if seg_q is not None else None
        rc = self.lib.stretch_attn_block_fwd(out_acc.data_ptr(), lse_acc.data_ptr(), q.data_ptr(),
                                             k.data_ptr(), v.data_ptr(), self._ptr(seg_q),
                                             self._ptr(seg_k), self._ptr(bounds), B, Tq, Tk, H, Hkv,
                                             D, q_start, k_start, int(causal),
                                             int(q.dtype == torch.bfloat16), self._stream())
        if rc != 0:
            raise ValueError("unsupported shape")

    def block_backward(self, dq, dk, dv, dout, q, k, v, lse, delta, seg_q, seg_k, q_start, k_start,
                       causal):
        """Backward of one key block given the final lse and delta (+= dq, dk, dv)."""
        B, Tq, H, D = q.shape
        Tk, Hkv = k.shape[1], k.shape[2]
        bounds = self._bounds(B, Tq, Tk, q.device) if seg_q is not None else None
        rc = self.lib.stretch_attn_block_bwd(dq.data_ptr(), dk.data_ptr(), dv.data_ptr(),
                                             dout.data_ptr(), q.data_ptr(), k.data_ptr(), v.data_ptr(),
                                             lse.data_ptr(), delta.data_ptr(), self._ptr(seg_q),
                                             self._ptr(seg_k), self._ptr(bounds), B, Tq, Tk, H, Hkv,
                                             D, q_start, k_start, int(causal),
                                             int(q.dtype == torch.bfloat16), self._stream())
        if rc != 0:
            raise ValueError("unsupported shape")

    def delta(self, dout, out):
        """rowsum(dout * out) as (B, H, T) fp32, from the final output."""
        B, T, H, D = dout.shape
        d = torch.empty(B, H, T, device=dout.device, dtype=torch.float32)
        self.lib.stretch_attn_delta(d.data_ptr(), dout.data_ptr(), out.data_ptr(), B, T, H, D,
                                    int(dout.dtype == torch.bfloat16), self._stream())
        return d


def doc_mask(seg_q, seg_k, q_start, k_start, causal):
    """(B, Tq, Tk) bool: query i sees key j (same document, causal on global
    positions), for SDPA's attn_mask and the references."""
    Tq, Tk = seg_q.shape[1], seg_k.shape[1]
    m = seg_q[:, :, None] == seg_k[:, None, :]
    if causal:
        i = torch.arange(Tq, device=seg_q.device)[:, None] + q_start
        j = torch.arange(Tk, device=seg_q.device)[None, :] + k_start
        m = m & (j <= i)[None]
    return m


def sdpa_masked(q, k, v, mask):
    """torch SDPA (memory-efficient backend: flash takes no mask) with an
    explicit boolean mask (B, T, T): the block-diagonal causal mask of packed
    documents. GQA by repeating k and v."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    rep = q.shape[2] // k.shape[2]
    qt = q.transpose(1, 2)
    kt, vt = (x.transpose(1, 2).repeat_interleave(rep, 1) for x in (k, v))
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        o = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask[:, None])
    return o.transpose(1, 2)


SDPA_GQA_MODE = {"mode": None}  # "enable_gqa" or "repeat": how sdpa() ran GQA last


def sdpa(q, k, v, causal):
    """torch SDPA (flash backend) on stretch-layout tensors (B, T, H, D); GQA
    through enable_gqa when this torch has it, else by repeating k and v."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    H, Hkv = q.shape[2], k.shape[2]
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        if H != Hkv:
            try:
                o = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, enable_gqa=True)
                SDPA_GQA_MODE["mode"] = "enable_gqa"
            except (TypeError, RuntimeError):
                SDPA_GQA_MODE["mode"] = "repeat"
                rep = H // Hkv
                o = F.scaled_dot_product_attention(qt, kt.repeat_interleave(rep, 1),
                                                   vt.repeat_interleave(rep, 1), is_causal=causal)
        else:
            o = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
    return o.transpose(1, 2)


def attn_flops(B, T, H, D, causal, backward=False):
    """FLOPs of attention by the usual count: forward 2 products of 2*T*T*D per
    head, backward 2.5x that; causal counts half."""
    f = 4.0 * B * H * T * T * D * (2.5 if backward else 1.0)
    return f / 2 if causal else f
