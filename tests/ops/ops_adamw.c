// ops_adamw: the optimizer ops through the backend: grad_norm_sq (float64
// sum of squares, deterministic) and the multi-tensor AdamW over a flat
// buffer with a per-tensor decay mask, optionally writing the working copy
// (bf16 on cuda). The cpu column against float64: the naive sum of squares
// (and the same bits with 1 and 2 threads), and AdamW re-derived from the
// torch.optim.AdamW documentation over several steps. Other columns against
// the cpu backend.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "ops_cases_adamw.h"
#include "ops_ops.h"

// ---------------------------------------------------------------------------
// grad_norm_sq

// cpu vs float64: rel 1e-12. Others vs cpu: rel 1e-6 (fp32 data, double sums).

static double gn_run(ops_ctx *x, const ops_backend *be, const float *g, int64_t n) {
    backend *b = be->b;
    float *dg = ops_up(be, g, n, BK_F32);
    double s = 0;
    OPS_TIMED(x, be, "norm", 4.0 * (double)n, 2.0 * (double)n, s = b->op->grad_norm_sq(b, dg, n));
    ops_free(be, dg);
    return s;
}

static void gn_check(ops_ctx *x, int i) {
    int64_t n = GN[i].n;
    ops_case(x, "n=%lld seed %llu", (long long)n, (unsigned long long)GN[i].seed);
    ops_rng r = {GN[i].seed};
    float *g = ops_rand(&r, n, -1, 1);
    if (x->cpu_selected) {
        double ref = 0.0, comp = 0.0;  // compensated (Kahan) float64 sum
        for (int64_t k = 0; k < n; k++) {
            double y = (double)g[k] * g[k] - comp, t = ref + y;
            comp = (t - ref) - y;
            ref = t;
        }
        double got = gn_run(x, x->cpu, g, n);
        ops_cmp_scalar(x, "cpu", "sum sq vs float64", got, ref, n ? 1e-12 : 0.0);
        int nt = ops_threads();
        ops_set_threads(1);
        double g1 = gn_run(x, x->cpu, g, n);
        ops_set_threads(nt);
        ops_cmp_scalar(x, "cpu", "1 thread vs default (bits)", g1, got, 0.0);
    }
    if (n > 0) {  // n = 0 is a cpu-only case (the optimizer never asks a backend for it)
        OPS_FOR_OTHER(x, be) {
            ops_cmp_scalar(x, be->name, "sum sq", gn_run(x, be, g, n), gn_run(x, x->cpu, g, n),
                           1e-6);
        }
    }
    free(g);
}

static void gn_perf(ops_ctx *x, const ops_backend *be, int i) {
    const int64_t n = 1 << 25;  // 33.5M fp32 gradients
    ops_case(x, "n=%lld", (long long)n);
    ops_rng r = {11};
    float *g = ops_rand(&r, n, -1, 1);
    gn_run(x, be, g, n);
    free(g);
}

const ops_op ops_grad_norm = {"grad_norm", N_GN, gn_check, 1, gn_perf};

// ---------------------------------------------------------------------------
// adamw

// One tensor table per case: the cuda backend uploads a table once per pointer.
static param_tensor TABLES[N_AD][MAXT];

static const param_tensor *table_of(int i, int64_t *n) {
    param_tensor *t = TABLES[i];
    int64_t off = 0;
    for (int k = 0; k < AD[i].nt; k++) {
        snprintf(t[k].name, sizeof t[k].name, "t%d", k);
        t[k].offset = off;
        t[k].shape[0] = AD[i].sizes[k];
        t[k].shape[1] = 1;
        t[k].decay = AD[i].decay[k];
        off += AD[i].sizes[k];
    }
    *n = off;
    return t;
}

typedef struct {
    float *p0, *m0, *v0;  // initial state
    float **g;            // per step
    int n_steps;
    int64_t first_step;
} ad_in;

