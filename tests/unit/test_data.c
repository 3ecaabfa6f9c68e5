// Tests for data/shard and data/loader, on shards the tests write into a
// fresh temporary directory.
//
// Shards: round trips in both widths (layout checked byte by byte against
// docs/shard-format.md), CRC-32 check values, and every way a file can be
// wrong (bad magic, corrupt header, truncated, extended, offsets decreasing,
// unsupported version, corrupt payload) rejected with a message naming the
// file. Loader: document tokens are unique (doc g, index i) -> 1000 (g + 1) + i,
// so every token tells where it came from and the checks below recover the
// document order from the batches instead of re-implementing the loader.
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "loader.h"
#include "rng.h"
#include "shard.h"

// ---------------------------------------------------------------------------
// Fixture: a temporary directory, removed with its files afterwards.

typedef struct {
    char dir[64];
} fixture;

static int setup(void **state) {
    fixture *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/stretch_test_data_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void path_in(char *out, size_t n, const fixture *f, const char *name) {
    snprintf(out, n, "%s/%s", f->dir, name);
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = xmalloc(*n);
    assert_int_equal(fread(b, 1, *n, fp), *n);
    fclose(fp);
    return b;
}

static void write_all(const char *path, const uint8_t *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

// ---------------------------------------------------------------------------
// Documents: n docs, lengths from rng in [0, max_len], ids from id().

typedef struct {
    int64_t n_docs;
    int64_t *len;  // (n_docs)
    int64_t base;  // global index of the first document
} docs;

static int32_t doc_token(int64_t g, int64_t i) { return (int32_t)(1000 * (g + 1) + i); }

static docs make_docs(int64_t n_docs, int64_t max_len, int64_t base, uint64_t seed) {
    docs d = {n_docs, xmalloc((size_t)n_docs * sizeof(int64_t)), base};
    rng_state r;
    rng_seed(&r, seed);
    for (int64_t g = 0; g < n_docs; g++) d.len[g] = (int64_t)rng_below(&r, (uint64_t)max_len + 1);
    d.len[1] = 0;  // always an empty document
    return d;
}

// The tokenizer record round_trip writes.
#define TEST_TOK_FP 0x0123456789abcdefull
#define TEST_TOK_NAME "tests/tok/tokenizer.json"

// Writes docs to path; document 2 arrives in three pieces.
static void write_docs(const char *path, const docs *d, int64_t vocab) {
    char err[512];
    shard_writer *w = shard_writer_open_tok(path, vocab, TEST_TOK_FP, TEST_TOK_NAME, err, sizeof err);
    assert_non_null(w);
    int32_t buf[1000];
    for (int64_t g = 0; g < d->n_docs; g++) {
        for (int64_t i = 0; i < d->len[g]; i++) buf[i] = doc_token(d->base + g, i) % (int32_t)vocab;
        if (g == 2 && d->len[g] >= 3) {
            const int64_t a = d->len[g] / 3, b = 2 * d->len[g] / 3;
            assert_int_equal(shard_writer_append(w, buf, a, err, sizeof err), 0);
            assert_int_equal(shard_writer_append(w, buf + a, b - a, err, sizeof err), 0);
            assert_int_equal(shard_writer_append(w, buf + b, d->len[g] - b, err, sizeof err), 0);
            assert_int_equal(shard_writer_end_doc(w, err, sizeof err), 0);
        } else {
            assert_int_equal(shard_writer_add_doc(w, buf, d->len[g], err, sizeof err), 0);
        }
    }
    assert_int_equal(shard_writer_n_docs(w), d->n_docs);
    assert_int_equal(shard_writer_close(w, err, sizeof err), 0);
}

// ---------------------------------------------------------------------------
// Shard tests

static void test_crc32_vectors(void **state) {
    (void)state;
    assert_true(shard_crc32(0, "123456789", 9) == 0xcbf43926u);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_true(shard_crc32(0, fox, strlen(fox)) == 0x414fa339u);
    // Chaining equals one pass.
    assert_true(shard_crc32(shard_crc32(0, fox, 10), fox + 10, strlen(fox) - 10) == 0x414fa339u);
    assert_true(shard_crc32(0, "", 0) == 0);
}

static void round_trip(const fixture *f, int64_t vocab, int want_bytes) {
    char path[256], err[512];
    path_in(path, sizeof path, f, "rt.shard");
    docs d = make_docs(37, 300, 0, (uint64_t)vocab);
    write_docs(path, &d, vocab);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(file_exists(tmp));

    int64_t n_tokens = 0;
    for (int64_t g = 0; g < d.n_docs; g++) n_tokens += d.len[g];

    // The bytes, read against docs/shard-format.md.
    size_t size;
    uint8_t *b = read_all(path, &size);
    assert_memory_equal(b, "STRSHARD", 8);
    assert_int_equal(le32(b + 8), 2);
    assert_int_equal(le32(b + 12), want_bytes);
    assert_int_equal(le64(b + 16), vocab);
    assert_int_equal(le64(b + 24), n_tokens);
    assert_int_equal(le64(b + 32), d.n_docs);
    assert_int_equal(le64(b + 40), 128);
    assert_true(le64(b + 64) == TEST_TOK_FP);  // the tokenizer record: fingerprint, name
    assert_string_equal((const char *)b + 72, TEST_TOK_NAME);
    for (size_t i = 72 + strlen(TEST_TOK_NAME); i < 128; i++) assert_int_equal(b[i], 0);
    const uint64_t offsets_at = (128 + (uint64_t)n_tokens * want_bytes + 7) / 8 * 8;
    assert_int_equal(le64(b + 48), offsets_at);
    assert_int_equal(size, offsets_at + 8 * (d.n_docs + 1));
    assert_true(le32(b + 56) == shard_crc32(0, b + 64, size - 64));
    assert_true(le32(b + 60) == shard_crc32(0, b, 60));
    int64_t off = 0;
    for (int64_t g = 0; g <= d.n_docs; g++) {
        assert_int_equal(le64(b + offsets_at + 8 * g), off);
        if (g < d.n_docs) off += d.len[g];
    }
    for (int64_t i = 0, g = 0, j = 0; i < n_tokens; i++, j++) {
        while (j == d.len[g]) g++, j = 0;
        const uint64_t id = want_bytes == 2 ? (uint64_t)(b[128 + 2 * i] | b[129 + 2 * i] << 8)
                                            : (uint64_t)le32(b + 128 + 4 * i);
        assert_int_equal(id, doc_token(g, j) % vocab);
    }
    free(b);

    // The reader.
    shard s;
    assert_int_equal(shard_open(&s, path, err, sizeof err), 0);
    assert_int_equal(s.token_bytes, want_bytes);
    assert_int_equal(s.vocab_size, vocab);
    assert_int_equal(s.n_tokens, n_tokens);
    assert_int_equal(s.n_docs, d.n_docs);
    assert_true(s.tok_fingerprint == TEST_TOK_FP);
    assert_string_equal(s.tok_name, TEST_TOK_NAME);
    assert_int_equal(shard_verify(&s, err, sizeof err), 0);
    int32_t got[300];
    for (int64_t g = 0; g < d.n_docs; g++) {
        assert_int_equal(shard_doc_len(&s, g), d.len[g]);
        shard_read(got, &s, (int64_t)s.offsets[g], d.len[g]);
        for (int64_t i = 0; i < d.len[g]; i++) assert_int_equal(got[i], doc_token(g, i) % vocab);
    }
    shard_close(&s);
    free(d.len);
}

static void test_shard_round_trip_u16(void **state) { round_trip(*state, 1000, 2); }

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

// A version-1 shard (no tokenizer record, tokens at byte 64), made by hand
// from a version-2 one as docs/shard-format.md describes both: read, no
// fingerprint, the same documents.
static void test_shard_reads_version_1(void **state) {
    const fixture *f = *state;
    char path[256], v1[256], err[512];
    path_in(path, sizeof path, f, "v2.shard");
    path_in(v1, sizeof v1, f, "v1.shard");
    docs d = make_docs(20, 100, 0, 5);
    write_docs(path, &d, 1000);
    size_t size;
    uint8_t *b = read_all(path, &size);
    size_t n1 = size - 64;
    uint8_t *o = xmalloc(n1);
    memcpy(o, b, 64);
    memcpy(o + 64, b + 128, size - 128);  // tokens, padding, offsets, shifted by 64 bytes
    // 64 + n_tokens * 2 is a multiple of 8 exactly when 128 + n_tokens * 2 is: the padding stays.
    put_le32(o + 8, 1);
    put_le64(o + 40, 64);
    put_le64(o + 48, le64(b + 48) - 64);
    put_le32(o + 56, shard_crc32(0, o + 64, n1 - 64));
    put_le32(o + 60, shard_crc32(0, o, 60));
    FILE *fp = fopen(v1, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(o, 1, n1, fp), n1);
    fclose(fp);
    shard a, s;
    assert_int_equal(shard_open(&a, path, err, sizeof err), 0);
    assert_int_equal(shard_open(&s, v1, err, sizeof err), 0);
    assert_int_equal(shard_verify(&s, err, sizeof err), 0);
    assert_true(s.tok_fingerprint == 0);
    assert_string_equal(s.tok_name, "");
    assert_int_equal(s.tokens_at, 64);
    assert_int_equal(s.n_tokens, a.n_tokens);
    assert_int_equal(s.n_docs, a.n_docs);
    int32_t x[100], y[100];
    for (int64_t g = 0; g < s.n_docs; g++) {
        assert_int_equal(shard_doc_len(&s, g), shard_doc_len(&a, g));
        shard_read(x, &s, (int64_t)s.offsets[g], shard_doc_len(&s, g));
        shard_read(y, &a, (int64_t)a.offsets[g], shard_doc_len(&a, g));
        assert_memory_equal(x, y, sizeof(int32_t) * (size_t)shard_doc_len(&s, g));
    }
    shard_close(&s);
    // a version-1 header with a version-2 token offset is refused
    put_le64(o + 40, 128);
    put_le32(o + 60, shard_crc32(0, o, 60));
    fp = fopen(v1, "wb");
    assert_int_equal(fwrite(o, 1, n1, fp), n1);
    fclose(fp);
    assert_int_equal(shard_open(&s, v1, err, sizeof err), -1);
    assert_non_null(strstr(err, "token array at byte 128, expected 64"));
    shard_close(&a);
    free(o);
    free(b);
    free(d.len);
}
static void test_shard_round_trip_u32(void **state) { round_trip(*state, 100000, 4); }

static void test_shard_width_boundary(void **state) {
    const fixture *f = *state;
    char path[256], err[512];
    path_in(path, sizeof path, f, "w.shard");
    const int64_t vocabs[2] = {65536, 65537};
    const int want[2] = {2, 4};
    for (int k = 0; k < 2; k++) {
        shard_writer *w = shard_writer_open(path, vocabs[k], err, sizeof err);
        const int32_t ids[3] = {0, 65535, (int32_t)vocabs[k] - 1};
        assert_int_equal(shard_writer_add_doc(w, ids, 3, err, sizeof err), 0);
        assert_int_equal(shard_writer_close(w, err, sizeof err), 0);
        shard s;
        assert_int_equal(shard_open(&s, path, err, sizeof err), 0);
        assert_int_equal(s.token_bytes, want[k]);
        int32_t got[3];
        shard_read(got, &s, 0, 3);
        assert_memory_equal(got, ids, sizeof ids);
        assert_int_equal(shard_verify(&s, err, sizeof err), 0);
        shard_close(&s);
    }
}

static void test_shard_empty(void **state) {
    const fixture *f = *state;
    char path[256], err[512];
    path_in(path, sizeof path, f, "empty.shard");
    shard_writer *w = shard_writer_open(path, 300, err, sizeof err);
    assert_int_equal(shard_writer_close(w, err, sizeof err), 0);
    shard s;
    assert_int_equal(shard_open(&s, path, err, sizeof err), 0);
    assert_int_equal(s.n_docs, 0);
    assert_int_equal(s.n_tokens, 0);
    assert_int_equal(shard_verify(&s, err, sizeof err), 0);
    shard_close(&s);
}

static void test_shard_writer_rejects(void **state) {
    const fixture *f = *state;
    char path[256], err[512], tmp[300];
    path_in(path, sizeof path, f, "bad.shard");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_null(shard_writer_open(path, 0, err, sizeof err));
    assert_non_null(strstr(err, "vocab_size"));
    shard_writer *w = shard_writer_open(path, 256, err, sizeof err);
    assert_non_null(w);
    const int32_t bad_hi[2] = {5, 256}, bad_lo[1] = {-1};
    assert_int_equal(shard_writer_add_doc(w, bad_hi, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "256"));
    assert_int_equal(shard_writer_add_doc(w, bad_lo, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "-1"));
    assert_true(file_exists(tmp));
    shard_writer_abort(w);
    assert_false(file_exists(tmp));
    assert_false(file_exists(path));
    // A directory that does not exist.
    char nowhere[300];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/dir.shard", f->dir);
    assert_null(shard_writer_open(nowhere, 256, err, sizeof err));
    assert_non_null(strstr(err, nowhere));
}

// Writes a small valid shard and returns its bytes.
static uint8_t *good_shard(const char *path, size_t *n) {
    docs d = make_docs(6, 20, 0, 5);
    write_docs(path, &d, 70000);
    free(d.len);
    return read_all(path, n);
}

static void expect_rejected(const char *path, const char *what) {
    char err[512] = "";
    shard s;
    assert_int_equal(shard_open(&s, path, err, sizeof err), -1);
    if (!strstr(err, path) || !strstr(err, what)) {
        print_error("message \"%s\" should name %s and say \"%s\"\n", err, path, what);
        fail();
    }
    assert_null(strchr(err, '\n'));
}

static void test_shard_rejects_bad_files(void **state) {
    const fixture *f = *state;
    char path[256];
    path_in(path, sizeof path, f, "c.shard");
    size_t n;
    uint8_t *good = good_shard(path, &n);
    uint8_t *b = xmalloc(n + 16);

    expect_rejected("/nonexistent/x.shard", "cannot open");

    memcpy(b, good, n);
    b[3] ^= 0x20;
    write_all(path, b, n);
    expect_rejected(path, "bad magic");

    for (int at = 8; at < 64; at += 4) {  // any header field, or a checksum
        memcpy(b, good, n);
        b[at] ^= 0x01;
        write_all(path, b, n);
        expect_rejected(path, "corrupt header");
    }

    memcpy(b, good, n);
    put_le32(b + 8, 3);  // version 3 with a consistent checksum
    put_le32(b + 60, shard_crc32(0, b, 60));
    write_all(path, b, n);
    expect_rejected(path, "unsupported shard version 3");

    memcpy(b, good, n);
    put_le32(b + 12, 2);  // uint16 tokens although vocab_size is 70000
    put_le32(b + 60, shard_crc32(0, b, 60));
    write_all(path, b, n);
    expect_rejected(path, "token width");

    write_all(path, good, n - 1);
    expect_rejected(path, "truncated");
    write_all(path, good, n - 8);
    expect_rejected(path, "truncated");
    write_all(path, good, 40);
    expect_rejected(path, "truncated");
    write_all(path, good, 0);
    expect_rejected(path, "truncated");

    memcpy(b, good, n);
    memset(b + n, 0, 8);
    write_all(path, b, n + 8);
    expect_rejected(path, "trailing bytes");

    // Offsets: document 3 ends before it starts.
    memcpy(b, good, n);
    const uint64_t offsets_at = le64(b + 48);
    uint8_t *o3 = b + offsets_at + 8 * 3, *o4 = b + offsets_at + 8 * 4;
    const uint64_t v3 = le64(o3);
    uint8_t t[8];
    memcpy(t, o3, 8);
    memcpy(o3, o4, 8);
    memcpy(o4, t, 8);
    if (le64(o3) == v3) o3[0]++;  // make sure they really decrease
    write_all(path, b, n);
    expect_rejected(path, "offsets decrease at document");

    // Last offset not n_tokens.
    memcpy(b, good, n);
    b[n - 8] ^= 0x01;
    write_all(path, b, n);
    expect_rejected(path, "offsets run from");

    // A flipped token bit opens (O(n_docs) checks) but fails verification.
    memcpy(b, good, n);
    b[64 + 5] ^= 0x10;
    write_all(path, b, n);
    char err[512];
    shard s;
    assert_int_equal(shard_open(&s, path, err, sizeof err), 0);
    assert_int_equal(shard_verify(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "corrupt data"));
    shard_close(&s);

    free(b);
    free(good);
}

// ---------------------------------------------------------------------------
// Loader helpers

enum { BOS = 1, EOS = 2, PAD = 3, VOCAB = 1 << 20 };

typedef struct {
    char paths[2][256];
    const char *p[2];
    docs d[2];
    int64_t n_docs;
    int64_t len[128];  // (n_docs) by global index
    int64_t n_tokens;
} dataset;

static void make_dataset(dataset *ds, const fixture *f, int64_t max_len) {
    memset(ds, 0, sizeof *ds);
    for (int k = 0; k < 2; k++) {
        char name[32];
        snprintf(name, sizeof name, "part%d.shard", k);
        path_in(ds->paths[k], sizeof ds->paths[k], f, name);
        ds->p[k] = ds->paths[k];
        ds->d[k] = make_docs(k == 0 ? 23 : 31, max_len, ds->n_docs, 100 + (uint64_t)k);
        write_docs(ds->paths[k], &ds->d[k], VOCAB);
        for (int64_t g = 0; g < ds->d[k].n_docs; g++) {
            ds->len[ds->n_docs++] = ds->d[k].len[g];
            ds->n_tokens += ds->d[k].len[g];
        }
    }
}

static void free_dataset(dataset *ds) {
    for (int k = 0; k < 2; k++) free(ds->d[k].len);
}

static data_config base_config(data_mode mode, int64_t T, int64_t rows) {
    data_config c;
    memset(&c, 0, sizeof c);
    c.mode = mode;
    c.seq_len = T;
    c.batch_rows = rows;
    c.dp_size = 1;
    c.seed = 1234;
    c.shuffle = 1;
    c.bos_id = -1;
    c.eos_id = -1;
    c.pad_id = PAD;
    return c;
}

static data_loader *open_loader(const dataset *ds, const data_config *c) {
    char err[512];
    data_loader *L = data_loader_open(ds->p, 2, c, err, sizeof err);
    if (!L) print_error("data_loader_open: %s\n", err);
    assert_non_null(L);
    return L;
}

// Body token -> (document, index); -1 for a special token.
static int64_t tok_doc(int32_t t) { return t >= 1000 ? t / 1000 - 1 : -1; }
static int64_t tok_idx(int32_t t) { return t >= 1000 ? t % 1000 : -1; }

// `steps` batches flattened row after row: (steps * B * T) each.
typedef struct {
    int64_t n;
    int32_t *tok, *tgt, *pos, *seg;
    int64_t targets_counted;
} stream;

static stream run_batches(data_loader *L, int steps) {
    data_batch b;
    data_batch_init(&b, L);
    const int64_t per = b.B * b.T;
    stream s = {(int64_t)steps * per, NULL, NULL, NULL, NULL, 0};
    s.tok = xmalloc((size_t)s.n * 4);
    s.tgt = xmalloc((size_t)s.n * 4);
    s.pos = xmalloc((size_t)s.n * 4);
    s.seg = xmalloc((size_t)s.n * 4);
    for (int i = 0; i < steps; i++) {
        data_next_batch(L, &b);
        memcpy(s.tok + i * per, b.tokens, (size_t)per * 4);
        memcpy(s.tgt + i * per, b.targets, (size_t)per * 4);
        memcpy(s.pos + i * per, b.pos, (size_t)per * 4);
        memcpy(s.seg + i * per, b.seg, (size_t)per * 4);
        int64_t count = 0;
        for (int64_t j = 0; j < per; j++) count += b.targets[j] >= 0;
        assert_int_equal(b.n_targets, count);
        s.targets_counted += count;
    }
    data_batch_free(&b);
    return s;
}

static void free_stream(stream *s) {
    free(s->tok);
    free(s->tgt);
    free(s->pos);
    free(s->seg);
}

static void assert_streams_equal(const stream *a, const stream *b) {
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->tok, b->tok, (size_t)a->n * 4);
    assert_memory_equal(a->tgt, b->tgt, (size_t)a->n * 4);
    assert_memory_equal(a->pos, b->pos, (size_t)a->n * 4);
    assert_memory_equal(a->seg, b->seg, (size_t)a->n * 4);
}

// ---------------------------------------------------------------------------
// Pack mode

// Without bos/eos: every token is (g, i). Checks all pack invariants over
// the flattened stream and returns the order in which documents started.
static void check_pack_plain(const stream *s, const dataset *ds, int64_t T) {
    for (int64_t p = 0; p < s->n; p++) {
        const int64_t t = p % T;
        const int32_t tok = s->tok[p];
        const int64_t g = tok_doc(tok), i = tok_idx(tok);
        assert_true(g >= 0 && g < ds->n_docs && i < ds->len[g]);
        // Target: the next token of the same document, -1 after its last.
        assert_int_equal(s->tgt[p], i + 1 < ds->len[g] ? doc_token(g, i + 1) : -1);
        // The stream: (g, i + 1) follows (g, i); a new document starts at 0.
        if (p > 0) {
            const int32_t prev = s->tok[p - 1];
            const int64_t pg = tok_doc(prev), pi = tok_idx(prev);
            if (pi + 1 < ds->len[pg]) assert_true(g == pg && i == pi + 1);
            else assert_int_equal(i, 0);
        }
        // A piece starts at a row start or a document start.
        const int piece_start = t == 0 || i == 0;
        if (piece_start) {
            assert_int_equal(s->pos[p], 0);
            assert_int_equal(s->seg[p], t == 0 ? 0 : s->seg[p - 1] + 1);
        } else {
            assert_int_equal(s->pos[p], s->pos[p - 1] + 1);
            assert_int_equal(s->seg[p], s->seg[p - 1]);
        }
    }
}

static void test_pack_invariants_and_epoch_coverage(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 150);
    const int64_t T = 64, B = 3;
    data_config c = base_config(DATA_PACK, T, B);
    data_loader *L = open_loader(&ds, &c);
    assert_int_equal(data_loader_n_docs(L), ds.n_docs);
    assert_int_equal(data_loader_n_tokens(L), ds.n_tokens);
    // Two epochs and a bit.
    const int steps = (int)(2 * ds.n_tokens / (B * T) + 2);
    stream s = run_batches(L, steps);
    check_pack_plain(&s, &ds, T);

    // Every (document, index) pair exactly once per epoch: the first
    // n_tokens tokens, then the next n_tokens.
    uint8_t *seen = xcalloc((size_t)ds.n_docs * 1000, 1);
    for (int epoch = 0; epoch < 2; epoch++) {
        memset(seen, 0, (size_t)ds.n_docs * 1000);
        for (int64_t p = epoch * ds.n_tokens; p < (epoch + 1) * ds.n_tokens; p++) {
            const int64_t key = tok_doc(s.tok[p]) * 1000 + tok_idx(s.tok[p]);
            assert_int_equal(seen[key], 0);
            seen[key] = 1;
        }
        for (int64_t g = 0; g < ds.n_docs; g++)
            for (int64_t i = 0; i < ds.len[g]; i++) assert_int_equal(seen[g * 1000 + i], 1);
    }
    // The two epochs visit documents in different orders.
    assert_memory_not_equal(s.tok, s.tok + ds.n_tokens, (size_t)ds.n_tokens * 4);
    data_cursor cur;
    data_get_cursor(&cur, L);
    assert_int_equal(cur.epoch, 2);
    assert_int_equal(cur.rows, steps * B);
    free(seen);
    free_stream(&s);
    data_loader_free(L);
    free_dataset(&ds);
}

