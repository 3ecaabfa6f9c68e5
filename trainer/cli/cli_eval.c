// cli_eval: `stretch eval passkey|tasks|ppl|short`, the long-context evaluation of
// checkpoints. Distributed like training: under `mpirun -n N` every
// sequence is split over the N ranks (zig-zag slices, ring attention behind
// the model's attention hook, as in train.c), so a length that does not fit
// one rank's memory is evaluated on several. Every rank reads the
// checkpoints and the data; rank 0 prints and writes the results.
//
//   passkey  lengths x depths x trials samples, exact match of greedy
//            decoding (eval_passkey) -> passkey.csv, passkey.svg
//   tasks    the RULER-style suite (data/task.h): tasks x lengths x depths
//            x trials, exact match (eval_tasks.h) -> tasks.csv, tasks.svg
//   ppl      perplexity vs length of one or more checkpoints on held-out
//            windows (eval_ppl.h) -> ppl.csv, ppl.svg
//   short    perplexity at the original context before and after extension
//
// Tested by tests/cli/test_eval.sh.
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cliopt.h"
#include "shard_vocab.h"
#include "die.h"
#include "fsutil.h"
#include "dist.h"
#include "eval.h"
#include "eval_args.h"
#include "eval_ckpt.h"
#include "eval_ppl.h"
#include "eval_report.h"
#include "eval_tasks.h"
#include "model_sp_attn.h"
#include "passkey.h"
#include "ckpt_dir.h"
#include "ring_attn.h"
#include "rng.h"
#include "run_config_check.h"
#include "shard.h"
#include "task.h"
#include "zigzag.h"

#define MAX_CKPTS 16
#define MAX_DATA 64

enum { CMD_PASSKEY = 1, CMD_PPL = 2, CMD_SHORT = 4, CMD_TASKS = 8, CMD_ALL = 15 };
#define HAYSTACK_MAX_TOKENS (64ll << 20)  // --haystack tokens read (256 MB)

typedef struct {
    int cmd;                     // CMD_*
    const char *name;            // "passkey", "tasks", "ppl", "short"
    const char *ckpts[MAX_CKPTS];  // checkpoint files (a run directory or its latest resolved)
    char *ckpt_files[MAX_CKPTS];   // owned: the resolved paths ckpts points to
    int n_ckpts;
    char *data[MAX_DATA];        // shard paths (owned: split at commas)
    int n_data;
    int64_t lengths[EVAL_MAX_LIST];
    int n_lengths;
    double depths[EVAL_MAX_LIST];
    int n_depths;
    int64_t trials, windows, sliding, length, sp;  // sliding, length, sp: 0 = not given
    int64_t ulysses;  // 0 = not given (1)
    bool trials_given, depths_given;  // else passkey takes the run's eval settings
    uint64_t seed;
    eval_rope_opt rope;
    const char *tokenizer, *out;
    const char *backend;  // "cpu" (default) or "cuda"
    int tasks[TASK_COUNT];  // tasks: --tasks (n_tasks 0: the default set)
    int n_tasks;
    double threshold;       // tasks: --threshold of the effective length
    const char *haystack;   // tasks: --haystack SHARD (real text)
} eval_args;

static void usage(FILE *out) {
    fprintf(out,
            "usage: stretch eval passkey --ckpt C.h5 --lengths 1k,4k,... --out DIR [OPTIONS]\n"
            "       stretch eval tasks --ckpt C.h5 --lengths 256,1k,... --out DIR [OPTIONS]\n"
            "       stretch eval ppl --ckpt C.h5 [--ckpt C2.h5 ...] --data SHARDS --lengths 256,1k,4k\n"
            "                        --out DIR [OPTIONS]\n"
            "       stretch eval short --ckpt BEFORE.h5 --ckpt AFTER.h5 --data SHARDS [--length L]\n"
            "\n"
            "Evaluates checkpoints of stretch train. Under mpirun -n N each sequence is split\n"
            "over the N ranks with ring attention, as in training.\n"
            "  passkey  passkey retrieval over context lengths x needle depths, several samples\n"
            "           per cell (different keys and filler), scored by exact match of greedy\n"
            "           decoding: DIR/passkey.csv (length,depth,trials,correct,accuracy) and\n"
            "           DIR/passkey.svg (heatmap)\n"
            "  tasks    the RULER-style suite over tasks x lengths x depths, several samples\n"
            "           per cell, exact match of greedy decoding: DIR/tasks.csv\n"
            "           (task,length,depth,trials,correct,accuracy) and DIR/tasks.svg (task x\n"
            "           length heatmap with the average and the effective length)\n"
            "  ppl      perplexity vs context length on held-out token shards, one line per\n"
            "           checkpoint: DIR/ppl.csv (ckpt,length,tokens,nll,ppl) and DIR/ppl.svg\n"
            "  short    perplexity at the original context before and after extension, side\n"
            "           by side with the relative change (and DIR/short.csv with --out)\n"
            "\n"
            "options:\n"
            "  --ckpt PATH        a checkpoint (ppl: repeat to compare; short: before, then after)\n"
            "  --lengths LIST     context lengths in tokens, e.g. 256,1k,4k (k = 1024, M = 1024k)\n"
            "  --depths N|LIST    passkey needle depths: a count spread evenly over [0, 1]\n"
            "                     or fractions, e.g. 0.1,0.5,0.9\n"
            "  --trials N         passkey samples per (length, depth) cell\n"
            "                     passkey defaults: the checkpoint's run's eval.passkey_lengths,\n"
            "                     _depths, _trials (what training measured); an imported\n"
            "                     checkpoint: 10 depths, 5 trials, --lengths required\n"
            "  --tasks LIST       tasks: comma-separated, or all (default: every task, the\n"
            "                     text one only with --haystack): niah_single,\n"
            "                     niah_single_text, niah_single_uuid, niah_multikey,\n"
            "                     niah_multivalue, niah_multiquery, vt, cwe, fwe (docs/eval.md)\n"
            "  --threshold A      tasks: the effective length is the longest length whose\n"
            "                     average accuracy (and every shorter one's) is >= A\n"
            "                     (default 0.856, RULER's Llama-2-7B at 4K)\n"
            "  --haystack SHARD   tasks: real text for niah_single_text (stretch tokenize,\n"
            "                     the checkpoint's tokenizer)\n"
            "  --seed S           seed of the passkey samples (default 1); a cell's samples\n"
            "                     depend only on the seed, its length and its depth\n"
            "  --data SHARDS      held-out token shards (stretch tokenize), comma-separated or\n"
            "                     repeated; windows never cross documents\n"
            "  --windows N        windows per length (default 8), evenly spaced over the data,\n"
            "                     the same for every checkpoint\n"
            "  --sliding STRIDE   windows every STRIDE tokens, each scoring only its last STRIDE\n"
            "                     predictions (default: non-overlapping windows, all scored)\n"
            "  --length L         short: the context length (default: the original context of\n"
            "                     the before checkpoint's run)\n"
            "  --rope-stage K     evaluate with the RoPE of stages.K of the checkpoint's run\n"
            "  --rope TYPE[:F]    or with TYPE (default, linear, dynamic, yarn, llama3) scaled by\n"
            "                     F over the pretrained context, e.g. yarn:8, or longrope:F:FILE\n"
            "                     with the factors file of stretch search. Default: the RoPE\n"
            "                     the weights were trained with (the checkpoint's stage; the\n"
            "                     previous one for a checkpoint written at a stage switch)\n"
            "  --tokenizer SPEC   replaces the checkpoint's data.tokenizer\n"
            "  --backend B        cpu (default) or cuda: the model on this rank's GPU, bf16\n"
            "                     activations, one rank (sp 1)\n"
            "  --sp N             sequence-parallel ranks (default and only choice: all ranks)\n"
            "  --ulysses U        of those, U adjacent ranks split the heads (all-to-all) and\n"
            "                     sp / U ring positions run zig-zag ring attention (default 1)\n"
            "  --out DIR          output directory (created if missing)\n");
}

