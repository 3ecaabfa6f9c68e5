// cu_attn_bwd: FlashAttention-2 backward on tensor cores (bf16), and the
// backward entry points of cu_attn.h (fp32 goes to cu_attn_f32.cu).
//
// One kernel, one CTA per (b, kv head, tile of BKV keys); BKV / 16 warps,
// 16 keys each (BKV = 128 where its shared memory fits, else 64). dK, dV of
// the tile stay in registers while the CTA loops over the G query heads of
// the kv head and, for each, the query tiles of BQ rows that can see the
// keys (their spans, cu_attn_tile.cuh: from the diagonal or the document
// start, whichever is later, to the document end; tiles aligned to BQ).
// Per query tile, 5 tile products:
//   S^T = K Q^T, P^T = 2^(S^T c - lse2)     (P recomputed from lse)
//   dV += P^T dO
//   dP^T = V dO^T, dS^T = scale P^T (dP^T - delta)
//   dK += dS^T Q
//   dQ_tile = dS K      (dS through shared memory; warps split dQ_tile)
// and dQ_tile is added into an fp32 dQ in global memory. A warp skips the
// mask where its 16 keys see the whole query tile and its first four
// products where they see none of it (its dS is then 0).
//
// Deterministic dQ by ordered accumulation: the CTAs that add into one
// (b, head, query tile) are consecutive key tiles J0..J1 (spans are
// monotone); a counter per (b, head, query tile) in global memory lets key
// tile j add only after key tile j - 1 did (j waits for the count j - J0,
// then posts j - J0 + 1). The order is fixed, so dQ is bitwise
// reproducible. The wait is deadlock-free because a CTA waits only for CTAs
// of lower blockIdx.x (same y, z), which the GPU dispatches first; it should
// be short under a causal mask, where key tile j - 1 starts its query loop
// one key tile earlier (unmeasured: no GPU has run this). The price of
// determinism over FA2's atomic dQ: no more FLOPs (5 products, as FA2; the
// separate dQ kernel this replaces recomputed S and dP: 7), but a CTA
// stalls when it catches up with its predecessor, only the additions are
// serialized, a counter (4 bytes per query tile and head) is zeroed per
// call, and dQ must be fp32 in global memory: the whole
// backward in bf16 takes an fp32 scratch for it (the first key tile of a
// query tile stores, the last one adds the sum into the bf16 dQ), while
// dK, dV are final in the CTA and written directly in bf16. The block form
// (ring attention) accumulates dQ, dK, dV in fp32 across blocks.
//
// Tiles and shared memory per CTA (bf16 rows padded to D + 8; the same on
// sm_80 and sm_90, both opt in above 48 KB): K, V BKV rows; Q, dO 2 stages
// x BQ rows (BQ = 64 at D = 64, 32 at D = 128, to keep dK + dV + S + dP
// within 255 registers); lse, delta 2 x BQ floats; dS BQ x (BKV + 8) bf16;
// 16 bytes for the CTA's turn.
// BKV 128: D = 64: 90 KB, D = 128: 111 KB; BKV 64: 64 KB / 73 KB (sm_86 /
// sm_89 at D = 128: 99 KB per block). The choice is made from the device's
// opt-in limit (cu_attn_smem_limit), and cu_attn_supported refuses D where
// even the smaller tiles do not fit.
#include "cu_attn.h"
#include "cu_attn_f32.h"
#include "cu_attn_tile.cuh"
#include "die.h"

template <int D>
static constexpr __host__ __device__ int bwd_bq()
{
    return D == 128 ? 32 : 64;
}

template <int D, int BKV>
static constexpr int bwd_smem_bytes()
{
    return (2 * BKV + 4 * bwd_bq<D>()) * (D + 8) * (int)sizeof(bf16) +
           bwd_bq<D>() * (BKV + 8) * (int)sizeof(bf16) + 4 * bwd_bq<D>() * (int)sizeof(float) + 16;
}

// Keys per CTA on the current device: 128 (8 warps) where it fits, else 64
// (4 warps). At ~250 registers either is 8 warps per SM; 128 keys halve the
// Q / dO loads per product.
static int bwd_rows(int D)
{
    const int big = D == 64 ? bwd_smem_bytes<64, 128>() : bwd_smem_bytes<128, 128>();
    return big <= cu_attn_smem_limit() ? 128 : 64;
}

