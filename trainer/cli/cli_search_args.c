// cli_search_args: the options of `stretch search`. See cli_search_args.h.
#include "cli_search_args.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_dir.h"
#include "cliopt.h"
#include "die.h"
#include "errmsg.h"
#include "eval_args.h"

void search_usage(FILE *out) {
    fprintf(out,
            "usage: stretch search --ckpt C.h5 --target-len L --data SHARDS --out factors.yaml [OPTIONS]\n"
            "\n"
            "LongRoPE search (Ding et al. 2024): an evolutionary search of per-pair RoPE rescale\n"
            "factors lambda_i and of n_hat (positions below keep the original frequencies) that\n"
            "minimise the perplexity of the checkpoint's model at L tokens, before fine-tuning, or\n"
            "(LongRoPE2, --objective needle) the loss of the answer tokens of needle tasks at L.\n"
            "Constraints: 1 <= lambda_0 <= lambda_1 <= ... <= s = L / original context. The first\n"
            "generation holds the PI, NTK-aware and YaRN factor vectors and mutations of them; each\n"
            "generation keeps the top k and breeds the rest by mutation and crossover.\n"
            "Writes factors.yaml (short_factor, long_factor, n_hat: a stage's rope.factors_file with\n"
            "rope.type longrope), factors.csv and factors.svg (best fitness per generation; the short\n"
            "search: factors-short.csv and .svg), and\n"
            "prints the fitness at L of PI, NTK, YaRN and the searched factors. Prints the\n"
            "critical dimension: the rotary pairs whose period exceeds the original context.\n"
            "\n"
            "options:\n"
            "  --ckpt PATH         the checkpoint (its model at its original context)\n"
            "  --target-len L      the context to extend to, e.g. 512 or 32k (> the original)\n"
            "  --data SHARDS       held-out token shards, comma-separated or repeated; the fitness\n"
            "                      sample is --windows windows of L tokens, evenly spaced over them\n"
            "                      (needed by --objective ppl and the niah_single_text needle task)\n"
            "  --out PATH          the factors file (.yaml); PATH's stem + .csv and .svg beside it\n"
            "  --objective OBJ     ppl (default): mean NLL of the --data windows; needle: mean NLL\n"
            "                      of the answer tokens of needle samples (LongRoPE2), the same\n"
            "                      samples for every candidate\n"
            "  --needle-tasks LIST with --objective needle: passkey (default) and/or RULER-style\n"
            "                      tasks of stretch eval tasks (niah_single, vt, ...;\n"
            "                      niah_single_text hides the needle in the --data documents)\n"
            "  --needles N         with --objective needle: samples per task (default 8), at depths\n"
            "                      (k + 1/2) / N\n"
            "  --critical on|off   LongRoPE2's critical dimension rule (default off): the pairs whose\n"
            "                      period 2 pi theta^(2i/d) exceeds the original context get factors\n"
            "                      >= s (in [s, --max-factor])\n"
            "  --max-factor X      with --critical on: the largest factor of those pairs (default s)\n"
            "  --part P            long (default): the long factors at L; short: LongRoPE's short-\n"
            "                      context recovery, the short factors at the original length with\n"
            "                      the long factors and n_hat of --from kept; both: long, then short\n"
            "  --from FILE         with --part short: the factors file whose long_factor and n_hat\n"
            "                      are kept (e.g. the --out of a long search; --out may be the same)\n"
            "  --population N      candidates per generation (default 16, >= 3)\n"
            "  --generations N     generations in all, the first included (default 8)\n"
            "  --topk K            survivors per generation, the parents of the next (default 4)\n"
            "  --windows N         windows in the fitness sample (default 4)\n"
            "  --seed S            seed of the search and of the needle samples (default 1): same\n"
            "                      seed, same result\n"
            "  --nhat LIST         n_hat candidates, each below L; must hold 0 (default 0,4,16,64,\n"
            "                      those below L)\n"
            "  --state DIR         keep DIR/search.state (DIR/search-short.state) after every\n"
            "                      generation and resume from it (the same settings are required;\n"
            "                      --generations may grow)\n"
            "  --stop-after N      stop once the search under way has N generations (needs --state);\n"
            "                      for jobs cut into pieces\n"
            "  --check-data SHARDS also report the four perplexities on windows of these shards,\n"
            "                      which the search never saw\n"
            "  --sp N              ranks sharing each window by ring attention (default 1); the\n"
            "                      N-rank groups (mpirun ranks / N) score different candidates\n"
            "  --tokenizer SPEC    replaces the checkpoint's data.tokenizer\n");
}