// ---------------------------------------------------------------------------
// Options

static const struct {
    const char *name;
    int cmds;  // the subcommands that take it
} OPTIONS[] = {
    {"--ckpt", CMD_ALL}, {"--lengths", CMD_PASSKEY | CMD_PPL | CMD_TASKS}, {"--depths", CMD_PASSKEY | CMD_TASKS},
    {"--trials", CMD_PASSKEY | CMD_TASKS}, {"--seed", CMD_PASSKEY | CMD_TASKS}, {"--tasks", CMD_TASKS},
    {"--threshold", CMD_TASKS}, {"--haystack", CMD_TASKS}, {"--data", CMD_PPL | CMD_SHORT},
    {"--windows", CMD_PPL | CMD_SHORT}, {"--sliding", CMD_PPL | CMD_SHORT}, {"--length", CMD_SHORT},
    {"--rope-stage", CMD_ALL}, {"--rope", CMD_ALL}, {"--tokenizer", CMD_ALL}, {"--backend", CMD_ALL}, {"--sp", CMD_ALL},
    {"--ulysses", CMD_ALL},
    {"--out", CMD_ALL},
};

static void free_args(eval_args *a) {
    for (int i = 0; i < a->n_data; i++) free(a->data[i]);
    for (int i = 0; i < a->n_ckpts; i++) free(a->ckpt_files[i]);
}

static int add_data(eval_args *a, const char *value, char *err, size_t errlen) {
    for (const char *p = value;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || a->n_data == MAX_DATA) {
            snprintf(err, errlen, "eval %s: --data '%s': %s", a->name, value,
                     len == 0 ? "empty entry" : "too many shards");
            return -1;
        }
        a->data[a->n_data] = xmalloc(len + 1);
        memcpy(a->data[a->n_data], p, len);
        a->data[a->n_data++][len] = '\0';
        p += len;
        if (*p++ == '\0') return 0;
    }
}

// --tasks: "all" or names, no repeats.
static int parse_tasks(eval_args *a, const char *v, char *err, size_t errlen) {
    a->n_tasks = 0;
    if (!strcmp(v, "all")) {
        for (int t = 0; t < TASK_COUNT; t++) a->tasks[a->n_tasks++] = t;
        return 0;
    }
    for (const char *p = v;;) {
        const size_t len = strcspn(p, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), p);
        const int t = task_find(name);
        if (t < 0) {
            snprintf(err, errlen, "eval tasks: --tasks: unknown task '%s' (all, %s)", name, task_names());
            return -1;
        }
        for (int k = 0; k < a->n_tasks; k++)
            if (a->tasks[k] == t) {
                snprintf(err, errlen, "eval tasks: --tasks: '%s' given twice", name);
                return -1;
            }
        a->tasks[a->n_tasks++] = t;
        p += len;
        if (*p++ == '\0') return 0;
    }
}

