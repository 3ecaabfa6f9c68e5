// gpu_ops_check: helpers of tests/gpu/test_gpu_ops.c: random fp32 data,
// bf16 rounding on the host, device upload/download in either dtype, and the
// comparison row `op dtype shape max_abs_err max_rel_err tol PASS/FAIL`.
// max_rel_err is max|out - ref| / max|ref| (relative to the largest value).
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_common.h"

static int gc_failures;

static uint64_t gc_rng = 0x9e3779b97f4a7c15ull;
static inline uint64_t gc_next(void) {  // xorshift64*
    gc_rng ^= gc_rng >> 12;
    gc_rng ^= gc_rng << 25;
    gc_rng ^= gc_rng >> 27;
    return gc_rng * 0x2545f4914f6cdd1dull;
}
static inline float gc_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((gc_next() >> 40) * (1.0 / 16777216.0));
}
static inline int64_t gc_int(int64_t n) { return (int64_t)(gc_next() % (uint64_t)n); }

static float *gc_rand(int64_t n, float lo, float hi) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = gc_uniform(lo, hi);
    return x;
}
static float *gc_copy(const float *x, int64_t n) {
    float *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    memcpy(y, x, (size_t)n * sizeof *y);
    return y;
}

// fp32 -> bf16 bits, round to nearest even (finite inputs).
static inline uint16_t gc_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float gc_from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
// Rounds x in place to what dt can hold: the CPU reference then sees exactly
// the values the GPU gets.
static void gc_round(float *x, int64_t n, cu_dtype dt) {
    if (dt == CU_BF16)
        for (int64_t i = 0; i < n; i++) x[i] = gc_from_bf16(gc_to_bf16(x[i]));
}

static void *gc_alloc(size_t bytes) {
    void *d = NULL;
    CU_CHECK(cudaMalloc(&d, bytes > 0 ? bytes : 16));
    CU_CHECK(cudaMemset(d, 0xff, bytes > 0 ? bytes : 16));  // NaN: unwritten outputs show
    return d;
}
// Device copy of x (n) in dt (bf16: rounded).
static void *gc_upload(const float *x, int64_t n, cu_dtype dt) {
    size_t bytes = (size_t)n * cu_dtype_size(dt);
    void *d = gc_alloc(bytes);
    if (dt == CU_F32) {
        CU_CHECK(cudaMemcpy(d, x, bytes, cudaMemcpyHostToDevice));
    } else {
        uint16_t *b = malloc(bytes + 2);
        for (int64_t i = 0; i < n; i++) b[i] = gc_to_bf16(x[i]);
        CU_CHECK(cudaMemcpy(d, b, bytes, cudaMemcpyHostToDevice));
        free(b);
    }
    return d;
}
static void gc_download(float *x, const void *d, int64_t n, cu_dtype dt) {
    CU_CHECK(cudaDeviceSynchronize());
    size_t bytes = (size_t)n * cu_dtype_size(dt);
    if (dt == CU_F32) {
        CU_CHECK(cudaMemcpy(x, d, bytes, cudaMemcpyDeviceToHost));
    } else {
        uint16_t *b = malloc(bytes + 2);
        CU_CHECK(cudaMemcpy(b, d, bytes, cudaMemcpyDeviceToHost));
        for (int64_t i = 0; i < n; i++) x[i] = gc_from_bf16(b[i]);
        free(b);
    }
}
static float *gc_fetch(const void *d, int64_t n, cu_dtype dt) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    gc_download(x, d, n, dt);
    return x;
}

static const char *gc_dt_name(cu_dtype dt) { return dt == CU_BF16 ? "bf16" : "fp32"; }

static void gc_header(void) {
    printf("%-22s %-5s %-34s %12s %12s %9s  %s\n", "op", "dtype", "shape", "max_abs_err",
           "max_rel_err", "tol", "result");
}

// Compares out with ref (n); a NaN anywhere in out fails.
static void gc_compare(const char *op, const char *dt, const char *shape, const float *out,
                       const float *ref, int64_t n, double tol) {
    double max_abs = 0.0, ref_max = 0.0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(out[i]) && isfinite(ref[i])) bad++;
        double e = fabs((double)out[i] - (double)ref[i]);
        if (e > max_abs) max_abs = e;
        if (fabs(ref[i]) > ref_max) ref_max = fabs(ref[i]);
    }
    double rel = max_abs / (ref_max > 0.0 ? ref_max : 1.0);
    int ok = bad == 0 && rel <= tol;
    if (!ok) gc_failures++;
    printf("%-22s %-5s %-34s %12.3e %12.3e %9.1e  %s", op, dt, shape, max_abs, rel, tol,
           ok ? "PASS" : "FAIL");
    if (bad) printf(" (%lld non-finite)", (long long)bad);
    printf("\n");
}
