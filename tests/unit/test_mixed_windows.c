// Tests of LongRoPE2 mixed context window training (stages.N.rope.mixed):
//  - the rows the trainer feeds the model (loader rows of packed documents,
//    train_batch_make, the stage's training table, the rope kernel): every
//    token of a document of up to the original 64 tokens is rotated with the
//    short factors, every token of a longer one (also its positions below
//    64) with the long factors; the angle of each pair of each token is
//    checked against 1 / (factor_i * theta^(2i/d)) written out from the run
//    file's factors, and against the other window's (which must not fit);
//  - a yarn stage with mixed: its longrope form (short factors 1 = the
//    original RoPE, long = yarn's own table, yarn's attention factor), the
//    tables evaluation uses at 64 and 65 tokens (short, long), what a
//    training checkpoint records, what evaluation and export of it read, and
//    the config.json export writes;
//  - rope.mixed refused with one line naming the key for default, dynamic,
//    and a stage that does not exceed the original context.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "ckpt_dir.h"
#include "ckpt_model.h"
#include "curriculum.h"
#include "die.h"
#include "eval_ckpt.h"
#include "hf_config.h"
#include "loader.h"
#include "model.h"
#include "rope.h"
#include "run_config.h"
#include "shard.h"
#include "test_tmpdir.h"
#include "tok.h"
#include "train.h"
#include "train_batch.h"
#include "train_ckpt.h"

static int setup(void **state) { return tmpdir_setup(state, "test_mixed_windows"); }
static int teardown(void **state) {
    fixture *f = *state;
    int rc = tmpdir_rm_tree(f->dir);
    free(f);
    return rc;
}

enum { ORIG = 64, LONG_LEN = 256, PAIRS = 8, HEAD_DIM = 16 };
static const double THETA = 10000.0;
static const double SHORT_F[PAIRS] = {1, 1, 1, 1.25, 1.5, 1.75, 2, 2.5};
static const double LONG_F[PAIRS] = {1, 1.5, 2, 3, 4, 5, 6, 8};

// Two stages: 64 tokens unscaled (the original context), then 256 tokens
// with `rope` (a YAML flow mapping). head_dim 16: 8 rotary pairs.
static void write_run(const char *path, const char *out_dir, const char *rope, int64_t seq_len) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "model: {dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 2, head_dim: %d, ffn_dim: 64,\n"
            "        rope_theta: %.1f, max_position_embeddings: %d}\n"
            "data: {tokenizer: byte, passkey_ratio: 1.0}\n"
            "train: {out_dir: %s, keep_last: 0}\n"
            "stages:\n"
            "  - {name: short, seq_len: %d, steps: 2, batch_tokens: %d, rope: {type: default}}\n"
            "  - name: long\n"
            "    seq_len: %lld\n"
            "    steps: 2\n"
            "    batch_tokens: %lld\n"
            "    rope: %s\n",
            HEAD_DIM, THETA, ORIG, out_dir, ORIG, ORIG, (long long)seq_len, (long long)seq_len, rope);
    fclose(f);
}

static int load(train_state *st, const char *path, char *err, size_t errlen) {
    int rc = cfg_load(&st->cfg, path, err, errlen);
    if (rc == 0) rc = curr_load(&st->curr, &st->cfg, err, errlen);
    return rc;
}

static const char *LONGROPE_MIXED =
    "{type: longrope, mixed: true, short_factor: [1, 1, 1, 1.25, 1.5, 1.75, 2, 2.5],\n"
    "           long_factor: [1, 1.5, 2, 3, 4, 5, 6, 8]}";

// ---------------------------------------------------------------------------
// Rows: the short or the long factors per document

// A shard of byte-token documents of lengths cycling through `lens`.
static void write_shard(const char *path, const int64_t *lens, int n_lens, int n_docs) {
    char err[256];
    shard_writer *w = shard_writer_open(path, 259, err, sizeof err);
    if (!w) fail_msg("%s", err);
    int32_t buf[512];
    for (int d = 0; d < n_docs; d++) {
        int64_t n = lens[d % n_lens];
        for (int64_t i = 0; i < n; i++) buf[i] = (int32_t)(3 + (d * 7 + i) % 250);
        if (shard_writer_add_doc(w, buf, n, err, sizeof err)) fail_msg("%s", err);
    }
    if (shard_writer_close(w, err, sizeof err)) fail_msg("%s", err);
}

