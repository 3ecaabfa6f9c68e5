// curriculum: the training curriculum of a run config, resolved once, when
// the config is loaded: each stage's plan (inherited values filled in), its
// RoPE (rope_config, LongRoPE factors files read here and nowhere else), its
// learning rate at a step (lr.h), whether it resets the AdamW moments, and
// its gate. Training, training checkpoints, evaluation of a checkpoint,
// export and search all read a stage's RoPE from curr_stage_rope, so they
// cannot disagree.
//
// Loading validates every stage's RoPE (cfg_validate, in trainer/config,
// checks the keys that need no rope): callers run cfg_validate and then
// curr_load before any compute, on every rank. Errors name the key and
// where it was set, e.g.
//   run.yaml:40: stages.1.rope.factors_file: cannot read f.yaml: No such file or directory
//
// Tested by tests/unit/test_curriculum.c (every rope type against what the
// training loop, its checkpoints, eval and export use) and
// tests/unit/test_config.c (the rope error messages).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_config.h"
#include "rope_scaling.h"
#include "run_config.h"

// A stage with inherited values resolved.
typedef struct {
    char name[64];             // stages.N.name, or "stage<N>"
    int64_t seq_len, batch_tokens;
    int64_t steps;             // steps, or ceil(tokens / batch_tokens)
    double lr, min_lr;         // peak, and the cosine floor lr * optimizer.min_lr_ratio
    int64_t warmup_steps;
    cfg_schedule schedule;     // never CFG_SCHEDULE_INHERIT
    bool carry_moments;
    const cfg_strings *data;   // the stage's shards, else data.train (may be empty);
                               // points into the cfg_run given to curr_load
    double passkey_ratio;
    int64_t pose_len;          // 0 = off, else > seq_len
    int64_t passkey_pack_min;  // 0 = off, else in (0, seq_len]
    double passkey_pack_long;  // in [0, 1]; 0 when passkey_pack_min is 0
    cfg_gate gate;
} curr_plan;

typedef struct {
    int n_stages;
    int64_t original_context;  // cfg_original_context: what every factor is relative to
    curr_plan plan[CFG_MAX_STAGES];
    rope_config rope[CFG_MAX_STAGES];
    bool mixed[CFG_MAX_STAGES];  // rope.mixed (curr_stage_mixed)
} curriculum;

// Resolves every stage of cfg (already through cfg_validate): plans, RoPE
// (reads each stage's rope.factors_file once; rope_config_validate). The
// plans' data pointers borrow from cfg, which must outlive c. 0, or -1 with
// one line naming the stage's rope key and file:line.
int curr_load(curriculum *c, const cfg_run *cfg, char *err, size_t errlen);

// Stage s's plan (0 <= s < n_stages).
const curr_plan *curr_stage_plan(const curriculum *c, int s);

// Stage s's RoPE. With L = the stage's seq_len and O = the ORIGINAL
// (pretrained) context:
//   theta, head_dim, partial_rotary_factor: the model's;
//   O = rope.original_max_position_embeddings, else cfg_original_context(),
//     the same for every stage (4K -> 32K -> 128K is factor 8 then 32, both
//     relative to 4K, never relative to the previous stage);
//   max_position_embeddings = rope.max_position_embeddings, else L (dynamic:
//     O, since HF's dynamic NTK grows the base beyond max_position_embeddings);
//   factor = rope.factor, else max_position_embeddings / O (dynamic: L / O);
//     unused by type default;
//   longrope lists and n_hat: inline, or from rope.factors_file (read by curr_load);
//   rope.mixed: the stage's rope in its longrope form (rope_config_as_longrope:
//     linear, yarn, llama3 become short factors 1, long factors their own
//     rescaling, their attention factor explicit), so that evaluation (the
//     short factors up to O, the long ones beyond), export (rope_type longrope)
//     and training agree. default and dynamic are refused with mixed, as is
//     a stage whose seq_len (or pose_len) does not exceed O.
const rope_config *curr_stage_rope(const curriculum *c, int s);

// The table the kernels use for stage s at sequences of length seq_len
// (dynamic NTK and LongRoPE select on it; other types ignore it): what
// evaluation and inference at that length use.
void curr_rope_table(rope_table *t, const curriculum *c, int s, int64_t seq_len);

// LongRoPE2 mixed context window training (stages.N.rope.mixed): in the same
// step, each packed document up to O tokens (max position + 1 <= O) is
// rotated with the short table and each longer one with the long table, the
// rule transformers' longrope applies to a whole sequence at inference.
bool curr_stage_mixed(const curriculum *c, int s);

// The table training uses in stage s: for a mixed stage a mixed table
// (rope_table_init_mixed; its batches need rope_windows flags), else
// curr_rope_table at the stage's seq_len.
void curr_train_rope_table(rope_table *t, const curriculum *c, int s);

// Learning rate at 0-based step `step` of stage s (warmup, then its schedule).
double curr_lr(const curriculum *c, int s, int64_t step);

// Whether entering stage s (at its step 0) starts AdamW afresh: a stage after
// the first with carry_moments false.
bool curr_stage_resets_moments(const curriculum *c, int s);

// Whether stage s has a gate (passkey_acc or val_loss > 0); which of the two
// measurements it needs.
bool curr_gate_needed(const curriculum *c, int s);
bool curr_gate_needs_passkey(const curriculum *c, int s);
bool curr_gate_needs_val_loss(const curriculum *c, int s);

// Whether the measured values meet stage s's gate (a value the gate does not
// ask for is ignored; a stage without a gate always passes).
bool curr_gate_passed(const curriculum *c, int s, double passkey_acc, double val_loss);

// Steps to add to stage s after its gate was not met, having added
// extra_steps so far: a quarter of gate.max_extra_tokens (in steps, rounded
// up), or 0 when that would pass the cap (the run stops).
int64_t curr_gate_extension(const curriculum *c, int s, int64_t extra_steps);
