// ops_xent: the chunked LM head + cross-entropy (no (N, V) logits) through
// the backend: loss sum, per-token losses (0 where the target is ignored),
// dh +=, dw += fp32; forward only (dh NULL) and frozen head (dw NULL); and
// logits_row (greedy decoding). The cpu column against a float64 reference
// with full logits: losses, sum and gradients, the gradients also against
// central finite differences of grad_scale * sum (sampled entries, or a
// directional derivative on large cases), += (two calls = twice, same sum).
// The cuda backend cuts the rows in chunks of BK_XENT_CHUNK_ROWS (4096):
// one case has more rows than that; ops_cu_kernels.c drives the kernel with
// small chunk sizes directly.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "ops_ops.h"

static const struct {
    int64_t N, C, V;
    float hscale, wscale;
    int gpu_style;  // 0: 1 in 5 targets ignored, grad_scale 1/valid, dh dw from 0
                    // 1: every 7th (n%7==3) ignored, grad_scale 1/N, dh dw prefilled
    int modes;      // forward only, frozen head, all targets ignored
    double gatol;   // cpu vs float64: gradient atol (rtol 1e-5); 1e-5 for logits ~100
    uint64_t seed;
} XE[] = {
    {300, 16, 50, 1, 1, 0, 0, 1e-7, 6},        // was tests/unit (cpu chunks 128+128+44)
    {5, 8, 11, 30, 1, 0, 1, 1e-5, 7},          // was tests/unit: big logits, modes
    {1, 16, 10, 1, 0.5f, 1, 0, 1e-7, 91},      // was tests/gpu
    {37, 32, 1001, 1, 0.5f, 1, 1, 1e-7, 92},
    {300, 64, 49152, 1, 0.5f, 1, 0, 1e-7, 93},
    {4500, 32, 300, 1, 0.5f, 1, 0, 1e-7, 94},  // more rows than one cuda chunk (4096)
};
enum { N_XE = sizeof XE / sizeof *XE };
// Against the cpu (rel): losses and sum fp32 1e-5 bf16 1e-2; dh, dw fp32 1e-5 bf16 1e-2.
static const double TOL[2] = {1e-5, 1e-2};

typedef struct {
    double sum;
    float *losses, *dh, *dw;
} xe_res;

// mode 0: forward only (dh NULL), 1: frozen head (dw NULL), 2: both.
static xe_res xe_run(ops_ctx *x, const ops_backend *be, const float *h, const float *w,
                     const int32_t *tg, const float *dh0, const float *dw0, int64_t N, int64_t C,
                     int64_t V, float gs, int mode, int calls) {
    backend *b = be->b;
    bk_dtype dt = be->dt;
    double es = (double)bk_dtype_size(dt), fl = 2.0 * (double)N * (double)C * (double)V;
    void *dh_ = ops_up(be, h, N * C, dt), *dw_ = ops_up(be, w, V * C, dt);
    void *dtg = ops_up_i32(be, tg, N);
    void *ddh = mode ? ops_up(be, dh0, N * C, dt) : NULL;
    float *ddw = mode == 2 ? ops_up(be, dw0, V * C, BK_F32) : NULL;
    xe_res r = {0, xmalloc((size_t)N * sizeof(float)), NULL, NULL};
    for (int k = 0; k < N; k++) r.losses[k] = NAN;  // must be written
    for (int c = 0; c < calls; c++)
        OPS_TIMED(x, be, mode ? "fwd+bwd" : "fwd", (double)(N * C + V * C) * es,
                  mode ? 3 * fl : fl,
                  r.sum = b->op->xent(b, r.losses, ddh, ddw, dh_, dw_, dtg, N, C, V, gs));
    if (ddh) r.dh = ops_down(be, ddh, N * C, dt);
    if (ddw) r.dw = ops_down(be, ddw, V * C, BK_F32);
    ops_free(be, dh_), ops_free(be, dw_), ops_free(be, dtg);
    if (ddh) ops_free(be, ddh);
    if (ddw) ops_free(be, ddw);
    return r;
}
static void xe_free(xe_res *r) { free(r->losses), free(r->dh), free(r->dw); }

