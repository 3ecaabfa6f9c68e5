// corpus_shard: packaged corpus -> token shards. See corpus_shard.h.
#include "corpus_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"
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
    shard_writer *w = (s->val_every > 0 && index % s->val_every == s->val_every - 1) ? s->val : s->train;
    int rc = shard_writer_add_doc(w, ids, n, s->err, s->errlen);
    free(ids);
    return rc;
}

int corpus_make_shards(const char *name, const tok_tokenizer *tok, const char *tok_name, const char *train_path,
                       const char *val_path, int val_every, char *err, size_t errlen) {
    corpus_unit unit;
    if (!strcmp(name, "fortunes")) unit = CORPUS_ENTRY;
    else if (!strcmp(name, "fortunes-files")) unit = CORPUS_FILE;
    else {
        snprintf(err, errlen, "data.corpus: unknown corpus '%s' (known: fortunes, fortunes-files)", name);
        return -1;
    }
    shard_sink s = {.tok = tok, .val_every = val_every, .err = err, .errlen = errlen};
    s.train = shard_writer_open_tok(train_path, tok_vocab_size(tok), tok_fingerprint(tok), tok_name, err, errlen);
    if (!s.train) return -1;
    s.val = shard_writer_open_tok(val_path, tok_vocab_size(tok), tok_fingerprint(tok), tok_name, err, errlen);
    if (!s.val) {
        shard_writer_abort(s.train);
        return -1;
    }
    if (corpus_fortunes_foreach(NULL, unit, add_document, &s, err, errlen) < 0) {
        shard_writer_abort(s.train);
        shard_writer_abort(s.val);
        return -1;
    }
    if (shard_writer_close(s.train, err, errlen) != 0) {
        shard_writer_abort(s.val);
        return -1;
    }
    return shard_writer_close(s.val, err, errlen);
}
