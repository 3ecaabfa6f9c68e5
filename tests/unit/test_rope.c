// test_rope: rope_scaling tables and the rope forward/backward kernel.
//
// References, all independent of the code under test:
//  - tests/data/rope_vectors.json: a numpy float64 re-implementation of
//    transformers' modeling_rope_utils (inv_freq, attention factor, cos/sin at
//    positions up to 131071, an apply example in both layouts). Missing file =
//    failure, not a skip.
//  - naive double-precision rotation written here (shape, GQA, partial rotary,
//    n_hat, mixed windows with frequencies from the factors), finite
//    differences of it for the backward; window flags of hand-made packed rows.
// Each check prints the largest error it saw.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rope.h"
#include "rope_scaling.h"

#define TWO_M23 (1.0 / 8388608.0)  // 2^-23

// ---------------------------------------------------------------------------
// Helpers

static cJSON *load_vectors(void) {
    const char *path = STRETCH_TEST_DATA_DIR "/rope_vectors.json";
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s: the RoPE test vectors are required", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (!root) fail_msg("%s is not valid JSON", path);
    assert_int_equal(cJSON_GetObjectItem(root, "schema_version")->valueint, 1);
    return root;
}

static const cJSON *get(const cJSON *obj, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) fail_msg("rope_vectors.json: missing key \"%s\"", key);
    return it;
}

// Number under key, or dflt when the key is absent or null.
static double num_or(const cJSON *obj, const char *key, double dflt) {
    const cJSON *it = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsNumber(it) ? it->valuedouble : dflt;
}

static double arr_at(const cJSON *arr, int i) {
    const cJSON *it = cJSON_GetArrayItem(arr, i);
    if (!cJSON_IsNumber(it)) fail_msg("rope_vectors.json: array entry %d is not a number", i);
    return it->valuedouble;
}

static int read_list(double *out, const cJSON *arr) {
    int n = cJSON_GetArraySize(arr);
    assert_true(n <= ROPE_MAX_PAIRS);
    for (int i = 0; i < n; i++) out[i] = arr_at(arr, i);
    return n;
}

// An HF config ("config" of a case) as a rope_config.
static rope_config config_from_json(const cJSON *c) {
    rope_config cfg = rope_config_default((int)num_or(c, "head_dim", 0));
    cfg.theta = num_or(c, "rope_theta", 10000.0);
    cfg.partial_rotary_factor = num_or(c, "partial_rotary_factor", 1.0);
    cfg.max_position_embeddings = (int64_t)num_or(c, "max_position_embeddings", 0);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
    if (!cJSON_IsObject(rs)) return cfg;

    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    assert_true(cJSON_IsString(t));
    if (rope_type_parse(t->valuestring, &cfg.type) != 0)
        fail_msg("unknown type %s", t->valuestring);
    cfg.factor = num_or(rs, "factor", 0);
    cfg.original_max_position_embeddings =
        (int64_t)num_or(rs, "original_max_position_embeddings", 0);
    cfg.attention_factor = num_or(rs, "attention_factor", 0);
    cfg.beta_fast = num_or(rs, "beta_fast", 0);
    cfg.beta_slow = num_or(rs, "beta_slow", 0);
    cfg.mscale = num_or(rs, "mscale", 0);
    cfg.mscale_all_dim = num_or(rs, "mscale_all_dim", 0);
    cfg.no_truncate = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rs, "truncate"));
    cfg.low_freq_factor = num_or(rs, "low_freq_factor", 0);
    cfg.high_freq_factor = num_or(rs, "high_freq_factor", 0);
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(rs, "short_factor");
    const cJSON *lf = cJSON_GetObjectItemCaseSensitive(rs, "long_factor");
    if (sf && lf) {
        cfg.n_factors = read_list(cfg.short_factor, sf);
        assert_int_equal(read_list(cfg.long_factor, lf), cfg.n_factors);
    }
    return cfg;
}

static rope_table table_for_case(const cJSON *cs) {
    rope_config cfg = config_from_json(get(cs, "config"));
    char err[256] = "";
    if (rope_config_validate(&cfg, err, sizeof err) != 0)
        fail_msg("%s: config rejected: %s", get(cs, "name")->valuestring, err);
    const cJSON *sl = get(cs, "seq_len");
    rope_table t;
    rope_table_init(&t, &cfg, cJSON_IsNumber(sl) ? (int64_t)sl->valuedouble : 0);
    return t;
}

// Deterministic uniform numbers in [-1, 1).
static float rnd(uint64_t *state) {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*state >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static void fill_random(float *x, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) x[i] = rnd(&seed);
}

// Channel index of the two members of pair i.
static void pair_channels(int *j0, int *j1, int i, int half, rope_layout layout) {
    *j0 = layout == ROPE_LAYOUT_HALF ? i : 2 * i;
    *j1 = layout == ROPE_LAYOUT_HALF ? i + half : 2 * i + 1;
}

// Naive double rotation of x: (N, nh, D) by sign * angle; inv_fn gives the
// frequency of pair i at position p (so n_hat can be spelled out separately).
typedef double (*freq_fn)(const rope_table *t, int64_t p, int i);

static double table_freq(const rope_table *t, int64_t p, int i) {
    return (double)(p < t->n_hat ? t->inv_freq_orig[i] : t->inv_freq[i]);
}

static void naive_rotate(double *y, const double *x, const int32_t *pos, const rope_table *t,
                         freq_fn freq, rope_layout layout, int64_t N, int nh, int D, double sign) {
    int half = t->n_pairs;
    for (int64_t n = 0; n < N; n++) {
        for (int h = 0; h < nh; h++) {
            const double *xh = x + (n * nh + h) * D;
            double *yh = y + (n * nh + h) * D;
            for (int j = 0; j < D; j++) yh[j] = xh[j];
            for (int i = 0; i < half; i++) {
                int j0, j1;
                pair_channels(&j0, &j1, i, half, layout);
                double th = freq(t, pos[n], i) * pos[n];
                double c = t->attention_factor * cos(th), s = sign * t->attention_factor * sin(th);
                yh[j0] = xh[j0] * c - xh[j1] * s;
                yh[j1] = xh[j0] * s + xh[j1] * c;
            }
        }
    }
}

