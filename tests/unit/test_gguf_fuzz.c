// Fuzz test of the GGUF reader, model import and tokenizer in-process
// (deterministic): a small valid file (tiny Llama + tokenizer) truncated at
// every byte, every header byte set to edge values, every header position
// overwritten with extreme u32/u64 values (counts, string lengths, type ids,
// dims, offsets), and random multi-byte mutations. Each case must fail with
// a one-line message naming the file, or parse into something the importer
// and the tokenizer then accept or refuse cleanly. Run under the ASan build
// (STRETCH_SANITIZE=ON) so that any out-of-bounds read is caught.
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
#include "tok.h"
#include "tok_gguf.h"

static uint8_t *valid_file(size_t *len, size_t *header_len) {
    model_config cfg = tiny_config(1, false);
    float *params = tiny_params(&cfg, 3);
    gw g;
    gw_init(&g);
    tiny_write_tokenizer(&g);
    tiny_write_model(&g, &cfg, params);
    free(params);
    uint8_t *b = gw_finish(&g, len);
    char err[256];
    gguf_file *f = gguf_parse(b, *len, "fuzz.gguf", err, sizeof err);
    if (!f) fail_msg("%s", err);
    *header_len = f->data_offset;
    gguf_close(f);
    return b;
}

typedef struct {
    int64_t cases, parsed, imported, tokenized;
} stats;

// One case on an exact-size heap copy (so ASan sees any read past the end).
static void run_case(stats *st, const uint8_t *bytes, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, bytes, len);
    char err[512] = "";
    st->cases++;
    gguf_file *f = gguf_parse(copy, len, "fuzz.gguf", err, sizeof err);
    if (!f) {
        if (strncmp(err, "fuzz.gguf: ", 11) != 0 || strchr(err, '\n'))
            fail_msg("bad message for a %zu-byte case: '%s'", len, err);
        free(copy);
        return;
    }
    st->parsed++;
    // Touch every value through the getters and every tensor's bytes.
    for (int64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        int64_t n;
        if (kv->type == GGUF_TYPE_ARRAY) {
            char **s;
            int32_t *v;
            if (gguf_get_str_array(f, kv->key, &s, &n, err, sizeof err) == 0) gguf_free_strs(s, n);
            if (gguf_get_i32_array(f, kv->key, &v, &n, err, sizeof err) == 0) free(v);
        } else {
            double x;
            gguf_get_float(f, kv->key, &x, err, sizeof err);
        }
    }
    uint64_t sum = 0;
    for (int64_t i = 0; i < f->n_tensors; i++)
        for (uint64_t j = 0; j < f->tensors[i].nbytes; j++) sum += f->tensors[i].data[j];
    (void)sum;
    model_config cfg;
    float *params = NULL;
    if (gguf_model_load(&cfg, &params, f, err, sizeof err) == 0) {
        st->imported++;
        free(params);
    } else if (!strstr(err, "fuzz.gguf")) {
        fail_msg("import message without the file name: '%s'", err);
    }
    int32_t sp[3];
    tok_bpe *bpe = tok_gguf_load(sp, f, err, sizeof err);
    if (bpe) {
        st->tokenized++;
        tok_tokenizer *t = tok_from_bpe(bpe, sp[0], sp[1], sp[2]);
        int32_t *ids;
        int64_t n = tok_encode(&ids, t, "ab ba<s>", 8);
        for (int64_t k = 0; k < n; k++) assert_true(ids[k] >= 0 && ids[k] < tok_vocab_size(t));
        free(ids);
        tok_free(t);
    }
    gguf_close(f);
    free(copy);
}

static void test_truncation(void **state) {
    (void)state;
    size_t len, hdr;
    uint8_t *b = valid_file(&len, &hdr);
    stats st = {0};
    for (size_t n = 0; n < len; n++) {
        run_case(&st, b, n);
        assert_int_equal(st.parsed, 0);  // the last tensor ends the file: every prefix is short
    }
    run_case(&st, b, len);
    assert_int_equal(st.parsed, 1);
    assert_int_equal(st.imported, 1);
    assert_int_equal(st.tokenized, 1);
    print_message("truncation: %lld cases, file of %zu bytes (header %zu)\n", (long long)st.cases, len, hdr);
    free(b);
}

