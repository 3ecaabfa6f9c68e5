// curriculum_rope: the one derivation of a stage's rope_config from a
// validated run config (rules: curr_stage_rope in curriculum.h). Called once
// per stage by curr_load, which is the only caller; everything else reads
// the result through curr_stage_rope.
#pragma once

#include <stddef.h>

#include "rope_scaling.h"
#include "run_config.h"

// Stage `stage`'s rope_config, longrope factors read from rope.factors_file
// when given, checked with rope_config_validate; with rope.mixed, in its
// longrope form (rope_config_as_longrope). 0, or -1 with one line naming the
// stage's rope key and file:line.
int curr_resolve_rope(rope_config *out, const cfg_run *cfg, int stage, char *err, size_t errlen);
