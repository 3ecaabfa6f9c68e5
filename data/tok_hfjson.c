// tok_hfjson: tokenizer.json -> tok_bpe. See tok_hfjson.h.
#include "tok_hfjson.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"

// The pre-tokenizer regexes stretch implements (tok_pretok.h), as they are
// written in tokenizer.json files.
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum { MAX_PRE = 8 };

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
    tok_pre_step pre[MAX_PRE];
    int n_pre, n_bytelevel;
} loader;

static int fail(loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(loader *L, const char *fmt, ...) {
    if (!L->err || L->errlen == 0) return -1;
    // One line whatever a quoted token holds (a vocabulary entry with a
    // newline, found by tests/fuzz/fuzz_tokenizer): errmsg's rule.
    int k = snprintf(L->err, L->errlen, "%s: ", L->path);
    if (k >= 0 && (size_t)k < L->errlen) {
        va_list ap;
        va_start(ap, fmt);
        verrmsg(L->err + k, L->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

// The whole file, NUL-terminated; NULL with a message.
static char *read_all(int64_t *len, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open tokenizer file '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    int64_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? 2 * cap : 1 << 20;
            buf = xrealloc(buf, (size_t)cap);
        }
        size_t got = fread(buf + n, 1, 65536, f);
        n += (int64_t)got;
        if (got < 65536) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "cannot read tokenizer file '%s'", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static bool is_null(const cJSON *x) { return !x || cJSON_IsNull(x); }

// A boolean field that must have the value want (absent counts as want).
static int require_bool(loader *L, const cJSON *obj, const char *key, const char *where, bool want) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (is_null(x)) return 0;
    if (!cJSON_IsBool(x)) return fail(L, "%s.%s must be true or false", where, key);
    if (cJSON_IsTrue(x) != want)
        return fail(L, "%s.%s = %s is not supported", where, key, want ? "false" : "true");
    return 0;
}

static bool get_bool(const cJSON *obj, const char *key, bool dflt) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(x) ? cJSON_IsTrue(x) : dflt;
}

static const char *type_of(const cJSON *obj) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

// ---------------------------------------------------------------------------
// Pre-tokenizer

static int add_step(loader *L, const char *where, tok_pre_kind kind, int max_digits) {
    if (L->n_pre == MAX_PRE) return fail(L, "%s: too many pre-tokenizer steps", where);
    L->pre[L->n_pre++] = (tok_pre_step){kind, max_digits};
    return 0;
}

static int parse_pre(loader *L, const cJSON *node, const char *where) {
    const char *type = type_of(node);
    if (!cJSON_IsObject(node) || !type) return fail(L, "%s.type is missing", where);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(node, "pretokenizers");
        if (!cJSON_IsArray(list)) return fail(L, "%s.pretokenizers must be a list", where);
        int k = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, list) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s.pretokenizers[%d]", where, k++);
            if (parse_pre(L, x, sub) < 0) return -1;
        }
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (require_bool(L, node, "add_prefix_space", where, false) < 0) return -1;
        L->n_bytelevel++;
        return get_bool(node, "use_regex", true) ? add_step(L, where, TOK_PRE_GPT2, 0) : 0;
    }
    if (strcmp(type, "Digits") == 0) {
        bool individual = get_bool(node, "individual_digits", false);
        return add_step(L, where, individual ? TOK_PRE_DIGITS : TOK_PRE_DIGIT_RUNS, 0);
    }
    if (strcmp(type, "Split") == 0) {
        const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(node, "pattern");
        const cJSON *regex = cJSON_GetObjectItemCaseSensitive(pattern, "Regex");
        const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(node, "behavior");
        if (!cJSON_IsString(regex))
            return fail(L, "%s.pattern: only a Regex pattern is supported", where);
        if (!cJSON_IsString(behavior) || strcmp(behavior->valuestring, "Isolated") != 0)
            return fail(L, "%s.behavior must be \"Isolated\"", where);
        if (require_bool(L, node, "invert", where, false) < 0) return -1;
        const char *re = regex->valuestring;
        if (strcmp(re, GPT2_REGEX) == 0) return add_step(L, where, TOK_PRE_GPT2, 0);
        if (strcmp(re, LLAMA3_REGEX) == 0) return add_step(L, where, TOK_PRE_LLAMA3, 3);
        if (strcmp(re, QWEN2_REGEX) == 0) return add_step(L, where, TOK_PRE_LLAMA3, 1);
        return fail(L, "%s.pattern.Regex is not one of the GPT-2, Llama-3, Qwen2 patterns "
                    "stretch implements", where);
    }
    return fail(L, "%s.type '%s' is not supported (ByteLevel, Split, Digits, Sequence)", where, type);
}