typedef struct {
    double *h, *w;
    const int32_t *tg;
    int64_t N, C, V;
    double gs;
} xe_ref;

// Full logits in float64; losses, and dh, dw SET to gs * dSum/dh, dSum/dw.
static double xe_ref_run(double *losses, double *dh, double *dw, const xe_ref *c) {
    int64_t N = c->N, C = c->C, V = c->V;
    double *l = ops_dzeros(V);
    if (dh) memset(dh, 0, (size_t)(N * C) * sizeof *dh);
    if (dw) memset(dw, 0, (size_t)(V * C) * sizeof *dw);
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        int32_t t = c->tg[n];
        if (losses) losses[n] = 0.0;
        if (t < 0) continue;
        for (int64_t v = 0; v < V; v++) l[v] = ops_dot(c->h + n * C, c->w + v * C, C);
        double mx = l[0], s = 0.0;
        for (int64_t v = 1; v < V; v++) mx = fmax(mx, l[v]);
        for (int64_t v = 0; v < V; v++) s += exp(l[v] - mx);
        double lse = mx + log(s);
        total += lse - l[t];
        if (losses) losses[n] = lse - l[t];
        for (int64_t v = 0; v < V && dh; v++) {
            double d = c->gs * (exp(l[v] - lse) - (v == t));
            for (int64_t i = 0; i < C; i++) {
                dh[n * C + i] += d * c->w[v * C + i];
                if (dw) dw[v * C + i] += d * c->h[n * C + i];
            }
        }
    }
    free(l);
    return total;
}
static double xe_loss(void *p) {
    xe_ref *c = p;
    return c->gs * xe_ref_run(NULL, NULL, NULL, c);
}

