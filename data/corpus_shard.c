// corpus_shard: packaged corpus -> token shards. See corpus_shard.h.
#include "corpus_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"
#include "corpus_kjv.h"
#include "shard.h"

typedef struct {
    const tok_tokenizer *tok;
    shard_writer *train, *val;
    int val_every;
    char *err;
    size_t errlen;
} shard_sink;

static int add_document(void *ctx, int64_t index, const char *source, const char *text,
                        size_t len) {
    (void)source;
    shard_sink *s = ctx;
    int32_t *ids = NULL;
    int64_t n = tok_encode(&ids, s->tok, text, (int64_t)len);
    shard_writer *w = (s->val && s->val_every > 0 && index % s->val_every == s->val_every - 1) ? s->val : s->train;
    int rc = shard_writer_add_doc(w, ids, n, s->err, s->errlen);
    free(ids);
    return rc;
}

// Delivers the documents of the named corpus to fn. -1 with a message for
// an unknown name or a corpus that cannot be read.
static int64_t corpus_foreach(const char *name, corpus_doc_fn fn, void *ctx, char *err, size_t errlen) {
    if (!strcmp(name, "fortunes")) return corpus_fortunes_foreach(NULL, CORPUS_ENTRY, fn, ctx, err, errlen);
    if (!strcmp(name, "fortunes-files")) return corpus_fortunes_foreach(NULL, CORPUS_FILE, fn, ctx, err, errlen);
    if (!strcmp(name, "kjv")) return corpus_kjv_foreach(NULL, fn, ctx, err, errlen);
    snprintf(err, errlen, "unknown corpus '%s' (known: %s)", name, CORPUS_NAMES);
    return -1;
}

bool corpus_known(const char *name) {
    return !strcmp(name, "fortunes") || !strcmp(name, "fortunes-files") || !strcmp(name, "kjv");
}

int corpus_make_shards(const char *name, const tok_tokenizer *tok, const char *tok_name, const char *train_path,
                       const char *val_path, int val_every, char *err, size_t errlen) {
    shard_sink s = {.tok = tok, .val_every = val_every, .err = err, .errlen = errlen};
    s.train = shard_writer_open_tok(train_path, tok_vocab_size(tok), tok_fingerprint(tok), tok_name, err, errlen);
    if (!s.train) return -1;
    s.val = val_path ? shard_writer_open_tok(val_path, tok_vocab_size(tok), tok_fingerprint(tok), tok_name, err, errlen)
                     : NULL;
    if (val_path && !s.val) {
        shard_writer_abort(s.train);
        return -1;
    }
    if (corpus_foreach(name, add_document, &s, err, errlen) < 0) {
        shard_writer_abort(s.train);
        if (s.val) shard_writer_abort(s.val);
        return -1;
    }
    if (shard_writer_close(s.train, err, errlen) != 0) {
        if (s.val) shard_writer_abort(s.val);
        return -1;
    }
    return s.val ? shard_writer_close(s.val, err, errlen) : 0;
}