// One option's value into a. 0, or -1 with a message.
static int set_option(eval_args *a, const char *opt, const char *v, char *err, size_t errlen) {
    char msg[512];
    int rc = 0;
    if (!strcmp(opt, "--ckpt")) {
        if (a->n_ckpts == MAX_CKPTS) {
            snprintf(err, errlen, "eval %s: more than %d checkpoints", a->name, MAX_CKPTS);
            return -1;
        }
        char file[4096];
        if (ckpt_dir_resolve(v, file, sizeof file, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "eval %s: --ckpt %s", a->name, msg);
            return -1;
        }
        a->ckpt_files[a->n_ckpts] = xstrdup(file);
        a->ckpts[a->n_ckpts] = a->ckpt_files[a->n_ckpts];
        a->n_ckpts++;
    } else if (!strcmp(opt, "--lengths")) {
        rc = eval_parse_lengths(a->lengths, &a->n_lengths, v, msg, sizeof msg);
    } else if (!strcmp(opt, "--depths")) {
        rc = eval_parse_depths(a->depths, &a->n_depths, v, msg, sizeof msg);
        a->depths_given = true;
    } else if (!strcmp(opt, "--trials")) {
        a->trials_given = true;
        rc = eval_parse_count(&a->trials, v, msg, sizeof msg);
        if (rc == 0 && a->trials > 100000) rc = -1, snprintf(msg, sizeof msg, "at most 100000 trials");
    } else if (!strcmp(opt, "--windows")) {
        rc = eval_parse_count(&a->windows, v, msg, sizeof msg);
        if (rc == 0 && a->windows > 1000000) rc = -1, snprintf(msg, sizeof msg, "at most 1000000 windows");
    } else if (!strcmp(opt, "--sliding")) {
        rc = eval_parse_count(&a->sliding, v, msg, sizeof msg);
    } else if (!strcmp(opt, "--sp")) {
        rc = eval_parse_count(&a->sp, v, msg, sizeof msg);
    } else if (!strcmp(opt, "--ulysses")) {
        rc = eval_parse_count(&a->ulysses, v, msg, sizeof msg);
    } else if (!strcmp(opt, "--length")) {
        int n;
        rc = eval_parse_lengths(&a->length, &n, v, msg, sizeof msg);
        if (rc == 0 && n != 1) rc = -1, snprintf(msg, sizeof msg, "one length, got '%s'", v);
    } else if (!strcmp(opt, "--tasks")) {
        return parse_tasks(a, v, err, errlen);
    } else if (!strcmp(opt, "--threshold")) {
        char *end;
        errno = 0;
        a->threshold = strtod(v, &end);
        if (errno || end == v || *end || !(a->threshold >= 0 && a->threshold <= 1))
            rc = -1, snprintf(msg, sizeof msg, "'%s' is not an accuracy in [0, 1]", v);
    } else if (!strcmp(opt, "--haystack")) {
        a->haystack = v;
    } else if (!strcmp(opt, "--seed")) {
        char *end;
        errno = 0;
        a->seed = strtoull(v, &end, 10);
        if (end == v || *end || errno || v[0] == '-')
            rc = -1, snprintf(msg, sizeof msg, "expected an integer >= 0, got '%s'", v);
    } else if (!strcmp(opt, "--rope-stage")) {
        char *end;
        long k = strtol(v, &end, 10);
        if (end == v || *end || k < 0 || k >= CFG_MAX_STAGES)
            rc = -1, snprintf(msg, sizeof msg, "expected a stage index 0..%d, got '%s'", CFG_MAX_STAGES - 1, v);
        a->rope.stage = rc == 0 ? (int)k : -1;
    } else if (!strcmp(opt, "--rope")) {
        rc = eval_parse_rope(&a->rope, v, msg, sizeof msg);
    } else if (!strcmp(opt, "--data")) {
        return add_data(a, v, err, errlen);
    } else if (!strcmp(opt, "--tokenizer")) {
        a->tokenizer = v;
    } else if (!strcmp(opt, "--backend")) {
        a->backend = v;
        if (strcmp(v, "cpu") && strcmp(v, "cuda"))
            rc = -1, snprintf(msg, sizeof msg, "expected cpu or cuda, got '%s'", v);
    } else if (!strcmp(opt, "--out")) {
        a->out = v;
    }
    if (rc != 0) snprintf(err, errlen, "eval %s: %s: %s", a->name, opt, msg);
    return rc;
}

static int check_sliding(const eval_args *a, int64_t length, char *err, size_t errlen) {
    if (a->sliding <= length) return 0;
    snprintf(err, errlen, "eval %s: --sliding %lld is longer than the length %lld", a->name,
             (long long)a->sliding, (long long)length);
    return -1;
}

// The subcommand's rules once every option is in.
static int check_args(eval_args *a, char *err, size_t errlen) {
    const char *missing = NULL;
    if (a->n_ckpts == 0) missing = "--ckpt";
    else if ((a->cmd & (CMD_PPL | CMD_TASKS)) && a->n_lengths == 0) missing = "--lengths";  // passkey: the run's
    else if ((a->cmd & (CMD_PPL | CMD_SHORT)) && a->n_data == 0) missing = "--data";
    else if ((a->cmd & (CMD_PASSKEY | CMD_PPL | CMD_TASKS)) && !a->out) missing = "--out";
    if (missing) {
        snprintf(err, errlen, "eval %s: %s is required (see stretch eval --help)", a->name, missing);
        return -1;
    }
    if ((a->cmd & (CMD_PASSKEY | CMD_TASKS)) && a->n_ckpts != 1) {
        snprintf(err, errlen, "eval %s: one --ckpt (got %d)", a->name, a->n_ckpts);
        return -1;
    }
    if (a->cmd == CMD_TASKS) {
        if (a->n_tasks == 0)  // the default: every task that has its haystack
            for (int t = 0; t < TASK_COUNT; t++)
                if (!TASK_DEFS[t].needs_text || a->haystack) a->tasks[a->n_tasks++] = t;
        for (int k = 0; k < a->n_tasks; k++)
            if (TASK_DEFS[a->tasks[k]].needs_text && !a->haystack) {
                snprintf(err, errlen, "eval tasks: task %s needs --haystack SHARD (real text)",
                         TASK_DEFS[a->tasks[k]].name);
                return -1;
            }
    }
    if (a->cmd == CMD_SHORT && a->n_ckpts != 2) {
        snprintf(err, errlen, "eval short: two checkpoints, --ckpt BEFORE.h5 --ckpt AFTER.h5 (got %d)", a->n_ckpts);
        return -1;
    }
    if (a->rope.custom && a->rope.stage >= 0) {
        snprintf(err, errlen, "eval %s: give --rope-stage or --rope, not both", a->name);
        return -1;
    }
    for (int i = 0; i < a->n_lengths; i++)
        if (check_sliding(a, a->lengths[i], err, errlen) != 0) return -1;
    return 0;
}

