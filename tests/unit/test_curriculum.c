// Tests of schedules/curriculum.c: for every rope type, a stage's RoPE
// (curr_stage_rope, curr_rope_table) is the one every consumer uses: the
// table the training loop installs (train_stage_rope_table), what a training
// checkpoint records (train_ckpt_save: /rope), what evaluation of that
// checkpoint uses (eval_ckpt_open + eval_ckpt_rope) and what export uses
// (ckpt_model_load), each by calling that code path. Also: a factors file is
// read once, at load (deleted afterwards, training and checkpoints still
// work); a missing or bad one fails at load with one line naming the key and
// file:line, also when a checkpoint is evaluated; and the policy functions
// (LR, moment resets, gates) against values worked out by hand.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_dir.h"
#include "ckpt_model.h"
#include "curriculum.h"
#include "die.h"
#include "eval_ckpt.h"
#include "model.h"
#include "run_config.h"
#include "run_config_check.h"
#include "test_tmpdir.h"
#include "tok.h"
#include "train.h"
#include "train_ckpt.h"

static int setup(void **state) { return tmpdir_setup(state, "test_curriculum"); }
static int teardown(void **state) {
    fixture *f = *state;
    int rc = tmpdir_rm_tree(f->dir);
    free(f);
    return rc;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// A run of two stages: 64 tokens unscaled (the original context), then 256
// tokens with `rope` (a YAML flow mapping). head_dim 16: 8 rotary pairs.
static void write_run(const char *path, const char *out_dir, const char *rope) {
    char text[2048];
    snprintf(text, sizeof text,
             "model: {dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 2, head_dim: 16, ffn_dim: 64,\n"
             "        rope_theta: 10000.0, max_position_embeddings: 64}\n"
             "data: {tokenizer: byte, passkey_ratio: 1.0}\n"
             "train: {out_dir: %s, keep_last: 0}\n"
             "stages:\n"
             "  - {name: short, seq_len: 64, steps: 2, batch_tokens: 64, rope: {type: default}}\n"
             "  - name: long\n"
             "    seq_len: 256\n"
             "    steps: 2\n"
             "    batch_tokens: 256\n"
             "    rope: %s\n",
             out_dir, rope);
    write_file(path, text);
}

// cfg_load + curr_load, what `stretch train` does before any compute.
static int load(train_state *st, const char *path, char *err, size_t errlen) {
    int rc = cfg_load(&st->cfg, path, err, errlen);
    if (rc == 0) rc = curr_load(&st->curr, &st->cfg, err, errlen);
    return rc;
}

static void assert_tables_equal(const rope_table *a, const rope_table *b, const char *what) {
    if (a->n_pairs != b->n_pairs || a->n_hat != b->n_hat || a->attention_factor != b->attention_factor)
        fail_msg("%s: n_pairs %d/%d n_hat %lld/%lld attention factor %.9g/%.9g", what, a->n_pairs,
                 b->n_pairs, (long long)a->n_hat, (long long)b->n_hat, (double)a->attention_factor,
                 (double)b->attention_factor);
    for (int i = 0; i < a->n_pairs; i++)
        if (a->inv_freq[i] != b->inv_freq[i] || a->inv_freq_orig[i] != b->inv_freq_orig[i])
            fail_msg("%s: pair %d: inv_freq %.9g/%.9g orig %.9g/%.9g", what, i, (double)a->inv_freq[i],
                     (double)b->inv_freq[i], (double)a->inv_freq_orig[i], (double)b->inv_freq_orig[i]);
}

// A training state able to write checkpoints: the model of the config on
// the cpu, zero moments, one serial rank.
static void make_model(train_state *st) {
    model_config mc;
    cfg_model_config(&mc, &st->cfg);
    char err[256];
    st->tok = tok_load("byte", err, sizeof err);
    assert_non_null(st->tok);
    mc.vocab_size = (int)tok_vocab_size(st->tok);
    st->m = model_create(&mc, 256, false);
    for (int64_t i = 0; i < st->m->n_params; i++) st->m->params[i] = 0.01f * (float)(i % 7);
    st->adam_m = xcalloc((size_t)st->m->n_params, sizeof(float));
    st->adam_v = xcalloc((size_t)st->m->n_params, sizeof(float));
    st->dadam_m = st->adam_m;  // the cpu backend's moments are the host copies
    st->dadam_v = st->adam_v;
    dist_init_serial(&st->dist);
    st->is_root = true;
}

static void free_state(train_state *st) {
    model_free(st->m);
    free(st->adam_m);
    free(st->adam_v);
    tok_free(st->tok);
    cfg_free(&st->cfg);
    free(st);
}

// Stage s's RoPE through every consumer, against curr_rope_table.
// refactors: when not NULL, the stage's factors file (deleted after load):
// written back, with this text, once the checkpoint was saved and the
// checkpoint's own consumers were shown to fail without it.
static void check_consumers(train_state *st, int s, const char *label, const char *fpath,
                            const char *refactors) {
    const curr_plan *plan = curr_stage_plan(&st->curr, s);
    rope_table want, got;
    curr_rope_table(&want, &st->curr, s, plan->seq_len);
    char what[160], err[1024];

    // The training loop: the table run_stage installs.
    train_stage_rope_table(&got, st, s, plan->seq_len);
    snprintf(what, sizeof what, "%s stage %d: training", label, s);
    assert_tables_equal(&want, &got, what);
    model_set_rope(st->m, &got);

    // A training checkpoint in the stage (stage_step 1: trained with it).
    st->stage = s;
    st->stage_step = 1;
    st->step = 10 * (s + 1);
    if (train_ckpt_save(st, err, sizeof err) != 0) fail_msg("%s: save: %s", label, err);
    char path[1200];
    assert_int_equal(ckpt_dir_find_resumable(st->cfg.train.out_dir, path, sizeof path, NULL, err, sizeof err), 1);
    ckpt_reader *r = ckpt_open(path, err, sizeof err);
    assert_non_null(r);
    memset(&got, 0, sizeof got);
    int64_t dims[1] = {want.n_pairs};
    assert_int_equal(ckpt_get(r, "rope/inv_freq", CKPT_F32, got.inv_freq, 1, dims, err, sizeof err), 0);
    assert_int_equal(ckpt_get(r, "rope/inv_freq_orig", CKPT_F32, got.inv_freq_orig, 1, dims, err, sizeof err), 0);
    double af, factor;
    assert_int_equal(ckpt_get_attr_double(r, "rope", "applied_attention_factor", &af, err, sizeof err), 0);
    assert_int_equal(ckpt_get_attr_double(r, "rope", "factor", &factor, err, sizeof err), 0);
    ckpt_close(r);
    if (refactors) {
        // A checkpoint's consumers load its curriculum afresh (their own one
        // read of the file): without the file they fail at open, one line.
        eval_ckpt ec;
        assert_int_equal(eval_ckpt_open(&ec, path, NULL, err, sizeof err), -1);
        if (!strstr(err, "stages.1.rope.factors_file") || !strstr(err, "cannot open") ||
            strchr(err, '\n'))
            fail_msg("eval without the factors file: %s", err);
        model_config mc;
        float *params = NULL;
        int used;
        assert_int_equal(ckpt_model_load(&mc, &params, &used, path, CKPT_MODEL_STAGE_AUTO, err, sizeof err), -1);
        if (!strstr(err, "stages.1.rope.factors_file") || strchr(err, '\n'))
            fail_msg("export without the factors file: %s", err);
        write_file(fpath, refactors);
    }
    got.n_pairs = want.n_pairs;
    got.n_hat = want.n_hat;
    got.attention_factor = (float)af;
    snprintf(what, sizeof what, "%s stage %d: train checkpoint", label, s);
    assert_tables_equal(&want, &got, what);
    assert_true(factor == curr_stage_rope(&st->curr, s)->factor);

    // Evaluation of that checkpoint (no --rope / --rope-stage: the trained stage's).
    eval_ckpt ec;
    if (eval_ckpt_open(&ec, path, NULL, err, sizeof err) != 0) fail_msg("%s: eval open: %s", label, err);
    assert_int_equal(ec.trained_stage, s);
    eval_rope_opt opt = {.stage = -1};
    rope_config rc;
    char desc[128];
    if (eval_ckpt_rope(&rc, desc, sizeof desc, &ec, &opt, err, sizeof err) != 0) fail_msg("%s", err);
    eval_ckpt_close(&ec);
    rope_table_init(&got, &rc, plan->seq_len);
    snprintf(what, sizeof what, "%s stage %d: eval of the checkpoint", label, s);
    assert_tables_equal(&want, &got, what);
    // At another length (dynamic NTK and LongRoPE select on it), as the eval loop does.
    rope_table w2;
    curr_rope_table(&w2, &st->curr, s, 4 * plan->seq_len);
    rope_table_init(&got, &rc, 4 * plan->seq_len);
    assert_tables_equal(&w2, &got, what);

    // Export (and bench): the model of the checkpoint.
    model_config mc;
    float *params = NULL;
    int used = -1;
    if (ckpt_model_load(&mc, &params, &used, path, CKPT_MODEL_STAGE_AUTO, err, sizeof err) != 0)
        fail_msg("%s: ckpt_model_load: %s", label, err);
    free(params);
    assert_int_equal(used, s);
    rope_table_init(&got, &mc.rope, plan->seq_len);
    snprintf(what, sizeof what, "%s stage %d: export", label, s);
    assert_tables_equal(&want, &got, what);
}

typedef struct {
    const char *label;
    rope_type type;
    const char *rope;  // "%s" = the factors file's path
    bool scaled;       // stage 1's inv_freq differs from the unscaled one at 256 tokens
} rope_case;

static const rope_case CASES[] = {
    {"default", ROPE_TYPE_DEFAULT, "{type: default}", false},
    {"linear", ROPE_TYPE_LINEAR, "{type: linear}", true},
    {"dynamic", ROPE_TYPE_DYNAMIC, "{type: dynamic}", true},
    {"yarn", ROPE_TYPE_YARN, "{type: yarn, beta_fast: 16}", true},
    {"longrope inline", ROPE_TYPE_LONGROPE,
     "{type: longrope, short_factor: [1, 1, 1, 1, 1.5, 2, 2.5, 3],\n"
     "           long_factor: [1, 1.2, 1.5, 2, 2.5, 3, 3.5, 4]}", true},
    {"longrope factors_file", ROPE_TYPE_LONGROPE, "{type: longrope, factors_file: %s}", true},
    {"llama3", ROPE_TYPE_LLAMA3, "{type: llama3, low_freq_factor: 1, high_freq_factor: 4}", true},
};

static void test_every_rope_type(void **state) {
    fixture *f = *state;
    char fpath[256];
    snprintf(fpath, sizeof fpath, "%s/factors.yaml", f->dir);
    const char *factors = "short_factor: [1, 1, 1, 1, 1, 1.25, 1.5, 2]\n"
                          "long_factor: [1, 1.1, 1.3, 1.6, 2, 2.6, 3.2, 4]\n"
                          "n_hat: 32\n";
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const rope_case *c = &CASES[i];
        char path[256], out_dir[256], rope[512], err[1024];
        snprintf(path, sizeof path, "%s/run%zu.yaml", f->dir, i);
        snprintf(out_dir, sizeof out_dir, "%s/out%zu", f->dir, i);
        snprintf(rope, sizeof rope, c->rope, fpath);
        bool file = strstr(c->rope, "factors_file") != NULL;
        if (file) write_file(fpath, factors);
        write_run(path, out_dir, rope);
        assert_int_equal(mkdir(out_dir, 0755), 0);
        train_state *st = xcalloc(1, sizeof *st);
        if (load(st, path, err, sizeof err) != 0) fail_msg("%s: %s", c->label, err);
        // The factors file is read by curr_load only: gone now, nothing reads it again
        // while training and checkpointing.
        if (file) assert_int_equal(unlink(fpath), 0);

        const rope_config *r = curr_stage_rope(&st->curr, 1);
        assert_int_equal(r->type, c->type);
        assert_int_equal(r->original_max_position_embeddings, 64);
        assert_int_equal(r->head_dim, 16);
        if (c->type != ROPE_TYPE_DEFAULT) assert_true(r->factor == 4.0);  // 256 / 64
        if (c->type == ROPE_TYPE_LONGROPE) {
            assert_int_equal(r->n_factors, 8);
            assert_true(r->long_factor[7] == 4.0);
            if (file) assert_int_equal(r->n_hat, 32);
        }
        rope_table t0, t1;
        curr_rope_table(&t0, &st->curr, 0, 256);
        curr_rope_table(&t1, &st->curr, 1, 256);
        assert_int_equal(t1.n_pairs, 8);
        bool differs = false;
        for (int p = 0; p < t1.n_pairs; p++) differs |= t0.inv_freq[p] != t1.inv_freq[p];
        if (differs != c->scaled) fail_msg("%s: stage 1 scaled %d, expected %d", c->label, differs, c->scaled);

        make_model(st);
        check_consumers(st, 1, c->label, fpath, file ? factors : NULL);
        check_consumers(st, 0, c->label, fpath, NULL);
        free_state(st);
    }
}

