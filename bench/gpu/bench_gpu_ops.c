// bench_gpu_ops: time of every memory-bound cu_ops.h kernel against a
// device-to-device cudaMemcpyAsync moving the same bytes (read + write),
// measured in the same run, and the cuBLAS matmuls of the 135M model
// (dim 576, ffn 1536, vocab 49152) against a large square GEMM (the cuBLAS
// peak) in the same run.
//
// Times: cudaEvent around each repetition, median of REPS after WARMUP. Inputs
// are random (never zeros); when one set of buffers would fit in L2, the op
// and its copy reference both rotate over several sets. Exit 77 without a GPU.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_ops.h"

#define WARMUP 3
#define REPS 25
#define ROTATE_BYTES (256ll << 20)  // > 4x the H100's 50 MB L2
#define MAX_SETS 8

static cudaStream_t st;
static float *tile;  // (TILE) random fp32 in [-1, 1], source of every fill
#define TILE (1 << 24)

static void *dalloc(size_t bytes) {
    void *p;
    CU_CHECK(cudaMalloc(&p, bytes > 0 ? bytes : 16));
    return p;
}
static void fill(void *d, int64_t n, cu_dtype dt) {
    for (int64_t off = 0; off < n; off += TILE) {
        int64_t m = n - off < TILE ? n - off : TILE;
        cu_cast((char *)d + off * cu_dtype_size(dt), dt, tile, CU_F32, m, st);
    }
}
static void *drand(int64_t n, cu_dtype dt) {
    void *d = dalloc((size_t)n * cu_dtype_size(dt));
    fill(d, n, dt);
    return d;
}

