// shard_vocab: does a token shard belong to a tokenizer? A shard records the
// vocabulary size of the tokenizer that made it (its header, shard.h); a
// run or an evaluation whose tokenizer has another size would read ids that
// mean other text (or overflow the embedding). Checked before any compute,
// with a message that names both sides:
//   data.train: text.shard was tokenized with a 259-token vocabulary (the
//   byte tokenizer); the run uses tokenizer 'bpe.json' (1201 tokens):
//   re-tokenize it with stretch tokenize --tokenizer bpe.json
// Shards of format version 2 also record the tokenizer's fingerprint
// (tok_fingerprint) and name: a tokenizer of the same size but other tokens
// or merges is refused too:
//   data.train: a.shard was tokenized with tokenizer 'a.json' (fingerprint
//   ...); the run uses tokenizer 'b.json' (fingerprint ...): the same
//   vocabulary size (1201), other tokens or merges: re-tokenize it ...
// Version 1 shards (and shards written without a tokenizer) record the size
// only.
//
// Tested by tests/cli/test_ux_tok.sh.
#pragma once

#include <stddef.h>

#include "tok.h"

// 0 when path's recorded vocabulary is tok's, or path cannot be opened (the
// loader reports that itself); -1 with one line in err otherwise. key: the
// option or run-file key the shard came from; spec: the tokenizer as given.
int shard_vocab_check(const char *path, const tok_tokenizer *tok, const char *spec, const char *key,
                      const char *who, char *err, size_t errlen);
