// matmul: linear layers through OpenBLAS sgemm. See matmul.h.
#include "matmul.h"

#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "die.h"

// cblas takes int sizes; a larger tensor is a bug upstream, not a user error.
static blasint blas_int(int64_t x) {
    CHECK(x >= 0 && x <= INT_MAX);
    return (blasint)x;
}

void matmul_forward(float *out, const float *inp, const float *weight, int64_t N, int64_t C,
                    int64_t OC) {
    if (N == 0 || OC == 0) return;
    if (C == 0) {  // an empty sum; sgemm would reject lda = 0
        memset(out, 0, (size_t)(N * OC) * sizeof *out);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(N), blas_int(OC),
                blas_int(C), 1.0f, inp, blas_int(C), weight, blas_int(C), 0.0f, out,
                blas_int(OC));
}

void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                     const float *weight, int64_t N, int64_t C, int64_t OC) {
    if (N == 0 || C == 0 || OC == 0) return;
    if (dinp)  // (N, OC) @ (OC, C)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_int(N), blas_int(C),
                    blas_int(OC), 1.0f, dout, blas_int(OC), weight, blas_int(C), 1.0f, dinp,
                    blas_int(C));
    if (dweight)  // (OC, N) @ (N, C)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blas_int(OC), blas_int(C),
                    blas_int(N), 1.0f, dout, blas_int(OC), inp, blas_int(C), 1.0f, dweight,
                    blas_int(C));
}

void matmul_blas_describe(char *buf, size_t n) {
    const int threads = openblas_get_num_threads();
    snprintf(buf, n, "OpenBLAS %s, %d thread%s", openblas_get_corename(), threads, threads == 1 ? "" : "s");
}
