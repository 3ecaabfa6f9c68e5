// Tests of the tokenizers (data/tok*.c).
//
// The byte tokenizer against its definition; the Unicode helpers against
// published facts (GPT-2 byte table entries, Unicode categories, UTF-8
// validity rules); byte-level BPE against token ids computed by Hugging Face
// `tokenizers` (tests/data/make_bpe_vectors.py) for three pre-tokenizer
// styles, loaded from tokenizer.json and built from GGUF-style lists; streaming
// in random pieces against one call; error messages.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tok.h"
#include "tok_bpe.h"
#include "tok_pretok.h"
#include "tok_unicode.h"

enum { N_FIXTURES = 4 };
static const char *const FIXTURES[N_FIXTURES] = {"bpe_tiny", "bpe_tiny_cross", "bpe_tiny_llama3",
                                                 "bpe_tiny_digits"};
// The same pre-tokenizers by their llama.cpp (GGUF) names.
static const char *const GGUF_PRE[N_FIXTURES] = {"gpt2", "gpt2", "llama-bpe", "smollm"};

// ---------------------------------------------------------------------------
// Helpers

static char *read_text(const char *path, int64_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static cJSON *read_json(const char *path) {
    char *text = read_text(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) fail_msg("%s is not JSON", path);
    return j;
}

static void fixture_path(char *out, size_t n, const char *fixture, const char *file) {
    snprintf(out, n, "%s/%s/%s", STRETCH_TEST_DATA_DIR, fixture, file);
}

// A fresh empty directory under /tmp.
static void temp_dir(char *out, size_t n) {
    snprintf(out, n, "/tmp/stretch_test_tok_XXXXXX");
    assert_non_null(mkdtemp(out));
}

static void remove_dir(const char *dir, const char *const *files, int n) {
    char path[512];
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[k]);
        unlink(path);
    }
    rmdir(dir);
}

// Deterministic pseudo-random numbers (splitmix64).
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Compares ids to the expected ones; on a mismatch prints where.
static void assert_ids(const int32_t *got, int64_t n_got, const cJSON *want, const char *what) {
    int64_t n_want = cJSON_GetArraySize(want);
    int64_t k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, want) {
        if (k >= n_got || got[k] != (int32_t)x->valuedouble) {
            print_error("%s: id %lld: got %d, want %d (%lld ids vs %lld)\n", what, (long long)k,
                        k < n_got ? got[k] : -1, (int32_t)x->valuedouble, (long long)n_got,
                        (long long)n_want);
            fail();
        }
        k++;
    }
    assert_int_equal(n_got, n_want);
}

// Encodes text fed in random pieces of 1..max_piece bytes.
static int64_t encode_in_pieces(int32_t **ids, const tok_tokenizer *t, const char *text, int64_t len,
                                int max_piece, uint64_t seed) {
    tok_encoder *e = tok_encoder_new(t);
    tok_ids out = {0};
    for (int64_t at = 0; at < len;) {
        int64_t n = 1 + (int64_t)(next_random(&seed) % (uint64_t)max_piece);
        if (n > len - at) n = len - at;
        tok_encoder_feed(e, &out, text + at, n);
        at += n;
    }
    tok_encoder_finish(e, &out);
    tok_encoder_free(e);
    *ids = out.data;
    return out.n;
}

static void assert_round_trip(const tok_tokenizer *t, const int32_t *ids, int64_t n, const char *text,
                              int64_t len) {
    char *back;
    int64_t n_back = tok_decode(&back, t, ids, n, false);
    assert_int_equal(n_back, len);
    assert_memory_equal(back, text, (size_t)len);
    free(back);
}

// ---------------------------------------------------------------------------
// Byte tokenizer

