#!/usr/bin/env python3
"""A numpy Llama forward on a GGUF file that models what llama.cpp's CPU
backend (ggml-cpu, x86 with F16C/AVX2) computes, written from ggml's rules,
not from its code. bench/gguf_llamacpp_check.py compares llama.cpp with it.

Not part of the test suite: needs numpy and gguf (pip install gguf).

  python3 bench/gguf_ggml_ref.py --gguf M.gguf --tokens IDS.bin --out LOGITS.bin [--no-ggml] [--f32]

IDS.bin: T int32 token ids, positions 0..T-1; LOGITS.bin: (T, V) float32.

The weights are the file's, dequantized by gguf-py (F32, F16, BF16, Q8_0:
every value exact in float64). With the ggml rules on (default) it does
what ggml does to the numbers beyond plain arithmetic:

  * before every weight matmul (attn_q/k/v/output, ffn_gate/up/down, the
    LM head) the f32 activation is converted to the weight type's
    vec_dot_type: F32 -> unchanged, F16 -> IEEE half (round to nearest
    even), BF16 -> bfloat16 (round to nearest even on the f32 bits), Q8_0
    -> Q8_0 blocks of 32 along the row: amax = max|x|, d = amax / 127 in
    f32 stored as F16, q = round-half-even(x * (127 / amax)) in f32 (the
    AVX2 quantize_row_q8_0; the scalar reference divides by d and rounds
    half away from zero, which differs only at exact ties). The dot
    product is then sum over blocks d_w d_x sum(q_w q_x): exactly the
    dequantized vectors' dot product, so float64 models it exactly;
  * K and V go to an F32 KV cache (what the check asks llama.cpp for), so
    KQ and KQV are f32 matmuls without rounding; softmax, RMSNorm, SiLU
    and the residual adds are f32 (float64 here);
  * the RoPE angles as ggml's rope cache builds them in f32: theta_scale =
    powf(base, -2/n_rot), theta_k = fl(theta_{k-1} * theta_scale) from
    theta_0 = pos (k roundings: at position 8K the angle of a slow pair is
    off by ~1e-3 rad), divided by the rope_freqs factor, YaRN's
    interpolation/extrapolation mix (with the FMA GCC contracts it to, on
    x86-64 with FMA: found by comparing RoPE's output with llama.cpp's for
    the fused and unfused forms) and cos/sin times mscale in f32.
    llama's rope is ggml's normal mode: it rotates (x[2i], x[2i+1]) of the
    GGUF's (permuted) q/k rows.

--no-ggml turns those rules off (float64 activations, exact angles): the
same model as stretch computes it, to compare with stretch's f32 forward.
--f32 does all arithmetic between the roundings in float32 (numpy/BLAS
order): one f32 evaluation of the same rules. Forward(..., rng=...) is a
perturbed float64 run (every op's output moved by its f32 error scale with
random signs): gguf_llamacpp_check.py's end-to-end and per-block tolerances.
"""
import argparse
import math
import sys

import numpy as np


def _field(r, key, default=None):
    f = r.fields.get(key)
    return default if f is None else f.contents()


