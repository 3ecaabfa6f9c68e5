// cu_attn_tile: the pieces the attention kernels (cu_attn_fwd.cu,
// cu_attn_bwd.cu) share: PTX wrappers for cp.async, ldmatrix and the bf16
// tensor-core mma (m16n8k16, fp32 accumulate), the two warp-level tile
// products every kernel is built from, the visibility mask and the
// log-sum-exp merge. Included only by .cu files.
//
// Fragment layout of mma.m16n8k16 (g = lane / 4, t = lane % 4):
//   A 16x16 row-major, 4 regs of 2 bf16: a0 (g, 2t..2t+1), a1 (g+8, 2t..),
//                                        a2 (g, 8+2t..),  a3 (g+8, 8+2t..)
//   B 16x8 (k x n), 2 regs:              b0 (k 2t..2t+1, n g), b1 (k 8+2t.., n g)
//   C 16x8 fp32, 4 floats:               c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..)
// So the C fragments of two neighbouring n-blocks are exactly the A fragment
// of a 16-wide k step: P = softmax(S) goes from accumulator to operand in
// registers.
//
// Shared-memory tiles are row-major bf16 with a row stride of D + 8 elements
// (16 bytes of padding): the 8 row addresses of one ldmatrix then fall in 8
// different 16-byte bank groups (no bank conflicts) and every row stays
// 16-byte aligned for cp.async.
#pragma once

#include <cuda_bf16.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "cu_attn.h"

#define CU_ATTN_LOG2E 1.4426950408889634f
#define CU_ATTN_LN2 0.6931471805599453f

typedef __nv_bfloat16 bf16;

// ---------------------------------------------------------------------------
// PTX wrappers

static __device__ __forceinline__ uint32_t smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16 bytes global -> shared, asynchronous; zero-filled when !pred (src is
// then not read, but must still be a valid address).
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool pred)
{
    int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(n)
                 : "memory");
}

// 4 bytes global -> shared, asynchronous, zero-filled when !pred.
static __device__ __forceinline__ void cp_async4(void *dst, const void *src, bool pred)
{
    int n = pred ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(n)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most n of this thread's committed groups are still in flight.
template <int n>
static __device__ __forceinline__ void cp_async_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
}

static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

// c (16x8 fp32) += a (16x16 bf16) * b (16x8 bf16)
static __device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0,
                                                uint32_t b1)
{
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as bf16x2, lo in the low half (the lower column index).
static __device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

// 2^x, the SFU approximation (rel. error ~2^-22); 2^-inf = 0.
static __device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// Ordered accumulation across CTAs (the backward's dQ, cu_attn_bwd.cu): a
// counter in global memory says whose turn it is. The waiter spins with an
// acquire load (then a CTA barrier passes the order on to its threads); the
// poster fences its CTA's stores (every thread: gpu_fence, barrier) and
// releases the next value. L1 is not coherent between SMs: the accumulated
// data itself is read and written at L2 (ld/st.cg).
static __device__ __forceinline__ void sem_wait_eq(const int32_t *p, int32_t v)
{
    for (;;) {
        int32_t x;
        asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(x) : "l"(p) : "memory");
        if (x == v) return;
        __nanosleep(40);
    }
}

static __device__ __forceinline__ void sem_post(int32_t *p, int32_t v)
{
    asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
}

static __device__ __forceinline__ void gpu_fence(void) { __threadfence(); }

static __device__ __forceinline__ float2 ld_cg_f2(const float *p)
{
    return __ldcg((const float2 *)p);
}

static __device__ __forceinline__ void st_cg_f2(float *p, float2 v) { __stcg((float2 *)p, v); }

// ---------------------------------------------------------------------------
// Tile loads: rows x D bf16 from global rows with stride ld (elements) into a
// shared tile with row stride D + 8; rows at or past n_valid are zero-filled.
// All nthreads threads of the CTA take part; the caller commits the group.

template <int D, int ROWS, int NTHREADS>
static __device__ __forceinline__ void load_tile_async(bf16 *dst, const bf16 *src, int64_t ld,
                                                       int64_t n_valid, int tid)
{
    constexpr int CHUNKS = D / 8;  // 16-byte chunks per row
    constexpr int SROW = D + 8;
    static_assert(ROWS * CHUNKS % NTHREADS == 0, "every thread copies the same number of chunks");
#pragma unroll
    for (int it = 0; it < ROWS * CHUNKS / NTHREADS; it++) {
        const int c = tid + it * NTHREADS;
        int r = c / CHUNKS, col = c % CHUNKS * 8;
        bool ok = r < n_valid;
        const bf16 *g = ok ? src + r * ld + col : src;
        cp_async16(dst + r * SROW + col, g, ok);
    }
}

