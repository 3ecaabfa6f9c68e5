// ckpt_dir: the run directory of checkpoints. It holds ckpt-<step>.h5 files
// (step zero-padded to 8 digits) and a "latest" file containing the name of
// the newest published one; both are replaced atomically (write NAME.tmp,
// fsync, rename, fsync the directory), so a kill at any instant leaves
// either the old or the new state. Files named *.tmp are never resumed from.
//
// Tested by tests/unit/test_ckpt.c: the latest pointer and keep-last
// retention delete exactly the right files, leftover .tmp files are ignored,
// resuming falls back to the previous good checkpoint when the latest is
// truncated, corrupt or missing, and ckpt_dir_resolve; by
// tests/cli/test_ckpt_paths.sh: every command given a run directory or its
// latest file.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// "ckpt-00001234.h5" into buf.
void ckpt_dir_filename(char *buf, size_t buflen, int64_t step);

// Points dir/latest at filename (a committed ckpt-<step>.h5 inside dir),
// then deletes the oldest checkpoints so that keep_last remain among those
// with a step up to filename's (keep_last <= 0 keeps all; filename itself is
// never deleted; newer files, left by a run resumed from an older
// checkpoint, are left alone), and removes filename's own .tmp if one is
// left; never another writer's ckpt-*.h5.tmp (it may be mid-write). Only the
// one process that writes checkpoints calls it.
// Returns 0, or -1 with a message.
int ckpt_dir_publish(const char *dir, const char *filename, int keep_last, char *err,
                     size_t errlen);

// Finds the checkpoint to resume from: the file named by dir/latest when it
// passes ckpt_verify (every dataset read, every checksum checked), else the
// newest older ckpt-*.h5 that does (all of them, newest first, when latest
// is missing or unreadable). Each rejected file, and a missing latest, is
// reported on warn (when not NULL) as one line "stretch: warning: ...".
// Returns 1 with the path (dir/name) in out_path; 0 when dir holds no
// checkpoint or does not exist; -1 with a message when checkpoints exist
// but none is usable, or dir cannot be read.
int ckpt_dir_find_resumable(const char *dir, char *out_path, size_t out_len, FILE *warn,
                            char *err, size_t errlen);

// The same search with the check done by try_fn(path, ctx, err, errlen): 0
// takes path; CKPT_DIR_REFUSED stops the search with try_fn's message (a
// sound file this run cannot use, e.g. another model: older files would be
// refused alike); any other value skips path with a warning. A resume passes
// its own loader, so each file is read once (read and check in one pass)
// rather than verified and then read again. The return values are
// ckpt_dir_find_resumable's; out_path is the path taken.
#define CKPT_DIR_REFUSED (-2)
typedef int (*ckpt_dir_try_fn)(const char *path, void *ctx, char *err, size_t errlen);
int ckpt_dir_try_resumable(const char *dir, ckpt_dir_try_fn try_fn, void *ctx, char *out_path,
                           size_t out_len, FILE *warn, char *err, size_t errlen);

// The checkpoint file a user names wherever a command takes a checkpoint
// path (inspect, eval, export, search, model.init): a run directory (a
// train.out_dir) stands for the checkpoint its "latest" file names (the
// newest ckpt-*.h5 when it has no "latest"), a "latest" pointer file for the
// checkpoint it names beside it; any other path is itself (a missing one too:
// opening it then says so). 0 with the file's path in out; -1 with one line
// naming the directory or pointer when they lead to no checkpoint, e.g.
//   runs/x: no checkpoint in this directory (no 'latest' file, no ckpt-*.h5)
int ckpt_dir_resolve(const char *path, char *out, size_t out_len, char *err, size_t errlen);

// Removes every leftover ckpt-*.h5.tmp of dir (interrupted writes of earlier
// runs). Only by the holder of the out_dir lock (ckpt_lock.h), at start.
// 0, or -1 with a message.
int ckpt_dir_remove_tmps(const char *dir, char *err, size_t errlen);
