// Tests for data/task (RULER-style tasks) with the byte tokenizer and a BPE
// tokenizer (tests/data/bpe_tiny): every task at several lengths and depths
// has exactly T tokens, and an independent checker written here parses the
// decoded prompt (needle lines, VAR lines, word lists) and recovers the
// answer, which must equal the sample's answer tokens. Also: determinism per
// seed, needle depth, answer-only targets, the error lines.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "die.h"
#include "loader.h"
#include "shard.h"
#include "task.h"
#include "tok.h"

typedef struct {
    tok_tokenizer *tok;
    int32_t *hay;  // real-text haystack in this tokenizer
    int64_t n_hay;
} fixture;

static const char PARAGRAPH[] =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness. ";

static void fixture_init(fixture *f, int bpe) {
    char err[512];
    f->tok = bpe ? tok_load(STRETCH_TEST_DATA_DIR "/bpe_tiny", err, sizeof err) : tok_byte_new();
    if (!f->tok) fail_msg("%s", err);
    size_t n = 0, cap = 200 * sizeof PARAGRAPH;
    char *text = xmalloc(cap);
    for (int i = 0; i < 180; i++) n += (size_t)snprintf(text + n, cap - n, "%d. %s", i, PARAGRAPH);
    f->n_hay = tok_encode(&f->hay, f->tok, text, (int64_t)n);
    free(text);
}

static void fixture_free(fixture *f) {
    tok_free(f->tok);
    free(f->hay);
}

static task_env env_of(const fixture *f) {
    return (task_env){.encode = tok_encode_into, .encode_ctx = f->tok, .bos_id = tok_bos_id(f->tok),
                      .answer_only = 1, .haystack = f->hay, .haystack_len = f->n_hay};
}

static char *decode(const fixture *f, const int32_t *ids, int64_t n) {
    char *text;
    tok_decode(&text, f->tok, ids, n, true);
    return text;
}

// ---------------------------------------------------------------------------
// The independent checker: the answer recovered from the prompt text.

// The value of the needle line "The <kind> for <key> is: <value>." that
// comes after `from`; NULL-free copy into out. Returns the line's position or NULL.
static const char *find_needle(char *out, size_t cap, const char *from, const char *kind, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\nThe %s for %s is: ", kind, key);
    const char *p = strstr(from, pat);
    if (!p) return NULL;
    const char *v = p + strlen(pat);
    size_t n = strcspn(v, ".");
    assert_true(n < cap);
    memcpy(out, v, n);
    out[n] = '\0';
    return p;
}

static int count_str(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

// Word counts of a list: words[i] with count[i], in order of first appearance.
typedef struct {
    char w[4096][16];
    int count[4096], first[4096], n;
} tally;

static void tally_list(tally *t, const char *list) {
    t->n = 0;
    int pos = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\n') p++;
        size_t len = strcspn(p, " \n");
        if (len == 0) break;
        assert_true(len < 16);
        int i;
        for (i = 0; i < t->n; i++)
            if (strlen(t->w[i]) == len && !memcmp(t->w[i], p, len)) break;
        if (i == t->n) {
            assert_true(t->n < 4096);
            memcpy(t->w[i], p, len);
            t->w[i][len] = '\0';
            t->count[i] = 0;
            t->first[i] = pos;
            t->n++;
        }
        t->count[i]++;
        pos++;
        p += len;
    }
}

