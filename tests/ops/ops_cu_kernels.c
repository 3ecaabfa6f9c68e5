// ops_cu_kernels: the kernels/cuda entry points that the backend interface
// calls with fixed arguments, driven here with the others (built with CUDA
// only; cuda columns only, the kernel dtype is the column's):
// - cu_axpy with alpha != 1 and x in the other dtype (the backend's add uses
//   alpha 1 and one dtype; its attention backward adds fp32 into bf16);
// - cu_xent_forward_backward with chunks of 4, 8 and 128 rows (the backend
//   always uses BK_XENT_CHUNK_ROWS = 4096).
// Buffers come from the cuda backend's alloc; kernels run on the default
// stream and are waited for with cudaDeviceSynchronize.
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cu_ops.h"
#include "die.h"
#include "ops_ops.h"

static void dev_sync(void) { CU_CHECK(cudaDeviceSynchronize()); }

// ---------------------------------------------------------------------------
static const struct {
    int64_t n;
    int misalign;
    uint64_t seed;
} AX[] = {{1, 0, 131}, {7, 0, 132}, {1000, 0, 133}, {4099, 0, 134}, {1 << 20, 0, 135},
          {1001, 1, 136}};
enum { N_AX = sizeof AX / sizeof *AX };

static void ax_check(ops_ctx *x, int i) {
    int64_t n = AX[i].n;
    int mis = AX[i].misalign;
    ops_case(x, "n=%lld%s alpha 0.75 seed %llu", (long long)n, mis ? " misaligned" : "",
             (unsigned long long)AX[i].seed);
    OPS_FOR_OTHER(x, be) {
        bk_dtype dt = be->dt, other = dt == BK_F32 ? BK_BF16 : BK_F32;
        ops_rng r = {AX[i].seed};
        float *xs = ops_rand(&r, n + 1, -2, 2), *y = ops_rand(&r, n + 1, -2, 2);
        ops_round(xs, n + 1, other);
        ops_round(y, n + 1, dt);
        size_t so = bk_dtype_size(other), sd = bk_dtype_size(dt);
        char *dx = ops_up(be, xs, n + 1, other), *dy = ops_up(be, y, n + 1, dt);
        cu_axpy(dy + mis * sd, (cu_dtype)dt, 0.75f, dx + mis * so, (cu_dtype)other, n, 0);
        dev_sync();
        float *got = ops_down(be, dy + mis * sd, n, dt), *ref = ops_fzeros(n);
        for (int64_t k = 0; k < n; k++) ref[k] = y[k + mis] + 0.75f * xs[k + mis];
        char what[48];
        snprintf(what, sizeof what, "y %s += 0.75 x %s", ops_dt_name(dt), ops_dt_name(other));
        ops_cmp_rel(x, be->name, what, got, ref, n, dt == BK_BF16 ? 1e-2 : 1e-6);
        free(xs), free(y), free(got), free(ref);
        ops_free(be, dx), ops_free(be, dy);
    }
}

const ops_op ops_cu_axpy = {"cu_axpy", N_AX, ax_check, 0, NULL};

// ---------------------------------------------------------------------------
static const struct {
    int64_t N, C, V, chunk;
    uint64_t seed;
} XC[] = {{1, 16, 10, 4, 141}, {37, 32, 1001, 8, 142}, {300, 64, 49152, 128, 143}};
enum { N_XC = sizeof XC / sizeof *XC };
// Against the cpu (rel): losses, dh, dw fp32 1e-5, bf16 1e-2.

static void xc_check(ops_ctx *x, int i) {
    int64_t N = XC[i].N, C = XC[i].C, V = XC[i].V, chunk = XC[i].chunk;
    ops_case(x, "N%lld C%lld V%lld chunk %lld seed %llu", (long long)N, (long long)C,
             (long long)V, (long long)chunk, (unsigned long long)XC[i].seed);
    ops_rng r = {XC[i].seed};
    int32_t *tg = xmalloc((size_t)N * sizeof *tg);
    for (int64_t n = 0; n < N; n++) tg[n] = n % 7 == 3 ? -1 : (int32_t)ops_int(&r, V);
    const float scale = 1.0f / (float)N;
    OPS_FOR_OTHER(x, be) {
        bk_dtype dt = be->dt;
        double tol = dt == BK_BF16 ? 1e-2 : 1e-5;
        float *h = ops_rand(&r, N * C, -1, 1), *w = ops_rand(&r, V * C, -0.5f, 0.5f);
        float *dh = ops_rand(&r, N * C, -0.01f, 0.01f), *dw = ops_rand(&r, V * C, -0.01f, 0.01f);
        ops_round(h, N * C, dt), ops_round(w, V * C, dt), ops_round(dh, N * C, dt);
        // the reference: the cpu backend (whole rows, its own chunking)
        backend *cb = x->cpu->b;
        float *loss = ops_fzeros(N), *rdh = ops_fcopy(dh, N * C), *rdw = ops_fcopy(dw, V * C);
        cb->op->xent(cb, loss, rdh, rdw, h, w, tg, N, C, V, scale);
        void *d_h = ops_up(be, h, N * C, dt), *d_w = ops_up(be, w, V * C, dt);
        void *d_dh = ops_up(be, dh, N * C, dt), *d_tg = ops_up_i32(be, tg, N);
        float *d_dw = ops_up(be, dw, V * C, BK_F32), *d_loss = ops_nan(be, N, BK_F32);
        void *scratch = be->b->op->alloc(be->b, cu_xent_scratch_bytes(chunk, V, (cu_dtype)dt));
        cu_blas *blas = cu_blas_create(0);
        cu_xent_forward_backward(blas, d_loss, d_dh, d_dw, d_h, d_w, d_tg, N, C, V, scale, chunk,
                                 scratch, (cu_dtype)dt);
        dev_sync();
        float *gl = ops_down(be, d_loss, N, BK_F32), *gh = ops_down(be, d_dh, N * C, dt);
        float *gw = ops_down(be, d_dw, V * C, BK_F32);
        ops_cmp_rel(x, be->name, "losses", gl, loss, N, tol);
        ops_cmp_rel(x, be->name, "dh +=", gh, rdh, N * C, tol);
        ops_cmp_rel(x, be->name, "dw +=", gw, rdw, V * C, tol);
        free(gl);
        float *nan_bits = ops_fzeros(N);  // forward only: losses alone, poisoned first
        for (int64_t k = 0; k < N; k++) nan_bits[k] = NAN;
        be->b->op->to_dev(be->b, d_loss, nan_bits, (size_t)N * 4);
        cu_xent_forward_backward(blas, d_loss, NULL, NULL, d_h, d_w, d_tg, N, C, V, scale, chunk,
                                 scratch, (cu_dtype)dt);
        dev_sync();
        gl = ops_down(be, d_loss, N, BK_F32);
        ops_cmp_rel(x, be->name, "fwd only: losses", gl, loss, N, tol);
        cu_blas_free(blas);
        free(h), free(w), free(dh), free(dw), free(loss), free(rdh), free(rdw);
        free(gl), free(gh), free(gw), free(nan_bits);
        ops_free(be, d_h), ops_free(be, d_w), ops_free(be, d_dh), ops_free(be, d_tg);
        ops_free(be, d_dw), ops_free(be, d_loss), ops_free(be, scratch);
    }
    free(tg);
}

const ops_op ops_cu_xent_chunked = {"cu_xent_chunk", N_XC, xc_check, 0, NULL};