static void test_byte_round_trip(void **state) {
    (void)state;
    // English, accents, Greek, Cyrillic, CJK, emoji, then invalid UTF-8:
    // a lone continuation byte, an overlong NUL, a surrogate, a cut character, 0xFF.
    static const char text[] = "Hello, wörld! Καλημέρα, привет, 你好, 😀\n"
                               "\x80 \xC0\x80 \xED\xA0\x80 \xE2\x82 \xFF end";
    int64_t len = (int64_t)sizeof(text) - 1;
    tok_tokenizer *t = tok_load("byte", NULL, 0);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 259);
    assert_int_equal(tok_bos_id(t), 256);
    assert_int_equal(tok_eos_id(t), 257);
    assert_int_equal(tok_pad_id(t), 258);
    int32_t *ids;
    int64_t n = tok_encode(&ids, t, text, len);
    assert_int_equal(n, len);
    for (int64_t i = 0; i < n; i++) assert_int_equal(ids[i], (uint8_t)text[i]);
    assert_round_trip(t, ids, n, text, len);
    int32_t *ids2;
    int64_t n2 = encode_in_pieces(&ids2, t, text, len, 5, 1);
    assert_int_equal(n2, n);
    assert_memory_equal(ids2, ids, (size_t)n * sizeof(*ids));
    free(ids2);
    free(ids);

    // Specials: names, decoding with and without them, ids outside the vocabulary.
    assert_int_equal(tok_token_id(t, "<eos>"), 257);
    assert_int_equal(tok_token_id(t, "A"), 'A');
    assert_int_equal(tok_token_id(t, "AB"), -1);
    const int32_t with_specials[] = {256, 'h', 'i', 257, 258, 300, -1};
    char *out;
    assert_int_equal(tok_decode(&out, t, with_specials, 7, false), 17);
    assert_string_equal(out, "<bos>hi<eos><pad>");
    free(out);
    assert_int_equal(tok_decode(&out, t, with_specials, 7, true), 2);
    assert_string_equal(out, "hi");
    free(out);
    char err[256];
    assert_int_equal(tok_set_special_ids(t, 259, -1, -1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bos"));
    assert_int_equal(tok_set_special_ids(t, 1, 2, -1, err, sizeof(err)), 0);
    assert_int_equal(tok_bos_id(t), 1);
    assert_int_equal(tok_pad_id(t), -1);
    tok_free(t);
}

// ---------------------------------------------------------------------------
// Unicode helpers

static void test_unicode(void **state) {
    (void)state;
    // GPT-2's byte table: printable bytes stay, ' ' -> U+0120 'Ġ', '\n' ->
    // U+010A 'Ċ', 0xAD -> U+0143 'Ń' (the last one); a bijection.
    assert_int_equal(tok_byte_to_char('A'), 'A');
    assert_int_equal(tok_byte_to_char(' '), 0x120);
    assert_int_equal(tok_byte_to_char('\n'), 0x10A);
    assert_int_equal(tok_byte_to_char(0), 0x100);
    assert_int_equal(tok_byte_to_char(0x7F), 0x121);
    assert_int_equal(tok_byte_to_char(0xAD), 0x143);
    assert_int_equal(tok_byte_to_char(0xFF), 0xFF);
    bool seen[0x144] = {false};
    for (int b = 0; b < 256; b++) {
        int32_t c = tok_byte_to_char((uint8_t)b);
        assert_true(c >= 0 && c < 0x144 && !seen[c]);
        seen[c] = true;
        assert_int_equal(tok_char_to_byte(c), b);
    }
    assert_int_equal(tok_char_to_byte(' '), -1);
    assert_int_equal(tok_char_to_byte(0x144), -1);

    // Categories: L (Lu Ll Lt Lm Lo), N (Nd Nl No), White_Space, and look-alikes that are not.
    const int32_t letters[] = {'a', 'Z', 0xE9, 0x3A9, 0x416, 0x4E2D, 0x1C5, 0x2B0, 0xAA, 0x5D0, 0xAC00, 0x20000};
    const int32_t numbers[] = {'0', 0x663, 0xB2, 0x216B, 0xFF10, 0x2460, 0x1D7CE};
    const int32_t spaces[] = {' ', '\t', '\n', 0x0B, 0x0C, '\r', 0x85, 0xA0, 0x1680, 0x2000,
                              0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    const int32_t others[] = {0x301, 0x1F600, '_', '-', 0x200B, 0x180E, 0x1C, 0xFEFF, 0x93F, -1};
    for (size_t k = 0; k < sizeof(letters) / sizeof(*letters); k++) {
        assert_true(tok_is_letter(letters[k]));
        assert_false(tok_is_number(letters[k]) || tok_is_space(letters[k]));
    }
    for (size_t k = 0; k < sizeof(numbers) / sizeof(*numbers); k++) {
        assert_true(tok_is_number(numbers[k]) && tok_is_numeric(numbers[k]));
        assert_false(tok_is_letter(numbers[k]) || tok_is_space(numbers[k]));
    }
    for (size_t k = 0; k < sizeof(spaces) / sizeof(*spaces); k++) {
        assert_true(tok_is_space(spaces[k]));
        assert_false(tok_is_letter(spaces[k]) || tok_is_number(spaces[k]));
    }
    for (size_t k = 0; k < sizeof(others) / sizeof(*others); k++)
        assert_false(tok_is_letter(others[k]) || tok_is_number(others[k]) || tok_is_space(others[k]));

    // UTF-8: valid sequences of every length; invalid ones are one byte long.
    struct {
        const char *s;
        int len;
        int32_t cp;
        bool truncated;
    } cases[] = {
        {"A", 1, 'A', false},           {"\xC3\xA9", 2, 0xE9, false},
        {"\xE2\x82\xAC", 3, 0x20AC, false}, {"\xF0\x9F\x98\x80", 4, 0x1F600, false},
        {"\xF4\x8F\xBF\xBF", 4, 0x10FFFF, false},
        {"\x80", 1, -1, false},         {"\xC0\x80", 1, -1, false},      // continuation; overlong
        {"\xE0\x80\x80", 1, -1, false}, {"\xED\xA0\x80", 1, -1, false},  // overlong; surrogate
        {"\xF4\x90\x80\x80", 1, -1, false}, {"\xFF", 1, -1, false},      // > U+10FFFF; never valid
        {"\xE2\x82", 1, -1, true},      {"\xF0\x9F", 1, -1, true},       // cut by the end
        {"\xE2\x41", 1, -1, false},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(*cases); k++) {
        int32_t cp;
        bool truncated;
        int len = tok_utf8_decode(&cp, &truncated, (const uint8_t *)cases[k].s, (int64_t)strlen(cases[k].s));
        assert_int_equal(len, cases[k].len);
        assert_int_equal(cp, cases[k].cp);
        assert_int_equal(truncated, cases[k].truncated);
        if (cp >= 0) {
            uint8_t enc[4];
            assert_int_equal(tok_utf8_encode(enc, cp), len);
            assert_memory_equal(enc, cases[k].s, (size_t)len);
        }
    }
}

// ---------------------------------------------------------------------------
// Pre-tokenizers: pieces of Hugging Face's pre_tokenize_str

typedef struct {
    const char *name;  // a fixture or a variant of bpe_tiny_cross
    tok_pre_step steps[2];
    int n_steps;
} pre_setting;

static const pre_setting PRE_SETTINGS[] = {
    {"bpe_tiny", {{TOK_PRE_GPT2, 0}}, 1},
    {"bpe_tiny_cross", {{TOK_PRE_GPT2, 0}}, 1},
    {"bpe_tiny_llama3", {{TOK_PRE_LLAMA3, 3}}, 1},
    {"bpe_tiny_digits", {{TOK_PRE_DIGITS, 0}, {TOK_PRE_GPT2, 0}}, 2},
    {"llama3", {{TOK_PRE_LLAMA3, 3}}, 1},
    {"llama3_merges", {{TOK_PRE_LLAMA3, 3}}, 1},
    {"qwen2", {{TOK_PRE_LLAMA3, 1}}, 1},
    {"digits_gpt2", {{TOK_PRE_DIGITS, 0}, {TOK_PRE_GPT2, 0}}, 2},
    {"digit_runs_gpt2", {{TOK_PRE_DIGIT_RUNS, 0}, {TOK_PRE_GPT2, 0}}, 2},
    {"split_gpt2", {{TOK_PRE_GPT2, 0}}, 1},
    {"no_split", {{TOK_PRE_GPT2, 0}}, 0},
};

// Checks the pieces of every text against the piece ends tokenizers gave;
// then every prefix of the text as an open text: the pieces it gives must
// be the full text's pieces up to the returned cut.
static void check_pieces(const pre_setting *ps, const cJSON *cases, const cJSON *ends_list) {
    tok_spans spans = {0};
    tok_pretok_scratch scratch = {0};
    int c = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const uint8_t *text = (const uint8_t *)cJSON_GetObjectItem(cs, "text")->valuestring;
        int64_t len = (int64_t)strlen((const char *)text);
        const cJSON *want = ends_list ? cJSON_GetArrayItem(ends_list, c) : cJSON_GetObjectItem(cs, "piece_ends");
        c++;
        spans.n = 0;
        assert_int_equal(tok_pretok_split(&spans, &scratch, ps->steps, ps->n_steps, text, len, false), len);
        if (spans.n != cJSON_GetArraySize(want)) fail_msg("%s text %d: %lld pieces, want %d", ps->name, c - 1,
                                                          (long long)spans.n, cJSON_GetArraySize(want));
        int64_t k = 0, prev = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, want) {
            if (spans.data[k].start != prev || spans.data[k].end != (int64_t)e->valuedouble)
                fail_msg("%s text %d piece %lld: [%lld, %lld), want end %d", ps->name, c - 1, (long long)k,
                         (long long)spans.data[k].start, (long long)spans.data[k].end, (int)e->valuedouble);
            prev = spans.data[k++].end;
        }
        tok_span *full = malloc(((size_t)spans.n + 1) * sizeof(*full));
        int64_t n_full = spans.n;
        if (n_full) memcpy(full, spans.data, (size_t)n_full * sizeof(*full));
        for (int64_t n = 0; n <= len; n++) {
            spans.n = 0;
            int64_t cut = tok_pretok_split(&spans, &scratch, ps->steps, ps->n_steps, text, n, true);
            assert_true(cut >= 0 && cut <= n);
            assert_true(spans.n <= n_full);
            for (k = 0; k < spans.n; k++) {
                assert_int_equal(spans.data[k].start, full[k].start);
                assert_int_equal(spans.data[k].end, full[k].end);
            }
            assert_int_equal(spans.n ? spans.data[spans.n - 1].end : 0, cut);
        }
        free(full);
    }
    tok_spans_free(&spans);
    tok_pretok_scratch_free(&scratch);
}

