// train_estimate: the run's duration from measured steps. See train_estimate.h.
#include "train_estimate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "die.h"
#include "train.h"
#include "train_batch.h"
#include "train_step.h"

// "1h02m", "3m05s", "12.3s", "0.42s".
static void fmt_duration(char *out, size_t n, double s) {
    if (s >= 3600) snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60) snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(out, n, s >= 10 ? "%.1fs" : "%.2fs", s);
}

// Wall time of what runs between two agreed points on every rank.
static double since(train_state *st, double t0) {
    dist_barrier(&st->dist);
    return metrics_now() - t0;
}

static double start(train_state *st) {
    dist_barrier(&st->dist);
    return metrics_now();
}

// Seconds of one passkey sample at length L (every depth once, averaged),
// with stage s's RoPE for L. Cached per length: the cost hardly depends on
// the stage's table.
typedef struct {
    int64_t len[64];
    double s[64];
    int n;
} sample_times;

static double passkey_sample_s(train_state *st, sample_times *c, int s, int64_t L) {
    for (int i = 0; i < c->n; i++)
        if (c->len[i] == L) return c->s[i];
    int depths = st->cfg.eval.passkey_depths.n > 0 ? st->cfg.eval.passkey_depths.n : 1;
    rope_table keep = st->m->rope, t;
    train_stage_rope_table(&t, st, s, L);
    model_set_rope(st->m, &t);
    double t0 = start(st);
    train_passkey_mean(st, L, 1, st->eval_seed, 1000003ull, NULL, "eval.passkey_lengths");
    double dt = since(st, t0) / depths;
    model_set_rope(st->m, &keep);
    if (c->n < 64) {
        c->len[c->n] = L;
        c->s[c->n++] = dt;
    }
    return dt;
}

// The most steps a stage's gate adds: its extensions until the cap.
static int64_t gate_extra_steps(const train_state *st, int s) {
    const cfg_gate *g = &curr_stage_plan(&st->curr, s)->gate;
    if (!curr_gate_needed(&st->curr, s) && !g->task) return 0;
    int64_t extra = 0, chunk;
    while ((chunk = curr_gate_extension(&st->curr, s, extra)) > 0) extra += chunk;
    return extra;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double step_s, fwd_s;  // one optimizer step; one forward of the stage's batch
} stage_times;

// One warm-up step, then TRAIN_ESTIMATE_STEPS timed ones on stage s's rows.
static stage_times measure_stage(train_state *st, int s) {
    const cfg_run *c = &st->cfg;
    const curr_plan plan = *curr_stage_plan(&st->curr, s);
    rope_table t;
    curr_train_rope_table(&t, &st->curr, s);
    model_set_rope(st->m, &t);
    const char *paths[64];
    int n = train_stage_shards(st, &plan, paths, 64);
    int64_t rows = plan.batch_tokens / plan.seq_len;
    double copy = fmin(c->data.copy_ratio, 1.0 - plan.passkey_ratio);
    data_config dc = train_data_config(st, plan.seq_len, rows, plan.passkey_ratio, copy, plan.pose_len,
                                       plan.passkey_pack_min, plan.passkey_pack_long,
                                       (uint64_t)c->train.seed, true,
                                       c->stages[s].tasks);
    char err[512];
    data_loader *L = data_loader_open(paths, n, &dc, err, sizeof err);
    if (!L) die_user("%s", err);  // preflight opened it already
    data_batch db;
    data_batch_init(&db, L);
    train_batch lb = {0};
    stage_times r = {0, 0};
    double times[TRAIN_ESTIMATE_STEPS];
    for (int i = -1; i < TRAIN_ESTIMATE_STEPS; i++) {  // step -1 warms caches and allocations
        double t0 = start(st);
        data_next_batch(L, &db);
        train_batch_make(&lb, &db, st->dist.sp, st->dist.ulysses, st->dist.sp_rank, st->m->rope.short_len);
        double norm;
        bool skipped;
        train_step_run(st, &lb.mb, db.n_targets_global, plan.lr, &norm, &skipped);
        if (i >= 0) times[i] = since(st, t0);
    }
    // The median: one step stalled by another process does not make the estimate.
    qsort(times, TRAIN_ESTIMATE_STEPS, sizeof times[0], cmp_double);
    r.step_s = times[TRAIN_ESTIMATE_STEPS / 2];
    // The validation loss runs this batch's shape forward only.
    train_step_eval_begin(st);  // shard parameters: gathered unit by unit, as the evaluation
    double t0 = start(st);
    model_forward(st->m, &lb.mb, NULL);
    r.fwd_s = since(st, t0);
    train_step_eval_end(st);
    train_batch_free(&lb);
    data_batch_free(&db);
    data_loader_free(L);
    return r;
}

