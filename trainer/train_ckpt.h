// train_ckpt: the training state <-> an HDF5 checkpoint (docs/checkpoint-format.md).
// Rank 0 writes; rank 0 alone reads and broadcasts (the file is read once
// per job, not once per rank), so a run resumes on any number of ranks:
// tensors are global, never sharded. Under parallel.shard on several ranks
// nothing is gathered: rank 0 writes the file without its big tensors and
// every rank writes its slices of the parameters and moments into the same
// global datasets (ckpt_shard.h); on load rank 0 scatters each rank its
// slice of the moments, so any shard mode and grid resumes from any other.
//
// Tested by tests/cli/test_resume.sh: a run killed and resumed ends with
// parameters identical to an uninterrupted run, on 1 and 2 ranks;
// tests/cli/test_resume_reads.sh: the bytes each rank reads (rank 0 only).
#pragma once

#include <stddef.h>

#include "ckpt.h"
#include "rope_scaling.h"

typedef struct train_state train_state;

// Writes the full state as out_dir/ckpt-<step>.h5 and publishes it (latest
// pointer, keep_last retention). Collective: rank 0 writes, all ranks wait.
int train_ckpt_save(train_state *st, char *err, size_t errlen);

// Collective. Restores the full state from path, read on rank 0 only;
// refuses a checkpoint whose run config differs in a key that cannot change
// on resume (the message lists them). -1 on EVERY rank with rank 0's line
// in err when rank 0 cannot read or accept the file.
int train_ckpt_load(train_state *st, const char *path, char *err, size_t errlen);

// Collective. --resume auto: the newest good checkpoint of out_dir (its
// latest, else older ones, newest first; each file skipped is named in a
// warning), read once on rank 0: the load is the check (Fletcher32 on every
// chunk read), so a file is never verified and then read again. path gets
// the file taken. 1 resumed, 0 no checkpoint (a fresh start), -1 on every
// rank with rank 0's line in err: none usable, or a sound one refused (the
// run config differs in a key that cannot change; then no fallback).
int train_ckpt_resume_auto(train_state *st, char *path, size_t pathlen, char *err, size_t errlen);

// Collective. Only the parameters (model.init: start from a trained model),
// read on rank 0 and broadcast; the shapes must match the model config.
int train_ckpt_load_weights(train_state *st, const char *path, char *err, size_t errlen);

// The /rope group of the current stage: its rope_config from the curriculum
// (curr_stage_rope) and the table installed in the model.
int train_ckpt_put_stage_rope(ckpt_writer *w, const train_state *st);

// The /rope group of docs/checkpoint-format.md: rope r as attributes, its
// table t as datasets, the layout. Also used by `stretch import`.
int train_ckpt_put_rope(ckpt_writer *w, const rope_config *r, const rope_table *t, rope_layout layout);