static const pre_setting *find_setting(const char *name) {
    for (size_t k = 0; k < sizeof(PRE_SETTINGS) / sizeof(*PRE_SETTINGS); k++)
        if (strcmp(PRE_SETTINGS[k].name, name) == 0) return &PRE_SETTINGS[k];
    fail_msg("no pre-tokenizer setting '%s'", name);
    return NULL;
}

static void test_pretok_hf_pieces(void **state) {
    (void)state;
    for (int k = 0; k < N_FIXTURES; k++) {
        char path[512];
        fixture_path(path, sizeof(path), FIXTURES[k], "expected.json");
        cJSON *expected = read_json(path);
        const cJSON *cases = cJSON_GetObjectItem(expected, "cases");
        check_pieces(find_setting(FIXTURES[k]), cases, NULL);
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(expected, "variants"))
            check_pieces(find_setting(cJSON_GetObjectItem(v, "name")->valuestring), cases,
                         cJSON_GetObjectItem(v, "piece_ends"));
        cJSON_Delete(expected);
    }
}

// ---------------------------------------------------------------------------
// BPE parity with Hugging Face tokenizers

// Checks every case: exact ids (ids_list[c], or the case's own "ids"),
// decode, and streaming in random pieces.
static void check_cases(const tok_tokenizer *t, const char *name, const cJSON *cases,
                        const cJSON *ids_list) {
    assert_true(cJSON_GetArraySize(cases) >= 20);
    int c = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const char *text = cJSON_GetObjectItem(cs, "text")->valuestring;
        int64_t len = (int64_t)strlen(text);
        const cJSON *want = ids_list ? cJSON_GetArrayItem(ids_list, c) : cJSON_GetObjectItem(cs, "ids");
        char what[128];
        snprintf(what, sizeof(what), "%s case %d", name, c++);
        int32_t *ids;
        int64_t n = tok_encode(&ids, t, text, len);
        assert_ids(ids, n, want, what);
        assert_round_trip(t, ids, n, text, len);
        for (int max_piece = 1; max_piece <= 16; max_piece *= 4) {
            int32_t *ids2;
            int64_t n2 = encode_in_pieces(&ids2, t, text, len, max_piece, (uint64_t)(c * 31 + max_piece));
            assert_ids(ids2, n2, want, what);
            free(ids2);
        }
        free(ids);
    }
}

