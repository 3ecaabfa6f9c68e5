// rope: fused rotary embedding of q and k, in place, fp32 CPU reference.
//
// One pass over tokens (OpenMP): for token n, cos and sin of every pair are
// computed once and applied to all H query and Hkv key heads. The angle is
// (double)inv_freq[i] * pos in double and cos/sin are evaluated in double, then
// rounded to float: more accurate than transformers, whose float32 angle
// p * inv_freq is off by up to |angle| * 2^-24 rad (~8e-3 at p = 131071).
// Backward is the same rotation by -angle (sin negated).
#include "rope.h"

#include <math.h>

#include "die.h"

// Pairs (x[i], x[i + half]).
static inline void rotate_half_layout(float *x, const float *c, const float *s, int half) {
    for (int i = 0; i < half; i++) {
        float x0 = x[i], x1 = x[i + half];
        x[i] = x0 * c[i] - x1 * s[i];
        x[i + half] = x1 * c[i] + x0 * s[i];
    }
}

// Pairs (x[2i], x[2i + 1]).
static inline void rotate_interleaved(float *x, const float *c, const float *s, int half) {
    for (int i = 0; i < half; i++) {
        float x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * c[i] - x1 * s[i];
        x[2 * i + 1] = x0 * s[i] + x1 * c[i];
    }
}

// x: (n_heads, D); rotates the first 2*half channels of each head.
static inline void rotate_heads(float *x, const float *c, const float *s, int half,
                                rope_layout layout, int n_heads, int D) {
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (int64_t)h * D;
        if (layout == ROPE_LAYOUT_HALF)
            rotate_half_layout(xh, c, s, half);
        else
            rotate_interleaved(xh, c, s, half);
    }
}

// q: (N, H, D), k: (N, Hkv, D). sin_sign = +1 forward, -1 backward (transpose).
static void rope_rotate(float *q, float *k, const int32_t *pos, const rope_table *t,
                        rope_layout layout, int64_t N, int H, int Hkv, int D, double sin_sign) {
    CHECK(t->n_pairs > 0 && t->n_pairs <= ROPE_MAX_PAIRS && t->rotary_dim == 2 * t->n_pairs);
    CHECK(t->rotary_dim <= D);
    CHECK(layout == ROPE_LAYOUT_HALF || layout == ROPE_LAYOUT_INTERLEAVED);
    CHECK(N >= 0 && H >= 0 && Hkv >= 0);
    CHECK((q != NULL || H == 0) && (k != NULL || Hkv == 0) && (pos != NULL || N == 0));
    const int half = t->n_pairs;
    const double a = t->attention_factor;

#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float c[ROPE_MAX_PAIRS], s[ROPE_MAX_PAIRS];
        const int32_t p = pos[n];
        const float *f = p < t->n_hat ? t->inv_freq_orig : t->inv_freq;
        for (int i = 0; i < half; i++) {
            double angle = (double)f[i] * (double)p;
            c[i] = (float)(a * cos(angle));
            s[i] = (float)(sin_sign * a * sin(angle));
        }
        if (H > 0) rotate_heads(q + n * H * D, c, s, half, layout, H, D);
        if (Hkv > 0) rotate_heads(k + n * Hkv * D, c, s, half, layout, Hkv, D);
    }
}

void rope_forward(float *q, float *k, const int32_t *pos, const rope_table *t, rope_layout layout,
                  int64_t N, int H, int Hkv, int D) {
    rope_rotate(q, k, pos, t, layout, N, H, Hkv, D, 1.0);
}

void rope_backward(float *dq, float *dk, const int32_t *pos, const rope_table *t,
                   rope_layout layout, int64_t N, int H, int Hkv, int D) {
    rope_rotate(dq, dk, pos, t, layout, N, H, Hkv, D, -1.0);
}
