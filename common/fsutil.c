// fsutil: see fsutil.h.
#include "fsutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errmsg.h"

int fsutil_mkdirs(const char *path, const char *what, char *err, size_t errlen) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return errmsg(err, errlen, "%s: path too long (%.64s...)", what, path);
    for (char *p = buf + 1;; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return errmsg(err, errlen, "%s: cannot create %.900s (%s)", what, buf, strerror(errno));
            if (end) return 0;
            *p = '/';
        }
    }
}

FILE *fsutil_atomic_open(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen) {
    if (snprintf(tmp, tmplen, "%s.tmp.%ld", path, (long)getpid()) >= (int)tmplen) {
        errmsg(err, errlen, "path too long: %.200s", path);
        return NULL;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) errmsg(err, errlen, "cannot create %.900s (%s)", tmp, strerror(errno));
    return f;
}

void fsutil_atomic_abort(FILE *f, const char *tmp) {
    if (f) fclose(f);
    remove(tmp);
}

// fsync of the directory holding path (EINVAL: a file system without it).
static int fsync_dir_of(const char *path) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc < 0 && errno == EINVAL) rc = 0;
    close(fd);
    return rc;
}

int fsutil_atomic_commit(FILE *f, const char *tmp, const char *path, char *err, size_t errlen) {
    bool ok = fflush(f) == 0 && !ferror(f);
    if (ok && fsync(fileno(f)) < 0 && errno != EINVAL) ok = false;
    int e = errno;
    if (fclose(f) != 0) ok = false, e = errno;
    if (!ok) {
        remove(tmp);
        return errmsg(err, errlen, "cannot write %.900s (%s)", tmp, strerror(e));
    }
    if (rename(tmp, path) < 0) {
        e = errno;
        remove(tmp);
        return errmsg(err, errlen, "cannot rename %.400s to %.400s (%s)", tmp, path, strerror(e));
    }
    if (fsync_dir_of(path) < 0) return errmsg(err, errlen, "cannot fsync the directory of %.900s (%s)", path, strerror(errno));
    return 0;
}
