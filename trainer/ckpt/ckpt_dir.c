// ckpt_dir: the run directory of checkpoints (see ckpt_dir.h).
#include "ckpt_dir.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "die.h"
#include "errmsg.h"
#include "fsutil.h"

#define LATEST "latest"
#define NAME_MAX_LEN 64

void ckpt_dir_filename(char *buf, size_t buflen, int64_t step) {
    snprintf(buf, buflen, "ckpt-%08lld.h5", (long long)step);
}

// Parses "ckpt-<digits>.h5" followed by exactly suffix; false otherwise.
static bool parse_name(const char *name, const char *suffix, int64_t *step) {
    if (strncmp(name, "ckpt-", 5)) return false;
    const char *p = name + 5;
    int64_t s = 0;
    int digits = 0;
    for (; isdigit((unsigned char)*p); p++, digits++) {
        if (digits == 18) return false;
        s = 10 * s + (*p - '0');
    }
    if (digits == 0 || strncmp(p, ".h5", 3) || strcmp(p + 3, suffix))
        return false;
    *step = s;
    return true;
}

typedef struct {
    int64_t step;
    char name[NAME_MAX_LEN];
} entry;

static int by_step(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return strcmp(x->name, y->name);
}

// The files of dir named ckpt-<step>.h5 + suffix, sorted by step. Returns the
// count, 0 for a missing dir, -1 with a message when dir cannot be read.
static int list_dir(const char *dir, const char *suffix, entry **out, char *err, size_t errlen) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        errmsg(err, errlen, "checkpoint directory %s: %s", dir, strerror(errno));
        return -1;
    }
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int64_t step;
        if (strlen(e->d_name) >= NAME_MAX_LEN || !parse_name(e->d_name, suffix, &step)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            *out = xrealloc(*out, (size_t)cap * sizeof **out);
        }
        (*out)[n].step = step;
        memcpy((*out)[n].name, e->d_name, strlen(e->d_name) + 1);  // length checked above
        n++;
    }
    closedir(d);
    if (n) qsort(*out, (size_t)n, sizeof **out, by_step);
    return n;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

// Writes dir/latest atomically with content name + "\n".
static int write_latest(const char *dir, const char *name, char *err, size_t errlen) {
    char *final = join(dir, LATEST), line[NAME_MAX_LEN + 2], why[512];
    int n = snprintf(line, sizeof line, "%s\n", name);
    int rc = fsutil_write_atomic(final, line, (size_t)n, why, sizeof why);
    if (rc < 0) errmsg(err, errlen, "checkpoint directory %s: %s", dir, why);
    free(final);
    return rc;
}

static int remove_file(const char *dir, const char *name, char *err, size_t errlen) {
    char *path = join(dir, name);
    int rc = unlink(path);
    if (rc < 0 && errno == ENOENT) rc = 0;
    if (rc < 0) errmsg(err, errlen, "cannot delete old checkpoint %s: %s", path, strerror(errno));
    free(path);
    return rc;
}

int ckpt_dir_publish(const char *dir, const char *filename, int keep_last, char *err,
                     size_t errlen) {
    int64_t step;
    if (strlen(filename) >= NAME_MAX_LEN || !parse_name(filename, "", &step)) {
        errmsg(err, errlen, "checkpoint name %s is not ckpt-<step>.h5", filename);
        return -1;
    }
    char *path = join(dir, filename);
    struct stat st;
    int found = stat(path, &st);
    free(path);
    if (found < 0) {
        errmsg(err, errlen, "checkpoint %s/%s: cannot publish: %s", dir, filename,
                strerror(errno));
        return -1;
    }
    if (write_latest(dir, filename, err, errlen)) return -1;

    entry *files;
    int n = list_dir(dir, "", &files, err, errlen);
    if (n < 0) return -1;
    int older = 0;  // files with a step up to the published one
    while (older < n && files[older].step <= step) older++;
    int rc = 0;
    for (int i = 0; keep_last > 0 && i < older - keep_last && rc == 0; i++)
        if (strcmp(files[i].name, filename)) rc = remove_file(dir, files[i].name, err, errlen);
    free(files);

    // Only this file's own temporary (none after a clean write): another
    // writer's ckpt-*.h5.tmp may be mid-write (ckpt_dir_remove_tmps at start).
    char own[NAME_MAX_LEN + 8];
    snprintf(own, sizeof own, "%s.tmp", filename);
    if (rc == 0) rc = remove_file(dir, own, err, errlen);
    return rc;
}

int ckpt_dir_remove_tmps(const char *dir, char *err, size_t errlen) {
    entry *tmps;
    int ntmp = list_dir(dir, ".tmp", &tmps, err, errlen), rc = 0;
    if (ntmp < 0) return -1;
    for (int i = 0; i < ntmp && rc == 0; i++) rc = remove_file(dir, tmps[i].name, err, errlen);
    if (ntmp > 0) free(tmps);
    return rc;
}

