// Checkpoint files and the run directory: exact round trips of every dtype
// and attribute kind; wrong shapes/types named in the error; truncated files,
// bytes flipped inside a dataset's chunk (found with H5Dget_chunk_info),
// foreign and unfinished files all rejected with a clear message and without
// HDF5 printing its error stack; leftover .tmp files ignored; the latest
// pointer and keep-last retention; resume falling back to the previous good
// checkpoint; h5ls reading the file; what a run directory or its latest file
// resolves to (ckpt_dir_resolve).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include "ckpt.h"
#include "ckpt_dir.h"
#include "die.h"
#include "test_tmpdir.h"

// ===========================================================================
// Fixtures and helpers

static int setup(void **state) { return tmpdir_setup(state, "test_ckpt"); }

static int teardown(void **state) {
    fixture *f = *state;
    int rc = tmpdir_rm_tree(f->dir);
    free(f);
    // ckpt leaves no HDF5 file or object open, whatever happened.
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open_ids != 0) {
        fprintf(stderr, "%zd HDF5 files/objects left open\n", open_ids);
        rc = -1;
    }
    return rc;
}

static char *path_in(const fixture *f, const char *name) {
    size_t n = strlen(f->dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", f->dir, name);
    return p;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static char *read_text(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = xcalloc((size_t)n + 1, 1);
    size_t got = fread(buf, 1, (size_t)n, fp);
    buf[got] = '\0';
    fclose(fp);
    return buf;
}

// stderr captured into a file while expected failures run: HDF5 must not
// print its error stack.
typedef struct {
    int saved_fd;
    char path[80];
} capture;

static void capture_begin(capture *c, const fixture *f) {
    snprintf(c->path, sizeof c->path, "%s/stderr.txt", f->dir);
    fflush(stderr);
    c->saved_fd = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(c->saved_fd >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
}

static void capture_end_expect_silent(capture *c) {
    fflush(stderr);
    dup2(c->saved_fd, 2);
    close(c->saved_fd);
    char *text = read_text(c->path);
    assert_non_null(text);
    if (text[0]) fprintf(stderr, "unexpected stderr output:\n%s\n", text);
    assert_string_equal(text, "");
    free(text);
    unlink(c->path);
}

static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

static uint64_t rng_next(uint64_t *s) {  // splitmix64
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Arbitrary bit patterns (NaN payloads, infinities, denormals, -0) included:
// a round trip must preserve every bit.
static void fill_random_bits(void *buf, size_t bytes, uint64_t seed) {
    uint8_t *p = buf;
    for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)(rng_next(&seed) >> 56);
}

static float *random_floats(int64_t n, uint64_t seed) {
    float *x = xmalloc((size_t)(n ? n : 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((double)(rng_next(&seed) >> 11) / 9007199254740992.0 - 0.5);
    return x;
}

// A small checkpoint with one tensor per layer name and a few attributes.
static void write_small(const char *path, int64_t step, uint64_t seed) {
    char err[1024] = "";
    ckpt_writer *w = ckpt_create(path, err, sizeof err);
    if (!w) fail_msg("%s", err);
    int64_t dims[2] = {300, 200};  // 240 KB: one chunk
    float *x = random_floats(dims[0] * dims[1], seed);
    assert_int_equal(ckpt_put_tensor(w, "params/model.embed_tokens.weight", x, 2, dims), 0);
    int64_t big[2] = {1000, 600};  // 2.4 MB: three chunks
    float *y = random_floats(big[0] * big[1], seed + 1);
    assert_int_equal(ckpt_put_tensor(w, "params/model.layers.0.mlp.up_proj.weight", y, 2, big), 0);
    assert_int_equal(ckpt_put_attr_int64(w, "/", "step", step), 0);
    if (ckpt_commit(w, err, sizeof err)) fail_msg("%s", err);
    free(x);
    free(y);
}

// File offset and size of chunk k of dataset name (HDF5's own index).
static void chunk_location(const char *path, const char *name, hsize_t k, haddr_t *addr,
                           hsize_t *size) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    assert_true(dset >= 0);
    // A chunked dataset has no single contiguous offset: H5Dget_offset says so.
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    assert_true(H5Dget_offset(dset) == HADDR_UNDEF);
    H5Eset_auto2(H5E_DEFAULT, func, data);
    hid_t space = H5Dget_space(dset);
    hsize_t n_chunks = 0, offset[2];
    unsigned mask;
    assert_true(H5Dget_num_chunks(dset, space, &n_chunks) >= 0);
    assert_true(k < n_chunks);
    assert_true(H5Dget_chunk_info(dset, space, k, offset, &mask, addr, size) >= 0);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
}

// Flips bits of 3 bytes in the middle of chunk k of dataset name.
static void flip_bytes_in_chunk(const char *path, const char *name, hsize_t k) {
    haddr_t addr;
    hsize_t size;
    chunk_location(path, name, k, &addr, &size);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    long at = (long)(addr + size / 2);
    unsigned char b[3];
    assert_int_equal(fseek(fp, at, SEEK_SET), 0);
    assert_int_equal(fread(b, 1, 3, fp), 3);
    for (int i = 0; i < 3; i++) b[i] ^= 0x5A;
    assert_int_equal(fseek(fp, at, SEEK_SET), 0);
    assert_int_equal(fwrite(b, 1, 3, fp), 3);
    assert_int_equal(fclose(fp), 0);
}

static void truncate_half(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
}

// ===========================================================================
// Round trip

static void test_round_trip_exact(void **state) {
    fixture *f = *state;
    char *path = path_in(f, "ckpt-00000007.h5");
    char err[1024] = "";

    // Tensors of every dtype and several shapes; the big one spans chunks
    // along both rows and a single huge row.
    int64_t d_q[2] = {3, 5}, d_v[1] = {7}, d_3d[3] = {2, 3, 4}, d_big[2] = {700, 600},
            d_row[1] = {600000}, d_empty[2] = {0, 4}, d_f64[1] = {9}, d_i64[1] = {6},
            d_i32[2] = {2, 2}, d_u64[1] = {4}, d_u8[1] = {300};
    float *q = xmalloc(15 * 4), *v = xmalloc(7 * 4), *t3 = xmalloc(24 * 4),
          *big = xmalloc(700 * 600 * 4), *row = xmalloc(600000 * 4);
    fill_random_bits(q, 15 * 4, 1);
    fill_random_bits(v, 7 * 4, 2);
    fill_random_bits(t3, 24 * 4, 3);
    fill_random_bits(big, 700 * 600 * 4, 4);
    fill_random_bits(row, 600000 * 4, 5);
    double f64[9];
    fill_random_bits(f64, sizeof f64, 6);
    f64[0] = 0.1, f64[1] = -0.0, f64[2] = INFINITY, f64[3] = 4.9e-324;
    int64_t i64[6] = {INT64_MIN, INT64_MAX, -1, 0, 1, 1234567890123456789};
    int32_t i32[4] = {INT32_MIN, INT32_MAX, -7, 42};
    uint64_t u64[4] = {UINT64_MAX, 0, 0x9E3779B97F4A7C15ull, 1ull << 63};
    uint8_t u8[300];
    for (int i = 0; i < 300; i++) u8[i] = (uint8_t)(i * 37 + 11);
    // The run config: multi-line UTF-8 text, and a large one (> 64 KiB, past
    // the size of an HDF5 object header message).
    const char *config = "model:\n  dim: 32  # hidden size\n  name: \"tiny-llama\" é ü 日本\n";
    size_t big_len = 200000;
    char *big_text = xmalloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++) big_text[i] = (i % 61 == 60) ? '\n' : (char)('a' + i % 26);
    big_text[big_len] = '\0';

    ckpt_writer *w = ckpt_create(path, err, sizeof err);
    if (!w) fail_msg("%s", err);
    char *tmp_path = path_in(f, "ckpt-00000007.h5.tmp");
    assert_true(file_exists(tmp_path));
    assert_false(file_exists(path));
    assert_int_equal(ckpt_put_tensor(w, "params/model.layers.0.self_attn.q_proj.weight", q, 2, d_q),
                     0);
    assert_int_equal(ckpt_put_tensor(w, "params/model.norm.weight", v, 1, d_v), 0);
    assert_int_equal(ckpt_put_tensor(w, "/optim/m/model.norm.weight", v, 1, d_v), 0);
    assert_int_equal(ckpt_put_tensor(w, "params/three_d", t3, 3, d_3d), 0);
    assert_int_equal(ckpt_put_tensor(w, "params/big", big, 2, d_big), 0);
    assert_int_equal(ckpt_put_tensor(w, "params/row", row, 1, d_row), 0);
    assert_int_equal(ckpt_put_tensor(w, "params/empty", NULL, 2, d_empty), 0);
    assert_int_equal(ckpt_put(w, "rope/inv_freq", CKPT_F64, f64, 1, d_f64), 0);
    assert_int_equal(ckpt_put(w, "data/cursor", CKPT_I64, i64, 1, d_i64), 0);
    assert_int_equal(ckpt_put(w, "data/small", CKPT_I32, i32, 2, d_i32), 0);
    assert_int_equal(ckpt_put(w, "rng/state", CKPT_U64, u64, 1, d_u64), 0);
    assert_int_equal(ckpt_put(w, "rng/blob", CKPT_U8, u8, 1, d_u8), 0);
    assert_int_equal(ckpt_put_attr_int64(w, "/", "step", 7), 0);
    assert_int_equal(ckpt_put_attr_int64(w, "/", "tokens_seen", INT64_MIN), 0);
    assert_int_equal(ckpt_put_attr_double(w, "/", "lr", 0.1), 0);
    assert_int_equal(ckpt_put_attr_double(w, "/", "tiny", -4.9e-324), 0);
    assert_int_equal(ckpt_put_attr_string(w, "/", "config", config), 0);
    assert_int_equal(ckpt_put_attr_string(w, "/", "big_config", big_text), 0);
    assert_int_equal(ckpt_put_attr_string(w, "/", "empty", ""), 0);
    assert_int_equal(ckpt_put_attr_string(w, "rope", "type", "yarn"), 0);
    assert_int_equal(ckpt_put_attr_double(w, "/rope", "attention_factor", 1.1386294361119891), 0);
    assert_int_equal(ckpt_put_attr_int64(w, "grid", "dp", 2), 0);  // a new group
    assert_int_equal(ckpt_put_attr_string(w, "rope/inv_freq", "unit", "rad/token"), 0);
    assert_string_equal(ckpt_writer_error(w), "");
    if (ckpt_commit(w, err, sizeof err)) fail_msg("%s", err);
    assert_false(file_exists(tmp_path));
    assert_true(file_exists(path));

    assert_int_equal(ckpt_verify(path, err, sizeof err), 0);
    ckpt_reader *r = ckpt_open(path, err, sizeof err);
    if (!r) fail_msg("%s", err);
    assert_string_equal(ckpt_path(r), path);

    float *q2 = xmalloc(15 * 4), *v2 = xmalloc(7 * 4), *t32 = xmalloc(24 * 4),
          *big2 = xmalloc(700 * 600 * 4), *row2 = xmalloc(600000 * 4);
    double f642[9];
    int64_t i642[6];
    int32_t i322[4];
    uint64_t u642[4];
    uint8_t u82[300];
    assert_int_equal(ckpt_get_tensor(r, "params/model.layers.0.self_attn.q_proj.weight", q2, 2, d_q,
                                     err, sizeof err),
                     0);
    assert_memory_equal(q, q2, 15 * 4);
    assert_int_equal(ckpt_get_tensor(r, "/params/model.norm.weight", v2, 1, d_v, err, sizeof err),
                     0);
    assert_memory_equal(v, v2, 7 * 4);
    memset(v2, 0, 7 * 4);
    assert_int_equal(ckpt_get_tensor(r, "optim/m/model.norm.weight", v2, 1, d_v, err, sizeof err),
                     0);
    assert_memory_equal(v, v2, 7 * 4);
    assert_int_equal(ckpt_get_tensor(r, "params/three_d", t32, 3, d_3d, err, sizeof err), 0);
    assert_memory_equal(t3, t32, 24 * 4);
    assert_int_equal(ckpt_get_tensor(r, "params/big", big2, 2, d_big, err, sizeof err), 0);
    assert_memory_equal(big, big2, 700 * 600 * 4);
    assert_int_equal(ckpt_get_tensor(r, "params/row", row2, 1, d_row, err, sizeof err), 0);
    assert_memory_equal(row, row2, 600000 * 4);
    assert_int_equal(ckpt_get_tensor(r, "params/empty", NULL, 2, d_empty, err, sizeof err), 0);
    assert_int_equal(ckpt_get(r, "rope/inv_freq", CKPT_F64, f642, 1, d_f64, err, sizeof err), 0);
    assert_memory_equal(f64, f642, sizeof f64);
    assert_int_equal(ckpt_get(r, "data/cursor", CKPT_I64, i642, 1, d_i64, err, sizeof err), 0);
    assert_memory_equal(i64, i642, sizeof i64);
    assert_int_equal(ckpt_get(r, "data/small", CKPT_I32, i322, 2, d_i32, err, sizeof err), 0);
    assert_memory_equal(i32, i322, sizeof i32);
    assert_int_equal(ckpt_get(r, "rng/state", CKPT_U64, u642, 1, d_u64, err, sizeof err), 0);
    assert_memory_equal(u64, u642, sizeof u64);
    assert_int_equal(ckpt_get(r, "rng/blob", CKPT_U8, u82, 1, d_u8, err, sizeof err), 0);
    assert_memory_equal(u8, u82, sizeof u8);

    int64_t iv;
    double dv;
    char *s;
    assert_int_equal(ckpt_get_attr_int64(r, "/", "step", &iv, err, sizeof err), 0);
    assert_int_equal(iv, 7);
    assert_int_equal(ckpt_get_attr_int64(r, "/", "tokens_seen", &iv, err, sizeof err), 0);
    assert_true(iv == INT64_MIN);
    assert_int_equal(
        ckpt_get_attr_int64(r, "/", "stretch_checkpoint_version", &iv, err, sizeof err), 0);
    assert_int_equal(iv, CKPT_FORMAT_VERSION);
    assert_int_equal(ckpt_get_attr_double(r, "/", "lr", &dv, err, sizeof err), 0);
    assert_memory_equal(&dv, &(double){0.1}, sizeof dv);
    assert_int_equal(ckpt_get_attr_double(r, "", "tiny", &dv, err, sizeof err), 0);
    assert_memory_equal(&dv, &(double){-4.9e-324}, sizeof dv);
    assert_int_equal(ckpt_get_attr_double(r, "rope", "attention_factor", &dv, err, sizeof err), 0);
    assert_memory_equal(&dv, &(double){1.1386294361119891}, sizeof dv);
    assert_int_equal(ckpt_get_attr_int64(r, "/grid", "dp", &iv, err, sizeof err), 0);
    assert_int_equal(iv, 2);
    assert_int_equal(ckpt_get_attr_string(r, "/", "config", &s, err, sizeof err), 0);
    assert_string_equal(s, config);
    free(s);
    assert_int_equal(ckpt_get_attr_string(r, "/", "big_config", &s, err, sizeof err), 0);
    assert_string_equal(s, big_text);
    free(s);
    assert_int_equal(ckpt_get_attr_string(r, "/", "empty", &s, err, sizeof err), 0);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(ckpt_get_attr_string(r, "rope", "type", &s, err, sizeof err), 0);
    assert_string_equal(s, "yarn");
    free(s);
    assert_int_equal(ckpt_get_attr_string(r, "rope/inv_freq", "unit", &s, err, sizeof err), 0);
    assert_string_equal(s, "rad/token");
    free(s);

    assert_true(ckpt_has(r, "params/big"));
    assert_true(ckpt_has(r, "optim/m"));
    assert_true(ckpt_has(r, "/"));
    assert_false(ckpt_has(r, "params/nope"));
    assert_false(ckpt_has(r, "nope/deeper/still"));
    assert_true(ckpt_has_attr(r, "/", "complete"));
    assert_true(ckpt_has_attr(r, "rope", "type"));
    assert_false(ckpt_has_attr(r, "rope", "factor"));
    assert_false(ckpt_has_attr(r, "nope", "type"));

    ckpt_dtype dt;
    int rank;
    int64_t dims[CKPT_MAX_RANK];
    assert_int_equal(ckpt_get_info(r, "params/three_d", &dt, &rank, dims, err, sizeof err), 0);
    assert_int_equal(dt, CKPT_F32);
    assert_int_equal(rank, 3);
    assert_true(dims[0] == 2 && dims[1] == 3 && dims[2] == 4);
    assert_int_equal(ckpt_get_info(r, "rng/blob", &dt, &rank, dims, err, sizeof err), 0);
    assert_int_equal(dt, CKPT_U8);

    // Listing: creation order, recursive, full paths.
    char **names;
    int count;
    assert_int_equal(ckpt_list(r, "params", &names, &count, err, sizeof err), 0);
    const char *want_params[] = {"params/model.layers.0.self_attn.q_proj.weight",
                                 "params/model.norm.weight",
                                 "params/three_d",
                                 "params/big",
                                 "params/row",
                                 "params/empty"};
    assert_int_equal(count, 6);
    for (int i = 0; i < count; i++) assert_string_equal(names[i], want_params[i]);
    ckpt_list_free(names, count);
    assert_int_equal(ckpt_list(r, "/optim/", &names, &count, err, sizeof err), 0);
    assert_int_equal(count, 1);
    assert_string_equal(names[0], "optim/m/model.norm.weight");
    ckpt_list_free(names, count);
    assert_int_equal(ckpt_list(r, "/", &names, &count, err, sizeof err), 0);
    assert_int_equal(count, 12);
    assert_string_equal(names[6], "optim/m/model.norm.weight");
    assert_string_equal(names[11], "rng/blob");
    ckpt_list_free(names, count);
    ckpt_close(r);

    free(q), free(v), free(t3), free(big), free(row);
    free(q2), free(v2), free(t32), free(big2), free(row2);
    free(big_text);
    free(tmp_path);
    free(path);
}

// ===========================================================================
// Errors reading: shapes, types, names

static void test_read_errors_name_the_dataset(void **state) {
    fixture *f = *state;
    char *path = path_in(f, "c.h5");
    write_small(path, 3, 11);
    char err[1024] = "";
    capture cap;
    capture_begin(&cap, f);
    ckpt_reader *r = ckpt_open(path, err, sizeof err);
    assert_non_null(r);
    float *buf = xmalloc(300 * 200 * 4);
    int64_t wrong[2] = {200, 300}, wrong3[3] = {300, 200, 1};

    assert_int_equal(
        ckpt_get_tensor(r, "params/model.embed_tokens.weight", buf, 2, wrong, err, sizeof err), -1);
    assert_contains(err, path);
    assert_contains(
        err, "dataset params/model.embed_tokens.weight has shape (300, 200), expected (200, 300)");
    assert_int_equal(
        ckpt_get_tensor(r, "params/model.embed_tokens.weight", buf, 3, wrong3, err, sizeof err),
        -1);
    assert_contains(err, "has shape (300, 200), expected (300, 200, 1)");
    int64_t right[2] = {300, 200};
    assert_int_equal(
        ckpt_get(r, "params/model.embed_tokens.weight", CKPT_I32, buf, 2, right, err, sizeof err),
        -1);
    assert_contains(err,
                    "dataset params/model.embed_tokens.weight has type float32, expected int32");
    assert_int_equal(
        ckpt_get_tensor(r, "params/model.missing.weight", buf, 2, right, err, sizeof err), -1);
    assert_contains(err, "no dataset params/model.missing.weight");
    assert_int_equal(ckpt_get_tensor(r, "params", buf, 2, right, err, sizeof err), -1);
    assert_contains(err, "params is not a dataset");
    int64_t iv;
    double dv;
    char *s = NULL;
    assert_int_equal(ckpt_get_attr_int64(r, "/", "stage", &iv, err, sizeof err), -1);
    assert_contains(err, "no attribute stage on /");
    assert_int_equal(ckpt_get_attr_double(r, "/", "step", &dv, err, sizeof err), -1);
    assert_contains(err, "attribute step on / is not a single float");
    assert_int_equal(ckpt_get_attr_string(r, "/", "step", &s, err, sizeof err), -1);
    assert_contains(err, "attribute step on / is not a single string");
    assert_null(s);
    char **names;
    int count;
    assert_int_equal(ckpt_list(r, "optim", &names, &count, err, sizeof err), -1);
    assert_contains(err, "no group optim");
    assert_int_equal(count, 0);
    ckpt_list_free(names, count);
    ckpt_close(r);
    capture_end_expect_silent(&cap);
    free(buf);
    free(path);
}

// ===========================================================================
// Errors writing: sticky, nothing left behind

static void test_writer_errors_leave_nothing(void **state) {
    fixture *f = *state;
    char *path = path_in(f, "w.h5"), *tmp = path_in(f, "w.h5.tmp");
    char err[1024] = "";
    float x[4] = {1, 2, 3, 4};
    int64_t d[1] = {4}, bad[1] = {-1};
    capture cap;
    capture_begin(&cap, f);
    H5E_auto2_t before_func, after_func;
    void *before_data, *after_data;
    H5Eget_auto2(H5E_DEFAULT, &before_func, &before_data);

    ckpt_writer *w = ckpt_create(path, err, sizeof err);
    assert_non_null(w);
    assert_int_equal(ckpt_put_tensor(w, "params/a", x, 1, d), 0);
    assert_int_equal(ckpt_put_tensor(w, "params/a", x, 1, d), -1);
    assert_contains(ckpt_writer_error(w), "dataset params/a written twice");
    // Sticky: later puts fail and the first message stays.
    assert_int_equal(ckpt_put_tensor(w, "params/b", x, 1, d), -1);
    assert_contains(ckpt_writer_error(w), "params/a written twice");
    assert_int_equal(ckpt_commit(w, err, sizeof err), -1);
    assert_contains(err, path);
    assert_contains(err, "dataset params/a written twice");
    assert_false(file_exists(path));
    assert_false(file_exists(tmp));

    const char *messages[] = {"rank 0 outside 1..8",
                              "invalid dimension -1",
                              "invalid dataset name",
                              "attribute complete is reserved",
                              "attribute step on / written twice",
                              "no data"};
    for (int c = 0; c < 6; c++) {
        w = ckpt_create(path, err, sizeof err);
        assert_non_null(w);
        int rc = 0;
        switch (c) {
        case 0: rc = ckpt_put_tensor(w, "a", x, 0, d); break;
        case 1: rc = ckpt_put_tensor(w, "a", x, 1, bad); break;
        case 2: rc = ckpt_put_tensor(w, "params//a", x, 1, d); break;
        case 3: rc = ckpt_put_attr_int64(w, "/", "complete", 1); break;
        case 4:
            ckpt_put_attr_int64(w, "/", "step", 1);
            rc = ckpt_put_attr_int64(w, "/", "step", 2);
            break;
        case 5: rc = ckpt_put_tensor(w, "a", NULL, 1, d); break;
        }
        assert_int_equal(rc, -1);
        assert_contains(ckpt_writer_error(w), messages[c]);
        if (c % 2)
            ckpt_abort(w);
        else
            assert_int_equal(ckpt_commit(w, err, sizeof err), -1);
        assert_false(file_exists(tmp));
        assert_false(file_exists(path));
    }

    char *nodir = path_in(f, "no/such/dir/x.h5");
    assert_null(ckpt_create(nodir, err, sizeof err));
    assert_contains(err, "cannot create");
    assert_contains(err, "no/such/dir/x.h5.tmp");
    free(nodir);

    H5Eget_auto2(H5E_DEFAULT, &after_func, &after_data);
    assert_true(before_func == after_func && before_data == after_data);  // restored
    capture_end_expect_silent(&cap);
    free(path);
    free(tmp);
}

// ===========================================================================
// Torn and corrupt files

static void test_truncated_file_is_rejected(void **state) {
    fixture *f = *state;
    char *path = path_in(f, "ckpt-00000001.h5");
    write_small(path, 1, 21);
    char err[1024] = "";
    assert_int_equal(ckpt_verify(path, err, sizeof err), 0);
    truncate_half(path);
    capture cap;
    capture_begin(&cap, f);
    assert_null(ckpt_open(path, err, sizeof err));
    assert_contains(err, path);
    assert_contains(err, "torn or corrupt");
    assert_contains(err, "truncated");
    err[0] = '\0';
    assert_int_equal(ckpt_verify(path, err, sizeof err), -1);
    assert_contains(err, "torn or corrupt");
    // Truncated inside the superblock: still a clear message.
    assert_int_equal(truncate(path, 20), 0);
    assert_int_equal(ckpt_verify(path, err, sizeof err), -1);
    assert_contains(err, path);
    capture_end_expect_silent(&cap);
    free(path);
}

static void test_flipped_bytes_fail_the_checksum(void **state) {
    fixture *f = *state;
    char *path = path_in(f, "ckpt-00000002.h5");
    write_small(path, 2, 31);
    // Chunks split rows evenly (full-size edge chunks would waste up to a
    // chunk per tensor): the file is its 2.64 MB of data plus little.
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    int64_t data_bytes = (300 * 200 + 1000 * 600) * 4;
    assert_true(st.st_size > data_bytes && st.st_size < data_bytes + data_bytes / 100 + 65536);
    const char *name = "params/model.layers.0.mlp.up_proj.weight";
    flip_bytes_in_chunk(path, name, 1);  // the middle one of three chunks
    char err[1024] = "";
    capture cap;
    capture_begin(&cap, f);
    // Metadata is intact, so the file opens; the damaged dataset does not read.
    ckpt_reader *r = ckpt_open(path, err, sizeof err);
    if (!r) fail_msg("%s", err);
    int64_t dims[2] = {1000, 600}, small[2] = {300, 200};
    float *buf = xmalloc(1000 * 600 * 4);
    assert_int_equal(ckpt_get_tensor(r, name, buf, 2, dims, err, sizeof err), -1);
    char want[512];
    snprintf(want, sizeof want, "checkpoint %s: dataset %s failed its checksum (corrupt file)",
             path, name);
    assert_string_equal(err, want);
    // The other dataset is undamaged and reads back exactly.
    float *ref = random_floats(300 * 200, 31);
    assert_int_equal(
        ckpt_get_tensor(r, "params/model.embed_tokens.weight", buf, 2, small, err, sizeof err), 0);
    assert_memory_equal(buf, ref, 300 * 200 * 4);
    ckpt_close(r);
    err[0] = '\0';
    assert_int_equal(ckpt_verify(path, err, sizeof err), -1);
    assert_string_equal(err, want);
    capture_end_expect_silent(&cap);
    free(ref);
    free(buf);
    free(path);
}

// Every byte of metadata (everything outside the chunks' raw data) and a
// sample of data bytes, flipped one at a time: each flip must be caught by
// ckpt_verify, or be harmless (everything reads back identical). No flip may
// silently change a tensor, an attribute or the listing.
#define FUZZ_ROWS 640
#define FUZZ_COLS 500  // 1.28 MB: two chunks, so a chunk index (fixed array)

static void write_fuzz_file(const char *path, const float *big) {
    char err[1024] = "";
    ckpt_writer *w = ckpt_create(path, err, sizeof err);
    assert_non_null(w);
    int64_t d_big[2] = {FUZZ_ROWS, FUZZ_COLS}, d_small[1] = {5}, d_empty[2] = {0, 3};
    int64_t small[5] = {1, -2, 3, -4, 5};
    assert_int_equal(ckpt_put_tensor(w, "params/big", big, 2, d_big), 0);
    assert_int_equal(ckpt_put(w, "data/cursor", CKPT_I64, small, 1, d_small), 0);
    assert_int_equal(ckpt_put_tensor(w, "params/empty", NULL, 2, d_empty), 0);
    assert_int_equal(ckpt_put_attr_int64(w, "/", "step", 77), 0);
    assert_int_equal(ckpt_put_attr_string(w, "/", "config", "model:\n  dim: 32\n"), 0);
    assert_int_equal(ckpt_put_attr_double(w, "rope", "factor", 8.0), 0);
    if (ckpt_commit(w, err, sizeof err)) fail_msg("%s", err);
}

static bool fuzz_matches(const char *path, const float *big, float *buf) {
    char err[1024];
    ckpt_reader *r = ckpt_open(path, err, sizeof err);
    if (!r) return false;
    int64_t d_big[2] = {FUZZ_ROWS, FUZZ_COLS}, d_small[1] = {5}, d_empty[2] = {0, 3};
    int64_t small[5], want_small[5] = {1, -2, 3, -4, 5}, step = 0;
    double factor = 0;
    char *config = NULL, **names = NULL;
    int count = 0;
    bool ok = ckpt_get_tensor(r, "params/big", buf, 2, d_big, err, sizeof err) == 0 &&
              !memcmp(buf, big, sizeof(float) * FUZZ_ROWS * FUZZ_COLS) &&
              ckpt_get(r, "data/cursor", CKPT_I64, small, 1, d_small, err, sizeof err) == 0 &&
              !memcmp(small, want_small, sizeof small) &&
              ckpt_get_tensor(r, "params/empty", NULL, 2, d_empty, err, sizeof err) == 0 &&
              ckpt_get_attr_int64(r, "/", "step", &step, err, sizeof err) == 0 && step == 77 &&
              ckpt_get_attr_double(r, "rope", "factor", &factor, err, sizeof err) == 0 &&
              factor == 8.0 &&
              ckpt_get_attr_string(r, "/", "config", &config, err, sizeof err) == 0 &&
              !strcmp(config, "model:\n  dim: 32\n") &&
              ckpt_list(r, "/", &names, &count, err, sizeof err) == 0 && count == 3;
    free(config);
    ckpt_list_free(names, count);
    ckpt_close(r);
    return ok;
}

// Marks in is_data the bytes holding the raw chunks of dataset name.
static void mark_chunks(const char *path, const char *name, bool *is_data, long size) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    hsize_t n = 0, offset[2], csize;
    haddr_t addr;
    unsigned mask;
    assert_true(H5Dget_num_chunks(dset, space, &n) >= 0);
    for (hsize_t k = 0; k < n; k++) {
        assert_true(H5Dget_chunk_info(dset, space, k, offset, &mask, &addr, &csize) >= 0);
        assert_true((long)(addr + csize) <= size);
        for (hsize_t b = 0; b < csize; b++) is_data[addr + b] = true;
    }
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
}

typedef struct {
    int detected, harmless, undetected, meta, data;
    long first_undetected;
} fuzz_counts;

// The flip loop. It runs in a child process: HDF5 1.10.8 leaks internal
// state when it meets a corrupt object header (h5dump does too; it then
// prints "HDF5: infinite loop closing library" at exit), and hundreds of
// such headers must not pollute the leak check of the test process. No
// cmocka assertions here: the child only counts.
static fuzz_counts fuzz_flips(const char *path, const bool *is_data, long size, const float *big) {
    fuzz_counts n = {.first_undetected = -1};
    float *buf = xmalloc(sizeof(float) * FUZZ_ROWS * FUZZ_COLS);
    FILE *fp = fopen(path, "r+b");
    char err[1024];
    for (long off = 0; fp && off < size; off++) {
        if (is_data[off] && off % 4099) continue;  // a sample of the raw data
        int c;
        if (fseek(fp, off, SEEK_SET) || (c = fgetc(fp)) == EOF || fseek(fp, off, SEEK_SET) ||
            fputc(c ^ 0x10, fp) == EOF || fflush(fp))
            break;
        if (is_data[off])
            n.data++;
        else
            n.meta++;
        if (ckpt_verify(path, err, sizeof err))
            n.detected++;
        else if (fuzz_matches(path, big, buf))
            n.harmless++;
        else if (n.undetected++ == 0)
            n.first_undetected = off;
        if (fseek(fp, off, SEEK_SET) || fputc(c, fp) == EOF || fflush(fp)) break;
    }
    if (fp) fclose(fp);
    free(buf);
    return n;
}

static void test_byte_flips_never_go_unnoticed(void **state) {
    fixture *f = *state;
    char *path = path_in(f, "fuzz.h5");
    float *big = random_floats(FUZZ_ROWS * FUZZ_COLS, 77);
    float *buf = xmalloc(sizeof(float) * FUZZ_ROWS * FUZZ_COLS);
    write_fuzz_file(path, big);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    long size = (long)st.st_size;
    bool *is_data = xcalloc((size_t)size, 1);
    mark_chunks(path, "params/big", is_data, size);
    mark_chunks(path, "data/cursor", is_data, size);

    capture cap;
    capture_begin(&cap, f);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        fuzz_counts n = fuzz_flips(path, is_data, size, big);
        ssize_t w = write(fds[1], &n, sizeof n);
        _exit(w == (ssize_t)sizeof n ? 0 : 1);
    }
    close(fds[1]);
    fuzz_counts n;
    assert_int_equal(read(fds[0], &n, sizeof n), (ssize_t)sizeof n);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    capture_end_expect_silent(&cap);

    print_message(
        "%ld-byte file, %d metadata bytes (all) + %d data bytes flipped: %d detected, "
        "%d harmless (read back identical), %d undetected\n",
        size, n.meta, n.data, n.detected, n.harmless, n.undetected);
    if (n.undetected)
        fail_msg("flip at byte %ld not detected and data changed", n.first_undetected);
    int meta_total = 0;
    for (long off = 0; off < size; off++) meta_total += !is_data[off];
    assert_int_equal(n.meta, meta_total);
    assert_int_equal(n.detected + n.harmless, n.meta + n.data);
    assert_true(n.detected > n.meta / 2);
    assert_true(fuzz_matches(path, big, buf));  // every byte restored
    free(is_data);
    free(big);
    free(buf);
    free(path);
}

// Files that are not complete stretch checkpoints, made with HDF5 directly.
static void make_h5(const char *path, int64_t version, bool complete) {
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t space = H5Screate(H5S_SCALAR);
    if (version) {
        hid_t a = H5Acreate2(file, "stretch_checkpoint_version", H5T_STD_I64LE, space, H5P_DEFAULT,
                             H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT64, &version);
        H5Aclose(a);
    }
    if (complete) {
        int64_t one = 1;
        hid_t a = H5Acreate2(file, "complete", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT64, &one);
        H5Aclose(a);
    }
    hsize_t n = 4;
    hid_t s1 = H5Screate_simple(1, &n, NULL);
    float x[4] = {0};
    hid_t d = H5Dcreate2(file, "plain", H5T_IEEE_F32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dclose(d);
    H5Sclose(s1);
    H5Sclose(space);
    H5Fclose(file);
}

static void test_foreign_and_unfinished_files(void **state) {
    fixture *f = *state;
    char *path = path_in(f, "x.h5");
    char err[1024] = "";
    capture cap;
    capture_begin(&cap, f);
    assert_null(ckpt_open(path, err, sizeof err));
    assert_contains(err, "cannot open: No such file or directory");

    FILE *fp = fopen(path, "w");
    fputs("model: {dim: 32}\n", fp);
    fclose(fp);
    assert_null(ckpt_open(path, err, sizeof err));
    assert_contains(err, "not an HDF5 file");

    make_h5(path, 0, true);
    assert_null(ckpt_open(path, err, sizeof err));
    assert_contains(err, "not a stretch checkpoint");
    make_h5(path, 2, true);
    assert_null(ckpt_open(path, err, sizeof err));
    assert_contains(err, "format version 2 is not supported (this build reads 1)");
    make_h5(path, 1, false);
    assert_null(ckpt_open(path, err, sizeof err));
    assert_contains(err, "incomplete");
    // Complete, but its dataset carries no checksum: verify refuses it.
    make_h5(path, 1, true);
    ckpt_reader *r = ckpt_open(path, err, sizeof err);
    assert_non_null(r);
    ckpt_close(r);
    assert_int_equal(ckpt_verify(path, err, sizeof err), -1);
    assert_contains(err, "dataset plain carries no Fletcher32 checksum");
    capture_end_expect_silent(&cap);
    free(path);
}

// ===========================================================================
// The run directory

static void test_publish_and_retention(void **state) {
    fixture *f = *state;
    char err[1024] = "", name[64];
    for (int64_t step = 10; step <= 50; step += 10) {
        ckpt_dir_filename(name, sizeof name, step);
        char *p = path_in(f, name);
        write_small(p, step, (uint64_t)step);
        if (ckpt_dir_publish(f->dir, name, 3, err, sizeof err)) fail_msg("%s", err);
        free(p);
        char *latest_path = path_in(f, "latest");
        char *latest = read_text(latest_path);
        char want[80];
        snprintf(want, sizeof want, "%s\n", name);
        assert_string_equal(latest, want);
        free(latest);
        free(latest_path);
    }
    assert_string_equal(name, "ckpt-00000050.h5");
    const char *gone[] = {"ckpt-00000010.h5", "ckpt-00000020.h5", "latest.tmp"};
    const char *kept[] = {"ckpt-00000030.h5", "ckpt-00000040.h5", "ckpt-00000050.h5"};
    for (int i = 0; i < 3; i++) {
        char *g = path_in(f, gone[i]), *k = path_in(f, kept[i]);
        assert_false(file_exists(g));
        assert_true(file_exists(k));
        free(g);
        free(k);
    }

    // A newer file from an abandoned run, another writer's .tmp (it may be
    // mid-write), and an unrelated file: publishing 60 with keep 2 deletes 30
    // and 40 and leaves the others; ckpt_dir_remove_tmps (at start, under the
    // out_dir lock) then removes the .tmp.
    char *newer = path_in(f, "ckpt-00000090.h5"), *tmp = path_in(f, "ckpt-00000070.h5.tmp"),
         *other = path_in(f, "notes.txt"), *p60 = path_in(f, "ckpt-00000060.h5");
    write_small(newer, 90, 90);
    FILE *fp = fopen(tmp, "w");
    fputs("torn", fp);
    fclose(fp);
    fp = fopen(other, "w");
    fclose(fp);
    write_small(p60, 60, 60);
    assert_int_equal(ckpt_dir_publish(f->dir, "ckpt-00000060.h5", 2, err, sizeof err), 0);
    const char *present[] = {"ckpt-00000050.h5", "ckpt-00000060.h5", "ckpt-00000090.h5",
                             "notes.txt", "ckpt-00000070.h5.tmp"};
    const char *absent[] = {"ckpt-00000030.h5", "ckpt-00000040.h5"};
    for (int i = 0; i < 5; i++) {
        char *p = path_in(f, present[i]);
        assert_true(file_exists(p));
        free(p);
    }
    for (int i = 0; i < 2; i++) {
        char *p = path_in(f, absent[i]);
        assert_false(file_exists(p));
        free(p);
    }
    assert_int_equal(ckpt_dir_remove_tmps(f->dir, err, sizeof err), 0);
    assert_false(file_exists(tmp));
    assert_true(file_exists(newer));
    assert_true(file_exists(other));
    // keep_last 0 keeps everything. Two spellings of step 60 sort by name
    // (ckpt-00000060.h5 first): publishing the second with keep 1 deletes 50
    // and the first; publishing the first never deletes the file just
    // published, even when it is the oldest of the candidates.
    assert_int_equal(ckpt_dir_publish(f->dir, "ckpt-00000060.h5", 0, err, sizeof err), 0);
    assert_true(file_exists(p60));
    char *alias = path_in(f, "ckpt-060.h5");
    write_small(alias, 60, 61);
    assert_int_equal(ckpt_dir_publish(f->dir, "ckpt-060.h5", 1, err, sizeof err), 0);
    assert_true(file_exists(alias));
    assert_false(file_exists(p60));
    assert_int_equal(ckpt_dir_publish(f->dir, "ckpt-00000060.h5", 1, err, sizeof err), -1);
    write_small(p60, 60, 60);
    assert_int_equal(ckpt_dir_publish(f->dir, "ckpt-00000060.h5", 1, err, sizeof err), 0);
    assert_true(file_exists(p60));
    assert_true(file_exists(alias));
    free(alias);
    char *p50 = path_in(f, "ckpt-00000050.h5");
    assert_false(file_exists(p50));
    assert_true(file_exists(newer));

    assert_int_equal(ckpt_dir_publish(f->dir, "ckpt-00000061.h5", 1, err, sizeof err), -1);
    assert_contains(err, "ckpt-00000061.h5: cannot publish");
    assert_int_equal(ckpt_dir_publish(f->dir, "model.h5", 1, err, sizeof err), -1);
    assert_contains(err, "not ckpt-<step>.h5");
    free(p50);
    free(newer);
    free(tmp);
    free(other);
    free(p60);
}

// Runs find_resumable with warnings captured; returns its result, the path
// in out and the warnings text (caller frees).
static int find(const fixture *f, const char *dir, char *out, size_t out_len, char *err,
                size_t errlen, char **warnings) {
    char wpath[96];
    snprintf(wpath, sizeof wpath, "%s/warnings.txt", f->dir);
    FILE *w = fopen(wpath, "w+");
    assert_non_null(w);
    int rc = ckpt_dir_find_resumable(dir, out, out_len, w, err, errlen);
    fclose(w);
    *warnings = read_text(wpath);
    unlink(wpath);
    return rc;
}

static void test_find_resumable_falls_back(void **state) {
    fixture *f = *state;
    char err[1024] = "", out[256] = "", *warn;
    char *run = path_in(f, "run");
    // No directory, then an empty one: nothing to resume.
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 0);
    assert_string_equal(warn, "");
    free(warn);
    assert_int_equal(mkdir(run, 0755), 0);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 0);
    free(warn);

    char path[3][256];
    for (int i = 0; i < 3; i++) {
        char name[64];
        ckpt_dir_filename(name, sizeof name, 100 * (i + 1));
        snprintf(path[i], sizeof path[i], "%s/%s", run, name);
        write_small(path[i], 100 * (i + 1), (uint64_t)i);
        assert_int_equal(ckpt_dir_publish(run, name, 5, err, sizeof err), 0);
    }
    capture cap;
    capture_begin(&cap, f);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 1);
    assert_string_equal(out, path[2]);
    assert_string_equal(warn, "");
    free(warn);

    // A leftover .tmp of a later, interrupted write is never considered
    // (even when it would verify).
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/ckpt-00000400.h5.tmp", run);
    write_small(tmp, 400, 4);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 1);
    assert_string_equal(out, path[2]);
    free(warn);

    // Latest corrupt -> the previous one, with a warning naming the bad file.
    flip_bytes_in_chunk(path[2], "params/model.layers.0.mlp.up_proj.weight", 2);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 1);
    assert_string_equal(out, path[1]);
    assert_contains(warn, "stretch: warning: skipping");
    assert_contains(warn, path[2]);
    assert_contains(warn, "failed its checksum");
    free(warn);

    // And that one torn too -> the first.
    truncate_half(path[1]);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 1);
    assert_string_equal(out, path[0]);
    assert_contains(warn, path[2]);
    assert_contains(warn, path[1]);
    free(warn);

    // No latest pointer: the newest good file, with a warning.
    char latest[300];
    snprintf(latest, sizeof latest, "%s/latest", run);
    assert_int_equal(unlink(latest), 0);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 1);
    assert_string_equal(out, path[0]);
    assert_contains(warn, "no latest pointer");
    free(warn);

    // A garbled latest pointer: the same, with a warning.
    FILE *fp = fopen(latest, "w");
    fputs("\x01garbage", fp);
    fclose(fp);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 1);
    assert_string_equal(out, path[0]);
    assert_contains(warn, "does not name a checkpoint");
    free(warn);

    // latest -> 100 while good files 200' and 300' (from a run resumed from
    // 100 and then abandoned) exist: latest wins, newer files are ignored.
    write_small(path[1], 200, 1);
    write_small(path[2], 300, 2);
    assert_int_equal(ckpt_dir_publish(run, "ckpt-00000100.h5", 5, err, sizeof err), 0);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), 1);
    assert_string_equal(out, path[0]);
    assert_string_equal(warn, "");
    free(warn);

    // Every checkpoint bad: an error, never a silent fresh start.
    truncate_half(path[0]);
    assert_int_equal(find(f, run, out, sizeof out, err, sizeof err, &warn), -1);
    assert_contains(err, "none of its 1 checkpoints is usable");
    assert_contains(warn, path[0]);
    free(warn);
    capture_end_expect_silent(&cap);
    free(run);
}

