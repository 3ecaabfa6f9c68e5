// lr: the learning-rate schedule of one curriculum stage: linear warmup from
// 0, then cosine decay to min_ratio * lr, or constant.
// Tested by tests/unit/test_lr.c.
#pragma once

#include <stdint.h>

typedef enum { SCHED_COSINE, SCHED_CONSTANT } sched_kind;

// Learning rate at 0-based step `step` of a stage of `total` steps.
double sched_lr(sched_kind kind, double lr, double min_ratio, int64_t warmup, int64_t total,
                int64_t step);
