// GPU attention (kernels/cuda/cu_attn.h) against the CPU reference
// (kernels/cpu/attn.h) on random inputs: forward (out, lse) and backward
// (dq, dk, dv, accumulated into random prefilled gradients) for head dims 64
// and 128, causal or not, GQA and MHA, packed documents, T from 1 to 2048,
// the ring-attention block form (a key block before, overlapping, after the
// queries) and a merge of 3-4 key blocks against the whole.
//
// bf16: the CPU gets the bf16-rounded inputs as fp32, so the only
// differences are the GPU's bf16 output and bf16 P / dS in the products;
// tolerance TOL_BF16 of max|ref| (lse: absolute TOL_LSE_BF16). fp32: TOL_F32.
// Errors: max|gpu - ref| / max|ref| per tensor; a NaN fails; an lse of -inf
// must match exactly. Outputs are poisoned (NaN) before a forward that
// writes them. Exit 0 pass, 1 fail, 77 no GPU.
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "cu_attn.h"
#include "die.h"

#define TOL_F32 1e-4
#define TOL_BF16 2e-2
#define TOL_LSE_BF16 2e-3

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

static float *rand_vec(int64_t n, float amp, bool round_bf16) {
    float *x = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        x[i] = amp * urand();
        if (round_bf16) x[i] = bf2f(f2bf(x[i]));
    }
    return x;
}

static float *copy_vec(const float *x, int64_t n) {
    float *y = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

// Device copy of x (n floats) in dtype dt.
static void *upload(const float *x, int64_t n, cu_dtype dt) {
    void *d = NULL;
    size_t bytes = (size_t)(n > 0 ? n : 1) * cu_dtype_size(dt);
    CU_CHECK(cudaMalloc(&d, bytes));
    if (dt == CU_F32) {
        CU_CHECK(cudaMemcpy(d, x, (size_t)n * 4, cudaMemcpyHostToDevice));
    } else {
        uint16_t *h = xmalloc(bytes);
        for (int64_t i = 0; i < n; i++) h[i] = f2bf(x[i]);
        CU_CHECK(cudaMemcpy(d, h, (size_t)n * 2, cudaMemcpyHostToDevice));
        free(h);
    }
    return d;
}

static float *download(const void *d, int64_t n, cu_dtype dt) {
    float *x = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (dt == CU_F32) {
        CU_CHECK(cudaMemcpy(x, d, (size_t)n * 4, cudaMemcpyDeviceToHost));
    } else {
        uint16_t *h = xmalloc((size_t)(n > 0 ? n : 1) * 2);
        CU_CHECK(cudaMemcpy(h, d, (size_t)n * 2, cudaMemcpyDeviceToHost));
        for (int64_t i = 0; i < n; i++) x[i] = bf2f(h[i]);
        free(h);
    }
    return x;
}

static int32_t *upload_i32(const int32_t *x, int64_t n) {
    if (!x) return NULL;
    int32_t *d = NULL;
    CU_CHECK(cudaMalloc((void **)&d, sizeof(int32_t) * (size_t)(n > 0 ? n : 1)));
    CU_CHECK(cudaMemcpy(d, x, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice));
    return d;
}

// max|x - ref| / max|ref| (NaN in x gives +inf).
static double rel_err(const float *x, const float *ref, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - (double)ref[i]);
        if (isnan(x[i]) || isnan(ref[i])) return INFINITY;
        if (e > num) num = e;
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return den > 0.0 ? num / den : num;
}

// max |x - ref| over the finite entries; +inf when -inf does not match.
static double lse_err(const float *x, const float *ref, int64_t n) {
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i])) return INFINITY;
        if (isinf(ref[i]) || isinf(x[i])) {
            if (x[i] != ref[i]) return INFINITY;
            continue;
        }
        double d = fabs((double)x[i] - (double)ref[i]);
        if (d > e) e = d;
    }
    return e;
}

// Segment ids of global positions [start, start + T) for sequence b:
// documents of lengths cycling through 37, 300, 5, 120, offset by b.
static int32_t doc_of(int64_t b, int64_t pos) {
    static const int lens[] = {37, 300, 5, 120};
    int64_t p = pos + b * 11, id = 0;
    for (int li = 0;; li = (li + 1) % 4, id++) {
        if (p < lens[li]) return (int32_t)id;
        p -= lens[li];
    }
}
static int32_t *make_seg(int64_t B, int64_t T, int64_t start) {
    int32_t *s = xmalloc(sizeof(int32_t) * (size_t)(B * T > 0 ? B * T : 1));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) s[b * T + t] = doc_of(b, start + t);
    return s;
}

// ---------------------------------------------------------------------------
// Cases

