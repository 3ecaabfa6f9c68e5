// GPU attention (kernels/cuda/cu_attn.h) against a float64 reference on
// random inputs: forward (out, lse) and backward (dq, dk, dv accumulated into
// random prefilled gradients, compared as increments; bf16 gradients for
// the whole backward, fp32 for the block form) for head dims 64 and
// 128, fp32 and bf16, causal or not, GQA and MHA, ragged T (not a multiple of
// any tile), packed documents crossing tile edges (with padding -1 last, and
// ids out of order: the element-wise fallback), the ring-attention block form
// (a key block before, overlapping, after the queries; non-causal with
// q_start != k_start) and merges of 2-4 key blocks against the whole.
//
// Every element is checked on its own: |x - ref| <= atol + rtol |ref| +
// ctol mag, where mag is the sum of the absolute values of the terms that
// make up the element in the reference (out: sum_j P |v|; dv: sum_i P |dO|;
// dq, dk: sum P scale (|dP| + sum_d |dO o|) |k| or |q|), the scale of the
// rounding error a correct kernel makes (bf16 P and dS operands, bf16 out),
// so a dropped or duplicated key/query tile fails even where the gradient is
// 1/T of its maximum. NaN fails; an lse of -inf must match exactly. Outputs
// are poisoned (NaN) before a forward that writes them. The bf16 whole
// backward of the non-causal cases with documents and of those with ids out
// of order runs twice: dq, dk, dv must be bitwise equal (the dQ additions
// are ordered; on the emulator the CTAs run in another random order).
//
// Runs on a GPU (ctest gpu_test_gpu_attn: every case) and on the emulated GPU
// (tests/gpu/emu, ctest gpuemu_attn: the cases marked emu, small shapes),
// where it also checks the tile counters: the tiles the kernels computed
// equal the plan of their span helpers, and, for whole attention, the ratio
// to the tiles that hold a visible element.
// Shared memory: a GPU whose opt-in limit per block is below the 128-key
// backward tile at D = 128 (113,680 B; sm_86 / sm_89 allow 101,376) runs the
// 64-key one; cu_attn_supported must say yes exactly when the smallest tiles
// fit (D = 64: 65,552 B, the backward; D = 128: 87,040 B, the forward).
// Emulator test gpuemu_attn_sm86
// fakes that GPU (EMU_SMEM_OPTIN=101376).
//   gpu_test_gpu_attn [case,case,... [bf16|f32]]   exit 0 pass, 1 fail, 77 no GPU
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "cu_attn.h"
#include "die.h"

#ifdef STRETCH_GPU_EMU
void emu_attn_tiles(uint64_t out[2]);
void emu_attn_plan_tiles(const attn_shape *s, const int32_t *bounds, uint64_t out[2]);
void emu_attn_tile_shapes(int D, int rows[2], int cols[2]);
#endif

// ---------------------------------------------------------------------------
// Host helpers

static uint64_t rng_state = 0x5eed1234abcdull;
static float urand(void) {  // splitmix64 -> [-1, 1)
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return 2.0f * (float)(z >> 40) / 16777216.0f - 1.0f;
}

static uint16_t f2bf(float f) {  // round to nearest even (no NaN inputs here)
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void *xalloc0(size_t bytes) { return xcalloc(bytes ? bytes : 1, 1); }

static float *rand_vec(int64_t n, float amp, bool round_bf16) {
    float *x = xalloc0(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = amp * urand();
        if (round_bf16) x[i] = bf2f(f2bf(x[i]));
    }
    return x;
}

static void *dev_alloc(size_t bytes) {
    void *d = NULL;
    CU_CHECK(cudaMalloc(&d, bytes ? bytes : 16));
    return d;
}

// Device copy of x (n floats) in dtype dt.
static void *upload(const float *x, int64_t n, cu_dtype dt) {
    void *d = dev_alloc((size_t)n * cu_dtype_size(dt));
    if (dt == CU_F32) {
        CU_CHECK(cudaMemcpy(d, x, (size_t)n * 4, cudaMemcpyHostToDevice));
    } else {
        uint16_t *h = xalloc0((size_t)n * 2);
        for (int64_t i = 0; i < n; i++) h[i] = f2bf(x[i]);
        CU_CHECK(cudaMemcpy(d, h, (size_t)n * 2, cudaMemcpyHostToDevice));
        free(h);
    }
    return d;
}

static float *download(const void *d, int64_t n, cu_dtype dt) {
    float *x = xalloc0(sizeof(float) * (size_t)n);
    if (dt == CU_F32) {
        CU_CHECK(cudaMemcpy(x, d, (size_t)n * 4, cudaMemcpyDeviceToHost));
    } else {
        uint16_t *h = xalloc0((size_t)n * 2);
        CU_CHECK(cudaMemcpy(h, d, (size_t)n * 2, cudaMemcpyDeviceToHost));
        for (int64_t i = 0; i < n; i++) x[i] = bf2f(h[i]);
        free(h);
    }
    return x;
}

static int32_t *upload_i32(const int32_t *x, int64_t n) {
    int32_t *d = dev_alloc(sizeof(int32_t) * (size_t)n);
    CU_CHECK(cudaMemcpy(d, x, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice));
    return d;
}

// ---------------------------------------------------------------------------
// Segment ids

typedef enum { SEG_NONE, SEG_DOCS, SEG_PAD, SEG_SHUFFLED } seg_kind;

// Document id of global position pos of sequence b: lengths cycle through
// 150, 37, 5, 70, 90 (crossing 16-, 32- and 64-row tile edges), offset by b.
// SEG_PAD: positions from PAD_AT on are padding (-1, as data/loader.h packs).
// SEG_SHUFFLED: the same documents with ids permuted (not in order: the
// kernels' element-wise fallback).
enum { PAD_AT = 260 };
static int32_t seg_of(seg_kind kind, int64_t b, int64_t pos) {
    static const int lens[] = {150, 37, 5, 70, 90};
    if (kind == SEG_PAD && pos >= PAD_AT) return -1;
    int64_t p = pos + b * 11, id = 0;
    for (int li = 0;; li = (li + 1) % 5, id++) {
        if (p < lens[li]) break;
        p -= lens[li];
    }
    return (int32_t)(kind == SEG_SHUFFLED ? (id * 7 + 3) % 11 + 11 * (id / 11) : id);
}
static int32_t *make_seg(seg_kind kind, int64_t B, int64_t T, int64_t start) {
    if (kind == SEG_NONE) return NULL;
    int32_t *s = xalloc0(sizeof(int32_t) * (size_t)(B * T));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) s[b * T + t] = seg_of(kind, b, start + t);
    return s;
}

