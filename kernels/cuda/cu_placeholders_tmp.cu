// cu_placeholders_tmp: TEMPORARY stand-ins for the kernels/cuda ops whose
// .cu implementations live in other branches (cuda-ops: cu_ops.h, cuda-attn:
// cu_attn.h), so that this branch (gpu-train) LINKS with CUDA on a machine
// without those branches. Every function dies "not implemented in this
// branch". Nothing reaches them in a CPU build or CPU tests (they are called
// only through the cuda backend, which needs a GPU).
//
// THE INTEGRATOR DELETES THIS FILE WHEN MERGING gpu-train WITH cuda-ops AND
// cuda-attn (duplicate symbols otherwise).
#include "cu_ops.h"
#include "die.h"

#define NOT_HERE(name) die("%s: not implemented in this branch (cu_placeholders_tmp.cu)", name)

CU_EXTERN_C_BEGIN
void cu_cast(void *dst, cu_dtype dst_dt, const void *src, cu_dtype src_dt, int64_t n, cudaStream_t st)
{
    NOT_HERE("cu_cast");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_axpy(void *y, cu_dtype y_dt, float alpha, const void *x, cu_dtype x_dt, int64_t n, cudaStream_t st)
{
    NOT_HERE("cu_axpy");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_rope_forward(void *q, void *k, const int32_t *pos, const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_rope_forward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_rope_backward(void *dq, void *dk, const int32_t *pos, const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_rope_backward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_rmsnorm_forward(void *out, float *rstd, const void *inp, const void *weight, int64_t N, int64_t C, float eps, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_rmsnorm_forward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
size_t cu_rmsnorm_scratch_bytes(int64_t N, int64_t C)
{
    NOT_HERE("cu_rmsnorm_scratch_bytes");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_rmsnorm_backward(void *dinp, float *dweight, const void *dout, const void *inp, const void *weight, const float *rstd, int64_t N, int64_t C, void *scratch, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_rmsnorm_backward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_swiglu_forward(void *out, const void *gate, const void *up, int64_t n, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_swiglu_forward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int64_t n, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_swiglu_backward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_embedding_forward(void *out, const int32_t *tokens, const void *wte, int64_t N, int64_t C, int64_t V, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_embedding_forward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
size_t cu_embedding_scratch_bytes(int64_t N, int64_t V)
{
    NOT_HERE("cu_embedding_scratch_bytes");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_embedding_backward(float *dwte, const void *dout, const int32_t *tokens, int64_t N, int64_t C, int64_t V, void *scratch, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_embedding_backward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
cu_blas *cu_blas_create(cudaStream_t st)
{
    NOT_HERE("cu_blas_create");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_blas_free(cu_blas *b)
{
    NOT_HERE("cu_blas_free");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_matmul_forward(cu_blas *b, void *out, const void *inp, const void *weight, int64_t N, int64_t C, int64_t OC, cu_dtype dt)
{
    NOT_HERE("cu_matmul_forward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_matmul_backward(cu_blas *b, void *dinp, float *dweight, const void *dout, const void *inp, const void *weight, int64_t N, int64_t C, int64_t OC, cu_dtype dt)
{
    NOT_HERE("cu_matmul_backward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
size_t cu_xent_scratch_bytes(int64_t chunk_rows, int64_t V, cu_dtype dt)
{
    NOT_HERE("cu_xent_scratch_bytes");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_xent_forward_backward(cu_blas *b, float *losses, void *dh, float *dw, const void *h, const void *w, const int32_t *targets, int64_t N, int64_t C, int64_t V, float grad_scale, int64_t chunk_rows, void *scratch, cu_dtype dt)
{
    NOT_HERE("cu_xent_forward_backward");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_xent_softmax_grad(void *logits, float *losses, const int32_t *targets, int64_t n, int64_t V, float grad_scale, cu_dtype dt, cudaStream_t st)
{
    NOT_HERE("cu_xent_softmax_grad");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_adamw_update(float *param, float *m, float *v, const float *grad, void *param_copy, cu_dtype copy_dt, const int64_t *offsets, const uint8_t *decay_mask, int n_tensors, const adamw_hparams *hp, int64_t step, float grad_scale, cudaStream_t st)
{
    NOT_HERE("cu_adamw_update");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
size_t cu_grad_norm_scratch_bytes(int64_t n)
{
    NOT_HERE("cu_grad_norm_scratch_bytes");
}
CU_EXTERN_C_END

CU_EXTERN_C_BEGIN
void cu_grad_norm_sq(double *out, const float *g, int64_t n, void *scratch, cudaStream_t st)
{
    NOT_HERE("cu_grad_norm_sq");
}
CU_EXTERN_C_END
