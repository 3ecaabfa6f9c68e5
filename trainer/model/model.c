// model: Llama forward and backward through the backend ops (backend.h).
//
// Legend: B sequences of T tokens, N = B*T, C dim, H / Hkv heads, D head dim,
// F ffn dim, V vocab, L layers. Activations are (N, ...) row-major, so a
// q buffer (N, H*D) is the (B, T, H, D) layout the attention kernel takes.
// Activation buffers are `void *` in the backend's dtype (fp32 on the cpu,
// bf16 or fp32 on cuda); rstd and lse are fp32; weight gradients fp32.
//
// Per layer:  x -> rmsnorm -> q,k,v -> rope(q,k) -> attention -> o_proj -> +x
//               -> rmsnorm -> gate,up -> swiglu -> down_proj -> + (residual)
// With recompute, only each layer's input is kept; backward re-runs the
// layer's forward into one set of buffers before differentiating it. With
// activation offload those inputs live in host memory but for two backend
// slots (resid_at): layer l reads slot l % 2 and writes slot (l + 1) % 2.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "model.h"
#include "mono_clock.h"

// Everything one layer's backward needs, saved by its forward.
typedef struct {
    void *ln1;     // (N, C) input_layernorm output
    float *rstd1;  // (N)
    void *q;       // (N, H*D) after RoPE
    void *k;       // (N, Hkv*D) after RoPE
    void *v;       // (N, Hkv*D)
    void *att;     // (N, H*D) attention output (before o_proj)
    float *lse;    // (B, H, T)
    void *mid;     // (N, C) residual after attention
    void *ln2;     // (N, C)
    float *rstd2;  // (N)
    void *gate;    // (N, F)
    void *up;      // (N, F)
    void *act;     // (N, F) silu(gate) * up
} layer_acts;

struct model_acts {
    void *resid;         // (L+1, N, C): input of each layer, then the last output;
                         // offloaded: (2, N, C), the two slots of resid_at()
    void *resid_host;    // offloaded: (L-1, N, C), checkpoints 0 .. L-2 (host_alloc)
    layer_acts *layer;   // (L) or (1) with recompute
    int n_sets;
    void *final_ln;      // (N, C) final norm output
    float *final_rstd;   // (N)
    // backward scratch
    void *dresid;        // (N, C) gradient of the residual stream
    void *dln;           // (N, C)
    void *dq, *dk, *dv, *datt;  // (N, H*D) / (N, Hkv*D)
    void *dgate, *dup, *dact;   // (N, F)
    // the batch's int arrays in backend memory (device backends only)
    int32_t *tokens, *targets, *pos, *seg;  // (N)
    uint8_t *win;                           // (N)
    // the batch of the current call, in backend memory
    const int32_t *cur_tokens, *cur_targets, *cur_pos, *cur_seg;
    const uint8_t *cur_win;
    int64_t B, T;        // shape of the last forward
};

static int64_t head_dim(const model_config *c) {
    return c->head_dim > 0 ? c->head_dim : c->dim / c->n_heads;
}

// ---------------------------------------------------------------------------
// The buffer plan: one walk over every activation buffer, used both to
// allocate (model_create_on) and to count (model_mem_plan), so the memory
// estimate is the allocation.

typedef void (*buf_visit)(void *ctx, void **slot, size_t bytes);

#define BUF(owner, field, bytes) visit(ctx, (owner) ? (void **)&(owner)->field : NULL, (size_t)(bytes))

static void layer_plan(layer_acts *a, const model_config *c, int64_t N, size_t dts,
                       buf_visit visit, void *ctx) {
    const int64_t C = c->dim, D = head_dim(c), H = c->n_heads, Hkv = c->n_kv_heads,
                  F = c->ffn_dim;
    BUF(a, ln1, dts * N * C);
    BUF(a, rstd1, sizeof(float) * N);
    BUF(a, q, dts * N * H * D);
    BUF(a, k, dts * N * Hkv * D);
    BUF(a, v, dts * N * Hkv * D);
    BUF(a, att, dts * N * H * D);
    BUF(a, lse, sizeof(float) * N * H);
    BUF(a, mid, dts * N * C);
    BUF(a, ln2, dts * N * C);
    BUF(a, rstd2, sizeof(float) * N);
    BUF(a, gate, dts * N * F);
    BUF(a, up, dts * N * F);
    BUF(a, act, dts * N * F);
}