static void test_factors_file_errors(void **state) {
    fixture *f = *state;
    char path[256], fpath[256], rope[512], err[1024], where[1024];
    snprintf(path, sizeof path, "%s/run.yaml", f->dir);
    snprintf(fpath, sizeof fpath, "%s/missing.yaml", f->dir);
    snprintf(rope, sizeof rope, "{type: longrope, factors_file: %s}", fpath);
    write_run(path, f->dir, rope);
    train_state *st = xcalloc(1, sizeof *st);
    // cfg_validate alone accepts it: the file is curr_load's to read.
    assert_int_equal(cfg_load(&st->cfg, path, err, sizeof err), 0);
    assert_int_equal(curr_load(&st->curr, &st->cfg, err, sizeof err), -1);
    // The stage's rope key at its line (11: the `rope:` line of stage 1), the file.
    snprintf(where, sizeof where, "%s:11: stages.1.rope.factors_file: %s: cannot open", path, fpath);
    if (strncmp(err, where, strlen(where)) || strchr(err, '\n')) fail_msg("missing file: %s", err);
    cfg_free(&st->cfg);

    // A bad value: the factors file's own line.
    snprintf(fpath, sizeof fpath, "%s/bad.yaml", f->dir);
    write_file(fpath, "short_factor: [1, 1, 1, 1, 1, 1, 1, 1]\nlong_factor: [1, 1, x, 1, 1, 1, 1, 1]\n");
    snprintf(rope, sizeof rope, "{type: longrope, factors_file: %s}", fpath);
    write_run(path, f->dir, rope);
    assert_int_equal(load(st, path, err, sizeof err), -1);
    snprintf(where, sizeof where, "%s:2: key 'long_factor': item 2: expected a number", fpath);
    if (!strstr(err, where) || !strstr(err, "stages.1.rope.factors_file") || strchr(err, '\n'))
        fail_msg("bad file: %s", err);
    cfg_free(&st->cfg);

    // Too few factors for the model's 8 pairs: rope_config_validate, on the stage's key.
    write_file(fpath, "short_factor: [1, 1]\nlong_factor: [2, 2]\n");
    assert_int_equal(load(st, path, err, sizeof err), -1);
    if (!strstr(err, "stages.1.rope.short_factor") || !strstr(err, "8 entries (got 2)") || strchr(err, '\n'))
        fail_msg("short file: %s", err);
    cfg_free(&st->cfg);
    free(st);
}