// Builds the tokenizer of a tokenizer.json the way a GGUF importer would:
// one token list (vocabulary and added tokens, types 3 = control for
// special ones, 4 = user-defined), merges as "a b" lines, a pre name.
static tok_tokenizer *from_lists(const cJSON *json, const char *pre) {
    const cJSON *model = cJSON_GetObjectItem(json, "model");
    const cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
    const cJSON *added = cJSON_GetObjectItem(json, "added_tokens");
    int32_t n_tokens = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) if ((int32_t)x->valuedouble >= n_tokens) n_tokens = (int32_t)x->valuedouble + 1;
    cJSON_ArrayForEach(x, added) {
        int32_t id = (int32_t)cJSON_GetObjectItem(x, "id")->valuedouble;
        if (id >= n_tokens) n_tokens = id + 1;
    }
    const char **tokens = calloc((size_t)n_tokens, sizeof(*tokens));
    int32_t *types = calloc((size_t)n_tokens, sizeof(*types));
    cJSON_ArrayForEach(x, vocab) tokens[(int32_t)x->valuedouble] = x->string, types[(int32_t)x->valuedouble] = 1;
    cJSON_ArrayForEach(x, added) {
        int32_t id = (int32_t)cJSON_GetObjectItem(x, "id")->valuedouble;
        tokens[id] = cJSON_GetObjectItem(x, "content")->valuestring;
        types[id] = cJSON_IsTrue(cJSON_GetObjectItem(x, "special")) ? 3 : 4;
    }
    for (int32_t id = 0; id < n_tokens; id++) assert_non_null(tokens[id]);
    const cJSON *merges = cJSON_GetObjectItem(model, "merges");
    int32_t n_merges = cJSON_GetArraySize(merges), r = 0;
    char **lines = calloc((size_t)n_merges, sizeof(*lines));
    cJSON_ArrayForEach(x, merges) {
        if (cJSON_IsString(x)) {
            lines[r++] = strdup(x->valuestring);
        } else {
            const char *a = cJSON_GetArrayItem(x, 0)->valuestring, *b = cJSON_GetArrayItem(x, 1)->valuestring;
            lines[r] = malloc(strlen(a) + strlen(b) + 2);
            sprintf(lines[r++], "%s %s", a, b);
        }
    }
    char err[512] = "";
    tok_bpe *bpe = tok_bpe_from_lists(tokens, n_tokens, (const char *const *)lines, n_merges, types, pre,
                                      err, sizeof(err));
    if (!bpe) fail_msg("%s", err);
    assert_int_equal(tok_bpe_vocab_size(bpe), n_tokens);
    for (r = 0; r < n_merges; r++) free(lines[r]);
    free(lines);
    free(types);
    free(tokens);
    return tok_from_bpe(bpe, -1, -1, -1);
}

