// swiglu: silu(gate) * up, elementwise. See swiglu.h.
#include "swiglu.h"

#include <math.h>

// 1 / (1 + e^-x) without overflow of e^-x for very negative x.
static inline float sigmoid(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// d silu(g)/dg = s + g s (1 - s), s = sigmoid(g).
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoid(g);
        dgate[i] += dout[i] * up[i] * (s + g * s * (1.0f - s));
        dup[i] += dout[i] * g * s;
    }
}