static void test_policy(void **state) {
    fixture *f = *state;
    char path[256], err[1024];
    snprintf(path, sizeof path, "%s/policy.yaml", f->dir);
    write_file(path,
               "model: {dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 2, ffn_dim: 64}\n"
               "data: {tokenizer: byte, passkey_ratio: 1.0}\n"
               "optimizer: {lr: 0.001, min_lr_ratio: 0.1, warmup_steps: 10}\n"
               "stages:\n"
               "  - {seq_len: 64, steps: 100, batch_tokens: 64, carry_moments: false}\n"
               "  - {seq_len: 128, steps: 50, batch_tokens: 128, lr: 0.0002, warmup_steps: 4,\n"
               "     schedule: constant, carry_moments: true, gate: {passkey_acc: 0.5}}\n"
               "  - {seq_len: 128, steps: 8, batch_tokens: 128, carry_moments: false,\n"
               "     gate: {passkey_acc: 0.9, val_loss: 2.0, max_extra_tokens: 2000}}\n");
    train_state *st = xcalloc(1, sizeof *st);
    if (load(st, path, err, sizeof err) != 0) fail_msg("%s", err);
    const curriculum *c = &st->curr;
    assert_int_equal(c->n_stages, 3);
    assert_int_equal(c->original_context, 64);
    // Stage 0: warmup 10 to 1e-3, cosine over 100 steps to 1e-4.
    assert_float_equal(curr_lr(c, 0, 0), 1e-4, 1e-12);
    assert_float_equal(curr_lr(c, 0, 9), 1e-3, 1e-12);
    assert_float_equal(curr_lr(c, 0, 55), 5.5e-4, 1e-12);  // half way: (1e-3 + 1e-4) / 2
    assert_float_equal(curr_lr(c, 0, 100), 1e-4, 1e-12);
    // Stage 1: warmup 4 to 2e-4, then constant.
    assert_float_equal(curr_lr(c, 1, 1), 1e-4, 1e-12);
    assert_float_equal(curr_lr(c, 1, 30), 2e-4, 1e-12);
    // Moments: the first stage has none to reset; carry_moments false resets.
    assert_false(curr_stage_resets_moments(c, 0));
    assert_false(curr_stage_resets_moments(c, 1));
    assert_true(curr_stage_resets_moments(c, 2));
    // Gates.
    assert_false(curr_gate_needed(c, 0));
    assert_true(curr_gate_passed(c, 0, -1, -1));
    assert_true(curr_gate_needed(c, 1));
    assert_true(curr_gate_needs_passkey(c, 1) && !curr_gate_needs_val_loss(c, 1));
    assert_true(curr_gate_passed(c, 1, 0.5, -1));
    assert_false(curr_gate_passed(c, 1, 0.49, -1));
    assert_true(curr_gate_needs_passkey(c, 2) && curr_gate_needs_val_loss(c, 2));
    assert_true(curr_gate_passed(c, 2, 0.95, 1.9));
    assert_false(curr_gate_passed(c, 2, 0.95, 2.1));
    assert_false(curr_gate_passed(c, 2, 0.8, 1.9));
    // Extension: 2000 tokens = 15 steps of 128 at most, in chunks of ceil(15 / 4) = 4.
    assert_int_equal(curr_gate_extension(c, 2, 0), 4);
    assert_int_equal(curr_gate_extension(c, 2, 8), 4);
    assert_int_equal(curr_gate_extension(c, 2, 12), 0);  // 16 > 15: stop
    assert_int_equal(curr_gate_extension(c, 1, 0), 0);   // no extra budget
    cfg_free(&st->cfg);
    free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_rope_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_factors_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
