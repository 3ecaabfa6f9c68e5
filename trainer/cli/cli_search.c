// cli_search: `stretch search`, the LongRoPE search of per-pair RoPE
// rescale factors and n_hat (search.h) for a checkpoint, before any
// fine-tuning. A candidate's fitness is the mean NLL of the checkpoint's
// model with that longrope rope on a FIXED sample of windows of the target
// length from held-out shards (eval_ppl.h: the same windows for every
// candidate).
//
// Distributed like training: under `mpirun -n N` with --sp S the ranks
// form N/S dp groups of S ranks; the new candidates of a generation are
// dealt to the dp groups in turn (candidate j to group j % dp), and the S
// ranks of a group share each window with ring attention (zig-zag slices,
// as in `stretch eval`). One all-reduce gathers the fitness array. Every
// rank then runs the same evolution step on the same numbers (it takes
// rank 0's copy), so no population is ever sent.
//
// Tested by tests/cli/test_search.sh.
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt_dir.h"
#include "cli.h"
#include "cliopt.h"
#include "die.h"
#include "dist.h"
#include "eval.h"
#include "eval_args.h"
#include "eval_ckpt.h"
#include "eval_ppl.h"
#include "errmsg.h"
#include "fsutil.h"
#include "model_sp_attn.h"
#include "ring_attn.h"
#include "curriculum.h"
#include "search.h"
#include "search_io.h"
#include "zigzag.h"

#define MAX_DATA 64

typedef struct {
    const char *ckpt, *out, *state, *tokenizer;
    char ckpt_file[4096];        // --ckpt resolved (a run directory or its latest: the checkpoint)
    char *data[MAX_DATA];        // --data shard paths (owned)
    int n_data;
    char *check[MAX_DATA];       // --check-data shard paths (owned)
    int n_check;
    int64_t target, population, generations, topk, windows, stop_after, sp;
    uint64_t seed;
    int64_t nhat[SEARCH_MAX_NHAT];
    int n_nhat;
} search_args;

static void usage(FILE *out) {
    fprintf(out,
            "usage: stretch search --ckpt C.h5 --target-len L --data SHARDS --out factors.yaml [OPTIONS]\n"
            "\n"
            "LongRoPE search (Ding et al. 2024): an evolutionary search of per-pair RoPE rescale\n"
            "factors lambda_i and of n_hat (positions below keep the original frequencies) that\n"
            "minimise the perplexity of the checkpoint's model at L tokens, before fine-tuning.\n"
            "Constraints: 1 <= lambda_0 <= lambda_1 <= ... <= s = L / original context. The first\n"
            "generation holds the PI, NTK-aware and YaRN factor vectors and mutations of them; each\n"
            "generation keeps the top k and breeds the rest by mutation and crossover.\n"
            "Writes factors.yaml (short_factor, long_factor, n_hat: a stage's rope.factors_file with\n"
            "rope.type longrope), factors.csv and factors.svg (best perplexity per generation), and\n"
            "prints the perplexity at L of PI, NTK, YaRN and the searched factors.\n"
            "\n"
            "options:\n"
            "  --ckpt PATH         the checkpoint (its model at its original context)\n"
            "  --target-len L      the context to extend to, e.g. 512 or 32k (> the original)\n"
            "  --data SHARDS       held-out token shards, comma-separated or repeated; the fitness\n"
            "                      sample is --windows windows of L tokens, evenly spaced over them\n"
            "  --out PATH          the factors file (.yaml); PATH's stem + .csv and .svg beside it\n"
            "  --population N      candidates per generation (default 16, >= 3)\n"
            "  --generations N     generations in all, the first included (default 8)\n"
            "  --topk K            survivors per generation, the parents of the next (default 4)\n"
            "  --windows N         windows in the fitness sample (default 4)\n"
            "  --seed S            seed of the search (default 1): same seed, same result\n"
            "  --nhat LIST         n_hat candidates, each below L; must hold 0 (default 0,4,16,64,\n"
            "                      those below L)\n"
            "  --state DIR         keep DIR/search.state after every generation and resume from it\n"
            "                      (the same settings are required; --generations may grow)\n"
            "  --stop-after N      stop once N generations are done (needs --state); for jobs cut\n"
            "                      into pieces\n"
            "  --check-data SHARDS also report the four perplexities on windows of these shards,\n"
            "                      which the search never saw\n"
            "  --sp N              ranks sharing each window by ring attention (default 1); the\n"
            "                      N-rank groups (mpirun ranks / N) score different candidates\n"
            "  --tokenizer SPEC    replaces the checkpoint's data.tokenizer\n");
}

