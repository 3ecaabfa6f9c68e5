// Hugging Face import/export: safetensors, config.json and the model
// directory.
//  - fp32 <-> F16 / BF16: exact known values (rounding ties, subnormals,
//    overflow, NaN), then millions of floats against independent references
//    (the compiler's _Float16; a nearest-value search in double for bf16).
//  - safetensors: round trip of F32/BF16/F16 tensors (exact), the file
//    layout (8-byte aligned header, metadata), sharded directories, and
//    corrupt files (bad header, offsets beyond the file, holes, overlaps,
//    duplicates, unknown dtypes, a missing tensor, a wrong shape), each error
//    naming the file and the tensor.
//  - config.json: every case of tests/data/rope_vectors.json (a numpy
//    reference of transformers) read through hf_config_parse gives its
//    inv_freq and attention factor; Llama-3.1, Qwen-style yarn and Phi-3-style
//    longrope configs read and written back with exactly the keys
//    transformers reads; n_hat dropped with a warning; bad configs name the key.
//  - model directory: save -> load is bit-exact (fp32) or rounds as bf16;
//    missing / misshapen / unexpected tensors are named; an interleaved-layout
//    model and its half-layout export give the same logits (and without the
//    permutation they would not).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "die.h"
#include "test_tmpdir.h"
#include "hf_config.h"
#include "hf_io.h"
#include "model.h"
#include "rng.h"
#include "safetensors.h"
#include "xent.h"

// ===========================================================================
// Fixtures and helpers

static int setup(void **state) { return tmpdir_setup(state, "test_hfio"); }

static int teardown(void **state) {
    fixture *f = *state;
    int rc = tmpdir_rm_tree(f->dir);
    free(f);
    return rc;
}

static void path_in(char *out, size_t len, const fixture *f, const char *name) {
    snprintf(out, len, "%s/%s", f->dir, name);
}

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static void write_text_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

