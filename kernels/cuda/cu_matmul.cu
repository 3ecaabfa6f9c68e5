// cu_matmul: nn.Linear forward/backward through cublasGemmEx, row-major
// tensors mapped onto column-major cuBLAS by transposing the whole product:
//   out (N, OC)  = inp @ W^T   ->  out^T  = op_T(W) @ inp^T     (m OC, n N,  k C)
//   dinp (N, C) += dout @ W    ->  dinp^T = W^T @ dout^T        (m C,  n N,  k OC)
//   dW (OC, C)  += dout^T @ inp ->  dW^T  = inp^T @ op_T(dout^T) (m C, n OC, k N)
// Compute type CUBLAS_COMPUTE_32F always: bf16 inputs run on tensor cores
// with fp32 accumulation, fp32 inputs stay true fp32 (no TF32). dW is fp32
// with beta = 1 (the += of the CPU op), whatever the input dtype.
#include <cublas_v2.h>
#include <string.h>

#include "cu_internal.cuh"
#include "cu_ops.h"

#define BLAS_WORKSPACE (32u << 20)  // cuBLAS's recommendation for Hopper

struct cu_blas {
    cublasHandle_t handle;
    cudaStream_t stream;
    void *workspace;
};

#define BLAS_CHECK(expr)                                                                  \
    do {                                                                                  \
        cublasStatus_t s_ = (expr);                                                       \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                  \
            die("cuBLAS error at %s:%d: %s: %s", __FILE__, __LINE__, #expr,               \
                cublasGetStatusString(s_));                                               \
    } while (0)

cu_blas *cu_blas_create(cudaStream_t st) {
    cu_blas *b = (cu_blas *)xcalloc(1, sizeof *b);
    b->stream = st;
    BLAS_CHECK(cublasCreate(&b->handle));
    BLAS_CHECK(cublasSetStream(b->handle, st));
    CU_CHECK(cudaMalloc(&b->workspace, BLAS_WORKSPACE));
    BLAS_CHECK(cublasSetWorkspace(b->handle, b->workspace, BLAS_WORKSPACE));
    BLAS_CHECK(cublasSetMathMode(b->handle, CUBLAS_DEFAULT_MATH));
    return b;
}

void cu_blas_free(cu_blas *b) {
    if (!b) return;
    BLAS_CHECK(cublasDestroy(b->handle));
    CU_CHECK(cudaFree(b->workspace));
    free(b);
}

cudaStream_t cu_blas_stream(const cu_blas *b) { return b->stream; }

static int blas_int(int64_t x) {
    CHECK(x >= 0 && x <= 0x7fffffff);
    return (int)x;
}

static cudaDataType_t cuda_type(cu_dtype dt) { return dt == CU_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

void cu_matmul_forward_out(cu_blas *b, void *out, cu_dtype out_dt, const void *inp,
                           const void *weight, int64_t N, int64_t C, int64_t OC, cu_dtype dt) {
    if (N <= 0 || OC <= 0) return;
    if (C <= 0) {  // an empty sum
        CU_CHECK(cudaMemsetAsync(out, 0, (size_t)(N * OC) * cu_dtype_size(out_dt), b->stream));
        return;
    }
    const float alpha = 1.0f, beta = 0.0f;
    const cudaDataType_t t = cuda_type(dt);
    BLAS_CHECK(cublasGemmEx(b->handle, CUBLAS_OP_T, CUBLAS_OP_N, blas_int(OC), blas_int(N),
                            blas_int(C), &alpha, weight, t, blas_int(C), inp, t, blas_int(C),
                            &beta, out, cuda_type(out_dt), blas_int(OC), CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

void cu_matmul_forward(cu_blas *b, void *out, const void *inp, const void *weight, int64_t N,
                       int64_t C, int64_t OC, cu_dtype dt) {
    cu_matmul_forward_out(b, out, dt, inp, weight, N, C, OC, dt);
}

void cu_matmul_backward(cu_blas *b, void *dinp, float *dweight, const void *dout,
                        const void *inp, const void *weight, int64_t N, int64_t C, int64_t OC,
                        cu_dtype dt) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    const float alpha = 1.0f, beta = 1.0f;
    const cudaDataType_t t = cuda_type(dt);
    if (dinp)
        BLAS_CHECK(cublasGemmEx(b->handle, CUBLAS_OP_N, CUBLAS_OP_N, blas_int(C), blas_int(N),
                                blas_int(OC), &alpha, weight, t, blas_int(C), dout, t,
                                blas_int(OC), &beta, dinp, t, blas_int(C), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
    if (dweight)
        BLAS_CHECK(cublasGemmEx(b->handle, CUBLAS_OP_N, CUBLAS_OP_T, blas_int(C), blas_int(OC),
                                blas_int(N), &alpha, inp, t, blas_int(C), dout, t,
                                blas_int(OC), &beta, dweight, CUDA_R_32F, blas_int(C),
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
