// eval: what a context-extension run is judged by: passkey retrieval
// accuracy at a length and depth, and validation loss at a sequence length.
//
// Passkey scoring is exact match of greedy decoding, computed in ONE forward
// pass: greedy decoding reproduces the answer iff, with the true answer
// prefix fed in (teacher forcing), the argmax at every answer position is
// the true next token. (If all are right, greedy follows the true path; at
// the first wrong one it leaves it.)
//
// Tested by tests/unit/test_eval.c (scoring against explicit greedy
// decoding on a tiny model) and by the demo run.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "passkey.h"

// How the sequence is split across a sequence-parallel ring: this rank holds
// the zig-zag slice sp_rank of sp (trainer/parallel/zigzag.h), and all() is true iff
// its argument is true on every rank of the ring. {1, 0, NULL, NULL}: one rank.
typedef struct {
    int sp, sp_rank;
    bool (*all)(void *ctx, bool local);
    void *ctx;
} eval_ring;

// Fraction of `trials` passkey samples of length T (needle at `depth`, or
// random when depth < 0) that the model answers exactly. Sample k uses seed
// seed + k. The model's capacity must hold this rank's rows of T tokens.
// Returns -1 with a message in err if samples cannot be made (T too short).
double eval_passkey(model *m, const passkey_config *pk, int64_t T, double depth, int trials,
                    uint64_t seed, const eval_ring *ring, char *err, size_t errlen);

// 1 iff greedy decoding reproduces the answer of a sample: every position
// with a target (>= 0; only the answer's, as task/passkey answer_only give)
// has it as the argmax, in one teacher-forced forward of the T tokens (on
// a ring: this rank's zig-zag slice, the verdict agreed by all()).
bool eval_answer_exact(model *m, const int32_t *tokens, const int32_t *targets, int64_t T,
                       const eval_ring *ring);

// Greedy continuation by repeated full forwards (slow; for tests and
// inspection): appends n_new tokens after prompt[0, n_prompt) into out.
void eval_greedy(int32_t *out, model *m, const int32_t *prompt, int64_t n_prompt, int64_t n_new);