static void test_bpe_hf_parity(void **state) {
    (void)state;
    for (int k = 0; k < N_FIXTURES; k++) {
        char path[512], err[512] = "";
        fixture_path(path, sizeof(path), FIXTURES[k], "tokenizer.json");
        tok_tokenizer *t = tok_load(path, err, sizeof(err));
        if (!t) fail_msg("%s", err);
        fixture_path(path, sizeof(path), FIXTURES[k], "expected.json");
        cJSON *expected = read_json(path);
        assert_int_equal(tok_vocab_size(t), (int64_t)cJSON_GetObjectItem(expected, "vocab_size")->valuedouble);
        check_cases(t, FIXTURES[k], cJSON_GetObjectItem(expected, "cases"), NULL);
        // Specials guessed from the names (no tokenizer_config.json here).
        assert_int_equal(tok_bos_id(t), tok_token_id(t, "<|endoftext|>"));
        assert_int_equal(tok_eos_id(t), tok_token_id(t, "<|endoftext|>"));
        assert_int_equal(tok_pad_id(t), tok_token_id(t, "<pad>"));
        assert_true(tok_bos_id(t) >= 0 && tok_pad_id(t) >= 0 && tok_bos_id(t) != tok_pad_id(t));
        // Specials are dropped on request, the non-special <tool> is not.
        const int32_t ids[] = {tok_bos_id(t), tok_token_id(t, "<tool>"), tok_pad_id(t)};
        char *out;
        tok_decode(&out, t, ids, 3, true);
        assert_string_equal(out, "<tool>");
        free(out);
        cJSON_Delete(expected);
        tok_free(t);
    }
}

// The same tokenizers built from the lists a GGUF file holds.
static void test_bpe_from_lists(void **state) {
    (void)state;
    for (int k = 0; k < N_FIXTURES; k++) {
        char path[512];
        fixture_path(path, sizeof(path), FIXTURES[k], "tokenizer.json");
        cJSON *json = read_json(path);
        tok_tokenizer *t = from_lists(json, GGUF_PRE[k]);
        // The same ids, the same fingerprint: shards made with the
        // tokenizer.json fit a run on the GGUF (shard.h), and no other fixture's.
        char err[512];
        tok_tokenizer *hf = tok_load(path, err, sizeof err);
        assert_non_null(hf);
        assert_true(tok_fingerprint(hf) == tok_fingerprint(t));
        for (int j = 0; j < k; j++) {
            char other[512];
            fixture_path(other, sizeof(other), FIXTURES[j], "tokenizer.json");
            tok_tokenizer *o = tok_load(other, err, sizeof err);
            assert_non_null(o);
            assert_true(tok_fingerprint(o) != tok_fingerprint(t));
            tok_free(o);
        }
        tok_tokenizer *byte = tok_byte_new();
        assert_true(tok_fingerprint(byte) != tok_fingerprint(t));
        tok_free(byte);
        tok_free(hf);
        fixture_path(path, sizeof(path), FIXTURES[k], "expected.json");
        cJSON *expected = read_json(path);
        check_cases(t, FIXTURES[k], cJSON_GetObjectItem(expected, "cases"), NULL);
        cJSON_Delete(expected);
        tok_free(t);
        cJSON_Delete(json);
    }
    // Unknown pre-tokenizer names and broken merges are refused.
    const char *tokens[] = {"a", "b", "ab"};
    const char *good[] = {"a b"}, *bad[] = {"ab"}, *unknown[] = {"a c"};
    char err[256];
    assert_null(tok_bpe_from_lists(tokens, 3, good, 1, NULL, "bert", err, sizeof(err)));
    assert_non_null(strstr(err, "tokenizer.ggml.pre 'bert'"));
    assert_null(tok_bpe_from_lists(tokens, 3, bad, 1, NULL, "gpt2", err, sizeof(err)));
    assert_non_null(strstr(err, "tokenizer.ggml.merges[0]"));
    assert_null(tok_bpe_from_lists(tokens, 3, unknown, 1, NULL, "gpt2", err, sizeof(err)));
    assert_non_null(strstr(err, "'c'"));
    tok_bpe *bpe = tok_bpe_from_lists(tokens, 3, good, 1, NULL, "gpt2", err, sizeof(err));
    assert_non_null(bpe);
    tok_tokenizer *t = tok_from_bpe(bpe, -1, -1, -1);
    int32_t *ids;
    // Bytes without a token are dropped (as in HF without unk): "a" "b" merge across "c".
    assert_int_equal(tok_encode(&ids, t, "acb ab", 6), 2);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 2);
    free(ids);
    tok_free(t);
}

