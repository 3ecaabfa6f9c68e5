// tok_ids: growable id array. See tok_ids.h.
#include "tok_ids.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"

void tok_ids_reserve(tok_ids *v, int64_t n) {
    if (v->n + n <= v->cap) return;
    int64_t cap = v->cap ? v->cap : 1024;
    while (cap < v->n + n) cap *= 2;
    v->data = xrealloc(v->data, (size_t)cap * sizeof(*v->data));
    v->cap = cap;
}

void tok_ids_push(tok_ids *v, int32_t id) {
    if (v->n == v->cap) tok_ids_reserve(v, 1);
    v->data[v->n++] = id;
}

void tok_ids_append(tok_ids *v, const int32_t *ids, int64_t n) {
    tok_ids_reserve(v, n);
    if (n > 0) memcpy(v->data + v->n, ids, (size_t)n * sizeof(*ids));
    v->n += n;
}

void tok_ids_free(tok_ids *v) {
    free(v->data);
    *v = (tok_ids){0};
}
