// ops_rope: fused RoPE over q and k, in place, forward and backward, through
// the backend, for every table the run config can produce (default, linear,
// dynamic NTK, YaRN, LongRoPE with n_hat, Llama 3, plus a hand-made table
// with mixed factors as the old GPU test had, and mixed-windows tables whose
// tokens pick the short or the long factors by a window flag), both layouts, partial rotary,
// attention factor, GQA and q only (Hkv = 0). The cpu column against a naive
// float64 rotation (forward: +angle, backward: -angle) and the backward
// against a directional derivative of the float64 forward (the transpose
// identity). The RoPE test vectors and table maths stay in
// tests/unit/test_rope.c.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "ops_cases_rope.h"
#include "ops_ops.h"
#include "rope.h"

// Against the cpu (rel): fp32 1e-5, bf16 1e-2. cpu vs float64: atol 1e-6 rtol 1e-6.
static const double TOL[2] = {1e-5, 1e-2};

static void make_table(rope_table *t, int i) {
    int D = RP[i].D, d = RP[i].d;
    if (RP[i].table == TAB_WINDOWS) {  // longrope, short and long factors in every pair
        rope_config c = rope_config_default(D);
        c.type = ROPE_TYPE_LONGROPE;
        c.partial_rotary_factor = (double)d / D;
        c.max_position_embeddings = 131072;
        c.original_max_position_embeddings = 4096;
        c.n_factors = d / 2;
        for (int k = 0; k < d / 2; k++) c.short_factor[k] = 1.0 + 0.05 * k, c.long_factor[k] = 1.0 + 1.5 * k;
        c.n_hat = RP[i].n_hat;
        rope_table_init_mixed(t, &c);
        return;
    }
    if (RP[i].table == TAB_MIXED) {  // base 500000, the high pairs divided by 8
        memset(t, 0, sizeof *t);
        t->rotary_dim = d;
        t->n_pairs = d / 2;
        for (int k = 0; k < d / 2; k++) {
            t->inv_freq_orig[k] = (float)pow(500000.0, -2.0 * k / d);
            t->inv_freq[k] = t->inv_freq_orig[k] / (k < d / 8 ? 1.0f : 8.0f);
        }
        t->n_hat = RP[i].n_hat;
        t->attention_factor = RP[i].attn;
        return;
    }
    rope_config c = rope_config_default(D);
    c.type = (rope_type)RP[i].table;
    c.partial_rotary_factor = (double)d / D;
    c.max_position_embeddings = 131072;
    c.original_max_position_embeddings = 8192;
    int64_t seq_len = 0;
    switch (c.type) {
    case ROPE_TYPE_LINEAR: c.factor = 4; break;
    case ROPE_TYPE_DYNAMIC: c.factor = 4, seq_len = 65536; break;
    case ROPE_TYPE_YARN: c.factor = 16; break;
    case ROPE_TYPE_LLAMA3:
        c.theta = 500000, c.factor = 8, c.low_freq_factor = 1, c.high_freq_factor = 4;
        break;
    case ROPE_TYPE_LONGROPE:
        c.n_factors = d / 2;
        for (int k = 0; k < d / 2; k++) c.short_factor[k] = 1.0 + 0.1 * k, c.long_factor[k] = 1.0 + k;
        c.n_hat = RP[i].n_hat;
        seq_len = 131072;
        break;
    default: break;
    }
    rope_table_init(t, &c, seq_len);
}

static const char *table_name(int i) {
    return RP[i].table == TAB_MIXED     ? "mixed"
           : RP[i].table == TAB_WINDOWS ? "windows"
                                        : rope_type_name((rope_type)RP[i].table);
}

typedef struct {
    float *q, *k;
} rp_res;

// win: the window flags of a mixed table, else NULL.
static rp_res rp_run(ops_ctx *x, const ops_backend *be, const float *q, const float *k,
                     const int32_t *pos, const uint8_t *win, const rope_table *t, rope_layout L,
                     int64_t N, int H, int Hkv, int D, bool backward) {
    backend *b = be->b;
    bk_dtype dt = be->dt;
    int64_t nq = N * H * D, nk = N * Hkv * D;
    void *dq = ops_up(be, q, nq, dt), *dk = ops_up(be, k, nk, dt), *dp = ops_up_i32(be, pos, N);
    uint8_t *dw = win ? ops_up_bytes(be, win, (size_t)N) : NULL;
    double bytes = 2.0 * (double)(nq + nk) * (double)bk_dtype_size(dt);
    double fl = 6.0 * (double)(N * (H + Hkv)) * t->n_pairs;
    if (backward)
        OPS_TIMED(x, be, "bwd", bytes, fl, b->op->rope_backward(b, dq, dk, dp, dw, t, L, N, H, Hkv, D));
    else
        OPS_TIMED(x, be, "fwd", bytes, fl, b->op->rope_forward(b, dq, dk, dp, dw, t, L, N, H, Hkv, D));
    rp_res r = {ops_down(be, dq, nq, dt), ops_down(be, dk, nk, dt)};
    ops_free(be, dq), ops_free(be, dk), ops_free(be, dp);
    if (dw) ops_free(be, dw);
    return r;
}
static void rp_free(rp_res *r) { free(r->q), free(r->k); }