// a == NULL: count only (layer sets are visited n_sets times).
static void acts_plan(struct model_acts *a, const model_config *c, int64_t N, bool recompute,
                      bool offload, size_t dts, bool device, buf_visit visit, void *ctx) {
    const int64_t C = c->dim, D = head_dim(c), F = c->ffn_dim;
    int n_sets = recompute ? 1 : c->n_layers;
    BUF(a, resid, dts * (size_t)(offload ? 2 : c->n_layers + 1) * N * C);
    for (int l = 0; l < n_sets; l++) layer_plan(a ? &a->layer[l] : NULL, c, N, dts, visit, ctx);
    BUF(a, final_ln, dts * N * C);
    BUF(a, final_rstd, sizeof(float) * N);
    BUF(a, dresid, dts * N * C);
    BUF(a, dln, dts * N * C);
    BUF(a, dq, dts * N * c->n_heads * D);
    BUF(a, dk, dts * N * c->n_kv_heads * D);
    BUF(a, dv, dts * N * c->n_kv_heads * D);
    BUF(a, datt, dts * N * c->n_heads * D);
    BUF(a, dgate, dts * N * F);
    BUF(a, dup, dts * N * F);
    BUF(a, dact, dts * N * F);
    if (device) {
        BUF(a, tokens, sizeof(int32_t) * N);
        BUF(a, targets, sizeof(int32_t) * N);
        BUF(a, pos, sizeof(int32_t) * N);
        BUF(a, seg, sizeof(int32_t) * N);
        BUF(a, win, sizeof(uint8_t) * N);
    }
}
#undef BUF

static void visit_alloc(void *ctx, void **slot, size_t bytes) {
    backend *bk = ctx;
    *slot = bk->op->alloc(bk, bytes);
}

static void visit_free(void *ctx, void **slot, size_t bytes) {
    backend *bk = ctx;
    bk->op->free(bk, *slot);
    *slot = NULL;
}

static void visit_count(void *ctx, void **slot, size_t bytes) { *(size_t *)ctx += bytes; }

void model_mem_plan(model_mem *out, const model_config *cfg, int64_t max_tokens, bool recompute,
                    bk_dtype dt, bool device) {
    model_config c = *cfg;
    c.head_dim = (int)head_dim(cfg);
    int n_tensors;
    int64_t n_params;
    free(model_param_layout(&c, &n_tensors, &n_params));
    const int64_t N = max_tokens, D = c.head_dim;
    memset(out, 0, sizeof *out);
    out->params = sizeof(float) * (size_t)n_params;
    out->grads = sizeof(float) * (size_t)n_params;
    out->moments = 2 * sizeof(float) * (size_t)n_params;
    out->work = dt == BK_F32 ? 0 : bk_dtype_size(dt) * (size_t)n_params;
    acts_plan(NULL, &c, N, recompute, false, bk_dtype_size(dt), device, visit_count, &out->activations);
    if (device) {
        // backend_cuda's scratch: delta of the attention backward, and in
        // bf16 mode its fp32 dq accumulator (dk, dv and fp32 mode's
        // gradients are written directly); one chunk of fp32 logits (+ its bf16 gradient in bf16
        // mode, cu_xent_scratch_bytes) and the per-token losses of the xent.
        // Not counted: the document bounds, the dQ order counters (one int
        // per 32 or 64 query rows and head), embedding and rmsnorm backward
        // scratch, grad-norm partials and AdamW tables (O(N) ints and
        // CUB's sort storage; tests/gpu/emu/test_emu_train.c measures them).
        int64_t rows = N < BK_XENT_CHUNK_ROWS ? N : BK_XENT_CHUNK_ROWS;
        out->scratch = (dt == BK_BF16 ? sizeof(float) * (size_t)(N * c.n_heads * D) : 0) +
                       sizeof(float) * (size_t)(N * c.n_heads) +
                       (sizeof(float) + (dt == BK_BF16 ? bk_dtype_size(dt) : 0)) *
                           (size_t)(rows * c.vocab_size) +
                       sizeof(float) * (size_t)N;
    }
    out->total = out->params + out->grads + out->moments + out->work + out->activations +
                 out->scratch;
}

model *model_create(const model_config *cfg, int64_t max_tokens, bool recompute) {
    return model_create_on(cfg, max_tokens, recompute, backend_cpu());
}

model *model_create_on(const model_config *cfg, int64_t max_tokens, bool recompute, backend *bk) {
    model_opts o = {.recompute = recompute};
    return model_create_opts(cfg, max_tokens, &o, bk);
}

// Bytes of the host residual checkpoints under activation offload.
static size_t resid_host_bytes(const model *m) {
    int64_t n = m->cfg.n_layers - 1;
    return bk_dtype_size(m->bk->dt) * (size_t)(n > 0 ? n : 0) * (size_t)(m->max_tokens * m->cfg.dim);
}

