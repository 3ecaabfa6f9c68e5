// cu_attn_f32: the fp32 attention path on CUDA cores (the 1e-4 agreement
// mode), and small shape helpers the attention .cu files share. Internal to
// kernels/cuda/cu_attn_*.cu; the public entry points are in cu_attn.h.
#pragma once

#include "cu_attn.h"

CU_EXTERN_C_BEGIN

// Dies unless cu_attn_supported(s).
void cu_attn_check_shape(const attn_shape *s);
// True when the (query block, key block) pair has nothing visible.
bool cu_attn_block_masked(const attn_shape *s);
// The most dynamic shared memory the bf16 backward kernels take for head dim
// D on the current device (the dQ tile follows cu_attn_smem_limit).
int cu_attn_bwd_smem_bytes(int D);
// *d, or all NULL for NULL / no ids (what the kernels take by value).
cu_attn_docs cu_attn_docs_of(const cu_attn_docs *d);

// merge: (out, lse) is a running fp32 result merged into by log-sum-exp
// (cu_attn_block_forward); otherwise it is written (cu_attn_forward).
void cu_attn_f32_forward(float *out, float *lse, bool merge, const float *q, const float *k,
                         const float *v, cu_attn_docs docs, const attn_shape *s, cudaStream_t st);
// cu_attn_block_backward for fp32 inputs.
void cu_attn_f32_block_backward(float *dq, float *dk, float *dv, const float *dout,
                                const float *q, const float *k, const float *v, const float *lse,
                                const float *delta, cu_attn_docs docs, const attn_shape *s,
                                cudaStream_t st);

CU_EXTERN_C_END
