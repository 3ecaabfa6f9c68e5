// ops_elementwise: cast, add (y += x) and swiglu through the backend ops
// table. References: the cpu column against float64 (cast and add: exact;
// swiglu: silu in double, finite differences per element for the backward);
// the other columns against the cpu backend on the same dtype-rounded inputs.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "ops_cases_elementwise.h"
#include "ops_ops.h"

// ---------------------------------------------------------------------------
// cast: dst (n, dst_dt) = src (n, src_dt). The cpu backend is fp32 only (a
// copy); cuda casts both ways, fp32 -> bf16 rounding to nearest even.


// dst_dt <- src_dt on be; x holds values exactly representable in src_dt.
static float *cast_run(ops_ctx *x, const ops_backend *be, const float *src, int64_t n, int mis,
                       bk_dtype dst_dt, bk_dtype src_dt) {
    backend *b = be->b;
    char *s = ops_up(be, src, n + 1, src_dt), *d = ops_nan(be, n + 1, dst_dt);
    size_t ss = bk_dtype_size(src_dt), ds = bk_dtype_size(dst_dt);
    OPS_TIMED(x, be, "cast", (double)n * (double)(ss + ds), 0,
              b->op->cast(b, d + mis * ds, dst_dt, s + mis * ss, src_dt, n));
    float *out = ops_down(be, d + mis * ds, n, dst_dt);
    ops_free(be, s);
    ops_free(be, d);
    return out;
}

static void cast_check(ops_ctx *x, int i) {
    int64_t n = CAST[i].n;
    int mis = CAST[i].misalign;
    ops_case(x, "n=%lld%s seed %llu", (long long)n, mis ? " misaligned" : "",
             (unsigned long long)CAST[i].seed);
    ops_rng r = {CAST[i].seed};
    float *src = ops_rand(&r, n + 1, -2, 2);
    if (x->cpu_selected) {  // fp32 -> fp32: a bit-exact copy
        float *got = cast_run(x, x->cpu, src, n, mis, BK_F32, BK_F32);
        ops_cmp_bits(x, "cpu", "f32->f32 copy", got, src + mis, (size_t)n * 4);
        free(got);
    }
    float *rounded = ops_fcopy(src, n + 1);
    ops_round(rounded, n + 1, BK_BF16);
    OPS_FOR_OTHER(x, be) {
        // exact both ways: the host rounding is the reference
        float *got = cast_run(x, be, src, n, mis, BK_BF16, BK_F32);
        ops_cmp_abs(x, be->name, "f32->bf16 (RNE)", got, rounded + mis, n, 0.0);
        free(got);
        got = cast_run(x, be, rounded, n, mis, BK_F32, BK_BF16);
        ops_cmp_abs(x, be->name, "bf16->f32", got, rounded + mis, n, 0.0);
        free(got);
        got = cast_run(x, be, src, n, mis, BK_F32, BK_F32);
        ops_cmp_bits(x, be->name, "f32->f32 copy", got, src + mis, (size_t)n * 4);
        free(got);
    }
    free(src);
    free(rounded);
}

static void cast_perf(ops_ctx *x, const ops_backend *be, int i) {
    const int64_t n = 1 << 24;
    ops_case(x, "n=%lld f32->%s", (long long)n, ops_dt_name(be->dt));
    ops_rng r = {1};
    float *src = ops_rand(&r, n + 1, -2, 2);
    free(cast_run(x, be, src, n, 0, be->dt, BK_F32));
    free(src);
}

const ops_op ops_cast = {"cast", N_CAST, cast_check, 1, cast_perf};

// ---------------------------------------------------------------------------
// add: y (n, dt) += x (n, dt), the residual add.

// Tolerances (rel): fp32 1e-6, bf16 1e-2 (one bf16 rounding of the sum).
static const double ADD_TOL[2] = {1e-6, 1e-2};

static float *add_run(ops_ctx *x, const ops_backend *be, const float *y0, const float *xs,
                      int64_t n, int mis) {
    backend *b = be->b;
    size_t es = bk_dtype_size(be->dt);
    char *y = ops_up(be, y0, n + 1, be->dt), *xx = ops_up(be, xs, n + 1, be->dt);
    OPS_TIMED(x, be, "add", 3.0 * (double)n * (double)es, (double)n,
              b->op->add(b, y + mis * es, xx + mis * es, n));
    float *out = ops_down(be, y + mis * es, n, be->dt);
    ops_free(be, y);
    ops_free(be, xx);
    return out;
}