void search_args_free(search_args *a) {
    for (int i = 0; i < a->n_data; i++) free(a->data[i]);
    for (int i = 0; i < a->n_check; i++) free(a->check[i]);
    a->n_data = a->n_check = 0;
}

static int add_paths(char **paths, int *n, const char *opt, const char *value, char *err, size_t errlen) {
    for (const char *p = value;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || *n == SEARCH_MAX_DATA)
            return errmsg(err, errlen, "search: %s '%s': %s", opt, value,
                          len == 0 ? "empty entry" : "too many shards");
        paths[*n] = xmalloc(len + 1);
        memcpy(paths[*n], p, len);
        paths[(*n)++][len] = '\0';
        p += len;
        if (*p++ == '\0') return 0;
    }
}

static const char *const OPTIONS[] = {
    "--ckpt", "--target-len", "--data", "--out", "--population", "--generations", "--topk", "--windows",
    "--seed", "--nhat", "--state", "--stop-after", "--check-data", "--sp", "--tokenizer", "--objective",
    "--needle-tasks", "--needles", "--critical", "--max-factor", "--part", "--from",
};

// An integer >= 0 (each option checks its own range in check_args).
static int parse_int(int64_t *out, const char *v, char *msg, size_t n) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno || x < 0) return errmsg(msg, n, "expected an integer >= 0, got '%s'", v);
    *out = x;
    return 0;
}

static int parse_nhat(search_args *a, const char *v, char *msg, size_t n) {
    a->n_nhat = 0;
    for (const char *p = v;;) {
        size_t len = strcspn(p, ",");
        char item[32];
        if (len == 0 || len >= sizeof item)
            return errmsg(msg, n, "'%s': expected integers >= 0 separated by commas", v);
        if (a->n_nhat == SEARCH_MAX_NHAT) return errmsg(msg, n, "at most %d values", SEARCH_MAX_NHAT);
        memcpy(item, p, len);
        item[len] = '\0';
        if (parse_int(&a->nhat[a->n_nhat++], item, msg, n)) return -1;
        p += len;
        if (*p++ == '\0') return 0;
    }
}

static int parse_tasks(search_args *a, const char *v, char *msg, size_t n) {
    a->n_needle_tasks = 0;
    for (const char *p = v;;) {
        size_t len = strcspn(p, ",");
        char item[64];
        if (len == 0 || len >= sizeof item) return errmsg(msg, n, "'%s': expected task names separated by commas", v);
        memcpy(item, p, len);
        item[len] = '\0';
        int task;
        if (eval_needle_task_parse(item, &task) != 0)
            return errmsg(msg, n, "unknown task '%s' (passkey, %s)", item, task_names());
        for (int i = 0; i < a->n_needle_tasks; i++)
            if (a->needle_tasks[i] == task) return errmsg(msg, n, "'%s' is listed twice", item);
        if (a->n_needle_tasks == EVAL_NEEDLE_MAX_TASKS) return errmsg(msg, n, "at most %d tasks", EVAL_NEEDLE_MAX_TASKS);
        a->needle_tasks[a->n_needle_tasks++] = task;
        p += len;
        if (*p++ == '\0') return 0;
    }
}

// One of names (n) into *out, else -1 with "expected A, B or C, got 'v'".
static int parse_choice(int *out, const char *v, const char *const *names, int n, char *msg, size_t len) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    char list[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                 names[i]);
    return errmsg(msg, len, "expected %s, got '%s'", list, v);
}

// Which options were given (for the rules that tie options together).
typedef struct {
    bool needle_tasks, needles, max_factor, check;
} given;

