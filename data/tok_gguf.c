// tok_gguf: a GGUF file's tokenizer. See tok_gguf.h.
#include "tok_gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

static int special_id(int32_t *out, const gguf_file *f, const char *key, int64_t n_tokens, char *err,
                      size_t errlen) {
    int64_t id = -1;
    int rc = gguf_get_int(f, key, &id, err, errlen);
    if (rc < 0) return -1;
    if (rc == 0 && (id < 0 || id >= n_tokens))
        return errmsg(err, errlen, "%s: key %s: id %lld is not a token (0..%lld)", f->name, key, (long long)id,
                      (long long)n_tokens - 1);
    *out = (int32_t)id;
    return 0;
}

tok_bpe *tok_gguf_load(int32_t specials[3], const gguf_file *f, char *err, size_t errlen) {
    const char *model = NULL, *pre = NULL;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model, err, errlen);
    if (rc < 0) return NULL;
    if (rc == 1) {
        errmsg(err, errlen, "%s: key tokenizer.ggml.model is missing (no tokenizer in this file)", f->name);
        return NULL;
    }
    if (strcmp(model, "gpt2") != 0) {
        errmsg(err, errlen, "%s: key tokenizer.ggml.model: '%s' is not supported (gpt2: byte-level BPE)", f->name,
               model);
        return NULL;
    }
    if (gguf_get_str(f, "tokenizer.ggml.pre", &pre, err, errlen) < 0) return NULL;
    char **tokens = NULL, **merges = NULL;
    int32_t *types = NULL;
    int64_t n_tokens = 0, n_merges = 0, n_types = 0;
    tok_bpe *bpe = NULL;
    rc = gguf_get_str_array(f, "tokenizer.ggml.tokens", &tokens, &n_tokens, err, errlen);
    if (rc == 1) errmsg(err, errlen, "%s: key tokenizer.ggml.tokens is missing", f->name);
    if (rc == 0) {
        rc = gguf_get_str_array(f, "tokenizer.ggml.merges", &merges, &n_merges, err, errlen);
        if (rc == 1) errmsg(err, errlen, "%s: key tokenizer.ggml.merges is missing", f->name);
    }
    if (rc == 0) rc = gguf_get_i32_array(f, "tokenizer.ggml.token_type", &types, &n_types, err, errlen);
    if (rc == 1) rc = 0, types = NULL;  // optional: every token normal
    if (rc == 0 && types && n_types != n_tokens)
        rc = errmsg(err, errlen, "%s: key tokenizer.ggml.token_type has %lld entries for %lld tokens", f->name,
                    (long long)n_types, (long long)n_tokens);
    if (rc == 0 && (n_tokens > INT32_MAX || n_merges > INT32_MAX))
        rc = errmsg(err, errlen, "%s: too many tokens or merges", f->name);
    specials[0] = specials[1] = specials[2] = -1;
    if (rc == 0 && (special_id(&specials[0], f, "tokenizer.ggml.bos_token_id", n_tokens, err, errlen) ||
                    special_id(&specials[1], f, "tokenizer.ggml.eos_token_id", n_tokens, err, errlen) ||
                    special_id(&specials[2], f, "tokenizer.ggml.padding_token_id", n_tokens, err, errlen)))
        rc = -1;
    if (rc == 0) {
        char msg[768];
        bpe = tok_bpe_from_lists((const char *const *)tokens, (int32_t)n_tokens, (const char *const *)merges,
                                 (int32_t)n_merges, types, pre, msg, sizeof msg);
        if (!bpe) errmsg(err, errlen, "%s: %s", f->name, msg);
    }
    gguf_free_strs(tokens, n_tokens);
    gguf_free_strs(merges, n_merges);
    free(types);
    return bpe;
}

tok_bpe *tok_gguf_load_path(int32_t specials[3], const char *path, char *err, size_t errlen) {
    gguf_file *f = gguf_open(path, err, errlen);
    if (!f) return NULL;
    tok_bpe *bpe = tok_gguf_load(specials, f, err, errlen);
    gguf_close(f);
    return bpe;
}