typedef struct {
    const char *name;
    int64_t B, Tq, Tk;
    int H, Hkv, D;
    int64_t q_start, k_start;
    bool causal, seg;
    int n_split;  // 0: whole (cu_attn_forward / backward); 1: one block; >1: merge of key blocks
} tcase;

static int n_fail = 0;

static void report(const tcase *c, cu_dtype dt, const char *what, double err, double tol) {
    bool ok = err <= tol;
    if (!ok) n_fail++;
    printf("%-34s %-4s D=%-3d %-4s err %.3e  tol %.0e  %s\n", c->name,
           dt == CU_BF16 ? "bf16" : "f32", c->D, what, err, tol, ok ? "ok" : "FAIL");
}

static void run_case(const tcase *c, cu_dtype dt) {
    const bool bf = dt == CU_BF16;
    const attn_shape s = {.B = c->B, .Tq = c->Tq, .Tk = c->Tk, .H = c->H, .Hkv = c->Hkv,
                          .D = c->D, .q_start = c->q_start, .k_start = c->k_start,
                          .scale = 1.0f / sqrtf((float)c->D), .causal = c->causal};
    const int64_t nq = s.B * s.Tq * s.H * s.D, nk = s.B * s.Tk * s.Hkv * s.D;
    const int64_t nl = s.B * s.H * s.Tq;
    float *q = rand_vec(nq, 2.0f, bf), *k = rand_vec(nk, 2.0f, bf), *v = rand_vec(nk, 1.0f, bf);
    float *dout = rand_vec(nq, 1.0f, bf);
    int32_t *sq = c->seg ? make_seg(s.B, s.Tq, s.q_start) : NULL;
    int32_t *sk = c->seg ? make_seg(s.B, s.Tk, s.k_start) : NULL;
    // Prefilled gradients (+= semantics) and, for the block form, a prefilled
    // running result is NOT used: blocks start from (0, -inf) as in ring use.
    float *dq0 = rand_vec(nq, 1.0f, false), *dk0 = rand_vec(nk, 1.0f, false);
    float *dv0 = rand_vec(nk, 1.0f, false);

    // CPU reference.
    float *out = xmalloc(sizeof(float) * (size_t)(nq > 0 ? nq : 1));
    float *lse = xmalloc(sizeof(float) * (size_t)(nl > 0 ? nl : 1));
    float *delta = xmalloc(sizeof(float) * (size_t)(nl > 0 ? nl : 1));
    float *dq = copy_vec(dq0, nq), *dk = copy_vec(dk0, nk), *dv = copy_vec(dv0, nk);
    if (c->n_split == 0) {
        attn_forward(out, lse, q, k, v, sq, sk, &s);
        attn_backward(dq, dk, dv, dout, q, k, v, out, lse, sq, sk, &s);
    } else {
        for (int64_t i = 0; i < nq; i++) out[i] = 0.0f;
        for (int64_t i = 0; i < nl; i++) lse[i] = -INFINITY;
        attn_block_forward(out, lse, q, k, v, sq, sk, &s);
        attn_backward_delta(delta, dout, out, s.B, s.Tq, s.H, s.D);
        attn_block_backward(dq, dk, dv, dout, q, k, v, lse, delta, sq, sk, &s);
    }

    // GPU.
    void *d_q = upload(q, nq, dt), *d_k = upload(k, nk, dt), *d_v = upload(v, nk, dt);
    void *d_dout = upload(dout, nq, dt);
    int32_t *d_sq = upload_i32(sq, s.B * s.Tq), *d_sk = upload_i32(sk, s.B * s.Tk);
    float *d_dq = upload(dq0, nq, CU_F32), *d_dk = upload(dk0, nk, CU_F32);
    float *d_dv = upload(dv0, nk, CU_F32);
    float *d_lse = NULL, *d_delta = NULL;
    CU_CHECK(cudaMalloc((void **)&d_lse, sizeof(float) * (size_t)(nl > 0 ? nl : 1)));
    CU_CHECK(cudaMalloc((void **)&d_delta, sizeof(float) * (size_t)(nl > 0 ? nl : 1)));
    float *g_out = NULL, *g_lse = NULL;
    if (c->n_split == 0) {
        void *d_out = NULL;
        CU_CHECK(cudaMalloc(&d_out, (size_t)(nq > 0 ? nq : 1) * cu_dtype_size(dt)));
        CU_CHECK(cudaMemset(d_out, 0xff, (size_t)nq * cu_dtype_size(dt)));  // NaN poison
        CU_CHECK(cudaMemset(d_lse, 0xff, sizeof(float) * (size_t)nl));
        cu_attn_forward(d_out, d_lse, d_q, d_k, d_v, d_sq, d_sk, &s, dt, 0);
        cu_attn_backward(d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_out, d_lse, d_delta, d_sq,
                         d_sk, &s, dt, 0);
        CU_CHECK(cudaDeviceSynchronize());
        g_out = download(d_out, nq, dt);
        CU_CHECK(cudaFree(d_out));
    } else {
        // Running result from (0, -inf), merged over n_split key blocks that
        // tile [k_start, k_start + Tk); the backward of each block takes the
        // CPU's final lse and delta.
        float *zero = xmalloc(sizeof(float) * (size_t)(nq > 0 ? nq : 1));
        float *minf = xmalloc(sizeof(float) * (size_t)(nl > 0 ? nl : 1));
        for (int64_t i = 0; i < nq; i++) zero[i] = 0.0f;
        for (int64_t i = 0; i < nl; i++) minf[i] = -INFINITY;
        float *d_acc = upload(zero, nq, CU_F32);
        CU_CHECK(cudaMemcpy(d_lse, minf, sizeof(float) * (size_t)nl, cudaMemcpyHostToDevice));
        float *d_lse_ref = upload(lse, nl, CU_F32);
        CU_CHECK(cudaMemcpy(d_delta, delta, sizeof(float) * (size_t)nl, cudaMemcpyHostToDevice));
        const size_t esz = cu_dtype_size(dt);
        for (int p = 0; p < c->n_split; p++) {
            int64_t j0 = s.Tk * p / c->n_split, j1 = s.Tk * (p + 1) / c->n_split;
            attn_shape sb = s;
            sb.Tk = j1 - j0;
            sb.k_start = s.k_start + j0;
            // Key block p as its own (B, Tk_p, Hkv, D) arrays, as ring attention receives it.
            void *bk = NULL, *bv = NULL;
            int32_t *bsk = NULL;
            size_t row = (size_t)s.Hkv * s.D * esz;
            CU_CHECK(cudaMalloc(&bk, (size_t)(s.B * sb.Tk) * row + 16));
            CU_CHECK(cudaMalloc(&bv, (size_t)(s.B * sb.Tk) * row + 16));
            float *bdk = NULL, *bdv = NULL;
            size_t frow = (size_t)s.Hkv * s.D * 4;
            CU_CHECK(cudaMalloc((void **)&bdk, (size_t)(s.B * sb.Tk) * frow + 16));
            CU_CHECK(cudaMalloc((void **)&bdv, (size_t)(s.B * sb.Tk) * frow + 16));
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
            if (c->seg) {
                int32_t *hs = make_seg(s.B, sb.Tk, sb.k_start);
                bsk = upload_i32(hs, s.B * sb.Tk);
                free(hs);
            }
            cu_attn_block_forward(d_acc, d_lse, d_q, bk, bv, d_sq, bsk, &sb, dt, 0);
            cu_attn_block_backward(d_dq, bdk, bdv, d_dout, d_q, bk, bv, d_lse_ref, d_delta, d_sq,
                                   bsk, &sb, dt, 0);
            for (int64_t b = 0; b < s.B; b++) {
                size_t src = (size_t)(b * s.Tk + j0), dst = (size_t)(b * sb.Tk), n = (size_t)sb.Tk;
                CU_CHECK(cudaMemcpy((char *)d_dk + src * frow, (char *)bdk + dst * frow, n * frow,
                                    cudaMemcpyDeviceToDevice));
                CU_CHECK(cudaMemcpy((char *)d_dv + src * frow, (char *)bdv + dst * frow, n * frow,
                                    cudaMemcpyDeviceToDevice));
            }
            CU_CHECK(cudaDeviceSynchronize());
            CU_CHECK(cudaFree(bk));
            CU_CHECK(cudaFree(bv));
            CU_CHECK(cudaFree(bdk));
            CU_CHECK(cudaFree(bdv));
            if (bsk) CU_CHECK(cudaFree(bsk));
        }
        g_out = download(d_acc, nq, CU_F32);
        CU_CHECK(cudaFree(d_acc));
        CU_CHECK(cudaFree(d_lse_ref));
        free(zero);
        free(minf);
    }
    CU_CHECK(cudaDeviceSynchronize());
    g_lse = download(d_lse, nl, CU_F32);
    float *g_dq = download(d_dq, nq, CU_F32), *g_dk = download(d_dk, nk, CU_F32);
    float *g_dv = download(d_dv, nk, CU_F32);

    // Gradients are compared as increments over the prefill, so the scale is
    // that of the gradient itself, not of the random prefill.
    for (int64_t i = 0; i < nq; i++) {
        g_dq[i] -= dq0[i];
        dq[i] -= dq0[i];
    }
    for (int64_t i = 0; i < nk; i++) {
        g_dk[i] -= dk0[i];
        dk[i] -= dk0[i];
        g_dv[i] -= dv0[i];
        dv[i] -= dv0[i];
    }
    const double tol = bf ? TOL_BF16 : TOL_F32, tol_lse = bf ? TOL_LSE_BF16 : TOL_F32;
    report(c, dt, "out", rel_err(g_out, out, nq), tol);
    report(c, dt, "lse", lse_err(g_lse, lse, nl), tol_lse);
    report(c, dt, "dq", rel_err(g_dq, dq, nq), tol);
    report(c, dt, "dk", rel_err(g_dk, dk, nk), tol);
    report(c, dt, "dv", rel_err(g_dv, dv, nk), tol);

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
    if (d_sk) CU_CHECK(cudaFree(d_sk));
    free(q), free(k), free(v), free(dout), free(sq), free(sk);
    free(dq0), free(dk0), free(dv0), free(out), free(lse), free(delta);
    free(dq), free(dk), free(dv), free(g_out), free(g_lse), free(g_dq), free(g_dk), free(g_dv);
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
    cu_attn_block_forward(d_acc, d_lse, d_q, d_k, d_v, NULL, NULL, &s, dt, 0);
    cu_attn_block_backward(d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_lse, d_lse, NULL, NULL, &s,
                           dt, 0);
    CU_CHECK(cudaDeviceSynchronize());
    float *a2 = download(d_acc, nq, CU_F32), *l2 = download(d_lse, nl, CU_F32);
    float *q2 = download(d_dq, nq, CU_F32), *k2 = download(d_dk, nk, CU_F32);
    float *v2 = download(d_dv, nk, CU_F32);  // d_dv was uploaded from dk
    bool same = memcmp(a2, acc, (size_t)nq * 4) == 0 && memcmp(l2, lse, (size_t)nl * 4) == 0 &&
                memcmp(q2, dq, (size_t)nq * 4) == 0 && memcmp(k2, dk, (size_t)nk * 4) == 0 &&
                memcmp(v2, dk, (size_t)nk * 4) == 0;
    tcase c = {.name = "block after queries (masked)", .D = D};
    report(&c, dt, "same", same ? 0.0 : 1.0, 0.0);
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

int main(void) {
    if (cu_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    // name, B, Tq, Tk, H, Hkv, D, q_start, k_start, causal, seg, n_split
    const tcase cases[] = {
        {"T=1 mha", 1, 1, 1, 4, 4, 0, 0, 0, false, false, 0},
        {"T=1 causal gqa", 2, 1, 1, 8, 2, 0, 0, 0, true, false, 0},
        {"T=17 causal gqa", 1, 17, 17, 8, 2, 0, 0, 0, true, false, 0},
        {"T=128 mha", 2, 128, 128, 4, 4, 0, 0, 0, false, false, 0},
        {"T=128 causal gqa seg", 1, 128, 128, 8, 2, 0, 0, 0, true, true, 0},
        {"T=1000 causal gqa", 1, 1000, 1000, 8, 2, 0, 0, 0, true, false, 0},
        {"T=1000 seg mha", 2, 1000, 1000, 2, 2, 0, 0, 0, false, true, 0},
        {"T=2048 causal gqa", 1, 2048, 2048, 8, 2, 0, 0, 0, true, false, 0},
        {"T=2048 causal gqa seg", 1, 2048, 2048, 8, 2, 0, 0, 0, true, true, 0},
        {"block before queries", 1, 300, 200, 8, 2, 0, 1000, 500, true, false, 1},
        {"block overlapping", 2, 300, 200, 8, 2, 0, 1000, 1100, true, false, 1},
        {"block overlapping seg", 1, 300, 200, 4, 4, 0, 1000, 1100, true, true, 1},
        {"block non-causal q!=k", 1, 77, 150, 8, 2, 0, 64, 333, false, false, 1},
        {"merge 3 blocks causal gqa seg", 1, 777, 777, 8, 2, 0, 0, 0, true, true, 3},
        {"merge 4 blocks causal offset", 2, 500, 500, 4, 2, 0, 4096, 4096, true, false, 4},
        {"merge 2 blocks non-causal", 1, 200, 333, 4, 1, 0, 0, 0, false, false, 2},
    };
    const int n_cases = (int)(sizeof cases / sizeof cases[0]);
    const cu_dtype dts[] = {CU_F32, CU_BF16};
    for (int di = 0; di < 2; di++)
        for (int D = 64; D <= 128; D *= 2) {
            for (int i = 0; i < n_cases; i++) {
                tcase c = cases[i];
                c.D = D;
                run_case(&c, dts[di]);
            }
            run_masked_block(D, dts[di]);
        }
    printf("%s: %d failure(s)\n", n_fail ? "FAIL" : "PASS", n_fail);
    return n_fail ? 1 : 0;
}
