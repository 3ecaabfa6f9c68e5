// Emulated cu_ops kernels (see run_ops.sh) against the CPU ops of kernels/cpu.
#include <stdarg.h>

#include <string>
#include "emu.cpp"

extern "C" {
#include "adamw.h"
#include "die.h"
#include "rmsnorm.h"
#include "rope.h"
#include "rope_scaling.h"
#include "swiglu.h"
#include "xent.h"
}

// die.h without die.c (no MPI here): a failed CHECK aborts.
extern "C" void die_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}
extern "C" void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

// ---------------------------------------------------------------- CUDA stand-ins
#undef __shared__
#define __shared__ static  // static __shared__ arrays: one per block (blocks run one at a time)
#define __grid_constant__
typedef void *cudaStream_t;
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaMemcpyDeviceToDevice = 3, cudaDevAttrMultiProcessorCount = 16 };
#undef CU_CHECK
#define CU_CHECK(x) (void)(x)
#define CU_CHECK_LAUNCH()
typedef enum { CU_F32 = 0, CU_BF16 = 1 } cu_dtype;
static inline size_t cu_dtype_size(cu_dtype dt) { return dt == CU_BF16 ? 2 : 4; }
static int cudaMemcpyAsync(void *d, const void *s, size_t n, int, cudaStream_t)
{
    memcpy(d, s, n);
    return 0;
}
static int cudaGetDevice(int *d) { *d = 0; return 0; }
static int g_sms = 1;  // small grids: the grid-stride loops wrap
static int cudaDeviceGetAttribute(int *v, int, int) { *v = g_sms; return 0; }
struct uint4 { uint32_t x, y, z, w; };
struct uint2 { uint32_t x, y; };
static inline bf16 __float2bfloat16_rn(float x) { return bf16{f2bf(x)}; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
template <typename A> static inline A min(A a, A b) { return a < b ? a : b; }
static void emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t,
                       const std::function<void()> &k)
{
    launch(grid, block, smem, k, false);
}

#include "cu_internal.inc"
#include "cu_rope.inc"
#include "cu_rmsnorm.inc"
#include "cu_swiglu.inc"
#include "cu_elementwise.inc"
#include "cu_adamw.inc"
#include "cu_xent.inc"

// ---------------------------------------------------------------- helpers
static std::mt19937 rng(11);
static float urand(float a = -1.f, float b = 1.f)
{
    return std::uniform_real_distribution<float>(a, b)(rng);
}
static float rnd_dt(float x, cu_dtype dt) { return dt == CU_BF16 ? bf2f(f2bf(x)) : x; }
// A device buffer of n elements of dt; off elements in (off = 1: misaligned).
struct Buf {
    char *p;
    cu_dtype dt;
    int64_t n;
    Buf(cu_dtype d, int64_t n_, int off = 0) : dt(d), n(n_)
    {
        p = (char *)galloc((size_t)(n + off + 1) * cu_dtype_size(d)) + off * cu_dtype_size(d);
    }
    void set(const std::vector<float> &v)
    {
        for (int64_t i = 0; i < n; i++)
            if (dt == CU_BF16) ((uint16_t *)p)[i] = f2bf(v[i]);
            else ((float *)p)[i] = v[i];
    }
    std::vector<float> get() const
    {
        std::vector<float> v((size_t)n);
        for (int64_t i = 0; i < n; i++)
            v[i] = dt == CU_BF16 ? bf2f(((uint16_t *)p)[i]) : ((float *)p)[i];
        return v;
    }
};
static std::vector<float> rvec(int64_t n, cu_dtype dt, float a = -1.f, float b = 1.f)
{
    std::vector<float> v((size_t)n);
    for (auto &x : v) x = rnd_dt(urand(a, b), dt);
    return v;
}
static int n_fail = 0, n_ok = 0;
static const char *g_filter = "";
static bool want(const char *name)
{
    bool w = strstr(name, g_filter) != NULL;
    if (w && getenv("EMU_VERBOSE")) printf("%s\n", name), fflush(stdout);
    return w;
}
// max |x - r| / max(max |r|, floor)
static void cmp(const char *what, const std::vector<float> &x, const std::vector<float> &r,
                double tol, double floor_ = 1e-30)
{
    double num = 0, den = floor_;
    bool nan = false;
    for (size_t i = 0; i < r.size(); i++) {
        if (isnan(x[i]) != isnan(r[i])) nan = true;
        if (isnan(r[i])) continue;
        num = fmax(num, fabs((double)x[i] - r[i]));
        den = fmax(den, fabs((double)r[i]));
    }
    double err = num / den;
    bool ok = !nan && err <= tol;
    (ok ? n_ok : n_fail)++;
    if (!ok || getenv("EMU_VERBOSE"))
        printf("  %-60s err %.3e tol %.0e%s %s\n", what, err, tol, nan ? " NaN-mismatch" : "",
               ok ? "ok" : "FAIL");
}
static const char *dtn(cu_dtype dt) { return dt == CU_BF16 ? "bf16" : "f32"; }

