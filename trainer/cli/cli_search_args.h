// cli_search_args: the options of `stretch search` (cli_search.c): usage,
// parsing and the checks that need nothing but the command line. Every
// error is one line naming the option and value (exit 2 before any work).
//
// Tested by tests/cli/test_search.sh and tests/cli/test_search_needle.sh.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eval_needle.h"
#include "search.h"

#define SEARCH_MAX_DATA 64

typedef enum { SEARCH_OBJ_PPL, SEARCH_OBJ_NEEDLE } search_objective;
typedef enum { SEARCH_PART_LONG, SEARCH_PART_SHORT, SEARCH_PART_BOTH } search_part;

typedef struct {
    const char *ckpt, *out, *state, *tokenizer;
    char ckpt_file[4096];          // --ckpt resolved (a run directory or its latest: the checkpoint)
    char *data[SEARCH_MAX_DATA];   // --data shard paths (owned)
    int n_data;
    char *check[SEARCH_MAX_DATA];  // --check-data shard paths (owned)
    int n_check;
    int64_t target, population, generations, topk, windows, stop_after, sp;
    uint64_t seed;
    int64_t nhat[SEARCH_MAX_NHAT];
    int n_nhat;
    search_objective objective;
    int needle_tasks[EVAL_NEEDLE_MAX_TASKS];  // --needle-tasks (EVAL_NEEDLE_PASSKEY, TASK_*)
    int n_needle_tasks;
    int64_t needles;               // samples per needle task
    bool critical;                 // --critical on
    double max_factor;             // --max-factor; 0: the extension ratio
    search_part part;
    const char *from;              // --from: the long factors of --part short
} search_args;

void search_usage(FILE *out);

// 0 run, 1 --help, -1 error (one line in err). a is filled either way;
// search_args_free releases it.
int search_parse_args(search_args *a, int argc, char **argv, char *err, size_t errlen);
void search_args_free(search_args *a);

// "passkey x8" / "passkey,niah_single x4": the needle set, for messages.
void search_needle_desc(char *buf, size_t len, const search_args *a);