// A .safetensors file from a header text (not padded) and raw data bytes.
static void write_raw(const char *path, const char *header, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t len = strlen(header);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(len >> (8 * i));
    assert_int_equal(fwrite(len8, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, len, f), len);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

// st_open must fail with a message holding every one of the given pieces.
static void expect_open_error(const char *path, const char *piece1, const char *piece2) {
    char err[1024] = "";
    st_reader *r = st_open(path, err, sizeof err);
    if (r) {
        st_close(r);
        fail_msg("%s opened, expected an error with '%s'", path, piece1);
    }
    if (!strstr(err, piece1) || (piece2 && !strstr(err, piece2)))
        fail_msg("error '%s' lacks '%s' / '%s'", err, piece1, piece2 ? piece2 : "");
    assert_null(strchr(err, '\n'));
}

// ===========================================================================
// 16-bit conversions

static void test_conversions_known_values(void **state) {
    (void)state;
    // bf16: truncation + round to nearest even on the low 16 bits.
    assert_int_equal(st_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(st_f32_to_bf16(-2.0f), 0xc000);
    assert_int_equal(st_f32_to_bf16(3.14159265f), 0x4049);           // 0x40490fdb rounds down
    assert_int_equal(st_f32_to_bf16(float_of(0x3f808000)), 0x3f80);  // tie, even stays
    assert_int_equal(st_f32_to_bf16(float_of(0x3f818000)), 0x3f82);  // tie, odd rounds up
    assert_int_equal(st_f32_to_bf16(float_of(0x3f808001)), 0x3f81);  // just above the tie
    assert_int_equal(st_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(st_f32_to_bf16(float_of(0x7f7fffff)), 0x7f80);  // FLT_MAX overflows to inf
    assert_int_equal(st_f32_to_bf16(NAN) & 0x7fc0, 0x7fc0);          // stays a (quiet) NaN
    assert_int_equal(st_f32_to_bf16(float_of(0x7f800001)) & 0x7fc0, 0x7fc0);  // signalling NaN
    assert_int_equal(st_f32_to_bf16(-0.0f), 0x8000);
    assert_true(st_bf16_to_f32(0x4049) == 3.140625f);
    assert_true(st_bf16_to_f32(0x0001) == float_of(0x00010000));     // subnormal kept exactly

    // f16: IEEE binary16.
    assert_int_equal(st_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(st_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(st_f32_to_f16(0.1f), 0x2e66);
    assert_int_equal(st_f32_to_f16(65504.0f), 0x7bff);                // largest finite
    assert_int_equal(st_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(st_f32_to_f16(65520.0f), 0x7c00);                // the tie rounds to inf
    assert_int_equal(st_f32_to_f16(1e6f), 0x7c00);
    assert_int_equal(st_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(st_f32_to_f16(ldexpf(1.0f, -14)), 0x0400);      // smallest normal
    assert_int_equal(st_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);      // smallest subnormal
    assert_int_equal(st_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);      // tie with 0: even
    assert_int_equal(st_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
    assert_int_equal(st_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);      // 1.5 ulp: tie, to even 2
    assert_int_equal(st_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);   // subnormal rounds up to normal
    assert_int_equal(st_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);  // tie, even
    assert_int_equal(st_f32_to_f16(1.0f + ldexpf(3.0f, -11)), 0x3c02);  // tie, odd rounds up
    assert_int_equal(st_f32_to_f16(1e-8f), 0x0000);
    assert_int_equal(st_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(st_f32_to_f16(NAN) & 0x7e00, 0x7e00);
    assert_true(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(st_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(st_f16_to_f32(0x3555) == 0.333251953125f);
    assert_true(st_f16_to_f32(0x2e66) == 0.0999755859375f);
    assert_true(st_f16_to_f32(0xfc00) == -INFINITY);
    assert_true(isnan(st_f16_to_f32(0x7e00)));
    assert_true(st_f16_to_f32(0x8000) == 0.0f && signbit(st_f16_to_f32(0x8000)));
}

// Nearest bf16 of a finite x by comparing the two candidates in double
// (exact), ties to the even one; 2^128 stands for the step past FLT_MAX.
static uint16_t bf16_reference(float x) {
    uint32_t u = bits_of(x), lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double dx = fabs((double)x), dlo = fabs((double)float_of(lo));
    double dhi = (hi & 0x7fffffffu) == 0x7f800000u ? ldexp(1.0, 128) : fabs((double)float_of(hi));
    double a = dx - dlo, b = dhi - dx;
    if (a < b || (a == b && ((lo >> 16) & 1u) == 0)) return (uint16_t)(lo >> 16);
    return (uint16_t)(hi >> 16);
}

static void test_conversions_against_references(void **state) {
    (void)state;
    // Every 16-bit pattern converts to fp32 and back unchanged (NaNs stay NaN).
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_f16_to_f32((uint16_t)h), b = st_bf16_to_f32((uint16_t)h);
        if (isnan(f)) assert_true(isnan(st_f16_to_f32(st_f32_to_f16(f))));
        else assert_int_equal(st_f32_to_f16(f), h);
        if (isnan(b)) assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(b))));
        else assert_int_equal(st_f32_to_bf16(b), h);
    }
    // fp32 -> bf16 on a stride through all 2^32 patterns, plus every tie.
    int64_t checked = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 1021) {
        float x = float_of((uint32_t)u);
        if (isnan(x)) continue;
        assert_int_equal(st_f32_to_bf16(x), bf16_reference(x));
        checked++;
    }
    for (uint32_t h = 0; h < 65536; h++) {
        for (int d = -1; d <= 1; d++) {
            float x = float_of((h << 16) + 0x8000u + (uint32_t)d);
            if (!isnan(x)) assert_int_equal(st_f32_to_bf16(x), bf16_reference(x));
        }
    }
#ifdef __FLT16_MAX__
    // fp32 -> f16 against the compiler's _Float16 (an independent implementation).
    for (uint64_t u = 0; u < (1ull << 32); u += 1021) {
        float x = float_of((uint32_t)u);
        if (isnan(x)) continue;
        _Float16 ref = (_Float16)x;
        uint16_t rb;
        memcpy(&rb, &ref, sizeof rb);
        if (st_f32_to_f16(x) != rb) fail_msg("f16(%a) = %04x, _Float16 gives %04x", (double)x, st_f32_to_f16(x), rb);
    }
    // Every f16 tie: the midpoints between neighbours, and one fp32 ulp either side.
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double mid = 0.5 * ((double)st_f16_to_f32((uint16_t)h) + (double)st_f16_to_f32((uint16_t)(h + 1)));
        float m = (float)mid;  // exact: a midpoint needs 12 significant bits
        for (int d = -1; d <= 1; d++) {
            float x = float_of(bits_of(m) + (uint32_t)d);
            _Float16 ref = (_Float16)x;
            uint16_t rb;
            memcpy(&rb, &ref, sizeof rb);
            assert_int_equal(st_f32_to_f16(x), rb);
            assert_int_equal(st_f32_to_f16(-x), rb | 0x8000);
        }
    }
#endif
    assert_true(checked > 4000000);
}

// ===========================================================================
// safetensors files

static void test_safetensors_round_trip(void **state) {
    fixture *f = *state;
    char path[256], err[512];
    path_in(path, sizeof path, f, "t.safetensors");
    float a[6] = {1.0f, -2.5f, 3.14159265f, 0.1f, 1e-8f, 65520.0f};  // (2, 3)
    float b[5] = {1.0f, 3.14159265f, 0.1f, -1e30f, 1.00390625f};    // (5)
    float c[24];                                                     // (2, 3, 4)
    for (int i = 0; i < 24; i++) c[i] = 0.37f * (float)i - 4.0f;
    st_writer *w = st_writer_new();
    int64_t sa[2] = {2, 3}, sb[1] = {5}, sc[3] = {2, 3, 4};
    st_writer_add(w, "a.weight", ST_F32, a, 2, sa);
    st_writer_add(w, "b", ST_BF16, b, 1, sb);       // 10 bytes: the next tensor starts unaligned
    st_writer_add(w, "c.half", ST_F16, a, 2, sa);
    st_writer_add(w, "d.cube", ST_F32, c, 3, sc);
    assert_int_equal(st_write(w, path, err, sizeof err), 0);
    st_writer_free(w);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);  // renamed away

    // The file layout: header length a multiple of 8, metadata, offsets.
    FILE *fp = fopen(path, "rb");
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, fp), 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    assert_int_equal(hlen % 8, 0);
    char *header = xcalloc(1, hlen + 1);
    assert_int_equal(fread(header, 1, hlen, fp), hlen);
    fseek(fp, 0, SEEK_END);
    assert_int_equal(ftell(fp), 8 + (long)hlen + 24 + 10 + 12 + 96);
    fclose(fp);
    cJSON *h = cJSON_Parse(header);
    assert_non_null(h);
    cJSON *meta = cJSON_GetObjectItem(h, "__metadata__");
    assert_string_equal(cJSON_GetObjectItem(meta, "format")->valuestring, "pt");
    cJSON *e = cJSON_GetObjectItem(h, "c.half");
    assert_string_equal(cJSON_GetObjectItem(e, "dtype")->valuestring, "F16");
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "data_offsets"), 0)->valueint, 34);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "data_offsets"), 1)->valueint, 46);
    cJSON_Delete(h);
    free(header);

    st_reader *r = st_open(path, err, sizeof err);
    if (!r) fail_msg("%s", err);
    assert_int_equal(st_count(r), 4);
    assert_string_equal(st_tensor_at(r, 0)->name, "a.weight");  // sorted by name
    assert_int_equal(st_find(r, "b")->dtype, ST_BF16);
    assert_int_equal(st_find(r, "d.cube")->rank, 3);
    assert_null(st_find(r, "nope"));
    float out[24];
    assert_int_equal(st_read_f32(out, r, "a.weight", 2, sa, err, sizeof err), 0);
    assert_memory_equal(out, a, sizeof a);
    assert_int_equal(st_read_f32(out, r, "d.cube", 3, sc, err, sizeof err), 0);
    assert_memory_equal(out, c, sizeof c);
    assert_int_equal(st_read_f32(out, r, "b", 1, sb, err, sizeof err), 0);
    // torch.tensor(b, dtype=float32).to(bfloat16) gives exactly these.
    const float b_bf16[5] = {1.0f, 3.140625f, 0.10009765625f, -1.0002555517425873e+30f, 1.0f};
    assert_memory_equal(out, b_bf16, sizeof b_bf16);
    assert_int_equal(st_read_f32(out, r, "c.half", 2, sa, err, sizeof err), 0);
    const float a_f16[6] = {1.0f, -2.5f, 3.140625f, 0.0999755859375f, 0.0f, INFINITY};  // torch's float16 too
    assert_memory_equal(out, a_f16, sizeof a_f16);
    st_close(r);
}

