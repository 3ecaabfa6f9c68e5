// attn: FlashAttention-2 forward and backward on the CPU, fp32. See attn.h.
//
// Work is cut into tiles of ATTN_BR query rows x ATTN_BC key rows; nothing
// larger than a tile is ever materialized. A tile's small products go
// through OpenBLAS sgemm on the strided rows of q, dout, v (row strides H*D
// and Hkv*D), except that k (and v in the backward) is first copied once per
// call into transposed key tiles, so that Q K^T and dO V^T are plain
// products that OpenBLAS runs with its small-matrix kernels: that copy is
// O(Tk D) and made the forward ~13% and the backward ~10% faster than
// sgemm(NoTrans, Trans) on the rows of k. (Hand-written C tile kernels
// measured 35-70 GFLOP/s per core against 75-100 for OpenBLAS at 64^3.)
// The softmax in between is plain C that vectorizes; exp is 2^x on scores
// pre-scaled by log2(e).
//
// Parallelism (OpenMP). Every output element is owned by one work item that
// runs serially, so results are bitwise the same run to run and whatever the
// thread count:
//   forward  one item per (b, h, query tile), dynamic schedule, longest
//            (last) query tiles first;
//   backward one item per (b, h): it loops key tiles (dK, dV of the tile in
//            a local accumulator) and, inside, the visible query tiles (dQ of
//            head h is its own). Under GQA the G = H / Hkv query heads of a
//            kv head would race on dK, dV, so each head writes its own copy,
//            (B, H, Tk, D), and the copies are summed in head order after.
#include "attn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"

enum { ATTN_BR = 64, ATTN_BC = 64 };

// The per-tile loops (softmax, exp, masking) are compiled for AVX-512 and
// AVX2 as well as the baseline x86-64 of the default build, and the best one
// is picked when the library loads. The sgemm calls dispatch on their own.
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define ATTN_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ATTN_HOT
#endif

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// ---------------------------------------------------------------------------
// Small helpers

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static void check_shape(const attn_shape *s) {
    CHECK(s != NULL);
    CHECK(s->B >= 0 && s->Tq >= 0 && s->Tk >= 0);
    CHECK(s->H > 0 && s->Hkv > 0 && s->D > 0 && s->H % s->Hkv == 0);
}

// 2^x in fp32 for x <= 126: exactly 0 below -126 (and for -inf), otherwise
// within 1 ulp (checked against exp2 over every float in [-126, 20]); NaN
// stays NaN. Cephes exp2f: x = n + f with |f| <= 1/2, 2^f by a degree-6
// polynomial, 2^n put into the exponent bits. Branch-free and inlined, so
// loops over it vectorize.
static inline float exp2_fast(float x) {
    const float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    float xc = x < -126.0f ? -126.0f : (x > 126.0f ? 126.0f : x);
    float t = xc + round_magic;  // low mantissa bits of t now hold n = round(xc)
    float f = xc - (t - round_magic);
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    uint32_t t_bits, n_bits;
    memcpy(&t_bits, &t, sizeof t_bits);
    n_bits = (t_bits - 0x4B400000u + 127u) << 23;  // biased exponent n + 127 in [1, 253]
    float two_n;
    memcpy(&two_n, &n_bits, sizeof two_n);
    return x < -126.0f ? 0.0f : p * two_n;
}

// Merges one row's partial result (o_b, lse_b) into (o, lse) by log-sum-exp.
// A partial that saw no key (lse_b = -inf) changes nothing; a running result
// that saw none yet is replaced.
static void merge_row(float *o, float *lse, const float *o_b, float lse_b, int D) {
    if (lse_b == -INFINITY) return;
    float lse_a = *lse;
    if (lse_a == -INFINITY) {
        memcpy(o, o_b, (size_t)D * sizeof *o);
        *lse = lse_b;
        return;
    }
    float mx = fmaxf(lse_a, lse_b);
    float wa = expf(lse_a - mx), wb = expf(lse_b - mx);
    float sum = wa + wb;
    float ca = wa / sum, cb = wb / sum;
    for (int d = 0; d < D; d++) o[d] = ca * o[d] + cb * o_b[d];
    *lse = mx + logf(sum);
}

// ---------------------------------------------------------------------------
// Masking