// ---------------------------------------------------------------------------
// Options

static void free_args(search_args *a) {
    for (int i = 0; i < a->n_data; i++) free(a->data[i]);
    for (int i = 0; i < a->n_check; i++) free(a->check[i]);
}

static int add_paths(char **paths, int *n, const char *opt, const char *value, char *err, size_t errlen) {
    for (const char *p = value;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || *n == MAX_DATA)
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
    "--seed", "--nhat", "--state", "--stop-after", "--check-data", "--sp", "--tokenizer",
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

// One option's value into a. 0, or -1 with a message.
static int set_option(search_args *a, const char *opt, const char *v, char *err, size_t errlen) {
    struct {
        const char *name;
        int64_t *field;
    } ints[] = {{"--population", &a->population}, {"--generations", &a->generations}, {"--topk", &a->topk},
                {"--windows", &a->windows},       {"--stop-after", &a->stop_after},   {"--sp", &a->sp}};
    char msg[512];
    int rc = 0;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(opt, ints[i].name)) {
            if (parse_int(ints[i].field, v, msg, sizeof msg)) return errmsg(err, errlen, "search: %s: %s", opt, msg);
            return 0;
        }
    if (!strcmp(opt, "--ckpt")) {
        if (ckpt_dir_resolve(v, a->ckpt_file, sizeof a->ckpt_file, msg, sizeof msg))
            return errmsg(err, errlen, "search: --ckpt %s", msg);
        a->ckpt = a->ckpt_file;
    } else if (!strcmp(opt, "--out")) a->out = v;
    else if (!strcmp(opt, "--state")) a->state = v;
    else if (!strcmp(opt, "--tokenizer")) a->tokenizer = v;
    else if (!strcmp(opt, "--data")) return add_paths(a->data, &a->n_data, opt, v, err, errlen);
    else if (!strcmp(opt, "--check-data")) return add_paths(a->check, &a->n_check, opt, v, err, errlen);
    else if (!strcmp(opt, "--nhat")) rc = parse_nhat(a, v, msg, sizeof msg);
    else if (!strcmp(opt, "--target-len")) {
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

// The rules once every option is in.
static int check_args(const search_args *a, char *err, size_t errlen) {
    const char *missing = !a->ckpt ? "--ckpt" : !a->target ? "--target-len" : !a->n_data ? "--data"
                        : !a->out ? "--out" : NULL;
    if (missing) return errmsg(err, errlen, "search: %s is required (see stretch search --help)", missing);
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
    return 0;
}

// 0 run, 1 --help, -1 error (message in err).
static int parse_args(search_args *a, int argc, char **argv, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->population = 16;
    a->generations = 8;
    a->topk = 4;
    a->windows = 4;
    a->seed = 1;
    a->sp = 1;
    a->stop_after = -1;
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
        if (set_option(a, opt, argv[++i], err, errlen) != 0) return -1;
    }
    if (a->n_nhat == 0) {  // the default: 0, 4, 16, 64 below the target
        const int64_t nhat[] = {0, 4, 16, 64};
        for (int i = 0; i < 4; i++)
            if (nhat[i] < a->target || a->target == 0) a->nhat[a->n_nhat++] = nhat[i];
    }
    return check_args(a, err, errlen);
}

// ---------------------------------------------------------------------------
// The run: the model, the fitness sample, scoring across the dp groups

typedef struct {
    const search_args *a;
    dist_ctx d;
    ring_attn *ring;         // sp > 1
    eval_ring er;
    bool root;
    eval_ckpt ckpt;
    model *m;
    rope_config model_rope;  // the checkpoint's pretrained rope
    int64_t original;        // its original context
    int n_pairs;
    eval_text text;          // --data
    eval_window *windows;    // (n_windows) the fitness sample
    int64_t n_windows;
} search_run;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// nll (n) <- mean NLL at the target length of the model with each rope on
// the windows w (n_w). Config j is scored by dp group j % dp.
static void score(search_run *r, double *nll, const rope_config *ropes, int n, const eval_text *text,
                  const eval_window *w, int64_t n_w) {
    const int64_t L = r->a->target;
    double *sums = xcalloc((size_t)(2 * n), sizeof(double));
    for (int j = 0; j < n; j++) {
        if (j % r->d.dp != r->d.dp_rank) continue;
        rope_table t;
        rope_table_init(&t, &ropes[j], L);
        model_set_rope(r->m, &t);
        eval_nll(&sums[2 * j], r->m, text, w, n_w, L, L, &r->er);
    }
    dist_allreduce_sum_double(&r->d, sums, 2 * n);
    for (int j = 0; j < n; j++) {
        nll[j] = sums[2 * j] / sums[2 * j + 1];
        if (isnan(nll[j])) nll[j] = INFINITY;  // a diverged model ranks last
    }
    // Every rank takes rank 0's numbers, so that all of them make the same
    // choices bit for bit whatever order the reduction summed in.
    if (r->d.size > 1) {
        for (int j = 0; j < n; j++) sums[j] = r->d.rank == 0 ? nll[j] : 0.0;
        dist_allreduce_sum_double(&r->d, sums, n);
        memcpy(nll, sums, sizeof(double) * (size_t)n);
    }
    free(sums);
}

// search_fitness_fn: scores the candidates not scored yet.
static void fitness(void *ctx, search_candidate *pop, int n) {
    search_run *r = ctx;
    int *idx = xmalloc(sizeof(int) * (size_t)n), m = 0;
    for (int i = 0; i < n; i++)
        if (isnan(pop[i].nll)) idx[m++] = i;
    if (m == 0) {  // topk == population: nothing new
        free(idx);
        return;
    }
    rope_config *ropes = xmalloc(sizeof(rope_config) * (size_t)m);
    double *nll = xmalloc(sizeof(double) * (size_t)m);
    for (int j = 0; j < m; j++)
        ropes[j] = search_rope(&r->model_rope, r->original, r->a->target, &pop[idx[j]], r->n_pairs);
    score(r, nll, ropes, m, &r->text, r->windows, r->n_windows);
    for (int j = 0; j < m; j++) pop[idx[j]].nll = nll[j];
    free(idx);
    free(ropes);
    free(nll);
}

// The fitness sample: n_max windows of the target length from paths.
static int64_t open_windows(search_run *r, eval_text *text, eval_window **w, char *const *paths, int n,
                            const char *opt) {
    const int64_t L = r->a->target;
    char err[1024], msg[512];
    if (eval_text_open(text, (const char *const *)paths, n, msg, sizeof msg) != 0) {
        snprintf(err, sizeof err, "search: %s: %s", opt, msg);
        dist_exit_user_error(&r->d, err);
    }
    int64_t n_w = eval_windows(w, text, L, L, r->a->windows);
    if (n_w == 0) {
        snprintf(err, sizeof err, "search: %s: no document holds %" PRId64 " tokens for a window of "
                 "--target-len %" PRId64 " (the longest has %" PRId64 ")", opt, L + 1, L, text->longest);
        dist_exit_user_error(&r->d, err);
    }
    if (text->vocab_size > r->ckpt.mc.vocab_size) {
        snprintf(err, sizeof err, "search: %s: the data's vocabulary (%" PRId64 " ids) exceeds the model's "
                 "(%d): a shard of another tokenizer?", opt, text->vocab_size, r->ckpt.mc.vocab_size);
        dist_exit_user_error(&r->d, err);
    }
    return n_w;
}

// The checkpoint, its original context, the target's checks, the model.
static void open_model(search_run *r) {
    const search_args *a = r->a;
    char err[1024];
    if (eval_ckpt_open(&r->ckpt, a->ckpt, a->tokenizer, err, sizeof err) != 0)
        dist_exit_user_error(&r->d, err);
    const eval_ckpt *c = &r->ckpt;
    r->original = c->curr.original_context;
    const curr_plan plan = *curr_stage_plan(&c->curr, c->trained_stage);
    if (a->target <= r->original || a->target < plan.seq_len) {
        snprintf(err, sizeof err, "search: --target-len %" PRId64 " must be longer than the original context "
                 "(%" PRId64 ") and not below the trained length (%" PRId64 ", stage %d '%s') of %s", a->target,
                 r->original, plan.seq_len, c->trained_stage, plan.name, c->path);
        dist_exit_user_error(&r->d, err);
    }
    r->model_rope = c->mc.rope;
    rope_table t;
    rope_table_init(&t, &r->model_rope, 0);
    r->n_pairs = t.n_pairs;
    const rope_config trained = *curr_stage_rope(&c->curr, c->trained_stage);
    if (r->root && trained.type != ROPE_TYPE_DEFAULT)
        fprintf(stderr, "stretch: warning: %s was trained with rope %s (stage %d); the search replaces it by "
                "longrope factors relative to the original context %" PRId64 "\n", c->path,
                rope_type_name(trained.type), c->trained_stage, r->original);
}

static void load_weights(search_run *r) {
    char err[1024];
    zigzag_layout z;
    zigzag_layout_init(&z, r->a->target, r->d.sp, 0);
    r->m = eval_ckpt_model(&r->ckpt, r->d.sp > 1 ? z.T_local : r->a->target, NULL, err,
                           sizeof err);
    if (!r->m) dist_exit_user_error(&r->d, err);
    if (r->ring) {
        model_attention att = model_ring_attention(r->ring);
        model_set_attention(r->m, &att);
    }
}

// ---------------------------------------------------------------------------
// State, settings, outputs

static void settings_of(search_settings *s, const search_run *r) {
    const search_args *a = r->a;
    memset(s, 0, sizeof *s);
    search_settings_add(s, "ckpt", "%s (step %" PRId64 ")", a->ckpt, r->ckpt.step);
    search_settings_add(s, "target_len", "%" PRId64, a->target);
    char data[1024] = "";
    for (int i = 0; i < a->n_data; i++)
        snprintf(data + strlen(data), sizeof data - strlen(data), "%s%s", i ? "," : "", a->data[i]);
    search_settings_add(s, "data", "%s", data);
    search_settings_add(s, "windows", "%" PRId64, a->windows);
    search_settings_add(s, "seed", "%" PRIu64, a->seed);
    search_settings_add(s, "population", "%" PRId64, a->population);
    search_settings_add(s, "topk", "%" PRId64, a->topk);
    char nhat[512] = "";
    for (int i = 0; i < a->n_nhat; i++)
        snprintf(nhat + strlen(nhat), sizeof nhat - strlen(nhat), "%s%" PRId64, i ? "," : "", a->nhat[i]);
    search_settings_add(s, "nhat", "%s", nhat);
}

// The PI, NTK and YaRN factor vectors.
static void baselines(const search_run *r, const search_space *sp,
                      double base[SEARCH_N_BASELINES][ROPE_MAX_PAIRS]) {
    memset(base, 0, sizeof(double) * SEARCH_N_BASELINES * ROPE_MAX_PAIRS);
    search_pi(base[SEARCH_PI], sp);
    search_ntk(base[SEARCH_NTK], sp);
    search_yarn(base[SEARCH_YARN], sp, &r->model_rope, r->original, r->a->target);
}

// A fresh search, or the one saved in --state.
static void start_state(search_run *r, search_state *st, const search_space *sp, char *state_path,
                        size_t pathlen) {
    const search_args *a = r->a;
    char err[2048], msg[1536];
    search_settings now, saved;
    settings_of(&now, r);
    state_path[0] = '\0';
    if (a->state) {
        int rc = r->root ? fsutil_mkdirs(a->state, "--state", msg, sizeof msg) : 0;
        if (dist_any(&r->d, rc != 0)) {
            if (rc != 0) die_user("%s", msg);
            die_user("creating --state failed on rank 0");
        }
        snprintf(state_path, pathlen, "%s/search.state", a->state);
        rc = search_state_load(st, &saved, state_path, msg, sizeof msg);
        if (rc < 0) {
            snprintf(err, sizeof err, "search: --state: %s", msg);
            dist_exit_user_error(&r->d, err);
        }
        if (rc == 0) {
            if (search_settings_compare(&saved, &now, msg, sizeof msg) != 0) {
                snprintf(err, sizeof err, "search: --state %s holds another search (%s); use the same "
                         "settings or another --state", a->state, msg);
                dist_exit_user_error(&r->d, err);
            }
            if (st->space.n_pairs != sp->n_pairs || st->space.s != sp->s) {
                snprintf(err, sizeof err, "search: --state %s: saved for %d pairs and ratio %g, now %d and %g",
                         a->state, st->space.n_pairs, st->space.s, sp->n_pairs, sp->s);
                dist_exit_user_error(&r->d, err);
            }
            if (r->root) printf("resuming from %s: %d generation(s) done\n", state_path, st->generation);
            return;
        }
    }
    double base[SEARCH_N_BASELINES][ROPE_MAX_PAIRS];
    baselines(r, sp, base);
    search_state_init(st, sp, (const double(*)[ROPE_MAX_PAIRS])base, (int)a->population, (int)a->topk, a->seed);
}

// PI, NTK and YaRN as their own rope types (linear; default with base';
// yarn with its attention factor), not in the longrope form the search
// scores: what a user of those methods would get.
static void score_native(search_run *r, double nll[SEARCH_N_BASELINES], const eval_text *text,
                         const eval_window *w, int64_t n_w) {
    const int64_t L = r->a->target;
    const double s = (double)L / (double)r->original;
    const int d = 2 * r->n_pairs;
    rope_config ropes[SEARCH_N_BASELINES];
    ropes[SEARCH_PI] = r->model_rope;
    ropes[SEARCH_PI].type = ROPE_TYPE_LINEAR;
    ropes[SEARCH_PI].factor = s;
    ropes[SEARCH_PI].max_position_embeddings = L;
    ropes[SEARCH_NTK] = r->model_rope;
    ropes[SEARCH_NTK].theta = r->model_rope.theta * (d > 2 ? pow(s, (double)d / (d - 2)) : 1.0);
    ropes[SEARCH_YARN] = search_yarn_rope(&r->model_rope, r->original, L);
    score(r, nll, ropes, SEARCH_N_BASELINES, text, w, n_w);
}

// out without its .yaml/.yml extension, plus ext.
static void beside(char *buf, size_t len, const char *out, const char *ext) {
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    size_t stem = strlen(out);
    if (dot && (!slash || dot > slash) && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml"))) stem = (size_t)(dot - out);
    snprintf(buf, len, "%.*s%s", (int)stem, out, ext);
}

static void make_out_parent(search_run *r) {
    char dir[4096], msg[1024];
    const char *slash = strrchr(r->a->out, '/');
    int rc = 0;
    if (slash && slash != r->a->out && r->root) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - r->a->out), r->a->out);
        rc = fsutil_mkdirs(dir, "--out", msg, sizeof msg);
    }
    if (dist_any(&r->d, rc != 0)) {
        if (rc != 0) die_user("%s", msg);
        die_user("creating the directory of --out failed on rank 0");
    }
}

