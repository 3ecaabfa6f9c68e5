// Tests for trainer/eval/eval_needle: LongRoPE2's needle-driven loss.
//
// Reference, independent of the code under test: each sample is made again
// here with passkey_make / task_make from its documented depth and seed,
// its answer span taken from the sample's own passkey_info / task_info, and
// the NLL of the answer tokens computed from a plain forward's final hidden
// states times lm_head with a float64 log-softmax (not the model's chunked
// loss). Also: the targets are exactly the answer, the set is the same for
// the same seed and another for another, and the one-line errors.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "eval_needle.h"
#include "eval_tasks.h"
#include "model.h"

enum { V = 256, T = 200, PER_TASK = 3 };

static int64_t encode_bytes(void *ctx, const char *text, size_t len, int32_t *out, int64_t cap) {
    (void)ctx;
    for (size_t i = 0; i < len && (int64_t)i < cap; i++) out[i] = (unsigned char)text[i];
    return (int64_t)len;
}

static passkey_config pk_config(void) {
    return (passkey_config){.encode = encode_bytes, .bos_id = -1, .n_keys = 1, .depth = -1, .answer_only = 1,
                            .compact = 1};
}

static task_env task_config(void) { return (task_env){.encode = encode_bytes, .bos_id = -1, .answer_only = 1}; }

static model *tiny_model(void) {
    model_config mc = {.dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 8,
                       .ffn_dim = 24, .vocab_size = V, .norm_eps = 1e-5f, .rope_layout = ROPE_LAYOUT_HALF};
    mc.rope = rope_config_default(8);
    mc.rope.max_position_embeddings = T;
    model *m = model_create(&mc, T, false);
    model_init_weights(m, 11);
    rope_table rt;
    rope_table_init(&rt, &mc.rope, T);
    model_set_rope(m, &rt);
    return m;
}

// The answer-token NLL of one sample by a plain forward and a float64 softmax.
static double reference_nll(model *m, const int32_t *tokens, int64_t answer_start, int64_t answer_len) {
    int32_t pos[T];
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    model_batch b = {.B = 1, .T = T, .tokens = tokens, .targets = NULL, .pos = pos, .seg = NULL};
    model_forward(m, &b, NULL);
    const float *h = model_final_hidden(m), *w = m->p.lm_head;
    const int C = 16;
    double sum = 0, logits[V];
    for (int64_t p = answer_start - 1; p < answer_start - 1 + answer_len; p++) {
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) {
            logits[v] = 0;
            for (int c = 0; c < C; c++) logits[v] += (double)h[p * C + c] * (double)w[v * C + c];
            mx = fmax(mx, logits[v]);
        }
        for (int v = 0; v < V; v++) z += exp(logits[v] - mx);
        sum += mx + log(z) - logits[tokens[p + 1]];
    }
    return sum;
}

