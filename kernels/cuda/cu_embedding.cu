// cu_embedding: token embedding lookup and its deterministic backward.
// Forward copies rows as raw 16-byte units when a row allows, else elements.
// Backward (no atomics): a stable radix sort of (token, row) pairs (CUB),
// then one block per run of equal tokens sums that token's dout rows in row
// order (fixed order = same bits every run) and adds the sum to dwte.
// Scratch: sorted keys (N), row ids (N), sorted row ids (N), CUB temp.
#include <cub/device/device_radix_sort.cuh>

#include "cu_internal.cuh"
#include "cu_ops.h"

#define EMB_THREADS 256

template <typename U>
__global__ void embedding_fwd_kernel(U *out, const int32_t *tokens, const U *wte, int64_t N,
                                     int64_t units) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= N * units) return;
    const int64_t n = idx / units, j = idx - n * units;
    out[idx] = wte[(int64_t)tokens[n] * units + j];
}

__global__ void iota_kernel(int32_t *x, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = (int32_t)i;
}

// Block (i, y) does columns y*blockDim.. of the run that starts at sorted
// position i; blocks not at a run start exit at once.
template <typename T>
__global__ void embedding_bwd_kernel(float *dwte, const T *dout, const uint32_t *keys,
                                     const int32_t *rows, int64_t N, int64_t C) {
    const int64_t i = blockIdx.x;
    const uint32_t tok = keys[i];
    if (i > 0 && keys[i - 1] == tok) return;
    const int64_t c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int64_t j = i; j < N && keys[j] == tok; j++) acc += to_f(dout[(int64_t)rows[j] * C + c]);
    dwte[(int64_t)tok * C + c] += acc;
}

static int key_bits(int64_t V) {
    int b = 1;
    while (b < 32 && ((int64_t)1 << b) < V) b++;
    return b;
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static size_t sort_temp_bytes(int64_t N, int64_t V) {
    size_t bytes = 0;
    CU_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, (const uint32_t *)nullptr,
                                             (uint32_t *)nullptr, (const int32_t *)nullptr,
                                             (int32_t *)nullptr, (int)N, 0, key_bits(V)));
    return bytes;
}

void cu_embedding_forward(void *out, const int32_t *tokens, const void *wte, int64_t N,
                          int64_t C, int64_t V, cu_dtype dt, cudaStream_t st) {
    if (N <= 0 || C <= 0) return;
    const size_t row_bytes = (size_t)C * cu_dtype_size(dt);
    if (row_bytes % 16 == 0 && cu_aligned(out, 16) && cu_aligned(wte, 16)) {
        const int64_t units = (int64_t)(row_bytes / 16);
        embedding_fwd_kernel<uint4><<<cu_blocks(N * units, EMB_THREADS), EMB_THREADS, 0, st>>>(
            (uint4 *)out, tokens, (const uint4 *)wte, N, units);
    } else if (dt == CU_BF16) {
        embedding_fwd_kernel<uint16_t><<<cu_blocks(N * C, EMB_THREADS), EMB_THREADS, 0, st>>>(
            (uint16_t *)out, tokens, (const uint16_t *)wte, N, C);
    } else {
        embedding_fwd_kernel<uint32_t><<<cu_blocks(N * C, EMB_THREADS), EMB_THREADS, 0, st>>>(
            (uint32_t *)out, tokens, (const uint32_t *)wte, N, C);
    }
    CU_CHECK_LAUNCH();
}

size_t cu_embedding_scratch_bytes(int64_t N, int64_t V) {
    if (N <= 0) return 0;
    CHECK(N <= 0x7fffffff && V > 0 && V <= 0x7fffffff);
    const size_t arr = align256((size_t)N * 4);
    return 3 * arr + align256(sort_temp_bytes(N, V));
}

void cu_embedding_backward(float *dwte, const void *dout, const int32_t *tokens, int64_t N,
                           int64_t C, int64_t V, void *scratch, cu_dtype dt, cudaStream_t st) {
    if (N <= 0 || C <= 0) return;
    CHECK(N <= 0x7fffffff && V > 0 && V <= 0x7fffffff);
    const size_t arr = align256((size_t)N * 4);
    char *s = (char *)scratch;
    uint32_t *keys = (uint32_t *)s;
    int32_t *rows_in = (int32_t *)(s + arr);
    int32_t *rows = (int32_t *)(s + 2 * arr);
    void *temp = s + 3 * arr;
    size_t temp_bytes = sort_temp_bytes(N, V);

    iota_kernel<<<cu_blocks(N, EMB_THREADS), EMB_THREADS, 0, st>>>(rows_in, N);
    CU_CHECK_LAUNCH();
    // Tokens are in [0, V) (checked by the caller), so as unsigned keys they
    // sort the same and only the low key_bits(V) bits matter.
    CU_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, (const uint32_t *)tokens, keys,
                                             rows_in, rows, (int)N, 0, key_bits(V), st));
    dim3 grid((unsigned)N, cu_blocks(C, EMB_THREADS));
    if (dt == CU_BF16)
        embedding_bwd_kernel<bf16><<<grid, EMB_THREADS, 0, st>>>(dwte, (const bf16 *)dout, keys,
                                                                 rows, N, C);
    else
        embedding_bwd_kernel<float><<<grid, EMB_THREADS, 0, st>>>(dwte, (const float *)dout,
                                                                  keys, rows, N, C);
    CU_CHECK_LAUNCH();
}
