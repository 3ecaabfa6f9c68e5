// task: RULER-style synthetic tasks. See task.h.
#include "task.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "rng.h"

const task_def TASK_DEFS[TASK_COUNT] = {
    [TASK_NIAH_SINGLE] = {"niah_single", "niah_single_1", 0, 1,
                          "a word key's 7-digit number in repeated noise"},
    [TASK_NIAH_SINGLE_TEXT] = {"niah_single_text", "niah_single_2", 1, 1,
                               "a word key's 7-digit number in real text (--haystack)"},
    [TASK_NIAH_SINGLE_UUID] = {"niah_single_uuid", "niah_single_3", 0, 1,
                               "a word key's UUID in noise"},
    [TASK_NIAH_MULTIKEY] = {"niah_multikey", "niah_multikey_1", 0, 1,
                            "4 keys with numbers, one asked"},
    [TASK_NIAH_MULTIVALUE] = {"niah_multivalue", "niah_multivalue", 0, 1,
                              "one key with 4 numbers, all asked"},
    [TASK_NIAH_MULTIQUERY] = {"niah_multiquery", "niah_multiquery", 0, 1,
                              "4 keys with numbers, all asked"},
    [TASK_VT] = {"vt", "vt", 0, 1, "variable tracking: the 5 names of a 4-hop chain"},
    [TASK_CWE] = {"cwe", "cwe", 0, 0, "the 3 most common words of a list"},
    [TASK_FWE] = {"fwe", "fwe", 0, 0, "the 3 most frequent coded words (Zipf-like counts)"},
};

int task_find(const char *name) {
    for (int t = 0; t < TASK_COUNT; t++)
        if (!strcmp(name, TASK_DEFS[t].name)) return t;
    return -1;
}

const char *task_names(void) {
    static char names[512];
    if (!names[0])
        for (int t = 0; t < TASK_COUNT; t++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", t ? ", " : "",
                     TASK_DEFS[t].name);
    return names;
}

enum { N_NOISE = 5, MAX_NEEDLES = 8, N_CWE = 3, N_FWE = 3, VT_HOPS = 4, NIAH_K = 4 };
static const char *const NOISE[N_NOISE] = {
    " The grass is green.", " The sky is blue.", " The sun is yellow.", " Here we go.",
    " There and back again.",
};
static const uint64_t STREAM_TASK = 0x7461736bULL;  // "task"

// ---------------------------------------------------------------------------
// Pieces: text fragments encoded on their own; a sample concatenates them.

typedef struct {
    int32_t *ids;
    int64_t n;
} piece;

static int encode(piece *p, const task_env *env, const char *text, char *err, size_t errlen) {
    const size_t len = strlen(text);
    int64_t cap = (int64_t)len + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        p->ids = xrealloc(p->ids, (size_t)cap * sizeof *p->ids);
        const int64_t n = env->encode(env->encode_ctx, text, len, p->ids, cap);
        if (n < 0) return errmsg(err, errlen, "task: the tokenizer failed to encode \"%s\"", text);
        p->n = n;
        if (n <= cap) return 0;
        cap = n;
    }
    return errmsg(err, errlen, "task: the tokenizer gave inconsistent lengths for \"%s\"", text);
}

// ---------------------------------------------------------------------------
// Words: pseudo-words of 2 or 3 consonant-vowel syllables, all distinct for
// distinct indices below N_WORDS (a bijective affine map scatters them).

static const char CONS[] = "bdfgklmnprstvz", VOWS[] = "aeiou";
enum { N_SYL = 14 * 5, N_WORDS = N_SYL * N_SYL + N_SYL * N_SYL * N_SYL };  // 347900 = 2^2 5^2 7^2 71

static void word_text(char *out, uint64_t salt, int64_t i) {
    // 1000003 is prime and not a factor of N_WORDS: i -> a i + b is a bijection.
    int64_t w = (int64_t)(((uint64_t)i * 1000003ull + salt) % (uint64_t)N_WORDS);
    int syl = 2;
    if (w >= N_SYL * N_SYL) w -= N_SYL * N_SYL, syl = 3;
    int at = 0;
    for (int s = 0; s < syl; s++, w /= N_SYL) {
        out[at++] = CONS[(w % N_SYL) / 5];
        out[at++] = VOWS[(w % N_SYL) % 5];
    }
    out[at] = '\0';
}

// ---------------------------------------------------------------------------
// A sample before assembly: the needles (or the list) and the fixed pieces.

