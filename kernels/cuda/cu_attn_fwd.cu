// cu_attn_fwd: FlashAttention-2 forward on tensor cores (bf16), and the
// forward entry points of cu_attn.h (fp32 goes to cu_attn_f32.cu).
//
// Tiling. One CTA = BR / 16 warps = one (sequence b, query head h, tile of
// BR query rows): BR = 128 (8 warps) at D = 128 where its shared memory fits
// the device, else 64 (4 warps; see fwd_rows). Each warp owns 16 query
// rows end to end, so the online softmax needs only shuffles inside a quad
// of lanes, never the CTA. Key/value tiles of FWD_BC = 64 rows stream
// through shared memory with cp.async, double buffered (tile t+1 loads
// while tile t computes); 128 query rows per CTA halve the K/V traffic into
// shared memory per product against 64.
//   S = Q K^T        mma m16n8k16, Q (16 x D) and K from shared (ldmatrix)
//   P = 2^(S c - m)  in registers (c = scale * log2 e; one FFMA per score:
//                    the running max m is kept in scaled units, the raw
//                    scores' max times c is the scaled scores' max), online
//                    max / sum
//   O += P V         P straight from the S accumulators, V by ldmatrix.trans
// Registers per thread: O 16 x D / 32 lanes (32 or 64 floats), S 32 floats.
// Shared memory per CTA, bf16 with rows padded to D + 8 elements:
//   Q BR rows + K, V 2 stages x 64 rows:
//   BR 128 (D = 128): 102 KB; BR 64: D = 64: 45 KB, D = 128: 85 KB.
// The same code and tiles on sm_80 and sm_90; sm_86 / sm_89 (99 KB per
// block) take BR 64 at D = 128.
// No wgmma / TMA yet: this is the portable FA2 path (HMMA on Hopper too).
//
// Which keys: a query tile loops only over the keys its rows may see (the
// rows' spans, cu_attn_tile.cuh): from the first row's document start to the
// last row's causal horizon / document end, so key tiles past the diagonal
// or wholly in other documents cost nothing. A warp whose rows all see the
// whole key tile skips the mask; a warp whose rows see none of it skips the
// tile (it still takes part in the CTA's loads and barriers). The grid runs
// query tiles last-first (longest first under a causal mask).
// Ring block form: all masking is on global indices (q_start, k_start), so a
// key block entirely in the future is skipped on the host (launch-free) and
// partially visible blocks fall out of the same spans.
#include "cu_attn.h"
#include "cu_attn_f32.h"
#include "cu_attn_tile.cuh"
#include "die.h"

enum { FWD_BC = 64 };

template <int D, int BR>
static constexpr int fwd_smem_bytes()
{
    return (BR + 4 * FWD_BC) * (D + 8) * (int)sizeof(bf16);
}

// Query rows per forward CTA for head dim D on the current device. D = 128:
// 128 where it fits (214 registers: 1 CTA of 8 warps per SM, as 2 CTAs of
// 4 warps at 64 rows with 238; half the K/V loads per product). D = 64: 64
// (168 registers: 3 CTAs of 4 warps per SM; 128 rows would take 142, so 1
// CTA of 8 warps: fewer warps in flight). Register counts: ptxas, sm_90.
static int fwd_rows(int D)
{
    return D == 128 && fwd_smem_bytes<128, 128>() <= cu_attn_smem_limit() ? 128 : 64;
}