// ---------------------------------------------------------------------------
// Warp tile products. acc[n][*] are the C fragments of n-block n (8 columns).

// acc (16 x 8*NB) += A (16 x KD, shared, row stride lda) * B^T, where B is
// stored as (8*NB rows = n, KD cols = k) in shared memory, row stride ldb.
// S = Q K^T, dP = dO V^T and their transposes K Q^T, V dO^T.
template <int NB, int KD>
static __device__ __forceinline__ void warp_mma_smem_nt(float acc[NB][4], const bf16 *A, int lda,
                                                        const bf16 *B, int ldb, int lane)
{
    static_assert(NB % 2 == 0 && KD % 16 == 0, "tile shape");
    const int a_row = lane % 16, a_col = lane / 16 * 8;
    const int b_row = lane % 8 + lane / 16 * 8, b_col = (lane / 8) % 2 * 8;
#pragma unroll
    for (int k0 = 0; k0 < KD; k0 += 16) {
        uint32_t a[4];
        ldmatrix_x4(a, A + a_row * lda + k0 + a_col);
#pragma unroll
        for (int n = 0; n < NB; n += 2) {
            uint32_t b[4];
            ldmatrix_x4(b, B + (n * 8 + b_row) * ldb + k0 + b_col);
            mma_bf16(acc[n], a, b[0], b[1]);
            mma_bf16(acc[n + 1], a, b[2], b[3]);
        }
    }
}

// acc (16 x 8*NB) += P (16 x 16*KS, the fp32 C fragments p[2*KS][4] of a
// previous product, rounded to bf16) * B, where B is stored as (16*KS rows
// = k, 8*NB cols = n) in shared memory, row stride ldb.
// O += P V, dV += P^T dO, dK += dS^T Q, dQ += dS K.
template <int NB, int KS>
static __device__ __forceinline__ void warp_mma_reg_nn(float acc[NB][4], const float p[2 * KS][4],
                                                       const bf16 *B, int ldb, int lane)
{
    static_assert(NB % 2 == 0, "tile shape");
    const int b_row = lane % 8 + (lane / 8) % 2 * 8, b_col = lane / 16 * 8;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        uint32_t a[4];
        a[0] = pack_bf16x2(p[2 * ks][0], p[2 * ks][1]);
        a[1] = pack_bf16x2(p[2 * ks][2], p[2 * ks][3]);
        a[2] = pack_bf16x2(p[2 * ks + 1][0], p[2 * ks + 1][1]);
        a[3] = pack_bf16x2(p[2 * ks + 1][2], p[2 * ks + 1][3]);
#pragma unroll
        for (int n = 0; n < NB; n += 2) {
            uint32_t b[4];
            ldmatrix_x4_trans(b, B + (ks * 16 + b_row) * ldb + n * 8 + b_col);
            mma_bf16(acc[n], a, b[0], b[1]);
            mma_bf16(acc[n + 1], a, b[2], b[3]);
        }
    }
}

// acc (16 x 8*NB) += A (16 x KD, shared, row stride lda) * B, where B is
// stored as (KD rows = k, 8*NB cols = n) in shared memory, row stride ldb.
// dQ += dS K with dS staged in shared memory.
template <int NB, int KD>
static __device__ __forceinline__ void warp_mma_smem_nn(float acc[NB][4], const bf16 *A, int lda,
                                                        const bf16 *B, int ldb, int lane)
{
    static_assert(NB % 2 == 0 && KD % 16 == 0, "tile shape");
    const int a_row = lane % 16, a_col = lane / 16 * 8;
    const int b_row = lane % 8 + (lane / 8) % 2 * 8, b_col = lane / 16 * 8;
#pragma unroll
    for (int k0 = 0; k0 < KD; k0 += 16) {
        uint32_t a[4];
        ldmatrix_x4(a, A + a_row * lda + k0 + a_col);
#pragma unroll
        for (int n = 0; n < NB; n += 2) {
            uint32_t b[4];
            ldmatrix_x4_trans(b, B + (k0 + b_row) * ldb + n * 8 + b_col);
            mma_bf16(acc[n], a, b[0], b[1]);
            mma_bf16(acc[n + 1], a, b[2], b[3]);
        }
    }
}

template <int NB>
static __device__ __forceinline__ void zero_acc(float acc[NB][4])
{
#pragma unroll
    for (int n = 0; n < NB; n++)
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
}