// ---------------------------------------------------------------------------
// Model and added tokens

// tokens[id] of model.vocab (NULL for unused ids); *n_vocab = largest id + 1.
static const char **parse_vocab(loader *L, const cJSON *vocab, int32_t *n_vocab) {
    if (!cJSON_IsObject(vocab)) {
        fail(L, "model.vocab must be an object of token -> id");
        return NULL;
    }
    int32_t n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= INT32_MAX ||
            x->valuedouble != (double)(int32_t)x->valuedouble) {
            fail(L, "model.vocab['%s'] is not a valid id", x->string);
            return NULL;
        }
        if ((int32_t)x->valuedouble + 1 > n) n = (int32_t)x->valuedouble + 1;
    }
    const char **tokens = xcalloc((size_t)n + 1, sizeof(*tokens));
    cJSON_ArrayForEach(x, vocab) {
        int32_t id = (int32_t)x->valuedouble;
        if (tokens[id]) {
            fail(L, "model.vocab: id %d is given to both '%s' and '%s'", id, tokens[id], x->string);
            free(tokens);
            return NULL;
        }
        tokens[id] = x->string;
    }
    *n_vocab = n;
    return tokens;
}

// merges: "a b" strings (split into the caller's copies) or [a, b] pairs.
static int parse_merges(loader *L, const cJSON *merges, const char **left, const char **right,
                        char **copies) {
    int32_t r = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, merges) {
        if (cJSON_IsString(x)) {
            const char *s = x->valuestring, *space = strchr(s, ' ');
            if (!space || strchr(space + 1, ' '))
                return fail(L, "model.merges[%d] '%s' is not two tokens separated by a space", r, s);
            copies[r] = xstrdup(s);
            copies[r][space - s] = '\0';
            left[r] = copies[r];
            right[r] = copies[r] + (space - s) + 1;
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(x, 0)) && cJSON_IsString(cJSON_GetArrayItem(x, 1))) {
            left[r] = cJSON_GetArrayItem(x, 0)->valuestring;
            right[r] = cJSON_GetArrayItem(x, 1)->valuestring;
        } else {
            return fail(L, "model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", r);
        }
        r++;
    }
    return 0;
}

static int parse_added(loader *L, const cJSON *list, tok_bpe_added *added) {
    int32_t k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, list) {
        char where[64];
        snprintf(where, sizeof(where), "added_tokens[%d]", k);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= INT32_MAX)
            return fail(L, "%s.id is missing or invalid", where);
        if (!cJSON_IsString(content)) return fail(L, "%s.content is missing", where);
        if (require_bool(L, x, "lstrip", where, false) < 0 ||
            require_bool(L, x, "rstrip", where, false) < 0 ||
            require_bool(L, x, "single_word", where, false) < 0)
            return -1;
        bool special = get_bool(x, "special", false);
        added[k++] = (tok_bpe_added){.content = content->valuestring, .id = (int32_t)id->valuedouble,
                                     .special = special,
                                     .normalized = get_bool(x, "normalized", !special)};
    }
    return 0;
}

typedef struct {
    const char *text;
    int32_t id;
} named_id;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named_id *)a)->text, ((const named_id *)b)->text);
}

