// cli_search: `stretch search`, the LongRoPE search of per-pair RoPE
// rescale factors and n_hat (search.h) for a checkpoint, before any
// fine-tuning. A candidate's fitness is a mean NLL of the checkpoint's
// model with that longrope rope on a FIXED sample, the same for every
// candidate: windows of held-out shards (--objective ppl, eval_ppl.h), or
// the answer tokens of needle samples (--objective needle, LongRoPE2's
// needle-driven objective, eval_needle.h).
//
// Two searches, one factors file: the long factors at the target length
// (--part long), LongRoPE2's critical dimension rule optional
// (--critical on); and LongRoPE's short-context recovery, the short factors
// at the original length with the long factors and n_hat kept (--part
// short, from --from; --part both runs the long search and then this one).
//
// Distributed like training: under `mpirun -n N` with --sp S the ranks
// form N/S dp groups of S ranks; the new candidates of a generation are
// dealt to the dp groups in turn (candidate j to group j % dp), and the S
// ranks of a group share each window or sample with ring attention
// (zig-zag slices, as in `stretch eval`). One all-reduce gathers the
// fitness array. Every rank then runs the same evolution step on the same
// numbers (it takes rank 0's copy), so no population is ever sent.
//
// Tested by tests/cli/test_search.sh and tests/cli/test_search_needle.sh.
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_search_args.h"
#include "curriculum.h"
#include "die.h"
#include "dist.h"
#include "eval.h"
#include "eval_ckpt.h"
#include "eval_needle.h"
#include "eval_ppl.h"
#include "errmsg.h"
#include "fsutil.h"
#include "model_sp_attn.h"
#include "mono_clock.h"
#include "ring_attn.h"
#include "run_config.h"
#include "search.h"
#include "search_io.h"
#include "tok.h"
#include "zigzag.h"

#define HAYSTACK_MAX (INT64_C(1) << 24)  // tokens of --data kept as the text tasks' haystack

// What a candidate is scored on at one length: windows of text, or needles.
typedef struct {
    int64_t T;
    const eval_text *text;       // ppl: windows w (n_w) of T tokens of text
    const eval_window *w;
    int64_t n_w;
    const eval_needles *needles; // needle: the answer tokens of these (text unused)
} scorer;

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
    int critical_pair;       // the first pair whose period exceeds the original context
    char needle_desc[256];   // "passkey x8"
    eval_text text;          // --data (when given)
    eval_window *win_long, *win_short;  // windows of L and of the original length
    int64_t n_win_long, n_win_short;
    eval_needles needles_long, needles_short;
    eval_text check;         // --check-data
    eval_window *check_w;
    int64_t n_check;
    char summary[2][512];    // the long and short searches' results, for the factors file's comment
} search_run;

// One search: the long factors at L, or the short ones at the original length.
typedef struct {
    search_run *r;
    bool is_short;
    scorer fit;
    search_candidate kept;   // short: the long factors and n_hat kept
} phase;

// A search set up (space, baselines, state: fresh or resumed) and ready to run.
typedef struct {
    phase ph;
    search_space sp;
    double base[SEARCH_N_BASELINES][ROPE_MAX_PAIRS];
    search_state st;
    char state_path[4200];
} search_job;

static bool needle_objective(const search_run *r) { return r->a->objective == SEARCH_OBJ_NEEDLE; }

