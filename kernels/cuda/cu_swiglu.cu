// cu_swiglu: out = silu(gate) * up and its backward (+=), elementwise over n.
// 8 elements per thread (16-byte bf16 accesses) when all pointers are
// 16-byte aligned, else 1. Sigmoid as on the CPU (no overflow of e^-x).
#include "cu_internal.cuh"
#include "cu_ops.h"

#define SW_THREADS 256

__device__ __forceinline__ float sigmoidf_(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

template <typename T, int V>
__global__ void swiglu_fwd_kernel(T *out, const T *gate, const T *up, int64_t n) {
    int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i + V <= n) {
        float g[V], u[V], o[V];
        load_vec<T, V>(gate + i, g);
        load_vec<T, V>(up + i, u);
#pragma unroll
        for (int j = 0; j < V; j++) o[j] = g[j] * sigmoidf_(g[j]) * u[j];
        store_vec<T, V>(out + i, o);
    } else {
        for (; i < n; i++) {
            float g = to_f(gate[i]);
            out[i] = from_f<T>(g * sigmoidf_(g) * to_f(up[i]));
        }
    }
}

// d silu(g)/dg = s + g s (1 - s), s = sigmoid(g).
__device__ __forceinline__ void swiglu_grad(float g, float u, float dy, float *dg, float *du) {
    float s = sigmoidf_(g);
    *dg += dy * u * (s + g * s * (1.0f - s));
    *du += dy * g * s;
}

template <typename T, int V>
__global__ void swiglu_bwd_kernel(T *dgate, T *dup, const T *dout, const T *gate, const T *up,
                                  int64_t n) {
    int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i + V <= n) {
        float g[V], u[V], dy[V], dg[V], du[V];
        load_vec<T, V>(gate + i, g);
        load_vec<T, V>(up + i, u);
        load_vec<T, V>(dout + i, dy);
        load_vec<T, V>(dgate + i, dg);
        load_vec<T, V>(dup + i, du);
#pragma unroll
        for (int j = 0; j < V; j++) swiglu_grad(g[j], u[j], dy[j], &dg[j], &du[j]);
        store_vec<T, V>(dgate + i, dg);
        store_vec<T, V>(dup + i, du);
    } else {
        for (; i < n; i++) {
            float dg = to_f(dgate[i]), du = to_f(dup[i]);
            swiglu_grad(to_f(gate[i]), to_f(up[i]), to_f(dout[i]), &dg, &du);
            dgate[i] = from_f<T>(dg);
            dup[i] = from_f<T>(du);
        }
    }
}

template <typename T>
static void swiglu_fwd(void *out, const void *gate, const void *up, int64_t n, cudaStream_t st) {
    if (cu_aligned(out, 16) && cu_aligned(gate, 16) && cu_aligned(up, 16))
        swiglu_fwd_kernel<T, 8><<<cu_blocks(n, SW_THREADS * 8), SW_THREADS, 0, st>>>(
            (T *)out, (const T *)gate, (const T *)up, n);
    else
        swiglu_fwd_kernel<T, 1><<<cu_blocks(n, SW_THREADS), SW_THREADS, 0, st>>>(
            (T *)out, (const T *)gate, (const T *)up, n);
    CU_CHECK_LAUNCH();
}

template <typename T>
static void swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate,
                       const void *up, int64_t n, cudaStream_t st) {
    if (cu_aligned(dgate, 16) && cu_aligned(dup, 16) && cu_aligned(dout, 16) &&
        cu_aligned(gate, 16) && cu_aligned(up, 16))
        swiglu_bwd_kernel<T, 8><<<cu_blocks(n, SW_THREADS * 8), SW_THREADS, 0, st>>>(
            (T *)dgate, (T *)dup, (const T *)dout, (const T *)gate, (const T *)up, n);
    else
        swiglu_bwd_kernel<T, 1><<<cu_blocks(n, SW_THREADS), SW_THREADS, 0, st>>>(
            (T *)dgate, (T *)dup, (const T *)dout, (const T *)gate, (const T *)up, n);
    CU_CHECK_LAUNCH();
}

void cu_swiglu_forward(void *out, const void *gate, const void *up, int64_t n, cu_dtype dt,
                       cudaStream_t st) {
    if (n <= 0) return;
    if (dt == CU_BF16) swiglu_fwd<bf16>(out, gate, up, n, st);
    else swiglu_fwd<float>(out, gate, up, n, st);
}

void cu_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
                        const void *up, int64_t n, cu_dtype dt, cudaStream_t st) {
    if (n <= 0) return;
    if (dt == CU_BF16) swiglu_bwd<bf16>(dgate, dup, dout, gate, up, n, st);
    else swiglu_bwd<float>(dgate, dup, dout, gate, up, n, st);
}