static void test_pack_bos_eos(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 150);
    const int64_t T = 48, B = 2;
    data_config c = base_config(DATA_PACK, T, B);
    c.bos_id = BOS;
    c.eos_id = EOS;
    data_loader *L = open_loader(&ds, &c);
    const int steps = (int)((ds.n_tokens + 2 * ds.n_docs) / (B * T) + 3);
    stream s = run_batches(L, steps);

    // Split the stream at BOS: every document is BOS, its tokens, EOS, and
    // the first n_docs documents are each document once (even empty ones).
    int64_t *count = xcalloc((size_t)ds.n_docs, sizeof *count);
    int64_t docs_seen = 0, empty_seen = 0;
    int64_t p = 0;
    while (p < s.n && docs_seen < ds.n_docs) {
        assert_int_equal(s.tok[p], BOS);
        int64_t g = tok_doc(s.tok[p + 1]);
        if (g < 0) {  // an empty document
            assert_int_equal(s.tok[p + 1], EOS);
            empty_seen++;
            p += 2;
        } else {
            for (int64_t i = 0; i < ds.len[g]; i++) assert_int_equal(s.tok[p + 1 + i], doc_token(g, i));
            assert_int_equal(s.tok[p + 1 + ds.len[g]], EOS);
            count[g]++;
            p += ds.len[g] + 2;
        }
        docs_seen++;
    }
    for (int64_t g = 0; g < ds.n_docs; g++) assert_int_equal(count[g], ds.len[g] > 0 ? 1 : 0);
    int64_t n_empty = 0;
    for (int64_t g = 0; g < ds.n_docs; g++) n_empty += ds.len[g] == 0;
    assert_int_equal(empty_seen, n_empty);

    // Positions, segments and targets over the whole stream.
    for (p = 0; p < s.n; p++) {
        const int64_t t = p % T;
        const int piece_start = t == 0 || s.tok[p] == BOS;
        if (piece_start) {
            assert_int_equal(s.pos[p], 0);
            assert_int_equal(s.seg[p], t == 0 ? 0 : s.seg[p - 1] + 1);
        } else {
            assert_int_equal(s.pos[p], s.pos[p - 1] + 1);
            assert_int_equal(s.seg[p], s.seg[p - 1]);
        }
        if (p + 1 < s.n) assert_int_equal(s.tgt[p], s.tok[p] == EOS ? -1 : s.tok[p + 1]);
    }
    free(count);
    free_stream(&s);
    data_loader_free(L);
    free_dataset(&ds);
}

