// embedding: token embedding lookup, out[n] = wte[tokens[n]].
// Tested by tests/ops/ops_embedding.c (ctest ops_check); the out-of-range
// token by tests/unit/test_ops_guards.c.
#pragma once

#include <stdint.h>

// out: (N, C); tokens: (N) in [0, V); wte: (V, C). Dies on an out-of-range token.
void embedding_forward(float *out, const int32_t *tokens, const float *wte, int64_t N,
                       int64_t C, int64_t V);

// Accumulates (+=) dwte[tokens[n]] += dout[n]. Deterministic (no atomics).
void embedding_backward(float *dwte, const float *dout, const int32_t *tokens, int64_t N,
                        int64_t C);
