// gguf_dequant: ggml block formats -> float32. See gguf_dequant.h.
#include "gguf_dequant.h"

#include <string.h>

#include "gguf.h"
#include "safetensors.h"

static float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return st_f16_to_f32(h);
}

// Q4_0: {f16 d; u8 qs[16]}: low nibbles are elements 0..15, high 16..31, x = (q - 8) d.
static void q4_0(float *y, const uint8_t *b) {
    float d = f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0xF) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

// Q4_1: {f16 d; f16 m; u8 qs[16]}: x = q d + m.
static void q4_1(float *y, const uint8_t *b) {
    float d = f16(b), m = f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0xF) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

// Q5_0: {f16 d; u8 qh[4]; u8 qs[16]}: bit j of qh is the fifth bit of element j; x = (q - 16) d.
static void q5_0(float *y, const uint8_t *b) {
    float d = f16(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
        y[j] = (float)(((qs[j] & 0xF) | h0) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | h1) - 16) * d;
    }
}

// Q5_1: {f16 d; f16 m; u8 qh[4]; u8 qs[16]}: x = q d + m.
static void q5_1(float *y, const uint8_t *b) {
    float d = f16(b), m = f16(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
        y[j] = (float)((qs[j] & 0xF) | h0) * d + m;
        y[j + 16] = (float)((qs[j] >> 4) | h1) * d + m;
    }
}

// Q8_0: {f16 d; i8 qs[32]}: x = q d.
static void q8_0(float *y, const uint8_t *b) {
    float d = f16(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

// The 6-bit scale and min of sub-block j of a K-quant's 12 packed bytes.
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K: {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: 8 sub-blocks of 32,
// x = d sc q - dmin m; a 32-byte run of qs holds two sub-blocks (low, high nibbles).
static void q4_k(float *y, const uint8_t *b) {
    float d = f16(b), dmin = f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int is = 0; is < 8; is += 2, q += 32, y += 64) {
        int sc1, m1, sc2, m2;
        scale_min_k4(is, scales, &sc1, &m1);
        scale_min_k4(is + 1, scales, &sc2, &m2);
        for (int l = 0; l < 32; l++) y[l] = d * (float)sc1 * (float)(q[l] & 0xF) - dmin * (float)m1;
        for (int l = 0; l < 32; l++) y[32 + l] = d * (float)sc2 * (float)(q[l] >> 4) - dmin * (float)m2;
    }
}

// Q5_K: {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K plus a fifth bit from qh.
static void q5_k(float *y, const uint8_t *b) {
    float d = f16(b), dmin = f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *q = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, q += 32, y += 64, u1 <<= 2, u2 <<= 2) {
        int sc1, m1, sc2, m2;
        scale_min_k4(is, scales, &sc1, &m1);
        scale_min_k4(is + 1, scales, &sc2, &m2);
        for (int l = 0; l < 32; l++)
            y[l] = d * (float)sc1 * (float)((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - dmin * (float)m1;
        for (int l = 0; l < 32; l++)
            y[32 + l] = d * (float)sc2 * (float)((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - dmin * (float)m2;
    }
}

// Q6_K: {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: 16 sub-blocks of 16,
// 6-bit q = 4 bits of ql + 2 of qh, x = d sc (q - 32).
static void q6_k(float *y, const uint8_t *b) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = f16(b + 208);
    for (int n = 0; n < 2; n++, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

typedef void (*block_fn)(float *y, const uint8_t *b);

static block_fn block_dequant(uint32_t type) {
    switch (type) {
        case GGML_TYPE_Q4_0: return q4_0;
        case GGML_TYPE_Q4_1: return q4_1;
        case GGML_TYPE_Q5_0: return q5_0;
        case GGML_TYPE_Q5_1: return q5_1;
        case GGML_TYPE_Q8_0: return q8_0;
        case GGML_TYPE_Q4_K: return q4_k;
        case GGML_TYPE_Q5_K: return q5_k;
        case GGML_TYPE_Q6_K: return q6_k;
        default: return NULL;
    }
}

bool gguf_dequant_supported(uint32_t type) {
    return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 || block_dequant(type);
}

int gguf_dequant(float *out, const uint8_t *data, uint32_t type, int64_t n) {
    if (type == GGML_TYPE_F32) {
        memcpy(out, data, sizeof(float) * (size_t)n);
        return 0;
    }
    if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, data + 2 * i, 2);
            out[i] = type == GGML_TYPE_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
        return 0;
    }
    block_fn fn = block_dequant(type);
    int64_t block, bytes;
    if (!fn || !gguf_ggml_type_size(type, &block, &bytes)) return -1;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n / block; i++) fn(out + i * block, data + i * bytes);
    return 0;
}
