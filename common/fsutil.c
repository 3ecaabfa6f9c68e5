// fsutil: see fsutil.h.
#include "fsutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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
