// Whole-model tests on a tiny Llama: gradients against finite differences
// with an error model (robust to every BLAS kernel and thread count; see
// the gradient check below), also with a mixed-windows RoPE table (a short
// and a long document in one row), recomputation gives identical gradients,
// the layout has HF names, and 200 AdamW steps on one batch drive the loss
// near zero.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "model.h"
#include "rope.h"

static model_config tiny_config(rope_type rt) {
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                      .ffn_dim = 48, .vocab_size = 23, .norm_eps = 1e-5f,
                      .tie_embeddings = false, .rope_layout = ROPE_LAYOUT_HALF};
    c.rope = rope_config_default(8);
    c.rope.max_position_embeddings = 32;
    c.rope.type = rt;
    if (rt == ROPE_TYPE_YARN) {
        c.rope.factor = 4.0;
        c.rope.original_max_position_embeddings = 8;
        c.rope.max_position_embeddings = 32;
    }
    return c;
}

// Two sequences of 12 tokens; the second packs two documents.
typedef struct {
    int32_t tokens[24], targets[24], pos[24], seg[24];
    uint8_t win[24];
    model_batch b;
} tiny_batch;

static void make_batch(tiny_batch *t, int vocab) {
    for (int i = 0; i < 24; i++) t->tokens[i] = (i * 7 + 3) % vocab;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 12; i++) {
            int n = s * 12 + i;
            int doc_start = (s == 1 && i >= 5) ? 5 : 0;
            t->seg[n] = (s == 1 && i >= 5) ? 1 : 0;
            t->pos[n] = i - doc_start;
            bool last_of_doc = (i == 11) || (s == 1 && i == 4);
            t->targets[n] = last_of_doc ? -1 : t->tokens[n + 1];
        }
    t->b = (model_batch){.B = 2, .T = 12, .tokens = t->tokens, .targets = t->targets,
                         .pos = t->pos, .seg = t->seg};
}

// The gradient check, robust by design. The model computes in fp32, so a
// loss evaluation carries rounding noise delta that depends on the BLAS
// kernel and thread count; a per-entry finite difference divides it by the
// step and, for a small gradient entry, can exceed any fixed tolerance.
// Instead, per tensor and direction d (unit L2 norm within the tensor: the
// tensor's gradient, two random Gaussian directions, and the coordinates of
// the largest entry, entry n/3 and the last), with an error model:
//  - delta is MEASURED at this point: the spread of the loss under 1-ulp
//    perturbations of the tensor, minus their first-order effect;
//  - D(h) = L(p + h d) - L(p - h d) is compared with the first-order
//    prediction P(h) = g . (p+ - p-) over the perturbations as actually
//    rounded to fp32 (in double), and the h^3 term is cancelled by
//    Richardson extrapolation over h and 2h:
//      (8 (D(h) - P(h)) - (D(2h) - P(2h))) / 12h  ~  0
//    within rel * |a| + 18 delta / 12h * safety, a = P(h) / 2h;
//  - h is chosen so that the noise term is small against |a|.
// A wrong gradient entry in any direction shows as an error far above the
// bound (test_gradient_check_detects_error plants one).
typedef struct {
    int checked;
    double worst;      // largest error / bound over all directions
    char first_fail[512];
} fd_report;

static double loss_at(model *m, const model_batch *b) { return model_forward(m, b, NULL); }

// Sets the tensor to base + s * d (fp32-rounded); returns g . (new - base) in double.
static double set_along(model *m, const model_tensor *mt, const float *base, const double *d,
                        double s, const float *g) {
    int64_t n = mt->shape[0] * mt->shape[1];
    double pred = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = (float)((double)base[i] + s * d[i]);
        m->params[mt->offset + i] = v;
        pred += (double)g[i] * ((double)v - (double)base[i]);
    }
    return pred;
}