typedef void (*op_fn)(void *ctx, int set);

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// Median milliseconds of fn over REPS, rotating over nsets.
static float time_ms(op_fn fn, void *ctx, int nsets) {
    cudaEvent_t e0, e1;
    CU_CHECK(cudaEventCreate(&e0));
    CU_CHECK(cudaEventCreate(&e1));
    for (int i = 0; i < WARMUP; i++) fn(ctx, i % nsets);
    float t[REPS];
    for (int i = 0; i < REPS; i++) {
        CU_CHECK(cudaEventRecord(e0, st));
        fn(ctx, i % nsets);
        CU_CHECK(cudaEventRecord(e1, st));
        CU_CHECK(cudaEventSynchronize(e1));
        CU_CHECK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    CU_CHECK(cudaGetLastError());
    CU_CHECK(cudaEventDestroy(e0));
    CU_CHECK(cudaEventDestroy(e1));
    qsort(t, REPS, sizeof *t, cmp_float);
    return t[REPS / 2];
}

static int sets_for(int64_t bytes) {
    int64_t s = bytes > 0 ? (ROTATE_BYTES + bytes - 1) / bytes : 1;
    return (int)(s < 1 ? 1 : (s > MAX_SETS ? MAX_SETS : s));
}

// --- the copy reference: copies `bytes` (read + write = 2 * bytes moved)
typedef struct { void *src[MAX_SETS], *dst[MAX_SETS]; size_t bytes; } copy_ctx;
static void copy_op(void *c, int s) {
    copy_ctx *x = c;
    CU_CHECK(cudaMemcpyAsync(x->dst[s], x->src[s], x->bytes, cudaMemcpyDeviceToDevice, st));
}
static float copy_ms(size_t bytes, int nsets) {
    copy_ctx c = {.bytes = bytes};
    for (int s = 0; s < nsets; s++) {
        c.src[s] = drand((int64_t)(bytes / 4), CU_F32);
        c.dst[s] = dalloc(bytes);
    }
    float ms = time_ms(copy_op, &c, nsets);
    for (int s = 0; s < nsets; s++) {
        CU_CHECK(cudaFree(c.src[s]));
        CU_CHECK(cudaFree(c.dst[s]));
    }
    return ms;
}

// One row of the memory-bound table: `moved` = bytes read + written by the op.
static void report_mem(const char *op, const char *dt, const char *shape, float ms,
                       double moved, int nsets) {
    float ref = copy_ms((size_t)(moved / 2), nsets);
    double gbs = moved / (ms * 1e-3) / 1e9, ref_gbs = moved / (ref * 1e-3) / 1e9;
    printf("%-16s %-5s %-30s %10.4f %9.1f %10.1f %7.2f\n", op, dt, shape, ms, gbs, ref_gbs,
           gbs / ref_gbs);
}

static const char *dtn(cu_dtype dt) { return dt == CU_BF16 ? "bf16" : "fp32"; }

// --- RoPE
typedef struct {
    void *q[MAX_SETS], *k[MAX_SETS];
    int32_t *pos;
    rope_table t;
    int64_t N;
    int H, Hkv, D;
    cu_dtype dt;
    rope_layout layout;
} rope_ctx;
static void rope_op(void *c, int s) {
    rope_ctx *x = c;
    cu_rope_forward(x->q[s], x->k[s], x->pos, NULL, &x->t, x->layout, x->N, x->H, x->Hkv, x->D, x->dt,
                    st);
}
static void bench_rope(int64_t N, cu_dtype dt, rope_layout layout) {
    rope_ctx c = {.N = N, .H = 32, .Hkv = 8, .D = 128, .dt = dt, .layout = layout};
    memset(&c.t, 0, sizeof c.t);
    c.t.rotary_dim = 128;
    c.t.n_pairs = 64;
    c.t.attention_factor = 1.0f;
    for (int i = 0; i < 64; i++) c.t.inv_freq[i] = c.t.inv_freq_orig[i] = (float)pow(5e5, -i / 64.0);
    const size_t sz = cu_dtype_size(dt);
    const int64_t nq = N * c.H * c.D, nk = N * c.Hkv * c.D;
    const double bytes = (double)(nq + nk) * sz;
    const int nsets = sets_for((int64_t)bytes);
    for (int s = 0; s < nsets; s++) {
        c.q[s] = drand(nq, dt);
        c.k[s] = drand(nk, dt);
    }
    int32_t *pos = malloc((size_t)N * 4);
    for (int64_t n = 0; n < N; n++) pos[n] = (int32_t)n;
    c.pos = dalloc((size_t)N * 4);
    CU_CHECK(cudaMemcpy(c.pos, pos, (size_t)N * 4, cudaMemcpyHostToDevice));
    free(pos);
    float ms = time_ms(rope_op, &c, nsets);
    char shape[64];
    snprintf(shape, sizeof shape, "N%lldK 32x128+8x128 %s", (long long)(N / 1024),
             layout == ROPE_LAYOUT_HALF ? "half" : "inter");
    report_mem("rope_fwd", dtn(dt), shape, ms, 2 * bytes, nsets);
    for (int s = 0; s < nsets; s++) {
        CU_CHECK(cudaFree(c.q[s]));
        CU_CHECK(cudaFree(c.k[s]));
    }
    CU_CHECK(cudaFree(c.pos));
}

// --- generic elementwise / row ops: buffers a..e per set
typedef struct {
    void *a[MAX_SETS], *b[MAX_SETS], *c[MAX_SETS], *d[MAX_SETS], *e[MAX_SETS];
    float *f32[MAX_SETS];
    int32_t *idx;
    void *scratch;
    int64_t n, C, V;
    cu_dtype dt;
} ew_ctx;

static void rmsnorm_op(void *p, int s) {
    ew_ctx *x = p;
    cu_rmsnorm_forward(x->a[s], x->f32[s], x->b[s], x->c[s], x->n, x->C, 1e-5f, x->dt, st);
}
static void rmsnorm_bwd_op(void *p, int s) {
    ew_ctx *x = p;
    cu_rmsnorm_backward(x->a[s], (float *)x->e[s], x->b[s], x->c[s], x->d[s], x->f32[s], x->n,
                        x->C, x->scratch, x->dt, st);
}
static void swiglu_op(void *p, int s) {
    ew_ctx *x = p;
    cu_swiglu_forward(x->a[s], x->b[s], x->c[s], x->n, x->dt, st);
}
static void swiglu_bwd_op(void *p, int s) {
    ew_ctx *x = p;
    cu_swiglu_backward(x->a[s], x->b[s], x->c[s], x->d[s], x->e[s], x->n, x->dt, st);
}
static void axpy_op(void *p, int s) {
    ew_ctx *x = p;
    cu_axpy(x->a[s], x->dt, 0.5f, x->b[s], x->dt, x->n, st);
}
static void cast_op(void *p, int s) {
    ew_ctx *x = p;
    cu_cast(x->a[s], CU_BF16, x->f32[s], CU_F32, x->n, st);
}
static void emb_op(void *p, int s) {
    ew_ctx *x = p;
    cu_embedding_forward(x->a[s], x->idx, x->b[0], x->n, x->C, x->V, x->dt, st);
}
static void emb_bwd_op(void *p, int s) {
    ew_ctx *x = p;
    cu_embedding_backward((float *)x->e[0], x->a[s], x->idx, x->n, x->C, x->V, x->scratch, x->dt,
                          st);
}
static void xent_row_op(void *p, int s) {
    ew_ctx *x = p;
    cu_xent_softmax_grad(x->a[s], (const float *)x->b[s], x->f32[s], x->idx, x->n, x->V, 1e-4f,
                         x->dt, st);
}

static void free_ew(ew_ctx *x, int nsets) {
    for (int s = 0; s < nsets; s++) {
        void *ps[6] = {x->a[s], x->b[s], x->c[s], x->d[s], x->e[s], x->f32[s]};
        for (int i = 0; i < 6; i++)
            if (ps[i]) CU_CHECK(cudaFree(ps[i]));
    }
    if (x->idx) CU_CHECK(cudaFree(x->idx));
    if (x->scratch) CU_CHECK(cudaFree(x->scratch));
}

static void bench_rows(int64_t N, int64_t C, cu_dtype dt) {
    const size_t sz = cu_dtype_size(dt);
    const double row = (double)N * C * sz;
    const int nsets = sets_for((int64_t)(4 * row));
    ew_ctx x = {.n = N, .C = C, .dt = dt};
    for (int s = 0; s < nsets; s++) {
        x.a[s] = drand(N * C, dt); x.b[s] = drand(N * C, dt); x.c[s] = drand(C, dt);
        x.d[s] = drand(C, dt); x.e[s] = drand(C, CU_F32); x.f32[s] = drand(N, CU_F32);
    }
    x.scratch = dalloc(cu_rmsnorm_scratch_bytes(N, C));
    char shape[64];
    snprintf(shape, sizeof shape, "N%lld C%lld", (long long)N, (long long)C);
    float ms = time_ms(rmsnorm_op, &x, nsets);
    report_mem("rmsnorm_fwd", dtn(dt), shape, ms, 2 * row, nsets);
    // backward: a = dinp (+=), b = dout, c = inp (N, C), d = weight, e = dweight, f32 = rstd
    for (int s = 0; s < nsets; s++) { CU_CHECK(cudaFree(x.c[s])); x.c[s] = drand(N * C, dt); }
    ms = time_ms(rmsnorm_bwd_op, &x, nsets);
    report_mem("rmsnorm_bwd", dtn(dt), shape, ms, 4 * row, nsets);  // dinp r+w, dout, inp
    free_ew(&x, nsets);
}

static void bench_elementwise(int64_t n, cu_dtype dt) {
    const size_t sz = cu_dtype_size(dt);
    const double one = (double)n * sz;
    const int nsets = sets_for((int64_t)(5 * one));
    ew_ctx x = {.n = n, .dt = dt};
    for (int s = 0; s < nsets; s++) {
        x.a[s] = drand(n, dt); x.b[s] = drand(n, dt); x.c[s] = drand(n, dt);
        x.d[s] = drand(n, dt); x.e[s] = drand(n, dt); x.f32[s] = drand(n, CU_F32);
    }
    char shape[64];
    snprintf(shape, sizeof shape, "n=%lldM", (long long)(n >> 20));
    report_mem("swiglu_fwd", dtn(dt), shape, time_ms(swiglu_op, &x, nsets), 3 * one, nsets);
    report_mem("swiglu_bwd", dtn(dt), shape, time_ms(swiglu_bwd_op, &x, nsets), 7 * one, nsets);
    report_mem("axpy", dtn(dt), shape, time_ms(axpy_op, &x, nsets), 3 * one, nsets);
    if (dt == CU_BF16)
        report_mem("cast f32->bf16", "bf16", shape, time_ms(cast_op, &x, nsets), 6.0 * n, nsets);
    free_ew(&x, nsets);
}

static void bench_embedding(int64_t N, int64_t C, int64_t V, cu_dtype dt) {
    const size_t sz = cu_dtype_size(dt);
    ew_ctx x = {.n = N, .C = C, .V = V, .dt = dt};
    const int nsets = sets_for((int64_t)(N * C * sz));
    for (int s = 0; s < nsets; s++) x.a[s] = drand(N * C, dt);
    x.b[0] = drand(V * C, dt);
    x.e[0] = drand(V * C, CU_F32);
    int32_t *tok = malloc((size_t)N * 4);
    uint64_t r = 88172645463325252ull;
    for (int64_t n = 0; n < N; n++) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        tok[n] = (int32_t)(r % (uint64_t)V);
    }
    x.idx = dalloc((size_t)N * 4);
    CU_CHECK(cudaMemcpy(x.idx, tok, (size_t)N * 4, cudaMemcpyHostToDevice));
    free(tok);
    x.scratch = dalloc(cu_embedding_scratch_bytes(N, V));
    char shape[64];
    snprintf(shape, sizeof shape, "N%lld C%lld V%lld", (long long)N, (long long)C, (long long)V);
    report_mem("embedding_fwd", dtn(dt), shape, time_ms(emb_op, &x, nsets),
               2.0 * N * C * sz, nsets);
    // backward: reads dout, reads + writes the touched dwte rows (fp32)
    report_mem("embedding_bwd", dtn(dt), shape, time_ms(emb_bwd_op, &x, nsets),
               (double)N * C * sz + 2.0 * N * C * 4, nsets);
    free_ew(&x, nsets);
}

