// cu_internal: device helpers shared by the kernels/cuda/*.cu files (C++
// only, not part of the C API): bf16 <-> float, vector loads/stores of N
// consecutive elements as floats, deterministic block reductions, launch sizes.
#pragma once

#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "cu_common.h"
#include "die.h"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

// One memory access of BYTES bytes.
template <int BYTES> struct raw_vec;
template <> struct raw_vec<16> { typedef uint4 type; };
template <> struct raw_vec<8> { typedef uint2 type; };
template <> struct raw_vec<4> { typedef uint32_t type; };
template <> struct raw_vec<2> { typedef uint16_t type; };

// N consecutive T at p (aligned to min(16, N * sizeof(T)) bytes) as floats,
// in accesses of at most 16 bytes.
template <typename T, int N>
__device__ __forceinline__ void load_vec(const T *p, float *out) {
    constexpr int BYTES = N * (int)sizeof(T);
    constexpr int CHUNK = BYTES < 16 ? BYTES : 16;
    constexpr int PER = CHUNK / (int)sizeof(T);
    typedef typename raw_vec<CHUNK>::type R;
#pragma unroll
    for (int c = 0; c < N / PER; c++) {
        R r = reinterpret_cast<const R *>(p)[c];
        const T *e = reinterpret_cast<const T *>(&r);
#pragma unroll
        for (int i = 0; i < PER; i++) out[c * PER + i] = to_f(e[i]);
    }
}

template <typename T, int N>
__device__ __forceinline__ void store_vec(T *p, const float *in) {
    constexpr int BYTES = N * (int)sizeof(T);
    constexpr int CHUNK = BYTES < 16 ? BYTES : 16;
    constexpr int PER = CHUNK / (int)sizeof(T);
    typedef typename raw_vec<CHUNK>::type R;
#pragma unroll
    for (int c = 0; c < N / PER; c++) {
        R r;
        T *e = reinterpret_cast<T *>(&r);
#pragma unroll
        for (int i = 0; i < PER; i++) e[i] = from_f<T>(in[c * PER + i]);
        reinterpret_cast<R *>(p)[c] = r;
    }
}

// Reductions in a fixed tree (shuffle xor, then warp results in order):
// the same inputs give the same bits on every run. blockDim.x must be a
// multiple of 32 (at most 1024); every thread gets the result.
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ double warp_sum(double x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

template <typename F>
__device__ __forceinline__ F block_sum(F x) {
    __shared__ F part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads();  // part may still be read by a previous call
    if (lane == 0) part[warp] = x;
    __syncthreads();
    x = lane < nw ? part[lane] : (F)0;
    return warp_sum(x);
}

__device__ __forceinline__ float block_max(float x) {
    __shared__ float part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) part[warp] = x;
    __syncthreads();
    x = lane < nw ? part[lane] : -INFINITY;
    return warp_max(x);
}

// Host side.
static inline bool cu_aligned(const void *p, size_t bytes) {
    return ((uintptr_t)p % bytes) == 0;
}
static inline unsigned cu_blocks(int64_t work, int per_block) {
    int64_t b = (work + per_block - 1) / per_block;
    CHECK(b <= 0x7fffffff);
    return (unsigned)(b > 0 ? b : 1);
}
