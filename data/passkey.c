// passkey: synthetic passkey retrieval samples. See passkey.h.
#include "passkey.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "rng.h"

static const char PREAMBLE[] =
    "There is an important info hidden inside a lot of irrelevant text. Find it and "
    "memorize them. I will quiz you about the important information there.";
enum { N_FILLER = 5 };
static const char *const FILLER[N_FILLER] = {
    "The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
    "There and back again.",
};
static const char *const KEY_NAMES[PASSKEY_MAX_KEYS] = {
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
};
#define STREAM_PASSKEY 0x7061737373ULL  // rng stream id ("passs")

// ---------------------------------------------------------------------------
// Pieces: every text fragment of a sample, encoded once.

typedef struct {
    int32_t *ids;  // (n)
    int64_t n;
} piece;

typedef struct {
    int n_keys;
    int64_t keys[PASSKEY_MAX_KEYS];
    int asked;
    double depth;                   // of the asked key, in [0, 1]
    double spot[PASSKEY_MAX_KEYS];  // requested depth of every key
    piece preamble;                 // empty with no_preamble
    piece filler[2][N_FILLER];      // [0]: "\n" + sentence (starts a line), [1]: " " + sentence
    piece needle[PASSKEY_MAX_KEYS]; // "\n" + needle line of key k
    piece question;                 // "\n" + question
    piece answer;                   // " " + asked key
} pieces;

static int encode(piece *p, const passkey_config *cfg, const char *text, char *err,
                  size_t errlen) {
    const size_t len = strlen(text);
    int64_t cap = (int64_t)len + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        p->ids = xrealloc(p->ids, (size_t)cap * sizeof *p->ids);
        const int64_t n = cfg->encode(cfg->encode_ctx, text, len, p->ids, cap);
        if (n < 0) return errmsg(err, errlen, "passkey: the tokenizer failed to encode \"%s\"", text);
        p->n = n;
        if (n <= cap) return 0;
        cap = n;
    }
    return errmsg(err, errlen, "passkey: the tokenizer gave inconsistent lengths for \"%s\"", text);
}

static void pieces_free(pieces *ps) {
    free(ps->preamble.ids);
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < N_FILLER; i++) free(ps->filler[v][i].ids);
    for (int k = 0; k < PASSKEY_MAX_KEYS; k++) free(ps->needle[k].ids);
    free(ps->question.ids);
    free(ps->answer.ids);
}

// Draws keys and depths from seed and encodes all pieces. On failure ps is
// freed.
static int pieces_build(pieces *ps, const passkey_config *cfg, uint64_t seed, char *err,
                        size_t errlen) {
    memset(ps, 0, sizeof *ps);
    if (!cfg->encode) return errmsg(err, errlen, "passkey: no tokenizer (encode is NULL)");
    if (cfg->n_keys < 1 || cfg->n_keys > PASSKEY_MAX_KEYS)
        return errmsg(err, errlen, "passkey: n_keys = %d, must be 1..%d", cfg->n_keys,
                    PASSKEY_MAX_KEYS);
    if (cfg->depth > 1.0)
        return errmsg(err, errlen, "passkey: depth = %g, must be in [0, 1] (or < 0 for random)",
                    cfg->depth);
    rng_state r;
    rng_seed_stream(&r, seed, STREAM_PASSKEY);
    ps->n_keys = cfg->n_keys;
    for (int k = 0; k < ps->n_keys; k++) {
        int distinct;
        do {
            ps->keys[k] = 10000 + (int64_t)rng_below(&r, 90000);
            distinct = 1;
            for (int j = 0; j < k; j++) distinct &= ps->keys[j] != ps->keys[k];
        } while (!distinct);
    }
    ps->asked = ps->n_keys > 1 ? (int)rng_below(&r, (uint64_t)ps->n_keys) : 0;
    for (int k = 0; k < ps->n_keys; k++) ps->spot[k] = rng_uniform(&r);
    ps->depth = cfg->depth >= 0 ? cfg->depth : ps->spot[ps->asked];
    ps->spot[ps->asked] = ps->depth;

    char text[512];
    int rc = 0;
    if (!cfg->no_preamble && !cfg->compact) rc |= encode(&ps->preamble, cfg, PREAMBLE, err, errlen);
    for (int i = 0; i < N_FILLER && rc == 0; i++) {
        snprintf(text, sizeof text, "\n%s", FILLER[i]);
        rc |= encode(&ps->filler[0][i], cfg, text, err, errlen);
        snprintf(text, sizeof text, " %s", FILLER[i]);
        if (rc == 0) rc |= encode(&ps->filler[1][i], cfg, text, err, errlen);
    }
    for (int k = 0; k < ps->n_keys && rc == 0; k++) {
        const long long key = (long long)ps->keys[k];
        if (ps->n_keys == 1 && cfg->compact)
            snprintf(text, sizeof text, "\nThe pass key is:%lld.", key);
        else if (ps->n_keys == 1)
            snprintf(text, sizeof text, "\nThe pass key is %lld. Remember it. %lld is the pass key.",
                     key, key);
        else
            snprintf(text, sizeof text,
                     "\nThe pass key for %s is %lld. Remember it. %lld is the pass key for %s.",
                     KEY_NAMES[k], key, key, KEY_NAMES[k]);
        rc |= encode(&ps->needle[k], cfg, text, err, errlen);
    }
    if (rc == 0) {
        if (ps->n_keys == 1 && cfg->compact)
            snprintf(text, sizeof text, "\nThe pass key is:");
        else if (ps->n_keys == 1)
            snprintf(text, sizeof text, "\nWhat is the pass key? The pass key is");
        else
            snprintf(text, sizeof text, "\nWhat is the pass key for %s? The pass key for %s is",
                     KEY_NAMES[ps->asked], KEY_NAMES[ps->asked]);
        rc |= encode(&ps->question, cfg, text, err, errlen);
    }
    if (rc == 0) {
        snprintf(text, sizeof text, cfg->compact ? "%lld" : " %lld", (long long)ps->keys[ps->asked]);
        rc |= encode(&ps->answer, cfg, text, err, errlen);
    }
    if (rc == 0 && (ps->answer.n < 1 || ps->answer.n > PASSKEY_MAX_ANSWER))
        rc = errmsg(err, errlen, "passkey: the answer \"%s\" encodes to %lld tokens (1..%d allowed)",
                  text, (long long)ps->answer.n, PASSKEY_MAX_ANSWER);
    if (rc != 0) pieces_free(ps);
    return rc;
}