static void bench_xent_rows(int64_t n, int64_t V, cu_dtype dt) {
    const size_t sz = cu_dtype_size(dt);
    // fp32 logits in (b), the gradient out in dt (a): the bytes one row pass moves
    const double bytes = (double)n * V * (4 + sz);
    const int nsets = sets_for((int64_t)bytes);
    ew_ctx x = {.n = n, .V = V, .dt = dt};
    for (int s = 0; s < nsets; s++) {
        x.a[s] = dalloc((size_t)(n * V) * sz);
        x.b[s] = dalloc((size_t)(n * V) * 4);
        x.f32[s] = dalloc((size_t)n * 4);
        fill(x.b[s], n * V, CU_F32);
    }
    int32_t *tg = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) tg[i] = (int32_t)((i * 7919) % V);
    x.idx = dalloc((size_t)n * 4);
    CU_CHECK(cudaMemcpy(x.idx, tg, (size_t)n * 4, cudaMemcpyHostToDevice));
    free(tg);
    char shape[64];
    snprintf(shape, sizeof shape, "rows%lld V%lld", (long long)n, (long long)V);
    report_mem("xent_softmax_grad", dtn(dt), shape, time_ms(xent_row_op, &x, nsets), bytes,
               nsets);
    free_ew(&x, nsets);
}

