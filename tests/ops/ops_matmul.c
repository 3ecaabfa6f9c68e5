// ops_matmul: the linear layer out (N, OC) = inp (N, C) @ w (OC, C)^T and its
// backward (dinp +=, dweight += fp32, either output NULL) through the backend.
// Every column runs the same sequence: backward with dweight NULL, then with
// dinp NULL, then both (so the second values are twice the first). The cpu
// column against float64: the naive product; the gradients against central
// finite differences of sum(out * dout) per element (small cases) or the
// naive float64 gradients plus a directional derivative (large ones).
#include <stdio.h>
#include <stdlib.h>

#include "die.h"
#include "ops_ops.h"

// atol: cpu vs float64 (rtol 1e-5). fp32 dot products of C terms in [-1, 1]
// (|out| ~ sqrt(C / 3)) err by ~sqrt(C) 2^-24 |out|: 1e-5 up to C = 257, more
// for C = 576.
static const struct {
    int64_t N, C, OC;
    double atol;
    uint64_t seed;
} MM[] = {
    {7, 13, 5, 1e-5, 1}, {130, 257, 190, 1e-5, 2}, {33, 64, 40, 1e-5, 3},    // was tests/unit
    {1, 8, 4, 1e-5, 61}, {17, 33, 65, 1e-5, 62}, {128, 576, 1536, 4e-5, 63}, // was tests/gpu
};
enum { N_MM = sizeof MM / sizeof *MM };
// Against the cpu (rel): out, dinp fp32 1e-5 bf16 1e-2; dweight fp32 1e-5 bf16 1e-3.
static const double TOL[2] = {1e-5, 1e-2}, TOL_DW[2] = {1e-5, 1e-3};

typedef struct {
    float *out, *dx1, *dw2, *dx, *dw;  // dx1: after the dinp-only call, dw2: after dweight-only
} mm_res;

static mm_res mm_run(ops_ctx *x, const ops_backend *be, const float *inp, const float *w,
                     const float *dy, const float *dx0, const float *dw0, int64_t N, int64_t C,
                     int64_t OC) {
    backend *b = be->b;
    bk_dtype dt = be->dt;
    double es = (double)bk_dtype_size(dt), fl = 2.0 * (double)N * (double)C * (double)OC;
    void *di = ops_up(be, inp, N * C, dt), *dwt = ops_up(be, w, OC * C, dt);
    void *ddy = ops_up(be, dy, N * OC, dt), *ddx = ops_up(be, dx0, N * C, dt);
    float *ddw = ops_up(be, dw0, OC * C, BK_F32);
    void *out = ops_nan(be, N * OC, dt);
    OPS_TIMED(x, be, "fwd", (double)(N * C + OC * C + N * OC) * es, fl,
              b->op->matmul_forward(b, out, di, dwt, N, C, OC));
    mm_res r = {ops_down(be, out, N * OC, dt), NULL, NULL, NULL, NULL};
    if (!x->perf) {
        b->op->matmul_backward(b, ddx, NULL, ddy, di, dwt, N, C, OC);
        r.dx1 = ops_down(be, ddx, N * C, dt);
        b->op->matmul_backward(b, NULL, ddw, ddy, di, dwt, N, C, OC);
        r.dw2 = ops_down(be, ddw, OC * C, BK_F32);
    }
    OPS_TIMED(x, be, "bwd", (double)(2 * N * C + OC * C + N * OC) * es + (double)(OC * C) * 8,
              2 * fl, b->op->matmul_backward(b, ddx, ddw, ddy, di, dwt, N, C, OC));
    r.dx = ops_down(be, ddx, N * C, dt);
    r.dw = ops_down(be, ddw, OC * C, BK_F32);
    ops_free(be, di), ops_free(be, dwt), ops_free(be, ddy), ops_free(be, ddx);
    ops_free(be, ddw), ops_free(be, out);
    return r;
}
static void mm_free(mm_res *r) { free(r->out), free(r->dx1), free(r->dw2), free(r->dx), free(r->dw); }

typedef struct {
    double *inp, *w, *dout;
    int64_t N, C, OC;
} mm_ref;

static void mm_fwd(double *out, const double *inp, const double *w, int64_t N, int64_t C,
                   int64_t OC) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OC; o++) out[n * OC + o] = ops_dot(inp + n * C, w + o * C, C);
}
static double mm_loss(void *p) {
    mm_ref *c = p;
    double *out = ops_dzeros(c->N * c->OC);
    mm_fwd(out, c->inp, c->w, c->N, c->C, c->OC);
    double l = ops_dot(out, c->dout, c->N * c->OC);
    free(out);
    return l;
}

