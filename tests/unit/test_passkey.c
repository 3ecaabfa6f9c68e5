// Tests for data/passkey with two toy tokenizers written here: bytes (ids =
// byte values, so samples decode back to text, checked against the prompt
// rebuilt independently in this file) and words (one id per word, to check
// exact lengths and depths when pieces are several bytes per token).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "passkey.h"

enum { BOS = 256 };

static int64_t encode_bytes(void *ctx, const char *text, size_t len, int32_t *out, int64_t cap) {
    (void)ctx;
    for (size_t i = 0; i < len && (int64_t)i < cap; i++) out[i] = (unsigned char)text[i];
    return (int64_t)len;
}

// A new token before every space or newline: "\nThe pass" -> "\nThe", " pass".
static int64_t encode_words(void *ctx, const char *text, size_t len, int32_t *out, int64_t cap) {
    (void)ctx;
    int64_t n = 0;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        if (i > 0 && (text[i] == ' ' || text[i] == '\n')) {
            if (n < cap) out[n] = (int32_t)(300 + h % 1000);
            n++;
            h = 2166136261u;
        }
        h = (h ^ (unsigned char)text[i]) * 16777619u;
    }
    if (len > 0) {
        if (n < cap) out[n] = (int32_t)(300 + h % 1000);
        n++;
    }
    return n;
}

static int64_t encode_broken(void *ctx, const char *text, size_t len, int32_t *out, int64_t cap) {
    (void)ctx, (void)text, (void)len, (void)out, (void)cap;
    return -1;
}

static const char *const SENTENCES[5] = {
    "The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
    "There and back again.",
};
static const char PREAMBLE[] =
    "There is an important info hidden inside a lot of irrelevant text. Find it and "
    "memorize them. I will quiz you about the important information there.";

static passkey_config byte_config(double depth) {
    passkey_config c;
    memset(&c, 0, sizeof c);
    c.encode = encode_bytes;
    c.bos_id = BOS;
    c.n_keys = 1;
    c.depth = depth;
    return c;
}

// The filler run starting with sentence `first` at a line start, as text.
static char *filler_run(int first, size_t min_len) {
    size_t cap = min_len + 64, n = 0;
    char *s = xmalloc(cap);
    for (int k = first; n < min_len; k++) {
        n += (size_t)snprintf(s + n, cap - n, "%s%s", k == first ? "\n" : " ", SENTENCES[k % 5]);
    }
    return s;
}

// Checks that text[0, n) is the start of a filler run (some first sentence)
// made of whole sentences (whole = 1) or cut anywhere; returns the index of
// the sentence after the run's last whole one, or -1.
static int match_run(const char *text, size_t n, int first, int whole) {
    if (n == 0) return first;
    char *run = filler_run(first, n + 32);
    int ok = memcmp(run, text, n) == 0, next = first;
    if (ok && whole) {
        size_t at = 0;
        ok = 0;
        for (int k = first; at <= n; k++) {
            if (at == n) {
                ok = 1;
                next = k % 5;
                break;
            }
            at += 1 + strlen(SENTENCES[k % 5]);
        }
    }
    free(run);
    return ok ? next : -1;
}

static size_t max_sentence(void) {
    size_t m = 0;
    for (int i = 0; i < 5; i++) m = strlen(SENTENCES[i]) + 1 > m ? strlen(SENTENCES[i]) + 1 : m;
    return m;
}

