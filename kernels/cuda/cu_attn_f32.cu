// cu_attn_f32: attention on fp32 inputs with CUDA cores, the agreement mode
// that must match the CPU reference to 1e-4. Simple on purpose: one warp per
// output row, the D elements of a row spread over the 32 lanes (D / 32 each)
// and dot products reduced by butterfly shuffles (every lane gets the same
// sum). Keys are visited one by one with an online softmax; only the row's
// span is visited (causal horizon, document: cu_attn_tile.cuh). Deterministic (no atomics): every output row belongs
// to one warp, and the dK, dV rows of a kv head loop its G query heads in
// order. Not tuned: bf16 is the fast path.
#include "cu_attn_f32.h"
#include "cu_attn_tile.cuh"

enum { F32_WARPS = 4, F32_THREADS = F32_WARPS * 32 };

static __device__ __forceinline__ float warp_sum(float x)
{
#pragma unroll
    for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

template <int E>
static __device__ __forceinline__ float warp_dot(const float a[E], const float *b, int lane)
{
    float d = 0.0f;
#pragma unroll
    for (int e = 0; e < E; e++) d += a[e] * b[lane + 32 * e];
    return warp_sum(d);
}

// Final lse in log2 units; a row that saw no key (-inf) gives +inf, so that
// 2^(s - lse2) = 0.
static __device__ __forceinline__ float lse_log2(float x)
{
    return x == -INFINITY ? INFINITY : x * CU_ATTN_LOG2E;
}

// One warp per query row (b, h, i), i fastest.
template <int D, bool MERGE>
__global__ void __launch_bounds__(F32_THREADS)
    attn_fwd_f32_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                        cu_attn_docs docs, attn_shape s)
{
    constexpr int E = D / 32;
    const int lane = threadIdx.x % 32;
    const int64_t row = (int64_t)blockIdx.x * F32_WARPS + threadIdx.x / 32;
    if (row >= s.B * s.H * s.Tq) return;  // the whole warp
    const int64_t i = row % s.Tq, b = row / (s.Tq * s.H);
    const int h = (int)(row / s.Tq % s.H), hk = h / (s.H / s.Hkv);
    const attn_mask m = make_mask(s, docs, b);
    const float c = s.scale * CU_ATTN_LOG2E;
    const int64_t ldk = (int64_t)s.Hkv * D;
    const float *kb = k + (b * s.Tk * s.Hkv + hk) * D, *vb = v + (b * s.Tk * s.Hkv + hk) * D;
    const int64_t row_off = ((b * s.Tq + i) * s.H + h) * D;

    float qv[E], o[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        qv[e] = q[row_off + lane + 32 * e];
        o[e] = 0.0f;
    }
    float m_run = -INFINITY, l = 0.0f;
    const row_span keys = query_span(m, i);
    for (int64_t j = keys.lo; j < keys.hi; j++) {
        if (m.sq && m.sq[i] != m.sk[j]) continue;
        const float x = warp_dot<E>(qv, kb + j * ldk, lane) * c;
        const float mn = fmaxf(m_run, x);
        const float alpha = exp2f(m_run - mn), p = exp2f(x - mn);
        l = l * alpha + p;
        const float *vr = vb + j * ldk;
#pragma unroll
        for (int e = 0; e < E; e++) o[e] = o[e] * alpha + p * vr[lane + 32 * e];
        m_run = mn;
    }
    const float lse_b = l > 0.0f ? (m_run + log2f(l)) * CU_ATTN_LN2 : -INFINITY;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float *lse_p = lse + (b * s.H + h) * s.Tq + i;
    float ca = 0.0f, cb = 1.0f, lse_new = lse_b;
    if (MERGE) merge_weights(*lse_p, lse_b, &ca, &cb, &lse_new);
    __syncwarp();  // every lane read the old lse before lane 0 writes
    if (lane == 0) *lse_p = lse_new;
#pragma unroll
    for (int e = 0; e < E; e++) {
        float *y = out + row_off + lane + 32 * e;
        *y = MERGE ? ca * *y + cb * o[e] * inv : o[e] * inv;
    }
}

// dQ: one warp per query row (b, h, i).
template <int D>
__global__ void __launch_bounds__(F32_THREADS)
    attn_bwd_dq_f32_kernel(float *dq, const float *dout, const float *q, const float *k,
                           const float *v, const float *lse, const float *delta,
                           cu_attn_docs docs, attn_shape s)
{
    constexpr int E = D / 32;
    const int lane = threadIdx.x % 32;
    const int64_t row = (int64_t)blockIdx.x * F32_WARPS + threadIdx.x / 32;
    if (row >= s.B * s.H * s.Tq) return;
    const int64_t i = row % s.Tq, b = row / (s.Tq * s.H);
    const int h = (int)(row / s.Tq % s.H), hk = h / (s.H / s.Hkv);
    const attn_mask m = make_mask(s, docs, b);
    const float c = s.scale * CU_ATTN_LOG2E;
    const int64_t ldk = (int64_t)s.Hkv * D;
    const float *kb = k + (b * s.Tk * s.Hkv + hk) * D, *vb = v + (b * s.Tk * s.Hkv + hk) * D;
    const int64_t row_off = ((b * s.Tq + i) * s.H + h) * D;
    const float lse2 = lse_log2(lse[(b * s.H + h) * s.Tq + i]);
    const float dl = delta[(b * s.H + h) * s.Tq + i];
    if (lse2 == INFINITY) return;  // the row saw no key: zero gradient

    float qv[E], dov[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        qv[e] = q[row_off + lane + 32 * e];
        dov[e] = dout[row_off + lane + 32 * e];
        acc[e] = 0.0f;
    }
    const row_span keys = query_span(m, i);
    for (int64_t j = keys.lo; j < keys.hi; j++) {
        if (m.sq && m.sq[i] != m.sk[j]) continue;
        const float *kr = kb + j * ldk;
        const float p = exp2f(warp_dot<E>(qv, kr, lane) * c - lse2);
        const float dp = warp_dot<E>(dov, vb + j * ldk, lane);
        const float ds = s.scale * p * (dp - dl);
#pragma unroll
        for (int e = 0; e < E; e++) acc[e] += ds * kr[lane + 32 * e];
    }
#pragma unroll
    for (int e = 0; e < E; e++) dq[row_off + lane + 32 * e] += acc[e];
}