static void cpu_column(ops_ctx *x, int i, const float *h, const float *w, int32_t *tg, float gs,
                       ops_rng *rng) {
    int64_t N = XE[i].N, C = XE[i].C, V = XE[i].V;
    double work = (double)N * (double)C * (double)V;
    if (work > 1e8) {
        printf("%-10s %-36s %-9s (float64 check skipped: N*C*V = %.1e; the cpu is the "
               "reference of the other columns here)\n", x->op, x->case_label, "cpu", work);
        return;
    }
    xe_ref c = {ops_dcopy(h, N * C), ops_dcopy(w, V * C), tg, N, C, V, gs};
    double *rl = ops_dzeros(N), *rdh = ops_dzeros(N * C), *rdw = ops_dzeros(V * C);
    double rsum = xe_ref_run(rl, rdh, rdw, &c);
    float *zh = ops_fzeros(N * C), *zw = ops_fzeros(V * C);
    xe_res r = xe_run(x, x->cpu, h, w, tg, zh, zw, N, C, V, gs, 2, 1);
    ops_cmp_scalar(x, "cpu", "loss sum vs float64", r.sum, rsum, 1e-6);
    ops_cmp_close(x, "cpu", "losses vs float64", r.losses, rl, N, 1e-5, 1e-6);
    bool zero = true;
    for (int64_t n = 0; n < N; n++) zero &= tg[n] >= 0 || r.losses[n] == 0.0f;
    ops_expect(x, "cpu", "ignored rows: loss 0", zero, NULL);
    double ga = XE[i].gatol;
    ops_cmp_close(x, "cpu", "dh vs float64", r.dh, rdh, N * C, ga, 1e-5);
    ops_cmp_close(x, "cpu", "dw vs float64", r.dw, rdw, V * C, ga, 1e-5);
    if (work <= 3e5) {  // finite differences: every 23rd entry of h, every 3rd of w
        int64_t nh = (N * C + 22) / 23, nw = (V * C + 2) / 3;
        double *fh = ops_dzeros(nh), *fw = ops_dzeros(nw);
        ops_fd_grad(fh, c.h, N * C, 23, xe_loss, &c, 1e-4);
        ops_fd_grad(fw, c.w, V * C, 3, xe_loss, &c, 1e-4);
        float *sh = ops_gather(r.dh, N * C, 23), *sw = ops_gather(r.dw, V * C, 3);
        ops_cmp_close(x, "cpu", "dh vs fd (1 in 23)", sh, fh, nh, ga, 1e-5);
        ops_cmp_close(x, "cpu", "dw vs fd (1 in 3)", sw, fw, nw, ga, 1e-5);
        free(fh), free(fw), free(sh), free(sw);
    } else {
        int64_t nu = N * C > V * C ? N * C : V * C;
        double *u = ops_dzeros(nu);
        for (int64_t k = 0; k < nu; k++) u[k] = ops_unif(rng, -1, 1);
        ops_cmp_dir(x, "cpu", "dh vs fd (directional)", r.dh, u, N * C,
                    ops_fd_dir(c.h, u, N * C, xe_loss, &c, 1e-4), 0.0, 1e-5);
        ops_cmp_dir(x, "cpu", "dw vs fd (directional)", r.dw, u, V * C,
                    ops_fd_dir(c.w, u, V * C, xe_loss, &c, 1e-4), 0.0, 1e-5);
        free(u);
    }
    xe_res r2 = xe_run(x, x->cpu, h, w, tg, zh, zw, N, C, V, gs, 2, 2);
    ops_cmp_scalar(x, "cpu", "sum, 2nd call (bits)", r2.sum, r.sum, 0.0);
    ops_scale(rdh, N * C, 2.0);
    ops_scale(rdw, V * C, 2.0);
    ops_cmp_close(x, "cpu", "dh, 2 calls (+=)", r2.dh, rdh, N * C, 2 * ga, 1e-5);
    ops_cmp_close(x, "cpu", "dw, 2 calls (+=)", r2.dw, rdw, V * C, 2 * ga, 1e-5);
    ops_scale(rdh, N * C, 0.5);
    if (XE[i].modes) {
        xe_res f = xe_run(x, x->cpu, h, w, tg, NULL, NULL, N, C, V, gs, 0, 1);
        ops_cmp_scalar(x, "cpu", "fwd only: sum", f.sum, rsum, 1e-6);
        ops_cmp_close(x, "cpu", "fwd only: losses", f.losses, rl, N, 1e-5, 1e-6);
        xe_res fr = xe_run(x, x->cpu, h, w, tg, zh, NULL, N, C, V, gs, 1, 1);
        ops_cmp_scalar(x, "cpu", "frozen head: sum", fr.sum, rsum, 1e-6);
        ops_cmp_close(x, "cpu", "frozen head: dh", fr.dh, rdh, N * C, 1e-5, 1e-5);
        xe_free(&f), xe_free(&fr);
    }
    xe_free(&r), xe_free(&r2);
    free(c.h), free(c.w), free(rl), free(rdh), free(rdw), free(zh), free(zw);
}