static void test_safetensors_read_errors(void **state) {
    fixture *f = *state;
    char path[256], err[512];
    path_in(path, sizeof path, f, "m.safetensors");
    float a[4] = {1, 2, 3, 4};
    st_writer *w = st_writer_new();
    int64_t s22[2] = {2, 2};
    st_writer_add(w, "model.norm.weight", ST_F32, a, 2, s22);
    assert_int_equal(st_write(w, path, err, sizeof err), 0);
    st_writer_free(w);
    st_reader *r = st_open(path, err, sizeof err);
    assert_non_null(r);
    float out[8];
    // Missing tensor, wrong shape, wrong rank: the message names file and tensor.
    assert_int_equal(st_read_f32(out, r, "lm_head.weight", 2, s22, err, sizeof err), -1);
    assert_non_null(strstr(err, "lm_head.weight"));
    assert_non_null(strstr(err, path));
    int64_t s41[1] = {4};
    assert_int_equal(st_read_f32(out, r, "model.norm.weight", 1, s41, err, sizeof err), -1);
    assert_non_null(strstr(err, "model.norm.weight has shape [2, 2], expected [4]"));
    int64_t s24[2] = {2, 4};
    assert_int_equal(st_read_f32(out, r, "model.norm.weight", 2, s24, err, sizeof err), -1);
    assert_non_null(strstr(err, "expected [2, 4]"));
    st_close(r);

    // A dtype the format knows but stretch does not read.
    int64_t ints[2] = {7, -1};
    write_raw(path, "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", ints, 16);
    r = st_open(path, err, sizeof err);
    assert_non_null(r);
    int64_t s2[1] = {2};
    assert_int_equal(st_read_f32(out, r, "ids", 1, s2, err, sizeof err), -1);
    assert_non_null(strstr(err, "ids has dtype I64"));
    st_close(r);
}

static void test_safetensors_corrupt_files(void **state) {
    fixture *f = *state;
    char path[256], dir[256];
    path_in(path, sizeof path, f, "bad.safetensors");
    float data[8] = {0};

    write_raw(path, "{}", NULL, 0);  // empty but valid
    char err[512];
    st_reader *r = st_open(path, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(st_count(r), 0);
    st_close(r);

    // Too short, header length beyond the file, not JSON, trailing junk.
    write_text_file(path, "abc");
    expect_open_error(path, path, "too short");
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0, 0, 0, 0, 0, '{', '}'};
    FILE *fp = fopen(path, "wb");
    fwrite(huge, 1, sizeof huge, fp);
    fclose(fp);
    expect_open_error(path, path, "exceeds the file size");
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],", data, 8);
    expect_open_error(path, path, "not a valid JSON object");
    write_raw(path, "[1, 2]", NULL, 0);
    expect_open_error(path, path, "does not start with '{'");
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  x", data, 8);
    expect_open_error(path, path, "unexpected bytes");

    // Entries: offsets beyond the file, size mismatch, overlap, hole, tail.
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", data, 16);
    expect_open_error(path, "tensor w:", "beyond the end of the file");
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", data, 12);
    expect_open_error(path, "tensor w:", "hold 12 bytes, its dtype and shape need 16");
    write_raw(path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data, 12);
    expect_open_error(path, "tensor b:", "overlap");
    write_raw(path, "{\"gap\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data, 12);
    expect_open_error(path, "tensor gap:", "belong to no tensor");
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 12);
    expect_open_error(path, path, "last 4 bytes belong to no tensor");
    write_raw(path, "{\"w\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8);
    expect_open_error(path, "tensor w:", "unknown dtype \"F31\"");
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data, 8);
    expect_open_error(path, "tensor w:", "shape entries");
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", data, 8);
    expect_open_error(path, "tensor w:", "data_offsets");
    write_raw(path,
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data, 8);
    expect_open_error(path, "tensor w appears twice", NULL);

    // A truncated copy of a good file: the last tensor reaches past the end.
    st_writer *w = st_writer_new();
    int64_t s[1] = {8};
    st_writer_add(w, "x", ST_F32, data, 1, s);
    st_writer_add(w, "y.last", ST_F32, data, 1, s);
    assert_int_equal(st_write(w, path, err, sizeof err), 0);
    st_writer_free(w);
    struct stat sb;
    stat(path, &sb);
    assert_int_equal(truncate(path, sb.st_size - 5), 0);
    expect_open_error(path, "tensor y.last:", "beyond the end of the file");

    // A directory without a model file.
    path_in(dir, sizeof dir, f, "empty");
    mkdir(dir, 0755);
    expect_open_error(dir, "no model.safetensors or model.safetensors.index.json", NULL);
    expect_open_error("/nonexistent/x.safetensors", "/nonexistent/x.safetensors", "cannot open");
}