static void print_four(const char *where, int64_t L, const double nll[4], int64_t n_hat) {
    printf("perplexity @ %" PRId64 " tokens%s: PI %.4f, NTK %.4f, YaRN %.4f, searched %.4f (n_hat %" PRId64 ")\n",
           L, where, exp(nll[0]), exp(nll[1]), exp(nll[2]), exp(nll[3]), n_hat);
}

static void write_outputs(search_run *r, const search_state *st) {
    const search_args *a = r->a;
    const search_candidate *best = search_best(st);
    char comment[2048], csv[4200], svg[4200], err[1024];
    snprintf(comment, sizeof comment,
             "LongRoPE factors from stretch search: %s, %" PRId64 " -> %" PRId64 " tokens (s = %g),\n"
             "%d generations of %d (seed %" PRIu64 "), %" PRId64 " candidates scored on %" PRId64 " windows.\n"
             "perplexity at %" PRId64 ": PI %.4f, NTK %.4f, YaRN %.4f, searched %.4f.\n"
             "Use as a stage's rope.factors_file with rope.type longrope and seq_len %" PRId64 ".\n"
             "n_hat has no Hugging Face key: stretch export drops it.",
             a->ckpt, r->original, a->target, st->space.s, st->generation, st->population, st->seed,
             st->evaluated, r->n_windows, a->target, exp(st->baseline_nll[0]), exp(st->baseline_nll[1]),
             exp(st->baseline_nll[2]), exp(best->nll), a->target);
    beside(csv, sizeof csv, a->out, ".csv");
    beside(svg, sizeof svg, a->out, ".svg");
    if (search_write_factors(a->out, best, st->space.n_pairs, comment, err, sizeof err) != 0 ||
        search_write_report(csv, svg, st, a->target, err, sizeof err) != 0)
        die_user("search: %s", err);
    printf("wrote %s, %s and %s\n", a->out, csv, svg);
}

