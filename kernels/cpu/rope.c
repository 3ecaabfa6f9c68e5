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
#include <stdlib.h>

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
static void rope_rotate(float *q, float *k, const int32_t *pos, const uint8_t *win,
                        const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D,
                        double sin_sign) {
    CHECK(t->n_pairs > 0 && t->n_pairs <= ROPE_MAX_PAIRS && t->rotary_dim == 2 * t->n_pairs);
    CHECK(t->rotary_dim <= D);
    CHECK(layout == ROPE_LAYOUT_HALF || layout == ROPE_LAYOUT_INTERLEAVED);
    CHECK(N >= 0 && H >= 0 && Hkv >= 0);
    CHECK((q != NULL || H == 0) && (k != NULL || Hkv == 0) && (pos != NULL || N == 0));
    CHECK(t->short_len >= 0 && (t->short_len == 0 || win != NULL || N == 0));
    const int half = t->n_pairs;
    const double a = t->attention_factor;
    const uint8_t *w = t->short_len > 0 ? win : NULL;

#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float c[ROPE_MAX_PAIRS], s[ROPE_MAX_PAIRS];
        const int32_t p = pos[n];
        const float *f = w && w[n] == ROPE_WIN_SHORT ? t->inv_freq_short
                         : p < t->n_hat             ? t->inv_freq_orig
                                                    : t->inv_freq;
        for (int i = 0; i < half; i++) {
            double angle = (double)f[i] * (double)p;
            c[i] = (float)(a * cos(angle));
            s[i] = (float)(sin_sign * a * sin(angle));
        }
        if (H > 0) rotate_heads(q + n * H * D, c, s, half, layout, H, D);
        if (Hkv > 0) rotate_heads(k + n * Hkv * D, c, s, half, layout, Hkv, D);
    }
}

void rope_forward(float *q, float *k, const int32_t *pos, const uint8_t *win, const rope_table *t,
                  rope_layout layout, int64_t N, int H, int Hkv, int D) {
    rope_rotate(q, k, pos, win, t, layout, N, H, Hkv, D, 1.0);
}

void rope_backward(float *dq, float *dk, const int32_t *pos, const uint8_t *win,
                   const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D) {
    rope_rotate(dq, dk, pos, win, t, layout, N, H, Hkv, D, -1.0);
}

void rope_windows(uint8_t *win, const int32_t *pos, const int32_t *seg, int64_t B, int64_t T,
                  int64_t short_len) {
    CHECK(B >= 0 && T >= 0 && short_len > 0);
    // reach[s + 1]: the largest position + 1 of segment s (-1: padding) in the row
    int64_t *reach = xmalloc(sizeof(int64_t) * (size_t)(T + 1));
    for (int64_t b = 0; b < B; b++) {
        const int32_t *p = pos + b * T, *s = seg ? seg + b * T : NULL;
        for (int64_t i = 0; i <= T; i++) reach[i] = 0;
        for (int64_t i = 0; i < T; i++) {
            int64_t id = s ? s[i] : 0;
            CHECK(id >= -1 && id < T);
            if ((int64_t)p[i] + 1 > reach[id + 1]) reach[id + 1] = (int64_t)p[i] + 1;
        }
        for (int64_t i = 0; i < T; i++)
            win[b * T + i] = reach[(s ? s[i] : 0) + 1] > short_len ? ROPE_WIN_LONG : ROPE_WIN_SHORT;
    }
    free(reach);
}
