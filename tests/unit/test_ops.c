// test_ops: the CPU reference kernels (matmul, rmsnorm, swiglu, embedding,
// xent, adamw) against naive double-precision versions written here, and every
// backward against central finite differences of that double forward.
// Each backward is called twice from zero: the second result must be twice
// the first (the accumulate contract). Max errors are printed for each check.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adamw.h"
#include "die.h"
#include "embedding.h"
#include "matmul.h"
#include "rmsnorm.h"
#include "swiglu.h"
#include "xent.h"

// ---------------------------------------------------------------------------
// Helpers: random data, comparisons, finite differences, death tests.

static uint64_t rng_next(uint64_t *s) {  // splitmix64
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float urand(uint64_t *s) {  // uniform in [-1, 1)
    return (float)((double)(rng_next(s) >> 40) * 0x1.0p-23 - 1.0);
}

static float *falloc(int64_t n) { return xmalloc((size_t)n * sizeof(float)); }
static double *dalloc(int64_t n) { return xmalloc((size_t)n * sizeof(double)); }
static float *fzeros(int64_t n) { return xcalloc((size_t)n, sizeof(float)); }
static double *dzeros(int64_t n) { return xcalloc((size_t)n, sizeof(double)); }

static float *rand_floats(int64_t n, float scale, uint64_t *s) {
    float *x = falloc(n);
    for (int64_t i = 0; i < n; i++) x[i] = scale * urand(s);
    return x;
}

static double *to_double(const float *x, int64_t n) {
    double *y = dalloc(n);
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void scale_d(double *x, int64_t n, double a) {
    for (int64_t i = 0; i < n; i++) x[i] *= a;
}

// Asserts |got - want| <= atol + rtol * |want| for every element and prints the
// largest absolute error and the largest |want| next to it.
static void check_close(const char *what, const float *got, const double *want, int64_t n,
                        double atol, double rtol) {
    double max_err = 0.0, max_ref = 0.0;
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i])) && bad < 0) bad = i;
        if (err > max_err || isnan(err)) max_err = err;
        if (fabs(want[i]) > max_ref) max_ref = fabs(want[i]);
    }
    printf("  %-34s max abs err %.2e  (max |ref| %.2e, n %lld)\n", what, max_err, max_ref,
           (long long)n);
    if (bad >= 0)
        fail_msg("%s[%lld]: got %.9g, want %.9g (atol %g, rtol %g)", what, (long long)bad,
                 (double)got[bad], want[bad], atol, rtol);
}

// A scalar function of the double arrays held in ctx.
typedef double (*loss_fn)(void *ctx);

// grad[k] = dL/dx[k * stride] by central differences, for k < ceil(n / stride);
// x is one of the arrays that f reads through ctx.
static void fd_grad(double *grad, double *x, int64_t n, int64_t stride, loss_fn f, void *ctx,
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

// dst[k] = src[k * stride] (the entries fd_grad sampled).
static float *gather(const float *src, int64_t n, int64_t stride) {
    float *dst = falloc((n + stride - 1) / stride);
    for (int64_t i = 0, k = 0; i < n; i += stride, k++) dst[k] = src[i];
    return dst;
}

// Runs fn(ctx) in a child process with stderr silenced; returns its exit status.
static int exit_status_of(void (*fn)(void *), void *ctx) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 2);
        fn(ctx);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// ---------------------------------------------------------------------------
// matmul

typedef struct {
    double *inp, *w, *dout;  // (N, C), (OC, C), (N, OC)
    int64_t N, C, OC;
} mm_case;

static void mm_ref(double *out, const double *inp, const double *w, int64_t N, int64_t C,
                   int64_t OC) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OC; o++) out[n * OC + o] = dot(inp + n * C, w + o * C, C);
}

static double mm_loss(void *p) {  // sum(out * dout)
    mm_case *c = p;
    double *out = dalloc(c->N * c->OC);
    mm_ref(out, c->inp, c->w, c->N, c->C, c->OC);
    double l = dot(out, c->dout, c->N * c->OC);
    free(out);
    return l;
}

