// sched_lr against values worked out by hand.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "lr.h"

static void test_warmup_then_cosine(void **state) {
    (void)state;
    // warmup 10 steps to 1e-3, then cosine over 90 steps down to 1e-4.
    assert_float_equal(sched_lr(SCHED_COSINE, 1e-3, 0.1, 10, 100, 0), 1e-4, 1e-12);
    assert_float_equal(sched_lr(SCHED_COSINE, 1e-3, 0.1, 10, 100, 9), 1e-3, 1e-12);
    assert_float_equal(sched_lr(SCHED_COSINE, 1e-3, 0.1, 10, 100, 10), 1e-3, 1e-12);
    // halfway through the decay: min + (max - min) / 2
    assert_float_equal(sched_lr(SCHED_COSINE, 1e-3, 0.1, 10, 100, 55), 5.5e-4, 1e-12);
    assert_float_equal(sched_lr(SCHED_COSINE, 1e-3, 0.1, 10, 100, 100), 1e-4, 1e-12);
    assert_float_equal(sched_lr(SCHED_COSINE, 1e-3, 0.1, 10, 100, 500), 1e-4, 1e-12);
}

static void test_constant(void **state) {
    (void)state;
    assert_float_equal(sched_lr(SCHED_CONSTANT, 2e-4, 0.1, 4, 100, 1), 1e-4, 1e-12);
    assert_float_equal(sched_lr(SCHED_CONSTANT, 2e-4, 0.1, 4, 100, 77), 2e-4, 1e-12);
    assert_float_equal(sched_lr(SCHED_CONSTANT, 2e-4, 0.1, 0, 100, 0), 2e-4, 1e-12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmup_then_cosine),
        cmocka_unit_test(test_constant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