static void bench_adamw(int64_t n) {
    float *p = drand(n, CU_F32), *m = drand(n, CU_F32), *v = dalloc((size_t)n * 4);
    float *g = drand(n, CU_F32);
    CU_CHECK(cudaMemsetAsync(v, 0, (size_t)n * 4, st));
    void *copy = dalloc((size_t)n * 2), *scratch = dalloc(cu_grad_norm_scratch_bytes(n));
    enum { NT = 273 };  // ~ the 135M model's tensor count
    int64_t off[NT + 1];
    uint8_t mask[NT];
    for (int t = 0; t <= NT; t++) off[t] = n * t / NT;
    for (int t = 0; t < NT; t++) mask[t] = (uint8_t)(t % 3 != 0);
    int64_t *doff = dalloc(sizeof off);
    uint8_t *dmask = dalloc(sizeof mask);
    CU_CHECK(cudaMemcpy(doff, off, sizeof off, cudaMemcpyHostToDevice));
    CU_CHECK(cudaMemcpy(dmask, mask, sizeof mask, cudaMemcpyHostToDevice));
    adamw_hparams hp = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                        .weight_decay = 0.1f};
    double *out = dalloc(sizeof(double));
    cudaEvent_t e0, e1;
    CU_CHECK(cudaEventCreate(&e0));
    CU_CHECK(cudaEventCreate(&e1));
    float ta[REPS], tn[REPS];
    for (int i = 0; i < WARMUP + REPS; i++) {
        CU_CHECK(cudaEventRecord(e0, st));
        cu_adamw_update(p, m, v, g, copy, CU_BF16, doff, dmask, NT, &hp, i + 1, 1.0f, st);
        CU_CHECK(cudaEventRecord(e1, st));
        CU_CHECK(cudaEventSynchronize(e1));
        if (i >= WARMUP) CU_CHECK(cudaEventElapsedTime(&ta[i - WARMUP], e0, e1));
        CU_CHECK(cudaEventRecord(e0, st));
        cu_grad_norm_sq(out, g, n, scratch, st);
        CU_CHECK(cudaEventRecord(e1, st));
        CU_CHECK(cudaEventSynchronize(e1));
        if (i >= WARMUP) CU_CHECK(cudaEventElapsedTime(&tn[i - WARMUP], e0, e1));
    }
    qsort(ta, REPS, sizeof *ta, cmp_float);
    qsort(tn, REPS, sizeof *tn, cmp_float);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%lldM %d tensors", (long long)(n / 1000000), NT);
    report_mem("adamw+bf16 copy", "fp32", shape, ta[REPS / 2], 30.0 * n, 1);
    report_mem("grad_norm_sq", "fp32", shape, tn[REPS / 2], 4.0 * n, 1);
    void *ps[] = {p, m, v, g, copy, scratch, doff, dmask, out};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) CU_CHECK(cudaFree(ps[i]));
}