static void test_matmul_forward(void **state) {
    (void)state;
    const int64_t sizes[][3] = {{7, 13, 5}, {130, 257, 190}};
    uint64_t s = 1;
    for (int k = 0; k < 2; k++) {
        int64_t N = sizes[k][0], C = sizes[k][1], OC = sizes[k][2];
        float *inp = rand_floats(N * C, 1.0f, &s), *w = rand_floats(OC * C, 1.0f, &s);
        float *out = falloc(N * OC);
        double *ind = to_double(inp, N * C), *wd = to_double(w, OC * C);
        double *ref = dalloc(N * OC);
        matmul_forward(out, inp, w, N, C, OC);
        mm_ref(ref, ind, wd, N, C, OC);
        // fp32 dot products of C terms in [-1, 1]: |err| <= C * 2^-24 * C on paper,
        // ~sqrt(C) * 2^-24 * |typical term sum| in practice.
        check_close(k == 0 ? "matmul out (7,13,5)" : "matmul out (130,257,190)", out, ref,
                    N * OC, 1e-5, 1e-5);
        free(inp), free(w), free(out), free(ind), free(wd), free(ref);
    }
}

static void test_matmul_backward(void **state) {
    (void)state;
    const int64_t sizes[][3] = {{7, 13, 5}, {33, 64, 40}};
    uint64_t s = 2;
    for (int k = 0; k < 2; k++) {
        int64_t N = sizes[k][0], C = sizes[k][1], OC = sizes[k][2];
        float *inp = rand_floats(N * C, 1.0f, &s), *w = rand_floats(OC * C, 1.0f, &s);
        float *dout = rand_floats(N * OC, 1.0f, &s);
        float *dinp = fzeros(N * C);
        float *dw = fzeros(OC * C);
        mm_case c = {to_double(inp, N * C), to_double(w, OC * C), to_double(dout, N * OC), N,
                     C, OC};
        double *ref_dinp = dalloc(N * C);
        double *ref_dw = dalloc(OC * C);
        fd_grad(ref_dinp, c.inp, N * C, 1, mm_loss, &c, 1e-3);
        fd_grad(ref_dw, c.w, OC * C, 1, mm_loss, &c, 1e-3);

        // One output at a time (the other NULL), then both: twice the gradient.
        matmul_backward(dinp, NULL, dout, inp, w, N, C, OC);
        check_close("matmul dinp vs fd", dinp, ref_dinp, N * C, 1e-5, 1e-5);
        matmul_backward(NULL, dw, dout, inp, w, N, C, OC);
        check_close("matmul dweight vs fd", dw, ref_dw, OC * C, 1e-5, 1e-5);
        matmul_backward(dinp, dw, dout, inp, w, N, C, OC);
        scale_d(ref_dinp, N * C, 2.0);
        scale_d(ref_dw, OC * C, 2.0);
        check_close("matmul dinp, 2 calls", dinp, ref_dinp, N * C, 2e-5, 1e-5);
        check_close("matmul dweight, 2 calls", dw, ref_dw, OC * C, 2e-5, 1e-5);
        free(inp), free(w), free(dout), free(dinp), free(dw);
        free(c.inp), free(c.w), free(c.dout), free(ref_dinp), free(ref_dw);
    }
}

// ---------------------------------------------------------------------------
// rmsnorm

typedef struct {
    double *x, *w, *dout;  // (N, C), (C), (N, C)
    int64_t N, C;
    double eps;
} rms_case;

static void rms_ref(double *out, double *rstd, const rms_case *c) {
    for (int64_t n = 0; n < c->N; n++) {
        const double *x = c->x + n * c->C;
        double r = 1.0 / sqrt(dot(x, x, c->C) / (double)c->C + c->eps);
        for (int64_t i = 0; i < c->C; i++) out[n * c->C + i] = c->w[i] * x[i] * r;
        rstd[n] = r;
    }
}

static double rms_loss(void *p) {
    rms_case *c = p;
    double *out = dalloc(c->N * c->C);
    double *rstd = dalloc(c->N);
    rms_ref(out, rstd, c);
    double l = dot(out, c->dout, c->N * c->C);
    free(out), free(rstd);
    return l;
}

