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
    shard_close(&s);
    if (vocab == want) return 0;
    return errmsg(err, errlen,
                  "%s: %s was tokenized with a %lld-token vocabulary%s; %s tokenizer '%s' (%lld tokens): "
                  "re-tokenize it with stretch tokenize --tokenizer %s",
                  key, path, (long long)vocab, vocab == TOK_BYTE_VOCAB ? " (the byte tokenizer)" : "", who, spec,
                  (long long)want, spec);
}