// Tokens of a sample without filler.
static int64_t fixed_len(const pieces *ps, const passkey_config *cfg) {
    int64_t n = (cfg->bos_id >= 0) + ps->preamble.n + ps->question.n + ps->answer.n;
    for (int k = 0; k < ps->n_keys; k++) n += ps->needle[k].n;
    return n;
}

int64_t passkey_min_len(const passkey_config *cfg, uint64_t seed, char *err, size_t errlen) {
    pieces ps;
    if (pieces_build(&ps, cfg, seed, err, errlen) != 0) return -1;
    const int64_t n = fixed_len(&ps, cfg);
    pieces_free(&ps);
    return n;
}

// ---------------------------------------------------------------------------
// Assembly

static int64_t emit(int32_t *out, int64_t at, const int32_t *ids, int64_t n) {
    if (n > 0) memcpy(out + at, ids, (size_t)n * sizeof *ids);
    return at + n;
}

int passkey_make(int32_t *tokens, int32_t *targets, passkey_info *info,
                 const passkey_config *cfg, uint64_t seed, int64_t T, char *err,
                 size_t errlen) {
    pieces ps;
    if (pieces_build(&ps, cfg, seed, err, errlen) != 0) return -1;
    const int64_t fixed = fixed_len(&ps, cfg);
    if (T < fixed) {
        pieces_free(&ps);
        return errmsg(err, errlen, "passkey: length %lld is too short: the prompt and answer "
                    "need %lld tokens without any filler", (long long)T, (long long)fixed);
    }
    const int64_t H = T - fixed;  // filler tokens

    // Needles in the order of their requested depth (insertion sort, stable).
    int order[PASSKEY_MAX_KEYS];
    for (int k = 0; k < ps.n_keys; k++) {
        int j = k;
        while (j > 0 && ps.spot[order[j - 1]] > ps.spot[k]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }

    int64_t at = 0, filled = 0, needle_start = 0, filler_before = 0;
    int sentence = 0, line_start = 1;
    if (cfg->bos_id >= 0) tokens[at++] = cfg->bos_id;
    at = emit(tokens, at, ps.preamble.ids, ps.preamble.n);
    for (int o = 0; o < ps.n_keys; o++) {
        const int k = order[o];
        const double target = ps.spot[k] * (double)H;
        // Whole sentences up to the boundary nearest the target.
        for (;;) {
            const piece *p = &ps.filler[line_start ? 0 : 1][sentence];
            if (filled + p->n > H || 2.0 * (double)filled + (double)p->n > 2.0 * target) break;
            at = emit(tokens, at, p->ids, p->n);
            filled += p->n;
            sentence = (sentence + 1) % N_FILLER;
            line_start = 0;
        }
        if (k == ps.asked) {
            needle_start = at;
            filler_before = filled;
        }
        at = emit(tokens, at, ps.needle[k].ids, ps.needle[k].n);
        line_start = 1;
    }
    // The rest of the filler, the last sentence cut to length.
    while (filled < H) {
        const piece *p = &ps.filler[line_start ? 0 : 1][sentence];
        const int64_t take = p->n < H - filled ? p->n : H - filled;
        at = emit(tokens, at, p->ids, take);
        filled += take;
        sentence = (sentence + 1) % N_FILLER;
        line_start = 0;
    }
    at = emit(tokens, at, ps.question.ids, ps.question.n);
    const int64_t answer_start = at;
    at = emit(tokens, at, ps.answer.ids, ps.answer.n);
    CHECK(at == T);

    for (int64_t i = 0; i < T; i++) targets[i] = -1;
    if (cfg->answer_only) {
        for (int64_t j = 0; j < ps.answer.n; j++)
            targets[answer_start - 1 + j] = tokens[answer_start + j];
    } else {
        for (int64_t i = 0; i + 1 < T; i++) targets[i] = tokens[i + 1];
    }

    if (info) {
        memset(info, 0, sizeof *info);
        info->key = ps.keys[ps.asked];
        memcpy(info->keys, ps.keys, sizeof ps.keys);
        info->asked = ps.asked;
        info->needle_start = needle_start;
        info->depth = H > 0 ? (double)filler_before / (double)H : 0.0;
        info->filler_tokens = H;
        info->answer_start = answer_start;
        info->answer_len = ps.answer.n;
        memcpy(info->answer, ps.answer.ids, (size_t)ps.answer.n * sizeof *ps.answer.ids);
    }
    pieces_free(&ps);
    return 0;
}

// ---------------------------------------------------------------------------
// Scoring

// The first run of digits in text: [*start, *start + *n).
static void first_digits(const char *text, size_t len, size_t *start, size_t *n) {
    size_t i = 0;
    while (i < len && !(text[i] >= '0' && text[i] <= '9')) i++;
    size_t j = i;
    while (j < len && text[j] >= '0' && text[j] <= '9') j++;
    *start = i;
    *n = j - i;
}

int passkey_check_text(const char *text, size_t len, int64_t key) {
    char want[32];
    const int wn = snprintf(want, sizeof want, "%lld", (long long)key);
    size_t start, n;
    first_digits(text, len, &start, &n);
    return n == (size_t)wn && memcmp(text + start, want, n) == 0;
}

double passkey_digit_score(const char *text, size_t len, int64_t key) {
    char want[32];
    const int wn = snprintf(want, sizeof want, "%lld", (long long)key);
    size_t start, n;
    first_digits(text, len, &start, &n);
    int right = 0;
    for (int i = 0; i < wn && (size_t)i < n; i++) right += text[start + (size_t)i] == want[i];
    return (double)right / (double)wn;
}

int passkey_check_tokens(const int32_t *gen, int64_t n_gen, const passkey_info *info) {
    if (n_gen < info->answer_len) return 0;
    for (int64_t i = 0; i < info->answer_len; i++)
        if (gen[i] != info->answer[i]) return 0;
    return 1;
}

int passkey_make_copy(int32_t *tokens, int32_t *targets, const passkey_config *cfg,
                      uint64_t seed, int64_t T, char *err, size_t errlen) {
    const int64_t n = T / 2;
    rng_state r;
    rng_seed_stream(&r, seed, 0xC0B1);
    // About 4 characters per token is plenty for any byte-level tokenizer.
    const size_t len = (size_t)(8 * n + 64);
    char *text = xmalloc(len + 1);
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
    size_t at = 0;
    while (at < len) {
        const bool number = rng_below(&r, 4) == 0;
        const int word = 2 + (int)rng_below(&r, 7);
        for (int i = 0; i < word && at < len; i++)
            text[at++] = number ? (char)('0' + rng_below(&r, 10)) : letters[rng_below(&r, 26)];
        if (at < len) text[at++] = ' ';
    }
    text[len] = '\0';
    const int64_t got = cfg->encode(cfg->encode_ctx, text, len, tokens, T);
    free(text);
    if (got < n)
        return errmsg(err, errlen, "passkey: the tokenizer encoded a copy-task string into %lld "
                    "tokens, fewer than the %lld needed", (long long)got, (long long)n);
    memcpy(tokens + n, tokens, sizeof(int32_t) * (size_t)n);
    if (2 * n < T) tokens[T - 1] = 0;
    for (int64_t i = 0; i < T; i++) targets[i] = i + 1 < 2 * n ? tokens[i + 1] : -1;
    return 0;
}
