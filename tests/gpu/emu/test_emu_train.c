// test_emu_train: a tiny Llama trains a few steps on the EMULATED GPU
// (backend_cuda.c, the real kernels/cuda kernels on the SIMT emulator,
// cuBLAS/CUB/runtime shims; tests/gpu/emu/README.md) and on the cpu backend
// from the same weights and batches: forward + backward, grad norm, AdamW.
// Two models: untied embeddings, head dim 64, GQA 2/1; tied embeddings, head
// dim 128 (MHA). Packed documents (segment ids, positions restart).
// Tolerances (relative): fp32 loss per step 1e-4, params after the steps
// (rel L2 per tensor) 1e-4; bf16 loss per step 2e-2, params 2e-2 (bf16
// activations and matmul operands, fp32 accumulation; AdamW normalises the
// update, so a gradient's bf16 error reaches the params only through lr).
// Also: params pushed and pulled back are bit-identical (checkpoint path),
// and the backend's memory accounting equals the emulated cudaMalloc bytes
// (minus cuBLAS's workspace, which the backend does not own).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "adamw.h"
#include "backend.h"
#include "cu_attn.h"
#include "cu_ops.h"
#include "model.h"

enum { B = 1, T = 40, V = 37, STEPS = 3 };
static int failures;
#define EXPECT(c, ...) do { if (!(c)) { printf("FAIL: " __VA_ARGS__); printf("\n"); failures++; } } while (0)

static model_config tiny(int head_dim, bool tied) {
    model_config c = {.dim = 128, .n_layers = 2, .n_heads = 128 / head_dim,
                      .n_kv_heads = head_dim == 64 ? 1 : 1, .head_dim = head_dim, .ffn_dim = 96,
                      .vocab_size = V, .norm_eps = 1e-5f, .tie_embeddings = tied,
                      .rope_layout = ROPE_LAYOUT_HALF};
    c.rope = rope_config_default(head_dim);
    c.rope.max_position_embeddings = T;
    return c;
}

typedef struct {
    int32_t tok[B * T], tgt[B * T], pos[B * T], seg[B * T];
    int64_t n;
    model_batch b;
} batch;

static void make_batch(batch *x, uint32_t s) {  // documents of 13, 17, 10 tokens
    const int lens[3] = {13, 17, 10};
    int t = 0;
    x->n = 0;
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < lens[d]; i++, t++) {
            s = s * 1664525u + 1013904223u;
            x->tok[t] = (int32_t)((s >> 8) % V);
            x->pos[t] = i;
            x->seg[t] = d;
        }
    for (t = 0; t < T; t++) {
        int last = t == T - 1 || x->seg[t + 1] != x->seg[t];
        x->tgt[t] = last ? -1 : x->tok[t + 1];
        x->n += !last;
    }
    x->b = (model_batch){.B = B, .T = T, .tokens = x->tok, .targets = x->tgt, .pos = x->pos,
                         .seg = x->seg};
}

static double worst_rel(const model *m, const float *a, const float *b, int *which) {
    double w = 0;
    *which = -1;
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        double d2 = 0, r2 = 0;
        for (int64_t j = 0; j < t->shape[0] * t->shape[1]; j++) {
            double d = (double)a[t->offset + j] - b[t->offset + j];
            d2 += d * d;
            r2 += (double)b[t->offset + j] * b[t->offset + j];
        }
        double r = isnan(d2) ? INFINITY : sqrt(d2 / (r2 > 0 ? r2 : 1));
        if (r > w || isinf(r)) w = r, *which = i;
    }
    return w;
}

// STEPS steps of forward+backward, grad norm, AdamW on m (its backend);
// losses[s] = mean loss of step s; params pulled to m->params at the end.
static void train(model *m, const batch *xs, double *losses) {
    backend *bk = m->bk;
    size_t bytes = sizeof(float) * (size_t)m->n_params;
    float *mo = bk->op->alloc(bk, bytes), *va = bk->op->alloc(bk, bytes);
    adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                        .weight_decay = 0.1f};
    for (int s = 0; s < STEPS; s++) {
        model_zero_grads(m);
        losses[s] = model_forward_backward(m, &xs[s].b, 1.0f / (float)xs[s].n) / (double)xs[s].n;
        double nsq = bk->op->grad_norm_sq(bk, m->dgrads, m->n_params);
        float scale = nsq > 1.0 ? (float)(1.0 / sqrt(nsq)) : 1.0f;  // clip to norm 1
        bk->op->adamw(bk, m->dparams, mo, va, m->dgrads, m->work, m->tensors, m->n_tensors, &hp,
                      s + 1, scale);
    }
    model_pull_params(m);
    bk->op->free(bk, mo);
    bk->op->free(bk, va);
}