static void test_safetensors_sharded(void **state) {
    fixture *f = *state;
    char dir[256], path[512], err[512];
    path_in(dir, sizeof dir, f, "sharded");
    mkdir(dir, 0755);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    int64_t s4[1] = {4}, s2[1] = {2};
    st_writer *w = st_writer_new();
    st_writer_add(w, "model.embed_tokens.weight", ST_F32, a, 1, s4);
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    assert_int_equal(st_write(w, path, err, sizeof err), 0);
    st_writer_free(w);
    w = st_writer_new();
    st_writer_add(w, "lm_head.weight", ST_BF16, b, 1, s2);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    assert_int_equal(st_write(w, path, err, sizeof err), 0);
    st_writer_free(w);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text_file(path, "{\"metadata\": {\"total_size\": 20}, \"weight_map\": {"
                          "\"lm_head.weight\": \"model-00002-of-00002.safetensors\","
                          "\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"}}");
    st_reader *r = st_open(dir, err, sizeof err);
    if (!r) fail_msg("%s", err);
    assert_int_equal(st_count(r), 2);
    float out[4];
    assert_int_equal(st_read_f32(out, r, "model.embed_tokens.weight", 1, s4, err, sizeof err), 0);
    assert_memory_equal(out, a, sizeof a);
    assert_int_equal(st_read_f32(out, r, "lm_head.weight", 1, s2, err, sizeof err), 0);
    assert_true(out[0] == 5.0f && out[1] == 6.0f);
    assert_non_null(strstr(st_find(r, "lm_head.weight")->file, "model-00002-of-00002"));
    st_close(r);

    // The index names the wrong shard, a tensor no shard has, a path.
    write_text_file(path, "{\"weight_map\": {\"lm_head.weight\": \"model-00001-of-00002.safetensors\","
                          "\"model.embed_tokens.weight\": \"model-00002-of-00002.safetensors\"}}");
    expect_open_error(dir, "tensor lm_head.weight: the index says", "00001");
    write_text_file(path, "{\"weight_map\": {\"lm_head.weight\": \"model-00002-of-00002.safetensors\","
                          "\"model.norm.weight\": \"model-00002-of-00002.safetensors\"}}");
    expect_open_error(dir, "tensor model.norm.weight", "missing");
    write_text_file(path, "{\"weight_map\": {\"lm_head.weight\": \"../model-00002-of-00002.safetensors\"}}");
    expect_open_error(dir, "tensor lm_head.weight", "file name in the same directory");
    write_text_file(path, "{\"weight_map\": {\"x\": \"model-00003-of-00002.safetensors\"}}");
    expect_open_error(dir, "model-00003-of-00002.safetensors", "cannot open");
    write_text_file(path, "{\"metadata\": {}}");
    expect_open_error(dir, "model.safetensors.index.json", "weight_map");
    // The same tensor in two shards.
    write_text_file(path, "{\"weight_map\": {\"lm_head.weight\": \"model-00002-of-00002.safetensors\","
                          "\"x\": \"model-00001-of-00002.safetensors\"}}");
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    w = st_writer_new();
    st_writer_add(w, "lm_head.weight", ST_F32, b, 1, s2);
    st_writer_add(w, "x", ST_F32, b, 1, s2);
    assert_int_equal(st_write(w, path, err, sizeof err), 0);
    st_writer_free(w);
    expect_open_error(dir, "tensor lm_head.weight appears twice", NULL);
}

// ===========================================================================
// config.json

// A Llama config.json around a rope_vectors.json case config.
static char *config_for_case(const cJSON *cc, bool phi3_original) {
    cJSON *c = cJSON_Duplicate(cc, 1);
    int head_dim = cJSON_GetObjectItem(c, "head_dim")->valueint;
    cJSON_AddStringToObject(c, "model_type", "llama");
    cJSON_AddNumberToObject(c, "hidden_size", 4 * head_dim);
    cJSON_AddNumberToObject(c, "intermediate_size", 8 * head_dim);
    cJSON_AddNumberToObject(c, "num_hidden_layers", 1);
    cJSON_AddNumberToObject(c, "num_attention_heads", 4);
    cJSON_AddNumberToObject(c, "num_key_value_heads", 2);
    cJSON_AddNumberToObject(c, "vocab_size", 100);
    cJSON *rs = cJSON_GetObjectItem(c, "rope_scaling");
    if (phi3_original && cJSON_GetObjectItem(rs, "original_max_position_embeddings")) {
        // Phi-3 style: the original length at the top level, a decoy inside.
        cJSON *o = cJSON_DetachItemFromObject(rs, "original_max_position_embeddings");
        cJSON_AddItemToObject(c, "original_max_position_embeddings", o);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", 1);
        cJSON_AddStringToObject(rs, "type", cJSON_GetObjectItem(rs, "rope_type")->valuestring);
        cJSON_DeleteItemFromObject(rs, "rope_type");
    }
    char *text = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return text;
}

static cJSON *load_vectors(void) {
    FILE *f = fopen(STRETCH_TEST_DATA_DIR "/rope_vectors.json", "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    assert_non_null(root);
    return root;
}

static void check_table(const rope_config *rope, const cJSON *cs, const char *what) {
    const cJSON *sl = cJSON_GetObjectItem(cs, "seq_len");
    rope_table t;
    rope_table_init(&t, rope, cJSON_IsNumber(sl) ? (int64_t)sl->valuedouble : 0);
    const cJSON *inv = cJSON_GetObjectItem(cs, "inv_freq");
    assert_int_equal(t.n_pairs, cJSON_GetArraySize(inv));
    for (int i = 0; i < t.n_pairs; i++) {
        double ref = cJSON_GetArrayItem(inv, i)->valuedouble;
        if (fabs(t.inv_freq[i] - ref) > 1e-6 * ref)
            fail_msg("%s: inv_freq[%d] = %.9g, reference %.9g", what, i, (double)t.inv_freq[i], ref);
    }
    double af = cJSON_GetObjectItem(cs, "attention_factor")->valuedouble;
    if (fabs(t.attention_factor - af) > 1e-6 * af)
        fail_msg("%s: attention factor %.9g, reference %.9g", what, (double)t.attention_factor, af);
}

// Every case of the numpy reference, read as a config.json, gives its
// frequencies; writing the config and reading it back gives the same table.
static void test_config_rope_vectors(void **state) {
    (void)state;
    cJSON *v = load_vectors();
    const cJSON *cs;
    int n = 0;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(v, "cases")) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        for (int phi3 = 0; phi3 < 2; phi3++) {
            char *text = config_for_case(cJSON_GetObjectItem(cs, "config"), phi3);
            model_config m;
            char err[512];
            if (hf_config_parse(&m, text, name, err, sizeof err) != 0) fail_msg("%s", err);
            free(text);
            char what[128];
            snprintf(what, sizeof what, "%s%s", name, phi3 ? " (Phi-3 style)" : "");
            check_table(&m.rope, cs, what);
            for (int flags = 0; flags <= HF_CONFIG_YARN_V4; flags += HF_CONFIG_YARN_V4) {
                char *out = hf_config_to_json(&m, "float32", flags, NULL);
                model_config back;
                if (hf_config_parse(&back, out, "written", err, sizeof err) != 0) fail_msg("%s: %s\n%s", what, err, out);
                check_table(&back.rope, cs, what);
                cJSON *j = cJSON_Parse(out);
                int64_t max_pos = (int64_t)cJSON_GetObjectItem(j, "max_position_embeddings")->valuedouble;
                const cJSON *orig = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "rope_scaling"),
                                                        "original_max_position_embeddings");
                if (flags && m.rope.type == ROPE_TYPE_YARN) {  // the form transformers 4.4x reads
                    assert_null(orig);
                    assert_int_equal(max_pos, m.rope.original_max_position_embeddings);
                } else {
                    assert_int_equal(max_pos, m.rope.max_position_embeddings);
                }
                cJSON_Delete(j);
                free(out);
            }
            n++;
        }
    }
    assert_int_equal(n, 2 * 15);
    cJSON_Delete(v);
}