model *model_create_opts(const model_config *cfg, int64_t max_tokens, const model_opts *o,
                         backend *bk) {
    const bool recompute = o->recompute;
    int64_t lo = o->resident_lo, hi = o->resident_hi > 0 ? o->resident_hi : INT64_MAX;
    char err[256];
    if (model_config_validate(cfg, err, sizeof err) != 0) die("invalid model config: %s", err);
    CHECK(max_tokens > 0);
    model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->cfg.head_dim = (int)head_dim(cfg);
    m->bk = bk;
    m->tensors = model_param_layout(&m->cfg, &m->n_tensors, &m->n_params);
    if (bk->host_memory || hi > m->n_params) hi = m->n_params;
    if (bk->host_memory || lo > hi) lo = bk->host_memory ? 0 : hi;
    const bool whole = lo == 0 && hi == m->n_params;
    // A host master (offloaded optimizer) is pinned, the backend's host
    // memory: the whole params, or under ZeRO-3 (a resident slice) a buffer
    // of the slice alone next to the pageable whole-size params.
    m->host_master = o->host_master && !bk->host_memory;
    m->params = m->host_master && whole ? bk->op->host_alloc(bk, sizeof(float) * (size_t)m->n_params)
                                        : xcalloc((size_t)m->n_params, sizeof(float));
    m->grads = xcalloc((size_t)m->n_params, sizeof(float));
    model_views_init(&m->p, m->params, &m->cfg);
    model_views_init(&m->g, m->grads, &m->cfg);
    m->dlo = m->glo = lo;
    m->dhi = m->ghi = hi;
    const size_t resident = (size_t)(hi > lo ? hi - lo : 1);  // a rank past the end owns nothing
    m->hmaster = !m->host_master ? NULL : whole ? m->params
                                                : bk->op->host_alloc(bk, sizeof(float) * resident);
    // A host master needs no fp32 copy on a bf16 device.
    bool dmaster = !bk->host_memory && !(m->host_master && bk->dt != BK_F32);
    m->dparams = bk->host_memory ? m->params : dmaster ? bk->op->alloc(bk, sizeof(float) * resident) : NULL;
    m->dgrads = bk->host_memory ? m->grads : bk->op->alloc(bk, sizeof(float) * resident);
    m->work = bk->dt == BK_F32 ? (void *)m->dparams
                               : bk->op->alloc(bk, bk_dtype_size(bk->dt) * resident);
    m->recompute = recompute;
    CHECK(recompute || !o->offload_activations);  // the checkpoints are what is offloaded
    m->offload_acts = o->offload_activations;
    m->max_tokens = max_tokens;

    struct model_acts *a = xcalloc(1, sizeof *a);
    a->n_sets = recompute ? 1 : m->cfg.n_layers;
    a->layer = xcalloc((size_t)a->n_sets, sizeof *a->layer);
    acts_plan(a, &m->cfg, max_tokens, recompute, m->offload_acts, bk_dtype_size(bk->dt),
              !bk->host_memory, visit_alloc, bk);
    if (m->offload_acts) a->resid_host = bk->op->host_alloc(bk, resid_host_bytes(m));
    m->acts = a;
    rope_table_init(&m->rope, &m->cfg.rope, 0);
    return m;
}

// The host master of [glo, ghi) when it is not params itself (ZeRO-3).
static bool master_apart(const model *m) { return m->hmaster && m->hmaster != m->params; }

void model_free(model *m) {
    if (!m) return;
    backend *bk = m->bk;
    struct model_acts *a = m->acts;
    acts_plan(a, &m->cfg, m->max_tokens, m->recompute, m->offload_acts, bk_dtype_size(bk->dt),
              !bk->host_memory, visit_free, bk);
    if (a->resid_host) bk->op->host_free(bk, a->resid_host);
    free(a->layer);
    free(a);
    if ((void *)m->work != (void *)m->dparams) bk->op->free(bk, m->work);
    if (m->dparams && m->dparams != m->params) bk->op->free(bk, m->dparams);
    if (m->dgrads != m->grads) bk->op->free(bk, m->dgrads);
    model_views_free(&m->p);
    model_views_free(&m->g);
    if (master_apart(m)) bk->op->host_free(bk, m->hmaster);  // ZeRO-3's slice
    if (m->hmaster == m->params) bk->op->host_free(bk, m->params);  // pinned: the master
    else free(m->params);
    free(m->tensors); free(m->grads);
    free(m);
}

void model_push_params(model *m) {
    backend *bk = m->bk;
    const int64_t n = m->dhi - m->dlo;
    if (master_apart(m))
        memcpy(m->hmaster, m->params + m->glo, sizeof(float) * (size_t)(m->ghi - m->glo));
    // No device master (offloaded optimizer, bf16): the fp32 weights pass
    // through the gradient buffer (zeroed by every step before use) to be
    // cast, as AdamW's copy is; in pieces of its size when the weights
    // resident are more than the gradients (ZeRO-3 made whole).
    if (m->dparams) {
        bk->op->to_dev(bk, m->dparams, m->params + m->dlo, sizeof(float) * (size_t)n);
        if ((void *)m->work != (void *)m->dparams) bk->op->cast(bk, m->work, bk->dt, m->dparams, BK_F32, n);
        return;
    }
    const int64_t cap = m->ghi > m->glo ? m->ghi - m->glo : 1;
    for (int64_t a = 0; a < n; a += cap) {  // to_dev waits for the cast before it
        const int64_t k = n - a < cap ? n - a : cap;
        bk->op->to_dev(bk, m->dgrads, m->params + m->dlo + a, sizeof(float) * (size_t)k);
        bk->op->cast(bk, model_work_at(m, m->dlo + a), bk->dt, m->dgrads, BK_F32, k);
    }
}

void model_pull_params(model *m) {
    if (master_apart(m)) {  // the master's slice; the device has none
        memcpy(m->params + m->glo, m->hmaster, sizeof(float) * (size_t)(m->ghi - m->glo));
        return;
    }
    if (m->host_master) return;  // params is the master
    m->bk->op->to_host(m->bk, m->params + m->dlo, m->dparams,
                       sizeof(float) * (size_t)(m->dhi - m->dlo));
}

