// hf_io: a Llama model as a Hugging Face model directory (config.json +
// model.safetensors, or sharded with model.safetensors.index.json) <->
// model_config + a flat parameter buffer laid out by model_param_layout().
// What `stretch import --hf` and `stretch export --format hf` are made of.
//
// RoPE layout: HF Llama rotates pairs (x[i], x[i + d/2]) (the half layout).
// A model trained with the interleaved layout (pairs (x[2i], x[2i+1])) is
// exported with the rows of every q_proj and k_proj permuted within each
// head (row 2i -> i, 2i+1 -> i + d/2, rows d..D-1 unchanged; d = rotary
// dim): q.k is unchanged, so the exported model computes the same logits
// with HF's rotation. Imported models are always half layout.
//
// Tested by tests/unit/test_hfio.c: save -> load gives back the same
// config and bit-identical parameters (fp32), bf16 export rounds each
// parameter as st_f32_to_bf16, missing/extra/misshapen tensors are errors
// naming the tensor, and an interleaved model and its half-layout export
// give the same logits through model_forward; tests/cli/test_hf.sh runs the
// commands end to end.
#pragma once

#include <stddef.h>
#include <stdio.h>

#include "model_config.h"
#include "safetensors.h"

// Reads dir/config.json and the safetensors of dir into *cfg and *params
// (malloc'd, model_param_layout's n_params floats; the caller frees). Every
// tensor of the layout must be present with its shape (F32, F16 or BF16);
// a tensor the layout lacks is an error (except rotary_emb.inv_freq
// buffers, and an lm_head.weight equal to the tied embeddings).
// 0, or -1 with a one-line message naming the file and tensor.
int hf_load(model_config *cfg, float **params, const char *dir, char *err, size_t errlen);

// Writes dir/model.safetensors (dtype ST_F32 or ST_BF16), dir/config.json
// (hf_config_to_json with flags; warnings to warn, may be NULL) and
// dir/generation_config.json, creating dir if needed. cfg->rope is the rope
// to export (head_dim and max_position_embeddings set). params: (n_params)
// as model_param_layout(cfg); q/k rows are permuted on a copy when
// cfg->rope_layout is interleaved. 0, or -1 with a message.
int hf_save(const char *dir, const model_config *cfg, const float *params, st_dtype dtype,
            int flags, FILE *warn, char *err, size_t errlen);

// In place on a flat buffer of cfg's layout: every layer's q_proj (H*D, C)
// and k_proj (Hkv*D, C) rows from the interleaved layout to the half one,
// and back.
void hf_qk_to_half(float *params, const model_config *cfg);
void hf_qk_to_interleaved(float *params, const model_config *cfg);
