#include "emu.cpp"

// Host launchers mirroring launch_fwd_bf16 / launch_bwd_bf16 / cu_attn_backward_delta.
template <int D, bool MERGE>
static void emu_fwd(float *out_acc, bf16 *out, float *lse, const bf16 *q, const bf16 *k,
                    const bf16 *v, const int32_t *sq, const int32_t *sk, const attn_shape &s)
{
    dim3 grid{(unsigned)((s.Tq + FWD_BR - 1) / FWD_BR), (unsigned)s.H, (unsigned)s.B};
    launch(grid, FWD_THREADS, fwd_smem_bytes<D>(), [&] {
        attn_fwd_bf16_kernel<D, MERGE>(out_acc, out, lse, q, k, v, sq, sk, s);
    });
}
template <int D>
static void emu_bwd(float *dq, float *dk, float *dv, const bf16 *dout, const bf16 *q,
                    const bf16 *k, const bf16 *v, const float *lse, const float *delta,
                    const int32_t *sq, const int32_t *sk, const attn_shape &s)
{
    dim3 gq{(unsigned)((s.Tq + DQ_BR - 1) / DQ_BR), (unsigned)s.H, (unsigned)s.B};
    launch(gq, BWD_THREADS, dq_smem_bytes<D>(), [&] {
        attn_bwd_dq_bf16_kernel<D>(dq, dout, q, k, v, lse, delta, sq, sk, s);
    });
    dim3 gk{(unsigned)((s.Tk + BWD_BKV - 1) / BWD_BKV), (unsigned)s.Hkv, (unsigned)s.B};
    launch(gk, BWD_THREADS, dkdv_smem_bytes<D>(), [&] {
        attn_bwd_dkdv_bf16_kernel<D>(dk, dv, dout, q, k, v, lse, delta, sq, sk, s);
    });
}
template <int D, bool MERGE>
static void emu_fwd_f32(float *out, float *lse, const float *q, const float *k, const float *v,
                        const int32_t *sq, const int32_t *sk, const attn_shape &s)
{
    dim3 grid{(unsigned)((s.B * s.H * s.Tq + 3) / 4), 1, 1};
    launch(grid, F32_THREADS, 0, [&] { attn_fwd_f32_kernel<D, MERGE>(out, lse, q, k, v, sq, sk, s); });
}
template <int D>
static void emu_bwd_f32(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *lse, const float *delta,
                        const int32_t *sq, const int32_t *sk, const attn_shape &s)
{
    dim3 gq{(unsigned)((s.B * s.H * s.Tq + 3) / 4), 1, 1};
    launch(gq, F32_THREADS, 0, [&] {
        attn_bwd_dq_f32_kernel<D>(dq, dout, q, k, v, lse, delta, sq, sk, s);
    });
    dim3 gk{(unsigned)((s.B * s.Hkv * s.Tk + 3) / 4), 1, 1};
    launch(gk, F32_THREADS, 0, [&] {
        attn_bwd_dkdv_f32_kernel<D>(dk, dv, dout, q, k, v, lse, delta, sq, sk, s);
    });
}

// ---------------------------------------------------------------- reference (double)
static std::mt19937 rng(7);
static float urand() { return std::uniform_real_distribution<float>(-1.f, 1.f)(rng); }
static int32_t seg_of(int64_t b, int64_t pos)
{
    static const int lens[] = {37, 100, 5, 60};
    int64_t p = pos + b * 11, id = 0;
    for (int li = 0;; li = (li + 1) % 4, id++) {
        if (p < lens[li]) return (int32_t)id;
        p -= lens[li];
    }
}

struct Case {
    const char *name;
    int64_t B, Tq, Tk;
    int H, Hkv, D;
    int64_t qs, ks;
    bool causal, seg;
    int nsplit;  // key blocks merged (block form); 0: whole forward
};

static int n_fail = 0;
static void rep(const Case &c, const char *what, double err, double tol)
{
    bool ok = err <= tol && !isnan(err);
    n_fail += !ok;
    printf("  %-30s D=%-3d %-5s err %.3e tol %.0e %s\n", c.name, c.D, what, err, tol, ok ? "ok" : "FAIL");
}
static double relerr(const float *x, const double *r, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i])) return INFINITY;
        num = fmax(num, fabs(x[i] - r[i]));
        den = fmax(den, fabs(r[i]));
    }
    return den > 0 ? num / den : num;
}
static double lseerr(const float *x, const double *r, int64_t n)
{
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i])) return INFINITY;
        if (isinf(r[i]) || isinf(x[i])) {
            if ((double)x[i] != r[i]) return INFINITY;
            continue;
        }
        e = fmax(e, fabs(x[i] - r[i]));
    }
    return e;
}