// ---------------------------------------------------------------- rope
// windows: a mixed table (short factors for tokens flagged short, at random).
static void test_rope(int64_t N, int H, int Hkv, int D, int d, rope_layout lay, cu_dtype dt,
                      int off, int64_t n_hat, float af, bool bwd, bool windows = false)
{
    char name[200];
    snprintf(name, sizeof name, "rope %s N=%lld H=%d Hkv=%d D=%d d=%d %s off=%d n_hat=%lld af=%g%s %s",
             bwd ? "bwd" : "fwd", (long long)N, H, Hkv, D, d,
             lay == ROPE_LAYOUT_HALF ? "half" : "inter", off, (long long)n_hat, af,
             windows ? " windows" : "", dtn(dt));
    if (!want(name)) return;
    static rope_table t;
    memset(&t, 0, sizeof t);
    t.rotary_dim = d;
    t.n_pairs = d / 2;
    for (int i = 0; i < d / 2; i++) {
        t.inv_freq_orig[i] = (float)pow(10000.0, -2.0 * i / d);
        t.inv_freq[i] = t.inv_freq_orig[i] / (1.0f + i * 0.37f);
    }
    t.n_hat = n_hat;
    t.attention_factor = af;
    std::vector<int32_t> posv((size_t)N);
    for (auto &p : posv) p = (int32_t)(rng() % 6000);
    std::vector<uint8_t> winv((size_t)N);
    uint8_t *win = NULL;
    if (windows) {
        t.short_len = 1000;
        for (int i = 0; i < d / 2; i++) t.inv_freq_short[i] = t.inv_freq_orig[i] / (1.0f + i * 0.11f);
        for (auto &w : winv) w = (uint8_t)(rng() % 2);
        win = (uint8_t *)galloc((size_t)N);
        memcpy(win, winv.data(), (size_t)N);
    }
    Buf q(dt, N * H * D, off), k(dt, N * Hkv * D, off);
    int32_t *pos = (int32_t *)galloc((size_t)N * 4);
    memcpy(pos, posv.data(), (size_t)N * 4);
    auto qv = rvec(q.n, dt), kv = rvec(k.n, dt);
    q.set(qv);
    k.set(kv);
    (bwd ? cu_rope_backward : cu_rope_forward)(H ? q.p : NULL, Hkv ? k.p : NULL, pos, win, &t, lay,
                                               N, H, Hkv, D, dt, NULL);
    (bwd ? rope_backward : rope_forward)(qv.data(), kv.data(), posv.data(),
                                         windows ? winv.data() : NULL, &t, lay, N, H, Hkv, D);
    for (auto &x : qv) x = rnd_dt(x, dt);
    for (auto &x : kv) x = rnd_dt(x, dt);
    double tol = dt == CU_BF16 ? 8e-3 : 2e-6;
    std::string s(name);
    if (H) cmp((s + " q").c_str(), q.get(), qv, tol);
    if (Hkv) cmp((s + " k").c_str(), k.get(), kv, tol);
}

