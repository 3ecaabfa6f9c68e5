// rope: fused rotary position embedding applied to q and k in place, forward
// and backward, fp32 CPU reference.
//
// Legend: N tokens (all sequences of a batch, flattened), H query heads,
// Hkv key/value heads, D head dim, d = t->rotary_dim <= D rotated channels.
// Channels d..D-1 of each head pass through unchanged (partial rotary).
// Token n is rotated by angle pos[n] * f[i] for pair i, with f = inv_freq_orig
// when pos[n] < t->n_hat and inv_freq otherwise, except that with a mixed
// table (t->short_len > 0) a token whose window flag win[n] is
// ROPE_WIN_SHORT uses inv_freq_short at every position; cos and sin are
// multiplied by t->attention_factor. The angle and cos/sin are computed in double from the
// float inv_freq (transformers uses a float32 angle). Positions are explicit so
// packed documents restart at 0 and sequence-parallel shards keep their global
// positions.
//
// Tested by tests/unit/test_rope.c: the apply example of rope_vectors.json
// (both layouts), backward against finite differences and against the
// transpose identity, partial rotary, n_hat, and mixed windows (per-token
// tables against a naive rotation, finite differences, rope_windows on
// packed rows).
#pragma once

#include <stdint.h>

#include "rope_scaling.h"

// q: (N, H, D), k: (N, Hkv, D), pos: (N), win: (N) window flags, required
// by a mixed table and ignored (may be NULL) otherwise. Rotates in place.
void rope_forward(float *q, float *k, const int32_t *pos, const uint8_t *win, const rope_table *t,
                  rope_layout layout, int64_t N, int H, int Hkv, int D);

// dq: (N, H, D), dk: (N, Hkv, D) hold dL/d(rotated); on return they hold
// dL/d(unrotated): the transpose rotation (angle -theta), in place.
void rope_backward(float *dq, float *dk, const int32_t *pos, const uint8_t *win,
                   const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv, int D);

// The window flags of a (B, T) batch for a mixed table of short_len: a token
// is ROPE_WIN_LONG when its document (the tokens of its row with its seg id;
// seg NULL: the whole row) reaches max(pos) + 1 > short_len, else
// ROPE_WIN_SHORT: transformers' longrope rule for a sequence (long factors
// once max(position_ids) + 1 exceeds the original context), applied to each
// packed document. Positions are global, so the flags of a row are the same
// whichever sequence-parallel rank later holds each token: compute them on
// whole rows, then shard them with the positions. seg ids lie in [-1, T).
void rope_windows(uint8_t *win, const int32_t *pos, const int32_t *seg, int64_t B, int64_t T,
                  int64_t short_len);