// The key set of a JSON object, sorted, comma-separated.
static void keys_of(char *buf, size_t len, const cJSON *obj) {
    const char *names[64];
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, obj) names[n++] = e->string;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    buf[0] = '\0';
    for (int i = 0; i < n; i++) snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? "," : "", names[i]);
}

static const char *LLAMA31 =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 128000, \"eos_token_id\": 128001, \"hidden_act\": \"silu\", \"hidden_size\": 4096,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 14336, \"max_position_embeddings\": 131072,"
    " \"mlp_bias\": false, \"model_type\": \"llama\", \"num_attention_heads\": 32, \"num_hidden_layers\": 32,"
    " \"num_key_value_heads\": 8, \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05,"
    " \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
    " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, \"rope_theta\": 500000.0,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.43.0.dev0\","
    " \"use_cache\": true, \"vocab_size\": 128256}";

static void test_config_llama3_yarn_longrope(void **state) {
    (void)state;
    char err[512], keys[512];
    model_config m;
    // Llama-3.1-8B.
    assert_int_equal(hf_config_parse(&m, LLAMA31, "llama31", err, sizeof err), 0);
    assert_int_equal(m.dim, 4096);
    assert_int_equal(m.ffn_dim, 14336);
    assert_int_equal(m.n_layers, 32);
    assert_int_equal(m.n_heads, 32);
    assert_int_equal(m.n_kv_heads, 8);
    assert_int_equal(model_config_head_dim(&m), 128);
    assert_int_equal(m.vocab_size, 128256);
    assert_true(m.norm_eps == 1e-5f);
    assert_false(m.tie_embeddings);
    assert_int_equal(m.rope_layout, ROPE_LAYOUT_HALF);
    assert_int_equal(m.rope.type, ROPE_TYPE_LLAMA3);
    assert_true(m.rope.theta == 500000.0 && m.rope.factor == 8.0);
    assert_true(m.rope.low_freq_factor == 1.0 && m.rope.high_freq_factor == 4.0);
    assert_int_equal(m.rope.original_max_position_embeddings, 8192);
    assert_int_equal(m.rope.max_position_embeddings, 131072);
    char *out = hf_config_to_json(&m, "float32", 0, NULL);
    cJSON *j = cJSON_Parse(out);
    keys_of(keys, sizeof keys, cJSON_GetObjectItem(j, "rope_scaling"));
    assert_string_equal(keys, "factor,high_freq_factor,low_freq_factor,original_max_position_embeddings,rope_type");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "rope_scaling"), "rope_type")->valuestring, "llama3");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "architectures"), 0)->valuestring, "LlamaForCausalLM");
    assert_string_equal(cJSON_GetObjectItem(j, "model_type")->valuestring, "llama");
    assert_string_equal(cJSON_GetObjectItem(j, "torch_dtype")->valuestring, "float32");
    assert_int_equal(cJSON_GetObjectItem(j, "max_position_embeddings")->valuedouble, 131072);
    assert_null(cJSON_GetObjectItem(j, "original_max_position_embeddings"));  // top level: longrope only
    assert_non_null(strstr(out, "\n  \"rms_norm_eps\": 1e-05,\n"));   // Python repr of the float
    assert_non_null(strstr(out, "\n  \"rope_theta\": 500000.0,\n"));
    assert_non_null(strstr(out, "\n    \"factor\": 8.0,\n"));
    assert_null(strchr(out, '\t'));
    cJSON_Delete(j);
    free(out);

    // Qwen-style yarn with the legacy "type" key; optional keys only when set.
    const char *yarn =
        "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
        " \"num_attention_heads\": 4, \"vocab_size\": 50, \"max_position_embeddings\": 131072,"
        " \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true,"
        " \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 32768}}";
    assert_int_equal(hf_config_parse(&m, yarn, "yarn", err, sizeof err), 0);
    assert_int_equal(m.n_kv_heads, 4);  // defaults to num_attention_heads
    assert_true(m.norm_eps == 1e-6f);   // LlamaConfig's default
    assert_true(m.tie_embeddings);
    assert_int_equal(m.rope.type, ROPE_TYPE_YARN);
    assert_true(m.rope.factor == 4.0 && m.rope.attention_factor == 0.0 && !m.rope.no_truncate);
    assert_int_equal(m.rope.original_max_position_embeddings, 32768);
    out = hf_config_to_json(&m, "bfloat16", 0, NULL);
    j = cJSON_Parse(out);
    keys_of(keys, sizeof keys, cJSON_GetObjectItem(j, "rope_scaling"));
    assert_string_equal(keys, "beta_fast,beta_slow,factor,original_max_position_embeddings,rope_type");
    assert_string_equal(cJSON_GetObjectItem(j, "torch_dtype")->valuestring, "bfloat16");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "tie_word_embeddings")));
    cJSON_Delete(j);
    free(out);
    m.rope.attention_factor = 1.25;
    m.rope.no_truncate = true;
    m.rope.mscale = 0.707;
    m.rope.mscale_all_dim = 0.707;
    out = hf_config_to_json(&m, "float32", 0, NULL);
    j = cJSON_Parse(out);
    cJSON *rs = cJSON_GetObjectItem(j, "rope_scaling");
    keys_of(keys, sizeof keys, rs);
    assert_string_equal(keys, "attention_factor,beta_fast,beta_slow,factor,mscale,mscale_all_dim,"
                              "original_max_position_embeddings,rope_type,truncate");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(rs, "truncate")));
    model_config back;
    assert_int_equal(hf_config_parse(&back, out, "written", err, sizeof err), 0);
    assert_true(back.rope.attention_factor == 1.25 && back.rope.no_truncate && back.rope.mscale == 0.707);
    cJSON_Delete(j);
    free(out);

    // Phi-3-style longrope: original length at the top level, no factor.
    const char *longrope =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 32, \"intermediate_size\": 64,"
        " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 50,"
        " \"max_position_embeddings\": 131072, \"original_max_position_embeddings\": 4096,"
        " \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1.0, 1.1, 1.2, 1.3],"
        " \"long_factor\": [1.0, 2.0, 4.0, 8.0]}}";
    assert_int_equal(hf_config_parse(&m, longrope, "longrope", err, sizeof err), 0);
    assert_int_equal(m.rope.type, ROPE_TYPE_LONGROPE);
    assert_int_equal(m.rope.n_factors, 4);
    assert_true(m.rope.long_factor[3] == 8.0 && m.rope.short_factor[1] == 1.1);
    assert_int_equal(m.rope.original_max_position_embeddings, 4096);
    rope_table t;
    rope_table_init(&t, &m.rope, 8192);  // long factors; attention factor sqrt(1 + ln 32 / ln 4096)
    assert_true(fabs(t.attention_factor - 1.1902380714238083) < 1e-7);
    assert_true(fabs(t.inv_freq[3] - 1.0 / (8.0 * pow(10000.0, 6.0 / 8.0))) < 1e-7 * t.inv_freq[3]);
    m.rope.n_hat = 64;
    char *warn_text = NULL;
    size_t warn_len = 0;
    FILE *warn = open_memstream(&warn_text, &warn_len);
    out = hf_config_to_json(&m, "float32", 0, warn);
    fclose(warn);
    assert_non_null(strstr(warn_text, "stretch: warning: rope n_hat (64)"));
    assert_non_null(strstr(warn_text, "dropped"));
    assert_int_equal(strchr(warn_text, '\n') - warn_text + 1, (long)strlen(warn_text));  // one line
    free(warn_text);
    j = cJSON_Parse(out);
    rs = cJSON_GetObjectItem(j, "rope_scaling");
    keys_of(keys, sizeof keys, rs);
    assert_string_equal(keys, "factor,long_factor,original_max_position_embeddings,rope_type,short_factor");
    assert_true(cJSON_GetObjectItem(rs, "factor")->valuedouble == 32.0);
    assert_int_equal(cJSON_GetObjectItem(j, "original_max_position_embeddings")->valuedouble, 4096);
    assert_null(strstr(out, "n_hat"));
    assert_int_equal(hf_config_parse(&back, out, "written", err, sizeof err), 0);
    rope_table t2;
    rope_table_init(&t2, &back.rope, 8192);
    assert_memory_equal(&t, &t2, sizeof t);  // same frequencies, without n_hat (t had none: set after)
    cJSON_Delete(j);
    free(out);
}