// --- matmuls
typedef struct {
    cu_blas *b;
    void *x, *w, *y, *dy, *dx;
    float *dw;
    int64_t N, C, OC;
    cu_dtype dt;
} mm_ctx;
static void mm_fwd(void *p, int s) {
    mm_ctx *m = p;
    cu_matmul_forward(m->b, m->y, m->x, m->w, m->N, m->C, m->OC, m->dt);
}
static void mm_bwd(void *p, int s) {
    mm_ctx *m = p;
    cu_matmul_backward(m->b, m->dx, m->dw, m->dy, m->x, m->w, m->N, m->C, m->OC, m->dt);
}
static float mm_tflops(cu_blas *b, int64_t N, int64_t C, int64_t OC, cu_dtype dt, int bwd) {
    mm_ctx m = {.b = b, .N = N, .C = C, .OC = OC, .dt = dt};
    m.x = drand(N * C, dt); m.w = drand(OC * C, dt); m.y = dalloc((size_t)(N * OC) * cu_dtype_size(dt));
    m.dy = drand(N * OC, dt); m.dx = drand(N * C, dt); m.dw = drand(OC * C, CU_F32);
    float ms = time_ms(bwd ? mm_bwd : mm_fwd, &m, 1);
    void *ps[] = {m.x, m.w, m.y, m.dy, m.dx, m.dw};
    for (int i = 0; i < 6; i++) CU_CHECK(cudaFree(ps[i]));
    return (float)((bwd ? 4.0 : 2.0) * N * C * OC / (ms * 1e-3) / 1e12);
}

static void bench_matmul(cu_blas *b, cu_dtype dt) {
    const int64_t big = dt == CU_BF16 ? 8192 : 4096;
    const float peak = mm_tflops(b, big, big, big, dt, 0);
    printf("%-16s %-5s %-30s %10s %9.1f TFLOP/s (cuBLAS peak, %lld^3)\n", "matmul_peak", dtn(dt),
           "", "", peak, (long long)big);
    const int64_t N = 8192;
    const int64_t shapes[][2] = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}, {576, 49152}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        for (int bwd = 0; bwd < 2; bwd++) {
            float tf = mm_tflops(b, N, shapes[i][0], shapes[i][1], dt, bwd);
            char shape[64];
            snprintf(shape, sizeof shape, "N%lld C%lld OC%lld", (long long)N,
                     (long long)shapes[i][0], (long long)shapes[i][1]);
            printf("%-16s %-5s %-30s %10s %9.1f TFLOP/s %7.2f of peak\n",
                   bwd ? "matmul_bwd" : "matmul_fwd", dtn(dt), shape, "", tf, tf / peak);
        }
    }
}

