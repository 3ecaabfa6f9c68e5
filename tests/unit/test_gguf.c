// Tests of data/gguf.c (reader), trainer/formats/gguf_model.c (Llama import) and
// data/tok_gguf.c on files written by tests/unit/gguf_writer.h.
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
#include "gguf_model.h"
#include "gguf_tiny.h"
#include "gguf_writer.h"
#include "test_tmpdir.h"
#include "tok.h"
#include "tok_gguf.h"

// Every value type, arrays, two tensors, alignment 64.
static uint8_t *round_trip_file(size_t *len) {
    gw g;
    gw_init(&g);
    g.align = 64;
    gw_kv_u32(&g, "general.alignment", 64);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    uint64_t u64 = 1ull << 60;
    int64_t i64 = -(1ll << 60);
    double f64 = 2.5e300;
    uint8_t yes = 1;
    gw_kv_raw(&g, "t.u8", GGUF_TYPE_UINT8, &u8, 1);
    gw_kv_raw(&g, "t.i8", GGUF_TYPE_INT8, &i8, 1);
    gw_kv_raw(&g, "t.u16", GGUF_TYPE_UINT16, &u16, 2);
    gw_kv_raw(&g, "t.i16", GGUF_TYPE_INT16, &i16, 2);
    gw_kv_u32(&g, "t.u32", 4000000000u);
    gw_kv_raw(&g, "t.i32", GGUF_TYPE_INT32, &i32, 4);
    gw_kv_f32(&g, "t.f32", 0.1f);
    gw_kv_raw(&g, "t.bool", GGUF_TYPE_BOOL, &yes, 1);
    gw_kv_str(&g, "t.str", "héllo");
    gw_kv_raw(&g, "t.u64", GGUF_TYPE_UINT64, &u64, 8);
    gw_kv_raw(&g, "t.i64", GGUF_TYPE_INT64, &i64, 8);
    gw_kv_raw(&g, "t.f64", GGUF_TYPE_FLOAT64, &f64, 8);
    const int16_t arr[3] = {-1, 0, 7};
    gw_kv_array(&g, "t.arr_i16", GGUF_TYPE_INT16, arr, 3, 2);
    const char *strs[3] = {"x", "", "zzz"};
    gw_kv_strs(&g, "t.arr_str", strs, 3);
    gw_kv_array(&g, "t.arr_empty", GGUF_TYPE_UINT32, NULL, 0, 4);
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[5] = {-1, -2, -3, -4, -5};
    gw_tensor(&g, "m", 2, (int64_t[]){3, 2}, GGML_TYPE_F32, a, sizeof a);
    gw_tensor(&g, "v", 1, (int64_t[]){5}, GGML_TYPE_F32, b, sizeof b);
    return gw_finish(&g, len);
}

