// attn_shim: a C ABI over cu_attn.h for Python (ctypes), built as
// libstretch_attn_shim.so when CUDA is built. Raw device pointers (torch's
// tensor.data_ptr()) in the stretch layouts: q, out, dout (B, T, H, D),
// k, v (B, T, Hkv, D), lse, delta (B, H, T) fp32, dq, dk, dv fp32 (+=).
// stream: a cudaStream_t as an integer (torch.cuda.current_stream().cuda_stream).
// Whole causal-or-not self-attention, scale 1/sqrt(D), no segment ids.
// Returns 0, or -1 for a shape the kernels do not support.
#include <math.h>
#include <stdint.h>

#include "cu_attn.h"

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
    cu_attn_backward(dq, dk, dv, dout, q, k, v, out, lse, delta, NULL, &s,
                     bf16 ? CU_BF16 : CU_F32, (cudaStream_t)stream);
    return 0;
}
