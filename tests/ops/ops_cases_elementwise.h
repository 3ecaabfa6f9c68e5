// ops_cases_elementwise: the case tables of cast, add and swiglu
// (ops_elementwise.c), in a header so that the CUDA emulator
// (tests/gpu/emu/test_ops.cpp, EMU_TABLES=1) runs the same shapes.
// Valid C and C++.
#pragma once

#include <stdint.h>

// cast: n, misalign (1: both pointers one element past an aligned address)
static const struct {
    int64_t n;
    int misalign;  // 1: both pointers one element past an aligned address
    uint64_t seed;
} CAST[] = {{1, 0, 11}, {7, 0, 12}, {1000, 0, 13}, {4099, 0, 14}, {1 << 20, 0, 15},
            {1001, 1, 16}};
enum { N_CAST = sizeof CAST / sizeof *CAST };

// add (y += x)
static const struct {
    int64_t n;
    int misalign;
    uint64_t seed;
} ADD[] = {{1, 0, 21}, {7, 0, 22}, {1000, 0, 23}, {4099, 0, 24}, {1 << 20, 0, 25}, {1001, 1, 26}};
enum { N_ADD = sizeof ADD / sizeof *ADD };

// swiglu
static const struct {
    int64_t n;
    float gate_scale, up_scale;
    int extremes;  // the first 7 gates at -100, -88, -30, 0, 30, 88, 100
    uint64_t seed;
} SW[] = {{1001, 12, 2, 1, 4}, {1, 6, 2, 0, 31}, {13, 6, 2, 0, 32}, {4096, 6, 2, 0, 33},
          {100003, 6, 2, 0, 34}};
enum { N_SW = sizeof SW / sizeof *SW };