static void test_round_trip(void **state) {
    (void)state;
    size_t len;
    uint8_t *buf = round_trip_file(&len);
    char err[512] = "";
    gguf_file *f = gguf_parse(buf, len, "rt.gguf", err, sizeof err);
    if (!f) fail_msg("%s", err);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->alignment, 64);
    assert_int_equal(f->n_kv, 16);
    assert_int_equal(f->data_offset % 64, 0);
    int64_t i;
    double x;
    const char *s;
    assert_int_equal(gguf_get_int(f, "t.u8", &i, err, sizeof err), 0), assert_int_equal(i, 200);
    assert_int_equal(gguf_get_int(f, "t.i8", &i, err, sizeof err), 0), assert_int_equal(i, -100);
    assert_int_equal(gguf_get_int(f, "t.u16", &i, err, sizeof err), 0), assert_int_equal(i, 60000);
    assert_int_equal(gguf_get_int(f, "t.i16", &i, err, sizeof err), 0), assert_int_equal(i, -30000);
    assert_int_equal(gguf_get_int(f, "t.u32", &i, err, sizeof err), 0), assert_int_equal(i, 4000000000ll);
    assert_int_equal(gguf_get_int(f, "t.i32", &i, err, sizeof err), 0), assert_int_equal(i, -2000000000);
    assert_int_equal(gguf_get_int(f, "t.bool", &i, err, sizeof err), 0), assert_int_equal(i, 1);
    assert_int_equal(gguf_get_int(f, "t.u64", &i, err, sizeof err), 0), assert_true(i == (int64_t)(1ull << 60));
    assert_int_equal(gguf_get_int(f, "t.i64", &i, err, sizeof err), 0), assert_true(i == -(1ll << 60));
    assert_int_equal(gguf_get_float(f, "t.f32", &x, err, sizeof err), 0), assert_true(x == (double)0.1f);
    assert_int_equal(gguf_get_float(f, "t.f64", &x, err, sizeof err), 0), assert_true(x == 2.5e300);
    assert_int_equal(gguf_get_float(f, "t.u8", &x, err, sizeof err), 0), assert_true(x == 200.0);
    assert_int_equal(gguf_get_str(f, "t.str", &s, err, sizeof err), 0), assert_string_equal(s, "héllo");
    // Absent keys: 1; wrong types: -1 naming the file and key.
    assert_int_equal(gguf_get_int(f, "nope", &i, err, sizeof err), 1);
    assert_int_equal(gguf_get_str(f, "t.u32", &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "rt.gguf: key t.u32"));
    assert_int_equal(gguf_get_int(f, "t.f32", &i, err, sizeof err), -1);
    int32_t *v;
    int64_t n;
    assert_int_equal(gguf_get_i32_array(f, "t.arr_i16", &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 3), assert_int_equal(v[0], -1), assert_int_equal(v[2], 7);
    free(v);
    assert_int_equal(gguf_get_i32_array(f, "t.arr_empty", &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    free(v);
    char **ss;
    assert_int_equal(gguf_get_str_array(f, "t.arr_str", &ss, &n, err, sizeof err), 0);
    assert_int_equal(n, 3), assert_string_equal(ss[0], "x"), assert_string_equal(ss[1], ""),
        assert_string_equal(ss[2], "zzz");
    gguf_free_strs(ss, n);
    assert_int_equal(gguf_get_str_array(f, "t.arr_i16", &ss, &n, err, sizeof err), -1);
    // Tensors: dims fastest first, data where the offsets say.
    assert_int_equal(f->n_tensors, 2);
    const gguf_tensor *m = gguf_find_tensor(f, "m"), *vt = gguf_find_tensor(f, "v");
    assert_non_null(m), assert_non_null(vt);
    assert_int_equal(m->n_dims, 2), assert_int_equal(m->ne[0], 3), assert_int_equal(m->ne[1], 2);
    assert_int_equal(m->nbytes, 24), assert_int_equal(vt->n_elements, 5), assert_int_equal(vt->offset, 64);
    float got[6];
    memcpy(got, m->data, 24);
    assert_true(got[0] == 1 && got[5] == 6);
    memcpy(got, vt->data, 20);
    assert_true(got[0] == -1 && got[4] == -5);
    assert_int_equal((size_t)(vt->data - buf) % 64, 0);
    gguf_close(f);
    free(buf);
}

static void test_unpermute(void **state) {
    (void)state;
    const int heads = 3, D = 8;
    const int64_t C = 5, rows = heads * D;
    float *w = malloc(sizeof(float) * rows * C), *p = malloc(sizeof(float) * rows * C);
    for (int64_t i = 0; i < rows * C; i++) w[i] = (float)i;
    tiny_permute(p, w, heads, D, C);
    // The converter puts HF row 4 (i = 0 of the second half) right after row 0.
    assert_true(p[1 * C] == w[4 * C]);
    gguf_qk_unpermute(p, heads, D, C);
    assert_memory_equal(p, w, sizeof(float) * rows * C);
    free(w);
    free(p);
}

static uint8_t *tiny_file(const model_config *cfg, const float *params, size_t *len) {
    gw g;
    gw_init(&g);
    tiny_write_model(&g, cfg, params);
    tiny_write_tokenizer(&g);
    return gw_finish(&g, len);
}

static void test_tiny_model(void **state) {
    (void)state;
    for (int tied = 0; tied < 2; tied++) {
        model_config cfg = tiny_config(2, tied);
        float *params = tiny_params(&cfg, 42 + tied);
        size_t len;
        uint8_t *buf = tiny_file(&cfg, params, &len);
        char err[512] = "";
        gguf_file *f = gguf_parse(buf, len, "tiny.gguf", err, sizeof err);
        if (!f) fail_msg("%s", err);
        model_config got;
        float *p;
        if (gguf_model_load(&got, &p, f, err, sizeof err)) fail_msg("%s", err);
        assert_int_equal(got.dim, 8), assert_int_equal(got.n_layers, 2), assert_int_equal(got.n_heads, 2);
        assert_int_equal(got.n_kv_heads, 1), assert_int_equal(got.ffn_dim, 12), assert_int_equal(got.vocab_size, 5);
        assert_int_equal(got.tie_embeddings, tied), assert_int_equal(got.rope.max_position_embeddings, 64);
        assert_true(got.rope.theta == 10000.0 && got.rope.type == ROPE_TYPE_DEFAULT);
        int n;
        int64_t total;
        free(model_param_layout(&cfg, &n, &total));
        assert_memory_equal(p, params, sizeof(float) * (size_t)total);  // q/k back in HF order, bit-exact
        free(p);
        // The tokenizer of the same file.
        int32_t sp[3];
        tok_bpe *bpe = tok_gguf_load(sp, f, err, sizeof err);
        if (!bpe) fail_msg("%s", err);
        assert_int_equal(sp[0], 3), assert_int_equal(sp[1], -1);
        tok_tokenizer *t = tok_from_bpe(bpe, sp[0], sp[1], sp[2]);
        int32_t *ids;
        int64_t k = tok_encode(&ids, t, "ab a<s>b", 8);
        int32_t want[] = {2, 4, 0, 3, 1};  // "ab", "Ġ", "a", "<s>", "b"
        assert_int_equal(k, 5);
        assert_memory_equal(ids, want, sizeof want);
        free(ids);
        tok_free(t);
        gguf_close(f);
        free(buf);
        free(params);
    }
}

// A model file with one change; the import must fail naming `expect`.
static void expect_model_error(const char *expect, void (*edit)(gw *g, const model_config *cfg, const float *p)) {
    model_config cfg = tiny_config(1, true);
    float *params = tiny_params(&cfg, 7);
    gw g;
    gw_init(&g);
    edit(&g, &cfg, params);
    size_t len;
    uint8_t *buf = gw_finish(&g, &len);
    char err[512] = "";
    gguf_file *f = gguf_parse(buf, len, "bad.gguf", err, sizeof err);
    if (!f) fail_msg("%s", err);
    model_config got;
    float *p = NULL;
    assert_int_equal(gguf_model_load(&got, &p, f, err, sizeof err), -1);
    if (!strstr(err, expect)) fail_msg("'%s' does not mention '%s'", err, expect);
    assert_non_null(strstr(err, "bad.gguf"));
    gguf_close(f);
    free(buf);
    free(params);
}

static void edit_extra(gw *g, const model_config *c, const float *p) {
    tiny_write_model(g, c, p);
    gw_tensor(g, "rope_freqs.weight", 1, (int64_t[]){2}, GGML_TYPE_F32, p, 8);
}
static void edit_extra2(gw *g, const model_config *c, const float *p) {
    tiny_write_model(g, c, p);
    gw_tensor(g, "blk.7.attn_q.weight", 1, (int64_t[]){2}, GGML_TYPE_F32, p, 8);
}
static void edit_arch(gw *g, const model_config *c, const float *p) {
    gw_kv_str(g, "general.architecture", "gpt2");
}
static void edit_no_layers(gw *g, const model_config *c, const float *p) {
    gw_kv_str(g, "general.architecture", "llama");
    gw_kv_u32(g, "llama.embedding_length", 8);
}
static uint8_t *find(gw_buf *b, const char *what) {
    size_t n = strlen(what);
    for (size_t i = 0; i + n <= b->n; i++)
        if (!memcmp(b->b + i, what, n)) return b->b + i;
    fail_msg("%s not found", what);
    return NULL;
}
static void edit_missing_tensor(gw *g, const model_config *c, const float *p) {
    tiny_write_model(g, c, p);
    uint32_t v = 2;  // metadata says 2 layers, the tensors are those of 1
    memcpy(find(&g->kv, "llama.block_count") + 17 + 4, &v, 4);
}
static void edit_bad_type(gw *g, const model_config *c, const float *p) {
    tiny_write_model(g, c, p);
    uint32_t t = 24;  // I8: a type with known size that stretch does not dequantize
    memcpy(find(&g->info, "token_embd.weight") + 17 + 4 + 16, &t, 4);
}

static void test_model_errors(void **state) {
    (void)state;
    expect_model_error("rope_freqs.weight", edit_extra);
    expect_model_error("blk.7.attn_q.weight is not part", edit_extra2);
    expect_model_error("general.architecture: 'gpt2'", edit_arch);
    expect_model_error("llama.block_count is missing", edit_no_layers);
    expect_model_error("blk.1.attn_norm.weight", edit_missing_tensor);
    expect_model_error("token_embd.weight has type I8", edit_bad_type);
}

// tok_load recognises a GGUF path.
static int setup(void **state) { return tmpdir_setup(state, "test_gguf"); }
static int teardown(void **state) {
    fixture *f = *state;
    int rc = tmpdir_rm_tree(f->dir);
    free(f);
    return rc;
}

static void test_tok_load_path(void **state) {
    fixture *fx = *state;
    model_config cfg = tiny_config(1, true);
    float *params = tiny_params(&cfg, 1);
    size_t len;
    uint8_t *buf = tiny_file(&cfg, params, &len);
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/tiny.gguf", fx->dir);
    assert_int_equal(gw_save(path, buf, len), 0);
    tok_tokenizer *t = tok_load(path, err, sizeof err);
    if (!t) fail_msg("%s", err);
    assert_int_equal(tok_vocab_size(t), 5);
    assert_int_equal(tok_bos_id(t), 3);
    tok_free(t);
    // A GGUF without tokenizer keys: one line naming the key.
    gw g;
    gw_init(&g);
    tiny_write_model(&g, &cfg, params);
    free(buf);
    buf = gw_finish(&g, &len);
    assert_int_equal(gw_save(path, buf, len), 0);
    assert_null(tok_load(path, err, sizeof err));
    assert_non_null(strstr(err, "tokenizer.ggml.model is missing"));
    free(buf);
    free(params);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_unpermute),
        cmocka_unit_test(test_tiny_model),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test_setup_teardown(test_tok_load_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