static double max_abs_diff_fd(const float *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double *to_double(const float *x, int64_t n) {
    double *y = malloc(sizeof(double) * (size_t)n);
    assert_non_null(y);
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

// ---------------------------------------------------------------------------
// Test vectors: tables

static void test_vectors_tables(void **state) {
    (void)state;
    cJSON *root = load_vectors();
    const cJSON *cases = get(root, "cases");
    int n_cases = cJSON_GetArraySize(cases);
    assert_true(n_cases >= 15);
    double worst_inv = 0, worst_att = 0;
    for (int c = 0; c < n_cases; c++) {
        const cJSON *cs = cJSON_GetArrayItem(cases, c);
        const char *name = get(cs, "name")->valuestring;
        rope_table t = table_for_case(cs);
        const cJSON *want = get(cs, "inv_freq"), *want32 = get(cs, "inv_freq_f32_emulated");
        assert_int_equal(t.rotary_dim, (int)get(cs, "rotary_dim")->valuedouble);
        assert_int_equal(t.n_pairs, cJSON_GetArraySize(want));
        double max_rel = 0, max_ulp32 = 0;
        for (int i = 0; i < t.n_pairs; i++) {
            double w = arr_at(want, i), rel = fabs(t.inv_freq[i] - w) / fabs(w);
            if (!(rel <= 1e-6))
                fail_msg("%s: inv_freq[%d] = %.9g, want %.17g (rel err %.3g)", name, i,
                         t.inv_freq[i], w, rel);
            max_rel = fmax(max_rel, rel);
            float w32 = (float)arr_at(want32, i);  // informational: ulps from torch's op order
            max_ulp32 =
                fmax(max_ulp32, fabs(t.inv_freq[i] - w32) / (nextafterf(w32, INFINITY) - w32));
        }
        double wa = get(cs, "attention_factor")->valuedouble;
        double att_rel = fabs(t.attention_factor - wa) / wa;
        if (!(att_rel <= 1e-6))
            fail_msg("%s: attention_factor = %.9g, want %.17g", name, t.attention_factor, wa);
        print_message(
            "  %-40s inv_freq max rel err %.2e (%.0f ulp from f32 emulation), "
            "attention_factor rel err %.2e\n",
            name, max_rel, max_ulp32, att_rel);
        worst_inv = fmax(worst_inv, max_rel);
        worst_att = fmax(worst_att, att_rel);
    }
    print_message(
        "tables: %d cases, max inv_freq rel err %.2e, max attention_factor rel err %.2e\n", n_cases,
        worst_inv, worst_att);
    cJSON_Delete(root);
}

// ---------------------------------------------------------------------------
// Test vectors: cos/sin through rope_forward on unit vectors

// Runs rope_forward with q head i = unit vector on the first channel of pair i
// and k head i = unit vector on the second one: then q gives (a cos, a sin)
// and k gives (-a sin, a cos) of pair i. Compares with the JSON table.
static double check_cos_sin(const cJSON *cs, const rope_table *t, rope_layout layout,
                            double *worst_small) {
    const char *name = get(cs, "name")->valuestring;
    const cJSON *rows = get(cs, "cos_sin_half_layout"), *inv_ref = get(cs, "inv_freq");
    int d = t->rotary_dim, half = t->n_pairs, N = cJSON_GetArraySize(rows);
    float *q = calloc((size_t)N * half * d, sizeof(float));
    float *k = calloc((size_t)N * half * d, sizeof(float));
    int32_t *pos = calloc((size_t)N, sizeof(int32_t));
    assert_true(q && k && pos);
    for (int n = 0; n < N; n++) {
        pos[n] = (int32_t)get(cJSON_GetArrayItem(rows, n), "position")->valuedouble;
        for (int i = 0; i < half; i++) {
            int j0, j1;
            pair_channels(&j0, &j1, i, half, layout);
            q[((int64_t)n * half + i) * d + j0] = 1.0f;
            k[((int64_t)n * half + i) * d + j1] = 1.0f;
        }
    }
    rope_forward(q, k, pos, NULL, t, layout, N, half, half, d);

    double worst_ratio = 0;
    for (int n = 0; n < N; n++) {
        const cJSON *row = cJSON_GetArrayItem(rows, n);
        const cJSON *cw = get(row, "cos"), *sw = get(row, "sin");
        for (int i = 0; i < half; i++) {
            int j0, j1;
            pair_channels(&j0, &j1, i, half, layout);
            const float *qh = q + ((int64_t)n * half + i) * d,
                        *kh = k + ((int64_t)n * half + i) * d;
            // float32 inv_freq makes the angle off by up to p * inv_freq * 2^-24.
            double tol = 1e-6 + pos[n] * fabs(arr_at(inv_ref, i)) * TWO_M23;
            double got[4] = {qh[j0], qh[j1], -kh[j0], kh[j1]};
            double want[4] = {arr_at(cw, i), arr_at(sw, i), arr_at(sw, i + half),
                              arr_at(cw, i + half)};
            for (int m = 0; m < 4; m++) {
                double e = fabs(got[m] - want[m]);
                if (!(e <= tol))
                    fail_msg(
                        "%s (%s layout) p=%d pair %d: %s = %.9g, want %.17g (err %.3g > tol %.3g)",
                        name, rope_layout_name(layout), pos[n], i, m == 0 || m == 3 ? "cos" : "sin",
                        got[m], want[m], e, tol);
                worst_ratio = fmax(worst_ratio, e / tol);
                if (pos[n] <= 7) *worst_small = fmax(*worst_small, e);
            }
        }
    }
    free(q);
    free(k);
    free(pos);
    return worst_ratio;
}

static void test_vectors_cos_sin(void **state) {
    (void)state;
    cJSON *root = load_vectors();
    const cJSON *cases = get(root, "cases");
    double worst_ratio = 0, worst_small = 0;
    for (int c = 0; c < cJSON_GetArraySize(cases); c++) {
        const cJSON *cs = cJSON_GetArrayItem(cases, c);
        rope_table t = table_for_case(cs);
        worst_ratio = fmax(worst_ratio, check_cos_sin(cs, &t, ROPE_LAYOUT_HALF, &worst_small));
        worst_ratio =
            fmax(worst_ratio, check_cos_sin(cs, &t, ROPE_LAYOUT_INTERLEAVED, &worst_small));
    }
    print_message("cos/sin: max abs err at p <= 7: %.2e; max err / tol over all p: %.3f\n",
                  worst_small, worst_ratio);
    cJSON_Delete(root);
}

// ---------------------------------------------------------------------------
// Test vectors: the apply example, forward and backward, both layouts

static void test_apply_example(void **state) {
    (void)state;
    cJSON *root = load_vectors();
    const cJSON *ex = get(root, "apply_example");
    int D = (int)get(ex, "head_dim")->valuedouble;
    int32_t pos = (int32_t)get(ex, "position")->valuedouble;
    assert_string_equal(get(ex, "rope_type")->valuestring, "default");
    rope_config cfg = rope_config_default(D);
    cfg.theta = get(ex, "rope_theta")->valuedouble;
    rope_table t;
    rope_table_init(&t, &cfg, 0);
    for (int i = 0; i < D / 2; i++)
        assert_true(fabs(t.inv_freq[i] - arr_at(get(ex, "inv_freq"), i)) <= 1e-7);

    const char *layouts[2] = {"half_layout", "interleaved_layout"};
    double worst = 0;
    for (int l = 0; l < 2; l++) {
        rope_layout layout = l == 0 ? ROPE_LAYOUT_HALF : ROPE_LAYOUT_INTERLEAVED;
        const cJSON *want = get(ex, layouts[l]);
        float q[16], g[16];
        assert_true(D <= 16);
        for (int j = 0; j < D; j++) {
            q[j] = (float)arr_at(get(ex, "q"), j);
            g[j] = (float)arr_at(get(ex, "grad_out"), j);
        }
        // q as a query head and g as a key head: both kernels' paths.
        float k[16];
        memcpy(k, q, sizeof q);
        rope_forward(q, k, &pos, NULL, &t, layout, 1, 1, 1, D);
        float gk[16];
        memcpy(gk, g, sizeof g);
        rope_backward(g, gk, &pos, NULL, &t, layout, 1, 1, 1, D);
        for (int j = 0; j < D; j++) {
            double eo = fabs(q[j] - arr_at(get(want, "out"), j));
            double eg = fabs(g[j] - arr_at(get(want, "grad_in"), j));
            if (!(eo <= 1e-6 && eg <= 1e-6))
                fail_msg("apply example %s [%d]: out err %.3g, grad_in err %.3g", layouts[l], j, eo,
                         eg);
            assert_memory_equal(&q[j], &k[j], sizeof(float));
            assert_memory_equal(&g[j], &gk[j], sizeof(float));
            worst = fmax(worst, fmax(eo, eg));
        }
    }
    print_message("apply example: max abs err (forward and backward, both layouts) %.2e\n", worst);
    cJSON_Delete(root);
}

// ---------------------------------------------------------------------------
// Backward against finite differences of a double forward

// A yarn table (attention factor != 1) with partial rotary: every term shows.
static rope_table yarn_partial_table(int head_dim, double partial) {
    rope_config cfg = rope_config_default(head_dim);
    cfg.type = ROPE_TYPE_YARN;
    cfg.partial_rotary_factor = partial;
    cfg.factor = 8.0;
    cfg.max_position_embeddings = 8192;
    cfg.original_max_position_embeddings = 1024;
    rope_table t;
    rope_table_init(&t, &cfg, 0);
    assert_true(t.attention_factor > 1.1f);
    return t;
}

// L(x) = sum_j w_j * f(x)_j with f the naive double forward.
static double fd_loss(const double *x, const double *w, double *tmp, const int32_t *pos,
                      const rope_table *t, rope_layout layout, int64_t N, int nh, int D) {
    naive_rotate(tmp, x, pos, t, table_freq, layout, N, nh, D, 1.0);
    double L = 0;
    for (int64_t j = 0; j < N * nh * D; j++) L += w[j] * tmp[j];
    return L;
}

static void test_backward_finite_differences(void **state) {
    (void)state;
    enum { N = 3, H = 4, Hkv = 2, D = 12 };
    const int32_t pos[3] = {0, 5, 70000};
    rope_table t = yarn_partial_table(D, 2.0 / 3.0);  // d = 8
    assert_int_equal(t.rotary_dim, 8);
    double worst = 0;
    for (int l = 0; l < 2; l++) {
        rope_layout layout = l == 0 ? ROPE_LAYOUT_HALF : ROPE_LAYOUT_INTERLEAVED;
        float x_q[N * H * D], x_k[N * Hkv * D], w_q[N * H * D], w_k[N * Hkv * D];
        fill_random(x_q, N * H * D, 1);
        fill_random(x_k, N * Hkv * D, 2);
        fill_random(w_q, N * H * D, 3);
        fill_random(w_k, N * Hkv * D, 4);
        // Kernel backward: dL/dx for L = <w, forward(x)>.
        float dq[N * H * D], dk[N * Hkv * D];
        memcpy(dq, w_q, sizeof dq);
        memcpy(dk, w_k, sizeof dk);
        rope_backward(dq, dk, pos, NULL, &t, layout, N, H, Hkv, D);

        struct {
            const float *x, *w, *grad;
            int nh;
        } parts[2] = {{x_q, w_q, dq, H}, {x_k, w_k, dk, Hkv}};
        for (int p = 0; p < 2; p++) {
            int64_t n = (int64_t)N * parts[p].nh * D;
            double *x = to_double(parts[p].x, n), *w = to_double(parts[p].w, n);
            double *tmp = malloc(sizeof(double) * (size_t)n),
                   *fd = malloc(sizeof(double) * (size_t)n);
            assert_true(tmp && fd);
            // L is linear in x: central differences are exact up to rounding.
            const double h = 1e-3;
            for (int64_t j = 0; j < n; j++) {
                double x0 = x[j];
                x[j] = x0 + h;
                double lp = fd_loss(x, w, tmp, pos, &t, layout, N, parts[p].nh, D);
                x[j] = x0 - h;
                double lm = fd_loss(x, w, tmp, pos, &t, layout, N, parts[p].nh, D);
                x[j] = x0;
                fd[j] = (lp - lm) / (2 * h);
            }
            double e = max_abs_diff_fd(parts[p].grad, fd, n);
            if (!(e <= 2e-6))
                fail_msg("%s layout: backward vs finite differences err %.3g",
                         rope_layout_name(layout), e);
            worst = fmax(worst, e);
            free(x);
            free(w);
            free(tmp);
            free(fd);
        }
    }
    print_message(
        "backward vs finite differences (yarn a=%.4f, partial d=8 of 12, GQA 4/2): "
        "max abs err %.2e\n",
        t.attention_factor, worst);
}

// ---------------------------------------------------------------------------
// Forward against the naive double rotation: partial rotary, GQA

// Runs rope_forward on random q, k and compares with naive_rotate; channels
// >= rotary_dim must be bit-identical. Returns the max abs error; *ratio
// (if given) is raised to the max error / tolerance.
static double check_forward_naive(double *ratio, const rope_table *t, freq_fn freq,
                                  rope_layout layout, const int32_t *pos, int64_t N, int H, int Hkv,
                                  int D, uint64_t seed) {
    int64_t nq = N * H * D, nk = N * Hkv * D;
    float *q = malloc(sizeof(float) * (size_t)nq), *k = malloc(sizeof(float) * (size_t)nk);
    assert_true(q && k);
    fill_random(q, nq, seed);
    fill_random(k, nk, seed + 1);
    double *q0 = to_double(q, nq), *k0 = to_double(k, nk);
    double *qr = malloc(sizeof(double) * (size_t)nq), *kr = malloc(sizeof(double) * (size_t)nk);
    assert_true(qr && kr);
    naive_rotate(qr, q0, pos, t, freq, layout, N, H, D, 1.0);
    naive_rotate(kr, k0, pos, t, freq, layout, N, Hkv, D, 1.0);
    rope_forward(q, k, pos, NULL, t, layout, N, H, Hkv, D);

    double worst = 0;
    for (int part = 0; part < 2; part++) {
        const float *y = part == 0 ? q : k;
        const double *yr = part == 0 ? qr : kr, *x0 = part == 0 ? q0 : k0;
        int64_t n = part == 0 ? nq : nk;
        for (int64_t j = 0; j < n; j++) {
            int64_t p = pos[j / ((part == 0 ? H : Hkv) * D)];
            // The kernel's float inv_freq vs freq()'s double one: angle off by <= p * inv * 2^-24,
            // with inv <= 1 here.
            double tol = 2e-6 + t->attention_factor * (double)p * TWO_M23;
            if (freq == table_freq) tol = 2e-6;  // same float inv_freq on both sides
            double e = fabs(y[j] - yr[j]);
            if (j % D >= t->rotary_dim && y[j] != (float)x0[j])
                fail_msg("channel %lld (>= rotary dim %d) changed", (long long)(j % D),
                         t->rotary_dim);
            if (!(e <= tol))
                fail_msg("%s layout: element %lld (pos %lld) = %.9g, naive %.9g (err %.3g > %.3g)",
                         rope_layout_name(layout), (long long)j, (long long)p, y[j], yr[j], e, tol);
            worst = fmax(worst, e);
            if (ratio) *ratio = fmax(*ratio, e / tol);
        }
    }
    free(q);
    free(k);
    free(q0);
    free(k0);
    free(qr);
    free(kr);
    return worst;
}

// Frequencies straight from the formula 1 / theta^(2i/d), for a default config.
static double formula_freq_theta1e4(const rope_table *t, int64_t p, int i) {
    (void)p;
    return 1.0 / pow(10000.0, 2.0 * i / t->rotary_dim);
}

static void test_partial_rotary(void **state) {
    (void)state;
    rope_config cfg = rope_config_default(64);
    cfg.partial_rotary_factor = 0.5;
    rope_table t;
    rope_table_init(&t, &cfg, 0);
    assert_int_equal(t.rotary_dim, 32);
    assert_int_equal(t.n_pairs, 16);
    for (int i = 0; i < 16; i++)  // exponent denominator is d = 32, not head_dim
        assert_true(fabs(t.inv_freq[i] - pow(10000.0, -2.0 * i / 32)) <=
                    1e-7 * pow(10000.0, -2.0 * i / 32));
    const int32_t pos[5] = {0, 1, 2, 1000, 40000};
    double worst = 0, ratio = 0;
    for (int l = 0; l < 2; l++)
        worst = fmax(worst, check_forward_naive(&ratio, &t, formula_freq_theta1e4, (rope_layout)l,
                                                pos, 5, 3, 1, 64, 10 + l));
    print_message(
        "partial rotary (D=64, d=32, p <= 40000): max abs err vs naive %.2e "
        "(%.3f of tol), channels >= 32 untouched\n",
        worst, ratio);
}

static void test_gqa(void **state) {
    (void)state;
    rope_table t = yarn_partial_table(32, 1.0);
    enum { N = 6, H = 4, Hkv = 2, D = 32 };
    const int32_t pos[N] = {0, 1, 2, 3, 0, 1};  // two packed documents
    double worst = 0;
    for (int l = 0; l < 2; l++)
        worst = fmax(worst, check_forward_naive(NULL, &t, table_freq, (rope_layout)l, pos, N, H,
                                                Hkv, D, 20 + l));
    // A k head holding the same data as a q head of the same token is rotated identically.
    float q[N * H * D], k[N * Hkv * D];
    fill_random(q, N * H * D, 30);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < Hkv; h++)
            memcpy(k + (n * Hkv + h) * D, q + (n * H + 2 * h + 1) * D, sizeof(float) * D);
    rope_forward(q, k, pos, NULL, &t, ROPE_LAYOUT_HALF, N, H, Hkv, D);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < Hkv; h++)
            assert_memory_equal(k + (n * Hkv + h) * D, q + (n * H + 2 * h + 1) * D,
                                sizeof(float) * D);
    // Tokens with equal positions (packed documents restart at 0) get equal rotations.
    float a[2 * D], b[2 * D];
    fill_random(a, D, 31);
    memcpy(a + D, a, sizeof(float) * D);
    memcpy(b, a, sizeof a);
    const int32_t same[2] = {3, 3};
    rope_forward(a, b, same, NULL, &t, ROPE_LAYOUT_INTERLEAVED, 2, 1, 1, D);
    assert_memory_equal(a, a + D, sizeof(float) * D);
    assert_memory_equal(a, b, sizeof a);
    print_message("GQA (H=4, Hkv=2, yarn): max abs err vs naive %.2e\n", worst);
}

