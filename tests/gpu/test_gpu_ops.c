// test_gpu_ops: every op of kernels/cuda/cu_ops.h against its CPU reference
// (kernels/cpu) on random inputs, fp32 and bf16, several shapes (N = 1, sizes
// that are not multiples of the vector width, misaligned pointers, large C).
// bf16 inputs are rounded copies of the fp32 inputs fed to the CPU op.
// Backward ops get random pre-filled gradients, so += is checked. Outputs are
// poisoned with NaN before each run (an unwritten element fails).
//
// Tolerances (max|out - ref| / max|ref|): fp32 1e-5 (different summation
// orders, FMA); bf16 1e-2 (one or two bf16 roundings of the output, 2^-8).
// Exit 0 all pass, 1 a failure, 77 no GPU.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "cu_ops.h"
#include "embedding.h"
#include "gpu_ops_check.h"
#include "matmul.h"
#include "rmsnorm.h"
#include "rope.h"
#include "swiglu.h"
#include "xent.h"

static const cu_dtype DTYPES[2] = {CU_F32, CU_BF16};
static double tol_of(cu_dtype dt) { return dt == CU_BF16 ? 1e-2 : 1e-5; }

// ---------------------------------------------------------------------------
static void test_cast_axpy(int64_t n, int misalign) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%lld%s", (long long)n, misalign ? " misaligned" : "");
    for (int d = 0; d < 2; d++) {
        cu_dtype dt = DTYPES[d], other = dt == CU_F32 ? CU_BF16 : CU_F32;
        float *x = gc_rand(n + 1, -2, 2), *y = gc_rand(n + 1, -2, 2);
        gc_round(x, n + 1, other);
        gc_round(y, n + 1, dt);
        char *dx = gc_upload(x, n + 1, other), *dy = gc_upload(y, n + 1, dt);
        size_t so = cu_dtype_size(other), sd = cu_dtype_size(dt);
        // cast other -> dt
        char *dc = gc_alloc((size_t)(n + 1) * sd);
        cu_cast(dc + misalign * sd, dt, dx + misalign * so, other, n, 0);
        CU_CHECK_LAUNCH();
        float *out = gc_fetch(dc + misalign * sd, n, dt), *ref = gc_copy(x + misalign, n);
        gc_round(ref, n, dt);
        char op[32];
        snprintf(op, sizeof op, "cast_from_%s", gc_dt_name(other));
        gc_compare(op, gc_dt_name(dt), shape, out, ref, n, 0.0);
        free(out);
        // axpy: y (dt) += 0.75 x (other)
        cu_axpy(dy + misalign * sd, dt, 0.75f, dx + misalign * so, other, n, 0);
        out = gc_fetch(dy + misalign * sd, n, dt);
        for (int64_t i = 0; i < n; i++) ref[i] = y[i + misalign] + 0.75f * x[i + misalign];
        snprintf(op, sizeof op, "axpy_x_%s", gc_dt_name(other));
        gc_compare(op, gc_dt_name(dt), shape, out, ref, n, dt == CU_BF16 ? 1e-2 : 1e-6);
        free(out); free(ref); free(x); free(y);
        CU_CHECK(cudaFree(dx)); CU_CHECK(cudaFree(dy)); CU_CHECK(cudaFree(dc));
    }
}

// ---------------------------------------------------------------------------
static void make_table(rope_table *t, int d, int64_t n_hat, float attn) {
    memset(t, 0, sizeof *t);
    t->rotary_dim = d;
    t->n_pairs = d / 2;
    for (int i = 0; i < d / 2; i++) {
        t->inv_freq_orig[i] = (float)pow(500000.0, -2.0 * i / d);
        t->inv_freq[i] = t->inv_freq_orig[i] / (i < d / 8 ? 1.0f : 8.0f);
    }
    t->n_hat = n_hat;
    t->attention_factor = attn;
}

