// cu_adamw: AdamW over the ONE flat fp32 parameter buffer in one launch, and
// the squared gradient norm.
//
// AdamW: a grid-stride loop over 4-float groups (16-byte accesses when all
// buffers are aligned); the tensor of each element, for its decay flag, comes
// from a binary search of the device offsets (a few hundred entries, cached).
// The total length is offsets[n_tensors], read on the device, so the host
// never synchronizes. Per-element arithmetic is the CPU op's, in float, to
// the bit (adam_one).
//
// Norm: G blocks (G from n only) each sum squares in double into scratch,
// then one block sums the G partials in a fixed tree: deterministic.
#include "cu_internal.cuh"
#include "cu_ops.h"

#define ADAM_THREADS 256
#define NORM_THREADS 256
#define NORM_MAX_BLOCKS 1024

struct adam_args {
    float lr, b1, b2, eps, decay, bc1, bc2, grad_scale;
};

// The last tensor t with offsets[t] <= i.
__device__ __forceinline__ int tensor_of(const int64_t *offsets, int n_tensors, int64_t i) {
    int lo = 0, hi = n_tensors - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (offsets[mid] <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// The CPU op's expression (kernels/cpu/adamw.c) rounding for rounding: the
// _rn intrinsics keep nvcc from contracting a multiply and an add into one
// FMA (the host compiler, in ISO C mode, does not contract), so the host
// AdamW of parallel.offload optimizer gives these very bits. Division and
// sqrtf are IEEE (no --use_fast_math).
__device__ __forceinline__ float adam_one(float *p, float *m, float *v, float g, float decay,
                                          const adam_args &a) {
    g = __fmul_rn(g, a.grad_scale);
    const float mi = __fadd_rn(__fmul_rn(a.b1, *m), __fmul_rn(1.0f - a.b1, g));
    const float vi = __fadd_rn(__fmul_rn(a.b2, *v), __fmul_rn(__fmul_rn(1.0f - a.b2, g), g));
    *m = mi;
    *v = vi;
    const float mhat = mi / a.bc1, vhat = vi / a.bc2;
    *p = __fsub_rn(__fmul_rn(*p, decay), __fmul_rn(a.lr, mhat) / __fadd_rn(sqrtf(vhat), a.eps));
    return *p;
}

template <typename C, int V>
__global__ void adamw_kernel(float *param, float *m, float *v, const float *grad, C *copy,
                             const int64_t *offsets, const uint8_t *decay_mask, int n_tensors,
                             adam_args a) {
    const int64_t n = offsets[n_tensors];
    const int64_t stride = (int64_t)gridDim.x * blockDim.x * V;
    for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V; i < n; i += stride) {
        int t = tensor_of(offsets, n_tensors, i);
        const int cnt = n - i < V ? (int)(n - i) : V;
        float pv[V], mv[V], vv[V], gv[V];
        if (cnt == V) {
            load_vec<float, V>(param + i, pv);
            load_vec<float, V>(m + i, mv);
            load_vec<float, V>(v + i, vv);
            load_vec<float, V>(grad + i, gv);
        } else {
            for (int e = 0; e < cnt; e++) {
                pv[e] = param[i + e]; mv[e] = m[i + e]; vv[e] = v[i + e]; gv[e] = grad[i + e];
            }
        }
#pragma unroll
        for (int e = 0; e < V; e++) {
            if (e >= cnt) break;
            while (t + 1 < n_tensors && i + e >= offsets[t + 1]) t++;
            adam_one(&pv[e], &mv[e], &vv[e], gv[e], decay_mask[t] ? a.decay : 1.0f, a);
        }
        if (cnt == V) {
            store_vec<float, V>(param + i, pv);
            store_vec<float, V>(m + i, mv);
            store_vec<float, V>(v + i, vv);
            if (copy) store_vec<C, V>(copy + i, pv);
        } else {
            for (int e = 0; e < cnt; e++) {
                param[i + e] = pv[e]; m[i + e] = mv[e]; v[i + e] = vv[e];
                if (copy) copy[i + e] = from_f<C>(pv[e]);
            }
        }
    }
}

template <typename C>
static void adamw_launch(float *param, float *m, float *v, const float *grad, void *copy,
                         const int64_t *offsets, const uint8_t *mask, int n_tensors,
                         const adam_args &a, cudaStream_t st) {
    int dev = 0, sms = 0;
    CU_CHECK(cudaGetDevice(&dev));
    CU_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const unsigned grid = (unsigned)(sms > 0 ? sms * 8 : 1024);
    const bool vec = cu_aligned(param, 16) && cu_aligned(m, 16) && cu_aligned(v, 16) &&
                     cu_aligned(grad, 16) && (!copy || cu_aligned(copy, 4 * sizeof(C)));
    if (vec)
        adamw_kernel<C, 4><<<grid, ADAM_THREADS, 0, st>>>(param, m, v, grad, (C *)copy, offsets,
                                                         mask, n_tensors, a);
    else
        adamw_kernel<C, 1><<<grid, ADAM_THREADS, 0, st>>>(param, m, v, grad, (C *)copy, offsets,
                                                         mask, n_tensors, a);
    CU_CHECK_LAUNCH();
}

void cu_adamw_update(float *param, float *m, float *v, const float *grad, void *param_copy,
                     cu_dtype copy_dt, const int64_t *offsets, const uint8_t *decay_mask,
                     int n_tensors, const adamw_hparams *hp, int64_t step, float grad_scale,
                     cudaStream_t st) {
    CHECK(step >= 1 && n_tensors >= 0);
    if (n_tensors == 0) return;
    adam_args a;  // host-side constants exactly as the CPU op computes them
    a.lr = hp->lr;
    a.b1 = hp->beta1;
    a.b2 = hp->beta2;
    a.eps = hp->eps;
    a.decay = 1.0f - hp->lr * hp->weight_decay;
    a.bc1 = (float)(1.0 - pow((double)hp->beta1, (double)step));
    a.bc2 = (float)(1.0 - pow((double)hp->beta2, (double)step));
    a.grad_scale = grad_scale;
    if (copy_dt == CU_BF16 || !param_copy)
        adamw_launch<bf16>(param, m, v, grad, param_copy, offsets, decay_mask, n_tensors, a, st);
    else
        adamw_launch<float>(param, m, v, grad, param_copy, offsets, decay_mask, n_tensors, a, st);
}

static int64_t norm_blocks(int64_t n) {
    int64_t b = (n + NORM_THREADS * 16 - 1) / (NORM_THREADS * 16);
    return b < 1 ? 1 : (b > NORM_MAX_BLOCKS ? NORM_MAX_BLOCKS : b);
}

template <int V>
__global__ void sumsq_partial_kernel(double *partial, const float *g, int64_t n) {
    double s = 0.0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x * V;
    for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V; i < n; i += stride) {
        if (i + V <= n) {
            float x[V];
            load_vec<float, V>(g + i, x);
#pragma unroll
            for (int e = 0; e < V; e++) s += (double)x[e] * x[e];
        } else {
            for (int64_t j = i; j < n; j++) s += (double)g[j] * g[j];
        }
    }
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sumsq_final_kernel(double *out, const double *partial, int64_t nb) {
    double s = 0.0;
    for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) s += partial[b];
    s = block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

size_t cu_grad_norm_scratch_bytes(int64_t n) { return (size_t)norm_blocks(n) * sizeof(double); }

void cu_grad_norm_sq(double *out, const float *g, int64_t n, void *scratch, cudaStream_t st) {
    CHECK(n >= 0);
    const int64_t nb = norm_blocks(n);
    double *partial = (double *)scratch;
    if (cu_aligned(g, 16))
        sumsq_partial_kernel<4><<<(unsigned)nb, NORM_THREADS, 0, st>>>(partial, g, n);
    else
        sumsq_partial_kernel<1><<<(unsigned)nb, NORM_THREADS, 0, st>>>(partial, g, n);
    CU_CHECK_LAUNCH();
    sumsq_final_kernel<<<1, NORM_MAX_BLOCKS, 0, st>>>(out, partial, nb);
    CU_CHECK_LAUNCH();
}
