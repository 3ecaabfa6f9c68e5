// rope: fused rotary position embedding applied to q and k in place, forward
// and backward, fp32 CPU reference.
//
// Legend: N tokens (all sequences of a batch, flattened), H query heads,
// Hkv key/value heads, D head dim, d = t->rotary_dim <= D rotated channels.
// Channels d..D-1 of each head pass through unchanged (partial rotary).
// Token n is rotated by angle pos[n] * f[i] for pair i, with f = inv_freq_orig
// when pos[n] < t->n_hat and inv_freq otherwise; cos and sin are multiplied
// by t->attention_factor. The angle and cos/sin are computed in double from the
// float inv_freq (transformers uses a float32 angle). Positions are explicit so
// packed documents restart at 0 and sequence-parallel shards keep their global
// positions.
//
// Tested by tests/unit/test_rope.c: the apply example of rope_vectors.json
// (both layouts), backward against finite differences and against the
// transpose identity, partial rotary and n_hat.
#pragma once

#include <stdint.h>

#include "rope_scaling.h"

// q: (N, H, D), k: (N, Hkv, D), pos: (N). Rotates in place.
void rope_forward(float *q, float *k, const int32_t *pos, const rope_table *t,
                  rope_layout layout, int64_t N, int H, int Hkv, int D);

// dq: (N, H, D), dk: (N, Hkv, D) hold dL/d(rotated); on return they hold
// dL/d(unrotated): the transpose rotation (angle -theta), in place.
void rope_backward(float *dq, float *dk, const int32_t *pos, const rope_table *t,
                   rope_layout layout, int64_t N, int H, int Hkv, int D);
