// ops_attn: whole causal (or not) attention through the backend, forward
// (out, lse) and backward (dq, dk, dv +=), GQA, packed documents (segment
// ids), block offsets (q_start = k_start > 0, as a sequence-parallel shard).
// The cpu column against a naive float64 softmax(QK^T)V and its analytic
// float64 backward, both checked by directional derivatives of the float64
// loss sum(dout * out), and += (two calls = twice). Other columns against the
// cpu backend (the cuda kernels take head dims 64 and 128).
// The block form (ring attention pieces, LSE merge) is tested where it is
// called: tests/unit/test_attn.c (cpu) and tests/gpu/test_gpu_attn.c (cuda).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "ops_ops.h"

static const struct {
    int64_t B, T;
    int H, Hkv, D;
    bool causal, seg;
    int64_t start;
    uint64_t seed;
} AT[] = {
    {1, 1, 2, 1, 64, true, false, 0, 121},
    {1, 17, 4, 2, 64, true, false, 0, 122},
    {2, 64, 4, 2, 64, true, true, 0, 123},     // GQA, packed documents
    {1, 33, 4, 4, 128, false, false, 0, 124},  // MHA, not causal
    {2, 40, 8, 2, 64, true, true, 100, 125},   // block offsets (a later shard)
    {1, 80, 2, 1, 128, true, false, 7, 126},
    {1, 128, 4, 1, 64, true, true, 0, 127},
};
enum { N_AT = sizeof AT / sizeof *AT };
// Against the cpu: out, dq, dk, dv rel fp32 1e-4 bf16 2e-2; lse abs 2e-3 (an
// lse of -inf must match exactly). As tests/gpu/test_gpu_attn.c.
static const double TOL[2] = {1e-4, 2e-2};

typedef struct {
    float *out, *lse, *dq, *dk, *dv;
} at_res;

static attn_shape shape_of(int i) {
    attn_shape s = {.B = AT[i].B, .Tq = AT[i].T, .Tk = AT[i].T, .H = AT[i].H, .Hkv = AT[i].Hkv,
                    .D = AT[i].D, .q_start = AT[i].start, .k_start = AT[i].start,
                    .scale = 1.0f / sqrtf((float)AT[i].D), .causal = AT[i].causal};
    return s;
}

static at_res at_run(ops_ctx *x, const ops_backend *be, const attn_shape *s, const float *q,
                     const float *k, const float *v, const int32_t *seg, const float *dout,
                     const float *dq0, const float *dk0, const float *dv0, int calls) {
    backend *b = be->b;
    bk_dtype dt = be->dt;
    int64_t nq = s->B * s->Tq * s->H * s->D, nk = s->B * s->Tk * s->Hkv * s->D;
    double es = (double)bk_dtype_size(dt);
    double fl = 4.0 * (double)s->B * s->H * (double)s->Tq * (double)s->Tk * s->D *
                (s->causal ? 0.5 : 1.0);
    void *dq_ = ops_up(be, q, nq, dt), *dk_ = ops_up(be, k, nk, dt), *dv_ = ops_up(be, v, nk, dt);
    void *dseg = seg ? ops_up_i32(be, seg, s->B * s->Tq) : NULL;
    void *out = ops_nan(be, nq, dt);
    float *lse = ops_nan(be, s->B * s->H * s->Tq, BK_F32);
    void *ddo = ops_up(be, dout, nq, dt), *gq = ops_up(be, dq0, nq, dt);
    void *gk = ops_up(be, dk0, nk, dt), *gv = ops_up(be, dv0, nk, dt);
    OPS_TIMED(x, be, "fwd", (double)(2 * nq + 2 * nk) * es, fl,
              b->op->attn_forward(b, out, lse, dq_, dk_, dv_, dseg, s));
    for (int c = 0; c < calls; c++)
        OPS_TIMED(x, be, "bwd", (double)(4 * nq + 4 * nk) * es, 2.5 * fl,
                  b->op->attn_backward(b, gq, gk, gv, ddo, dq_, dk_, dv_, out, lse, dseg, s));
    at_res r = {ops_down(be, out, nq, dt), ops_down(be, lse, s->B * s->H * s->Tq, BK_F32),
                ops_down(be, gq, nq, dt), ops_down(be, gk, nk, dt), ops_down(be, gv, nk, dt)};
    ops_free(be, dq_), ops_free(be, dk_), ops_free(be, dv_), ops_free(be, out), ops_free(be, lse);
    ops_free(be, ddo), ops_free(be, gq), ops_free(be, gk), ops_free(be, gv);
    if (dseg) ops_free(be, dseg);
    return r;
}
static void at_free(at_res *r) { free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv); }

