// cu_rope: RoPE on q and k in ONE launch, in place, forward and backward
// (backward = rotation by -angle), both layouts, position ids, partial rotary
// (channels d..D-1 are never touched: in place, they cost no traffic), n_hat,
// mixed windows (a per-token flag picks the short table, as kernels/cpu/rope.h)
// and attention_factor.
//
// Memory-bound design: a block owns `tpb` tokens. It first builds the (tpb,
// d/2) cos/sin table in shared memory, once per token for all H + Hkv heads,
// then each thread rotates PPI pairs of one head with full 16-byte accesses:
// blockDim = (d/2 / PPI items per head, rows of heads), heads walked without
// divisions. HALF layout: a thread reads PPI channels from each half;
// INTERLEAVED: one vector of PPI pairs.
//
// Angles: as the CPU reference, (double)inv_freq * pos in double (exact for
// pos < 2^29: a 24-bit by 31-bit product), cos/sin in double (CUDA: <= 2 ulp
// of double), times attention_factor, rounded once to float. The table is
// amortized over all heads, so double costs ~1/40 of a load per element. The
// rotation uses explicitly rounded mul/add (no FMA contraction), the order of
// the CPU code: fp32 results agree with the CPU to ~1 ulp (tolerance 1e-5
// relative to the max); bf16 adds one bf16 rounding of the output.
#include "cu_internal.cuh"
#include "cu_ops.h"

#define ROPE_THREADS 256

// The table travels as a kernel argument: all arguments must fit in 4 KB.
static_assert(sizeof(rope_table) + 128 <= 4096, "rope_table too large for a kernel argument");

template <typename T, bool INTER, int PPI>
__global__ void __launch_bounds__(1024)
rope_kernel(T *q, T *k, const int32_t *pos, const uint8_t *win, const __grid_constant__ rope_table t,
            int64_t N, int H, int Hkv, int D, double sin_sign, int tpb) {
    extern __shared__ float2 cs[];  // (tpb, half): (a cos, sign a sin)
    const int half = t.n_pairs;
    const int64_t n0 = (int64_t)blockIdx.x * tpb;
    const int ntok = (int)min((int64_t)tpb, N - n0);
    const int nthr = blockDim.x * blockDim.y;
    const double a = t.attention_factor;
    for (int idx = threadIdx.y * blockDim.x + threadIdx.x; idx < ntok * half; idx += nthr) {
        const int tt = idx / half, i = idx - tt * half;
        const int32_t p = pos[n0 + tt];
        const float f = win && win[n0 + tt] == ROPE_WIN_SHORT ? t.inv_freq_short[i]
                        : p < t.n_hat                         ? t.inv_freq_orig[i]
                                                              : t.inv_freq[i];
        double s, c;
        sincos((double)f * (double)p, &s, &c);
        cs[idx] = make_float2((float)(a * c), (float)(sin_sign * a * s));
    }
    __syncthreads();

    const int heads = H + Hkv, rows = blockDim.y, j = threadIdx.x;
    int tt = threadIdx.y / heads, h = threadIdx.y - tt * heads;
    while (tt < ntok) {
        const int64_t n = n0 + tt;
        T *x = h < H ? q + (n * H + h) * D : k + (n * Hkv + (h - H)) * D;
        const float2 *c = cs + tt * half + j * PPI;
        if (!INTER) {
            float x0[PPI], x1[PPI];
            load_vec<T, PPI>(x + j * PPI, x0);
            load_vec<T, PPI>(x + half + j * PPI, x1);
#pragma unroll
            for (int e = 0; e < PPI; e++) {
                const float2 w = c[e];
                const float y0 = __fsub_rn(__fmul_rn(x0[e], w.x), __fmul_rn(x1[e], w.y));
                const float y1 = __fadd_rn(__fmul_rn(x1[e], w.x), __fmul_rn(x0[e], w.y));
                x0[e] = y0;
                x1[e] = y1;
            }
            store_vec<T, PPI>(x + j * PPI, x0);
            store_vec<T, PPI>(x + half + j * PPI, x1);
        } else {
            float v[2 * PPI];
            if (PPI == 1) {  // x is only element-aligned here (odd D, offset pointers)
                v[0] = to_f(x[2 * j]);
                v[1] = to_f(x[2 * j + 1]);
            } else {
                load_vec<T, 2 * PPI>(x + j * 2 * PPI, v);
            }
#pragma unroll
            for (int e = 0; e < PPI; e++) {
                const float2 w = c[e];
                const float x0 = v[2 * e], x1 = v[2 * e + 1];
                v[2 * e] = __fsub_rn(__fmul_rn(x0, w.x), __fmul_rn(x1, w.y));
                v[2 * e + 1] = __fadd_rn(__fmul_rn(x0, w.y), __fmul_rn(x1, w.x));
            }
            if (PPI == 1) {
                x[2 * j] = from_f<T>(v[0]);
                x[2 * j + 1] = from_f<T>(v[1]);
            } else {
                store_vec<T, 2 * PPI>(x + j * 2 * PPI, v);
            }
        }
        h += rows;
        if (h >= heads) {
            const int w = h / heads;
            tt += w;
            h -= w * heads;
        }
    }
}

