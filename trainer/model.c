// model: Llama forward and backward over the CPU reference kernels.
//
// Legend: B sequences of T tokens, N = B*T, C dim, H / Hkv heads, D head dim,
// F ffn dim, V vocab, L layers. Activations are (N, ...) row-major, so a
// q buffer (N, H*D) is the (B, T, H, D) layout the attention kernel takes.
//
// Per layer:  x -> rmsnorm -> q,k,v -> rope(q,k) -> attention -> o_proj -> +x
//               -> rmsnorm -> gate,up -> swiglu -> down_proj -> + (residual)
// With recompute, only each layer's input is kept; backward re-runs the
// layer's forward into one set of buffers before differentiating it.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adamw.h"
#include "attn.h"
#include "die.h"
#include "embedding.h"
#include "matmul.h"
#include "model.h"
#include "rmsnorm.h"
#include "rope.h"
#include "swiglu.h"
#include "xent.h"

// Everything one layer's backward needs, saved by its forward.
typedef struct {
    float *ln1;    // (N, C) input_layernorm output
    float *rstd1;  // (N)
    float *q;      // (N, H*D) after RoPE
    float *k;      // (N, Hkv*D) after RoPE
    float *v;      // (N, Hkv*D)
    float *att;    // (N, H*D) attention output (before o_proj)
    float *lse;    // (B, H, T)
    float *mid;    // (N, C) residual after attention
    float *ln2;    // (N, C)
    float *rstd2;  // (N)
    float *gate;   // (N, F)
    float *up;     // (N, F)
    float *act;    // (N, F) silu(gate) * up
} layer_acts;

struct model_acts {
    float *resid;        // (L+1, N, C): input of each layer, then the last output
    layer_acts *layer;   // (L) or (1) with recompute
    float *final_ln;     // (N, C) final norm output
    float *final_rstd;   // (N)
    // backward scratch
    float *dresid;       // (N, C) gradient of the residual stream
    float *dln;          // (N, C)
    float *dq, *dk, *dv, *datt;  // (N, H*D) / (N, Hkv*D)
    float *dgate, *dup, *dact;   // (N, F)
    int64_t B, T;        // shape of the last forward
};

static int64_t head_dim(const model_config *c) {
    return c->head_dim > 0 ? c->head_dim : c->dim / c->n_heads;
}

static void layer_acts_alloc(layer_acts *a, const model_config *c, int64_t N) {
    const int64_t C = c->dim, D = head_dim(c), H = c->n_heads, Hkv = c->n_kv_heads,
                  F = c->ffn_dim;
    a->ln1 = xmalloc(sizeof(float) * N * C);
    a->rstd1 = xmalloc(sizeof(float) * N);
    a->q = xmalloc(sizeof(float) * N * H * D);
    a->k = xmalloc(sizeof(float) * N * Hkv * D);
    a->v = xmalloc(sizeof(float) * N * Hkv * D);
    a->att = xmalloc(sizeof(float) * N * H * D);
    a->lse = xmalloc(sizeof(float) * N * H);
    a->mid = xmalloc(sizeof(float) * N * C);
    a->ln2 = xmalloc(sizeof(float) * N * C);
    a->rstd2 = xmalloc(sizeof(float) * N);
    a->gate = xmalloc(sizeof(float) * N * F);
    a->up = xmalloc(sizeof(float) * N * F);
    a->act = xmalloc(sizeof(float) * N * F);
}

static void layer_acts_free(layer_acts *a) {
    free(a->ln1); free(a->rstd1); free(a->q); free(a->k); free(a->v); free(a->att);
    free(a->lse); free(a->mid); free(a->ln2); free(a->rstd2); free(a->gate); free(a->up);
    free(a->act);
}