// Frequency of pair i from the run file's factors: theta^(-2i/d) / factor_i.
static double freq_of(const double *factors, int i) {
    return pow(THETA, -2.0 * i / HEAD_DIM) / factors[i];
}

// Rotates, for every token of mb, unit vectors on the first channel of each
// pair (one head per pair) with the model's table through the backend, as
// the model's layer does; cs gets (N, PAIRS, 2) of (cos, sin) / attention factor.
static void probe_angles(double *cs, const model *m, const model_batch *mb) {
    const int64_t N = mb->B * mb->T;
    float *q = xcalloc((size_t)(N * PAIRS * HEAD_DIM), sizeof(float));
    for (int64_t n = 0; n < N; n++)
        for (int i = 0; i < PAIRS; i++) q[(n * PAIRS + i) * HEAD_DIM + i] = 1.0f;
    m->bk->op->rope_forward(m->bk, q, NULL, mb->pos, mb->win, &m->rope, ROPE_LAYOUT_HALF, N, PAIRS, 0,
                            HEAD_DIM);
    const double a = m->rope.attention_factor;
    for (int64_t n = 0; n < N; n++)
        for (int i = 0; i < PAIRS; i++) {
            const float *h = q + (n * PAIRS + i) * HEAD_DIM;
            cs[(n * PAIRS + i) * 2] = h[i] / a;
            cs[(n * PAIRS + i) * 2 + 1] = h[i + PAIRS] / a;
        }
    free(q);
}

// max over pairs of |(cos, sin) - (cos, sin)(p * freq_of(factors))|
static double angle_err(const double *cs, int32_t p, const double *factors) {
    double e = 0;
    for (int i = 0; i < PAIRS; i++) {
        double th = p * freq_of(factors, i);
        e = fmax(e, fmax(fabs(cs[2 * i] - cos(th)), fabs(cs[2 * i + 1] - sin(th))));
    }
    return e;
}

