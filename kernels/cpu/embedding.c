// embedding: token embedding lookup. See embedding.h.
#include "embedding.h"

#include <string.h>

#include "die.h"

// dwte is updated by column blocks, each visiting the tokens in order: no two
// threads touch the same element, and the sums do not depend on the thread count.
#define COL_BLOCK 32

void embedding_forward(float *out, const int32_t *tokens, const float *wte, int64_t N,
                       int64_t C, int64_t V) {
    for (int64_t n = 0; n < N; n++)  // validate before any thread starts
        if (tokens[n] < 0 || tokens[n] >= V)
            die("token id %d at position %lld is outside the vocabulary [0, %lld)",
                (int)tokens[n], (long long)n, (long long)V);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        memcpy(out + n * C, wte + (int64_t)tokens[n] * C, (size_t)C * sizeof *out);
}

void embedding_backward(float *dwte, const float *dout, const int32_t *tokens, int64_t N,
                        int64_t C) {
    for (int64_t n = 0; n < N; n++) CHECK(tokens[n] >= 0);
    int64_t nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t c0 = b * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int64_t n = 0; n < N; n++) {
            float *dw = dwte + (int64_t)tokens[n] * C;
            const float *dy = dout + n * C;
            for (int64_t c = c0; c < c1; c++) dw[c] += dy[c];
        }
    }
}