static void test_shuffle_determinism(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 100);
    data_config c = base_config(DATA_PACK, 32, 2);
    data_loader *a = open_loader(&ds, &c), *b = open_loader(&ds, &c);
    c.seed = 99;
    data_loader *other = open_loader(&ds, &c);
    c.seed = 1234;
    c.shuffle = 0;
    data_loader *plain = open_loader(&ds, &c);
    const int steps = 30;
    stream sa = run_batches(a, steps), sb = run_batches(b, steps), so = run_batches(other, steps),
           sp = run_batches(plain, steps);
    assert_streams_equal(&sa, &sb);
    assert_memory_not_equal(sa.tok, so.tok, (size_t)sa.n * 4);
    // Without shuffling: documents in file order across both shards.
    int64_t p = 0;
    for (int64_t g = 0; g < ds.n_docs && p < sp.n; g++)
        for (int64_t i = 0; i < ds.len[g] && p < sp.n; i++, p++)
            assert_int_equal(sp.tok[p], doc_token(g, i));
    free_stream(&sa);
    free_stream(&sb);
    free_stream(&so);
    free_stream(&sp);
    data_loader_free(a);
    data_loader_free(b);
    data_loader_free(other);
    data_loader_free(plain);
    free_dataset(&ds);
}

// ---------------------------------------------------------------------------
// Whole mode