static void test_rows_short_and_long(void **state) {
    fixture *f = *state;
    char path[256], shard_path[256], err[1024];
    snprintf(path, sizeof path, "%s/run.yaml", f->dir);
    snprintf(shard_path, sizeof shard_path, "%s/docs.shard", f->dir);
    write_run(path, f->dir, LONGROPE_MIXED, LONG_LEN);
    train_state *st = xcalloc(1, sizeof *st);
    if (load(st, path, err, sizeof err)) fail_msg("%s", err);
    assert_true(curr_stage_mixed(&st->curr, 1) && !curr_stage_mixed(&st->curr, 0));

    // The stage's training table, installed in a model as run_stage does.
    model_config mc;
    cfg_model_config(&mc, &st->cfg);
    mc.vocab_size = 259;
    model *m = model_create(&mc, 4 * LONG_LEN, false);
    rope_table t;
    curr_train_rope_table(&t, &st->curr, 1);
    assert_int_equal(t.short_len, ORIG);
    model_set_rope(m, &t);

    // Documents of 20 .. 300 tokens packed into rows of 256: 64 is the last
    // short length, 65 the first long one; long documents continue into the
    // next row (their piece there restarts at position 0).
    const int64_t lens[] = {20, 64, 65, 5, 100, 300, 40, 180, 63, 1};
    write_shard(shard_path, lens, 10, 60);
    data_config dc = {.mode = DATA_PACK, .seq_len = LONG_LEN, .batch_rows = 4, .dp_size = 1,
                      .seed = 5, .bos_id = -1, .eos_id = -1, .pad_id = 0};
    const char *paths[1] = {shard_path};
    data_loader *L = data_loader_open(paths, 1, &dc, err, sizeof err);
    if (!L) fail_msg("%s", err);
    data_batch db;
    data_batch_init(&db, L);
    train_batch tb = {0};
    double *cs = xmalloc(sizeof(double) * 4 * LONG_LEN * PAIRS * 2);
    int n_short = 0, n_long = 0;
    double worst = 0, closest_wrong = 1e9;
    for (int batch = 0; batch < 6; batch++) {
        data_next_batch(L, &db);
        train_batch_make(&tb, &db, 1, 1, 0, m->rope.short_len);
        assert_non_null(tb.mb.win);
        probe_angles(cs, m, &tb.mb);
        for (int64_t b = 0; b < db.B; b++) {
            const int32_t *pos = db.pos + b * LONG_LEN, *seg = db.seg + b * LONG_LEN;
            for (int64_t s = 0; s < LONG_LEN;) {  // one document piece: positions 0, 1, ..
                int64_t e = s;
                while (e < LONG_LEN && seg[e] == seg[s]) {
                    assert_int_equal(pos[e], e - s);
                    e++;
                }
                bool is_short = e - s <= ORIG;
                const double *want = is_short ? SHORT_F : LONG_F, *other = is_short ? LONG_F : SHORT_F;
                double doc_wrong = 0;
                for (int64_t n = s; n < e; n++) {
                    const double *c = cs + (b * LONG_LEN + n) * PAIRS * 2;
                    double err_n = angle_err(c, pos[n], want);
                    if (!(err_n <= 2e-5))
                        fail_msg("batch %d row %lld: document of %lld tokens, position %d: angles off the "
                                 "%s factors by %.3g", batch, (long long)b, (long long)(e - s), pos[n],
                                 is_short ? "short" : "long", err_n);
                    worst = fmax(worst, err_n);
                    doc_wrong = fmax(doc_wrong, angle_err(c, pos[n], other));
                }
                if (e - s >= 8) closest_wrong = fmin(closest_wrong, doc_wrong);
                is_short ? n_short++ : n_long++;
                s = e;
            }
        }
    }
    assert_true(n_short >= 10 && n_long >= 10);
    assert_true(closest_wrong > 1e-2);  // the other window's factors never fit a document
    print_message("%d short and %d long documents in 24 rows of %d: every token's angles within %.2e "
                  "of its window's factors; the other window's off by >= %.3f\n",
                  n_short, n_long, LONG_LEN, worst, closest_wrong);
    free(cs);
    train_batch_free(&tb);
    data_batch_free(&db);
    data_loader_free(L);
    model_free(m);
    cfg_free(&st->cfg);
    free(st);
}

// ---------------------------------------------------------------------------
// A yarn stage with mixed: curriculum, evaluation, checkpoint, export

static void assert_same_freqs(const float *a, const float *b, int n, const char *what) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) fail_msg("%s: pair %d: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
}

// A training state able to write checkpoints (as tests/unit/test_curriculum.c).
static void make_model(train_state *st) {
    model_config mc;
    cfg_model_config(&mc, &st->cfg);
    char err[256];
    st->tok = tok_load("byte", err, sizeof err);
    assert_non_null(st->tok);
    mc.vocab_size = (int)tok_vocab_size(st->tok);
    st->m = model_create(&mc, LONG_LEN, false);
    for (int64_t i = 0; i < st->m->n_params; i++) st->m->params[i] = 0.01f * (float)(i % 7);
    st->adam_m = xcalloc((size_t)st->m->n_params, sizeof(float));
    st->adam_v = xcalloc((size_t)st->m->n_params, sizeof(float));
    st->dadam_m = st->adam_m;
    st->dadam_v = st->adam_v;
    dist_init_serial(&st->dist);
    st->is_root = true;
}