// Hugging Face does not take the id of an added token from the file: it
// re-derives it as it adds the tokens in order (AddedVocabulary::add_tokens):
// an earlier added token's id, else the id of the same string in
// model.vocab, else the next free id (the number of vocab entries, or one
// past the largest added id). A repeated token is added once. Real files
// agree with this; hand-edited ones may not, and then these ids are right.
static int32_t assign_added_ids(tok_bpe_added *added, int32_t n_added, const char **tokens,
                                int32_t n_vocab, int32_t n_entries) {
    named_id *sorted = xmalloc(((size_t)n_entries + 1) * sizeof(*sorted));
    int32_t n = 0;
    for (int32_t id = 0; id < n_vocab; id++)
        if (tokens[id]) sorted[n++] = (named_id){tokens[id], id};
    qsort(sorted, (size_t)n, sizeof(*sorted), cmp_named);
    int32_t kept = 0, max_id = -1;
    for (int32_t k = 0; k < n_added; k++) {
        tok_bpe_added a = added[k];
        int32_t id = -1;
        if (!a.content[0]) continue;  // ignored, as in HF
        for (int32_t j = 0; j < kept && id < 0; j++)
            if (strcmp(added[j].content, a.content) == 0) id = added[j].id;
        if (id >= 0) continue;  // already added: it keeps its first id
        named_id key = {a.content, 0};
        const named_id *hit = bsearch(&key, sorted, (size_t)n, sizeof(*sorted), cmp_named);
        if (hit) id = hit->id;
        else if (max_id < 0) id = n_entries;
        else id = max_id >= n_entries || n_entries == 0 ? max_id + 1 : n_entries;
        if (id > max_id) max_id = id;
        a.id = id;
        added[kept++] = a;
    }
    free(sorted);
    return kept;
}

static int check_model(loader *L, const cJSON *model) {
    const char *type = type_of(model);
    if (!cJSON_IsObject(model)) return fail(L, "key 'model' is missing");
    if (!type && !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        return fail(L, "model.type is missing");
    if (type && strcmp(type, "BPE") != 0)
        return fail(L, "model.type '%s' is not supported (only byte-level BPE)", type);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!is_null(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return fail(L, "model.dropout is not supported");
    const char *empty_keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(model, empty_keys[k]);
        if (!is_null(x) && !(cJSON_IsString(x) && x->valuestring[0] == '\0'))
            return fail(L, "model.%s is not supported", empty_keys[k]);
    }
    if (require_bool(L, model, "byte_fallback", "model", false) < 0) return -1;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return fail(L, "model.merges must be a list");
    return 0;
}

static int check_others(loader *L, const cJSON *root) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!is_null(norm)) {
        const char *type = type_of(norm);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
        bool empty_sequence = type && strcmp(type, "Sequence") == 0 && cJSON_GetArraySize(list) == 0;
        if (!empty_sequence)
            return fail(L, "normalizer.type '%s' is not supported (only null)", type ? type : "?");
    }
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (!is_null(dec) && !(type_of(dec) && strcmp(type_of(dec), "ByteLevel") == 0))
        return fail(L, "decoder.type '%s' is not supported (only ByteLevel)",
                    type_of(dec) ? type_of(dec) : "?");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (is_null(pre)) return fail(L, "pre_tokenizer is missing (byte-level BPE needs ByteLevel)");
    if (parse_pre(L, pre, "pre_tokenizer") < 0) return -1;
    if (L->n_bytelevel != 1)
        return fail(L, "pre_tokenizer must contain exactly one ByteLevel (found %d)", L->n_bytelevel);
    return 0;
}

// ---------------------------------------------------------------------------
// bos / eos / pad

// The text a tokenizer_config.json entry names: "text" or {"content": "text"}.
static const char *config_token(const cJSON *x) {
    if (cJSON_IsString(x)) return x->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static int32_t special_id(const tok_bpe *bpe, const char *text) {
    const uint8_t *bytes;
    bool special;
    int32_t id = tok_bpe_token_id(bpe, (const uint8_t *)text, (int64_t)strlen(text));
    if (id < 0 || tok_bpe_token_bytes(&bytes, &special, bpe, id) < 0 || !special) return -1;
    return id;
}

static int pick_specials(int32_t specials[3], const tok_bpe *bpe, const char *path, char *err,
                         size_t errlen) {
    static const char *const keys[3] = {"bos_token", "eos_token", "pad_token"};
    static const char *const guesses[3][5] = {
        {"<|begin_of_text|>", "<s>", "<|startoftext|>", "<|endoftext|>", NULL},
        {"<|end_of_text|>", "</s>", "<|endoftext|>", NULL},
        {"<pad>", "<|pad|>", "[PAD]", NULL},
    };
    specials[0] = specials[1] = specials[2] = -1;
    // tokenizer_config.json in the same directory.
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    char *cfg_path = xmalloc(dir + sizeof("tokenizer_config.json"));
    memcpy(cfg_path, path, dir);
    strcpy(cfg_path + dir, "tokenizer_config.json");
    FILE *f = fopen(cfg_path, "rb");
    if (!f) {  // no config: guess from the special tokens' names
        free(cfg_path);
        for (int k = 0; k < 3; k++)
            for (int g = 0; guesses[k][g] && specials[k] < 0; g++) specials[k] = special_id(bpe, guesses[k][g]);
        return 0;
    }
    fclose(f);
    int64_t len;
    char *text = read_all(&len, cfg_path, err, errlen);
    int rc = text ? 0 : -1;
    cJSON *cfg = text ? cJSON_ParseWithLength(text, (size_t)len) : NULL;
    free(text);
    if (rc == 0 && !cJSON_IsObject(cfg)) {
        snprintf(err, errlen, "%s: not a JSON object", cfg_path);
        rc = -1;
    }
    for (int k = 0; rc == 0 && k < 3; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, keys[k]);
        if (is_null(x)) continue;
        const char *name = config_token(x);
        int32_t id = name ? tok_bpe_token_id(bpe, (const uint8_t *)name, (int64_t)strlen(name)) : -1;
        if (id < 0) {
            snprintf(err, errlen, "%s: %s '%s' is not a token of %s", cfg_path, keys[k],
                     name ? name : "?", path);
            rc = -1;
        }
        specials[k] = id;
    }
    cJSON_Delete(cfg);
    free(cfg_path);
    return rc;
}

