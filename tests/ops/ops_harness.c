// ops_harness: helpers of the op harness (random data, bf16, buffers on a
// backend, comparisons that print one row, float64 finite differences,
// timing). See ops_harness.h.
#include "ops_harness.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "die.h"

void ops_case(ops_ctx *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->case_label, sizeof x->case_label, fmt, ap);
    va_end(ap);
}

// ---------------------------------------------------------------------------
uint64_t ops_next(ops_rng *r) {  // splitmix64
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
float ops_unif(ops_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(ops_next(r) >> 40) * 0x1.0p-24);
}
int64_t ops_int(ops_rng *r, int64_t n) { return (int64_t)(ops_next(r) % (uint64_t)n); }
float *ops_rand(ops_rng *r, int64_t n, float lo, float hi) {
    float *x = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = ops_unif(r, lo, hi);
    return x;
}
float *ops_fcopy(const float *x, int64_t n) {
    float *y = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    if (n > 0) memcpy(y, x, (size_t)n * sizeof *y);
    return y;
}
double *ops_dcopy(const float *x, int64_t n) {
    double *y = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}
float *ops_fzeros(int64_t n) { return xcalloc((size_t)(n > 0 ? n : 1), sizeof(float)); }
double *ops_dzeros(int64_t n) { return xcalloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

uint16_t ops_to_bf16(float f) {  // finite inputs
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
float ops_from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
void ops_round(float *x, int64_t n, bk_dtype dt) {
    if (dt == BK_BF16)
        for (int64_t i = 0; i < n; i++) x[i] = ops_from_bf16(ops_to_bf16(x[i]));
}
const char *ops_dt_name(bk_dtype dt) { return dt == BK_BF16 ? "bf16" : "fp32"; }

// ---------------------------------------------------------------------------
void *ops_up(const ops_backend *be, const float *x, int64_t n, bk_dtype dt) {
    backend *b = be->b;
    size_t bytes = (size_t)n * bk_dtype_size(dt);
    void *d = b->op->alloc(b, bytes ? bytes : 16);
    if (n == 0) return d;
    if (dt == BK_F32) {
        b->op->to_dev(b, d, x, bytes);
    } else {
        uint16_t *h = xmalloc(bytes);
        for (int64_t i = 0; i < n; i++) h[i] = ops_to_bf16(x[i]);
        b->op->to_dev(b, d, h, bytes);
        free(h);
    }
    return d;
}
void *ops_up_i32(const ops_backend *be, const int32_t *x, int64_t n) {
    backend *b = be->b;
    size_t bytes = (size_t)n * sizeof(int32_t);
    void *d = b->op->alloc(b, bytes ? bytes : 16);
    if (n) b->op->to_dev(b, d, x, bytes);
    return d;
}
void *ops_up_bytes(const ops_backend *be, const void *x, size_t bytes) {
    backend *b = be->b;
    void *d = b->op->alloc(b, bytes ? bytes : 16);
    if (bytes) b->op->to_dev(b, d, x, bytes);
    return d;
}
void *ops_nan(const ops_backend *be, int64_t n, bk_dtype dt) {
    backend *b = be->b;
    size_t bytes = (size_t)n * bk_dtype_size(dt);
    void *d = b->op->alloc(b, bytes ? bytes : 16);
    if (n == 0) return d;
    void *h = xmalloc(bytes);
    memset(h, 0xff, bytes);  // NaN in fp32 and bf16: an unwritten output shows
    b->op->to_dev(b, d, h, bytes);
    free(h);
    return d;
}
float *ops_down(const ops_backend *be, const void *p, int64_t n, bk_dtype dt) {
    backend *b = be->b;
    float *x = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    if (n == 0) return x;
    size_t bytes = (size_t)n * bk_dtype_size(dt);
    if (dt == BK_F32) {
        b->op->to_host(b, x, p, bytes);
    } else {
        uint16_t *h = xmalloc(bytes);
        b->op->to_host(b, h, p, bytes);
        for (int64_t i = 0; i < n; i++) x[i] = ops_from_bf16(h[i]);
        free(h);
    }
    return x;
}
void ops_free(const ops_backend *be, void *p) { be->b->op->free(be->b, p); }

// ---------------------------------------------------------------------------
static bool row(ops_ctx *x, const char *be, const char *what, const char *metric, double err,
                double tol, bool ok, const char *extra) {
    x->checks++;
    if (!ok) x->failures++;
    printf("%-10s %-36s %-9s %-26s %-5s %10.3e %9.1e  %s%s%s\n", x->op, x->case_label, be, what,
           metric, err, tol, ok ? "PASS" : "FAIL", extra && *extra ? "  " : "",
           extra ? extra : "");
    return ok;
}

// err of one element pair; equal infinities 0, other non-finite: NAN.
static double elem_err(float got, float ref) {
    if (isinf(got) && isinf(ref) && (got > 0) == (ref > 0)) return 0.0;
    if (!isfinite(got) || !isfinite(ref)) return NAN;
    return fabs((double)got - (double)ref);
}

static bool cmp(ops_ctx *x, const char *be, const char *what, const float *got,
                const float *ref, int64_t n, double tol, bool rel) {
    double max_abs = 0.0, ref_max = 0.0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = elem_err(got[i], ref[i]);
        if (isnan(e)) {
            bad++;
            continue;
        }
        if (e > max_abs) max_abs = e;
        if (isfinite(ref[i]) && fabs(ref[i]) > ref_max) ref_max = fabs(ref[i]);
    }
    double err = rel ? max_abs / (ref_max > 0.0 ? ref_max : 1.0) : max_abs;
    char extra[64] = "";
    if (bad) snprintf(extra, sizeof extra, "(%lld non-finite)", (long long)bad);
    return row(x, be, what, rel ? "rel" : "abs", err, tol, bad == 0 && err <= tol, extra);
}

bool ops_cmp_rel(ops_ctx *x, const char *be, const char *what, const float *got,
                 const float *ref, int64_t n, double tol) {
    return cmp(x, be, what, got, ref, n, tol, true);
}
bool ops_cmp_abs(ops_ctx *x, const char *be, const char *what, const float *got,
                 const float *ref, int64_t n, double tol) {
    return cmp(x, be, what, got, ref, n, tol, false);
}

bool ops_cmp_close(ops_ctx *x, const char *be, const char *what, const float *got,
                   const double *want, int64_t n, double atol, double rtol) {
    double max_err = 0.0, worst = 0.0;  // worst = max err / (atol + rtol |want|)
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), lim = atol + rtol * fabs(want[i]);
        if (!(err <= lim) && bad < 0) bad = i;
        if (err > max_err || isnan(err)) max_err = err;
        double r = lim > 0 ? err / lim : (err > 0 ? INFINITY : 0);
        if (r > worst || isnan(r)) worst = r;
    }
    char extra[160], tolbuf[8];
    (void)tolbuf;
    if (bad >= 0)
        snprintf(extra, sizeof extra, "[%lld] got %.9g want %.9g (atol %g rtol %g)",
                 (long long)bad, (double)got[bad], want[bad], atol, rtol);
    else
        snprintf(extra, sizeof extra, "(atol %g rtol %g, worst %.2f of the limit)", atol, rtol,
                 worst);
    return row(x, be, what, "close", max_err, atol > rtol ? atol : rtol, bad < 0, extra);
}

