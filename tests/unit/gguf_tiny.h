// gguf_tiny: a tiny Llama model as a GGUF file, the way llama.cpp's
// convert_hf_to_gguf.py writes one (metadata keys, tensor names, dims
// fastest first, q/k rows permuted), from HF-layout parameters; plus a
// four-token BPE tokenizer. For test_gguf.c and test_gguf_fuzz.c.
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"
#include "model.h"

// convert_hf_to_gguf.py's permute, literally: w.reshape(n_head, 2, D/2, C)
// .swapaxes(1, 2).reshape(rows, C): out[h][i][j] = w[h][j][i].
static inline void tiny_permute(float *out, const float *w, int n_head, int D, int64_t C) {
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < D / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + ((int64_t)h * D + i * 2 + j) * C, w + ((int64_t)h * D + j * (D / 2) + i) * C,
                       sizeof(float) * (size_t)C);
}

static inline const char *tiny_gguf_name(char *buf, size_t n, const char *hf) {
    static const char *const map[][2] = {
        {"input_layernorm", "attn_norm"},  {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},    {"self_attn.o_proj", "attn_output"},
        {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
    };
    if (!strcmp(hf, "model.embed_tokens.weight")) return "token_embd.weight";
    if (!strcmp(hf, "model.norm.weight")) return "output_norm.weight";
    if (!strcmp(hf, "lm_head.weight")) return "output.weight";
    int layer, used;
    sscanf(hf, "model.layers.%d.%n", &layer, &used);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strncmp(hf + used, map[i][0], strlen(map[i][0]))) {
            snprintf(buf, n, "blk.%d.%s.weight", layer, map[i][1]);
            return buf;
        }
    return NULL;
}

// A small valid config: C 8, 1 layer, 2 heads of 4, 1 kv head, F 12, V 5.
static inline model_config tiny_config(int n_layers, bool tied) {
    model_config c = {.dim = 8, .n_layers = n_layers, .n_heads = 2, .n_kv_heads = 1, .ffn_dim = 12,
                      .vocab_size = 5, .norm_eps = 1e-5f, .tie_embeddings = tied};
    c.rope = rope_config_default(4);
    c.rope.theta = 10000.0;
    c.rope.max_position_embeddings = 64;
    return c;
}

// Metadata of cfg, then every tensor of params (HF layout) as F32.
static inline void tiny_write_model(gw *g, const model_config *cfg, const float *params) {
    gw_kv_str(g, "general.architecture", "llama");
    gw_kv_u32(g, "llama.context_length", (uint32_t)cfg->rope.max_position_embeddings);
    gw_kv_u32(g, "llama.embedding_length", (uint32_t)cfg->dim);
    gw_kv_u32(g, "llama.block_count", (uint32_t)cfg->n_layers);
    gw_kv_u32(g, "llama.feed_forward_length", (uint32_t)cfg->ffn_dim);
    gw_kv_u32(g, "llama.attention.head_count", (uint32_t)cfg->n_heads);
    gw_kv_u32(g, "llama.attention.head_count_kv", (uint32_t)cfg->n_kv_heads);
    gw_kv_f32(g, "llama.rope.freq_base", (float)cfg->rope.theta);
    gw_kv_f32(g, "llama.attention.layer_norm_rms_epsilon", cfg->norm_eps);
    gw_kv_u32(g, "llama.rope.dimension_count", (uint32_t)model_config_head_dim(cfg));
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(cfg, &n, &total);
    const int D = model_config_head_dim(cfg);
    for (int i = 0; i < n; i++) {
        char buf[96];
        const char *name = tiny_gguf_name(buf, sizeof buf, t[i].name);
        int64_t rows = t[i].shape[0], cols = t[i].shape[1];
        size_t bytes = sizeof(float) * (size_t)(rows * cols);
        float *w = malloc(bytes);
        memcpy(w, params + t[i].offset, bytes);
        bool q = strstr(t[i].name, "q_proj") != NULL, k = strstr(t[i].name, "k_proj") != NULL;
        if (q || k) tiny_permute(w, params + t[i].offset, q ? cfg->n_heads : cfg->n_kv_heads, D, cols);
        int64_t ne[2] = {cols, rows};
        if (cols == 1) ne[0] = rows;
        gw_tensor(g, name, cols == 1 ? 1 : 2, ne, 0, w, bytes);
        free(w);
    }
    free(t);
}

// A byte-level BPE over "a", "b", "ab", "<s>", "Ġ" (ids 0..4).
static inline void tiny_write_tokenizer(gw *g) {
    static const char *const tokens[] = {"a", "b", "ab", "<s>", "\xc4\xa0"};
    static const char *const merges[] = {"a b"};
    static const int32_t types[] = {1, 1, 1, 3, 1};
    gw_kv_str(g, "tokenizer.ggml.model", "gpt2");
    gw_kv_str(g, "tokenizer.ggml.pre", "gpt2");
    gw_kv_strs(g, "tokenizer.ggml.tokens", tokens, 5);
    gw_kv_strs(g, "tokenizer.ggml.merges", merges, 1);
    gw_kv_array(g, "tokenizer.ggml.token_type", 5, types, 5, 4);
    gw_kv_u32(g, "tokenizer.ggml.bos_token_id", 3);
}

// Random HF-layout parameters for cfg (deterministic).
static inline float *tiny_params(const model_config *cfg, uint64_t seed) {
    int n;
    int64_t total;
    free(model_param_layout(cfg, &n, &total));
    float *p = malloc(sizeof(float) * (size_t)total);
    for (int64_t i = 0; i < total; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        p[i] = (float)((int64_t)(seed >> 40) - (1 << 23)) / (float)(1 << 23);
    }
    return p;
}
