// Tests of GGUF export: data/gguf_write.c (read back by data/gguf.c),
// trainer/formats/gguf_export.c + gguf_quant.c (import(export(x)) is
// bit-identical for F32; F16/BF16/Q8_0 equal a naive quantizer written here
// in double arithmetic and stay within each type's error bound), the RoPE
// mapping to llama.cpp's keys, and data/tok_gguf_write.c (the byte
// tokenizer read back by tok_gguf.h gives the byte ids).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "gguf.h"
#include "gguf_dequant.h"
#include "gguf_export.h"
#include "gguf_model.h"
#include "gguf_tiny.h"
#include "gguf_write.h"
#include "model.h"
#include "test_tmpdir.h"
#include "tok.h"
#include "tok_gguf.h"
#include "tok_gguf_write.h"

static int setup(void **state) { return tmpdir_setup(state, "test_gguf_export"); }
static int teardown(void **state) {
    fixture *f = *state;
    int rc = tmpdir_rm_tree(f->dir);
    free(f);
    return rc;
}

static void path_in(char *out, size_t n, void **state, const char *name) {
    snprintf(out, n, "%s/%s", ((fixture *)*state)->dir, name);
}

// --- the writer ------------------------------------------------------------

static void test_writer_round_trip(void **state) {
    char p1[128], p2[128], err[512];
    path_in(p1, sizeof p1, state, "a.gguf");
    path_in(p2, sizeof p2, state, "b.gguf");
    gguf_writer *w = gguf_writer_new();
    gguf_w_u32(w, "k.u32", 4000000000u);
    gguf_w_i32(w, "k.i32", -7);
    gguf_w_f32(w, "k.f32", 0.25f);
    gguf_w_bool(w, "k.bool", true);
    gguf_w_str(w, "k.str", "héllo");
    const char *strs[3] = {"x", "", "zzz"};
    gguf_w_str_array(w, "k.strs", strs, 3);
    const int32_t ints[4] = {1, -2, 3, 5};
    gguf_w_i32_array(w, "k.ints", ints, 4);
    const float fl[2] = {1.5f, -2.5f};
    gguf_w_f32_array(w, "k.floats", fl, 2);
    const float m[6] = {1, 2, 3, 4, 5, 6}, v[5] = {-1, -2, -3, -4, -5};
    gguf_w_tensor(w, "m", 2, (int64_t[]){3, 2}, GGML_TYPE_F32, m, sizeof m);
    gguf_w_tensor(w, "v", 1, (int64_t[]){5}, GGML_TYPE_F32, v, sizeof v);
    assert_true(gguf_w_has(w, "k.str"));
    assert_false(gguf_w_has(w, "k.nope"));
    assert_int_equal(gguf_writer_save(w, p1, err, sizeof err), 0);
    gguf_writer_free(w);

    gguf_file *f = gguf_open(p1, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_kv, 8);
    int64_t i;
    double d;
    const char *s;
    assert_int_equal(gguf_get_int(f, "k.u32", &i, err, sizeof err), 0);
    assert_int_equal(i, 4000000000ll);
    assert_int_equal(gguf_get_int(f, "k.i32", &i, err, sizeof err), 0);
    assert_int_equal(i, -7);
    assert_int_equal(gguf_get_float(f, "k.f32", &d, err, sizeof err), 0);
    assert_true(d == 0.25);
    assert_int_equal(gguf_get_int(f, "k.bool", &i, err, sizeof err), 0);
    assert_int_equal(i, 1);
    assert_int_equal(gguf_get_str(f, "k.str", &s, err, sizeof err), 0);
    assert_string_equal(s, "héllo");
    char **got;
    int64_t n;
    assert_int_equal(gguf_get_str_array(f, "k.strs", &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(got[0], "x");
    assert_string_equal(got[1], "");
    assert_string_equal(got[2], "zzz");
    gguf_free_strs(got, n);
    int32_t *gi;
    assert_int_equal(gguf_get_i32_array(f, "k.ints", &gi, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(gi, ints, sizeof ints);
    free(gi);
    const gguf_tensor *t = gguf_find_tensor(f, "m");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 3);
    assert_int_equal(t->ne[1], 2);
    assert_memory_equal(t->data, m, sizeof m);
    t = gguf_find_tensor(f, "v");
    assert_int_equal(t->offset % GGUF_DEFAULT_ALIGNMENT, 0);
    assert_memory_equal(t->data, v, sizeof v);

    // a verbatim copy of every key gives the same metadata bytes
    w = gguf_writer_new();
    for (int64_t k = 0; k < f->n_kv; k++) gguf_w_copy_kv(w, f, &f->kv[k]);
    gguf_w_tensor(w, "m", 2, (int64_t[]){3, 2}, GGML_TYPE_F32, m, sizeof m);
    gguf_w_tensor(w, "v", 1, (int64_t[]){5}, GGML_TYPE_F32, v, sizeof v);
    assert_int_equal(gguf_writer_save(w, p2, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_file *g = gguf_open(p2, err, sizeof err);
    assert_non_null(g);
    assert_int_equal(g->len, f->len);
    assert_memory_equal(g->buf, f->buf, f->len);
    gguf_close(g);
    gguf_close(f);

    // a key added twice is refused, and nothing is left behind
    w = gguf_writer_new();
    gguf_w_u32(w, "dup", 1);
    gguf_w_u32(w, "dup", 2);
    assert_int_equal(gguf_writer_save(w, p2, err, sizeof err), -1);
    assert_non_null(strstr(err, "'dup' was added twice"));
    gguf_writer_free(w);
}

// --- the model -------------------------------------------------------------

// A model whose matrices have rows of 64 and 96 elements (whole Q8_0 blocks).
static model_config export_config(void) {
    model_config c = {.dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 96, .vocab_size = 259,
                      .norm_eps = 1e-5f, .tie_embeddings = false};
    c.rope = rope_config_default(16);
    c.rope.theta = 500.0;
    c.rope.max_position_embeddings = 256;
    return c;
}

// Random parameters of varied scale per row (so Q8_0 blocks differ).
static float *random_params(const model_config *c, int64_t *total) {
    int n;
    model_tensor *t = model_param_layout(c, &n, total);
    free(t);
    float *p = malloc(sizeof(float) * (size_t)*total);
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < *total; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
        double scale = pow(10.0, (double)((i / 32) % 5) - 3.0);  // 1e-3 .. 10
        p[i] = (float)(u * scale);
    }
    return p;
}

static void export_file(const char *path, const model_config *c, const float *p, uint32_t type) {
    char err[512];
    gguf_writer *w = gguf_writer_new();
    assert_int_equal(gguf_export_model(w, c, p, type, "test", NULL, err, sizeof err), 0);
    assert_int_equal(tok_gguf_write(w, "byte", c->vocab_size, err, sizeof err), 0);
    assert_int_equal(gguf_writer_save(w, path, err, sizeof err), 0);
    gguf_writer_free(w);
}

static float *import_file(const char *path, model_config *got) {
    char err[512];
    gguf_file *f = gguf_open(path, err, sizeof err);
    assert_non_null(f);
    float *q = NULL;
    if (gguf_model_load(got, &q, f, err, sizeof err)) fail_msg("%s", err);
    gguf_close(f);
    return q;
}

static void test_f32_bit_identical(void **state) {
    const rope_type types[3] = {ROPE_TYPE_DEFAULT, ROPE_TYPE_LINEAR, ROPE_TYPE_YARN};
    for (int k = 0; k < 3; k++) {
        model_config c = export_config();
        c.tie_embeddings = k == 1;
        c.rope.type = types[k];
        if (types[k] == ROPE_TYPE_LINEAR) c.rope.factor = 4.0;
        if (types[k] == ROPE_TYPE_YARN) c.rope.factor = 8.0, c.rope.original_max_position_embeddings = 32;
        int64_t total;
        float *p = random_params(&c, &total);
        char path[128];
        path_in(path, sizeof path, state, "f32.gguf");
        export_file(path, &c, p, GGML_TYPE_F32);
        model_config got;
        float *q = import_file(path, &got);
        assert_memory_equal(q, p, sizeof(float) * (size_t)total);
        assert_int_equal(got.dim, c.dim);
        assert_int_equal(got.n_kv_heads, c.n_kv_heads);
        assert_int_equal(got.vocab_size, c.vocab_size);
        assert_int_equal(got.tie_embeddings, c.tie_embeddings);
        assert_int_equal(got.rope.type, c.rope.type);
        assert_true(got.rope.theta == c.rope.theta);
        assert_true(got.rope.factor == c.rope.factor);
        assert_int_equal(got.rope.max_position_embeddings, 256);
        if (types[k] == ROPE_TYPE_YARN) assert_int_equal(got.rope.original_max_position_embeddings, 32);
        // the frequencies stretch computes from the import are the exported ones
        rope_table a, b;
        rope_table_init(&a, &c.rope, 0);
        rope_table_init(&b, &got.rope, 0);
        assert_memory_equal(a.inv_freq, b.inv_freq, sizeof(float) * (size_t)a.n_pairs);
        assert_true(a.attention_factor == b.attention_factor);
        free(p);
        free(q);
    }
}

// Naive round to nearest even onto a grid of 2^(e - mant) for |x| in
// [2^e, 2^(e+1)), e >= emin (below it the grid of emin: subnormals), in
// double: the reference F16 (mant 10, emin -14) and BF16 (mant 7) rounding.
static double naive_round(double x, int mant, int emin) {
    if (x == 0) return 0;
    int e = (int)floor(log2(fabs(x)));
    if (e < emin) e = emin;
    double ulp = ldexp(1.0, e - mant);
    return nearbyint(x / ulp) * ulp;  // default rounding mode: ties to even
}

// Naive Q8_0 of one block: d = max|x| / 127 (float, as ggml), stored as
// F16; q = round(x / d) away from zero on ties (roundf).
static void naive_q8_0(double *y, const float *x) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    double d16 = naive_round(d, 10, -14);
    for (int j = 0; j < 32; j++) y[j] = (double)roundf(x[j] * id) * d16;
}

static void test_quantized_types(void **state) {
    model_config c = export_config();
    c.rope.type = ROPE_TYPE_YARN;
    c.rope.factor = 4.0;
    c.rope.original_max_position_embeddings = 64;
    int64_t total;
    float *p = random_params(&c, &total);
    int n;
    model_tensor *t = model_param_layout(&c, &n, &total);
    const uint32_t types[3] = {GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0};
    for (int k = 0; k < 3; k++) {
        char path[128];
        path_in(path, sizeof path, state, "q.gguf");
        export_file(path, &c, p, types[k]);
        gguf_file *f = gguf_open(path, (char[256]){0}, 256);
        assert_non_null(f);
        assert_int_equal(gguf_find_tensor(f, "blk.0.attn_q.weight")->type, types[k]);
        assert_int_equal(gguf_find_tensor(f, "blk.0.attn_norm.weight")->type, GGML_TYPE_F32);
        gguf_close(f);
        model_config got;
        float *q = import_file(path, &got);
        double worst = 0;  // largest error relative to the type's bound
        for (int i = 0; i < n; i++) {
            const float *x = p + t[i].offset, *y = q + t[i].offset;
            int64_t nel = t[i].shape[0] * t[i].shape[1];
            if (t[i].shape[1] == 1) {  // vectors stay F32
                assert_memory_equal(x, y, sizeof(float) * (size_t)nel);
                continue;
            }
            for (int64_t b = 0; b < nel; b += 32) {
                double ref[32], amax = 0;
                for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[b + j]));
                if (types[k] == GGML_TYPE_Q8_0) naive_q8_0(ref, x + b);
                for (int j = 0; j < 32; j++) {
                    double bound;
                    if (types[k] == GGML_TYPE_F16) {
                        ref[j] = naive_round(x[b + j], 10, -14);
                        bound = fmax(fabs(x[b + j]) * ldexp(1, -11), ldexp(1, -25));
                    } else if (types[k] == GGML_TYPE_BF16) {
                        ref[j] = naive_round(x[b + j], 7, -126);
                        bound = fabs(x[b + j]) * ldexp(1, -8);
                    } else {
                        // |x - q d| <= d/2, plus |q| <= 127 times d's F16 rounding
                        // (half an ulp: relative 2^-11, or 2^-25 among subnormals)
                        double dd = amax / 127;
                        bound = dd / 2 + 127 * fmax(dd * ldexp(1, -11), ldexp(1, -25)) + 1e-12;
                    }
                    if ((double)y[b + j] != ref[j])
                        fail_msg("%s type %u element %lld: %.9g, naive %.9g (x %.9g)", t[i].name, types[k],
                                 (long long)(b + j), y[b + j], ref[j], x[b + j]);
                    double e = fabs((double)y[b + j] - x[b + j]);
                    if (e > bound) fail_msg("%s: error %g above the bound %g", t[i].name, e, bound);
                    if (bound > 0) worst = fmax(worst, e / bound);
                }
            }
        }
        assert_true(worst > 0.3);  // the bound is tight, not vacuous
        free(q);
    }
    free(t);
    free(p);
}

// --- the permutation, the RoPE keys, refusals --------------------------------

static void test_permute_is_the_converters(void **state) {
    const int H = 3, D = 8, C = 5;
    float w[H * D * C], want[H * D * C], back[H * D * C];
    for (int i = 0; i < H * D * C; i++) w[i] = (float)i;
    tiny_permute(want, w, H, D, C);
    memcpy(back, w, sizeof w);
    gguf_qk_permute(back, H, D, C);
    assert_memory_equal(back, want, sizeof w);
    gguf_qk_unpermute(back, H, D, C);
    assert_memory_equal(back, w, sizeof w);
}

static gguf_file *export_rope(void **state, const model_config *c, char *err, size_t errlen) {
    int64_t total;
    float *p = random_params(c, &total);
    char path[128];
    path_in(path, sizeof path, state, "rope.gguf");
    gguf_writer *w = gguf_writer_new();
    FILE *warn = tmpfile();
    int rc = gguf_export_model(w, c, p, GGML_TYPE_F32, "t", warn, err, errlen);
    if (rc == 0) rc = gguf_writer_save(w, path, err, errlen);
    // the warnings, one line each, into err
    rewind(warn);
    if (rc == 0 && !fgets(err, (int)errlen, warn)) err[0] = 0;
    fclose(warn);
    gguf_writer_free(w);
    free(p);
    return rc == 0 ? gguf_open(path, (char[256]){0}, 256) : NULL;
}

static double key_f(const gguf_file *f, const char *k) {
    double d = -1;
    assert_int_equal(gguf_get_float(f, k, &d, (char[256]){0}, 256), 0);
    return d;
}

static void test_rope_keys(void **state) {
    char err[512];
    // yarn with an explicit attention factor: llama.cpp multiplies its own
    // default (0.1 ln s + 1) by rope.scaling.attn_factor
    model_config c = export_config();
    c.rope.type = ROPE_TYPE_YARN;
    c.rope.factor = 8.0;
    c.rope.original_max_position_embeddings = 32;
    c.rope.attention_factor = 1.5;
    gguf_file *f = export_rope(state, &c, err, sizeof err);
    assert_non_null(f);
    const char *s;
    assert_int_equal(gguf_get_str(f, "llama.rope.scaling.type", &s, err, sizeof err), 0);
    assert_string_equal(s, "yarn");
    assert_float_equal(key_f(f, "llama.rope.scaling.attn_factor") * (0.1 * log(8.0) + 1.0), 1.5, 1e-6);
    assert_float_equal(key_f(f, "llama.rope.scaling.factor"), 8.0, 0);
    assert_float_equal(key_f(f, "llama.rope.scaling.original_context_length"), 32, 0);
    assert_float_equal(key_f(f, "llama.context_length"), 256, 0);
    // and import reads it back as the same attention factor
    model_config got;
    float *q = NULL;
    if (gguf_model_load(&got, &q, f, err, sizeof err)) fail_msg("%s", err);
    assert_float_equal(got.rope.attention_factor, 1.5, 1e-6);
    free(q);
    gguf_close(f);

    // llama3: rope_freqs = default inv_freq / llama3 inv_freq, type none
    c = export_config();
    c.rope.type = ROPE_TYPE_LLAMA3;
    c.rope.factor = 8.0;
    c.rope.low_freq_factor = 1.0;
    c.rope.high_freq_factor = 4.0;
    c.rope.original_max_position_embeddings = 64;
    f = export_rope(state, &c, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(gguf_get_str(f, "llama.rope.scaling.type", &s, err, sizeof err), 0);
    assert_string_equal(s, "none");
    const gguf_tensor *t = gguf_find_tensor(f, "rope_freqs.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 8);
    rope_table rt;
    rope_table_init(&rt, &c.rope, 0);
    const float *ff = (const float *)t->data;
    for (int i = 0; i < 8; i++) {
        double theta = 1.0 / pow(500.0, 2.0 * i / 16);  // ggml: angle / freq factor
        assert_float_equal(theta / ff[i], rt.inv_freq[i], 1e-6 * rt.inv_freq[i]);
    }
    assert_true(ff[0] == 1.0f && fabsf(ff[7] - 8.0f) < 1e-5f);  // fastest kept, slowest divided by 8
    gguf_close(f);

    // longrope: the long factors, the attention factor, one warning line for the short list
    c = export_config();
    c.rope.type = ROPE_TYPE_LONGROPE;
    c.rope.original_max_position_embeddings = 64;
    c.rope.n_factors = 8;
    for (int i = 0; i < 8; i++) c.rope.short_factor[i] = 1.0, c.rope.long_factor[i] = 1.0 + i;
    f = export_rope(state, &c, err, sizeof err);
    assert_non_null(f);
    assert_non_null(strstr(err, "short_factor dropped"));
    ff = (const float *)gguf_find_tensor(f, "rope_freqs.weight")->data;
    for (int i = 0; i < 8; i++) assert_float_equal(ff[i], 1.0 + i, 1e-6 * (1 + i));
    assert_float_equal(key_f(f, "llama.rope.scaling.attn_factor"), sqrt(1 + log(4.0) / log(64.0)), 1e-6);
    gguf_close(f);

    // what llama.cpp cannot express is refused
    c.rope.n_hat = 16;
    assert_null(export_rope(state, &c, err, sizeof err));
    assert_non_null(strstr(err, "n_hat (16)"));
    c = export_config();
    c.rope.type = ROPE_TYPE_DYNAMIC;
    c.rope.factor = 2.0;
    assert_int_equal(gguf_export_check(&c, GGML_TYPE_F32, err, sizeof err), -1);
    assert_non_null(strstr(err, "dynamic"));
    c.rope.type = ROPE_TYPE_YARN;
    c.rope.beta_fast = 16;
    assert_int_equal(gguf_export_check(&c, GGML_TYPE_F32, err, sizeof err), -1);
    assert_non_null(strstr(err, "beta_fast 16"));
    c.rope.beta_fast = 0;
    c.rope.no_truncate = true;
    assert_int_equal(gguf_export_check(&c, GGML_TYPE_F32, err, sizeof err), -1);
    c.rope.no_truncate = false;
    assert_int_equal(gguf_export_check(&c, GGML_TYPE_F32, err, sizeof err), 0);
    assert_int_equal(gguf_export_check(&c, GGML_TYPE_Q4_0, err, sizeof err), -1);
}

// --- the tokenizer ---------------------------------------------------------

static void test_byte_tokenizer(void **state) {
    char path[128], err[512];
    path_in(path, sizeof path, state, "tok.gguf");
    gguf_writer *w = gguf_writer_new();
    assert_int_equal(tok_gguf_write(w, "byte", 264, err, sizeof err), 0);  // an embedding rounded up to 264
    assert_int_equal(gguf_writer_save(w, path, err, sizeof err), 0);
    gguf_writer_free(w);
    tok_tokenizer *tg = tok_load(path, err, sizeof err);
    if (!tg) fail_msg("%s", err);
    tok_tokenizer *tb = tok_byte_new();
    const char text[] = "Hello, wörld!\n\t 123 \x01\xff end";
    int32_t *a, *b;
    int64_t na = tok_encode(&a, tg, text, (int64_t)sizeof text - 1);
    int64_t nb = tok_encode(&b, tb, text, (int64_t)sizeof text - 1);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, sizeof(int32_t) * (size_t)na);
    assert_int_equal(tok_bos_id(tg), TOK_BYTE_BOS);
    assert_int_equal(tok_eos_id(tg), TOK_BYTE_EOS);
    assert_int_equal(tok_pad_id(tg), TOK_BYTE_PAD);
    free(a);
    free(b);
    tok_free(tg);
    tok_free(tb);
    gguf_file *f = gguf_open(path, err, sizeof err);
    char **toks;
    int64_t n;
    assert_int_equal(gguf_get_str_array(f, "tokenizer.ggml.tokens", &toks, &n, err, sizeof err), 0);
    assert_int_equal(n, 264);
    assert_string_equal(toks[32], "\xc4\xa0");  // GPT-2's spelling of the space byte
    assert_string_equal(toks[65], "A");
    assert_string_equal(toks[263], "[PAD263]");
    gguf_free_strs(toks, n);
    gguf_close(f);
    w = gguf_writer_new();
    assert_int_equal(tok_gguf_write(w, "nope/tokenizer.json", 300, err, sizeof err), -1);
    assert_non_null(strstr(err, "nope/tokenizer.json"));
    gguf_writer_free(w);
}

static char *slurp_text(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    return buf;
}

// A tokenizer.json fixture -> GGUF metadata -> tok_gguf: the same ids on
// every fixture text (test_tok.c checks the source against Hugging Face).
static void test_json_tokenizers(void **state) {
    static const char *const fixtures[] = {"bpe_tiny", "bpe_tiny_cross", "bpe_tiny_digits", "bpe_tiny_llama3"};
    static const char *const pres[] = {"gpt-2", "gpt-2", "smollm", "llama-bpe"};
    for (int k = 0; k < 4; k++) {
        char src[512], path[128], err[512];
        snprintf(src, sizeof src, "%s/tests/data/%s/tokenizer.json", STRETCH_SOURCE_DIR, fixtures[k]);
        path_in(path, sizeof path, state, "json.gguf");
        tok_tokenizer *tj = tok_load(src, err, sizeof err);
        if (!tj) fail_msg("%s", err);
        int64_t n_vocab = tok_vocab_size(tj) + 5;  // an embedding rounded up
        gguf_writer *w = gguf_writer_new();
        if (tok_gguf_write(w, src, n_vocab, err, sizeof err)) fail_msg("%s", err);
        assert_int_equal(gguf_writer_save(w, path, err, sizeof err), 0);
        gguf_writer_free(w);
        gguf_file *f = gguf_open(path, err, sizeof err);
        const char *pre;
        assert_int_equal(gguf_get_str(f, "tokenizer.ggml.pre", &pre, err, sizeof err), 0);
        assert_string_equal(pre, pres[k]);
        gguf_close(f);
        tok_tokenizer *tg = tok_load(path, err, sizeof err);
        if (!tg) fail_msg("%s: %s", fixtures[k], err);
        assert_int_equal(tok_bos_id(tg), tok_bos_id(tj));
        assert_int_equal(tok_eos_id(tg), tok_eos_id(tj));
        char epath[512];
        snprintf(epath, sizeof epath, "%s/tests/data/%s/expected.json", STRETCH_SOURCE_DIR, fixtures[k]);
        char *text = slurp_text(epath);
        cJSON *expected = cJSON_Parse(text);
        free(text);
        const cJSON *cs;
        int n = 0;
        cJSON_ArrayForEach(cs, cJSON_GetObjectItem(expected, "cases")) {
            const char *t = cJSON_GetObjectItem(cs, "text")->valuestring;
            int32_t *a, *b;
            int64_t na = tok_encode(&a, tg, t, (int64_t)strlen(t));
            int64_t nb = tok_encode(&b, tj, t, (int64_t)strlen(t));
            if (na != nb || memcmp(a, b, sizeof(int32_t) * (size_t)na))
                fail_msg("%s case %d: %lld ids vs %lld from tokenizer.json", fixtures[k], n, (long long)na,
                         (long long)nb);
            free(a), free(b);
            n++;
        }
        assert_true(n >= 20);
        cJSON_Delete(expected);
        tok_free(tg);
        tok_free(tj);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writer_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_f32_bit_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quantized_types, setup, teardown),
        cmocka_unit_test(test_permute_is_the_converters),
        cmocka_unit_test_setup_teardown(test_rope_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_tokenizer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_tokenizers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