// True when every key of the block is in the causal future of every query.
static bool block_masked(const attn_shape *s) {
    return s->causal && s->k_start > s->q_start + s->Tq - 1;
}

typedef enum { TILE_SKIP, TILE_FULL, TILE_MASKED } tile_kind;

// What the mask does to the tile of query rows [i0, i0 + rows) and key rows
// [j0, j0 + cols) (block-local indices): nothing visible, everything visible,
// or a mix to apply element by element. The segment test compares the ranges
// of ids, which is exact for "all equal" and sufficient for "none equal"
// whatever the order of the ids.
static tile_kind classify_tile(const attn_shape *s, const int32_t *sq, const int32_t *sk,
                               int64_t i0, int64_t rows, int64_t j0, int64_t cols) {
    bool partial = false;
    if (s->causal) {
        int64_t q_first = s->q_start + i0, q_last = q_first + rows - 1;
        int64_t k_first = s->k_start + j0, k_last = k_first + cols - 1;
        if (k_first > q_last) return TILE_SKIP;
        if (k_last > q_first) partial = true;
    }
    if (sq) {
        int32_t qmin = sq[i0], qmax = sq[i0], kmin = sk[j0], kmax = sk[j0];
        for (int64_t i = 1; i < rows; i++) {
            qmin = sq[i0 + i] < qmin ? sq[i0 + i] : qmin;
            qmax = sq[i0 + i] > qmax ? sq[i0 + i] : qmax;
        }
        for (int64_t j = 1; j < cols; j++) {
            kmin = sk[j0 + j] < kmin ? sk[j0 + j] : kmin;
            kmax = sk[j0 + j] > kmax ? sk[j0 + j] : kmax;
        }
        if (qmax < kmin || kmax < qmin) return TILE_SKIP;
        if (!(qmin == qmax && kmin == kmax && qmin == kmin)) partial = true;
    }
    return partial ? TILE_MASKED : TILE_FULL;
}

// Sets the invisible entries of the score tile S (rows x cols, row stride
// ATTN_BC) to -inf.
static void mask_tile(float *S, const attn_shape *s, const int32_t *sq, const int32_t *sk,
                      int64_t i0, int64_t rows, int64_t j0, int64_t cols) {
    for (int64_t i = 0; i < rows; i++) {
        float *Si = S + i * ATTN_BC;
        if (s->causal) {
            // key j visible iff k_start + j0 + j <= q_start + i0 + i
            int64_t jlim = s->q_start + i0 + i - s->k_start - j0 + 1;
            for (int64_t j = max64(jlim, 0); j < cols; j++) Si[j] = -INFINITY;
        }
        if (sq) {
            int32_t si = sq[i0 + i];
            for (int64_t j = 0; j < cols; j++)
                if (sk[j0 + j] != si) Si[j] = -INFINITY;
        }
    }
}

// ---------------------------------------------------------------------------
// Key tiles, transposed

// Number of key tiles of a block of Tk keys.
static int64_t n_key_tiles(int64_t Tk) { return (Tk + ATTN_BC - 1) / ATTN_BC; }

// x: (B, Tk, Hkv, D) -> xt: (B, Hkv, n_key_tiles, D, ATTN_BC), each key tile
// transposed into a contiguous (D, ATTN_BC) block, zero past Tk. Then
// Q K^T is a plain (rows x D) x (D x cols) product, which OpenBLAS runs
// through its small-matrix kernels without packing (its Q K^T path packs
// both operands on every call).
static float *transpose_key_tiles(const float *x, const attn_shape *s) {
    const int Hkv = s->Hkv, D = s->D;
    const int64_t n_kt = n_key_tiles(s->Tk);
    float *xt = xmalloc(sizeof(float) * (size_t)(s->B * Hkv * n_kt * D * ATTN_BC));
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < s->B * Hkv * n_kt; it++) {
        int64_t b = it / (Hkv * n_kt), hk = it / n_kt % Hkv, j0 = it % n_kt * ATTN_BC;
        int64_t cols = min64(ATTN_BC, s->Tk - j0);
        float *dst = xt + it * D * ATTN_BC;
        const float *src = x + ((b * s->Tk + j0) * Hkv + hk) * D;
        for (int d = 0; d < D; d++) {
            float *row = dst + (int64_t)d * ATTN_BC;
            for (int64_t j = 0; j < cols; j++) row[j] = src[j * Hkv * D + d];
            for (int64_t j = cols; j < ATTN_BC; j++) row[j] = 0.0f;
        }
    }
    return xt;
}

