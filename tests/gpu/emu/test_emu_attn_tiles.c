// test_emu_attn_tiles: how many tiles the bf16 attention kernels compute on
// long packed batches, against how many they must. The document bounds come
// from the real cu_attn_docs_build kernel (emulated GPU); the tiles computed
// are the kernels' own loop lengths, evaluated on the host by
// emu_attn_plan_tiles from the same span helpers (tests/gpu/test_gpu_attn.c
// checks on the emulated GPU that the kernels' tile counters equal this
// plan). Needed tiles are counted independently, from each row's visible
// keys found by scanning the segment ids: a (query tile, key tile) of a
// kernel's own grid is needed when it holds one visible element.
//
// Batches (causal, whole attention, B = 1): 128K tokens of 2K-token
// documents; 128K tokens of documents of random lengths (mean ~2K) with 3K
// tokens of padding (-1) last; 32K tokens of 256-token documents. Target:
// computed / needed <= 1.05 for the forward and the backward at D = 64 and
// 128.
// Also printed: what the loops bounded by the causal horizon alone (before
// document bounds) computed.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cu_attn.h"
#include "die.h"

void emu_attn_plan_tiles(const attn_shape *s, const int32_t *bounds, uint64_t out[2]);
void emu_attn_tile_shapes(int D, int rows[2], int cols[2]);

static int failures;

// Visible keys of query row i (whole causal attention): [ds, i + 1) within
// its document, found by scanning (ds: the first row of the run of ids).
static void row_keys(const int32_t *seg, int64_t T, int64_t *lo, int64_t *hi) {
    int64_t start = 0;
    for (int64_t i = 0; i < T; i++) {
        if (i > 0 && seg[i] != seg[i - 1]) start = i;
        lo[i] = start;
        hi[i] = i + 1;
    }
}

// Tiles of (rows of `rt` rows) x (cols of `ct` columns) that hold a visible
// element, rows r seeing columns [lo[r], hi[r]).
static uint64_t needed_tiles(const int64_t *lo, const int64_t *hi, int64_t n_rows,
                             int64_t n_cols, int rt, int ct) {
    const int64_t n_ct = (n_cols + ct - 1) / ct;
    int64_t *stamp = xmalloc(sizeof(int64_t) * (size_t)n_ct);
    for (int64_t c = 0; c < n_ct; c++) stamp[c] = -1;
    uint64_t n = 0;
    for (int64_t r0 = 0; r0 < n_rows; r0 += rt)
        for (int64_t r = r0; r < r0 + rt && r < n_rows; r++)
            for (int64_t c = lo[r] / ct; hi[r] > lo[r] && c <= (hi[r] - 1) / ct; c++)
                if (stamp[c] != r0) {
                    stamp[c] = r0;
                    n++;
                }
    free(stamp);
    return n;
}

