// bench_model: training-step throughput of the CPU reference model and where
// the time goes (matmul vs attention vs the rest).
//
//   bench_model [--layers 6 --dim 384 --heads 6 --kv-heads 2 --ffn 1024
//                --vocab 512 --seq 1024 --steps 5] [--dump DIR]
//
// --dump DIR writes the parameters, the batch, the loss, the gradients and a
// few logit rows, so bench/torch_compare.py can run the same model in
// PyTorch/transformers and print the speed ratio and the differences.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "die.h"
#include "model.h"
#include "xent.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void write_file(const char *dir, const char *name, const void *data, size_t bytes) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) die("cannot write %s", path);
}

static void dump(const char *dir, model *m, const model_batch *b, double loss, int valid,
                 double step_s) {
    const model_config *c = &m->cfg;
    const int64_t N = b->B * b->T;
    write_file(dir, "params.bin", m->params, sizeof(float) * m->n_params);
    write_file(dir, "grads.bin", m->grads, sizeof(float) * m->n_params);
    write_file(dir, "tokens.bin", b->tokens, sizeof(int32_t) * N);
    write_file(dir, "targets.bin", b->targets, sizeof(int32_t) * N);
    write_file(dir, "pos.bin", b->pos, sizeof(int32_t) * N);
    // Logits of the first 8 rows, from the final hidden states of the last forward.
    int64_t rows = N < 8 ? N : 8;
    float *logits = xmalloc(sizeof(float) * rows * c->vocab_size);
    for (int64_t r = 0; r < rows; r++)
        xent_logits_row(logits + r * c->vocab_size, model_final_hidden(m) + r * c->dim,
                        m->p.lm_head, c->dim, c->vocab_size);
    write_file(dir, "logits.bin", logits, sizeof(float) * rows * c->vocab_size);
    free(logits);

    char path[1024];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write %s", path);
    fprintf(f, "{\"dim\": %d, \"n_layers\": %d, \"n_heads\": %d, \"n_kv_heads\": %d, "
               "\"head_dim\": %d, \"ffn_dim\": %d, \"vocab_size\": %d, \"norm_eps\": %g, "
               "\"rope_theta\": %g, \"B\": %lld, \"T\": %lld, \"loss_mean\": %.9g, "
               "\"valid_tokens\": %d, \"logit_rows\": %lld, \"step_seconds\": %.6f, \"tensors\": [",
            c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim,
            c->vocab_size, (double)c->norm_eps, c->rope.theta, (long long)b->B, (long long)b->T,
            loss, valid, (long long)rows, step_s);
    for (int i = 0; i < m->n_tensors; i++)
        fprintf(f, "%s{\"name\": \"%s\", \"offset\": %lld, \"shape\": [%lld, %lld]}", i ? ", " : "",
                m->tensors[i].name, (long long)m->tensors[i].offset,
                (long long)m->tensors[i].shape[0], (long long)m->tensors[i].shape[1]);
    fprintf(f, "]}\n");
    fclose(f);
}

int main(int argc, char **argv) {
    int layers = 6, dim = 384, heads = 6, kv = 2, ffn = 1024, vocab = 512, seq = 1024, steps = 5;
    const char *dump_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) die("option %s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--layers")) layers = atoi(v);
        else if (!strcmp(a, "--dim")) dim = atoi(v);
        else if (!strcmp(a, "--heads")) heads = atoi(v);
        else if (!strcmp(a, "--kv-heads")) kv = atoi(v);
        else if (!strcmp(a, "--ffn")) ffn = atoi(v);
        else if (!strcmp(a, "--vocab")) vocab = atoi(v);
        else if (!strcmp(a, "--seq")) seq = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--dump")) dump_dir = v;
        else die("unknown option %s", a);
    }
    model_config cfg = {.dim = dim, .n_layers = layers, .n_heads = heads, .n_kv_heads = kv,
                        .head_dim = dim / heads, .ffn_dim = ffn, .vocab_size = vocab,
                        .norm_eps = 1e-5f, .rope_layout = ROPE_LAYOUT_HALF};
    cfg.rope = rope_config_default(dim / heads);
    cfg.rope.max_position_embeddings = seq;
    model *m = model_create(&cfg, seq, false);
    model_init_weights(m, 1234);

    int32_t *tokens = xmalloc(sizeof(int32_t) * seq), *targets = xmalloc(sizeof(int32_t) * seq),
            *pos = xmalloc(sizeof(int32_t) * seq);
    uint64_t s = 99;
    for (int i = 0; i < seq; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
        pos[i] = i;
    }
    for (int i = 0; i < seq; i++) targets[i] = i + 1 < seq ? tokens[i + 1] : -1;
    model_batch b = {.B = 1, .T = seq, .tokens = tokens, .targets = targets, .pos = pos, .seg = NULL};
    int valid = seq - 1;

    printf("model: %d layers, dim %d, %d heads (%d kv), ffn %d, vocab %d, %.2fM params; seq %d\n",
           layers, dim, heads, kv, ffn, vocab, m->n_params / 1e6, seq);
    model_zero_grads(m);
    model_forward_backward(m, &b, 1.0f / valid);  // warm-up
    memset(&m->timers, 0, sizeof m->timers);
    double best = 1e30, loss = 0;
    for (int i = 0; i < steps; i++) {
        model_zero_grads(m);
        double t0 = now_s();
        loss = model_forward_backward(m, &b, 1.0f / valid) / valid;
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    double total = m->timers.matmul + m->timers.attention + m->timers.other;
    printf("forward+backward: %.1f ms/step (best of %d), %.0f tokens/s, loss %.4f\n", best * 1e3,
           steps, seq / best, loss);
    printf("time split: matmul %.1f%%  attention %.1f%%  other %.1f%%\n",
           100 * m->timers.matmul / total, 100 * m->timers.attention / total,
           100 * m->timers.other / total);
    if (dump_dir) {
        model_zero_grads(m);
        loss = model_forward_backward(m, &b, 1.0f / valid) / valid;
        model_forward(m, &b, NULL);  // leave the final hidden states for the logit rows
        dump(dump_dir, m, &b, loss, valid, best);
        printf("dumped to %s\n", dump_dir);
    }
    free(tokens);
    free(targets);
    free(pos);
    model_free(m);
    return 0;
}
