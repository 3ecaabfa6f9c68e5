// Tests of trainer/formats/gguf_dequant.c: hand-built blocks of every supported type
// against the block formats written out element by element (a different
// formulation from the loops of gguf_dequant.c), and random blocks against
// gguf-py's dequantize (tests/data/gguf_quant_vectors.gguf).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gguf.h"
#include "gguf_dequant.h"
#include "safetensors.h"

static void put_f16(uint8_t *p, float x) {
    uint16_t h = st_f32_to_f16(x);
    memcpy(p, &h, 2);
}

static uint8_t rnd_byte(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (uint8_t)(*s >> 24);
}

static void check(const float *got, const float *want, int n, const char *what) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) fail_msg("%s: element %d is %.9g, expected %.9g", what, i, got[i], want[i]);
}

// Simple types: values whose conversions are exact.
static void test_float_types(void **state) {
    (void)state;
    uint16_t f16[4] = {0x3C00, 0xC000, 0x0001, 0x7BFF};  // 1, -2, smallest subnormal, 65504
    uint16_t bf16[3] = {0x3F80, 0xC040, 0x0000};          // 1, -3, 0
    float f32[2] = {1.5f, -0.25f}, out[4];
    assert_int_equal(gguf_dequant(out, (const uint8_t *)f16, GGML_TYPE_F16, 4), 0);
    check(out, (float[]){1.0f, -2.0f, 0x1p-24f, 65504.0f}, 4, "F16");
    assert_int_equal(gguf_dequant(out, (const uint8_t *)bf16, GGML_TYPE_BF16, 3), 0);
    check(out, (float[]){1.0f, -3.0f, 0.0f}, 3, "BF16");
    assert_int_equal(gguf_dequant(out, (const uint8_t *)f32, GGML_TYPE_F32, 2), 0);
    check(out, f32, 2, "F32");
    assert_int_equal(gguf_dequant(out, (const uint8_t *)f32, 10 /* Q2_K */, 256), -1);
    assert_false(gguf_dequant_supported(10));
    assert_true(gguf_dequant_supported(GGML_TYPE_Q6_K));
}

// The 32-element formats: x_e = (q_e - offset) d + m, with q_e's low four
// bits in byte e % 16 of qs (low nibble for e < 16) and its fifth bit bit e of qh.
static void legacy_block(uint32_t type, uint64_t seed) {
    uint8_t b[64];
    for (int i = 0; i < 64; i++) b[i] = rnd_byte(&seed);
    const float d = 0.125f, m = -0.75f;
    bool has_m = type == GGML_TYPE_Q4_1 || type == GGML_TYPE_Q5_1;
    bool five = type == GGML_TYPE_Q5_0 || type == GGML_TYPE_Q5_1;
    put_f16(b, d);
    if (has_m) put_f16(b + 2, m);
    int qh_at = has_m ? 4 : 2, qs_at = qh_at + (five ? 4 : 0);
    float want[32], got[32];
    for (int e = 0; e < 32; e++) {
        int q, offset;
        if (type == GGML_TYPE_Q8_0) {
            q = (int8_t)b[2 + e], offset = 0;
        } else {
            uint8_t byte = b[qs_at + e % 16];
            q = e < 16 ? byte & 15 : byte >> 4;
            if (five) q |= ((b[qh_at + e / 8] >> (e % 8)) & 1) << 4;
            offset = has_m ? 0 : (five ? 16 : 8);
        }
        want[e] = (float)(q - offset) * d + (has_m ? m : 0.0f);
    }
    assert_int_equal(gguf_dequant(got, b, type, 32), 0);
    check(got, want, 32, gguf_ggml_type_name(type));
}

static void test_legacy_blocks(void **state) {
    (void)state;
    const uint32_t types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0};
    for (int k = 0; k < 5; k++)
        for (uint64_t s = 1; s <= 8; s++) legacy_block(types[k], s * 7919 + k);
}

// 6-bit scale and min of sub-block s from the 12 packed bytes of Q4_K/Q5_K:
// bytes 0..3 hold scales 0..3 (low 6 bits) and the top 2 bits of scales 4..7,
// bytes 4..7 mins 0..3 likewise, bytes 8..11 the low 4 bits of scales (low
// nibble) and mins (high nibble) 4..7.
static void k_scale(const uint8_t *q, int s, int *sc, int *mn) {
    if (s < 4) {
        *sc = q[s] & 63, *mn = q[4 + s] & 63;
    } else {
        *sc = (q[8 + s - 4] & 15) | ((q[s - 4] >> 6) << 4);
        *mn = (q[8 + s - 4] >> 4) | ((q[s] >> 6) << 4);
    }
}

