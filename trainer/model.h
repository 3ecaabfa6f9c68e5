// model: a Llama-family decoder (embeddings, n x [RMSNorm -> GQA attention
// with RoPE -> residual -> RMSNorm -> SwiGLU MLP -> residual], final RMSNorm,
// LM head), forward and backward on the CPU reference kernels.
//
// Parameters, gradients and AdamW moments are each ONE contiguous buffer with
// a table of named views whose names follow HF Llama
// ("model.layers.3.self_attn.q_proj.weight"), so import and export are
// rename-free copies. Sizes come from one function, model_param_layout().
//
// Tested by tests/unit/test_model.c: finite-difference gradient check on a
// tiny config, recomputation gives identical gradients, 200 AdamW steps on
// one batch drive the loss near zero.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_config.h"  // model_config, model_config_validate
#include "rope_scaling.h"

// One named tensor inside the flat parameter buffer.
typedef struct {
    char name[96];       // HF Llama name
    int64_t offset;      // in floats, into the flat buffer
    int64_t shape[2];    // rows, cols (cols = 1 for vectors)
    bool decay;          // AdamW weight decay applies (matrices, not norms)
} model_tensor;

// Per-layer pointers into a flat buffer (params or grads). Shapes in comments.
typedef struct {
    float *input_norm;   // (C)          model.layers.L.input_layernorm.weight
    float *wq;           // (H*D, C)     self_attn.q_proj.weight
    float *wk;           // (Hkv*D, C)   self_attn.k_proj.weight
    float *wv;           // (Hkv*D, C)   self_attn.v_proj.weight
    float *wo;           // (C, H*D)     self_attn.o_proj.weight
    float *post_norm;    // (C)          post_attention_layernorm.weight
    float *w_gate;       // (F, C)       mlp.gate_proj.weight
    float *w_up;         // (F, C)       mlp.up_proj.weight
    float *w_down;       // (C, F)       mlp.down_proj.weight
} model_layer_views;

typedef struct {
    float *embed;        // (V, C)  model.embed_tokens.weight
    model_layer_views *layers;  // (n_layers)
    float *final_norm;   // (C)     model.norm.weight
    float *lm_head;      // (V, C)  lm_head.weight (== embed when tied)
} model_views;

typedef struct model model;

// Table of named tensors and the total count of floats; *n_tensors set.
// The caller frees the returned array.
model_tensor *model_param_layout(const model_config *cfg, int *n_tensors, int64_t *n_params);

// Resolves views over any flat buffer laid out by model_param_layout.
void model_views_init(model_views *views, float *flat, const model_config *cfg);
void model_views_free(model_views *views);
