// gguf_quant: float32 -> the ggml tensor types `stretch export --format
// gguf` writes: F32 (copied), F16 and BF16 (round to nearest even, as
// safetensors.h), Q8_0 (ggml's reference quantize_row_q8_0: per block of 32,
// d = max|x| / 127 stored as F16, q = round(x / d)). The inverse is
// gguf_dequant.h.
//
// Tested by tests/unit/test_gguf_export.c against a naive quantizer written
// in the test, and through gguf_dequant within each type's error bound.
#pragma once

#include <stdbool.h>
#include <stdint.h>

// Bytes of n elements of type (n a multiple of its block), or 0 for a type
// not written here.
uint64_t gguf_quant_nbytes(uint32_t type, int64_t n);
// out (gguf_quant_nbytes bytes) from x[0..n). 0, or -1 for an unsupported type.
int gguf_quant(void *out, const float *x, int64_t n, uint32_t type);