// ---------------------------------------------------------------------------
// Forward

// Per-thread scratch of the forward, sized by the tile only.
typedef struct {
    float *S;      // (ATTN_BR, ATTN_BC) scores, then probabilities
    float *O;      // (ATTN_BR, D) unnormalized output accumulator
    float *m;      // (ATTN_BR) running max, log2 units
    float *l;      // (ATTN_BR) running sum of 2^(s - m)
    float *alpha;  // (ATTN_BR) rescale factor of the current tile
} fwd_scratch;

// One (b, h, query tile) of attn_block_forward: all visible key tiles with
// the online softmax, then a log-sum-exp merge into (out, lse).
ATTN_HOT static void forward_tile(float *out, float *lse, const float *q, const float *kt,
                                  const float *v, const int32_t *seg_q, const int32_t *seg_k,
                                  const attn_shape *s, int64_t b, int h, int64_t i0,
                                  const fwd_scratch *w) {
    const int H = s->H, Hkv = s->Hkv, D = s->D;
    const int hk = h / (H / Hkv);
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)Hkv * D;
    const int64_t rows = min64(ATTN_BR, s->Tq - i0);
    const float *Q = q + ((b * s->Tq + i0) * H + h) * D;
    const float *Ktb = kt + (b * Hkv + hk) * n_key_tiles(s->Tk) * D * ATTN_BC;
    const float *Vb = v + (b * s->Tk * Hkv + hk) * D;
    const int32_t *sq = seg_q ? seg_q + b * s->Tq : NULL;
    const int32_t *sk = seg_k ? seg_k + b * s->Tk : NULL;
    const float alpha_qk = s->scale * LOG2E;

    // Keys past the last query row's causal horizon are invisible to the tile.
    int64_t kend = s->Tk;
    if (s->causal) kend = min64(kend, s->q_start + i0 + rows - s->k_start);

    float *S = w->S, *O = w->O, *m = w->m, *l = w->l, *alpha = w->alpha;
    for (int64_t i = 0; i < rows; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    memset(O, 0, (size_t)(rows * D) * sizeof *O);

    for (int64_t j0 = 0; j0 < kend; j0 += ATTN_BC) {
        const int64_t cols = min64(ATTN_BC, kend - j0);
        tile_kind kind = classify_tile(s, sq, sk, i0, rows, j0, cols);
        if (kind == TILE_SKIP) continue;
        const float *Kt = Ktb + j0 * D, *V = Vb + j0 * ldk;

        // S = (scale * log2 e) Q K^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, D, alpha_qk, Q,
                    (int)ldq, Kt, ATTN_BC, 0.0f, S, ATTN_BC);
        if (kind == TILE_MASKED) mask_tile(S, s, sq, sk, i0, rows, j0, cols);

        // Online softmax: new running max, rescale factor, P = 2^(S - m).
        bool rescale = false;
        for (int64_t i = 0; i < rows; i++) {
            float *Si = S + i * ATTN_BC;
            float mx = m[i];
#pragma omp simd reduction(max : mx)
            for (int64_t j = 0; j < cols; j++) mx = Si[j] > mx ? Si[j] : mx;
            if (mx == -INFINITY) {  // nothing visible in this row so far
                memset(Si, 0, (size_t)cols * sizeof *Si);
                alpha[i] = 1.0f;
                continue;
            }
            alpha[i] = exp2_fast(m[i] - mx);
            rescale |= alpha[i] != 1.0f;
            m[i] = mx;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < cols; j++) {
                float p = exp2_fast(Si[j] - mx);
                Si[j] = p;
                sum += p;
            }
            l[i] = alpha[i] * l[i] + sum;
        }
        if (rescale)
            for (int64_t i = 0; i < rows; i++)
                if (alpha[i] != 1.0f)
                    for (int d = 0; d < D; d++) O[i * D + d] *= alpha[i];

        // O += P V
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, D, (int)cols, 1.0f, S,
                    ATTN_BC, V, (int)ldk, 1.0f, O, D);
    }

    // Normalize and merge into the running (out, lse).
    float *lse_row = lse + (b * H + h) * s->Tq + i0;
    float *out_row = out + ((b * s->Tq + i0) * H + h) * D;
    for (int64_t i = 0; i < rows; i++) {
        if (l[i] == 0.0f) continue;  // this block showed the row no key
        float inv = 1.0f / l[i];
        float *Oi = O + i * D;
        for (int d = 0; d < D; d++) Oi[d] *= inv;
        merge_row(out_row + i * ldq, lse_row + i, Oi, (m[i] + log2f(l[i])) * LN2, D);
    }
}

