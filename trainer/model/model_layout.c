// model_layout: the table of named parameter tensors (HF Llama names) inside
// one flat buffer, and pointer views over any buffer with that layout
// (parameters, gradients, AdamW moments all share it).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "model.h"

static int head_dim_of(const model_config *cfg) {
    return cfg->head_dim > 0 ? cfg->head_dim : cfg->dim / cfg->n_heads;
}

static void add_tensor(model_tensor *t, int *n, int64_t *offset, const char *name,
                       int64_t rows, int64_t cols, bool decay) {
    model_tensor *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->offset = *offset;
    x->shape[0] = rows;
    x->shape[1] = cols;
    x->decay = decay;
    *offset += rows * cols;
}

model_tensor *model_param_layout(const model_config *cfg, int *n_tensors, int64_t *n_params) {
    const int64_t C = cfg->dim, D = head_dim_of(cfg), H = cfg->n_heads, Hkv = cfg->n_kv_heads;
    const int64_t F = cfg->ffn_dim, V = cfg->vocab_size;
    model_tensor *t = xcalloc((size_t)(9 * cfg->n_layers + 3), sizeof *t);
    int n = 0;
    int64_t off = 0;
    char name[96];

    add_tensor(t, &n, &off, "model.embed_tokens.weight", V, C, true);
    for (int l = 0; l < cfg->n_layers; l++) {
#define LAYER(suffix, rows, cols, decay)                                   \
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);          \
    add_tensor(t, &n, &off, name, rows, cols, decay)
        LAYER("input_layernorm.weight", C, 1, false);
        LAYER("self_attn.q_proj.weight", H * D, C, true);
        LAYER("self_attn.k_proj.weight", Hkv * D, C, true);
        LAYER("self_attn.v_proj.weight", Hkv * D, C, true);
        LAYER("self_attn.o_proj.weight", C, H * D, true);
        LAYER("post_attention_layernorm.weight", C, 1, false);
        LAYER("mlp.gate_proj.weight", F, C, true);
        LAYER("mlp.up_proj.weight", F, C, true);
        LAYER("mlp.down_proj.weight", C, F, true);
#undef LAYER
    }
    add_tensor(t, &n, &off, "model.norm.weight", C, 1, false);
    if (!cfg->tie_embeddings) add_tensor(t, &n, &off, "lm_head.weight", V, C, true);
    *n_tensors = n;
    *n_params = off;
    return t;
}

void model_views_init(model_views *v, float *flat, const model_config *cfg) {
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(cfg, &n, &total);
    int i = 0;
    v->embed = flat + t[i++].offset;
    v->layers = xcalloc((size_t)cfg->n_layers, sizeof *v->layers);
    for (int l = 0; l < cfg->n_layers; l++) {
        model_layer_views *L = &v->layers[l];
        L->input_norm = flat + t[i++].offset;
        L->wq = flat + t[i++].offset;
        L->wk = flat + t[i++].offset;
        L->wv = flat + t[i++].offset;
        L->wo = flat + t[i++].offset;
        L->post_norm = flat + t[i++].offset;
        L->w_gate = flat + t[i++].offset;
        L->w_up = flat + t[i++].offset;
        L->w_down = flat + t[i++].offset;
    }
    v->final_norm = flat + t[i++].offset;
    v->lm_head = cfg->tie_embeddings ? v->embed : flat + t[i++].offset;
    CHECK(i == n);
    free(t);
}

void model_views_free(model_views *v) {
    free(v->layers);
    v->layers = NULL;
}