static void test_rope(int64_t N, int H, int Hkv, int D, int d, rope_layout layout,
                      int64_t n_hat, float attn) {
    rope_table t;
    make_table(&t, d, n_hat, attn);
    char shape[96];
    snprintf(shape, sizeof shape, "N%lld H%d/%d D%d d%d %s%s", (long long)N, H, Hkv, D, d,
             layout == ROPE_LAYOUT_HALF ? "half" : "inter", n_hat ? " n_hat" : "");
    int32_t *pos = malloc((size_t)N * sizeof *pos);
    for (int64_t n = 0; n < N; n++) pos[n] = n % 3 == 0 ? (int32_t)n : (int32_t)gc_int(131072);
    int32_t *dpos;
    CU_CHECK(cudaMalloc((void **)&dpos, (size_t)N * sizeof *dpos));
    CU_CHECK(cudaMemcpy(dpos, pos, (size_t)N * sizeof *pos, cudaMemcpyHostToDevice));
    int64_t nq = N * H * D, nk = N * Hkv * D;
    for (int d2 = 0; d2 < 2; d2++) {
        cu_dtype dt = DTYPES[d2];
        for (int dir = 0; dir < 2; dir++) {
            float *q = gc_rand(nq, -1, 1), *k = gc_rand(nk, -1, 1);
            gc_round(q, nq, dt);
            gc_round(k, nk, dt);
            void *dq = gc_upload(q, nq, dt), *dk = gc_upload(k, nk, dt);
            if (dir == 0) {
                rope_forward(q, k, pos, &t, layout, N, H, Hkv, D);
                cu_rope_forward(dq, dk, dpos, &t, layout, N, H, Hkv, D, dt, 0);
            } else {
                rope_backward(q, k, pos, &t, layout, N, H, Hkv, D);
                cu_rope_backward(dq, dk, dpos, &t, layout, N, H, Hkv, D, dt, 0);
            }
            float *oq = gc_fetch(dq, nq, dt), *ok = gc_fetch(dk, nk, dt);
            const char *op = dir == 0 ? "rope_fwd" : "rope_bwd";
            char s2[128];
            snprintf(s2, sizeof s2, "%s q", shape);
            gc_compare(op, gc_dt_name(dt), s2, oq, q, nq, tol_of(dt));
            snprintf(s2, sizeof s2, "%s k", shape);
            gc_compare(op, gc_dt_name(dt), s2, ok, k, nk, tol_of(dt));
            free(q); free(k); free(oq); free(ok);
            CU_CHECK(cudaFree(dq)); CU_CHECK(cudaFree(dk));
        }
    }
    free(pos);
    CU_CHECK(cudaFree(dpos));
}