// One option's value into a. 0, or -1 with a message.
static int set_option(search_args *a, given *g, const char *opt, const char *v, char *err, size_t errlen) {
    struct {
        const char *name;
        int64_t *field;
    } ints[] = {{"--population", &a->population}, {"--generations", &a->generations}, {"--topk", &a->topk},
                {"--windows", &a->windows},       {"--stop-after", &a->stop_after},   {"--sp", &a->sp},
                {"--needles", &a->needles}};
    char msg[512];
    int rc = 0;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(opt, ints[i].name)) {
            if (parse_int(ints[i].field, v, msg, sizeof msg)) return errmsg(err, errlen, "search: %s: %s", opt, msg);
            g->needles |= ints[i].field == &a->needles;
            return 0;
        }
    static const char *const objectives[] = {"ppl", "needle"}, *const onoff[] = {"off", "on"},
                             *const parts[] = {"long", "short", "both"};
    int choice = 0;
    if (!strcmp(opt, "--ckpt")) {
        if (ckpt_dir_resolve(v, a->ckpt_file, sizeof a->ckpt_file, msg, sizeof msg))
            return errmsg(err, errlen, "search: --ckpt %s", msg);
        a->ckpt = a->ckpt_file;
    } else if (!strcmp(opt, "--out")) a->out = v;
    else if (!strcmp(opt, "--state")) a->state = v;
    else if (!strcmp(opt, "--tokenizer")) a->tokenizer = v;
    else if (!strcmp(opt, "--from")) a->from = v;
    else if (!strcmp(opt, "--data")) return add_paths(a->data, &a->n_data, opt, v, err, errlen);
    else if (!strcmp(opt, "--check-data")) {
        g->check = true;
        return add_paths(a->check, &a->n_check, opt, v, err, errlen);
    } else if (!strcmp(opt, "--nhat")) rc = parse_nhat(a, v, msg, sizeof msg);
    else if (!strcmp(opt, "--needle-tasks")) {
        g->needle_tasks = true;
        rc = parse_tasks(a, v, msg, sizeof msg);
    } else if (!strcmp(opt, "--objective")) {
        rc = parse_choice(&choice, v, objectives, 2, msg, sizeof msg);
        a->objective = (search_objective)choice;
    } else if (!strcmp(opt, "--critical")) {
        rc = parse_choice(&choice, v, onoff, 2, msg, sizeof msg);
        a->critical = choice == 1;
    } else if (!strcmp(opt, "--part")) {
        rc = parse_choice(&choice, v, parts, 3, msg, sizeof msg);
        a->part = (search_part)choice;
    } else if (!strcmp(opt, "--max-factor")) {
        char *end;
        g->max_factor = true;
        a->max_factor = strtod(v, &end);
        if (end == v || *end || !(a->max_factor >= 1) || !isfinite(a->max_factor))
            rc = errmsg(msg, sizeof msg, "expected a number >= 1, got '%s'", v);
    } else if (!strcmp(opt, "--target-len")) {
        int n;
        rc = eval_parse_lengths(&a->target, &n, v, msg, sizeof msg);
        if (rc == 0 && n != 1) rc = errmsg(msg, sizeof msg, "one length, got '%s'", v);
    } else if (!strcmp(opt, "--seed")) {
        char *end;
        errno = 0;
        a->seed = strtoull(v, &end, 10);
        if (end == v || *end || errno || v[0] == '-')
            rc = errmsg(msg, sizeof msg, "expected an integer >= 0, got '%s'", v);
    }
    if (rc != 0) errmsg(err, errlen, "search: %s: %s", opt, msg);
    return rc;
}

static bool needs_text(const search_args *a) {
    for (int i = 0; i < a->n_needle_tasks; i++)
        if (a->needle_tasks[i] >= 0 && TASK_DEFS[a->needle_tasks[i]].needs_text) return true;
    return false;
}