// The answer the prompt asks for, as "a b c".
static void expected_answer(char *out, size_t cap, int task, const char *prompt) {
    char key[64], val[64];
    out[0] = '\0';
    switch (task) {
    case TASK_NIAH_SINGLE:
    case TASK_NIAH_SINGLE_TEXT:
    case TASK_NIAH_SINGLE_UUID:
    case TASK_NIAH_MULTIKEY: {
        const char *kind = task == TASK_NIAH_SINGLE_UUID ? "uuid" : "number";
        char q[64];
        snprintf(q, sizeof q, "\nThe %s for ", kind);
        const char *last = NULL;
        for (const char *p = strstr(prompt, q); p; p = strstr(p + 1, q)) last = p;
        assert_non_null(last);
        assert_int_equal(sscanf(last + strlen(q), "%63[a-z] is:", key), 1);
        assert_string_equal(last + strlen(q) + strlen(key), " is:");  // the question ends the prompt
        char line[128];
        snprintf(line, sizeof line, "\nThe %s for %s is: ", kind, key);
        assert_int_equal(count_str(prompt, line), 1);  // one needle for the asked key
        assert_non_null(find_needle(val, sizeof val, prompt, kind, key));
        snprintf(out, cap, "%s", val);
        if (task == TASK_NIAH_MULTIKEY) assert_int_equal(count_str(prompt, "\nThe number for "), 5);  // 4 needles + question
        break;
    }
    case TASK_NIAH_MULTIVALUE: {
        const char *q = strstr(prompt, "\nThe numbers for ");
        assert_non_null(q);
        assert_int_equal(sscanf(q, "\nThe numbers for %63[a-z] are:", key), 1);
        int n = 0;
        for (const char *p = prompt; (p = find_needle(val, sizeof val, p, "number", key)); p++, n++)
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", n ? " " : "", val);
        assert_int_equal(n, 4);
        break;
    }
    case TASK_NIAH_MULTIQUERY: {
        const char *q = strstr(prompt, "\nThe numbers for ");
        assert_non_null(q);
        q += strlen("\nThe numbers for ");
        for (int n = 0; n < 4; n++) {
            assert_int_equal(sscanf(q, "%63[a-z]", key), 1);
            q += strlen(key);
            if (n < 3) assert_memory_equal(q, ", ", 2), q += 2;
            assert_non_null(find_needle(val, sizeof val, prompt, "number", key));
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", n ? " " : "", val);
        }
        assert_string_equal(q, " are:");
        break;
    }
    case TASK_VT: {
        const char *q = strstr(prompt, "\nVariables equal to ");
        assert_non_null(q);
        char value[32];
        assert_int_equal(sscanf(q, "\nVariables equal to %31[0-9]:", value), 1);
        // names bound to value, directly or through names bound to it, in text order
        char bound[16][16];
        int n = 0;
        for (const char *p = strstr(prompt, "\nVAR "); p; p = strstr(p + 1, "\nVAR ")) {
            char name[16], rhs[32];
            assert_int_equal(sscanf(p, "\nVAR %15[A-Z] = %31[0-9A-Z].", name, rhs), 2);
            int yes = !strcmp(rhs, value);
            for (int j = 0; j < n; j++) yes |= !strcmp(rhs, bound[j]);
            if (yes) snprintf(bound[n++], 16, "%s", name);
        }
        assert_int_equal(n, 5);
        for (int j = 0; j < n; j++) snprintf(out + strlen(out), cap - strlen(out), "%s%s", j ? " " : "", bound[j]);
        break;
    }
    case TASK_CWE:
    case TASK_FWE: {
        const char *head = task == TASK_CWE ? "\nWords:" : "\nCoded words:";
        const char *qs = task == TASK_CWE ? "\nThe 3 most common words:" : "\nThe 3 most frequent words:";
        const char *a = strstr(prompt, head), *b = strstr(prompt, qs);
        assert_non_null(a);
        assert_non_null(b);
        a += strlen(head);
        char *list = strndup(a, (size_t)(b - a));
        static tally t;
        tally_list(&t, list);
        free(list);
        int top[4] = {-1, -1, -1, -1};  // the 4 largest counts (first appearance breaks ties)
        for (int r = 0; r < 4; r++)
            for (int i = 0; i < t.n; i++) {
                int used = 0;
                for (int j = 0; j < r; j++) used |= top[j] == i;
                if (!used && (top[r] < 0 || t.count[i] > t.count[top[r]])) top[r] = i;
            }
        assert_true(top[2] >= 0);
        const int fourth = top[3] >= 0 ? t.count[top[3]] : 0;
        assert_true(t.count[top[2]] > fourth);  // the answer is unique
        if (task == TASK_FWE) {
            assert_true(t.count[top[0]] > t.count[top[1]] && t.count[top[1]] > t.count[top[2]]);
        } else {  // order of first appearance
            for (int i = 0; i < 3; i++)
                for (int j = i + 1; j < 3; j++)
                    if (t.first[top[j]] < t.first[top[i]]) {
                        int x = top[i]; top[i] = top[j]; top[j] = x;
                    }
        }
        snprintf(out, cap, "%s %s %s", t.w[top[0]], t.w[top[1]], t.w[top[2]]);
        break;
    }
    default:
        fail();
    }
}