static void test_rmsnorm(void **state) {
    (void)state;
    const int64_t sizes[][2] = {{5, 37}, {20, 100}};
    uint64_t s = 3;
    const float eps = 1e-5f;
    for (int k = 0; k < 2; k++) {
        int64_t N = sizes[k][0], C = sizes[k][1];
        float *x = rand_floats(N * C, 3.0f, &s), *w = rand_floats(C, 0.5f, &s);
        for (int64_t i = 0; i < C; i++) w[i] += 1.0f;
        float *dout = rand_floats(N * C, 1.0f, &s);
        rms_case c = {to_double(x, N * C), to_double(w, C), to_double(dout, N * C), N, C, eps};

        float *out = falloc(N * C), *rstd = falloc(N);
        double *ref = dalloc(N * C), *ref_rstd = dalloc(N);
        rmsnorm_forward(out, rstd, x, w, N, C, eps);
        rms_ref(ref, ref_rstd, &c);
        check_close("rmsnorm out", out, ref, N * C, 1e-6, 1e-6);
        check_close("rmsnorm rstd", rstd, ref_rstd, N, 0.0, 1e-6);

        double *fd_dx = dalloc(N * C), *fd_dw = dalloc(C);
        fd_grad(fd_dx, c.x, N * C, 1, rms_loss, &c, 1e-4);
        fd_grad(fd_dw, c.w, C, 1, rms_loss, &c, 1e-4);
        float *dx = fzeros(N * C), *dw = fzeros(C);
        rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
        check_close("rmsnorm dinp vs fd", dx, fd_dx, N * C, 2e-6, 2e-6);
        check_close("rmsnorm dweight vs fd", dw, fd_dw, C, 2e-6, 2e-6);
        rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
        scale_d(fd_dx, N * C, 2.0);
        scale_d(fd_dw, C, 2.0);
        check_close("rmsnorm dinp, 2 calls", dx, fd_dx, N * C, 4e-6, 2e-6);
        check_close("rmsnorm dweight, 2 calls", dw, fd_dw, C, 4e-6, 2e-6);

        // Same bits with 1 and 2 threads.
        float *dx1 = fzeros(N * C), *dw1 = fzeros(C);
        float *dx2 = fzeros(N * C), *dw2 = fzeros(C);
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        rmsnorm_backward(dx1, dw1, dout, x, w, rstd, N, C);
        omp_set_num_threads(2);
        rmsnorm_backward(dx2, dw2, dout, x, w, rstd, N, C);
        omp_set_num_threads(nt);
        assert_memory_equal(dx1, dx2, (size_t)(N * C) * sizeof(float));
        assert_memory_equal(dw1, dw2, (size_t)C * sizeof(float));

        free(x), free(w), free(dout), free(out), free(rstd), free(ref), free(ref_rstd);
        free(c.x), free(c.w), free(c.dout), free(fd_dx), free(fd_dw), free(dx), free(dw);
        free(dx1), free(dw1), free(dx2), free(dw2);
    }
}

// ---------------------------------------------------------------------------
// swiglu

typedef struct {
    double *gate, *up, *dout;  // (n) each
    int64_t n;
} swiglu_case;

static double silu_d(double g) { return g / (1.0 + exp(-g)); }

static double swiglu_loss(void *p) {
    swiglu_case *c = p;
    double l = 0.0;
    for (int64_t i = 0; i < c->n; i++) l += silu_d(c->gate[i]) * c->up[i] * c->dout[i];
    return l;
}

static void test_swiglu(void **state) {
    (void)state;
    const int64_t n = 1001;
    uint64_t s = 4;
    float *gate = rand_floats(n, 12.0f, &s), *up = rand_floats(n, 2.0f, &s);
    float *dout = rand_floats(n, 1.0f, &s);
    const float extremes[] = {-100.0f, -88.0f, -30.0f, 0.0f, 30.0f, 88.0f, 100.0f};
    for (int i = 0; i < 7; i++) gate[i] = extremes[i];
    swiglu_case c = {to_double(gate, n), to_double(up, n), to_double(dout, n), n};

    float *out = falloc(n);
    double *ref = dalloc(n);
    swiglu_forward(out, gate, up, n);
    for (int64_t i = 0; i < n; i++) ref[i] = silu_d(c.gate[i]) * c.up[i];
    check_close("swiglu out", out, ref, n, 1e-30, 1e-6);

    double *fd_dg = dalloc(n), *fd_du = dalloc(n);
    fd_grad(fd_dg, c.gate, n, 1, swiglu_loss, &c, 1e-4);
    fd_grad(fd_du, c.up, n, 1, swiglu_loss, &c, 1e-4);
    float *dg = fzeros(n), *du = fzeros(n);
    swiglu_backward(dg, du, dout, gate, up, n);
    check_close("swiglu dgate vs fd", dg, fd_dg, n, 1e-6, 1e-5);
    check_close("swiglu dup vs fd", du, fd_du, n, 1e-6, 1e-5);
    swiglu_backward(dg, du, dout, gate, up, n);
    scale_d(fd_dg, n, 2.0);
    scale_d(fd_du, n, 2.0);
    check_close("swiglu dgate, 2 calls", dg, fd_dg, n, 2e-6, 1e-5);
    check_close("swiglu dup, 2 calls", du, fd_du, n, 2e-6, 1e-5);
    free(gate), free(up), free(dout), free(c.gate), free(c.up), free(c.dout);
    free(out), free(ref), free(fd_dg), free(fd_du), free(dg), free(du);
}

