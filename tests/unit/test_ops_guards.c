// test_ops_guards: what the CPU kernels do besides computing, which the op
// harness (tests/ops, ctest ops_check: every op against float64 references
// and finite differences, on every backend) does not cover: an out-of-range
// token or target stops the program (exit 1) instead of reading out of
// bounds, and the gradient clipping factor of the optimizer.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adamw.h"
#include "embedding.h"
#include "xent.h"

// Runs fn(ctx) in a child process with stderr silenced; returns its exit status.
static int exit_status_of(void (*fn)(void *), void *ctx) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 2);
        fn(ctx);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void emb_bad_token(void *ctx) {
    (void)ctx;
    const int32_t tokens[3] = {0, 7, 1};  // 7 is outside [0, 7)
    float wte[7 * 2] = {0}, out[3 * 2];
    embedding_forward(out, tokens, wte, 3, 2, 7);
}

static void xent_bad_target(void *ctx) {
    (void)ctx;
    const float h[2] = {1, 2}, w[3 * 2] = {0};
    const int32_t targets[1] = {3};  // V = 3
    xent_forward_backward(NULL, NULL, NULL, h, w, targets, 1, 2, 3, 1.0f);
}

static void test_out_of_range_ids_die(void **state) {
    (void)state;
    assert_int_equal(exit_status_of(emb_bad_token, NULL), 1);
    assert_int_equal(exit_status_of(xent_bad_target, NULL), 1);
}

static void test_clip_factor(void **state) {
    (void)state;
    assert_true(adamw_clip_factor(0.5, 1.0) == 1.0f);
    assert_true(adamw_clip_factor(1.0, 1.0) == 1.0f);
    assert_true(adamw_clip_factor(5.0, 0.0) == 1.0f);  // clipping off
    assert_true(adamw_clip_factor(10.0, 1.0) == (float)(1.0 / (10.0 + 1e-6)));
    assert_true(adamw_clip_factor(4.0, 2.0) == (float)(2.0 / (4.0 + 1e-6)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_range_ids_die),
        cmocka_unit_test(test_clip_factor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
