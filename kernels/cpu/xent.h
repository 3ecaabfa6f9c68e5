// xent: LM head + softmax cross-entropy, computed over chunks of tokens so
// the (N, V) logits never exist at once (at 128K tokens x 49K vocab they
// would be 25 GB). Forward and backward in one pass.
// Tested by tests/ops/ops_xent.c (ctest ops_check) against a float64
// full-logits version and finite differences; the out-of-range target by
// tests/unit/test_ops_guards.c.
#pragma once

#include <stdint.h>

// h: (N, C) final hidden states; w: (V, C) LM head; targets: (N), a target < 0
// is ignored (padding, or the last token of a sequence).
// Returns the SUM over valid tokens of -log softmax(h w^T)[target], in double.
// losses (N), if not NULL, receives each token's loss (0 where ignored).
// If dh != NULL, accumulates (+=) grad_scale * dSum/dh into dh (N, C) and
// grad_scale * dSum/dw into dw (V, C) (dw may be NULL for a frozen head).
// grad_scale is usually 1 / (number of valid tokens in the global batch).
double xent_forward_backward(float *losses, float *dh, float *dw, const float *h,
                             const float *w, const int32_t *targets, int64_t N, int64_t C,
                             int64_t V, float grad_scale);

// Logits of ONE token row: logits (V) = h (C) @ w (V, C)^T, for greedy decoding.
void xent_logits_row(float *logits, const float *h, const float *w, int64_t C, int64_t V);
