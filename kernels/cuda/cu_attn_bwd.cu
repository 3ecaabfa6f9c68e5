// cu_attn_bwd: FlashAttention-2 backward on tensor cores (bf16), and the
// backward entry points of cu_attn.h (fp32 goes to cu_attn_f32.cu).
//
// Deterministic by construction: two kernels, no atomics. Each output
// element is summed by one thread in a fixed order.
//   dkdv  one CTA per (b, kv head, tile of BKV keys); BKV / 16 warps, 16 keys
//         each (BKV = 128 where its shared memory fits, else 64).
//         dK, dV of the tile stay in registers while the CTA loops over the
//         G query heads of the kv head and, for each, the queries that can
//         see the keys (their spans, cu_attn_tile.cuh: from the diagonal or
//         the document start, whichever is later, to the document end), in
//         tiles starting there. Per query tile:
//           S^T = K Q^T, P^T = 2^(S^T c - lse2)     (P recomputed from lse)
//           dV += P^T dO
//           dP^T = V dO^T, dS^T = scale P^T (dP^T - delta)
//           dK += dS^T Q
//   dq    one CTA per (b, head, tile of 64 queries), like the forward (the
//         keys of the rows' spans only):
//           S = Q K^T, P, dP = dO V^T, dS, dQ += dS K
// In both, a warp skips the mask where its 16 rows see the whole tile and
// skips the tile where they see none of it.
// The price of determinism over FA2's atomic dQ: S and dP are computed
// twice, 7 tile products per (query, key) tile instead of 5 (1.4x the
// FLOPs); the reward is bitwise-reproducible gradients and no fp32 dQ
// scratch.
//
// Tiles and shared memory per CTA (bf16 rows padded to D + 8; the same on
// sm_80 and sm_90, both opt in above 48 KB):
//   dkdv  K, V BKV rows; Q, dO 2 stages x BQ rows (BQ = 64 at D = 64, 32 at
//         D = 128, to keep dK + dV + S + dP within 255 registers); lse, delta
//         2 x BQ floats. BKV 128: D = 64: 73 KB, D = 128: 103 KB; BKV 64:
//         55 KB / 69 KB (sm_86 / sm_89 at D = 128).
//   dq    Q, dO BR rows; K, V 2 stages x 64 rows. BR = 64 (4 warps): D = 64:
//         54 KB, D = 128: 102 KB. On GPUs that allow less per block (sm_86 /
//         sm_89: 99 KB) D = 128 takes BR = 32 (2 warps): 85 KB. The choice is
//         made from the device's opt-in limit (cu_attn_smem_limit), and
//         cu_attn_supported refuses D where even that does not fit.
#include "cu_attn.h"
#include "cu_attn_f32.h"
#include "cu_attn_tile.cuh"
#include "die.h"

enum { DQ_BC = 64 };

template <int D>
static constexpr __host__ __device__ int dkdv_bq()
{
    return D == 128 ? 32 : 64;
}

template <int D, int BKV>
static constexpr int dkdv_smem_bytes()
{
    return (2 * BKV + 4 * dkdv_bq<D>()) * (D + 8) * (int)sizeof(bf16) +
           4 * dkdv_bq<D>() * (int)sizeof(float);
}

// Keys per dK/dV CTA on the current device: 128 (8 warps) where it fits,
// else 64 (4 warps). At ~250 registers either is 8 warps per SM; 128 keys
// halve the Q / dO loads per product.
static int dkdv_rows(int D)
{
    const int big = D == 64 ? dkdv_smem_bytes<64, 128>() : dkdv_smem_bytes<128, 128>();
    return big <= cu_attn_smem_limit() ? 128 : 64;
}

template <int D, int BR>
static constexpr int dq_smem_bytes()
{
    return (2 * BR + 4 * DQ_BC) * (D + 8) * (int)sizeof(bf16);
}

// Query rows per dQ CTA for head dim D on the current device: 64 where its
// shared memory fits (always at D = 64: 54 KB), else 32.
static int dq_rows(int D)
{
    return D == 64 || dq_smem_bytes<128, 64>() <= cu_attn_smem_limit() ? 64 : 32;
}

int cu_attn_bwd_smem_bytes(int D)
{
    const int kv = D == 64    ? (dkdv_rows(64) == 128 ? dkdv_smem_bytes<64, 128>()
                                                      : dkdv_smem_bytes<64, 64>())
                   : dkdv_rows(128) == 128 ? dkdv_smem_bytes<128, 128>()
                                           : dkdv_smem_bytes<128, 64>();
    const int q = D == 64                ? dq_smem_bytes<64, 64>()
                  : dq_rows(128) == 64 ? dq_smem_bytes<128, 64>()
                                       : dq_smem_bytes<128, 32>();
    return kv > q ? kv : q;
}

