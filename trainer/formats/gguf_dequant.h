// gguf_dequant: ggml tensor data -> float32, with ggml's reference formulas
// (ggml-quants.c dequantize_row_*). Supported: F32, F16, BF16, Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. Blocks run along ne[0] (a row), so a
// row of a quantized matrix is a whole number of blocks.
//
// Tested by tests/unit/test_gguf_dequant.c: hand-built blocks of every type
// against the formulas written out, and tests/data/gguf_quant_vectors.gguf
// (random blocks with gguf-py's gguf.quants.dequantize output beside them,
// made by tests/data/make_gguf_vectors.py).
#pragma once

#include <stdbool.h>
#include <stdint.h>

// True if gguf_dequant handles the ggml type.
bool gguf_dequant_supported(uint32_t type);

// out[0..n) from the n elements at data (n a multiple of the type's block;
// data holds n / block blocks). 0, or -1 for an unsupported type.
int gguf_dequant(float *out, const uint8_t *data, uint32_t type, int64_t n);
