// Tests of common/fsutil.c: the atomic write every writer of user files uses.
// A write that fails part way (file-size limit, missing directory, abort)
// must leave the previous file byte for byte and no path.tmp behind.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "test_tmpdir.h"

static int setup(void **state) { return tmpdir_setup(state, "stretch_fsutil"); }
static int teardown(void **state) {
    fixture *f = *state;
    int rc = tmpdir_rm_tree(f->dir);
    free(f);
    return rc;
}

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    buf[got] = '\0';
    *len = got;
    return buf;
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void test_write_replaces(void **state) {
    fixture *f = *state;
    char path[256], tmp[300], err[512];
    snprintf(path, sizeof path, "%s/a.txt", f->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(fsutil_write_atomic(path, "first\n", 6, err, sizeof err), 0);
    assert_int_equal(fsutil_write_atomic(path, "second!\n", 8, err, sizeof err), 0);
    size_t n;
    char *got = slurp(path, &n);
    assert_non_null(got);
    assert_int_equal(n, 8);
    assert_memory_equal(got, "second!\n", 8);
    assert_false(exists(tmp));
    free(got);
}

static void test_abort_keeps_old(void **state) {
    fixture *f = *state;
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/b.bin", f->dir);
    assert_int_equal(fsutil_write_atomic(path, "keep", 4, err, sizeof err), 0);
    fsutil_atomic a;
    assert_int_equal(fsutil_atomic_open(&a, path, err, sizeof err), 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s", a.tmp);
    fputs("partial new content", a.f);
    fflush(a.f);
    assert_true(exists(tmp));
    fsutil_atomic_abort(&a);
    assert_false(exists(tmp));
    size_t n;
    char *got = slurp(path, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(got, "keep", 4);
    free(got);
}

// A file-size limit (ulimit -f) hit in the middle of the write: the commit
// reports it naming the file, the old file is intact, no .tmp remains.
static void test_file_size_limit(void **state) {
    fixture *f = *state;
    char path[256], tmp[300], err[512];
    snprintf(path, sizeof path, "%s/c.bin", f->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(fsutil_write_atomic(path, "old", 3, err, sizeof err), 0);

    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 4096, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    size_t big = 1 << 20;
    char *data = calloc(big, 1);
    int rc = fsutil_write_atomic(path, data, big, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    free(data);

    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "c.bin.tmp"));
    assert_non_null(strstr(err, "write failed"));
    assert_false(exists(tmp));
    size_t n;
    char *got = slurp(path, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(got, "old", 3);
    free(got);
}

static void test_missing_dir(void **state) {
    fixture *f = *state;
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/no/such/dir/d.txt", f->dir);
    assert_int_equal(fsutil_write_atomic(path, "x", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "d.txt.tmp: cannot create"));
}

static void test_fsync_paths(void **state) {
    fixture *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/e.txt", f->dir);
    char err[256];
    assert_int_equal(fsutil_write_atomic(path, "e", 1, err, sizeof err), 0);
    assert_int_equal(fsutil_fsync_path(path, false), 0);
    assert_int_equal(fsutil_fsync_path(f->dir, true), 0);
    assert_int_equal(fsutil_fsync_parent(path), 0);
    assert_int_equal(fsutil_fsync_parent("no-slash-here"), 0);  // "."
    errno = 0;
    assert_int_equal(fsutil_fsync_path("/no/such/file", false), -1);
    assert_int_equal(errno, ENOENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_paths, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
