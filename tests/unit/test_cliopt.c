// Tests of common/cliopt.c: --key=value splitting and the "did you mean"
// hint for unknown options.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cliopt.h"

static void test_split(void **state) {
    (void)state;
    char *argv[] = {"train", "run.yaml", "--optimizer.lr=1e-3", "--max-steps", "5", "--x=", "a=b", "--data=a=b", NULL};
    int argc = 8;
    char **out = cliopt_split_eq(&argc, argv);
    assert_non_null(out);
    assert_int_equal(argc, 11);
    const char *want[] = {"train", "run.yaml", "--optimizer.lr", "1e-3", "--max-steps", "5", "--x", "", "a=b", "--data", "a=b"};
    for (int i = 0; i < 11; i++) assert_string_equal(out[i], want[i]);
    assert_null(out[11]);
    free(out);
}

static void test_split_argv0_untouched(void **state) {
    (void)state;
    char *argv[] = {"--odd=name", NULL};
    int argc = 1;
    char **out = cliopt_split_eq(&argc, argv);
    assert_int_equal(argc, 1);
    assert_string_equal(out[0], "--odd=name");
    free(out);
}

static void test_nearest(void **state) {
    (void)state;
    const char *known[] = {"--resume", "--max-steps", "--backend", "--dry-run"};
    assert_string_equal(cliopt_nearest("--dryrun", known, 4), "--dry-run");
    assert_string_equal(cliopt_nearest("--max-step", known, 4), "--max-steps");
    assert_string_equal(cliopt_nearest("--resum", known, 4), "--resume");
    assert_string_equal(cliopt_nearest("--backend-kind", known, 4), "--backend");
    assert_null(cliopt_nearest("--frobnicate", known, 4));
    char hint[64];
    cliopt_hint(hint, sizeof hint, "--dryrun", known, 4);
    assert_string_equal(hint, " (did you mean --dry-run?)");
    cliopt_hint(hint, sizeof hint, "--zzz", known, 4);
    assert_string_equal(hint, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_argv0_untouched),
        cmocka_unit_test(test_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
