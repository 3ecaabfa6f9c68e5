// adamw: the torch.optim.AdamW update and the gradient norm. See adamw.h.
#include "adamw.h"

#include <math.h>
#include <stdlib.h>

#include "die.h"

// The squared norm is summed in fixed blocks, then the block sums in order, so
// the result does not depend on the number of threads.
#define NORM_BLOCK 65536

void adamw_update(float *param, float *m, float *v, const float *grad, int64_t n,
                  const adamw_hparams *hp, int64_t step, float grad_scale) {
    CHECK(step >= 1);
    float lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    float decay = 1.0f - hp->lr * hp->weight_decay;
    float bc1 = (float)(1.0 - pow((double)b1, (double)step));
    float bc2 = (float)(1.0 - pow((double)b2, (double)step));
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        param[i] = param[i] * decay - lr * mhat / (sqrtf(vhat) + eps);
    }
}

double adamw_grad_norm_sq(const float *g, int64_t n) {
    int64_t nblocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double *partial = xmalloc((size_t)(nblocks > 0 ? nblocks : 1) * sizeof *partial);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t i1 = (b + 1) * NORM_BLOCK < n ? (b + 1) * NORM_BLOCK : n;
        double s = 0.0;
        for (int64_t i = b * NORM_BLOCK; i < i1; i++) s += (double)g[i] * g[i];
        partial[b] = s;
    }
    double total = 0.0;
    for (int64_t b = 0; b < nblocks; b++) total += partial[b];
    free(partial);
    return total;
}

float adamw_clip_factor(double norm, double max_norm) {
    if (max_norm <= 0.0 || norm <= max_norm) return 1.0f;
    return (float)(max_norm / (norm + 1e-6));
}
