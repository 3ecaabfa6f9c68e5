// train_estimate: `stretch train RUN.yaml --dry-run --estimate`, the run's
// duration from measured steps. After the full set-up and preflight (the
// real model on the run's backend and grid), every stage takes one warm-up
// step and TRAIN_ESTIMATE_STEPS timed ones (forward, backward, gradient
// reduction, AdamW: train_step_run) on its own rows (seq_len, batch, RoPE,
// loader settings), the median taken; the evaluation a stage end runs (validation loss,
// passkey table, the gate) is timed from one forward per length. Rank 0
// prints per stage the seconds per step, tokens/s, the steps (and the
// gate's extra steps at most), the stage's training and evaluation time,
// then the whole run's ETA (from the step of the checkpoint the run would
// resume from: finished stages left out) (and its upper bound with every gate extended
// to its max_extra_tokens). The weights stepped here are thrown away:
// nothing is written in train.out_dir. eval.tasks are not timed.
//
// Tested by tests/cli/test_ux_estimate.sh.
#pragma once

typedef struct train_state train_state;

#define TRAIN_ESTIMATE_STEPS 5

// Collective; every rank steps, rank 0 prints.
void train_estimate(train_state *st);
