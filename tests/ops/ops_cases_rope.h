// ops_cases_rope: the case table of rope (ops_rope.c), in a header so that
// the CUDA emulator (tests/gpu/emu/test_ops.cpp, EMU_TABLES=1) runs the same
// shapes.
// Valid C and C++.
#pragma once

#include <stdint.h>

#include "rope_scaling.h"  // rope_type

// TAB_MIXED: a hand-made table with mixed factors per pair; TAB_WINDOWS: a
// mixed-windows table (LongRoPE2: short and long factors, a window flag per
// token, rope_table_init_mixed) with n_hat.
typedef enum { TAB_MIXED = -1, TAB_WINDOWS = -2 } tab_extra;  // else a rope_type

static const struct {
    int64_t N;
    int H, Hkv, D;
    int table;        // rope_type, TAB_MIXED or TAB_WINDOWS
    int d;            // TAB_MIXED: rotary dim; else partial = d / D
    int64_t n_hat;    // TAB_MIXED, TAB_WINDOWS and LONGROPE
    float attn;       // TAB_MIXED attention factor
    uint64_t seed;
} RP[] = {
    {1, 1, 1, 8, TAB_MIXED, 8, 0, 1.0f, 71},            // was tests/gpu
    {37, 4, 2, 64, TAB_MIXED, 64, 0, 1.0f, 72},
    {65, 32, 8, 128, TAB_MIXED, 128, 0, 1.0f, 73},
    {50, 6, 2, 128, TAB_MIXED, 64, 0, 1.0f, 74},        // partial rotary
    {40, 3, 1, 12, TAB_MIXED, 6, 0, 1.0f, 75},          // 3 pairs: scalar path
    {300, 4, 4, 64, TAB_MIXED, 64, 65536, 1.2f, 76},    // n_hat + attention factor
    {7, 5, 0, 32, TAB_MIXED, 32, 0, 1.0f, 77},          // q only
    {33, 4, 2, 64, ROPE_TYPE_DEFAULT, 64, 0, 0, 78},    // every scaling of the run config
    {33, 4, 2, 64, ROPE_TYPE_LINEAR, 64, 0, 0, 79},
    {33, 4, 2, 64, ROPE_TYPE_DYNAMIC, 64, 0, 0, 80},
    {33, 4, 1, 128, ROPE_TYPE_YARN, 64, 0, 0, 81},      // partial 0.5 + attention factor
    {45, 2, 2, 64, ROPE_TYPE_LONGROPE, 64, 4096, 0, 82},
    {33, 8, 2, 128, ROPE_TYPE_LLAMA3, 128, 0, 0, 83},
    {70, 4, 2, 64, TAB_WINDOWS, 64, 0, 0, 84},          // mixed windows: short and long tokens
    {41, 3, 1, 128, TAB_WINDOWS, 64, 2048, 0, 85},      // + n_hat, partial rotary
};
enum { N_RP = sizeof RP / sizeof *RP };
