// train_tasks: the task suite in a run. See train_tasks.h.
#include "train_tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "eval_tasks.h"
#include "run_config_check.h"
#include "train_step.h"

void train_tasks_loader(data_config *dc, const train_state *st, bool stage_mixes) {
    const cfg_task_mix *m = &st->cfg.data.task_mix;
    memset(dc->task_mix, 0, sizeof dc->task_mix);
    if (stage_mixes) {
        dc->task_mix[TASK_NIAH_SINGLE] = m->niah_single;
        dc->task_mix[TASK_NIAH_SINGLE_UUID] = m->niah_single_uuid;
        dc->task_mix[TASK_NIAH_MULTIKEY] = m->niah_multikey;
        dc->task_mix[TASK_NIAH_MULTIVALUE] = m->niah_multivalue;
        dc->task_mix[TASK_NIAH_MULTIQUERY] = m->niah_multiquery;
        dc->task_mix[TASK_VT] = m->vt;
        dc->task_mix[TASK_CWE] = m->cwe;
        dc->task_mix[TASK_FWE] = m->fwe;
    }
    dc->task = (task_env){.encode = tok_encode_into, .encode_ctx = st->tok, .bos_id = -1,
                          .answer_only = st->cfg.data.passkey_answer_only};
}

void train_tasks_resolve(cfg_run *c) {
    cfg_eval *e = &c->eval;
    if (e->task_lengths.n > 0) return;
    free(e->task_lengths.v);
    e->task_lengths.v = xcalloc((size_t)e->passkey_lengths.n + 1, sizeof(int64_t));
    memcpy(e->task_lengths.v, e->passkey_lengths.v, sizeof(int64_t) * (size_t)e->passkey_lengths.n);
    e->task_lengths.n = e->passkey_lengths.n;
}

static task_env eval_env(const train_state *st) {
    return (task_env){.encode = tok_encode_into, .encode_ctx = st->tok, .bos_id = -1, .answer_only = 1};
}

// A task name of key into *task: 0, or -1 with the line.
static int named_task(int *task, const char *name, const char *key, char *err, size_t errlen) {
    *task = task_find(name);
    if (*task >= 0 && TASK_DEFS[*task].needs_text) {
        snprintf(err, errlen, "%s: task '%s' needs a real-text haystack; training evaluates the "
                 "others (stretch eval tasks --haystack runs it)", key, name);
        return -1;
    }
    if (*task < 0) snprintf(err, errlen, "%s: unknown task '%s' (%s)", key, name, task_names());
    return *task < 0 ? -1 : 0;
}

// Length L holds a sample of task (the largest minimum over a few seeds).
static int fits(const train_state *st, int task, int64_t L, const char *key, char *err, size_t errlen) {
    task_env env = eval_env(st);
    char msg[512];
    for (uint64_t seed = 0; seed < 8; seed++) {
        const int64_t need = task_min_len(task, &env, seed, msg, sizeof msg);
        if (need < 0) return snprintf(err, errlen, "%s: %s", key, msg), -1;
        if (need > L) {
            snprintf(err, errlen, "%s: %lld tokens cannot hold a %s sample with tokenizer '%s' (it needs "
                     "%lld or more)", key, (long long)L, TASK_DEFS[task].name, st->cfg.data.tokenizer, (long long)need);
            return -1;
        }
    }
    return 0;
}

int train_tasks_check(const train_state *st, char *err, size_t errlen) {
    const cfg_run *c = &st->cfg;
    int task;
    for (int k = 0; k < c->eval.tasks.n; k++) {
        if (named_task(&task, c->eval.tasks.v[k], "eval.tasks", err, errlen) != 0) return -1;
        for (int i = 0; i < c->eval.task_lengths.n; i++)
            if (fits(st, task, c->eval.task_lengths.v[i], "eval.task_lengths", err, errlen) != 0) return -1;
    }
    for (int s = 0; s < c->n_stages; s++) {
        const cfg_gate *g = &c->stages[s].gate;
        if (!g->task) continue;
        char key[64];
        snprintf(key, sizeof key, "stages.%d.gate.task", s);
        if (named_task(&task, g->task, key, err, errlen) != 0) return -1;
        if (fits(st, task, c->stages[s].seq_len, key, err, errlen) != 0) return -1;
    }
    return 0;
}

static bool ring_all(void *ctx, bool local) { return !dist_any(ctx, !local); }