static void test_k_blocks(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        uint64_t s = seed * 104729;
        uint8_t b[256];
        float want[256], got[256];
        // Q4_K / Q5_K: sub-block j (32 elements) uses byte (j / 2) * 32 + l of qs,
        // low nibble for even j; Q5_K adds bit j of qh[l] as 16.
        for (int five = 0; five < 2; five++) {
            for (int i = 0; i < 256; i++) b[i] = rnd_byte(&s);
            const float d = 0.01f, dmin = 0.02f;
            put_f16(b, d);
            put_f16(b + 2, dmin);
            const uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
            for (int j = 0; j < 8; j++) {
                int sc, mn;
                k_scale(b + 4, j, &sc, &mn);
                for (int l = 0; l < 32; l++) {
                    uint8_t byte = qs[(j / 2) * 32 + l];
                    int q = j % 2 == 0 ? byte & 15 : byte >> 4;
                    if (five) q += ((qh[l] >> j) & 1) * 16;
                    want[j * 32 + l] = st_f16_to_f32(st_f32_to_f16(d)) * (float)sc * (float)q -
                                       st_f16_to_f32(st_f32_to_f16(dmin)) * (float)mn;
                }
            }
            uint32_t type = five ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
            assert_int_equal(gguf_dequant(got, b, type, 256), 0);
            check(got, want, 256, gguf_ggml_type_name(type));
        }
        // Q6_K: element n: half h = n / 128, quarter r = (n % 128) / 32, l = n % 32;
        // low 4 bits from ql[64 h + 32 (r % 2) + l] (low nibble for r < 2), high 2
        // bits from qh[32 h + l] >> 2 r; scale sc[8 h + 2 r + l / 16]; x = d sc (q - 32).
        for (int i = 0; i < 256; i++) b[i] = rnd_byte(&s);
        const float d = 0.003f;
        put_f16(b + 208, d);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int n = 0; n < 256; n++) {
            int h = n / 128, r = (n % 128) / 32, l = n % 32;
            uint8_t lo = ql[64 * h + 32 * (r % 2) + l];
            int q = (r < 2 ? lo & 15 : lo >> 4) | (((qh[32 * h + l] >> (2 * r)) & 3) << 4);
            want[n] = st_f16_to_f32(st_f32_to_f16(d)) * (float)sc[8 * h + 2 * r + l / 16] * (float)(q - 32);
        }
        assert_int_equal(gguf_dequant(got, b, GGML_TYPE_Q6_K, 256), 0);
        check(got, want, 256, "Q6_K");
    }
}

// Random blocks against gguf-py (tests/data/make_gguf_vectors.py).
static void test_gguf_py_vectors(void **state) {
    (void)state;
    char err[512];
    gguf_file *f = gguf_open(STRETCH_TEST_DATA_DIR "/gguf_quant_vectors.gguf", err, sizeof err);
    if (!f) fail_msg("%s", err);
    int checked = 0;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *q = &f->tensors[i];
        if (strncmp(q->name, "q.", 2) != 0) continue;
        char ref_name[64];
        snprintf(ref_name, sizeof ref_name, "ref.%s", q->name + 2);
        const gguf_tensor *ref = gguf_find_tensor(f, ref_name);
        assert_non_null(ref);
        assert_int_equal(ref->n_elements, q->n_elements);
        float *got = malloc(sizeof(float) * q->n_elements), *want = malloc(sizeof(float) * q->n_elements);
        assert_int_equal(gguf_dequant(got, q->data, q->type, (int64_t)q->n_elements), 0);
        memcpy(want, ref->data, sizeof(float) * q->n_elements);
        for (uint64_t j = 0; j < q->n_elements; j++)  // gguf-py may round products in another order
            if (fabsf(got[j] - want[j]) > 1e-6f * (1.0f + fabsf(want[j])))
                fail_msg("%s: element %llu is %.9g, gguf-py gives %.9g", q->name, (unsigned long long)j, got[j],
                         want[j]);
        free(got);
        free(want);
        checked++;
    }
    assert_int_equal(checked, 10);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_types),
        cmocka_unit_test(test_legacy_blocks),
        cmocka_unit_test(test_k_blocks),
        cmocka_unit_test(test_gguf_py_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
