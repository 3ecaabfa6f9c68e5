// attn_check: what the sequence-parallel attention tests share
// (test_ring_attn.c, test_ulysses_attn.c): a case's shape, seeded random
// inputs and packed-document segment ids, and the comparison of this rank's
// real zig-zag rows with the single-rank reference.
#pragma once

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "die.h"
#include "zigzag.h"

typedef struct {
    const char *name;
    int64_t B, T;
    int H, Hkv, D;
    bool causal, packed;
} attn_case;

// ---------------------------------------------------------------------------
// Data

static inline uint64_t next_u64(uint64_t *s) {  // splitmix64
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline float uniform(uint64_t *s) { return (float)((next_u64(s) >> 40) * 0x1p-24) * 2.0f - 1.0f; }

static inline float *random_floats(int64_t n, uint64_t *s) {
    float *x = xmalloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = 2.0f * uniform(s);
    return x;
}

// Documents of 1..20 tokens, ids 0, 1, 2, ... per sequence.
static inline int32_t *random_segments(int64_t B, int64_t T, uint64_t *s) {
    int32_t *seg = xmalloc(sizeof(int32_t) * (size_t)(B * T));
    for (int64_t b = 0; b < B; b++) {
        int32_t id = 0;
        int64_t left = 1 + (int64_t)(next_u64(s) % 20);
        for (int64_t t = 0; t < T; t++) {
            if (left-- == 0) {
                id++;
                left = (int64_t)(next_u64(s) % 20);
            }
            seg[b * T + t] = id;
        }
    }
    return seg;
}

// ---------------------------------------------------------------------------
// Comparison of this rank's real rows

typedef struct {
    double err, ref;  // max abs error over own rows, max abs reference value
    int64_t rows;     // real rows compared
} cmp;

// global_ref: (B, T, W); local: (B, TL, W) this rank's rows.
static inline cmp compare_rows(const float *global_ref, const float *local, int64_t B, int64_t W,
                        const zigzag_layout *z) {
    cmp c = {0, 0, 0};
    for (int64_t i = 0; i < B * z->T * W; i++) c.ref = fmax(c.ref, fabs(global_ref[i]));
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < z->T_local; l++) {
            int64_t g = zigzag_global_row(z, l);
            if (g >= z->T) continue;
            c.rows++;
            for (int64_t w = 0; w < W; w++) {
                double e = fabs((double)local[(b * z->T_local + l) * W + w] -
                                global_ref[(b * z->T + g) * W + w]);
                c.err = fmax(c.err, isnan(e) ? INFINITY : e);
            }
        }
    return c;
}