static void xe_check(ops_ctx *x, int i) {
    int64_t N = XE[i].N, C = XE[i].C, V = XE[i].V;
    ops_rng r = {XE[i].seed};
    float *h = ops_rand(&r, N * C, -XE[i].hscale, XE[i].hscale);
    float *w = ops_rand(&r, V * C, -XE[i].wscale, XE[i].wscale);
    int32_t *tg = xmalloc((size_t)N * sizeof *tg);
    int64_t valid = 0;
    for (int64_t n = 0; n < N; n++) {
        if (XE[i].gpu_style) tg[n] = n % 7 == 3 ? -1 : (int32_t)ops_int(&r, V);
        else tg[n] = ops_int(&r, 5) == 0 ? -1 : (int32_t)ops_int(&r, V);
        valid += tg[n] >= 0;
    }
    float gs = XE[i].gpu_style ? 1.0f / (float)N : 1.0f / (float)(valid ? valid : 1);
    if (XE[i].modes && !XE[i].gpu_style) {
        tg[0] = 4, tg[N - 1] = -1;
        gs = 0.37f;
    }
    ops_case(x, "N%lld C%lld V%lld h~%g seed %llu", (long long)N, (long long)C, (long long)V,
             (double)XE[i].hscale, (unsigned long long)XE[i].seed);
    if (x->cpu_selected) cpu_column(x, i, h, w, tg, gs, &r);
    OPS_FOR_OTHER(x, be) {
        float *hr = ops_fcopy(h, N * C), *wr = ops_fcopy(w, V * C);
        float *dh0 = ops_rand(&r, N * C, -0.01f, 0.01f), *dw0 = ops_rand(&r, V * C, -0.01f, 0.01f);
        if (!XE[i].gpu_style) memset(dh0, 0, (size_t)(N * C) * 4), memset(dw0, 0, (size_t)(V * C) * 4);
        ops_round(hr, N * C, be->dt), ops_round(wr, V * C, be->dt), ops_round(dh0, N * C, be->dt);
        double tol = TOL[be->dt];
        for (int mode = 2; mode >= 0; mode--) {
            if (mode == 1 && !XE[i].modes) continue;
            xe_res ref = xe_run(x, x->cpu, hr, wr, tg, dh0, dw0, N, C, V, gs, mode, 1);
            xe_res got = xe_run(x, be, hr, wr, tg, dh0, dw0, N, C, V, gs, mode, 1);
            const char *m = mode == 2 ? "" : mode == 1 ? "frozen head: " : "fwd only: ";
            char what[64];
            snprintf(what, sizeof what, "%slosses", m);
            ops_cmp_rel(x, be->name, what, got.losses, ref.losses, N, tol);
            snprintf(what, sizeof what, "%sloss sum", m);
            ops_cmp_scalar(x, be->name, what, got.sum, ref.sum, tol);
            if (mode >= 1) {
                snprintf(what, sizeof what, "%sdh +=", m);
                ops_cmp_rel(x, be->name, what, got.dh, ref.dh, N * C, tol);
            }
            if (mode == 2) ops_cmp_rel(x, be->name, "dw +=", got.dw, ref.dw, V * C, tol);
            xe_free(&ref), xe_free(&got);
        }
        free(hr), free(wr), free(dh0), free(dw0);
    }
    if (XE[i].modes) {  // every target ignored: loss 0, the gradients untouched
        int32_t *none = xmalloc((size_t)N * sizeof *none);
        for (int64_t n = 0; n < N; n++) none[n] = -1;
        for (ops_backend *be = x->be; be < x->be + x->n_be; be++) {
            float *dh0 = ops_rand(&r, N * C, -1, 1), *dw0 = ops_rand(&r, V * C, -1, 1);
            ops_round(dh0, N * C, be->dt);
            xe_res g = xe_run(x, be, h, w, none, dh0, dw0, N, C, V, gs, 2, 1);
            bool zero = g.sum == 0.0;
            for (int64_t n = 0; n < N; n++) zero &= g.losses[n] == 0.0f;
            ops_expect(x, be->name, "all ignored: losses, sum 0", zero, NULL);
            ops_cmp_bits(x, be->name, "all ignored: dh untouched", g.dh, dh0, (size_t)(N * C) * 4);
            ops_cmp_bits(x, be->name, "all ignored: dw untouched", g.dw, dw0, (size_t)(V * C) * 4);
            xe_free(&g), free(dh0), free(dw0);
        }
        free(none);
    }
    free(h), free(w), free(tg);
}