// Other pre-tokenizer settings on the vocabulary whose merges cross every
// boundary (bpe_tiny_cross): the file patched as tokenizers was, loaded
// from JSON and, where llama.cpp has a name for the setting, from lists.
static void test_bpe_pre_tokenizer_variants(void **state) {
    (void)state;
    static const struct {
        const char *variant, *gguf_pre;
    } gguf_names[] = {{"llama3", "llama-bpe"}, {"qwen2", "qwen2"}, {"digits_gpt2", "smollm"}};
    char path[512], dir[256], err[512] = "";
    fixture_path(path, sizeof(path), "bpe_tiny_cross", "expected.json");
    cJSON *expected = read_json(path);
    const cJSON *cases = cJSON_GetObjectItem(expected, "cases");
    const cJSON *variants = cJSON_GetObjectItem(expected, "variants");
    assert_int_equal(cJSON_GetArraySize(variants), 7);
    temp_dir(dir, sizeof(dir));
    const cJSON *v;
    cJSON_ArrayForEach(v, variants) {
        const char *name = cJSON_GetObjectItem(v, "name")->valuestring;
        fixture_path(path, sizeof(path), "bpe_tiny_cross", "tokenizer.json");
        cJSON *json = read_json(path);
        cJSON_ReplaceItemInObject(json, "pre_tokenizer", cJSON_Duplicate(cJSON_GetObjectItem(v, "pre_tokenizer"), 1));
        cJSON *model = cJSON_GetObjectItem(json, "model");
        cJSON_ReplaceItemInObject(model, "ignore_merges",
                                  cJSON_CreateBool(cJSON_IsTrue(cJSON_GetObjectItem(v, "ignore_merges"))));
        snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
        char *text = cJSON_PrintUnformatted(json);
        write_text(path, text);
        free(text);
        tok_tokenizer *t = tok_load(path, err, sizeof(err));
        if (!t) fail_msg("%s: %s", name, err);
        check_cases(t, name, cases, cJSON_GetObjectItem(v, "ids"));
        tok_free(t);
        for (size_t g = 0; g < sizeof(gguf_names) / sizeof(*gguf_names); g++) {
            if (strcmp(gguf_names[g].variant, name) != 0) continue;
            t = from_lists(json, gguf_names[g].gguf_pre);
            check_cases(t, gguf_names[g].gguf_pre, cases, cJSON_GetObjectItem(v, "ids"));
            tok_free(t);
        }
        cJSON_Delete(json);
    }
    const char *files[] = {"tokenizer.json"};
    remove_dir(dir, files, 1);
    cJSON_Delete(expected);
}

// An added token's id in the file is not trusted by HF; we agree with it.
static void test_bpe_added_token_ids(void **state) {
    (void)state;
    char path[512], dir[256], err[512] = "";
    fixture_path(path, sizeof(path), "bpe_tiny", "expected.json");
    cJSON *expected = read_json(path);
    const cJSON *c = cJSON_GetObjectItem(expected, "added_id");
    const char *content = cJSON_GetObjectItem(c, "content")->valuestring;
    fixture_path(path, sizeof(path), "bpe_tiny", "tokenizer.json");
    cJSON *json = read_json(path);
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(json, "added_tokens")) {
        if (strcmp(cJSON_GetObjectItem(x, "content")->valuestring, content) == 0)
            cJSON_SetNumberValue(cJSON_GetObjectItem(x, "id"), cJSON_GetObjectItem(c, "json_id")->valuedouble);
    }
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    char *text = cJSON_PrintUnformatted(json);
    write_text(path, text);
    free(text);
    tok_tokenizer *t = tok_load(dir, err, sizeof(err));  // a directory holding tokenizer.json
    if (!t) fail_msg("%s", err);
    const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
    int32_t *ids;
    int64_t n = tok_encode(&ids, t, s, (int64_t)strlen(s));
    assert_ids(ids, n, cJSON_GetObjectItem(c, "ids"), "added token id");
    assert_int_equal(tok_vocab_size(t), (int64_t)cJSON_GetObjectItem(c, "vocab_size")->valuedouble);
    free(ids);
    tok_free(t);

    // Two more special tokens: the two passes (specials first) and the longest match.
    cJSON_Delete(json);
    fixture_path(path, sizeof(path), "bpe_tiny", "tokenizer.json");
    json = read_json(path);
    const cJSON *more = cJSON_GetObjectItem(expected, "added_more");
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(more, "append"))
        cJSON_AddItemToArray(cJSON_GetObjectItem(json, "added_tokens"), cJSON_Duplicate(x, 1));
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    text = cJSON_PrintUnformatted(json);
    write_text(path, text);
    free(text);
    t = tok_load(path, err, sizeof(err));
    if (!t) fail_msg("%s", err);
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(more, "cases")) {
        s = cJSON_GetObjectItem(cs, "text")->valuestring;
        n = tok_encode(&ids, t, s, (int64_t)strlen(s));
        assert_ids(ids, n, cJSON_GetObjectItem(cs, "ids"), s);
        assert_round_trip(t, ids, n, s, (int64_t)strlen(s));
        int32_t *ids2;
        int64_t n2 = encode_in_pieces(&ids2, t, s, (int64_t)strlen(s), 3, 7);
        assert_ids(ids2, n2, cJSON_GetObjectItem(cs, "ids"), s);
        free(ids2);
        free(ids);
    }
    tok_free(t);
    const char *files[] = {"tokenizer.json"};
    remove_dir(dir, files, 1);
    cJSON_Delete(json);
    cJSON_Delete(expected);
}