// Reads dir/latest: 1 with the name, 0 when there is none, -1 when it holds
// something else than a checkpoint name (reason in why).
static int read_latest(const char *dir, char *name, int64_t *step, char *why, size_t whylen) {
    char *path = join(dir, LATEST);
    FILE *f = fopen(path, "r");
    free(path);
    if (!f) {
        if (errno == ENOENT) return 0;
        snprintf(why, whylen, "cannot read %s/" LATEST ": %s", dir, strerror(errno));
        return -1;
    }
    char buf[NAME_MAX_LEN + 2] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char)buf[n - 1])) buf[--n] = '\0';
    if (n >= NAME_MAX_LEN || !parse_name(buf, "", step)) {
        snprintf(why, whylen, "%s/" LATEST " does not name a checkpoint", dir);
        return -1;
    }
    memcpy(name, buf, n + 1);
    return 1;
}

int ckpt_dir_resolve(const char *path, char *out, size_t out_len, char *err, size_t errlen) {
    struct stat st;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    bool is_latest = !is_dir && stat(path, &st) == 0 && S_ISREG(st.st_mode) && !strcmp(base, LATEST);
    if (!is_dir && !is_latest) {
        if (strlen(path) >= out_len) return errmsg(err, errlen, "checkpoint path too long: %s", path);
        memcpy(out, path, strlen(path) + 1);
        return 0;
    }
    // The directory: path itself, or the pointer's (".": a bare "latest").
    size_t n = is_dir ? strlen(path) : (size_t)(base - path);
    while (n > 1 && path[n - 1] == '/') n--;
    char *dir = xmalloc(n + 2);
    if (n) memcpy(dir, path, n), dir[n] = '\0';
    else strcpy(dir, ".");
    char name[NAME_MAX_LEN], why[512];
    int64_t step;
    int have = read_latest(dir, name, &step, why, sizeof why);
    int rc = 0;
    if (have < 0) {
        rc = errmsg(err, errlen, "%s", why);
    } else if (have == 0) {  // no pointer: the newest checkpoint file, if any
        entry *files;
        int count = list_dir(dir, "", &files, err, errlen);
        if (count == 0)
            rc = errmsg(err, errlen, "%s: no checkpoint in this directory (no '" LATEST "' file, no ckpt-*.h5)",
                        dir);
        else if (count > 0)
            memcpy(name, files[count - 1].name, strlen(files[count - 1].name) + 1);
        else
            rc = -1;
        free(files);
    }
    if (rc == 0) {
        char *file = join(dir, name);
        if (stat(file, &st) != 0)
            rc = errmsg(err, errlen, "%s/" LATEST " names %s, which cannot be opened: %s", dir, name,
                        strerror(errno));
        else if (strlen(file) >= out_len)
            rc = errmsg(err, errlen, "checkpoint path too long: %s", file);
        else
            memcpy(out, file, strlen(file) + 1);
        free(file);
    }
    free(dir);
    return rc;
}

int ckpt_dir_try_resumable(const char *dir, ckpt_dir_try_fn try_fn, void *ctx, char *out_path,
                           size_t out_len, FILE *warn, char *err, size_t errlen) {
    entry *files;
    int n = list_dir(dir, "", &files, err, errlen);
    if (n < 0) return -1;
    char latest[NAME_MAX_LEN], why[512];
    int64_t latest_step = 0;
    int have_latest = read_latest(dir, latest, &latest_step, why, sizeof why);
    if (have_latest < 0 && warn) fprintf(warn, "stretch: warning: %s\n", why);
    if (have_latest == 0 && n > 0 && warn)
        fprintf(warn, "stretch: warning: %s has checkpoints but no " LATEST
                      " pointer; using the newest good one\n", dir);

    // Candidates, best first: latest, then older files by decreasing step.
    int n_cand = 0, tried = 0, rc = 0;
    entry *cand = xmalloc((size_t)(n + 1) * sizeof *cand);
    if (have_latest == 1) {
        cand[n_cand].step = latest_step;
        snprintf(cand[n_cand++].name, NAME_MAX_LEN, "%s", latest);
    }
    for (int i = n - 1; i >= 0; i--)
        if (have_latest != 1 || files[i].step < latest_step) cand[n_cand++] = files[i];
    free(files);

    char verr[1024] = "";
    for (int i = 0; i < n_cand && rc == 0; i++) {
        char *path = join(dir, cand[i].name);
        tried++;
        if ((size_t)snprintf(out_path, out_len, "%s", path) >= out_len) {
            errmsg(err, errlen, "checkpoint path %s is too long", path);
            rc = -1;
        } else {
            int t = try_fn(path, ctx, verr, sizeof verr);
            if (t == 0)
                rc = 1;
            else if (t == CKPT_DIR_REFUSED) {  // a usable file this run cannot take: no fallback
                errmsg(err, errlen, "%s", verr);
                rc = -1;
            } else if (warn)
                fprintf(warn, "stretch: warning: skipping %s: %s\n", path, verr);
        }
        free(path);
    }
    free(cand);
    if (rc == 0 && tried > 0) {
        errmsg(err, errlen,
                "checkpoint directory %s: none of its %d checkpoints is usable (the last "
                "error: %s); move them away or start without resuming",
                dir, tried, verr);
        rc = -1;
    }
    return rc;
}

static int try_verify(const char *path, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    return ckpt_verify(path, err, errlen);
}

int ckpt_dir_find_resumable(const char *dir, char *out_path, size_t out_len, FILE *warn,
                            char *err, size_t errlen) {
    return ckpt_dir_try_resumable(dir, try_verify, NULL, out_path, out_len, warn, err, errlen);
}