static void xe_perf(ops_ctx *x, const ops_backend *be, int i) {
    const int64_t N = 1024, C = 576, V = 49152;  // the 135M model's head, 1K tokens
    ops_case(x, "N%lld C%lld V%lld %s", (long long)N, (long long)C, (long long)V,
             ops_dt_name(be->dt));
    ops_rng r = {9};
    float *h = ops_rand(&r, N * C, -1, 1), *w = ops_rand(&r, V * C, -0.5f, 0.5f);
    int32_t *tg = xmalloc((size_t)N * sizeof *tg);
    for (int64_t n = 0; n < N; n++) tg[n] = (int32_t)ops_int(&r, V);
    float *zh = ops_fzeros(N * C), *zw = ops_fzeros(V * C);
    for (int mode = 0; mode <= 2; mode += 2) {
        xe_res res = xe_run(x, be, h, w, tg, zh, zw, N, C, V, 1.0f / N, mode, 1);
        xe_free(&res);
    }
    free(h), free(w), free(tg), free(zh), free(zw);
}

const ops_op ops_xent = {"xent", N_XE, xe_check, 1, xe_perf};

// ---------------------------------------------------------------------------
// logits_row: logits (V) fp32 on the host = h (C) @ w (V, C)^T.

// atol: cpu vs float64 (rtol 1e-6); C = 576 sums err more (|logit| ~ 8).
static const struct {
    int64_t C, V;
    float hscale;
    double atol;
    uint64_t seed;
} LR[] = {{8, 11, 30, 1e-5, 7}, {16, 50, 1, 1e-5, 95}, {576, 49152, 1, 5e-5, 96}};
enum { N_LR = sizeof LR / sizeof *LR };

static float *lr_run(ops_ctx *x, const ops_backend *be, const float *h, const float *w, int64_t C,
                     int64_t V) {
    backend *b = be->b;
    void *dh = ops_up(be, h, C, be->dt), *dw = ops_up(be, w, V * C, be->dt);
    float *out = xmalloc((size_t)V * sizeof *out);
    OPS_TIMED(x, be, "row", (double)(V * C) * (double)bk_dtype_size(be->dt), 2.0 * (double)(V * C),
              b->op->logits_row(b, out, dh, dw, C, V));
    ops_free(be, dh), ops_free(be, dw);
    return out;
}

static void lr_check(ops_ctx *x, int i) {
    int64_t C = LR[i].C, V = LR[i].V;
    ops_case(x, "C%lld V%lld h~%g seed %llu", (long long)C, (long long)V, (double)LR[i].hscale,
             (unsigned long long)LR[i].seed);
    ops_rng r = {LR[i].seed};
    float *h = ops_rand(&r, C, -LR[i].hscale, LR[i].hscale), *w = ops_rand(&r, V * C, -1, 1);
    if (x->cpu_selected) {
        double *hd = ops_dcopy(h, C), *wd = ops_dcopy(w, V * C), *ref = ops_dzeros(V);
        for (int64_t v = 0; v < V; v++) ref[v] = ops_dot(hd, wd + v * C, C);
        float *got = lr_run(x, x->cpu, h, w, C, V);
        ops_cmp_close(x, "cpu", "logits vs float64", got, ref, V, LR[i].atol, 1e-6);
        free(hd), free(wd), free(ref), free(got);
    }
    OPS_FOR_OTHER(x, be) {
        float *hr = ops_fcopy(h, C), *wr = ops_fcopy(w, V * C);
        ops_round(hr, C, be->dt), ops_round(wr, V * C, be->dt);
        float *ref = lr_run(x, x->cpu, hr, wr, C, V), *got = lr_run(x, be, hr, wr, C, V);
        ops_cmp_rel(x, be->name, "logits", got, ref, V, TOL[be->dt]);
        free(hr), free(wr), free(ref), free(got);
    }
    free(h), free(w);
}

static void lr_perf(ops_ctx *x, const ops_backend *be, int i) {
    const int64_t C = 576, V = 49152;
    ops_case(x, "C%lld V%lld %s", (long long)C, (long long)V, ops_dt_name(be->dt));
    ops_rng r = {10};
    float *h = ops_rand(&r, C, -1, 1), *w = ops_rand(&r, V * C, -1, 1);
    free(lr_run(x, be, h, w, C, V));
    free(h), free(w);
}

const ops_op ops_logits_row = {"logits_row", N_LR, lr_check, 1, lr_perf};
