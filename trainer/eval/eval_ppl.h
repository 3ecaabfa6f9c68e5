// eval_ppl: perplexity at a context length on held-out token shards.
//
// A window of length T is T + 1 consecutive tokens of ONE document: the
// model reads tokens [0, T) at positions 0..T-1 and predicts tokens
// [1, T + 1). Windows never cross documents, so a scored token's context is
// real text of that document (the trainer also never attends across
// documents). Two ways to cut them:
//   non-overlapping  starts 0, T, 2T, ... of every long enough document; all
//                    T predictions are scored;
//   sliding          starts 0, S, 2S, ... (stride S <= T); only the last S
//                    predictions of each window are scored, so every scored
//                    token sees at least T - S tokens of context.
// Of all the windows of a length, n_max are taken evenly spaced over the
// data (index floor((k + 1/2) * count / n_max)), so the sample depends only
// on the data, T, S and n_max: the same for every checkpoint.
//
// Tested by tests/unit/test_eval_ppl.c (window enumeration and sampling
// against a brute-force listing; the scored NLL against per-token losses of
// model_forward on each window) and tests/cli/test_eval.sh.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eval.h"
#include "model.h"
#include "shard.h"

// Held-out text: the documents of one or more token shards (mmap'd).
typedef struct {
    int n;              // shards
    shard *shards;      // (n)
    int64_t vocab_size; // the largest of the shards'
    int64_t longest;    // tokens of the longest document
} eval_text;

// 0, or -1 with a message naming the shard.
int eval_text_open(eval_text *t, const char *const *paths, int n, char *err, size_t errlen);
void eval_text_close(eval_text *t);

typedef struct {
    int shard;          // index into eval_text.shards
    int64_t start;      // first token, index into that shard's token array
} eval_window;

// The windows of length T and stride (T: non-overlapping, < T: sliding), at
// most n_max of them, evenly spaced: out: (returned count) malloc'd, or NULL
// when no document holds T + 1 tokens (returns 0).
int64_t eval_windows(eval_window **out, const eval_text *t, int64_t T, int64_t stride, int64_t n_max);

// NLL of the windows under the model, this rank's part: sums[0] += the loss
// sum of the scored predictions, sums[1] += their count (the last `scored`
// predictions of each window, scored <= T). Collective over the ring (each
// rank holds its zig-zag slice of every window); the caller sums over the
// ring. The model's capacity must hold this rank's rows of T tokens and
// its RoPE must be set for length T.
void eval_nll(double sums[2], model *m, const eval_text *t, const eval_window *w, int64_t n_windows,
              int64_t T, int64_t scored, const eval_ring *ring);