// ---------------------------------------------------------------------------

static void run(search_run *r) {
    const search_args *a = r->a;
    char err[1024], msg[512];
    open_model(r);
    r->n_windows = open_windows(r, &r->text, &r->windows, r->a->data, a->n_data, "--data");
    for (int i = 0; i < a->n_nhat; i++)
        if (a->nhat[i] >= a->target) {
            snprintf(err, sizeof err, "search: --nhat %" PRId64 " is not below --target-len %" PRId64,
                     a->nhat[i], a->target);
            dist_exit_user_error(&r->d, err);
        }
    search_space sp;
    if (search_space_init(&sp, r->n_pairs, (double)a->target / (double)r->original, a->nhat, a->n_nhat, msg,
                          sizeof msg) != 0) {
        snprintf(err, sizeof err, "search: --nhat: %s", msg);
        dist_exit_user_error(&r->d, err);
    }
    eval_text check = {0};
    eval_window *check_w = NULL;
    int64_t n_check = a->n_check ? open_windows(r, &check, &check_w, a->check, a->n_check, "--check-data") : 0;
    search_state st;
    char state_path[4200];
    start_state(r, &st, &sp, state_path, sizeof state_path);
    make_out_parent(r);
    load_weights(r);
    if (r->root) {
        printf("%s: step %" PRId64 ", %.2fM parameters, original context %" PRId64 "; searching %d factors and "
               "n_hat for %" PRId64 " tokens (s = %g) on %" PRId64 " windows; %d rank(s) = dp %d x sp %d\n",
               a->ckpt, r->ckpt.step, (double)r->m->n_params / 1e6, r->original, r->n_pairs, a->target, sp.s,
               r->n_windows, r->d.size, r->d.dp, r->d.sp);
        fflush(stdout);
    }

    const int G = (int)a->generations;
    while (st.generation < G && !(a->stop_after > 0 && st.generation >= a->stop_after)) {
        double t0 = now_s();
        int64_t before = st.evaluated;
        search_generation(&st, fitness, r);
        const search_history *h = &st.history[st.generation - 1];
        if (r->root) {
            if (st.generation == 1)
                printf("generation 1: PI ppl %.4f, NTK ppl %.4f, YaRN ppl %.4f (longrope form, n_hat 0)\n",
                       exp(st.baseline_nll[0]), exp(st.baseline_nll[1]), exp(st.baseline_nll[2]));
            printf("generation %d/%d: %" PRId64 " candidates in %.1f s; best ppl %.4f (nll %.6f, n_hat %" PRId64
                   "), mean nll %.4f\n", st.generation, G, st.evaluated - before, now_s() - t0, exp(h->best_nll),
                   h->best_nll, h->best_n_hat, h->mean_nll);
            fflush(stdout);
        }
        int rc = 0;
        if (state_path[0] && r->root) {
            search_settings now;
            settings_of(&now, r);
            rc = search_state_save(state_path, &st, &now, msg, sizeof msg);
        }
        if (dist_any(&r->d, rc != 0)) {
            if (rc != 0) die_user("search: --state: %s", msg);
            die_user("search: saving the state failed on rank 0");
        }
    }
    if (st.generation < G) {
        if (r->root) printf("stopped after generation %d of %d (--stop-after); resume with --state %s\n",
                            st.generation, G, a->state);
    } else {
        double native[SEARCH_N_BASELINES];
        score_native(r, native, &r->text, r->windows, r->n_windows);
        const search_candidate *best = search_best(&st);
        double four[4] = {st.baseline_nll[0], st.baseline_nll[1], st.baseline_nll[2], best->nll};
        double check4[4], check_native[SEARCH_N_BASELINES];
        if (n_check) {
            double base[SEARCH_N_BASELINES][ROPE_MAX_PAIRS];
            baselines(r, &sp, base);
            rope_config ropes[4];
            for (int b = 0; b < 4; b++) {
                search_candidate c = *best;
                if (b < SEARCH_N_BASELINES) {
                    memcpy(c.lambda, base[b], sizeof c.lambda);
                    c.n_hat = 0;
                }
                ropes[b] = search_rope(&r->model_rope, r->original, a->target, &c, r->n_pairs);
            }
            score(r, check4, ropes, 4, &check, check_w, n_check);
            score_native(r, check_native, &check, check_w, n_check);
        }
        if (r->root) {
            printf("\n");
            print_four("", a->target, four, best->n_hat);
            printf("  native rope types (attention factor of each): linear %.4f, NTK base %.4f, yarn %.4f\n",
                   exp(native[0]), exp(native[1]), exp(native[2]));
            if (n_check) {
                char where[64];
                snprintf(where, sizeof where, " on --check-data (%" PRId64 " windows)", n_check);
                print_four(where, a->target, check4, best->n_hat);
                printf("  native rope types on --check-data: linear %.4f, NTK base %.4f, yarn %.4f\n",
                       exp(check_native[0]), exp(check_native[1]), exp(check_native[2]));
            }
            write_outputs(r, &st);
        }
    }
    search_state_free(&st);
    free(check_w);
    if (n_check) eval_text_close(&check);
}

