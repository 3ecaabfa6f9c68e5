// train_guard: a diverging run never trains on, nor saves, a non-finite
// state.
//  - A step whose loss or gradient norm is not finite (on any rank; the
//    ranks agree by a collective) is skipped: no AdamW update, the batch is
//    consumed, the step counts; metrics.jsonl gets "skipped": true and the
//    progress line the count.
//  - train.max_skipped_steps consecutive skips stop the run with
//    TRAIN_EXIT_DIVERGED and a line naming the step; no checkpoint is
//    written, so the last good ones stay (keep_last rotates nothing away).
//  - Before every checkpoint, every rank checks its parameters and AdamW
//    moments; if any is non-finite on any rank, none is written.
//
// Tested by tests/cli/test_reliability.sh (lr 1e6: skips, the stop, the
// good checkpoints intact and resumable).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dist.h"

typedef struct train_state train_state;

typedef struct {
    int consecutive;  // skipped steps in a row, up to now
    int64_t total;    // skipped steps in this process's run
} train_guard;

// True when loss and norm are finite on every rank. Collective.
bool train_guard_finite(dist_ctx *d, double loss, double norm);

// Records the verdict on the step just taken; true when it makes
// max_skipped consecutive skips (0: never stop).
bool train_guard_record(train_guard *g, bool skipped, int max_skipped);

// 0 when the parameters and the AdamW moments are finite on every rank,
// else -1 with a message naming a tensor and entry. Collective; pulls the
// backend's state to the host copies (what a checkpoint writes).
int train_guard_state_finite(train_state *st, char *err, size_t errlen);

// Every rank reaches this with the same status: rank 0 prints
// "stretch: error: msg", all finalize MPI and exit(status).
_Noreturn void train_guard_exit(train_state *st, int status, const char *msg);

// The line and the metrics of a skipped step (rank 0 prints).
void train_guard_report(train_state *st, double loss, double norm);

// After max_skipped_steps skips in a row: the line naming the step, exit
// TRAIN_EXIT_DIVERGED, no checkpoint. Collective.
_Noreturn void train_guard_stop(train_state *st);

// A checkpoint of the current state, only from finite values: a non-finite
// one exits TRAIN_EXIT_DIVERGED, a failed write (disk full, read-only
// directory) exits 1, both with one line and the earlier checkpoints as
// they were. Collective.
void train_guard_save(train_state *st);
