// fsutil: see fsutil.h.
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "die.h"
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

int fsutil_fsync_path(const char *path, bool dir) {
    int fd = open(path, dir ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc < 0 && errno == EINVAL) rc = 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int fsutil_fsync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return fsutil_fsync_path(".", true);
    if (slash == path) return fsutil_fsync_path("/", true);
    char *dir = xstrdup(path);
    dir[slash - path] = '\0';
    int rc = fsutil_fsync_path(dir, true);
    int saved = errno;
    free(dir);
    errno = saved;
    return rc;
}

static void atomic_release(fsutil_atomic *a) {
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    a->f = NULL;
}

int fsutil_atomic_open(fsutil_atomic *a, const char *path, char *err, size_t errlen) {
    size_t n = strlen(path) + 5;
    a->path = xstrdup(path);
    a->tmp = xmalloc(n);
    snprintf(a->tmp, n, "%s.tmp", path);
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int e = errno;
        errmsg(err, errlen, "%s: cannot create (%s)", a->tmp, strerror(e));
        atomic_release(a);
        return -1;
    }
    return 0;
}

int fsutil_atomic_commit(fsutil_atomic *a, char *err, size_t errlen) {
    bool ok = !ferror(a->f) && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    int saved = errno;
    ok = (fclose(a->f) == 0) && ok;
    if (!saved) saved = errno;
    a->f = NULL;
    int rc = 0;
    if (!ok) {
        rc = errmsg(err, errlen, "%s: write failed (%s)", a->tmp, strerror(saved ? saved : EIO));
        unlink(a->tmp);
    } else if (rename(a->tmp, a->path) != 0) {
        saved = errno;
        unlink(a->tmp);
        rc = errmsg(err, errlen, "cannot rename %s to %s (%s)", a->tmp, a->path, strerror(saved));
    } else if (fsutil_fsync_parent(a->path) != 0) {
        rc = errmsg(err, errlen, "%s: cannot fsync its directory (%s)", a->path, strerror(errno));
    }
    atomic_release(a);
    return rc;
}

void fsutil_atomic_abort(fsutil_atomic *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    atomic_release(a);
}

int fsutil_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    fsutil_atomic a;
    if (fsutil_atomic_open(&a, path, err, errlen)) return -1;
    if (fwrite(data, 1, len, a.f) != len) {
        int e = errno;
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s", a.tmp);
        fsutil_atomic_abort(&a);
        return errmsg(err, errlen, "%s: write failed (%s)", tmp, strerror(e ? e : EIO));
    }
    return fsutil_atomic_commit(&a, err, errlen);
}

int fsutil_read_all(const char *path, void **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return FSUTIL_READ_OPEN;
    size_t cap = 1 << 16, n = 0;
    char *b = xmalloc(cap);
    for (;;) {
        if (n == cap) b = xrealloc(b, cap *= 2);
        const size_t got = fread(b + n, 1, cap - n, f);
        if (got == 0) break;
        n += got;
    }
    const int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return FSUTIL_READ_IO;
    }
    *buf = b;
    *len = n;
    return 0;
}