void model_set_resident(model *m, int64_t lo, int64_t hi) {
    backend *bk = m->bk;
    CHECK(lo >= 0 && lo <= hi && hi <= m->n_params);
    if (bk->host_memory || (lo == m->dlo && hi == m->dhi)) return;
    model_pull_params(m);
    if ((void *)m->work != (void *)m->dparams) bk->op->free(bk, m->work);
    if (m->dparams) bk->op->free(bk, m->dparams);
    m->dlo = lo;
    m->dhi = hi;
    const size_t n = (size_t)(hi > lo ? hi - lo : 1);  // a rank past the end of a tiny buffer
    // A host master on a bf16 device: the working weights only.
    m->dparams = m->host_master && bk->dt != BK_F32 ? NULL : bk->op->alloc(bk, sizeof(float) * n);
    m->work = bk->dt == BK_F32 ? (void *)m->dparams : bk->op->alloc(bk, bk_dtype_size(bk->dt) * n);
    model_push_params(m);
}

float *model_dparam_at(const model *m, int64_t i) {
    CHECK(m->dparams && i >= m->dlo && i <= m->dhi);
    return m->dparams + (i - m->dlo);
}

float *model_hmaster_at(const model *m, int64_t i) {
    CHECK(m->hmaster && i >= m->glo && i <= m->ghi);
    return m->hmaster + (i - m->glo);
}

float *model_dgrad_at(const model *m, int64_t i) {
    CHECK(i >= m->glo && i <= m->ghi);
    return m->dgrads + (i - m->glo);
}

void *model_work_at(const model *m, int64_t i) {
    CHECK(i >= m->dlo && i <= m->dhi);
    return (char *)m->work + (size_t)(i - m->dlo) * bk_dtype_size(m->bk->dt);
}

void model_pull_grads(model *m) {
    m->bk->op->to_host(m->bk, m->grads + m->glo, m->dgrads, sizeof(float) * (size_t)(m->ghi - m->glo));
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
    model_push_params(m);
}

void model_set_rope(model *m, const rope_table *rope) { m->rope = *rope; }

void model_set_attention(model *m, const model_attention *attention) { m->attention = *attention; }

void model_zero_grads(model *m) {
    m->bk->op->zero(m->bk, m->dgrads, sizeof(float) * (size_t)(m->ghi - m->glo));
}

// ---------------------------------------------------------------------------
// Forward

// Runs stmt and adds its wall time to m->timers.field (on an asynchronous
// backend: the time to enqueue); then lets a prefetch progress (ZeRO-3).
#define TIMED(m, field, stmt)                                                    \
    do {                                                                         \
        double t0_ = mono_clock_s();                                             \
        stmt;                                                                    \
        (m)->timers.field += mono_clock_s() - t0_;                               \
        if ((m)->param_hook.progress) (m)->param_hook.progress((m)->param_hook.ctx); \
    } while (0)

// The working-dtype weight of a tensor from its host view into params (the
// same offset in every flat buffer): in a gathered unit (ZeRO-3), else in
// the resident working weights.
static const void *weight_of(const model *m, const float *view) {
    const int64_t off = view - m->params;
    const size_t dts = bk_dtype_size(m->bk->dt);
    for (int i = 0; i < MODEL_MAX_HELD_UNITS; i++)
        if (m->unit[i].base && off >= m->unit[i].lo && off < m->unit[i].hi)
            return (const char *)m->unit[i].base + (size_t)(off - m->unit[i].lo) * dts;
    return model_work_at(m, off);
}
#define W(m, view) weight_of((m), (view))
// The backend gradient of a tensor: in its unit's gradient buffer (ZeRO-3
// on a device), else in the resident gradients.
static float *grad_of(const model *m, const float *view) {
    const int64_t off = view - m->grads;
    for (int i = 0; i < 2; i++)
        if (m->gunit[i].base && off >= m->gunit[i].lo && off < m->gunit[i].hi)
            return m->gunit[i].base + (off - m->gunit[i].lo);
    return model_dgrad_at(m, off);
}
#define G(m, view) grad_of((m), (view))
// Row offset n of an activation buffer.
#define ROW(m, buf, n) ((void *)((char *)(buf) + (size_t)(n) * bk_dtype_size((m)->bk->dt)))

static attn_shape attn_shape_of(const model *m, int64_t B, int64_t T) {
    const model_config *c = &m->cfg;
    attn_shape s = {.B = B, .Tq = T, .Tk = T, .H = c->n_heads, .Hkv = c->n_kv_heads,
                    .D = c->head_dim, .q_start = 0, .k_start = 0,
                    .scale = 1.0f / sqrtf((float)c->head_dim), .causal = true};
    return s;
}

