// train_preflight: every check that the run file and the data allow, made
// before the first step on every rank, so that a run never trains a stage
// and then fails on a setting (a passkey length too short for its prompt, a
// gate without validation data, a missing shard of the last stage, a full
// disk). Checked:
//  - (the RoPE of every stage, factors files included: curr_load, at load)
//  - the training rows of every stage: shards exist, are readable, have
//    valid headers and enough tokens (the loader each stage will open),
//    ids within the model's vocabulary; rank 0 reads every shard once
//    (payload checksum, every id below the shard's vocab_size);
//  - the validation rows when they are used (eval_every, val_loss gates),
//    and that a val_loss gate has validation data;
//  - passkey samples at every eval length and gate length, at every depth
//    (the first trial's sample of each);
//  - rank 0: train.out_dir takes a file (write, fsync, remove) and has
//    room for two checkpoints (3 fp32 copies of the parameters each: the
//    new one is complete before the oldest is removed), and the file-size
//    limit (ulimit -f) allows one.
// A failure on any rank: rank 0 prints that rank's one line
// ("stretch: error: ..."), every rank exits 2.
//
// Tested by tests/cli/test_preflight.sh.
#pragma once

typedef struct train_state train_state;

void train_preflight(train_state *st);