// ---------------------------------------------------------------------------
static void test_rmsnorm(int64_t N, int64_t C) {
    char shape[64];
    snprintf(shape, sizeof shape, "N%lld C%lld", (long long)N, (long long)C);
    for (int d = 0; d < 2; d++) {
        cu_dtype dt = DTYPES[d];
        float *x = gc_rand(N * C, -2, 2), *w = gc_rand(C, 0.5f, 1.5f);
        float *dy = gc_rand(N * C, -1, 1), *dx = gc_rand(N * C, -1, 1), *dw = gc_rand(C, -1, 1);
        gc_round(x, N * C, dt); gc_round(w, C, dt); gc_round(dy, N * C, dt); gc_round(dx, N * C, dt);
        void *d_x = gc_upload(x, N * C, dt), *d_w = gc_upload(w, C, dt);
        void *d_dy = gc_upload(dy, N * C, dt), *d_dx = gc_upload(dx, N * C, dt);
        float *d_dw = gc_upload(dw, C, CU_F32), *d_rstd = gc_alloc((size_t)N * 4);
        void *d_out = gc_alloc((size_t)(N * C) * cu_dtype_size(dt));
        void *scratch = gc_alloc(cu_rmsnorm_scratch_bytes(N, C));
        float *out = malloc((size_t)(N * C) * 4), *rstd = malloc((size_t)N * 4);
        rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
        rmsnorm_backward(dx, dw, dy, x, w, rstd, N, C);
        cu_rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, 1e-5f, dt, 0);
        float *g_out = gc_fetch(d_out, N * C, dt), *g_rstd = gc_fetch(d_rstd, N, CU_F32);
        // backward from the CPU's rstd, so the check is of backward alone
        CU_CHECK(cudaMemcpy(d_rstd, rstd, (size_t)N * 4, cudaMemcpyHostToDevice));
        cu_rmsnorm_backward(d_dx, d_dw, d_dy, d_x, d_w, d_rstd, N, C, scratch, dt, 0);
        float *g_dx = gc_fetch(d_dx, N * C, dt), *g_dw = gc_fetch(d_dw, C, CU_F32);
        gc_compare("rmsnorm_fwd out", gc_dt_name(dt), shape, g_out, out, N * C, tol_of(dt));
        gc_compare("rmsnorm_fwd rstd", gc_dt_name(dt), shape, g_rstd, rstd, N, 1e-5);
        gc_compare("rmsnorm_bwd dinp+=", gc_dt_name(dt), shape, g_dx, dx, N * C, tol_of(dt));
        gc_compare("rmsnorm_bwd dweight+=", gc_dt_name(dt), shape, g_dw, dw, C,
                   dt == CU_BF16 ? 1e-4 : 1e-5);
        free(x); free(w); free(dy); free(dx); free(dw); free(out); free(rstd);
        free(g_out); free(g_rstd); free(g_dx); free(g_dw);
        CU_CHECK(cudaFree(d_x)); CU_CHECK(cudaFree(d_w)); CU_CHECK(cudaFree(d_dy));
        CU_CHECK(cudaFree(d_dx)); CU_CHECK(cudaFree(d_dw)); CU_CHECK(cudaFree(d_rstd));
        CU_CHECK(cudaFree(d_out)); CU_CHECK(cudaFree(scratch));
    }
}

// ---------------------------------------------------------------------------
static void test_swiglu(int64_t n) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%lld", (long long)n);
    for (int d = 0; d < 2; d++) {
        cu_dtype dt = DTYPES[d];
        float *g = gc_rand(n, -6, 6), *u = gc_rand(n, -2, 2), *dy = gc_rand(n, -1, 1);
        float *dg = gc_rand(n, -1, 1), *du = gc_rand(n, -1, 1), *out = malloc((size_t)n * 4);
        gc_round(g, n, dt); gc_round(u, n, dt); gc_round(dy, n, dt);
        gc_round(dg, n, dt); gc_round(du, n, dt);
        void *d_g = gc_upload(g, n, dt), *d_u = gc_upload(u, n, dt), *d_dy = gc_upload(dy, n, dt);
        void *d_dg = gc_upload(dg, n, dt), *d_du = gc_upload(du, n, dt);
        void *d_out = gc_alloc((size_t)n * cu_dtype_size(dt));
        swiglu_forward(out, g, u, n);
        swiglu_backward(dg, du, dy, g, u, n);
        cu_swiglu_forward(d_out, d_g, d_u, n, dt, 0);
        cu_swiglu_backward(d_dg, d_du, d_dy, d_g, d_u, n, dt, 0);
        float *o = gc_fetch(d_out, n, dt), *og = gc_fetch(d_dg, n, dt), *ou = gc_fetch(d_du, n, dt);
        gc_compare("swiglu_fwd", gc_dt_name(dt), shape, o, out, n, tol_of(dt));
        gc_compare("swiglu_bwd dgate+=", gc_dt_name(dt), shape, og, dg, n, tol_of(dt));
        gc_compare("swiglu_bwd dup+=", gc_dt_name(dt), shape, ou, du, n, tol_of(dt));
        free(g); free(u); free(dy); free(dg); free(du); free(out); free(o); free(og); free(ou);
        CU_CHECK(cudaFree(d_g)); CU_CHECK(cudaFree(d_u)); CU_CHECK(cudaFree(d_dy));
        CU_CHECK(cudaFree(d_dg)); CU_CHECK(cudaFree(d_du)); CU_CHECK(cudaFree(d_out));
    }
}

