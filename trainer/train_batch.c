// train_batch: a loader batch as this rank's model batch (train_batch.h).
#include "train_batch.h"

#include <stdlib.h>

#include "die.h"
#include "rope.h"
#include "zigzag.h"

void train_batch_make(train_batch *lb, const data_batch *db, int sp, int ulysses, int sp_rank,
                      int64_t short_len) {
    const uint8_t *win = NULL;
    if (short_len > 0) {
        lb->win_rows = xrealloc(lb->win_rows, (size_t)(db->B * db->T));
        rope_windows(lb->win_rows, db->pos, db->seg, db->B, db->T, short_len);
        win = lb->win_rows;
    }
    if (sp == 1) {
        lb->mb = (model_batch){.B = db->B, .T = db->T, .tokens = db->tokens,
                               .targets = db->targets, .pos = db->pos, .seg = db->seg, .win = win};
        return;
    }
    zigzag_layout z;
    zigzag_layout_init_sp(&z, db->T, sp, ulysses, sp_rank);
    size_t n = (size_t)(db->B * z.T_local);
    lb->tokens = xrealloc(lb->tokens, n * sizeof(int32_t));
    lb->targets = xrealloc(lb->targets, n * sizeof(int32_t));
    lb->pos = xrealloc(lb->pos, n * sizeof(int32_t));
    lb->seg = xrealloc(lb->seg, n * sizeof(int32_t));
    zigzag_shard_batch(lb->tokens, lb->targets, lb->pos, lb->seg, db->tokens, db->targets,
                       db->pos, db->seg, db->B, &z, 0);
    if (win) {  // padding rows get ROPE_WIN_SHORT (0): they attend to nothing real
        lb->win = xrealloc(lb->win, n);
        zigzag_shard(lb->win, win, 1, db->B, &z, NULL);
    }
    lb->mb = (model_batch){.B = db->B, .T = z.T_local, .tokens = lb->tokens,
                           .targets = lb->targets, .pos = lb->pos, .seg = lb->seg,
                           .win = win ? lb->win : NULL};
}

void train_batch_free(train_batch *lb) {
    free(lb->tokens);
    free(lb->targets);
    free(lb->pos);
    free(lb->seg);
    free(lb->win_rows);
    free(lb->win);
}
