// One GPU training step against the CPU reference on two tiny Llamas (2
// layers, dim 128, packed documents): untied embeddings with 4 heads / 2 kv
// heads of 64, and tied embeddings (as SmolLM2) with one head of 128 (Llama's
// head dim); same weights, same batch, on the backend's own (non-blocking)
// stream. Tolerances:
//   fp32 mode: loss relative error < 1e-4, every tensor's gradient relative
//              L2 error < 1e-4;
//   bf16 mode: the tolerance is derived per tensor from an independent
//              reference of the same roundings: the CPU model run with
//              its weights rounded to bf16 and every activation and
//              activation gradient rounded to bf16 where the cuda backend
//              stores them (the output of every model op; dW stays fp32,
//              as on the GPU): bf16_ref below. Its distance to the fp32
//              result, e_ref = ||g_bf16ref - g|| / ||g|| (float64 norms),
//              is the measured effect of bf16 rounding on that tensor
//              (unit roundoff 2^-8 times the tensor's condition through the
//              2 layers and back). The GPU's bf16 result makes the same
//              roundings from fp32 sums in another order (so some round
//              the other way) plus two inside the attention kernel (P and
//              dS enter the tensor-core products as bf16): its error is
//              another draw of the same size. Each tensor must have
//              e_gpu <= 2 e_ref + 1e-3 (2: one more draw of independent
//              rounding errors, whose norms add at most linearly; 1e-3:
//              fp32 accumulation order, far below any bf16 effect), and the
//              loss |l_gpu - l| <= 2 |l_bf16ref - l| + 1e-4 |l|. A wrong
//              kernel gives O(1); a rounding point the reference lacks
//              (e.g. gradients accumulated in bf16) shows as e_gpu >> e_ref;
//   recompute on the GPU: the same bounds against the CPU;
//   one AdamW step on the device: params pulled back equal the CPU update
//              to 1e-5 relative (fp32 mode);
//   params pushed and pulled back are bit-identical (the checkpoint path).
// Exits 77 (skipped) when no GPU is visible. Also runs on the emulated GPU
// (tests/gpu/emu: ctest gpuemu_model).
#include "backend.h"
#include "gpu_check.h"

// ---------------------------------------------------------------------------
// bf16_ref: the cpu backend with every op's activation output rounded to
// bf16 (round to nearest even), as the cuda backend stores it in bf16 mode.