// One sample, all properties; returns its tokens (caller frees).
static int32_t *check_sample(const fixture *f, int task, double depth, uint64_t seed, int64_t T) {
    task_env env = env_of(f);
    int32_t *tok = xmalloc(sizeof(int32_t) * (size_t)(T + 1)), *tgt = xmalloc(sizeof(int32_t) * (size_t)(T + 1));
    tok[T] = tgt[T] = 0x7eadbeef;  // canary: exactly T tokens are written
    task_info info;
    char err[512];
    if (task_make(tok, tgt, &info, task, &env, depth, seed, T, err, sizeof err) != 0)
        fail_msg("%s T=%lld: %s", TASK_DEFS[task].name, (long long)T, err);
    assert_int_equal(tok[T], 0x7eadbeef);
    assert_int_equal(tgt[T], 0x7eadbeef);
    assert_true(info.answer_start > 0 && info.answer_start + info.answer_len == T);
    if (env.bos_id >= 0) assert_int_equal(tok[0], env.bos_id);
    for (int64_t i = 0; i < T; i++)  // answer-only targets
        assert_int_equal(tgt[i], i >= info.answer_start - 1 && i + 1 < T ? tok[i + 1] : -1);
    char *prompt = decode(f, tok, info.answer_start);
    char *answer = decode(f, tok + info.answer_start, info.answer_len);
    char want[512];
    expected_answer(want, sizeof want, task, prompt);
    assert_true(answer[0] == ' ');
    assert_string_equal(answer + 1, want);
    assert_string_equal(info.answer_text, want);
    if (TASK_DEFS[task].has_depth) {
        // The asked needle starts at needle_start and sits within one noise
        // sentence (text: one token) of the requested depth.
        char *at = decode(f, tok + info.needle_start, 8);
        assert_true(!strncmp(at, "\nThe ", 5) || !strncmp(at, "\nVAR ", 5));
        free(at);
        if (depth >= 0) {
            const double slack = TASK_DEFS[task].needs_text ? 1.0 : 22.0;  // tokens: a sentence
            assert_true(fabs(info.depth - depth) * (double)info.hay_tokens <= slack + 0.5);
        }
        if (task == TASK_VT) {  // the chain's first line is the asked needle
            char *from = decode(f, tok + info.needle_start, T - info.needle_start);
            char name[16];
            assert_int_equal(sscanf(from, "\nVAR %15[A-Z] = ", name), 1);
            assert_int_equal(strncmp(want, name, strlen(name)), 0);
            free(from);
        }
    }
    free(prompt);
    free(answer);
    free(tgt);
    return tok;
}

static void run_all(int bpe) {
    fixture f;
    fixture_init(&f, bpe);
    task_env env = env_of(&f);
    static const double depths[] = {0.0, 0.25, 0.5, 1.0, -1};
    for (int task = 0; task < TASK_COUNT; task++) {
        char err[512];
        const int64_t need = task_min_len(task, &env, 7, err, sizeof err);
        if (need < 0) fail_msg("%s", err);
        const int64_t lengths[] = {need, need + 1, need + 37, 512, 2048, 5000};
        for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
            if (lengths[l] < need) continue;
            for (size_t d = 0; d < sizeof depths / sizeof *depths; d++) {
                // the minimum belongs to seed 7; the long lengths leave room for any seed
                const uint64_t seed = l < 3 ? 7 : 100 + l * 10 + d;
                int32_t *tok = check_sample(&f, task, depths[d], seed, lengths[l]);
                free(tok);
                if (!TASK_DEFS[task].has_depth) break;
            }
        }
        // below the minimum: one line
        int32_t *tok = xmalloc(sizeof(int32_t) * (size_t)need), *tgt = xmalloc(sizeof(int32_t) * (size_t)need);
        assert_int_equal(task_make(tok, tgt, NULL, task, &env, 0.5, 7, need - 1, err, sizeof err), -1);
        assert_non_null(strstr(err, "too short"));
        assert_non_null(strstr(err, TASK_DEFS[task].name));
        assert_null(strchr(err, '\n'));
        free(tok);
        free(tgt);
    }
    fixture_free(&f);
}

