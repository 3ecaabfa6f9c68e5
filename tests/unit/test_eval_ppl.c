// Tests for trainer/eval/eval_ppl: the windows of held-out shards against a
// brute-force listing written here (every window inside one document,
// non-overlapping and sliding, the evenly spaced sample, none when no
// document is long enough), and the scored NLL against per-token losses
// of model_forward on each window, read from the test's own copy of the
// documents.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "eval_ppl.h"
#include "shard.h"

enum { V = 29, N_SHARDS = 2, MAX_DOCS = 8 };

// Documents by shard: lengths (a 0 is an empty document).
static const int64_t DOC_LEN[N_SHARDS][MAX_DOCS] = {{5, 70, 33, 0, 129, -1}, {64, 65, 200, 9, -1}};

typedef struct {
    char dir[64], paths[N_SHARDS][128];
    int32_t *docs[N_SHARDS][MAX_DOCS];  // the tokens of every document
    eval_text text;
} fixture;

static int32_t token_of(int s, int d, int64_t i) { return (int32_t)((s * 131 + d * 31 + i * 7 + i * i % 11) % V); }

static int setup(void **state) {
    fixture *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/stretch_test_evalppl_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    char err[512];
    for (int s = 0; s < N_SHARDS; s++) {
        char path[sizeof f->paths[s]];  // via a local: gcc -O1 -Wrestrict sees f->dir in *f
        snprintf(path, sizeof path, "%s/s%d.shard", f->dir, s);
        memcpy(f->paths[s], path, sizeof path);
        shard_writer *w = shard_writer_open(f->paths[s], V, err, sizeof err);
        if (!w) return -1;
        for (int d = 0; DOC_LEN[s][d] >= 0; d++) {
            f->docs[s][d] = xmalloc(sizeof(int32_t) * (size_t)(DOC_LEN[s][d] + 1));
            for (int64_t i = 0; i < DOC_LEN[s][d]; i++) f->docs[s][d][i] = token_of(s, d, i);
            if (shard_writer_add_doc(w, f->docs[s][d], DOC_LEN[s][d], err, sizeof err)) return -1;
        }
        if (shard_writer_close(w, err, sizeof err)) return -1;
    }
    const char *paths[N_SHARDS] = {f->paths[0], f->paths[1]};
    if (eval_text_open(&f->text, paths, N_SHARDS, err, sizeof err)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    eval_text_close(&f->text);
    for (int s = 0; s < N_SHARDS; s++) {
        unlink(f->paths[s]);
        for (int d = 0; d < MAX_DOCS; d++) free(f->docs[s][d]);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

// Every window, brute force: (shard, document, start within the document).
typedef struct {
    int s, d;
    int64_t at;
} ref_window;

static int64_t all_windows(ref_window *out, int64_t T, int64_t stride) {
    int64_t n = 0;
    for (int s = 0; s < N_SHARDS; s++)
        for (int d = 0; DOC_LEN[s][d] >= 0; d++)
            for (int64_t at = 0; at + T + 1 <= DOC_LEN[s][d]; at += stride) out[n++] = (ref_window){s, d, at};
    return n;
}

static int64_t doc_offset(int s, int d) {
    int64_t o = 0;
    for (int k = 0; k < d; k++) o += DOC_LEN[s][k];
    return o;
}

static void test_open(void **state) {
    fixture *f = *state;
    assert_int_equal(f->text.n, 2);
    assert_int_equal(f->text.vocab_size, V);
    assert_int_equal(f->text.longest, 200);
    char err[512];
    eval_text t;
    const char *missing = "/nonexistent/x.shard";
    assert_int_equal(eval_text_open(&t, &missing, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, missing));
}

static void test_windows(void **state) {
    fixture *f = *state;
    static ref_window ref[4096];
    const int64_t cases[][3] = {  // T, stride, n_max
        {16, 16, 1000}, {16, 16, 5}, {16, 4, 7}, {64, 64, 8}, {64, 64, 1}, {64, 1, 100}, {64, 1, 3},
        {128, 128, 8}, {128, 32, 2}, {199, 199, 4}, {1, 1, 13},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t T = cases[c][0], stride = cases[c][1], n_max = cases[c][2];
        int64_t count = all_windows(ref, T, stride);
        eval_window *w;
        int64_t n = eval_windows(&w, &f->text, T, stride, n_max);
        assert_int_equal(n, count < n_max ? count : n_max);
        for (int64_t k = 0; k < n; k++) {
            // The k-th of n evenly spaced picks, in floating point here.
            int64_t idx = count <= n_max ? k : (int64_t)floor((k + 0.5) * (double)count / (double)n_max);
            const ref_window *r = &ref[idx];
            assert_int_equal(w[k].shard, r->s);
            assert_int_equal(w[k].start, doc_offset(r->s, r->d) + r->at);
            // Inside its document, T + 1 tokens.
            assert_true(r->at + T + 1 <= DOC_LEN[r->s][r->d]);
        }
        free(w);
    }
    // No document holds 201 tokens.
    eval_window *w = (eval_window *)1;
    assert_int_equal(eval_windows(&w, &f->text, 200, 200, 8), 0);
    assert_null(w);
    assert_int_equal(eval_windows(&w, &f->text, 199, 199, 8), 1);  // exactly the longest
    free(w);
}

static void test_nll(void **state) {
    fixture *f = *state;
    const int64_t T = 24;
    model_config mc = {.dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 8,
                       .ffn_dim = 24, .vocab_size = V, .norm_eps = 1e-5f, .rope_layout = ROPE_LAYOUT_HALF};
    mc.rope = rope_config_default(8);
    mc.rope.max_position_embeddings = T;
    model *m = model_create(&mc, T, false);
    model_init_weights(m, 5);
    rope_table rt;
    rope_table_init(&rt, &mc.rope, T);
    model_set_rope(m, &rt);
    const eval_ring one = {1, 0, NULL, NULL, 1};
    static ref_window ref[4096];
    int32_t tokens[24], targets[24], pos[24];
    float losses[24];
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    const int64_t strides[3] = {24, 8, 1};
    for (int c = 0; c < 3; c++) {
        const int64_t stride = strides[c], n_max = 9;
        eval_window *w;
        int64_t n = eval_windows(&w, &f->text, T, stride, n_max), count = all_windows(ref, T, stride);
        assert_int_equal(n, n_max);
        double sums[2] = {0, 0}, want = 0;
        eval_nll(sums, m, &f->text, w, n, T, stride, &one);
        for (int64_t k = 0; k < n; k++) {
            const ref_window *r = &ref[(int64_t)floor((k + 0.5) * (double)count / (double)n_max)];
            const int32_t *doc = f->docs[r->s][r->d] + r->at;
            for (int64_t i = 0; i < T; i++) tokens[i] = doc[i], targets[i] = doc[i + 1];
            model_batch b = {.B = 1, .T = T, .tokens = tokens, .targets = targets, .pos = pos, .seg = NULL};
            model_forward(m, &b, losses);
            for (int64_t i = T - stride; i < T; i++) want += losses[i];
        }
        assert_int_equal((int64_t)sums[1], n * stride);
        assert_true(want > 0 && fabs(sums[0] - want) <= 1e-5 * want);
        free(w);
    }
    model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_nll),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
