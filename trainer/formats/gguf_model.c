// gguf_model: a Llama GGUF -> model_config + parameters. See gguf_model.h.
#include "gguf_model.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "gguf_dequant.h"
#include "model.h"

// An integer key arch.NAME: required, or default (*out untouched) when absent.
static int get_int(const gguf_file *f, const char *name, bool required, int64_t lo, int64_t hi, int64_t *out,
                   char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "llama.%s", name);
    int rc = gguf_get_int(f, key, out, err, errlen);
    if (rc < 0) return -1;
    if (rc == 1) return required ? errmsg(err, errlen, "%s: key %s is missing", f->name, key) : 0;
    if (*out < lo || *out > hi)
        return errmsg(err, errlen, "%s: key %s: %lld is out of range [%lld, %lld]", f->name, key, (long long)*out,
                      (long long)lo, (long long)hi);
    return 0;
}

static int get_float(const gguf_file *f, const char *name, double *out, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "llama.%s", name);
    int rc = gguf_get_float(f, key, out, err, errlen);
    return rc < 0 ? -1 : 0;
}

static int rope_scaling(rope_config *r, const gguf_file *f, char *err, size_t errlen) {
    const char *type = "none";
    if (gguf_get_str(f, "llama.rope.scaling.type", &type, err, errlen) < 0) return -1;
    double factor = 0, linear = 0, attn = 1;
    int64_t orig = 0;
    if (get_float(f, "rope.scaling.factor", &factor, err, errlen) ||
        get_float(f, "rope.scale_linear", &linear, err, errlen) ||  // the older key for linear
        get_float(f, "rope.scaling.attn_factor", &attn, err, errlen) ||
        get_int(f, "rope.scaling.original_context_length", false, 1, INT32_MAX, &orig, err, errlen) ||
        get_float(f, "rope.scaling.yarn_beta_fast", &r->beta_fast, err, errlen) ||
        get_float(f, "rope.scaling.yarn_beta_slow", &r->beta_slow, err, errlen))
        return -1;
    // llama.cpp multiplies its own YaRN attention factor (0.1 ln s + 1) by attn_factor: for yarn that is
    // HF's attention_factor = attn (0.1 ln s + 1); for the other types there is no HF equivalent.
    if (attn != 1.0 && strcmp(type, "yarn") != 0)
        return errmsg(err, errlen, "%s: key llama.rope.scaling.attn_factor (%g) is not supported (only 1, or "
                      "with yarn)", f->name, attn);
    if (!strcmp(type, "none") && linear > 0 && linear != 1.0) type = "linear", factor = linear;
    if (!strcmp(type, "none")) {
        r->type = ROPE_TYPE_DEFAULT;
    } else if (!strcmp(type, "linear")) {
        r->type = ROPE_TYPE_LINEAR;
        r->factor = factor;
    } else if (!strcmp(type, "yarn")) {
        r->type = ROPE_TYPE_YARN;
        r->factor = factor;
        r->original_max_position_embeddings = orig;
        if (attn != 1.0) r->attention_factor = attn * (factor > 1.0 ? 0.1 * log(factor) + 1.0 : 1.0);
    } else {
        return errmsg(err, errlen, "%s: key llama.rope.scaling.type: '%s' is not supported (none, linear, yarn)",
                      f->name, type);
    }
    return 0;
}