static void add_check(ops_ctx *x, int i) {
    int64_t n = ADD[i].n;
    int mis = ADD[i].misalign;
    ops_case(x, "n=%lld%s seed %llu", (long long)n, mis ? " misaligned" : "",
             (unsigned long long)ADD[i].seed);
    ops_rng r = {ADD[i].seed};
    float *y = ops_rand(&r, n + 1, -2, 2), *xs = ops_rand(&r, n + 1, -2, 2);
    if (x->cpu_selected) {  // the fp32 sum is the correctly rounded double sum
        float *got = add_run(x, x->cpu, y, xs, n, mis);
        double *want = ops_dzeros(n);
        for (int64_t k = 0; k < n; k++) want[k] = (float)((double)y[k + mis] + xs[k + mis]);
        ops_cmp_close(x, "cpu", "y += x vs float64", got, want, n, 0.0, 0.0);
        free(got);
        free(want);
    }
    OPS_FOR_OTHER(x, be) {
        float *yr = ops_fcopy(y, n + 1), *xr = ops_fcopy(xs, n + 1);
        ops_round(yr, n + 1, be->dt);
        ops_round(xr, n + 1, be->dt);
        float *ref = add_run(x, x->cpu, yr, xr, n, mis), *got = add_run(x, be, yr, xr, n, mis);
        ops_cmp_rel(x, be->name, "y += x", got, ref, n, ADD_TOL[be->dt]);
        free(yr), free(xr), free(ref), free(got);
    }
    free(y);
    free(xs);
}

static void add_perf(ops_ctx *x, const ops_backend *be, int i) {
    const int64_t n = 1 << 24;
    ops_case(x, "n=%lld %s", (long long)n, ops_dt_name(be->dt));
    ops_rng r = {2};
    float *y = ops_rand(&r, n + 1, -2, 2), *xs = ops_rand(&r, n + 1, -2, 2);
    free(add_run(x, be, y, xs, n, 0));
    free(y);
    free(xs);
}

const ops_op ops_add = {"add", N_ADD, add_check, 1, add_perf};

// ---------------------------------------------------------------------------
// swiglu: out = silu(gate) * up; backward += into dgate, dup.

// Tolerances against the cpu (rel): fp32 1e-5, bf16 1e-2. The cpu column
// against float64: out atol 1e-30 rtol 1e-6; gradients vs finite differences
// atol 1e-6 rtol 1e-5 (2e-6 after two accumulating calls).
static const double SW_TOL[2] = {1e-5, 1e-2};

typedef struct {
    float *out, *dg, *du;
} sw_res;

static sw_res sw_run(ops_ctx *x, const ops_backend *be, const float *g, const float *u,
                     const float *dy, const float *dg0, const float *du0, int64_t n, int calls) {
    backend *b = be->b;
    bk_dtype dt = be->dt;
    double es = (double)bk_dtype_size(dt);
    void *dg_ = ops_up(be, g, n, dt), *du_ = ops_up(be, u, n, dt), *ddy = ops_up(be, dy, n, dt);
    void *out = ops_nan(be, n, dt), *dg = ops_up(be, dg0, n, dt), *du = ops_up(be, du0, n, dt);
    OPS_TIMED(x, be, "fwd", 3 * n * es, 0, b->op->swiglu_forward(b, out, dg_, du_, n));
    for (int c = 0; c < calls; c++)
        OPS_TIMED(x, be, "bwd", 7 * n * es, 0,
                  b->op->swiglu_backward(b, dg, du, ddy, dg_, du_, n));
    sw_res r = {ops_down(be, out, n, dt), ops_down(be, dg, n, dt), ops_down(be, du, n, dt)};
    ops_free(be, dg_), ops_free(be, du_), ops_free(be, ddy), ops_free(be, out);
    ops_free(be, dg), ops_free(be, du);
    return r;
}
static void sw_free(sw_res *r) { free(r->out), free(r->dg), free(r->du); }

static double silu_d(double g) { return g / (1.0 + exp(-g)); }

