// ops_rmsnorm: rmsnorm forward (out, rstd) and backward (dinp +=, dweight +=)
// through the backend. The cpu column against float64: the naive forward,
// and the backward against central finite differences of sum(out * dout)
// (every element for small cases, a directional derivative for large ones),
// the += contract (two calls = twice) and the same bits with 1 and 2 threads.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "die.h"
#include "ops_cases_rmsnorm.h"
#include "ops_ops.h"

static const float EPS = 1e-5f;
// Against the cpu (rel): out, dinp fp32 1e-5 bf16 1e-2; rstd 1e-5 both;
// dweight (fp32 accumulation in both modes) fp32 1e-5, bf16 1e-4.
static const double TOL[2] = {1e-5, 1e-2}, TOL_DW[2] = {1e-5, 1e-4};

typedef struct {
    float *out, *rstd, *dx, *dw;
} rms_res;

static rms_res rms_run(ops_ctx *x, const ops_backend *be, const float *xs, const float *w,
                       const float *dy, const float *dx0, const float *dw0, int64_t N, int64_t C,
                       int calls) {
    backend *b = be->b;
    bk_dtype dt = be->dt;
    double es = (double)bk_dtype_size(dt), nc = (double)(N * C);
    void *dxs = ops_up(be, xs, N * C, dt), *dwt = ops_up(be, w, C, dt);
    void *ddy = ops_up(be, dy, N * C, dt), *ddx = ops_up(be, dx0, N * C, dt);
    float *ddw = ops_up(be, dw0, C, BK_F32), *rstd = ops_nan(be, N, BK_F32);
    void *out = ops_nan(be, N * C, dt);
    OPS_TIMED(x, be, "fwd", 2 * nc * es, 4 * nc,
              b->op->rmsnorm_forward(b, out, rstd, dxs, dwt, N, C, EPS));
    for (int c = 0; c < calls; c++)
        OPS_TIMED(x, be, "bwd", 4 * nc * es, 8 * nc,
                  b->op->rmsnorm_backward(b, ddx, ddw, ddy, dxs, dwt, rstd, N, C));
    rms_res r = {ops_down(be, out, N * C, dt), ops_down(be, rstd, N, BK_F32),
                 ops_down(be, ddx, N * C, dt), ops_down(be, ddw, C, BK_F32)};
    ops_free(be, dxs), ops_free(be, dwt), ops_free(be, ddy), ops_free(be, ddx);
    ops_free(be, ddw), ops_free(be, rstd), ops_free(be, out);
    return r;
}
static void rms_free(rms_res *r) { free(r->out), free(r->rstd), free(r->dx), free(r->dw); }

typedef struct {
    double *x, *w, *dout;
    int64_t N, C;
} rms_ref;

static void rms_fwd(double *out, double *rstd, const rms_ref *c) {
    for (int64_t n = 0; n < c->N; n++) {
        const double *x = c->x + n * c->C;
        double r = 1.0 / sqrt(ops_dot(x, x, c->C) / (double)c->C + (double)EPS);
        for (int64_t i = 0; i < c->C; i++) out[n * c->C + i] = c->w[i] * x[i] * r;
        rstd[n] = r;
    }
}
static double rms_loss(void *p) {
    rms_ref *c = p;
    double *out = ops_dzeros(c->N * c->C), *rstd = ops_dzeros(c->N);
    rms_fwd(out, rstd, c);
    double l = ops_dot(out, c->dout, c->N * c->C);
    free(out), free(rstd);
    return l;
}