static void check_direction(model *m, const model_batch *b, const model_tensor *mt, const float *base,
                            const float *g, const double *d, double delta, const char *what,
                            fd_report *rep) {
    int64_t n = mt->shape[0] * mt->shape[1];
    double a = 0;  // the analytic directional derivative
    for (int64_t i = 0; i < n; i++) a += (double)g[i] * d[i];
    // The step: noise/h at most 1e-4 of |a| where the gradient allows, within [1e-3, 3e-2].
    double h = fabs(a) > 0 ? 1e4 * delta / fabs(a) : 3e-2;
    if (h < 1e-3) h = 1e-3;
    if (h > 3e-2) h = 3e-2;
    double D[2], P[2];
    for (int k = 0; k < 2; k++) {
        double s = h * (k + 1);
        double pp = set_along(m, mt, base, d, s, g);
        double lp = loss_at(m, b);
        double pm = set_along(m, mt, base, d, -s, g);
        double lm = loss_at(m, b);
        D[k] = lp - lm;
        P[k] = pp - pm;
    }
    memcpy(m->params + mt->offset, base, sizeof(float) * (size_t)n);
    double resid = fabs(8 * (D[0] - P[0]) - (D[1] - P[1])) / (12 * h);
    double a_h = fabs(P[0]) / (2 * h);
    const double rel = 2e-3, safety = 4;
    double bound = rel * a_h + safety * 18 * delta / (12 * h);
    double ratio = resid / bound;
    if (ratio > rep->worst) rep->worst = ratio;
    if (ratio > 1 && !rep->first_fail[0])
        snprintf(rep->first_fail, sizeof rep->first_fail,
                 "%s along %s: analytic %.7g vs finite difference %.7g (error %.3g > bound %.3g; "
                 "h %.3g, loss noise %.3g)",
                 mt->name, what, P[0] / (2 * h), D[0] / (2 * h) , resid, bound, h, delta);
    rep->checked++;
}

// The rounding noise of the loss near the current point: 1-ulp random
// perturbations of the tensor change the loss by their first-order effect
// (computed exactly) plus rounding noise.
static double loss_noise(model *m, const model_batch *b, const model_tensor *mt, const float *base,
                         const float *g, uint64_t *rng) {
    int64_t n = mt->shape[0] * mt->shape[1];
    double l0 = loss_at(m, b), delta = 0;
    for (int r = 0; r < 6; r++) {
        double pred = 0;
        for (int64_t i = 0; i < n; i++) {
            *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
            float v = nextafterf(base[i], (*rng >> 63) ? INFINITY : -INFINITY);
            m->params[mt->offset + i] = v;
            pred += (double)g[i] * ((double)v - (double)base[i]);
        }
        double e = fabs(loss_at(m, b) - l0 - pred);
        if (e > delta) delta = e;
    }
    memcpy(m->params + mt->offset, base, sizeof(float) * (size_t)n);
    // Never zero: at least fp32 resolution of the loss itself.
    double floor_ = fabs(l0) * 6e-8;
    return delta > floor_ ? delta : floor_;
}

