// shard_vocab: does a token shard belong to a tokenizer? A shard records the
// vocabulary size of the tokenizer that made it (its header, shard.h); a
// run or an evaluation whose tokenizer has another size would read ids that
// mean other text (or overflow the embedding). Checked before any compute,
// with a message that names both sides:
//   data.train: text.shard was tokenized with a 259-token vocabulary (the
//   byte tokenizer); the run uses tokenizer 'bpe.json' (1201 tokens):
//   re-tokenize it with stretch tokenize --tokenizer bpe.json
// The header has no room for more than the size (format version 1), so two
// tokenizers of the same size are not told apart.
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