// Correct answers of task at length L over the depths (n_out: samples).
static int64_t task_correct(train_state *st, int task, int64_t L, int trials, uint64_t seed, int64_t *by_depth,
                            int64_t *n_out, const char *key) {
    const cfg_eval *e = &st->cfg.eval;
    task_env env = eval_env(st);
    eval_ring ring = {.sp = st->dist.sp, .sp_rank = st->dist.sp_rank, .all = ring_all, .ctx = &st->dist,
                      .ulysses = st->dist.ulysses};
    train_step_eval_begin(st);  // shard parameters: gathered unit by unit
    // the depths of eval.passkey_depths ([] = the middle); tasks without depth once
    const bool deep = TASK_DEFS[task].has_depth;
    const int nd = deep && e->passkey_depths.n > 0 ? e->passkey_depths.n : 1;
    int64_t sum = 0;
    for (int j = 0; j < nd; j++) {
        const double depth = !deep ? -1 : e->passkey_depths.n > 0 ? e->passkey_depths.v[j] : 0.5;
        char err[512];
        const int64_t n = eval_task_correct(st->m, &env, task, L, depth, trials, eval_task_seed(seed, task, L, depth),
                                            &ring, err, sizeof err);
        if (n < 0) die_user("%s: %s", key, err);
        if (by_depth) by_depth[j] = n;
        sum += n;
    }
    train_step_eval_end(st);
    *n_out = (int64_t)trials * nd;
    return sum;
}

double train_tasks_acc(train_state *st, const char *name, int64_t L, int trials, uint64_t seed, const char *key) {
    const int task = task_find(name);
    CHECK(task >= 0);  // train_tasks_check
    int64_t n;
    const int64_t correct = task_correct(st, task, L, trials, seed, NULL, &n, key);
    return n > 0 ? (double)correct / (double)n : 0.0;
}

void train_tasks_eval_all(train_state *st, int stage, const char *when) {
    const cfg_run *c = &st->cfg;
    const cfg_eval *e = &c->eval;
    if (e->tasks.n == 0 || e->task_lengths.n == 0) return;
    const int nt = e->tasks.n, nl = e->task_lengths.n, nd = e->passkey_depths.n > 0 ? e->passkey_depths.n : 1;
    static const double middle = 0.5;
    int *tasks = xcalloc((size_t)nt, sizeof(int));
    int64_t *correct = xcalloc((size_t)(nt * nl * nd), sizeof(int64_t));
    for (int t = 0; t < nt; t++) tasks[t] = task_find(e->tasks.v[t]);
    rope_table train_rope = st->m->rope;
    for (int i = 0; i < nl; i++) {
        const int64_t L = e->task_lengths.v[i];
        rope_table rt;
        train_stage_rope_table(&rt, st, stage, L);
        model_set_rope(st->m, &rt);
        for (int t = 0; t < nt; t++) {
            int64_t n;
            task_correct(st, tasks[t], L, e->task_trials, st->eval_seed, correct + ((size_t)t * nl + i) * nd, &n,
                         "eval.task_lengths");
        }
    }
    model_set_rope(st->m, &train_rope);
    if (st->is_root) {
        eval_task_grid g = {.n_tasks = nt, .n_lengths = nl, .n_depths = nd, .tasks = tasks,
                            .lengths = e->task_lengths.v, .depths = e->passkey_depths.n > 0 ? e->passkey_depths.v : &middle,
                            .trials = e->task_trials, .correct = correct, .threshold = e->task_threshold};
        metrics_progress_end(&st->met);
        printf("  tasks (%s): ", when);
        eval_report_tasks_table(stdout, &g);
        for (int i = 0; i < nl; i++) {
            cJSON *o = train_eval_event(st, "eval_tasks", when, stage, e->task_lengths.v[i]);
            cJSON *acc = cJSON_CreateObject();
            for (int t = 0; t < nt; t++) cJSON_AddNumberToObject(acc, TASK_DEFS[tasks[t]].name, eval_task_acc(&g, t, i));
            cJSON_AddItemToObject(o, "accuracy", acc);
            cJSON_AddNumberToObject(o, "average", eval_task_avg(&g, i));
            cJSON_AddNumberToObject(o, "effective_length", (double)eval_task_effective(&g));
            metrics_write(&st->met, o);
        }
        fflush(stdout);
    }
    free(tasks);
    free(correct);
}