static ad_in ad_inputs(int i, int64_t n) {
    const ad_case *c = &AD[i];
    ops_rng r = {c->seed};
    ad_in in = {0};
    in.n_steps = c->steps ? c->steps : 1;
    in.first_step = c->steps ? 1 : c->step;
    in.g = xmalloc(sizeof(float *) * (size_t)in.n_steps);
    if (c->sign_case) {
        in.p0 = ops_fzeros(n), in.m0 = ops_fzeros(n), in.v0 = ops_fzeros(n);
        for (int k = 0; k < 3; k++) in.p0[k] = 1.0f;
        in.g[0] = ops_fzeros(n);
        in.g[0][0] = 0.5f, in.g[0][1] = -2.0f, in.g[0][2] = 0.0f;
    } else if (c->steps) {
        in.p0 = ops_rand(&r, n, -1, 1), in.m0 = ops_fzeros(n), in.v0 = ops_fzeros(n);
        for (int s = 0; s < in.n_steps; s++) {
            in.g[s] = ops_rand(&r, n, -0.1f, 0.1f);
            for (int64_t k = 0; k < n; k += 10) in.g[s][k] = 0.0f;  // some zero gradients
        }
    } else {
        in.p0 = ops_rand(&r, n, -1, 1), in.m0 = ops_rand(&r, n, -0.1f, 0.1f);
        in.v0 = ops_rand(&r, n, 0, 0.01f), in.g[0] = ops_rand(&r, n, -1, 1);
    }
    return in;
}
static void ad_in_free(ad_in *in) {
    for (int s = 0; s < in->n_steps; s++) free(in->g[s]);
    free(in->g), free(in->p0), free(in->m0), free(in->v0);
}

typedef struct {
    float *p, *m, *v, *work;
} ad_res;

static ad_res ad_run(ops_ctx *x, const ops_backend *be, int i, const ad_in *in, int64_t n,
                     bool with_work) {
    backend *b = be->b;
    int64_t nn;
    const param_tensor *t = table_of(i, &nn);
    float *p = ops_up(be, in->p0, n, BK_F32), *m = ops_up(be, in->m0, n, BK_F32);
    float *v = ops_up(be, in->v0, n, BK_F32);
    void *work = with_work ? ops_nan(be, n, be->dt) : NULL;
    float *g = ops_up(be, in->g[0], n, BK_F32);
    for (int s = 0; s < in->n_steps; s++) {
        if (s) b->op->to_dev(b, g, in->g[s], (size_t)n * 4);
        OPS_TIMED(x, be, "step", (double)n * (16.0 + 4.0 + (with_work ? bk_dtype_size(be->dt) : 0)),
                  0, b->op->adamw(b, p, m, v, g, work, t, AD[i].nt, &AD[i].hp, in->first_step + s,
                                  AD[i].grad_scale));
    }
    ad_res r = {ops_down(be, p, n, BK_F32), ops_down(be, m, n, BK_F32), ops_down(be, v, n, BK_F32),
                work ? ops_down(be, work, n, be->dt) : NULL};
    ops_free(be, p), ops_free(be, m), ops_free(be, v), ops_free(be, g);
    if (work) ops_free(be, work);
    return r;
}
static void ad_free(ad_res *r) { free(r->p), free(r->m), free(r->v), free(r->work); }

// float64 AdamW of one tensor, from the torch.optim.AdamW documentation.
static void ad_ref(double *p, double *m, double *v, const float *grad, int64_t n,
                   const adamw_hparams *hp, double wd, int64_t step, double gs) {
    double lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    for (int64_t i = 0; i < n; i++) {
        double g = grad[i] * gs;
        p[i] -= lr * wd * p[i];
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        double mhat = m[i] / (1.0 - pow(b1, (double)step));
        double vhat = v[i] / (1.0 - pow(b2, (double)step));
        p[i] -= lr * mhat / (sqrt(vhat) + eps);
    }
}