// The rules once every option is in.
static int check_args(const search_args *a, const given *g, char *err, size_t errlen) {
    const bool need_data = a->objective == SEARCH_OBJ_PPL || needs_text(a);
    const char *missing = !a->ckpt ? "--ckpt" : !a->target ? "--target-len" : need_data && !a->n_data ? "--data"
                        : !a->out ? "--out" : NULL;
    if (missing)
        return errmsg(err, errlen, "search: %s is required%s (see stretch search --help)", missing,
                      !strcmp(missing, "--data") && a->objective == SEARCH_OBJ_NEEDLE
                          ? " by the needle task niah_single_text" : "");
    if (a->population < SEARCH_N_BASELINES || a->population > SEARCH_MAX_POPULATION)
        return errmsg(err, errlen, "search: --population %" PRId64 " must be in %d..%d (a generation holds "
                      "at least the PI, NTK and YaRN vectors)", a->population, SEARCH_N_BASELINES,
                      SEARCH_MAX_POPULATION);
    if (a->topk < 1 || a->topk > a->population)
        return errmsg(err, errlen, "search: --topk %" PRId64 " must be in 1..%" PRId64 " (the population)",
                      a->topk, a->population);
    if (a->generations < 1 || a->generations > 100000)
        return errmsg(err, errlen, "search: --generations %" PRId64 " must be in 1..100000", a->generations);
    if (a->windows < 1 || a->windows > 1000000)
        return errmsg(err, errlen, "search: --windows %" PRId64 " must be in 1..1000000", a->windows);
    if (a->sp < 1) return errmsg(err, errlen, "search: --sp %" PRId64 " must be >= 1", a->sp);
    if (a->stop_after == 0 || (a->stop_after > 0 && !a->state))
        return errmsg(err, errlen, "search: --stop-after needs a value >= 1 and --state DIR to resume from");
    if (a->objective != SEARCH_OBJ_NEEDLE && (g->needle_tasks || g->needles))
        return errmsg(err, errlen, "search: %s applies to --objective needle only",
                      g->needle_tasks ? "--needle-tasks" : "--needles");
    if (a->needles < 1 || a->needles > 4096)
        return errmsg(err, errlen, "search: --needles %" PRId64 " must be in 1..4096", a->needles);
    if (g->max_factor && !a->critical)
        return errmsg(err, errlen, "search: --max-factor applies to --critical on only (the critical pairs' "
                      "largest factor)");
    if (a->part == SEARCH_PART_SHORT && !a->from)
        return errmsg(err, errlen, "search: --part short needs --from FILE, the factors file whose long_factor "
                      "and n_hat it keeps");
    if (a->part != SEARCH_PART_SHORT && a->from)
        return errmsg(err, errlen, "search: --from applies to --part short only");
    if (a->part == SEARCH_PART_SHORT && (a->critical || g->check))
        return errmsg(err, errlen, "search: %s applies to the long factors (--part long or both)",
                      a->critical ? "--critical" : "--check-data");
    return 0;
}

int search_parse_args(search_args *a, int argc, char **argv, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->population = 16;
    a->generations = 8;
    a->topk = 4;
    a->windows = 4;
    a->seed = 1;
    a->sp = 1;
    a->stop_after = -1;
    a->needles = 8;
    a->needle_tasks[0] = EVAL_NEEDLE_PASSKEY;
    a->n_needle_tasks = 1;
    given g = {0};
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) return 1;
        bool known = false;
        for (size_t k = 0; k < sizeof OPTIONS / sizeof OPTIONS[0]; k++) known |= !strcmp(opt, OPTIONS[k]);
        if (!known) {
            char hint[96];
            cliopt_hint(hint, sizeof hint, opt, OPTIONS, (int)(sizeof OPTIONS / sizeof OPTIONS[0]));
            return errmsg(err, errlen, "search: unknown %s %s%s (see stretch search --help)",
                          strncmp(opt, "--", 2) ? "argument" : "option", opt, hint);
        }
        if (i + 1 >= argc) return errmsg(err, errlen, "search: option %s needs a value", opt);
        if (set_option(a, &g, opt, argv[++i], err, errlen) != 0) return -1;
    }
    if (a->n_nhat == 0) {  // the default: 0, 4, 16, 64 below the target
        const int64_t nhat[] = {0, 4, 16, 64};
        for (int i = 0; i < 4; i++)
            if (nhat[i] < a->target || a->target == 0) a->nhat[a->n_nhat++] = nhat[i];
    }
    return check_args(a, &g, err, errlen);
}

void search_needle_desc(char *buf, size_t len, const search_args *a) {
    buf[0] = '\0';
    for (int i = 0; i < a->n_needle_tasks; i++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? "," : "", eval_needle_task_name(a->needle_tasks[i]));
    snprintf(buf + strlen(buf), len - strlen(buf), " x%" PRId64, a->needles);
}