// ---------------------------------------------------------------------------
// n_hat: positions below n_hat use the unscaled frequencies

// Naive LongRoPE-with-n_hat frequencies for the config of test_n_hat.
static double longrope_n_hat_freq(const rope_table *t, int64_t p, int i) {
    double f = 1.0 / pow(10000.0, 2.0 * i / t->rotary_dim);
    double lambda = 1.0 + 0.25 * i;  // long_factor (exact in float)
    return p < 16 ? f : f / lambda;
}

static void test_n_hat(void **state) {
    (void)state;
    rope_config cfg = rope_config_default(32);
    cfg.type = ROPE_TYPE_LONGROPE;
    cfg.max_position_embeddings = 16384;
    cfg.original_max_position_embeddings = 2048;
    cfg.n_factors = 16;
    for (int i = 0; i < 16; i++) {
        cfg.short_factor[i] = 1.0 + 0.125 * i;
        cfg.long_factor[i] = 1.0 + 0.25 * i;
    }
    cfg.n_hat = 16;
    char err[256];
    assert_int_equal(rope_config_validate(&cfg, err, sizeof err), 0);
    rope_table t;
    rope_table_init(&t, &cfg, 4000);  // > original: long factors
    assert_int_equal(t.n_hat, 16);
    const int32_t pos[10] = {0, 1, 7, 15, 16, 17, 100, 2047, 2048, 3999};
    double worst = 0, ratio = 0;
    for (int l = 0; l < 2; l++)
        worst = fmax(worst, check_forward_naive(&ratio, &t, longrope_n_hat_freq, (rope_layout)l,
                                                pos, 10, 2, 1, 32, 40 + l));
    // n_hat = 0 is plain LongRoPE: position 1 uses the scaled frequencies.
    cfg.n_hat = 0;
    rope_table t0;
    rope_table_init(&t0, &cfg, 4000);
    float x[32] = {0}, y[32] = {0};
    x[5] = y[5] = 1.0f;
    const int32_t p1 = 1;
    rope_forward(x, NULL, &p1, NULL, &t, ROPE_LAYOUT_HALF, 1, 1, 0, 32);
    rope_forward(y, NULL, &p1, NULL, &t0, ROPE_LAYOUT_HALF, 1, 1, 0, 32);
    assert_true(fabs(x[21] - y[21]) > 1e-3);  // sin differs: lambda_5 = 2.25
    print_message(
        "n_hat=16 (longrope, long factors, p <= 3999): max abs err vs naive per-position "
        "%.2e (%.3f of tol)\n",
        worst, ratio);
}