typedef struct {
    cu_blas *b;
    float *loss, *dw;
    void *h, *w, *dh, *scratch;
    int32_t *tg;
    int64_t N, C, V, chunk;
    cu_dtype dt;
} xent_ctx;
static void xent_op(void *p, int s) {
    xent_ctx *x = p;
    cu_xent_forward_backward(x->b, x->loss, x->dh, x->dw, x->h, x->w, x->tg, x->N, x->C, x->V,
                             1.0f / (float)x->N, x->chunk, x->scratch, x->dt);
}
static void bench_xent(cu_blas *b, int64_t N, int64_t C, int64_t V, int64_t chunk, cu_dtype dt) {
    xent_ctx x = {.b = b, .N = N, .C = C, .V = V, .chunk = chunk, .dt = dt};
    x.h = drand(N * C, dt); x.w = drand(V * C, dt); x.dh = drand(N * C, dt);
    x.dw = drand(V * C, CU_F32); x.loss = dalloc((size_t)N * 4);
    x.scratch = dalloc(cu_xent_scratch_bytes(chunk, V, dt));
    int32_t *tg = malloc((size_t)N * 4);
    for (int64_t i = 0; i < N; i++) tg[i] = (int32_t)((i * 7919) % V);
    x.tg = dalloc((size_t)N * 4);
    CU_CHECK(cudaMemcpy(x.tg, tg, (size_t)N * 4, cudaMemcpyHostToDevice));
    free(tg);
    float ms = time_ms(xent_op, &x, 1);
    double tf = 6.0 * N * C * V / (ms * 1e-3) / 1e12;
    char shape[64];
    snprintf(shape, sizeof shape, "N%lld C%lld V%lld chunk%lld", (long long)N, (long long)C,
             (long long)V, (long long)chunk);
    printf("%-16s %-5s %-30s %10.4f %9.1f TFLOP/s (3 GEMMs + row kernel)\n", "xent_fwd_bwd",
           dtn(dt), shape, ms, tf);
    void *ps[] = {x.h, x.w, x.dh, x.dw, x.loss, x.scratch, x.tg};
    for (int i = 0; i < 7; i++) CU_CHECK(cudaFree(ps[i]));
}

int main(void) {
    if (cu_device_count() == 0) {
        printf("bench_gpu_ops: no CUDA device, nothing to measure\n");
        return 77;
    }
    CU_CHECK(cudaStreamCreate(&st));
    float *h = malloc((size_t)TILE * 4);
    uint64_t r = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < TILE; i++) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        h[i] = (float)((r >> 40) * (2.0 / 16777216.0) - 1.0);
    }
    tile = dalloc((size_t)TILE * 4);
    CU_CHECK(cudaMemcpy(tile, h, (size_t)TILE * 4, cudaMemcpyHostToDevice));
    free(h);
    struct cudaDeviceProp prop;
    CU_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs, L2 %d MB; median of %d after %d warmup\n", prop.name,
           prop.multiProcessorCount, prop.l2CacheSize >> 20, REPS, WARMUP);
    printf("%-16s %-5s %-30s %10s %9s %10s %7s\n", "op", "dtype", "shape", "ms", "GB/s",
           "memcpy GB/s", "ratio");
    const cu_dtype dts[2] = {CU_BF16, CU_F32};
    for (int d = 0; d < 2; d++) {
        const int64_t Ns[3] = {4096, 32768, 131072};
        for (int i = 0; i < 3; i++) bench_rope(Ns[i], dts[d], ROPE_LAYOUT_HALF);
        bench_rope(32768, dts[d], ROPE_LAYOUT_INTERLEAVED);
    }
    for (int d = 0; d < 2; d++) {
        bench_rows(32768, 576, dts[d]);
        bench_rows(16384, 4096, dts[d]);
        bench_elementwise(32768ll * 1536, dts[d]);
        bench_embedding(32768, 576, 49152, dts[d]);
        bench_xent_rows(1024, 49152, dts[d]);
    }
    bench_adamw(135000000);
    cu_blas *b = cu_blas_create(st);
    for (int d = 0; d < 2; d++) {
        bench_matmul(b, dts[d]);
        bench_xent(b, 8192, 576, 49152, 1024, dts[d]);
    }
    cu_blas_free(b);
    CU_CHECK(cudaStreamDestroy(st));
    return 0;
}