// Returns 0, 1 for --help, or -1 with a message.
static int parse_args(eval_args *a, int argc, char **argv, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->trials = 5;
    a->windows = 8;
    a->seed = 1;
    a->threshold = 0.856;
    a->rope.stage = -1;
    a->n_depths = 10;
    for (int i = 0; i < a->n_depths; i++) a->depths[i] = (double)i / (a->n_depths - 1);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc >= 2) return 1;
        snprintf(err, errlen, "eval: which evaluation? passkey, tasks, ppl or short (see stretch eval --help)");
        return -1;
    }
    a->name = argv[1];
    a->cmd = !strcmp(a->name, "passkey") ? CMD_PASSKEY : !strcmp(a->name, "ppl") ? CMD_PPL
           : !strcmp(a->name, "short") ? CMD_SHORT : !strcmp(a->name, "tasks") ? CMD_TASKS : 0;
    if (!a->cmd) {
        snprintf(err, errlen, "eval: unknown evaluation '%s' (passkey, tasks, ppl or short)", a->name);
        return -1;
    }
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) return 1;
        int known = -1;
        for (size_t k = 0; k < sizeof OPTIONS / sizeof OPTIONS[0]; k++)
            if (!strcmp(opt, OPTIONS[k].name)) known = (int)k;
        if (known < 0 || !(OPTIONS[known].cmds & a->cmd)) {
            const char *names[sizeof OPTIONS / sizeof OPTIONS[0]];
            int n_names = 0;
            for (size_t k = 0; k < sizeof OPTIONS / sizeof OPTIONS[0]; k++)
                if (OPTIONS[k].cmds & a->cmd) names[n_names++] = OPTIONS[k].name;
            char hint[96];
            cliopt_hint(hint, sizeof hint, opt, names, n_names);
            snprintf(err, errlen, "eval %s: unknown %s %s%s (see stretch eval --help)", a->name,
                     strncmp(opt, "--", 2) ? "argument" : "option", opt, hint);
            return -1;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "eval %s: option %s needs a value", a->name, opt);
            return -1;
        }
        if (set_option(a, opt, argv[++i], err, errlen) != 0) return -1;
    }
    return check_args(a, err, errlen);
}

// ---------------------------------------------------------------------------
// The run: the grid, ring attention, models.

typedef struct {
    const eval_args *a;
    dist_ctx d;
    ring_attn *ring;   // sp > 1, ulysses 1
    ulysses_attn *uly; // ulysses > 1
    backend *bk;       // where the models run
    eval_ring er;      // how eval.h sees the ring
    bool root;
} eval_run;

static bool ring_all(void *ctx, bool local) { return !dist_any(ctx, !local); }

// Rows of T tokens held by one rank of the ring.
static int64_t local_len(int64_t T, int sp) {
    zigzag_layout z;
    zigzag_layout_init(&z, T, sp, 0);
    return sp > 1 ? z.T_local : T;
}

// Creates --out (rank 0) once the inputs have been checked, before the work.
static void make_out_dir(eval_run *r) {
    char err[1024];
    if (!r->a->out) return;
    int rc = r->root ? fsutil_mkdirs(r->a->out, "--out", err, sizeof err) : 0;
    if (dist_any(&r->d, rc != 0)) {
        if (rc != 0) die_user("%s", err);
        die_user("creating --out failed on rank 0");
    }
}

static void open_ckpt(eval_run *r, eval_ckpt *c, const char *path) {
    char err[1024];
    if (eval_ckpt_open(c, path, r->a->tokenizer, err, sizeof err) != 0) dist_exit_user_error(&r->d, err);
    const char *spec = r->a->tokenizer ? r->a->tokenizer : c->cfg.data.tokenizer;
    for (int i = 0; i < r->a->n_data; i++)
        if (shard_vocab_check(r->a->data[i], c->tok, spec ? spec : "byte", "--data", "the evaluation uses", err,
                              sizeof err) != 0)
            dist_exit_user_error(&r->d, err);
}

// The checkpoint's model for lengths up to max_len, with its RoPE config.
static model *load_model(eval_run *r, rope_config *rope, char *desc, size_t desclen, const eval_ckpt *c,
                         int64_t max_len) {
    char err[1024];
    if (eval_ckpt_rope(rope, desc, desclen, c, &r->a->rope, err, sizeof err) != 0)
        dist_exit_user_error(&r->d, err);
    model *m = eval_ckpt_model(c, local_len(max_len, r->d.sp), r->bk, err, sizeof err);
    if (!m) dist_exit_user_error(&r->d, err);
    if (r->uly) {
        if (ulysses_check_heads(r->d.ulysses, m->cfg.n_heads, m->cfg.n_kv_heads, err, sizeof err) != 0)
            dist_exit_user_error(&r->d, err);
        model_attention att = model_ulysses_attention(r->uly);
        model_set_attention(m, &att);
    } else if (r->ring) {
        model_attention att = model_ring_attention(r->ring);
        model_set_attention(m, &att);
    }
    if (r->root) {
        printf("%s: step %lld, stage %d (step %lld in it), %.2fM parameters; rope of %s\n", c->path,
               (long long)c->step, c->stage, (long long)c->stage_step, (double)m->n_params / 1e6, desc);
        fflush(stdout);
    }
    return m;
}

