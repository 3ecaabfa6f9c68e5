// shard_vocab: a shard's recorded vocabulary against a tokenizer. See shard_vocab.h.
#include "shard_vocab.h"

#include <stdint.h>
#include <string.h>

#include "errmsg.h"
#include "shard.h"

int shard_vocab_check(const char *path, const tok_tokenizer *tok, const char *spec, const char *key,
                      const char *who, char *err, size_t errlen) {
    shard s;
    char e2[512];
    if (shard_open(&s, path, e2, sizeof e2) != 0) return 0;
    int64_t vocab = s.vocab_size, want = tok_vocab_size(tok);
    uint64_t fp = s.tok_fingerprint, want_fp = tok_fingerprint(tok);
    char name[SHARD_TOK_NAME_BYTES + 1];
    memcpy(name, s.tok_name, sizeof name);
    shard_close(&s);
    // A shard of format version 1, or written without a tokenizer: the size only.
    if (vocab == want && (fp == 0 || fp == want_fp)) return 0;
    if (vocab == want)
        return errmsg(err, errlen,
                      "%s: %s was tokenized with tokenizer '%s' (fingerprint %016llx); %s tokenizer '%s' "
                      "(fingerprint %016llx): the same vocabulary size (%lld), other tokens or merges: "
                      "re-tokenize it with stretch tokenize --tokenizer %s",
                      key, path, name[0] ? name : "?", (unsigned long long)fp, who, spec,
                      (unsigned long long)want_fp, (long long)want, spec);
    return errmsg(err, errlen,
                  "%s: %s was tokenized with a %lld-token vocabulary%s; %s tokenizer '%s' (%lld tokens): "
                  "re-tokenize it with stretch tokenize --tokenizer %s",
                  key, path, (long long)vocab, vocab == TOK_BYTE_VOCAB ? " (the byte tokenizer)" : "", who, spec,
                  (long long)want, spec);
}