// ===========================================================================
// Tools read it

static void test_h5ls_and_summary(void **state) {
    fixture *f = *state;
    char *path = path_in(f, "ckpt-00000005.h5");
    char err[1024] = "";
    ckpt_writer *w = ckpt_create(path, err, sizeof err);
    assert_non_null(w);
    float inv[4] = {1.0f, 0.1f, 0.01f, 0.001f};
    int64_t d4[1] = {4}, d2[2] = {40, 30};
    float *x = random_floats(40 * 30, 5);
    ckpt_put_tensor(w, "params/model.layers.0.self_attn.q_proj.weight", x, 2, d2);
    ckpt_put_tensor(w, "rope/inv_freq", inv, 1, d4);
    ckpt_put_attr_int64(w, "/", "step", 5);
    ckpt_put_attr_string(w, "/", "config", "run:\n  steps: 5\n");
    ckpt_put_attr_string(w, "rope", "type", "linear");
    ckpt_put_attr_double(w, "rope", "factor", 4.0);
    if (ckpt_commit(w, err, sizeof err)) fail_msg("%s", err);

    char spath[256];
    snprintf(spath, sizeof spath, "%s/summary.txt", f->dir);
    FILE *out = fopen(spath, "w");
    assert_int_equal(ckpt_print_summary(path, out, err, sizeof err), 0);
    fclose(out);
    char *text = read_text(spath);
    assert_contains(text, "@step = 5\n");
    assert_contains(text, "@config = |\n        run:\n          steps: 5\n");
    assert_contains(text, "/params/model.layers.0.self_attn.q_proj.weight  float32 (40, 30)\n");
    assert_contains(
        text, "/rope/inv_freq  float32 (4) = [1, 0.100000001, 0.00999999978, 0.00100000005]\n");
    assert_contains(text, "@type = \"linear\"\n");
    assert_contains(text, "@factor = 4\n");
    assert_contains(text, "@stretch_checkpoint_version = 1\n");
    assert_contains(text, "2 datasets");
    free(text);

    if (access("/usr/bin/h5ls", X_OK) == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "h5ls -r '%s' > '%s' 2>&1", path, spath);
        assert_int_equal(system(cmd), 0);
        text = read_text(spath);
        assert_contains(text, "/params/model.layers.0.self_attn.q_proj.weight Dataset {40, 30}");
        free(text);
        snprintf(cmd, sizeof cmd, "h5dump -a /rope/type '%s' > '%s' 2>&1", path, spath);
        assert_int_equal(system(cmd), 0);
        text = read_text(spath);
        assert_contains(text, "\"linear\"");
        free(text);
    } else {
        fprintf(stderr, "h5ls not installed: tool check skipped\n");
    }
    free(x);
    free(path);
}