static void test_bytes(void **state) {
    (void)state;
    run_all(0);
}

static void test_bpe(void **state) {
    (void)state;
    run_all(1);
}

static void test_deterministic(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 1);
    for (int task = 0; task < TASK_COUNT; task++) {
        const int64_t T = 1500;
        int32_t *a = check_sample(&f, task, 0.3, 42, T), *b = check_sample(&f, task, 0.3, 42, T),
                *c = check_sample(&f, task, 0.3, 43, T);
        assert_memory_equal(a, b, sizeof(int32_t) * T);
        assert_memory_not_equal(a, c, sizeof(int32_t) * T);
        free(a), free(b), free(c);
    }
    fixture_free(&f);
}

// Needle depth, counted independently in bytes: the noise before the asked
// needle (other needle lines removed) over all noise.
static void test_depth_bytes(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 0);
    const int64_t T = 3000;
    for (double depth = 0; depth <= 1.0; depth += 0.125) {
        int32_t *tok = check_sample(&f, TASK_NIAH_MULTIKEY, depth, 5, T);
        task_env env = env_of(&f);
        int32_t *tgt = xmalloc(sizeof(int32_t) * T);
        task_info info;
        char err[256];
        assert_int_equal(task_make(tok, tgt, &info, TASK_NIAH_MULTIKEY, &env, depth, 5, T, err, sizeof err), 0);
        char *text = decode(&f, tok, info.answer_start);
        // noise = the prompt without needle lines and the question
        int64_t noise_before = 0, noise = 0;
        const size_t split = (size_t)info.needle_start - (env.bos_id >= 0);
        for (size_t i = 0; text[i];) {
            if (!strncmp(text + i, "\nThe number for ", 16)) {
                const size_t e = strcspn(text + i + 1, ".");
                if (!text[i + 1 + e]) break;  // the question: the end of the prompt
                i += e + 2;
                continue;
            }
            noise++;
            noise_before += i < split;
            i++;
        }
        assert_int_equal(noise, info.hay_tokens);
        // nearest boundary: within half a sentence, or a whole one (22 bytes at most) at the end
        const double off = fabs((double)noise_before / (double)noise - depth) * (double)noise;
        if (!(off <= 11.5 || (depth > 0.99 && off <= 22)))
            fail_msg("depth %g: %lld of %lld noise bytes before the needle", depth, (long long)noise_before, (long long)noise);
        free(text), free(tok), free(tgt);
    }
    fixture_free(&f);
}