int cu_attn_bwd_smem_bytes(int D)
{
    if (D == 64) return bwd_rows(64) == 128 ? bwd_smem_bytes<64, 128>() : bwd_smem_bytes<64, 64>();
    return bwd_rows(128) == 128 ? bwd_smem_bytes<128, 128>() : bwd_smem_bytes<128, 64>();
}

int64_t cu_attn_dq_sem_ints(const attn_shape *s)
{
    const int64_t bq = s->D == 128 ? bwd_bq<128>() : bwd_bq<64>();
    return s->B * s->H * ((s->Tq + bq - 1) / bq);
}

// The final lse in log2 units; a row that saw no key (-inf) gives +inf, so
// that P = 2^(s - lse2) = 0.
static __device__ __forceinline__ float lse_to_log2(float x)
{
    return x == -INFINITY ? INFINITY : x * CU_ATTN_LOG2E;
}

// Queries key tile j (of BKV keys) may be seen by.
static __host__ __device__ __forceinline__ row_span key_tile_queries(const attn_mask &m, int BKV,
                                                                      int64_t j)
{
    const int64_t j0 = j * BKV, rows = m.Tk - j0 < BKV ? m.Tk - j0 : BKV;
    return key_tile_span(m, j0, rows);
}

// The query tiles [lo, hi) of BQ rows key tile j visits: those that meet its
// span, from the tile holding its first query (an empty span visits the
// tile it points into, if that is not aligned: that keeps the key tiles of
// every query tile consecutive, see first_key_tile).
typedef struct {
    int lo, hi;
} tile_range;
static __host__ __device__ __forceinline__ tile_range query_tiles_of(row_span sp, int BQ)
{
    tile_range r;
    r.lo = sp.lo / BQ;
    r.hi = (sp.hi + BQ - 1) / BQ;  // spans end below 2^30
    return r;
}