model *model_create(const model_config *cfg, int64_t max_tokens, bool recompute) {
    char err[256];
    if (model_config_validate(cfg, err, sizeof err) != 0) die("invalid model config: %s", err);
    CHECK(max_tokens > 0);
    model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->cfg.head_dim = (int)head_dim(cfg);
    m->tensors = model_param_layout(&m->cfg, &m->n_tensors, &m->n_params);
    m->params = xcalloc((size_t)m->n_params, sizeof(float));
    m->grads = xcalloc((size_t)m->n_params, sizeof(float));
    model_views_init(&m->p, m->params, &m->cfg);
    model_views_init(&m->g, m->grads, &m->cfg);
    m->recompute = recompute;
    m->max_tokens = max_tokens;

    const model_config *c = &m->cfg;
    const int64_t N = max_tokens, C = c->dim, D = c->head_dim, F = c->ffn_dim;
    struct model_acts *a = xcalloc(1, sizeof *a);
    a->resid = xmalloc(sizeof(float) * (size_t)(c->n_layers + 1) * N * C);
    int n_sets = recompute ? 1 : c->n_layers;
    a->layer = xcalloc((size_t)n_sets, sizeof *a->layer);
    for (int l = 0; l < n_sets; l++) layer_acts_alloc(&a->layer[l], c, N);
    a->final_ln = xmalloc(sizeof(float) * N * C);
    a->final_rstd = xmalloc(sizeof(float) * N);
    a->dresid = xmalloc(sizeof(float) * N * C);
    a->dln = xmalloc(sizeof(float) * N * C);
    a->dq = xmalloc(sizeof(float) * N * c->n_heads * D);
    a->dk = xmalloc(sizeof(float) * N * c->n_kv_heads * D);
    a->dv = xmalloc(sizeof(float) * N * c->n_kv_heads * D);
    a->datt = xmalloc(sizeof(float) * N * c->n_heads * D);
    a->dgate = xmalloc(sizeof(float) * N * F);
    a->dup = xmalloc(sizeof(float) * N * F);
    a->dact = xmalloc(sizeof(float) * N * F);
    m->acts = a;
    rope_table_init(&m->rope, &m->cfg.rope, 0);
    return m;
}

void model_free(model *m) {
    if (!m) return;
    struct model_acts *a = m->acts;
    int n_sets = m->recompute ? 1 : m->cfg.n_layers;
    for (int l = 0; l < n_sets; l++) layer_acts_free(&a->layer[l]);
    free(a->layer); free(a->resid); free(a->final_ln); free(a->final_rstd);
    free(a->dresid); free(a->dln); free(a->dq); free(a->dk); free(a->dv); free(a->datt);
    free(a->dgate); free(a->dup); free(a->dact);
    free(a);
    model_views_free(&m->p);
    model_views_free(&m->g);
    free(m->tensors); free(m->params); free(m->grads);
    free(m);
}

// ---------------------------------------------------------------------------
// Initialisation

// splitmix64 + Box-Muller: a small deterministic normal generator.
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((splitmix64(s) >> 11) + 0.5) * 0x1.0p-53; }

static void fill_normal(float *x, int64_t n, double std, uint64_t *s) {
    for (int64_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform01(s))), th = 2.0 * M_PI * uniform01(s);
        x[i] = (float)(std * r * cos(th));
        if (i + 1 < n) x[i + 1] = (float)(std * r * sin(th));
    }
}

void model_init_weights(model *m, uint64_t seed) {
    uint64_t s = seed;
    const double std = 0.02, resid_std = 0.02 / sqrt(2.0 * m->cfg.n_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        float *x = m->params + t->offset;
        int64_t n = t->shape[0] * t->shape[1];
        if (t->shape[1] == 1) {  // norm weights
            for (int64_t j = 0; j < n; j++) x[j] = 1.0f;
        } else {
            bool resid = strstr(t->name, "o_proj") || strstr(t->name, "down_proj");
            fill_normal(x, n, resid ? resid_std : std, &s);
        }
    }
}

void model_set_rope(model *m, const rope_table *rope) { m->rope = *rope; }

void model_set_attention(model *m, const model_attention *attention) { m->attention = *attention; }

void model_zero_grads(model *m) { memset(m->grads, 0, sizeof(float) * m->n_params); }

// ---------------------------------------------------------------------------
// Forward

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Runs stmt and adds its wall time to m->timers.field.
#define TIMED(m, field, stmt)                    \
    do {                                         \
        double t0_ = now_s();                    \
        stmt;                                    \
        (m)->timers.field += now_s() - t0_;      \
    } while (0)