void attn_block_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                        const int32_t *seg_q, const int32_t *seg_k, const attn_shape *s) {
    check_shape(s);
    CHECK((seg_q == NULL) == (seg_k == NULL));
    const int64_t n_qt = (s->Tq + ATTN_BR - 1) / ATTN_BR;
    const int64_t n_items = s->B * s->H * n_qt;
    if (n_items == 0 || s->Tk == 0 || block_masked(s)) return;
    float *kt = transpose_key_tiles(k, s);
#pragma omp parallel
    {
        fwd_scratch w;
        w.S = xmalloc(sizeof(float) * ATTN_BR * ATTN_BC);
        w.O = xmalloc(sizeof(float) * ATTN_BR * (size_t)s->D);
        w.m = xmalloc(sizeof(float) * ATTN_BR);
        w.l = xmalloc(sizeof(float) * ATTN_BR);
        w.alpha = xmalloc(sizeof(float) * ATTN_BR);
        // Last query tiles first: under the causal mask they are the longest.
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n_items; it++) {
            int64_t qt = n_qt - 1 - it / (s->B * s->H);
            int64_t bh = it % (s->B * s->H);
            forward_tile(out, lse, q, kt, v, seg_q, seg_k, s, bh / s->H, (int)(bh % s->H),
                         qt * ATTN_BR, &w);
        }
        free(w.S);
        free(w.O);
        free(w.m);
        free(w.l);
        free(w.alpha);
    }
    free(kt);
}

void attn_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                  const int32_t *seg_q, const int32_t *seg_k, const attn_shape *s) {
    check_shape(s);
    const int64_t n_rows = s->B * s->Tq * s->H;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n_rows; r++) {
        memset(out + r * s->D, 0, sizeof(float) * (size_t)s->D);
        lse[r] = -INFINITY;
    }
    attn_block_forward(out, lse, q, k, v, seg_q, seg_k, s);
}

void attn_merge(float *out, float *lse, const float *out_b, const float *lse_b, int64_t B,
                int64_t T, int H, int D) {
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++) {
        int64_t b = bh / H, h = bh % H;
        for (int64_t t = 0; t < T; t++) {
            int64_t o = ((b * T + t) * H + h) * D;
            merge_row(out + o, lse + bh * T + t, out_b + o, lse_b[bh * T + t], D);
        }
    }
}

// ---------------------------------------------------------------------------
// Backward

void attn_backward_delta(float *delta, const float *dout, const float *out, int64_t B, int64_t T,
                         int H, int D) {
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * T; bt++) {
        int64_t b = bt / T, t = bt % T;
        for (int h = 0; h < H; h++) {
            const float *x = dout + (bt * H + h) * D, *y = out + (bt * H + h) * D;
            float acc = 0.0f;
            for (int d = 0; d < D; d++) acc += x[d] * y[d];
            delta[(b * H + h) * T + t] = acc;
        }
    }
}

// Per-thread scratch of the backward, sized by the tile only.
typedef struct {
    float *P;     // (ATTN_BR, ATTN_BC) probabilities
    float *dP;    // (ATTN_BR, ATTN_BC) dO V^T, then dS (scaled)
    float *dK;    // (ATTN_BC, D) accumulator of the key tile
    float *dV;    // (ATTN_BC, D) accumulator of the key tile
    float *lse2;  // (ATTN_BR) final lse of the query tile in log2 units
} bwd_scratch;