int gguf_model_config(model_config *cfg, const gguf_file *f, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    const char *arch = NULL;
    int rc = gguf_get_str(f, "general.architecture", &arch, err, errlen);
    if (rc < 0) return -1;
    if (rc == 1) return errmsg(err, errlen, "%s: key general.architecture is missing", f->name);
    if (strcmp(arch, "llama") != 0)
        return errmsg(err, errlen, "%s: key general.architecture: '%s' is not supported (llama)", f->name, arch);
    int64_t dim = 0, layers = 0, heads = 0, kv = 0, ffn = 0, ctx = 0, head_dim = 0, rot = 0;
    double eps = 1e-5, theta = 10000;
    if (get_int(f, "embedding_length", true, 1, 1 << 20, &dim, err, errlen) ||
        get_int(f, "block_count", true, 1, 4096, &layers, err, errlen) ||
        get_int(f, "attention.head_count", true, 1, 4096, &heads, err, errlen) ||
        get_int(f, "feed_forward_length", true, 1, 1 << 22, &ffn, err, errlen) ||
        get_int(f, "context_length", true, 1, INT32_MAX, &ctx, err, errlen))
        return -1;
    kv = heads;
    head_dim = dim / heads;
    if (get_int(f, "attention.head_count_kv", false, 1, 4096, &kv, err, errlen) ||
        get_int(f, "attention.key_length", false, 1, 4096, &head_dim, err, errlen) ||
        get_float(f, "attention.layer_norm_rms_epsilon", &eps, err, errlen) ||
        get_float(f, "rope.freq_base", &theta, err, errlen))
        return -1;
    rot = head_dim;
    if (get_int(f, "rope.dimension_count", false, 1, 4096, &rot, err, errlen)) return -1;
    if (rot != head_dim)
        return errmsg(err, errlen, "%s: key llama.rope.dimension_count (%lld) differs from the head dim (%lld): "
                      "partial rotary is not supported", f->name, (long long)rot, (long long)head_dim);
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb) return errmsg(err, errlen, "%s: tensor token_embd.weight is missing", f->name);
    if (emb->n_dims != 2 || emb->ne[0] != dim || emb->ne[1] > INT32_MAX)
        return errmsg(err, errlen, "%s: tensor token_embd.weight has %u dims {%lld, %lld}, expected {%lld, vocab}",
                      f->name, emb->n_dims, (long long)emb->ne[0], (long long)emb->ne[1], (long long)dim);
    if (gguf_find_tensor(f, "rope_freqs.weight"))
        return errmsg(err, errlen, "%s: tensor rope_freqs.weight (llama3-style rope scaling) is not supported",
                      f->name);
    cfg->dim = (int)dim;
    cfg->n_layers = (int)layers;
    cfg->n_heads = (int)heads;
    cfg->n_kv_heads = (int)kv;
    cfg->head_dim = head_dim == dim / heads ? 0 : (int)head_dim;
    cfg->ffn_dim = (int)ffn;
    cfg->vocab_size = (int)emb->ne[1];
    cfg->norm_eps = (float)eps;
    cfg->tie_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    cfg->rope_layout = ROPE_LAYOUT_HALF;
    cfg->rope = rope_config_default((int)head_dim);
    cfg->rope.theta = theta;
    cfg->rope.max_position_embeddings = ctx;
    if (rope_scaling(&cfg->rope, f, err, errlen)) return -1;
    char msg[512];
    if (model_config_validate(cfg, msg, sizeof msg)) return errmsg(err, errlen, "%s: invalid model: %s", f->name, msg);
    return 0;
}

void gguf_qk_unpermute(float *w, int n_heads, int head_dim, int64_t cols) {
    const int half = head_dim / 2;
    size_t row = sizeof(float) * (size_t)cols;
    float *tmp = xmalloc(row * (size_t)head_dim);
    for (int h = 0; h < n_heads; h++) {
        float *head = w + (int64_t)h * head_dim * cols;
        memcpy(tmp, head, row * (size_t)head_dim);
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) memcpy(head + (int64_t)(j * half + i) * cols, tmp + (int64_t)(2 * i + j) * cols, row);
    }
    free(tmp);
}

bool gguf_tensor_name(char *out, size_t len, const char *hf) {
    static const char *const map[][2] = {
        {"input_layernorm.weight", "attn_norm"},     {"self_attn.q_proj.weight", "attn_q"},
        {"self_attn.k_proj.weight", "attn_k"},       {"self_attn.v_proj.weight", "attn_v"},
        {"self_attn.o_proj.weight", "attn_output"},  {"post_attention_layernorm.weight", "ffn_norm"},
        {"mlp.gate_proj.weight", "ffn_gate"},        {"mlp.up_proj.weight", "ffn_up"},
        {"mlp.down_proj.weight", "ffn_down"},
    };
    if (!strcmp(hf, "model.embed_tokens.weight")) return snprintf(out, len, "token_embd.weight") > 0;
    if (!strcmp(hf, "model.norm.weight")) return snprintf(out, len, "output_norm.weight") > 0;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(out, len, "output.weight") > 0;
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) != 1 || used == 0) return false;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(hf + used, map[i][0])) return snprintf(out, len, "blk.%d.%s.weight", layer, map[i][1]) > 0;
    return false;
}

