// train_args: `stretch train`'s command line. See train_args.h.
#include "train_args.h"

#include <stdlib.h>
#include <string.h>

#include "cliopt.h"
#include "errmsg.h"
#include "run_config_echo.h"

void train_usage(FILE *out) {
    fprintf(out,
            "usage: stretch train RUN.yaml [--resume auto|never|PATH] [--max-steps N]\n"
            "                              [--dry-run [--estimate]]\n"
            "                              [--SECTION.KEY VALUE ...]\n"
            "\n"
            "Trains the curriculum of RUN.yaml.\n"
            "  --resume auto    continue from the newest good checkpoint in train.out_dir\n"
            "                   (the default); never: start fresh; PATH: that checkpoint\n"
            "  --max-steps N    stop after N optimizer steps in total (train.max_steps)\n"
            "  --backend B      cpu or cuda (train.backend); cuda computes in bf16 unless\n"
            "                   train.dtype is fp32\n"
            "  --dry-run        validate the run file and print the curriculum: per stage the\n"
            "                   length, steps, tokens and RoPE (factor, attention factor), and\n"
            "                   the memory estimate of a training step per rank\n"
            "  --estimate       with --dry-run: also set the run up as it would start (every\n"
            "                   rank, the backend, the preflight of every shard and out_dir)\n"
            "                   and time a few real steps of every stage, then print per\n"
            "                   stage s/step, tokens/s, steps, training and eval time, and\n"
            "                   the run's ETA (from the checkpoint --resume would take);\n"
            "                   nothing is written in train.out_dir\n"
            "Every option and key also takes --KEY=VALUE.\n"
            "\n"
            "SIGUSR1 or SIGTERM (Slurm preemption): checkpoint at the next step boundary,\n"
            "write out_dir/stop.json, exit 99 (requeue me, docs/slurm.md); the same before\n"
            "the time limit (train.time_limit_minutes, SLURM_JOB_END_TIME). SIGINT: the\n"
            "same, exit 130; a second SIGINT stops at once. 97: the watchdog\n"
            "(train.watchdog_minutes).\n"
            "\n");
    cfg_print_help(out);
}

static const char *const OPTIONS[] = {"--resume", "--max-steps", "--backend", "--dry-run", "--estimate", "--help"};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))

static int add_override(train_args *a, const char *key, const char *value, char *err, size_t errlen) {
    if (a->n_overrides == TRAIN_MAX_OVERRIDES)
        return errmsg(err, errlen, "train: more than %d overrides", TRAIN_MAX_OVERRIDES);
    a->keys[a->n_overrides] = key;
    a->values[a->n_overrides++] = value;
    return 0;
}

int train_parse_args(train_args *a, int argc, char **argv, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->resume = "auto";
    a->max_steps = -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return 1;
        if (!strcmp(arg, "--dry-run")) {
            a->dry_run = true;
            continue;
        }
        if (!strcmp(arg, "--estimate")) {
            a->estimate = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (a->run_file) return errmsg(err, errlen, "train: unexpected argument '%s' (one run file only)", arg);
            a->run_file = arg;
            continue;
        }
        // Known before asked for a value: --dryrun is a typo, not an option without its value.
        bool known = strchr(arg + 2, '.') != NULL;
        for (int k = 0; k < N_OPTIONS; k++) known |= !strcmp(arg, OPTIONS[k]);
        if (!known) {
            char hint[96];
            cliopt_hint(hint, sizeof hint, arg, OPTIONS, N_OPTIONS);
            return errmsg(err, errlen, "train: unknown option %s%s (see stretch train --help)", arg, hint);
        }
        if (i + 1 >= argc) return errmsg(err, errlen, "train: option %s needs a value", arg);
        const char *value = argv[++i];
        if (!strcmp(arg, "--resume")) {
            a->resume = value;
        } else if (!strcmp(arg, "--max-steps")) {
            char *end;
            a->max_steps = strtoll(value, &end, 10);
            if (*end || end == value || a->max_steps < 0)
                return errmsg(err, errlen, "train: --max-steps expects a count >= 0, got '%s'", value);
        } else if (!strcmp(arg, "--backend")) {
            if (add_override(a, "train.backend", value, err, errlen) != 0) return -1;
        } else if (add_override(a, arg + 2, value, err, errlen) != 0) {
            return -1;
        }
    }
    if (a->estimate && !a->dry_run)
        return errmsg(err, errlen, "train: --estimate times steps of a dry run; use it with --dry-run");
    if (!a->run_file) return errmsg(err, errlen, "train: missing the run file (usage: stretch train RUN.yaml)");
    return 0;
}