// The whole backward of query head h of sequence b over this block pair.
// dq: (B, Tq, H, D) accumulated. dk_out, dv_out: rows of the key block with
// row stride ld_kv, accumulated (+=) when accumulate, else overwritten.
ATTN_HOT static void backward_head(float *dq, float *dk_out, float *dv_out, int64_t ld_kv,
                                   bool accumulate, const float *dout, const float *q,
                                   const float *k, const float *kt, const float *vt,
                                   const float *lse, const float *delta, const int32_t *seg_q,
                                   const int32_t *seg_k, const attn_shape *s, int64_t b, int h,
                                   const bwd_scratch *w) {
    const int H = s->H, Hkv = s->Hkv, D = s->D;
    const int hk = h / (H / Hkv);
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)Hkv * D;
    const float *Qb = q + (b * s->Tq * H + h) * D;
    const float *dOb = dout + (b * s->Tq * H + h) * D;
    float *dQb = dq + (b * s->Tq * H + h) * D;
    const float *Kb = k + (b * s->Tk * Hkv + hk) * D;
    const int64_t tile_off = (b * Hkv + hk) * n_key_tiles(s->Tk) * D * ATTN_BC;
    const float *Ktb = kt + tile_off, *Vtb = vt + tile_off;
    const float *lse_b = lse + (b * H + h) * s->Tq;
    const float *delta_b = delta + (b * H + h) * s->Tq;
    const int32_t *sq = seg_q ? seg_q + b * s->Tq : NULL;
    const int32_t *sk = seg_k ? seg_k + b * s->Tk : NULL;
    const float alpha_qk = s->scale * LOG2E;
    float *P = w->P, *dP = w->dP, *dK = w->dK, *dV = w->dV, *lse2 = w->lse2;

    for (int64_t j0 = 0; j0 < s->Tk; j0 += ATTN_BC) {
        const int64_t cols = min64(ATTN_BC, s->Tk - j0);
        const float *K = Kb + j0 * ldk, *Kt = Ktb + j0 * D, *Vt = Vtb + j0 * D;
        memset(dK, 0, sizeof(float) * (size_t)(cols * D));
        memset(dV, 0, sizeof(float) * (size_t)(cols * D));

        // Query rows before the first key's position cannot see the tile.
        int64_t i_first = 0;
        if (s->causal) i_first = max64(0, s->k_start + j0 - s->q_start);
        for (int64_t i0 = i_first / ATTN_BR * ATTN_BR; i0 < s->Tq; i0 += ATTN_BR) {
            const int64_t rows = min64(ATTN_BR, s->Tq - i0);
            tile_kind kind = classify_tile(s, sq, sk, i0, rows, j0, cols);
            if (kind == TILE_SKIP) continue;
            const float *Q = Qb + i0 * ldq, *dO = dOb + i0 * ldq;
            float *dQ = dQb + i0 * ldq;

            // P = 2^(S - lse) with the final lse; a row that sees no key at
            // all (lse = -inf) gets lse2 = +inf, hence P = 0.
            for (int64_t i = 0; i < rows; i++) {
                float x = lse_b[i0 + i];
                lse2[i] = x == -INFINITY ? INFINITY : x * LOG2E;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, D,
                        alpha_qk, Q, (int)ldq, Kt, ATTN_BC, 0.0f, P, ATTN_BC);
            if (kind == TILE_MASKED) mask_tile(P, s, sq, sk, i0, rows, j0, cols);
            for (int64_t i = 0; i < rows; i++) {
                float *Pi = P + i * ATTN_BC;
                const float li = lse2[i];
#pragma omp simd
                for (int64_t j = 0; j < cols; j++) Pi[j] = exp2_fast(Pi[j] - li);
            }

            // dV += P^T dO
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, D, (int)rows, 1.0f, P,
                        ATTN_BC, dO, (int)ldq, 1.0f, dV, D);
            // dP = dO V^T, then dS = scale * P * (dP - delta)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, D, 1.0f,
                        dO, (int)ldq, Vt, ATTN_BC, 0.0f, dP, ATTN_BC);
            for (int64_t i = 0; i < rows; i++) {
                float *Pi = P + i * ATTN_BC, *dPi = dP + i * ATTN_BC;
                const float di = delta_b[i0 + i], sc = s->scale;
#pragma omp simd
                for (int64_t j = 0; j < cols; j++) dPi[j] = sc * Pi[j] * (dPi[j] - di);
            }
            // dQ += dS K; dK += dS^T Q
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, D, (int)cols, 1.0f,
                        dP, ATTN_BC, K, (int)ldk, 1.0f, dQ, (int)ldq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, D, (int)rows, 1.0f, dP,
                        ATTN_BC, Q, (int)ldq, 1.0f, dK, D);
        }

        for (int64_t j = 0; j < cols; j++) {
            float *dkj = dk_out + (j0 + j) * ld_kv, *dvj = dv_out + (j0 + j) * ld_kv;
            const float *dKj = dK + j * D, *dVj = dV + j * D;
            if (accumulate) {
                for (int d = 0; d < D; d++) dkj[d] += dKj[d];
                for (int d = 0; d < D; d++) dvj[d] += dVj[d];
            } else {
                memcpy(dkj, dKj, sizeof(float) * (size_t)D);
                memcpy(dvj, dVj, sizeof(float) * (size_t)D);
            }
        }
    }
}

