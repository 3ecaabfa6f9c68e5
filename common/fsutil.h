// fsutil: small filesystem helpers shared by the commands, and THE way a
// file is written so that a crash never leaves a half-written one: write
// path.tmp, flush, fsync, rename over path, fsync the directory. Every
// writer of user-visible files (checkpoints, exports, search state, reports)
// goes through here.
//
// Tested by tests/unit/test_fsutil.c.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

// mkdir -p path. Returns 0, or -1 with "<what>: cannot create DIR (reason)"
// in err; `what` names the option or key the path came from.
int fsutil_mkdirs(const char *path, const char *what, char *err, size_t errlen);

// fsync a file (dir false) or a directory (dir true) by path. EINVAL (a file
// system that cannot sync this kind of file) is not an error. 0, or -1 with
// errno set.
int fsutil_fsync_path(const char *path, bool dir);

// fsync the directory holding path ("." when path has no slash).
int fsutil_fsync_parent(const char *path);

// An atomic write in progress: the caller writes to f (path.tmp), then
// commits (flush, fsync, close, rename, fsync the directory) or aborts
// (close, remove path.tmp). Either call frees what open made.
typedef struct {
    FILE *f;
    char *path, *tmp;
} fsutil_atomic;

// Opens path.tmp for writing (binary). 0, or -1 with one line in err.
int fsutil_atomic_open(fsutil_atomic *a, const char *path, char *err, size_t errlen);
// 0, or -1 with one line naming the file and the reason (the old path, if
// any, is left as it was).
int fsutil_atomic_commit(fsutil_atomic *a, char *err, size_t errlen);
void fsutil_atomic_abort(fsutil_atomic *a);

// The whole file in one call: len bytes of data become path, atomically.
int fsutil_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

// The whole file at path in a new buffer (*buf, *len bytes; the caller frees
// it). 0; FSUTIL_READ_OPEN when fopen failed (errno says why: the caller
// names the file and where it should come from); FSUTIL_READ_IO on a read
// error.
enum { FSUTIL_READ_OPEN = -1, FSUTIL_READ_IO = -2 };
int fsutil_read_all(const char *path, void **buf, size_t *len);
