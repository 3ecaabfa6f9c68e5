// fsutil: small filesystem helpers shared by the commands.
#pragma once

#include <stddef.h>
#include <stdio.h>

// mkdir -p path. Returns 0, or -1 with "<what>: cannot create DIR (reason)"
// in err; `what` names the option or key the path came from.
int fsutil_mkdirs(const char *path, const char *what, char *err, size_t errlen);

// Atomic file writing: fsutil_atomic_open creates PATH.tmp.PID (its name in
// tmp, tmplen >= strlen(path) + 32) for writing; fsutil_atomic_commit
// flushes, fsyncs and closes it, renames it to path and fsyncs the
// directory, so a reader sees the old file or the whole new one, never a
// part. On failure (or fsutil_atomic_abort) the temporary file is removed.
// Both return NULL / -1 with "cannot ... PATH (reason)" in err.
FILE *fsutil_atomic_open(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen);
int fsutil_atomic_commit(FILE *f, const char *tmp, const char *path, char *err, size_t errlen);
void fsutil_atomic_abort(FILE *f, const char *tmp);