// ckpt_dir_resolve: what a checkpoint path argument names. Only names and
// files' existence matter here (the files are empty).
static void put_text(const char *dir, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void expect_resolves(const char *arg, const char *want) {
    char out[512], err[512];
    if (ckpt_dir_resolve(arg, out, sizeof out, err, sizeof err) != 0) fail_msg("%s: %s", arg, err);
    if (strcmp(out, want)) fail_msg("%s resolved to %s, expected %s", arg, out, want);
}

static void expect_refused(const char *arg, const char *says) {
    char out[512], err[512];
    assert_int_equal(ckpt_dir_resolve(arg, out, sizeof out, err, sizeof err), -1);
    if (!strstr(err, says) || strchr(err, '\n')) fail_msg("%s: %s (expected '%s')", arg, err, says);
}

static void test_resolve_paths(void **state) {
    fixture *f = *state;
    char run[128], arg[300], want[300], empty[128];
    snprintf(run, sizeof run, "%s/run", f->dir);
    assert_int_equal(mkdir(run, 0755), 0);
    put_text(run, "ckpt-00000003.h5", "");
    put_text(run, "ckpt-00000007.h5", "");
    put_text(run, "ckpt-00000009.h5.tmp", "");
    put_text(run, "latest", "ckpt-00000003.h5\n");  // latest, not the newest file, wins
    snprintf(want, sizeof want, "%s/ckpt-00000003.h5", run);
    expect_resolves(run, want);
    snprintf(arg, sizeof arg, "%s//", run);
    expect_resolves(arg, want);
    snprintf(arg, sizeof arg, "%s/latest", run);
    expect_resolves(arg, want);
    snprintf(arg, sizeof arg, "%s/ckpt-00000007.h5", run);  // a file is itself
    expect_resolves(arg, arg);
    snprintf(arg, sizeof arg, "%s/nowhere.h5", run);        // so is a missing path
    expect_resolves(arg, arg);
    // No latest: the newest ckpt-*.h5 (never a .tmp).
    snprintf(arg, sizeof arg, "%s/latest", run);
    assert_int_equal(unlink(arg), 0);
    snprintf(want, sizeof want, "%s/ckpt-00000007.h5", run);
    expect_resolves(run, want);
    // Refused, one line naming the directory or the pointer.
    snprintf(empty, sizeof empty, "%s/empty", f->dir);
    assert_int_equal(mkdir(empty, 0755), 0);
    snprintf(want, sizeof want, "%s: no checkpoint in this directory", empty);
    expect_refused(empty, want);
    put_text(run, "latest", "ckpt-00000099.h5\n");
    snprintf(arg, sizeof arg, "%s/latest", run);
    snprintf(want, sizeof want, "%s/latest names ckpt-00000099.h5, which cannot be opened", run);
    expect_refused(arg, want);
    expect_refused(run, want);
    put_text(run, "latest", "../../etc/passwd\n");
    snprintf(want, sizeof want, "%s/latest does not name a checkpoint", run);
    expect_refused(run, want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_errors_name_the_dataset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_errors_leave_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bytes_fail_the_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_flips_never_go_unnoticed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_and_unfinished_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_and_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_resumable_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_h5ls_and_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_paths, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