static void test_whole_invariants(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 300);
    const int64_t T = 64, B = 2;
    data_config c = base_config(DATA_WHOLE, T, B);
    // Expected rows of one epoch: (document, first index, length).
    int64_t expect = 0;
    uint8_t *want = xcalloc((size_t)ds.n_docs * 1000, 1);
    for (int64_t g = 0; g < ds.n_docs; g++) {
        for (int64_t at = 0; at < ds.len[g]; at += T) {
            const int64_t n = ds.len[g] - at < T ? ds.len[g] - at : T;
            if (2 * n >= T) {
                want[g * 1000 + at] = 1;
                expect++;
            }
        }
    }
    assert_true(expect > 10);
    data_loader *L = open_loader(&ds, &c);
    const int steps = (int)(expect / B + 1);
    stream s = run_batches(L, steps);
    for (int64_t r = 0; r < steps * B; r++) {
        const int32_t *tok = s.tok + r * T, *tgt = s.tgt + r * T, *pos = s.pos + r * T,
                      *seg = s.seg + r * T;
        const int64_t g = tok_doc(tok[0]), at = tok_idx(tok[0]);
        assert_true(g >= 0 && at % T == 0);
        const int64_t n = ds.len[g] - at < T ? ds.len[g] - at : T;
        assert_true(2 * n >= T);
        if (r < expect) {  // the first epoch: each expected row once
            assert_int_equal(want[g * 1000 + at], 1);
            want[g * 1000 + at] = 2;
        }
        for (int64_t t = 0; t < T; t++) {
            if (t < n) {
                assert_int_equal(tok[t], doc_token(g, at + t));
                assert_int_equal(pos[t], t);
                assert_int_equal(seg[t], 0);
                assert_int_equal(tgt[t], at + t + 1 < ds.len[g] ? doc_token(g, at + t + 1) : -1);
            } else {
                assert_int_equal(tok[t], PAD);
                assert_int_equal(tgt[t], -1);
                assert_int_equal(seg[t], -1);
            }
        }
    }
    for (int64_t k = 0; k < ds.n_docs * 1000; k++) assert_true(want[k] != 1);
    data_cursor cur;
    data_get_cursor(&cur, L);
    assert_int_equal(cur.epoch, 1);
    free(want);
    free_stream(&s);
    data_loader_free(L);
    free_dataset(&ds);
}

