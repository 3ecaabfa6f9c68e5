// Tests of kernels/cpu/attn.c against an independent naive attention in
// double precision (the T x T score matrix is fine at these sizes), and of
// that reference's backward against central finite differences.
//
// Errors are normalized by the tensor's scale: err = max|x - ref| / max|ref|.
// The kernel runs in fp32 (products of length D and Tk), so its outputs are
// held to TOL_FWD and its gradients to TOL_BWD of that scale.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
// cmocka needs the four above first
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "die.h"

#define TOL_FWD 2e-6
#define TOL_LSE 1e-6
#define TOL_BWD 5e-6

// ---------------------------------------------------------------------------
// Inputs

static uint64_t rng_next(uint64_t *st) {  // splitmix64
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_uniform(float *x, int64_t n, float amp, uint64_t *st) {
    for (int64_t i = 0; i < n; i++)
        x[i] = amp * (2.0f * (float)(rng_next(st) >> 40) / 16777216.0f - 1.0f);
}

// One attention problem: the kernel's shape, fp32 inputs and the upstream
// gradient. q, dout: (B, Tq, H, D); k, v: (B, Tk, Hkv, D); seg: (B, T) or NULL.
typedef struct {
    attn_shape s;
    float *q, *k, *v, *dout;
    int32_t *seg_q, *seg_k;
} problem;

static int64_t q_size(const attn_shape *s) { return s->B * s->Tq * s->H * s->D; }
static int64_t kv_size(const attn_shape *s) { return s->B * s->Tk * s->Hkv * s->D; }
static int64_t lse_size(const attn_shape *s) { return s->B * s->H * s->Tq; }

static problem make_problem(int64_t B, int64_t Tq, int64_t Tk, int H, int Hkv, int D, bool causal,
                            uint64_t seed) {
    problem p = {0};
    p.s = (attn_shape){.B = B,
                       .Tq = Tq,
                       .Tk = Tk,
                       .H = H,
                       .Hkv = Hkv,
                       .D = D,
                       .scale = 1.0f / sqrtf((float)D),
                       .causal = causal};
    p.q = xmalloc(sizeof(float) * (size_t)q_size(&p.s));
    p.dout = xmalloc(sizeof(float) * (size_t)q_size(&p.s));
    p.k = xmalloc(sizeof(float) * (size_t)kv_size(&p.s));
    p.v = xmalloc(sizeof(float) * (size_t)kv_size(&p.s));
    uint64_t st = seed;
    // Amplitude 2 on q and k makes the softmax peaked enough to matter.
    fill_uniform(p.q, q_size(&p.s), 2.0f, &st);
    fill_uniform(p.k, kv_size(&p.s), 2.0f, &st);
    fill_uniform(p.v, kv_size(&p.s), 1.0f, &st);
    fill_uniform(p.dout, q_size(&p.s), 1.0f, &st);
    return p;
}

// Packed documents: segment ids 0, 1, 2, ... over runs of the given lengths
// (cycled until T is covered), different per sequence.
static int32_t *make_segments(int64_t B, int64_t T, const int *lens, int n_lens) {
    int32_t *seg = xmalloc(sizeof(int32_t) * (size_t)(B * T));
    for (int64_t b = 0; b < B; b++) {
        int32_t id = 0;
        int li = (int)b % n_lens;
        int64_t left = lens[li];
        for (int64_t t = 0; t < T; t++) {
            if (left == 0) {
                id++;
                li = (li + 1) % n_lens;
                left = lens[li];
            }
            seg[b * T + t] = id;
            left--;
        }
    }
    return seg;
}

static void free_problem(problem *p) {
    free(p->q);
    free(p->k);
    free(p->v);
    free(p->dout);
    if (p->seg_k != p->seg_q) free(p->seg_k);
    free(p->seg_q);
}

// ---------------------------------------------------------------------------
// Naive reference in double

static bool visible(const problem *p, int64_t b, int64_t i, int64_t j) {
    const attn_shape *s = &p->s;
    if (s->causal && s->k_start + j > s->q_start + i) return false;
    if (p->seg_q && p->seg_q[b * s->Tq + i] != p->seg_k[b * s->Tk + j]) return false;
    return true;
}

// Probabilities of row (b, h, i) over all Tk keys, 0 where masked; returns
// the lse (-inf if no key is visible). prob: (Tk).
static double ref_row(double *prob, const problem *p, const double *q, const double *k, int64_t b,
                      int h, int64_t i) {
    const attn_shape *s = &p->s;
    const int D = s->D, hk = h / (s->H / s->Hkv);
    double mx = -INFINITY;
    for (int64_t j = 0; j < s->Tk; j++) {
        prob[j] = -INFINITY;
        if (!visible(p, b, i, j)) continue;
        const double *qi = q + ((b * s->Tq + i) * s->H + h) * D;
        const double *kj = k + ((b * s->Tk + j) * s->Hkv + hk) * D;
        double acc = 0.0;
        for (int d = 0; d < D; d++) acc += qi[d] * kj[d];
        prob[j] = (double)s->scale * acc;
        if (prob[j] > mx) mx = prob[j];
    }
    if (mx == -INFINITY) {
        for (int64_t j = 0; j < s->Tk; j++) prob[j] = 0.0;
        return -INFINITY;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < s->Tk; j++) sum += prob[j] == -INFINITY ? 0.0 : exp(prob[j] - mx);
    double lse = mx + log(sum);
    for (int64_t j = 0; j < s->Tk; j++) prob[j] = prob[j] == -INFINITY ? 0.0 : exp(prob[j] - lse);
    return lse;
}

static double *to_double(const float *x, int64_t n) {
    double *y = xmalloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

// out: (B, Tq, H, D), lse: (B, H, Tq), from double inputs.
static void ref_forward_d(double *out, double *lse, const problem *p, const double *q,
                          const double *k, const double *v) {
    const attn_shape *s = &p->s;
    const int D = s->D;
    double *prob = xmalloc(sizeof(double) * (size_t)(s->Tk + 1));
    for (int64_t b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++) {
            int hk = h / (s->H / s->Hkv);
            for (int64_t i = 0; i < s->Tq; i++) {
                lse[(b * s->H + h) * s->Tq + i] = ref_row(prob, p, q, k, b, h, i);
                double *oi = out + ((b * s->Tq + i) * s->H + h) * D;
                for (int d = 0; d < D; d++) oi[d] = 0.0;
                for (int64_t j = 0; j < s->Tk; j++) {
                    const double *vj = v + ((b * s->Tk + j) * s->Hkv + hk) * D;
                    for (int d = 0; d < D; d++) oi[d] += prob[j] * vj[d];
                }
            }
        }
    free(prob);
}

static void ref_forward(double *out, double *lse, const problem *p) {
    double *q = to_double(p->q, q_size(&p->s));
    double *k = to_double(p->k, kv_size(&p->s));
    double *v = to_double(p->v, kv_size(&p->s));
    ref_forward_d(out, lse, p, q, k, v);
    free(q);
    free(k);
    free(v);
}

// Analytic backward of the loss sum(out * dout), in double:
// dP = dO V^T, dS = P (dP - rowsum(P dP)), dQ = scale dS K, dK = scale dS^T Q,
// dV = P^T dO. Writes (=) dq: (B, Tq, H, D), dk, dv: (B, Tk, Hkv, D).
static void ref_backward(double *dq, double *dk, double *dv, const problem *p) {
    const attn_shape *s = &p->s;
    const int D = s->D;
    double *q = to_double(p->q, q_size(s));
    double *k = to_double(p->k, kv_size(s));
    double *v = to_double(p->v, kv_size(s));
    double *prob = xmalloc(sizeof(double) * (size_t)(s->Tk + 1));
    double *dp = xmalloc(sizeof(double) * (size_t)(s->Tk + 1));
    memset(dq, 0, sizeof(double) * (size_t)q_size(s));
    memset(dk, 0, sizeof(double) * (size_t)kv_size(s));
    memset(dv, 0, sizeof(double) * (size_t)kv_size(s));
    for (int64_t b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++) {
            int hk = h / (s->H / s->Hkv);
            for (int64_t i = 0; i < s->Tq; i++) {
                ref_row(prob, p, q, k, b, h, i);
                int64_t oq = ((b * s->Tq + i) * s->H + h) * D;
                double dlt = 0.0;
                for (int64_t j = 0; j < s->Tk; j++) {
                    const double *vj = v + ((b * s->Tk + j) * s->Hkv + hk) * D;
                    double acc = 0.0;
                    for (int d = 0; d < D; d++) acc += p->dout[oq + d] * vj[d];
                    dp[j] = acc;
                    dlt += prob[j] * acc;
                }
                for (int64_t j = 0; j < s->Tk; j++) {
                    if (prob[j] == 0.0) continue;
                    int64_t ok = ((b * s->Tk + j) * s->Hkv + hk) * D;
                    double ds = s->scale * prob[j] * (dp[j] - dlt);
                    for (int d = 0; d < D; d++) {
                        dq[oq + d] += ds * k[ok + d];
                        dk[ok + d] += ds * q[oq + d];
                        dv[ok + d] += prob[j] * p->dout[oq + d];
                    }
                }
            }
        }
    free(q);
    free(k);
    free(v);
    free(prob);
    free(dp);
}

// ---------------------------------------------------------------------------
// Comparisons

// Normalized max error of x against ref (n values); -inf must match -inf.
static double norm_err(const float *x, const double *ref, int64_t n) {
    double err = 0.0, scale = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (isinf(ref[i]) || isinf(x[i])) {
            if (x[i] != ref[i]) return INFINITY;
            continue;
        }
        if (isnan(x[i])) return INFINITY;
        err = fmax(err, fabs(x[i] - ref[i]));
        scale = fmax(scale, fabs(ref[i]));
    }
    return scale > 0.0 ? err / scale : err;
}

static void expect_close(const char *what, const float *x, const double *ref, int64_t n,
                         double tol) {
    double e = norm_err(x, ref, n);
    print_message("    %-34s max err %.2e (tol %.0e)\n", what, e, tol);
    assert_true(e <= tol);
}

static void expect_close_f(const char *what, const float *x, const float *ref, int64_t n,
                           double tol) {
    double *r = to_double(ref, n);
    expect_close(what, x, r, n, tol);
    free(r);
}

// ---------------------------------------------------------------------------
// Forward

// attn_forward against the reference; also checks a second run is bitwise equal.
static void check_forward(const char *name, const problem *p) {
    const attn_shape *s = &p->s;
    int64_t nq = q_size(s), nl = lse_size(s);
    float *out = xmalloc(sizeof(float) * (size_t)nq), *lse = xmalloc(sizeof(float) * (size_t)nl);
    float *out2 = xmalloc(sizeof(float) * (size_t)nq), *lse2 = xmalloc(sizeof(float) * (size_t)nl);
    double *rout = xmalloc(sizeof(double) * (size_t)nq),
           *rlse = xmalloc(sizeof(double) * (size_t)nl);
    attn_forward(out, lse, p->q, p->k, p->v, p->seg_q, p->seg_k, s);
    ref_forward(rout, rlse, p);
    print_message("  %s: B=%lld Tq=%lld Tk=%lld H=%d Hkv=%d D=%d causal=%d seg=%d\n", name,
                  (long long)s->B, (long long)s->Tq, (long long)s->Tk, s->H, s->Hkv, s->D,
                  s->causal, p->seg_q != NULL);
    expect_close("forward out", out, rout, nq, TOL_FWD);
    expect_close("forward lse", lse, rlse, nl, TOL_LSE);
    attn_forward(out2, lse2, p->q, p->k, p->v, p->seg_q, p->seg_k, s);
    assert_memory_equal(out, out2, sizeof(float) * (size_t)nq);
    assert_memory_equal(lse, lse2, sizeof(float) * (size_t)nl);
    free(out);
    free(lse);
    free(out2);
    free(lse2);
    free(rout);
    free(rlse);
}

static void test_forward_causal_mha(void **state) {
    (void)state;
    problem p = make_problem(2, 130, 130, 3, 3, 64, true, 1);
    check_forward("causal MHA", &p);
    free_problem(&p);
}

static void test_forward_gqa(void **state) {
    (void)state;
    problem p = make_problem(1, 77, 77, 8, 2, 128, true, 2);
    check_forward("causal GQA", &p);
    free_problem(&p);
    p = make_problem(2, 130, 130, 8, 2, 24, true, 3);
    check_forward("causal GQA, odd D", &p);
    free_problem(&p);
}

static void test_forward_packed(void **state) {
    (void)state;
    static const int lens[] = {40, 1, 70, 3, 90, 17};
    problem p = make_problem(2, 200, 200, 4, 2, 64, true, 4);
    p.seg_q = p.seg_k = make_segments(2, 200, lens, 6);
    check_forward("packed documents", &p);
    free_problem(&p);
}

static void test_forward_noncausal(void **state) {
    (void)state;
    problem p = make_problem(1, 100, 100, 3, 1, 64, false, 5);
    check_forward("non-causal", &p);
    free_problem(&p);
    static const int lens[] = {30, 50, 7};
    p = make_problem(2, 77, 77, 2, 2, 24, false, 6);
    p.seg_q = p.seg_k = make_segments(2, 77, lens, 3);
    check_forward("non-causal packed", &p);
    free_problem(&p);
}

// Rows that see no key at all: out = 0, lse = -inf. Query segment ids that no
// key has, and (causal) a query block entirely before the key block.
static void test_forward_fully_masked_rows(void **state) {
    (void)state;
    problem p = make_problem(1, 70, 70, 2, 1, 32, false, 7);
    p.seg_q = xmalloc(sizeof(int32_t) * 70);
    p.seg_k = xmalloc(sizeof(int32_t) * 70);
    for (int t = 0; t < 70; t++) {
        p.seg_k[t] = t < 40 ? 0 : 1;
        p.seg_q[t] = t % 3 == 0 ? 7 : p.seg_k[t];  // id 7: no key
    }
    check_forward("rows with no visible key", &p);
    free_problem(&p);

    p = make_problem(1, 40, 50, 2, 2, 16, true, 8);
    p.s.q_start = 0;
    p.s.k_start = 40;
    float out[40 * 2 * 16], lse[2 * 40];
    attn_forward(out, lse, p.q, p.k, p.v, NULL, NULL, &p.s);
    for (int i = 0; i < 40 * 2 * 16; i++) assert_true(out[i] == 0.0f);
    for (int i = 0; i < 2 * 40; i++) assert_true(lse[i] == -INFINITY);
    free_problem(&p);
}

// ---------------------------------------------------------------------------
// Block decomposition (what ring attention does)

// Copies rows [t0, t0 + n) of x: (B, T, C) into (B, n, C).
static float *slice_rows(const float *x, int64_t B, int64_t T, int64_t C, int64_t t0, int64_t n) {
    float *y = xmalloc(sizeof(float) * (size_t)(B * n * C) + 1);
    for (int64_t b = 0; b < B; b++)
        memcpy(y + b * n * C, x + (b * T + t0) * C, sizeof(float) * (size_t)(n * C));
    return y;
}

static int32_t *slice_seg(const int32_t *x, int64_t B, int64_t T, int64_t t0, int64_t n) {
    if (!x) return NULL;
    int32_t *y = xmalloc(sizeof(int32_t) * (size_t)(B * n) + 1);
    for (int64_t b = 0; b < B; b++) memcpy(y + b * n, x + b * T + t0, sizeof(int32_t) * (size_t)n);
    return y;
}

// The sub-problem of query rows [q0, q0 + nq) and key rows [k0, k0 + nk) of
// a whole-sequence problem, with global offsets.
static problem sub_problem(const problem *w, int64_t q0, int64_t nq, int64_t k0, int64_t nk) {
    const attn_shape *s = &w->s;
    problem p = {0};
    p.s = *s;
    p.s.Tq = nq;
    p.s.Tk = nk;
    p.s.q_start = s->q_start + q0;
    p.s.k_start = s->k_start + k0;
    int64_t cq = (int64_t)s->H * s->D, ck = (int64_t)s->Hkv * s->D;
    p.q = slice_rows(w->q, s->B, s->Tq, cq, q0, nq);
    p.dout = slice_rows(w->dout, s->B, s->Tq, cq, q0, nq);
    p.k = slice_rows(w->k, s->B, s->Tk, ck, k0, nk);
    p.v = slice_rows(w->v, s->B, s->Tk, ck, k0, nk);
    p.seg_q = slice_seg(w->seg_q, s->B, s->Tq, q0, nq);
    p.seg_k = slice_seg(w->seg_k, s->B, s->Tk, k0, nk);
    return p;
}

// Splits the queries at qcut and the keys at kcut (block boundaries, first 0,
// last T), runs attn_block_forward for every pair (key blocks in reverse
// order) and checks the merged result against the whole.
static void check_block_forward(const char *name, const problem *w, const int64_t *qcut, int nqb,
                                const int64_t *kcut, int nkb) {
    const attn_shape *s = &w->s;
    int64_t nq = q_size(s), nl = lse_size(s);
    float *out = xmalloc(sizeof(float) * (size_t)nq), *lse = xmalloc(sizeof(float) * (size_t)nl);
    double *rout = xmalloc(sizeof(double) * (size_t)nq),
           *rlse = xmalloc(sizeof(double) * (size_t)nl);
    float *out_all = xmalloc(sizeof(float) * (size_t)nq);
    float *lse_all = xmalloc(sizeof(float) * (size_t)nl);
    int64_t cq = (int64_t)s->H * s->D;
    attn_forward(out_all, lse_all, w->q, w->k, w->v, w->seg_q, w->seg_k, s);
    ref_forward(rout, rlse, w);
    for (int qb = 0; qb < nqb; qb++) {
        int64_t q0 = qcut[qb], n = qcut[qb + 1] - qcut[qb];
        float *o = xcalloc((size_t)(s->B * n * cq) + 1, sizeof(float));
        float *l = xmalloc(sizeof(float) * (size_t)(s->B * s->H * n) + 1);
        for (int64_t r = 0; r < s->B * s->H * n; r++) l[r] = -INFINITY;
        for (int kb = nkb - 1; kb >= 0; kb--) {
            problem p = sub_problem(w, q0, n, kcut[kb], kcut[kb + 1] - kcut[kb]);
            attn_block_forward(o, l, p.q, p.k, p.v, p.seg_q, p.seg_k, &p.s);
            free_problem(&p);
        }
        for (int64_t b = 0; b < s->B; b++) {
            memcpy(out + (b * s->Tq + q0) * cq, o + b * n * cq, sizeof(float) * (size_t)(n * cq));
            for (int h = 0; h < s->H; h++)
                memcpy(lse + (b * s->H + h) * s->Tq + q0, l + (b * s->H + h) * n,
                       sizeof(float) * (size_t)n);
        }
        free(o);
        free(l);
    }
    print_message("  %s: %d query x %d key blocks, T=%lld\n", name, nqb, nkb, (long long)s->Tq);
    expect_close("blocks merged vs reference out", out, rout, nq, TOL_FWD);
    expect_close("blocks merged vs reference lse", lse, rlse, nl, TOL_LSE);
    expect_close_f("blocks merged vs whole out", out, out_all, nq, TOL_FWD);
    expect_close_f("blocks merged vs whole lse", lse, lse_all, nl, TOL_LSE);
    free(out);
    free(lse);
    free(rout);
    free(rlse);
    free(out_all);
    free(lse_all);
}

static void test_block_forward(void **state) {
    (void)state;
    problem w = make_problem(2, 200, 200, 4, 2, 64, true, 9);
    const int64_t one[] = {0, 200}, q3[] = {0, 64, 77, 200}, k4[] = {0, 50, 127, 128, 200};
    check_block_forward("causal, key blocks", &w, one, 1, k4, 4);
    check_block_forward("causal, query x key blocks", &w, q3, 3, k4, 4);
    static const int lens[] = {33, 100, 5, 62};
    w.seg_q = w.seg_k = make_segments(2, 200, lens, 4);
    check_block_forward("causal packed, query x key blocks", &w, q3, 3, k4, 4);
    w.s.causal = false;
    check_block_forward("non-causal packed, blocks", &w, q3, 3, k4, 4);
    free_problem(&w);
}

// Zig-zag-like: the query block [96, 160) meets key blocks at k_start = 0,
// 96 and 160; the last one is entirely in its causal future and must leave
// (out, lse) bitwise untouched.
static void test_block_forward_zigzag(void **state) {
    (void)state;
    problem w = make_problem(1, 256, 256, 4, 2, 64, true, 10);
    const int64_t q0 = 96, nq = 64, kb[][2] = {{0, 96}, {96, 64}, {160, 64}};
    const attn_shape *s = &w.s;
    int64_t cq = (int64_t)s->H * s->D;
    float *o = xcalloc((size_t)(nq * cq), sizeof(float));
    float *l = xmalloc(sizeof(float) * (size_t)(s->H * nq));
    for (int64_t r = 0; r < s->H * nq; r++) l[r] = -INFINITY;
    float *o_before = xmalloc(sizeof(float) * (size_t)(nq * cq));
    float *l_before = xmalloc(sizeof(float) * (size_t)(s->H * nq));
    for (int i = 0; i < 3; i++) {
        problem p = sub_problem(&w, q0, nq, kb[i][0], kb[i][1]);
        memcpy(o_before, o, sizeof(float) * (size_t)(nq * cq));
        memcpy(l_before, l, sizeof(float) * (size_t)(s->H * nq));
        attn_block_forward(o, l, p.q, p.k, p.v, NULL, NULL, &p.s);
        if (i == 2) {
            assert_memory_equal(o, o_before, sizeof(float) * (size_t)(nq * cq));
            assert_memory_equal(l, l_before, sizeof(float) * (size_t)(s->H * nq));
        }
        free_problem(&p);
    }
    problem ref = sub_problem(&w, q0, nq, 0, 256);
    double *rout = xmalloc(sizeof(double) * (size_t)(nq * cq));
    double *rlse = xmalloc(sizeof(double) * (size_t)(s->H * nq));
    ref_forward(rout, rlse, &ref);
    print_message("  zig-zag: query block [96,160) over key blocks at 0, 96, 160\n");
    expect_close("merged out", o, rout, nq * cq, TOL_FWD);
    expect_close("merged lse", l, rlse, s->H * nq, TOL_LSE);
    free_problem(&ref);
    free_problem(&w);
    free(o);
    free(l);
    free(o_before);
    free(l_before);
    free(rout);
    free(rlse);
}

// Two independent partials (keys [0, 90) and [90, 150), each from a fresh
// out = 0, lse = -inf) merged by attn_merge equal the whole. Under the causal
// mask the first 90 rows see nothing in the second partial.
static void test_merge(void **state) {
    (void)state;
    problem w = make_problem(2, 150, 150, 2, 1, 64, true, 11);
    const attn_shape *s = &w.s;
    int64_t nq = q_size(s), nl = lse_size(s);
    float *oa = xcalloc((size_t)nq, sizeof(float)), *ob = xcalloc((size_t)nq, sizeof(float));
    float *la = xmalloc(sizeof(float) * (size_t)nl), *lb = xmalloc(sizeof(float) * (size_t)nl);
    for (int64_t r = 0; r < nl; r++) la[r] = lb[r] = -INFINITY;
    problem pa = sub_problem(&w, 0, 150, 0, 90), pb = sub_problem(&w, 0, 150, 90, 60);
    attn_block_forward(oa, la, pa.q, pa.k, pa.v, NULL, NULL, &pa.s);
    attn_block_forward(ob, lb, pb.q, pb.k, pb.v, NULL, NULL, &pb.s);
    attn_merge(oa, la, ob, lb, s->B, s->Tq, s->H, s->D);
    double *rout = xmalloc(sizeof(double) * (size_t)nq),
           *rlse = xmalloc(sizeof(double) * (size_t)nl);
    ref_forward(rout, rlse, &w);
    print_message("  attn_merge of two partials\n");
    expect_close("merged out", oa, rout, nq, TOL_FWD);
    expect_close("merged lse", la, rlse, nl, TOL_LSE);
    // Merging a partial that saw nothing is the identity.
    float *oc = xmalloc(sizeof(float) * (size_t)nq), *lc = xmalloc(sizeof(float) * (size_t)nl);
    memcpy(oc, oa, sizeof(float) * (size_t)nq);
    memcpy(lc, la, sizeof(float) * (size_t)nl);
    for (int64_t r = 0; r < nl; r++) lb[r] = -INFINITY;
    attn_merge(oc, lc, ob, lb, s->B, s->Tq, s->H, s->D);
    assert_memory_equal(oc, oa, sizeof(float) * (size_t)nq);
    assert_memory_equal(lc, la, sizeof(float) * (size_t)nl);
    // Nothing merged with nothing stays out = 0, lse = -inf (no NaN); a
    // partial merged into nothing is copied.
    memset(oc, 0, sizeof(float) * (size_t)nq);
    for (int64_t r = 0; r < nl; r++) lc[r] = -INFINITY;
    attn_merge(oc, lc, ob, lb, s->B, s->Tq, s->H, s->D);
    for (int64_t i = 0; i < nq; i++) assert_true(oc[i] == 0.0f);
    for (int64_t r = 0; r < nl; r++) assert_true(lc[r] == -INFINITY);
    attn_merge(oc, lc, oa, la, s->B, s->Tq, s->H, s->D);
    assert_memory_equal(oc, oa, sizeof(float) * (size_t)nq);
    assert_memory_equal(lc, la, sizeof(float) * (size_t)nl);
    free_problem(&pa);
    free_problem(&pb);
    free_problem(&w);
    free(oa);
    free(ob);
    free(la);
    free(lb);
    free(oc);
    free(lc);
    free(rout);
    free(rlse);
}

// ---------------------------------------------------------------------------
// Backward

typedef struct {
    float *dq, *dk, *dv;
} grads;

static grads grads_zero(const attn_shape *s) {
    grads g = {xcalloc((size_t)q_size(s), sizeof(float)),
               xcalloc((size_t)kv_size(s), sizeof(float)),
               xcalloc((size_t)kv_size(s), sizeof(float))};
    return g;
}

static void grads_free(grads *g) {
    free(g->dq);
    free(g->dk);
    free(g->dv);
}

// attn_forward + attn_backward from zeroed gradients.
static grads run_backward(const problem *p) {
    const attn_shape *s = &p->s;
    float *out = xmalloc(sizeof(float) * (size_t)q_size(s));
    float *lse = xmalloc(sizeof(float) * (size_t)lse_size(s));
    attn_forward(out, lse, p->q, p->k, p->v, p->seg_q, p->seg_k, s);
    grads g = grads_zero(s);
    attn_backward(g.dq, g.dk, g.dv, p->dout, p->q, p->k, p->v, out, lse, p->seg_q, p->seg_k, s);
    free(out);
    free(lse);
    return g;
}

// attn_backward against the analytic reference; a second run (with one
// thread) must be bitwise equal.
static void check_backward(const char *name, const problem *p) {
    const attn_shape *s = &p->s;
    int64_t nq = q_size(s), nk = kv_size(s);
    double *rdq = xmalloc(sizeof(double) * (size_t)nq);
    double *rdk = xmalloc(sizeof(double) * (size_t)nk), *rdv = xmalloc(sizeof(double) * (size_t)nk);
    ref_backward(rdq, rdk, rdv, p);
    grads g = run_backward(p);
    print_message("  %s: B=%lld T=%lld H=%d Hkv=%d D=%d causal=%d seg=%d\n", name, (long long)s->B,
                  (long long)s->Tq, s->H, s->Hkv, s->D, s->causal, p->seg_q != NULL);
    expect_close("dq", g.dq, rdq, nq, TOL_BWD);
    expect_close("dk", g.dk, rdk, nk, TOL_BWD);
    expect_close("dv", g.dv, rdv, nk, TOL_BWD);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    grads g1 = run_backward(p);
    omp_set_num_threads(threads);
    assert_memory_equal(g.dq, g1.dq, sizeof(float) * (size_t)nq);
    assert_memory_equal(g.dk, g1.dk, sizeof(float) * (size_t)nk);
    assert_memory_equal(g.dv, g1.dv, sizeof(float) * (size_t)nk);
    grads_free(&g);
    grads_free(&g1);
    free(rdq);
    free(rdk);
    free(rdv);
}

static void test_backward(void **state) {
    (void)state;
    problem p = make_problem(2, 130, 130, 2, 2, 64, true, 12);
    check_backward("causal MHA", &p);
    free_problem(&p);
    p = make_problem(1, 77, 77, 8, 2, 128, true, 13);
    check_backward("causal GQA", &p);
    free_problem(&p);
    static const int lens[] = {40, 1, 70, 3, 90, 17};
    p = make_problem(2, 150, 150, 4, 2, 24, true, 14);
    p.seg_q = p.seg_k = make_segments(2, 150, lens, 6);
    check_backward("causal GQA packed, odd D", &p);
    free_problem(&p);
    p = make_problem(1, 100, 100, 3, 1, 64, false, 15);
    check_backward("non-causal GQA", &p);
    free_problem(&p);
}

// Rows with no visible key (lse = -inf) get zero gradients and no NaN.
static void test_backward_fully_masked_rows(void **state) {
    (void)state;
    problem p = make_problem(1, 70, 70, 2, 1, 32, true, 16);
    p.seg_q = xmalloc(sizeof(int32_t) * 70);
    p.seg_k = xmalloc(sizeof(int32_t) * 70);
    for (int t = 0; t < 70; t++) {
        p.seg_k[t] = t < 40 ? 0 : 1;
        p.seg_q[t] = t % 3 == 0 ? 7 : p.seg_k[t];
    }
    check_backward("rows with no visible key", &p);
    free_problem(&p);
}

// Loss sum(out * dout) of the double reference, at (q, k, v).
static double ref_loss(const problem *p, const double *q, const double *k, const double *v) {
    const attn_shape *s = &p->s;
    double *out = xmalloc(sizeof(double) * (size_t)q_size(s));
    double *lse = xmalloc(sizeof(double) * (size_t)lse_size(s));
    ref_forward_d(out, lse, p, q, k, v);
    double loss = 0.0;
    for (int64_t i = 0; i < q_size(s); i++) loss += out[i] * p->dout[i];
    free(out);
    free(lse);
    return loss;
}

// Central differences of the double reference loss at a few elements of each
// of q, k, v, against the analytic reference backward (tight: both double)
// and the kernel's fp32 backward.
static void test_backward_finite_differences(void **state) {
    (void)state;
    static const int lens[] = {5, 8};
    problem p = make_problem(1, 13, 13, 4, 2, 6, true, 17);
    p.seg_q = p.seg_k = make_segments(1, 13, lens, 2);
    const attn_shape *s = &p.s;
    int64_t nq = q_size(s), nk = kv_size(s);
    double *x[3] = {to_double(p.q, nq), to_double(p.k, nk), to_double(p.v, nk)};
    int64_t n[3] = {nq, nk, nk};
    double *rdq = xmalloc(sizeof(double) * (size_t)nq);
    double *rdk = xmalloc(sizeof(double) * (size_t)nk), *rdv = xmalloc(sizeof(double) * (size_t)nk);
    ref_backward(rdq, rdk, rdv, &p);
    grads g = run_backward(&p);
    const double *ref[3] = {rdq, rdk, rdv};
    const float *ker[3] = {g.dq, g.dk, g.dv};
    const double h = 1e-5;
    double err_ref = 0.0, err_ker = 0.0, scale = 0.0;
    uint64_t st = 99;
    for (int t = 0; t < 3; t++)
        for (int r = 0; r < 12; r++) {
            int64_t i = (int64_t)(rng_next(&st) % (uint64_t)n[t]);
            double x0 = x[t][i];
            x[t][i] = x0 + h;
            double lp = ref_loss(&p, x[0], x[1], x[2]);
            x[t][i] = x0 - h;
            double lm = ref_loss(&p, x[0], x[1], x[2]);
            x[t][i] = x0;
            double fd = (lp - lm) / (2.0 * h);
            err_ref = fmax(err_ref, fabs(fd - ref[t][i]));
            err_ker = fmax(err_ker, fabs(fd - ker[t][i]));
            scale = fmax(scale, fabs(fd));
        }
    print_message("  finite differences (36 elements, |grad| up to %.2f):\n", scale);
    print_message("    %-34s max err %.2e (tol 1e-8)\n", "reference backward", err_ref / scale);
    print_message("    %-34s max err %.2e (tol %.0e)\n", "kernel backward", err_ker / scale,
                  TOL_BWD);
    assert_true(scale > 0.1);
    assert_true(err_ref / scale <= 1e-8);
    assert_true(err_ker / scale <= TOL_BWD);
    grads_free(&g);
    for (int t = 0; t < 3; t++) free(x[t]);
    free(rdq);
    free(rdk);
    free(rdv);
    free_problem(&p);
}

// Block backward over query x key blocks, with the final lse and delta of
// the whole forward, summed, equals the whole backward.
static void check_block_backward(const char *name, const problem *w, const int64_t *qcut, int nqb,
                                 const int64_t *kcut, int nkb) {
    const attn_shape *s = &w->s;
    int64_t nq = q_size(s), nk = kv_size(s), nl = lse_size(s);
    int64_t cq = (int64_t)s->H * s->D, ck = (int64_t)s->Hkv * s->D;
    float *out = xmalloc(sizeof(float) * (size_t)nq), *lse = xmalloc(sizeof(float) * (size_t)nl);
    float *delta = xmalloc(sizeof(float) * (size_t)nl);
    attn_forward(out, lse, w->q, w->k, w->v, w->seg_q, w->seg_k, s);
    attn_backward_delta(delta, w->dout, out, s->B, s->Tq, s->H, s->D);
    grads whole = grads_zero(s), sum = grads_zero(s);
    attn_backward(whole.dq, whole.dk, whole.dv, w->dout, w->q, w->k, w->v, out, lse, w->seg_q,
                  w->seg_k, s);
    for (int qb = 0; qb < nqb; qb++) {
        int64_t q0 = qcut[qb], n = qcut[qb + 1] - qcut[qb];
        float *l = xmalloc(sizeof(float) * (size_t)(s->B * s->H * n) + 1);
        float *dl = xmalloc(sizeof(float) * (size_t)(s->B * s->H * n) + 1);
        for (int64_t bh = 0; bh < s->B * s->H; bh++) {
            memcpy(l + bh * n, lse + bh * s->Tq + q0, sizeof(float) * (size_t)n);
            memcpy(dl + bh * n, delta + bh * s->Tq + q0, sizeof(float) * (size_t)n);
        }
        float *dq = xcalloc((size_t)(s->B * n * cq) + 1, sizeof(float));
        for (int kb = 0; kb < nkb; kb++) {
            int64_t k0 = kcut[kb], m = kcut[kb + 1] - kcut[kb];
            problem p = sub_problem(w, q0, n, k0, m);
            float *dk = xcalloc((size_t)(s->B * m * ck) + 1, sizeof(float));
            float *dv = xcalloc((size_t)(s->B * m * ck) + 1, sizeof(float));
            attn_block_backward(dq, dk, dv, p.dout, p.q, p.k, p.v, l, dl, p.seg_q, p.seg_k, &p.s);
            for (int64_t b = 0; b < s->B; b++)
                for (int64_t r = 0; r < m * ck; r++) {
                    sum.dk[(b * s->Tk + k0) * ck + r] += dk[b * m * ck + r];
                    sum.dv[(b * s->Tk + k0) * ck + r] += dv[b * m * ck + r];
                }
            free(dk);
            free(dv);
            free_problem(&p);
        }
        for (int64_t b = 0; b < s->B; b++)
            memcpy(sum.dq + (b * s->Tq + q0) * cq, dq + b * n * cq,
                   sizeof(float) * (size_t)(n * cq));
        free(dq);
        free(l);
        free(dl);
    }
    double *rdq = xmalloc(sizeof(double) * (size_t)nq);
    double *rdk = xmalloc(sizeof(double) * (size_t)nk), *rdv = xmalloc(sizeof(double) * (size_t)nk);
    ref_backward(rdq, rdk, rdv, w);
    print_message("  %s: %d query x %d key blocks, T=%lld\n", name, nqb, nkb, (long long)s->Tq);
    expect_close_f("blocks summed vs whole dq", sum.dq, whole.dq, nq, TOL_BWD);
    expect_close_f("blocks summed vs whole dk", sum.dk, whole.dk, nk, TOL_BWD);
    expect_close_f("blocks summed vs whole dv", sum.dv, whole.dv, nk, TOL_BWD);
    expect_close("blocks summed vs reference dq", sum.dq, rdq, nq, TOL_BWD);
    expect_close("blocks summed vs reference dk", sum.dk, rdk, nk, TOL_BWD);
    expect_close("blocks summed vs reference dv", sum.dv, rdv, nk, TOL_BWD);
    grads_free(&whole);
    grads_free(&sum);
    free(out);
    free(lse);
    free(delta);
    free(rdq);
    free(rdk);
    free(rdv);
}

static void test_block_backward(void **state) {
    (void)state;
    problem w = make_problem(2, 200, 200, 4, 2, 64, true, 18);
    const int64_t one[] = {0, 200}, q3[] = {0, 64, 77, 200}, k4[] = {0, 50, 127, 128, 200};
    check_block_backward("causal GQA, key blocks", &w, one, 1, k4, 4);
    check_block_backward("causal GQA, query x key blocks", &w, q3, 3, k4, 4);
    static const int lens[] = {33, 100, 5, 62};
    w.seg_q = w.seg_k = make_segments(2, 200, lens, 4);
    check_block_backward("causal GQA packed", &w, q3, 3, k4, 4);
    free_problem(&w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_causal_mha),
        cmocka_unit_test(test_forward_gqa),
        cmocka_unit_test(test_forward_packed),
        cmocka_unit_test(test_forward_noncausal),
        cmocka_unit_test(test_forward_fully_masked_rows),
        cmocka_unit_test(test_block_forward),
        cmocka_unit_test(test_block_forward_zigzag),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_backward),
        cmocka_unit_test(test_backward_fully_masked_rows),
        cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_block_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