// ---------------------------------------------------------------------------
// float64 reference with per-element magnitudes

typedef struct {
    double *out, *lse, *dq, *dk, *dv;              // values
    double *m_out, *m_dq, *m_dk, *m_dv;            // sums of |terms|
    double *delta;                                 // (B, H, Tq), from the exact out
} reference;

static void ref_free(reference *r) {
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
    free(r->m_out), free(r->m_dq), free(r->m_dk), free(r->m_dv), free(r->delta);
}

static bool ref_visible(const attn_shape *s, const int32_t *sq, const int32_t *sk, int64_t b,
                        int64_t i, int64_t j) {
    if (s->causal && s->k_start + j > s->q_start + i) return false;
    return !sq || sq[b * s->Tq + i] == sk[b * s->Tk + j];
}

static reference ref_attention(const attn_shape *s, const float *q, const float *k,
                               const float *v, const float *dout, const int32_t *sq,
                               const int32_t *sk) {
    const int64_t nq = s->B * s->Tq * s->H * s->D, nk = s->B * s->Tk * s->Hkv * s->D;
    const int64_t nl = s->B * s->H * s->Tq;
    const int D = s->D, G = s->H / s->Hkv;
    reference r;
    r.out = xalloc0(8 * (size_t)nq), r.dq = xalloc0(8 * (size_t)nq);
    r.dk = xalloc0(8 * (size_t)nk), r.dv = xalloc0(8 * (size_t)nk);
    r.m_out = xalloc0(8 * (size_t)nq), r.m_dq = xalloc0(8 * (size_t)nq);
    r.m_dk = xalloc0(8 * (size_t)nk), r.m_dv = xalloc0(8 * (size_t)nk);
    r.lse = xalloc0(8 * (size_t)nl), r.delta = xalloc0(8 * (size_t)nl);
    double *sc = xalloc0(8 * (size_t)s->Tk);
    for (int64_t b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++) {
            const int hk = h / G;
            for (int64_t i = 0; i < s->Tq; i++) {
                const int64_t qo = ((b * s->Tq + i) * s->H + h) * D;
                double mx = -INFINITY;
                for (int64_t j = 0; j < s->Tk; j++) {
                    if (!ref_visible(s, sq, sk, b, i, j)) continue;
                    const float *kj = k + ((b * s->Tk + j) * s->Hkv + hk) * D;
                    double d = 0;
                    for (int e = 0; e < D; e++) d += (double)q[qo + e] * kj[e];
                    sc[j] = d * s->scale;
                    mx = fmax(mx, sc[j]);
                }
                double sum = 0;
                for (int64_t j = 0; j < s->Tk; j++)
                    if (ref_visible(s, sq, sk, b, i, j)) sum += exp(sc[j] - mx);
                const int64_t li = (b * s->H + h) * s->Tq + i;
                r.lse[li] = sum > 0 ? mx + log(sum) : -INFINITY;
                if (sum == 0) continue;
                for (int64_t j = 0; j < s->Tk; j++) {
                    if (!ref_visible(s, sq, sk, b, i, j)) continue;
                    const double p = exp(sc[j] - r.lse[li]);
                    const float *vj = v + ((b * s->Tk + j) * s->Hkv + hk) * D;
                    for (int e = 0; e < D; e++) {
                        r.out[qo + e] += p * vj[e];
                        r.m_out[qo + e] += p * fabs(vj[e]);
                    }
                }
                double del = 0, del_mag = 0;
                for (int e = 0; e < D; e++) {
                    del += r.out[qo + e] * dout[qo + e];
                    del_mag += fabs(r.out[qo + e] * dout[qo + e]);
                }
                r.delta[li] = del;
                for (int64_t j = 0; j < s->Tk; j++) {
                    if (!ref_visible(s, sq, sk, b, i, j)) continue;
                    const int64_t ko = ((b * s->Tk + j) * s->Hkv + hk) * D;
                    const double p = exp(sc[j] - r.lse[li]);
                    double dp = 0;
                    for (int e = 0; e < D; e++) dp += (double)dout[qo + e] * v[ko + e];
                    const double ds = p * (dp - del) * s->scale;
                    const double ds_mag = p * (fabs(dp) + del_mag) * s->scale;
                    for (int e = 0; e < D; e++) {
                        r.dq[qo + e] += ds * k[ko + e];
                        r.m_dq[qo + e] += ds_mag * fabs(k[ko + e]);
                        r.dk[ko + e] += ds * q[qo + e];
                        r.m_dk[ko + e] += ds_mag * fabs(q[qo + e]);
                        r.dv[ko + e] += p * dout[qo + e];
                        r.m_dv[ko + e] += p * fabs(dout[qo + e]);
                    }
                }
            }
        }
    free(sc);
    return r;
}