// Decodes a byte-level sample and checks it against the prompt rebuilt here.
static void check_byte_sample(const passkey_config *c, uint64_t seed, int64_t T) {
    int32_t *tok = xmalloc((size_t)T * 4), *tgt = xmalloc((size_t)T * 4);
    passkey_info info;
    char err[256];
    assert_int_equal(passkey_make(tok, tgt, &info, c, seed, T, err, sizeof err), 0);
    assert_int_equal(tok[0], BOS);
    char *text = xmalloc((size_t)T);
    for (int64_t i = 1; i < T; i++) {
        assert_true(tok[i] >= 0 && tok[i] < 256);
        text[i - 1] = (char)tok[i];
    }
    const size_t n = (size_t)T - 1;

    assert_true(info.key >= 10000 && info.key <= 99999);
    char needle[128], ending[128];
    snprintf(needle, sizeof needle, "\nThe pass key is %lld. Remember it. %lld is the pass key.",
             (long long)info.key, (long long)info.key);
    snprintf(ending, sizeof ending, "\nWhat is the pass key? The pass key is %lld",
             (long long)info.key);
    const size_t pre = c->no_preamble ? 0 : strlen(PREAMBLE), nl = strlen(needle),
                 el = strlen(ending);
    if (pre) assert_memory_equal(text, PREAMBLE, pre);
    assert_memory_equal(text + n - el, ending, el);
    // Exactly one needle; the filler around it is the sentence cycle.
    size_t at = SIZE_MAX;
    for (size_t i = pre; i + nl <= n - el; i++) {
        if (memcmp(text + i, needle, nl) == 0) {
            assert_true(at == SIZE_MAX);
            at = i;
        }
    }
    assert_true(at != SIZE_MAX);
    const int next = match_run(text + pre, at - pre, 0, 1);
    assert_true(next >= 0);
    assert_true(match_run(text + at + nl, n - el - at - nl, next, 0) >= 0);
    // Depth: within one sentence of the requested one.
    const int64_t H = (int64_t)(n - pre - nl - el);
    assert_int_equal(info.filler_tokens, H);
    const double want = c->depth >= 0 ? c->depth : info.depth;
    assert_true(fabs((double)(at - pre) - want * (double)H) <= (double)max_sentence());
    assert_int_equal(info.needle_start, 1 + (int64_t)at);
    // Answer and targets.
    assert_int_equal(info.answer_len, 6);
    assert_int_equal(info.answer_start, T - 6);
    for (int i = 0; i < 6; i++) assert_int_equal(info.answer[i], tok[T - 6 + i]);
    for (int64_t i = 0; i < T; i++) {
        int32_t want_tgt;
        if (c->answer_only) want_tgt = i >= T - 7 && i < T - 1 ? tok[i + 1] : -1;
        else want_tgt = i < T - 1 ? tok[i + 1] : -1;
        assert_int_equal(tgt[i], want_tgt);
    }
    free(text);
    free(tok);
    free(tgt);
}

static void test_bytes_exact_length_depth_text(void **state) {
    (void)state;
    const double depths[6] = {0.0, 0.1, 0.25, 0.5, 0.9, 1.0};
    const int64_t lengths[4] = {400, 1000, 1537, 4096};
    for (int d = 0; d < 6; d++) {
        for (int l = 0; l < 4; l++) {
            passkey_config c = byte_config(depths[d]);
            c.answer_only = (d + l) % 2;
            check_byte_sample(&c, (uint64_t)(d * 10 + l), lengths[l]);
        }
    }
    // Random depths, no preamble, short lengths.
    for (uint64_t seed = 0; seed < 20; seed++) {
        passkey_config c = byte_config(-1);
        c.no_preamble = 1;
        check_byte_sample(&c, seed, 120 + (int64_t)seed * 7);
    }
}

static void test_words_exact_length_and_depth(void **state) {
    (void)state;
    for (int n_keys = 1; n_keys <= 3; n_keys += 2) {
        for (int64_t T = 60; T < 700; T += 37) {
            for (int d = 0; d <= 4; d++) {
                passkey_config c = byte_config(d / 4.0);
                c.encode = encode_words;
                c.bos_id = -1;
                c.n_keys = n_keys;
                int32_t tok[700], tgt[700];
                passkey_info info;
                char err[256];
                const int64_t min = passkey_min_len(&c, (uint64_t)T, err, sizeof err);
                assert_true(min > 0);
                if (T < min) {
                    assert_int_equal(passkey_make(tok, tgt, &info, &c, (uint64_t)T, T, err,
                                                  sizeof err), -1);
                    continue;
                }
                assert_int_equal(passkey_make(tok, tgt, &info, &c, (uint64_t)T, T, err, sizeof err), 0);
                assert_int_equal(info.filler_tokens, T - min);
                assert_int_equal(info.answer_start + info.answer_len, T);
                // Filler sentences are 4 or 5 words here: within one sentence.
                if (n_keys == 1) {
                    const double want = (d / 4.0) * (double)info.filler_tokens;
                    int32_t ids[64];
                    const int64_t pre = encode_words(NULL, PREAMBLE, strlen(PREAMBLE), ids, 64);
                    assert_true(fabs((double)(info.needle_start - pre) - want) <= 5);
                }
                assert_true(fabs(info.depth - d / 4.0) * (double)info.filler_tokens <= 5);
            }
        }
    }
}

