// corpus_shard: turns a packaged corpus (see corpus.h) into train and
// validation token shards with a given tokenizer, so a run file can say
// `data.corpus: fortunes` instead of pointing at shards it made by hand.
// Every val_every-th document goes to the validation shard.
//
// Tested by tests/cli/test_train.sh (the demo run builds its shards).
#pragma once

#include <stddef.h>

#include "tok.h"

// Known corpus names: "fortunes" (documents = fortunes) and "fortunes-files"
// (documents = whole files, for long-context rows). Returns 0, or -1 with a
// one-line message (unknown name, missing package, write failure). tok_name:
// the tokenizer as given, recorded in the shards with its fingerprint.
int corpus_make_shards(const char *name, const tok_tokenizer *tok, const char *tok_name, const char *train_path,
                       const char *val_path, int val_every, char *err, size_t errlen);