// ---------------------------------------------------------------------------
// Round trip, runtime selection, validation, names

static void test_backward_inverts_forward(void **state) {
    (void)state;
    rope_config cfg = rope_config_default(64);
    cfg.type = ROPE_TYPE_LLAMA3;
    cfg.theta = 500000.0;
    cfg.factor = 8;
    cfg.low_freq_factor = 1;
    cfg.high_freq_factor = 4;
    cfg.max_position_embeddings = 131072;
    cfg.original_max_position_embeddings = 8192;
    rope_table t;
    rope_table_init(&t, &cfg, 0);
    assert_true(t.attention_factor == 1.0f);
    enum { N = 8, H = 2, Hkv = 1, D = 64 };
    const int32_t pos[N] = {0, 1, 2, 100, 4095, 8191, 65536, 131071};
    double worst = 0;
    for (int l = 0; l < 2; l++) {
        float q[N * H * D], k[N * Hkv * D], q0[N * H * D], k0[N * Hkv * D];
        fill_random(q, N * H * D, 50 + l);
        fill_random(k, N * Hkv * D, 60 + l);
        memcpy(q0, q, sizeof q);
        memcpy(k0, k, sizeof k);
        rope_forward(q, k, pos, NULL, &t, (rope_layout)l, N, H, Hkv, D);
        rope_backward(q, k, pos, NULL, &t, (rope_layout)l, N, H, Hkv, D);
        for (int j = 0; j < N * H * D; j++) worst = fmax(worst, fabs(q[j] - q0[j]));
        for (int j = 0; j < N * Hkv * D; j++) worst = fmax(worst, fabs(k[j] - k0[j]));
    }
    if (!(worst <= 1e-6)) fail_msg("backward(forward(x)) - x = %.3g", worst);
    print_message("backward(forward(x)) == x (llama3, a=1): max abs err %.2e\n", worst);
}