static void expect_config_error(const char *json, const char *piece) {
    model_config m;
    char err[512] = "";
    if (hf_config_parse(&m, json, "cfg.json", err, sizeof err) == 0) fail_msg("parsed; expected '%s'", piece);
    if (!strstr(err, piece) || !strstr(err, "cfg.json")) fail_msg("error '%s' lacks '%s'", err, piece);
}

static void test_config_errors(void **state) {
    (void)state;
#define BASE "\"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 50, "
    expect_config_error("{\"model_type\": \"mistral\", " BASE "\"num_attention_heads\": 4}", "'model_type'");
    expect_config_error("{" BASE "\"num_attention_heads\": 4}", "not a Llama config");
    expect_config_error("{\"model_type\": \"llama\", \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                        " \"vocab_size\": 50, \"num_attention_heads\": 4}", "'hidden_size' is missing");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4.5}", "'num_attention_heads'");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": \"4\"}", "'num_attention_heads'");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4, \"num_key_value_heads\": 3}",
                        "'num_key_value_heads'");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4, \"attention_bias\": true}",
                        "'attention_bias'");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4, \"hidden_act\": \"gelu\"}",
                        "'hidden_act'");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4,"
                        " \"rope_scaling\": {\"rope_type\": \"su\", \"factor\": 2.0}}", "'rope_scaling.rope_type'");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4,"
                        " \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 0.5}}", "rope_scaling.factor");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4,"
                        " \"rope_scaling\": {\"rope_type\": \"linear\"}}", "rope_scaling.factor is required");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4,"
                        " \"rope_scaling\": {\"rope_type\": \"longrope\", \"short_factor\": [1, 1],"
                        " \"long_factor\": [1, 1, 1, 1]}}", "short_factor has 2 entries");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4,"
                        " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": \"4\"}}", "'rope_scaling.factor'");
    expect_config_error("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4, \"rms_norm_eps\": 0}",
                        "'rms_norm_eps'");
    expect_config_error("[1]", "not a JSON object");
    expect_config_error("{\"model_type\": ", "not a JSON object");
#undef BASE
    model_config m;
    char err[512];
    assert_int_equal(hf_config_read(&m, "/nonexistent/config.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/config.json: cannot open"));
}