bool ops_cmp_scalar(ops_ctx *x, const char *be, const char *what, double got, double want,
                    double tol) {
    double err = want != 0.0 ? fabs(got - want) / fabs(want) : fabs(got - want);
    bool ok = tol == 0.0 ? got == want : err <= tol;
    char extra[96];
    snprintf(extra, sizeof extra, "(got %.12g want %.12g)", got, want);
    return row(x, be, what, "rel", err, tol, ok, extra);
}

bool ops_cmp_dir(ops_ctx *x, const char *be, const char *what, const float *g, const double *u,
                 int64_t n, double fd, double atol, double tol) {
    double dot = 0.0, mag = 0.0;
    for (int64_t i = 0; i < n; i++) {
        dot += (double)g[i] * u[i];
        mag += fabs((double)g[i] * u[i]);
    }
    double err = fabs(dot - fd) / (mag > 0 ? mag : 1.0);
    char extra[128];
    snprintf(extra, sizeof extra, "(<g,u> %.9g, fd %.9g, atol %g)", dot, fd, atol);
    return row(x, be, what, "dir", err, tol, fabs(dot - fd) <= atol + tol * mag, extra);
}

bool ops_cmp_bits(ops_ctx *x, const char *be, const char *what, const void *got,
                  const void *want, size_t bytes) {
    bool ok = bytes == 0 || memcmp(got, want, bytes) == 0;
    return row(x, be, what, "exact", ok ? 0.0 : 1.0, 0.0, ok, NULL);
}