// float64 reference -----------------------------------------------------------
typedef struct {
    const attn_shape *s;
    double *q, *k, *v, *dout;
    const int32_t *seg;
} at_ref;

static bool visible(const at_ref *c, int64_t b, int64_t i, int64_t j) {
    const attn_shape *s = c->s;
    if (s->causal && s->k_start + j > s->q_start + i) return false;
    return !c->seg || c->seg[b * s->Tq + i] == c->seg[b * s->Tk + j];
}

// out, lse (may be NULL) and, when dq != NULL, the gradients SET from dout.
static double at_ref_run(const at_ref *c, double *out, double *lse, double *dq, double *dk,
                         double *dv) {
    const attn_shape *s = c->s;
    int64_t T = s->Tq, Tk = s->Tk;
    int H = s->H, Hkv = s->Hkv, D = s->D, G = H / Hkv;
    int64_t nq = s->B * T * H * D, nk = s->B * Tk * Hkv * D;
    if (dq) memset(dq, 0, (size_t)nq * 8), memset(dk, 0, (size_t)nk * 8), memset(dv, 0, (size_t)nk * 8);
    double *p = ops_dzeros(Tk), *o = ops_dzeros(D), loss = 0.0;
    for (int64_t b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++)
            for (int64_t i = 0; i < T; i++) {
                const double *qi = c->q + ((b * T + i) * H + h) * D;
                double mx = -INFINITY;
                for (int64_t j = 0; j < Tk; j++) {
                    p[j] = -INFINITY;
                    if (!visible(c, b, i, j)) continue;
                    p[j] = s->scale * ops_dot(qi, c->k + ((b * Tk + j) * Hkv + h / G) * D, D);
                    mx = fmax(mx, p[j]);
                }
                double sum = 0.0;
                for (int64_t j = 0; j < Tk; j++) sum += isinf(p[j]) ? 0.0 : exp(p[j] - mx);
                double l = sum > 0 ? mx + log(sum) : -INFINITY;
                memset(o, 0, (size_t)D * 8);
                for (int64_t j = 0; j < Tk; j++) {
                    p[j] = isinf(p[j]) ? 0.0 : exp(p[j] - l);
                    const double *vj = c->v + ((b * Tk + j) * Hkv + h / G) * D;
                    for (int d = 0; d < D; d++) o[d] += p[j] * vj[d];
                }
                int64_t oi = ((b * T + i) * H + h) * D;
                if (out) memcpy(out + oi, o, (size_t)D * 8);
                if (lse) lse[(b * H + h) * T + i] = l;
                if (c->dout) loss += ops_dot(o, c->dout + oi, D);
                if (!dq) continue;
                const double *go = c->dout + oi;
                double delta = ops_dot(go, o, D);
                for (int64_t j = 0; j < Tk; j++) {
                    if (p[j] == 0.0) continue;
                    int64_t kj = ((b * Tk + j) * Hkv + h / G) * D;
                    double dp = ops_dot(go, c->v + kj, D), ds = p[j] * (dp - delta);
                    for (int d = 0; d < D; d++) {
                        dq[oi + d] += s->scale * ds * c->k[kj + d];
                        dk[kj + d] += s->scale * ds * qi[d];
                        dv[kj + d] += p[j] * go[d];
                    }
                }
            }
    free(p), free(o);
    return loss;
}
static double at_loss(void *p) { return at_ref_run(p, NULL, NULL, NULL, NULL, NULL); }

