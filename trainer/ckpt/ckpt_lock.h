// ckpt_lock: one run per out_dir. out_dir/stretch.lock holds the owner's
// host, pid and Slurm job id, created with O_EXCL (atomic on local
// filesystems, NFSv3+, Lustre, GPFS). A second run on the same out_dir
// refuses (the caller exits 2 with the one line in err). A stale lock is
// taken over with a warning: its process is gone (same host), or it belongs
// to this very Slurm job (a requeued job runs again under its own id).
// A lock from another host and another job cannot be proven stale: the
// message says to remove the file once that run is gone.
//
// Tested by tests/cli/test_lock.sh.
#pragma once

#include <stddef.h>
#include <stdio.h>

// 0 (the lock is ours; warning lines, if any, to warn), or -1 with one line.
int ckpt_lock_acquire(const char *dir, FILE *warn, char *err, size_t errlen);
// Removes the lock if it is still ours.
void ckpt_lock_release(const char *dir);