// ---------------------------------------------------------------------------
// Cursor

static int64_t encode_bytes(void *ctx, const char *text, size_t len, int32_t *out, int64_t cap) {
    (void)ctx;
    for (size_t i = 0; i < len && (int64_t)i < cap; i++) out[i] = (unsigned char)text[i];
    return (int64_t)len;
}

static void enable_passkey(data_config *c, double ratio) {
    c->passkey_ratio = ratio;
    c->passkey.encode = encode_bytes;
    c->passkey.n_keys = 1;
    c->passkey.depth = -1;
    c->passkey.bos_id = -1;
    c->passkey.answer_only = 1;
    c->passkey.no_preamble = 1;
}

static void test_cursor_resume(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 200);
    for (int mode = 0; mode < 2; mode++) {
        data_config c = base_config(mode ? DATA_WHOLE : DATA_PACK, 160, 2);
        c.bos_id = BOS;
        c.eos_id = EOS;
        enable_passkey(&c, 0.3);
        data_loader *L = open_loader(&ds, &c);
        stream warm = run_batches(L, 5);
        data_cursor snap;
        data_get_cursor(&snap, L);
        stream first = run_batches(L, 3);
        char err[512];
        assert_int_equal(data_set_cursor(L, &snap, err, sizeof err), 0);
        stream again = run_batches(L, 3);
        assert_streams_equal(&first, &again);

        // Through the checkpoint words, into a fresh loader with another seed.
        uint64_t words[DATA_CURSOR_WORDS];
        data_cursor_to_words(words, &snap);
        data_cursor back;
        assert_int_equal(data_cursor_from_words(&back, words, err, sizeof err), 0);
        c.seed = 777;
        data_loader *L2 = open_loader(&ds, &c);
        assert_int_equal(data_set_cursor(L2, &back, err, sizeof err), 0);
        stream fresh = run_batches(L2, 3);
        assert_streams_equal(&first, &fresh);
        // Epoch boundaries too: far into the run, across several epochs.
        stream more = run_batches(L, 60);
        data_get_cursor(&snap, L);
        assert_true(snap.epoch >= 1);
        stream next1 = run_batches(L, 4);
        assert_int_equal(data_set_cursor(L2, &snap, err, sizeof err), 0);
        stream next2 = run_batches(L2, 4);
        assert_streams_equal(&next1, &next2);

        free_stream(&warm);
        free_stream(&first);
        free_stream(&again);
        free_stream(&fresh);
        free_stream(&more);
        free_stream(&next1);
        free_stream(&next2);
        data_loader_free(L);
        data_loader_free(L2);
    }
    free_dataset(&ds);
}