static void assert_tables_equal(const rope_table *a, const rope_table *b) {
    assert_int_equal(a->n_pairs, b->n_pairs);
    assert_memory_equal(a->inv_freq, b->inv_freq, sizeof(float) * (size_t)a->n_pairs);
    assert_true(a->attention_factor == b->attention_factor);
}

// dynamic NTK and LongRoPE at seq_len 0 (init), <= L and > L.
static void test_runtime_seq_len(void **state) {
    (void)state;
    rope_config def = rope_config_default(128);
    rope_config dyn = def;
    dyn.type = ROPE_TYPE_DYNAMIC;
    dyn.factor = 4;
    dyn.max_position_embeddings = 4096;
    rope_table td, t0, t1, t2;
    rope_table_init(&td, &def, 0);
    rope_table_init(&t0, &dyn, 0);
    rope_table_init(&t1, &dyn, 1000);
    rope_table_init(&t2, &dyn, 4097);
    assert_tables_equal(&td, &t0);
    assert_tables_equal(&td, &t1);
    assert_true(t2.inv_freq[10] < td.inv_freq[10]);
    // base' = 1e4 * (4 * 16384 / 4096 - 3)^(128/126): check pair 1 = 1/base'^(2/128).
    rope_table t3;
    rope_table_init(&t3, &dyn, 16384);
    double base = 1e4 * pow(13.0, 128.0 / 126.0);
    assert_true(fabs(t3.inv_freq[1] - pow(base, -2.0 / 128)) <= 1e-7);

    rope_config lr = rope_config_default(8);
    lr.type = ROPE_TYPE_LONGROPE;
    lr.max_position_embeddings = 8192;
    lr.original_max_position_embeddings = 1024;
    lr.n_factors = 4;
    for (int i = 0; i < 4; i++) {
        lr.short_factor[i] = 1.0;
        lr.long_factor[i] = 2.0;
    }
    rope_table s0, s1, l1;
    rope_table_init(&s0, &lr, 0);
    rope_table_init(&s1, &lr, 1024);
    rope_table_init(&l1, &lr, 1025);
    assert_tables_equal(&s0, &s1);
    for (int i = 0; i < 4; i++) {
        assert_true(fabs(s0.inv_freq[i] - pow(1e4, -i / 4.0)) <= 1e-7);  // short factors all 1
        assert_true(l1.inv_freq[i] == s0.inv_freq[i] / 2);
    }
    // attention factor sqrt(1 + ln 8 / ln 1024), the same for short and long.
    assert_true(fabs(s0.attention_factor - sqrt(1 + log(8.0) / log(1024.0))) < 1e-7);
    assert_true(s0.attention_factor == l1.attention_factor);
}

typedef struct {
    const char *what;
    rope_config cfg;
    const char *key;  // must appear in the message
} bad_case;

static rope_config valid_yarn(void) {
    rope_config c = rope_config_default(64);
    c.type = ROPE_TYPE_YARN;
    c.factor = 4;
    c.max_position_embeddings = 16384;
    c.original_max_position_embeddings = 4096;
    return c;
}

static rope_config valid_llama3(void) {
    rope_config c = rope_config_default(64);
    c.type = ROPE_TYPE_LLAMA3;
    c.theta = 500000;
    c.factor = 8;
    c.low_freq_factor = 1;
    c.high_freq_factor = 4;
    c.max_position_embeddings = 131072;
    c.original_max_position_embeddings = 8192;
    return c;
}

