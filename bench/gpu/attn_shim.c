// attn_shim: a C ABI over cu_attn.h for Python (ctypes), built as
// libstretch_attn_shim.so when CUDA is built. Raw device pointers (torch's
// tensor.data_ptr()) in the stretch layouts: q, out, dout (B, T, H, D),
// k, v (B, T, Hkv, D), lse, delta (B, H, T) fp32, dq, dk, dv fp32 (+=).
// stream: a cudaStream_t as an integer (torch.cuda.current_stream().cuda_stream).
// Whole causal-or-not self-attention, scale 1/sqrt(D); with segment ids and
// the ring block form below.
// The backward here adds into fp32 gradients (the block form's output: the
// whole bf16 backward of cu_attn.h writes bf16 gradients, which would change
// this ABI); the dQ order counters live in a buffer of the shim.
// Returns 0, or -1 for a shape the kernels do not support.
#include <math.h>
#include <stdint.h>

#include "cu_attn.h"

// The dq_sem scratch of shape s (grown, never shrunk; freed with the process).
static int32_t *dq_sem_for(const attn_shape *s) {
    static int32_t *buf;
    static int64_t cap;
    const int64_t n = cu_attn_dq_sem_ints(s);
    if (n > cap) {
        CU_CHECK(cudaDeviceSynchronize());  // nothing enqueued may still use the old one
        if (buf) CU_CHECK(cudaFree(buf));
        CU_CHECK(cudaMalloc((void **)&buf, sizeof(int32_t) * (size_t)n));
        cap = n;
    }
    return buf;
}

// Whole backward into fp32 gradients: delta, then the block backward of the
// whole shape (what cu_attn_backward does, but +=, fp32).
static void bwd_f32_grads(float *dq, float *dk, float *dv, const void *dout, const void *q,
                          const void *k, const void *v, const void *out, const float *lse,
                          float *delta, const cu_attn_docs *d, const attn_shape *s, cu_dtype dt,
                          cudaStream_t st) {
    cu_attn_backward_delta(delta, dout, out, s->B, s->Tq, s->H, s->D, dt, st);
    cu_attn_block_backward(dq, dk, dv, dout, q, k, v, lse, delta, dq_sem_for(s), d, s, dt, st);
}

static attn_shape shape(int64_t B, int64_t T, int H, int Hkv, int D, int causal) {
    attn_shape s = {.B = B, .Tq = T, .Tk = T, .H = H, .Hkv = Hkv, .D = D, .q_start = 0,
                    .k_start = 0, .scale = 1.0f / sqrtf((float)D), .causal = causal != 0};
    return s;
}

int stretch_attn_fwd(void *out, float *lse, const void *q, const void *k, const void *v,
                     int64_t B, int64_t T, int H, int Hkv, int D, int causal, int bf16,
                     void *stream) {
    attn_shape s = shape(B, T, H, Hkv, D, causal);
    if (!cu_attn_supported(&s)) return -1;
    cu_attn_forward(out, lse, q, k, v, NULL, &s, bf16 ? CU_BF16 : CU_F32,
                    (cudaStream_t)stream);
    return 0;
}

int stretch_attn_bwd(float *dq, float *dk, float *dv, const void *dout, const void *q,
                     const void *k, const void *v, const void *out, const float *lse,
                     float *delta, int64_t B, int64_t T, int H, int Hkv, int D, int causal,
                     int bf16, void *stream) {
    attn_shape s = shape(B, T, H, Hkv, D, causal);
    if (!cu_attn_supported(&s)) return -1;
    bwd_f32_grads(dq, dk, dv, dout, q, k, v, out, lse, delta, NULL, &s, bf16 ? CU_BF16 : CU_F32,
                  (cudaStream_t)stream);
    return 0;
}

// Packed documents and the ring block form. seg_q (B, Tq), seg_k (B, Tk)
// int32 device or NULL; bounds: device int32 scratch of
// stretch_attn_docs_ints(B, Tq, Tk) elements, rebuilt by every call that
// takes ids (cheap: one small kernel).
int64_t stretch_attn_docs_ints(int64_t B, int64_t Tq, int64_t Tk) {
    return cu_attn_docs_ints(B, Tq, Tk);
}