// One layer forward: out (N, C) from in (N, C), saving into a.
static void layer_forward(model *m, int l, layer_acts *a, void *out, const void *in,
                          const model_batch *b) {
    const model_config *c = &m->cfg;
    backend *bk = m->bk;
    const backend_ops *op = bk->op;
    const struct model_acts *s = m->acts;
    const model_layer_views *w = &m->p.layers[l];
    const int64_t N = b->B * b->T, C = c->dim, D = c->head_dim, H = c->n_heads,
                  Hkv = c->n_kv_heads, F = c->ffn_dim;

    TIMED(m, other, op->rmsnorm_forward(bk, a->ln1, a->rstd1, in, W(m, w->input_norm), N, C, c->norm_eps));
    TIMED(m, matmul, op->matmul_forward(bk, a->q, a->ln1, W(m, w->wq), N, C, H * D));
    TIMED(m, matmul, op->matmul_forward(bk, a->k, a->ln1, W(m, w->wk), N, C, Hkv * D));
    TIMED(m, matmul, op->matmul_forward(bk, a->v, a->ln1, W(m, w->wv), N, C, Hkv * D));
    TIMED(m, other, op->rope_forward(bk, a->q, a->k, s->cur_pos, s->cur_win, &m->rope, c->rope_layout, N, (int)H, (int)Hkv, (int)D));
    if (m->attention.forward) {
        TIMED(m, attention, m->attention.forward(m->attention.ctx, a->att, a->lse, a->q, a->k, a->v,
                                                 s->cur_seg, b->B, b->T, (int)H, (int)Hkv, (int)D));
    } else {
        attn_shape sh = attn_shape_of(m, b->B, b->T);
        TIMED(m, attention, op->attn_forward(bk, a->att, a->lse, a->q, a->k, a->v, s->cur_seg, &sh));
    }
    TIMED(m, matmul, op->matmul_forward(bk, a->mid, a->att, W(m, w->wo), N, H * D, C));
    TIMED(m, other, op->add(bk, a->mid, in, N * C));

    TIMED(m, other, op->rmsnorm_forward(bk, a->ln2, a->rstd2, a->mid, W(m, w->post_norm), N, C, c->norm_eps));
    TIMED(m, matmul, op->matmul_forward(bk, a->gate, a->ln2, W(m, w->w_gate), N, C, F));
    TIMED(m, matmul, op->matmul_forward(bk, a->up, a->ln2, W(m, w->w_up), N, C, F));
    TIMED(m, other, op->swiglu_forward(bk, a->act, a->gate, a->up, N * F));
    TIMED(m, matmul, op->matmul_forward(bk, out, a->act, W(m, w->w_down), N, F, C));
    TIMED(m, other, op->add(bk, out, a->mid, N * C));
}

static layer_acts *acts_of_layer(model *m, int l) {
    return &m->acts->layer[m->recompute ? 0 : l];
}

// The batch's int arrays where the backend reads them: the caller's host
// arrays on the cpu, uploaded copies on a device (whose embedding kernel
// does not check the ids: checked here, as the cpu kernel does).
static void stage_batch(model *m, const model_batch *b) {
    struct model_acts *a = m->acts;
    backend *bk = m->bk;
    const int64_t N = b->B * b->T;
    CHECK(m->rope.short_len == 0 || b->win != NULL);  // a mixed table needs the window flags
    if (bk->host_memory) {
        a->cur_tokens = b->tokens;
        a->cur_targets = b->targets;
        a->cur_pos = b->pos;
        a->cur_seg = b->seg;
        a->cur_win = b->win;
        return;
    }
    for (int64_t n = 0; n < N; n++)
        if (b->tokens[n] < 0 || b->tokens[n] >= m->cfg.vocab_size)
            die("token id %d at position %lld is outside the vocabulary [0, %lld)",
                (int)b->tokens[n], (long long)n, (long long)m->cfg.vocab_size);
    size_t bytes = sizeof(int32_t) * (size_t)N;
    bk->op->to_dev(bk, a->tokens, b->tokens, bytes);
    bk->op->to_dev(bk, a->pos, b->pos, bytes);
    if (b->targets) bk->op->to_dev(bk, a->targets, b->targets, bytes);
    if (b->seg) bk->op->to_dev(bk, a->seg, b->seg, bytes);
    if (b->win) bk->op->to_dev(bk, a->win, b->win, sizeof(uint8_t) * (size_t)N);
    a->cur_tokens = a->tokens;
    a->cur_pos = a->pos;
    a->cur_targets = b->targets ? a->targets : NULL;
    a->cur_seg = b->seg ? a->seg : NULL;
    a->cur_win = b->win ? a->win : NULL;
}

// ZeRO-3 units of the flat buffer (model_param_hook): 0 = embedding,
// 1 + l = layer l, L + 1 = final norm (+ LM head when untied; tied, the
// head also needs unit 0 again).
void model_unit_range(const model *m, int u, int64_t *lo, int64_t *hi) {
    const int L = m->cfg.n_layers;
    if (u < 0 || u > L + 1) {
        *lo = *hi = 0;
        return;
    }
    *lo = u == 0 ? 0 : m->tensors[1 + 9 * (u - 1)].offset;
    *hi = u == L + 1 ? m->n_params : m->tensors[1 + 9 * u].offset;
}