static void add_inplace(float *y, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static attn_shape attn_shape_of(const model *m, int64_t B, int64_t T) {
    const model_config *c = &m->cfg;
    attn_shape s = {.B = B, .Tq = T, .Tk = T, .H = c->n_heads, .Hkv = c->n_kv_heads,
                    .D = c->head_dim, .q_start = 0, .k_start = 0,
                    .scale = 1.0f / sqrtf((float)c->head_dim), .causal = true};
    return s;
}

// One layer forward: out (N, C) from in (N, C), saving into a.
static void layer_forward(model *m, int l, layer_acts *a, float *out, const float *in,
                          const model_batch *b) {
    const model_config *c = &m->cfg;
    const model_layer_views *w = &m->p.layers[l];
    const int64_t N = b->B * b->T, C = c->dim, D = c->head_dim, H = c->n_heads,
                  Hkv = c->n_kv_heads, F = c->ffn_dim;

    TIMED(m, other, rmsnorm_forward(a->ln1, a->rstd1, in, w->input_norm, N, C, c->norm_eps));
    TIMED(m, matmul, matmul_forward(a->q, a->ln1, w->wq, N, C, H * D));
    TIMED(m, matmul, matmul_forward(a->k, a->ln1, w->wk, N, C, Hkv * D));
    TIMED(m, matmul, matmul_forward(a->v, a->ln1, w->wv, N, C, Hkv * D));
    TIMED(m, other, rope_forward(a->q, a->k, b->pos, &m->rope, c->rope_layout, N, (int)H, (int)Hkv, (int)D));
    if (m->attention.forward) {
        TIMED(m, attention, m->attention.forward(m->attention.ctx, a->att, a->lse, a->q, a->k, a->v,
                                                 b->seg, b->B, b->T, (int)H, (int)Hkv, (int)D));
    } else {
        attn_shape s = attn_shape_of(m, b->B, b->T);
        TIMED(m, attention, attn_forward(a->att, a->lse, a->q, a->k, a->v, b->seg, b->seg, &s));
    }
    TIMED(m, matmul, matmul_forward(a->mid, a->att, w->wo, N, H * D, C));
    TIMED(m, other, add_inplace(a->mid, in, N * C));

    TIMED(m, other, rmsnorm_forward(a->ln2, a->rstd2, a->mid, w->post_norm, N, C, c->norm_eps));
    TIMED(m, matmul, matmul_forward(a->gate, a->ln2, w->w_gate, N, C, F));
    TIMED(m, matmul, matmul_forward(a->up, a->ln2, w->w_up, N, C, F));
    TIMED(m, other, swiglu_forward(a->act, a->gate, a->up, N * F));
    TIMED(m, matmul, matmul_forward(out, a->act, w->w_down, N, F, C));
    TIMED(m, other, add_inplace(out, a->mid, N * C));
}

static layer_acts *acts_of_layer(model *m, int l) {
    return &m->acts->layer[m->recompute ? 0 : l];
}

// Embeddings through the final norm; leaves final_ln filled.
static void forward_trunk(model *m, const model_batch *b) {
    const model_config *c = &m->cfg;
    struct model_acts *a = m->acts;
    const int64_t N = b->B * b->T, C = c->dim;
    if (N > m->max_tokens)
        die("batch of %lld tokens exceeds the model's capacity of %lld", (long long)N,
            (long long)m->max_tokens);
    a->B = b->B;
    a->T = b->T;
    TIMED(m, other, embedding_forward(a->resid, b->tokens, m->p.embed, N, C, c->vocab_size));
    for (int l = 0; l < c->n_layers; l++)
        layer_forward(m, l, acts_of_layer(m, l), a->resid + (l + 1) * N * C, a->resid + l * N * C, b);
    TIMED(m, other, rmsnorm_forward(a->final_ln, a->final_rstd, a->resid + c->n_layers * N * C, m->p.final_norm,
                    N, C, c->norm_eps));
}

double model_forward(model *m, const model_batch *b, float *losses) {
    forward_trunk(m, b);
    if (!b->targets) return 0.0;  // hidden states only (decoding)
    const int64_t N = b->B * b->T;
    double loss;
    TIMED(m, matmul, loss = xent_forward_backward(losses, NULL, NULL, m->acts->final_ln,
                                                  m->p.lm_head, b->targets, N, m->cfg.dim,
                                                  m->cfg.vocab_size, 0.0f));
    return loss;
}

const float *model_final_hidden(const model *m) { return m->acts->final_ln; }

int32_t model_argmax_row(const model *m, int64_t n) {
    const int64_t V = m->cfg.vocab_size, C = m->cfg.dim;
    CHECK(n >= 0 && n < m->acts->B * m->acts->T);
    float *logits = xmalloc(sizeof(float) * V);
    xent_logits_row(logits, m->acts->final_ln + n * C, m->p.lm_head, C, V);
    int32_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = (int32_t)v;
    free(logits);
    return best;
}

// ---------------------------------------------------------------------------
// Backward

// One layer backward. On entry dresid holds dL/d(out); on return dL/d(in).
static void layer_backward(model *m, int l, layer_acts *a, const float *in, const model_batch *b) {
    const model_config *c = &m->cfg;
    struct model_acts *s = m->acts;
    const model_layer_views *w = &m->p.layers[l];
    model_layer_views *dw = &m->g.layers[l];
    const int64_t N = b->B * b->T, C = c->dim, D = c->head_dim, H = c->n_heads,
                  Hkv = c->n_kv_heads, F = c->ffn_dim;
    float *dres = s->dresid;  // d out == d mid (residual) + MLP path

    // MLP: out = mid + down(swiglu(gate(ln2), up(ln2)))
    memset(s->dact, 0, sizeof(float) * N * F);
    TIMED(m, matmul, matmul_backward(s->dact, dw->w_down, dres, a->act, w->w_down, N, F, C));
    memset(s->dgate, 0, sizeof(float) * N * F);
    memset(s->dup, 0, sizeof(float) * N * F);
    TIMED(m, other, swiglu_backward(s->dgate, s->dup, s->dact, a->gate, a->up, N * F));
    memset(s->dln, 0, sizeof(float) * N * C);
    TIMED(m, matmul, matmul_backward(s->dln, dw->w_gate, s->dgate, a->ln2, w->w_gate, N, C, F));
    TIMED(m, matmul, matmul_backward(s->dln, dw->w_up, s->dup, a->ln2, w->w_up, N, C, F));
    TIMED(m, other, rmsnorm_backward(dres, dw->post_norm, s->dln, a->mid, w->post_norm, a->rstd2, N, C));  // dres is now d mid

    // Attention: mid = in + o_proj(attn(rope(q), rope(k), v))
    memset(s->datt, 0, sizeof(float) * N * H * D);
    TIMED(m, matmul, matmul_backward(s->datt, dw->wo, dres, a->att, w->wo, N, H * D, C));
    memset(s->dq, 0, sizeof(float) * N * H * D);
    memset(s->dk, 0, sizeof(float) * N * Hkv * D);
    memset(s->dv, 0, sizeof(float) * N * Hkv * D);
    if (m->attention.backward) {
        TIMED(m, attention, m->attention.backward(m->attention.ctx, s->dq, s->dk, s->dv, s->datt,
                                                  a->q, a->k, a->v, a->att, a->lse, b->seg, b->B,
                                                  b->T, (int)H, (int)Hkv, (int)D));
    } else {
        attn_shape sh = attn_shape_of(m, b->B, b->T);
        TIMED(m, attention, attn_backward(s->dq, s->dk, s->dv, s->datt, a->q, a->k, a->v, a->att,
                                          a->lse, b->seg, b->seg, &sh));
    }
    TIMED(m, other, rope_backward(s->dq, s->dk, b->pos, &m->rope, c->rope_layout, N, (int)H, (int)Hkv, (int)D));
    memset(s->dln, 0, sizeof(float) * N * C);
    TIMED(m, matmul, matmul_backward(s->dln, dw->wq, s->dq, a->ln1, w->wq, N, C, H * D));
    TIMED(m, matmul, matmul_backward(s->dln, dw->wk, s->dk, a->ln1, w->wk, N, C, Hkv * D));
    TIMED(m, matmul, matmul_backward(s->dln, dw->wv, s->dv, a->ln1, w->wv, N, C, Hkv * D));
    TIMED(m, other, rmsnorm_backward(dres, dw->input_norm, s->dln, in, w->input_norm, a->rstd1, N, C));  // d in
}

static void grads_ready(model *m, int64_t lo) {
    // With tied embeddings the LM head's gradient is the embedding's (offset
    // 0), which is final only after the embedding backward: nothing is early.
    if (m->grad_hook.ready && !m->cfg.tie_embeddings) m->grad_hook.ready(m->grad_hook.ctx, lo);
}

double model_forward_backward(model *m, const model_batch *b, float grad_scale) {
    const model_config *c = &m->cfg;
    struct model_acts *a = m->acts;
    const int64_t N = b->B * b->T, C = c->dim;

    forward_trunk(m, b);
    memset(a->dln, 0, sizeof(float) * N * C);
    double loss;
    TIMED(m, matmul, loss = xent_forward_backward(NULL, a->dln, m->g.lm_head, a->final_ln, m->p.lm_head,
                                        b->targets, N, C, c->vocab_size, grad_scale));
    memset(a->dresid, 0, sizeof(float) * N * C);
    const float *last = a->resid + c->n_layers * N * C;
    TIMED(m, other, rmsnorm_backward(a->dresid, m->g.final_norm, a->dln, last, m->p.final_norm, a->final_rstd, N, C));

    // Tensor order in the flat buffer: embed, layer 0 .. L-1 (9 each), final norm, lm_head.
    grads_ready(m, m->tensors[1 + 9 * c->n_layers].offset);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const float *in = a->resid + l * N * C;
        layer_acts *la = acts_of_layer(m, l);
        if (m->recompute) {
            // Recompute this layer's activations; its output is not needed again,
            // so write it to dln (scratch, cleared before use in layer_backward).
            layer_forward(m, l, la, a->dln, in, b);
        }
        layer_backward(m, l, la, in, b);
        grads_ready(m, m->tensors[1 + 9 * l].offset);
    }
    TIMED(m, other, embedding_backward(m->g.embed, a->dresid, b->tokens, N, C));
    return loss;
}