// ---------------------------------------------------------------- rmsnorm
static void test_rmsnorm(int64_t N, int64_t C, cu_dtype dt, int off)
{
    char name[200];
    snprintf(name, sizeof name, "rmsnorm N=%lld C=%lld off=%d %s", (long long)N, (long long)C, off,
             dtn(dt));
    if (!want(name)) return;
    std::string s(name);
    const float eps = 1e-5f;
    auto xv = rvec(N * C, dt, -2, 2), wv = rvec(C, dt, 0.5f, 1.5f), dyv = rvec(N * C, dt),
         dxv = rvec(N * C, dt), dwv = rvec(C, CU_F32);
    Buf x(dt, N * C, off), w(dt, C, off), y(dt, N * C, off), dy(dt, N * C, off), dx(dt, N * C, off);
    Buf rstd(CU_F32, N), dw(CU_F32, C);
    x.set(xv); w.set(wv); dy.set(dyv); dx.set(dxv); dw.set(dwv);
    cu_rmsnorm_forward(y.p, (float *)rstd.p, x.p, w.p, N, C, eps, dt, NULL);
    std::vector<float> yr((size_t)(N * C)), rr((size_t)N);
    rmsnorm_forward(yr.data(), rr.data(), xv.data(), wv.data(), N, C, eps);
    for (auto &v : yr) v = rnd_dt(v, dt);
    cmp((s + " fwd out").c_str(), y.get(), yr, dt == CU_BF16 ? 8e-3 : 2e-6);
    cmp((s + " fwd rstd").c_str(), rstd.get(), rr, 2e-6);
    rstd.set(rr);  // the backward from the same rstd
    char *scratch = (char *)galloc(cu_rmsnorm_scratch_bytes(N, C));
    memset(scratch, 0xff, cu_rmsnorm_scratch_bytes(N, C));  // NaN: every partial must be written
    cu_rmsnorm_backward(dx.p, (float *)dw.p, dy.p, x.p, w.p, (const float *)rstd.p, N, C, scratch,
                        dt, NULL);
    rmsnorm_backward(dxv.data(), dwv.data(), dyv.data(), xv.data(), wv.data(), rr.data(), N, C);
    for (auto &v : dxv) v = rnd_dt(v, dt);
    cmp((s + " bwd dinp").c_str(), dx.get(), dxv, dt == CU_BF16 ? 1e-2 : 1e-5);
    cmp((s + " bwd dweight").c_str(), dw.get(), dwv, 1e-5);
}

// ---------------------------------------------------------------- swiglu
static void test_swiglu(int64_t n, cu_dtype dt, int off)
{
    char name[200];
    snprintf(name, sizeof name, "swiglu n=%lld off=%d %s", (long long)n, off, dtn(dt));
    if (!want(name)) return;
    std::string s(name);
    auto gv = rvec(n, dt, -12, 12), uv = rvec(n, dt), dyv = rvec(n, dt), dgv = rvec(n, dt),
         duv = rvec(n, dt);
    Buf g(dt, n, off), u(dt, n, off), o(dt, n, off), dy(dt, n, off), dg(dt, n, off), du(dt, n, off);
    g.set(gv); u.set(uv); dy.set(dyv); dg.set(dgv); du.set(duv);
    cu_swiglu_forward(o.p, g.p, u.p, n, dt, NULL);
    std::vector<float> orf((size_t)n);
    swiglu_forward(orf.data(), gv.data(), uv.data(), n);
    for (auto &v : orf) v = rnd_dt(v, dt);
    cmp((s + " fwd").c_str(), o.get(), orf, dt == CU_BF16 ? 8e-3 : 2e-6);
    cu_swiglu_backward(dg.p, du.p, dy.p, g.p, u.p, n, dt, NULL);
    swiglu_backward(dgv.data(), duv.data(), dyv.data(), gv.data(), uv.data(), n);
    for (auto &v : dgv) v = rnd_dt(v, dt);
    for (auto &v : duv) v = rnd_dt(v, dt);
    cmp((s + " bwd dgate").c_str(), dg.get(), dgv, dt == CU_BF16 ? 8e-3 : 2e-6);
    cmp((s + " bwd dup").c_str(), du.get(), duv, dt == CU_BF16 ? 8e-3 : 2e-6);
}

