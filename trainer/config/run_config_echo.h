// run_config_echo: a run config as text, from the key table: the echo of
// the effective config (YAML with every key; what checkpoints store, and
// parsing it gives back an identical config), the `stretch train --help` key
// reference, and the keys that differ between two configs (to refuse a
// resume with an incompatible config).
//
// Tested by tests/unit/test_config.c: echo -> parse round trips of the
// example and of random values for every key, --help lists every key, diff.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "run_config.h"

// The effective config as YAML, every key (what checkpoints store; parsing it
// gives back an identical config). Caller frees.
char *cfg_echo(const cfg_run *cfg);

// The `stretch train --help` key reference: every key with its type,
// default (choices for enums) and help line, by section.
void cfg_print_help(FILE *out);

// Keys whose values differ between a and b, as one line
// "optimizer.lr: 0.0003 -> 0.001, stages.1.seq_len: 1024 -> 2048" (cut with
// "..." when buf is short). incompatible_only: skip keys flagged
// CFG_F_RESUME (e.g. train.max_steps, train.log_every, parallel.dp).
// Returns the number of differing keys (a stage count difference counts as
// one key, "stages").
int cfg_diff(char *buf, size_t buflen, const cfg_run *a, const cfg_run *b, bool incompatible_only);

// One key's value in a (a cfg_run, or a cfg_stage for stage keys) and b:
// equal? (NaN equals NaN); and as YAML text (malloc'd, the caller frees).
// For rules about single keys, e.g. which may change on resume (train_resume.h).
bool cfg_key_equal(const cfg_key *k, const void *a, const void *b);
char *cfg_key_format(const cfg_key *k, const void *base);
