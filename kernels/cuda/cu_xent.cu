// cu_xent: chunked LM head + softmax cross-entropy, forward and backward.
// Per chunk of rows: logits = h @ w^T (cuBLAS, fp32 output even from bf16
// inputs) into scratch (chunk_rows, V), one fused kernel (a block per row)
// turns each row into its loss and grad_scale * (softmax - onehot) (in place
// in fp32 mode, into a bf16 part of the scratch in bf16 mode), then
// dh += dlogits @ w and dw += dlogits^T @ h (cuBLAS). The (N, V) logits
// never exist.
//
// fp32 logits: a bf16 logit near 20 is only good to +-0.06, an error that
// would go straight into the loss; the extra 2 bytes per scratch element
// (4096 x 49152 rows: 400 MB) buy a loss as exact as the fp32 mode's.
//
// The row kernel reads the row twice (online max/sum, then the gradient;
// the second read mostly hits L2) and writes it once. Reductions are fixed
// trees: deterministic. A target >= V gives loss NaN (never silently 0).
#include "cu_internal.cuh"
#include "cu_ops.h"

#define XENT_THREADS 512

template <typename T, int V, bool GRAD>
__global__ void __launch_bounds__(XENT_THREADS)
xent_row_kernel(T *dlogits, const float *logits, float *losses, const int32_t *targets,
                int64_t Vn, float grad_scale) {
    const int64_t row = blockIdx.x;
    const float *l = logits + row * Vn;
    T *g = dlogits + row * Vn;
    const int32_t t = targets[row];
    const int64_t step = (int64_t)blockDim.x * V;
    if (t < 0 || t >= Vn) {
        if (threadIdx.x == 0) losses[row] = t < 0 ? 0.0f : NAN;
        if (GRAD) {
            float z[V] = {0};
            for (int64_t c = (int64_t)threadIdx.x * V; c < Vn; c += step) store_vec<T, V>(g + c, z);
        }
        return;
    }
    float m = -INFINITY, s = 0.0f;  // this thread's running max and sum of exp(x - m)
    for (int64_t c = (int64_t)threadIdx.x * V; c < Vn; c += step) {
        float v[V];
        load_vec<float, V>(l + c, v);
        float vm = v[0];
#pragma unroll
        for (int e = 1; e < V; e++) vm = fmaxf(vm, v[e]);
        if (vm > m) {
            s *= expf(m - vm);
            m = vm;
        }
#pragma unroll
        for (int e = 0; e < V; e++) s += expf(v[e] - m);
    }
    const float M = block_max(m);
    const float S = block_sum(m == -INFINITY ? 0.0f : s * expf(m - M));
    if (threadIdx.x == 0) losses[row] = (float)((double)M + log((double)S) - (double)l[t]);
    if (!GRAD) return;
    __syncthreads();  // l[t] is read above before anyone overwrites it (in place: g == l)
    const float k = (float)((double)grad_scale / (double)S);
    for (int64_t c = (int64_t)threadIdx.x * V; c < Vn; c += step) {
        float v[V];
        load_vec<float, V>(l + c, v);
#pragma unroll
        for (int e = 0; e < V; e++) {
            v[e] = expf(v[e] - M) * k;
            if (c + e == t) v[e] -= grad_scale;
        }
        store_vec<T, V>(g + c, v);
    }
}

template <typename T, bool GRAD>
static void row_launch(void *dlogits, const float *logits, float *losses, const int32_t *targets,
                       int64_t n, int64_t V, float grad_scale, cudaStream_t st) {
    if (V % 8 == 0 && cu_aligned(logits, 16) && cu_aligned(dlogits, 16))
        xent_row_kernel<T, 8, GRAD><<<cu_blocks(n, 1), XENT_THREADS, 0, st>>>(
            (T *)dlogits, logits, losses, targets, V, grad_scale);
    else
        xent_row_kernel<T, 1, GRAD><<<cu_blocks(n, 1), XENT_THREADS, 0, st>>>(
            (T *)dlogits, logits, losses, targets, V, grad_scale);
    CU_CHECK_LAUNCH();
}

static void softmax_rows(void *dlogits, const float *logits, float *losses,
                         const int32_t *targets, int64_t n, int64_t V, float grad_scale,
                         bool grad, cu_dtype dt, cudaStream_t st) {
    if (n <= 0) return;
    CHECK(V > 0);
    if (dt == CU_BF16) {
        if (grad) row_launch<bf16, true>(dlogits, logits, losses, targets, n, V, grad_scale, st);
        else row_launch<bf16, false>(dlogits, logits, losses, targets, n, V, grad_scale, st);
    } else {
        if (grad) row_launch<float, true>(dlogits, logits, losses, targets, n, V, grad_scale, st);
        else row_launch<float, false>(dlogits, logits, losses, targets, n, V, grad_scale, st);
    }
}

void cu_xent_softmax_grad(void *dlogits, const float *logits, float *losses,
                          const int32_t *targets, int64_t n, int64_t V, float grad_scale,
                          cu_dtype dt, cudaStream_t st) {
    softmax_rows(dlogits, logits, losses, targets, n, V, grad_scale, true, dt, st);
}

size_t cu_xent_scratch_bytes(int64_t chunk_rows, int64_t V, cu_dtype dt) {
    CHECK(chunk_rows > 0 && V > 0);
    const size_t n = (size_t)(chunk_rows * V);
    return n * sizeof(float) + (dt == CU_BF16 ? n * sizeof(bf16) : 0);
}

void cu_xent_forward_backward(cu_blas *b, float *losses, void *dh, float *dw, const void *h,
                              const void *w, const int32_t *targets, int64_t N, int64_t C,
                              int64_t V, float grad_scale, int64_t chunk_rows, void *scratch,
                              cu_dtype dt) {
    CHECK(dh != NULL || dw == NULL);  // dw is only computed along with dh
    CHECK(chunk_rows > 0 && V > 0 && C >= 0 && N >= 0);
    const size_t row_bytes = (size_t)C * cu_dtype_size(dt);
    cudaStream_t st = cu_blas_stream(b);
    float *logits = (float *)scratch;
    // fp32: the gradient replaces the logits in place; bf16: after them.
    void *dlogits = dt == CU_BF16 ? (void *)(logits + (size_t)(chunk_rows * V)) : scratch;
    for (int64_t n0 = 0; n0 < N; n0 += chunk_rows) {
        const int64_t n = N - n0 < chunk_rows ? N - n0 : chunk_rows;
        const void *hc = (const char *)h + (size_t)n0 * row_bytes;
        cu_matmul_forward_out(b, logits, CU_F32, hc, w, n, C, V, dt);
        softmax_rows(dlogits, logits, losses + n0, targets + n0, n, V, grad_scale, dh != NULL,
                     dt, st);
        if (dh)
            cu_matmul_backward(b, (char *)dh + (size_t)n0 * row_bytes, dw, dlogits, hc, w, n, C,
                               V, dt);
    }
}
