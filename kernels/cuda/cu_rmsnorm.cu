// cu_rmsnorm: Llama RMSNorm forward and backward.
// Forward and dinp: one block per row (rows are short, 576..8192), 8
// elements per access when C % 8 == 0 and the pointers are 16-byte aligned.
// dweight: deterministic two passes: G row groups (G from N only) each sum
// their rows per column into scratch (G, C) fp32, then one pass adds the G
// partials to dweight in group order.
#include "cu_internal.cuh"
#include "cu_ops.h"

#define DW_COLS 32  // columns per dweight block (one warp wide)
#define DW_ROWS 8   // warps per dweight block
#define DW_MAX_GROUPS 256

static int64_t dw_groups(int64_t N) {
    int64_t g = (N + 127) / 128;
    return g < 1 ? 1 : (g > DW_MAX_GROUPS ? DW_MAX_GROUPS : g);
}

template <typename T, int V>
__global__ void rmsnorm_fwd_kernel(T *out, float *rstd, const T *inp, const T *weight, int64_t C,
                                   float eps) {
    const int64_t n = blockIdx.x;
    const T *x = inp + n * C;
    T *y = out + n * C;
    float ss = 0.0f;
    for (int64_t c = (int64_t)threadIdx.x * V; c < C; c += (int64_t)blockDim.x * V) {
        float v[V];
        load_vec<T, V>(x + c, v);
#pragma unroll
        for (int e = 0; e < V; e++) ss += v[e] * v[e];
    }
    ss = block_sum(ss);
    const float r = (float)(1.0 / sqrt((double)ss / (double)C + (double)eps));
    for (int64_t c = (int64_t)threadIdx.x * V; c < C; c += (int64_t)blockDim.x * V) {
        float v[V], w[V];
        load_vec<T, V>(x + c, v);
        load_vec<T, V>(weight + c, w);
#pragma unroll
        for (int e = 0; e < V; e++) v[e] = w[e] * (v[e] * r);
        store_vec<T, V>(y + c, v);
    }
    if (threadIdx.x == 0) rstd[n] = r;
}

// dx_i += r w_i dy_i - x_i r^3 / C * sum_j w_j dy_j x_j
template <typename T, int V>
__global__ void rmsnorm_bwd_dx_kernel(T *dinp, const T *dout, const T *inp, const T *weight,
                                      const float *rstd, int64_t C) {
    const int64_t n = blockIdx.x;
    const T *x = inp + n * C, *dy = dout + n * C;
    T *dx = dinp + n * C;
    float dot = 0.0f;
    for (int64_t c = (int64_t)threadIdx.x * V; c < C; c += (int64_t)blockDim.x * V) {
        float xv[V], gv[V], wv[V];
        load_vec<T, V>(x + c, xv);
        load_vec<T, V>(dy + c, gv);
        load_vec<T, V>(weight + c, wv);
#pragma unroll
        for (int e = 0; e < V; e++) dot += wv[e] * gv[e] * xv[e];
    }
    dot = block_sum(dot);
    const double rd = rstd[n];
    const float k = (float)((double)dot * rd * rd * rd / (double)C);
    const float r = rstd[n];
    for (int64_t c = (int64_t)threadIdx.x * V; c < C; c += (int64_t)blockDim.x * V) {
        float xv[V], gv[V], wv[V], d[V];
        load_vec<T, V>(x + c, xv);
        load_vec<T, V>(dy + c, gv);
        load_vec<T, V>(weight + c, wv);
        load_vec<T, V>(dx + c, d);
#pragma unroll
        for (int e = 0; e < V; e++) d[e] += r * wv[e] * gv[e] - k * xv[e];
        store_vec<T, V>(dx + c, d);
    }
}

// partial[g, c] = sum over the rows of group g of dy[., c] * x[., c] * rstd.
template <typename T>
__global__ void rmsnorm_dw_partial_kernel(float *partial, const T *dout, const T *inp,
                                          const float *rstd, int64_t N, int64_t C,
                                          int64_t rows_per_group) {
    __shared__ float acc[DW_ROWS][DW_COLS + 1];
    const int64_t c = (int64_t)blockIdx.x * DW_COLS + threadIdx.x;
    const int64_t g = blockIdx.y;
    const int64_t r0 = g * rows_per_group;
    const int64_t r1 = r0 + rows_per_group < N ? r0 + rows_per_group : N;
    float s = 0.0f;
    if (c < C)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += DW_ROWS)
            s += to_f(dout[r * C + c]) * to_f(inp[r * C + c]) * rstd[r];
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0.0f;
#pragma unroll
        for (int y = 0; y < DW_ROWS; y++) t += acc[y][threadIdx.x];
        partial[g * C + c] = t;
    }
}

