// eval_needle: LongRoPE2's needle-driven loss. A fixed set of needle
// samples (passkey, data/passkey.h, and/or RULER-style tasks, data/task.h)
// of one length, and the NLL of their ANSWER tokens under a model: the
// loss at the positions that predict the answer, which only a model that
// retrieves the needle across the context can make small. Perplexity on
// text is dominated by local context; this is not. `stretch search
// --objective needle` scores rescale factors by it.
//
// The set is made once and is the same for every model it scores: sample k
// of n of a task sits at depth (k + 1/2) / n (evenly over the context; cwe
// and fwe have none) with the seed eval_task_seed(seed, task, T, depth),
// the passkey task being -1. Prompts are those `stretch eval passkey` /
// `eval tasks` use (answer_only targets), so the loss and the accuracy
// they report measure the same samples' kind.
//
// Tested by tests/unit/test_eval_needle.c: the loss against a direct
// forward's hidden states times lm_head with a float64 log-softmax at the
// answer positions found by the sample's own passkey_info / task_info;
// determinism and depths; the one-line errors.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eval.h"
#include "passkey.h"
#include "task.h"

#define EVAL_NEEDLE_PASSKEY (-1)  // the passkey task; the others are TASK_* ids
#define EVAL_NEEDLE_MAX_TASKS 16

typedef struct {
    int64_t T;           // tokens per sample
    int n;               // samples
    int32_t *tokens;     // (n, T) prompt + answer
    int32_t *targets;    // (n, T) answer ids where an answer token is predicted, else -1
    int64_t answer_tokens;  // targets >= 0 in all
} eval_needles;

// "passkey", or a task name (data/task.h) into *out; -1 when unknown.
int eval_needle_task_parse(const char *name, int *out);
// The name of a task id (EVAL_NEEDLE_PASSKEY: "passkey").
const char *eval_needle_task_name(int task);

// per_task samples of each of tasks (n_tasks) at length T. pk: the passkey
// prompt (encoder, compact...); env: the tasks' (encoder, haystack for the
// text tasks). 0, or -1 with a one-line message (a length too short for a
// sample, naming the task and what it needs; a haystack too short; an
// encoder failure); *out is then empty.
int eval_needles_make(eval_needles *out, const passkey_config *pk, const task_env *env, const int *tasks,
                      int n_tasks, int per_task, int64_t T, uint64_t seed, char *err, size_t errlen);
void eval_needles_free(eval_needles *nd);

// This rank's part of the answer-token NLL: sums[0] += the loss sum,
// sums[1] += the count. Collective over the ring as eval_nll (each rank
// its zig-zag slice of every sample); the caller sums over the ring. The
// model's capacity must hold this rank's rows of T tokens and its RoPE
// must be set for length T.
void eval_needle_nll(double sums[2], model *m, const eval_needles *nd, const eval_ring *ring);