// ---------------------------------------------------------------------------
// Comparison

typedef struct {
    double atol, rtol, ctol;
} tol3;

static int n_fail = 0;

// Worst |x - ref| / (atol + rtol |ref| + ctol mag + ext) over n elements
// (> 1 fails; ext: an extra bound per element, or NULL); NaN and an
// unmatched infinity give +inf. *at gets its index.
static double worst_ratio(const float *x, const double *ref, const double *mag,
                          const double *ext, int64_t n, tol3 t, int64_t *at) {
    double worst = 0;
    *at = -1;
    for (int64_t i = 0; i < n; i++) {
        double ratio;
        if (isnan(x[i])) {
            ratio = INFINITY;
        } else if (isinf(ref[i]) || isinf(x[i])) {
            ratio = (double)x[i] == ref[i] ? 0 : INFINITY;
        } else {
            double bound = t.atol + t.rtol * fabs(ref[i]) + (mag ? t.ctol * mag[i] : 0) +
                           (ext ? ext[i] : 0);
            ratio = fabs((double)x[i] - ref[i]) / bound;
        }
        if (ratio > worst || *at < 0) {
            worst = ratio;
            *at = i;
        }
    }
    return worst;
}

typedef struct {
    const char *name;
    int64_t B, Tq, Tk;
    int H, Hkv, D;
    int64_t q_start, k_start;
    bool causal;
    seg_kind seg;
    int n_split;  // 0: whole (cu_attn_forward / backward); 1: one block; >1: merge of key blocks
    int emu;      // on the emulated GPU too: EMU_BF16, EMU_ALL (fp32 too; its warp-per-row
                  // kernels cost 10-15x the bf16 ones there), or 0
} tcase;

enum { EMU_BF16 = 1, EMU_ALL = 2 };

static void check(const tcase *c, cu_dtype dt, const char *what, const float *x,
                  const double *ref, const double *mag, const double *ext, int64_t n, tol3 t) {
    int64_t at;
    double w = worst_ratio(x, ref, mag, ext, n, t, &at);
    bool ok = w <= 1.0;
    if (!ok) n_fail++;
    printf("%-30s %-4s D=%-3d %-4s worst %.3f of tol", c->name, dt == CU_BF16 ? "bf16" : "f32",
           c->D, what, w);
    if (at >= 0)
        printf(" (at %lld: %.6g vs %.6g, mag %.3g)", (long long)at, x[at], ref[at],
               mag ? mag[at] : 0.0);
    printf("  %s\n", ok ? "ok" : "FAIL");
}

// ---------------------------------------------------------------------------
// One case

static cu_attn_docs build_docs(const int32_t *d_sq, const int32_t *d_sk, int64_t B, int64_t Tq,
                               int64_t Tk) {
    cu_attn_docs d = {.seg_q = d_sq, .seg_k = d_sk, .bounds = NULL};
    if (!d_sq) return d;
    d.bounds = dev_alloc(sizeof(int32_t) * (size_t)cu_attn_docs_ints(B, Tq, Tk));
    cu_attn_docs_build(&d, B, Tq, Tk, 0);
    return d;
}