// ---------------------------------------------------------------------------
static void test_embedding(int64_t N, int64_t C, int64_t V) {
    char shape[64];
    snprintf(shape, sizeof shape, "N%lld C%lld V%lld", (long long)N, (long long)C, (long long)V);
    int32_t *tok = malloc((size_t)N * 4);
    for (int64_t n = 0; n < N; n++) tok[n] = (int32_t)(n % 4 == 0 ? 0 : gc_int(V));  // repeats
    int32_t *d_tok;
    CU_CHECK(cudaMalloc((void **)&d_tok, (size_t)N * 4));
    CU_CHECK(cudaMemcpy(d_tok, tok, (size_t)N * 4, cudaMemcpyHostToDevice));
    for (int d = 0; d < 2; d++) {
        cu_dtype dt = DTYPES[d];
        float *wte = gc_rand(V * C, -1, 1), *dy = gc_rand(N * C, -1, 1), *dw = gc_rand(V * C, -1, 1);
        gc_round(wte, V * C, dt); gc_round(dy, N * C, dt);
        float *out = malloc((size_t)(N * C) * 4);
        void *d_wte = gc_upload(wte, V * C, dt), *d_dy = gc_upload(dy, N * C, dt);
        float *d_dw = gc_upload(dw, V * C, CU_F32), *d_dw2 = gc_upload(dw, V * C, CU_F32);
        void *d_out = gc_alloc((size_t)(N * C) * cu_dtype_size(dt));
        void *scratch = gc_alloc(cu_embedding_scratch_bytes(N, V));
        embedding_forward(out, tok, wte, N, C, V);
        embedding_backward(dw, dy, tok, N, C);
        cu_embedding_forward(d_out, d_tok, d_wte, N, C, V, dt, 0);
        cu_embedding_backward(d_dw, d_dy, d_tok, N, C, V, scratch, dt, 0);
        cu_embedding_backward(d_dw2, d_dy, d_tok, N, C, V, scratch, dt, 0);
        float *o = gc_fetch(d_out, N * C, dt), *g = gc_fetch(d_dw, V * C, CU_F32);
        float *g2 = gc_fetch(d_dw2, V * C, CU_F32);
        gc_compare("embedding_fwd", gc_dt_name(dt), shape, o, out, N * C, 0.0);
        gc_compare("embedding_bwd dwte+=", gc_dt_name(dt), shape, g, dw, V * C, 1e-5);
        gc_compare("embedding_bwd determ.", gc_dt_name(dt), shape, g2, g, V * C, 0.0);
        free(wte); free(dy); free(dw); free(out); free(o); free(g); free(g2);
        CU_CHECK(cudaFree(d_wte)); CU_CHECK(cudaFree(d_dy)); CU_CHECK(cudaFree(d_dw));
        CU_CHECK(cudaFree(d_dw2)); CU_CHECK(cudaFree(d_out)); CU_CHECK(cudaFree(scratch));
    }
    free(tok);
    CU_CHECK(cudaFree(d_tok));
}

