// swiglu: the Llama MLP gate, out = silu(gate) * up, silu(x) = x * sigmoid(x).
// Tested by tests/ops/ops_elementwise.c (ctest ops_check) against float64 and
// finite differences.
#pragma once

#include <stdint.h>

// out, gate, up: (n) elements (N * F).
void swiglu_forward(float *out, const float *gate, const float *up, int64_t n);

// Accumulates (+=) into dgate and dup.
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, int64_t n);
