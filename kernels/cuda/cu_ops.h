// cu_ops: the CUDA versions of the CPU reference ops (kernels/cpu/*.h), bf16
// or fp32 activations, fp32 accumulation. Shapes, layouts and semantics are
// exactly those of the CPU op of the same name; see cu_common.h for the
// conventions (device pointers, += in backward, scratch passed in, streams).
//
// Tested by tests/ops (ctest ops_check, cuda columns: through the backend,
// and tests/ops/ops_cu_kernels.c for arguments the backend never passes)
// against the CPU reference on random inputs (run only on a GPU machine);
// emulated on the CPU by tests/gpu/emu/run_ops.sh; measured by bench/gpu and
// `ops_check --perf`.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cublas_v2.h>

#include "adamw.h"         // adamw_hparams
#include "cu_common.h"
#include "rope_scaling.h"  // rope_table, rope_layout

CU_EXTERN_C_BEGIN

// ---------------------------------------------------------------------------
// Elementwise helpers
// dst (n) = (dst_dtype) src (n)
void cu_cast(void *dst, cu_dtype dst_dt, const void *src, cu_dtype src_dt, int64_t n,
             cudaStream_t st);
// y (n) += alpha * x (n), y and x in their own dtypes (residual adds, grads).
void cu_axpy(void *y, cu_dtype y_dt, float alpha, const void *x, cu_dtype x_dt, int64_t n,
             cudaStream_t st);

// ---------------------------------------------------------------------------
// RoPE, fused over q and k in ONE launch, in place. The rope_table (about
// 3 KB) is passed by value as a kernel argument: no device copy to manage.
// q: (N, H, D), k: (N, Hkv, D), pos: (N) device int32, win: (N) device
// window flags (kernels/cpu/rope.h), required by a mixed table, else NULL.
void cu_rope_forward(void *q, void *k, const int32_t *pos, const uint8_t *win,
                     const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D,
                     cu_dtype dt, cudaStream_t st);
void cu_rope_backward(void *dq, void *dk, const int32_t *pos, const uint8_t *win,
                      const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D,
                      cu_dtype dt, cudaStream_t st);

// ---------------------------------------------------------------------------
// RMSNorm. out, inp: (N, C) dt; weight: (C) dt; rstd: (N) fp32.
void cu_rmsnorm_forward(void *out, float *rstd, const void *inp, const void *weight,
                        int64_t N, int64_t C, float eps, cu_dtype dt, cudaStream_t st);
// dinp (N, C) dt +=; dweight (C) fp32 += (deterministic two-pass reduction
// through scratch of cu_rmsnorm_scratch_bytes(N, C)).
size_t cu_rmsnorm_scratch_bytes(int64_t N, int64_t C);
void cu_rmsnorm_backward(void *dinp, float *dweight, const void *dout, const void *inp,
                         const void *weight, const float *rstd, int64_t N, int64_t C,
                         void *scratch, cu_dtype dt, cudaStream_t st);

// ---------------------------------------------------------------------------
// SwiGLU: out = silu(gate) * up over n elements; backward += into dgate, dup.
void cu_swiglu_forward(void *out, const void *gate, const void *up, int64_t n, cu_dtype dt,
                       cudaStream_t st);
void cu_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
                        const void *up, int64_t n, cu_dtype dt, cudaStream_t st);

// ---------------------------------------------------------------------------
// Embedding. out: (N, C) dt; tokens: (N) device int32 in [0, V); wte (V, C) dt.
// An out-of-range token is checked on the host before the call (the CPU op
// dies on it); the kernel clamps nothing and must not be given one.
void cu_embedding_forward(void *out, const int32_t *tokens, const void *wte, int64_t N,
                          int64_t C, int64_t V, cu_dtype dt, cudaStream_t st);
// dwte (V, C) fp32 += dout rows, deterministic (no atomics) via scratch of
// cu_embedding_scratch_bytes(N, V) (e.g. a sort of token ids).
size_t cu_embedding_scratch_bytes(int64_t N, int64_t V);
void cu_embedding_backward(float *dwte, const void *dout, const int32_t *tokens, int64_t N,
                           int64_t C, int64_t V, void *scratch, cu_dtype dt,
                           cudaStream_t st);