// ---------------------------------------------------------------------------
static void test_matmul(cu_blas *b, int64_t N, int64_t C, int64_t OC) {
    char shape[64];
    snprintf(shape, sizeof shape, "N%lld C%lld OC%lld", (long long)N, (long long)C, (long long)OC);
    for (int d = 0; d < 2; d++) {
        cu_dtype dt = DTYPES[d];
        float *x = gc_rand(N * C, -1, 1), *w = gc_rand(OC * C, -1, 1), *dy = gc_rand(N * OC, -1, 1);
        float *dx = gc_rand(N * C, -1, 1), *dw = gc_rand(OC * C, -1, 1);
        float *out = malloc((size_t)(N * OC) * 4);
        gc_round(x, N * C, dt); gc_round(w, OC * C, dt); gc_round(dy, N * OC, dt); gc_round(dx, N * C, dt);
        void *d_x = gc_upload(x, N * C, dt), *d_w = gc_upload(w, OC * C, dt);
        void *d_dy = gc_upload(dy, N * OC, dt), *d_dx = gc_upload(dx, N * C, dt);
        float *d_dw = gc_upload(dw, OC * C, CU_F32);
        void *d_out = gc_alloc((size_t)(N * OC) * cu_dtype_size(dt));
        matmul_forward(out, x, w, N, C, OC);
        matmul_backward(dx, dw, dy, x, w, N, C, OC);
        cu_matmul_forward(b, d_out, d_x, d_w, N, C, OC, dt);
        cu_matmul_backward(b, d_dx, d_dw, d_dy, d_x, d_w, N, C, OC, dt);
        float *o = gc_fetch(d_out, N * OC, dt), *gx = gc_fetch(d_dx, N * C, dt);
        float *gw = gc_fetch(d_dw, OC * C, CU_F32);
        gc_compare("matmul_fwd", gc_dt_name(dt), shape, o, out, N * OC, tol_of(dt));
        gc_compare("matmul_bwd dinp+=", gc_dt_name(dt), shape, gx, dx, N * C, tol_of(dt));
        gc_compare("matmul_bwd dweight+=", gc_dt_name(dt), shape, gw, dw, OC * C,
                   dt == CU_BF16 ? 1e-3 : 1e-5);
        free(x); free(w); free(dy); free(dx); free(dw); free(out); free(o); free(gx); free(gw);
        CU_CHECK(cudaFree(d_x)); CU_CHECK(cudaFree(d_w)); CU_CHECK(cudaFree(d_dy));
        CU_CHECK(cudaFree(d_dx)); CU_CHECK(cudaFree(d_dw)); CU_CHECK(cudaFree(d_out));
    }
}

// ---------------------------------------------------------------------------
static void test_xent(cu_blas *b, int64_t N, int64_t C, int64_t V, int64_t chunk) {
    char shape[80];
    snprintf(shape, sizeof shape, "N%lld C%lld V%lld chunk%lld", (long long)N, (long long)C,
             (long long)V, (long long)chunk);
    int32_t *tg = malloc((size_t)N * 4);
    for (int64_t n = 0; n < N; n++) tg[n] = n % 7 == 3 ? -1 : (int32_t)gc_int(V);
    int32_t *d_tg;
    CU_CHECK(cudaMalloc((void **)&d_tg, (size_t)N * 4));
    CU_CHECK(cudaMemcpy(d_tg, tg, (size_t)N * 4, cudaMemcpyHostToDevice));
    const float scale = 1.0f / (float)N;
    for (int d = 0; d < 2; d++) {
        cu_dtype dt = DTYPES[d];
        float *h = gc_rand(N * C, -1, 1), *w = gc_rand(V * C, -0.5f, 0.5f);
        float *dh = gc_rand(N * C, -0.01f, 0.01f), *dw = gc_rand(V * C, -0.01f, 0.01f);
        float *loss = malloc((size_t)N * 4);
        gc_round(h, N * C, dt); gc_round(w, V * C, dt); gc_round(dh, N * C, dt);
        void *d_h = gc_upload(h, N * C, dt), *d_w = gc_upload(w, V * C, dt);
        void *d_dh = gc_upload(dh, N * C, dt);
        float *d_dw = gc_upload(dw, V * C, CU_F32), *d_loss = gc_alloc((size_t)N * 4);
        void *scratch = gc_alloc(cu_xent_scratch_bytes(chunk, V, dt));
        xent_forward_backward(loss, dh, dw, h, w, tg, N, C, V, scale);
        cu_xent_forward_backward(b, d_loss, d_dh, d_dw, d_h, d_w, d_tg, N, C, V, scale, chunk,
                                 scratch, dt);
        float *gl = gc_fetch(d_loss, N, CU_F32), *gh = gc_fetch(d_dh, N * C, dt);
        float *gw = gc_fetch(d_dw, V * C, CU_F32);
        gc_compare("xent losses", gc_dt_name(dt), shape, gl, loss, N, dt == CU_BF16 ? 1e-2 : 1e-5);
        gc_compare("xent dh+=", gc_dt_name(dt), shape, gh, dh, N * C, tol_of(dt));
        gc_compare("xent dw+=", gc_dt_name(dt), shape, gw, dw, V * C, tol_of(dt));
        // forward only: losses alone
        CU_CHECK(cudaMemset(d_loss, 0xff, (size_t)N * 4));
        cu_xent_forward_backward(b, d_loss, NULL, NULL, d_h, d_w, d_tg, N, C, V, scale, chunk,
                                 scratch, dt);
        float *gl2 = gc_fetch(d_loss, N, CU_F32);
        gc_compare("xent fwd-only losses", gc_dt_name(dt), shape, gl2, loss, N,
                   dt == CU_BF16 ? 1e-2 : 1e-5);
        free(h); free(w); free(dh); free(dw); free(loss); free(gl); free(gh); free(gw); free(gl2);
        CU_CHECK(cudaFree(d_h)); CU_CHECK(cudaFree(d_w)); CU_CHECK(cudaFree(d_dh));
        CU_CHECK(cudaFree(d_dw)); CU_CHECK(cudaFree(d_loss)); CU_CHECK(cudaFree(scratch));
    }
    free(tg);
    CU_CHECK(cudaFree(d_tg));
}