static void run(const char *name, const int32_t *seg, int64_t T) {
    int32_t *d_seg = NULL, *d_bounds = NULL;
    const int64_t n_b = cu_attn_docs_ints(1, T, T);
    CU_CHECK(cudaMalloc((void **)&d_seg, sizeof(int32_t) * (size_t)T));
    CU_CHECK(cudaMalloc((void **)&d_bounds, sizeof(int32_t) * (size_t)n_b));
    CU_CHECK(cudaMemcpy(d_seg, seg, sizeof(int32_t) * (size_t)T, cudaMemcpyHostToDevice));
    cu_attn_docs docs = {.seg_q = d_seg, .seg_k = d_seg, .bounds = d_bounds};
    cu_attn_docs_build(&docs, 1, T, T, 0);
    int32_t *bounds = xmalloc(sizeof(int32_t) * (size_t)n_b);
    CU_CHECK(cudaMemcpy(bounds, d_bounds, sizeof(int32_t) * (size_t)n_b, cudaMemcpyDeviceToHost));

    // Query rows' keys; key rows' queries (the transpose: key j is seen by
    // the queries [j, end of its document)).
    int64_t *qlo = xmalloc(sizeof(int64_t) * (size_t)T), *qhi = xmalloc(sizeof(int64_t) * (size_t)T);
    int64_t *klo = xmalloc(sizeof(int64_t) * (size_t)T), *khi = xmalloc(sizeof(int64_t) * (size_t)T);
    row_keys(seg, T, qlo, qhi);
    int64_t end = T;
    for (int64_t j = T - 1; j >= 0; j--) {
        if (j < T - 1 && seg[j] != seg[j + 1]) end = j + 1;
        klo[j] = j;
        khi[j] = end;
    }
    for (int D = 64; D <= 128; D *= 2) {
        int rows[2], cols[2];  // each kernel's tile: fwd 128 x 64, bwd BKV keys x BQ queries
        emu_attn_tile_shapes(D, rows, cols);
        const attn_shape s = {.B = 1, .Tq = T, .Tk = T, .H = 1, .Hkv = 1, .D = D,
                              .scale = 1.0f / sqrtf((float)D), .causal = true};
        uint64_t plan[2], need[2], causal_only[2] = {0, 0};
        emu_attn_plan_tiles(&s, bounds, plan);
        for (int kk = 0; kk < 2; kk++) {
            const bool keys = kk == 1;  // backward: rows are keys, columns queries
            need[kk] = needed_tiles(keys ? klo : qlo, keys ? khi : qhi, T, T, rows[kk], cols[kk]);
            // The loops bounded by the causal horizon only (before document bounds).
            for (int64_t r0 = 0; r0 < T; r0 += rows[kk]) {
                const int64_t end = r0 + rows[kk] < T ? r0 + rows[kk] : T;
                causal_only[kk] += keys ? (uint64_t)((T - r0 / cols[kk] * cols[kk] + cols[kk] - 1) / cols[kk])
                                        : (uint64_t)((end + cols[kk] - 1) / cols[kk]);
            }
        }
        double r[2];
        bool ok = plan[0] > 0 && plan[1] > 0;
        for (int kk = 0; kk < 2; kk++) {
            r[kk] = (double)plan[kk] / (double)need[kk];
            ok &= r[kk] <= 1.05;
        }
        failures += !ok;
        printf("%-30s D=%-3d computed / needed: fwd (%dx%d) %llu / %llu = %.3f, bwd (%dx%d) "
               "%llu / %llu = %.3f; causal-only loops: fwd %.1fx, bwd %.1fx  %s\n",
               name, D, rows[0], cols[0], (unsigned long long)plan[0], (unsigned long long)need[0],
               r[0], rows[1], cols[1], (unsigned long long)plan[1], (unsigned long long)need[1],
               r[1], (double)causal_only[0] / need[0], (double)causal_only[1] / need[1],
               ok ? "ok" : "FAIL");
    }
    free(qlo), free(qhi), free(klo), free(khi), free(bounds);
    CU_CHECK(cudaFree(d_seg));
    CU_CHECK(cudaFree(d_bounds));
}

int main(void) {
    const int64_t T = 128 * 1024;
    int32_t *seg = xmalloc(sizeof(int32_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) seg[t] = (int32_t)(t / 2048);
    run("128K, 2K-token documents", seg, T);

    uint64_t x = 0x9e3779b97f4a7c15ull;
    int64_t t = 0;
    for (int32_t doc = 0; t < T - 3072; doc++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t len = 64 + (int64_t)(x % 3969);  // 64 .. 4032, mean ~2K
        for (int64_t i = 0; i < len && t < T - 3072; i++) seg[t++] = doc;
    }
    for (; t < T; t++) seg[t] = -1;
    run("128K, random lengths, padding", seg, T);

    for (int64_t u = 0; u < 32768; u++) seg[u] = (int32_t)(u / 256);
    run("32K, 256-token documents", seg, 32768);
    free(seg);
    printf("%s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