typedef struct {
    int task;
    int n_needles, asked;         // the needle placed at the requested depth
    double spot[MAX_NEEDLES];     // requested depth of every needle
    piece needle[MAX_NEEDLES];
    piece header, question;
    piece answer[8];              // the answer's items, each " item", in answer order
    char answer_item[8][64];
    int n_answer;
    piece noise[N_NOISE], pad;
    // cwe, fwe: word pieces by word index (grown on demand)
    uint64_t salt;
    piece *words;
    int64_t n_words;
    rng_state r;
} sample;

static void sample_free(sample *s) {
    for (int k = 0; k < MAX_NEEDLES; k++) free(s->needle[k].ids);
    free(s->header.ids);
    free(s->question.ids);
    for (int k = 0; k < 8; k++) free(s->answer[k].ids);
    for (int k = 0; k < N_NOISE; k++) free(s->noise[k].ids);
    free(s->pad.ids);
    for (int64_t w = 0; w < s->n_words; w++) free(s->words[w].ids);
    free(s->words);
}

static int64_t answer_len(const sample *s) {
    int64_t n = 0;
    for (int k = 0; k < s->n_answer; k++) n += s->answer[k].n;
    return n;
}

static int set_answer(sample *s, int k, const char *item, const task_env *env, char *err, size_t errlen) {
    snprintf(s->answer_item[k], sizeof s->answer_item[k], "%s", item);
    char text[72];
    snprintf(text, sizeof text, " %s", item);
    return encode(&s->answer[k], env, text, err, errlen);
}

// Word w's piece " word" (encoded once).
static const piece *word_piece(sample *s, int64_t w, const task_env *env, char *err, size_t errlen) {
    if (w >= N_WORDS) {
        errmsg(err, errlen, "task %s: more than %d distinct words needed", TASK_DEFS[s->task].name, N_WORDS);
        return NULL;
    }
    if (w >= s->n_words) {
        int64_t n = s->n_words ? s->n_words : 64;
        while (n <= w) n *= 2;
        s->words = xrealloc(s->words, (size_t)n * sizeof *s->words);
        memset(s->words + s->n_words, 0, (size_t)(n - s->n_words) * sizeof *s->words);
        s->n_words = n;
    }
    if (!s->words[w].ids) {
        char text[16];
        text[0] = ' ';
        word_text(text + 1, s->salt, w);
        if (encode(&s->words[w], env, text, err, errlen) != 0) return NULL;
    }
    return &s->words[w];
}

static int64_t draw_number(rng_state *r, int digits) {
    int64_t lo = 1;
    for (int i = 1; i < digits; i++) lo *= 10;
    return lo + (int64_t)rng_below(r, (uint64_t)(9 * lo));
}