// ---------------------------------------------------------------- cast / axpy
static void test_elementwise(int64_t n, cu_dtype ydt, cu_dtype xdt, int off)
{
    char name[200];
    snprintf(name, sizeof name, "cast/axpy n=%lld off=%d y=%s x=%s", (long long)n, off, dtn(ydt),
             dtn(xdt));
    if (!want(name)) return;
    std::string s(name);
    auto xv = rvec(n, xdt, -3, 3), yv = rvec(n, ydt, -3, 3);
    Buf x(xdt, n, off), y(ydt, n, off), c(ydt, n, off);
    x.set(xv); y.set(yv);
    cu_cast(c.p, ydt, x.p, xdt, n, NULL);
    std::vector<float> cr((size_t)n);
    for (int64_t i = 0; i < n; i++) cr[i] = rnd_dt(xv[i], ydt);
    cmp((s + " cast").c_str(), c.get(), cr, 0);
    const float alpha = -0.37f;
    cu_axpy(y.p, ydt, alpha, x.p, xdt, n, NULL);
    for (int64_t i = 0; i < n; i++) yv[i] = rnd_dt(yv[i] + alpha * xv[i], ydt);
    cmp((s + " axpy").c_str(), y.get(), yv, 0);
}

// ---------------------------------------------------------------- adamw + grad norm
static void test_adamw(const std::vector<int64_t> &sizes, int copy_kind, int off, int copy_off)
{
    char name[200];
    snprintf(name, sizeof name, "adamw tensors=%zu copy=%s off=%d copy_off=%d", sizes.size(),
             copy_kind == 0 ? "none" : copy_kind == 1 ? "bf16" : "f32", off, copy_off);
    if (!want(name)) return;
    std::string s(name);
    int T = (int)sizes.size();
    int64_t *offs = (int64_t *)galloc((size_t)(T + 1) * 8);
    uint8_t *mask = (uint8_t *)galloc((size_t)T);
    offs[0] = 0;
    for (int t = 0; t < T; t++) {
        offs[t + 1] = offs[t] + sizes[t];
        mask[t] = (uint8_t)(t % 2 == 0);
    }
    int64_t n = offs[T];
    auto pv = rvec(n, CU_F32), mv = rvec(n, CU_F32, 0, 0.1f), vv = rvec(n, CU_F32, 0, 0.01f),
         gv = rvec(n, CU_F32);
    Buf p(CU_F32, n, off), m(CU_F32, n, off), v(CU_F32, n, off), g(CU_F32, n, off);
    cu_dtype cdt = copy_kind == 1 ? CU_BF16 : CU_F32;
    Buf cp(cdt, n, copy_off);
    p.set(pv); m.set(mv); v.set(vv); g.set(gv);
    adamw_hparams hp = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    const int64_t step = 7;
    const float gs = 0.8f;
    cu_adamw_update((float *)p.p, (float *)m.p, (float *)v.p, (const float *)g.p,
                    copy_kind ? cp.p : NULL, cdt, offs, mask, T, &hp, step, gs, NULL);
    for (int t = 0; t < T; t++) {
        adamw_hparams h = hp;
        if (!mask[t]) h.weight_decay = 0;
        adamw_update(pv.data() + offs[t], mv.data() + offs[t], vv.data() + offs[t],
                     gv.data() + offs[t], sizes[t], &h, step, gs);
    }
    cmp((s + " param").c_str(), p.get(), pv, 1e-6);
    cmp((s + " m").c_str(), m.get(), mv, 1e-6);
    cmp((s + " v").c_str(), v.get(), vv, 1e-6);
    if (copy_kind) {
        std::vector<float> cr = pv;
        for (auto &x : cr) x = rnd_dt(x, cdt);
        cmp((s + " copy").c_str(), cp.get(), cr, 1e-6);
    }
}
static void test_norm(int64_t n, int off)
{
    char name[200];
    snprintf(name, sizeof name, "grad_norm n=%lld off=%d", (long long)n, off);
    if (!want(name)) return;
    auto gv = rvec(n, CU_F32);
    Buf g(CU_F32, n, off);
    g.set(gv);
    double *out = (double *)galloc(8);
    size_t sb = cu_grad_norm_scratch_bytes(n);
    char *scratch = (char *)galloc(sb);
    memset(scratch, 0xff, sb);
    cu_grad_norm_sq(out, (const float *)g.p, n, scratch, NULL);
    double r = adamw_grad_norm_sq(gv.data(), n);
    cmp(name, {(float)(*out / r)}, {1.0f}, 1e-12 + 1e-9);
}

