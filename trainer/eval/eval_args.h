// eval_args: the value syntax of `stretch eval` options: context-length
// lists ("256,1k,4k"), needle depths (a count or a list of fractions) and
// RoPE overrides ("yarn:32"). Each parser returns 0, or -1 with a one-line
// message (without the option name, which the caller adds).
//
// Tested by tests/unit/test_eval_args.c (accepted forms, every error class)
// and through tests/cli/test_eval.sh.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rope_scaling.h"

#define EVAL_MAX_LIST 64  // entries of a lengths or depths list

// "256,1k,4K,1M": token counts > 0, k/K = 1024, m/M = 1024^2, no
// duplicates, at most EVAL_MAX_LIST. out: (*n), sorted ascending.
int eval_parse_lengths(int64_t *out, int *n, const char *text, char *err, size_t errlen);

// A count N ("10": N depths evenly from 0 to 1, both ends included; "1":
// 0.5) or a list of fractions in [0, 1] ("0.1,0.5,1.0"; a single entry
// needs a decimal point). out: (*n).
int eval_parse_depths(double *out, int *n, const char *text, char *err, size_t errlen);

// A positive integer (trials, windows, strides, ranks).
int eval_parse_count(int64_t *out, const char *text, char *err, size_t errlen);

// Which RoPE the model is evaluated with.
typedef struct {
    int stage;         // --rope-stage K: stages.K of the checkpoint's run config; -1: not given
    bool custom;       // --rope TYPE[:FACTOR] given
    rope_type type;    // with custom
    double factor;     // with custom: the scaling factor; 0 = none given
    const char *factors_file;  // longrope: the factors file (points into the parsed text)
} eval_rope_opt;

// "default", "linear:8", "yarn:32", "dynamic:4", "llama3:8",
// "longrope:8:FILE" into opt (custom = true). Every type but default needs
// a factor >= 1; longrope also a factors file (short_factor, long_factor,
// n_hat, as `stretch search` writes and rope.factors_file reads), read when
// the checkpoint is opened (eval_ckpt_rope).
int eval_parse_rope(eval_rope_opt *opt, const char *text, char *err, size_t errlen);
