"""A priori float32 rounding-error bounds for the ops of ggml-cpu's llama graph, evaluated
elementwise in float64 from the actual operands. Used by gguf_llamacpp_check.py (each op of
llama.cpp fed its own input) and by gguf_ggml_ref.Forward's perturbed runs (end-to-end and
per-block tolerances). Not part of the test suite.

u = 2^-24 (float32's unit roundoff), gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability of
Numerical Algorithms, 2nd ed., sec. 3.1). Each bound is what ggml's f32 code can differ from the
exact result of the same operation on the same (already rounded) operands:

  inner product, n terms (every weight matmul, KQ, KQV):
      |fl(x.w) - x.w| <= gamma_n sum_i |x_i||w_i|
    for any summation order and with or without FMA. The activation's conversion to the weight's
    vec_dot_type is not part of it: the reference applies the same conversion to the same f32 input
    (F16 and BF16 products are exact in f32; Q8_0's integer block sums are exact and so is the
    product of the two F16 scales, so only the f32 accumulation rounds). Without the conversion
    (a reference without ggml's rules) add sum_i rho(x_i)|w_i|, rho the conversion's own bound
    (input_rounding below).
  RoPE, out = (x0 c - x1 s, x0 s + x1 c): (gamma_2 + 5u)(|x0||c| + |x1||s|): two products and
    a sum, plus c, s themselves: cosf/sinf within 1 ulp (2u relative; the reference rounds
    correctly, u) and the product with mscale (2u for the two sides' roundings).
  RMSNorm times its weight, y = x / sqrt(mean(x^2) + eps) * g: relative 6u + n 2^-53 (x^2 u,
    ggml's double sum, the mean to float u, + eps u, sqrtf halves that and adds u, 1/ u, x * s u,
    * g u).
  softmax of scale * kq + mask (ggml: exp by ggml_v_expf, max error 1.45 + 0.5 ulp, i.e. <= 4u
    relative; the sum in double of f32 sums of one SIMD register's 16 lanes, gamma_15 for those
    (positive terms); 1/sum to float u, the product u): p_i (eta_i + sum_j p_j eta_j + gamma_15
    + 2u) with eta_i = 4u + u |a_i| (a_i = s_i - max, its rounding u |a_i| moves exp(a_i) by that
    relative amount) + u |s_i| when scale is not a power of two; plus 2^-126 for flushed tails.
  SwiGLU silu(g) * up: 7u |y| (exp 4u, 1 + e u, the division u, * up u) + 2^-126.
  residual add: u |y|.

Inner products also get the float64 reference's own error, gamma_n(2^-53) sum |x||w|.
"""
import math

import numpy as np

U = 2.0 ** -24
U64 = 2.0 ** -53
TINY = 2.0 ** -126


def gamma(n, u=U):
    return n * u / (1.0 - n * u)


def inner(absprod_sum, n):
    """Bound for inner products of n terms with sum |x_i||w_i| = absprod_sum."""
    return (gamma(n) + gamma(n, U64)) * absprod_sum


def rope(x0, x1, c, s):
    return (gamma(2) + 5 * U) * (np.abs(x0 * c) + np.abs(x1 * s))


def rms_norm(y, n):
    return (6 * U + n * U64) * np.abs(y) * (1 + 8 * U)


def softmax(p, a, s, scale):
    """p: exact softmax; a = s - rowmax (<= 0, -inf masked); s = scale * kq."""
    fin = np.isfinite(a)
    eta = np.where(fin, 4 * U + U * np.abs(np.where(fin, a, 0.0)), 0.0)
    if math.frexp(scale)[0] != 0.5:
        eta = eta + np.where(fin, U * np.abs(np.where(fin, s, 0.0)), 0.0)
    mean = (p * eta).sum(-1, keepdims=True)
    return p * (eta + mean + gamma(15) + 2 * U) * (1 + 8 * U) + TINY


def swiglu(y):
    return 7 * U * np.abs(y) * (1 + 8 * U) + TINY


def add(y):
    return U * np.abs(y)


def input_rounding(x, typ):
    """Bound on |conv(x) - x| elementwise for ggml's activation conversion to typ's vec_dot_type."""
    x = np.asarray(x, dtype=np.float64)
    if typ == "F32":
        return np.zeros_like(x)
    if typ == "F16":
        return np.maximum(2.0 ** -11 * np.abs(x), 2.0 ** -25)  # 11-bit precision; subnormal spacing 2^-24
    if typ == "BF16":
        return 2.0 ** -8 * np.abs(x) + 2.0 ** -134
    if typ == "Q8_0":  # x~ = q D, q = rint(fl(x fl(127/amax))), D = f16(fl(amax/127))
        b = x.reshape(-1, 32)
        amax = np.abs(b).max(1, keepdims=True)
        d = (np.float32(1) * (amax.astype(np.float32) / np.float32(127))).astype(np.float16).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(amax > 0, b * 127.0 / amax, 0.0)
            dd = np.abs(d - amax / 127.0)
        # |q - r| <= 1/2 + 127 (2u + u^2); |x~ - x| = |(q - r) D + r (D - amax/127)|
        return ((0.5 + 255 * U) * d + np.abs(r) * dd).reshape(x.shape)
    raise ValueError(typ)