#ifdef STRETCH_GPU_EMU
// Tile iterations the kernels made == what their span helpers plan (on the
// host over the same bounds); also the forward's ratio to the tiles of its
// grid (rows x 64) that hold a visible element, counted from the reference
// mask.
static void check_tiles(const tcase *c, const attn_shape *s, const cu_attn_docs *d,
                        const int32_t *sq, const int32_t *sk) {
    uint64_t got[2], plan[2];
    emu_attn_tiles(got);
    int32_t *hb = NULL;
    if (d->bounds) {
        int64_t n = cu_attn_docs_ints(s->B, s->Tq, s->Tk);
        hb = xalloc0(sizeof(int32_t) * (size_t)n);
        CU_CHECK(cudaMemcpy(hb, d->bounds, sizeof(int32_t) * (size_t)n, cudaMemcpyDeviceToHost));
    }
    emu_attn_plan_tiles(s, hb, plan);
    bool ok = got[0] == plan[0] && got[1] == plan[1];
    int rows[2], cols[2];
    emu_attn_tile_shapes(s->D, rows, cols);
    uint64_t needed = 0;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t i0 = 0; i0 < s->Tq; i0 += rows[0])
            for (int64_t j0 = 0; j0 < s->Tk; j0 += cols[0]) {
                bool any = false;
                for (int64_t i = i0; i < i0 + rows[0] && i < s->Tq && !any; i++)
                    for (int64_t j = j0; j < j0 + cols[0] && j < s->Tk && !any; j++)
                        any = ref_visible(s, sq, sk, b, i, j);
                needed += any;
            }
    needed *= (uint64_t)s->H;
    if (!ok) n_fail++;
    printf("%-30s D=%-3d tiles fwd %llu bwd %llu, plan %llu %llu; fwd / needed %.3f  %s\n",
           c->name, c->D, (unsigned long long)got[0], (unsigned long long)got[1],
           (unsigned long long)plan[0], (unsigned long long)plan[1],
           needed ? (double)got[0] / (double)needed : 0.0, ok ? "ok" : "FAIL");
    free(hb);
}
#endif