static void test_errors(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 0);
    task_env env = env_of(&f);
    char err[512];
    int32_t tok[4096], tgt[4096];
    assert_int_equal(task_find("niah_multikey"), TASK_NIAH_MULTIKEY);
    assert_int_equal(task_find("niah_nope"), -1);
    assert_non_null(strstr(task_names(), "vt, cwe, fwe"));
    assert_int_equal(task_make(tok, tgt, NULL, TASK_COUNT, &env, 0.5, 1, 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown task"));
    // a haystack shorter than the sample
    env.haystack_len = 500;
    assert_int_equal(task_make(tok, tgt, NULL, TASK_NIAH_SINGLE_TEXT, &env, 0.5, 1, 4096, err, sizeof err), -1);
    assert_non_null(strstr(err, "haystack has 500 tokens"));
    assert_null(strchr(err, '\n'));
    env.haystack = NULL;
    assert_int_equal(task_make(tok, tgt, NULL, TASK_NIAH_SINGLE_TEXT, &env, 0.5, 1, 400, err, sizeof err), -1);
    assert_non_null(strstr(err, "haystack has 0 tokens"));
    assert_int_equal(task_make(tok, tgt, NULL, TASK_NIAH_SINGLE, &env, 1.5, 1, 400, err, sizeof err), -1);
    assert_non_null(strstr(err, "depth"));
    fixture_free(&f);
}

// Task rows in the loader: the mix draws them at about their ratio, every
// one is a whole valid sample (the checker recovers its answer), answer-only
// targets; packed rows hold several samples as separate documents.
static void test_loader_mix(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 0);
    char path[] = "/tmp/test_tasks.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[512];
    shard_writer *w = shard_writer_open(path, TOK_BYTE_VOCAB, err, sizeof err);
    assert_non_null(w);
    assert_int_equal(shard_writer_add_doc(w, f.hay, 5000, err, sizeof err), 0);
    assert_int_equal(shard_writer_close(w, err, sizeof err), 0);
    for (int pack = 0; pack < 2; pack++) {
        data_config c = {.mode = DATA_PACK, .seq_len = 512, .batch_rows = 8, .dp_size = 1, .seed = 3,
                         .bos_id = -1, .eos_id = -1, .pad_id = 0, .passkey_pack_min = pack ? 240 : 0,
                         .task = env_of(&f)};
        c.task_mix[TASK_NIAH_MULTIKEY] = 0.25;
        c.task_mix[TASK_VT] = 0.25;
        const char *paths[1] = {path};
        data_loader *L = data_loader_open(paths, 1, &c, err, sizeof err);
        if (!L) fail_msg("%s", err);
        data_batch b;
        data_batch_init(&b, L);
        int task_rows = 0, samples = 0;
        for (int step = 0; step < 8; step++) {
            data_next_batch(L, &b);
            for (int64_t r = 0; r < b.B; r++) {
                const int32_t *tok = b.tokens + r * b.T, *tgt = b.targets + r * b.T, *seg = b.seg + r * b.T;
                char *text = decode(&f, tok, b.T);
                const int mk = strstr(text, "\nThe number for ") != NULL, vt = strstr(text, "\nVAR ") != NULL;
                free(text);
                if (!mk && !vt) continue;
                task_rows++;
                for (int64_t a = 0; a < b.T;) {  // each document: a sample
                    int64_t e = a;
                    while (e < b.T && seg[e] == seg[a]) e++;
                    int64_t first = -1;  // answer-only: targets from answer_start - 1 to the end
                    for (int64_t i = a; i < e; i++)
                        if (tgt[i] >= 0 && first < 0) first = i;
                    assert_true(first > a);
                    for (int64_t i = first; i + 1 < e; i++) assert_int_equal(tgt[i], tok[i + 1]);
                    assert_int_equal(tgt[e - 1], -1);
                    char *prompt = decode(&f, tok + a, first + 1 - a), *answer = decode(&f, tok + first + 1, e - first - 1);
                    char want[512];
                    expected_answer(want, sizeof want, mk ? TASK_NIAH_MULTIKEY : TASK_VT, prompt);
                    assert_string_equal(answer + 1, want);
                    free(prompt), free(answer);
                    samples++;
                    a = e;
                }
            }
        }
        // 64 rows at 0.5: within 4 sigma
        assert_true(task_rows >= 16 && task_rows <= 48);
        if (pack) assert_true(samples > task_rows);
        else assert_int_equal(samples, task_rows);
        data_batch_free(&b);
        data_loader_free(L);
    }
    // A row too short for a task: one line naming it
    data_config c = {.mode = DATA_PACK, .seq_len = 128, .batch_rows = 1, .dp_size = 1, .pad_id = 0,
                     .bos_id = -1, .eos_id = -1, .task = env_of(&f)};
    c.task_mix[TASK_NIAH_MULTIQUERY] = 0.5;
    const char *paths[1] = {path};
    assert_null(data_loader_open(paths, 1, &c, err, sizeof err));
    assert_non_null(strstr(err, "too short for task_mix.niah_multiquery"));
    c.task_mix[TASK_NIAH_MULTIQUERY] = 0, c.task_mix[TASK_NIAH_SINGLE_TEXT] = 0.5;
    assert_null(data_loader_open(paths, 1, &c, err, sizeof err));
    assert_non_null(strstr(err, "evaluation only"));
    unlink(path);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes), cmocka_unit_test(test_bpe), cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_depth_bytes), cmocka_unit_test(test_errors), cmocka_unit_test(test_loader_mix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