// ---------------------------------------------------------------- xent rows
static void test_xent(int64_t N, int64_t V, cu_dtype dt, int off, bool grad)
{
    char name[200];
    snprintf(name, sizeof name, "xent rows N=%lld V=%lld %s off=%d %s", (long long)N,
             (long long)V, dtn(dt), off, grad ? "grad" : "loss");
    if (!want(name)) return;
    std::string s(name);
    const float gs = 1.0f / 3;
    auto lv = rvec(N * V, CU_F32, -8, 8);
    std::vector<int32_t> tv((size_t)N);
    for (int64_t i = 0; i < N; i++) tv[i] = (int32_t)(rng() % V);
    if (N > 2) tv[1] = -1;       // ignored row: loss 0, grad 0
    if (N > 3) tv[3] = (int32_t)V;  // out of range: loss NaN, grad 0 (the CPU op dies)
    Buf l(CU_F32, N * V, off), losses(CU_F32, N);
    Buf dl(dt, N * V, off);
    int32_t *tg = (int32_t *)galloc((size_t)N * 4);
    memcpy(tg, tv.data(), (size_t)N * 4);
    l.set(lv);
    void *dlp = dt == CU_F32 ? (void *)l.p : (void *)dl.p;  // fp32: in place, as cu_xent
    softmax_rows(dlp, (const float *)l.p, (float *)losses.p, tg, N, V, gs, grad, dt, NULL);
    // reference: h = logits, w = identity -> dh = dlogits
    std::vector<int32_t> tc = tv;
    if (N > 3) tc[3] = 0;
    std::vector<float> w((size_t)(V * V), 0.f), lr((size_t)N), dh((size_t)(N * V), 0.f),
        dw((size_t)(V * V), 0.f);
    for (int64_t i = 0; i < V; i++) w[i * V + i] = 1.f;
    xent_forward_backward(lr.data(), dh.data(), dw.data(), lv.data(), w.data(), tc.data(), N, V, V,
                          gs);
    if (N > 3) {
        lr[3] = NAN;
        for (int64_t j = 0; j < V; j++) dh[3 * V + j] = 0.f;
    }
    cmp((s + " loss").c_str(), losses.get(), lr, 1e-5);
    if (grad) {
        Buf &out = dt == CU_F32 ? l : dl;
        for (auto &x : dh) x = rnd_dt(x, dt);
        cmp((s + " dlogits").c_str(), out.get(), dh, dt == CU_BF16 ? 8e-3 : 1e-5);
    }
}

// ---------------------------------------------------------------- the op harness's tables
// EMU_TABLES=1: the shapes of tests/ops's case tables (ops_cases_*.h) instead
// of the cases below; inputs and tolerances are this file's (the rope tables
// are this file's too: only the shapes, rotary dims, n_hat and attention
// factors come from the harness), no element offsets.
#include "ops_cases_adamw.h"
#include "ops_cases_elementwise.h"
#include "ops_cases_rmsnorm.h"
#include "ops_cases_rope.h"

