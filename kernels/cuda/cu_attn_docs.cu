// cu_attn_docs: the document bounds of packed sequences (cu_attn.h), from
// which every attention kernel gets each row's span (cu_attn_tile.cuh).
// One thread per row of either block, two binary searches over the other
// block's ids: O(B (Tq + Tk) log T) loads, once per batch.
#include "cu_attn.h"
#include "cu_attn_tile.cuh"

enum { DOCS_THREADS = 256 };

// First index of ids[0, n) (non-decreasing as uint32) whose id is > x when
// upper, >= x otherwise.
static __device__ __forceinline__ int64_t docs_bound(const int32_t *ids, int64_t n, uint32_t x,
                                                     bool upper)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        const uint32_t v = (uint32_t)ids[mid];
        if (upper ? v <= x : v < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// Row r of sequence b: query rows first, then key rows. A row whose id is
// below its predecessor's flags the sequence (its bounds are then unused).
__global__ void __launch_bounds__(DOCS_THREADS)
    attn_docs_kernel(int32_t *bounds, const int32_t *seg_q, const int32_t *seg_k, int64_t B,
                     int64_t Tq, int64_t Tk)
{
    const int64_t idx = (int64_t)blockIdx.x * DOCS_THREADS + threadIdx.x;
    if (idx >= B * (Tq + Tk)) return;
    const int64_t b = idx / (Tq + Tk), r = idx % (Tq + Tk);
    const bool qside = r < Tq;
    const int64_t i = qside ? r : r - Tq, n_other = qside ? Tk : Tq;
    const int32_t *own = qside ? seg_q + b * Tq : seg_k + b * Tk;
    const int32_t *other = qside ? seg_k + b * Tk : seg_q + b * Tq;
    const uint32_t id = (uint32_t)own[i];
    if (i > 0 && (uint32_t)own[i - 1] > id) atomicOr(bounds + b, 1);
    const int32_t lo = (int32_t)docs_bound(other, n_other, id, false);
    const int32_t hi = (int32_t)docs_bound(other, n_other, id, true);
    if (qside) {
        bounds[docs_q_lo(B) + b * Tq + i] = lo;
        bounds[docs_q_hi(B, Tq) + b * Tq + i] = hi;
    } else {
        bounds[docs_k_lo(B, Tq) + b * Tk + i] = lo;
        bounds[docs_k_hi(B, Tq, Tk) + b * Tk + i] = hi;
    }
}

int64_t cu_attn_docs_ints(int64_t B, int64_t Tq, int64_t Tk)
{
    return B + 2 * B * (Tq + Tk);
}

void cu_attn_docs_build(const cu_attn_docs *d, int64_t B, int64_t Tq, int64_t Tk,
                        cudaStream_t st)
{
    const int64_t rows = B * (Tq + Tk);
    if (rows == 0) return;
    CU_CHECK(cudaMemsetAsync(d->bounds, 0, sizeof(int32_t) * (size_t)B, st));
    const unsigned grid = (unsigned)((rows + DOCS_THREADS - 1) / DOCS_THREADS);
    attn_docs_kernel<<<grid, DOCS_THREADS, 0, st>>>(d->bounds, d->seg_q, d->seg_k, B, Tq, Tk);
    CU_CHECK_LAUNCH();
}