static void test_min_len_and_errors(void **state) {
    (void)state;
    passkey_config c = byte_config(0.5);
    char err[256];
    const int64_t min = passkey_min_len(&c, 3, err, sizeof err);
    // BOS + preamble + needle + question + " 12345".
    const int64_t want = 1 + (int64_t)strlen(PREAMBLE) + 59 + 38 + 6;
    assert_int_equal(min, want);
    int32_t tok[400], tgt[400];
    passkey_info info;
    assert_int_equal(passkey_make(tok, tgt, &info, &c, 3, min, err, sizeof err), 0);
    assert_int_equal(info.filler_tokens, 0);
    assert_int_equal(passkey_make(tok, tgt, &info, &c, 3, min - 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "too short"));
    c.encode = encode_broken;
    assert_int_equal(passkey_make(tok, tgt, &info, &c, 3, 400, err, sizeof err), -1);
    assert_non_null(strstr(err, "tokenizer failed"));
    c = byte_config(0.5);
    c.n_keys = PASSKEY_MAX_KEYS + 1;
    assert_int_equal(passkey_make(tok, tgt, &info, &c, 3, 400, err, sizeof err), -1);
    assert_non_null(strstr(err, "n_keys"));
    c = byte_config(1.5);
    assert_int_equal(passkey_make(tok, tgt, &info, &c, 3, 400, err, sizeof err), -1);
    assert_non_null(strstr(err, "depth"));
}

static void test_determinism(void **state) {
    (void)state;
    passkey_config c = byte_config(-1);
    int32_t a[800], b[800], ta[800], tb[800];
    passkey_info ia, ib;
    char err[256];
    int keys_differ = 0;
    double lo = 1, hi = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        assert_int_equal(passkey_make(a, ta, &ia, &c, seed, 800, err, sizeof err), 0);
        assert_int_equal(passkey_make(b, tb, &ib, &c, seed, 800, err, sizeof err), 0);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_equal(ta, tb, sizeof ta);
        assert_int_equal(ia.key, ib.key);
        assert_int_equal(passkey_make(b, tb, &ib, &c, seed + 1000, 800, err, sizeof err), 0);
        keys_differ += ia.key != ib.key;
        lo = ia.depth < lo ? ia.depth : lo;
        hi = ia.depth > hi ? ia.depth : hi;
    }
    assert_true(keys_differ >= 19);
    assert_true(lo < 0.3 && hi > 0.7);  // random depths spread over the filler
}

static void test_multi_key(void **state) {
    (void)state;
    static const char *const names[4] = {"alpha", "bravo", "charlie", "delta"};
    int asked_seen[4] = {0};
    for (uint64_t seed = 0; seed < 24; seed++) {
        passkey_config c = byte_config(0.3);
        c.n_keys = 4;
        enum { T = 2000 };
        int32_t tok[T], tgt[T];
        passkey_info info;
        char err[256];
        assert_int_equal(passkey_make(tok, tgt, &info, &c, seed, T, err, sizeof err), 0);
        char text[T + 1];
        for (int i = 1; i < T; i++) text[i - 1] = (char)tok[i];
        text[T - 1] = 0;
        for (int k = 0; k < 4; k++) {
            assert_true(info.keys[k] >= 10000 && info.keys[k] <= 99999);
            for (int j = 0; j < k; j++) assert_true(info.keys[j] != info.keys[k]);
            char line[160];
            snprintf(line, sizeof line,
                     "\nThe pass key for %s is %lld. Remember it. %lld is the pass key for %s.",
                     names[k], (long long)info.keys[k], (long long)info.keys[k], names[k]);
            const char *hit = strstr(text, line);
            assert_non_null(hit);
            assert_null(strstr(hit + 1, line));
            if (k == info.asked) assert_int_equal(info.needle_start, 1 + (hit - text));
        }
        assert_true(info.asked >= 0 && info.asked < 4);
        asked_seen[info.asked]++;
        assert_int_equal(info.key, info.keys[info.asked]);
        char ending[160];
        snprintf(ending, sizeof ending, "\nWhat is the pass key for %s? The pass key for %s is %lld",
                 names[info.asked], names[info.asked], (long long)info.key);
        assert_string_equal(text + strlen(text) - strlen(ending), ending);
        assert_true(fabs(info.depth - 0.3) * (double)info.filler_tokens <= (double)max_sentence());
    }
    for (int k = 0; k < 4; k++) assert_true(asked_seen[k] > 0);
}

