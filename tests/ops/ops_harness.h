// ops_harness: one table of cases per op, every backend checked against the
// CPU reference through the trainer's backend interface (backend.h: the very
// ops table training calls), in the style of ggml's test-backend-ops.
//
// Columns (backends): "cpu" (fp32, the reference), "cuda-f32" and
// "cuda-bf16" (built with CUDA and a GPU visible; otherwise reported as
// skipped). Modes:
// - check (default): per case, the cpu column is compared with an
//   independent float64 reference written in tests/ops (naive op, central
//   finite differences of a float64 loss, or a directional derivative), and
//   every other column with the cpu backend run on the same inputs rounded
//   to that column's dtype, with per-dtype tolerances stated in the tables.
// - perf: time per op call per backend, with GB/s and GFLOP/s (never a test).
// One output row per checked tensor:
//   op  case  backend  tensor  err  tol  PASS|FAIL
// err is the metric named in the row (rel = max|got - ref| / max|ref|,
// close = elementwise |got - want| <= atol + rtol |want|, exact = bits).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

// ---------------------------------------------------------------------------
// Backends (columns)

typedef struct {
    const char *name;  // "cpu", "cuda-f32", "cuda-bf16"
    backend *b;
    bk_dtype dt;
    bool is_ref;       // the cpu backend
} ops_backend;

enum { OPS_MAX_BACKENDS = 3 };

typedef struct {
    bool perf;
    const char *op_filter;   // -o: exact op name, NULL = all
    const char *be_filter;   // -b: backend name or prefix ("cuda"), NULL = all
    double perf_seconds;     // time budget per timed op
    ops_backend be[OPS_MAX_BACKENDS];
    int n_be;
    ops_backend *cpu;        // always set (the reference), even when filtered out
    bool cpu_selected;       // the cpu column is checked against float64
    // the current op and case (for the rows)
    const char *op;
    char case_label[128];
    int failures, checks;
} ops_ctx;

// One op: its cases and what to do with case i.
typedef struct {
    const char *name;  // -o name
    int n_cases;
    void (*check)(ops_ctx *x, int i);
    // perf: cases for timing (0 = none); perf(x, be, i) times case i on be.
    int n_perf;
    void (*perf)(ops_ctx *x, const ops_backend *be, int i);
} ops_op;

