// ckpt_fslock: HDF5's file locking on the checkpoint filesystem. HDF5 takes
// an flock() on every file it opens; Lustre mounted without -o flock, NFS
// with nolock, GPFS over DVS refuse it, and the first save (or resume)
// fails. train.hdf5_file_locking: on, off, or auto = off when
// HDF5_USE_FILE_LOCKING=FALSE is set (HDF5's own switch, honoured as is) or
// when an flock() probe on out_dir fails with "not supported". The choice is
// applied through HDF5_USE_FILE_LOCKING, which HDF5 reads at each open, so
// every HDF5 open of this process follows it.
//
// Tested by tests/cli/test_lock.sh (a checkpoint flock-ed by another process:
// resume fails with locking on, works with it off).
#pragma once

#include <stdbool.h>
#include <stddef.h>

// Decides (mode: 0 auto, 1 on, 2 off, as cfg_locking) for the directory dir;
// true = locking on. why: one line saying why.
bool ckpt_fslock_decide(const char *dir, int mode, char *why, size_t whylen);
// Applies a decision (every rank, before any HDF5 open).
void ckpt_fslock_apply(bool on);