// dK, dV: one warp per key row (b, hk, j), over the G query heads of kv head
// hk in order and every query that sees the key.
template <int D>
__global__ void __launch_bounds__(F32_THREADS)
    attn_bwd_dkdv_f32_kernel(float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *lse,
                             const float *delta, cu_attn_docs docs, attn_shape s)
{
    constexpr int E = D / 32;
    const int lane = threadIdx.x % 32;
    const int64_t row = (int64_t)blockIdx.x * F32_WARPS + threadIdx.x / 32;
    if (row >= s.B * s.Hkv * s.Tk) return;
    const int64_t j = row % s.Tk, b = row / (s.Tk * s.Hkv);
    const int hk = (int)(row / s.Tk % s.Hkv), G = s.H / s.Hkv;
    const attn_mask m = make_mask(s, docs, b);
    const float c = s.scale * CU_ATTN_LOG2E;
    const int64_t ldq = (int64_t)s.H * D;
    const int64_t kv_off = ((b * s.Tk + j) * s.Hkv + hk) * D;

    float kv[E], vv[E], dkv[E], dvv[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        kv[e] = k[kv_off + lane + 32 * e];
        vv[e] = v[kv_off + lane + 32 * e];
        dkv[e] = dvv[e] = 0.0f;
    }
    const row_span queries = key_span(m, j);
    for (int gi = 0; gi < G; gi++) {
        const int h = hk * G + gi;
        const float *qb = q + (b * s.Tq * s.H + h) * D, *dob = dout + (b * s.Tq * s.H + h) * D;
        const float *lse_h = lse + (b * s.H + h) * s.Tq, *delta_h = delta + (b * s.H + h) * s.Tq;
        for (int64_t i = queries.lo; i < queries.hi; i++) {
            if (m.sq && m.sq[i] != m.sk[j]) continue;
            const float lse2 = lse_log2(lse_h[i]);
            if (lse2 == INFINITY) continue;
            const float *qr = qb + i * ldq, *dor = dob + i * ldq;
            float sqk = 0.0f, dp = 0.0f;
#pragma unroll
            for (int e = 0; e < E; e++) {
                sqk += kv[e] * qr[lane + 32 * e];
                dp += vv[e] * dor[lane + 32 * e];
            }
            const float p = exp2f(warp_sum(sqk) * c - lse2);
            const float ds = s.scale * p * (warp_sum(dp) - delta_h[i]);
#pragma unroll
            for (int e = 0; e < E; e++) {
                dvv[e] += p * dor[lane + 32 * e];
                dkv[e] += ds * qr[lane + 32 * e];
            }
        }
    }
#pragma unroll
    for (int e = 0; e < E; e++) {
        dk[kv_off + lane + 32 * e] += dkv[e];
        dv[kv_off + lane + 32 * e] += dvv[e];
    }
}

static unsigned warp_grid(int64_t rows) { return (unsigned)((rows + F32_WARPS - 1) / F32_WARPS); }

void cu_attn_f32_forward(float *out, float *lse, bool merge, const float *q, const float *k,
                         const float *v, cu_attn_docs docs, const attn_shape *s, cudaStream_t st)
{
    const unsigned grid = warp_grid(s->B * s->H * s->Tq);
    if (grid == 0) return;
#define LAUNCH(D, M)                                                                        \
    attn_fwd_f32_kernel<D, M><<<grid, F32_THREADS, 0, st>>>(out, lse, q, k, v, docs, *s)
    if (s->D == 64)
        merge ? LAUNCH(64, true) : LAUNCH(64, false);
    else
        merge ? LAUNCH(128, true) : LAUNCH(128, false);
#undef LAUNCH
    CU_CHECK_LAUNCH();
}

void cu_attn_f32_block_backward(float *dq, float *dk, float *dv, const float *dout,
                                const float *q, const float *k, const float *v, const float *lse,
                                const float *delta, cu_attn_docs docs, const attn_shape *s,
                                cudaStream_t st)
{
    const unsigned gq = warp_grid(s->B * s->H * s->Tq), gk = warp_grid(s->B * s->Hkv * s->Tk);
    if (s->D == 64) {
        attn_bwd_dq_f32_kernel<64><<<gq, F32_THREADS, 0, st>>>(dq, dout, q, k, v, lse, delta,
                                                                docs, *s);
        CU_CHECK_LAUNCH();
        attn_bwd_dkdv_f32_kernel<64><<<gk, F32_THREADS, 0, st>>>(dk, dv, dout, q, k, v, lse,
                                                                  delta, docs, *s);
    } else {
        attn_bwd_dq_f32_kernel<128><<<gq, F32_THREADS, 0, st>>>(dq, dout, q, k, v, lse, delta,
                                                                 docs, *s);
        CU_CHECK_LAUNCH();
        attn_bwd_dkdv_f32_kernel<128><<<gk, F32_THREADS, 0, st>>>(dk, dv, dout, q, k, v, lse,
                                                                   delta, docs, *s);
    }
    CU_CHECK_LAUNCH();
}
