// train_shards: the run's shards against its tokenizer. See train_shards.h.
#include "train_shards.h"

#include <stdio.h>

#include "shard_vocab.h"

int train_shards_check(const cfg_run *c, const tok_tokenizer *tok, char *err, size_t errlen) {
    const char *spec = c->data.tokenizer ? c->data.tokenizer : "byte";
    char key[64];
    for (int s = 0; s < c->n_stages; s++) {
        const cfg_strings *d = c->stages[s].data.n > 0 ? &c->stages[s].data : &c->data.train;
        if (d == &c->data.train && s > 0 && c->stages[s - 1].data.n == 0) continue;  // checked already
        snprintf(key, sizeof key, d == &c->data.train ? "data.train" : "stages.%d.data", s);
        for (int i = 0; i < d->n; i++)
            if (shard_vocab_check(d->v[i], tok, spec, key, "the run uses", err, errlen) != 0) return -1;
    }
    for (int i = 0; i < c->data.val.n; i++)
        if (shard_vocab_check(c->data.val.v[i], tok, spec, "data.val", "the run uses", err, errlen) != 0) return -1;
    return 0;
}