// A stage switch: the cursor of a loader with one seq_len continues in a
// loader with another, exactly where the first stopped.
static void test_cursor_across_seq_len(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 150);
    data_config c = base_config(DATA_PACK, 32, 2);
    data_loader *L = open_loader(&ds, &c);
    stream ref = run_batches(L, 20);  // 1280 tokens of the stream
    data_loader_free(L);

    L = open_loader(&ds, &c);
    stream head = run_batches(L, 7);  // 448 tokens
    data_cursor cur;
    data_get_cursor(&cur, L);
    c.seq_len = 128;
    c.batch_rows = 1;
    data_loader *L2 = open_loader(&ds, &c);
    char err[512];
    assert_int_equal(data_set_cursor(L2, &cur, err, sizeof err), 0);
    stream tail = run_batches(L2, 6);  // 768 tokens
    assert_memory_equal(tail.tok, ref.tok + head.n, (size_t)tail.n * 4);
    free_stream(&ref);
    free_stream(&head);
    free_stream(&tail);
    data_loader_free(L);
    data_loader_free(L2);
    free_dataset(&ds);
}

static void test_cursor_rejected(void **state) {
    const fixture *f = *state;
    dataset ds;
    make_dataset(&ds, f, 100);
    data_config c = base_config(DATA_PACK, 32, 2);
    data_loader *L = open_loader(&ds, &c);
    stream s = run_batches(L, 3);
    data_cursor cur;
    data_get_cursor(&cur, L);

    // Other shards: a third file with different documents.
    char other[256], err[512];
    path_in(other, sizeof other, f, "other.shard");
    docs d = make_docs(9, 50, 0, 42);
    write_docs(other, &d, VOCAB);
    const char *paths[2] = {ds.p[0], other};
    data_loader *L2 = data_loader_open(paths, 2, &c, err, sizeof err);
    assert_non_null(L2);
    assert_int_equal(data_set_cursor(L2, &cur, err, sizeof err), -1);
    assert_non_null(strstr(err, "other shards"));

    data_cursor bad = cur;
    bad.doc_pos = ds.n_docs;
    assert_int_equal(data_set_cursor(L, &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "invalid cursor"));

    uint64_t words[DATA_CURSOR_WORDS];
    data_cursor_to_words(words, &cur);
    words[0] = 99;
    assert_int_equal(data_cursor_from_words(&bad, words, err, sizeof err), -1);
    assert_non_null(strstr(err, "version 99"));

    free(d.len);
    free_stream(&s);
    data_loader_free(L);
    data_loader_free(L2);
    free_dataset(&ds);
}

// ---------------------------------------------------------------------------
// Data parallelism

static void test_dp_slices(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 200);
    for (int mode = 0; mode < 2; mode++) {
        const int64_t T = 128, B = 4;
        const int steps = 25;
        data_config c = base_config(mode ? DATA_WHOLE : DATA_PACK, T, B);
        c.eos_id = EOS;
        enable_passkey(&c, 0.25);
        data_loader *L = open_loader(&ds, &c);
        data_batch g;
        data_batch_init(&g, L);
        data_loader *R[4];
        data_batch rb[4];
        const int sizes[2] = {2, 4};
        for (int si = 0; si < 2; si++) {
            const int dp = sizes[si];
            for (int r = 0; r < dp; r++) {
                data_config cr = c;
                cr.dp_size = dp;
                cr.dp_rank = r;
                R[r] = open_loader(&ds, &cr);
                data_batch_init(&rb[r], R[r]);
                assert_int_equal(rb[r].B, B / dp);
            }
            data_loader_free(L);
            L = open_loader(&ds, &c);
            for (int step = 0; step < steps; step++) {
                data_next_batch(L, &g);
                int64_t sum_targets = 0;
                data_cursor c0, cr;
                data_get_cursor(&c0, L);
                for (int r = 0; r < dp; r++) {
                    data_next_batch(R[r], &rb[r]);
                    const size_t rows = (size_t)(B / dp * T);
                    const size_t at = (size_t)r * rows;
                    assert_memory_equal(rb[r].tokens, g.tokens + at, rows * 4);
                    assert_memory_equal(rb[r].targets, g.targets + at, rows * 4);
                    assert_memory_equal(rb[r].pos, g.pos + at, rows * 4);
                    assert_memory_equal(rb[r].seg, g.seg + at, rows * 4);
                    assert_int_equal(rb[r].n_targets_global, g.n_targets_global);
                    sum_targets += rb[r].n_targets;
                    data_get_cursor(&cr, R[r]);
                    assert_memory_equal(&cr, &c0, sizeof cr);  // one global cursor
                }
                assert_int_equal(sum_targets, g.n_targets_global);
                assert_int_equal(g.n_targets, g.n_targets_global);
            }
            for (int r = 0; r < dp; r++) {
                data_batch_free(&rb[r]);
                data_loader_free(R[r]);
            }
        }
        data_batch_free(&g);
        data_loader_free(L);
    }
    free_dataset(&ds);
}

// ---------------------------------------------------------------------------
// Passkey rows mixed in

static void test_passkey_mix(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 150);
    const int64_t T = 200, B = 4;
    const int steps = 50;
    data_config c = base_config(DATA_PACK, T, B);
    enable_passkey(&c, 0.5);
    data_loader *L = open_loader(&ds, &c);
    stream s = run_batches(L, steps);
    int64_t synthetic = 0;
    for (int64_t r = 0; r < steps * B; r++) {
        const int32_t *tok = s.tok + r * T;
        if (tok[0] >= 256) continue;  // a text row (document tokens are >= 1000)
        synthetic++;
        char text[256];
        for (int64_t t = 0; t < T; t++) {
            assert_true(tok[t] < 256);
            text[t] = (char)tok[t];
            assert_int_equal(s.pos[r * T + t], t);
            assert_int_equal(s.seg[r * T + t], 0);
        }
        text[T] = 0;
        assert_non_null(strstr(text, "What is the pass key? The pass key is "));
        int64_t with_target = 0;
        for (int64_t t = 0; t < T; t++) with_target += s.tgt[r * T + t] >= 0;
        assert_int_equal(with_target, 6);  // " 12345", answer only
    }
    // 200 rows at p = 0.5: mean 100, sd 7.1.
    assert_true(synthetic > 60 && synthetic < 140);
    free_stream(&s);
    data_loader_free(L);
    free_dataset(&ds);
}