static void cpu_column(ops_ctx *x, const float *xs, const float *w, const float *dy, int64_t N,
                       int64_t C, ops_rng *r) {
    int64_t nc = N * C;
    rms_ref c = {ops_dcopy(xs, nc), ops_dcopy(w, C), ops_dcopy(dy, nc), N, C};
    double *ref = ops_dzeros(nc), *ref_rstd = ops_dzeros(N);
    rms_fwd(ref, ref_rstd, &c);
    float *z = ops_fzeros(nc);
    rms_res r1 = rms_run(x, x->cpu, xs, w, dy, z, z, N, C, 1);
    ops_cmp_close(x, "cpu", "out vs float64", r1.out, ref, nc, 1e-6, 1e-6);
    ops_cmp_close(x, "cpu", "rstd vs float64", r1.rstd, ref_rstd, N, 0.0, 1e-6);
    rms_res r2 = rms_run(x, x->cpu, xs, w, dy, z, z, N, C, 2);
    if (nc <= 2048) {  // every element
        double *fdx = ops_dzeros(nc), *fdw = ops_dzeros(C);
        ops_fd_grad(fdx, c.x, nc, 1, rms_loss, &c, 1e-4);
        ops_fd_grad(fdw, c.w, C, 1, rms_loss, &c, 1e-4);
        ops_cmp_close(x, "cpu", "dinp vs fd", r1.dx, fdx, nc, 2e-6, 2e-6);
        ops_cmp_close(x, "cpu", "dweight vs fd", r1.dw, fdw, C, 2e-6, 2e-6);
        ops_scale(fdx, nc, 2.0);
        ops_scale(fdw, C, 2.0);
        ops_cmp_close(x, "cpu", "dinp, 2 calls (+=)", r2.dx, fdx, nc, 4e-6, 2e-6);
        ops_cmp_close(x, "cpu", "dweight, 2 calls (+=)", r2.dw, fdw, C, 4e-6, 2e-6);
        free(fdx), free(fdw);
    } else {  // directional derivatives along random directions
        double *ux = ops_dzeros(nc), *uw = ops_dzeros(C);
        for (int64_t i = 0; i < nc; i++) ux[i] = ops_unif(r, -1, 1);
        for (int64_t i = 0; i < C; i++) uw[i] = ops_unif(r, -1, 1);
        double fx = ops_fd_dir(c.x, ux, nc, rms_loss, &c, 1e-4);
        double fw = ops_fd_dir(c.w, uw, C, rms_loss, &c, 1e-4);
        ops_cmp_dir(x, "cpu", "dinp vs fd (directional)", r1.dx, ux, nc, fx, 0.0, 1e-5);
        ops_cmp_dir(x, "cpu", "dweight vs fd (directional)", r1.dw, uw, C, fw, 0.0, 1e-5);
        ops_cmp_dir(x, "cpu", "dinp, 2 calls (+=)", r2.dx, ux, nc, 2 * fx, 0.0, 1e-5);
        ops_cmp_dir(x, "cpu", "dweight, 2 calls (+=)", r2.dw, uw, C, 2 * fw, 0.0, 1e-5);
        free(ux), free(uw);
    }
    // same bits with 1 and 2 threads (determinism per thread count is not enough
    // for restarts on a different core count)
    int nt = ops_threads();
    ops_set_threads(1);
    rms_res t1 = rms_run(x, x->cpu, xs, w, dy, z, z, N, C, 1);
    ops_set_threads(2);
    rms_res t2 = rms_run(x, x->cpu, xs, w, dy, z, z, N, C, 1);
    ops_set_threads(nt);
    ops_cmp_bits(x, "cpu", "dinp 1 vs 2 threads", t1.dx, t2.dx, (size_t)nc * 4);
    ops_cmp_bits(x, "cpu", "dweight 1 vs 2 threads", t1.dw, t2.dw, (size_t)C * 4);
    rms_free(&r1), rms_free(&r2), rms_free(&t1), rms_free(&t2);
    free(c.x), free(c.w), free(c.dout), free(ref), free(ref_rstd), free(z);
}

static void rms_check(ops_ctx *x, int i) {
    int64_t N = RMS[i].N, C = RMS[i].C;
    ops_case(x, "N%lld C%lld x~%g seed %llu", (long long)N, (long long)C, (double)RMS[i].xscale,
             (unsigned long long)RMS[i].seed);
    ops_rng r = {RMS[i].seed};
    float *xs = ops_rand(&r, N * C, -RMS[i].xscale, RMS[i].xscale);
    float *w = ops_rand(&r, C, 0.5f, 1.5f), *dy = ops_rand(&r, N * C, -1, 1);
    if (x->cpu_selected) cpu_column(x, xs, w, dy, N, C, &r);
    OPS_FOR_OTHER(x, be) {
        float *xr = ops_fcopy(xs, N * C), *wr = ops_fcopy(w, C), *dyr = ops_fcopy(dy, N * C);
        float *dx0 = ops_rand(&r, N * C, -1, 1), *dw0 = ops_rand(&r, C, -1, 1);
        ops_round(xr, N * C, be->dt), ops_round(wr, C, be->dt);
        ops_round(dyr, N * C, be->dt), ops_round(dx0, N * C, be->dt);
        rms_res ref = rms_run(x, x->cpu, xr, wr, dyr, dx0, dw0, N, C, 1);
        rms_res got = rms_run(x, be, xr, wr, dyr, dx0, dw0, N, C, 1);
        ops_cmp_rel(x, be->name, "out", got.out, ref.out, N * C, TOL[be->dt]);
        ops_cmp_rel(x, be->name, "rstd", got.rstd, ref.rstd, N, 1e-5);
        ops_cmp_rel(x, be->name, "dinp +=", got.dx, ref.dx, N * C, TOL[be->dt]);
        ops_cmp_rel(x, be->name, "dweight +=", got.dw, ref.dw, C, TOL_DW[be->dt]);
        rms_free(&ref), rms_free(&got);
        free(xr), free(wr), free(dyr), free(dx0), free(dw0);
    }
    free(xs), free(w), free(dy);
}

static const int64_t PERF[][2] = {{4096, 576}, {16384, 2048}};

static void rms_perf(ops_ctx *x, const ops_backend *be, int i) {
    int64_t N = PERF[i][0], C = PERF[i][1];
    ops_case(x, "N%lld C%lld %s", (long long)N, (long long)C, ops_dt_name(be->dt));
    ops_rng r = {5};
    float *xs = ops_rand(&r, N * C, -2, 2), *w = ops_rand(&r, C, 0.5f, 1.5f);
    float *dy = ops_rand(&r, N * C, -1, 1), *z = ops_fzeros(N * C);
    rms_res res = rms_run(x, be, xs, w, dy, z, z, N, C, 1);
    rms_free(&res);
    free(xs), free(w), free(dy), free(z);
}

const ops_op ops_rmsnorm = {"rmsnorm", N_RMS, rms_check, 2, rms_perf};