__global__ void rmsnorm_dw_sum_kernel(float *dweight, const float *partial, int64_t G, int64_t C) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int64_t g = 0; g < G; g++) s += partial[g * C + c];
    dweight[c] += s;
}

static unsigned row_threads(int64_t C, int v) {
    int64_t t = (C / v + 31) / 32 * 32;
    return (unsigned)(t < 32 ? 32 : (t > 1024 ? 1024 : t));
}

template <typename T>
static void fwd(void *out, float *rstd, const void *inp, const void *weight, int64_t N, int64_t C,
                float eps, cudaStream_t st) {
    const bool vec = C % 8 == 0 && cu_aligned(out, 16) && cu_aligned(inp, 16) &&
                     cu_aligned(weight, 16);
    if (vec)
        rmsnorm_fwd_kernel<T, 8><<<cu_blocks(N, 1), row_threads(C, 8), 0, st>>>(
            (T *)out, rstd, (const T *)inp, (const T *)weight, C, eps);
    else
        rmsnorm_fwd_kernel<T, 1><<<cu_blocks(N, 1), row_threads(C, 1), 0, st>>>(
            (T *)out, rstd, (const T *)inp, (const T *)weight, C, eps);
    CU_CHECK_LAUNCH();
}

template <typename T>
static void bwd(void *dinp, float *dweight, const void *dout, const void *inp, const void *weight,
                const float *rstd, int64_t N, int64_t C, void *scratch, cudaStream_t st) {
    const bool vec = C % 8 == 0 && cu_aligned(dinp, 16) && cu_aligned(dout, 16) &&
                     cu_aligned(inp, 16) && cu_aligned(weight, 16);
    if (vec)
        rmsnorm_bwd_dx_kernel<T, 8><<<cu_blocks(N, 1), row_threads(C, 8), 0, st>>>(
            (T *)dinp, (const T *)dout, (const T *)inp, (const T *)weight, rstd, C);
    else
        rmsnorm_bwd_dx_kernel<T, 1><<<cu_blocks(N, 1), row_threads(C, 1), 0, st>>>(
            (T *)dinp, (const T *)dout, (const T *)inp, (const T *)weight, rstd, C);
    CU_CHECK_LAUNCH();

    const int64_t G = dw_groups(N), rows = (N + G - 1) / G;
    float *partial = (float *)scratch;
    dim3 grid(cu_blocks(C, DW_COLS), (unsigned)G), block(DW_COLS, DW_ROWS);
    rmsnorm_dw_partial_kernel<T><<<grid, block, 0, st>>>(partial, (const T *)dout,
                                                         (const T *)inp, rstd, N, C, rows);
    CU_CHECK_LAUNCH();
    rmsnorm_dw_sum_kernel<<<cu_blocks(C, 256), 256, 0, st>>>(dweight, partial, G, C);
    CU_CHECK_LAUNCH();
}

void cu_rmsnorm_forward(void *out, float *rstd, const void *inp, const void *weight, int64_t N,
                        int64_t C, float eps, cu_dtype dt, cudaStream_t st) {
    if (N <= 0 || C <= 0) return;
    if (dt == CU_BF16) fwd<bf16>(out, rstd, inp, weight, N, C, eps, st);
    else fwd<float>(out, rstd, inp, weight, N, C, eps, st);
}

size_t cu_rmsnorm_scratch_bytes(int64_t N, int64_t C) {
    return (size_t)(dw_groups(N) * (C > 0 ? C : 0)) * sizeof(float);
}

void cu_rmsnorm_backward(void *dinp, float *dweight, const void *dout, const void *inp,
                         const void *weight, const float *rstd, int64_t N, int64_t C,
                         void *scratch, cu_dtype dt, cudaStream_t st) {
    if (N <= 0 || C <= 0) return;
    if (dt == CU_BF16) bwd<bf16>(dinp, dweight, dout, inp, weight, rstd, N, C, scratch, st);
    else bwd<float>(dinp, dweight, dout, inp, weight, rstd, N, C, scratch, st);
}