static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f;  // NaN stays NaN
    u += 0x7FFFu + ((u >> 16) & 1u);
    u &= 0xFFFF0000u;
    memcpy(&f, &u, 4);
    return f;
}
static void rnd(void *p, int64_t n) {
    float *x = p;
    for (int64_t i = 0; p && i < n; i++) x[i] = bf16_round(x[i]);
}
#define CPU backend_cpu()
static void r_embedding_forward(backend *b, void *out, const int32_t *tokens, const void *wte,
                                int64_t N, int64_t C, int64_t V) {
    (void)b;
    CPU->op->embedding_forward(CPU, out, tokens, wte, N, C, V);
    rnd(out, N * C);
}
static void r_rmsnorm_forward(backend *b, void *out, float *rstd, const void *inp, const void *w,
                              int64_t N, int64_t C, float eps) {
    (void)b;
    CPU->op->rmsnorm_forward(CPU, out, rstd, inp, w, N, C, eps);
    rnd(out, N * C);
}
static void r_rmsnorm_backward(backend *b, void *dinp, float *dw, const void *dout,
                               const void *inp, const void *w, const float *rstd, int64_t N,
                               int64_t C) {
    (void)b;
    CPU->op->rmsnorm_backward(CPU, dinp, dw, dout, inp, w, rstd, N, C);
    rnd(dinp, N * C);
}
static void r_matmul_forward(backend *b, void *out, const void *inp, const void *w, int64_t N,
                             int64_t C, int64_t OC) {
    (void)b;
    CPU->op->matmul_forward(CPU, out, inp, w, N, C, OC);
    rnd(out, N * OC);
}
static void r_matmul_backward(backend *b, void *dinp, float *dw, const void *dout,
                              const void *inp, const void *w, int64_t N, int64_t C, int64_t OC) {
    (void)b;
    CPU->op->matmul_backward(CPU, dinp, dw, dout, inp, w, N, C, OC);
    rnd(dinp, N * C);
}
static void r_rope_forward(backend *b, void *q, void *k, const int32_t *pos, const uint8_t *win,
                           const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv,
                           int D) {
    (void)b;
    CPU->op->rope_forward(CPU, q, k, pos, win, t, layout, N, H, Hkv, D);
    rnd(q, N * H * D);
    rnd(k, N * Hkv * D);
}
static void r_rope_backward(backend *b, void *dq, void *dk, const int32_t *pos,
                            const uint8_t *win, const rope_table *t, rope_layout layout,
                            int64_t N, int H, int Hkv, int D) {
    (void)b;
    CPU->op->rope_backward(CPU, dq, dk, pos, win, t, layout, N, H, Hkv, D);
    rnd(dq, N * H * D);
    rnd(dk, N * Hkv * D);
}
static void r_swiglu_forward(backend *b, void *out, const void *gate, const void *up, int64_t n) {
    (void)b;
    CPU->op->swiglu_forward(CPU, out, gate, up, n);
    rnd(out, n);
}
static void r_swiglu_backward(backend *b, void *dgate, void *dup, const void *dout,
                              const void *gate, const void *up, int64_t n) {
    (void)b;
    CPU->op->swiglu_backward(CPU, dgate, dup, dout, gate, up, n);
    rnd(dgate, n);
    rnd(dup, n);
}
static void r_add(backend *b, void *y, const void *x, int64_t n) {
    (void)b;
    CPU->op->add(CPU, y, x, n);
    rnd(y, n);
}
static void r_attn_forward(backend *b, void *out, float *lse, const void *q, const void *k,
                           const void *v, const int32_t *seg, const attn_shape *s) {
    (void)b;
    CPU->op->attn_forward(CPU, out, lse, q, k, v, seg, s);
    rnd(out, s->B * s->Tq * s->H * s->D);
}
static void r_attn_backward(backend *b, void *dq, void *dk, void *dv, const void *dout,
                            const void *q, const void *k, const void *v, const void *out,
                            const float *lse, const int32_t *seg, const attn_shape *s) {
    (void)b;
    CPU->op->attn_backward(CPU, dq, dk, dv, dout, q, k, v, out, lse, seg, s);
    rnd(dq, s->B * s->Tq * s->H * s->D);
    rnd(dk, s->B * s->Tk * s->Hkv * s->D);
    rnd(dv, s->B * s->Tk * s->Hkv * s->D);
}
static double r_xent(backend *b, float *losses_host, void *dh, float *dw, const void *h,
                     const void *w, const int32_t *targets, int64_t N, int64_t C, int64_t V,
                     float grad_scale) {
    (void)b;
    double loss = CPU->op->xent(CPU, losses_host, dh, dw, h, w, targets, N, C, V, grad_scale);
    rnd(dh, N * C);
    return loss;
}

// Loss (mean) and grads of one step on x of a cpu model with cfg and params
// rounded to bf16, every op's output rounded to bf16.
static double bf16_ref_step(const model_config *cfg, const float *params, float *grads,
                            const gpu_batch *x);

static int failures = 0;

#define EXPECT(cond, ...)                        \
    do {                                         \
        if (!(cond)) {                           \
            printf("FAIL: " __VA_ARGS__);        \
            printf("\n");                        \
            failures++;                          \
        }                                        \
    } while (0)

// Loss (mean) and grads of one step of m on x.
static double step(model *m, const gpu_batch *x) {
    model_zero_grads(m);
    double loss = model_forward_backward(m, &x->b, 1.0f / (float)x->n_targets);
    model_pull_grads(m);
    return loss / (double)x->n_targets;
}

