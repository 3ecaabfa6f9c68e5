// rope_scaling: inverse frequencies and attention factor for every RoPE
// scaling variant (default, linear/PI, dynamic NTK, YaRN, LongRoPE with the
// paper's n_hat, Llama 3), exactly as transformers' modeling_rope_utils
// computes them (see docs/rope.md). A stage switch in a curriculum is a new
// rope_table, never new code.
//
// Tested by tests/unit/test_rope.c against every case of
// tests/data/rope_vectors.json (a numpy float64 re-implementation of
// transformers) to 1e-6 relative.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROPE_MAX_PAIRS 256  // rotary dim up to 512

typedef enum {
    ROPE_TYPE_DEFAULT,
    ROPE_TYPE_LINEAR,    // position interpolation: inv_freq / factor
    ROPE_TYPE_DYNAMIC,   // dynamic NTK: base grows with the sequence length
    ROPE_TYPE_YARN,      // NTK-by-parts ramp + attention factor
    ROPE_TYPE_LONGROPE,  // per-pair factors (short/long) + optional n_hat
    ROPE_TYPE_LLAMA3,    // wavelength bands: keep / smooth / divide
} rope_type;

typedef enum {
    ROPE_LAYOUT_HALF,         // pairs (x[i], x[i + d/2]): HF Llama, NeoX
    ROPE_LAYOUT_INTERLEAVED,  // pairs (x[2i], x[2i+1]): GPT-J, Meta reference
} rope_layout;

// Everything that determines the frequencies; mirrors an HF config's
// rope_theta, head_dim, partial_rotary_factor, max_position_embeddings and
// its rope_scaling dict. Zero means "not given" where a key is optional.
typedef struct {
    rope_type type;
    double theta;                 // rope_theta (base), e.g. 10000
    int head_dim;
    double partial_rotary_factor; // rotary dim d = (int)(head_dim * this); 1.0 (or 0) = all
    int64_t max_position_embeddings;
    int64_t original_max_position_embeddings;  // 0: = max_position_embeddings
    double factor;            // linear, dynamic, llama3; yarn, longrope: 0 -> max/original
    double attention_factor;  // yarn, longrope: 0 -> derived
    double beta_fast;         // yarn: 0 -> 32
    double beta_slow;         // yarn: 0 -> 1
    double mscale;            // yarn: 0 = unset
    double mscale_all_dim;    // yarn: 0 = unset
    bool no_truncate;         // yarn: true = HF truncate=False (ramp on raw bounds)
    double low_freq_factor;   // llama3
    double high_freq_factor;  // llama3
    int n_factors;                        // longrope: must equal d/2
    double short_factor[ROPE_MAX_PAIRS];  // longrope, used when seq_len <= original
    double long_factor[ROPE_MAX_PAIRS];   // longrope, used when seq_len > original
    int64_t n_hat;  // longrope paper only: positions < n_hat keep default frequencies
} rope_config;

// What the kernels consume: one inv_freq table (plus the unscaled one for
// positions below n_hat) and the factor multiplying cos and sin. A mixed
// table (LongRoPE2 mixed context windows, rope_table_init_mixed) also holds
// the short table: the kernels then take a window flag per token
// (rope_windows) and rotate the tokens of short documents with
// inv_freq_short, the others as above.
typedef struct {
    int rotary_dim;                     // d (even, <= head_dim)
    int n_pairs;                        // d / 2
    float inv_freq[ROPE_MAX_PAIRS];     // (n_pairs) for positions >= n_hat
    float inv_freq_orig[ROPE_MAX_PAIRS];// (n_pairs) default frequencies, for positions < n_hat
    int64_t n_hat;                      // 0: every position uses inv_freq
    float attention_factor;             // multiplies cos and sin (logits by its square)
    int64_t short_len;                  // mixed: documents up to this length are short; 0 = not mixed
    float inv_freq_short[ROPE_MAX_PAIRS];// (n_pairs) mixed: every position of a short document
} rope_table;

// Window flags of a mixed table, one per token (rope_windows).
enum { ROPE_WIN_SHORT = 0, ROPE_WIN_LONG = 1 };

// Returns 0, or -1 with a one-line message in err naming the bad key/value.
int rope_config_validate(const rope_config *cfg, char *err, size_t errlen);

// Fills t for cfg. seq_len is the runtime length max(position_ids)+1 that
// dynamic NTK and LongRoPE select on; 0 means "at init" (HF's seq_len=None).
// cfg must be valid.
void rope_table_init(rope_table *t, const rope_config *cfg, int64_t seq_len);

// A default config (theta 10000, no scaling) for head_dim.
rope_config rope_config_default(int head_dim);

// LongRoPE2 mixed context windows: a table for a valid longrope cfg whose
// inv_freq (and n_hat) are the long factors' (seq_len > original), whose
// inv_freq_short are the short factors', with short_len = the original
// context and one attention factor for both, as transformers' longrope
// derives it once per model and applies it at every length.
void rope_table_init_mixed(rope_table *t, const rope_config *cfg);

// The longrope form of a valid rescaled cfg (linear, yarn, llama3; a
// longrope cfg is copied): short factors 1 (the original frequencies), long
// factors f_i / inv_freq_i of cfg's table (f_i the default frequencies), the
// attention factor of cfg's table given explicitly, the same theta, dims,
// max_position_embeddings, original context and factor. What transformers
// can load to apply the original RoPE up to the original context and cfg's
// beyond it. 0, or -1 with a message for default and dynamic (no fixed long
// table).
int rope_config_as_longrope(rope_config *out, const rope_config *cfg, char *err, size_t errlen);

// The original context of cfg: original_max_position_embeddings, else
// max_position_embeddings (transformers' standardize_rope_params).
int64_t rope_config_original(const rope_config *cfg);

const char *rope_type_name(rope_type type);           // "default", "yarn", ...
int rope_type_parse(const char *name, rope_type *out);  // 0 ok, -1 unknown
const char *rope_layout_name(rope_layout layout);     // "half", "interleaved"
int rope_layout_parse(const char *name, rope_layout *out);