static void set_rope(model *m, const rope_config *rope, int64_t T) {
    rope_table t;
    rope_table_init(&t, rope, T);
    model_set_rope(m, &t);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

// ---------------------------------------------------------------------------
// passkey

// The seed of a cell's first sample: a function of (seed, length, depth)
// only, so a cell gives the same samples whatever else the grid holds.
static uint64_t cell_seed(uint64_t seed, int64_t length, double depth) {
    uint64_t x = seed ^ ((uint64_t)length * 0x9E3779B97F4A7C15ull);
    x = rng_splitmix64(&x) ^ (uint64_t)llround(depth * 1e6);
    return rng_splitmix64(&x);
}

// Options not given take the checkpoint's run's own eval settings
// (eval.passkey_trials, _depths, _lengths), so that `stretch eval passkey` of
// a run's checkpoint measures what its training measured. An imported
// checkpoint has none: 5 trials, 10 depths, and --lengths is needed.
static void passkey_defaults(eval_args *a, const eval_ckpt *c, eval_run *r) {
    const cfg_eval *e = &c->cfg.eval;
    bool from_run = false;
    if (!c->imported && !a->trials_given && e->passkey_trials > 0) {
        a->trials = e->passkey_trials;
        from_run = true;
    }
    if (!c->imported && !a->depths_given && e->passkey_depths.n > 0 && e->passkey_depths.n <= EVAL_MAX_LIST) {
        a->n_depths = e->passkey_depths.n;
        memcpy(a->depths, e->passkey_depths.v, sizeof(double) * (size_t)a->n_depths);
        from_run = true;
    }
    if (!c->imported && a->n_lengths == 0 && e->passkey_lengths.n > 0 && e->passkey_lengths.n <= EVAL_MAX_LIST) {
        a->n_lengths = e->passkey_lengths.n;
        memcpy(a->lengths, e->passkey_lengths.v, sizeof(int64_t) * (size_t)a->n_lengths);
        from_run = true;
    }
    if (a->n_lengths == 0)
        dist_exit_user_error(&r->d, "eval passkey: --lengths is required (the checkpoint has no run eval settings)");
    char err[512];
    for (int i = 0; i < a->n_lengths; i++)
        if (check_sliding(a, a->lengths[i], err, sizeof err) != 0) dist_exit_user_error(&r->d, err);
    if (from_run && r->root) {
        printf("settings of the run's eval (options override): %lld trials, depths", (long long)a->trials);
        for (int j = 0; j < a->n_depths; j++) printf("%s%g", j ? "," : " ", a->depths[j]);
        printf(", lengths");
        for (int i = 0; i < a->n_lengths; i++) printf("%s%lld", i ? "," : " ", (long long)a->lengths[i]);
        printf("\n");
    }
}

static void run_passkey(eval_run *r) {
    eval_ckpt c;
    open_ckpt(r, &c, r->a->ckpts[0]);
    eval_args own = *r->a;
    const eval_args *given = r->a;
    passkey_defaults(&own, &c, r);
    r->a = &own;
    const eval_args *a = r->a;
    passkey_config pk = {.encode = tok_encode_into, .encode_ctx = c.tok, .bos_id = -1, .n_keys = 1,
                         .depth = -1, .answer_only = 1, .compact = c.cfg.data.passkey_compact};
    // Every sample must fit its length: refuse the run up front, not midway.
    char err[1024], msg[512];
    for (int i = 0; i < a->n_lengths; i++)
        for (int j = 0; j < a->n_depths; j++)
            for (int64_t k = 0; k < a->trials; k++) {
                uint64_t seed = cell_seed(a->seed, a->lengths[i], a->depths[j]) + (uint64_t)k;
                int64_t need = passkey_min_len(&pk, seed, msg, sizeof msg);
                if (need < 0 || need > a->lengths[i]) {
                    if (need < 0) snprintf(err, sizeof err, "eval passkey: %s", msg);
                    else snprintf(err, sizeof err, "eval passkey: --lengths: %lld tokens cannot hold a passkey "
                                  "prompt with tokenizer '%s' (it needs at least %lld)",
                                  (long long)a->lengths[i], a->tokenizer ? a->tokenizer : c.cfg.data.tokenizer,
                                  (long long)need);
                    dist_exit_user_error(&r->d, err);
                }
            }
    rope_config rope;
    char desc[256];
    model *m = load_model(r, &rope, desc, sizeof desc, &c, a->lengths[a->n_lengths - 1]);
    make_out_dir(r);
    int64_t *correct = xcalloc((size_t)(a->n_lengths * a->n_depths), sizeof(int64_t));
    for (int i = 0; i < a->n_lengths; i++) {
        int64_t L = a->lengths[i];
        set_rope(m, &rope, L);
        if (r->root) printf("  passkey @ %lld tokens, by depth:", (long long)L);
        for (int j = 0; j < a->n_depths; j++) {
            uint64_t seed = cell_seed(a->seed, L, a->depths[j]);
            double acc = eval_passkey(m, &pk, L, a->depths[j], (int)a->trials, seed, &r->er, msg, sizeof msg);
            if (acc < 0) die("passkey sample at %lld tokens: %s", (long long)L, msg);  // checked above
            correct[i * a->n_depths + j] = llround(acc * (double)a->trials);
            if (r->root) printf(" %.0f%%", 100 * acc), fflush(stdout);
        }
        if (r->root) printf("\n");
    }
    if (r->root) {
        char title[512];
        snprintf(title, sizeof title, "Passkey retrieval: %s (rope of %s)", base_name(c.path), desc);
        eval_passkey_grid g = {.n_lengths = a->n_lengths, .n_depths = a->n_depths, .lengths = a->lengths,
                               .depths = a->depths, .trials = a->trials, .correct = correct, .title = title};
        printf("\n");
        eval_report_passkey_table(stdout, &g);
        if (eval_report_passkey(a->out, &g, err, sizeof err) != 0) die_user("%s", err);
        printf("wrote %s/passkey.csv and %s/passkey.svg\n", a->out, a->out);
    }
    free(correct);
    model_free(m);
    eval_ckpt_close(&c);
    r->a = given;
}

// ---------------------------------------------------------------------------
// tasks

// --haystack: the shard's tokens (documents concatenated; at most
// HAYSTACK_MAX_TOKENS), checked against the model's vocabulary.
static int32_t *read_haystack(eval_run *r, const eval_ckpt *c, int64_t *n) {
    char err[1024];
    shard s;
    if (shard_open(&s, r->a->haystack, err, sizeof err) != 0) dist_exit_user_error(&r->d, err);
    if (s.vocab_size > c->mc.vocab_size) {
        snprintf(err, sizeof err, "eval tasks: --haystack %s: its vocabulary (%lld ids) exceeds the model's "
                 "(%d): a shard of another tokenizer?", r->a->haystack, (long long)s.vocab_size, c->mc.vocab_size);
        dist_exit_user_error(&r->d, err);
    }
    *n = s.n_tokens < HAYSTACK_MAX_TOKENS ? s.n_tokens : HAYSTACK_MAX_TOKENS;
    int32_t *hay = xmalloc(sizeof(int32_t) * (size_t)(*n > 0 ? *n : 1));
    shard_read(hay, &s, 0, *n);
    shard_close(&s);
    return hay;
}

static void run_tasks(eval_run *r) {
    const eval_args *a = r->a;
    eval_ckpt c;
    open_ckpt(r, &c, a->ckpts[0]);
    task_env env = {.encode = tok_encode_into, .encode_ctx = c.tok, .bos_id = -1, .answer_only = 1};
    int32_t *hay = NULL;
    if (a->haystack) hay = read_haystack(r, &c, &env.haystack_len), env.haystack = hay;
    // Every sample must fit its length: refuse the run up front, not midway.
    char err[1024], msg[512];
    for (int t = 0; t < a->n_tasks; t++) {
        const int task = a->tasks[t];
        const int nd = TASK_DEFS[task].has_depth ? a->n_depths : 1;
        for (int i = 0; i < a->n_lengths; i++) {
            if (TASK_DEFS[task].needs_text && env.haystack_len < a->lengths[i]) {
                snprintf(err, sizeof err, "eval tasks: --haystack %s has %lld tokens, too few for task %s at "
                         "length %lld", a->haystack, (long long)env.haystack_len, TASK_DEFS[task].name,
                         (long long)a->lengths[i]);
                dist_exit_user_error(&r->d, err);
            }
            for (int j = 0; j < nd; j++)
                for (int64_t k = 0; k < a->trials; k++) {
                    const double depth = TASK_DEFS[task].has_depth ? a->depths[j] : -1;
                    const uint64_t seed = eval_task_seed(a->seed, task, a->lengths[i], depth) + (uint64_t)k;
                    const int64_t need = task_min_len(task, &env, seed, msg, sizeof msg);
                    if (need >= 0 && need <= a->lengths[i]) continue;
                    if (need < 0) snprintf(err, sizeof err, "eval tasks: %s", msg);
                    else snprintf(err, sizeof err, "eval tasks: --lengths: %lld tokens cannot hold a %s sample "
                                  "with tokenizer '%s' (it needs at least %lld)", (long long)a->lengths[i],
                                  TASK_DEFS[task].name, a->tokenizer ? a->tokenizer : c.cfg.data.tokenizer,
                                  (long long)need);
                    dist_exit_user_error(&r->d, err);
                }
        }
    }
    rope_config rope;
    char desc[256];
    model *m = load_model(r, &rope, desc, sizeof desc, &c, a->lengths[a->n_lengths - 1]);
    make_out_dir(r);
    int64_t *correct = xcalloc((size_t)(a->n_tasks * a->n_lengths * a->n_depths), sizeof(int64_t));
    for (int i = 0; i < a->n_lengths; i++) {
        const int64_t L = a->lengths[i];
        set_rope(m, &rope, L);
        if (r->root) printf("  tasks @ %lld tokens:", (long long)L);
        for (int t = 0; t < a->n_tasks; t++) {
            const int task = a->tasks[t];
            const int nd = TASK_DEFS[task].has_depth ? a->n_depths : 1;
            int64_t sum = 0;
            for (int j = 0; j < nd; j++) {
                const double depth = TASK_DEFS[task].has_depth ? a->depths[j] : -1;
                const uint64_t seed = eval_task_seed(a->seed, task, L, depth);
                const int64_t n = eval_task_correct(m, &env, task, L, depth, a->trials, seed, &r->er, msg, sizeof msg);
                if (n < 0) die("%s sample at %lld tokens: %s", TASK_DEFS[task].name, (long long)L, msg);  // checked above
                correct[((size_t)t * (size_t)a->n_lengths + (size_t)i) * (size_t)a->n_depths + (size_t)j] = n;
                sum += n;
            }
            if (r->root) printf(" %s %.0f%%", TASK_DEFS[task].name, 100.0 * (double)sum / (double)(a->trials * nd)), fflush(stdout);
        }
        if (r->root) printf("\n");
    }
    if (r->root) {
        char title[512];
        snprintf(title, sizeof title, "Tasks: %s (rope of %s)", base_name(c.path), desc);
        eval_task_grid g = {.n_tasks = a->n_tasks, .n_lengths = a->n_lengths, .n_depths = a->n_depths,
                            .tasks = a->tasks, .lengths = a->lengths, .depths = a->depths, .trials = a->trials,
                            .correct = correct, .threshold = a->threshold, .title = title};
        printf("\n");
        eval_report_tasks_table(stdout, &g);
        if (eval_report_tasks(a->out, &g, err, sizeof err) != 0) die_user("%s", err);
        printf("wrote %s/tasks.csv and %s/tasks.svg\n", a->out, a->out);
    }
    free(correct);
    free(hay);
    model_free(m);
    eval_ckpt_close(&c);
}

// ---------------------------------------------------------------------------
// ppl and short

typedef struct {
    eval_text text;
    eval_window *windows[EVAL_MAX_LIST];  // per length
    int64_t n_windows[EVAL_MAX_LIST];
    int64_t scored;                        // predictions per window (0: the length)
} ppl_data;

static void open_data(eval_run *r, ppl_data *p, const int64_t *lengths, int n_lengths) {
    const eval_args *a = r->a;
    char err[1024];
    memset(p, 0, sizeof *p);
    if (eval_text_open(&p->text, (const char *const *)a->data, a->n_data, err, sizeof err) != 0)
        dist_exit_user_error(&r->d, err);
    for (int i = 0; i < n_lengths; i++) {
        int64_t T = lengths[i];
        p->n_windows[i] = eval_windows(&p->windows[i], &p->text, T, a->sliding > 0 ? a->sliding : T, a->windows);
        if (p->n_windows[i] == 0) {
            snprintf(err, sizeof err, "eval %s: no document of --data holds %lld tokens for a window of "
                     "length %lld (the longest has %lld); use shorter lengths", a->name, (long long)(T + 1),
                     (long long)T, (long long)p->text.longest);
            dist_exit_user_error(&r->d, err);
        }
    }
}

static void close_data(ppl_data *p, int n_lengths) {
    for (int i = 0; i < n_lengths; i++) free(p->windows[i]);
    eval_text_close(&p->text);
}

// Opens every checkpoint once to check it (config, tokenizer, RoPE, the
// data's vocabulary) before any work.
static void check_ckpts(eval_run *r, const ppl_data *p) {
    const eval_args *a = r->a;
    for (int k = 0; k < a->n_ckpts; k++) {
        eval_ckpt c;
        open_ckpt(r, &c, a->ckpts[k]);
        rope_config rope;
        char desc[256], err[1024];
        if (eval_ckpt_rope(&rope, desc, sizeof desc, &c, &a->rope, err, sizeof err) != 0)
            dist_exit_user_error(&r->d, err);
        if (p->text.vocab_size > c.mc.vocab_size) {
            snprintf(err, sizeof err, "eval %s: the data's vocabulary (%lld ids) exceeds the model's of "
                     "checkpoint %s (%d): a shard of another tokenizer?", a->name,
                     (long long)p->text.vocab_size, c.path, c.mc.vocab_size);
            dist_exit_user_error(&r->d, err);
        }
        eval_ckpt_close(&c);
    }
}

// Mean NLL and scored predictions of checkpoint c at every length.
static void measure(eval_run *r, const ppl_data *p, const eval_ckpt *c, const int64_t *lengths,
                    int n_lengths, double *nll, int64_t *tokens) {
    const eval_args *a = r->a;
    rope_config rope;
    char desc[256];
    model *m = load_model(r, &rope, desc, sizeof desc, c, lengths[n_lengths - 1]);
    for (int i = 0; i < n_lengths; i++) {
        int64_t T = lengths[i];
        set_rope(m, &rope, T);
        double sums[2] = {0, 0};
        eval_nll(sums, m, &p->text, p->windows[i], p->n_windows[i], T, a->sliding > 0 ? a->sliding : T, &r->er);
        dist_allreduce_sum_double(&r->d, sums, 2);
        nll[i] = sums[0] / sums[1];
        tokens[i] = (int64_t)sums[1];
        if (r->root) {
            printf("  @ %6lld tokens: %3lld windows, %7lld predictions, nll %.4f, ppl %.2f\n", (long long)T,
                   (long long)p->n_windows[i], (long long)tokens[i], nll[i], exp(nll[i]));
            fflush(stdout);
        }
    }
    model_free(m);
}

static void run_ppl(eval_run *r) {
    const eval_args *a = r->a;
    ppl_data p;
    open_data(r, &p, a->lengths, a->n_lengths);
    check_ckpts(r, &p);
    make_out_dir(r);
    const size_t n = (size_t)(a->n_ckpts * a->n_lengths);
    double *nll = xmalloc(sizeof(double) * n);
    int64_t *tokens = xmalloc(sizeof(int64_t) * n);
    for (int k = 0; k < a->n_ckpts; k++) {
        eval_ckpt c;
        open_ckpt(r, &c, a->ckpts[k]);
        measure(r, &p, &c, a->lengths, a->n_lengths, nll + k * a->n_lengths, tokens + k * a->n_lengths);
        eval_ckpt_close(&c);
    }
    if (r->root) {
        char title[256], err[1024];
        if (a->sliding > 0) snprintf(title, sizeof title, "Perplexity vs context length (sliding windows, stride %lld)", (long long)a->sliding);
        else snprintf(title, sizeof title, "Perplexity vs context length");
        eval_ppl_table t = {.n_ckpts = a->n_ckpts, .n_lengths = a->n_lengths, .ckpts = a->ckpts,
                            .lengths = a->lengths, .tokens = tokens, .nll = nll, .title = title};
        if (eval_report_ppl(a->out, "ppl", &t, true, err, sizeof err) != 0) die_user("%s", err);
        printf("wrote %s/ppl.csv and %s/ppl.svg\n", a->out, a->out);
    }
    free(nll);
    free(tokens);
    close_data(&p, a->n_lengths);
}

static void run_short(eval_run *r) {
    const eval_args *a = r->a;
    eval_ckpt c[2];
    open_ckpt(r, &c[0], a->ckpts[0]);
    // The length: --length, else the original context of the before run.
    const int64_t L = a->length > 0 ? a->length : c[0].original_context;
    char err[1024];
    if (check_sliding(a, L, err, sizeof err) != 0) dist_exit_user_error(&r->d, err);
    ppl_data p;
    open_data(r, &p, &L, 1);
    check_ckpts(r, &p);
    make_out_dir(r);
    double nll[2];
    int64_t tokens[2];
    measure(r, &p, &c[0], &L, 1, &nll[0], &tokens[0]);
    eval_ckpt_close(&c[0]);
    open_ckpt(r, &c[1], a->ckpts[1]);
    measure(r, &p, &c[1], &L, 1, &nll[1], &tokens[1]);
    eval_ckpt_close(&c[1]);
    if (r->root) {
        printf("\nshort-context perplexity @ %lld tokens (%lld windows, %lld predictions scored)\n"
               "%-8s %9s %11s  %s\n", (long long)L, (long long)p.n_windows[0],
               (long long)tokens[0], "", "nll", "ppl", "checkpoint");
        const char *role[2] = {"before", "after"};
        for (int k = 0; k < 2; k++)
            printf("%-8s %9.4f %11.4f  %s\n", role[k], nll[k], exp(nll[k]), a->ckpts[k]);
        printf("%-8s %+9.4f %+10.2f%%\n", "change", nll[1] - nll[0], 100 * (exp(nll[1] - nll[0]) - 1));
        if (a->out) {
            eval_ppl_table t = {.n_ckpts = 2, .n_lengths = 1, .ckpts = a->ckpts, .lengths = &L,
                                .tokens = tokens, .nll = nll};
            if (eval_report_ppl(a->out, "short", &t, false, err, sizeof err) != 0) die_user("%s", err);
            printf("wrote %s/short.csv\n", a->out);
        }
    }
    close_data(&p, 1);
}

// ---------------------------------------------------------------------------

int cli_eval(int argc, char **argv) {
    eval_args a;
    char err[1024];
    int rc = parse_args(&a, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc == 1) usage(stdout);
        else fprintf(stderr, "stretch: error: %s\n", err);
        free_args(&a);
        return rc == 1 ? 0 : 2;
    }
    eval_run r = {.a = &a};
    dist_init(&r.d, &argc, &argv);
    int sp = a.sp > 0 ? (int)a.sp : r.d.size;
    if (sp != r.d.size) {
        snprintf(err, sizeof err, "eval %s: --sp %d but mpirun started %d rank(s) (eval splits every "
                 "sequence over all ranks)", a.name, sp, r.d.size);
        dist_exit_user_error(&r.d, err);
    }
    int uly = a.ulysses > 0 ? (int)a.ulysses : 1;
    if (sp % uly != 0) {
        snprintf(err, sizeof err, "eval %s: --ulysses %d does not divide the %d sequence-parallel "
                 "rank(s)", a.name, uly, sp);
        dist_exit_user_error(&r.d, err);
    }
    if (dist_init_grid3(&r.d, 1, sp / uly, uly, err, sizeof err) != 0) dist_exit_user_error(&r.d, err);
    r.root = r.d.rank == 0;
    r.er = (eval_ring){.sp = r.d.sp, .sp_rank = r.d.sp_rank, .all = ring_all, .ctx = &r.d,
                       .ulysses = r.d.ulysses};
    if (uly > 1) r.uly = ulysses_attn_create(&r.d);
    else if (r.d.sp > 1) r.ring = ring_attn_create(&r.d);
    if (a.backend && !strcmp(a.backend, "cuda")) {
        if (r.d.sp > 1) {
            snprintf(err, sizeof err, "eval %s: --backend cuda runs on one rank (the GPU ring "
                     "attention is wired into training only)", a.name);
            dist_exit_user_error(&r.d, err);
        }
        char why[512];
        r.bk = backend_create(BACKEND_CUDA, BK_BF16, 0, why, sizeof why);
        if (!r.bk) {
            snprintf(err, sizeof err, "eval %s: --backend %s", a.name, why);
            dist_exit_user_error(&r.d, err);
        }
    } else {
        r.bk = backend_cpu();
    }
    if (r.root) {
        printf("stretch eval %s: %d rank(s) = sp %d (ring %d x ulysses %d)\n", a.name, r.d.size,
               r.d.sp, r.d.ring, r.d.ulysses);
        fflush(stdout);
    }
    if (a.cmd == CMD_PASSKEY) run_passkey(&r);
    else if (a.cmd == CMD_TASKS) run_tasks(&r);
    else if (a.cmd == CMD_PPL) run_ppl(&r);
    else run_short(&r);
    ring_attn_free(r.ring);
    ulysses_attn_free(r.uly);
    backend_free(r.bk);
    free_args(&a);
    dist_finalize(&r.d);
    return 0;
}