bool ops_expect(ops_ctx *x, const char *be, const char *what, bool ok, const char *detail) {
    return row(x, be, what, "cond", ok ? 0.0 : 1.0, 0.0, ok, detail);
}

// ---------------------------------------------------------------------------
double ops_dot(const double *a, const double *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
void ops_scale(double *x, int64_t n, double a) {
    for (int64_t i = 0; i < n; i++) x[i] *= a;
}
void ops_fd_grad(double *grad, double *x, int64_t n, int64_t stride, ops_loss_fn f, void *ctx,
                 double h) {
    for (int64_t i = 0, k = 0; i < n; i += stride, k++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = f(ctx);
        x[i] = x0 - h;
        double lm = f(ctx);
        x[i] = x0;
        grad[k] = (lp - lm) / (2.0 * h);
    }
}
double ops_fd_dir(double *x, const double *u, int64_t n, ops_loss_fn f, void *ctx, double h) {
    double *x0 = xmalloc((size_t)n * sizeof *x0);
    memcpy(x0, x, (size_t)n * sizeof *x0);
    for (int64_t i = 0; i < n; i++) x[i] = x0[i] + h * u[i];
    double lp = f(ctx);
    for (int64_t i = 0; i < n; i++) x[i] = x0[i] - h * u[i];
    double lm = f(ctx);
    memcpy(x, x0, (size_t)n * sizeof *x0);
    free(x0);
    return (lp - lm) / (2.0 * h);
}
float *ops_gather(const float *src, int64_t n, int64_t stride) {
    float *dst = xmalloc((size_t)((n + stride - 1) / stride + 1) * sizeof *dst);
    for (int64_t i = 0, k = 0; i < n; i += stride, k++) dst[k] = src[i];
    return dst;
}
double ops_fdot(const float *g, const double *u, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * u[i];
    return s;
}

// ---------------------------------------------------------------------------
double ops_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
int ops_reps(const ops_ctx *x, double one_call_s) {
    double r = x->perf_seconds / (one_call_s > 1e-7 ? one_call_s : 1e-7);
    return r < 1 ? 1 : r > 1000 ? 1000 : (int)r;
}
void ops_perf_row(ops_ctx *x, const ops_backend *be, const char *label, double s, double bytes,
                  double flops) {
    char bw[32] = "", fl[32] = "";
    if (bytes > 0) snprintf(bw, sizeof bw, "%8.2f GB/s", bytes / s * 1e-9);
    if (flops > 0) snprintf(fl, sizeof fl, "%9.2f GFLOP/s", flops / s * 1e-9);
    printf("%-10s %-36s %-9s %-10s %11.1f us %s %s\n", x->op, x->case_label, be->name, label,
           s * 1e6, bw, fl);
    fflush(stdout);
}

int ops_threads(void) { return omp_get_max_threads(); }
void ops_set_threads(int n) { omp_set_num_threads(n); }
