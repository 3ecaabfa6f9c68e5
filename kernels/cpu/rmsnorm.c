// rmsnorm: Llama RMSNorm, fp32 with double accumulation. See rmsnorm.h.
#include "rmsnorm.h"

#include <math.h>

// dweight is reduced over rows by column blocks, each summed in row order, so the
// result does not depend on the number of threads.
#define COL_BLOCK 32

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        for (int64_t c = 0; c < C; c++) y[c] = weight[c] * (x[c] * r);
        rstd[n] = r;
    }
}

// y = w * x * r with r = (mean(x^2) + eps)^(-1/2), so
// dx_i = r * w_i dy_i - x_i * r^3 / C * sum_j w_j dy_j x_j,  dw_i = sum_n dy_i x_i r.
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *dy = dout + n * C;
        float *dx = dinp + n * C;
        double dot = 0.0;
        for (int64_t c = 0; c < C; c++) dot += (double)weight[c] * dy[c] * x[c];
        double r = rstd[n];
        float k = (float)(dot * r * r * r / (double)C);
        float rf = rstd[n];
        for (int64_t c = 0; c < C; c++) dx[c] += rf * weight[c] * dy[c] - k * x[c];
    }
    int64_t nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t c0 = b * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        double acc[COL_BLOCK] = {0};
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *dy = dout + n * C;
            double r = rstd[n];
            for (int64_t c = c0; c < c1; c++) acc[c - c0] += (double)dy[c] * x[c] * r;
        }
        for (int64_t c = c0; c < c1; c++) dweight[c] += (float)acc[c - c0];
    }
}