int cli_search(int argc, char **argv) {
    search_args a;
    char err[1024];
    int rc = parse_args(&a, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc == 1) usage(stdout);
        else fprintf(stderr, "stretch: error: %s\n", err);
        free_args(&a);
        return rc == 1 ? 0 : 2;
    }
    search_run r = {.a = &a};
    dist_init(&r.d, &argc, &argv);
    if (r.d.size % a.sp != 0) {
        snprintf(err, sizeof err, "search: --sp %" PRId64 " does not divide the %d rank(s) mpirun started",
                 a.sp, r.d.size);
        dist_exit_user_error(&r.d, err);
    }
    if (dist_init_grid(&r.d, r.d.size / (int)a.sp, (int)a.sp, err, sizeof err) != 0)
        dist_exit_user_error(&r.d, err);
    r.root = r.d.rank == 0;
    r.er = (eval_ring){.sp = r.d.sp, .sp_rank = r.d.sp_rank};
    if (r.d.sp > 1) r.ring = ring_attn_create(&r.d);
    run(&r);
    model_free(r.m);
    free(r.windows);
    eval_text_close(&r.text);
    eval_ckpt_close(&r.ckpt);
    ring_attn_free(r.ring);
    free_args(&a);
    dist_finalize(&r.d);
    return 0;
}
