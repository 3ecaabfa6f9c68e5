// Tests for trainer/eval/eval_args: the accepted forms of lengths, depths, counts
// and RoPE overrides, and one case of every error (a message naming the
// bad entry).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eval_args.h"

static void test_lengths(void **state) {
    (void)state;
    int64_t v[EVAL_MAX_LIST];
    int n;
    char err[256];
    assert_int_equal(eval_parse_lengths(v, &n, "4k,256,1.5k, 1M ,32K,100", err, sizeof err), 0);
    const int64_t want[6] = {100, 256, 1536, 4096, 32768, 1048576};  // sorted
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(v[i], want[i]);
    assert_int_equal(eval_parse_lengths(v, &n, "64", err, sizeof err), 0);
    assert_true(n == 1 && v[0] == 64);

    const struct { const char *text, *named; } bad[] = {
        {"", "empty"}, {"1k,,2k", "empty"}, {"1x", "'1x'"}, {"0", "'0'"}, {"-5", "'-5'"},
        {"1.3", "'1.3'"}, {"1e3", "'1e3'"}, {"0x10", "'0x10'"}, {"abc", "'abc'"}, {"4k,4096", "4096"},
        {"1.0001k", "'1.0001k'"}, {"inf", "'inf'"}, {"2G", "'2G'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(eval_parse_lengths(v, &n, bad[i].text, err, sizeof err), -1);
        if (!strstr(err, bad[i].named)) fail_msg("'%s': message '%s' lacks '%s'", bad[i].text, err, bad[i].named);
    }
    char many[1024] = "1";
    for (int i = 2; i <= EVAL_MAX_LIST + 1; i++) snprintf(many + strlen(many), sizeof many - strlen(many), ",%d", i);
    assert_int_equal(eval_parse_lengths(v, &n, many, err, sizeof err), -1);
}

static void test_depths(void **state) {
    (void)state;
    double v[EVAL_MAX_LIST];
    int n;
    char err[256];
    assert_int_equal(eval_parse_depths(v, &n, "5", err, sizeof err), 0);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) assert_true(fabs(v[i] - 0.25 * i) < 1e-15);
    assert_int_equal(eval_parse_depths(v, &n, "1", err, sizeof err), 0);
    assert_true(n == 1 && v[0] == 0.5);
    assert_int_equal(eval_parse_depths(v, &n, "1.0", err, sizeof err), 0);  // a depth, not a count
    assert_true(n == 1 && v[0] == 1.0);
    assert_int_equal(eval_parse_depths(v, &n, "0.1,0.5,0,1", err, sizeof err), 0);
    assert_true(n == 4 && v[0] == 0.1 && v[1] == 0.5 && v[2] == 0 && v[3] == 1);

    const char *bad[] = {"0", "1.5", "0.5,2", "-0.1,0.5", "x", "0.5,", "65", "nan,0.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(eval_parse_depths(v, &n, bad[i], err, sizeof err), -1);
        assert_true(strlen(err) > 0);
    }
}

static void test_count(void **state) {
    (void)state;
    int64_t v;
    char err[256];
    assert_int_equal(eval_parse_count(&v, "12", err, sizeof err), 0);
    assert_int_equal(v, 12);
    const char *bad[] = {"0", "-1", "1.5", "", "3x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(eval_parse_count(&v, bad[i], err, sizeof err), -1);
}

static void test_rope(void **state) {
    (void)state;
    char err[256];
    eval_rope_opt o = {.stage = -1};
    assert_int_equal(eval_parse_rope(&o, "yarn:32", err, sizeof err), 0);
    assert_true(o.custom && o.type == ROPE_TYPE_YARN && o.factor == 32 && o.stage == -1);
    assert_int_equal(eval_parse_rope(&o, "linear:2.5", err, sizeof err), 0);
    assert_true(o.type == ROPE_TYPE_LINEAR && o.factor == 2.5);
    assert_int_equal(eval_parse_rope(&o, "default", err, sizeof err), 0);
    assert_true(o.type == ROPE_TYPE_DEFAULT && o.factor == 0);
    assert_int_equal(eval_parse_rope(&o, "dynamic:4", err, sizeof err), 0);
    assert_int_equal(eval_parse_rope(&o, "llama3:8", err, sizeof err), 0);
    assert_null(o.factors_file);
    assert_int_equal(eval_parse_rope(&o, "longrope:8:dir/factors.yaml", err, sizeof err), 0);
    assert_true(o.type == ROPE_TYPE_LONGROPE && o.factor == 8);
    assert_string_equal(o.factors_file, "dir/factors.yaml");

    const struct { const char *text, *named; } bad[] = {
        {"yarn", "needs a factor"}, {"yarn:0.5", ">= 1"}, {"yarn:x", ">= 1"}, {"default:2", "no factor"},
        {"longrope:4", "longrope:FACTOR:FILE"}, {"longrope:4:", "longrope:FACTOR:FILE"},
        {"longrope", "longrope:4:factors.yaml"}, {"longrope:0.5:f.yaml", ">= 1"}, {"yarn:4:f.yaml", ">= 1"},
        {"ntk:4", "'ntk'"}, {"", "''"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(eval_parse_rope(&o, bad[i].text, err, sizeof err), -1);
        if (!strstr(err, bad[i].named)) fail_msg("'%s': message '%s' lacks '%s'", bad[i].text, err, bad[i].named);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_depths),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_rope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