// MERGE: (out_acc fp32, lse) hold a running result, merged by log-sum-exp.
// !MERGE: out (bf16) and lse written; rows that see no key get 0 and -inf.
template <int D, int BR, bool MERGE>
__global__ void __launch_bounds__(BR * 2)
    attn_fwd_bf16_kernel(float *out_acc, bf16 *out, float *lse, const bf16 *q, const bf16 *k,
                         const bf16 *v, cu_attn_docs docs, attn_shape s)
{
    constexpr int SROW = D + 8, NB_S = FWD_BC / 8, NB_O = D / 8, THREADS = BR * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = (bf16 *)smem_raw;
    bf16 *Ks = Qs + BR * SROW;      // 2 stages
    bf16 *Vs = Ks + 2 * FWD_BC * SROW;  // 2 stages

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int64_t qt = gridDim.x - 1 - blockIdx.x;
    const int h = blockIdx.y;
    const int64_t b = blockIdx.z;
    const int hk = h / (s.H / s.Hkv);
    const int64_t i0 = qt * BR;
    const int64_t rows = s.Tq - i0 < BR ? s.Tq - i0 : BR;
    const attn_mask m = make_mask(s, docs, b);
    const int64_t ldq = (int64_t)s.H * D, ldk = (int64_t)s.Hkv * D;
    const bf16 *Qg = q + ((b * s.Tq + i0) * s.H + h) * D;
    const bf16 *Kg = k + (b * s.Tk * s.Hkv + hk) * D;
    const bf16 *Vg = v + (b * s.Tk * s.Hkv + hk) * D;
    const row_span keys = query_tile_span(m, i0, rows);  // keys of the whole tile
    const int n_kt = (keys.hi - keys.lo + FWD_BC - 1) / FWD_BC;
    const float c = s.scale * CU_ATTN_LOG2E;
    const int wrow = warp * 16;  // this warp's first row in the tile
    const int64_t iw = i0 + wrow;
    row_span sp[2];  // keys of the thread's rows g and g + 8
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t i = iw + g + r * 8;
        sp[r] = i < s.Tq ? query_span(m, i) : no_span();
    }
    const warp_spans ws = summarise_warp(sp, m.sq != NULL);

    float o[NB_O][4];
    zero_acc<NB_O>(o);
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};

    if (n_kt > 0) {
        load_tile_async<D, BR, THREADS>(Qs, Qg, ldq, rows, tid);
        load_tile_async<D, FWD_BC, THREADS>(Ks, Kg + keys.lo * ldk, ldk, s.Tk - keys.lo, tid);
        load_tile_async<D, FWD_BC, THREADS>(Vs, Vg + keys.lo * ldk, ldk, s.Tk - keys.lo, tid);
        cp_async_commit();
    }
    for (int kt = 0; kt < n_kt; kt++) {
        const int stage = kt & 1;
        const int64_t j0 = keys.lo + (int64_t)kt * FWD_BC;
        if (kt + 1 < n_kt) {  // prefetch the next key tile into the other stage
            const int64_t j1 = j0 + FWD_BC;
            load_tile_async<D, FWD_BC, THREADS>(Ks + (stage ^ 1) * FWD_BC * SROW,
                                                    Kg + j1 * ldk, ldk, s.Tk - j1, tid);
            load_tile_async<D, FWD_BC, THREADS>(Vs + (stage ^ 1) * FWD_BC * SROW,
                                                    Vg + j1 * ldk, ldk, s.Tk - j1, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (tid == 0) CU_ATTN_COUNT_TILE(0);
        const bf16 *Kst = Ks + stage * FWD_BC * SROW, *Vst = Vs + stage * FWD_BC * SROW;

        if (!warp_sees_none(ws, j0, FWD_BC)) {
            float sacc[NB_S][4];
            zero_acc<NB_S>(sacc);
            warp_mma_smem_nt<NB_S, D>(sacc, Qs + wrow * SROW, SROW, Kst, SROW, lane);

            // Raw scores, masked to -inf.
            if (!warp_sees_all(ws, j0, FWD_BC)) {
#pragma unroll
                for (int n = 0; n < NB_S; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int64_t j = j0 + n * 8 + 2 * t + (e & 1);
                        if (!span_visible(m, sp[e / 2], j, iw + g + (e / 2) * 8, j))
                            sacc[n][e] = -INFINITY;
                    }
            }

            // Online softmax for the thread's two rows (g and g + 8); a row's 64
            // scores are spread over the 4 lanes of a quad. The running max is
            // in log2 units: max(raw) * c, as c > 0.
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int n = 0; n < NB_S; n++) {
                mx[0] = fmaxf(mx[0], fmaxf(sacc[n][0], sacc[n][1]));
                mx[1] = fmaxf(mx[1], fmaxf(sacc[n][2], sacc[n][3]));
            }
            float mu[2], alpha[2], lsum[2] = {0.0f, 0.0f};
#pragma unroll
            for (int r = 0; r < 2; r++) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                const float m_new = fmaxf(m_run[r], mx[r] * c);
                mu[r] = m_new == -INFINITY ? 0.0f : m_new;  // nothing visible yet: p = 0, no NaN
                alpha[r] = fast_exp2(m_run[r] - mu[r]);
                m_run[r] = m_new;
            }
#pragma unroll
            for (int n = 0; n < NB_S; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float p = fast_exp2(fmaf(sacc[n][e], c, -mu[e / 2]));  // one FFMA
                    sacc[n][e] = p;
                    lsum[e / 2] += p;
                }
#pragma unroll
            for (int r = 0; r < 2; r++) l_run[r] = l_run[r] * alpha[r] + lsum[r];
#pragma unroll
            for (int n = 0; n < NB_O; n++) {
                o[n][0] *= alpha[0];
                o[n][1] *= alpha[0];
                o[n][2] *= alpha[1];
                o[n][3] *= alpha[1];
            }

            warp_mma_reg_nn<NB_O, FWD_BC / 16>(o, sacc, Vst, SROW, lane);
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
    }

    // Normalize; write or merge. The 4 lanes of a quad share each row.
    float lse_b[2], inv[2], ca[2] = {0.0f, 0.0f}, cb[2] = {1.0f, 1.0f}, lse_new[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float l = l_run[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        lse_b[r] = l > 0.0f ? (m_run[r] + log2f(l)) * CU_ATTN_LN2 : -INFINITY;
        inv[r] = l > 0.0f ? 1.0f / l : 0.0f;
        lse_new[r] = lse_b[r];
        const int64_t i = iw + g + r * 8;
        if (MERGE && i < s.Tq)
            merge_weights(lse[(b * s.H + h) * s.Tq + i], lse_b[r], &ca[r], &cb[r], &lse_new[r]);
    }
    __syncwarp();  // all lanes read the old lse before lane t == 0 overwrites it
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t i = iw + g + r * 8;
        if (i >= s.Tq) continue;
        if (t == 0) lse[(b * s.H + h) * s.Tq + i] = lse_new[r];
        const int64_t row_off = ((b * s.Tq + i) * s.H + h) * D + 2 * t;
#pragma unroll
        for (int n = 0; n < NB_O; n++) {
            float x0 = o[n][2 * r] * inv[r], x1 = o[n][2 * r + 1] * inv[r];
            if (MERGE) {
                float2 *p = (float2 *)(out_acc + row_off + n * 8);
                float2 a = *p;
                *p = make_float2(ca[r] * a.x + cb[r] * x0, ca[r] * a.y + cb[r] * x1);
            } else {
                *(__nv_bfloat162 *)(out + row_off + n * 8) = __floats2bfloat162_rn(x0, x1);
            }
        }
    }
}

