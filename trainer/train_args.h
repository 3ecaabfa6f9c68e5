// train_args: the command line of `stretch train` (options, overrides,
// --help). Split from train.c so the training loop's file is the loop.
// `--key=value` arrives split by the CLI's main (cliopt.h); an unknown
// option is refused with the nearest known one before any value check.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TRAIN_MAX_OVERRIDES 64

typedef struct {
    const char *run_file;
    const char *resume;  // "auto", "never" or a checkpoint path
    int64_t max_steps;   // -1: train.max_steps of the run file
    bool dry_run;        // validate and print the curriculum, train nothing
    bool estimate;       // with dry_run: set up, preflight, time steps (train_estimate.h)
    int n_overrides;
    const char *keys[TRAIN_MAX_OVERRIDES], *values[TRAIN_MAX_OVERRIDES];
} train_args;

// `stretch train --help`: options, then the run-file keys.
void train_usage(FILE *out);

// Returns 0, 1 for --help, or -1 with a one-line message in err.
int train_parse_args(train_args *a, int argc, char **argv, char *err, size_t errlen);