// y = x rotated by sign * angle, float64, (N, nh, D); win as rp_run.
static void naive_rotate(double *y, const double *xs, const int32_t *pos, const uint8_t *win,
                         const rope_table *t, rope_layout L, int64_t N, int nh, int D,
                         double sign) {
    int half = t->n_pairs;
    for (int64_t n = 0; n < N; n++)
        for (int h = 0; h < nh; h++) {
            const double *xh = xs + (n * nh + h) * D;
            double *yh = y + (n * nh + h) * D;
            for (int j = 0; j < D; j++) yh[j] = xh[j];
            for (int i = 0; i < half; i++) {
                int j0 = L == ROPE_LAYOUT_HALF ? i : 2 * i;
                int j1 = L == ROPE_LAYOUT_HALF ? i + half : 2 * i + 1;
                double f = win && win[n] == ROPE_WIN_SHORT ? t->inv_freq_short[i]
                           : pos[n] < t->n_hat                ? t->inv_freq_orig[i]
                                                               : t->inv_freq[i];
                double th = f * pos[n];
                double c = t->attention_factor * cos(th), s = sign * t->attention_factor * sin(th);
                yh[j0] = xh[j0] * c - xh[j1] * s;
                yh[j1] = xh[j0] * s + xh[j1] * c;
            }
        }
}

typedef struct {
    double *x, *w;  // (N, nh, D) input, weights of the loss sum(w * rope(x))
    const int32_t *pos;
    const uint8_t *win;
    const rope_table *t;
    rope_layout L;
    int64_t N;
    int nh, D;
} rp_loss_ctx;

static double rp_loss(void *p) {
    rp_loss_ctx *c = p;
    int64_t n = c->N * c->nh * c->D;
    double *y = ops_dzeros(n);
    naive_rotate(y, c->x, c->pos, c->win, c->t, c->L, c->N, c->nh, c->D, 1.0);
    double l = ops_dot(y, c->w, n);
    free(y);
    return l;
}

static void cpu_column(ops_ctx *x, const float *q, const float *k, const int32_t *pos,
                       const uint8_t *win, const rope_table *t, rope_layout L, int64_t N, int H,
                       int Hkv, int D, ops_rng *rng) {
    int64_t nq = N * H * D, nk = N * Hkv * D;
    double *qd = ops_dcopy(q, nq), *kd = ops_dcopy(k, nk);
    double *yq = ops_dzeros(nq), *yk = ops_dzeros(nk);
    for (int dir = 0; dir < 2; dir++) {
        rp_res r = rp_run(x, x->cpu, q, k, pos, win, t, L, N, H, Hkv, D, dir == 1);
        double sign = dir == 0 ? 1.0 : -1.0;
        naive_rotate(yq, qd, pos, win, t, L, N, H, D, sign);
        naive_rotate(yk, kd, pos, win, t, L, N, Hkv, D, sign);
        ops_cmp_close(x, "cpu", dir ? "bwd q vs float64" : "fwd q vs float64", r.q, yq, nq, 1e-6,
                      1e-6);
        ops_cmp_close(x, "cpu", dir ? "bwd k vs float64" : "fwd k vs float64", r.k, yk, nk, 1e-6,
                      1e-6);
        rp_free(&r);
    }
    // backward(dy) is the gradient of sum(dy * forward(x)): a directional
    // derivative of the float64 forward along a random u must equal <bwd(dy), u>
    rp_res g = rp_run(x, x->cpu, q, k, pos, win, t, L, N, H, Hkv, D, true);  // dy = q, k
    double *u = ops_dzeros(nq);
    for (int64_t i = 0; i < nq; i++) u[i] = ops_unif(rng, -1, 1);
    rp_loss_ctx c = {ops_dzeros(nq), qd, pos, win, t, L, N, H, D};
    double fd = ops_fd_dir(c.x, u, nq, rp_loss, &c, 1e-3);
    ops_cmp_dir(x, "cpu", "bwd q vs fd (directional)", g.q, u, nq, fd, 0.0, 1e-6);
    rp_free(&g);
    free(u), free(c.x), free(qd), free(kd), free(yq), free(yk);
}