template <int D, int BR, bool MERGE>
static void launch_fwd_rows(float *out_acc, void *out, float *lse, const void *q, const void *k,
                            const void *v, cu_attn_docs docs, const attn_shape *s,
                            cudaStream_t st)
{
    const int smem = fwd_smem_bytes<D, BR>();
    set_smem_limit(attn_fwd_bf16_kernel<D, BR, MERGE>, smem);
    dim3 grid((unsigned)((s->Tq + BR - 1) / BR), (unsigned)s->H, (unsigned)s->B);
    attn_fwd_bf16_kernel<D, BR, MERGE><<<grid, BR * 2, smem, st>>>(
        out_acc, (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, docs, *s);
    CU_CHECK_LAUNCH();
}

template <int D, bool MERGE>
static void launch_fwd_bf16(float *out_acc, void *out, float *lse, const void *q, const void *k,
                            const void *v, cu_attn_docs docs, const attn_shape *s,
                            cudaStream_t st)
{
    if constexpr (D == 128) {
        if (fwd_rows(D) == 128) {
            launch_fwd_rows<D, 128, MERGE>(out_acc, out, lse, q, k, v, docs, s, st);
            return;
        }
    }
    launch_fwd_rows<D, 64, MERGE>(out_acc, out, lse, q, k, v, docs, s, st);
}

// ---------------------------------------------------------------------------
// Entry points

int cu_attn_smem_limit(void)
{
    enum { MAX_DEVICES = 64 };
    static int limit[MAX_DEVICES];  // 0: not read yet
    int dev = 0;
    CU_CHECK(cudaGetDevice(&dev));
    if (dev < 0 || dev >= MAX_DEVICES) die("cu_attn: device %d out of range", dev);
    if (limit[dev] == 0)
        CU_CHECK(cudaDeviceGetAttribute(&limit[dev], cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return limit[dev];
}

// The bf16 kernels' shared memory for head dim D fits the device.
static bool smem_fits(int D)
{
    const int fwd = D == 64 ? fwd_smem_bytes<64, 64>() : fwd_smem_bytes<128, 64>();
    const int bwd = cu_attn_bwd_smem_bytes(D);
    return (fwd > bwd ? fwd : bwd) <= cu_attn_smem_limit();
}

static bool shape_ok(const attn_shape *s)
{
    return s && (s->D == 64 || s->D == 128) && s->H > 0 && s->Hkv > 0 && s->H % s->Hkv == 0 &&
           s->B >= 0 && s->Tq >= 0 && s->Tk >= 0 && s->B <= 65535 && s->H <= 65535 &&
           s->Tq < INT_MAX / 2 && s->Tk < INT_MAX / 2;
}

bool cu_attn_supported(const attn_shape *s)
{
    return shape_ok(s) && smem_fits(s->D);
}

void cu_attn_check_shape(const attn_shape *s)
{
    if (!shape_ok(s))
        die("cu_attn: unsupported shape (D=%d H=%d Hkv=%d Tq=%lld Tk=%lld): D must be 64 or 128, "
            "H %% Hkv == 0, T < 2^30",
            s ? s->D : 0, s ? s->H : 0, s ? s->Hkv : 0, s ? (long long)s->Tq : 0LL,
            s ? (long long)s->Tk : 0LL);
    if (!smem_fits(s->D))
        die("cu_attn: head dim %d needs more shared memory per block than this GPU allows (%d "
            "bytes)",
            s->D, cu_attn_smem_limit());
}

// True when this key block shows no query row any key (nothing to do).
bool cu_attn_block_masked(const attn_shape *s)
{
    return s->B == 0 || s->Tq == 0 || s->Tk == 0 ||
           (s->causal && s->k_start > s->q_start + s->Tq - 1);
}

cu_attn_docs cu_attn_docs_of(const cu_attn_docs *d)
{
    cu_attn_docs none = {NULL, NULL, NULL};
    return d && d->seg_q ? *d : none;
}

void cu_attn_forward(void *out, float *lse, const void *q, const void *k, const void *v,
                     const cu_attn_docs *docs, const attn_shape *s, cu_dtype dt,
                     cudaStream_t st)
{
    cu_attn_check_shape(s);
    if (s->B == 0 || s->Tq == 0) return;
    const cu_attn_docs d = cu_attn_docs_of(docs);
    if (dt == CU_F32) {
        cu_attn_f32_forward((float *)out, lse, false, (const float *)q, (const float *)k,
                            (const float *)v, d, s, st);
    } else if (s->D == 64) {
        launch_fwd_bf16<64, false>(NULL, out, lse, q, k, v, d, s, st);
    } else {
        launch_fwd_bf16<128, false>(NULL, out, lse, q, k, v, d, s, st);
    }
}

void cu_attn_block_forward(float *out_acc, float *lse_acc, const void *q, const void *k,
                           const void *v, const cu_attn_docs *docs, const attn_shape *s,
                           cu_dtype dt, cudaStream_t st)
{
    cu_attn_check_shape(s);
    if (cu_attn_block_masked(s)) return;
    const cu_attn_docs d = cu_attn_docs_of(docs);
    if (dt == CU_F32) {
        cu_attn_f32_forward(out_acc, lse_acc, true, (const float *)q, (const float *)k,
                            (const float *)v, d, s, st);
    } else if (s->D == 64) {
        launch_fwd_bf16<64, true>(out_acc, NULL, lse_acc, q, k, v, d, s, st);
    } else {
        launch_fwd_bf16<128, true>(out_acc, NULL, lse_acc, q, k, v, d, s, st);
    }
}