static void test_scoring(void **state) {
    (void)state;
    const char *yes[] = {" 12345", "12345", "12345.", " 12345 is the pass key", "key: 12345\n"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        assert_int_equal(passkey_check_text(yes[i], strlen(yes[i]), 12345), 1);
    const char *no[] = {"", " 1234", " 123456", " 54321 12345", "no digits", " 12 345"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        assert_int_equal(passkey_check_text(no[i], strlen(no[i]), 12345), 0);
    assert_true(passkey_digit_score(" 12399", 6, 12345) == 0.6);
    assert_true(passkey_digit_score(" 12345", 6, 12345) == 1.0);
    assert_true(passkey_digit_score(" 1", 2, 12345) == 0.2);
    assert_true(passkey_digit_score("none", 4, 12345) == 0.0);

    passkey_config c = byte_config(0.5);
    int32_t tok[500], tgt[500];
    passkey_info info;
    char err[256];
    assert_int_equal(passkey_make(tok, tgt, &info, &c, 9, 500, err, sizeof err), 0);
    int32_t gen[8];
    memcpy(gen, tok + info.answer_start, 6 * sizeof *gen);
    gen[6] = '\n';
    assert_int_equal(passkey_check_tokens(gen, 7, &info), 1);
    assert_int_equal(passkey_check_tokens(gen, 5, &info), 0);
    gen[3] = gen[3] == '0' ? '1' : '0';
    assert_int_equal(passkey_check_tokens(gen, 7, &info), 0);
}

// The compact prompt: exact text, answer without a leading space, ':' only
// in the needle and the question.
static void test_compact(void **state) {
    (void)state;
    passkey_config cfg = byte_config(0.5);
    cfg.compact = 1;
    cfg.bos_id = -1;
    cfg.answer_only = 1;
    enum { T = 128 };
    int32_t tok[T], tgt[T];
    passkey_info info;
    char err[256];
    assert_int_equal(passkey_make(tok, tgt, &info, &cfg, 5, T, err, sizeof err), 0);
    char text[T + 1];
    for (int i = 0; i < T; i++) text[i] = (char)tok[i];
    text[T] = '\0';
    char needle[64], tail[64];
    snprintf(needle, sizeof needle, "\nThe pass key is:%lld.", (long long)info.key);
    snprintf(tail, sizeof tail, "\nThe pass key is:%lld", (long long)info.key);
    assert_non_null(strstr(text, needle));
    assert_string_equal(text + T - strlen(tail), tail);
    assert_int_equal(info.answer_len, 5);
    int colons = 0;
    for (int i = 0; i < T; i++) colons += text[i] == ':';
    assert_int_equal(colons, 2);
    assert_null(strstr(text, "There is an important"));
    // answer_only: targets exactly at the positions that predict the 5 digits.
    for (int i = 0; i < T; i++)
        assert_int_equal(tgt[i], i >= T - 6 && i < T - 1 ? tok[i + 1] : -1);
}

// The copy task: the second half repeats the first, targets are next tokens.
static void test_copy_task(void **state) {
    (void)state;
    for (int t = 0; t < 2; t++) {
        const int64_t T = t ? 129 : 200;
        passkey_config cfg = byte_config(0.5);
        if (t) cfg.encode = encode_words;
        int32_t tok[256], tgt[256], again[256], tgt2[256];
        char err[256];
        assert_int_equal(passkey_make_copy(tok, tgt, &cfg, 11, T, err, sizeof err), 0);
        const int64_t n = T / 2;
        for (int64_t i = 0; i < n; i++) assert_int_equal(tok[n + i], tok[i]);
        for (int64_t i = 0; i + 1 < 2 * n; i++) assert_int_equal(tgt[i], tok[i + 1]);
        for (int64_t i = 2 * n - 1; i < T; i++) assert_int_equal(tgt[i], -1);
        assert_int_equal(passkey_make_copy(again, tgt2, &cfg, 11, T, err, sizeof err), 0);
        assert_memory_equal(tok, again, sizeof(int32_t) * (size_t)T);
        assert_int_equal(passkey_make_copy(again, tgt2, &cfg, 12, T, err, sizeof err), 0);
        assert_memory_not_equal(tok, again, sizeof(int32_t) * (size_t)n);
    }
    passkey_config bad = byte_config(0.5);
    bad.encode = encode_broken;
    int32_t tok[64], tgt[64];
    char err[256];
    assert_int_equal(passkey_make_copy(tok, tgt, &bad, 1, 64, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_exact_length_depth_text),
        cmocka_unit_test(test_words_exact_length_and_depth),
        cmocka_unit_test(test_min_len_and_errors),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_multi_key),
        cmocka_unit_test(test_scoring),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_copy_task),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
