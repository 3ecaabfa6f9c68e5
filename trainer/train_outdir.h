// train_outdir: claiming out_dir for this run before anything is written
// there. Rank 0 takes the out_dir lock (ckpt_lock.h; released at exit; a
// second run on the same out_dir exits 2 with one line), removes the
// leftover ckpt-*.h5.tmp of interrupted earlier runs (safe only under the
// lock), and decides HDF5 file locking for the checkpoint filesystem
// (train.hdf5_file_locking, ckpt_fslock.h); every rank applies the decision.
//
// Tested by tests/cli/test_lock.sh.
#pragma once

typedef struct train_state train_state;

// Collective; right after out_dir exists. Exits 2 (every rank) on refusal.
void train_outdir_claim(train_state *st);