static const cu_attn_docs *docs_of(cu_attn_docs *d, const int32_t *seg_q, const int32_t *seg_k,
                                   int32_t *bounds, int64_t B, int64_t Tq, int64_t Tk,
                                   cudaStream_t st) {
    if (!seg_q) return NULL;
    *d = (cu_attn_docs){.seg_q = seg_q, .seg_k = seg_k, .bounds = bounds};
    cu_attn_docs_build(d, B, Tq, Tk, st);
    return d;
}

// Whole attention with segment ids: forward, then backward (+= dq, dk, dv).
int stretch_attn_fwd_seg(void *out, float *lse, const void *q, const void *k, const void *v,
                         const int32_t *seg, int32_t *bounds, int64_t B, int64_t T, int H,
                         int Hkv, int D, int causal, int bf16, void *stream) {
    attn_shape s = shape(B, T, H, Hkv, D, causal);
    if (!cu_attn_supported(&s)) return -1;
    cu_attn_docs d;
    cu_attn_forward(out, lse, q, k, v, docs_of(&d, seg, seg, bounds, B, T, T, stream), &s,
                    bf16 ? CU_BF16 : CU_F32, (cudaStream_t)stream);
    return 0;
}

int stretch_attn_bwd_seg(float *dq, float *dk, float *dv, const void *dout, const void *q,
                         const void *k, const void *v, const void *out, const float *lse,
                         float *delta, const int32_t *seg, int32_t *bounds, int64_t B, int64_t T,
                         int H, int Hkv, int D, int causal, int bf16, void *stream) {
    attn_shape s = shape(B, T, H, Hkv, D, causal);
    if (!cu_attn_supported(&s)) return -1;
    cu_attn_docs d;
    bwd_f32_grads(dq, dk, dv, dout, q, k, v, out, lse, delta,
                  docs_of(&d, seg, seg, bounds, B, T, T, stream), &s, bf16 ? CU_BF16 : CU_F32,
                  (cudaStream_t)stream);
    return 0;
}

// One key block (k, v: (B, Tk, Hkv, D), global offset k_start) merged into
// the running fp32 (out_acc, lse_acc) of the queries (offset q_start), and
// its backward given the final lse and delta (stretch_attn_delta).
int stretch_attn_block_fwd(float *out_acc, float *lse_acc, const void *q, const void *k,
                           const void *v, const int32_t *seg_q, const int32_t *seg_k,
                           int32_t *bounds, int64_t B, int64_t Tq, int64_t Tk, int H, int Hkv,
                           int D, int64_t q_start, int64_t k_start, int causal, int bf16,
                           void *stream) {
    attn_shape s = {.B = B, .Tq = Tq, .Tk = Tk, .H = H, .Hkv = Hkv, .D = D, .q_start = q_start,
                    .k_start = k_start, .scale = 1.0f / sqrtf((float)D), .causal = causal != 0};
    if (!cu_attn_supported(&s)) return -1;
    cu_attn_docs d;
    cu_attn_block_forward(out_acc, lse_acc, q, k, v,
                          docs_of(&d, seg_q, seg_k, bounds, B, Tq, Tk, stream), &s,
                          bf16 ? CU_BF16 : CU_F32, (cudaStream_t)stream);
    return 0;
}

int stretch_attn_block_bwd(float *dq, float *dk, float *dv, const void *dout, const void *q,
                           const void *k, const void *v, const float *lse, const float *delta,
                           const int32_t *seg_q, const int32_t *seg_k, int32_t *bounds, int64_t B,
                           int64_t Tq, int64_t Tk, int H, int Hkv, int D, int64_t q_start,
                           int64_t k_start, int causal, int bf16, void *stream) {
    attn_shape s = {.B = B, .Tq = Tq, .Tk = Tk, .H = H, .Hkv = Hkv, .D = D, .q_start = q_start,
                    .k_start = k_start, .scale = 1.0f / sqrtf((float)D), .causal = causal != 0};
    if (!cu_attn_supported(&s)) return -1;
    cu_attn_docs d;
    cu_attn_block_backward(dq, dk, dv, dout, q, k, v, lse, delta, dq_sem_for(&s),
                           docs_of(&d, seg_q, seg_k, bounds, B, Tq, Tk, stream), &s,
                           bf16 ? CU_BF16 : CU_F32, (cudaStream_t)stream);
    return 0;
}

void stretch_attn_delta(float *delta, const void *dout, const void *out, int64_t B, int64_t T,
                        int H, int D, int bf16, void *stream) {
    cu_attn_backward_delta(delta, dout, out, B, T, H, D, bf16 ? CU_BF16 : CU_F32,
                           (cudaStream_t)stream);
}