static void run_harness_tables(void)
{
    const cu_dtype dts[2] = {CU_F32, CU_BF16};
    for (cu_dtype dt : dts) {
        for (const auto &c : CAST)
            for (cu_dtype xdt : dts) test_elementwise(c.n, dt, xdt, c.misalign);
        for (const auto &c : SW) test_swiglu(c.n, dt, 0);
        for (const auto &c : RMS) test_rmsnorm(c.N, c.C, dt, 0);
        for (const auto &c : RP)
            for (int bwd = 0; bwd < 2; bwd++)
                for (int lay = 0; lay < 2; lay++)
                    test_rope(c.N, c.H, c.Hkv, c.D, c.d,
                              lay ? ROPE_LAYOUT_INTERLEAVED : ROPE_LAYOUT_HALF, dt, 0, c.n_hat,
                              c.attn > 0 ? c.attn : 1.0f, bwd, c.table == TAB_WINDOWS);
    }
    for (const auto &c : AD)
        for (int ck = 0; ck < 3; ck++)
            test_adamw(std::vector<int64_t>(c.sizes, c.sizes + c.nt), ck, 0, 0);
    for (const auto &c : GN)
        if (c.n > 0) test_norm(c.n, 0);
    printf("%d ok, %d FAIL (the tests/ops tables)\n", n_ok, n_fail);
}

int main(int argc, char **argv)
{
    if (argc > 1) g_filter = argv[1];
    if (getenv("EMU_TABLES")) {
        run_harness_tables();
        return n_fail != 0;
    }
    const cu_dtype dts[2] = {CU_F32, CU_BF16};
    for (cu_dtype dt : dts) {
        for (int off = 0; off < 2; off++)
            for (int bwd = 0; bwd < 2; bwd++)
                for (int lay = 0; lay < 2; lay++) {
                    rope_layout L = lay ? ROPE_LAYOUT_INTERLEAVED : ROPE_LAYOUT_HALF;
                    test_rope(5, 3, 1, 64, 64, L, dt, off, 0, 1.0f, bwd);
                    test_rope(7, 2, 2, 64, 32, L, dt, off, 3000, 1.25f, bwd);  // partial + n_hat
                    test_rope(3, 4, 0, 10, 6, L, dt, off, 0, 0.8f, bwd);       // odd pairs, no k
                    test_rope(2, 0, 3, 12, 4, L, dt, off, 100, 1.0f, bwd);     // no q
                    test_rope(19, 9, 3, 128, 128, L, dt, off, 2000, 1.1f, bwd);
                    test_rope(4, 1, 1, 6, 2, L, dt, off, 0, 1.0f, bwd);        // one pair
                    test_rope(3, 2, 1, 7, 6, L, dt, off, 0, 1.0f, bwd);        // odd D
                    test_rope(23, 3, 1, 64, 64, L, dt, off, 0, 1.2f, bwd, true);  // mixed windows
                    test_rope(9, 2, 2, 64, 32, L, dt, off, 3000, 1.0f, bwd, true); // + n_hat, partial
                }
        for (int off = 0; off < 2; off++) {
            test_rmsnorm(3, 64, dt, off);
            test_rmsnorm(5, 13, dt, off);
            test_rmsnorm(2, 1000, dt, off);
            test_rmsnorm(1, 8, dt, off);
            test_rmsnorm(300, 40, dt, off);  // 3 dweight groups
            test_rmsnorm(2, 2056, dt, off);  // > 1024 threads of 1 element
            for (int64_t n : {1, 7, 8, 9, 2048, 2053, 4107}) test_swiglu(n, dt, off);
        }
        for (int off = 0; off < 2; off++)
            for (int64_t n : {1, 7, 8, 17, 2048, 2061})
                for (cu_dtype xdt : dts) test_elementwise(n, dt, xdt, off);
        for (int off = 0; off < 2; off++)
            for (int64_t V : {8, 13, 64, 1000, 4104}) {
                test_xent(5, V, dt, off, true);
                test_xent(2, V, dt, off, false);
            }
    }
    std::vector<int64_t> sz1 = {5, 16, 3, 1000, 7}, sz2 = {4, 8, 4096, 12}, sz3 = {1};
    for (auto *sz : {&sz1, &sz2, &sz3})
        for (int ck = 0; ck < 3; ck++)
            for (int off = 0; off < 2; off++)
                for (int coff = 0; coff < 3; coff++) test_adamw(*sz, ck, off, coff);
    for (int64_t n : {1, 5, 1000, 4099, 100003})
        for (int off = 0; off < 2; off++) test_norm(n, off);
    printf("%d ok, %d FAIL\n", n_ok, n_fail);
    return n_fail != 0;
}
