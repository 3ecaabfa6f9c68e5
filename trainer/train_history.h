// train_history: what earlier sessions of a run left in its metrics.jsonl,
// read when a run starts so that a resumed run reports the whole run:
// the passkey and perplexity rows after each finished stage (the end-of-run
// tables show their real numbers, not zeros), which stages already had their stage-end
// evaluation (a finished run started again does not evaluate and log them a
// second time), and the last loss and validation loss.
//
// Tested by tests/cli/test_ux.sh (resume, re-run of a finished run).
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "run_config.h"

typedef struct {
    int n_lengths;
    double *acc;                        // (CFG_MAX_STAGES, n_lengths): after-stage passkey accuracy
    int n_ppl_lengths;
    double *nll;                        // (CFG_MAX_STAGES, n_ppl_lengths): after-stage held-out NLL; NAN: none
    bool stage_done[CFG_MAX_STAGES];    // a "stage_end" row exists for the stage
    double last_loss, last_val_loss;    // NAN: none
    int64_t last_loss_step, last_val_step;
} train_history;

// Reads path (a missing file is an empty history). lengths:
// eval.passkey_lengths, ppl_lengths: eval.ppl_lengths.
void train_history_read(train_history *h, const char *path, const int64_t *lengths, int n_lengths,
                        const int64_t *ppl_lengths, int n_ppl_lengths);
void train_history_free(train_history *h);