// Seconds of the evaluation at stage s's end (validation loss, passkey table)
// and of one gate check.
static void eval_costs(train_state *st, sample_times *cache, int s, const stage_times *m,
                       int64_t steps, double *end_s, double *gate_s) {
    const cfg_run *c = &st->cfg;
    const curr_plan *plan = curr_stage_plan(&st->curr, s);
    bool val = c->data.val.n > 0 || st->train_shards[1][0];
    int64_t val_batches = c->eval.val_tokens > 0
                              ? (c->eval.val_tokens + plan->batch_tokens - 1) / plan->batch_tokens : 1;
    double val_s = val ? (double)val_batches * m->fwd_s : 0;
    // at the stage's end, and every eval_every steps within it
    int64_t n_val = c->train.eval_every > 0 ? steps / c->train.eval_every + (steps % c->train.eval_every != 0) : 1;
    *end_s = (double)n_val * val_s;
    int depths = c->eval.passkey_depths.n;
    for (int i = 0; c->eval.passkey_trials > 0 && i < c->eval.passkey_lengths.n; i++)
        *end_s += (double)c->eval.passkey_trials * depths *
                  passkey_sample_s(st, cache, s, c->eval.passkey_lengths.v[i]);
    *gate_s = 0;
    if (curr_gate_needs_passkey(&st->curr, s)) {
        int trials = c->eval.passkey_trials > 0 ? c->eval.passkey_trials : 10;
        *gate_s += (double)trials * depths * passkey_sample_s(st, cache, s, plan->seq_len);
    }
    if (curr_gate_needs_val_loss(&st->curr, s)) *gate_s += val_s;
}

void train_estimate(train_state *st) {
    const cfg_run *c = &st->cfg;
    sample_times cache = {.n = 0};
    if (st->is_root) {
        printf("estimate: the median of %d timed steps per stage after 1 warm-up, %d rank(s) = dp %d x sp %d, "
               "backend %s (%s)\n", TRAIN_ESTIMATE_STEPS, st->dist.size, st->dist.dp, st->dist.sp,
               backend_kind_name(st->bk->kind), st->bk->dt == BK_BF16 ? "bf16" : "fp32");
        printf("  %-5s %-10s %8s %10s %10s %7s %7s %12s %10s %10s\n", "stage", "name", "seq_len",
               "s/step", "tokens/s", "steps", "+gate", "tokens", "train", "eval");
        fflush(stdout);
    }
    double total = 0, total_max = 0;
    // From the checkpoint the run would resume from (step 0 when none).
    int64_t total_steps = 0, total_tokens = 0;
    int64_t left = c->train.max_steps > 0 ? c->train.max_steps - st->step : INT64_MAX;
    if (left < 0) left = 0;
    int first = st->stage;
    const int64_t done_in_stage = st->stage_step, extended = st->stage_extra_steps;
    for (int s = first; s < c->n_stages; s++) {
        const curr_plan *plan = curr_stage_plan(&st->curr, s);
        stage_times m = measure_stage(st, s);
        int64_t budget = plan->steps - (s == first ? done_in_stage : 0);
        if (budget < 0) budget = 0;
        int64_t steps = budget < left ? budget : left;
        int64_t extra = steps == budget ? gate_extra_steps(st, s) - (s == first ? extended : 0) : 0;
        if (extra < 0) extra = 0;
        if (extra > left - steps) extra = left - steps;
        left -= steps;
        double end_s, gate_s;
        eval_costs(st, &cache, s, &m, steps, &end_s, &gate_s);
        double train_s = (double)steps * m.step_s, eval_s = end_s + gate_s;
        total += train_s + eval_s;
        // every extension: its steps and another gate check
        int64_t chunks = 0;
        int64_t x0 = s == first ? extended : 0;
        for (int64_t x = x0, ch; (ch = curr_gate_extension(&st->curr, s, x)) > 0 && x + ch <= x0 + extra; x += ch) chunks++;
        total_max += train_s + eval_s + (double)extra * m.step_s + (double)chunks * gate_s;
        total_steps += steps;
        total_tokens += steps * plan->batch_tokens;
        if (st->is_root) {
            char tr[32], ev[32];
            fmt_duration(tr, sizeof tr, train_s);
            fmt_duration(ev, sizeof ev, eval_s);
            printf("  %-5d %-10s %8lld %10.4f %10.0f %7lld %7lld %12lld %10s %10s\n", s, plan->name,
                   (long long)plan->seq_len, m.step_s, (double)plan->batch_tokens / m.step_s,
                   (long long)steps, (long long)extra, (long long)(steps * plan->batch_tokens), tr, ev);
            fflush(stdout);
        }
    }
    if (st->is_root) {
        char a[32], b[32];
        fmt_duration(a, sizeof a, total);
        fmt_duration(b, sizeof b, total_max);
        char from[96] = "";
        if (st->step > 0)
            snprintf(from, sizeof from, " from step %lld (stage %d, its step %lld)", (long long)st->step,
                     st->stage, (long long)st->stage_step);
        printf("estimate total%s: %lld steps, %lld tokens, ETA %s (at most %s with every gate extended "
               "to its max_extra_tokens); start-up, checkpoints and eval.tasks not included\n", from,
               (long long)total_steps, (long long)total_tokens, a, b);
        fflush(stdout);
    }
}
