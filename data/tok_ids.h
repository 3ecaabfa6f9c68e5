// tok_ids: a growable array of token ids, the output of the encoders.
// Tested by tests/unit/test_tok.c (every encode goes through it).
#pragma once

#include <stdint.h>

typedef struct {
    int32_t *data;  // (n) token ids
    int64_t n, cap;
} tok_ids;

void tok_ids_push(tok_ids *v, int32_t id);
void tok_ids_append(tok_ids *v, const int32_t *ids, int64_t n);
// Makes room for n more ids without reallocating.
void tok_ids_reserve(tok_ids *v, int64_t n);
void tok_ids_free(tok_ids *v);