// ---------------------------------------------------------------------------
// Matmuls through cuBLAS (bf16 or fp32 inputs, fp32 accumulation), weights in
// the nn.Linear layout (OC, C). One handle per stream; cu_blas_create sets its
// workspace and math mode (tensor cores for bf16; fp32 stays true fp32).
typedef struct cu_blas cu_blas;
cu_blas *cu_blas_create(cudaStream_t st);
void cu_blas_free(cu_blas *b);
// The stream the handle enqueues on (ops that take a cu_blas use it too).
cudaStream_t cu_blas_stream(const cu_blas *b);
// out (N, OC) dt = inp (N, C) @ weight (OC, C)^T
void cu_matmul_forward(cu_blas *b, void *out, const void *inp, const void *weight, int64_t N,
                       int64_t C, int64_t OC, cu_dtype dt);
// The same with the output in out_dt (e.g. fp32 logits from bf16 inputs).
void cu_matmul_forward_out(cu_blas *b, void *out, cu_dtype out_dt, const void *inp,
                           const void *weight, int64_t N, int64_t C, int64_t OC, cu_dtype dt);
// dinp (N, C) dt += dout @ weight; dweight (OC, C) fp32 += dout^T @ inp.
// Either output may be NULL.
void cu_matmul_backward(cu_blas *b, void *dinp, float *dweight, const void *dout,
                        const void *inp, const void *weight, int64_t N, int64_t C,
                        int64_t OC, cu_dtype dt);

// ---------------------------------------------------------------------------
// Cross-entropy over the LM head, in chunks of rows so (N, V) logits never
// exist: per chunk, logits = h @ w^T (cuBLAS) into scratch, one fused kernel
// turns them into the per-row loss and, in place, grad_scale * (softmax -
// onehot), then dh += dlogits @ w and dw += dlogits^T @ h (cuBLAS).
// h: (N, C) dt; w: (V, C) dt; targets: (N) device, < 0 = ignored.
// losses (N) fp32 device: each token's loss (0 where ignored), always written.
// dh (N, C) dt += and dw (V, C) fp32 +=; dh == NULL means forward only.
// Returns nothing: the loss sum is read back by the caller from losses (so
// the op never synchronizes).
// The logits are always fp32 (in bf16 mode a logit of 20 would otherwise
// carry an error of 0.06 straight into the loss); in bf16 mode the gradient
// goes to a second, bf16 part of the scratch for the backward GEMMs.
size_t cu_xent_scratch_bytes(int64_t chunk_rows, int64_t V, cu_dtype dt);
void cu_xent_forward_backward(cu_blas *b, float *losses, void *dh, float *dw, const void *h,
                              const void *w, const int32_t *targets, int64_t N, int64_t C,
                              int64_t V, float grad_scale, int64_t chunk_rows,
                              void *scratch, cu_dtype dt);
// The fused kernel alone (exposed for tests): logits (n, V) fp32 in;
// dlogits (n, V) in dt written with grad_scale * (softmax - onehot) (rows
// with target < 0 become 0; dlogits may alias logits when dt is fp32);
// losses (n) fp32 written.
void cu_xent_softmax_grad(void *dlogits, const float *logits, float *losses,
                          const int32_t *targets, int64_t n, int64_t V, float grad_scale,
                          cu_dtype dt, cudaStream_t st);

// ---------------------------------------------------------------------------
// AdamW over the ONE flat fp32 parameter buffer (multi-tensor: one launch for
// all tensors). decay_mask (n_tensors) and offsets (n_tensors + 1, floats)
// on the device describe which tensors get weight decay. param_copy, if not
// NULL, receives the updated parameters in copy_dt (the bf16 working copy).
void cu_adamw_update(float *param, float *m, float *v, const float *grad, void *param_copy,
                     cu_dtype copy_dt, const int64_t *offsets, const uint8_t *decay_mask,
                     int n_tensors, const adamw_hparams *hp, int64_t step, float grad_scale,
                     cudaStream_t st);
// Sum of squares of g (n) into *out (device, one double), deterministic
// two-pass reduction through scratch of cu_grad_norm_scratch_bytes(n).
size_t cu_grad_norm_scratch_bytes(int64_t n);
void cu_grad_norm_sq(double *out, const float *g, int64_t n, void *scratch, cudaStream_t st);

CU_EXTERN_C_END