// The final lse in log2 units; a row that saw no key (-inf) gives +inf, so
// that P = 2^(s - lse2) = 0.
static __device__ __forceinline__ float lse_to_log2(float x)
{
    return x == -INFINITY ? INFINITY : x * CU_ATTN_LOG2E;
}

// ---------------------------------------------------------------------------
// dK, dV

// BKV keys per CTA, one warp per 16.
template <int D, int BKV>
__global__ void __launch_bounds__(BKV * 2)
    attn_bwd_dkdv_bf16_kernel(float *dk, float *dv, const bf16 *dout, const bf16 *q,
                              const bf16 *k, const bf16 *v, const float *lse, const float *delta,
                              cu_attn_docs docs, attn_shape s)
{
    constexpr int BQ = dkdv_bq<D>(), SROW = D + 8, NB_S = BQ / 8, NB_D = D / 8, THREADS = BKV * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Ks = (bf16 *)smem_raw;
    bf16 *Vs = Ks + BKV * SROW;
    bf16 *Qs = Vs + BKV * SROW;  // 2 stages
    bf16 *dOs = Qs + 2 * BQ * SROW;  // 2 stages
    float *lses = (float *)(dOs + 2 * BQ * SROW);  // 2 stages
    float *dels = lses + 2 * BQ;                   // 2 stages

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int64_t j0 = (int64_t)blockIdx.x * BKV;
    const int hk = blockIdx.y, G = s.H / s.Hkv;
    const int64_t b = blockIdx.z;
    const attn_mask m = make_mask(s, docs, b);
    const int64_t ldq = (int64_t)s.H * D, ldk = (int64_t)s.Hkv * D;
    const float c = s.scale * CU_ATTN_LOG2E;
    const int wrow = warp * 16;
    const int64_t jw = j0 + wrow;  // this warp's first key

    // Query tiles of BQ rows from the first query that sees a key of the
    // tile, for each of the G heads.
    const int64_t cols = s.Tk - j0 < BKV ? s.Tk - j0 : BKV;
    const row_span qs = key_tile_span(m, j0, cols);
    if (qs.hi <= qs.lo) return;  // nothing sees these keys: dK, dV += 0
    const int64_t nq = (qs.hi - qs.lo + BQ - 1) / BQ, n_it = G * nq;
    row_span sp[2];  // queries that see the thread's keys g and g + 8
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t j = jw + g + r * 8;
        sp[r] = j < s.Tk ? key_span(m, j) : no_span();
    }
    const warp_spans ws = summarise_warp(sp, m.sq != NULL);

    // Loads the query-side tiles of iteration it into stage st.
    auto load_q_side = [&](int64_t it, int st) {
        const int h = hk * G + (int)(it / nq);
        const int64_t i0 = qs.lo + it % nq * BQ;
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

    for (int64_t it = 0; it < n_it; it++) {
        const int st = (int)(it & 1);
        if (it + 1 < n_it) {
            load_q_side(it + 1, st ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (tid == 0) CU_ATTN_COUNT_TILE(2);
        const int64_t i0 = qs.lo + it % nq * BQ;
        const bf16 *Qst = Qs + st * BQ * SROW, *dOst = dOs + st * BQ * SROW;
        const float *lse_t = lses + st * BQ, *del_t = dels + st * BQ;

        if (!warp_sees_none(ws, i0, BQ)) {
            // P^T: rows = this warp's 16 keys, columns = BQ queries.
            float sacc[NB_S][4];
            zero_acc<NB_S>(sacc);
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

            warp_mma_reg_nn<NB_D, BQ / 16>(dka, sacc, Qst, SROW, lane);  // dK += dS^T Q
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t j = jw + g + r * 8;
        if (j >= s.Tk) continue;
        const int64_t off = ((b * s.Tk + j) * s.Hkv + hk) * D + 2 * t;
#pragma unroll
        for (int n = 0; n < NB_D; n++) {
            float2 *pk = (float2 *)(dk + off + n * 8), *pv = (float2 *)(dv + off + n * 8);
            float2 a = *pk, bv = *pv;
            *pk = make_float2(a.x + dka[n][2 * r], a.y + dka[n][2 * r + 1]);
            *pv = make_float2(bv.x + dva[n][2 * r], bv.y + dva[n][2 * r + 1]);
        }
    }
}

// ---------------------------------------------------------------------------
// dQ

// BR query rows per CTA, one warp per 16.
template <int D, int BR>
__global__ void __launch_bounds__(BR * 2)
    attn_bwd_dq_bf16_kernel(float *dq, const bf16 *dout, const bf16 *q, const bf16 *k,
                            const bf16 *v, const float *lse, const float *delta,
                            cu_attn_docs docs, attn_shape s)
{
    constexpr int SROW = D + 8, NB_S = DQ_BC / 8, NB_D = D / 8, THREADS = BR * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = (bf16 *)smem_raw;
    bf16 *dOs = Qs + BR * SROW;
    bf16 *Ks = dOs + BR * SROW;     // 2 stages
    bf16 *Vs = Ks + 2 * DQ_BC * SROW;  // 2 stages

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int64_t qt = gridDim.x - 1 - blockIdx.x;
    const int h = blockIdx.y;
    const int64_t b = blockIdx.z;
    const int hk = h / (s.H / s.Hkv);
    const int64_t i0 = qt * BR;
    const int64_t rows = s.Tq - i0 < BR ? s.Tq - i0 : BR;
    const attn_mask m = make_mask(s, docs, b);
    const int64_t ldq = (int64_t)s.H * D, ldk = (int64_t)s.Hkv * D;
    const int64_t qoff = ((b * s.Tq + i0) * s.H + h) * D;
    const bf16 *Kg = k + (b * s.Tk * s.Hkv + hk) * D, *Vg = v + (b * s.Tk * s.Hkv + hk) * D;
    const row_span keys = query_tile_span(m, i0, rows);
    const int n_kt = (keys.hi - keys.lo + DQ_BC - 1) / DQ_BC;
    const float c = s.scale * CU_ATTN_LOG2E;
    const int wrow = warp * 16;
    const int64_t iw = i0 + wrow;
    if (n_kt == 0) return;

    // lse2, delta and the span of the thread's two rows (g, g + 8).
    float lse2[2], dl[2];
    row_span sp[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t i = iw + g + r * 8;
        const bool ok = i < s.Tq;
        lse2[r] = ok ? lse_to_log2(lse[(b * s.H + h) * s.Tq + i]) : INFINITY;
        dl[r] = ok ? delta[(b * s.H + h) * s.Tq + i] : 0.0f;
        sp[r] = ok ? query_span(m, i) : no_span();
    }
    const warp_spans ws = summarise_warp(sp, m.sq != NULL);

    load_tile_async<D, BR, THREADS>(Qs, q + qoff, ldq, rows, tid);
    load_tile_async<D, BR, THREADS>(dOs, dout + qoff, ldq, rows, tid);
    load_tile_async<D, DQ_BC, THREADS>(Ks, Kg + keys.lo * ldk, ldk, s.Tk - keys.lo, tid);
    load_tile_async<D, DQ_BC, THREADS>(Vs, Vg + keys.lo * ldk, ldk, s.Tk - keys.lo, tid);
    cp_async_commit();

    float dqa[NB_D][4];
    zero_acc<NB_D>(dqa);
    for (int kt = 0; kt < n_kt; kt++) {
        const int st = kt & 1;
        const int64_t j0 = keys.lo + (int64_t)kt * DQ_BC;
        if (kt + 1 < n_kt) {
            const int64_t j1 = j0 + DQ_BC;
            load_tile_async<D, DQ_BC, THREADS>(Ks + (st ^ 1) * DQ_BC * SROW, Kg + j1 * ldk,
                                                   ldk, s.Tk - j1, tid);
            load_tile_async<D, DQ_BC, THREADS>(Vs + (st ^ 1) * DQ_BC * SROW, Vg + j1 * ldk,
                                                   ldk, s.Tk - j1, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (tid == 0) CU_ATTN_COUNT_TILE(1);
        const bf16 *Kst = Ks + st * DQ_BC * SROW, *Vst = Vs + st * DQ_BC * SROW;

        if (!warp_sees_none(ws, j0, DQ_BC)) {
            float sacc[NB_S][4];
            zero_acc<NB_S>(sacc);
            warp_mma_smem_nt<NB_S, D>(sacc, Qs + wrow * SROW, SROW, Kst, SROW, lane);
            const bool need_mask = !warp_sees_all(ws, j0, DQ_BC);
#pragma unroll
            for (int n = 0; n < NB_S; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float p = fast_exp2(sacc[n][e] * c - lse2[e / 2]);
                    const int64_t j = j0 + n * 8 + 2 * t + (e & 1);
                    if (need_mask && !span_visible(m, sp[e / 2], j, iw + g + (e / 2) * 8, j))
                        p = 0.0f;
                    sacc[n][e] = p;
                }

            float dpacc[NB_S][4];
            zero_acc<NB_S>(dpacc);
            warp_mma_smem_nt<NB_S, D>(dpacc, dOs + wrow * SROW, SROW, Vst, SROW, lane);
#pragma unroll
            for (int n = 0; n < NB_S; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    sacc[n][e] = s.scale * sacc[n][e] * (dpacc[n][e] - dl[e / 2]);

            warp_mma_reg_nn<NB_D, DQ_BC / 16>(dqa, sacc, Kst, SROW, lane);  // dQ += dS K
        }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t i = iw + g + r * 8;
        if (i >= s.Tq) continue;
        const int64_t off = ((b * s.Tq + i) * s.H + h) * D + 2 * t;
#pragma unroll
        for (int n = 0; n < NB_D; n++) {
            float2 *p = (float2 *)(dq + off + n * 8);
            float2 a = *p;
            *p = make_float2(a.x + dqa[n][2 * r], a.y + dqa[n][2 * r + 1]);
        }
    }
}

template <int D, int BR>
static void launch_dq_bf16(float *dq, const void *dout, const void *q, const void *k,
                           const void *v, const float *lse, const float *delta, cu_attn_docs docs,
                           const attn_shape *s, cudaStream_t st)
{
    const int smem = dq_smem_bytes<D, BR>();
    set_smem_limit(attn_bwd_dq_bf16_kernel<D, BR>, smem);
    dim3 grid((unsigned)((s->Tq + BR - 1) / BR), (unsigned)s->H, (unsigned)s->B);
    attn_bwd_dq_bf16_kernel<D, BR><<<grid, BR * 2, smem, st>>>(
        dq, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, lse, delta,
        docs, *s);
    CU_CHECK_LAUNCH();
}

template <int D, int BKV>
static void launch_dkdv_bf16(float *dk, float *dv, const void *dout, const void *q,
                             const void *k, const void *v, const float *lse, const float *delta,
                             cu_attn_docs docs, const attn_shape *s, cudaStream_t st)
{
    const int smem = dkdv_smem_bytes<D, BKV>();
    set_smem_limit(attn_bwd_dkdv_bf16_kernel<D, BKV>, smem);
    dim3 grid((unsigned)((s->Tk + BKV - 1) / BKV), (unsigned)s->Hkv, (unsigned)s->B);
    attn_bwd_dkdv_bf16_kernel<D, BKV><<<grid, BKV * 2, smem, st>>>(
        dk, dv, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, lse, delta,
        docs, *s);
    CU_CHECK_LAUNCH();
}

template <int D>
static void launch_bwd_bf16(float *dq, float *dk, float *dv, const void *dout, const void *q,
                            const void *k, const void *v, const float *lse, const float *delta,
                            cu_attn_docs docs, const attn_shape *s, cudaStream_t st)
{
    if constexpr (D == 128) {
        if (dq_rows(D) == 32) launch_dq_bf16<D, 32>(dq, dout, q, k, v, lse, delta, docs, s, st);
        else launch_dq_bf16<D, 64>(dq, dout, q, k, v, lse, delta, docs, s, st);
    } else {
        launch_dq_bf16<D, 64>(dq, dout, q, k, v, lse, delta, docs, s, st);
    }
    if (dkdv_rows(D) == 128)
        launch_dkdv_bf16<D, 128>(dk, dv, dout, q, k, v, lse, delta, docs, s, st);
    else
        launch_dkdv_bf16<D, 64>(dk, dv, dout, q, k, v, lse, delta, docs, s, st);
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
                            const cu_attn_docs *docs, const attn_shape *s, cu_dtype dt,
                            cudaStream_t st)
{
    cu_attn_check_shape(s);
    if (cu_attn_block_masked(s)) return;
    const cu_attn_docs d = cu_attn_docs_of(docs);
    if (dt == CU_F32)
        cu_attn_f32_block_backward(dq, dk, dv, (const float *)dout, (const float *)q,
                                   (const float *)k, (const float *)v, lse, delta, d, s, st);
    else if (s->D == 64)
        launch_bwd_bf16<64>(dq, dk, dv, dout, q, k, v, lse, delta, d, s, st);
    else
        launch_bwd_bf16<128>(dq, dk, dv, dout, q, k, v, lse, delta, d, s, st);
}

void cu_attn_backward(float *dq, float *dk, float *dv, const void *dout, const void *q,
                      const void *k, const void *v, const void *out, const float *lse,
                      float *delta, const cu_attn_docs *docs, const attn_shape *s, cu_dtype dt,
                      cudaStream_t st)
{
    cu_attn_check_shape(s);
    if (s->Tq != s->Tk || s->q_start != s->k_start)
        die("cu_attn_backward: whole attention needs Tq == Tk and q_start == k_start");
    cu_attn_backward_delta(delta, dout, out, s->B, s->Tq, s->H, s->D, dt, st);
    cu_attn_block_backward(dq, dk, dv, dout, q, k, v, lse, delta, docs, s, dt, st);
}