static void rp_check(ops_ctx *x, int i) {
    int64_t N = RP[i].N;
    int H = RP[i].H, Hkv = RP[i].Hkv, D = RP[i].D;
    rope_table t;
    make_table(&t, i);
    int32_t *pos = xmalloc((size_t)N * sizeof *pos);
    uint8_t *win = t.short_len > 0 ? xmalloc((size_t)N) : NULL;
    for (int L = 0; L < 2; L++) {
        rope_layout lay = L ? ROPE_LAYOUT_INTERLEAVED : ROPE_LAYOUT_HALF;
        ops_case(x, "%s %s N%lld H%d/%d D%d d%d%s s%llu", table_name(i), L ? "inter" : "half",
                 (long long)N, H, Hkv, D, t.rotary_dim, t.n_hat ? " n_hat" : "",
                 (unsigned long long)RP[i].seed);
        ops_rng r = {RP[i].seed + 1000 * (uint64_t)L};
        for (int64_t n = 0; n < N; n++) pos[n] = n % 3 == 0 ? (int32_t)n : (int32_t)ops_int(&r, 131072);
        if (win) {  // documents of 1-20 tokens, short or long at random, flags by rope_windows
            int32_t *seg = xmalloc((size_t)N * sizeof *seg);
            int32_t doc = 0;
            for (int64_t n = 0; n < N;) {
                int64_t len = 1 + ops_int(&r, 20);
                int32_t start = ops_int(&r, 2) ? 0 : (int32_t)(t.short_len - 3);  // long ones pass short_len
                for (int64_t j = 0; j < len && n < N; j++, n++) pos[n] = start + (int32_t)j, seg[n] = doc;
                doc++;
            }
            rope_windows(win, pos, seg, 1, N, t.short_len);
            free(seg);
        }
        int64_t nq = N * H * D, nk = N * Hkv * D;
        float *q = ops_rand(&r, nq, -1, 1), *k = ops_rand(&r, nk, -1, 1);
        if (x->cpu_selected) cpu_column(x, q, k, pos, win, &t, lay, N, H, Hkv, D, &r);
        OPS_FOR_OTHER(x, be) {
            float *qr = ops_fcopy(q, nq), *kr = ops_fcopy(k, nk);
            ops_round(qr, nq, be->dt), ops_round(kr, nk, be->dt);
            for (int dir = 0; dir < 2; dir++) {
                rp_res ref = rp_run(x, x->cpu, qr, kr, pos, win, &t, lay, N, H, Hkv, D, dir == 1);
                rp_res got = rp_run(x, be, qr, kr, pos, win, &t, lay, N, H, Hkv, D, dir == 1);
                ops_cmp_rel(x, be->name, dir ? "bwd q" : "fwd q", got.q, ref.q, nq, TOL[be->dt]);
                ops_cmp_rel(x, be->name, dir ? "bwd k" : "fwd k", got.k, ref.k, nk, TOL[be->dt]);
                rp_free(&ref), rp_free(&got);
            }
            free(qr), free(kr);
        }
        free(q), free(k);
    }
    free(pos), free(win);
}

// q 32 x 128 heads, k 8 x 128 (a 7-8B shape) at 4K and 32K tokens.
static const int64_t PERF[] = {4096, 32768};

static void rp_perf(ops_ctx *x, const ops_backend *be, int i) {
    int64_t N = PERF[i];
    const int H = 32, Hkv = 8, D = 128;
    rope_config c = rope_config_default(D);
    rope_table t;
    rope_table_init(&t, &c, 0);
    ops_case(x, "default half N%lld H%d/%d D%d %s", (long long)N, H, Hkv, D, ops_dt_name(be->dt));
    ops_rng r = {8};
    int32_t *pos = xmalloc((size_t)N * sizeof *pos);
    for (int64_t n = 0; n < N; n++) pos[n] = (int32_t)n;
    float *q = ops_rand(&r, N * H * D, -1, 1), *k = ops_rand(&r, N * Hkv * D, -1, 1);
    for (int dir = 0; dir < 2; dir++) {
        rp_res res = rp_run(x, be, q, k, pos, NULL, &t, ROPE_LAYOUT_HALF, N, H, Hkv, D, dir == 1);
        rp_free(&res);
    }
    free(pos), free(q), free(k);
}

const ops_op ops_rope = {"rope", N_RP, rp_check, 2, rp_perf};
