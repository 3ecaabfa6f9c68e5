// gpu_check: shared by the GPU tests: a tiny Llama the cuda attention
// supports (head dim 64 or 128, tied or untied embeddings), a packed batch,
// and per-tensor relative errors. Exit 77 = skipped.
#pragma once

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

// Under the CPU emulator (tests/gpu/emu, STRETCH_GPU_EMU) the sequences are
// shorter, with documents still crossing every zig-zag chunk boundary of 2
// and 4 ranks: the fp32 attention kernels cost seconds per call there.
#ifdef STRETCH_GPU_EMU
enum { GB = 2, GT = 48, GVOCAB = 97, GDOC0 = 13, GDOC_B = 5, GDOC = 9 };
#else
enum { GB = 2, GT = 128, GVOCAB = 97, GDOC0 = 37, GDOC_B = 11, GDOC = 29 };
#endif

// dim 128, 2 layers: head_dim 64 (4 heads / 2 kv heads) or 128 (1 / 1).
static inline model_config gpu_tiny_config_of(int head_dim, bool tied) {
    model_config c = {.dim = 128, .n_layers = 2, .n_heads = 128 / head_dim,
                      .n_kv_heads = head_dim == 64 ? 2 : 1, .head_dim = head_dim,
                      .ffn_dim = 192, .vocab_size = GVOCAB, .norm_eps = 1e-5f,
                      .tie_embeddings = tied, .rope_layout = ROPE_LAYOUT_HALF};
    c.rope = rope_config_default(head_dim);
    c.rope.max_position_embeddings = GT;
    return c;
}
static inline model_config gpu_tiny_config(void) { return gpu_tiny_config_of(64, false); }

typedef struct {
    int32_t tokens[GB * GT], targets[GB * GT], pos[GB * GT], seg[GB * GT];
    int64_t n_targets;
    model_batch b;
} gpu_batch;

// Sequence b packs documents of lengths 37 + 11 b, 29, ... (emulator: 13 +
// 5 b, 9, ...), crossing every zig-zag chunk boundary of 2 and 4 ranks;
// tokens from a seeded LCG.
static inline void gpu_make_batch(gpu_batch *x, uint32_t seed) {
    x->n_targets = 0;
    uint32_t s = seed;
    for (int b = 0; b < GB; b++) {
        int doc = 0, start = 0, len = GDOC0 + GDOC_B * b;
        for (int t = 0; t < GT; t++) {
            if (t - start == len) {
                doc++;
                start = t;
                len = GDOC;
            }
            int n = b * GT + t;
            s = s * 1664525u + 1013904223u;
            x->tokens[n] = (int32_t)((s >> 8) % GVOCAB);
            x->pos[n] = t - start;
            x->seg[n] = doc;
        }
        for (int t = 0; t < GT; t++) {
            int n = b * GT + t;
            int last = t == GT - 1 || x->seg[n + 1] != x->seg[n];
            x->targets[n] = last ? -1 : x->tokens[n + 1];
            x->n_targets += !last;
        }
    }
    x->b = (model_batch){.B = GB, .T = GT, .tokens = x->tokens, .targets = x->targets,
                         .pos = x->pos, .seg = x->seg};
}

// Worst per-tensor relative L2 error ||a - b|| / ||b|| (NaN counts as huge);
// *which gets the tensor's index.
static inline double gpu_worst_rel_l2(const model *m, const float *a, const float *b, int *which) {
    double worst = 0;
    *which = -1;
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        double d2 = 0, r2 = 0;
        for (int64_t j = 0; j < t->shape[0] * t->shape[1]; j++) {
            double d = (double)a[t->offset + j] - b[t->offset + j];
            d2 += d * d;
            r2 += (double)b[t->offset + j] * b[t->offset + j];
        }
        double rel = isnan(d2) ? INFINITY : (r2 > 0 ? sqrt(d2 / r2) : sqrt(d2));
        if (rel > worst || isinf(rel)) {
            worst = rel;
            *which = i;
        }
    }
    return worst;
}

// A failed check of a multi-rank test: printed with the rank and counted in
// the including file's own `failures` and `rank_` (static ints there).
#define GPU_EXPECT(cond, ...)                                    \
    do {                                                         \
        if (!(cond)) {                                           \
            printf("rank %d FAIL: ", rank_);                     \
            printf(__VA_ARGS__);                                 \
            printf("\n");                                        \
            failures++;                                          \
        }                                                        \
    } while (0)
