// train_warn: things in a valid run file that are probably not meant, said
// before the run (and by --dry-run) as "warning:" lines on stderr; the run
// goes on. Now: a stage whose warmup is longer than the stage itself (its LR
// never reaches the peak the run file names).
#pragma once

#include <stdio.h>

#include "curriculum.h"

// Prints the warnings on out; returns how many.
int train_warn_config(const curriculum *c, FILE *out);