static double bf16_ref_step(const model_config *cfg, const float *params, float *grads,
                            const gpu_batch *x) {
    backend_ops ops = *CPU->op;
    ops.embedding_forward = r_embedding_forward;
    ops.rmsnorm_forward = r_rmsnorm_forward;
    ops.rmsnorm_backward = r_rmsnorm_backward;
    ops.matmul_forward = r_matmul_forward;
    ops.matmul_backward = r_matmul_backward;
    ops.rope_forward = r_rope_forward;
    ops.rope_backward = r_rope_backward;
    ops.swiglu_forward = r_swiglu_forward;
    ops.swiglu_backward = r_swiglu_backward;
    ops.add = r_add;
    ops.attn_forward = r_attn_forward;
    ops.attn_backward = r_attn_backward;
    ops.xent = r_xent;
    backend bk = *CPU;
    bk.op = &ops;
    model *m = model_create_on(cfg, GB * GT, false, &bk);
    for (int64_t i = 0; i < m->n_params; i++) m->params[i] = bf16_round(params[i]);
    model_push_params(m);
    double loss = step(m, x);
    memcpy(grads, m->grads, sizeof(float) * (size_t)m->n_params);
    model_free(m);
    return loss;
}

// Relative L2 distance ||a - b|| / ||b|| of tensor t (float64).
static double rel_l2(const model_tensor *t, const float *a, const float *b) {
    double d2 = 0, r2 = 0;
    for (int64_t j = 0; j < t->shape[0] * t->shape[1]; j++) {
        double d = (double)a[t->offset + j] - b[t->offset + j];
        d2 += d * d;
        r2 += (double)b[t->offset + j] * b[t->offset + j];
    }
    return isnan(d2) ? INFINITY : (r2 > 0 ? sqrt(d2 / r2) : sqrt(d2));
}