static rope_config valid_longrope(void) {
    rope_config c = rope_config_default(16);
    c.type = ROPE_TYPE_LONGROPE;
    c.max_position_embeddings = 131072;
    c.original_max_position_embeddings = 4096;
    c.n_factors = 8;
    for (int i = 0; i < 8; i++) c.short_factor[i] = c.long_factor[i] = 1.0 + i;
    return c;
}

static void test_validation(void **state) {
    (void)state;
    char err[256];
    rope_config ok[4] = {rope_config_default(64), valid_yarn(), valid_llama3(), valid_longrope()};
    for (int i = 0; i < 4; i++) {
        if (rope_config_validate(&ok[i], err, sizeof err) != 0)
            fail_msg("valid config rejected: %s", err);
    }

    bad_case bad[64];
    int nb = 0;
#define BAD(WHAT, BASE, KEY, STMT)             \
    do {                                       \
        rope_config c_ = BASE;                 \
        rope_config *c = &c_;                  \
        STMT;                                  \
        bad[nb++] = (bad_case){WHAT, c_, KEY}; \
    } while (0)
    BAD("head_dim 0", rope_config_default(64), "head_dim", c->head_dim = 0);
    BAD("head_dim odd", rope_config_default(64), "head_dim", c->head_dim = 7);
    BAD("head_dim negative", rope_config_default(64), "head_dim", c->head_dim = -8);
    BAD("head_dim too big", rope_config_default(64), "head_dim",
        c->head_dim = 2 * ROPE_MAX_PAIRS + 2);
    BAD("rotary dim odd", rope_config_default(64), "partial_rotary_factor",
        c->partial_rotary_factor = 0.3);
    BAD("rotary dim 0", rope_config_default(64), "partial_rotary_factor",
        c->partial_rotary_factor = 0.01);
    BAD("partial > 1", rope_config_default(64), "partial_rotary_factor",
        c->partial_rotary_factor = 1.5);
    BAD("theta 0", rope_config_default(64), "rope_theta", c->theta = 0);
    BAD("theta negative", rope_config_default(64), "rope_theta", c->theta = -1e4);
    BAD("theta NaN", rope_config_default(64), "rope_theta", c->theta = NAN);
    BAD("linear no factor", rope_config_default(64), "rope_scaling.factor",
        c->type = ROPE_TYPE_LINEAR);
    BAD("linear factor -1", rope_config_default(64), "rope_scaling.factor",
        (c->type = ROPE_TYPE_LINEAR, c->factor = -1));
    BAD("linear factor 0.5", rope_config_default(64), "rope_scaling.factor",
        (c->type = ROPE_TYPE_LINEAR, c->factor = 0.5));
    BAD("dynamic no max_pos", rope_config_default(64), "max_position_embeddings",
        (c->type = ROPE_TYPE_DYNAMIC, c->factor = 2));
    BAD("yarn factor -2", valid_yarn(), "rope_scaling.factor", c->factor = -2);
    BAD("yarn original > max", valid_yarn(), "rope_scaling.original_max_position_embeddings",
        c->original_max_position_embeddings = 32768);
    BAD("yarn attention_factor < 0", valid_yarn(), "rope_scaling.attention_factor",
        c->attention_factor = -1);
    BAD("yarn beta_fast < beta_slow", valid_yarn(), "rope_scaling.beta_fast",
        (c->beta_fast = 1, c->beta_slow = 32));
    BAD("yarn beta_slow < 0", valid_yarn(), "rope_scaling.beta_slow", c->beta_slow = -1);
    BAD("yarn mscale < 0", valid_yarn(), "rope_scaling.mscale", c->mscale = -1);
    BAD("yarn mscale_all_dim < 0", valid_yarn(), "rope_scaling.mscale_all_dim",
        c->mscale_all_dim = -1);
    BAD("yarn n_hat", valid_yarn(), "rope_scaling.n_hat", c->n_hat = 4);
    BAD("llama3 high <= low", valid_llama3(), "rope_scaling.high_freq_factor",
        c->high_freq_factor = 1);
    BAD("llama3 low 0", valid_llama3(), "rope_scaling.low_freq_factor", c->low_freq_factor = 0);
    BAD("llama3 no factor", valid_llama3(), "rope_scaling.factor", c->factor = 0);
    BAD("llama3 original > max", valid_llama3(), "rope_scaling.original_max_position_embeddings",
        c->max_position_embeddings = 4096);
    BAD("longrope no lists", valid_longrope(), "short_factor", c->n_factors = 0);
    BAD("longrope wrong length", valid_longrope(), "short_factor", c->n_factors = 7);
    BAD("longrope short <= 0", valid_longrope(), "rope_scaling.short_factor[3]",
        c->short_factor[3] = 0);
    BAD("longrope long < 0", valid_longrope(), "rope_scaling.long_factor[5]",
        c->long_factor[5] = -1);
    BAD("longrope factor 0.5", valid_longrope(), "rope_scaling.factor", c->factor = 0.5);
    BAD("longrope original > max", valid_longrope(),
        "rope_scaling.original_max_position_embeddings", c->max_position_embeddings = 2048);
    BAD("longrope n_hat < 0", valid_longrope(), "rope_scaling.n_hat", c->n_hat = -1);
    BAD("unknown type", rope_config_default(64), "rope_type", c->type = (rope_type)42);
#undef BAD
    for (int i = 0; i < nb; i++) {
        strcpy(err, "");
        int rc = rope_config_validate(&bad[i].cfg, err, sizeof err);
        if (rc != -1) fail_msg("%s: accepted (rc %d)", bad[i].what, rc);
        if (!strstr(err, bad[i].key))
            fail_msg("%s: message \"%s\" does not name %s", bad[i].what, err, bad[i].key);
        if (strchr(err, '\n')) fail_msg("%s: message is not one line", bad[i].what);
    }
    rope_config c = rope_config_default(64);
    c.type = ROPE_TYPE_LINEAR;
    c.factor = -1;
    rope_config_validate(&c, err, sizeof err);
    assert_non_null(strstr(err, "(got -1)"));
    // A tiny buffer truncates, never overflows.
    char small[8];
    assert_int_equal(rope_config_validate(&c, small, sizeof small), -1);
    assert_int_equal(strlen(small), sizeof small - 1);
    print_message("validation: %d rejected configs, each names its key\n", nb);
}

