// dist reductions against sums worked out by hand: the gradient all-reduce
// with the default 4M-float buckets and n not a multiple of them, the
// bucketed sync with small buckets started early at watermarks that differ
// from rank to rank, loss (double) and token-count (int64) sums, dist_any.
// Values are small multiples of 1/4, so every float sum is exact.
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "die.h"
#include "dist.h"
#include "mpi_check.h"

// Rank r contributes (r + 1) * base(i); the sum is base(i) * n(n + 1) / 2.
static float base(int64_t i) { return (float)(i % 1001) * 0.25f - 100.0f; }

static void fill(float *g, int64_t n, int rank) {
    for (int64_t i = 0; i < n; i++) g[i] = (float)(rank + 1) * base(i);
}

static int64_t count_wrong(const float *g, int64_t n, int size) {
    const float k = (float)(size * (size + 1) / 2);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += g[i] != k * base(i);
    return wrong;
}

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    mpi_check mc = {.rank = d.rank};
    char err[256];
    if (dist_init_grid(&d, 1, d.size, err, sizeof err) != 0) die("%s", err);

    // Default buckets: two full ones and a ragged third.
    const int64_t n = 2 * (int64_t)DIST_BUCKET_FLOATS + 12345;
    float *g = xmalloc(sizeof(float) * (size_t)n);
    fill(g, n, d.rank);
    dist_allreduce_grads(&d, g, n);
    int64_t wrong = count_wrong(g, n, d.size);
    EXPECT(&mc, wrong == 0, "dist_allreduce_grads: %lld of %lld wrong", (long long)wrong,
           (long long)n);
    free(g);

    // Small buckets (11 of them, the last ragged) started early: each rank
    // reports progress at its own watermarks; buckets start in the same
    // (descending) order everywhere regardless.
    const int64_t m = 10007, bucket = 1000;
    g = xmalloc(sizeof(float) * (size_t)m);
    fill(g, m, d.rank);
    dist_grad_sync sync;
    dist_grad_sync_begin(&sync, &d, g, m, bucket);
    EXPECT(&mc, sync.n_buckets == 11, "%lld buckets, want 11", (long long)sync.n_buckets);
    for (int64_t lo = m - 1 - 777 * d.rank; lo > 0; lo -= 1500 + 1000 * d.rank)
        dist_grad_sync_ready(&sync, lo);
    dist_grad_sync_end(&sync);
    wrong = count_wrong(g, m, d.size);
    EXPECT(&mc, wrong == 0, "dist_grad_sync: %lld of %lld wrong", (long long)wrong, (long long)m);
    free(g);

    // Empty buffer.
    dist_allreduce_grads(&d, NULL, 0);

    // Loss sums and token counts (beyond 32 bits).
    double loss[2] = {d.rank + 0.5, -1.25 * d.rank};
    int64_t tokens[2] = {(int64_t)d.rank * 10000000000LL + 3, 1};
    dist_allreduce_sum_double(&d, loss, 2);
    dist_allreduce_sum_int64(&d, tokens, 2);
    const int64_t s = (int64_t)d.size * (d.size - 1) / 2;  // sum of ranks
    EXPECT(&mc, loss[0] == (double)s + 0.5 * d.size && loss[1] == -1.25 * (double)s,
           "loss sums %g %g", loss[0], loss[1]);
    EXPECT(&mc, tokens[0] == s * 10000000000LL + 3 * d.size && tokens[1] == d.size,
           "token sums %lld %lld", (long long)tokens[0], (long long)tokens[1]);

    // dist_any: a vote of the last rank alone reaches everyone.
    EXPECT(&mc, dist_any(&d, d.rank == d.size - 1), "dist_any missed the last rank's vote");
    EXPECT(&mc, !dist_any(&d, false), "dist_any true with no vote");

    // The serial context: no MPI, sums of one.
    dist_ctx one;
    dist_init_serial(&one);
    float x[3] = {1.0f, 2.0f, 3.0f};
    dist_allreduce_grads(&one, x, 3);
    EXPECT(&mc, x[0] == 1.0f && x[1] == 2.0f && x[2] == 3.0f, "serial all-reduce changed data");
    EXPECT(&mc, dist_init_grid(&one, 1, 1, err, sizeof err) == 0, "serial grid: %s", err);

    int rc = mpi_check_finish(&mc, "allreduce");
    dist_finalize(&d);
    return rc;
}
