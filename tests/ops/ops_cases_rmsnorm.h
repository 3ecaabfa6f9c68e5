// ops_cases_rmsnorm: the case table of rmsnorm (ops_rmsnorm.c), in a header
// so that the CUDA emulator (tests/gpu/emu/test_ops.cpp, EMU_TABLES=1) runs
// the same shapes.
// Valid C and C++.
#pragma once

#include <stdint.h>

static const struct {
    int64_t N, C;
    float xscale;  // x uniform in [-xscale, xscale); w in [0.5, 1.5)
    uint64_t seed;
} RMS[] = {
    {5, 37, 3, 3}, {20, 100, 3, 4},                                        // was tests/unit
    {1, 8, 2, 41}, {7, 13, 2, 42}, {64, 576, 2, 43}, {33, 4096, 2, 44},    // was tests/gpu
    {3, 10000, 2, 45}, {1000, 576, 2, 46},
};
enum { N_RMS = sizeof RMS / sizeof *RMS };
