// gguf_export: model -> llama.cpp GGUF (llama architecture). See gguf_export.h.
#include "gguf_export.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "gguf_model.h"
#include "gguf_quant.h"
#include "model.h"

static double yarn_factor(const rope_config *r) {
    int64_t orig = r->original_max_position_embeddings > 0 ? r->original_max_position_embeddings
                                                           : r->max_position_embeddings;
    return r->factor != 0.0 ? r->factor : (double)r->max_position_embeddings / (double)orig;
}

static double mscale(double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0; }

// HF's YaRN attention factor (transformers' _compute_yarn_parameters).
static double yarn_attention(const rope_config *r) {
    double f = yarn_factor(r);
    if (r->attention_factor != 0.0) return r->attention_factor;
    if (r->mscale != 0.0 && r->mscale_all_dim != 0.0) return mscale(f, r->mscale) / mscale(f, r->mscale_all_dim);
    return mscale(f, 1.0);
}

int gguf_export_check(const model_config *cfg, uint32_t type, char *err, size_t errlen) {
    const rope_config *r = &cfg->rope;
    if (type != GGML_TYPE_F32 && type != GGML_TYPE_F16 && type != GGML_TYPE_BF16 && type != GGML_TYPE_Q8_0)
        return errmsg(err, errlen, "GGUF type %s is not written (f32, f16, bf16, q8_0)", gguf_ggml_type_name(type));
    if (r->partial_rotary_factor != 0.0 && r->partial_rotary_factor != 1.0)
        return errmsg(err, errlen, "rope partial_rotary_factor %g: llama.cpp's llama architecture rotates the whole "
                      "head", r->partial_rotary_factor);
    switch (r->type) {
    case ROPE_TYPE_DEFAULT:
    case ROPE_TYPE_LINEAR:
    case ROPE_TYPE_LLAMA3:
        return 0;
    case ROPE_TYPE_DYNAMIC:
        return errmsg(err, errlen, "rope type dynamic (NTK) cannot be expressed in llama.cpp's GGUF keys (none, "
                      "linear, yarn, rope_freqs); export another stage with --stage");
    case ROPE_TYPE_YARN:
        if (r->no_truncate)
            return errmsg(err, errlen, "rope yarn with truncate: false cannot be expressed in GGUF (llama.cpp "
                          "rounds the correction dims)");
        if ((r->beta_fast != 0.0 && r->beta_fast != 32.0) || (r->beta_slow != 0.0 && r->beta_slow != 1.0))
            return errmsg(err, errlen, "rope yarn beta_fast %g / beta_slow %g: llama.cpp's llama architecture "
                          "always uses 32 / 1", r->beta_fast ? r->beta_fast : 32.0, r->beta_slow ? r->beta_slow : 1.0);
        return 0;
    case ROPE_TYPE_LONGROPE:
        if (r->n_hat > 0)
            return errmsg(err, errlen, "rope longrope n_hat (%lld) cannot be expressed in GGUF: llama.cpp has no "
                          "position below which the original frequencies are kept", (long long)r->n_hat);
        return 0;
    }
    return errmsg(err, errlen, "rope type %d is unknown", (int)r->type);
}

int gguf_export_rope_freqs(float *out, const rope_config *rope) {
    if (rope->type != ROPE_TYPE_LLAMA3 && rope->type != ROPE_TYPE_LONGROPE) return 0;
    rope_table t;
    // longrope: the long factors (a length beyond the original context)
    int64_t orig = rope->original_max_position_embeddings > 0 ? rope->original_max_position_embeddings
                                                              : rope->max_position_embeddings;
    rope_table_init(&t, rope, rope->type == ROPE_TYPE_LONGROPE ? orig + 1 : 0);
    for (int i = 0; i < t.n_pairs; i++) out[i] = t.inv_freq_orig[i] / t.inv_freq[i];
    return 1;
}