static void ad_check(ops_ctx *x, int i) {
    int64_t n;
    const param_tensor *t = table_of(i, &n);
    const ad_case *c = &AD[i];
    ops_case(x, "%d tensor(s) n=%lld wd %.1f gs %.2f %d step(s)%s", c->nt, (long long)n,
             (double)c->hp.weight_decay, (double)c->grad_scale, c->steps ? c->steps : 1,
             c->sign_case ? " sign" : "");
    ad_in in = ad_inputs(i, n);
    if (x->cpu_selected) {
        double *p = ops_dcopy(in.p0, n), *m = ops_dcopy(in.m0, n), *v = ops_dcopy(in.v0, n);
        for (int s = 0; s < in.n_steps; s++)
            for (int k = 0; k < c->nt; k++) {
                int64_t o = t[k].offset;
                ad_ref(p + o, m + o, v + o, in.g[s] + o, c->sizes[k], &c->hp,
                       c->decay[k] ? c->hp.weight_decay : 0.0, in.first_step + s, c->grad_scale);
            }
        ad_res r = ad_run(x, x->cpu, i, &in, n, false);
        // fp32 rounding: a few ulps of |p| <= 1.1; m cancels terms up to 0.1, so
        // its error is a few ulps of 0.1 (6e-9), not of m.
        ops_cmp_close(x, "cpu", "param vs float64", r.p, p, n, 1e-6, 1e-6);
        ops_cmp_close(x, "cpu", "m vs float64", r.m, m, n, 3e-8, 1e-6);
        ops_cmp_close(x, "cpu", "v vs float64", r.v, v, n, 1e-12, 1e-6);
        if (c->sign_case) {  // exactly -lr sign(g) (up to eps) for g != 0
            bool ok = fabsf(r.p[0] - (1.0f - 1e-3f)) <= 1e-7f &&
                      fabsf(r.p[1] - (1.0f + 1e-3f)) <= 1e-7f && r.p[2] == 1.0f;
            ops_expect(x, "cpu", "step 1 = -lr sign(g)", ok, NULL);
        }
        ad_free(&r);
        free(p), free(m), free(v);
    }
    OPS_FOR_OTHER(x, be) {
        ad_res ref = ad_run(x, x->cpu, i, &in, n, false);
        ad_res got = ad_run(x, be, i, &in, n, true);
        ops_cmp_rel(x, be->name, "param", got.p, ref.p, n, 1e-6);
        ops_cmp_rel(x, be->name, "m", got.m, ref.m, n, 1e-6);
        ops_cmp_rel(x, be->name, "v", got.v, ref.v, n, 1e-6);
        if (be->dt == BK_BF16) {
            float *pr = ops_fcopy(ref.p, n);
            ops_round(pr, n, BK_BF16);
            ops_cmp_rel(x, be->name, "work copy (bf16)", got.work, pr, n, 1e-2);
            free(pr);
        } else {
            ops_cmp_bits(x, be->name, "work copy = param", got.work, got.p, (size_t)n * 4);
        }
        ad_free(&ref), ad_free(&got);
    }
    ad_in_free(&in);
}

static void ad_perf(ops_ctx *x, const ops_backend *be, int i) {
    int idx = N_AD - 1;  // the hyperparameters of the 5-tensor case, one tensor of 33.5M
    (void)i;
    static param_tensor big[1] = {{"all", 0, {1 << 25, 1}, true}};
    const int64_t n = big[0].shape[0];
    ops_case(x, "1 tensor n=%lld %s", (long long)n, ops_dt_name(be->dt));
    ops_rng r = {12};
    float *p = ops_rand(&r, n, -1, 1), *g = ops_rand(&r, n, -1, 1);
    float *dp = ops_up(be, p, n, BK_F32), *dg = ops_up(be, g, n, BK_F32);
    float *dm = ops_nan(be, n, BK_F32), *dv = ops_nan(be, n, BK_F32);
    be->b->op->zero(be->b, dm, (size_t)n * 4);
    be->b->op->zero(be->b, dv, (size_t)n * 4);
    void *work = be->is_ref ? NULL : ops_nan(be, n, be->dt);
    backend *b = be->b;
    OPS_TIMED(x, be, "step", (double)n * (4.0 * 7 + (work ? bk_dtype_size(be->dt) : 0)), 0,
              b->op->adamw(b, dp, dm, dv, dg, work, big, 1, &AD[idx].hp, 1, 1.0f));
    ops_free(be, dp), ops_free(be, dg), ops_free(be, dm), ops_free(be, dv);
    if (work) ops_free(be, work);
    free(p), free(g);
}

const ops_op ops_adamw = {"adamw", N_AD, ad_check, 1, ad_perf};
