// train_batch: this rank's part of a loader batch, as the model takes it:
// the whole rows (sp = 1), or their zig-zag slice (zigzag.h) under sequence
// parallelism; with a mixed RoPE table (LongRoPE2 mixed context windows,
// curr_stage_mixed) also the window flags of its tokens. The flags are
// computed on WHOLE rows (rope_windows: a document is long when its largest
// position + 1 exceeds short_len) and then sharded like the positions, so
// every rank holding a piece of a document rotates it with the same table.
//
// Tested by tests/mpi/test_model_grid.c (every dp x ring x ulysses grid with
// a mixed table against the 1-rank model, both batches made here) and
// tests/unit/test_curriculum.c (the flags of packed loader rows).
#pragma once

#include <stdint.h>

#include "loader.h"
#include "model.h"

typedef struct {
    int32_t *tokens, *targets, *pos, *seg;  // (B, T_local) when sp > 1
    uint8_t *win_rows, *win;  // window flags: of whole rows, of this rank's rows
    model_batch mb;           // what the model takes (points into db or the above)
} train_batch;

// Fills lb (start from {0}; reused across calls) from db for sp rank sp_rank
// of sp = ring x ulysses ranks. short_len: the model's rope table's (> 0: a
// mixed table, the batch then carries window flags; 0: none).
void train_batch_make(train_batch *lb, const data_batch *db, int sp, int ulysses, int sp_rank,
                      int64_t short_len);
void train_batch_free(train_batch *lb);