// Bytes without a token: dropped, or unk (fused or not), as tokenizers does.
static void test_bpe_unk(void **state) {
    (void)state;
    char path[512], dir[256], err[512] = "";
    fixture_path(path, sizeof(path), "bpe_tiny", "expected.json");
    cJSON *expected = read_json(path);
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    const cJSON *u;
    int checked = 0;
    cJSON_ArrayForEach(u, cJSON_GetObjectItem(expected, "unk")) {
        char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(u, "tokenizer"));
        write_text(path, text);
        free(text);
        tok_tokenizer *t = tok_load(path, err, sizeof(err));
        if (!t) fail_msg("%s", err);
        const cJSON *cs;
        cJSON_ArrayForEach(cs, cJSON_GetObjectItem(u, "cases")) {
            const char *s = cJSON_GetObjectItem(cs, "text")->valuestring;
            int32_t *ids;
            int64_t n = tok_encode(&ids, t, s, (int64_t)strlen(s));
            assert_ids(ids, n, cJSON_GetObjectItem(cs, "ids"), s);
            free(ids);
            checked++;
        }
        tok_free(t);
    }
    assert_int_equal(checked, 18);
    const char *files[] = {"tokenizer.json"};
    remove_dir(dir, files, 1);
    cJSON_Delete(expected);
}

// bos/eos/pad from tokenizer_config.json next to tokenizer.json.
static void test_bpe_config_specials(void **state) {
    (void)state;
    char src[512], dir[256], path[512], err[512] = "";
    fixture_path(src, sizeof(src), "bpe_tiny", "tokenizer.json");
    char *json = read_text(src, NULL);
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    write_text(path, json);
    free(json);
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    write_text(path, "{\"bos_token\": \"<|im_start|>\", \"eos_token\": {\"content\": \"<|im_end|>\"},"
                     " \"pad_token\": null}");
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    tok_tokenizer *t = tok_load(path, err, sizeof(err));
    if (!t) fail_msg("%s", err);
    assert_int_equal(tok_bos_id(t), tok_token_id(t, "<|im_start|>"));
    assert_int_equal(tok_eos_id(t), tok_token_id(t, "<|im_end|>"));
    assert_int_equal(tok_pad_id(t), -1);
    assert_true(tok_bos_id(t) >= 0 && tok_eos_id(t) >= 0);
    tok_free(t);
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    write_text(path, "{\"eos_token\": \"<|nope|>\"}");
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    assert_null(tok_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, "tokenizer_config.json"));
    assert_non_null(strstr(err, "eos_token '<|nope|>'"));
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    remove_dir(dir, files, 2);
}

// Random mixtures of the test texts' pieces and random bytes: one call and
// random pieces give the same ids, and decode gives the bytes back.
static void test_bpe_stream_fuzz(void **state) {
    (void)state;
    for (int k = 0; k < N_FIXTURES; k++) {
        char path[512], err[512] = "";
        fixture_path(path, sizeof(path), FIXTURES[k], "tokenizer.json");
        tok_tokenizer *t = tok_load(path, err, sizeof(err));
        if (!t) fail_msg("%s", err);
        fixture_path(path, sizeof(path), FIXTURES[k], "expected.json");
        cJSON *expected = read_json(path);
        const cJSON *cases = cJSON_GetObjectItem(expected, "cases");
        int n_cases = cJSON_GetArraySize(cases);
        uint64_t seed = 1234 + (uint64_t)k;
        for (int trial = 0; trial < 40; trial++) {
            char text[4096];
            int64_t len = 0;
            while (len < 2000) {
                uint64_t r = next_random(&seed);
                if (r % 4 == 0) {  // a few random bytes, invalid UTF-8 likely
                    int n = 1 + (int)(r >> 8) % 4;
                    for (int i = 0; i < n; i++) text[len++] = (char)(next_random(&seed) & 0xFF);
                } else {  // a random slice of a test text, cut anywhere
                    const char *s = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, (int)((r >> 8) % (uint64_t)n_cases)),
                                                        "text")->valuestring;
                    int64_t n = (int64_t)strlen(s);
                    if (n == 0) continue;
                    int64_t a = (int64_t)(next_random(&seed) % (uint64_t)n);
                    int64_t b = a + 1 + (int64_t)(next_random(&seed) % (uint64_t)(n - a));
                    memcpy(text + len, s + a, (size_t)(b - a));
                    len += b - a;
                }
            }
            int32_t *ids, *ids2;
            int64_t n = tok_encode(&ids, t, text, len);
            assert_round_trip(t, ids, n, text, len);
            int64_t n2 = encode_in_pieces(&ids2, t, text, len, 1 + trial % 13, seed);
            assert_int_equal(n2, n);
            assert_memory_equal(ids2, ids, (size_t)n * sizeof(*ids));
            free(ids);
            free(ids2);
        }
        cJSON_Delete(expected);
        tok_free(t);
    }
}

