// ops_cases_adamw: the case tables of grad_norm and adamw (ops_adamw.c), in a
// header so that the CUDA emulator (tests/gpu/emu/test_ops.cpp, EMU_TABLES=1)
// runs the same shapes.
// Valid C and C++.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "adamw.h"  // adamw_hparams

// grad_norm_sq
static const struct {
    int64_t n;
    uint64_t seed;
} GN[] = {{3 * 65536 + 123, 9}, {0, 101}, {1, 102}, {1000, 103}, {(1 << 22) + 3, 104}};
enum { N_GN = sizeof GN / sizeof *GN };

// adamw
enum { MAXT = 5 };
typedef struct {
    int nt;
    int64_t sizes[MAXT];
    bool decay[MAXT];
    adamw_hparams hp;
    int steps;          // steps 1..steps from zero moments; 0: one step at `step`
    int64_t step;
    float grad_scale;
    int sign_case;      // p = 1, g = {0.5, -2, 0}: step 1 moves by -lr sign(g)
    uint64_t seed;
} ad_case;

static const ad_case AD[] = {
    // was tests/unit: 1000 parameters, 6 steps, grads 0.1 with every 10th zero
    {1, {1000}, {1}, {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f}, 6, 0, 1.0f, 0, 8},
    {1, {1000}, {0}, {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f}, 6, 0, 1.0f, 0, 8},
    {1, {1000}, {1}, {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f}, 6, 0, 0.25f, 0, 8},
    {1, {3}, {0}, {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}, 1, 0, 1.0f, 1, 0},
    // was tests/gpu: 5 tensors, mask 1 0 1 0 1, one step at step 3 from random moments
    {5, {5, 1, 4097, 300, 64}, {1, 0, 1, 0, 1},
     {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f}, 0, 3, 0.7f, 0, 111},
};
enum { N_AD = sizeof AD / sizeof *AD };
