// model_sp_attn: ring and ulysses attention as the model's attention. See model_sp_attn.h.
#include "model_sp_attn.h"

#include <math.h>

static ring_shape shape_of(int64_t B, int64_t T, int H, int Hkv, int D) {
    return (ring_shape){.B = B, .T_local = T, .H = H, .Hkv = Hkv, .D = D,
                        .scale = 1.0f / sqrtf((float)D), .causal = true};
}

// The cpu backend's tensors are fp32 host arrays: the void * of the hooks are float *.
static void ring_forward(void *ctx, void *out, float *lse, const void *q, const void *k,
                         const void *v, const int32_t *seg, int64_t B, int64_t T, int H, int Hkv,
                         int D) {
    ring_shape s = shape_of(B, T, H, Hkv, D);
    ring_attn_forward(ctx, out, lse, q, k, v, seg, &s);
}

static void ring_backward(void *ctx, void *dq, void *dk, void *dv, const void *dout,
                          const void *q, const void *k, const void *v, const void *out,
                          const float *lse, const int32_t *seg, int64_t B, int64_t T, int H,
                          int Hkv, int D) {
    ring_shape s = shape_of(B, T, H, Hkv, D);
    ring_attn_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, seg, &s);
}

static void ulysses_forward(void *ctx, void *out, float *lse, const void *q, const void *k,
                            const void *v, const int32_t *seg, int64_t B, int64_t T, int H,
                            int Hkv, int D) {
    ring_shape s = shape_of(B, T, H, Hkv, D);
    ulysses_attn_forward(ctx, out, lse, q, k, v, seg, &s);
}

static void ulysses_backward(void *ctx, void *dq, void *dk, void *dv, const void *dout,
                             const void *q, const void *k, const void *v, const void *out,
                             const float *lse, const int32_t *seg, int64_t B, int64_t T, int H,
                             int Hkv, int D) {
    ring_shape s = shape_of(B, T, H, Hkv, D);
    ulysses_attn_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, seg, &s);
}

model_attention model_ring_attention(ring_attn *r) {
    return (model_attention){.forward = ring_forward, .backward = ring_backward, .ctx = r};
}

model_attention model_ulysses_attention(ulysses_attn *u) {
    return (model_attention){.forward = ulysses_forward, .backward = ulysses_backward, .ctx = u};
}