static void cpu_column(ops_ctx *x, const attn_shape *s, const float *q, const float *k,
                       const float *v, const int32_t *seg, const float *dout, ops_rng *rng) {
    int64_t nq = s->B * s->Tq * s->H * s->D, nk = s->B * s->Tk * s->Hkv * s->D;
    int64_t nl = s->B * s->H * s->Tq;
    at_ref c = {s, ops_dcopy(q, nq), ops_dcopy(k, nk), ops_dcopy(v, nk), ops_dcopy(dout, nq), seg};
    double *out = ops_dzeros(nq), *lse = ops_dzeros(nl), *dq = ops_dzeros(nq);
    double *dk = ops_dzeros(nk), *dv = ops_dzeros(nk);
    at_ref_run(&c, out, lse, dq, dk, dv);
    float *zq = ops_fzeros(nq), *zk = ops_fzeros(nk);
    at_res r = at_run(x, x->cpu, s, q, k, v, seg, dout, zq, zk, zk, 1);
    at_res r2 = at_run(x, x->cpu, s, q, k, v, seg, dout, zq, zk, zk, 2);
    float *lsef = xmalloc((size_t)nl * sizeof *lsef);
    for (int64_t i = 0; i < nl; i++) lsef[i] = (float)lse[i];
    ops_cmp_close(x, "cpu", "out vs float64", r.out, out, nq, 1e-6, 1e-5);
    ops_cmp_abs(x, "cpu", "lse vs float64", r.lse, lsef, nl, 1e-5);
    ops_cmp_close(x, "cpu", "dq vs float64", r.dq, dq, nq, 1e-6, 1e-4);
    ops_cmp_close(x, "cpu", "dk vs float64", r.dk, dk, nk, 1e-6, 1e-4);
    ops_cmp_close(x, "cpu", "dv vs float64", r.dv, dv, nk, 1e-6, 1e-4);
    // the float64 gradients against directional derivatives of the float64 loss
    double *u = ops_dzeros(nq > nk ? nq : nk);
    for (int64_t i = 0; i < (nq > nk ? nq : nk); i++) u[i] = ops_unif(rng, -1, 1);
    double *in[3] = {c.q, c.k, c.v}, *g[3] = {dq, dk, dv};
    int64_t n[3] = {nq, nk, nk};
    const char *what[3] = {"dq vs fd (directional)", "dk vs fd (directional)",
                           "dv vs fd (directional)"};
    float *gf[3] = {r.dq, r.dk, r.dv};
    for (int t = 0; t < 3; t++) {
        double fd = ops_fd_dir(in[t], u, n[t], at_loss, &c, 1e-4);
        ops_cmp_dir(x, "cpu", what[t], gf[t], u, n[t], fd, 1e-7, 1e-5);
        (void)g;
    }
    ops_scale(dq, nq, 2.0), ops_scale(dk, nk, 2.0), ops_scale(dv, nk, 2.0);
    ops_cmp_close(x, "cpu", "dq, 2 calls (+=)", r2.dq, dq, nq, 2e-6, 1e-4);
    ops_cmp_close(x, "cpu", "dk, 2 calls (+=)", r2.dk, dk, nk, 2e-6, 1e-4);
    ops_cmp_close(x, "cpu", "dv, 2 calls (+=)", r2.dv, dv, nk, 2e-6, 1e-4);
    at_free(&r), at_free(&r2);
    free(c.q), free(c.k), free(c.v), free(c.dout), free(out), free(lse), free(dq), free(dk);
    free(dv), free(zq), free(zk), free(lsef), free(u);
}

static int32_t *make_seg(ops_rng *r, int64_t B, int64_t T) {
    int32_t *seg = xmalloc((size_t)(B * T) * sizeof *seg);
    for (int64_t b = 0; b < B; b++) {
        int32_t doc = 0;
        int64_t left = 1 + ops_int(r, T / 2 + 1);
        for (int64_t t = 0; t < T; t++) {
            if (left-- == 0) doc++, left = ops_int(r, T / 2 + 1);
            seg[b * T + t] = doc;
        }
    }
    return seg;
}