static void test_yarn_stage(void **state) {
    fixture *f = *state;
    char path[256], out_dir[256], err[1024];
    snprintf(path, sizeof path, "%s/run.yaml", f->dir);
    snprintf(out_dir, sizeof out_dir, "%s/out", f->dir);
    assert_int_equal(mkdir(out_dir, 0755), 0);
    write_run(path, out_dir, "{type: yarn, mixed: true}", LONG_LEN);
    train_state *st = xcalloc(1, sizeof *st);
    if (load(st, path, err, sizeof err)) fail_msg("%s", err);

    // The yarn stage the same file would give without mixed: the reference.
    rope_config yarn = *curr_stage_rope(&st->curr, 1);
    assert_int_equal(yarn.type, ROPE_TYPE_LONGROPE);
    rope_config y = rope_config_default(HEAD_DIM);
    y.type = ROPE_TYPE_YARN;
    y.max_position_embeddings = LONG_LEN;
    y.original_max_position_embeddings = ORIG;
    rope_table ty, td;
    rope_table_init(&ty, &y, 0);
    rope_config d = rope_config_default(HEAD_DIM);
    rope_table_init(&td, &d, 0);
    const rope_config *r = &yarn;
    assert_int_equal(r->original_max_position_embeddings, ORIG);
    assert_int_equal(r->max_position_embeddings, LONG_LEN);
    assert_true(r->factor == 4.0);
    assert_true(fabs(r->attention_factor - (0.1 * log(4.0) + 1.0)) < 1e-12);  // yarn's, explicit
    for (int i = 0; i < PAIRS; i++) assert_true(r->short_factor[i] == 1.0);

    // Training: the mixed table. Evaluation at 64 (= the original): the short
    // table; at 65: the long one; both with yarn's attention factor.
    rope_table train, e64, e65;
    curr_train_rope_table(&train, &st->curr, 1);
    curr_rope_table(&e64, &st->curr, 1, ORIG);
    curr_rope_table(&e65, &st->curr, 1, ORIG + 1);
    assert_int_equal(train.short_len, ORIG);
    assert_true(train.attention_factor == ty.attention_factor && e64.attention_factor == ty.attention_factor &&
                e65.attention_factor == ty.attention_factor);
    assert_same_freqs(train.inv_freq_short, td.inv_freq, PAIRS, "short table vs the original rope");
    assert_same_freqs(e64.inv_freq, train.inv_freq_short, PAIRS, "eval at 64 vs the training short table");
    assert_same_freqs(e65.inv_freq, train.inv_freq, PAIRS, "eval at 65 vs the training long table");
    for (int i = 0; i < PAIRS; i++)
        if (!(fabs(train.inv_freq[i] - ty.inv_freq[i]) <= 1.2e-7 * ty.inv_freq[i]))
            fail_msg("long table pair %d: %.9g vs yarn %.9g", i, (double)train.inv_freq[i], (double)ty.inv_freq[i]);

    // A checkpoint in the stage: the tables it records.
    make_model(st);
    model_set_rope(st->m, &train);
    st->stage = 1, st->stage_step = 1, st->step = 3;
    if (train_ckpt_save(st, err, sizeof err)) fail_msg("save: %s", err);
    char ck[1200];
    assert_int_equal(ckpt_dir_find_resumable(st->cfg.train.out_dir, ck, sizeof ck, NULL, err, sizeof err), 1);
    ckpt_reader *rd = ckpt_open(ck, err, sizeof err);
    assert_non_null(rd);
    float got[PAIRS];
    int64_t dims[1] = {PAIRS}, short_len = 0;
    assert_int_equal(ckpt_get(rd, "rope/inv_freq_short", CKPT_F32, got, 1, dims, err, sizeof err), 0);
    assert_same_freqs(got, train.inv_freq_short, PAIRS, "checkpoint inv_freq_short");
    assert_int_equal(ckpt_get(rd, "rope/inv_freq", CKPT_F32, got, 1, dims, err, sizeof err), 0);
    assert_same_freqs(got, train.inv_freq, PAIRS, "checkpoint inv_freq");
    assert_int_equal(ckpt_get_attr_int64(rd, "rope", "mixed_short_len", &short_len, err, sizeof err), 0);
    assert_int_equal(short_len, ORIG);
    ckpt_close(rd);

    // Evaluation of the checkpoint: the stage's longrope form, short/long by length.
    eval_ckpt ec;
    if (eval_ckpt_open(&ec, ck, NULL, err, sizeof err)) fail_msg("eval open: %s", err);
    eval_rope_opt opt = {.stage = -1};
    rope_config er;
    char desc[128];
    if (eval_ckpt_rope(&er, desc, sizeof desc, &ec, &opt, err, sizeof err)) fail_msg("%s", err);
    eval_ckpt_close(&ec);
    rope_table t;
    rope_table_init(&t, &er, ORIG);
    assert_same_freqs(t.inv_freq, e64.inv_freq, PAIRS, "eval of the checkpoint at 64");
    rope_table_init(&t, &er, 4 * ORIG);
    assert_same_freqs(t.inv_freq, e65.inv_freq, PAIRS, "eval of the checkpoint at 256");
    assert_true(t.attention_factor == train.attention_factor);

    // Export: the same longrope, written as transformers reads it.
    model_config mc;
    float *params = NULL;
    int used = -1;
    if (ckpt_model_load(&mc, &params, &used, ck, CKPT_MODEL_STAGE_AUTO, err, sizeof err))
        fail_msg("export: %s", err);
    free(params);
    assert_int_equal(used, 1);
    assert_int_equal(mc.rope.type, ROPE_TYPE_LONGROPE);
    char *json = hf_config_to_json(&mc, "float32", 0, NULL);
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    const cJSON *rs = cJSON_GetObjectItem(root, "rope_scaling");
    assert_string_equal(cJSON_GetObjectItem(rs, "rope_type")->valuestring, "longrope");
    assert_int_equal(cJSON_GetObjectItem(rs, "original_max_position_embeddings")->valueint, ORIG);
    assert_int_equal(cJSON_GetObjectItem(root, "original_max_position_embeddings")->valueint, ORIG);
    assert_int_equal(cJSON_GetObjectItem(root, "max_position_embeddings")->valueint, LONG_LEN);
    assert_true(fabs(cJSON_GetObjectItem(rs, "attention_factor")->valuedouble - r->attention_factor) < 1e-15);
    const cJSON *sf = cJSON_GetObjectItem(rs, "short_factor"), *lf = cJSON_GetObjectItem(rs, "long_factor");
    assert_int_equal(cJSON_GetArraySize(sf), PAIRS);
    for (int i = 0; i < PAIRS; i++) {
        assert_true(cJSON_GetArrayItem(sf, i)->valuedouble == 1.0);
        // transformers' long inv_freq: 1 / (float32(long_factor) * theta^(2i/d))
        double inv = 1.0 / ((double)(float)cJSON_GetArrayItem(lf, i)->valuedouble * pow(THETA, 2.0 * i / HEAD_DIM));
        if (!(fabs(inv - ty.inv_freq[i]) <= 1.2e-7 * ty.inv_freq[i]))
            fail_msg("config.json long_factor[%d] gives %.9g, yarn %.9g", i, inv, (double)ty.inv_freq[i]);
    }
    cJSON_Delete(root);
    free(json);

    model_free(st->m);
    free(st->adam_m);
    free(st->adam_v);
    tok_free(st->tok);
    cfg_free(&st->cfg);
    free(st);
}

// ---------------------------------------------------------------------------
// Refused settings

static void test_refused(void **state) {
    fixture *f = *state;
    struct {
        const char *rope;
        int64_t seq_len;
        const char *says;
    } bad[] = {
        {"{type: default, mixed: true}", LONG_LEN, "needs a rescaled stages.1.rope.type"},
        {"{type: dynamic, mixed: true}", LONG_LEN, "rope.type dynamic"},
        {"{type: yarn, factor: 2, mixed: true}", ORIG, "does not exceed the original context (64)"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char path[256], err[1024], where[512];
        snprintf(path, sizeof path, "%s/bad%zu.yaml", f->dir, k);
        write_run(path, f->dir, bad[k].rope, bad[k].seq_len);
        train_state *st = xcalloc(1, sizeof *st);
        assert_int_equal(load(st, path, err, sizeof err), -1);
        snprintf(where, sizeof where, "%s:11: stages.1.rope.mixed", path);  // the rope: line of stage 1
        if (strncmp(err, where, strlen(where)) || !strstr(err, bad[k].says) || strchr(err, '\n'))
            fail_msg("%s: %s", bad[k].rope, err);
        cfg_free(&st->cfg);
        free(st);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_short_and_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yarn_stage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
