// matmul: linear layers through OpenBLAS sgemm, weights in the HF/PyTorch
// nn.Linear layout (out_features, in_features).
// Tested by tests/ops/ops_matmul.c (ctest ops_check) against a float64 naive
// triple loop and finite differences.
#pragma once

#include <stddef.h>
#include <stdint.h>

// out (N, OC) = inp (N, C) @ weight (OC, C)^T
void matmul_forward(float *out, const float *inp, const float *weight, int64_t N, int64_t C,
                    int64_t OC);

// Accumulates (+=): dinp (N, C) += dout @ weight; dweight (OC, C) += dout^T @ inp.
// Either output may be NULL to skip it.
void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                     const float *weight, int64_t N, int64_t C, int64_t OC);

// The BLAS kernel sgemm runs and its thread count ("OpenBLAS Cooperlake, 2
// threads"): with the binary, what decides a run's rounding, so two runs
// agree bit for bit when these agree (OPENBLAS_CORETYPE, OMP_NUM_THREADS).
void matmul_blas_describe(char *buf, size_t n);