static void test_format_float_like_python(void **state) {
    (void)state;
    struct { double x; int as_float; const char *repr; } cases[] = {
        {1e-5, 0, "1e-05"},  {1e-5f, 1, "1e-05"},   {1e-6f, 1, "1e-06"},     {10000.0, 0, "10000.0"},
        {0.1, 0, "0.1"},     {500000.0, 0, "500000.0"}, {1e16, 0, "1e+16"},  {1.5e-7, 0, "1.5e-07"},
        {123.456, 0, "123.456"}, {0.0001, 0, "0.0001"}, {32.0, 0, "32.0"},   {0.1f, 1, "0.1"},
        {1.1902380714238083, 0, "1.1902380714238083"}, {5.960464477539063e-08, 0, "5.960464477539063e-08"},
        {1.7000000000000002, 0, "1.7000000000000002"}, {-2.5, 0, "-2.5"}, {0.0, 0, "0.0"},
        {0.05, 0, "0.05"},   {1e15, 0, "1000000000000000.0"}, {123456789.0, 0, "123456789.0"},
        {0x1p-1074, 0, "5e-324"}, {1.7976931348623157e308, 0, "1.7976931348623157e+308"},
        {9.999999999999999e22, 0, "1e+23"}, {0.3, 0, "0.3"}, {2.0 / 3.0, 0, "0.6666666666666666"},
        {1e22, 0, "1e+22"}, {0x1.0000000000001p0, 0, "1.0000000000000002"}, {131072.0, 0, "131072.0"}, {1.00390625, 0, "1.00390625"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        hf_format_float(buf, sizeof buf, cases[i].x, cases[i].as_float);
        if (strcmp(buf, cases[i].repr)) fail_msg("%.17g formats as '%s', Python's repr gives '%s'", cases[i].x, buf,
                                                 cases[i].repr);
    }
}

// ===========================================================================
// The model directory

static model_config tiny_config(rope_layout layout, rope_type type, double partial) {
    model_config c;
    memset(&c, 0, sizeof c);
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.ffn_dim = 48;
    c.vocab_size = 40;
    c.norm_eps = 1e-5f;
    c.rope_layout = layout;
    c.rope = rope_config_default(8);
    c.rope.partial_rotary_factor = partial;
    c.rope.max_position_embeddings = 64;
    if (type == ROPE_TYPE_YARN) {
        c.rope.type = ROPE_TYPE_YARN;
        c.rope.original_max_position_embeddings = 16;
        c.rope.factor = 4.0;
    }
    return c;
}

// Parameters N(0, 0.5) (norm weights around 1), so RoPE shapes the logits.
static float *random_params(const model_config *c, uint64_t seed) {
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(c, &n, &total);
    float *p = xmalloc(sizeof(float) * (size_t)total);
    rng_state r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < t[i].shape[0] * t[i].shape[1]; k++)
            p[t[i].offset + k] = t[i].shape[1] == 1 ? 1.0f + 0.1f * (float)rng_normal(&r) : 0.5f * (float)rng_normal(&r);
    free(t);
    return p;
}

// Logits (T, V) of one sequence of T tokens through model_forward.
static float *logits_of(const model_config *c, const float *params, const int32_t *ids, int64_t T) {
    model *m = model_create(c, T, false);
    memcpy(m->params, params, sizeof(float) * (size_t)m->n_params);
    rope_table rope;
    rope_table_init(&rope, &c->rope, T);
    model_set_rope(m, &rope);
    int32_t *pos = xmalloc(sizeof(int32_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)t;
    model_batch b = {.B = 1, .T = T, .tokens = ids, .targets = NULL, .pos = pos, .seg = NULL};
    model_forward(m, &b, NULL);
    float *out = xmalloc(sizeof(float) * (size_t)(T * c->vocab_size));
    for (int64_t t = 0; t < T; t++)
        xent_logits_row(out + t * c->vocab_size, model_final_hidden(m) + t * c->dim, m->p.lm_head, c->dim,
                        c->vocab_size);
    free(pos);
    model_free(m);
    return out;
}

static double max_abs_diff(const float *a, const float *b, int64_t n, double *scale) {
    double d = 0.0, s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        s = fmax(s, fabs((double)a[i]));
    }
    if (scale) *scale = s;
    return d;
}