static void at_check(ops_ctx *x, int i) {
    attn_shape s = shape_of(i);
    ops_case(x, "B%lld T%lld H%d/%d D%d%s%s start%lld s%llu", (long long)s.B, (long long)s.Tq,
             s.H, s.Hkv, s.D, s.causal ? " causal" : "", AT[i].seg ? " seg" : "",
             (long long)s.q_start, (unsigned long long)AT[i].seed);
    ops_rng r = {AT[i].seed};
    int64_t nq = s.B * s.Tq * s.H * s.D, nk = s.B * s.Tk * s.Hkv * s.D;
    float *q = ops_rand(&r, nq, -1, 1), *k = ops_rand(&r, nk, -1, 1), *v = ops_rand(&r, nk, -1, 1);
    float *dout = ops_rand(&r, nq, -1, 1);
    int32_t *seg = AT[i].seg ? make_seg(&r, s.B, s.Tq) : NULL;
    if (x->cpu_selected) cpu_column(x, &s, q, k, v, seg, dout, &r);
    OPS_FOR_OTHER(x, be) {
        float *qr = ops_fcopy(q, nq), *kr = ops_fcopy(k, nk), *vr = ops_fcopy(v, nk);
        float *dor = ops_fcopy(dout, nq), *dq0 = ops_rand(&r, nq, -1, 1);
        float *dk0 = ops_rand(&r, nk, -1, 1), *dv0 = ops_rand(&r, nk, -1, 1);
        float *all[] = {qr, kr, vr, dor, dq0, dk0, dv0};
        int64_t ns[] = {nq, nk, nk, nq, nq, nk, nk};
        for (int t = 0; t < 7; t++) ops_round(all[t], ns[t], be->dt);
        at_res ref = at_run(x, x->cpu, &s, qr, kr, vr, seg, dor, dq0, dk0, dv0, 1);
        at_res got = at_run(x, be, &s, qr, kr, vr, seg, dor, dq0, dk0, dv0, 1);
        double tol = TOL[be->dt];
        ops_cmp_rel(x, be->name, "out", got.out, ref.out, nq, tol);
        ops_cmp_abs(x, be->name, "lse", got.lse, ref.lse, s.B * s.H * s.Tq, 2e-3);
        ops_cmp_rel(x, be->name, "dq +=", got.dq, ref.dq, nq, tol);
        ops_cmp_rel(x, be->name, "dk +=", got.dk, ref.dk, nk, tol);
        ops_cmp_rel(x, be->name, "dv +=", got.dv, ref.dv, nk, tol);
        at_free(&ref), at_free(&got);
        for (int t = 0; t < 7; t++) free(all[t]);
    }
    free(q), free(k), free(v), free(dout), free(seg);
}

// The 135M model's attention (9 heads / 3 kv, D 64) at 1K and 4K tokens.
static const int64_t PERF[] = {1024, 4096};

static void at_perf(ops_ctx *x, const ops_backend *be, int i) {
    attn_shape s = {.B = 1, .Tq = PERF[i], .Tk = PERF[i], .H = 9, .Hkv = 3, .D = 64,
                    .scale = 0.125f, .causal = true};
    ops_case(x, "B1 T%lld H9/3 D64 causal %s", (long long)s.Tq, ops_dt_name(be->dt));
    ops_rng r = {13};
    int64_t nq = s.Tq * s.H * s.D, nk = s.Tk * s.Hkv * s.D;
    float *q = ops_rand(&r, nq, -1, 1), *k = ops_rand(&r, nk, -1, 1), *v = ops_rand(&r, nk, -1, 1);
    float *dout = ops_rand(&r, nq, -1, 1), *zq = ops_fzeros(nq), *zk = ops_fzeros(nk);
    at_res res = at_run(x, be, &s, q, k, v, NULL, dout, zq, zk, zk, 1);
    at_free(&res);
    free(q), free(k), free(v), free(dout), free(zq), free(zk);
}

const ops_op ops_attn = {"attn", N_AT, at_check, 2, at_perf};