// Largest pairs-per-thread whose accesses (<= 16 bytes) stay aligned.
static int rope_ppi(const void *q, const void *k, rope_layout layout, int half, int D,
                    size_t sz) {
    const int inter = layout == ROPE_LAYOUT_INTERLEAVED;
    for (int p = 8; p > 1; p /= 2) {
        const int elems = inter ? 2 * p : p;
        const size_t vb = (size_t)elems * sz;
        if (vb > 16 || half % p != 0 || D % elems != 0) continue;
        if ((q && !cu_aligned(q, vb)) || (k && !cu_aligned(k, vb))) continue;
        return p;
    }
    return 1;
}

template <typename T, bool INTER, int PPI>
static void rope_launch_t(void *q, void *k, const int32_t *pos, const uint8_t *win,
                          const rope_table *t, int64_t N, int H, int Hkv, int D, double sign,
                          cudaStream_t st) {
    const int half = t->n_pairs;
    const int iph = half / PPI;  // items per head = threads along x
    int rows = ROPE_THREADS / iph;
    if (rows < 1) rows = 1;
    if (rows > H + Hkv) rows = H + Hkv;  // no idle rows when a token has few heads
    int tpb = ROPE_THREADS / half;       // one table entry per thread
    if (tpb < 1) tpb = 1;
    if (tpb > 16) tpb = 16;
    const size_t smem = (size_t)tpb * half * sizeof(float2);
    dim3 block((unsigned)iph, (unsigned)rows);
    rope_kernel<T, INTER, PPI><<<cu_blocks(N, tpb), block, smem, st>>>(
        (T *)q, (T *)k, pos, win, *t, N, H, Hkv, D, sign, tpb);
    CU_CHECK_LAUNCH();
}

template <typename T, bool INTER>
static void rope_launch_l(void *q, void *k, const int32_t *pos, const uint8_t *win,
                          const rope_table *t, int64_t N, int H, int Hkv, int D, int ppi,
                          double sign, cudaStream_t st) {
    switch (ppi) {
    case 8: rope_launch_t<T, INTER, 8>(q, k, pos, win, t, N, H, Hkv, D, sign, st); break;
    case 4: rope_launch_t<T, INTER, 4>(q, k, pos, win, t, N, H, Hkv, D, sign, st); break;
    case 2: rope_launch_t<T, INTER, 2>(q, k, pos, win, t, N, H, Hkv, D, sign, st); break;
    default: rope_launch_t<T, INTER, 1>(q, k, pos, win, t, N, H, Hkv, D, sign, st); break;
    }
}

static void rope_launch(void *q, void *k, const int32_t *pos, const uint8_t *win,
                        const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D,
                        cu_dtype dt, double sign, cudaStream_t st) {
    CHECK(t->n_pairs > 0 && t->n_pairs <= ROPE_MAX_PAIRS && t->rotary_dim == 2 * t->n_pairs);
    CHECK(t->rotary_dim <= D);
    CHECK(layout == ROPE_LAYOUT_HALF || layout == ROPE_LAYOUT_INTERLEAVED);
    CHECK(N >= 0 && H >= 0 && Hkv >= 0);
    CHECK((q != NULL || H == 0) && (k != NULL || Hkv == 0) && (pos != NULL || N == 0));
    CHECK(t->short_len >= 0 && (t->short_len == 0 || win != NULL || N == 0));
    if (t->short_len == 0) win = NULL;  // read only with a mixed table
    if (N == 0 || H + Hkv == 0) return;
    const int ppi = rope_ppi(H ? q : NULL, Hkv ? k : NULL, layout, t->n_pairs, D,
                             cu_dtype_size(dt));
    const bool inter = layout == ROPE_LAYOUT_INTERLEAVED;
    if (dt == CU_BF16) {
        if (inter) rope_launch_l<bf16, true>(q, k, pos, win, t, N, H, Hkv, D, ppi, sign, st);
        else rope_launch_l<bf16, false>(q, k, pos, win, t, N, H, Hkv, D, ppi, sign, st);
    } else {
        if (inter) rope_launch_l<float, true>(q, k, pos, win, t, N, H, Hkv, D, ppi, sign, st);
        else rope_launch_l<float, false>(q, k, pos, win, t, N, H, Hkv, D, ppi, sign, st);
    }
}

void cu_rope_forward(void *q, void *k, const int32_t *pos, const uint8_t *win,
                     const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D,
                     cu_dtype dt, cudaStream_t st) {
    rope_launch(q, k, pos, win, t, layout, N, H, Hkv, D, dt, 1.0, st);
}

void cu_rope_backward(void *dq, void *dk, const int32_t *pos, const uint8_t *win,
                      const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D,
                      cu_dtype dt, cudaStream_t st) {
    rope_launch(dq, dk, pos, win, t, layout, N, H, Hkv, D, dt, -1.0, st);
}