// mix_per_batch: every batch is all passkey rows or all text rows, passkey
// batches at the ratio; the stream resumes from a cursor mid-run; dp ranks
// agree on each batch's kind (each rank's rows are its slice of one batch).
static void test_passkey_mix_per_batch(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 150);
    const int64_t T = 200, B = 4;
    const int steps = 80;
    data_config c = base_config(DATA_PACK, T, B);
    enable_passkey(&c, 0.5);
    c.mix_per_batch = 1;
    data_loader *L = open_loader(&ds, &c);
    stream s = run_batches(L, steps);
    int passkey_batches = 0;
    for (int i = 0; i < steps; i++) {
        int synthetic = 0;
        for (int64_t r = 0; r < B; r++) synthetic += s.tok[(i * B + r) * T] < 256;
        assert_true(synthetic == 0 || synthetic == B);
        passkey_batches += synthetic == B;
    }
    // 80 batches at p = 0.5: mean 40, sd 4.5.
    assert_true(passkey_batches > 22 && passkey_batches < 58);
    // Resume mid-run: the same batches again.
    data_cursor snap;
    data_get_cursor(&snap, L);
    stream first = run_batches(L, 6);
    char err[512];
    assert_int_equal(data_set_cursor(L, &snap, err, sizeof err), 0);
    stream again = run_batches(L, 6);
    assert_streams_equal(&first, &again);
    // Two dp ranks: rank k's rows are rows [2k, 2k + 2) of the 1-rank batches.
    data_config c2 = c;
    c2.dp_size = 2;
    for (int rank = 0; rank < 2; rank++) {
        c2.dp_rank = rank;
        data_loader *R = open_loader(&ds, &c2);
        stream part = run_batches(R, steps);
        for (int i = 0; i < steps; i++)
            assert_memory_equal(part.tok + (int64_t)i * 2 * T, s.tok + ((int64_t)i * B + 2 * rank) * T,
                                (size_t)(2 * T) * sizeof(int32_t));
        free_stream(&part);
        data_loader_free(R);
    }
    free_stream(&first);
    free_stream(&again);
    free_stream(&s);
    data_loader_free(L);
    free_dataset(&ds);
}

// ---------------------------------------------------------------------------
// Configuration errors

static void expect_open_error(const char *const *paths, int n, const data_config *c,
                              const char *what) {
    char err[512] = "";
    data_loader *L = data_loader_open(paths, n, c, err, sizeof err);
    assert_null(L);
    if (!strstr(err, what)) {
        print_error("message \"%s\" should say \"%s\"\n", err, what);
        fail();
    }
}

static void test_loader_errors(void **state) {
    const fixture *f = *state;
    dataset ds;
    make_dataset(&ds, f, 100);
    data_config c = base_config(DATA_PACK, 32, 6);
    c.dp_size = 4;
    expect_open_error(ds.p, 2, &c, "not divisible");
    c = base_config(DATA_WHOLE, 32, 2);
    c.pad_id = -1;
    expect_open_error(ds.p, 2, &c, "pad_id");
    c = base_config(DATA_WHOLE, 1000, 2);  // no document of 500 tokens
    expect_open_error(ds.p, 2, &c, "longest document");
    c = base_config(DATA_PACK, 32, 2);
    c.eos_id = VOCAB;
    expect_open_error(ds.p, 2, &c, "eos_id");
    c = base_config(DATA_PACK, 32, 2);
    enable_passkey(&c, 0.1);
    expect_open_error(ds.p, 2, &c, "too short for passkey");

    // Shards of different vocabularies, a corrupt shard.
    char small[256], bad[256];
    path_in(small, sizeof small, f, "small.shard");
    docs d = make_docs(4, 20, 0, 3);
    write_docs(small, &d, 50000);
    free(d.len);
    c = base_config(DATA_PACK, 32, 2);
    const char *mixed[2] = {ds.p[0], small};
    expect_open_error(mixed, 2, &c, "differs from");
    path_in(bad, sizeof bad, f, "bad.shard");
    write_all(bad, (const uint8_t *)"STRSHARD but not really", 23);
    const char *with_bad[2] = {ds.p[0], bad};
    expect_open_error(with_bad, 2, &c, bad);
    free_dataset(&ds);
}

// PoSE: passkey rows keep their tokens, positions run 0.. up to a split and
// then jump ahead by a skip in [0, pose_len - T]; the same with the same seed.
static void test_pose_positions(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 50);
    data_config c = base_config(DATA_PACK, 160, 4);
    enable_passkey(&c, 1.0);
    c.pose_len = 1000;
    data_loader *L = open_loader(&ds, &c);
    data_batch b;
    data_batch_init(&b, L);
    int skipped = 0;
    for (int it = 0; it < 10; it++) {
        data_next_batch(L, &b);
        for (int64_t r = 0; r < b.B; r++) {
            const int32_t *pos = b.pos + r * b.T;
            assert_int_equal(pos[0], 0);
            int jumps = 0;
            for (int64_t i = 1; i < b.T; i++) {
                int32_t d = pos[i] - pos[i - 1];
                assert_true(d >= 1);
                if (d > 1) jumps++;
            }
            assert_true(jumps <= 1);
            assert_true(pos[b.T - 1] <= 1000 - 1);
            skipped += jumps;
        }
    }
    assert_true(skipped > 20);  // almost every row of 40 skips (a skip of 0 is rare)
    data_batch_free(&b);
    data_loader_free(L);
    c.pose_len = 160;  // must exceed seq_len
    char err[256];
    assert_null(data_loader_open(ds.p, 2, &c, err, sizeof err));
    assert_non_null(strstr(err, "pose_len"));
    free_dataset(&ds);
}

