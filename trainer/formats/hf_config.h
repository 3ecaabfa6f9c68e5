// hf_config: a Hugging Face Llama config.json <-> model_config.
//
// Reading accepts LlamaForCausalLM / model_type "llama" configs of
// transformers v4 (rope_scaling, with "rope_type" or the legacy "type") and
// v5 (rope_parameters): hidden_size, intermediate_size, num_hidden_layers,
// num_attention_heads, num_key_value_heads, head_dim, vocab_size,
// rms_norm_eps, rope_theta, max_position_embeddings, tie_word_embeddings,
// partial_rotary_factor, and rope_scaling of type default, linear, dynamic,
// yarn, longrope or llama3 with their keys. As in transformers' v5
// standardize_rope_params, a top-level original_max_position_embeddings
// (Phi-3 style) takes priority for llama3, yarn and longrope. The model's
// rope is cfg->rope (max_position_embeddings = the config's); the layout is
// always half (HF's rotate_half).
//
// Writing produces the keys transformers reads: max_position_embeddings =
// cfg->rope's (the stage's context), the rope scaling in rope_scaling with
// "rope_type" and, per type, the keys of that type's validator; optional
// keys (attention_factor, mscale, truncate) only when set. A longrope config
// also gets the top-level original_max_position_embeddings, which v4.x
// reads instead of the one in rope_scaling. n_hat has no HF key: it is
// dropped with a warning.
//
// yarn and transformers versions: v4.5x and v5 read original_max_position_
// embeddings from rope_scaling and use it for the ramp; v4.4x (e.g. 4.46)
// ignores that key and uses max_position_embeddings instead, so the default
// form gives different frequencies there. HF_CONFIG_YARN_V4 writes
// max_position_embeddings = the original context and no
// original_max_position_embeddings key (the Qwen-style form), which every
// version from 4.4x to 5 reads the same way; the extended context is then
// only implied by factor.
//
// Tested by tests/unit/test_hfio.c: llama3 (Llama-3.1), yarn and longrope
// (Phi-3 style) examples read into the expected rope_config and written
// back to the same keys and values, and bad configs rejected naming the key.
#pragma once

#include <stddef.h>
#include <stdio.h>

#include "model_config.h"

// Parses config.json text (name is used in messages). 0, or -1 with one
// line "NAME: key 'KEY': ..." in err.
int hf_config_parse(model_config *out, const char *json, const char *name, char *err,
                    size_t errlen);
// The same for a file.
int hf_config_read(model_config *out, const char *path, char *err, size_t errlen);

enum {
    HF_CONFIG_YARN_V4 = 1,  // yarn in the form transformers 4.4x reads too (see above)
};

// config.json text for cfg (cfg->rope: the rope to export, head_dim and
// max_position_embeddings set; cfg must be valid). torch_dtype: "float32" or
// "bfloat16"; flags: HF_CONFIG_* or 0. warn (may be NULL) gets one
// "stretch: warning: ..." line per setting transformers cannot express. The
// caller frees the text.
char *hf_config_to_json(const model_config *cfg, const char *torch_dtype, int flags, FILE *warn);

// Shortest text that reads back as x (as float when as_float), formatted as
// Python's repr(float) does ("1e-05", "10000.0", "0.1").
void hf_format_float(char *buf, size_t len, double x, int as_float);
