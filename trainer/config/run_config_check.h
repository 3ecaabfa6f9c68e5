// run_config_check: the cross-key rules of a run config (cfg_validate) and
// the resolved views the trainer reads: the model architecture, each stage
// with inherited values filled in, and each stage's rope_config.
//
// Tested by tests/unit/test_config.c (an error case per rule, the stage RoPE
// rules, inheritance).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_config.h"
#include "rope_scaling.h"
#include "run_config.h"

// Every cross-key rule: value ranges of every section; stages (at least one,
// seq_len > 0 and non-decreasing, exactly one of tokens / steps,
// batch_tokens a multiple of seq_len whose sequence count is a multiple of
// parallel.dp, seq_len a multiple of 2 * sp when sp > 1, training data from
// somewhere); the model (model_config_validate); every stage's rope
// (cfg_stage_rope, which reads factors files). Returns 0, or -1 with one line
// naming the key and where it was set:
//   run.yaml:31: stages.1.batch_tokens (1000) must be a multiple of stages.1.seq_len (512)
int cfg_validate(const cfg_run *cfg, char *err, size_t errlen);

// The ring degree (parallel.ring, else parallel.sp) and the ranks sharing a
// sequence (ring * parallel.ulysses).
int cfg_parallel_ring(const cfg_run *cfg);
int cfg_parallel_sp(const cfg_run *cfg);

// The model architecture with defaults resolved: rope.head_dim filled in,
// rope.max_position_embeddings = cfg_original_context(). vocab_size 0
// (= the tokenizer's) is left for the caller to fill.
void cfg_model_config(model_config *out, const cfg_run *cfg);

// The pretrained context length, which every stage's rope scaling is
// relative to: model.max_position_embeddings, or stages.0.seq_len when 0.
int64_t cfg_original_context(const cfg_run *cfg);

// A stage with inherited values resolved.
typedef struct {
    char name[64];             // stages.N.name, or "stage<N>"
    int64_t seq_len, batch_tokens;
    int64_t steps;             // steps, or ceil(tokens / batch_tokens)
    double lr, min_lr;         // peak, and the cosine floor lr * optimizer.min_lr_ratio
    int64_t warmup_steps;
    cfg_schedule schedule;     // never CFG_SCHEDULE_INHERIT
    bool carry_moments;
    const cfg_strings *data;   // the stage's shards, else data.train (may be empty)
    double passkey_ratio;
    int64_t pose_len;          // 0 = off, else > seq_len
    int64_t passkey_pack_min;  // 0 = off, else in (0, seq_len]
    cfg_gate gate;
} cfg_stage_plan;

void cfg_stage_resolve(cfg_stage_plan *out, const cfg_run *cfg, int stage);

// The rope_config of a stage, validated with rope_config_validate. With
// L = the stage's seq_len and O = the ORIGINAL (pretrained) context:
//   theta, head_dim, partial_rotary_factor: the model's;
//   O = rope.original_max_position_embeddings, else cfg_original_context(),
//     the same for every stage (4K -> 32K -> 128K is factor 8 then 32, both
//     relative to 4K, never relative to the previous stage);
//   max_position_embeddings = rope.max_position_embeddings, else L (dynamic:
//     O, since HF's dynamic NTK grows the base beyond max_position_embeddings);
//   factor = rope.factor, else max_position_embeddings / O (dynamic: L / O);
//     unused by type default;
//   longrope lists and n_hat: inline, or read from rope.factors_file.
// Returns 0, or -1 with a message naming the stage's rope key and line.
int cfg_stage_rope(rope_config *out, const cfg_run *cfg, int stage, char *err, size_t errlen);