// ---------------------------------------------------------------------------
// Mixed context windows (LongRoPE2): a short and a long table, a window flag
// per token, short documents rotated with the short factors at every position

// A longrope config whose short and long factors differ in every pair, n_hat 6.
static rope_config mixed_longrope(int head_dim) {
    rope_config c = rope_config_default(head_dim);
    c.type = ROPE_TYPE_LONGROPE;
    c.max_position_embeddings = 512;
    c.original_max_position_embeddings = 32;
    c.n_factors = head_dim / 2;
    for (int i = 0; i < head_dim / 2; i++) {
        c.short_factor[i] = 1.0 + 0.0625 * i;  // exact in float
        c.long_factor[i] = 2.0 + 0.5 * i;
    }
    c.n_hat = 6;
    return c;
}

// The frequency of pair i for a token at p in a short or long document of
// mixed_longrope's config, from the factors (not from the table).
static double mixed_formula_freq(const rope_config *c, bool is_short, int64_t p, int i) {
    double f = pow(c->theta, -2.0 * i / c->head_dim);
    if (is_short) return f / c->short_factor[i];
    return p < c->n_hat ? f : f / c->long_factor[i];
}

// y = x rotated per token with the formula frequencies of its window.
static void naive_rotate_mixed(double *y, const double *x, const int32_t *pos, const uint8_t *win,
                               const rope_config *c, double a, rope_layout layout, int64_t N,
                               int nh, int D, double sign) {
    int half = c->head_dim / 2;
    for (int64_t n = 0; n < N; n++)
        for (int h = 0; h < nh; h++) {
            const double *xh = x + (n * nh + h) * D;
            double *yh = y + (n * nh + h) * D;
            for (int j = 0; j < D; j++) yh[j] = xh[j];
            for (int i = 0; i < half; i++) {
                int j0, j1;
                pair_channels(&j0, &j1, i, half, layout);
                double th = mixed_formula_freq(c, win[n] == ROPE_WIN_SHORT, pos[n], i) * pos[n];
                double cs = a * cos(th), sn = sign * a * sin(th);
                yh[j0] = xh[j0] * cs - xh[j1] * sn;
                yh[j1] = xh[j0] * sn + xh[j1] * cs;
            }
        }
}