// Long runs without a split point (100 KB of spaces, a 100 KB word) fed in
// 1 KB pieces give the ids of one call, and one encoder serves several
// documents in a row.
static void test_bpe_stream_long_run(void **state) {
    (void)state;
    char path[512], err[512] = "";
    fixture_path(path, sizeof(path), "bpe_tiny", "tokenizer.json");
    tok_tokenizer *t = tok_load(path, err, sizeof(err));
    if (!t) fail_msg("%s", err);
    int64_t len = 200000;
    char *text = malloc((size_t)len);
    for (int64_t i = 0; i < len; i++) text[i] = i < len / 2 ? ' ' : 'a';  // spaces, then one word
    int32_t *ids;
    int64_t n = tok_encode(&ids, t, text, len);
    tok_encoder *e = tok_encoder_new(t);
    tok_ids out = {0};
    for (int doc = 0; doc < 2; doc++) {
        for (int64_t at = 0; at < len; at += 1000) tok_encoder_feed(e, &out, text + at, 1000);
        tok_encoder_finish(e, &out);
    }
    assert_int_equal(out.n, 2 * n);
    assert_memory_equal(out.data, ids, (size_t)n * sizeof(*ids));
    assert_memory_equal(out.data + n, ids, (size_t)n * sizeof(*ids));
    assert_round_trip(t, ids, n, text, len);
    tok_ids_free(&out);
    tok_encoder_free(e);
    free(ids);
    free(text);
    tok_free(t);
}

// ---------------------------------------------------------------------------
// Errors: NULL and one line naming the file and the key.

static void expect_load_error(const char *json, const char *want1, const char *want2) {
    char dir[256], path[512], err[512] = "";
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    write_text(path, json);
    assert_null(tok_load(path, err, sizeof(err)));
    if (!strstr(err, path) || !strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("unexpected message: %s", err);
    assert_null(strchr(err, '\n'));
    const char *files[] = {"tokenizer.json"};
    remove_dir(dir, files, 1);
}

static void test_load_errors(void **state) {
    (void)state;
    char err[512] = "";
    const char *missing = "/nonexistent/dir/tokenizer.json";
    assert_null(tok_load(missing, err, sizeof(err)));
    assert_non_null(strstr(err, missing));
    assert_null(tok_load("", err, sizeof(err)));
    assert_non_null(strstr(err, "byte"));

    static const char pre[] = "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}";
    static const char model[] = "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                                "\"merges\": [\"a b\"]}";
    char json[1024];
    expect_load_error("{\"model\": {\"type\": \"BPE\", ", "not valid JSON", NULL);
    expect_load_error("[1, 2]", "not a JSON object", NULL);
    snprintf(json, sizeof(json), "{%s}", pre);
    expect_load_error(json, "'model'", NULL);
    snprintf(json, sizeof(json), "{%s, \"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", pre);
    expect_load_error(json, "model.type 'WordPiece'", NULL);
    snprintf(json, sizeof(json), "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, %s}", model);
    expect_load_error(json, "pre_tokenizer.type 'Whitespace'", NULL);
    snprintf(json, sizeof(json),
             "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
             "\"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\"}]}, %s}",
             model);
    expect_load_error(json, "pre_tokenizer.pretokenizers[0].pattern.Regex", NULL);
    snprintf(json, sizeof(json), "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true}, %s}",
             model);
    expect_load_error(json, "pre_tokenizer.add_prefix_space", NULL);
    snprintf(json, sizeof(json), "{\"normalizer\": {\"type\": \"NFC\"}, %s, %s}", pre, model);
    expect_load_error(json, "normalizer.type 'NFC'", NULL);
    snprintf(json, sizeof(json), "{%s, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, "
                                 "\"merges\": [\"a b\"]}}", pre);
    expect_load_error(json, "merge 0 'a b'", "not in the vocabulary");
    snprintf(json, sizeof(json), "{%s, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, "
                                 "\"merges\": [\"a c\"]}}", pre);
    expect_load_error(json, "'c'", NULL);
    snprintf(json, sizeof(json), "{%s, %s, \"added_tokens\": [{\"id\": 3, \"content\": \"x\", \"lstrip\": true}]}",
             pre, model);
    expect_load_error(json, "added_tokens[0].lstrip", NULL);
    // A quoted token holding a newline stays one line (fuzz_tokenizer).
    snprintf(json, sizeof(json), "{%s, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\\nb\": 0, "
                                 "\"c\": 0}, \"merges\": []}}", pre);
    expect_load_error(json, "id 0 is given to both 'a b' and 'c'", NULL);

    // A minimal valid file loads.
    char dir[256], path[512];
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    snprintf(json, sizeof(json), "{%s, %s}", pre, model);
    write_text(path, json);
    tok_tokenizer *t = tok_load(path, err, sizeof(err));
    if (!t) fail_msg("%s", err);
    int32_t *ids;
    assert_int_equal(tok_encode(&ids, t, "ab", 2), 1);
    assert_int_equal(ids[0], 2);
    free(ids);
    tok_free(t);
    const char *files[] = {"tokenizer.json"};
    remove_dir(dir, files, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_round_trip),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_pretok_hf_pieces),
        cmocka_unit_test(test_bpe_hf_parity),
        cmocka_unit_test(test_bpe_from_lists),
        cmocka_unit_test(test_bpe_pre_tokenizer_variants),
        cmocka_unit_test(test_bpe_added_token_ids),
        cmocka_unit_test(test_bpe_unk),
        cmocka_unit_test(test_bpe_config_specials),
        cmocka_unit_test(test_bpe_stream_fuzz),
        cmocka_unit_test(test_bpe_stream_long_run),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