static void test_model_save_load(void **state) {
    fixture *f = *state;
    char dir[256], err[1024];
    path_in(dir, sizeof dir, f, "hf");
    model_config c = tiny_config(ROPE_LAYOUT_HALF, ROPE_TYPE_YARN, 1.0);
    float *p = random_params(&c, 11);
    assert_int_equal(hf_save(dir, &c, p, ST_F32, 0, NULL, err, sizeof err), 0);
    model_config back;
    float *q = NULL;
    if (hf_load(&back, &q, dir, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(back.dim, c.dim);
    assert_int_equal(back.ffn_dim, c.ffn_dim);
    assert_int_equal(back.n_kv_heads, c.n_kv_heads);
    assert_int_equal(back.rope.type, ROPE_TYPE_YARN);
    assert_true(back.rope.factor == 4.0 && back.norm_eps == c.norm_eps);
    int n;
    int64_t total;
    free(model_param_layout(&c, &n, &total));
    assert_memory_equal(p, q, sizeof(float) * (size_t)total);
    free(q);

    // bf16: each parameter rounded once.
    assert_int_equal(hf_save(dir, &c, p, ST_BF16, 0, NULL, err, sizeof err), 0);
    assert_int_equal(hf_load(&back, &q, dir, err, sizeof err), 0);
    for (int64_t i = 0; i < total; i++) assert_true(q[i] == st_bf16_to_f32(st_f32_to_bf16(p[i])));
    free(q);

    // Tied embeddings: no lm_head in the file; an identical one is tolerated.
    model_config tied = c;
    tied.tie_embeddings = true;
    assert_int_equal(hf_save(dir, &tied, p, ST_F32, 0, NULL, err, sizeof err), 0);
    assert_int_equal(hf_load(&back, &q, dir, err, sizeof err), 0);
    assert_true(back.tie_embeddings);
    free(q);
    free(p);
}

// Writes dir/model.safetensors holding the tensors of c from p, with one
// changed: skipped (drop), reshaped to (1, n) (reshape), or an extra one.
static void write_model_variant(const char *dir, const model_config *c, const float *p, const char *drop,
                                const char *reshape, const char *extra) {
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(c, &n, &total);
    st_writer *w = st_writer_new();
    for (int i = 0; i < n; i++) {
        if (drop && !strcmp(t[i].name, drop)) continue;
        int64_t dims[2] = {t[i].shape[0], t[i].shape[1]};
        int rank = t[i].shape[1] == 1 ? 1 : 2;
        if (reshape && !strcmp(t[i].name, reshape)) {
            dims[1] = dims[0] * dims[1];
            dims[0] = 1;
            rank = 2;
        }
        st_writer_add(w, t[i].name, ST_F32, p + t[i].offset, rank, dims);
    }
    int64_t one = 4;
    if (extra) st_writer_add(w, extra, ST_F32, p, 1, &one);
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(st_write(w, path, err, sizeof err), 0);
    st_writer_free(w);
    free(t);
}

static void expect_load_error(const char *dir, const char *piece1, const char *piece2) {
    model_config c;
    float *p = NULL;
    char err[1024] = "";
    if (hf_load(&c, &p, dir, err, sizeof err) == 0) {
        free(p);
        fail_msg("loaded; expected an error with '%s'", piece1);
    }
    if (!strstr(err, piece1) || (piece2 && !strstr(err, piece2))) fail_msg("error '%s' lacks '%s'/'%s'", err, piece1, piece2);
}

static void test_model_bad_tensors(void **state) {
    fixture *f = *state;
    char dir[256], err[1024];
    path_in(dir, sizeof dir, f, "hf");
    model_config c = tiny_config(ROPE_LAYOUT_HALF, ROPE_TYPE_DEFAULT, 1.0);
    float *p = random_params(&c, 5);
    assert_int_equal(hf_save(dir, &c, p, ST_F32, 0, NULL, err, sizeof err), 0);  // config.json
    write_model_variant(dir, &c, p, "model.layers.1.mlp.up_proj.weight", NULL, NULL);
    expect_load_error(dir, "tensor model.layers.1.mlp.up_proj.weight is missing", NULL);
    write_model_variant(dir, &c, p, NULL, "model.layers.0.self_attn.k_proj.weight", NULL);
    expect_load_error(dir, "tensor model.layers.0.self_attn.k_proj.weight has shape [1, 512], expected [16, 32]",
                      "model.safetensors");
    write_model_variant(dir, &c, p, NULL, NULL, "model.layers.0.self_attn.q_proj.bias");
    expect_load_error(dir, "tensor model.layers.0.self_attn.q_proj.bias is not part of", NULL);
    write_model_variant(dir, &c, p, NULL, NULL, "model.layers.0.self_attn.rotary_emb.inv_freq");  // tolerated
    model_config back;
    float *q = NULL;
    assert_int_equal(hf_load(&back, &q, dir, err, sizeof err), 0);
    free(q);
    // A tied config with a different lm_head in the file.
    model_config tied = c;
    tied.tie_embeddings = true;
    char *json = hf_config_to_json(&tied, "float32", 0, NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text_file(path, json);
    free(json);
    write_model_variant(dir, &c, p, NULL, NULL, NULL);
    expect_load_error(dir, "lm_head.weight differs from model.embed_tokens.weight", NULL);
    // No config.json.
    remove(path);
    expect_load_error(dir, "config.json: cannot open", NULL);
    free(p);
}

static void test_qk_permutation(void **state) {
    (void)state;
    // D = 8 rows of one head labelled by their index, C = 1.
    model_config c = tiny_config(ROPE_LAYOUT_INTERLEAVED, ROPE_TYPE_DEFAULT, 1.0);
    c.dim = 8;
    c.n_heads = 1;
    c.n_kv_heads = 1;
    c.n_layers = 1;
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(&c, &n, &total);
    float *p = xcalloc((size_t)total, sizeof(float));
    const model_tensor *q = &t[2];  // embed, input_layernorm, q_proj
    assert_string_equal(q->name, "model.layers.0.self_attn.q_proj.weight");
    for (int r = 0; r < 8; r++)
        for (int k = 0; k < 8; k++) p[q->offset + r * 8 + k] = (float)r;
    hf_qk_to_half(p, &c);
    const float full[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // half row i <- interleaved row 2i, i + 4 <- 2i + 1
    for (int r = 0; r < 8; r++) assert_true(p[q->offset + r * 8 + 3] == full[r]);
    hf_qk_to_interleaved(p, &c);
    for (int r = 0; r < 8; r++) assert_true(p[q->offset + r * 8 + 5] == (float)r);
    // Partial rotary (d = 4): only the first 4 rows of a head move.
    c.rope.partial_rotary_factor = 0.5;
    hf_qk_to_half(p, &c);
    const float part[8] = {0, 2, 1, 3, 4, 5, 6, 7};
    for (int r = 0; r < 8; r++) assert_true(p[q->offset + r * 8] == part[r]);
    free(p);
    free(t);
}

// An interleaved-layout model, exported (q/k permuted to the half layout) and
// loaded back, gives the same logits; the same weights read with the half
// layout but not permuted do not.
static void test_interleaved_export_same_logits(void **state) {
    fixture *f = *state;
    char dir[256], err[1024];
    path_in(dir, sizeof dir, f, "hf");
    const int64_t T = 48;
    int32_t ids[48];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 7 + 3) % 40);
    struct { rope_type type; double partial; } cases[] = {{ROPE_TYPE_YARN, 1.0}, {ROPE_TYPE_DEFAULT, 0.5}};
    for (int k = 0; k < 2; k++) {
        model_config c = tiny_config(ROPE_LAYOUT_INTERLEAVED, cases[k].type, cases[k].partial);
        float *p = random_params(&c, 100 + (uint64_t)k);
        float *ref = logits_of(&c, p, ids, T);
        assert_int_equal(hf_save(dir, &c, p, ST_F32, 0, NULL, err, sizeof err), 0);
        model_config h;
        float *q = NULL;
        if (hf_load(&h, &q, dir, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(h.rope_layout, ROPE_LAYOUT_HALF);
        float *got = logits_of(&h, q, ids, T);
        double scale, d = max_abs_diff(got, ref, T * c.vocab_size, &scale);
        printf("  interleaved -> half export (%s, partial %.1f): max |logit| %.3f, max abs diff %.3g\n",
               rope_type_name(c.rope.type), cases[k].partial, scale, d);
        assert_true(scale > 1.0);
        assert_true(d <= 2e-5 * scale);  // float rounding of a reordered q.k sum

        model_config wrong = c;
        wrong.rope_layout = ROPE_LAYOUT_HALF;  // not permuted: the control must differ
        float *bad = logits_of(&wrong, p, ids, T);
        double dbad = max_abs_diff(bad, ref, T * c.vocab_size, NULL);
        printf("  without the permutation: max abs diff %.3g\n", dbad);
        assert_true(dbad > 1e-2 * scale);
        free(bad);
        free(got);
        free(q);
        free(ref);
        free(p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversions_known_values),
        cmocka_unit_test(test_conversions_against_references),
        cmocka_unit_test_setup_teardown(test_safetensors_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safetensors_read_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safetensors_corrupt_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safetensors_sharded, setup, teardown),
        cmocka_unit_test(test_config_rope_vectors),
        cmocka_unit_test(test_config_llama3_yarn_longrope),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_format_float_like_python),
        cmocka_unit_test_setup_teardown(test_model_save_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_bad_tensors, setup, teardown),
        cmocka_unit_test(test_qk_permutation),
        cmocka_unit_test_setup_teardown(test_interleaved_export_same_logits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