static void check_mode(const model_config *cfg_in, bk_dtype dt, const model *ref, double ref_loss,
                       const gpu_batch *x) {
    char name[64];
    snprintf(name, sizeof name, "%s D%d %s", dt == BK_BF16 ? "bf16" : "fp32", cfg_in->head_dim,
             cfg_in->tie_embeddings ? "tied" : "untied");
    // bf16: the bounds come from bf16_ref (header); fp32: fixed.
    const bool bf = dt == BK_BF16;
    float *bref = NULL;
    double tol_loss = 1e-4, bref_loss = 0;
    if (bf) {
        bref = malloc(sizeof(float) * (size_t)ref->n_params);
        bref_loss = bf16_ref_step(cfg_in, ref->params, bref, x);
        tol_loss = 2 * fabs(bref_loss - ref_loss) / fabs(ref_loss) + 1e-4;
        printf("%s bf16 reference: loss %.6f (rel %.2e)\n", name, bref_loss,
               fabs(bref_loss - ref_loss) / fabs(ref_loss));
    }
    char err[256];
    backend *bk = backend_create(BACKEND_CUDA, dt, 0, err, sizeof err);
    if (!bk) {
        printf("FAIL: %s\n", err);
        failures++;
        return;
    }
    model_config cfg = *cfg_in;
    for (int recompute = 0; recompute < 2; recompute++) {
        model *g = model_create_on(&cfg, GB * GT, recompute, bk);
        memcpy(g->params, ref->params, sizeof(float) * (size_t)ref->n_params);
        model_push_params(g);
        // The checkpoint path: push then pull gives back the same bits.
        memset(g->params, 0xff, sizeof(float) * (size_t)g->n_params);  // poison
        model_pull_params(g);
        EXPECT(!memcmp(g->params, ref->params, sizeof(float) * (size_t)ref->n_params),
               "%s: params pushed and pulled back differ", name);
        memset(g->grads, 0xff, sizeof(float) * (size_t)g->n_params);  // poison: pull must overwrite
        double loss = step(g, x);
        double lrel = fabs(loss - ref_loss) / fabs(ref_loss);
        // Per tensor: e_gpu against its bound; printed: the worst ratio.
        double worst = 0, worst_e = 0, worst_tol = 0;
        int which = -1;
        for (int i = 0; i < g->n_tensors; i++) {
            const model_tensor *t = &g->tensors[i];
            const double e = rel_l2(t, g->grads, ref->grads);
            const double tol = bf ? 2 * rel_l2(t, bref, ref->grads) + 1e-3 : 1e-4;
            if (!(e / tol <= worst) || which < 0) {
                worst = e / tol, worst_e = e, worst_tol = tol;
                which = i;
            }
            EXPECT(e <= tol, "%s: %s gradient rel error %.3e > %.3e", name, t->name, e, tol);
        }
        printf("%s recompute %d: loss %.6f (cpu %.6f, rel %.2e, tol %.2e), worst gradient rel L2 "
               "%.2e of tol %.2e (%s)\n",
               name, recompute, loss, ref_loss, lrel, tol_loss, worst_e, worst_tol,
               which >= 0 ? g->tensors[which].name : "-");
        EXPECT(lrel <= tol_loss, "%s: loss rel error %.3e > %.3e", name, lrel, tol_loss);

        if (dt == BK_F32 && recompute == 0) {
            // One AdamW step on the device against the CPU update.
            const model_tensor *t = ref->tensors;
            size_t bytes = sizeof(float) * (size_t)ref->n_params;
            float *mom = calloc(1, bytes), *var = calloc(1, bytes), *cpu_p = malloc(bytes);
            memcpy(cpu_p, ref->params, bytes);
            adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                .weight_decay = 0.1f};
            backend_cpu()->op->adamw(backend_cpu(), cpu_p, mom, var, ref->grads, NULL, t,
                                     ref->n_tensors, &hp, 1, 1.0f);
            float *dm = bk->op->alloc(bk, bytes), *dv = bk->op->alloc(bk, bytes);
            // The update from the CPU's gradients isolates the optimizer.
            bk->op->to_dev(bk, g->dgrads, ref->grads, bytes);
            bk->op->adamw(bk, g->dparams, dm, dv, g->dgrads, g->work, g->tensors, g->n_tensors,
                          &hp, 1, 1.0f);
            model_pull_params(g);
            int w;
            double prel = gpu_worst_rel_l2(g, g->params, cpu_p, &w);
            printf("%s adamw: worst param rel L2 %.2e\n", name, prel);
            EXPECT(prel < 1e-5, "adamw on the device differs: %.3e", prel);
            double norm_cpu = backend_cpu()->op->grad_norm_sq(backend_cpu(), ref->grads, ref->n_params);
            double norm_gpu = bk->op->grad_norm_sq(bk, g->dgrads, g->n_params);
            EXPECT(fabs(norm_gpu - norm_cpu) <= 1e-6 * norm_cpu, "grad norm %.9g vs %.9g",
                   norm_gpu, norm_cpu);
            bk->op->free(bk, dm);
            bk->op->free(bk, dv);
            free(mom); free(var); free(cpu_p);
        }
        size_t now, peak;
        backend_mem_stats(bk, &now, &peak);
        printf("%s recompute %d: backend peak %.1f MB\n", name, recompute, peak / 1e6);
        model_free(g);
    }
    backend_free(bk);
    free(bref);
}

int main(void) {
    if (backend_gpu_count() == 0) {
        printf("no GPU visible: skipped\n");
        return 77;
    }
    gpu_batch x;
    gpu_make_batch(&x, 12345u);
    const model_config cfgs[2] = {gpu_tiny_config_of(64, false), gpu_tiny_config_of(128, true)};
    for (int ci = 0; ci < 2; ci++) {
        model *ref = model_create(&cfgs[ci], GB * GT, false);
        model_init_weights(ref, 7);
        for (int64_t i = 0; i < ref->n_params; i++) ref->params[i] *= 3.0f;  // signal on every path
        double ref_loss = step(ref, &x);
        check_mode(&cfgs[ci], BK_F32, ref, ref_loss, &x);
        check_mode(&cfgs[ci], BK_BF16, ref, ref_loss, &x);
        model_free(ref);
    }
    printf(failures ? "%d failure(s)\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