// Unit u held (needed; a unit held already keeps its slot), prefetching
// [nlo, nhi).
static void unit_hold(model *m, int u, int64_t nlo, int64_t nhi) {
    int64_t lo, hi;
    model_unit_range(m, u, &lo, &hi);
    const void *base = m->param_hook.need(m->param_hook.ctx, lo, hi, nlo, nhi);
    int k = -1;
    for (int i = 0; i < MODEL_MAX_HELD_UNITS && k < 0; i++)
        if (m->unit[i].hi > m->unit[i].lo && m->unit[i].lo == lo && m->unit[i].hi == hi) k = i;
    for (int i = 0; i < MODEL_MAX_HELD_UNITS && k < 0; i++)
        if (m->unit[i].hi <= m->unit[i].lo) k = i;
    CHECK(k >= 0);  // at most three held (model_param_hook)
    m->unit[k].lo = lo;
    m->unit[k].hi = hi;
    m->unit[k].base = base;
}

static void unit_release(model *m, int u) {
    int64_t lo, hi;
    model_unit_range(m, u, &lo, &hi);
    m->param_hook.done(m->param_hook.ctx, lo, hi);
    for (int i = 0; i < MODEL_MAX_HELD_UNITS; i++)
        if (m->unit[i].lo == lo && m->unit[i].hi == hi) memset(&m->unit[i], 0, sizeof m->unit[i]);
}

// need unit u (prefetching unit next, -1 = none).
static void unit_need(model *m, int u, int next) {
    if (!m->param_hook.need) return;
    int64_t nlo, nhi;
    model_unit_range(m, next, &nlo, &nhi);
    // The tied LM head is the embedding, prefetched during the last layer
    // (head_prefetch); the final norm, C floats, is then gathered on the spot.
    if (u == m->cfg.n_layers + 1 && m->cfg.tie_embeddings) unit_hold(m, 0, 0, 0);
    unit_hold(m, u, nlo, nhi);
}

// The unit to prefetch while the last layer computes: the head's largest
// part (tied: the embedding; untied: the final norm + LM head).
static int head_prefetch(const model *m) {
    return m->cfg.tie_embeddings ? 0 : m->cfg.n_layers + 1;
}

static void unit_done(model *m, int u) {
    if (!m->param_hook.need) return;
    unit_release(m, u);
    if (u == m->cfg.n_layers + 1 && m->cfg.tie_embeddings) unit_release(m, 0);
}

void model_release_units(model *m) {
    if (!m->head_held) return;
    m->head_held = false;
    unit_done(m, m->cfg.n_layers + 1);
}

// Residual checkpoint j (the input of layer j; j = L: the last output) in
// backend memory. Offloaded, it lives in slot j % 2 while it is in use.
static void *resid_at(const model *m, int j, int64_t N) {
    int64_t row = m->offload_acts ? (int64_t)(j % 2) : j;
    return ROW(m, m->acts->resid, row * N * m->cfg.dim);
}

static void *resid_host_at(const model *m, int j, int64_t N) {
    return (char *)m->acts->resid_host + bk_dtype_size(m->bk->dt) * (size_t)((int64_t)j * N * m->cfg.dim);
}

// Offload: checkpoint j is about to be written into its slot, which held
// checkpoint j - 2: wait for that one's copy to the host.
static void resid_slot_free(model *m, int j) {
    if (m->offload_acts && j >= 2 && j - 2 <= m->cfg.n_layers - 2) m->bk->op->copy_wait(m->bk, j - 2);
}

// Offload: checkpoint j was just written; checkpoints 0 .. L-2 go to the
// host (L - 1 and L stay in their slots for the start of the backward).
static void resid_offload(model *m, int j, int64_t N) {
    if (!m->offload_acts || j > m->cfg.n_layers - 2) return;
    size_t bytes = bk_dtype_size(m->bk->dt) * (size_t)(N * m->cfg.dim);
    m->bk->op->copy_async(m->bk, resid_host_at(m, j, N), resid_at(m, j, N), bytes, j);
}

// Offload, backward: layer j + 1 is about to run; fetch checkpoint j - 1
// into the slot of checkpoint j + 1 (last read by what is enqueued), and
// make the compute wait for checkpoint j (fetched one layer earlier).
static void resid_prefetch(model *m, int j, int64_t N) {
    if (!m->offload_acts) return;
    backend *bk = m->bk;
    size_t bytes = bk_dtype_size(bk->dt) * (size_t)(N * m->cfg.dim);
    if (j <= m->cfg.n_layers - 2) bk->op->copy_wait(bk, j);
    if (j >= 1) bk->op->copy_async(bk, resid_at(m, j - 1, N), resid_host_at(m, j - 1, N), bytes, j - 1);
}