static void run_case(const tcase *c, cu_dtype dt) {
    const bool bf = dt == CU_BF16;
    const attn_shape s = {.B = c->B, .Tq = c->Tq, .Tk = c->Tk, .H = c->H, .Hkv = c->Hkv,
                          .D = c->D, .q_start = c->q_start, .k_start = c->k_start,
                          .scale = 1.0f / sqrtf((float)c->D), .causal = c->causal};
    const int64_t nq = s.B * s.Tq * s.H * s.D, nk = s.B * s.Tk * s.Hkv * s.D;
    const int64_t nl = s.B * s.H * s.Tq;
    float *q = rand_vec(nq, 2.0f, bf), *k = rand_vec(nk, 2.0f, bf), *v = rand_vec(nk, 1.0f, bf);
    float *dout = rand_vec(nq, 1.0f, bf);
    int32_t *sq = make_seg(c->seg, s.B, s.Tq, s.q_start);
    int32_t *sk = make_seg(c->seg, s.B, s.Tk, s.k_start);
    // Gradients: the whole backward adds into gradients of the input type
    // (bf16 straight from the kernel), the block form into fp32.
    const bool whole = c->n_split == 0;
    const cu_dtype gdt = whole ? dt : CU_F32;
    float *dq0 = rand_vec(nq, 1.0f, gdt == CU_BF16), *dk0 = rand_vec(nk, 1.0f, gdt == CU_BF16);
    float *dv0 = rand_vec(nk, 1.0f, gdt == CU_BF16);
    reference r = ref_attention(&s, q, k, v, dout, sq, sk);

    void *d_q = upload(q, nq, dt), *d_k = upload(k, nk, dt), *d_v = upload(v, nk, dt);
    void *d_dout = upload(dout, nq, dt);
    int32_t *d_sq = sq ? upload_i32(sq, s.B * s.Tq) : NULL;
    void *d_dq = upload(dq0, nq, gdt), *d_dk = upload(dk0, nk, gdt), *d_dv = upload(dv0, nk, gdt);
    int32_t *d_sem = dev_alloc(sizeof(int32_t) * (size_t)cu_attn_dq_sem_ints(&s));
    CU_CHECK(cudaMemset(d_sem, 0x5a, sizeof(int32_t) * (size_t)cu_attn_dq_sem_ints(&s)));
    float *d_lse = dev_alloc(sizeof(float) * (size_t)nl);
    float *d_delta = dev_alloc(sizeof(float) * (size_t)nl);
    float *g_out = NULL;
    if (c->n_split == 0) {
        int32_t *d_sk = sk ? upload_i32(sk, s.B * s.Tk) : NULL;
        cu_attn_docs docs = build_docs(d_sq, d_sk, s.B, s.Tq, s.Tk);
        void *d_out = dev_alloc((size_t)nq * cu_dtype_size(dt));
        CU_CHECK(cudaMemset(d_out, 0xff, (size_t)nq * cu_dtype_size(dt)));  // NaN poison
        CU_CHECK(cudaMemset(d_lse, 0xff, sizeof(float) * (size_t)nl));
        cu_attn_forward(d_out, d_lse, d_q, d_k, d_v, sq ? &docs : NULL, &s, dt, 0);
        // dq_acc needs no zeroing: NaN-poisoned, as are the counters (garbage).
        float *d_dqacc = dev_alloc(sizeof(float) * (size_t)nq);
        CU_CHECK(cudaMemset(d_dqacc, 0xff, sizeof(float) * (size_t)nq));
        cu_attn_backward(d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_out, d_lse, d_delta, d_dqacc,
                         d_sem, sq ? &docs : NULL, &s, dt, 0);
        CU_CHECK(cudaDeviceSynchronize());
        g_out = download(d_out, nq, dt);
#ifdef STRETCH_GPU_EMU
        if (bf) check_tiles(c, &s, &docs, sq, sk);
#endif
        if (bf && ((c->seg == SEG_DOCS && !c->causal) || c->seg == SEG_SHUFFLED)) {
            // Bitwise reproducible: the same backward again (on the emulator
            // its CTAs run in another random order), from the same prefill.
            // On the non-causal cases with documents (every key tile of a
            // document adds into each of its query tiles) and those with
            // ids out of order (GQA in both on the emulator): a second
            // backward on every case would cost the emulator tests ~20%
            // more time.
            const size_t bq = (size_t)nq * 2, bk = (size_t)nk * 2;
            void *d_dq2 = upload(dq0, nq, gdt), *d_dk2 = upload(dk0, nk, gdt);
            void *d_dv2 = upload(dv0, nk, gdt);
            CU_CHECK(cudaMemset(d_dqacc, 0xff, sizeof(float) * (size_t)nq));
            cu_attn_backward(d_dq2, d_dk2, d_dv2, d_dout, d_q, d_k, d_v, d_out, d_lse, d_delta,
                             d_dqacc, d_sem, sq ? &docs : NULL, &s, dt, 0);
            CU_CHECK(cudaDeviceSynchronize());
            unsigned char *h[6];
            const size_t nb[6] = {bq, bq, bk, bk, bk, bk};
            void *const src[6] = {d_dq, d_dq2, d_dk, d_dk2, d_dv, d_dv2};
            for (int i = 0; i < 6; i++) {
                h[i] = xalloc0(nb[i]);
                CU_CHECK(cudaMemcpy(h[i], src[i], nb[i], cudaMemcpyDeviceToHost));
            }
            const bool same = memcmp(h[0], h[1], bq) == 0 && memcmp(h[2], h[3], bk) == 0 &&
                              memcmp(h[4], h[5], bk) == 0;
            if (!same) n_fail++;
            printf("%-30s %-4s D=%-3d dq dk dv bitwise equal over 2 runs  %s\n", c->name, "bf16",
                   c->D, same ? "ok" : "FAIL");
            for (int i = 0; i < 6; i++) free(h[i]);
            CU_CHECK(cudaFree(d_dq2));
            CU_CHECK(cudaFree(d_dk2));
            CU_CHECK(cudaFree(d_dv2));
#ifdef STRETCH_GPU_EMU
            uint64_t drop[2];
            emu_attn_tiles(drop);  // the second run's tiles: not checked twice
#endif
        }
        CU_CHECK(cudaFree(d_dqacc));
        CU_CHECK(cudaFree(d_out));
        if (d_sk) CU_CHECK(cudaFree(d_sk));
        if (docs.bounds) CU_CHECK(cudaFree(docs.bounds));
    } else {
        // Running result from (0, -inf), merged over n_split key blocks that
        // tile [k_start, k_start + Tk), each as its own (B, Tk_p, Hkv, D)
        // arrays with its own document bounds, as ring attention receives
        // them; the backward of each block takes the reference's final lse
        // and delta (as fp32).
        float *acc0 = xalloc0(sizeof(float) * (size_t)nq), *lsef = xalloc0(4 * (size_t)nl);
        float *delf = xalloc0(4 * (size_t)nl);
        for (int64_t i = 0; i < nl; i++) {
            lsef[i] = -INFINITY;
        }
        float *d_acc = upload(acc0, nq, CU_F32);
        CU_CHECK(cudaMemcpy(d_lse, lsef, sizeof(float) * (size_t)nl, cudaMemcpyHostToDevice));
        for (int64_t i = 0; i < nl; i++) lsef[i] = (float)r.lse[i], delf[i] = (float)r.delta[i];
        float *d_lse_ref = upload(lsef, nl, CU_F32);
        CU_CHECK(cudaMemcpy(d_delta, delf, sizeof(float) * (size_t)nl, cudaMemcpyHostToDevice));
        const size_t esz = cu_dtype_size(dt), row = (size_t)s.Hkv * s.D * esz;
        const size_t frow = (size_t)s.Hkv * s.D * 4;
        for (int p = 0; p < c->n_split; p++) {
            int64_t j0 = s.Tk * p / c->n_split, j1 = s.Tk * (p + 1) / c->n_split;
            attn_shape sb = s;
            sb.Tk = j1 - j0;
            sb.k_start = s.k_start + j0;
            void *bk = dev_alloc((size_t)(s.B * sb.Tk) * row);
            void *bv = dev_alloc((size_t)(s.B * sb.Tk) * row);
            float *bdk = dev_alloc((size_t)(s.B * sb.Tk) * frow);
            float *bdv = dev_alloc((size_t)(s.B * sb.Tk) * frow);
            for (int64_t b = 0; b < s.B; b++) {
                size_t src = (size_t)(b * s.Tk + j0), dst = (size_t)(b * sb.Tk), n = (size_t)sb.Tk;
                CU_CHECK(cudaMemcpy((char *)bk + dst * row, (char *)d_k + src * row, n * row,
                                    cudaMemcpyDeviceToDevice));
                CU_CHECK(cudaMemcpy((char *)bv + dst * row, (char *)d_v + src * row, n * row,
                                    cudaMemcpyDeviceToDevice));
                CU_CHECK(cudaMemcpy((char *)bdk + dst * frow, (char *)d_dk + src * frow, n * frow,
                                    cudaMemcpyDeviceToDevice));
                CU_CHECK(cudaMemcpy((char *)bdv + dst * frow, (char *)d_dv + src * frow, n * frow,
                                    cudaMemcpyDeviceToDevice));
            }
            int32_t *hs = make_seg(c->seg, s.B, sb.Tk, sb.k_start);
            int32_t *bsk = hs ? upload_i32(hs, s.B * sb.Tk) : NULL;
            cu_attn_docs docs = build_docs(d_sq, bsk, s.B, s.Tq, sb.Tk);
            cu_attn_block_forward(d_acc, d_lse, d_q, bk, bv, hs ? &docs : NULL, &sb, dt, 0);
            cu_attn_block_backward(d_dq, bdk, bdv, d_dout, d_q, bk, bv, d_lse_ref, d_delta, d_sem,
                                   hs ? &docs : NULL, &sb, dt, 0);
            for (int64_t b = 0; b < s.B; b++) {
                size_t src = (size_t)(b * s.Tk + j0), dst = (size_t)(b * sb.Tk), n = (size_t)sb.Tk;
                CU_CHECK(cudaMemcpy((char *)d_dk + src * frow, (char *)bdk + dst * frow, n * frow,
                                    cudaMemcpyDeviceToDevice));
                CU_CHECK(cudaMemcpy((char *)d_dv + src * frow, (char *)bdv + dst * frow, n * frow,
                                    cudaMemcpyDeviceToDevice));
            }
            CU_CHECK(cudaDeviceSynchronize());
#ifdef STRETCH_GPU_EMU
            if (bf) {
                tcase cb = *c;
                char name[64];
                snprintf(name, sizeof name, "%.24s blk %d", c->name, p);
                cb.name = name;
                check_tiles(&cb, &sb, &docs, sq, hs);
            }
#endif
            CU_CHECK(cudaFree(bk));
            CU_CHECK(cudaFree(bv));
            CU_CHECK(cudaFree(bdk));
            CU_CHECK(cudaFree(bdv));
            if (bsk) CU_CHECK(cudaFree(bsk));
            if (docs.bounds) CU_CHECK(cudaFree(docs.bounds));
            free(hs);
        }
        g_out = download(d_acc, nq, CU_F32);
        CU_CHECK(cudaFree(d_acc));
        CU_CHECK(cudaFree(d_lse_ref));
        free(acc0), free(lsef), free(delf);
    }
    CU_CHECK(cudaDeviceSynchronize());
    float *g_lse = download(d_lse, nl, CU_F32);
    float *g_dq = download(d_dq, nq, gdt), *g_dk = download(d_dk, nk, gdt);
    float *g_dv = download(d_dv, nk, gdt);
    for (int64_t i = 0; i < nq; i++) g_dq[i] -= dq0[i];
    for (int64_t i = 0; i < nk; i++) g_dk[i] -= dk0[i], g_dv[i] -= dv0[i];
    // bf16 gradients: prefill + increment rounded once to bf16, at most half
    // an ulp: 2^-8 |x| (bf16 has 8 significant bits), x = prefill + the
    // kernel's increment. With ext = 2^-8 |prefill + ref| the ratio stays
    // <= 1 as long as the increment's own error is below (1 - 2^-8) of its
    // bound (it uses a quarter of it: the 4x margin below). The worst
    // ratios of dk, dv (~0.95) are this rounding: a sum just above a power
    // of two.
    double *e_dq = NULL, *e_dk = NULL, *e_dv = NULL;
    if (gdt == CU_BF16) {
        e_dq = xalloc0(8 * (size_t)nq), e_dk = xalloc0(8 * (size_t)nk);
        e_dv = xalloc0(8 * (size_t)nk);
        for (int64_t i = 0; i < nq; i++) e_dq[i] = ldexp(fabs(dq0[i] + r.dq[i]), -8);
        for (int64_t i = 0; i < nk; i++)
            e_dk[i] = ldexp(fabs(dk0[i] + r.dk[i]), -8), e_dv[i] = ldexp(fabs(dv0[i] + r.dv[i]), -8);
    }

    // atol 3e-7: the rounding of the fp32 prefill (|x| <= 1) + increment.
    // bf16: P and dS enter the products rounded to bf16 (2^-9 relative each)
    // and out is stored as bf16 (2^-9): 4x that bound. fp32: accumulation
    // order and exp2 over up to ~2K terms.
    const tol3 t = bf ? (tol3){3e-7, 8e-3, 8e-3} : (tol3){3e-7, 1e-5, 1e-4};
    const tol3 t_lse = bf ? (tol3){5e-4, 1e-5, 0} : (tol3){1e-4, 1e-6, 0};
    const bool merged = c->n_split > 0;  // out is the fp32 accumulator: no bf16 rounding
    const tol3 t_out = merged && bf ? (tol3){3e-7, 1e-5, 8e-3} : t;
    check(c, dt, "out", g_out, r.out, r.m_out, NULL, nq, t_out);
    check(c, dt, "lse", g_lse, r.lse, NULL, NULL, nl, t_lse);
    check(c, dt, "dq", g_dq, r.dq, r.m_dq, e_dq, nq, t);
    check(c, dt, "dk", g_dk, r.dk, r.m_dk, e_dk, nk, t);
    check(c, dt, "dv", g_dv, r.dv, r.m_dv, e_dv, nk, t);
    free(e_dq), free(e_dk), free(e_dv);
    CU_CHECK(cudaFree(d_sem));

    CU_CHECK(cudaFree(d_q));
    CU_CHECK(cudaFree(d_k));
    CU_CHECK(cudaFree(d_v));
    CU_CHECK(cudaFree(d_dout));
    CU_CHECK(cudaFree(d_dq));
    CU_CHECK(cudaFree(d_dk));
    CU_CHECK(cudaFree(d_dv));
    CU_CHECK(cudaFree(d_lse));
    CU_CHECK(cudaFree(d_delta));
    if (d_sq) CU_CHECK(cudaFree(d_sq));
    ref_free(&r);
    free(q), free(k), free(v), free(dout), free(sq), free(sk), free(dq0), free(dk0), free(dv0);
    free(g_out), free(g_lse), free(g_dq), free(g_dk), free(g_dv);
}

