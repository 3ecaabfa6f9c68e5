// ops_embedding: token embedding forward (a row gather, exact) and backward
// (dwte += dout rows, fp32, deterministic) through the backend. The cpu
// column: forward bit-exact, backward against central finite differences of
// sum(out * dout) in float64 (small cases) or the float64 scatter sum, the +=
// contract and the same bits with 1 and 2 threads. Every column: the
// backward run twice from the same buffer gives the same bits.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "ops_ops.h"

static const struct {
    int64_t N, C, V;
    int token_mode;  // 0: random, tokens 0-2 = 3; 1: every 4th = 0, others random
    uint64_t seed;
} EMB[] = {{50, 70, 7, 0, 5}, {1, 8, 5, 1, 51}, {100, 13, 50, 1, 52}, {2000, 576, 3000, 1, 53}};
enum { N_EMB = sizeof EMB / sizeof *EMB };
// Against the cpu: out exact; dwte (fp32 accumulation of dt rows) rel 1e-5.

typedef struct {
    float *out, *dw, *dw_again;
} emb_res;

static emb_res emb_run(ops_ctx *x, const ops_backend *be, const int32_t *tok, const float *wte,
                       const float *dy, const float *dw0, int64_t N, int64_t C, int64_t V,
                       int calls) {
    backend *b = be->b;
    bk_dtype dt = be->dt;
    double es = (double)bk_dtype_size(dt);
    void *dtok = ops_up_i32(be, tok, N), *dwte = ops_up(be, wte, V * C, dt);
    void *ddy = ops_up(be, dy, N * C, dt), *out = ops_nan(be, N * C, dt);
    float *ddw = ops_up(be, dw0, V * C, BK_F32), *ddw2 = ops_up(be, dw0, V * C, BK_F32);
    OPS_TIMED(x, be, "fwd", 2.0 * (double)(N * C) * es, 0,
              b->op->embedding_forward(b, out, dtok, dwte, N, C, V));
    for (int c = 0; c < calls; c++)
        OPS_TIMED(x, be, "bwd", (double)(N * C) * (es + 8), (double)(N * C),
                  b->op->embedding_backward(b, ddw, ddy, dtok, N, C, V));
    b->op->embedding_backward(b, ddw2, ddy, dtok, N, C, V);
    emb_res r = {ops_down(be, out, N * C, dt), ops_down(be, ddw, V * C, BK_F32),
                 ops_down(be, ddw2, V * C, BK_F32)};
    ops_free(be, dtok), ops_free(be, dwte), ops_free(be, ddy), ops_free(be, out);
    ops_free(be, ddw), ops_free(be, ddw2);
    return r;
}
static void emb_free(emb_res *r) { free(r->out), free(r->dw), free(r->dw_again); }

typedef struct {
    double *wte, *dout;
    const int32_t *tok;
    int64_t N, C;
} emb_ref;

static double emb_loss(void *p) {
    emb_ref *c = p;
    double l = 0.0;
    for (int64_t n = 0; n < c->N; n++)
        l += ops_dot(c->wte + c->tok[n] * c->C, c->dout + n * c->C, c->C);
    return l;
}

