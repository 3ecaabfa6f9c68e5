// bench_attn: CPU flash attention forward and backward, causal, B=1, H=6,
// Hkv=2, D=64 (or the second argument), for T = 1024 ... max_T (8192). Prints
// the time of each (best of 3 runs up to T=2048, one run above), its ratio to
// the T=1024 time (causal work grows 4x per doubling of T) and GFLOP/s of the
// matmuls only: forward 2 of them, 2*2*B*H*T*T*D/2 flops under the causal
// mask; backward 5 of them, 2.5x that.
// Usage: bench_attn [max_T [D]]   (threads from OMP_NUM_THREADS)
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "die.h"

static void fill(float *x, int64_t n, uint64_t seed) {
    uint64_t st = seed;
    for (int64_t i = 0; i < n; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((st >> 40) / 16777216.0 * 2.0 - 1.0);
    }
}

// Best wall time in ms of `reps` runs of forward (bwd = 0) or backward.
static double time_ms(int bwd, int reps, float *out, float *lse, float *dq, float *dk, float *dv,
                      const float *dout, const float *q, const float *k, const float *v,
                      const attn_shape *s) {
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
        if (bwd)
            attn_backward(dq, dk, dv, dout, q, k, v, out, lse, NULL, NULL, s);
        else
            attn_forward(out, lse, q, k, v, NULL, NULL, s);
        double t = (omp_get_wtime() - t0) * 1e3;
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv) {
    const int64_t max_T = argc > 1 ? atoll(argv[1]) : 8192;
    const int64_t B = 1;
    const int H = 6, Hkv = 2, D = argc > 2 ? atoi(argv[2]) : 64;
    CHECK(max_T >= 1024 && D > 0);
    printf("attn causal  B=%lld H=%d Hkv=%d D=%d  threads=%d\n", (long long)B, H, Hkv, D,
           omp_get_max_threads());
    printf("%6s | %10s %7s %8s | %10s %7s %8s\n", "T", "fwd ms", "ratio", "GFLOP/s", "bwd ms",
           "ratio", "GFLOP/s");
    double fwd_ref = 0.0, bwd_ref = 0.0;
    for (int64_t T = 1024; T <= max_T; T *= 2) {
        attn_shape s = {.B = B,
                        .Tq = T,
                        .Tk = T,
                        .H = H,
                        .Hkv = Hkv,
                        .D = D,
                        .scale = 1.0f / sqrtf((float)D),
                        .causal = true};
        size_t nq = (size_t)(B * T * H * D), nk = (size_t)(B * T * Hkv * D);
        float *q = xmalloc(nq * sizeof(float)), *dout = xmalloc(nq * sizeof(float));
        float *out = xmalloc(nq * sizeof(float)), *dq = xcalloc(nq, sizeof(float));
        float *k = xmalloc(nk * sizeof(float)), *v = xmalloc(nk * sizeof(float));
        float *dk = xcalloc(nk, sizeof(float)), *dv = xcalloc(nk, sizeof(float));
        float *lse = xmalloc((size_t)(B * H * T) * sizeof(float));
        fill(q, (int64_t)nq, 1);
        fill(k, (int64_t)nk, 2);
        fill(v, (int64_t)nk, 3);
        fill(dout, (int64_t)nq, 4);
        int reps = T <= 2048 ? 3 : 1;
        time_ms(0, 1, out, lse, dq, dk, dv, dout, q, k, v, &s);  // warm-up
        double f = time_ms(0, reps, out, lse, dq, dk, dv, dout, q, k, v, &s);
        double b = time_ms(1, reps, out, lse, dq, dk, dv, dout, q, k, v, &s);
        if (T == 1024) {
            fwd_ref = f;
            bwd_ref = b;
        }
        double flops = 2.0 * 2.0 * (double)B * H * (double)T * (double)T * D / 2.0;
        printf("%6lld | %10.1f %7.2f %8.1f | %10.1f %7.2f %8.1f\n", (long long)T, f, f / fwd_ref,
               flops / f * 1e-6, b, b / bwd_ref, 2.5 * flops / b * 1e-6);
        fflush(stdout);
        free(q);
        free(dout);
        free(out);
        free(dq);
        free(k);
        free(v);
        free(dk);
        free(dv);
        free(lse);
    }
    return 0;
}
