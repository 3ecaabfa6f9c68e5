// model_config: the architecture of a Llama-family decoder (sizes, norm
// epsilon, RoPE layout and base frequencies) and its validation. Kept apart
// from model.c so the run config, import and export can check a model's
// shape without pulling in the model itself.
//
// Tested by tests/unit/test_config.c (every rule, through run files).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rope_scaling.h"

typedef struct {
    int dim;           // C, hidden size
    int n_layers;
    int n_heads;       // H
    int n_kv_heads;    // Hkv, divides H
    int head_dim;      // D; 0 -> dim / n_heads
    int ffn_dim;       // F, SwiGLU hidden size
    int vocab_size;    // V
    float norm_eps;    // RMSNorm epsilon
    bool tie_embeddings;  // LM head shares model.embed_tokens.weight
    rope_layout rope_layout;
    rope_config rope;  // theta, scaling type and parameters (head_dim filled in)
} model_config;

// Returns 0, or -1 with a one-line message in err that starts with the
// run-file name of the bad key, e.g.
//   "model.n_kv_heads (3) must divide model.n_heads (8)"
// (trainer/config/run_config.c relies on that to find the key's line). The RoPE part
// is checked with rope_config_validate (rope.head_dim 0 = the model's).
int model_config_validate(const model_config *cfg, char *err, size_t errlen);

// D: head_dim, or dim / n_heads when head_dim is 0.
int model_config_head_dim(const model_config *cfg);