// ---------------------------------------------------------------------------
// embedding

typedef struct {
    double *wte, *dout;  // (V, C), (N, C)
    const int32_t *tokens;
    int64_t N, C;
} emb_case;

static double emb_loss(void *p) {
    emb_case *c = p;
    double l = 0.0;
    for (int64_t n = 0; n < c->N; n++)
        l += dot(c->wte + c->tokens[n] * c->C, c->dout + n * c->C, c->C);
    return l;
}

static void emb_bad_token(void *ctx) {
    (void)ctx;
    const int32_t tokens[3] = {0, 7, 1};  // 7 is outside [0, 7)
    float wte[7 * 2] = {0}, out[3 * 2];
    embedding_forward(out, tokens, wte, 3, 2, 7);
}

static void test_embedding(void **state) {
    (void)state;
    const int64_t N = 50, C = 70, V = 7;  // 7 tokens over 50 positions: many repeats
    uint64_t s = 5;
    int32_t tokens[50];
    for (int64_t n = 0; n < N; n++) tokens[n] = (int32_t)(rng_next(&s) % V);
    tokens[0] = tokens[1] = tokens[2] = 3;
    float *wte = rand_floats(V * C, 1.0f, &s), *dout = rand_floats(N * C, 1.0f, &s);

    float *out = falloc(N * C);
    embedding_forward(out, tokens, wte, N, C, V);
    for (int64_t n = 0; n < N; n++)
        assert_memory_equal(out + n * C, wte + tokens[n] * C, (size_t)C * sizeof(float));

    emb_case c = {to_double(wte, V * C), to_double(dout, N * C), tokens, N, C};
    double *fd = dalloc(V * C);
    fd_grad(fd, c.wte, V * C, 1, emb_loss, &c, 1e-3);
    float *dw = fzeros(V * C);
    embedding_backward(dw, dout, tokens, N, C);
    check_close("embedding dwte vs fd", dw, fd, V * C, 1e-5, 1e-5);
    embedding_backward(dw, dout, tokens, N, C);
    scale_d(fd, V * C, 2.0);
    check_close("embedding dwte, 2 calls", dw, fd, V * C, 2e-5, 1e-5);

    float *dw1 = fzeros(V * C), *dw2 = fzeros(V * C);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    embedding_backward(dw1, dout, tokens, N, C);
    omp_set_num_threads(2);
    embedding_backward(dw2, dout, tokens, N, C);
    omp_set_num_threads(nt);
    assert_memory_equal(dw1, dw2, (size_t)(V * C) * sizeof(float));

    assert_int_equal(exit_status_of(emb_bad_token, NULL), 1);
    free(wte), free(dout), free(out), free(c.wte), free(c.dout), free(fd), free(dw);
    free(dw1), free(dw2);
}

// ---------------------------------------------------------------------------
// xent

typedef struct {
    double *h, *w;  // (N, C), (V, C)
    const int32_t *targets;
    int64_t N, C, V;
    double grad_scale;
} xent_case;