// Embeddings through the final norm; leaves final_ln filled (and, under a
// param hook, the head unit needed: the caller releases it). hold_last:
// the last layer's unit stays held too, for the backward that follows (no
// gather at the turn; the backward releases it).
static void forward_trunk(model *m, const model_batch *b, bool hold_last) {
    const model_config *c = &m->cfg;
    backend *bk = m->bk;
    struct model_acts *a = m->acts;
    const int64_t N = b->B * b->T, C = c->dim;
    if (N > m->max_tokens)
        die("batch of %lld tokens exceeds the model's capacity of %lld", (long long)N,
            (long long)m->max_tokens);
    a->B = b->B;
    a->T = b->T;
    model_release_units(m);  // the head a model_forward left held
    stage_batch(m, b);
    unit_need(m, 0, 1);
    TIMED(m, other, bk->op->embedding_forward(bk, resid_at(m, 0, N), a->cur_tokens, W(m, m->p.embed), N, C, c->vocab_size));
    resid_offload(m, 0, N);
    unit_done(m, 0);
    for (int l = 0; l < c->n_layers; l++) {
        unit_need(m, 1 + l, l == c->n_layers - 1 ? head_prefetch(m) : 2 + l);
        resid_slot_free(m, l + 1);
        layer_forward(m, l, acts_of_layer(m, l), resid_at(m, l + 1, N), resid_at(m, l, N), b);
        resid_offload(m, l + 1, N);
        if (!hold_last || l < c->n_layers - 1) unit_done(m, 1 + l);
    }
    unit_need(m, c->n_layers + 1, -1);
    TIMED(m, other, bk->op->rmsnorm_forward(bk, a->final_ln, a->final_rstd, resid_at(m, c->n_layers, N),
                                            W(m, m->p.final_norm), N, C, c->norm_eps));
}

double model_forward(model *m, const model_batch *b, float *losses) {
    forward_trunk(m, b, false);
    m->head_held = m->param_hook.need != NULL;  // for model_argmax_row (model_release_units)
    if (!b->targets) return 0.0;  // hidden states only (decoding)
    const int64_t N = b->B * b->T;
    double loss;
    TIMED(m, matmul, loss = m->bk->op->xent(m->bk, losses, NULL, NULL, m->acts->final_ln,
                                            W(m, m->p.lm_head), m->acts->cur_targets, N,
                                            m->cfg.dim, m->cfg.vocab_size, 0.0f));
    return loss;
}

const float *model_final_hidden(const model *m) { return m->acts->final_ln; }

int32_t model_argmax_row(const model *m, int64_t n) {
    const int64_t V = m->cfg.vocab_size, C = m->cfg.dim;
    CHECK(n >= 0 && n < m->acts->B * m->acts->T);
    float *logits = xmalloc(sizeof(float) * V);
    m->bk->op->logits_row(m->bk, logits, ROW(m, m->acts->final_ln, n * C), W(m, m->p.lm_head), C, V);
    int32_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = (int32_t)v;
    free(logits);
    return best;
}

// ---------------------------------------------------------------------------
// Backward

// One layer backward. On entry dresid holds dL/d(out); on return dL/d(in).
static void layer_backward(model *m, int l, layer_acts *a, const void *in, const model_batch *b) {
    const model_config *c = &m->cfg;
    backend *bk = m->bk;
    const backend_ops *op = bk->op;
    struct model_acts *s = m->acts;
    const model_layer_views *w = &m->p.layers[l];
    const model_layer_views *dw = &m->g.layers[l];
    const int64_t N = b->B * b->T, C = c->dim, D = c->head_dim, H = c->n_heads,
                  Hkv = c->n_kv_heads, F = c->ffn_dim;
    const size_t dts = bk_dtype_size(bk->dt);
    void *dres = s->dresid;  // d out == d mid (residual) + MLP path

    // MLP: out = mid + down(swiglu(gate(ln2), up(ln2)))
    op->zero(bk, s->dact, dts * N * F);
    TIMED(m, matmul, op->matmul_backward(bk, s->dact, G(m, dw->w_down), dres, a->act, W(m, w->w_down), N, F, C));
    op->zero(bk, s->dgate, dts * N * F);
    op->zero(bk, s->dup, dts * N * F);
    TIMED(m, other, op->swiglu_backward(bk, s->dgate, s->dup, s->dact, a->gate, a->up, N * F));
    op->zero(bk, s->dln, dts * N * C);
    TIMED(m, matmul, op->matmul_backward(bk, s->dln, G(m, dw->w_gate), s->dgate, a->ln2, W(m, w->w_gate), N, C, F));
    TIMED(m, matmul, op->matmul_backward(bk, s->dln, G(m, dw->w_up), s->dup, a->ln2, W(m, w->w_up), N, C, F));
    TIMED(m, other, op->rmsnorm_backward(bk, dres, G(m, dw->post_norm), s->dln, a->mid, W(m, w->post_norm), a->rstd2, N, C));  // dres is now d mid

    // Attention: mid = in + o_proj(attn(rope(q), rope(k), v))
    op->zero(bk, s->datt, dts * N * H * D);
    TIMED(m, matmul, op->matmul_backward(bk, s->datt, G(m, dw->wo), dres, a->att, W(m, w->wo), N, H * D, C));
    op->zero(bk, s->dq, dts * N * H * D);
    op->zero(bk, s->dk, dts * N * Hkv * D);
    op->zero(bk, s->dv, dts * N * Hkv * D);
    if (m->attention.backward) {
        TIMED(m, attention, m->attention.backward(m->attention.ctx, s->dq, s->dk, s->dv, s->datt,
                                                  a->q, a->k, a->v, a->att, a->lse, s->cur_seg, b->B,
                                                  b->T, (int)H, (int)Hkv, (int)D));
    } else {
        attn_shape sh = attn_shape_of(m, b->B, b->T);
        TIMED(m, attention, op->attn_backward(bk, s->dq, s->dk, s->dv, s->datt, a->q, a->k, a->v,
                                              a->att, a->lse, s->cur_seg, &sh));
    }
    TIMED(m, other, op->rope_backward(bk, s->dq, s->dk, s->cur_pos, s->cur_win, &m->rope, c->rope_layout, N, (int)H, (int)Hkv, (int)D));
    op->zero(bk, s->dln, dts * N * C);
    TIMED(m, matmul, op->matmul_backward(bk, s->dln, G(m, dw->wq), s->dq, a->ln1, W(m, w->wq), N, C, H * D));
    TIMED(m, matmul, op->matmul_backward(bk, s->dln, G(m, dw->wk), s->dk, a->ln1, W(m, w->wk), N, C, Hkv * D));
    TIMED(m, matmul, op->matmul_backward(bk, s->dln, G(m, dw->wv), s->dv, a->ln1, W(m, w->wv), N, C, Hkv * D));
    TIMED(m, other, op->rmsnorm_backward(bk, dres, G(m, dw->input_norm), s->dln, in, W(m, w->input_norm), a->rstd1, N, C));  // d in
}

