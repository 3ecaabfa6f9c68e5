// gguf_quant: float32 -> F32/F16/BF16/Q8_0. See gguf_quant.h.
#include "gguf_quant.h"

#include <math.h>
#include <string.h>

#include "gguf.h"
#include "safetensors.h"

uint64_t gguf_quant_nbytes(uint32_t type, int64_t n) {
    switch (type) {
    case GGML_TYPE_F32: return 4 * (uint64_t)n;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: return 2 * (uint64_t)n;
    case GGML_TYPE_Q8_0: return n % 32 ? 0 : (uint64_t)n / 32 * 34;
    default: return 0;
    }
}

// One Q8_0 block: {f16 d; int8 qs[32]}.
static void q8_0_block(uint8_t *b, const float *x) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t h = st_f32_to_f16(d);
    memcpy(b, &h, 2);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

int gguf_quant(void *out, const float *x, int64_t n, uint32_t type) {
    uint8_t *o = out;
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(o, x, 4 * (size_t)n);
        return 0;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = type == GGML_TYPE_F16 ? st_f32_to_f16(x[i]) : st_f32_to_bf16(x[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        return 0;
    case GGML_TYPE_Q8_0:
        if (n % 32) return -1;
        for (int64_t i = 0; i < n / 32; i++) q8_0_block(o + 34 * i, x + 32 * i);
        return 0;
    default:
        return -1;
    }
}