static void sw_check(ops_ctx *x, int i) {
    int64_t n = SW[i].n;
    ops_case(x, "n=%lld gate~%g%s seed %llu", (long long)n, (double)SW[i].gate_scale,
             SW[i].extremes ? " +extremes" : "", (unsigned long long)SW[i].seed);
    ops_rng r = {SW[i].seed};
    float *g = ops_rand(&r, n, -SW[i].gate_scale, SW[i].gate_scale);
    float *u = ops_rand(&r, n, -SW[i].up_scale, SW[i].up_scale), *dy = ops_rand(&r, n, -1, 1);
    const float ext[] = {-100.0f, -88.0f, -30.0f, 0.0f, 30.0f, 88.0f, 100.0f};
    if (SW[i].extremes)
        for (int k = 0; k < 7 && k < n; k++) g[k] = ext[k];
    float *z = ops_fzeros(n);
    if (x->cpu_selected) {
        double *ref = ops_dzeros(n), *fdg = ops_dzeros(n), *fdu = ops_dzeros(n);
        const double h = 1e-4;
        for (int64_t k = 0; k < n; k++) {
            double gk = g[k], uk = u[k], d = dy[k];
            ref[k] = silu_d(gk) * uk;
            // the loss sum(out * dy) restricted to the one term that depends on element k
            fdg[k] = (silu_d(gk + h) * uk * d - silu_d(gk - h) * uk * d) / (2 * h);
            fdu[k] = (silu_d(gk) * (uk + h) * d - silu_d(gk) * (uk - h) * d) / (2 * h);
        }
        sw_res c1 = sw_run(x, x->cpu, g, u, dy, z, z, n, 1);
        ops_cmp_close(x, "cpu", "out vs float64", c1.out, ref, n, 1e-30, 1e-6);
        ops_cmp_close(x, "cpu", "dgate vs fd", c1.dg, fdg, n, 1e-6, 1e-5);
        ops_cmp_close(x, "cpu", "dup vs fd", c1.du, fdu, n, 1e-6, 1e-5);
        sw_res c2 = sw_run(x, x->cpu, g, u, dy, z, z, n, 2);
        ops_scale(fdg, n, 2.0);
        ops_scale(fdu, n, 2.0);
        ops_cmp_close(x, "cpu", "dgate, 2 calls (+=)", c2.dg, fdg, n, 2e-6, 1e-5);
        ops_cmp_close(x, "cpu", "dup, 2 calls (+=)", c2.du, fdu, n, 2e-6, 1e-5);
        sw_free(&c1), sw_free(&c2);
        free(ref), free(fdg), free(fdu);
    }
    OPS_FOR_OTHER(x, be) {
        float *gr = ops_fcopy(g, n), *ur = ops_fcopy(u, n), *dyr = ops_fcopy(dy, n);
        float *dg0 = ops_rand(&r, n, -1, 1), *du0 = ops_rand(&r, n, -1, 1);  // += checked
        float *all[] = {gr, ur, dyr, dg0, du0};
        for (int k = 0; k < 5; k++) ops_round(all[k], n, be->dt);
        sw_res ref = sw_run(x, x->cpu, gr, ur, dyr, dg0, du0, n, 1);
        sw_res got = sw_run(x, be, gr, ur, dyr, dg0, du0, n, 1);
        ops_cmp_rel(x, be->name, "out", got.out, ref.out, n, SW_TOL[be->dt]);
        ops_cmp_rel(x, be->name, "dgate +=", got.dg, ref.dg, n, SW_TOL[be->dt]);
        ops_cmp_rel(x, be->name, "dup +=", got.du, ref.du, n, SW_TOL[be->dt]);
        sw_free(&ref), sw_free(&got);
        for (int k = 0; k < 5; k++) free(all[k]);
    }
    free(g), free(u), free(dy), free(z);
}

static void sw_perf(ops_ctx *x, const ops_backend *be, int i) {
    const int64_t n = 4096LL * 1536;  // one layer's MLP hidden at 4K tokens, 135M model
    ops_case(x, "n=%lld (4096 x 1536) %s", (long long)n, ops_dt_name(be->dt));
    ops_rng r = {3};
    float *g = ops_rand(&r, n, -6, 6), *u = ops_rand(&r, n, -2, 2), *dy = ops_rand(&r, n, -1, 1);
    float *z = ops_fzeros(n);
    sw_res res = sw_run(x, be, g, u, dy, z, z, n, 1);
    sw_free(&res);
    free(g), free(u), free(dy), free(z);
}

const ops_op ops_swiglu = {"swiglu", N_SW, sw_check, 1, sw_perf};
