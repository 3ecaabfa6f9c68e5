// corpus_shard: turns a packaged corpus (see corpus.h) into train and
// validation token shards with a given tokenizer, so a run file can say
// `data.corpus: fortunes` instead of pointing at shards it made by hand.
// Every val_every-th document goes to the validation shard.
//
// Tested by tests/cli/test_train.sh (the demo run builds its shards) and
// tests/cli/test_train_ppl.sh (the held-out kjv shard).
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tok.h"

// Known corpus names: "fortunes" (documents = fortunes), "fortunes-files"
// (documents = whole files, for long-context rows) and "kjv" (documents =
// books of the King James Bible, corpus_kjv.h: held-out long text).
#define CORPUS_NAMES "fortunes, fortunes-files, kjv"
bool corpus_known(const char *name);

// Tokenizes the named corpus into train_path, every val_every-th document
// into val_path instead (val_path NULL: every document into train_path).
// tok_name: the tokenizer as given, recorded in the shards with its
// fingerprint. Returns 0, or -1 with a one-line message (unknown name,
// missing package, write failure).
int corpus_make_shards(const char *name, const tok_tokenizer *tok, const char *tok_name, const char *train_path,
                       const char *val_path, int val_every, char *err, size_t errlen);