// ---------------------------------------------------------------------------
static void test_adamw(void) {
    enum { NT = 5 };
    const int64_t sizes[NT] = {5, 1, 4097, 300, 64};
    const uint8_t mask[NT] = {1, 0, 1, 0, 1};
    int64_t off[NT + 1] = {0};
    for (int t = 0; t < NT; t++) off[t + 1] = off[t] + sizes[t];
    const int64_t n = off[NT];
    adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                        .weight_decay = 0.1f};
    float *p = gc_rand(n, -1, 1), *m = gc_rand(n, -0.1f, 0.1f), *v = gc_rand(n, 0, 0.01f);
    float *g = gc_rand(n, -1, 1);
    float *dp = gc_upload(p, n, CU_F32), *dm = gc_upload(m, n, CU_F32);
    float *dv = gc_upload(v, n, CU_F32), *dg = gc_upload(g, n, CU_F32);
    void *dcopy = gc_alloc((size_t)n * 2);
    int64_t *doff;
    uint8_t *dmask;
    CU_CHECK(cudaMalloc((void **)&doff, sizeof off));
    CU_CHECK(cudaMalloc((void **)&dmask, sizeof mask));
    CU_CHECK(cudaMemcpy(doff, off, sizeof off, cudaMemcpyHostToDevice));
    CU_CHECK(cudaMemcpy(dmask, mask, sizeof mask, cudaMemcpyHostToDevice));
    for (int t = 0; t < NT; t++) {
        adamw_hparams h2 = hp;
        if (!mask[t]) h2.weight_decay = 0.0f;
        adamw_update(p + off[t], m + off[t], v + off[t], g + off[t], sizes[t], &h2, 3, 0.7f);
    }
    cu_adamw_update(dp, dm, dv, dg, dcopy, CU_BF16, doff, dmask, NT, &hp, 3, 0.7f, 0);
    float *op = gc_fetch(dp, n, CU_F32), *om = gc_fetch(dm, n, CU_F32);
    float *ov = gc_fetch(dv, n, CU_F32), *oc = gc_fetch(dcopy, n, CU_BF16);
    char shape[64];
    snprintf(shape, sizeof shape, "%d tensors n=%lld", NT, (long long)n);
    gc_compare("adamw param", "fp32", shape, op, p, n, 1e-6);
    gc_compare("adamw m", "fp32", shape, om, m, n, 1e-6);
    gc_compare("adamw v", "fp32", shape, ov, v, n, 1e-6);
    gc_round(p, n, CU_BF16);
    gc_compare("adamw copy", "bf16", shape, oc, p, n, 1e-2);
    free(p); free(m); free(v); free(g); free(op); free(om); free(ov); free(oc);
    CU_CHECK(cudaFree(dp)); CU_CHECK(cudaFree(dm)); CU_CHECK(cudaFree(dv)); CU_CHECK(cudaFree(dg));
    CU_CHECK(cudaFree(dcopy)); CU_CHECK(cudaFree(doff)); CU_CHECK(cudaFree(dmask));
}