// A key block entirely in the causal future: the running result and the
// gradients must come back untouched (bitwise).
static void run_masked_block(int D, cu_dtype dt) {
    const attn_shape s = {.B = 1, .Tq = 70, .Tk = 90, .H = 4, .Hkv = 2, .D = D, .q_start = 1000,
                          .k_start = 1070, .scale = 0.125f, .causal = true};
    const int64_t nq = s.Tq * s.H * D, nk = s.Tk * s.Hkv * D, nl = s.H * s.Tq;
    float *q = rand_vec(nq, 1.0f, false), *k = rand_vec(nk, 1.0f, false);
    float *acc = rand_vec(nq, 1.0f, false), *lse = rand_vec(nl, 3.0f, false);
    float *dq = rand_vec(nq, 1.0f, false), *dk = rand_vec(nk, 1.0f, false);
    void *d_q = upload(q, nq, dt), *d_k = upload(k, nk, dt), *d_v = upload(k, nk, dt);
    void *d_dout = upload(q, nq, dt);
    float *d_acc = upload(acc, nq, CU_F32), *d_lse = upload(lse, nl, CU_F32);
    float *d_dq = upload(dq, nq, CU_F32), *d_dk = upload(dk, nk, CU_F32);
    float *d_dv = upload(dk, nk, CU_F32);
    cu_attn_block_forward(d_acc, d_lse, d_q, d_k, d_v, NULL, &s, dt, 0);
    cu_attn_block_backward(d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_lse, d_lse, NULL, NULL, &s,
                           dt, 0);
    CU_CHECK(cudaDeviceSynchronize());
    float *a2 = download(d_acc, nq, CU_F32), *l2 = download(d_lse, nl, CU_F32);
    float *q2 = download(d_dq, nq, CU_F32), *k2 = download(d_dk, nk, CU_F32);
    float *v2 = download(d_dv, nk, CU_F32);  // d_dv was uploaded from dk
    bool same = memcmp(a2, acc, (size_t)nq * 4) == 0 && memcmp(l2, lse, (size_t)nl * 4) == 0 &&
                memcmp(q2, dq, (size_t)nq * 4) == 0 && memcmp(k2, dk, (size_t)nk * 4) == 0 &&
                memcmp(v2, dk, (size_t)nk * 4) == 0;
    if (!same) n_fail++;
    printf("%-30s %-4s D=%-3d untouched  %s\n", "block after queries (masked)",
           dt == CU_BF16 ? "bf16" : "f32", D, same ? "ok" : "FAIL");
    CU_CHECK(cudaFree(d_q));
    CU_CHECK(cudaFree(d_k));
    CU_CHECK(cudaFree(d_v));
    CU_CHECK(cudaFree(d_dout));
    CU_CHECK(cudaFree(d_acc));
    CU_CHECK(cudaFree(d_lse));
    CU_CHECK(cudaFree(d_dq));
    CU_CHECK(cudaFree(d_dk));
    CU_CHECK(cudaFree(d_dv));
    free(q), free(k), free(acc), free(lse), free(dq), free(dk), free(a2), free(l2), free(q2);
    free(k2), free(v2);
}

