// bench_ops: throughput of the CPU matmul and chunked cross-entropy kernels.
// Prints matmul_forward GFLOP/s for two Llama-sized projections, then
// xent_forward_backward tokens/s with its effective GFLOP/s (6 N C V: the
// logits, dh and dw GEMMs) as a ratio to the best matmul GFLOP/s measured in
// the same process: near 1 means the loss is GEMM-bound, well below 1 means
// the softmax or the chunking costs show.
// Usage: bench_ops (threads from OMP_NUM_THREADS / OPENBLAS_NUM_THREADS).
// With the pthread build of OpenBLAS, libgomp threads spin-waiting after a
// parallel region compete with the BLAS threads: OMP_WAIT_POLICY=passive (or
// the OpenMP build of OpenBLAS) gives steadier numbers.
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "die.h"
#include "matmul.h"
#include "xent.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rand_floats(int64_t n, float scale, uint64_t *s) {
    float *x = xmalloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = scale * ((float)(*s >> 40) * 0x1.0p-23f - 1.0f);
    }
    return x;
}

// Best time of one fn(ctx) call over at least 3 calls and 1 s, after a warm-up call.
static double best_time(void (*fn)(void *), void *ctx) {
    fn(ctx);
    double best = 1e30, start = now_s();
    for (int rep = 0; rep < 3 || now_s() - start < 1.0; rep++) {
        double t0 = now_s();
        fn(ctx);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

typedef struct {
    float *out, *inp, *w;  // (N, OC), (N, C), (OC, C)
    int64_t N, C, OC;
} matmul_args;

static void run_matmul(void *p) {
    matmul_args *a = p;
    matmul_forward(a->out, a->inp, a->w, a->N, a->C, a->OC);
}

typedef struct {
    float *dh, *dw, *h, *w;  // (N, C), (V, C), (N, C), (V, C)
    int32_t *targets;        // (N)
    int64_t N, C, V;
} xent_args;

static void run_xent(void *p) {
    xent_args *a = p;
    xent_forward_backward(NULL, a->dh, a->dw, a->h, a->w, a->targets, a->N, a->C, a->V,
                          1.0f / (float)a->N);
}

static double bench_matmul(int64_t N, int64_t C, int64_t OC, uint64_t *s) {
    matmul_args a = {xmalloc((size_t)(N * OC) * sizeof(float)), rand_floats(N * C, 1.0f, s),
                     rand_floats(OC * C, 0.05f, s), N, C, OC};
    double t = best_time(run_matmul, &a);
    double gflops = 2.0 * (double)N * (double)C * (double)OC / t * 1e-9;
    printf("matmul_forward (%lldx%lld)@(%lldx%lld)^T   %8.3f ms  %7.1f GFLOP/s\n",
           (long long)N, (long long)C, (long long)OC, (long long)C, t * 1e3, gflops);
    free(a.out), free(a.inp), free(a.w);
    return gflops;
}

static void bench_xent(int64_t N, int64_t C, int64_t V, double matmul_gflops, uint64_t *s) {
    xent_args a = {xcalloc((size_t)(N * C), sizeof(float)), xcalloc((size_t)(V * C), sizeof(float)),
                   rand_floats(N * C, 1.0f, s), rand_floats(V * C, 0.05f, s),
                   xmalloc((size_t)N * sizeof(int32_t)), N, C, V};
    for (int64_t n = 0; n < N; n++) a.targets[n] = (int32_t)((n * 7919) % V);
    double t = best_time(run_xent, &a);
    double gflops = 6.0 * (double)N * (double)C * (double)V / t * 1e-9;
    printf("xent_forward_backward N=%lld C=%lld V=%-6lld %8.3f ms  %7.0f tokens/s  "
           "%7.1f GFLOP/s  %.2f x matmul\n",
           (long long)N, (long long)C, (long long)V, t * 1e3, (double)N / t, gflops,
           gflops / matmul_gflops);
    free(a.dh), free(a.dw), free(a.h), free(a.w), free(a.targets);
}

int main(void) {
    uint64_t s = 42;
    printf("bench_ops: %d OpenMP threads (OpenBLAS threads from OPENBLAS_NUM_THREADS)\n",
           omp_get_max_threads());
    double a = bench_matmul(1024, 384, 1152, &s);
    double b = bench_matmul(1024, 384, 1536, &s);
    double best = a > b ? a : b;
    bench_xent(1024, 384, 512, best, &s);
    bench_xent(1024, 384, 32000, best, &s);
    return 0;
}