static void check(const char *name, model_config cfg, bk_dtype dt, const batch *xs) {
    const double tol_loss = dt == BK_BF16 ? 2e-2 : 1e-4, tol_p = dt == BK_BF16 ? 2e-2 : 1e-4;
    model *ref = model_create(&cfg, B * T, false);
    model_init_weights(ref, 7);
    for (int64_t i = 0; i < ref->n_params; i++) ref->params[i] *= 3.0f;  // signal on every path
    size_t bytes = sizeof(float) * (size_t)ref->n_params;
    float *p0 = malloc(bytes);
    memcpy(p0, ref->params, bytes);
    model_push_params(ref);
    double lc[STEPS], lg[STEPS];
    train(ref, xs, lc);

    char err[256];
    backend *bk = backend_create(BACKEND_CUDA, dt, 0, err, sizeof err);
    if (!bk) { printf("FAIL: %s\n", err); failures++; free(p0); model_free(ref); return; }
    emu_cuda_reset_peak();  // from here: the model, its moments and the backend's scratch
    const size_t before = emu_cuda_bytes_allocated();
    model *g = model_create_on(&cfg, B * T, false, bk);
    memcpy(g->params, p0, bytes);
    model_push_params(g);
    memset(g->params, 0xff, bytes);
    model_pull_params(g);
    EXPECT(!memcmp(g->params, p0, bytes), "%s: params pushed and pulled back differ", name);
    train(g, xs, lg);
    for (int s = 0; s < STEPS; s++) {
        double r = fabs(lg[s] - lc[s]) / fabs(lc[s]);
        printf("%s step %d: loss emu-gpu %.7f cpu %.7f rel %.2e\n", name, s, lg[s], lc[s], r);
        EXPECT(r < tol_loss, "%s step %d: loss rel %.3e >= %.0e", name, s, r, tol_loss);
    }
    int w;
    double pr = worst_rel(g, g->params, ref->params, &w);
    printf("%s: params after %d steps: worst rel L2 %.2e (%s)\n", name, STEPS, pr,
           w >= 0 ? g->tensors[w].name : "-");
    EXPECT(pr < tol_p, "%s: params rel %.3e >= %.0e", name, pr, tol_p);
    size_t now, peak;
    backend_mem_stats(bk, &now, &peak);
    size_t emu = emu_cuda_bytes_allocated() - ((size_t)32 << 20);  // cuBLAS workspace
    printf("%s: backend accounts %zu bytes, emulated cudaMalloc holds %zu (+32 MiB cuBLAS)\n",
           name, now, emu);
    EXPECT(now == emu, "%s: memory accounting %zu != emulated allocations %zu", name, now, emu);
    // The plan `stretch train --dry-run` prints (model_mem_plan) is the
    // peak of the emulated allocations of a training step, but for the
    // small scratch it leaves out (model.c): document bounds, embedding
    // backward (sort arrays + CUB storage), rmsnorm dw partials, grad-norm
    // partials, AdamW tables, the attention backward's dQ order counters
    // (bf16) - sized here by the backend's own functions.
    model_mem mm;
    model_mem_plan(&mm, &cfg, B * T, false, dt, true);
    const size_t used = emu_cuda_peak_bytes() - before;
    const attn_shape as = {.B = B, .Tq = T, .Tk = T, .H = cfg.n_heads, .Hkv = cfg.n_kv_heads,
                           .D = cfg.head_dim};
    const size_t unplanned = sizeof(int32_t) * (size_t)cu_attn_docs_ints(B, T, T) +
                             (dt == BK_BF16 ? sizeof(int32_t) * (size_t)cu_attn_dq_sem_ints(&as) : 0) +
                             cu_embedding_scratch_bytes(B * T, V) +
                             cu_rmsnorm_scratch_bytes(B * T, cfg.dim) +
                             cu_grad_norm_scratch_bytes(g->n_params) + sizeof(double) +
                             sizeof(int64_t) * (size_t)(g->n_tensors + 1) + (size_t)g->n_tensors;
    printf("%s: memory plan %zu bytes (params %zu grads %zu moments %zu work %zu activations %zu "
           "scratch %zu) + unplanned scratch %zu; emulated peak %zu\n", name, mm.total, mm.params,
           mm.grads, mm.moments, mm.work, mm.activations, mm.scratch, unplanned, used);
    EXPECT(mm.total + unplanned == used, "%s: memory plan %zu + %zu != emulated peak %zu", name,
           mm.total, unplanned, used);
    model_free(g);
    backend_free(bk);
    EXPECT(emu_cuda_bytes_allocated() == 0, "%s: %zu device bytes leaked", name,
           emu_cuda_bytes_allocated());
    model_free(ref);
    free(p0);
}

int main(void) {
    batch xs[STEPS];
    for (int s = 0; s < STEPS; s++) make_batch(&xs[s], 100u + (uint32_t)s);
    const char *only = getenv("EMU_CASE");
    struct { const char *name; int hd; bool tied; bk_dtype dt; } cs[] = {
        {"fp32 untied D64 GQA", 64, false, BK_F32}, {"bf16 untied D64 GQA", 64, false, BK_BF16},
        {"fp32 tied D128", 128, true, BK_F32}, {"bf16 tied D128", 128, true, BK_BF16}};
    for (int i = 0; i < 4; i++)
        if (!only || strstr(cs[i].name, only)) check(cs[i].name, tiny(cs[i].hd, cs[i].tied), cs[i].dt, xs);
    printf(failures ? "%d failure(s)\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