// ---------------------------------------------------------------------------

tok_bpe *tok_hfjson_load(int32_t specials[3], const char *path, char *err, size_t errlen) {
    loader L = {.path = path, .err = err, .errlen = errlen};
    int64_t len;
    char *text = read_all(&len, path, err, errlen);
    if (!text) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)len, &end, false);
    if (!cJSON_IsObject(root)) {
        if (root) fail(&L, "not a JSON object");
        else fail(&L, "not valid JSON (error at byte %lld)", end ? (long long)(end - text) : -1LL);
        cJSON_Delete(root);
        free(text);
        return NULL;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added_list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int32_t n_merges = cJSON_GetArraySize(merges), n_added = cJSON_GetArraySize(added_list);
    int32_t n_vocab = 0;
    const char **tokens = NULL;
    const char **left = xcalloc((size_t)n_merges + 1, sizeof(*left));
    const char **right = xcalloc((size_t)n_merges + 1, sizeof(*right));
    char **copies = xcalloc((size_t)n_merges + 1, sizeof(*copies));
    tok_bpe_added *added = xcalloc((size_t)n_added + 1, sizeof(*added));
    tok_bpe *bpe = NULL;
    int32_t unk_id = -1;
    if (check_model(&L, model) < 0 || check_others(&L, root) < 0) goto done;
    if (!(tokens = parse_vocab(&L, cJSON_GetObjectItemCaseSensitive(model, "vocab"), &n_vocab)))
        goto done;
    if (parse_merges(&L, merges, left, right, copies) < 0) goto done;
    if (!is_null(added_list) && !cJSON_IsArray(added_list)) {
        fail(&L, "added_tokens must be a list");
        goto done;
    }
    if (parse_added(&L, added_list, added) < 0) goto done;
    n_added = assign_added_ids(added, n_added, tokens, n_vocab,
                               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(model, "vocab")));
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) {
        for (int32_t id = 0; id < n_vocab && unk_id < 0; id++)
            if (tokens[id] && strcmp(tokens[id], unk->valuestring) == 0) unk_id = id;
        if (unk_id < 0) {
            fail(&L, "model.unk_token '%s' is not in model.vocab", unk->valuestring);
            goto done;
        }
    }
    tok_bpe_spec spec = {
        .vocab = tokens, .n_vocab = n_vocab,
        .merge_left = left, .merge_right = right, .n_merges = n_merges,
        .added = added, .n_added = n_added, .pre = L.pre, .n_pre = L.n_pre,
        .unk_id = unk_id, .fuse_unk = get_bool(model, "fuse_unk", false),
        .ignore_merges = get_bool(model, "ignore_merges", false),
    };
    bpe = tok_bpe_new(&spec, path, err, errlen);
    if (bpe && pick_specials(specials, bpe, path, err, errlen) < 0) {
        tok_bpe_free(bpe);
        bpe = NULL;
    }
done:
    for (int32_t r = 0; r < n_merges; r++) free(copies[r]);
    free(copies);
    free(left);
    free(right);
    free(added);
    free(tokens);
    cJSON_Delete(root);
    free(text);
    return bpe;
}