// The RoPE keys (and the rope_freqs tensor) of cfg.
static void rope_keys(gguf_writer *w, const model_config *cfg, FILE *warn) {
    const rope_config *r = &cfg->rope;
    gguf_w_f32(w, "llama.rope.freq_base", (float)r->theta);
    int64_t orig = r->original_max_position_embeddings > 0 ? r->original_max_position_embeddings
                                                           : r->max_position_embeddings;
    switch (r->type) {
    case ROPE_TYPE_LINEAR:
        gguf_w_str(w, "llama.rope.scaling.type", "linear");
        gguf_w_f32(w, "llama.rope.scaling.factor", (float)r->factor);
        break;
    case ROPE_TYPE_YARN: {
        double f = yarn_factor(r);
        gguf_w_str(w, "llama.rope.scaling.type", "yarn");
        gguf_w_f32(w, "llama.rope.scaling.factor", (float)f);
        gguf_w_u32(w, "llama.rope.scaling.original_context_length", (uint32_t)orig);
        gguf_w_f32(w, "llama.rope.scaling.yarn_beta_fast", 32.0f);
        gguf_w_f32(w, "llama.rope.scaling.yarn_beta_slow", 1.0f);
        double attn = yarn_attention(r) / mscale(f, 1.0);
        if (fabs(attn - 1.0) > 1e-7) gguf_w_f32(w, "llama.rope.scaling.attn_factor", (float)attn);
        break;
    }
    case ROPE_TYPE_LLAMA3:
    case ROPE_TYPE_LONGROPE: {
        gguf_w_str(w, "llama.rope.scaling.type", "none");
        float ff[ROPE_MAX_PAIRS];
        gguf_export_rope_freqs(ff, r);
        int64_t ne = model_config_head_dim(cfg) / 2;
        gguf_w_tensor(w, "rope_freqs.weight", 1, &ne, GGML_TYPE_F32, ff, 4 * (uint64_t)ne);
        if (r->type == ROPE_TYPE_LONGROPE) {
            rope_table t;
            rope_table_init(&t, r, orig + 1);
            if (t.attention_factor != 1.0f) gguf_w_f32(w, "llama.rope.scaling.attn_factor", t.attention_factor);
            gguf_w_u32(w, "llama.rope.scaling.original_context_length", (uint32_t)orig);
            bool same = true;
            for (int i = 0; i < r->n_factors; i++) same &= (float)r->short_factor[i] == (float)r->long_factor[i];
            if (!same && warn)
                fprintf(warn, "stretch: warning: export: rope longrope short_factor dropped: llama.cpp's llama "
                        "architecture applies the long factors at every length (HF uses short_factor up to %lld "
                        "tokens)\n", (long long)orig);
        }
        break;
    }
    default:
        gguf_w_str(w, "llama.rope.scaling.type", "none");
        break;
    }
}

static uint32_t file_type(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case GGML_TYPE_Q8_0: return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case GGML_TYPE_BF16: return 32; // LLAMA_FTYPE_MOSTLY_BF16
    default: return 0;              // LLAMA_FTYPE_ALL_F32
    }
}

int gguf_export_model(gguf_writer *w, const model_config *cfg, const float *params, uint32_t type,
                      const char *name, FILE *warn, char *err, size_t errlen) {
    if (gguf_export_check(cfg, type, err, errlen)) return -1;
    const int D = model_config_head_dim(cfg);
    gguf_w_str(w, "general.architecture", "llama");
    gguf_w_str(w, "general.name", name);
    gguf_w_u32(w, "general.file_type", file_type(type));
    if (type == GGML_TYPE_Q8_0) gguf_w_u32(w, "general.quantization_version", 2);
    gguf_w_u32(w, "llama.vocab_size", (uint32_t)cfg->vocab_size);
    gguf_w_u32(w, "llama.context_length", (uint32_t)cfg->rope.max_position_embeddings);
    gguf_w_u32(w, "llama.embedding_length", (uint32_t)cfg->dim);
    gguf_w_u32(w, "llama.block_count", (uint32_t)cfg->n_layers);
    gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)cfg->ffn_dim);
    gguf_w_u32(w, "llama.attention.head_count", (uint32_t)cfg->n_heads);
    gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)cfg->n_kv_heads);
    if (D != cfg->dim / cfg->n_heads) {
        gguf_w_u32(w, "llama.attention.key_length", (uint32_t)D);
        gguf_w_u32(w, "llama.attention.value_length", (uint32_t)D);
    }
    gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", cfg->norm_eps);
    gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)D);
    rope_keys(w, cfg, warn);

    int n;
    int64_t total;
    model_tensor *t = model_param_layout(cfg, &n, &total);
    bool warned = false;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char gname[128];
        if (!gguf_tensor_name(gname, sizeof gname, t[i].name)) {
            rc = errmsg(err, errlen, "parameter %s has no GGUF name", t[i].name);
            break;
        }
        int64_t rows = t[i].shape[0], cols = t[i].shape[1];
        int64_t nel = rows * cols;
        const float *src = params + t[i].offset;
        float *tmp = NULL;
        size_t len = strlen(t[i].name);
        bool q = len > 23 && !strcmp(t[i].name + len - 23, "self_attn.q_proj.weight");
        bool k = len > 23 && !strcmp(t[i].name + len - 23, "self_attn.k_proj.weight");
        if ((q || k) && cfg->rope_layout == ROPE_LAYOUT_HALF) {
            tmp = xmalloc(sizeof(float) * (size_t)nel);
            memcpy(tmp, src, sizeof(float) * (size_t)nel);
            gguf_qk_permute(tmp, q ? cfg->n_heads : cfg->n_kv_heads, D, cols);
            src = tmp;
        }
        uint32_t tt = cols == 1 ? GGML_TYPE_F32 : type;
        if (tt == GGML_TYPE_Q8_0 && cols % 32) {
            if (warn && !warned)
                fprintf(warn, "stretch: warning: export: %s has rows of %lld elements (not a multiple of 32): "
                        "written as F16, like every such matrix\n", t[i].name, (long long)cols);
            warned = true;
            tt = GGML_TYPE_F16;
        }
        uint64_t nbytes = gguf_quant_nbytes(tt, nel);
        void *buf = xmalloc(nbytes);
        gguf_quant(buf, src, nel, tt);
        int64_t ne[2] = {cols, rows};
        if (cols == 1) ne[0] = rows;
        gguf_w_tensor(w, gname, cols == 1 ? 1 : 2, ne, tt, buf, nbytes);
        free(buf);
        free(tmp);
    }
    free(t);
    return rc;
}
