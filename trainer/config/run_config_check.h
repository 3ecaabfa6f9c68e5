// run_config_check: the cross-key rules of a run config (cfg_validate) and
// the model architecture it describes. The curriculum (each stage with
// inherited values filled in, its rope_config, LR, gate, moment resets) is
// resolved from the validated config by schedules/curriculum.h, which also
// checks each stage's rope keys.
//
// Tested by tests/unit/test_config.c (an error case per rule, the stage RoPE
// rules through curr_load, inheritance).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_config.h"
#include "run_config.h"

// Every cross-key rule: value ranges of every section; stages (at least one,
// seq_len > 0 and non-decreasing, exactly one of tokens / steps,
// batch_tokens a multiple of seq_len whose sequence count is a multiple of
// parallel.dp, seq_len a multiple of 2 * sp when sp > 1, training data from
// somewhere); the model (model_config_validate). Not the stages' rope keys:
// curr_load checks those (and reads factors files), so callers run it right
// after cfg_validate, before any compute. Returns 0, or -1 with one line
// naming the key and where it was set:
//   run.yaml:31: stages.1.batch_tokens (1000) must be a multiple of stages.1.seq_len (512)
int cfg_validate(const cfg_run *cfg, char *err, size_t errlen);

// The model architecture with defaults resolved: rope.head_dim filled in,
// rope.max_position_embeddings = cfg_original_context(). vocab_size 0
// (= the tokenizer's) is left for the caller to fill.
void cfg_model_config(model_config *out, const cfg_run *cfg);

// The pretrained context length, which every stage's rope scaling is
// relative to: model.max_position_embeddings, or stages.0.seq_len when 0.
int64_t cfg_original_context(const cfg_run *cfg);
