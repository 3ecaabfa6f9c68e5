// train_shards: before any compute, every shard a run will read (each
// stage's data, data.val) must have been tokenized with the run's
// tokenizer (shard_vocab.h), so a mismatch is one line at start-up instead
// of a silent run on ids that mean other text.
#pragma once

#include <stddef.h>

#include "run_config.h"
#include "tok.h"

// 0, or -1 with one line naming the key, the shard and both vocabularies.
int train_shards_check(const cfg_run *c, const tok_tokenizer *tok, char *err, size_t errlen);