static void test_nll_against_reference(void **state) {
    (void)state;
    const passkey_config pk = pk_config();
    const task_env env = task_config();
    const int tasks[2] = {EVAL_NEEDLE_PASSKEY, TASK_NIAH_SINGLE};
    const uint64_t seed = 5;
    char err[512];
    eval_needles nd;
    if (eval_needles_make(&nd, &pk, &env, tasks, 2, PER_TASK, T, seed, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(nd.n, 2 * PER_TASK);
    assert_int_equal(nd.T, T);
    model *m = tiny_model();
    const eval_ring one = {1, 0, NULL, NULL, 1};
    double sums[2] = {0, 0};
    eval_needle_nll(sums, m, &nd, &one);

    double want = 0;
    int64_t count = 0;
    int32_t tokens[T], targets[T];
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < PER_TASK; k++) {
            const double depth = (k + 0.5) / PER_TASK;
            const uint64_t s = eval_task_seed(seed, tasks[t], T, depth);
            int64_t start, len;
            if (tasks[t] == EVAL_NEEDLE_PASSKEY) {
                passkey_config c = pk;
                c.depth = depth;
                passkey_info info;
                assert_int_equal(passkey_make(tokens, targets, &info, &c, s, T, err, sizeof err), 0);
                start = info.answer_start, len = info.answer_len;
                assert_true(fabs(info.depth - depth) < 0.2);  // the needle at its depth (within a sentence)
            } else {
                task_info info;
                assert_int_equal(task_make(tokens, targets, &info, tasks[t], &env, depth, s, T, err, sizeof err), 0);
                start = info.answer_start, len = info.answer_len;
            }
            const int64_t j = t * PER_TASK + k;
            const int32_t *got = nd.tokens + j * T, *got_t = nd.targets + j * T;
            assert_memory_equal(got, tokens, sizeof tokens);
            assert_true(len >= 1 && start + len == T);
            for (int64_t i = 0; i < T; i++)  // targets exactly on the answer
                assert_int_equal(got_t[i], i >= start - 1 && i < T - 1 ? tokens[i + 1] : -1);
            want += reference_nll(m, tokens, start, len);
            count += len;
        }
    printf("  answer-token NLL: %.9g (eval_needle_nll) vs %.9g (float64 reference), %lld tokens\n",
           sums[0], want, (long long)count);
    assert_int_equal((int64_t)sums[1], count);
    assert_int_equal(nd.answer_tokens, count);
    assert_true(want > 0 && fabs(sums[0] - want) <= 1e-5 * want);
    model_free(m);
    eval_needles_free(&nd);
}

static void test_same_seed_same_set(void **state) {
    (void)state;
    const passkey_config pk = pk_config();
    const task_env env = task_config();
    const int tasks[2] = {TASK_VT, EVAL_NEEDLE_PASSKEY};
    char err[512];
    eval_needles a, b, c;
    assert_int_equal(eval_needles_make(&a, &pk, &env, tasks, 2, 2, T, 9, err, sizeof err), 0);
    assert_int_equal(eval_needles_make(&b, &pk, &env, tasks, 2, 2, T, 9, err, sizeof err), 0);
    assert_int_equal(eval_needles_make(&c, &pk, &env, tasks, 2, 2, T, 10, err, sizeof err), 0);
    assert_memory_equal(a.tokens, b.tokens, sizeof(int32_t) * 4 * T);
    assert_memory_equal(a.targets, b.targets, sizeof(int32_t) * 4 * T);
    assert_true(memcmp(a.tokens, c.tokens, sizeof(int32_t) * 4 * T) != 0);
    eval_needles_free(&a);
    eval_needles_free(&b);
    eval_needles_free(&c);
}

static void test_errors(void **state) {
    (void)state;
    const passkey_config pk = pk_config();
    const task_env env = task_config();
    char err[512];
    eval_needles nd;
    const int passkey = EVAL_NEEDLE_PASSKEY, text = TASK_NIAH_SINGLE_TEXT;
    assert_int_equal(eval_needles_make(&nd, &pk, &env, &passkey, 1, 2, 8, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "passkey"));
    assert_non_null(strstr(err, "8 tokens cannot hold a sample"));
    assert_null(strchr(err, '\n'));
    assert_null(nd.tokens);
    assert_int_equal(eval_needles_make(&nd, &pk, &env, &text, 1, 2, T, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "haystack"));
    int id;
    assert_int_equal(eval_needle_task_parse("passkey", &id), 0);
    assert_int_equal(id, EVAL_NEEDLE_PASSKEY);
    assert_int_equal(eval_needle_task_parse("cwe", &id), 0);
    assert_int_equal(id, TASK_CWE);
    assert_int_equal(eval_needle_task_parse("needle", &id), -1);
    assert_string_equal(eval_needle_task_name(EVAL_NEEDLE_PASSKEY), "passkey");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nll_against_reference),
        cmocka_unit_test(test_same_seed_same_set),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
