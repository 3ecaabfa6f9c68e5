// xent: chunked LM head + softmax cross-entropy, forward and backward in one
// pass. See xent.h.
#include "xent.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "matmul.h"

// Token rows per chunk: the workspace is XENT_CHUNK x V floats.
#define XENT_CHUNK 128

// One chunk of n rows: logits (n, V) in, dlogits (n, V) out in place (when
// want_grad), each row's loss into loss (n). Ignored rows get loss 0 and dlogits 0.
static void chunk_softmax_xent(float *logits, double *loss, const int32_t *targets,
                               int64_t n, int64_t V, float grad_scale, int want_grad) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *l = logits + i * V;
        int32_t t = targets[i];
        if (t < 0) {
            loss[i] = 0.0;
            if (want_grad) memset(l, 0, (size_t)V * sizeof *l);
            continue;
        }
        float mx = l[0], lt = l[t];
        for (int64_t j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        double sum = 0.0;
        for (int64_t j = 0; j < V; j++) {  // l becomes exp(l - max)
            l[j] = expf(l[j] - mx);
            sum += l[j];
        }
        loss[i] = (double)mx + log(sum) - (double)lt;
        if (!want_grad) continue;
        float k = (float)(grad_scale / sum);  // dlogits = grad_scale * (softmax - onehot)
        for (int64_t j = 0; j < V; j++) l[j] *= k;
        l[t] -= grad_scale;
    }
}

double xent_forward_backward(float *losses, float *dh, float *dw, const float *h,
                             const float *w, const int32_t *targets, int64_t N, int64_t C,
                             int64_t V, float grad_scale) {
    CHECK(dh != NULL || dw == NULL);  // dw is only computed along with dh
    for (int64_t n = 0; n < N; n++)
        if (targets[n] >= V)
            die("target %d at position %lld is outside the vocabulary [0, %lld)",
                (int)targets[n], (long long)n, (long long)V);
    int64_t rows = N < XENT_CHUNK ? N : XENT_CHUNK;
    float *logits = xmalloc((size_t)(rows * V) * sizeof *logits);  // (rows, V)
    double row_loss[XENT_CHUNK];
    double total = 0.0;
    for (int64_t n0 = 0; n0 < N; n0 += XENT_CHUNK) {
        int64_t n = N - n0 < XENT_CHUNK ? N - n0 : XENT_CHUNK;
        const float *hc = h + n0 * C;
        matmul_forward(logits, hc, w, n, C, V);
        chunk_softmax_xent(logits, row_loss, targets + n0, n, V, grad_scale, dh != NULL);
        if (dh) matmul_backward(dh + n0 * C, dw, logits, hc, w, n, C, V);
        for (int64_t i = 0; i < n; i++) {  // fixed order: deterministic sum
            total += row_loss[i];
            if (losses) losses[n0 + i] = (float)row_loss[i];
        }
    }
    free(logits);
    return total;
}

void xent_logits_row(float *logits, const float *h, const float *w, int64_t C, int64_t V) {
    matmul_forward(logits, h, w, 1, C, V);
}