static double gauss(uint64_t *rng) {
    double u[2];
    for (int k = 0; k < 2; k++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        u[k] = ((double)(*rng >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

// Checks grads (the analytic gradient at m's parameters) tensor by tensor.
static fd_report gradient_check(model *m, const model_batch *b, const float *grads) {
    fd_report rep = {0};
    uint64_t rng = 0x5eed;
    for (int t = 0; t < m->n_tensors; t++) {
        const model_tensor *mt = &m->tensors[t];
        int64_t n = mt->shape[0] * mt->shape[1];
        const float *g = grads + mt->offset;
        float *base = malloc(sizeof(float) * (size_t)n);
        double *d = malloc(sizeof(double) * (size_t)n);
        memcpy(base, m->params + mt->offset, sizeof(float) * (size_t)n);
        double delta = loss_noise(m, b, mt, base, g, &rng);
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (fabsf(g[i]) > fabsf(g[best])) best = i;
        for (int dir = 0; dir < 6; dir++) {
            char what[64];
            double norm = 0;
            for (int64_t i = 0; i < n; i++) {
                d[i] = dir == 0 ? g[i] : dir < 3 ? gauss(&rng) : 0.0;
                norm += d[i] * d[i];
            }
            if (dir >= 3) {
                int64_t idx = dir == 3 ? best : dir == 4 ? n / 3 : n - 1;
                d[idx] = 1, norm = 1;
                snprintf(what, sizeof what, "entry %lld", (long long)idx);
            } else {
                snprintf(what, sizeof what, dir == 0 ? "its gradient" : "random direction %d", dir);
            }
            if (norm == 0) continue;
            for (int64_t i = 0; i < n; i++) d[i] /= sqrt(norm);
            check_direction(m, b, mt, base, g, d, delta, what, &rep);
        }
        free(base);
        free(d);
    }
    return rep;
}

// rope: a mixed table to train with (its window flags then go into the
// batch), or NULL for the config's.
static model *gradient_model_with(model_config cfg, bool recompute, tiny_batch *tb, const rope_table *rope) {
    make_batch(tb, cfg.vocab_size);
    model *m = model_create(&cfg, 24, recompute);
    if (rope) {
        rope_windows(tb->win, tb->pos, tb->seg, 2, 12, rope->short_len);
        tb->b.win = tb->win;
        model_set_rope(m, rope);
    }
    model_init_weights(m, 42);
    // Larger weights than the init so every path carries signal.
    for (int64_t i = 0; i < m->n_params; i++) m->params[i] *= 2.0f;
    model_zero_grads(m);
    model_forward_backward(m, &tb->b, 1.0f);
    return m;
}

static model *gradient_model(model_config cfg, bool recompute, tiny_batch *tb) {
    return gradient_model_with(cfg, recompute, tb, NULL);
}

static void check_gradients_with(model_config cfg, bool recompute, const rope_table *rope) {
    tiny_batch tb;
    model *m = gradient_model_with(cfg, recompute, &tb, rope);
    fd_report rep = gradient_check(m, &tb.b, m->grads);
    printf("  %d directional derivatives checked, worst error %.3g of its bound\n", rep.checked,
           rep.worst);
    if (rep.first_fail[0]) fail_msg("%s", rep.first_fail);
    model_free(m);
}

static void check_gradients(model_config cfg, bool recompute) { check_gradients_with(cfg, recompute, NULL); }

// The check is not vacuous: in every tensor, a gradient 1% too large, or
// one entry (none of the coordinate picks) off by 20% of the tensor's
// largest, fails it.
static void test_gradient_check_detects_error(void **state) {
    (void)state;
    tiny_batch tb;
    model *m = gradient_model(tiny_config(ROPE_TYPE_DEFAULT), false, &tb);
    float *g = malloc(sizeof(float) * (size_t)m->n_params);
    double least = INFINITY;
    for (int t = 0; t < m->n_tensors; t++) {
        const model_tensor *mt = &m->tensors[t];
        int64_t n = mt->shape[0] * mt->shape[1];
        for (int kind = 0; kind < 2; kind++) {
            memcpy(g, m->grads, sizeof(float) * (size_t)m->n_params);
            float big = 0;
            for (int64_t i = 0; i < n; i++) big = fmaxf(big, fabsf(g[mt->offset + i]));
            if (kind == 0)
                for (int64_t i = 0; i < n; i++) g[mt->offset + i] *= 1.01f;
            else
                g[mt->offset + n / 2] += 0.2f * big;
            model tmp = *m;
            tmp.n_tensors = 1;
            tmp.tensors = (model_tensor *)mt;
            fd_report rep = gradient_check(&tmp, &tb.b, g);
            if (!rep.first_fail[0])
                fail_msg("%s: %s went unnoticed (worst %.3g of the bound)", mt->name,
                         kind == 0 ? "a gradient 1% too large" : "an entry off by 20% of the largest",
                         rep.worst);
            if (rep.worst < least) least = rep.worst;
        }
    }
    printf("  every planted error found; the least at %.3g x its bound\n", least);
    free(g);
    model_free(m);
}

static void test_gradients_default_rope(void **state) {
    (void)state;
    check_gradients(tiny_config(ROPE_TYPE_DEFAULT), false);
}

static void test_gradients_yarn_interleaved_tied(void **state) {
    (void)state;
    model_config c = tiny_config(ROPE_TYPE_YARN);
    c.rope_layout = ROPE_LAYOUT_INTERLEAVED;
    c.tie_embeddings = true;
    check_gradients(c, false);
}

// Mixed context windows: longrope with short and long factors, original
// context 6: row 0 (one document of 12) is long, row 1 packs a short
// document (5 tokens) and a long one (7).
static void test_gradients_mixed_windows(void **state) {
    (void)state;
    model_config cfg = tiny_config(ROPE_TYPE_DEFAULT);
    rope_config c = cfg.rope;
    c.type = ROPE_TYPE_LONGROPE;
    c.original_max_position_embeddings = 6;
    c.n_factors = 4;
    const double sf[4] = {1, 1.2, 1.5, 2}, lf[4] = {1, 2.5, 5, 9};
    for (int i = 0; i < 4; i++) c.short_factor[i] = sf[i], c.long_factor[i] = lf[i];
    rope_table t;
    rope_table_init_mixed(&t, &c);
    tiny_batch tb;
    make_batch(&tb, cfg.vocab_size);
    rope_windows(tb.win, tb.pos, tb.seg, 2, 12, t.short_len);
    assert_int_equal(tb.win[0], ROPE_WIN_LONG);
    assert_int_equal(tb.win[12], ROPE_WIN_SHORT);
    assert_int_equal(tb.win[17], ROPE_WIN_LONG);
    check_gradients_with(cfg, false, &t);
    // recomputation threads the flags through the backward's forward too
    tiny_batch ta, tr;
    model *a = gradient_model_with(cfg, false, &ta, &t), *b = gradient_model_with(cfg, true, &tr, &t);
    assert_memory_equal(a->grads, b->grads, sizeof(float) * a->n_params);
    model_free(a);
    model_free(b);
}

static void test_recompute_same_gradients(void **state) {
    (void)state;
    model_config cfg = tiny_config(ROPE_TYPE_DEFAULT);
    tiny_batch tb;
    make_batch(&tb, cfg.vocab_size);
    model *a = model_create(&cfg, 24, false), *b = model_create(&cfg, 24, true);
    model_init_weights(a, 7);
    model_init_weights(b, 7);
    model_zero_grads(a);
    model_zero_grads(b);
    double la = model_forward_backward(a, &tb.b, 0.1f);
    double lb = model_forward_backward(b, &tb.b, 0.1f);
    assert_true(la == lb);
    assert_memory_equal(a->grads, b->grads, sizeof(float) * a->n_params);
    model_free(a);
    model_free(b);
}

// Activation offload (model_opts): the residual checkpoints through two
// backend slots and host memory give the very gradients of keeping them all
// (on the cpu the copies are immediate, so a slot overwritten while still
// needed shows at once). 5 layers: checkpoints 0..3 go to the host and come
// back, 4 and 5 stay; two calls, so the slots are reused across calls.
static void test_offload_activations_same_gradients(void **state) {
    (void)state;
    model_config cfg = tiny_config(ROPE_TYPE_DEFAULT);
    cfg.n_layers = 5;
    tiny_batch tb;
    make_batch(&tb, cfg.vocab_size);
    model_opts o = {.recompute = true, .offload_activations = true};
    model *a = model_create(&cfg, 24, true), *b = model_create_opts(&cfg, 24, &o, backend_cpu());
    model_init_weights(a, 7);
    model_init_weights(b, 7);
    model_zero_grads(a);
    model_zero_grads(b);
    for (int call = 0; call < 2; call++) {
        double la = model_forward_backward(a, &tb.b, 0.1f);
        double lb = model_forward_backward(b, &tb.b, 0.1f);
        assert_true(la == lb);
        assert_memory_equal(a->grads, b->grads, sizeof(float) * a->n_params);
    }
    model_free(a);
    model_free(b);
}

static void test_layout_names(void **state) {
    (void)state;
    model_config cfg = tiny_config(ROPE_TYPE_DEFAULT);
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(&cfg, &n, &total);
    assert_int_equal(n, 1 + 9 * 2 + 2);
    assert_string_equal(t[0].name, "model.embed_tokens.weight");
    assert_string_equal(t[2].name, "model.layers.0.self_attn.q_proj.weight");
    assert_int_equal(t[2].shape[0], 32);
    assert_int_equal(t[3].shape[0], 16);  // k_proj: Hkv * D
    assert_string_equal(t[n - 1].name, "lm_head.weight");
    int64_t expect = 23 * 32 * 2 + 32 + 2 * (32 + 32 * 32 + 16 * 32 * 2 + 32 * 32 + 32 + 3 * 48 * 32);
    assert_int_equal(total, expect);
    free(t);
}

static void test_overfit_one_batch(void **state) {
    (void)state;
    model_config cfg = tiny_config(ROPE_TYPE_DEFAULT);
    tiny_batch tb;
    make_batch(&tb, cfg.vocab_size);
    model *m = model_create(&cfg, 24, false);
    model_init_weights(m, 1);
    float *mom = calloc((size_t)m->n_params, sizeof(float));
    float *var = calloc((size_t)m->n_params, sizeof(float));
    adamw_hparams hp = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.0f};
    int valid = 0;
    for (int i = 0; i < 24; i++) valid += tb.targets[i] >= 0;
    double first = 0, loss = 0;
    for (int step = 1; step <= 200; step++) {
        model_zero_grads(m);
        loss = model_forward_backward(m, &tb.b, 1.0f / valid) / valid;
        if (step == 1) first = loss;
        double norm = sqrt(adamw_grad_norm_sq(m->grads, m->n_params));
        adamw_update(m->params, mom, var, m->grads, m->n_params, &hp, step,
                     adamw_clip_factor(norm, 1.0));
    }
    printf("  loss %.4f -> %.4f after 200 steps\n", first, loss);
    assert_true(first > 2.5);   // ~ln(23) at init
    assert_true(loss < 0.05);
    free(mom);
    free(var);
    model_free(m);
}

// The memory estimate is the allocation: a backend that counts what
// model_create_on allocates (device-style: master, grads and activations all
// through the backend) agrees with model_mem_plan to the byte.
static size_t counted;
static void *count_alloc(backend *b, size_t bytes) {
    counted += bytes;
    return calloc(bytes ? bytes : 1, 1);
}

static size_t counted_host;
static void *count_host_alloc(backend *b, size_t bytes) {
    counted_host += bytes;
    return calloc(bytes ? bytes : 1, 1);
}

static void test_memory_plan_is_the_allocation(void **state) {
    (void)state;
    backend_ops ops = *backend_cpu()->op;
    ops.alloc = count_alloc;
    backend counting = {.kind = BACKEND_CPU, .dt = BK_F32, .host_memory = false, .op = &ops};
    model_config cfg = tiny_config(ROPE_TYPE_DEFAULT);
    for (int recompute = 0; recompute < 2; recompute++) {
        counted = 0;
        model *m = model_create_on(&cfg, 24, recompute, &counting);
        model_mem mm;
        model_mem_plan(&mm, &cfg, 24, recompute, BK_F32, true);
        assert_int_equal(counted, mm.params + mm.grads + mm.work + mm.activations);
        model_free(m);
    }
    // Activation offload: two of the L + 1 residual checkpoints through the
    // backend, L - 1 in host memory (host_alloc).
    counted_host = 0;
    ops.host_alloc = count_host_alloc;
    counted = 0;
    model_opts o = {.recompute = true, .offload_activations = true};
    model *m = model_create_opts(&cfg, 24, &o, &counting);
    model_mem pm;
    model_mem_plan(&pm, &cfg, 24, true, BK_F32, true);
    const size_t resid = sizeof(float) * 24 * (size_t)cfg.dim;
    assert_int_equal(counted, pm.params + pm.grads + pm.work + pm.activations -
                                  (size_t)(cfg.n_layers - 1) * resid);
    assert_int_equal(counted_host, (size_t)(cfg.n_layers - 1) * resid);
    model_free(m);
    // The 135M Llama (SmolLM-135M shape) at 128K tokens in one step on one
    // 80 GB GPU: bf16 activations, per-layer recomputation.
    model_config big = {.dim = 576, .n_layers = 30, .n_heads = 9, .n_kv_heads = 3, .head_dim = 64,
                        .ffn_dim = 1536, .vocab_size = 49152, .norm_eps = 1e-5f,
                        .tie_embeddings = true, .rope_layout = ROPE_LAYOUT_HALF};
    big.rope = rope_config_default(64);
    model_mem mm;
    model_mem_plan(&mm, &big, 131072, true, BK_BF16, true);
    printf("  135M, 128K tokens, bf16, recompute: %.2f GB planned (activations %.2f GB)\n",
           mm.total / 1e9, mm.activations / 1e9);
    assert_true(mm.total < 40e9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_names),
        cmocka_unit_test(test_gradients_default_rope),
        cmocka_unit_test(test_gradients_yarn_interleaved_tied),
        cmocka_unit_test(test_gradients_mixed_windows),
        cmocka_unit_test(test_gradient_check_detects_error),
        cmocka_unit_test(test_recompute_same_gradients),
        cmocka_unit_test(test_offload_activations_same_gradients),
        cmocka_unit_test(test_overfit_one_batch),
        cmocka_unit_test(test_memory_plan_is_the_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