// Draws everything but the list from the seed and encodes the pieces.
static int sample_build(sample *s, int task, const task_env *env, double depth, uint64_t seed,
                        char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->task = task;
    if (task < 0 || task >= TASK_COUNT) return errmsg(err, errlen, "task: unknown task %d", task);
    const char *name = TASK_DEFS[task].name;
    if (!env->encode) return errmsg(err, errlen, "task %s: no tokenizer (encode is NULL)", name);
    if (depth > 1.0) return errmsg(err, errlen, "task %s: depth = %g, must be in [0, 1] (< 0: random)", name, depth);
    rng_seed_stream(&s->r, seed, STREAM_TASK + (uint64_t)task);
    rng_state *r = &s->r;
    s->salt = rng_next(r);
    char text[512];
    int rc = 0;
    for (int k = 0; k < N_NOISE && rc == 0; k++) rc = encode(&s->noise[k], env, NOISE[k], err, errlen);
    // The one-token pad that makes word lists exact.
    static const char *const PADS[] = {"\n", " ", ".", ","};
    for (size_t k = 0; k < sizeof PADS / sizeof *PADS && rc == 0; k++) {
        rc = encode(&s->pad, env, PADS[k], err, errlen);
        if (s->pad.n == 1) break;
    }
    if (rc == 0 && s->pad.n != 1)
        rc = errmsg(err, errlen, "task %s: the tokenizer encodes none of \"\\n\", \" \", \".\", \",\" as one token", name);
    if (rc) return rc;

    // Keys: distinct pseudo-words (indices 0.. of this sample's word map).
    char keys[NIAH_K][16];
    for (int k = 0; k < NIAH_K; k++) word_text(keys[k], s->salt, k);
    int64_t values[MAX_NEEDLES];
    for (int k = 0; k < MAX_NEEDLES; k++) {
        int distinct;
        do {
            values[k] = draw_number(r, task == TASK_VT ? 5 : 7);
            distinct = 1;
            for (int j = 0; j < k; j++) distinct &= values[j] != values[k];
        } while (!distinct);
    }
    char item[64];
    switch (task) {
    case TASK_NIAH_SINGLE:
    case TASK_NIAH_SINGLE_TEXT:
    case TASK_NIAH_SINGLE_UUID:
    case TASK_NIAH_MULTIKEY: {
        const int uuid = task == TASK_NIAH_SINGLE_UUID;
        s->n_needles = task == TASK_NIAH_MULTIKEY ? NIAH_K : 1;
        s->asked = (int)rng_below(r, (uint64_t)s->n_needles);
        for (int k = 0; k < s->n_needles && rc == 0; k++) {
            if (uuid) {
                static const char HEX[] = "0123456789abcdef";
                int at = 0;
                for (int i = 0; i < 32; i++) {
                    if (i == 8 || i == 12 || i == 16 || i == 20) item[at++] = '-';
                    item[at++] = HEX[rng_below(r, 16)];
                }
                item[at] = '\0';
            } else {
                snprintf(item, sizeof item, "%lld", (long long)values[k]);
            }
            snprintf(text, sizeof text, "\nThe %s for %s is: %s.", uuid ? "uuid" : "number", keys[k], item);
            rc = encode(&s->needle[k], env, text, err, errlen);
            if (rc == 0 && k == s->asked) rc = set_answer(s, 0, item, env, err, errlen);
        }
        s->n_answer = 1;
        snprintf(text, sizeof text, "\nThe %s for %s is:", uuid ? "uuid" : "number", keys[s->asked]);
        break;
    }
    case TASK_NIAH_MULTIVALUE:
        s->n_needles = NIAH_K;
        for (int k = 0; k < NIAH_K && rc == 0; k++) {
            snprintf(text, sizeof text, "\nThe number for %s is: %lld.", keys[0], (long long)values[k]);
            rc = encode(&s->needle[k], env, text, err, errlen);
        }
        s->n_answer = NIAH_K;  // answer pieces once the order is known (below)
        snprintf(text, sizeof text, "\nThe numbers for %s are:", keys[0]);
        break;
    case TASK_NIAH_MULTIQUERY: {
        s->n_needles = NIAH_K;
        for (int k = 0; k < NIAH_K && rc == 0; k++) {
            snprintf(text, sizeof text, "\nThe number for %s is: %lld.", keys[k], (long long)values[k]);
            rc = encode(&s->needle[k], env, text, err, errlen);
        }
        int64_t order[NIAH_K] = {0, 1, 2, 3};
        rng_shuffle_i64(order, NIAH_K, r);
        s->asked = (int)order[0];
        s->n_answer = NIAH_K;
        int at = snprintf(text, sizeof text, "\nThe numbers for");
        for (int q = 0; q < NIAH_K && rc == 0; q++) {
            at += snprintf(text + at, sizeof text - (size_t)at, "%s %s", q ? "," : "", keys[order[q]]);
            snprintf(item, sizeof item, "%lld", (long long)values[order[q]]);
            rc = set_answer(s, q, item, env, err, errlen);
        }
        snprintf(text + at, sizeof text - (size_t)at, " are:");
        break;
    }
    case TASK_VT: {
        char names[VT_HOPS + 1][8];
        for (int k = 0; k <= VT_HOPS; k++) {
            int distinct;
            do {
                for (int i = 0; i < 5; i++) names[k][i] = (char)('A' + rng_below(r, 26));
                names[k][5] = '\0';
                distinct = 1;
                for (int j = 0; j < k; j++) distinct &= strcmp(names[j], names[k]) != 0;
            } while (!distinct);
        }
        s->n_needles = VT_HOPS + 1;
        s->n_answer = VT_HOPS + 1;
        for (int k = 0; k <= VT_HOPS && rc == 0; k++) {
            if (k == 0) snprintf(text, sizeof text, "\nVAR %s = %lld.", names[0], (long long)values[0]);
            else snprintf(text, sizeof text, "\nVAR %s = %s.", names[k], names[k - 1]);
            rc = encode(&s->needle[k], env, text, err, errlen);
            if (rc == 0) rc = set_answer(s, k, names[k], env, err, errlen);
        }
        snprintf(text, sizeof text, "\nVariables equal to %lld:", (long long)values[0]);
        break;
    }
    case TASK_CWE:
    case TASK_FWE:
        // Words 0..2 are the answer: cwe's in order of first appearance
        // (set once the list is shuffled), fwe's most frequent first.
        s->n_answer = task == TASK_CWE ? N_CWE : N_FWE;
        for (int k = 0; k < s->n_answer && rc == 0; k++) {
            word_text(item, s->salt, k);
            rc = set_answer(s, k, item, env, err, errlen);
        }
        rc = rc ? rc : encode(&s->header, env, task == TASK_CWE ? "\nWords:" : "\nCoded words:", err, errlen);
        snprintf(text, sizeof text, task == TASK_CWE ? "\nThe %d most common words:" : "\nThe %d most frequent words:",
                 s->n_answer);
        break;
    }
    if (rc == 0) rc = encode(&s->question, env, text, err, errlen);
    if (rc) return rc;

    // Depths: the asked needle at depth, the others drawn; vt's chain in
    // order from depth to the end.
    for (int k = 0; k < s->n_needles; k++) s->spot[k] = rng_uniform(r);
    const double d = depth >= 0 ? depth : rng_uniform(r);
    if (task == TASK_VT) {
        for (int k = 1; k <= VT_HOPS; k++) s->spot[k] = d + (1 - d) * s->spot[k];
        // sort spot[1..] ascending so the chain reads in order
        for (int k = 2; k <= VT_HOPS; k++)
            for (int j = k; j > 1 && s->spot[j - 1] > s->spot[j]; j--) {
                double t = s->spot[j]; s->spot[j] = s->spot[j - 1]; s->spot[j - 1] = t;
            }
    }
    if (s->n_needles > 0) s->spot[s->asked] = d;
    if (task == TASK_NIAH_MULTIVALUE) {
        // the values in the order they will appear (stable by spot)
        int idx[NIAH_K] = {0, 1, 2, 3};
        for (int k = 1; k < NIAH_K; k++)
            for (int j = k; j > 0 && s->spot[idx[j - 1]] > s->spot[idx[j]]; j--) {
                int t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t;
            }
        for (int k = 0; k < NIAH_K && rc == 0; k++) {
            snprintf(item, sizeof item, "%lld", (long long)values[idx[k]]);
            rc = set_answer(s, k, item, env, err, errlen);
        }
    }
    return rc;
}