class Model:
    """The hyperparameters, RoPE and dequantized tensors of a llama GGUF."""

    def __init__(self, path):
        import gguf
        r = gguf.GGUFReader(path)
        arch = _field(r, "general.architecture")
        if arch != "llama":
            sys.exit(f"{path}: architecture {arch!r}, this reference models llama only")
        k = lambda name, d=None: _field(r, f"llama.{name}", d)
        self.C, self.L = int(k("embedding_length")), int(k("block_count"))
        self.H, self.Hkv = int(k("attention.head_count")), int(k("attention.head_count_kv"))
        self.D = int(k("attention.key_length", self.C // self.H))
        self.n_rot = int(k("rope.dimension_count", self.D))
        self.eps = float(k("attention.layer_norm_rms_epsilon"))
        self.base = float(np.float32(k("rope.freq_base", 10000.0)))
        self.scaling = k("rope.scaling.type", "none")
        factor = float(k("rope.scaling.factor", 0.0) or 0.0)
        self.freq_scale = 1.0 / factor if self.scaling in ("linear", "yarn") and factor > 0 else 1.0
        self.ext_factor = 1.0 if self.scaling == "yarn" else 0.0  # llama.cpp: 1 for yarn, else 0
        self.attn_factor = float(k("rope.scaling.attn_factor", 1.0))
        self.n_ctx_orig = int(k("rope.scaling.original_context_length", k("context_length")))
        self.types, self.w = {}, {}
        for t in r.tensors:
            kind = gguf.GGMLQuantizationType(int(t.tensor_type))
            if kind.name not in ROUNDING:
                sys.exit(f"{path}: tensor {t.name} has type {kind.name}; modelled: {', '.join(ROUNDING)}")
            shape = tuple(int(x) for x in reversed(t.shape))  # GGUF lists ne[0] (the row length) first
            self.types[t.name] = kind.name
            self.w[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float64)
        self.freq_factors = self.w.get("rope_freqs.weight")
        if "output.weight" not in self.w:  # tied: llama.cpp uses token_embd (its type) as the head
            self.w["output.weight"], self.types["output.weight"] = self.w["token_embd.weight"], self.types[
                "token_embd.weight"]
        self.V = self.w["output.weight"].shape[0]


# -- ggml's activation conversions (input: any float array; output: float32 values) --

def _bf16(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16  # round to nearest even on the top 16 bits
    return u.astype(np.uint32).view(np.float32)


def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def _q8_0(x):
    x = np.asarray(x, dtype=np.float32)
    b = x.reshape(-1, 32)
    amax = np.abs(b).max(1, keepdims=True)
    d = (amax / np.float32(127)).astype(np.float16).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.rint(b * inv)  # float32 product, round half to even (_MM_ROUND_NEAREST)
    return (q * d).reshape(x.shape)  # |q| <= 127 times an F16: exact in f32


ROUNDING = {"F32": None, "F16": _f16, "BF16": _bf16, "Q8_0": _q8_0}


# -- RoPE --

def _yarn_ramp(m, n, dtype):
    """1 - clamp((i - low) / max(0.001, high - low)) per pair i in dtype, ggml's corr dims (betas 32 / 1:
    the llama architecture ignores the GGUF keys)."""
    def corr_dim(beta):
        return m.n_rot * math.log(m.n_ctx_orig / (beta * 2 * math.pi)) / (2 * math.log(m.base))
    low = max(0.0, math.floor(corr_dim(32.0)))
    high = min(m.n_rot - 1.0, math.ceil(corr_dim(1.0)))
    y = (np.arange(n, dtype=dtype) - dtype(low)) / dtype(max(0.001, high - low))
    return (dtype(1) - np.clip(y, dtype(0), dtype(1))).astype(dtype)


def rope_tables(m, T, ggml):
    """cos, sin of shape (T, n_rot/2) for positions 0..T-1, mscale included."""
    n = m.n_rot // 2
    ff = np.ones(n) if m.freq_factors is None else m.freq_factors.astype(np.float64)
    mscale = m.attn_factor * ((1.0 + 0.1 * math.log(1.0 / m.freq_scale)) if m.ext_factor else 1.0)
    if not ggml:
        ramp = _yarn_ramp(m, n, np.float64) * m.ext_factor
        extrap = np.arange(T)[:, None] * (m.base ** (-2.0 * np.arange(n) / m.n_rot))[None] / ff
        theta = m.freq_scale * extrap * (1 - ramp) + extrap * ramp
        return np.cos(theta) * mscale, np.sin(theta) * mscale
    f = np.float32
    scale = f(f(m.base) ** f(-2.0 / m.n_rot))
    theta = np.empty((T, n), np.float32)
    t = np.arange(T, dtype=np.float32)
    for i in range(n):
        theta[:, i] = t
        t = t * scale  # float32: the cumulative product ggml's rope cache uses
    extrap = theta / ff.astype(np.float32)
    interp = f(m.freq_scale) * extrap
    if m.ext_factor:
        # interp * (1 - mix) + extrap * mix, the first product fused (FMA) as this build's compiler
        # contracts it: one rounding of interp * (1 - mix) + fl(extrap * mix); float64 holds the exact
        # product of two floats, so the float64 sum rounded to f32 is the FMA (bar double-rounding ties)
        mix = _yarn_ramp(m, n, np.float32) * f(m.ext_factor)
        mixed = (interp.astype(np.float64) * (f(1) - mix).astype(np.float64)
                 + (extrap * mix).astype(np.float64)).astype(np.float32)
    else:
        mixed = interp
    ms = f(mscale)
    return (np.cos(mixed.astype(np.float64)).astype(np.float32) * ms,
            np.sin(mixed.astype(np.float64)).astype(np.float32) * ms)


def _rope(x, cos, sin):
    """x: (T, heads, D); rotate (x[2i], x[2i+1]) for 2i < n_rot (ggml's normal mode)."""
    n = cos.shape[1]
    a, b = x[..., 0:2 * n:2], x[..., 1:2 * n:2]
    c, s = cos[:, None, :], sin[:, None, :]
    out = x.copy()
    out[..., 0:2 * n:2] = a * c - b * s
    out[..., 1:2 * n:2] = a * s + b * c
    return out


def rope_bound(x, cos, sin):
    """gguf_err_bounds.rope per element of _rope(x, cos, sin); 0 for dims beyond n_rot (copied)."""
    import gguf_err_bounds as eb
    n = cos.shape[1]
    a, b = x[..., 0:2 * n:2], x[..., 1:2 * n:2]
    c, s = cos[:, None, :], sin[:, None, :]
    out = np.zeros(x.shape)
    out[..., 0:2 * n:2] = eb.rope(a, b, c, s)
    out[..., 1:2 * n:2] = eb.rope(b, a, c, s)
    return out


class Forward:
    """One model's forward pieces: ggml selects the rounding rules, dtype the arithmetic between them.

    rng (float64 only): a perturbed run. Every op's output is moved, element by element and with a
    random sign, by that op's float32 error scale: sqrt(n) u sum|x_i||w_i| for inner products of n
    terms (Higham and Mary's probabilistic bound with lambda = 1, SIAM J. Sci. Comput. 41(5), 2019),
    gguf_err_bounds' a priori bound for RoPE, RMSNorm, softmax, SwiGLU and the residual adds. The
    rounding rules then act on the perturbed activations, so flipped roundings are part of it. The
    spread of such runs around the unperturbed one is what f32 arithmetic can do to the result: the
    end-to-end and per-block tolerances of gguf_llamacpp_check.py."""

    def __init__(self, m, T, ggml=True, dtype=np.float64, chunk=1024, rng=None):
        self.m, self.T, self.ggml, self.dtype, self.chunk, self.rng = m, T, ggml, dtype, chunk, rng
        self._absw = {}
        self.w = {k: v.astype(dtype, copy=False) for k, v in m.w.items()}
        self.cos, self.sin = (t.astype(dtype) for t in rope_tables(m, T, ggml))

    def jolt(self, y, scale):
        """y + r scale, r = +-1 at random per element (perturbed runs only)."""
        if self.rng is None:
            return y
        return y + np.where(self.rng.random(y.shape) < 0.5, -scale, scale)

    def jolt_inner(self, y, a, b, n):
        """Perturb y = a @ b.T (inner products of n terms) by sqrt(n) u |a| @ |b|.T."""
        if self.rng is None:
            return y
        import gguf_err_bounds as eb
        f = np.float32  # the perturbation's size needs no more precision than this (and sgemm is 2x dgemm)
        return self.jolt(y, math.sqrt(n) * eb.U * (np.abs(a).astype(f) @ self.absw(b).T))

    def absw(self, b):
        """|b| in float32, the weights' cached (a perturbed run reuses them)."""
        for name, w in self.w.items():
            if w is b:
                if name not in self._absw:
                    self._absw[name] = np.abs(w).astype(np.float32)
                return self._absw[name]
        return np.abs(b).astype(np.float32)

    def mm(self, x, name):
        rnd = ROUNDING[self.m.types[name]] if self.ggml else None
        x = rnd(x).astype(self.dtype) if rnd else x
        w = self.w[name]
        return self.jolt_inner(x @ w.T, x, w, w.shape[1])

    def rms(self, x, g):
        import gguf_err_bounds as eb
        y = (x / np.sqrt((x * x).mean(-1, keepdims=True) + self.dtype(self.m.eps))) * self.w[g]
        return self.jolt(y, eb.rms_norm(y, x.shape[-1])) if self.rng is not None else y

    def rope(self, x, pos0=0):
        y = _rope(x, self.cos[pos0:pos0 + x.shape[0]], self.sin[pos0:pos0 + x.shape[0]])
        if self.rng is None:
            return y
        return self.jolt(y, rope_bound(x, self.cos[pos0:pos0 + x.shape[0]], self.sin[pos0:pos0 + x.shape[0]]))

    def embed(self, ids):
        return self.w["token_embd.weight"][np.asarray(ids)]

    def attention(self, q, k, v):
        """Causal attention of q (T, H, D) over k, v (T, Hkv, D): KQ, softmax, KQV as ggml does them."""
        import gguf_err_bounds as eb
        m, T = self.m, q.shape[0]
        H, Hkv, D = m.H, m.Hkv, m.D
        o = np.empty((T, H, D), self.dtype)
        scale = 1.0 / math.sqrt(D)
        for hh in range(H):
            kh, vh = k[:, hh * Hkv // H], v[:, hh * Hkv // H]
            for t0 in range(0, T, self.chunk):  # query blocks: bounded memory at long T
                t1 = min(T, t0 + self.chunk)
                qh = q[t0:t1, hh]
                s = self.jolt_inner(qh @ kh[:t1].T, qh, kh[:t1], D) * self.dtype(scale)
                s[np.arange(t1 - t0)[:, None] + t0 < np.arange(t1)[None]] = -np.inf
                a = s - s.max(-1, keepdims=True)
                p = np.exp(a)
                p /= p.sum(-1, keepdims=True)
                if self.rng is not None:
                    p = self.jolt(p, eb.softmax(p, a, s, scale))
                o[t0:t1, hh] = self.jolt_inner(p @ vh[:t1], p, vh[:t1].T, t1)
        return o

    def layer(self, l, h):
        """The residual stream after block l, from h (T, C) before it."""
        import gguf_err_bounds as eb
        m, T, p = self.m, self.T, f"blk.{l}."
        H, Hkv, D = m.H, m.Hkv, m.D
        h = np.asarray(h, self.dtype)
        x = self.rms(h, p + "attn_norm.weight")
        q = self.rope(self.mm(x, p + "attn_q.weight").reshape(T, H, D))
        k = self.rope(self.mm(x, p + "attn_k.weight").reshape(T, Hkv, D))
        v = self.mm(x, p + "attn_v.weight").reshape(T, Hkv, D)
        o = self.attention(q, k, v)
        h = h + self.mm(o.reshape(T, H * D), p + "attn_output.weight")
        h = self.jolt(h, eb.add(h)) if self.rng is not None else h
        x = self.rms(h, p + "ffn_norm.weight")
        g = self.mm(x, p + "ffn_gate.weight")
        sw = g / (1 + np.exp(-g)) * self.mm(x, p + "ffn_up.weight")
        sw = self.jolt(sw, eb.swiglu(sw)) if self.rng is not None else sw
        h = h + self.mm(sw, p + "ffn_down.weight")
        return self.jolt(h, eb.add(h)) if self.rng is not None else h

    def head(self, x_normed):
        """Logits from the output-normed hidden states."""
        return self.mm(np.asarray(x_normed, self.dtype), "output.weight")

    def __call__(self, ids, first=0):
        h = self.embed(ids)
        for l in range(self.m.L):
            h = self.layer(l, h)
        return self.head(self.rms(h[first:], "output_norm.weight")).astype(np.float64)


def forward(m, ids, ggml=True, dtype=np.float64, first=0, rng=None):
    """Logits (T - first, V) as float64 of positions first..T-1 (rng: a perturbed run, see Forward)."""
    return Forward(m, len(ids), ggml, dtype, rng=rng)(ids, first)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--tokens", required=True, help="int32 token ids")
    ap.add_argument("--out", required=True, help="(T, V) float32 logits")
    ap.add_argument("--no-ggml", action="store_true", help="no activation rounding, exact RoPE angles")
    ap.add_argument("--f32", action="store_true", help="float32 arithmetic between the roundings")
    a = ap.parse_args()
    m = Model(a.gguf)
    ids = np.fromfile(a.tokens, dtype="<i4")
    if ids.size == 0 or ids.min() < 0 or ids.max() >= m.V:
        sys.exit(f"{a.tokens}: expected int32 ids in [0, {m.V})")
    forward(m, ids, ggml=not a.no_ggml, dtype=np.float32 if a.f32 else np.float64).astype("<f4").tofile(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