// ---------------------------------------------------------------------------
// Masking, in block-local indices i (query) and j (key): visible iff both are
// in range, k_start + j <= q_start + i when causal (diag = q_start - k_start),
// and the segment ids agree when given.
//
// Every row's visible columns form one interval, its span: for query row i
// the keys [lo, hi) = its causal horizon and the block's end, intersected
// with its document's keys [q_lo[i], q_hi[i]) when cu_attn_docs_build could
// derive them (ids in order); likewise for key row j the queries that see
// it. Spans are non-decreasing in the row index (lo and hi both), so the
// rows of a tile see at most [span(first).lo, span(last).hi): the loops of
// every kernel run over that range only, which starts at a document
// boundary and leaves out every tile lying wholly across documents. A warp
// whose 16 rows all cover a whole tile skips the mask (the single-document
// interior of the causal triangle); elsewhere the mask is two integer
// compares per element. Only ids in another order (flagged by the build)
// fall back to comparing ids element by element, over the causal range.

// cu_attn_docs.bounds: unsorted[B], then q_lo, q_hi (B, Tq), k_lo, k_hi (B, Tk).
static __host__ __device__ __forceinline__ int64_t docs_q_lo(int64_t B) { return B; }
static __host__ __device__ __forceinline__ int64_t docs_q_hi(int64_t B, int64_t Tq)
{
    return B + B * Tq;
}
static __host__ __device__ __forceinline__ int64_t docs_k_lo(int64_t B, int64_t Tq)
{
    return B + 2 * B * Tq;
}
static __host__ __device__ __forceinline__ int64_t docs_k_hi(int64_t B, int64_t Tq, int64_t Tk)
{
    return B + 2 * B * Tq + B * Tk;
}

typedef struct {
    int64_t Tq, Tk, diag;
    bool causal;
    const int32_t *q_lo, *q_hi, *k_lo, *k_hi;  // this sequence's document bounds, or NULL
    const int32_t *sq, *sk;  // this sequence's ids when they must be compared, or NULL
} attn_mask;

static __host__ __device__ __forceinline__ attn_mask make_mask(const attn_shape &s,
                                                               const cu_attn_docs &d, int64_t b)
{
    attn_mask m;
    m.Tq = s.Tq;
    m.Tk = s.Tk;
    m.diag = s.q_start - s.k_start;
    m.causal = s.causal;
    m.q_lo = m.q_hi = m.k_lo = m.k_hi = m.sq = m.sk = NULL;
    if (d.bounds && d.bounds[b] == 0) {
        m.q_lo = d.bounds + docs_q_lo(s.B) + b * s.Tq;
        m.q_hi = d.bounds + docs_q_hi(s.B, s.Tq) + b * s.Tq;
        m.k_lo = d.bounds + docs_k_lo(s.B, s.Tq) + b * s.Tk;
        m.k_hi = d.bounds + docs_k_hi(s.B, s.Tq, s.Tk) + b * s.Tk;
    } else if (d.seg_q) {
        m.sq = d.seg_q + b * s.Tq;
        m.sk = d.seg_k + b * s.Tk;
    }
    return m;
}

// Columns [lo, hi) of a row; empty when hi <= lo.
typedef struct {
    int lo, hi;
} row_span;

static __host__ __device__ __forceinline__ row_span make_span(int64_t lo, int64_t hi)
{
    row_span r;
    r.lo = (int)lo;
    r.hi = (int)(hi > lo ? hi : lo);
    return r;
}

// Keys query row i (< Tq) may see.
static __host__ __device__ __forceinline__ row_span query_span(const attn_mask &m, int64_t i)
{
    int64_t lo = 0, hi = m.Tk;
    if (m.causal && i + m.diag + 1 < hi) hi = i + m.diag + 1;
    if (m.q_lo) {
        lo = m.q_lo[i];
        hi = m.q_hi[i] < hi ? m.q_hi[i] : hi;
    }
    return make_span(lo, hi);
}

// Queries that may see key row j (< Tk).
static __host__ __device__ __forceinline__ row_span key_span(const attn_mask &m, int64_t j)
{
    int64_t lo = 0, hi = m.Tq;
    if (m.causal && j - m.diag > 0) lo = j - m.diag < m.Tq ? j - m.diag : m.Tq;
    if (m.k_lo) {
        lo = m.k_lo[j] > lo ? m.k_lo[j] : lo;
        hi = m.k_hi[j] < hi ? m.k_hi[j] : hi;
    }
    return make_span(lo, hi);
}

// Keys any of the query rows [i0, i0 + rows) may see (spans are monotone),
// and queries any of the key rows [j0, j0 + rows) may be seen by.
static __host__ __device__ __forceinline__ row_span query_tile_span(const attn_mask &m, int64_t i0,
                                                                    int64_t rows)
{
    return make_span(query_span(m, i0).lo, query_span(m, i0 + rows - 1).hi);
}
static __host__ __device__ __forceinline__ row_span key_tile_span(const attn_mask &m, int64_t j0,
                                                                  int64_t rows)
{
    return make_span(key_span(m, j0).lo, key_span(m, j0 + rows - 1).hi);
}