template <int D>
static void run(const Case &c0, bool bf)
{
    Case c = c0;
    c.D = D;
    attn_shape s = {c.B, c.Tq, c.Tk, c.H, c.Hkv, D, c.qs, c.ks, 1.0f / sqrtf((float)D), c.causal};
    const int64_t nq = s.B * s.Tq * s.H * D, nk = s.B * s.Tk * s.Hkv * D, nl = s.B * s.H * s.Tq;
    std::vector<float> q(nq), k(nk), v(nk), dout(nq);
    auto rnd = [&](std::vector<float> &x, float a) {
        for (auto &e : x) {
            e = a * urand();
            if (bf) e = bf2f(f2bf(e));
        }
    };
    rnd(q, 2), rnd(k, 2), rnd(v, 1), rnd(dout, 1);
    std::vector<int32_t> sq(s.B * s.Tq), sk(s.B * s.Tk);
    for (int64_t b = 0; b < s.B; b++) {
        for (int64_t i = 0; i < s.Tq; i++) sq[b * s.Tq + i] = seg_of(b, s.q_start + i);
        for (int64_t j = 0; j < s.Tk; j++) sk[b * s.Tk + j] = seg_of(b, s.k_start + j);
    }
    auto vis = [&](int64_t b, int64_t i, int64_t j) {
        if (s.causal && s.k_start + j > s.q_start + i) return false;
        if (c.seg && sq[b * s.Tq + i] != sk[b * s.Tk + j]) return false;
        return true;
    };
    // reference forward / backward
    std::vector<double> ro(nq, 0), rl(nl), rdel(nl), rdq(nq, 0), rdk(nk, 0), rdv(nk, 0);
    const int G = s.H / s.Hkv;
    for (int64_t b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++) {
            int hk = h / G;
            for (int64_t i = 0; i < s.Tq; i++) {
                const float *qi = &q[((b * s.Tq + i) * s.H + h) * D];
                std::vector<double> sc(s.Tk);
                double mx = -INFINITY;
                for (int64_t j = 0; j < s.Tk; j++) {
                    if (!vis(b, i, j)) continue;
                    const float *kj = &k[((b * s.Tk + j) * s.Hkv + hk) * D];
                    double d = 0;
                    for (int e = 0; e < D; e++) d += (double)qi[e] * kj[e];
                    sc[j] = d * s.scale;
                    mx = fmax(mx, sc[j]);
                }
                double sum = 0;
                for (int64_t j = 0; j < s.Tk; j++)
                    if (vis(b, i, j)) sum += exp(sc[j] - mx);
                double lse = sum > 0 ? mx + log(sum) : -INFINITY;
                rl[(b * s.H + h) * s.Tq + i] = lse;
                double *oi = &ro[((b * s.Tq + i) * s.H + h) * D];
                const float *doi = &dout[((b * s.Tq + i) * s.H + h) * D];
                if (sum == 0) {
                    rdel[(b * s.H + h) * s.Tq + i] = 0;
                    continue;
                }
                for (int64_t j = 0; j < s.Tk; j++) {
                    if (!vis(b, i, j)) continue;
                    double p = exp(sc[j] - lse);
                    const float *vj = &v[((b * s.Tk + j) * s.Hkv + hk) * D];
                    for (int e = 0; e < D; e++) oi[e] += p * vj[e];
                }
                double del = 0;
                for (int e = 0; e < D; e++) del += oi[e] * doi[e];
                rdel[(b * s.H + h) * s.Tq + i] = del;
                for (int64_t j = 0; j < s.Tk; j++) {
                    if (!vis(b, i, j)) continue;
                    double p = exp(sc[j] - lse);
                    const float *vj = &v[((b * s.Tk + j) * s.Hkv + hk) * D];
                    const float *kj = &k[((b * s.Tk + j) * s.Hkv + hk) * D];
                    double dp = 0;
                    for (int e = 0; e < D; e++) dp += (double)doi[e] * vj[e];
                    double ds = p * (dp - del) * s.scale;
                    double *dqi = &rdq[((b * s.Tq + i) * s.H + h) * D];
                    double *dkj = &rdk[((b * s.Tk + j) * s.Hkv + hk) * D];
                    double *dvj = &rdv[((b * s.Tk + j) * s.Hkv + hk) * D];
                    for (int e = 0; e < D; e++) {
                        dqi[e] += ds * kj[e];
                        dkj[e] += ds * qi[e];
                        dvj[e] += p * doi[e];
                    }
                }
            }
        }
    // device buffers
    auto up_bf = [&](const std::vector<float> &x) {
        bf16 *d = (bf16 *)galloc(x.size() * 2);
        for (size_t i = 0; i < x.size(); i++) d[i].x = f2bf(x[i]);
        return d;
    };
    auto up_f = [&](const std::vector<float> &x) {
        float *d = (float *)galloc(x.size() * 4);
        memcpy(d, x.data(), x.size() * 4);
        return d;
    };
    auto up_i = [&](const std::vector<int32_t> &x) {
        int32_t *d = (int32_t *)galloc(x.size() * 4);
        memcpy(d, x.data(), x.size() * 4);
        return d;
    };
    float *g_lse = (float *)galloc(nl * 4), *g_del = (float *)galloc(nl * 4);
    std::vector<float> dq0(nq), dk0(nk), dv0(nk);
    for (auto &e : dq0) e = urand();
    for (auto &e : dk0) e = urand();
    for (auto &e : dv0) e = urand();
    float *g_dq = up_f(dq0);
    int32_t *g_sq = c.seg ? up_i(sq) : NULL;
    std::vector<float> out(nq), lse(nl);
    std::vector<float> gdk(dk0), gdv(dv0);
    // final lse / delta as floats for the block-form backward
    std::vector<float> flse(nl), fdel(nl);
    for (int64_t i = 0; i < nl; i++) flse[i] = (float)rl[i], fdel[i] = (float)rdel[i];

    if (c.nsplit == 0) {
        // whole: forward writes out/lse; delta from the output; backward
        void *g_q = bf ? (void *)up_bf(q) : (void *)up_f(q);
        void *g_k = bf ? (void *)up_bf(k) : (void *)up_f(k);
        void *g_v = bf ? (void *)up_bf(v) : (void *)up_f(v);
        void *g_do = bf ? (void *)up_bf(dout) : (void *)up_f(dout);
        void *g_out = galloc(nq * (bf ? 2 : 4));
        float *g_dk = up_f(dk0), *g_dv = up_f(dv0);
        int32_t *g_sk = c.seg ? up_i(sk) : NULL;
        memset(g_lse, 0xff, nl * 4);
        if (bf) emu_fwd<D, false>(NULL, (bf16 *)g_out, g_lse, (bf16 *)g_q, (bf16 *)g_k, (bf16 *)g_v, g_sq, g_sk, s);
        else emu_fwd_f32<D, false>((float *)g_out, g_lse, (float *)g_q, (float *)g_k, (float *)g_v, g_sq, g_sk, s);
        dim3 gd{(unsigned)((nl + 3) / 4), 1, 1};
        if (bf)
            launch(gd, 128, 0, [&] { attn_delta_kernel<bf16>(g_del, (bf16 *)g_do, (bf16 *)g_out, s.B, s.Tq, s.H, D); });
        else
            launch(gd, 128, 0, [&] { attn_delta_kernel<float>(g_del, (float *)g_do, (float *)g_out, s.B, s.Tq, s.H, D); });
        if (bf) emu_bwd<D>(g_dq, g_dk, g_dv, (bf16 *)g_do, (bf16 *)g_q, (bf16 *)g_k, (bf16 *)g_v, g_lse, g_del, g_sq, g_sk, s);
        else emu_bwd_f32<D>(g_dq, g_dk, g_dv, (float *)g_do, (float *)g_q, (float *)g_k, (float *)g_v, g_lse, g_del, g_sq, g_sk, s);
        for (int64_t i = 0; i < nq; i++) out[i] = bf ? bf2f(((bf16 *)g_out)[i].x) : ((float *)g_out)[i];
        memcpy(gdk.data(), g_dk, nk * 4);
        memcpy(gdv.data(), g_dv, nk * 4);
        memcpy(lse.data(), g_lse, nl * 4);
    } else {
        float *acc = (float *)galloc(nq * 4);
        memset(acc, 0, nq * 4);
        for (int64_t i = 0; i < nl; i++) g_lse[i] = -INFINITY;
        float *f_lse = up_f(flse), *f_del = up_f(fdel);
        void *g_q = bf ? (void *)up_bf(q) : (void *)up_f(q);
        void *g_do = bf ? (void *)up_bf(dout) : (void *)up_f(dout);
        for (int p = 0; p < c.nsplit; p++) {
            int64_t j0 = s.Tk * p / c.nsplit, j1 = s.Tk * (p + 1) / c.nsplit;
            attn_shape sb = s;
            sb.Tk = j1 - j0;
            sb.k_start = s.k_start + j0;
            if (sb.Tk == 0) continue;
            bool masked = sb.causal && sb.k_start > sb.q_start + sb.Tq - 1;
            std::vector<float> bk(s.B * sb.Tk * s.Hkv * D), bv(bk.size()), bdk(bk.size()), bdv(bk.size());
            std::vector<int32_t> bsk(s.B * sb.Tk);
            const int64_t row = s.Hkv * D;
            for (int64_t b = 0; b < s.B; b++) {
                memcpy(&bk[b * sb.Tk * row], &k[(b * s.Tk + j0) * row], sb.Tk * row * 4);
                memcpy(&bv[b * sb.Tk * row], &v[(b * s.Tk + j0) * row], sb.Tk * row * 4);
                memcpy(&bdk[b * sb.Tk * row], &gdk[(b * s.Tk + j0) * row], sb.Tk * row * 4);
                memcpy(&bdv[b * sb.Tk * row], &gdv[(b * s.Tk + j0) * row], sb.Tk * row * 4);
                memcpy(&bsk[b * sb.Tk], &sk[b * s.Tk + j0], sb.Tk * 4);
            }
            if (masked) continue;  // host early return
            void *g_k = bf ? (void *)up_bf(bk) : (void *)up_f(bk);
            void *g_v = bf ? (void *)up_bf(bv) : (void *)up_f(bv);
            float *g_dk = up_f(bdk), *g_dv = up_f(bdv);
            int32_t *g_sk = c.seg ? up_i(bsk) : NULL;
            if (bf) {
                emu_fwd<D, true>(acc, NULL, g_lse, (bf16 *)g_q, (bf16 *)g_k, (bf16 *)g_v, g_sq, g_sk, sb);
                emu_bwd<D>(g_dq, g_dk, g_dv, (bf16 *)g_do, (bf16 *)g_q, (bf16 *)g_k, (bf16 *)g_v, f_lse, f_del, g_sq, g_sk, sb);
            } else {
                emu_fwd_f32<D, true>(acc, g_lse, (float *)g_q, (float *)g_k, (float *)g_v, g_sq, g_sk, sb);
                emu_bwd_f32<D>(g_dq, g_dk, g_dv, (float *)g_do, (float *)g_q, (float *)g_k, (float *)g_v, f_lse, f_del, g_sq, g_sk, sb);
            }
            for (int64_t b = 0; b < s.B; b++) {
                memcpy(&gdk[(b * s.Tk + j0) * row], &g_dk[b * sb.Tk * row], sb.Tk * row * 4);
                memcpy(&gdv[(b * s.Tk + j0) * row], &g_dv[b * sb.Tk * row], sb.Tk * row * 4);
            }
        }
        memcpy(out.data(), acc, nq * 4);
        memcpy(lse.data(), g_lse, nl * 4);
    }
    std::vector<float> gdq(nq);
    memcpy(gdq.data(), g_dq, nq * 4);
    for (int64_t i = 0; i < nq; i++) gdq[i] -= dq0[i];
    for (int64_t i = 0; i < nk; i++) gdk[i] -= dk0[i], gdv[i] -= dv0[i];
    double tol = bf ? 2e-2 : 1e-4;
    printf("%s %s\n", bf ? "bf16" : "f32", c.name);
    rep(c, "out", relerr(out.data(), ro.data(), nq), tol);
    rep(c, "lse", lseerr(lse.data(), rl.data(), nl), bf ? 2e-3 : 1e-4);
    rep(c, "dq", relerr(gdq.data(), rdq.data(), nq), tol);
    rep(c, "dk", relerr(gdk.data(), rdk.data(), nk), tol);
    rep(c, "dv", relerr(gdv.data(), rdv.data(), nk), tol);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    g_copy_at_issue = argc > 1 && atoi(argv[1]) == 1;
    g_random_sched = !(argc > 2 && atoi(argv[2]) == 0);
    int only = argc > 3 ? atoi(argv[3]) : -1;
    const Case cases[] = {
        {"T=1 mha", 1, 1, 1, 2, 2, 0, 0, 0, false, false, 0},
        {"T=17 causal gqa", 1, 17, 17, 4, 2, 0, 0, 0, true, false, 0},
        {"T=130 causal gqa B2", 2, 130, 130, 2, 1, 0, 0, 0, true, false, 0},
        {"T=100 noncausal", 1, 100, 100, 2, 2, 0, 0, 0, false, false, 0},
        {"T=150 causal seg", 1, 150, 150, 2, 1, 0, 0, 0, true, true, 0},
        {"blk overlap", 1, 100, 90, 2, 1, 0, 1000, 1030, true, false, 1},
        {"blk before", 1, 70, 80, 2, 2, 0, 1000, 900, true, false, 1},
        {"merge 3 causal seg off", 1, 150, 150, 2, 1, 0, 300, 300, true, true, 3},
        {"merge 2 noncausal q!=k", 1, 40, 133, 2, 1, 0, 5, 77, false, false, 2},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        if (only >= 0 && i != only) continue;
        for (int bf = 1; bf >= (getenv("EMU_BF16_ONLY") ? 1 : 0); bf--) {
            run<64>(cases[i], bf);
            run<128>(cases[i], bf);
        }
    }
    printf("%s: %d failures (copy_at_issue=%d)\n", n_fail ? "FAIL" : "PASS", n_fail, g_copy_at_issue);
    printf("max smem touched: %zu\n", g_smem_hi);
    return n_fail != 0;
}
