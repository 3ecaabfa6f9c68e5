// train_guard: the consecutive-skip counter, and the finite-state check a
// checkpoint needs (parameters and both AdamW moments, the message naming
// the tensor and entry). The whole-run behaviour: tests/cli/test_diverge.sh.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"
#include "train_guard.h"

static void test_record_counts_runs(void **state) {
    (void)state;
    train_guard g = {0};
    assert_false(train_guard_record(&g, true, 3));
    assert_false(train_guard_record(&g, true, 3));
    assert_false(train_guard_record(&g, false, 3));  // a good step resets the run
    assert_int_equal(g.consecutive, 0);
    assert_false(train_guard_record(&g, true, 3));
    assert_false(train_guard_record(&g, true, 3));
    assert_true(train_guard_record(&g, true, 3));
    assert_int_equal(g.total, 5);
    train_guard never = {0};
    for (int i = 0; i < 100; i++) assert_false(train_guard_record(&never, true, 0));
}

static void test_finite_verdict(void **state) {
    (void)state;
    dist_ctx d;
    dist_init_serial(&d);
    assert_true(train_guard_finite(&d, 1.5, 2.0));
    assert_false(train_guard_finite(&d, NAN, 2.0));
    assert_false(train_guard_finite(&d, 1.5, INFINITY));
    assert_false(train_guard_finite(&d, -INFINITY, 0.0));
}

static void test_state_check_names_the_entry(void **state) {
    (void)state;
    model_config c = {.dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 8,
                      .ffn_dim = 24, .vocab_size = 11, .norm_eps = 1e-5f,
                      .rope_layout = ROPE_LAYOUT_HALF};
    c.rope = rope_config_default(8);
    c.rope.max_position_embeddings = 16;
    train_state *st = calloc(1, sizeof *st);
    dist_init_serial(&st->dist);
    st->is_root = true;
    st->m = model_create(&c, 16, false);
    model_init_weights(st->m, 3);
    st->adam_m = st->dadam_m = calloc((size_t)st->m->n_params, sizeof(float));
    st->adam_v = st->dadam_v = calloc((size_t)st->m->n_params, sizeof(float));
    char err[512];
    assert_int_equal(train_guard_state_finite(st, err, sizeof err), 0);

    const model_tensor *t = &st->m->tensors[st->m->n_tensors - 2];  // model.norm.weight
    st->m->params[t->offset + 5] = NAN;
    assert_int_equal(train_guard_state_finite(st, err, sizeof err), -1);
    assert_non_null(strstr(err, "model.norm.weight[5] = nan"));
    st->m->params[t->offset + 5] = 1.0f;
    assert_int_equal(train_guard_state_finite(st, err, sizeof err), 0);

    st->adam_v[7] = INFINITY;
    assert_int_equal(train_guard_state_finite(st, err, sizeof err), -1);
    assert_non_null(strstr(err, "adamw v of model.embed_tokens.weight[7] = inf"));
    st->adam_v[7] = 0;
    st->adam_m[st->m->n_params - 1] = -NAN;
    assert_int_equal(train_guard_state_finite(st, err, sizeof err), -1);
    assert_non_null(strstr(err, "adamw m of "));
    free(st->adam_m);
    free(st->adam_v);
    model_free(st->m);
    free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_counts_runs),
        cmocka_unit_test(test_finite_verdict),
        cmocka_unit_test(test_state_check_names_the_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