static void cpu_column(ops_ctx *x, const float *inp, const float *w, const float *dy, int64_t N,
                       int64_t C, int64_t OC, double atol, ops_rng *rng) {
    mm_ref c = {ops_dcopy(inp, N * C), ops_dcopy(w, OC * C), ops_dcopy(dy, N * OC), N, C, OC};
    double *ref = ops_dzeros(N * OC);
    mm_fwd(ref, c.inp, c.w, N, C, OC);
    float *zx = ops_fzeros(N * C), *zw = ops_fzeros(OC * C);
    mm_res r = mm_run(x, x->cpu, inp, w, dy, zx, zw, N, C, OC);
    ops_cmp_close(x, "cpu", "out vs float64", r.out, ref, N * OC, atol, 1e-5);
    double *gx = ops_dzeros(N * C), *gw = ops_dzeros(OC * C);
    const char *wx = "dinp vs fd", *ww = "dweight vs fd";
    if (N * C * OC <= 100000) {
        ops_fd_grad(gx, c.inp, N * C, 1, mm_loss, &c, 1e-3);
        ops_fd_grad(gw, c.w, OC * C, 1, mm_loss, &c, 1e-3);
    } else {  // naive float64 gradients, themselves checked by a directional derivative
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OC; o++)
                for (int64_t k = 0; k < C; k++) {
                    gx[n * C + k] += c.dout[n * OC + o] * c.w[o * C + k];
                    gw[o * C + k] += c.dout[n * OC + o] * c.inp[n * C + k];
                }
        double *u = ops_dzeros(N * C);
        for (int64_t k = 0; k < N * C; k++) u[k] = ops_unif(rng, -1, 1);
        double fd = ops_fd_dir(c.inp, u, N * C, mm_loss, &c, 1e-3);
        ops_cmp_dir(x, "cpu", "dinp vs fd (directional)", r.dx1, u, N * C, fd, 0.0, 1e-6);
        free(u);
        wx = "dinp vs float64", ww = "dweight vs float64";
    }
    ops_cmp_close(x, "cpu", wx, r.dx1, gx, N * C, atol, 1e-5);
    ops_cmp_close(x, "cpu", ww, r.dw2, gw, OC * C, atol, 1e-5);
    ops_scale(gx, N * C, 2.0);
    ops_scale(gw, OC * C, 2.0);
    ops_cmp_close(x, "cpu", "dinp, 2 calls (+=)", r.dx, gx, N * C, 2 * atol, 1e-5);
    ops_cmp_close(x, "cpu", "dweight, 2 calls (+=)", r.dw, gw, OC * C, 2 * atol, 1e-5);
    mm_free(&r);
    free(c.inp), free(c.w), free(c.dout), free(ref), free(zx), free(zw), free(gx), free(gw);
}

static void mm_check(ops_ctx *x, int i) {
    int64_t N = MM[i].N, C = MM[i].C, OC = MM[i].OC;
    ops_case(x, "N%lld C%lld OC%lld seed %llu", (long long)N, (long long)C, (long long)OC,
             (unsigned long long)MM[i].seed);
    ops_rng r = {MM[i].seed};
    float *inp = ops_rand(&r, N * C, -1, 1), *w = ops_rand(&r, OC * C, -1, 1);
    float *dy = ops_rand(&r, N * OC, -1, 1);
    if (x->cpu_selected) cpu_column(x, inp, w, dy, N, C, OC, MM[i].atol, &r);
    OPS_FOR_OTHER(x, be) {
        float *ir = ops_fcopy(inp, N * C), *wr = ops_fcopy(w, OC * C), *dyr = ops_fcopy(dy, N * OC);
        float *dx0 = ops_rand(&r, N * C, -1, 1), *dw0 = ops_rand(&r, OC * C, -1, 1);
        ops_round(ir, N * C, be->dt), ops_round(wr, OC * C, be->dt);
        ops_round(dyr, N * OC, be->dt), ops_round(dx0, N * C, be->dt);
        mm_res ref = mm_run(x, x->cpu, ir, wr, dyr, dx0, dw0, N, C, OC);
        mm_res got = mm_run(x, be, ir, wr, dyr, dx0, dw0, N, C, OC);
        ops_cmp_rel(x, be->name, "out", got.out, ref.out, N * OC, TOL[be->dt]);
        ops_cmp_rel(x, be->name, "dinp += (dweight NULL)", got.dx1, ref.dx1, N * C, TOL[be->dt]);
        ops_cmp_rel(x, be->name, "dweight += (dinp NULL)", got.dw2, ref.dw2, OC * C,
                    TOL_DW[be->dt]);
        ops_cmp_rel(x, be->name, "dinp += (both)", got.dx, ref.dx, N * C, TOL[be->dt]);
        ops_cmp_rel(x, be->name, "dweight += (both)", got.dw, ref.dw, OC * C, TOL_DW[be->dt]);
        mm_free(&ref), mm_free(&got);
        free(ir), free(wr), free(dyr), free(dx0), free(dw0);
    }
    free(inp), free(w), free(dy);
}

// The 135M model's projections at 4K tokens (qkv-sized and MLP-sized).
static const int64_t PERF[][3] = {{4096, 576, 576}, {4096, 576, 1536}, {4096, 1536, 576}};

static void mm_perf(ops_ctx *x, const ops_backend *be, int i) {
    int64_t N = PERF[i][0], C = PERF[i][1], OC = PERF[i][2];
    ops_case(x, "N%lld C%lld OC%lld %s", (long long)N, (long long)C, (long long)OC,
             ops_dt_name(be->dt));
    ops_rng r = {7};
    float *inp = ops_rand(&r, N * C, -1, 1), *w = ops_rand(&r, OC * C, -1, 1);
    float *dy = ops_rand(&r, N * OC, -1, 1), *zx = ops_fzeros(N * C), *zw = ops_fzeros(OC * C);
    mm_res res = mm_run(x, be, inp, w, dy, zx, zw, N, C, OC);
    mm_free(&res);
    free(inp), free(w), free(dy), free(zx), free(zw);
}

const ops_op ops_matmul = {"matmul", N_MM, mm_check, 3, mm_perf};
