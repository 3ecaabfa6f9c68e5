// Whole-model tests on a tiny Llama: gradients against central finite
// differences, recomputation gives identical gradients, the layout has HF
// names, and 200 AdamW steps on one batch drive the loss near zero.
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

static void check_gradients(model_config cfg, bool recompute) {
    tiny_batch tb;
    make_batch(&tb, cfg.vocab_size);
    model *m = model_create(&cfg, 24, recompute);
    model_init_weights(m, 42);
    // Larger weights than the init so every path carries signal.
    for (int64_t i = 0; i < m->n_params; i++) m->params[i] *= 2.0f;
    model_zero_grads(m);
    model_forward_backward(m, &tb.b, 1.0f);

    // For each tensor, the entries with the largest gradients and a few fixed ones.
    int checked = 0;
    double worst = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const model_tensor *mt = &m->tensors[t];
        int64_t n = mt->shape[0] * mt->shape[1];
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (fabsf(m->grads[mt->offset + i]) > fabsf(m->grads[mt->offset + best])) best = i;
        int64_t picks[3] = {best, n / 3, n - 1};
        for (int k = 0; k < 3; k++) {
            int64_t idx = mt->offset + picks[k];
            float saved = m->params[idx];
            const float eps = 1e-3f;
            m->params[idx] = saved + eps;
            double lp = model_forward(m, &tb.b, NULL);
            m->params[idx] = saved - eps;
            double lm = model_forward(m, &tb.b, NULL);
            m->params[idx] = saved;
            double fd = (lp - lm) / (2.0 * eps), g = m->grads[idx];
            double err = fabs(fd - g) / (fabs(fd) + fabs(g) + 1e-2);
            if (err > worst) worst = err;
            if (err > 2e-2)
                fail_msg("%s[%lld]: analytic %.6g vs finite difference %.6g (rel err %.3g)",
                         mt->name, (long long)picks[k], g, fd, err);
            checked++;
        }
    }
    printf("  %d gradient entries checked, worst relative error %.3g\n", checked, worst);
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
        cmocka_unit_test(test_recompute_same_gradients),
        cmocka_unit_test(test_overfit_one_batch),
        cmocka_unit_test(test_memory_plan_is_the_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