// The first key tile that visits query tile qt; key tile jmax visits it.
// Spans are monotone in the key, so the key tiles with query_tiles_of.hi >
// qt are a suffix, and those with .lo <= qt a prefix: the visitors of qt
// are consecutive.
// Not inlined, and the mask rebuilt from the kernel's parameters: only
// thread 0 runs it, and inlined it costs registers (spills at D = 128) in
// the loop of every thread.
static __device__ __noinline__ int first_key_tile(attn_shape s, cu_attn_docs d, int b, int BKV,
                                                  int BQ, int qt, int jmax)
{
    const attn_mask m = make_mask(s, d, b);
    int lo = 0, hi = jmax;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (query_tiles_of(key_tile_queries(m, BKV, mid), BQ).hi > qt) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

// Where the gradients go. OUT_BF16 (whole backward, bf16): dq, dk, dv bf16
// (+=), dq_acc fp32 scratch (B, Tq, H, D), no zeroing needed. Else (block
// form): dq, dk, dv fp32 (+=), dq_acc == dq.
typedef struct {
    void *dq, *dk, *dv;
    float *dq_acc;
} bwd_out;

// BKV keys per CTA, one warp per 16.
template <int D, int BKV, bool OUT_BF16>
__global__ void __launch_bounds__(BKV * 2)
    attn_bwd_bf16_kernel(bwd_out o, const bf16 *dout, const bf16 *q, const bf16 *k,
                         const bf16 *v, const float *lse, const float *delta, int32_t *dq_sem,
                         cu_attn_docs docs, attn_shape s)
{
    constexpr int BQ = bwd_bq<D>(), SROW = D + 8, SDS = BKV + 8, NB_S = BQ / 8, NB_D = D / 8,
                  THREADS = BKV * 2;
    // dQ_tile (BQ x D) split over the warps: RB row blocks of 16, CG column
    // groups of DW, each done in passes of 32 columns (16 accumulators).
    constexpr int NW = BKV / 16, RB = BQ / 16, CG = NW / RB, DW = D / CG, NB_Q = 4;
    static_assert(NW % RB == 0 && D % CG == 0 && DW % (8 * NB_Q) == 0, "dQ warp grid");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Ks = (bf16 *)smem_raw;
    bf16 *Vs = Ks + BKV * SROW;
    bf16 *Qs = Vs + BKV * SROW;      // 2 stages
    bf16 *dOs = Qs + 2 * BQ * SROW;  // 2 stages
    bf16 *dSs = dOs + 2 * BQ * SROW;  // dS (BQ queries x BKV keys)
    float *lses = (float *)(dSs + BQ * SDS);  // 2 stages
    float *dels = lses + 2 * BQ;              // 2 stages
    // [0]: this CTA's place among the adders of the query tile in hand;
    // [1]: the first query tile of the next key tile.
    int32_t *turn_s = (int32_t *)(dels + 2 * BQ);

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int jt = blockIdx.x;
    const int64_t j0 = (int64_t)jt * BKV;
    const int hk = blockIdx.y, G = s.H / s.Hkv;
    const int64_t b = blockIdx.z;
    const attn_mask m = make_mask(s, docs, b);
    const int64_t ldq = (int64_t)s.H * D, ldk = (int64_t)s.Hkv * D;
    const float c = s.scale * CU_ATTN_LOG2E;
    const int wrow = warp * 16;
    const int64_t jw = j0 + wrow;  // this warp's first key

    // Query tiles of BQ rows that meet the span of the tile's keys, for each
    // of the G heads.
    const int n_qt = (int)((s.Tq + BQ - 1) / BQ);
    const tile_range qr = query_tiles_of(key_tile_queries(m, BKV, jt), BQ);
    const int nq = qr.hi - qr.lo, n_it = G * nq;
    if (nq <= 0) return;  // nothing sees these keys: dK, dV += 0
    // The first query tile of key tile jt + 1 (query tiles before it get
    // their last dQ part from this CTA), kept in shared memory: registers
    // are short at D = 128.
    if (tid == 0)
        turn_s[1] = (int64_t)(jt + 1) * BKV < s.Tk
                        ? query_tiles_of(key_tile_queries(m, BKV, jt + 1), BQ).lo
                        : INT_MAX;
    row_span sp[2];  // queries that see the thread's keys g and g + 8
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t j = jw + g + r * 8;
        sp[r] = j < s.Tk ? key_span(m, j) : no_span();
    }
    const warp_spans ws = summarise_warp(sp, m.sq != NULL);

    // Loads the query-side tiles of iteration it into stage st.
    auto load_q_side = [&](int it, int st) {
        const int h = hk * G + it / nq;
        const int64_t i0 = (int64_t)(qr.lo + it % nq) * BQ;
        const int64_t qoff = ((b * s.Tq + i0) * s.H + h) * D;
        load_tile_async<D, BQ, THREADS>(Qs + st * BQ * SROW, q + qoff, ldq, s.Tq - i0, tid);
        load_tile_async<D, BQ, THREADS>(dOs + st * BQ * SROW, dout + qoff, ldq, s.Tq - i0,
                                            tid);
        const int64_t roff = (b * s.H + h) * s.Tq + i0;
        if (tid < BQ) {
            bool ok = i0 + tid < s.Tq;
            cp_async4(lses + st * BQ + tid, ok ? lse + roff + tid : lse, ok);
        } else if (tid >= 64 && tid < 64 + BQ) {
            const int r = tid - 64;
            bool ok = i0 + r < s.Tq;
            cp_async4(dels + st * BQ + r, ok ? delta + roff + r : delta, ok);
        }
    };

    const int64_t kvoff = ((b * s.Tk + j0) * s.Hkv + hk) * D;
    load_tile_async<D, BKV, THREADS>(Ks, k + kvoff, ldk, s.Tk - j0, tid);
    load_tile_async<D, BKV, THREADS>(Vs, v + kvoff, ldk, s.Tk - j0, tid);
    load_q_side(0, 0);
    cp_async_commit();

    float dka[NB_D][4], dva[NB_D][4];
    zero_acc<NB_D>(dka);
    zero_acc<NB_D>(dva);

    for (int it = 0; it < n_it; it++) {
        const int st = it & 1;
        if (it + 1 < n_it) {
            load_q_side(it + 1, st ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (tid == 0) CU_ATTN_COUNT_TILE(1);
        const int h = hk * G + it / nq, qt = qr.lo + it % nq;
        const int64_t i0 = (int64_t)qt * BQ;
        const bf16 *Qst = Qs + st * BQ * SROW, *dOst = dOs + st * BQ * SROW;
        const float *lse_t = lses + st * BQ, *del_t = dels + st * BQ;

        // dS (queries x keys) goes to shared memory for dQ, rounded as the
        // products take it: 0 for the keys of a warp that sees none of the tile.
        auto store_ds = [&](const float ds[NB_S][4]) {
#pragma unroll
            for (int n = 0; n < NB_S; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    dSs[(n * 8 + 2 * t + (e & 1)) * SDS + wrow + g + (e / 2) * 8] =
                        __float2bfloat16_rn(ds[n][e]);
        };
        if (warp_sees_none(ws, i0, BQ)) {
            float zero[NB_S][4];
            zero_acc<NB_S>(zero);
            store_ds(zero);
        } else {
            float sacc[NB_S][4];
            zero_acc<NB_S>(sacc);
            // P^T: rows = this warp's 16 keys, columns = BQ queries.
            warp_mma_smem_nt<NB_S, D>(sacc, Ks + wrow * SROW, SROW, Qst, SROW, lane);
            const bool need_mask = !warp_sees_all(ws, i0, BQ);
#pragma unroll
            for (int n = 0; n < NB_S; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int col = n * 8 + 2 * t + (e & 1);
                    float p = fast_exp2(sacc[n][e] * c - lse_to_log2(lse_t[col]));
                    if (need_mask &&
                        !span_visible(m, sp[e / 2], i0 + col, i0 + col, jw + g + (e / 2) * 8))
                        p = 0.0f;
                    sacc[n][e] = p;
                }

            warp_mma_reg_nn<NB_D, BQ / 16>(dva, sacc, dOst, SROW, lane);  // dV += P^T dO

            float dpacc[NB_S][4];
            zero_acc<NB_S>(dpacc);
            warp_mma_smem_nt<NB_S, D>(dpacc, Vs + wrow * SROW, SROW, dOst, SROW, lane);
#pragma unroll
            for (int n = 0; n < NB_S; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int col = n * 8 + 2 * t + (e & 1);
                    sacc[n][e] = s.scale * sacc[n][e] * (dpacc[n][e] - del_t[col]);
                }
            store_ds(sacc);
            warp_mma_reg_nn<NB_D, BQ / 16>(dka, sacc, Qst, SROW, lane);  // dK += dS^T Q
        }
        // Thread 0 finds this CTA's turn meanwhile: the count of key tiles
        // that add into (b, h, qt) before it.
        if (tid == 0) *turn_s = jt - first_key_tile(s, docs, (int)b, BKV, BQ, qt, jt);
        __syncthreads();

        // dQ_tile = dS K: warp (rb, cg) owns rows rb*16.., columns cg*DW..;
        // added into dQ in key-tile order: the first pass's product is
        // computed before the wait for our turn (every warp makes the same
        // passes, so the barrier is uniform).
        const int rb = warp % RB, cg = warp / RB;
        const int32_t turn = *turn_s;
        int32_t *sem = dq_sem + (b * s.H + h) * n_qt + qt;
        const bool first = turn == 0, last = turn_s[1] > qt;
#pragma unroll 1
        for (int c0 = cg * DW; c0 < (cg + 1) * DW; c0 += 8 * NB_Q) {
            float dqa[NB_Q][4];
            zero_acc<NB_Q>(dqa);
            warp_mma_smem_nn<NB_Q, BKV>(dqa, dSs + rb * 16 * SDS, SDS, Ks + c0, SROW, lane);
            if (c0 == cg * DW) {
                if (tid == 0) sem_wait_eq(sem, turn);
                __syncthreads();  // our turn, for every thread
            }
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int64_t i = i0 + rb * 16 + g + r * 8;
                if (i >= s.Tq) continue;
                const int64_t off = ((b * s.Tq + i) * s.H + h) * D + c0 + 2 * t;
                float *acc = o.dq_acc + off;
#pragma unroll
                for (int n = 0; n < NB_Q; n++) {
                    float2 x = make_float2(dqa[n][2 * r], dqa[n][2 * r + 1]);
                    if (!(OUT_BF16 && first)) {
                        const float2 a = ld_cg_f2(acc + n * 8);
                        x.x += a.x;
                        x.y += a.y;
                    }
                    if (OUT_BF16 && last) {
                        __nv_bfloat162 *pq = (__nv_bfloat162 *)((bf16 *)o.dq + off + n * 8);
                        const __nv_bfloat162 y = *pq;
                        *pq = __floats2bfloat162_rn(__bfloat162float(y.x) + x.x,
                                                    __bfloat162float(y.y) + x.y);
                    } else {
                        st_cg_f2(acc + n * 8, x);
                    }
                }
            }
        }
        gpu_fence();
        __syncthreads();  // every add done (and every warp done with this stage and dS)
        if (tid == 0) sem_post(sem, turn + 1);
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t j = jw + g + r * 8;
        if (j >= s.Tk) continue;
        const int64_t off = ((b * s.Tk + j) * s.Hkv + hk) * D + 2 * t;
#pragma unroll
        for (int n = 0; n < NB_D; n++) {
            if (OUT_BF16) {
                __nv_bfloat162 *pk = (__nv_bfloat162 *)((bf16 *)o.dk + off + n * 8);
                __nv_bfloat162 *pv = (__nv_bfloat162 *)((bf16 *)o.dv + off + n * 8);
                const __nv_bfloat162 a = *pk, bv = *pv;
                *pk = __floats2bfloat162_rn(__bfloat162float(a.x) + dka[n][2 * r],
                                            __bfloat162float(a.y) + dka[n][2 * r + 1]);
                *pv = __floats2bfloat162_rn(__bfloat162float(bv.x) + dva[n][2 * r],
                                            __bfloat162float(bv.y) + dva[n][2 * r + 1]);
            } else {
                float2 *pk = (float2 *)((float *)o.dk + off + n * 8);
                float2 *pv = (float2 *)((float *)o.dv + off + n * 8);
                const float2 a = *pk, bv = *pv;
                *pk = make_float2(a.x + dka[n][2 * r], a.y + dka[n][2 * r + 1]);
                *pv = make_float2(bv.x + dva[n][2 * r], bv.y + dva[n][2 * r + 1]);
            }
        }
    }
}

template <int D, int BKV, bool OUT_BF16>
static void launch_bwd_tiles(bwd_out o, const void *dout, const void *q, const void *k,
                             const void *v, const float *lse, const float *delta,
                             int32_t *dq_sem, cu_attn_docs docs, const attn_shape *s,
                             cudaStream_t st)
{
    const int smem = bwd_smem_bytes<D, BKV>();
    set_smem_limit(attn_bwd_bf16_kernel<D, BKV, OUT_BF16>, smem);
    CU_CHECK(cudaMemsetAsync(dq_sem, 0, sizeof(int32_t) * (size_t)cu_attn_dq_sem_ints(s), st));
    dim3 grid((unsigned)((s->Tk + BKV - 1) / BKV), (unsigned)s->Hkv, (unsigned)s->B);
    CU_ATTN_ORDERED_LAUNCH();
    attn_bwd_bf16_kernel<D, BKV, OUT_BF16><<<grid, BKV * 2, smem, st>>>(
        o, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, lse, delta,
        dq_sem, docs, *s);
    CU_CHECK_LAUNCH();
}

template <int D, bool OUT_BF16>
static void launch_bwd_bf16(bwd_out o, const void *dout, const void *q, const void *k,
                            const void *v, const float *lse, const float *delta, int32_t *dq_sem,
                            cu_attn_docs docs, const attn_shape *s, cudaStream_t st)
{
    if (bwd_rows(D) == 128)
        launch_bwd_tiles<D, 128, OUT_BF16>(o, dout, q, k, v, lse, delta, dq_sem, docs, s, st);
    else
        launch_bwd_tiles<D, 64, OUT_BF16>(o, dout, q, k, v, lse, delta, dq_sem, docs, s, st);
}

template <bool OUT_BF16>
static void launch_bwd_d(bwd_out o, const void *dout, const void *q, const void *k,
                         const void *v, const float *lse, const float *delta, int32_t *dq_sem,
                         cu_attn_docs docs, const attn_shape *s, cudaStream_t st)
{
    if (s->D == 64) launch_bwd_bf16<64, OUT_BF16>(o, dout, q, k, v, lse, delta, dq_sem, docs, s, st);
    else launch_bwd_bf16<128, OUT_BF16>(o, dout, q, k, v, lse, delta, dq_sem, docs, s, st);
}

// ---------------------------------------------------------------------------
// delta = rowsum(dout * out): one warp per (b, t, h) row.

template <typename T>
static __device__ __forceinline__ float to_f32(T x);
template <>
__device__ __forceinline__ float to_f32<float>(float x)
{
    return x;
}
template <>
__device__ __forceinline__ float to_f32<bf16>(bf16 x)
{
    return __bfloat162float(x);
}

template <typename T>
__global__ void __launch_bounds__(128)
    attn_delta_kernel(float *delta, const T *dout, const T *out, int64_t B, int64_t T_, int H,
                      int D)
{
    const int lane = threadIdx.x % 32;
    const int64_t row = (int64_t)blockIdx.x * 4 + threadIdx.x / 32;  // (b, t, h), h fastest
    if (row >= B * T_ * H) return;
    float acc = 0.0f;
    for (int d = lane; d < D; d += 32) acc += to_f32(dout[row * D + d]) * to_f32(out[row * D + d]);
#pragma unroll
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) {
        const int64_t h = row % H, bt = row / H, b = bt / T_, t = bt % T_;
        delta[(b * H + h) * T_ + t] = acc;
    }
}

// ---------------------------------------------------------------------------
// Entry points

void cu_attn_backward_delta(float *delta, const void *dout, const void *out, int64_t B,
                            int64_t T, int H, int D, cu_dtype dt, cudaStream_t st)
{
    const int64_t rows = B * T * H;
    if (rows == 0) return;
    const unsigned grid = (unsigned)((rows + 3) / 4);
    if (dt == CU_F32)
        attn_delta_kernel<float><<<grid, 128, 0, st>>>(delta, (const float *)dout,
                                                        (const float *)out, B, T, H, D);
    else
        attn_delta_kernel<bf16><<<grid, 128, 0, st>>>(delta, (const bf16 *)dout,
                                                       (const bf16 *)out, B, T, H, D);
    CU_CHECK_LAUNCH();
}

void cu_attn_block_backward(float *dq, float *dk, float *dv, const void *dout, const void *q,
                            const void *k, const void *v, const float *lse, const float *delta,
                            int32_t *dq_sem, const cu_attn_docs *docs, const attn_shape *s,
                            cu_dtype dt, cudaStream_t st)
{
    cu_attn_check_shape(s);
    if (cu_attn_block_masked(s)) return;
    const cu_attn_docs d = cu_attn_docs_of(docs);
    if (dt == CU_F32) {
        cu_attn_f32_block_backward(dq, dk, dv, (const float *)dout, (const float *)q,
                                   (const float *)k, (const float *)v, lse, delta, d, s, st);
        return;
    }
    const bwd_out o = {dq, dk, dv, dq};
    launch_bwd_d<false>(o, dout, q, k, v, lse, delta, dq_sem, d, s, st);
}

void cu_attn_backward(void *dq, void *dk, void *dv, const void *dout, const void *q,
                      const void *k, const void *v, const void *out, const float *lse,
                      float *delta, float *dq_acc, int32_t *dq_sem, const cu_attn_docs *docs,
                      const attn_shape *s, cu_dtype dt, cudaStream_t st)
{
    cu_attn_check_shape(s);
    if (s->Tq != s->Tk || s->q_start != s->k_start)
        die("cu_attn_backward: whole attention needs Tq == Tk and q_start == k_start");
    cu_attn_backward_delta(delta, dout, out, s->B, s->Tq, s->H, s->D, dt, st);
    if (dt == CU_F32) {
        cu_attn_block_backward((float *)dq, (float *)dk, (float *)dv, dout, q, k, v, lse, delta,
                               dq_sem, docs, s, dt, st);
        return;
    }
    const bwd_out o = {dq, dk, dv, dq_acc};
    launch_bwd_d<true>(o, dout, q, k, v, lse, delta, dq_sem, cu_attn_docs_of(docs), s, st);
}