static int64_t fixed_len(const sample *s, const task_env *env) {
    int64_t n = (env->bos_id >= 0) + s->header.n + s->question.n + answer_len(s);
    for (int k = 0; k < s->n_needles; k++) n += s->needle[k].n;
    return n;
}

// ---------------------------------------------------------------------------
// Word lists (cwe, fwe): item word indices filling at most H tokens.

typedef struct {
    int64_t *w;
    int64_t n, cap;
} items;

static void items_push(items *it, int64_t w, int64_t times) {
    for (int64_t k = 0; k < times; k++) {
        if (it->n == it->cap) {
            it->cap = it->cap ? 2 * it->cap : 256;
            it->w = xrealloc(it->w, (size_t)it->cap * sizeof *it->w);
        }
        it->w[it->n++] = w;
    }
}

// fwe's counts: word r (1-based) appears floor(C / r^2) times; C >= 18
// keeps the top three strictly ordered and above every other word.
enum { FWE_MIN_C = 18 };
static int64_t fwe_tokens(sample *s, int64_t C, const task_env *env, char *err, size_t errlen) {
    int64_t n = 0;
    for (int64_t r = 1; r * r <= C; r++) {
        const piece *p = word_piece(s, r - 1, env, err, errlen);
        if (!p) return -1;
        n += (C / (r * r)) * p->n;
    }
    return n;
}

// cwe's counts: N_CWE common words fc times each, the others fu times; fc, fu
// from the items that fit (RULER: 30 and 3 at long lengths).
static void cwe_counts(int64_t n_est, int64_t *fc, int64_t *fu) {
    if (n_est >= 400) *fc = 30, *fu = 3;
    else *fu = 1, *fc = n_est / (4 * N_CWE) < 2 ? 2 : n_est / (4 * N_CWE) > 10 ? 10 : n_est / (4 * N_CWE);
}