static void test_byte_values(void **state) {
    (void)state;
    size_t len, hdr;
    uint8_t *b = valid_file(&len, &hdr);
    uint8_t *m = malloc(len);
    stats st = {0};
    static const uint8_t values[] = {0x00, 0x01, 0x02, 0x08, 0x09, 0x0D, 0x1F, 0x20, 0x7F, 0x80, 0xFE, 0xFF};
    for (size_t p = 0; p < hdr; p++) {
        for (size_t v = 0; v < sizeof values + 2; v++) {
            memcpy(m, b, len);
            m[p] = v < sizeof values ? values[v] : (uint8_t)(b[p] ^ (v == sizeof values ? 0x01 : 0x80));
            if (m[p] == b[p]) continue;
            run_case(&st, m, len);
        }
    }
    print_message("byte values: %lld cases, %lld parsed, %lld imported, %lld tokenizers\n", (long long)st.cases,
                  (long long)st.parsed, (long long)st.imported, (long long)st.tokenized);
    free(m);
    free(b);
}

// Extreme integers at every header position: whichever field lies there
// (a count, a string length, a type id, a dim, an offset) gets them.
static void test_extreme_fields(void **state) {
    (void)state;
    size_t len, hdr;
    uint8_t *b = valid_file(&len, &hdr);
    uint8_t *m = malloc(len);
    stats st = {0};
    const uint64_t u64s[] = {0, 1, 31, 255, 1ull << 31, 1ull << 32, (1ull << 32) - 1, 1ull << 62, 1ull << 63,
                             UINT64_MAX, UINT64_MAX - 7, (uint64_t)len, (uint64_t)len - 1, (uint64_t)hdr};
    const uint32_t u32s[] = {0, 3, 4, 5, 9, 12, 13, 14, 30, 31, 255, 1u << 31, UINT32_MAX};
    for (size_t p = 0; p + 4 <= hdr; p++) {
        for (size_t k = 0; k < sizeof u32s / sizeof u32s[0]; k++) {
            memcpy(m, b, len);
            memcpy(m + p, &u32s[k], 4);
            run_case(&st, m, len);
        }
        if (p + 8 > hdr) continue;
        for (size_t k = 0; k < sizeof u64s / sizeof u64s[0]; k++) {
            memcpy(m, b, len);
            memcpy(m + p, &u64s[k], 8);
            run_case(&st, m, len);
        }
    }
    print_message("extreme fields: %lld cases, %lld parsed, %lld imported\n", (long long)st.cases,
                  (long long)st.parsed, (long long)st.imported);
    free(m);
    free(b);
}

static void test_random_mutations(void **state) {
    (void)state;
    size_t len, hdr;
    uint8_t *b = valid_file(&len, &hdr);
    uint8_t *m = malloc(len);
    stats st = {0};
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int it = 0; it < 20000; it++) {
        memcpy(m, b, len);
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int flips = 1 + (int)(s % 4);
        for (int k = 0; k < flips; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t p = (size_t)(s >> 16) % (it % 2 ? hdr : len);  // half of them in the header
            m[p] ^= (uint8_t)(1u << (s % 8));
        }
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        size_t n = it % 5 == 0 ? (size_t)(s % (len + 1)) : len;  // some also truncated
        run_case(&st, m, n);
    }
    print_message("random: %lld cases, %lld parsed, %lld imported, %lld tokenizers\n", (long long)st.cases,
                  (long long)st.parsed, (long long)st.imported, (long long)st.tokenized);
    free(m);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_byte_values),
        cmocka_unit_test(test_extreme_fields),
        cmocka_unit_test(test_random_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
