// ckpt_model: the model stored in a stretch checkpoint (architecture, RoPE
// and parameters) without the training state: what `stretch export` writes
// out and what bench/bench_logits runs.
//
// A training checkpoint carries its run config (root attribute `config`):
// the architecture is cfg_model_config of it and the RoPE that of a stage,
// curr_stage_rope of its curriculum (schedules/curriculum.h: factors files
// are read when it is loaded). A checkpoint made by `stretch import` carries
// instead `model_config`, the architecture and RoPE as config.json text
// (hf_config.h). vocab_size 0 in a run config (= the tokenizer's) is taken
// from the stored embedding table.
//
// Tested through tests/cli/test_hf.sh (export of a trained checkpoint,
// import, export of the import) and tests/unit/test_hfio.c.
#pragma once

#include <stddef.h>

#include "ckpt.h"  // ckpt_reader
#include "model_config.h"

#define CKPT_MODEL_STAGE_AUTO (-1)

// Opens path (a checkpoint, or a run directory / its latest file:
// ckpt_dir_resolve) and fills *cfg and *params (malloc'd, model_param_layout's
// n_params floats; the caller frees). stage: the stage whose RoPE to use, or
// CKPT_MODEL_STAGE_AUTO = the checkpoint's stage, except that a checkpoint
// written at step 0 of a stage > 0 (a stage boundary) holds weights trained
// with the previous stage's RoPE, so that one is used. *stage_used gets the
// stage (0 for an imported checkpoint). 0, or -1 with a one-line message
// naming the checkpoint.
int ckpt_model_load(model_config *cfg, float **params, int *stage_used, const char *path, int stage,
                    char *err, size_t errlen);

// The model config of an imported checkpoint (its "model_config" attribute,
// an HF config.json) from an open reader. 0, or -1 with a message.
int ckpt_model_imported_config(model_config *cfg, ckpt_reader *r, char *err, size_t errlen);
