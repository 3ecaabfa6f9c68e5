// tok_gguf_write: tokenizer -> tokenizer.ggml.* metadata. See tok_gguf_write.h.
#include "tok_gguf_write.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "die.h"
#include "errmsg.h"
#include "gguf.h"
#include "tok_hfjson.h"

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5 };

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others
// map to U+0100 + k in byte order. UTF-8 of byte b's character into out.
static void byte_char(char out[4], int b) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static void pad_name(char *buf, size_t len, int64_t id) { snprintf(buf, len, "[PAD%lld]", (long long)id); }

static int write_byte(gguf_writer *w, int64_t n_vocab, char *err, size_t errlen) {
    if (n_vocab < 259) return errmsg(err, errlen, "tokenizer byte: the model has %lld ids, the byte tokenizer 259",
                                     (long long)n_vocab);
    char **tok = xcalloc((size_t)n_vocab, sizeof(char *));
    int32_t *type = xmalloc(sizeof(int32_t) * (size_t)n_vocab);
    for (int64_t i = 0; i < n_vocab; i++) {
        char buf[32];
        if (i < 256) byte_char(buf, (int)i), type[i] = TT_NORMAL;
        else if (i < 259) snprintf(buf, sizeof buf, "%s", i == 256 ? "<bos>" : i == 257 ? "<eos>" : "<pad>"), type[i] = TT_CONTROL;
        else pad_name(buf, sizeof buf, i), type[i] = TT_UNUSED;
        tok[i] = xstrdup(buf);
    }
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_w_str_array(w, "tokenizer.ggml.tokens", (const char *const *)tok, n_vocab);
    gguf_w_i32_array(w, "tokenizer.ggml.token_type", type, n_vocab);
    gguf_w_str_array(w, "tokenizer.ggml.merges", NULL, 0);
    gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 256);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 257);
    gguf_w_u32(w, "tokenizer.ggml.padding_token_id", 258);
    gguf_w_bool(w, "tokenizer.ggml.add_bos_token", false);
    for (int64_t i = 0; i < n_vocab; i++) free(tok[i]);
    free(tok);
    free(type);
    return 0;
}

static int write_from_gguf(gguf_writer *w, const char *path, int64_t n_vocab, char *err, size_t errlen) {
    gguf_file *f = gguf_open(path, err, errlen);
    if (!f) return -1;
    char **tok = NULL;
    int32_t *type = NULL;
    int64_t n_tok = 0, n_type = 0;
    int rc = gguf_get_str_array(f, "tokenizer.ggml.tokens", &tok, &n_tok, err, errlen);
    if (rc == 1) rc = errmsg(err, errlen, "%s: key tokenizer.ggml.tokens is missing (no tokenizer in this file)", path);
    if (rc == 0 && n_tok > n_vocab)
        rc = errmsg(err, errlen, "%s: key tokenizer.ggml.tokens has %lld tokens, the model %lld ids", path,
                    (long long)n_tok, (long long)n_vocab);
    if (rc == 0 && n_tok < n_vocab) {
        rc = gguf_get_i32_array(f, "tokenizer.ggml.token_type", &type, &n_type, err, errlen);
        if (rc == 1) rc = 0, type = NULL, n_type = 0;
    }
    for (int64_t i = 0; i < f->n_kv && rc == 0; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (strncmp(kv->key, "tokenizer.", 10)) continue;
        bool padded = n_tok < n_vocab;
        if (padded && !strcmp(kv->key, "tokenizer.ggml.tokens")) {
            tok = xrealloc(tok, sizeof(char *) * (size_t)n_vocab);
            for (int64_t j = n_tok; j < n_vocab; j++) {
                char buf[32];
                pad_name(buf, sizeof buf, j);
                tok[j] = xstrdup(buf);
            }
            gguf_w_str_array(w, kv->key, (const char *const *)tok, n_vocab);
            for (int64_t j = n_tok; j < n_vocab; j++) free(tok[j]);
        } else if (padded && !strcmp(kv->key, "tokenizer.ggml.token_type")) {
            int32_t *t2 = xmalloc(sizeof(int32_t) * (size_t)n_vocab);
            for (int64_t j = 0; j < n_vocab; j++) t2[j] = j < n_type ? type[j] : j < n_tok ? TT_NORMAL : TT_UNUSED;
            gguf_w_i32_array(w, kv->key, t2, n_vocab);
            free(t2);
        } else if (padded && !strcmp(kv->key, "tokenizer.ggml.scores")) {
            rc = errmsg(err, errlen, "%s: key tokenizer.ggml.scores cannot be padded to the model's %lld ids", path,
                        (long long)n_vocab);
        } else {
            gguf_w_copy_kv(w, f, kv);
        }
    }
    if (rc == 0 && n_tok < n_vocab && !type) {
        int32_t *t2 = xmalloc(sizeof(int32_t) * (size_t)n_vocab);
        for (int64_t j = 0; j < n_vocab; j++) t2[j] = j < n_tok ? TT_NORMAL : TT_UNUSED;
        gguf_w_i32_array(w, "tokenizer.ggml.token_type", t2, n_vocab);
        free(t2);
    }
    gguf_free_strs(tok, n_tok);
    free(type);
    gguf_close(f);
    return rc;
}

