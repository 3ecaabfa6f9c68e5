// rmsnorm: Llama RMSNorm, out = weight * x / sqrt(mean(x^2) + eps), fp32.
// Tested by tests/ops/ops_rmsnorm.c (ctest ops_check) against a float64 naive
// version and finite differences.
#pragma once

#include <stdint.h>

// out, inp: (N, C); weight: (C); rstd: (N) saved 1/sqrt(mean(x^2)+eps) for backward.
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     int64_t N, int64_t C, float eps);

// Accumulates (+=) into dinp (N, C) and dweight (C).
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int64_t N, int64_t C);