// nll (n) <- mean NLL of the model with each rope on sc. Config j is scored
// by dp group j % dp.
static void score(search_run *r, double *nll, const rope_config *ropes, int n, const scorer *sc) {
    double *sums = xcalloc((size_t)(2 * n), sizeof(double));
    for (int j = 0; j < n; j++) {
        if (j % r->d.dp != r->d.dp_rank) continue;
        rope_table t;
        rope_table_init(&t, &ropes[j], sc->T);
        model_set_rope(r->m, &t);
        if (sc->needles) eval_needle_nll(&sums[2 * j], r->m, sc->needles, &r->er);
        else eval_nll(&sums[2 * j], r->m, sc->text, sc->w, sc->n_w, sc->T, sc->T, &r->er);
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

// The longrope config of candidate c in phase ph.
static rope_config candidate_rope(const phase *ph, const search_candidate *c) {
    const search_run *r = ph->r;
    if (ph->is_short)
        return search_rope_short(&r->model_rope, r->original, r->a->target, c->lambda, &ph->kept, r->n_pairs);
    return search_rope(&r->model_rope, r->original, r->a->target, c, r->n_pairs);
}

// search_fitness_fn: scores the candidates not scored yet.
static void fitness(void *ctx, search_candidate *pop, int n) {
    phase *ph = ctx;
    int *idx = xmalloc(sizeof(int) * (size_t)n), m = 0;
    for (int i = 0; i < n; i++)
        if (isnan(pop[i].nll)) idx[m++] = i;
    if (m == 0) {  // topk == population: nothing new
        free(idx);
        return;
    }
    rope_config *ropes = xmalloc(sizeof(rope_config) * (size_t)m);
    double *nll = xmalloc(sizeof(double) * (size_t)m);
    for (int j = 0; j < m; j++) ropes[j] = candidate_rope(ph, &pop[idx[j]]);
    score(ph->r, nll, ropes, m, &ph->fit);
    for (int j = 0; j < m; j++) pop[idx[j]].nll = nll[j];
    free(idx);
    free(ropes);
    free(nll);
}

// ---------------------------------------------------------------------------
// Opening: the checkpoint, the data, the needles (every user error here)

// The shards of paths (--data or --check-data) into text.
static void open_text(search_run *r, eval_text *text, char *const *paths, int n, const char *opt) {
    char err[1024], msg[512];
    if (eval_text_open(text, (const char *const *)paths, n, msg, sizeof msg) != 0) {
        snprintf(err, sizeof err, "search: %s: %s", opt, msg);
        dist_exit_user_error(&r->d, err);
    }
    if (text->vocab_size > r->ckpt.mc.vocab_size) {
        snprintf(err, sizeof err, "search: %s: the data's vocabulary (%" PRId64 " ids) exceeds the model's "
                 "(%d): a shard of another tokenizer?", opt, text->vocab_size, r->ckpt.mc.vocab_size);
        dist_exit_user_error(&r->d, err);
    }
}

// --windows windows of length L of text; none is an error when required.
static int64_t open_windows(search_run *r, const eval_text *text, eval_window **w, const char *opt, int64_t L,
                            const char *what, bool required) {
    char err[1024];
    int64_t n_w = eval_windows(w, text, L, L, r->a->windows);
    if (n_w == 0 && required) {
        snprintf(err, sizeof err, "search: %s: no document holds %" PRId64 " tokens for a window of "
                 "%s %" PRId64 " (the longest has %" PRId64 ")", opt, L + 1, what, L, text->longest);
        dist_exit_user_error(&r->d, err);
    }
    return n_w;
}

static void open_needles(search_run *r, eval_needles *nd, int64_t T, const char *what) {
    const search_args *a = r->a;
    passkey_config pk = {.encode = tok_encode_into, .encode_ctx = r->ckpt.tok, .bos_id = -1, .n_keys = 1,
                         .depth = -1, .answer_only = 1, .compact = r->ckpt.cfg.data.passkey_compact};
    task_env env = {.encode = tok_encode_into, .encode_ctx = r->ckpt.tok, .bos_id = -1, .answer_only = 1};
    int32_t *hay = NULL;
    for (int i = 0; i < a->n_needle_tasks; i++)
        if (a->needle_tasks[i] >= 0 && TASK_DEFS[a->needle_tasks[i]].needs_text && !hay) {
            // The haystack of the text tasks: the --data documents, concatenated (at most HAYSTACK_MAX tokens).
            int64_t n = 0;
            for (int s = 0; s < r->text.n; s++) n += r->text.shards[s].n_tokens;
            n = n < HAYSTACK_MAX ? n : HAYSTACK_MAX;
            hay = xmalloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
            for (int64_t s = 0, at = 0; s < r->text.n && at < n; s++) {
                const int64_t k = r->text.shards[s].n_tokens < n - at ? r->text.shards[s].n_tokens : n - at;
                shard_read(hay + at, &r->text.shards[s], 0, k);
                at += k;
            }
            env.haystack = hay;
            env.haystack_len = n;
        }
    char err[1024], msg[768];
    if (eval_needles_make(nd, &pk, &env, a->needle_tasks, a->n_needle_tasks, (int)a->needles, T, a->seed, msg,
                          sizeof msg) != 0) {
        snprintf(err, sizeof err, "search: --needle-tasks at %s %" PRId64 ": %s", what, T, msg);
        dist_exit_user_error(&r->d, err);
    }
    free(hay);
}

// The checkpoint, its original context, the target's checks, the critical pair.
static void open_model(search_run *r) {
    const search_args *a = r->a;
    char err[1024];
    if (eval_ckpt_open(&r->ckpt, a->ckpt, a->tokenizer, err, sizeof err) != 0)
        dist_exit_user_error(&r->d, err);
    const eval_ckpt *c = &r->ckpt;
    r->original = c->original_context;
    const curr_plan plan = c->imported ? (curr_plan){.seq_len = 0, .name = "imported"}
                                       : *curr_stage_plan(&c->curr, c->trained_stage);
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
    r->critical_pair = search_critical_pair(&r->model_rope, r->original);
    const double s = (double)a->target / (double)r->original;
    if (a->critical && a->max_factor > 0 && a->max_factor < s) {
        snprintf(err, sizeof err, "search: --max-factor %g must be >= the extension ratio s = %g (%" PRId64
                 " / %" PRId64 "): the critical pairs need at least s", a->max_factor, s, a->target, r->original);
        dist_exit_user_error(&r->d, err);
    }
    if (!c->imported) {
        const rope_config trained = *curr_stage_rope(&c->curr, c->trained_stage);
        if (r->root && trained.type != ROPE_TYPE_DEFAULT)
            fprintf(stderr, "stretch: warning: %s was trained with rope %s (stage %d); the search replaces it by "
                    "longrope factors relative to the original context %" PRId64 "\n", c->path,
                    rope_type_name(trained.type), c->trained_stage, r->original);
    }
}

// --from: the long factors and n_hat the short search keeps.
static void read_from(search_run *r, search_candidate *kept) {
    const char *path = r->a->from;
    char err[1024], msg[768];
    cfg_doubles sf, lf;
    int64_t n_hat = 0;
    if (cfg_read_factors(&sf, &lf, &n_hat, path, msg, sizeof msg) != 0) {
        snprintf(err, sizeof err, "search: --from: %s", msg);
        dist_exit_user_error(&r->d, err);
    }
    int bad = lf.n != r->n_pairs ? 1 : 0;
    for (int i = 0; i < lf.n && !bad; i++) bad = !(lf.v[i] > 0) || !isfinite(lf.v[i]) ? 2 : 0;
    if (!bad && n_hat >= r->original) bad = 3;
    if (bad) {
        if (bad == 1) snprintf(err, sizeof err, "search: --from %s: %d long factors; the model has %d rotary pairs",
                               path, lf.n, r->n_pairs);
        else if (bad == 2) snprintf(err, sizeof err, "search: --from %s: long_factor values must be > 0", path);
        else snprintf(err, sizeof err, "search: --from %s: n_hat %" PRId64 " is not below the original context %"
                      PRId64, path, n_hat, r->original);
        free(sf.v);
        free(lf.v);
        dist_exit_user_error(&r->d, err);
    }
    memset(kept, 0, sizeof *kept);
    memcpy(kept->lambda, lf.v, sizeof(double) * (size_t)lf.n);
    kept->n_hat = n_hat;
    kept->nll = NAN;
    free(sf.v);
    free(lf.v);
}

static void load_weights(search_run *r) {
    char err[1024];
    zigzag_layout z;
    zigzag_layout_init(&z, r->a->target, r->d.sp, 0);
    r->m = eval_ckpt_model(&r->ckpt, r->d.sp > 1 ? z.T_local : r->a->target, NULL, err, sizeof err);
    if (!r->m) dist_exit_user_error(&r->d, err);
    if (r->ring) {
        model_attention att = model_ring_attention(r->ring);
        model_set_attention(r->m, &att);
    }
}

// ---------------------------------------------------------------------------
// State, settings, outputs

static uint64_t fnv1a(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void settings_of(search_settings *s, const phase *ph) {
    const search_run *r = ph->r;
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
    if (needle_objective(r)) search_settings_add(s, "objective", "needle %s", r->needle_desc);
    else search_settings_add(s, "objective", "ppl");
    if (ph->is_short) {
        uint64_t h = fnv1a(ph->kept.lambda, sizeof(double) * (size_t)r->n_pairs, 0xcbf29ce484222325ull);
        search_settings_add(s, "part", "short, long factors fnv1a %016" PRIx64 ", n_hat %" PRId64, h, ph->kept.n_hat);
    } else if (a->critical) {
        search_settings_add(s, "critical", "on, pairs from %d, max factor %.17g", r->critical_pair, a->max_factor);
    } else {
        search_settings_add(s, "critical", "off");
    }
}

// A fresh search, or the one saved in --state (DIR/name).
static void start_state(phase *ph, search_state *st, const search_space *sp,
                        const double base[SEARCH_N_BASELINES][ROPE_MAX_PAIRS], const char *name,
                        char *state_path, size_t pathlen) {
    search_run *r = ph->r;
    const search_args *a = r->a;
    char err[2048], msg[1536];
    search_settings now, saved;
    settings_of(&now, ph);
    state_path[0] = '\0';
    if (a->state) {
        int rc = r->root ? fsutil_mkdirs(a->state, "--state", msg, sizeof msg) : 0;
        if (dist_any(&r->d, rc != 0)) {
            if (rc != 0) die_user("%s", msg);
            die_user("creating --state failed on rank 0");
        }
        snprintf(state_path, pathlen, "%s/%s", a->state, name);
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
            if (st->space.n_pairs != sp->n_pairs || st->space.s != sp->s ||
                memcmp(st->space.lo, sp->lo, sizeof(double) * (size_t)sp->n_pairs) ||
                memcmp(st->space.hi, sp->hi, sizeof(double) * (size_t)sp->n_pairs)) {
                snprintf(err, sizeof err, "search: --state %s: saved for %d pairs and ratio %g (or other bounds), "
                         "now %d and %g", a->state, st->space.n_pairs, st->space.s, sp->n_pairs, sp->s);
                dist_exit_user_error(&r->d, err);
            }
            if (r->root) printf("resuming from %s: %d generation(s) done\n", state_path, st->generation);
            return;
        }
    }
    search_state_init(st, sp, base, (int)a->population, (int)a->topk, a->seed);
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

// "perplexity" or "answer perplexity (passkey x8)": what exp(fitness) is.
static void metric(char *buf, size_t len, const search_run *r) {
    if (needle_objective(r)) snprintf(buf, len, "answer perplexity (%s)", r->needle_desc);
    else snprintf(buf, len, "perplexity");
}

static void print_four(const char *what, const char *where, int64_t L, const double nll[4], int64_t n_hat) {
    printf("%s @ %" PRId64 " tokens%s: PI %.4f, NTK %.4f, YaRN %.4f, searched %.4f (n_hat %" PRId64 ")\n", what,
           L, where, exp(nll[0]), exp(nll[1]), exp(nll[2]), exp(nll[3]), n_hat);
}

// ---------------------------------------------------------------------------
// One search

static const char *const SHORT_BASELINES[SEARCH_N_BASELINES] = {"short 1", "short = long", "short = sqrt(long)"};

// Runs generations up to --generations (or --stop-after). True when done.
static bool run_generations(phase *ph, search_state *st, const char *state_path) {
    search_run *r = ph->r;
    const search_args *a = r->a;
    char msg[1024];
    const int G = (int)a->generations;
    const char *tag = ph->is_short ? "short " : "";
    while (st->generation < G && !(a->stop_after > 0 && st->generation >= a->stop_after)) {
        double t0 = mono_clock_s();
        int64_t before = st->evaluated;
        search_generation(st, fitness, ph);
        const search_history *h = &st->history[st->generation - 1];
        if (r->root) {
            if (st->generation == 1)
                printf("%sgeneration 1: %s %.4f, %s %.4f, %s %.4f (exp of the fitness)\n", tag,
                       ph->is_short ? SHORT_BASELINES[0] : "PI", exp(st->baseline_nll[0]),
                       ph->is_short ? SHORT_BASELINES[1] : "NTK", exp(st->baseline_nll[1]),
                       ph->is_short ? SHORT_BASELINES[2] : "YaRN", exp(st->baseline_nll[2]));
            printf("%sgeneration %d/%d: %" PRId64 " candidates in %.1f s; best %.4f (nll %.6f, n_hat %" PRId64
                   "), mean nll %.4f\n", tag, st->generation, G, st->evaluated - before, mono_clock_s() - t0,
                   exp(h->best_nll), h->best_nll, h->best_n_hat, h->mean_nll);
            fflush(stdout);
        }
        int rc = 0;
        if (state_path[0] && r->root) {
            search_settings now;
            settings_of(&now, ph);
            rc = search_state_save(state_path, st, &now, msg, sizeof msg);
        }
        if (dist_any(&r->d, rc != 0)) {
            if (rc != 0) die_user("search: --state: %s", msg);
            die_user("search: saving the state failed on rank 0");
        }
    }
    if (st->generation < G) {
        if (r->root) printf("stopped after %sgeneration %d of %d (--stop-after); resume with --state %s\n", tag,
                            st->generation, G, a->state);
        return false;
    }
    return true;
}

static void write_report(const phase *ph, const search_state *st) {
    const search_run *r = ph->r;
    char csv[4200], svg[4200], err[1024], title[512], what[300];
    beside(csv, sizeof csv, r->a->out, ph->is_short ? "-short.csv" : ".csv");
    beside(svg, sizeof svg, r->a->out, ph->is_short ? "-short.svg" : ".svg");
    metric(what, sizeof what, r);
    snprintf(title, sizeof title, "LongRoPE search (%s factors): %s at %" PRId64 " tokens",
             ph->is_short ? "short" : "long", what, ph->fit.T);
    if (search_write_report(csv, svg, st, ph->is_short ? SHORT_BASELINES : NULL, title, what, err, sizeof err))
        die_user("search: %s", err);
    printf("wrote %s and %s\n", csv, svg);
}

// PI, NTK and YaRN as their own rope types (linear; default with base';
// yarn with its attention factor), not in the longrope form the search
// scores: what a user of those methods would get.
static void score_native(search_run *r, double nll[SEARCH_N_BASELINES], const scorer *sc) {
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
    score(r, nll, ropes, SEARCH_N_BASELINES, sc);
}

// The four longrope configs: the baselines (n_hat 0) and best.
static void four_ropes(const search_run *r, rope_config ropes[4], const double base[][ROPE_MAX_PAIRS],
                       const search_candidate *best) {
    for (int b = 0; b < 4; b++) {
        search_candidate c = *best;
        if (b < SEARCH_N_BASELINES) {
            memcpy(c.lambda, base[b], sizeof c.lambda);
            c.n_hat = 0;
        }
        ropes[b] = search_rope(&r->model_rope, r->original, r->a->target, &c, r->n_pairs);
    }
}

// The long factors at L: space, baselines, state (every user error here).
static void setup_long(search_run *r, search_job *j) {
    const search_args *a = r->a;
    char err[1024], msg[512];
    search_space *sp = &j->sp;
    if (search_space_init(sp, r->n_pairs, (double)a->target / (double)r->original, a->nhat, a->n_nhat, msg,
                          sizeof msg) != 0) {
        snprintf(err, sizeof err, "search: --nhat: %s", msg);
        dist_exit_user_error(&r->d, err);
    }
    if (a->critical &&
        search_space_critical(sp, r->critical_pair, a->max_factor > 0 ? a->max_factor : sp->s, msg, sizeof msg)) {
        snprintf(err, sizeof err, "search: --critical: %s", msg);
        dist_exit_user_error(&r->d, err);
    }
    j->ph = (phase){.r = r, .is_short = false,
                    .fit = needle_objective(r)
                               ? (scorer){.T = a->target, .needles = &r->needles_long}
                               : (scorer){.T = a->target, .text = &r->text, .w = r->win_long, .n_w = r->n_win_long}};
    memset(j->base, 0, sizeof j->base);
    search_pi(j->base[SEARCH_PI], sp);
    search_ntk(j->base[SEARCH_NTK], sp);
    search_yarn(j->base[SEARCH_YARN], sp, &r->model_rope, r->original, a->target);
    for (int b = 0; b < SEARCH_N_BASELINES; b++) search_project(j->base[b], sp);  // the critical bounds
    start_state(&j->ph, &j->st, sp, (const double(*)[ROPE_MAX_PAIRS])j->base, "search.state", j->state_path,
                sizeof j->state_path);
}

// The long search. True when done (*best set).
static bool run_long(search_run *r, search_job *j, search_candidate *best) {
    const search_args *a = r->a;
    search_state *st = &j->st;
    if (r->root) {
        if (needle_objective(r))
            printf("long factors: %d pairs and n_hat for %" PRId64 " tokens (s = %g), fitness: the answer tokens of "
                   "%d needle samples (%s, %" PRId64 " tokens)\n", r->n_pairs, a->target, j->sp.s, r->needles_long.n,
                   r->needle_desc, r->needles_long.answer_tokens);
        else
            printf("long factors: %d pairs and n_hat for %" PRId64 " tokens (s = %g), fitness: perplexity on %" PRId64
                   " windows\n", r->n_pairs, a->target, j->sp.s, r->n_win_long);
        fflush(stdout);
    }
    if (!run_generations(&j->ph, st, j->state_path)) return false;
    *best = *search_best(st);
    double native[SEARCH_N_BASELINES];
    score_native(r, native, &j->ph.fit);
    const double four[4] = {st->baseline_nll[0], st->baseline_nll[1], st->baseline_nll[2], best->nll};
    rope_config ropes[4];
    four_ropes(r, ropes, (const double(*)[ROPE_MAX_PAIRS])j->base, best);
    double ppl4[4], check4[4], check_native[SEARCH_N_BASELINES];
    const scorer text_l = {.T = a->target, .text = &r->text, .w = r->win_long, .n_w = r->n_win_long};
    const scorer check_l = {.T = a->target, .text = &r->check, .w = r->check_w, .n_w = r->n_check};
    if (needle_objective(r) && r->n_win_long) score(r, ppl4, ropes, 4, &text_l);
    if (r->n_check) {
        score(r, check4, ropes, 4, &check_l);
        score_native(r, check_native, &check_l);
    }
    if (r->root) {
        char what[300], where[96];
        metric(what, sizeof what, r);
        printf("\n");
        if (a->critical) printf("(the baselines projected onto the critical bounds: pairs >= %d at >= s)\n",
                                r->critical_pair);
        print_four(what, "", a->target, four, best->n_hat);
        printf("  native rope types (attention factor of each): linear %.4f, NTK base %.4f, yarn %.4f\n",
               exp(native[0]), exp(native[1]), exp(native[2]));
        if (needle_objective(r) && r->n_win_long) {
            snprintf(where, sizeof where, " on --data (%" PRId64 " windows)", r->n_win_long);
            print_four("perplexity", where, a->target, ppl4, best->n_hat);
        }
        if (r->n_check) {
            snprintf(where, sizeof where, " on --check-data (%" PRId64 " windows)", r->n_check);
            print_four("perplexity", where, a->target, check4, best->n_hat);
            printf("  native rope types on --check-data: linear %.4f, NTK base %.4f, yarn %.4f\n",
                   exp(check_native[0]), exp(check_native[1]), exp(check_native[2]));
        }
        printf("long_factor:");
        for (int i = 0; i < r->n_pairs; i++) printf(" %.4g", best->lambda[i]);
        printf(" (n_hat %" PRId64 ")\n", best->n_hat);
        write_report(&j->ph, st);
        snprintf(r->summary[0], sizeof r->summary[0], "%s at %" PRId64 ": PI %.4f, NTK %.4f, YaRN %.4f, searched %.4f",
                 what, a->target, exp(four[0]), exp(four[1]), exp(four[2]), exp(four[3]));
    }
    return true;
}

// The short factors at the original length with kept's long factors and
// n_hat: space, baselines (1, the long factors, their square roots), state.
static void setup_short(search_run *r, search_job *j, const search_candidate *kept) {
    const search_args *a = r->a;
    const int64_t O = r->original;
    char err[1024], msg[512];
    const int64_t zero = 0;
    if (search_space_init(&j->sp, r->n_pairs, (double)a->target / (double)O, &zero, 1, msg, sizeof msg) != 0) {
        snprintf(err, sizeof err, "search: %s", msg);
        dist_exit_user_error(&r->d, err);
    }
    search_space_fix_nhat(&j->sp, kept->n_hat);
    j->ph = (phase){.r = r, .is_short = true, .kept = *kept,
                    .fit = needle_objective(r) ? (scorer){.T = O, .needles = &r->needles_short}
                                               : (scorer){.T = O, .text = &r->text, .w = r->win_short,
                                                          .n_w = r->n_win_short}};
    memset(j->base, 0, sizeof j->base);
    for (int i = 0; i < r->n_pairs; i++) {
        j->base[0][i] = 1.0;
        j->base[1][i] = kept->lambda[i];
        j->base[2][i] = sqrt(kept->lambda[i]);
    }
    start_state(&j->ph, &j->st, &j->sp, (const double(*)[ROPE_MAX_PAIRS])j->base, "search-short.state",
                j->state_path, sizeof j->state_path);
}

// The short search. True when done (short_f set).
static bool run_short(search_run *r, search_job *j, double *short_f) {
    const int64_t O = r->original;
    search_state *st = &j->st;
    if (r->root) {
        printf("short factors: %d pairs at the original length %" PRId64 " (long factors and n_hat %" PRId64
               " kept), fitness: %s\n", r->n_pairs, O, j->ph.kept.n_hat,
               needle_objective(r) ? "the answer tokens of needle samples" : "perplexity");
        fflush(stdout);
    }
    if (!run_generations(&j->ph, st, j->state_path)) return false;
    const search_candidate *best = search_best(st);
    memcpy(short_f, best->lambda, sizeof(double) * (size_t)r->n_pairs);
    double orig;
    score(r, &orig, &r->model_rope, 1, &j->ph.fit);  // the pretrained rope: what short context had
    if (r->root) {
        char what[300];
        metric(what, sizeof what, r);
        printf("\n%s @ %" PRId64 " tokens: original RoPE %.4f; longrope with %s %.4f, %s %.4f, %s %.4f, "
               "searched %.4f\n", what, O, exp(orig), SHORT_BASELINES[0], exp(st->baseline_nll[0]),
               SHORT_BASELINES[1], exp(st->baseline_nll[1]), SHORT_BASELINES[2], exp(st->baseline_nll[2]),
               exp(best->nll));
        printf("short_factor:");
        for (int i = 0; i < r->n_pairs; i++) printf(" %.4g", short_f[i]);
        printf("\n");
        write_report(&j->ph, st);
        snprintf(r->summary[1], sizeof r->summary[1], "%s at %" PRId64 ": original RoPE %.4f, short 1 %.4f, "
                 "searched %.4f", what, O, exp(orig), exp(st->baseline_nll[0]), exp(best->nll));
    }
    return true;
}

static void write_factors(search_run *r, const double *short_f, const search_candidate *long_c) {
    const search_args *a = r->a;
    char comment[8192], err[1024];
    snprintf(comment, sizeof comment,
             "LongRoPE factors from stretch search: %s, %" PRId64 " -> %" PRId64 " tokens (s = %g), seed %" PRIu64 ".\n"
             "long_factor: %s%s%s.\n"
             "short_factor: %s%s%s.\n"
             "Use as a stage's rope.factors_file with rope.type longrope and seq_len %" PRId64 ".\n"
             "n_hat has no Hugging Face key: stretch export drops it.",
             a->ckpt, r->original, a->target, (double)a->target / (double)r->original, a->seed,
             a->part == SEARCH_PART_SHORT ? "kept from " : a->critical ? "searched, critical rule on; " : "searched; ",
             a->part == SEARCH_PART_SHORT ? a->from : "", r->summary[0],
             short_f ? "searched; " : "1 (not searched: --part short or both does)", r->summary[1], "", a->target);
    if (search_write_factors(a->out, short_f, long_c, r->n_pairs, comment, err, sizeof err) != 0)
        die_user("search: %s", err);
    printf("wrote %s\n", a->out);
}

// ---------------------------------------------------------------------------

static void print_critical(const search_run *r) {
    const int c = r->critical_pair, n = r->n_pairs;
    if (c == n) {
        printf("critical dimension: none; no rotary pair's period exceeds the original context %" PRId64
               " (the longest, pair %d: %.1f tokens)\n", r->original, n - 1, search_pair_period(&r->model_rope, n - 1));
        return;
    }
    printf("critical dimension %d (LongRoPE2): rotary pairs %d..%d of %d (dims %d..%d of %d) have periods above the "
           "original context %" PRId64 " (pair %d: %.1f tokens", 2 * c, c, n - 1, n, 2 * c, 2 * n - 1, 2 * n,
           r->original, c, search_pair_period(&r->model_rope, c));
    if (c > 0) printf("; pair %d: %.1f", c - 1, search_pair_period(&r->model_rope, c - 1));
    printf(")%s\n", r->a->critical ? "; --critical on: they get factors >= s" : "");
}

static void run(search_run *r) {
    const search_args *a = r->a;
    char err[1024];
    open_model(r);
    search_needle_desc(r->needle_desc, sizeof r->needle_desc, a);
    for (int i = 0; i < a->n_nhat; i++)
        if (a->nhat[i] >= a->target) {
            snprintf(err, sizeof err, "search: --nhat %" PRId64 " is not below --target-len %" PRId64,
                     a->nhat[i], a->target);
            dist_exit_user_error(&r->d, err);
        }
    const bool do_long = a->part != SEARCH_PART_SHORT, do_short = a->part != SEARCH_PART_LONG;
    search_candidate kept;
    if (a->part == SEARCH_PART_SHORT) read_from(r, &kept);
    // Every sample up front, so that a bad length or file stops the run before any compute.
    const bool ppl = a->objective == SEARCH_OBJ_PPL;
    if (a->n_data) open_text(r, &r->text, a->data, a->n_data, "--data");
    if (do_long && a->n_data)  // needle: the perplexity of the four is also reported when it can be
        r->n_win_long = open_windows(r, &r->text, &r->win_long, "--data", a->target, "--target-len", ppl);
    if (do_short && ppl)
        r->n_win_short = open_windows(r, &r->text, &r->win_short, "--data", r->original, "the original context", true);
    if (!ppl && do_long) open_needles(r, &r->needles_long, a->target, "--target-len");
    if (!ppl && do_short) open_needles(r, &r->needles_short, r->original, "the original context");
    if (a->n_check) {
        open_text(r, &r->check, a->check, a->n_check, "--check-data");
        r->n_check = open_windows(r, &r->check, &r->check_w, "--check-data", a->target, "--target-len", true);
    }
    // The searches that can be set up now (states checked against the settings) before anything is written.
    search_job *jl = xcalloc(1, sizeof *jl), *js = xcalloc(1, sizeof *js);
    if (do_long) setup_long(r, jl);
    if (a->part == SEARCH_PART_SHORT) setup_short(r, js, &kept);
    make_out_parent(r);
    load_weights(r);
    if (r->root) {
        printf("%s: step %" PRId64 ", %.2fM parameters, original context %" PRId64 "; %d rank(s) = dp %d x sp %d\n",
               a->ckpt, r->ckpt.step, (double)r->m->n_params / 1e6, r->original, r->d.size, r->d.dp, r->d.sp);
        print_critical(r);
        fflush(stdout);
    }
    double short_f[ROPE_MAX_PAIRS];
    bool done = true;
    if (do_long) {
        done = run_long(r, jl, &kept);
        if (done && a->part == SEARCH_PART_BOTH) setup_short(r, js, &kept);
    }
    if (done && do_short) done = run_short(r, js, short_f);
    if (done && r->root) write_factors(r, do_short ? short_f : NULL, &kept);
    search_state_free(&jl->st);
    search_state_free(&js->st);
    free(jl);
    free(js);
}

int cli_search(int argc, char **argv) {
    search_args a;
    char err[1024];
    int rc = search_parse_args(&a, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc == 1) search_usage(stdout);
        else fprintf(stderr, "stretch: error: %s\n", err);
        search_args_free(&a);
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
    free(r.win_long);
    free(r.win_short);
    free(r.check_w);
    eval_needles_free(&r.needles_long);
    eval_needles_free(&r.needles_short);
    if (r.text.n) eval_text_close(&r.text);
    if (r.check.n) eval_text_close(&r.check);
    eval_ckpt_close(&r.ckpt);
    ring_attn_free(r.ring);
    search_args_free(&a);
    dist_finalize(&r.d);
    return 0;
}
