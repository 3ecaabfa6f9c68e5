// gguf_export: a stretch model (model_config + parameters in
// model_param_layout order, HF names) as a llama.cpp GGUF of architecture
// "llama": what `stretch export --format gguf` writes (the tokenizer is
// added by tok_gguf_write.h). The inverse of gguf_model.h.
//
// Metadata: general.architecture/name/file_type, llama.context_length (the
// exported RoPE's max_position_embeddings), embedding_length, block_count,
// feed_forward_length, attention.head_count(_kv), attention.key_length and
// value_length (when the head dim is not dim / heads),
// attention.layer_norm_rms_epsilon, rope.dimension_count, rope.freq_base,
// vocab_size, and the RoPE scaling in llama.cpp's keys (src/llama-arch.cpp,
// read in llama-model.cpp / llama-context.cpp):
//   default   rope.scaling.type "none"
//   linear    "linear", rope.scaling.factor
//   yarn      "yarn", factor, original_context_length, yarn_beta_fast/slow
//             (written for the record: llama.cpp's llama architecture does
//             not read them and uses 32 / 1, so other betas are refused),
//             rope.scaling.attn_factor = attention factor / (0.1 ln factor
//             + 1) when it is not YaRN's default (llama.cpp multiplies its
//             own default by this key)
//   llama3    "none" + the rope_freqs tensor: per pair, default inv_freq /
//             scaled inv_freq (ggml divides the angle by it)
//   longrope  "none" + rope_freqs from the long factors,
//             rope.scaling.attn_factor = the attention factor; a short list
//             that differs is dropped with one warning line (llama.cpp's
//             llama architecture has one list for every length)
// Refused (one line, -1): dynamic NTK, LongRoPE n_hat > 0, yarn with
// truncate = false or betas other than 32 / 1, partial rotary.
//
// Tensors: the HF names mapped back (gguf_tensor_name), q_proj/k_proj rows
// permuted to llama.cpp's interleaved pairs (gguf_qk_permute) for
// half-layout models; interleaved-layout models are already in that order.
// 1-D tensors (norms) stay F32, matrices take the requested type (Q8_0 needs
// rows of a multiple of 32 elements: others fall back to F16 with one
// warning line).
//
// Tested by tests/unit/test_gguf_export.c (import(export(x)) bit-identical
// for F32, within each type's error for F16/BF16/Q8_0; every RoPE mapping)
// and tests/cli/test_gguf_export.sh; llama.cpp's logits by
// bench/gguf_llamacpp_check.py.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf_write.h"
#include "model_config.h"

// 0 if llama.cpp can run cfg's RoPE, else -1 with one line saying what it
// cannot express. Called before anything is written.
int gguf_export_check(const model_config *cfg, uint32_t type, char *err, size_t errlen);

// Adds the model's keys and tensors to w (type: GGML_TYPE_F32, F16, BF16 or
// Q8_0). Warnings (one line each) go to warn when not NULL. 0, or -1 with a
// message.
int gguf_export_model(gguf_writer *w, const model_config *cfg, const float *params, uint32_t type,
                      const char *name, FILE *warn, char *err, size_t errlen);

// The rope_freqs values (d/2 floats) for a llama3 or longrope config:
// default inv_freq / scaled inv_freq. False for the other types.
int gguf_export_rope_freqs(float *out, const rope_config *rope);