// Whether index i is in the comma-separated list.
static bool in_list(const char *list, int i) {
    for (const char *p = list; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (v == i) return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}

int main(int argc, char **argv) {
    if (cu_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    const char *only = argc > 1 ? argv[1] : NULL;  // comma-separated case indices
    const char *only_dt = argc > 2 ? argv[2] : NULL;
    const int limit = cu_attn_smem_limit();
    for (int D = 64; D <= 128; D *= 2) {
        const attn_shape sd = {.B = 1, .Tq = 1, .Tk = 1, .H = 1, .Hkv = 1, .D = D, .scale = 1};
        const bool want = limit >= (D == 64 ? 65552 : 87040), got = cu_attn_supported(&sd);
        if (want != got) n_fail++;
        printf("shared memory per block %d B: D=%d supported %s (expected %s)  %s\n", limit, D,
               got ? "yes" : "no", want ? "yes" : "no", want == got ? "ok" : "FAIL");
    }
#ifdef STRETCH_GPU_EMU
    const bool emu = true;
#else
    const bool emu = false;
#endif
    // name, B, Tq, Tk, H, Hkv, D, q_start, k_start, causal, seg, n_split, emu
    const tcase cases[] = {
        {"T=1 mha", 1, 1, 1, 4, 4, 0, 0, 0, false, SEG_NONE, 0, EMU_ALL},
        {"T=17 causal gqa", 1, 17, 17, 4, 2, 0, 0, 0, true, SEG_NONE, 0, EMU_ALL},
        {"T=300 causal gqa docs B2", 2, 300, 300, 2, 1, 0, 0, 0, true, SEG_DOCS, 0, EMU_BF16},
        {"T=300 causal docs pad", 1, 300, 300, 2, 2, 0, 0, 0, true, SEG_PAD, 0, EMU_BF16},
        {"T=200 causal docs shuffled", 1, 200, 200, 2, 1, 0, 0, 0, true, SEG_SHUFFLED, 0, EMU_ALL},
        {"T=150 noncausal docs", 1, 150, 150, 2, 1, 0, 0, 0, false, SEG_DOCS, 0, EMU_BF16},
        {"T=130 causal gqa", 1, 130, 130, 4, 2, 0, 0, 0, true, SEG_NONE, 0, EMU_BF16},
        {"blk overlapping docs", 1, 140, 150, 2, 1, 0, 1000, 1030, true, SEG_DOCS, 1, EMU_ALL},
        {"blk before queries", 1, 70, 80, 2, 2, 0, 1000, 900, true, SEG_NONE, 1, EMU_ALL},
        {"merge 3 causal docs offset", 1, 200, 200, 2, 1, 0, 300, 300, true, SEG_DOCS, 3, EMU_ALL},
        {"merge 2 noncausal q!=k", 1, 40, 133, 2, 1, 0, 5, 77, false, SEG_NONE, 2, EMU_ALL},
        {"T=1000 causal gqa", 1, 1000, 1000, 8, 2, 0, 0, 0, true, SEG_NONE, 0, 0},
        {"T=1000 docs mha", 2, 1000, 1000, 2, 2, 0, 0, 0, false, SEG_DOCS, 0, 0},
        {"T=2048 causal gqa", 1, 2048, 2048, 4, 2, 0, 0, 0, true, SEG_NONE, 0, 0},
        {"T=2048 causal gqa docs pad", 1, 2048, 2048, 8, 2, 0, 0, 0, true, SEG_PAD, 0, 0},
        {"T=2000 causal docs shuffled", 1, 2000, 2000, 4, 2, 0, 0, 0, true, SEG_SHUFFLED, 0, 0},
        {"blk overlapping", 2, 300, 200, 8, 2, 0, 1000, 1100, true, SEG_NONE, 1, 0},
        {"blk overlapping docs", 1, 300, 200, 4, 4, 0, 1000, 1100, true, SEG_DOCS, 1, 0},
        {"blk non-causal q!=k", 1, 77, 150, 8, 2, 0, 64, 333, false, SEG_NONE, 1, 0},
        {"merge 3 causal gqa docs", 1, 777, 777, 8, 2, 0, 0, 0, true, SEG_DOCS, 3, 0},
        {"merge 4 causal offset", 2, 500, 500, 4, 2, 0, 4096, 4096, true, SEG_NONE, 4, 0},
    };
    const int n_cases = (int)(sizeof cases / sizeof cases[0]);
    const cu_dtype dts[] = {CU_BF16, CU_F32};
    for (int di = 0; di < 2; di++)
        for (int D = 64; D <= 128; D *= 2) {
            if (only_dt && strcmp(only_dt, dts[di] == CU_BF16 ? "bf16" : "f32") != 0) continue;
            for (int i = 0; i < n_cases; i++) {
                const int need = dts[di] == CU_BF16 ? EMU_BF16 : EMU_ALL;
                if ((only && !in_list(only, i)) || (emu && cases[i].emu < need)) continue;
                if (!cu_attn_supported(&(attn_shape){.B = 1, .Tq = 1, .Tk = 1, .H = 1, .Hkv = 1,
                                                     .D = D, .scale = 1})) {
                    printf("D=%d: not supported on this GPU, skipped\n", D);
                    break;
                }
                tcase c = cases[i];
                c.D = D;
                run_case(&c, dts[di]);
            }
            if (!only && cu_attn_supported(&(attn_shape){.B = 1, .Tq = 1, .Tk = 1, .H = 1,
                                                         .Hkv = 1, .D = D, .scale = 1}))
                run_masked_block(D, dts[di]);
        }
    printf("%s: %d failure(s)\n", n_fail ? "FAIL" : "PASS", n_fail);
    return n_fail ? 1 : 0;
}