void attn_block_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                         const float *k, const float *v, const float *lse, const float *delta,
                         const int32_t *seg_q, const int32_t *seg_k, const attn_shape *s) {
    check_shape(s);
    CHECK((seg_q == NULL) == (seg_k == NULL));
    const int H = s->H, Hkv = s->Hkv, D = s->D, G = H / Hkv;
    const int64_t n_items = s->B * H;
    if (n_items == 0 || s->Tq == 0 || s->Tk == 0 || block_masked(s)) return;

    // Under GQA, per-query-head copies of dK and dV: (B, H, Tk, D) each.
    float *dk_h = NULL, *dv_h = NULL;
    if (G > 1) {
        size_t n = (size_t)(s->B * H * s->Tk) * (size_t)D;
        dk_h = xmalloc(n * sizeof(float));
        dv_h = xmalloc(n * sizeof(float));
    }
    float *kt = transpose_key_tiles(k, s), *vt = transpose_key_tiles(v, s);

#pragma omp parallel
    {
        bwd_scratch w;
        w.P = xmalloc(sizeof(float) * ATTN_BR * ATTN_BC);
        w.dP = xmalloc(sizeof(float) * ATTN_BR * ATTN_BC);
        w.dK = xmalloc(sizeof(float) * ATTN_BC * (size_t)D);
        w.dV = xmalloc(sizeof(float) * ATTN_BC * (size_t)D);
        w.lse2 = xmalloc(sizeof(float) * ATTN_BR);
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n_items; it++) {
            int64_t b = it / H;
            int h = (int)(it % H);
            if (G == 1) {
                int64_t o = (b * s->Tk * Hkv + h) * D;
                backward_head(dq, dk + o, dv + o, (int64_t)Hkv * D, true, dout, q, k, kt, vt, lse,
                              delta, seg_q, seg_k, s, b, h, &w);
            } else {
                int64_t o = (b * H + h) * s->Tk * D;
                backward_head(dq, dk_h + o, dv_h + o, D, false, dout, q, k, kt, vt, lse, delta,
                              seg_q, seg_k, s, b, h, &w);
            }
        }
        free(w.P);
        free(w.dP);
        free(w.dK);
        free(w.dV);
        free(w.lse2);

        // Sum the G copies of each kv head in head order.
        if (G > 1) {
#pragma omp for schedule(static)
            for (int64_t bj = 0; bj < s->B * s->Tk; bj++) {
                int64_t b = bj / s->Tk, j = bj % s->Tk;
                for (int hk = 0; hk < Hkv; hk++) {
                    float *dkj = dk + (bj * Hkv + hk) * D, *dvj = dv + (bj * Hkv + hk) * D;
                    for (int g = 0; g < G; g++) {
                        int64_t o = ((b * H + hk * G + g) * s->Tk + j) * D;
                        for (int d = 0; d < D; d++) dkj[d] += dk_h[o + d];
                        for (int d = 0; d < D; d++) dvj[d] += dv_h[o + d];
                    }
                }
            }
        }
    }
    free(dk_h);
    free(dv_h);
    free(kt);
    free(vt);
}

void attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                   const float *k, const float *v, const float *out, const float *lse,
                   const int32_t *seg_q, const int32_t *seg_k, const attn_shape *s) {
    check_shape(s);
    CHECK(s->Tq == s->Tk && s->q_start == s->k_start);
    float *delta = xmalloc(sizeof(float) * (size_t)(s->B * s->H * s->Tq));
    attn_backward_delta(delta, dout, out, s->B, s->Tq, s->H, s->D);
    attn_block_backward(dq, dk, dv, dout, q, k, v, lse, delta, seg_q, seg_k, s);
    free(delta);
}