// Unit u's gradients into buffer slot (param_hook.grad_need), and done.
static void grads_need(model *m, int u, int slot) {
    if (!m->param_hook.grad_need) return;
    int64_t lo, hi;
    model_unit_range(m, u, &lo, &hi);
    m->gunit[slot].base = m->param_hook.grad_need(m->param_hook.ctx, lo, hi);
    m->gunit[slot].lo = lo;
    m->gunit[slot].hi = hi;
}

static void grads_done(model *m, int slot) {
    if (!m->param_hook.grad_need) return;
    m->param_hook.grad_done(m->param_hook.ctx, m->gunit[slot].lo, m->gunit[slot].hi);
    memset(&m->gunit[slot], 0, sizeof m->gunit[slot]);
}

static void grads_ready(model *m, int64_t lo) {
    // With tied embeddings the LM head's gradient is the embedding's (offset
    // 0), which is final only after the embedding backward: nothing is early.
    if (m->grad_hook.ready && !m->cfg.tie_embeddings) m->grad_hook.ready(m->grad_hook.ctx, lo);
}

double model_forward_backward(model *m, const model_batch *b, float grad_scale) {
    const model_config *c = &m->cfg;
    backend *bk = m->bk;
    struct model_acts *a = m->acts;
    const int64_t N = b->B * b->T, C = c->dim;
    const size_t dts = bk_dtype_size(bk->dt);

    forward_trunk(m, b, true);  // the last layer held into its backward
    bk->op->zero(bk, a->dln, dts * N * C);
    grads_need(m, c->n_layers + 1, 0);  // the head: final norm (+ LM head when untied)
    if (c->tie_embeddings) grads_need(m, 0, 1);  // the tied head's, final after the embedding
    double loss;
    TIMED(m, matmul, loss = bk->op->xent(bk, NULL, a->dln, G(m, m->g.lm_head), a->final_ln, W(m, m->p.lm_head),
                                         a->cur_targets, N, C, c->vocab_size, grad_scale));
    bk->op->zero(bk, a->dresid, dts * N * C);
    const void *last = resid_at(m, c->n_layers, N);
    TIMED(m, other, bk->op->rmsnorm_backward(bk, a->dresid, G(m, m->g.final_norm), a->dln, last, W(m, m->p.final_norm),
                                             a->final_rstd, N, C));
    unit_done(m, c->n_layers + 1);
    grads_done(m, 0);

    // Tensor order in the flat buffer: embed, layer 0 .. L-1 (9 each), final norm, lm_head.
    grads_ready(m, m->tensors[1 + 9 * c->n_layers].offset);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        resid_prefetch(m, l, N);
        const void *in = resid_at(m, l, N);
        layer_acts *la = acts_of_layer(m, l);
        // (the last layer: held from the forward; layer 0 prefetches the
        // embedding when another pass follows)
        unit_need(m, 1 + l, l > 0 || m->param_hook.another_pass ? l : -1);
        if (m->recompute) {
            // Recompute this layer's activations; its output is not needed again,
            // so write it to dln (scratch, cleared before use in layer_backward).
            layer_forward(m, l, la, a->dln, in, b);
        }
        grads_need(m, 1 + l, 0);
        layer_backward(m, l, la, in, b);
        unit_done(m, 1 + l);
        grads_done(m, 0);
        grads_ready(m, m->tensors[1 + 9 * l].offset);
    }
    if (!c->tie_embeddings) grads_need(m, 0, 1);
    TIMED(m, other, bk->op->embedding_backward(bk, G(m, m->g.embed), a->dresid, a->cur_tokens, N, C, c->vocab_size));
    grads_done(m, 1);
    return loss;
}