// Full (N, V) logits in double. losses (N) and the sum as xent.h specifies; dh, dw
// (when not NULL) are SET to grad_scale * dSum/dh, dSum/dw.
static double xent_ref(double *losses, double *dh, double *dw, const xent_case *c) {
    int64_t N = c->N, C = c->C, V = c->V;
    double *logits = dalloc(N * V);
    mm_ref(logits, c->h, c->w, N, C, V);
    if (dh) memset(dh, 0, (size_t)(N * C) * sizeof *dh);
    if (dw) memset(dw, 0, (size_t)(V * C) * sizeof *dw);
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const double *l = logits + n * V;
        int32_t t = c->targets[n];
        if (losses) losses[n] = 0.0;
        if (t < 0) continue;
        double mx = l[0], sum = 0.0;
        for (int64_t v = 1; v < V; v++) mx = fmax(mx, l[v]);
        for (int64_t v = 0; v < V; v++) sum += exp(l[v] - mx);
        double lse = mx + log(sum);
        total += lse - l[t];
        if (losses) losses[n] = lse - l[t];
        for (int64_t v = 0; v < V && dh; v++) {
            double d = c->grad_scale * (exp(l[v] - lse) - (v == t));
            for (int64_t i = 0; i < C; i++) {
                dh[n * C + i] += d * c->w[v * C + i];
                if (dw) dw[v * C + i] += d * c->h[n * C + i];
            }
        }
    }
    free(logits);
    return total;
}

static double xent_loss(void *p) {
    xent_case *c = p;
    return c->grad_scale * xent_ref(NULL, NULL, NULL, c);
}

typedef struct {
    float *h, *w;
    int32_t *targets;
    xent_case ref;
} xent_problem;

static xent_problem xent_problem_new(int64_t N, int64_t C, int64_t V, float hscale,
                                     uint64_t *s) {
    xent_problem p;
    p.h = rand_floats(N * C, hscale, s);
    p.w = rand_floats(V * C, 1.0f, s);
    p.targets = xmalloc((size_t)N * sizeof *p.targets);
    int64_t valid = 0;
    for (int64_t n = 0; n < N; n++) {
        p.targets[n] = rng_next(s) % 5 == 0 ? -1 : (int32_t)(rng_next(s) % V);
        valid += p.targets[n] >= 0;
    }
    p.ref = (xent_case){to_double(p.h, N * C), to_double(p.w, V * C), p.targets, N, C, V,
                        (double)(1.0f / (float)valid)};
    return p;
}

static void xent_problem_free(xent_problem *p) {
    free(p->h), free(p->w), free(p->targets), free(p->ref.h), free(p->ref.w);
}

static void test_xent_vs_naive(void **state) {
    (void)state;
    // N = 300: chunks of 128, 128, 44. About 1 in 5 targets ignored.
    const int64_t N = 300, C = 16, V = 50;
    uint64_t s = 6;
    xent_problem p = xent_problem_new(N, C, V, 1.0f, &s);
    float gs = (float)p.ref.grad_scale;
    double *ref_loss = dalloc(N), *ref_dh = dalloc(N * C);
    double *ref_dw = dalloc(V * C);
    double ref_sum = xent_ref(ref_loss, ref_dh, ref_dw, &p.ref);

    float *losses = falloc(N);
    float *dh = fzeros(N * C), *dw = fzeros(V * C);
    double sum = xent_forward_backward(losses, dh, dw, p.h, p.w, p.targets, N, C, V, gs);
    printf("  xent loss sum %.9f, naive %.9f, rel err %.2e\n", sum, ref_sum,
           fabs(sum - ref_sum) / ref_sum);
    assert_true(fabs(sum - ref_sum) <= 1e-6 * ref_sum);
    check_close("xent losses", losses, ref_loss, N, 1e-5, 1e-6);
    for (int64_t n = 0; n < N; n++)
        if (p.targets[n] < 0) assert_true(losses[n] == 0.0f);
    check_close("xent dh vs naive", dh, ref_dh, N * C, 1e-7, 1e-5);
    check_close("xent dw vs naive", dw, ref_dw, V * C, 1e-7, 1e-5);

    // Finite differences of grad_scale * sum: every 23rd entry of h, every 3rd of w.
    double *fd_dh = dalloc(N * C), *fd_dw = dalloc(V * C);
    fd_grad(fd_dh, p.ref.h, N * C, 23, xent_loss, &p.ref, 1e-4);
    fd_grad(fd_dw, p.ref.w, V * C, 3, xent_loss, &p.ref, 1e-4);
    float *dh_s = gather(dh, N * C, 23), *dw_s = gather(dw, V * C, 3);
    check_close("xent dh vs fd (1 in 23)", dh_s, fd_dh, (N * C + 22) / 23, 1e-7, 1e-5);
    check_close("xent dw vs fd (1 in 3)", dw_s, fd_dw, (V * C + 2) / 3, 1e-7, 1e-5);

    // Accumulate: a second call doubles the gradients and returns the same sum.
    double sum2 = xent_forward_backward(NULL, dh, dw, p.h, p.w, p.targets, N, C, V, gs);
    assert_true(sum2 == sum);
    scale_d(ref_dh, N * C, 2.0);
    scale_d(ref_dw, V * C, 2.0);
    check_close("xent dh, 2 calls", dh, ref_dh, N * C, 2e-7, 1e-5);
    check_close("xent dw, 2 calls", dw, ref_dw, V * C, 2e-7, 1e-5);

    xent_problem_free(&p);
    free(ref_loss), free(ref_dh), free(ref_dw), free(losses), free(dh), free(dw);
    free(fd_dh), free(fd_dw), free(dh_s), free(dw_s);
}

