// tok_gguf_write: tokenizer -> tokenizer.ggml.* metadata. See tok_gguf_write.h.
#include "tok_gguf_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "gguf.h"

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_UNUSED = 5 };

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

int tok_gguf_write(gguf_writer *w, const char *spec, int64_t n_vocab, char *err, size_t errlen) {
    if (!strcmp(spec, "byte")) return write_byte(w, n_vocab, err, errlen);
    if (gguf_is_gguf(spec)) return write_from_gguf(w, spec, n_vocab, err, errlen);
    return errmsg(err, errlen, "tokenizer %s: only the byte tokenizer and a GGUF file's tokenizer are written to GGUF "
                  "(convert a tokenizer.json with llama.cpp's convert_hf_to_gguf.py, or pass --tokenizer FILE.gguf)",
                  spec);
}