static int load_tensor(float *dst, const model_tensor *t, const gguf_file *f, char *used, char *err, size_t errlen) {
    char name[128];
    if (!gguf_tensor_name(name, sizeof name, t->name)) return errmsg(err, errlen, "no GGUF name for %s", t->name);
    const gguf_tensor *g = gguf_find_tensor(f, name);
    if (!g) return errmsg(err, errlen, "%s: tensor %s (%s) is missing", f->name, name, t->name);
    used[g - f->tensors] = 1;
    int64_t rows = t->shape[0], cols = t->shape[1];
    // GGUF lists dims fastest first: an HF (rows, cols) matrix is {cols, rows}, a vector {rows}.
    bool ok = cols == 1 ? (g->n_dims == 1 && g->ne[0] == rows) : (g->n_dims == 2 && g->ne[0] == cols && g->ne[1] == rows);
    if (!ok) {
        char want[64];
        if (cols == 1) snprintf(want, sizeof want, "{%lld}", (long long)rows);
        else snprintf(want, sizeof want, "{%lld, %lld}", (long long)cols, (long long)rows);
        return errmsg(err, errlen, "%s: tensor %s has %u dims {%lld, %lld, ...}, expected %s for %s", f->name, name,
                      g->n_dims, (long long)g->ne[0], (long long)g->ne[1], want, t->name);
    }
    if (gguf_dequant(dst, g->data, g->type, (int64_t)g->n_elements) != 0)
        return errmsg(err, errlen, "%s: tensor %s has type %s; stretch reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, "
                      "Q5_1, Q4_K, Q5_K and Q6_K", f->name, name, gguf_ggml_type_name(g->type));
    return 0;
}

int gguf_model_load(model_config *cfg, float **params, const gguf_file *f, char *err, size_t errlen) {
    if (gguf_model_config(cfg, f, err, errlen)) return -1;
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(cfg, &n, &total);
    float *p = xmalloc(sizeof(float) * (size_t)total);
    char *used = xcalloc((size_t)f->n_tensors + 1, 1);
    int rc = 0;
    const int D = model_config_head_dim(cfg);
    for (int i = 0; i < n && rc == 0; i++) {
        rc = load_tensor(p + t[i].offset, &t[i], f, used, err, errlen);
        size_t len = strlen(t[i].name);
        bool q = len > 23 && !strcmp(t[i].name + len - 23, "self_attn.q_proj.weight");
        bool k = len > 23 && !strcmp(t[i].name + len - 23, "self_attn.k_proj.weight");
        if (rc == 0 && (q || k)) gguf_qk_unpermute(p + t[i].offset, q ? cfg->n_heads : cfg->n_kv_heads, D, t[i].shape[1]);
    }
    for (int64_t i = 0; i < f->n_tensors && rc == 0; i++)
        if (!used[i])
            rc = errmsg(err, errlen, "%s: tensor %s is not part of a Llama model with this config", f->name,
                        f->tensors[i].name);
    free(used);
    free(t);
    if (rc) {
        free(p);
        return -1;
    }
    *params = p;
    return 0;
}

void gguf_qk_permute(float *w, int n_heads, int head_dim, int64_t cols) {
    const int half = head_dim / 2;
    size_t row = sizeof(float) * (size_t)cols;
    float *tmp = xmalloc(row * (size_t)head_dim);
    for (int h = 0; h < n_heads; h++) {
        float *head = w + (int64_t)h * head_dim * cols;
        memcpy(tmp, head, row * (size_t)head_dim);
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) memcpy(head + (int64_t)(2 * i + j) * cols, tmp + (int64_t)(j * half + i) * cols, row);
    }
    free(tmp);
}