static void xent_bad_target(void *ctx) {
    (void)ctx;
    const float h[2] = {1, 2}, w[3 * 2] = {0};
    const int32_t targets[1] = {3};  // V = 3
    xent_forward_backward(NULL, NULL, NULL, h, w, targets, 1, 2, 3, 1.0f);
}

static void test_xent_modes(void **state) {
    (void)state;
    // One partial chunk, large logits (|h| up to 30: logits up to ~100).
    const int64_t N = 5, C = 8, V = 11;
    uint64_t s = 7;
    xent_problem p = xent_problem_new(N, C, V, 30.0f, &s);
    p.targets[0] = 4, p.targets[N - 1] = -1;
    p.ref.grad_scale = 0.37f;
    double *ref_loss = dalloc(N), *ref_dh = dalloc(N * C);
    double ref_sum = xent_ref(ref_loss, ref_dh, NULL, &p.ref);

    // Forward only.
    float *losses = falloc(N);
    double sum = xent_forward_backward(losses, NULL, NULL, p.h, p.w, p.targets, N, C, V, 0.37f);
    assert_true(fabs(sum - ref_sum) <= 1e-6 * ref_sum);
    check_close("xent losses, forward only", losses, ref_loss, N, 1e-5, 1e-6);

    // Frozen head: dh only.
    float *dh = fzeros(N * C);
    sum = xent_forward_backward(NULL, dh, NULL, p.h, p.w, p.targets, N, C, V, 0.37f);
    assert_true(fabs(sum - ref_sum) <= 1e-6 * ref_sum);
    check_close("xent dh, frozen head, big logits", dh, ref_dh, N * C, 1e-5, 1e-5);

    // All targets ignored: loss 0 and the gradients untouched.
    for (int64_t n = 0; n < N; n++) p.targets[n] = -1;
    float *dw = falloc(V * C);
    float *dh0 = falloc(N * C), *dw0 = falloc(V * C);
    for (int64_t i = 0; i < V * C; i++) dw[i] = (float)i;
    memcpy(dh0, dh, (size_t)(N * C) * sizeof(float));
    memcpy(dw0, dw, (size_t)(V * C) * sizeof(float));
    sum = xent_forward_backward(losses, dh, dw, p.h, p.w, p.targets, N, C, V, 0.37f);
    assert_true(sum == 0.0);
    for (int64_t n = 0; n < N; n++) assert_true(losses[n] == 0.0f);
    assert_memory_equal(dh, dh0, (size_t)(N * C) * sizeof(float));
    assert_memory_equal(dw, dw0, (size_t)(V * C) * sizeof(float));

    // Greedy-decoding logits of one row.
    float *row = falloc(V);
    double *ref_row = dalloc(V);
    xent_logits_row(row, p.h + 2 * C, p.w, C, V);
    mm_ref(ref_row, p.ref.h + 2 * C, p.ref.w, 1, C, V);
    check_close("xent_logits_row", row, ref_row, V, 1e-5, 1e-6);

    assert_int_equal(exit_status_of(xent_bad_target, NULL), 1);
    xent_problem_free(&p);
    free(ref_loss), free(ref_dh), free(losses), free(dh), free(dw), free(dh0), free(dw0);
    free(row), free(ref_row);
}

// ---------------------------------------------------------------------------
// adamw