static void test_mixed_windows_flags(void **state) {
    (void)state;
    // Row 0: documents of 3, 5 (reaches 5 > 4: long), 4 (exactly the short
    // length: short) tokens, then 2 padding tokens (seg -1). Row 1: one
    // document whose positions jump (PoSE) to 40: long everywhere.
    enum { B = 2, T = 14 };
    const int32_t pos[B * T] = {0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1,
                                0, 1, 2, 3, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45};
    const int32_t seg[B * T] = {0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, -1, -1,
                                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t want[B * T] = {0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
                                 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    uint8_t win[B * T];
    memset(win, 7, sizeof win);
    rope_windows(win, pos, seg, B, T, 4);
    assert_memory_equal(win, want, sizeof want);
    // seg NULL: each row is one document; row 0 reaches 5 > 4
    rope_windows(win, pos, NULL, B, T, 4);
    for (int i = 0; i < B * T; i++) assert_int_equal(win[i], ROPE_WIN_LONG);
    rope_windows(win, pos, NULL, 1, T, 5);  // row 0 alone, short length 5: short
    for (int i = 0; i < T; i++) assert_int_equal(win[i], ROPE_WIN_SHORT);
    // A document is every token of its seg id in the row, contiguous or not.
    const int32_t pos2[6] = {0, 1, 0, 2, 3, 4}, seg2[6] = {0, 0, 1, 0, 0, 0};
    uint8_t w2[6];
    rope_windows(w2, pos2, seg2, 1, 6, 4);
    const uint8_t want2[6] = {1, 1, 0, 1, 1, 1};
    assert_memory_equal(w2, want2, sizeof want2);
}

static void test_mixed_windows_tables(void **state) {
    (void)state;
    rope_config c = mixed_longrope(16);
    rope_table t, s, l;
    rope_table_init_mixed(&t, &c);
    rope_table_init(&s, &c, 32);
    rope_table_init(&l, &c, 33);
    assert_int_equal(t.short_len, 32);
    assert_int_equal(t.n_hat, 6);
    assert_true(t.attention_factor == s.attention_factor && t.attention_factor == l.attention_factor);
    // sqrt(1 + ln(512 / 32) / ln 32): transformers' longrope, once per model
    assert_true(fabs(t.attention_factor - sqrt(1 + log(16.0) / log(32.0))) < 1e-7);
    for (int i = 0; i < 8; i++) {
        assert_true(t.inv_freq_short[i] == s.inv_freq[i] && t.inv_freq[i] == l.inv_freq[i]);
        double fs = mixed_formula_freq(&c, true, 100, i), fl = mixed_formula_freq(&c, false, 100, i);
        assert_true(fabs(t.inv_freq_short[i] - fs) <= 1e-7 * fs);
        assert_true(fabs(t.inv_freq[i] - fl) <= 1e-7 * fl);
        assert_true(t.inv_freq_short[i] != t.inv_freq[i]);
    }
    // A plain table is not mixed.
    assert_int_equal(s.short_len, 0);
    assert_int_equal(l.short_len, 0);

    // The longrope form of yarn, linear and llama3: short = the original
    // frequencies, long = the type's own table, the type's attention factor.
    rope_config ys[3] = {valid_yarn(), valid_yarn(), valid_llama3()};
    ys[1].type = ROPE_TYPE_LINEAR;
    double worst = 0;
    for (int k = 0; k < 3; k++) {
        rope_config lr;
        char err[256];
        assert_int_equal(rope_config_as_longrope(&lr, &ys[k], err, sizeof err), 0);
        assert_int_equal(lr.type, ROPE_TYPE_LONGROPE);
        assert_int_equal(lr.original_max_position_embeddings, ys[k].original_max_position_embeddings);
        assert_int_equal(lr.max_position_embeddings, ys[k].max_position_embeddings);
        rope_table own, def, mixed;
        rope_table_init(&own, &ys[k], 0);
        rope_config d = rope_config_default(ys[k].head_dim);
        d.theta = ys[k].theta;
        rope_table_init(&def, &d, 0);
        rope_table_init_mixed(&mixed, &lr);
        assert_true(mixed.attention_factor == own.attention_factor);
        for (int i = 0; i < own.n_pairs; i++) {
            assert_true(mixed.inv_freq_short[i] == def.inv_freq[i]);
            double e = fabs(mixed.inv_freq[i] - own.inv_freq[i]) / own.inv_freq[i];
            if (!(e <= 1.2e-7)) fail_msg("%s pair %d: long %.9g vs own %.9g", rope_type_name(ys[k].type), i,
                                         mixed.inv_freq[i], own.inv_freq[i]);
            worst = fmax(worst, e);
        }
    }
    rope_config bad[2] = {rope_config_default(16), rope_config_default(16)};
    bad[1].type = ROPE_TYPE_DYNAMIC, bad[1].factor = 2, bad[1].max_position_embeddings = 64;
    for (int k = 0; k < 2; k++) {
        rope_config lr;
        char err[256];
        assert_int_equal(rope_config_as_longrope(&lr, &bad[k], err, sizeof err), -1);
        assert_non_null(strstr(err, rope_type_name(bad[k].type)));
    }
    print_message("mixed tables: short/long from the factors to 1e-7; yarn/linear/llama3 as longrope: "
                  "long table within %.2e relative of their own\n", worst);
}

static void test_mixed_windows_rotate(void **state) {
    (void)state;
    enum { N = 12, H = 3, Hkv = 1, D = 16 };
    rope_config c = mixed_longrope(D);
    rope_table t;
    rope_table_init_mixed(&t, &c);
    // Two documents: 4 tokens (short) and 8 whose positions reach 40 (long).
    const int32_t pos[N] = {0, 1, 2, 3, 0, 1, 5, 6, 7, 38, 39, 40};
    const int32_t seg[N] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    uint8_t win[N];
    rope_windows(win, pos, seg, 1, N, t.short_len);
    assert_int_equal(win[3], ROPE_WIN_SHORT);
    assert_int_equal(win[4], ROPE_WIN_LONG);
    double worst_f = 0, worst_b = 0;
    for (int l = 0; l < 2; l++) {
        rope_layout layout = (rope_layout)l;
        float q[N * H * D], k[N * Hkv * D];
        fill_random(q, N * H * D, 60 + l);
        fill_random(k, N * Hkv * D, 62 + l);
        double *q0 = to_double(q, N * H * D), *k0 = to_double(k, N * Hkv * D);
        double qr[N * H * D], kr[N * Hkv * D];
        naive_rotate_mixed(qr, q0, pos, win, &c, t.attention_factor, layout, N, H, D, 1.0);
        naive_rotate_mixed(kr, k0, pos, win, &c, t.attention_factor, layout, N, Hkv, D, 1.0);
        rope_forward(q, k, pos, win, &t, layout, N, H, Hkv, D);
        // the float inv_freq vs the formula's double: angle off by <= p * inv * 2^-24
        const double tol = 2e-6 + 2.0 * 40 * TWO_M23;
        worst_f = fmax(worst_f, fmax(max_abs_diff_fd(q, qr, N * H * D), max_abs_diff_fd(k, kr, N * Hkv * D)));
        if (!(worst_f <= tol)) fail_msg("%s: mixed forward vs naive err %.3g", rope_layout_name(layout), worst_f);
        // The short document differs from what the long table gives it (the test can fail).
        float q1[N * H * D];
        fill_random(q1, N * H * D, 60 + l);
        uint8_t all_long[N];
        memset(all_long, ROPE_WIN_LONG, N);
        rope_forward(q1, NULL, pos, all_long, &t, layout, N, H, 0, D);
        double moved = 0;
        for (int j = 0; j < 4 * H * D; j++) moved = fmax(moved, fabs(q1[j] - q[j]));
        assert_true(moved > 1e-2);

        // Backward = gradient of <w, forward(x)>: central differences of the naive forward.
        float w[N * H * D], g[N * H * D];
        fill_random(w, N * H * D, 64 + l);
        memcpy(g, w, sizeof g);
        rope_backward(g, NULL, pos, win, &t, layout, N, H, 0, D);
        double *wd = to_double(w, N * H * D), tmp[N * H * D];
        const double h = 1e-3;
        for (int j = 0; j < N * H * D; j++) {
            double x0 = q0[j], lp = 0, lm = 0;
            q0[j] = x0 + h;
            naive_rotate_mixed(tmp, q0, pos, win, &c, t.attention_factor, layout, N, H, D, 1.0);
            for (int e = 0; e < N * H * D; e++) lp += wd[e] * tmp[e];
            q0[j] = x0 - h;
            naive_rotate_mixed(tmp, q0, pos, win, &c, t.attention_factor, layout, N, H, D, 1.0);
            for (int e = 0; e < N * H * D; e++) lm += wd[e] * tmp[e];
            q0[j] = x0;
            double err = fabs(g[j] - (lp - lm) / (2 * h));
            if (!(err <= 5e-6)) fail_msg("%s: mixed backward [%d] vs fd err %.3g", rope_layout_name(layout), j, err);
            worst_b = fmax(worst_b, err);
        }
        free(q0), free(k0), free(wd);
    }
    print_message("mixed windows (short doc: short factors at every position, long doc: long factors "
                  "+ n_hat): forward vs naive %.2e, backward vs finite differences %.2e\n",
                  worst_f, worst_b);
}

static void test_names(void **state) {
    (void)state;
    const char *names[6] = {"default", "linear", "dynamic", "yarn", "longrope", "llama3"};
    for (int i = 0; i < 6; i++) {
        rope_type t;
        assert_int_equal(rope_type_parse(names[i], &t), 0);
        assert_string_equal(rope_type_name(t), names[i]);
    }
    rope_type t;
    assert_int_equal(rope_type_parse("su", &t), -1);
    assert_int_equal(rope_type_parse("YaRN", &t), -1);
    rope_layout l;
    assert_int_equal(rope_layout_parse("half", &l), 0);
    assert_int_equal(l, ROPE_LAYOUT_HALF);
    assert_int_equal(rope_layout_parse("interleaved", &l), 0);
    assert_int_equal(l, ROPE_LAYOUT_INTERLEAVED);
    assert_string_equal(rope_layout_name(ROPE_LAYOUT_INTERLEAVED), "interleaved");
    assert_int_equal(rope_layout_parse("neox", &l), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_tables),  cmocka_unit_test(test_vectors_cos_sin),
        cmocka_unit_test(test_apply_example),   cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_partial_rotary),  cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_n_hat),           cmocka_unit_test(test_backward_inverts_forward),
        cmocka_unit_test(test_runtime_seq_len), cmocka_unit_test(test_validation),
        cmocka_unit_test(test_names),           cmocka_unit_test(test_mixed_windows_flags),
        cmocka_unit_test(test_mixed_windows_tables), cmocka_unit_test(test_mixed_windows_rotate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
