// bench_train_step: one full training step of stretch on the GPU (forward +
// backward with per-layer recomputation, chunked loss, grad norm, AdamW on
// the device) for the 135M Llama (30 layers, dim 576, 9 heads / 3 kv heads,
// ffn 1536, vocab 49152, tied embeddings) at one sequence of seq_len tokens.
// usage: bench_train_step SEQ_LEN [STEPS=5] [bf16|fp32]
// Prints the step time (median of STEPS after 2 warm-up steps), tokens/s,
// model TFLOP/s, the planned memory (model_mem_plan) and the backend's peak.
// One line starting with RESULT is JSON for bench/gpu/train_vs_torch.py.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "model.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_train_step SEQ_LEN [STEPS] [bf16|fp32]\n");
        return 2;
    }
    const int64_t T = atoll(argv[1]);
    const int steps = argc > 2 ? atoi(argv[2]) : 5;
    const bk_dtype dt = argc > 3 && !strcmp(argv[3], "fp32") ? BK_F32 : BK_BF16;
    if (backend_gpu_count() == 0) {
        printf("no GPU visible: skipped\n");
        return 77;
    }
    model_config cfg = {.dim = 576, .n_layers = 30, .n_heads = 9, .n_kv_heads = 3, .head_dim = 64,
                        .ffn_dim = 1536, .vocab_size = 49152, .norm_eps = 1e-5f,
                        .tie_embeddings = true, .rope_layout = ROPE_LAYOUT_HALF};
    cfg.rope = rope_config_default(64);
    cfg.rope.theta = 100000.0;
    cfg.rope.max_position_embeddings = T;
    char err[256];
    backend *bk = backend_create(BACKEND_CUDA, dt, 0, err, sizeof err);
    if (!bk) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    model_mem plan;
    model_mem_plan(&plan, &cfg, T, true, dt, true);
    model *m = model_create_on(&cfg, T, true, bk);
    model_init_weights(m, 1);
    size_t pbytes = sizeof(float) * (size_t)m->n_params;
    float *mom = bk->op->alloc(bk, pbytes), *var = bk->op->alloc(bk, pbytes);

    int32_t *tok = malloc(sizeof(int32_t) * T), *tgt = malloc(sizeof(int32_t) * T);
    int32_t *pos = malloc(sizeof(int32_t) * T);
    uint32_t s = 1;
    for (int64_t i = 0; i < T; i++) {
        s = s * 1664525u + 1013904223u;
        tok[i] = (int32_t)((s >> 8) % (uint32_t)cfg.vocab_size);
        pos[i] = (int32_t)i;
    }
    for (int64_t i = 0; i < T; i++) tgt[i] = i + 1 < T ? tok[i + 1] : -1;
    model_batch b = {.B = 1, .T = T, .tokens = tok, .targets = tgt, .pos = pos, .seg = NULL};
    adamw_hparams hp = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};

    double *times = calloc((size_t)steps, sizeof(double)), loss = 0;
    for (int i = -2; i < steps; i++) {
        bk->op->sync(bk);
        double t0 = now_s();
        model_zero_grads(m);
        loss = model_forward_backward(m, &b, 1.0f / (float)(T - 1)) / (double)(T - 1);
        double norm = sqrt(bk->op->grad_norm_sq(bk, m->dgrads, m->n_params));
        bk->op->adamw(bk, m->dparams, mom, var, m->dgrads, m->work, m->tensors, m->n_tensors, &hp,
                      i + 3, adamw_clip_factor(norm, 1.0));
        bk->op->sync(bk);
        if (i >= 0) times[i] = now_s() - t0;
    }
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    double t = times[steps / 2];
    // Model FLOPs per token (no recomputation counted): 6 x matmul params
    // (the tied LM head counted once as a matmul) + causal attention
    // 6 x L x T x H x D (QK^T and PV, forward 2 T H D per token, x3 for training).
    double P = (double)m->n_params - (double)cfg.dim * (2 * cfg.n_layers + 1);  // minus norms
    double flops_tok = 6.0 * P + 6.0 * cfg.n_layers * (double)T * cfg.n_heads * cfg.head_dim;
    size_t now_b, peak_b;
    backend_mem_stats(bk, &now_b, &peak_b);
    printf("stretch %s seq %lld: step %.3f s (median of %d), %.0f tokens/s, %.1f TFLOP/s, loss %.4f, "
           "planned %.2f GB, backend peak %.2f GB\n",
           dt == BK_BF16 ? "bf16" : "fp32", (long long)T, t, steps, T / t, T / t * flops_tok / 1e12,
           loss, plan.total / 1e9, peak_b / 1e9);
    printf("RESULT {\"impl\": \"stretch\", \"seq_len\": %lld, \"step_s\": %.6f, \"tokens_per_s\": %.1f, "
           "\"flops_per_token\": %.6e, \"peak_bytes\": %zu, \"planned_bytes\": %zu, \"loss\": %.6f}\n",
           (long long)T, t, T / t, flops_tok, peak_b, plan.total, loss);
    bk->op->free(bk, mom);
    bk->op->free(bk, var);
    model_free(m);
    backend_free(bk);
    free(tok); free(tgt); free(pos); free(times);
    return 0;
}