// The list of a sample with H tokens for it (pad excluded: returns the list's tokens).
static int64_t list_build(items *it, sample *s, int64_t H, const task_env *env, char *err, size_t errlen) {
    memset(it, 0, sizeof *it);
    int64_t used = 0, next = s->n_answer;
    if (s->task == TASK_FWE) {
        int64_t lo = FWE_MIN_C, hi = FWE_MIN_C;
        int64_t t = fwe_tokens(s, lo, env, err, errlen);
        if (t < 0) return -1;
        if (t > H) return errmsg(err, errlen, "task fwe: the list needs %lld tokens, %lld left", (long long)t, (long long)H);
        while ((t = fwe_tokens(s, hi * 2, env, err, errlen)) >= 0 && t <= H) hi *= 2;
        if (t < 0) return -1;
        hi *= 2;  // tokens(lo) <= H < tokens(hi)
        while (hi - lo > 1) {
            const int64_t mid = lo + (hi - lo) / 2;
            if ((t = fwe_tokens(s, mid, env, err, errlen)) < 0) return -1;
            if (t <= H) lo = mid;
            else hi = mid;
        }
        int64_t r;
        for (r = 1; r * r <= lo; r++) items_push(it, r - 1, lo / (r * r));
        used = fwe_tokens(s, lo, env, err, errlen);
        next = r - 1;
    } else {
        int64_t common = 0;
        for (int k = 0; k < N_CWE; k++) {
            const piece *p = word_piece(s, k, env, err, errlen);
            if (!p) return -1;
            common += p->n;
        }
        int64_t fc, fu;
        cwe_counts(H * N_CWE / common, &fc, &fu);
        if (fc * common > H) return errmsg(err, errlen, "task cwe: the list needs %lld tokens, %lld left", (long long)(fc * common), (long long)H);
        for (int k = 0; k < N_CWE; k++) items_push(it, k, fc);
        used = fc * common;
        for (;;) {  // uncommon words fu times while they fit
            const piece *p = word_piece(s, next, env, err, errlen);
            if (!p) return -1;
            if (used + fu * p->n > H) break;
            items_push(it, next++, fu);
            used += fu * p->n;
        }
    }
    for (;;) {  // singletons into what is left
        const piece *p = word_piece(s, next, env, err, errlen);
        if (!p) return -1;
        if (used + p->n > H) break;
        items_push(it, next++, 1);
        used += p->n;
    }
    rng_shuffle_i64(it->w, it->n, &s->r);
    if (s->task == TASK_CWE) {  // the answer in order of first appearance
        int64_t order[N_CWE], n = 0;
        for (int64_t i = 0; i < it->n && n < N_CWE; i++) {
            int seen = it->w[i] >= N_CWE;
            for (int64_t j = 0; j < n; j++) seen |= order[j] == it->w[i];
            if (!seen) order[n++] = it->w[i];
        }
        char item[16];
        for (int k = 0; k < N_CWE; k++) {
            word_text(item, s->salt, order[k]);
            if (set_answer(s, k, item, env, err, errlen) != 0) return -1;
        }
    }
    return used;
}

// Tokens the smallest list needs.
static int64_t list_min(sample *s, const task_env *env, char *err, size_t errlen) {
    if (s->task == TASK_FWE) return fwe_tokens(s, FWE_MIN_C, env, err, errlen);
    int64_t common = 0;
    for (int k = 0; k < N_CWE; k++) {
        const piece *p = word_piece(s, k, env, err, errlen);
        if (!p) return -1;
        common += p->n;
    }
    return 2 * common;
}

int64_t task_min_len(int task, const task_env *env, uint64_t seed, char *err, size_t errlen) {
    sample s;
    if (sample_build(&s, task, env, -1, seed, err, errlen) != 0) {
        sample_free(&s);
        return -1;
    }
    int64_t n = fixed_len(&s, env);
    if (task == TASK_CWE || task == TASK_FWE) {
        const int64_t l = list_min(&s, env, err, errlen);
        n = l < 0 ? -1 : n + l;
    }
    sample_free(&s);
    return n;
}

// ---------------------------------------------------------------------------
// Assembly

static int64_t emit(int32_t *out, int64_t at, const int32_t *ids, int64_t n) {
    if (n > 0) memcpy(out + at, ids, (size_t)n * sizeof *ids);
    return at + n;
}