// The update re-derived in double from the torch.optim.AdamW documentation.
static void adamw_ref(double *p, double *m, double *v, const float *grad, int64_t n,
                      const adamw_hparams *hp, int64_t step, double grad_scale) {
    double lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    for (int64_t i = 0; i < n; i++) {
        double g = grad[i] * grad_scale;
        p[i] -= lr * hp->weight_decay * p[i];
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        double mhat = m[i] / (1.0 - pow(b1, (double)step));
        double vhat = v[i] / (1.0 - pow(b2, (double)step));
        p[i] -= lr * mhat / (sqrt(vhat) + eps);
    }
}

static void test_adamw(void **state) {
    (void)state;
    const int64_t n = 1000, steps = 6;
    const struct {
        float wd, grad_scale;
    } cases[] = {{0.1f, 1.0f}, {0.0f, 1.0f}, {0.1f, 0.25f}};
    for (int k = 0; k < 3; k++) {
        uint64_t s = 8;
        adamw_hparams hp = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                            .weight_decay = cases[k].wd};
        float *p = rand_floats(n, 1.0f, &s);
        float *m = fzeros(n), *v = fzeros(n);
        double *pr = to_double(p, n), *mr = dzeros(n), *vr = dzeros(n);
        for (int64_t step = 1; step <= steps; step++) {
            float *g = rand_floats(n, 0.1f, &s);
            for (int64_t i = 0; i < n; i += 10) g[i] = 0.0f;  // some zero gradients
            adamw_update(p, m, v, g, n, &hp, step, cases[k].grad_scale);
            adamw_ref(pr, mr, vr, g, n, &hp, step, cases[k].grad_scale);
            free(g);
        }
        printf("  adamw wd %.1f grad_scale %.2f, %lld steps:\n", (double)cases[k].wd,
               (double)cases[k].grad_scale, (long long)steps);
        // fp32 rounding: a few ulps of |p| <= 1.1; m cancels terms of size up to
        // 0.1, so its error is a few ulps of 0.1 (2^-24 * 0.1 = 6e-9), not of m.
        check_close("  adamw param", p, pr, n, 1e-6, 1e-6);
        check_close("  adamw m", m, mr, n, 3e-8, 1e-6);
        check_close("  adamw v", v, vr, n, 1e-12, 1e-6);
        free(p), free(m), free(v), free(pr), free(mr), free(vr);
    }

    // Step 1 without weight decay: exactly -lr * sign(g) (up to eps) for g != 0.
    adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    float p[3] = {1.0f, 1.0f, 1.0f}, m[3] = {0}, v[3] = {0};
    const float g[3] = {0.5f, -2.0f, 0.0f};
    adamw_update(p, m, v, g, 3, &hp, 1, 1.0f);
    assert_float_equal(p[0], 1.0f - 1e-3f, 1e-7);
    assert_float_equal(p[1], 1.0f + 1e-3f, 1e-7);
    assert_true(p[2] == 1.0f);
}

static void test_grad_norm_and_clip(void **state) {
    (void)state;
    const int64_t n = 3 * 65536 + 123;  // several blocks, the last one partial
    uint64_t s = 9;
    float *g = rand_floats(n, 1.0f, &s);
    double ref = 0.0;
    for (int64_t i = 0; i < n; i++) ref += (double)g[i] * g[i];
    double got = adamw_grad_norm_sq(g, n);
    printf("  adamw_grad_norm_sq %.12f, naive %.12f, rel err %.2e\n", got, ref,
           fabs(got - ref) / ref);
    assert_true(fabs(got - ref) <= 1e-12 * ref);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    double got1 = adamw_grad_norm_sq(g, n);
    omp_set_num_threads(nt);
    assert_true(got1 == got);  // same bits for any thread count
    assert_true(adamw_grad_norm_sq(g, 0) == 0.0);
    free(g);

    assert_true(adamw_clip_factor(0.5, 1.0) == 1.0f);
    assert_true(adamw_clip_factor(1.0, 1.0) == 1.0f);
    assert_true(adamw_clip_factor(5.0, 0.0) == 1.0f);  // clipping off
    assert_true(adamw_clip_factor(10.0, 1.0) == (float)(1.0 / (10.0 + 1e-6)));
    assert_true(adamw_clip_factor(4.0, 2.0) == (float)(2.0 / (4.0 + 1e-6)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_forward),   cmocka_unit_test(test_matmul_backward),
        cmocka_unit_test(test_rmsnorm),          cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_embedding),        cmocka_unit_test(test_xent_vs_naive),
        cmocka_unit_test(test_xent_modes),       cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_grad_norm_and_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
