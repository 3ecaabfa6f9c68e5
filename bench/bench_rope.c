// bench_rope: rope_forward on Llama-3-8B-shaped q (N, 32, 128) and k (N, 8, 128)
// against copying the same bytes (memcpy, one thread and OpenMP), the floor
// for an in-place kernel that reads and writes q and k once.
//
// Usage: bench_rope [reps]   (OMP_NUM_THREADS sets the threads)
// Prints best-of-reps ms, GB/s (bytes read + written) and the ratio to memcpy.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "die.h"
#include "rope.h"
#include "rope_scaling.h"

enum { H = 32, HKV = 8, D = 128 };

static double now_s(void) {
    struct timespec ts;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// dst <- src, n bytes, split across OpenMP threads.
static void memcpy_omp(char *dst, const char *src, size_t n) {
#pragma omp parallel
    {
        size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        memcpy(dst + lo, src + lo, hi - lo);
    }
}

typedef struct {
    float *q, *k, *q2, *k2;  // (N, H, D), (N, HKV, D) and copy targets
    int32_t *pos;            // (N)
    int64_t N;
    const rope_table *t;
} bench_buffers;

enum { OP_ROPE, OP_MEMCPY, OP_MEMCPY_OMP };

static void run_op(int op, const bench_buffers *b) {
    size_t qb = sizeof(float) * (size_t)(b->N * H * D),
           kb = sizeof(float) * (size_t)(b->N * HKV * D);
    switch (op) {
    case OP_ROPE:
        rope_forward(b->q, b->k, b->pos, NULL, b->t, ROPE_LAYOUT_HALF, b->N, H, HKV, D);
        break;
    case OP_MEMCPY:
        memcpy(b->q2, b->q, qb);
        memcpy(b->k2, b->k, kb);
        break;
    case OP_MEMCPY_OMP:
        memcpy_omp((char *)b->q2, (const char *)b->q, qb);
        memcpy_omp((char *)b->k2, (const char *)b->k, kb);
        break;
    }
}

// Best time of reps runs, after two warm-up runs.
static double time_op(int op, const bench_buffers *b, int reps) {
    run_op(op, b);
    run_op(op, b);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        run_op(op, b);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    if (reps < 1) die_user("bench_rope: reps must be >= 1 (got %s)", argv[1]);
    rope_config cfg = rope_config_default(D);
    cfg.type = ROPE_TYPE_LLAMA3;
    cfg.theta = 500000.0;
    cfg.factor = 8;
    cfg.low_freq_factor = 1;
    cfg.high_freq_factor = 4;
    cfg.max_position_embeddings = 131072;
    cfg.original_max_position_embeddings = 8192;
    rope_table t;
    rope_table_init(&t, &cfg, 0);

    printf(
        "rope_forward, llama3 table, half layout, q (N, %d, %d) + k (N, %d, %d) fp32, "
        "%d threads, best of %d\n",
        H, D, HKV, D, omp_get_max_threads(), reps);
    printf("%6s  %-14s %9s %9s %9s\n", "N", "op", "ms", "GB/s", "x memcpy");
    const int64_t sizes[2] = {1024, 4096};
    for (int s = 0; s < 2; s++) {
        int64_t N = sizes[s];
        bench_buffers b = {.N = N, .t = &t};
        b.q = xmalloc(sizeof(float) * (size_t)(N * H * D));
        b.k = xmalloc(sizeof(float) * (size_t)(N * HKV * D));
        b.q2 = xmalloc(sizeof(float) * (size_t)(N * H * D));
        b.k2 = xmalloc(sizeof(float) * (size_t)(N * HKV * D));
        b.pos = xmalloc(sizeof(int32_t) * (size_t)N);
        for (int64_t i = 0; i < N * H * D; i++) b.q[i] = b.q2[i] = (float)(i % 7) * 0.125f;
        for (int64_t i = 0; i < N * HKV * D; i++) b.k[i] = b.k2[i] = (float)(i % 5) * 0.125f;
        for (int64_t n = 0; n < N; n++) b.pos[n] = (int32_t)n;

        double bytes = 2.0 * sizeof(float) * (double)(N * (H + HKV) * D);  // read + write
        double t_copy = time_op(OP_MEMCPY, &b, reps);
        const char *names[3] = {"rope_forward", "memcpy", "memcpy (omp)"};
        double times[3] = {time_op(OP_ROPE, &b, reps), t_copy, time_op(OP_MEMCPY_OMP, &b, reps)};
        for (int op = 0; op < 3; op++)
            printf("%6lld  %-14s %9.3f %9.2f %9.2f\n", (long long)N, names[op], 1e3 * times[op],
                   bytes / times[op] / 1e9, times[op] / t_copy);
        free(b.q);
        free(b.k);
        free(b.q2);
        free(b.k2);
        free(b.pos);
    }
    return 0;
}