int task_make(int32_t *tokens, int32_t *targets, task_info *info, int task, const task_env *env,
              double depth, uint64_t seed, int64_t T, char *err, size_t errlen) {
    sample s;
    int rc = -1;
    items it = {0};
    if (sample_build(&s, task, env, depth, seed, err, errlen) != 0) goto done;
    const char *name = TASK_DEFS[task].name;
    const int list = task == TASK_CWE || task == TASK_FWE;
    int64_t need = fixed_len(&s, env);
    if (list) {
        const int64_t l = list_min(&s, env, err, errlen);
        if (l < 0) goto done;
        need += l;
    }
    if (T < need) {
        errmsg(err, errlen, "task %s: length %lld is too short: the task needs at least %lld tokens",
               name, (long long)T, (long long)need);
        goto done;
    }
    const int64_t H = T - fixed_len(&s, env);  // haystack or list (+ pad) tokens
    int64_t hay_start = 0;
    if (TASK_DEFS[task].needs_text) {
        if (!env->haystack || env->haystack_len < H) {
            errmsg(err, errlen, "task %s: the haystack has %lld tokens, a sample of length %lld needs %lld",
                   name, (long long)(env->haystack ? env->haystack_len : 0), (long long)T, (long long)H);
            goto done;
        }
        hay_start = (int64_t)rng_below(&s.r, (uint64_t)(env->haystack_len - H + 1));
    }
    int64_t at = 0, needle_start = -1, before = 0;
    if (env->bos_id >= 0) tokens[at++] = env->bos_id;
    if (list) {
        at = emit(tokens, at, s.header.ids, s.header.n);
        const int64_t used = list_build(&it, &s, H, env, err, errlen);
        if (used < 0) goto done;
        for (int64_t i = 0; i < it.n; i++) at = emit(tokens, at, s.words[it.w[i]].ids, s.words[it.w[i]].n);
        for (int64_t i = used; i < H; i++) tokens[at++] = s.pad.ids[0];
    } else {
        int order[MAX_NEEDLES];  // needles by depth (stable)
        for (int k = 0; k < s.n_needles; k++) {
            int j = k;
            while (j > 0 && s.spot[order[j - 1]] > s.spot[k]) order[j] = order[j - 1], j--;
            order[j] = k;
        }
        int64_t filled = 0;
        int sentence = 0;
        for (int o = 0; o <= s.n_needles; o++) {
            const int k = o < s.n_needles ? order[o] : -1;
            const double target = k >= 0 ? s.spot[k] * (double)H : (double)H;
            if (TASK_DEFS[task].needs_text) {
                const int64_t upto = k >= 0 ? llround(target) : H;
                at = emit(tokens, at, env->haystack + hay_start + filled, upto - filled);
                filled = upto;
            } else {
                // whole sentences up to the boundary nearest the target; the end cut to length
                for (;;) {
                    const piece *p = &s.noise[sentence];
                    const int64_t take = k < 0 && p->n > H - filled ? H - filled : p->n;
                    if (take == 0 || filled + take > H || (k >= 0 && 2.0 * (double)filled + (double)p->n > 2.0 * target))
                        break;
                    at = emit(tokens, at, p->ids, take);
                    filled += take;
                    sentence = (sentence + 1) % N_NOISE;
                }
            }
            if (k < 0) break;
            if (k == s.asked) needle_start = at, before = filled;
            at = emit(tokens, at, s.needle[k].ids, s.needle[k].n);
        }
    }
    at = emit(tokens, at, s.question.ids, s.question.n);
    const int64_t answer_start = at;
    for (int k = 0; k < s.n_answer; k++) at = emit(tokens, at, s.answer[k].ids, s.answer[k].n);
    CHECK(at == T);
    for (int64_t i = 0; i < T; i++)
        targets[i] = i + 1 < T && (!env->answer_only || i + 1 >= answer_start) ? tokens[i + 1] : -1;
    if (info) {
        memset(info, 0, sizeof *info);
        info->needle_start = list ? -1 : needle_start;
        info->depth = list || H == 0 ? 0.0 : (double)before / (double)H;
        info->hay_tokens = H;
        info->answer_start = answer_start;
        info->answer_len = T - answer_start;
        size_t n = 0;
        for (int k = 0; k < s.n_answer; k++)
            n += (size_t)snprintf(info->answer_text + n, sizeof info->answer_text - n, "%s%s", k ? " " : "",
                                  s.answer_item[k]);
    }
    rc = 0;
done:
    free(it.w);
    sample_free(&s);
    return rc;
}
