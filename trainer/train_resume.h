// train_resume: what may change in the run file between a checkpoint and its
// resume. A resumed run must go on as the run that wrote the checkpoint
// would have, on everything already done; what is still to come is the
// user's to change:
//
//   may change   stages not yet started (every key, and stages added or
//                removed after the current one); the learning rate and its
//                schedule from now on (optimizer.*, and the current stage's
//                lr, warmup_steps, schedule, and its budget while it stays
//                beyond the step reached); eval.*, logging, checkpoint
//                cadence, gates, names, parallel layout, backend (the
//                CFG_F_RESUME keys); data.* when the current stage has not
//                started yet (a checkpoint at a stage boundary)
//   may not      the model's shape and RoPE base (model.*), the tokenizer,
//                train.seed (data order, evaluation samples), stages already
//                finished, the current stage's data, length, batch and RoPE
//                once it has begun (its data order is half consumed)
//
// Tested by tests/cli/test_ux_resume.sh.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "run_config.h"

// saved: the checkpoint's config; now: the run file's. The checkpoint is at
// stage `stage`, step `stage_step` of it. Prints the allowed changes as one
// line on note (NULL: quiet). 0 when every change is allowed, else -1 with
// one line in err naming the first key that may not change and why.
int train_resume_check(const cfg_run *saved, const cfg_run *now, int stage, int64_t stage_step,
                       const char *ckpt, FILE *note, char *err, size_t errlen);