// Sets the case label (printf format) for the rows that follow.
void ops_case(ops_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The non-reference columns to compare with the cpu (those selected).
#define OPS_FOR_OTHER(x, be) \
    for (ops_backend *be = (x)->be; be < (x)->be + (x)->n_be; be++) if (!be->is_ref)

// ---------------------------------------------------------------------------
// Random data (splitmix64, one stream per case seed)

typedef struct { uint64_t s; } ops_rng;
uint64_t ops_next(ops_rng *r);
float ops_unif(ops_rng *r, float lo, float hi);      // uniform in [lo, hi)
int64_t ops_int(ops_rng *r, int64_t n);               // uniform in [0, n)
float *ops_rand(ops_rng *r, int64_t n, float lo, float hi);  // malloc'd
float *ops_fcopy(const float *x, int64_t n);
double *ops_dcopy(const float *x, int64_t n);         // float -> double copy
float *ops_fzeros(int64_t n);
double *ops_dzeros(int64_t n);

// bf16 round to nearest even, and x rounded in place to what dt holds.
uint16_t ops_to_bf16(float f);
float ops_from_bf16(uint16_t b);
void ops_round(float *x, int64_t n, bk_dtype dt);
const char *ops_dt_name(bk_dtype dt);

// ---------------------------------------------------------------------------
// Buffers on a backend (device memory for cuda). Upload/download convert
// between host fp32 and dt on the host, so they do not depend on the cast op.

void *ops_up(const ops_backend *be, const float *x, int64_t n, bk_dtype dt);
void *ops_up_i32(const ops_backend *be, const int32_t *x, int64_t n);
void *ops_up_bytes(const ops_backend *be, const void *x, size_t bytes);  // e.g. uint8 flags
void *ops_nan(const ops_backend *be, int64_t n, bk_dtype dt);  // filled with NaN bits
float *ops_down(const ops_backend *be, const void *p, int64_t n, bk_dtype dt);  // malloc'd
void ops_free(const ops_backend *be, void *p);

// ---------------------------------------------------------------------------
// Comparisons; each prints one row and counts a failure. Return true = pass.

// rel: max|got - ref| / max|ref| <= tol; equal infinities count as 0 error,
// any other non-finite value in got (an unwritten NaN) fails.
bool ops_cmp_rel(ops_ctx *x, const char *be, const char *what, const float *got,
                 const float *ref, int64_t n, double tol);
// abs: max|got - ref| <= tol, infinities as above.
bool ops_cmp_abs(ops_ctx *x, const char *be, const char *what, const float *got,
                 const float *ref, int64_t n, double tol);
// close: every |got - want| <= atol + rtol * |want| (want in float64).
bool ops_cmp_close(ops_ctx *x, const char *be, const char *what, const float *got,
                   const double *want, int64_t n, double atol, double rtol);
// scalar: |got - want| <= tol * |want| (tol 0: bit-equal).
bool ops_cmp_scalar(ops_ctx *x, const char *be, const char *what, double got, double want,
                    double tol);
// dir: a gradient g against a directional finite difference fd along u:
// |<g, u> - fd| <= atol + tol * sum |g_i u_i| (relative to the terms, so a
// small sum by cancellation cannot pass or fail by luck; atol for gradients
// that are zero in exact arithmetic, where g holds only rounding noise).
bool ops_cmp_dir(ops_ctx *x, const char *be, const char *what, const float *g, const double *u,
                 int64_t n, double fd, double atol, double tol);
// exact: memcmp of n bytes.
bool ops_cmp_bits(ops_ctx *x, const char *be, const char *what, const void *got,
                  const void *want, size_t bytes);
// A condition checked by the caller.
bool ops_expect(ops_ctx *x, const char *be, const char *what, bool ok, const char *detail);

// ---------------------------------------------------------------------------
// float64 helpers for the references

double ops_dot(const double *a, const double *b, int64_t n);
void ops_scale(double *x, int64_t n, double a);
typedef double (*ops_loss_fn)(void *ctx);
// grad[k] = dL/dx[k * stride] by central differences, k < ceil(n / stride).
void ops_fd_grad(double *grad, double *x, int64_t n, int64_t stride, ops_loss_fn f, void *ctx,
                 double h);
// Directional derivative of f along u (n) at x: (f(x + h u) - f(x - h u)) / 2h,
// restoring x. x must be what f reads through ctx.
double ops_fd_dir(double *x, const double *u, int64_t n, ops_loss_fn f, void *ctx, double h);
// dst[k] = src[k * stride]
float *ops_gather(const float *src, int64_t n, int64_t stride);
// sum over i of g[i] * u[i], g in float
double ops_fdot(const float *g, const double *u, int64_t n);

// ---------------------------------------------------------------------------
// perf: OPS_TIMED(x, be, label, bytes, flops, call) runs `call` once in check
// mode (x->perf false); in perf mode warms up, times one call and, when
// that took less than x->perf_seconds, repetitions for about that long, and
// prints a row: op, case, backend, label, us/call, GB/s,
// GFLOP/s (bytes / flops per call; 0 = not printed). Backward ops that
// accumulate keep accumulating while timed (values stay finite: few reps).
double ops_now(void);
int ops_reps(const ops_ctx *x, double one_call_s);
void ops_perf_row(ops_ctx *x, const ops_backend *be, const char *label, double s_per_call,
                  double bytes, double flops);
#define OPS_TIMED(x, be, label, bytes, flops, call)                                \
    do {                                                                           \
        if (!(x)->perf) {                                                          \
            call;                                                                  \
            break;                                                                 \
        }                                                                          \
        call;                                                                      \
        (be)->b->op->sync((be)->b);                                                \
        double t0_ = ops_now();                                                    \
        call;                                                                      \
        (be)->b->op->sync((be)->b);                                                \
        double one_ = ops_now() - t0_;                                             \
        int reps_ = one_ >= (x)->perf_seconds ? 0 : ops_reps((x), one_);           \
        t0_ = ops_now();                                                           \
        for (int r_ = 0; r_ < reps_; r_++) { call; }                               \
        (be)->b->op->sync((be)->b);                                                \
        ops_perf_row((x), (be), (label), reps_ ? (ops_now() - t0_) / reps_ : one_, \
                     (bytes), (flops));                                            \
    } while (0)

// Sets OMP threads (for the same-bits-for-any-thread-count checks).
int ops_threads(void);
void ops_set_threads(int n);
