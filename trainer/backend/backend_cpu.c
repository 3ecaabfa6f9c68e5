// backend_cpu: the backend interface over the CPU reference kernels
// (kernels/cpu), fp32 only. Each op is the very call model.c made before the
// interface existed, so results are bit-identical. See backend.h.
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "die.h"
#include "embedding.h"
#include "matmul.h"
#include "rmsnorm.h"
#include "rope.h"
#include "swiglu.h"
#include "xent.h"

static void *cpu_alloc(backend *b, size_t bytes) { return xcalloc(bytes ? bytes : 1, 1); }
static void cpu_free(backend *b, void *p) { free(p); }
static void cpu_zero(backend *b, void *p, size_t bytes) { memset(p, 0, bytes); }

static void cpu_copy(backend *b, void *dst, const void *src, size_t bytes) {
    if (dst != src) memcpy(dst, src, bytes);
}

static void cpu_cast(backend *b, void *dst, bk_dtype dst_dt, const void *src, bk_dtype src_dt,
                     int64_t n) {
    CHECK(dst_dt == BK_F32 && src_dt == BK_F32);  // the cpu backend is fp32 only
    cpu_copy(b, dst, src, sizeof(float) * (size_t)n);
}

static void cpu_sync(backend *b) {}

static void cpu_embedding_forward(backend *b, void *out, const int32_t *tokens, const void *wte,
                                  int64_t N, int64_t C, int64_t V) {
    embedding_forward(out, tokens, wte, N, C, V);
}

static void cpu_embedding_backward(backend *b, float *dwte, const void *dout,
                                   const int32_t *tokens, int64_t N, int64_t C, int64_t V) {
    embedding_backward(dwte, dout, tokens, N, C);
}

static void cpu_rmsnorm_forward(backend *b, void *out, float *rstd, const void *inp, const void *w,
                                int64_t N, int64_t C, float eps) {
    rmsnorm_forward(out, rstd, inp, w, N, C, eps);
}

static void cpu_rmsnorm_backward(backend *b, void *dinp, float *dw, const void *dout,
                                 const void *inp, const void *w, const float *rstd, int64_t N,
                                 int64_t C) {
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
}

static void cpu_matmul_forward(backend *b, void *out, const void *inp, const void *w, int64_t N,
                               int64_t C, int64_t OC) {
    matmul_forward(out, inp, w, N, C, OC);
}

static void cpu_matmul_backward(backend *b, void *dinp, float *dw, const void *dout,
                                const void *inp, const void *w, int64_t N, int64_t C,
                                int64_t OC) {
    matmul_backward(dinp, dw, dout, inp, w, N, C, OC);
}

static void cpu_rope_forward(backend *b, void *q, void *k, const int32_t *pos, const uint8_t *win,
                             const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv,
                             int D) {
    rope_forward(q, k, pos, win, t, layout, N, H, Hkv, D);
}

static void cpu_rope_backward(backend *b, void *dq, void *dk, const int32_t *pos,
                              const uint8_t *win, const rope_table *t, rope_layout layout,
                              int64_t N, int H, int Hkv, int D) {
    rope_backward(dq, dk, pos, win, t, layout, N, H, Hkv, D);
}

static void cpu_swiglu_forward(backend *b, void *out, const void *gate, const void *up,
                               int64_t n) {
    swiglu_forward(out, gate, up, n);
}

static void cpu_swiglu_backward(backend *b, void *dgate, void *dup, const void *dout,
                                const void *gate, const void *up, int64_t n) {
    swiglu_backward(dgate, dup, dout, gate, up, n);
}

static void cpu_add_f32(backend *b, float *y, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_add(backend *b, void *yv, const void *xv, int64_t n) {
    float *y = yv;
    const float *x = xv;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_attn_forward(backend *b, void *out, float *lse, const void *q, const void *k,
                             const void *v, const int32_t *seg, const attn_shape *s) {
    attn_forward(out, lse, q, k, v, seg, seg, s);
}

static void cpu_attn_backward(backend *b, void *dq, void *dk, void *dv, const void *dout,
                              const void *q, const void *k, const void *v, const void *out,
                              const float *lse, const int32_t *seg, const attn_shape *s) {
    attn_backward(dq, dk, dv, dout, q, k, v, out, lse, seg, seg, s);
}

static double cpu_xent(backend *b, float *losses, void *dh, float *dw, const void *h,
                       const void *w, const int32_t *targets, int64_t N, int64_t C, int64_t V,
                       float grad_scale) {
    return xent_forward_backward(losses, dh, dh ? dw : NULL, h, w, targets, N, C, V, grad_scale);
}

static void cpu_logits_row(backend *b, float *logits, const void *h, const void *w, int64_t C,
                           int64_t V) {
    xent_logits_row(logits, h, w, C, V);
}

static double cpu_grad_norm_sq(backend *b, const float *g, int64_t n) {
    return adamw_grad_norm_sq(g, n);
}

static void cpu_adamw(backend *b, float *param, float *m, float *v, const float *grad, void *work,
                      const param_tensor *tensors, int n_tensors, const adamw_hparams *hp, int64_t step,
                      float grad_scale) {
    const param_tensor *t = tensors;
    for (int i = 0; i < n_tensors; i++) {
        adamw_hparams h = *hp;
        if (!t[i].decay) h.weight_decay = 0.0f;
        adamw_update(param + t[i].offset, m + t[i].offset, v + t[i].offset, grad + t[i].offset,
                     t[i].shape[0] * t[i].shape[1], &h, step, grad_scale);
    }
    CHECK(work == NULL || work == param);
}

// Offload on the cpu: plain host memory and immediate copies (the model's
// offload path runs on this backend in tests/unit/test_model.c; a run
// refuses parallel.offload on the cpu: there is nothing to move).
static void cpu_copy_async(backend *b, void *dst, const void *src, size_t bytes, int ev) {
    CHECK(ev >= 0 && ev < BK_COPY_EVENTS);
    cpu_copy(b, dst, src, bytes);
}
static void cpu_copy_event(backend *b, int ev) { CHECK(ev >= 0 && ev < BK_COPY_EVENTS); }

static const backend_ops cpu_ops = {
    .alloc = cpu_alloc, .free = cpu_free, .zero = cpu_zero, .to_dev = cpu_copy,
    .to_host = cpu_copy, .cast = cpu_cast, .sync = cpu_sync,
    .embedding_forward = cpu_embedding_forward, .embedding_backward = cpu_embedding_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward, .rmsnorm_backward = cpu_rmsnorm_backward,
    .matmul_forward = cpu_matmul_forward, .matmul_backward = cpu_matmul_backward,
    .rope_forward = cpu_rope_forward, .rope_backward = cpu_rope_backward,
    .swiglu_forward = cpu_swiglu_forward, .swiglu_backward = cpu_swiglu_backward,
    .add = cpu_add, .attn_forward = cpu_attn_forward, .attn_backward = cpu_attn_backward,
    .xent = cpu_xent, .logits_row = cpu_logits_row, .grad_norm_sq = cpu_grad_norm_sq,
    .add_f32 = cpu_add_f32, .adamw = cpu_adamw, .host_alloc = cpu_alloc, .host_free = cpu_free,
    .copy_async = cpu_copy_async, .copy_wait = cpu_copy_event, .copy_sync = cpu_copy_event,
};

backend *backend_cpu(void) {
    static backend cpu = {.kind = BACKEND_CPU, .dt = BK_F32, .host_memory = true, .op = &cpu_ops};
    return &cpu;
}
