// cu_elementwise: cast and axpy over n elements, any mix of fp32 and bf16.
// Each thread handles 8 consecutive elements (16-byte accesses for bf16, two
// for fp32) when every pointer is 16-byte aligned; otherwise one element.
#include "cu_internal.cuh"
#include "cu_ops.h"

#define EW_THREADS 256

template <typename D, typename S, int V>
__global__ void cast_kernel(D *dst, const S *src, int64_t n) {
    int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i + V <= n) {
        float v[V];
        load_vec<S, V>(src + i, v);
        store_vec<D, V>(dst + i, v);
    } else {
        for (; i < n; i++) dst[i] = from_f<D>(to_f(src[i]));
    }
}

template <typename Y, typename X, int V>
__global__ void axpy_kernel(Y *y, float alpha, const X *x, int64_t n) {
    int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i + V <= n) {
        float a[V], b[V];
        load_vec<Y, V>(y + i, a);
        load_vec<X, V>(x + i, b);
#pragma unroll
        for (int j = 0; j < V; j++) a[j] += alpha * b[j];
        store_vec<Y, V>(y + i, a);
    } else {
        for (; i < n; i++) y[i] = from_f<Y>(to_f(y[i]) + alpha * to_f(x[i]));
    }
}

template <typename D, typename S>
static void cast_launch(void *dst, const void *src, int64_t n, cudaStream_t st) {
    if (cu_aligned(dst, 16) && cu_aligned(src, 16))
        cast_kernel<D, S, 8><<<cu_blocks(n, EW_THREADS * 8), EW_THREADS, 0, st>>>(
            (D *)dst, (const S *)src, n);
    else
        cast_kernel<D, S, 1><<<cu_blocks(n, EW_THREADS), EW_THREADS, 0, st>>>(
            (D *)dst, (const S *)src, n);
    CU_CHECK_LAUNCH();
}

template <typename Y, typename X>
static void axpy_launch(void *y, float alpha, const void *x, int64_t n, cudaStream_t st) {
    if (cu_aligned(y, 16) && cu_aligned(x, 16))
        axpy_kernel<Y, X, 8><<<cu_blocks(n, EW_THREADS * 8), EW_THREADS, 0, st>>>(
            (Y *)y, alpha, (const X *)x, n);
    else
        axpy_kernel<Y, X, 1><<<cu_blocks(n, EW_THREADS), EW_THREADS, 0, st>>>(
            (Y *)y, alpha, (const X *)x, n);
    CU_CHECK_LAUNCH();
}

void cu_cast(void *dst, cu_dtype dst_dt, const void *src, cu_dtype src_dt, int64_t n,
             cudaStream_t st) {
    if (n <= 0) return;
    if (dst_dt == src_dt) {
        CU_CHECK(cudaMemcpyAsync(dst, src, (size_t)n * cu_dtype_size(dst_dt),
                                 cudaMemcpyDeviceToDevice, st));
    } else if (dst_dt == CU_BF16) {
        cast_launch<bf16, float>(dst, src, n, st);
    } else {
        cast_launch<float, bf16>(dst, src, n, st);
    }
}

void cu_axpy(void *y, cu_dtype y_dt, float alpha, const void *x, cu_dtype x_dt, int64_t n,
             cudaStream_t st) {
    if (n <= 0) return;
    if (y_dt == CU_F32 && x_dt == CU_F32) axpy_launch<float, float>(y, alpha, x, n, st);
    else if (y_dt == CU_F32) axpy_launch<float, bf16>(y, alpha, x, n, st);
    else if (x_dt == CU_F32) axpy_launch<bf16, float>(y, alpha, x, n, st);
    else axpy_launch<bf16, bf16>(y, alpha, x, n, st);
}