static void test_grad_norm(int64_t n) {
    float *g = gc_rand(n, -1, 1);
    float *dg = gc_upload(g, n, CU_F32);
    void *scratch = gc_alloc(cu_grad_norm_scratch_bytes(n));
    double *dout;
    CU_CHECK(cudaMalloc((void **)&dout, sizeof(double)));
    cu_grad_norm_sq(dout, dg, n, scratch, 0);
    double got;
    CU_CHECK(cudaMemcpy(&got, dout, sizeof got, cudaMemcpyDeviceToHost));
    float a = (float)got, r = (float)adamw_grad_norm_sq(g, n);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%lld", (long long)n);
    gc_compare("grad_norm_sq", "fp32", shape, &a, &r, 1, 1e-6);
    free(g);
    CU_CHECK(cudaFree(dg)); CU_CHECK(cudaFree(scratch)); CU_CHECK(cudaFree(dout));
}

int main(void) {
    if (cu_device_count() == 0) {
        printf("test_gpu_ops: no CUDA device, skipped\n");
        return 77;
    }
    gc_header();
    const int64_t ew[] = {1, 7, 1000, 4099, 1 << 20};
    for (size_t i = 0; i < sizeof ew / sizeof *ew; i++) test_cast_axpy(ew[i], 0);
    test_cast_axpy(1001, 1);

    const rope_layout L[2] = {ROPE_LAYOUT_HALF, ROPE_LAYOUT_INTERLEAVED};
    for (int l = 0; l < 2; l++) {
        test_rope(1, 1, 1, 8, 8, L[l], 0, 1.0f);
        test_rope(37, 4, 2, 64, 64, L[l], 0, 1.0f);
        test_rope(65, 32, 8, 128, 128, L[l], 0, 1.0f);
        test_rope(50, 6, 2, 128, 64, L[l], 0, 1.0f);        // partial rotary
        test_rope(40, 3, 1, 12, 6, L[l], 0, 1.0f);          // 3 pairs: scalar path
        test_rope(300, 4, 4, 64, 64, L[l], 65536, 1.2f);    // n_hat + attention factor
        test_rope(7, 5, 0, 32, 32, L[l], 0, 1.0f);          // q only
    }

    const int64_t rn[][2] = {{1, 8}, {7, 13}, {64, 576}, {33, 4096}, {3, 10000}, {1000, 576}};
    for (size_t i = 0; i < sizeof rn / sizeof *rn; i++) test_rmsnorm(rn[i][0], rn[i][1]);

    const int64_t sn[] = {1, 13, 4096, 100003};
    for (size_t i = 0; i < sizeof sn / sizeof *sn; i++) test_swiglu(sn[i]);

    test_embedding(1, 8, 5);
    test_embedding(100, 13, 50);
    test_embedding(2000, 576, 3000);

    cu_blas *b = cu_blas_create(0);
    test_matmul(b, 1, 8, 4);
    test_matmul(b, 17, 33, 65);
    test_matmul(b, 128, 576, 1536);
    test_xent(b, 1, 16, 10, 4);
    test_xent(b, 37, 32, 1001, 8);
    test_xent(b, 300, 64, 49152, 128);
    cu_blas_free(b);

    test_adamw();
    test_grad_norm(1);
    test_grad_norm(1000);
    test_grad_norm((1 << 22) + 3);

    CU_CHECK(cudaDeviceSynchronize());
    printf("test_gpu_ops: %d failure(s)\n", gc_failures);
    return gc_failures ? 1 : 0;
}
