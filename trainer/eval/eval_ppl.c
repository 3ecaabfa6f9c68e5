// eval_ppl: windows of held-out documents and their NLL. See eval_ppl.h.
#include "eval_ppl.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "zigzag.h"

int eval_text_open(eval_text *t, const char *const *paths, int n, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->shards = xcalloc((size_t)n, sizeof(shard));
    for (int i = 0; i < n; i++) {
        if (shard_open(&t->shards[i], paths[i], err, errlen) != 0) {
            eval_text_close(t);
            return -1;
        }
        t->n++;
        const shard *s = &t->shards[i];
        if (s->vocab_size > t->vocab_size) t->vocab_size = s->vocab_size;
        for (int64_t d = 0; d < s->n_docs; d++)
            if (shard_doc_len(s, d) > t->longest) t->longest = shard_doc_len(s, d);
    }
    return 0;
}

void eval_text_close(eval_text *t) {
    for (int i = 0; i < t->n; i++) shard_close(&t->shards[i]);
    free(t->shards);
    memset(t, 0, sizeof *t);
}

// Windows of a document of len tokens.
static int64_t doc_windows(int64_t len, int64_t T, int64_t stride) {
    return len >= T + 1 ? (len - T - 1) / stride + 1 : 0;
}

int64_t eval_windows(eval_window **out, const eval_text *t, int64_t T, int64_t stride, int64_t n_max) {
    CHECK(T > 0 && stride > 0 && stride <= T && n_max > 0);
    int64_t count = 0;
    for (int i = 0; i < t->n; i++)
        for (int64_t d = 0; d < t->shards[i].n_docs; d++) count += doc_windows(shard_doc_len(&t->shards[i], d), T, stride);
    *out = NULL;
    if (count == 0) return 0;
    int64_t n = count < n_max ? count : n_max;
    eval_window *w = xcalloc((size_t)n, sizeof *w);
    // Walk the documents once; the wanted indices increase with k.
    int64_t k = 0, before = 0;  // windows in the documents already passed
    for (int i = 0; i < t->n && k < n; i++) {
        const shard *s = &t->shards[i];
        for (int64_t d = 0; d < s->n_docs && k < n; d++) {
            int64_t here = doc_windows(shard_doc_len(s, d), T, stride);
            for (;;) {
                // Index of window k among all: floor((k + 1/2) * count / n), exact in
                // integers (count <= tokens and n <= n_max keep the product in range).
                int64_t idx = (2 * k + 1) * count / (2 * n);
                if (k >= n || idx >= before + here) break;
                w[k++] = (eval_window){.shard = i, .start = (int64_t)s->offsets[d] + (idx - before) * stride};
            }
            before += here;
        }
    }
    CHECK(k == n);
    *out = w;
    return n;
}

void eval_nll(double sums[2], model *m, const eval_text *t, const eval_window *w, int64_t n_windows,
              int64_t T, int64_t scored, const eval_ring *ring) {
    CHECK(scored > 0 && scored <= T);
    zigzag_layout z;
    zigzag_layout_init_sp(&z, T, ring->sp, ring->ulysses, ring->sp_rank);
    const int64_t TL = ring->sp > 1 ? z.T_local : T;
    int32_t *buf = xmalloc(sizeof(int32_t) * (size_t)(T + 1)), *targets = xmalloc(sizeof(int32_t) * T),
            *pos = xmalloc(sizeof(int32_t) * T);
    int32_t *l_tokens = xmalloc(sizeof(int32_t) * TL), *l_targets = xmalloc(sizeof(int32_t) * TL),
            *l_pos = xmalloc(sizeof(int32_t) * TL), *l_seg = xmalloc(sizeof(int32_t) * TL);
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    for (int64_t k = 0; k < n_windows; k++) {
        shard_read(buf, &t->shards[w[k].shard], w[k].start, T + 1);
        for (int64_t i = 0; i < T; i++) targets[i] = i >= T - scored ? buf[i + 1] : -1;
        model_batch b = {.B = 1, .T = T, .tokens = buf, .targets = targets, .pos = pos, .seg = NULL};
        if (ring->sp > 1) {
            zigzag_shard_batch(l_tokens, l_targets, l_pos, l_seg, buf, targets, pos, NULL, 1, &z, 0);
            b = (model_batch){.B = 1, .T = TL, .tokens = l_tokens, .targets = l_targets, .pos = l_pos, .seg = l_seg};
        }
        sums[0] += model_forward(m, &b, NULL);
        for (int64_t i = 0; i < TL; i++) sums[1] += b.targets[i] >= 0;
    }
    free(buf); free(targets); free(pos);
    free(l_tokens); free(l_targets); free(l_pos); free(l_seg);
}