static void emb_check(ops_ctx *x, int i) {
    int64_t N = EMB[i].N, C = EMB[i].C, V = EMB[i].V;
    ops_case(x, "N%lld C%lld V%lld seed %llu", (long long)N, (long long)C, (long long)V,
             (unsigned long long)EMB[i].seed);
    ops_rng r = {EMB[i].seed};
    int32_t *tok = xmalloc((size_t)N * sizeof *tok);
    for (int64_t n = 0; n < N; n++)
        tok[n] = EMB[i].token_mode == 1 && n % 4 == 0 ? 0 : (int32_t)ops_int(&r, V);
    if (EMB[i].token_mode == 0)
        for (int64_t n = 0; n < 3 && n < N; n++) tok[n] = 3;  // repeats
    float *wte = ops_rand(&r, V * C, -1, 1), *dy = ops_rand(&r, N * C, -1, 1);
    float *z = ops_fzeros(V * C);
    if (x->cpu_selected) {
        emb_res r1 = emb_run(x, x->cpu, tok, wte, dy, z, N, C, V, 1);
        emb_res r2 = emb_run(x, x->cpu, tok, wte, dy, z, N, C, V, 2);
        bool same = true;
        for (int64_t n = 0; n < N; n++)
            same &= !memcmp(r1.out + n * C, wte + tok[n] * C, (size_t)C * 4);
        ops_expect(x, "cpu", "out = wte rows (bits)", same, NULL);
        emb_ref c = {ops_dcopy(wte, V * C), ops_dcopy(dy, N * C), tok, N, C};
        double *want = ops_dzeros(V * C);
        const char *what = "dwte vs fd";
        if (V * C <= 5000) {
            ops_fd_grad(want, c.wte, V * C, 1, emb_loss, &c, 1e-3);
        } else {  // the loss is linear in wte: its gradient is the float64 scatter sum
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < C; k++) want[tok[n] * C + k] += c.dout[n * C + k];
            what = "dwte vs float64 sum";
        }
        ops_cmp_close(x, "cpu", what, r1.dw, want, V * C, 1e-5, 1e-5);
        ops_scale(want, V * C, 2.0);
        ops_cmp_close(x, "cpu", "dwte, 2 calls (+=)", r2.dw, want, V * C, 2e-5, 1e-5);
        ops_cmp_bits(x, "cpu", "dwte again (bits)", r1.dw_again, r1.dw, (size_t)(V * C) * 4);
        int nt = ops_threads();
        ops_set_threads(1);
        emb_res t1 = emb_run(x, x->cpu, tok, wte, dy, z, N, C, V, 1);
        ops_set_threads(2);
        emb_res t2 = emb_run(x, x->cpu, tok, wte, dy, z, N, C, V, 1);
        ops_set_threads(nt);
        ops_cmp_bits(x, "cpu", "dwte 1 vs 2 threads", t1.dw, t2.dw, (size_t)(V * C) * 4);
        emb_free(&r1), emb_free(&r2), emb_free(&t1), emb_free(&t2);
        free(c.wte), free(c.dout), free(want);
    }
    OPS_FOR_OTHER(x, be) {
        float *wr = ops_fcopy(wte, V * C), *dyr = ops_fcopy(dy, N * C);
        float *dw0 = ops_rand(&r, V * C, -1, 1);
        ops_round(wr, V * C, be->dt), ops_round(dyr, N * C, be->dt);
        emb_res ref = emb_run(x, x->cpu, tok, wr, dyr, dw0, N, C, V, 1);
        emb_res got = emb_run(x, be, tok, wr, dyr, dw0, N, C, V, 1);
        ops_cmp_abs(x, be->name, "out", got.out, ref.out, N * C, 0.0);
        ops_cmp_rel(x, be->name, "dwte +=", got.dw, ref.dw, V * C, 1e-5);
        ops_cmp_bits(x, be->name, "dwte again (bits)", got.dw_again, got.dw,
                     (size_t)(V * C) * 4);
        emb_free(&ref), emb_free(&got);
        free(wr), free(dyr), free(dw0);
    }
    free(tok), free(wte), free(dy), free(z);
}

static void emb_perf(ops_ctx *x, const ops_backend *be, int i) {
    const int64_t N = 4096, C = 576, V = 49152;
    ops_case(x, "N%lld C%lld V%lld %s", (long long)N, (long long)C, (long long)V,
             ops_dt_name(be->dt));
    ops_rng r = {6};
    int32_t *tok = xmalloc((size_t)N * sizeof *tok);
    for (int64_t n = 0; n < N; n++) tok[n] = (int32_t)ops_int(&r, V);
    float *wte = ops_rand(&r, V * C, -1, 1), *dy = ops_rand(&r, N * C, -1, 1);
    float *z = ops_fzeros(V * C);
    emb_res res = emb_run(x, be, tok, wte, dy, z, N, C, V, 1);
    emb_free(&res);
    free(tok), free(wte), free(dy), free(z);
}

const ops_op ops_embedding = {"embedding", N_EMB, emb_check, 1, emb_perf};
