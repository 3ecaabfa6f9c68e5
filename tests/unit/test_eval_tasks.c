// Tests for trainer/eval/eval_tasks: the per-task accuracy, average and
// effective length of a grid against hand-computed values, tasks.csv row by
// row, and eval_answer_exact against explicit greedy decoding (a sample
// whose answer is the model's own greedy continuation scores 1; one changed
// answer token scores 0; eval_task_correct over such samples).
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
#include "eval_tasks.h"
#include "rope.h"
#include "tok.h"

static void test_grid(void **state) {
    (void)state;
    const int tasks[2] = {TASK_NIAH_SINGLE, TASK_CWE};
    const int64_t lengths[3] = {256, 512, 1024};
    const double depths[2] = {0.0, 1.0};
    // (task, length, depth); cwe uses depth 0 only (depth 1 holds junk that must be ignored)
    const int64_t correct[2 * 3 * 2] = {4, 2, /**/ 4, 4, /**/ 0, 1, /**/ 3, 99, /**/ 1, 99, /**/ 4, 99};
    eval_task_grid g = {.n_tasks = 2, .n_lengths = 3, .n_depths = 2, .tasks = tasks, .lengths = lengths,
                        .depths = depths, .trials = 4, .correct = correct, .threshold = 0.6, .title = "t"};
    assert_float_equal(eval_task_acc(&g, 0, 0), 0.75, 1e-12);
    assert_float_equal(eval_task_acc(&g, 0, 2), 0.125, 1e-12);
    assert_float_equal(eval_task_acc(&g, 1, 0), 0.75, 1e-12);
    assert_float_equal(eval_task_acc(&g, 1, 1), 0.25, 1e-12);
    assert_float_equal(eval_task_avg(&g, 0), 0.75, 1e-12);
    assert_float_equal(eval_task_avg(&g, 1), 0.625, 1e-12);
    assert_float_equal(eval_task_avg(&g, 2), 0.5625, 1e-12);
    assert_int_equal(eval_task_effective(&g), 512);
    g.threshold = 0.7;
    assert_int_equal(eval_task_effective(&g), 256);
    g.threshold = 0.5;  // every length
    assert_int_equal(eval_task_effective(&g), 1024);
    g.threshold = 0.8;
    assert_int_equal(eval_task_effective(&g), 0);
    // a later length passing again does not count: the first failure ends it
    const int64_t dip[2 * 3 * 2] = {4, 4, 0, 0, 4, 4, 4, 0, 0, 0, 4, 0};
    g.correct = dip, g.threshold = 0.9;
    assert_int_equal(eval_task_effective(&g), 256);

    char dir[] = "/tmp/test_eval_tasks.XXXXXX";
    assert_non_null(mkdtemp(dir));
    g.correct = correct, g.threshold = 0.6;
    char err[512];
    assert_int_equal(eval_report_tasks(dir, &g, err, sizeof err), 0);
    char path[600], text[4096];
    snprintf(path, sizeof path, "%s/tasks.csv", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_string_equal(text,
                        "task,length,depth,trials,correct,accuracy\n"
                        "niah_single,256,0,4,4,1.0000\nniah_single,256,1,4,2,0.5000\n"
                        "niah_single,512,0,4,4,1.0000\nniah_single,512,1,4,4,1.0000\n"
                        "niah_single,1024,0,4,0,0.0000\nniah_single,1024,1,4,1,0.2500\n"
                        "cwe,256,-,4,3,0.7500\ncwe,512,-,4,1,0.2500\ncwe,1024,-,4,4,1.0000\n");
    snprintf(path, sizeof path, "%s/tasks.svg", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "effective length 512"));
    unlink(path);
    snprintf(path, sizeof path, "%s/tasks.csv", dir);
    unlink(path);
    rmdir(dir);
    // an unwritable directory: one line naming the file
    assert_int_equal(eval_report_tasks("/nonexistent/dir", &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir/tasks.csv"));
}

static void test_exact_vs_greedy(void **state) {
    (void)state;
    tok_tokenizer *tok = tok_byte_new();
    const int64_t T = 300;
    model_config mc = {.dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 8, .ffn_dim = 24,
                       .vocab_size = (int)tok_vocab_size(tok), .norm_eps = 1e-5f, .rope_layout = ROPE_LAYOUT_HALF};
    mc.rope = rope_config_default(8);
    mc.rope.max_position_embeddings = T;
    model *m = model_create(&mc, T, false);
    model_init_weights(m, 3);
    rope_table rt;
    rope_table_init(&rt, &mc.rope, T);
    model_set_rope(m, &rt);
    const eval_ring one = {1, 0, NULL, NULL};
    task_env env = {.encode = tok_encode_into, .encode_ctx = tok, .bos_id = -1, .answer_only = 1};
    int32_t tokens[300], targets[300], gen[300];
    for (int task = 0; task < TASK_COUNT; task++) {
        if (TASK_DEFS[task].needs_text) continue;
        task_info info;
        char err[256];
        assert_int_equal(task_make(tokens, targets, &info, task, &env, 0.5, 11, T, err, sizeof err), 0);
        assert_int_equal(eval_answer_exact(m, tokens, targets, T, &one), 0);  // a random model: wrong
        // The model's own greedy continuation as the answer: exact.
        eval_greedy(gen, m, tokens, info.answer_start, info.answer_len);
        memcpy(tokens + info.answer_start, gen, sizeof(int32_t) * (size_t)info.answer_len);
        for (int64_t i = info.answer_start - 1; i + 1 < T; i++) targets[i] = tokens[i + 1];
        assert_int_equal(eval_answer_exact(m, tokens, targets, T, &one), 1);
        // One answer token off (the last): no longer exact.
        targets[T - 2] = (targets[T - 2] + 1) % mc.vocab_size;
        assert_int_equal(eval_answer_exact(m, tokens, targets, T, &one), 0);
    }
    // eval_task_correct agrees with sample-by-sample scoring
    assert_int_equal(eval_task_correct(m, &env, TASK_VT, T, 0.5, 3, 5, &one, NULL, 0), 0);
    model_free(m);
    tok_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_grid), cmocka_unit_test(test_exact_vs_greedy)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
