// ckpt_lock: see ckpt_lock.h.
#include "ckpt_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/types.h>
#include <unistd.h>

#include "fsutil.h"

static void lock_path(const char *dir, char *path, size_t len) { snprintf(path, len, "%s/stretch.lock", dir); }

static void own_identity(char *host, size_t hlen, char *job, size_t jlen) {
    if (gethostname(host, hlen) != 0) snprintf(host, hlen, "?");
    host[hlen - 1] = '\0';
    const char *j = getenv("SLURM_JOB_ID");
    snprintf(job, jlen, "%s", j && *j ? j : "-");
}

// Parses "host H pid P job J".
static int read_lock(const char *path, char *host, size_t hlen, long *pid, char *job, size_t jlen) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    char h[256], j[128];
    if (!ok || sscanf(line, "host %255s pid %ld job %127s", h, pid, j) != 3) return 0;
    snprintf(host, hlen, "%s", h);
    snprintf(job, jlen, "%s", j);
    return 1;
}

// The owner keeps the lock file open with flock() held for its whole life:
// the kernel drops it the moment the process dies, even while the process
// is an unreaped zombie (a container whose pid 1 never reaps leaves those
// behind, and kill(pid, 0) still finds them).
static int held_fd = -1;

static int create_lock(const char *path, const char *host, const char *job) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    (void)flock(fd, LOCK_EX | LOCK_NB);  // taken before the contents exist; unsupported filesystems: pid check only
    char text[512];
    int n = snprintf(text, sizeof text, "host %s pid %ld job %s\n", host, (long)getpid(), job);
    int rc = write(fd, text, (size_t)n) == n && fsync(fd) == 0 ? 0 : -1;
    if (rc != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    held_fd = fd;
    fsutil_fsync_parent(path);
    return 0;
}

// 1 when no process on this host holds the lock file's flock (its owner
// died); 0 when one does or the filesystem cannot tell.
static int lock_unheld(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int free_now = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return free_now;
}

// A zombie has exited; only its parent has not collected it yet.
static int pid_is_zombie(long pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');  // the command name may hold spaces and parentheses
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

int ckpt_lock_acquire(const char *dir, FILE *warn, char *err, size_t errlen) {
    char path[1100], host[256], job[128];
    lock_path(dir, path, sizeof path);
    own_identity(host, sizeof host, job, sizeof job);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (create_lock(path, host, job) == 0) return 0;
        if (errno != EEXIST) {
            snprintf(err, errlen, "train.out_dir: cannot create the lock %s: %s", path, strerror(errno));
            return -1;
        }
        char ohost[256] = "?", ojob[128] = "-";
        long opid = 0;
        int r = read_lock(path, ohost, sizeof ohost, &opid, ojob, sizeof ojob);
        if (r < 0 && errno == ENOENT) continue;  // released meanwhile
        const char *stale = NULL;
        if (r == 1 && strcmp(ojob, "-") != 0 && strcmp(ojob, job) == 0)
            stale = "an earlier run of this Slurm job (requeued)";
        else if (r == 1 && strcmp(ohost, host) == 0 &&
                 (opid == (long)getpid() || (kill((pid_t)opid, 0) != 0 && errno == ESRCH) ||
                  pid_is_zombie(opid) || lock_unheld(path)))
            stale = "its process is gone";
        if (!stale || attempt > 0) {
            snprintf(err, errlen,
                     "train.out_dir %s is in use by another run (host %s pid %ld job %s, %s); "
                     "use another out_dir, or remove the lock once that run is gone",
                     dir, ohost, opid, ojob, path);
            return -1;
        }
        if (warn)
            fprintf(warn, "stretch: warning: taking over the stale lock %s (host %s pid %ld job %s: %s)\n",
                    path, ohost, opid, ojob, stale);
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "train.out_dir: cannot remove the stale lock %s: %s", path, strerror(errno));
            return -1;
        }
    }
    snprintf(err, errlen, "train.out_dir %s: another run took the lock %s meanwhile", dir, path);
    return -1;
}

void ckpt_lock_release(const char *dir) {
    char path[1100], host[256], job[128], ohost[256], ojob[128];
    long opid = 0;
    lock_path(dir, path, sizeof path);
    own_identity(host, sizeof host, job, sizeof job);
    if (read_lock(path, ohost, sizeof ohost, &opid, ojob, sizeof ojob) == 1 && opid == (long)getpid() &&
        strcmp(ohost, host) == 0)
        unlink(path);
    if (held_fd >= 0) close(held_fd);
    held_fd = -1;
}