// The llama.cpp name (tokenizer.ggml.pre) of a tokenizer.json's
// pre_tokenizer, which tok_hfjson_load has already accepted (so a Split
// regex is one of the GPT-2, Llama-3, Qwen2 patterns); NULL if llama.cpp
// has none for it.
static void pre_scan(const cJSON *node, bool *digits, bool *digit_runs, const char **split) {
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "type"));
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(node, "pretokenizers")) pre_scan(x, digits, digit_runs, split);
    } else if (!strcmp(type, "Digits")) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(node, "individual_digits"))) *digits = true;
        else *digit_runs = true;
    } else if (!strcmp(type, "Split")) {
        *split = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(node, "pattern"), "Regex"));
    }
}

static const char *pre_name(const cJSON *pre) {
    bool digits = false, runs = false;
    const char *split = NULL;
    pre_scan(pre, &digits, &runs, &split);
    if (runs) return NULL;
    if (split && strstr(split, "\\p{N}{1,3}")) return digits ? NULL : "llama-bpe";
    if (split && strstr(split, "\\p{N}|")) return digits ? NULL : "qwen2";
    return digits ? "smollm" : "gpt-2";  // ByteLevel's regex (or the GPT-2 Split), digits first for SmolLM
}

static char *slurp(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        errmsg(err, errlen, "%s: cannot open", path);
        return NULL;
    }
    size_t n = 0, cap = 1 << 16;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0)
        if ((n += got) + 1 >= cap) cap *= 2, buf = xrealloc(buf, cap);
    fclose(f);
    buf[n] = 0;
    return buf;
}

// A tokenizer.json (or a directory holding one): its vocabulary, merges and
// added tokens as the GGUF lists, the pre-tokenizer's llama.cpp name, the
// bos/eos/pad ids tok_hfjson picks.
static int write_from_json(gguf_writer *w, const char *spec, int64_t n_vocab, char *err, size_t errlen) {
    char path[1100];
    struct stat st;
    if (stat(spec, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(path, sizeof path, "%s/tokenizer.json", spec);
    else snprintf(path, sizeof path, "%s", spec);
    int32_t specials[3];
    tok_bpe *bpe = tok_hfjson_load(specials, path, err, errlen);
    if (!bpe) return -1;
    int64_t size = tok_bpe_vocab_size(bpe);
    tok_bpe_free(bpe);
    if (size > n_vocab)
        return errmsg(err, errlen, "%s: the tokenizer has %lld ids, the model %lld", path, (long long)size,
                      (long long)n_vocab);
    char *text = slurp(path, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *pre = pre_name(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    if (!pre) {
        cJSON_Delete(root);
        return errmsg(err, errlen, "%s: pre_tokenizer has no llama.cpp equivalent (gpt-2, llama-bpe, qwen2, smollm)",
                      path);
    }
    char **tok = xcalloc((size_t)n_vocab, sizeof(char *));
    int32_t *type = xmalloc(sizeof(int32_t) * (size_t)n_vocab);
    for (int64_t i = 0; i < n_vocab; i++) type[i] = TT_UNUSED;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(model, "vocab")) {
        int64_t id = (int64_t)x->valuedouble;
        if (id >= 0 && id < n_vocab && !tok[id]) tok[id] = xstrdup(x->string), type[id] = TT_NORMAL;
    }
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")) {
        int64_t id = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "id"));
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "content"));
        if (id < 0 || id >= n_vocab || !content) continue;
        free(tok[id]);
        tok[id] = xstrdup(content);
        type[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "special")) ? TT_CONTROL : TT_USER;
    }
    for (int64_t i = 0; i < n_vocab; i++)
        if (!tok[i]) {
            char buf[32];
            pad_name(buf, sizeof buf, i);
            tok[i] = xstrdup(buf);
        }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int n_merges = cJSON_GetArraySize(merges), k = 0;
    char **mg = xcalloc((size_t)n_merges + 1, sizeof(char *));
    cJSON_ArrayForEach(x, merges) {
        if (cJSON_IsString(x)) {
            mg[k++] = xstrdup(x->valuestring);
        } else {  // ["a", "b"]
            const char *a = cJSON_GetStringValue(cJSON_GetArrayItem(x, 0)), *b = cJSON_GetStringValue(cJSON_GetArrayItem(x, 1));
            size_t len = strlen(a ? a : "") + strlen(b ? b : "") + 2;
            mg[k] = xmalloc(len);
            snprintf(mg[k++], len, "%s %s", a ? a : "", b ? b : "");
        }
    }
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", pre);
    gguf_w_str_array(w, "tokenizer.ggml.tokens", (const char *const *)tok, n_vocab);
    gguf_w_i32_array(w, "tokenizer.ggml.token_type", type, n_vocab);
    gguf_w_str_array(w, "tokenizer.ggml.merges", (const char *const *)mg, k);
    if (specials[0] >= 0) gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)specials[0]);
    if (specials[1] >= 0) gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)specials[1]);
    if (specials[2] >= 0) gguf_w_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)specials[2]);
    for (int64_t i = 0; i < n_vocab; i++) free(tok[i]);
    for (int i = 0; i < k; i++) free(mg[i]);
    free(tok), free(type), free(mg);
    cJSON_Delete(root);
    return 0;
}

int tok_gguf_write(gguf_writer *w, const char *spec, int64_t n_vocab, char *err, size_t errlen) {
    if (!strcmp(spec, "byte")) return write_byte(w, n_vocab, err, errlen);
    if (gguf_is_gguf(spec)) return write_from_gguf(w, spec, n_vocab, err, errlen);
    return write_from_json(w, spec, n_vocab, err, errlen);
}
