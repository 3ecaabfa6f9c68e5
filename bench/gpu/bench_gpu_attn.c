// bench_gpu_attn: times cu_attn_forward and cu_attn_backward (bf16, causal,
// GQA, B = 1) at sequence 4K..32K for D = 128 (H 16 / Hkv 4) and D = 64
// (H 32 / Hkv 8), one causal document and packed 2K-token documents
// (segment ids t / 2048, document bounds built once outside the timing, as
// the backend does per batch): median of REPS runs by CUDA events after
// WARMUP runs, and TFLOP/s by the usual count over the visible pairs
// (forward 4 H D per pair, backward 2.5x; our deterministic backward does
// 1.4x the products that count assumes). Random inputs, never zeros. Exits
// 77 without a GPU.
//   bench_gpu_attn [max_T]
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_attn.h"
#include "die.h"

enum { WARMUP = 3, REPS = 10, DOC = 2048 };

static uint64_t rng = 0x1234567ull;
static uint16_t rand_bf16(void) {  // uniform in [-1, 1) as bf16
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    float f = 2.0f * (float)(rng >> 40) / 16777216.0f - 1.0f;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static void *dev_rand_bf16(int64_t n) {
    uint16_t *h = xmalloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) h[i] = rand_bf16();
    void *d = NULL;
    CU_CHECK(cudaMalloc(&d, (size_t)n * 2));
    CU_CHECK(cudaMemcpy(d, h, (size_t)n * 2, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct {
    void *out, *q, *k, *v, *dout;
    void *dq, *dk, *dv;  // bf16 gradients, as the trainer's
    float *lse, *delta, *dq_acc;
    int32_t *dq_sem;
    attn_shape s;
    const cu_attn_docs *docs;  // NULL: one document
} bench_bufs;

static void run(const bench_bufs *b, int backward) {
    if (backward)
        cu_attn_backward(b->dq, b->dk, b->dv, b->dout, b->q, b->k, b->v, b->out, b->lse, b->delta,
                         b->dq_acc, b->dq_sem, b->docs, &b->s, CU_BF16, 0);
    else
        cu_attn_forward(b->out, b->lse, b->q, b->k, b->v, b->docs, &b->s, CU_BF16, 0);
}

static float median_ms(const bench_bufs *b, int backward) {
    cudaEvent_t e0, e1;
    CU_CHECK(cudaEventCreate(&e0));
    CU_CHECK(cudaEventCreate(&e1));
    for (int i = 0; i < WARMUP; i++) run(b, backward);
    float t[REPS];
    for (int i = 0; i < REPS; i++) {
        CU_CHECK(cudaEventRecord(e0, 0));
        run(b, backward);
        CU_CHECK(cudaEventRecord(e1, 0));
        CU_CHECK(cudaEventSynchronize(e1));
        CU_CHECK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    CU_CHECK(cudaEventDestroy(e0));
    CU_CHECK(cudaEventDestroy(e1));
    qsort(t, REPS, sizeof t[0], cmp_float);
    return t[REPS / 2];
}

int main(int argc, char **argv) {
    if (cu_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    int64_t max_T = argc > 1 ? atoll(argv[1]) : 32768;
    struct cudaDeviceProp prop;
    CU_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, bf16, causal, GQA, B=1; median of %d (CUDA events)\n", prop.name, REPS);
    printf("%4s %6s %6s %5s | %9s %7s | %9s %7s\n", "D", "T", "H/Hkv", "docs", "fwd ms", "TFLOP/s",
           "bwd ms", "TFLOP/s");
    for (int D = 128; D >= 64; D /= 2) {
        const int H = D == 128 ? 16 : 32, Hkv = H / 4;
        for (int64_t T = 4096; T <= max_T; T *= 2) {
            bench_bufs b = {0};
            b.s = (attn_shape){.B = 1, .Tq = T, .Tk = T, .H = H, .Hkv = Hkv, .D = D,
                               .scale = 1.0f / sqrtf((float)D), .causal = true};
            const int64_t nq = T * H * D, nk = T * Hkv * D;
            b.q = dev_rand_bf16(nq);
            b.k = dev_rand_bf16(nk);
            b.v = dev_rand_bf16(nk);
            b.dout = dev_rand_bf16(nq);
            CU_CHECK(cudaMalloc(&b.out, (size_t)nq * 2));
            CU_CHECK(cudaMalloc((void **)&b.lse, sizeof(float) * (size_t)(H * T)));
            CU_CHECK(cudaMalloc((void **)&b.delta, sizeof(float) * (size_t)(H * T)));
            CU_CHECK(cudaMalloc(&b.dq, (size_t)nq * 2));
            CU_CHECK(cudaMalloc(&b.dk, (size_t)nk * 2));
            CU_CHECK(cudaMalloc(&b.dv, (size_t)nk * 2));
            CU_CHECK(cudaMemset(b.dq, 0, (size_t)nq * 2));
            CU_CHECK(cudaMemset(b.dk, 0, (size_t)nk * 2));
            CU_CHECK(cudaMemset(b.dv, 0, (size_t)nk * 2));
            CU_CHECK(cudaMalloc((void **)&b.dq_acc, sizeof(float) * (size_t)nq));
            CU_CHECK(cudaMalloc((void **)&b.dq_sem,
                                sizeof(int32_t) * (size_t)cu_attn_dq_sem_ints(&b.s)));
            // Packed 2K-token documents: ids t / 2048 and their bounds.
            int32_t *h_seg = xmalloc(sizeof(int32_t) * (size_t)T);
            for (int64_t t = 0; t < T; t++) h_seg[t] = (int32_t)(t / DOC);
            int32_t *d_seg = NULL, *d_bounds = NULL;
            CU_CHECK(cudaMalloc((void **)&d_seg, sizeof(int32_t) * (size_t)T));
            CU_CHECK(cudaMemcpy(d_seg, h_seg, sizeof(int32_t) * (size_t)T, cudaMemcpyHostToDevice));
            CU_CHECK(cudaMalloc((void **)&d_bounds,
                                sizeof(int32_t) * (size_t)cu_attn_docs_ints(1, T, T)));
            cu_attn_docs docs = {.seg_q = d_seg, .seg_k = d_seg, .bounds = d_bounds};
            cu_attn_docs_build(&docs, 1, T, T, 0);
            for (int packed = 0; packed <= 1; packed++) {
                b.docs = packed ? &docs : NULL;
                const double len = packed ? DOC : (double)T, pairs = T / len * len * (len + 1) / 2;
                float tf = median_ms(&b, 0), tb = median_ms(&b, 1);
                double ff = 4.0 * H * pairs * D, fb = 2.5 * ff;
                printf("%4d %6lld %3d/%-2d %5s | %9.3f %7.1f | %9.3f %7.1f\n", D, (long long)T, H,
                       Hkv, packed ? "2K" : "1", tf, ff / tf / 1e9, tb, fb / tb / 1e9);
            }
            free(h_seg);
            CU_CHECK(cudaFree(d_seg));
            CU_CHECK(cudaFree(d_bounds));
            CU_CHECK(cudaFree(b.q));
            CU_CHECK(cudaFree(b.k));
            CU_CHECK(cudaFree(b.v));
            CU_CHECK(cudaFree(b.dout));
            CU_CHECK(cudaFree(b.out));
            CU_CHECK(cudaFree(b.lse));
            CU_CHECK(cudaFree(b.delta));
            CU_CHECK(cudaFree(b.dq));
            CU_CHECK(cudaFree(b.dk));
            CU_CHECK(cudaFree(b.dv));
            CU_CHECK(cudaFree(b.dq_acc));
            CU_CHECK(cudaFree(b.dq_sem));
        }
    }
    return 0;
}
