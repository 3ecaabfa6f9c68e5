// ckpt_fslock: see ckpt_fslock.h.
#include "ckpt_fslock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

// Whether flock() works in dir: a probe file, locked and unlocked.
static bool flock_works(const char *dir, char *why, size_t whylen) {
    char path[1100];
    snprintf(path, sizeof path, "%s/.flock-probe-%ld", dir, (long)getpid());
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return true;  // cannot tell; HDF5's own error will name the file
    int rc = flock(fd, LOCK_EX | LOCK_NB);
    int e = errno;
    if (rc == 0) flock(fd, LOCK_UN);
    close(fd);
    unlink(path);
    if (rc == 0 || e == EWOULDBLOCK) return true;
    snprintf(why, whylen, "off: flock() on %s fails (%s)", dir, strerror(e));
    return false;
}

bool ckpt_fslock_decide(const char *dir, int mode, char *why, size_t whylen) {
    if (mode == 1) {
        snprintf(why, whylen, "on (train.hdf5_file_locking)");
        return true;
    }
    if (mode == 2) {
        snprintf(why, whylen, "off (train.hdf5_file_locking)");
        return false;
    }
    const char *env = getenv("HDF5_USE_FILE_LOCKING");
    if (env && *env) {
        bool on = strcasecmp(env, "FALSE") != 0;
        snprintf(why, whylen, "%s (HDF5_USE_FILE_LOCKING=%s)", on ? "on" : "off", env);
        return on;
    }
    if (!flock_works(dir, why, whylen)) return false;
    snprintf(why, whylen, "on (flock works in %s)", dir);
    return true;
}

void ckpt_fslock_apply(bool on) { setenv("HDF5_USE_FILE_LOCKING", on ? "TRUE" : "FALSE", 1); }