// Whether element (row with span sp, column c) is visible; qi, kj index the
// ids (query, key) when they must be compared.
static __device__ __forceinline__ bool span_visible(const attn_mask &m, row_span sp, int64_t c,
                                                    int64_t qi, int64_t kj)
{
    return sp.lo <= c && c < sp.hi && (!m.sq || m.sq[qi] == m.sk[kj]);
}

// A warp's 16 rows (two per lane: g and g + 8) summarised for a tile of
// columns [c0, c0 + n): every row sees all of it iff full_lo <= c0 and
// c0 + n <= full_hi (and no ids to compare); no row sees any of it if
// c0 >= any_hi or c0 + n <= any_lo. Computed once per CTA: spans do not
// depend on the tile.
typedef struct {
    int full_lo, full_hi, any_lo, any_hi;
} warp_spans;

static __device__ __forceinline__ warp_spans summarise_warp(const row_span sp[2], bool ids)
{
    warp_spans w;
    w.full_lo = ids ? INT_MAX : INT_MIN;
    w.full_hi = INT_MAX;
    w.any_lo = INT_MAX;
    w.any_hi = INT_MIN;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const bool empty = sp[r].hi <= sp[r].lo;
        w.full_lo = max(w.full_lo, empty ? INT_MAX : sp[r].lo);
        w.full_hi = min(w.full_hi, empty ? INT_MIN : sp[r].hi);
        w.any_lo = min(w.any_lo, empty ? INT_MAX : sp[r].lo);
        w.any_hi = max(w.any_hi, empty ? INT_MIN : sp[r].hi);
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) {
        w.full_lo = max(w.full_lo, __shfl_xor_sync(0xffffffffu, w.full_lo, o));
        w.full_hi = min(w.full_hi, __shfl_xor_sync(0xffffffffu, w.full_hi, o));
        w.any_lo = min(w.any_lo, __shfl_xor_sync(0xffffffffu, w.any_lo, o));
        w.any_hi = max(w.any_hi, __shfl_xor_sync(0xffffffffu, w.any_hi, o));
    }
    return w;
}

static __device__ __forceinline__ bool warp_sees_none(const warp_spans &w, int64_t c0, int n)
{
    return c0 >= w.any_hi || c0 + n <= w.any_lo;
}
static __device__ __forceinline__ bool warp_sees_all(const warp_spans &w, int64_t c0, int n)
{
    return w.full_lo <= c0 && c0 + n <= w.full_hi;
}

// The empty span, for rows past the end of a block.
static __device__ __forceinline__ row_span no_span(void) { return make_span(0, 0); }

// Emulator builds count tile iterations (tests/gpu/emu): kernel 0 forward,
// 1 backward. Nothing in a CUDA build.
#ifndef CU_ATTN_COUNT_TILE
#define CU_ATTN_COUNT_TILE(kernel) ((void)0)
#endif

// Marks the next launch as one whose CTAs wait for CTAs of lower
// blockIdx.x (same y, z): the emulator, which runs CTAs one at a time, then
// keeps that order (it shuffles every other launch). Nothing in a CUDA
// build, where CTAs are dispatched in increasing linear index.
#ifndef CU_ATTN_ORDERED_LAUNCH
#define CU_ATTN_ORDERED_LAUNCH() ((void)0)
#endif

// ---------------------------------------------------------------------------
// Log-sum-exp merge of one row's partial (o_b, lse_b) into the running
// (o, lse): the weights of the old and new parts. lse_b = -inf (nothing seen)
// keeps the old; lse = -inf (nothing seen yet) takes the new.
static __device__ __forceinline__ void merge_weights(float lse_a, float lse_b, float *ca,
                                                     float *cb, float *lse_new)
{
    if (lse_b == -INFINITY) {
        *ca = 1.0f;
        *cb = 0.0f;
        *lse_new = lse_a;
    } else if (lse_a == -INFINITY) {
        *ca = 0.0f;
        *cb = 1.0f;
        *lse_new = lse_b;
    } else {
        float mx = fmaxf(lse_a, lse_b);
        float wa = expf(lse_a - mx), wb = expf(lse_b - mx);
        float sum = wa + wb;
        *ca = wa / sum;
        *cb = wb / sum;
        *lse_new = mx + logf(sum);
    }
}

// Host side: the kernel's dynamic shared memory limit raised to bytes.
template <typename K>
static void set_smem_limit(K kernel, int bytes)
{
    CU_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}
