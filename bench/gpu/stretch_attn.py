"""ctypes binding of libstretch_attn_shim.so (bench/gpu/attn_shim.c) for torch tensors.

Layouts are stretch's: q, out, dout (B, T, H, D) bf16; k, v (B, T, Hkv, D) bf16;
lse, delta (B, H, T) fp32; dq, dk, dv fp32, accumulated (+=).
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