// Packed passkey rows: every row is a run of whole passkey samples, each its
// own document (seg 0, 1, ... in order, positions restarting at 0), each at
// least passkey_pack_min long, each asking for the key its own needle holds;
// lengths spread from short to long.
static void test_passkey_pack(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 50);
    data_config c = base_config(DATA_PACK, 640, 4);
    enable_passkey(&c, 1.0);
    c.passkey.compact = 1;
    c.passkey_pack_min = 80;
    data_loader *L = open_loader(&ds, &c);
    data_batch b;
    data_batch_init(&b, L);
    int short_docs = 0, long_docs = 0, docs = 0;
    for (int it = 0; it < 10; it++) {
        data_next_batch(L, &b);
        for (int64_t r = 0; r < b.B; r++) {
            const int32_t *tok = b.tokens + r * b.T, *tgt = b.targets + r * b.T;
            const int32_t *pos = b.pos + r * b.T, *seg = b.seg + r * b.T;
            int64_t start = 0;
            while (start < b.T) {
                int64_t end = start;
                while (end < b.T && seg[end] == seg[start]) end++;
                assert_int_equal(seg[start], start == 0 ? 0 : seg[start - 1] + 1);
                for (int64_t i = start; i < end; i++) assert_int_equal(pos[i], i - start);
                const int64_t n = end - start;
                assert_true(n >= 80);
                short_docs += n < 200;
                long_docs += n >= 400;
                docs++;
                // The answer: the targets of this document, 5 digits.
                char answer[8] = {0};
                int n_answer = 0;
                for (int64_t i = start; i < end; i++)
                    if (tgt[i] >= 0) {
                        assert_true(n_answer < 5 && tgt[i] >= '0' && tgt[i] <= '9');
                        answer[n_answer++] = (char)tgt[i];
                    }
                assert_int_equal(n_answer, 5);
                // Its own needle "pass key is:<answer>." sits inside the document.
                char needle[32];
                snprintf(needle, sizeof needle, "pass key is:%s.", answer);
                const int64_t nl = (int64_t)strlen(needle);
                bool found = false;
                for (int64_t i = start; i + nl <= end && !found; i++) {
                    int64_t j = 0;
                    while (j < nl && tok[i + j] == (uint8_t)needle[j]) j++;
                    found = j == nl;
                }
                assert_true(found);
                start = end;
            }
        }
    }
    assert_true(docs > 40 && short_docs > 5 && long_docs > 5);
    data_batch_free(&b);
    data_loader_free(L);
    c.passkey_pack_min = 20;  // shorter than a passkey sample can be
    char err[256];
    assert_null(data_loader_open(ds.p, 2, &c, err, sizeof err));
    assert_non_null(strstr(err, "passkey_pack_min"));
    free_dataset(&ds);
}

// passkey_pack_long: the length of a row's first sample against its
// distribution. A row is whole (one sample of T) with probability p; else the
// first length is floor(lo * (T/lo)^u), u uniform, and becomes T when the rest
// would be shorter than lo, i.e. for u >= ln((T - lo + 1)/lo) / ln(T/lo). So
// P(first in [a, b)) = (1 - p) ln(b/a) / ln(T/lo) for lo <= a < b <= T - lo + 1
// and P(first = T) = p + (1 - p) (1 - ln((T - lo + 1)/lo) / ln(T/lo)).
// Counts of N rows must lie within 5 binomial standard deviations of N P
// (a miss by chance: < 1e-6 per bin). With T 640 and lo 80, 2400 rows hold
// ~152 whole rows (sd 12) at p = 0 and ~826 (sd 23) at p = 0.3; p = 1 leaves
// no packed row.
static void pack_first_lengths(const dataset *ds, double p, int64_t T, int64_t lo, int64_t *first,
                               int64_t n_rows) {
    data_config c = base_config(DATA_PACK, T, 8);
    enable_passkey(&c, 1.0);
    c.passkey.compact = 1;
    c.passkey_pack_min = lo;
    c.passkey_pack_long = p;
    data_loader *L = open_loader(ds, &c);
    data_batch b;
    data_batch_init(&b, L);
    for (int64_t got = 0; got < n_rows;) {
        data_next_batch(L, &b);
        for (int64_t r = 0; r < b.B && got < n_rows; r++) {
            const int32_t *seg = b.seg + r * b.T;
            int64_t n = 0;
            while (n < b.T && seg[n] == 0) n++;
            first[got++] = n;
        }
    }
    data_batch_free(&b);
    data_loader_free(L);
}

static void expect_count(int64_t count, int64_t n_rows, double prob, const char *what) {
    const double mean = (double)n_rows * prob, sd = sqrt((double)n_rows * prob * (1.0 - prob));
    if (fabs((double)count - mean) > 5.0 * sd + 1e-9)
        fail_msg("%s: %lld rows, expected %.1f +- 5 x %.1f", what, (long long)count, mean, sd);
}

static void test_passkey_pack_long(void **state) {
    dataset ds;
    make_dataset(&ds, *state, 50);
    enum { N = 2400 };
    const int64_t T = 640, lo = 80;
    const double lnr = log((double)T / (double)lo), cut = log((double)(T - lo + 1) / (double)lo) / lnr;
    const int64_t edges[] = {80, 160, 320, T - lo + 1};  // bins of packed first lengths
    int64_t *first = malloc(N * sizeof *first);
    assert_non_null(first);
    const double ps[] = {0.0, 0.3, 1.0};
    for (int k = 0; k < 3; k++) {
        const double p = ps[k];
        pack_first_lengths(&ds, p, T, lo, first, N);
        int64_t whole = 0, bins[3] = {0, 0, 0};
        for (int64_t i = 0; i < N; i++) {
            if (first[i] == T) {
                whole++;
                continue;
            }
            int j = 0;
            while (j < 3 && first[i] >= edges[j + 1]) j++;
            assert_true(j < 3 && first[i] >= lo);  // a packed first sample is in [lo, T - lo]
            bins[j]++;
        }
        expect_count(whole, N, p + (1.0 - p) * (1.0 - cut), p == 0.0 ? "whole, p 0" : "whole rows");
        for (int j = 0; j < 3; j++)
            expect_count(bins[j], N, (1.0 - p) * log((double)edges[j + 1] / (double)edges[j]) / lnr,
                         "first length bin");
        if (p == 1.0) assert_int_equal(whole, N);
    }
    free(first);
    // Bad values: out of [0, 1], or set without packing.
    data_config c = base_config(DATA_PACK, T, 8);
    enable_passkey(&c, 1.0);
    c.passkey.compact = 1;
    c.passkey_pack_min = lo;
    char err[256];
    c.passkey_pack_long = 1.5;
    assert_null(data_loader_open(ds.p, 2, &c, err, sizeof err));
    assert_non_null(strstr(err, "passkey_pack_long"));
    c.passkey_pack_long = 0.5;
    c.passkey_pack_min = 0;
    assert_null(data_loader_open(ds.p, 2, &c, err, sizeof err));
    assert_non_null(strstr(err, "passkey_pack_long"));
    free_dataset(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_vectors),
        cmocka_unit_test_setup_teardown(test_shard_round_trip_u16, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_reads_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_round_trip_u32, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_width_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_writer_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_rejects_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_invariants_and_epoch_coverage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_bos_eos, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shuffle_determinism, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_invariants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_across_seq_len, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dp_slices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_mix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_mix_per_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pose_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_pack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_pack_long, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
