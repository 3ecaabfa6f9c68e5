// train: `stretch train RUN.yaml`, the curriculum run. See train.h.
//
// One optimizer step on the (dp x sp) grid:
//   every rank reads the global batch's rows of its dp group (loader),
//   cuts its zig-zag slice when sp > 1, runs forward + backward (ring
//   attention inside), the gradients are summed over all ranks, clipped by
//   the global norm and applied by AdamW, identically on every rank.
// The loss is normalized by the number of real targets in the GLOBAL batch,
// so ranks with padding or document ends weigh exactly as in a 1-rank run.
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adamw.h"
#include "corpus_shard.h"
#include "matmul.h"
#include "die.h"
#include "host_mem.h"
#include "fsutil.h"
#include "eval.h"
#include "model_sp_attn.h"
#include "rope.h"
#include "curriculum.h"
#include "run_config_check.h"
#include "run_config_echo.h"
#include "train_args.h"
#include "train_estimate.h"
#include "train_batch.h"
#include "train_ckpt.h"
#include "train_outdir.h"
#include "train_stop.h"
#include "shard_vocab.h"
#include "train_guard.h"
#include "train_heartbeat.h"
#include "train_ppl.h"
#include "train_preflight.h"
#include "train_report.h"
#include "train_shards.h"
#include "train_warn.h"
#include "train_step.h"
#include "train_tasks.h"
#include "ulysses.h"
#include "train_watchdog.h"
#include "dist_hosts.h"
#include "zigzag.h"

// ---------------------------------------------------------------------------
// Sequence parallelism: ring attention behind the model's attention hook.

static bool ring_all(void *ctx, bool local) {
    dist_ctx *d = ctx;
    return !dist_any(d, !local);
}

// Rows of T tokens held by one rank of the ring (sp = ring * ulysses: the
// same count in the 2-D hybrid, zigzag_layout_init2).
static int64_t local_len(int64_t T, int sp) {
    if (sp == 1) return T;
    zigzag_layout z;
    zigzag_layout_init(&z, T, sp, 0);
    return z.T_local;
}

// ---------------------------------------------------------------------------
// Set-up

// Passkey samples: training rows predict every token, or only the answer
// (data.passkey_answer_only); evaluation scores the answer only
// (eval_passkey sets answer_only).
passkey_config train_passkey_config(const train_state *st) {
    passkey_config pk = {.encode = tok_encode_into, .encode_ctx = st->tok, .bos_id = -1,
                         .n_keys = 1, .depth = -1, .answer_only = st->cfg.data.passkey_answer_only,
                         .compact = st->cfg.data.passkey_compact};
    return pk;
}

// Builds the corpus shards once (rank 0), in out_dir/data.
static void prepare_corpus(train_state *st) {
    const cfg_run *c = &st->cfg;
    if (!c->data.corpus) return;
    if (!corpus_known(c->data.corpus))
        die_user("data.corpus: unknown corpus '%s' (known: %s)", c->data.corpus, CORPUS_NAMES);
    char dir[600], err[512];
    snprintf(dir, sizeof dir, "%.500s/data", c->train.out_dir);
    // A dry run reuses the run's shards when they exist, else makes its own
    // in a directory of out_dir that it removes (rank 0 chooses: every rank
    // must read the same files).
    if (st->dry_run) {
        char train[1100], val[1100];
        snprintf(train, sizeof train, "%s/%.100s-train.shard", dir, c->data.corpus);
        snprintf(val, sizeof val, "%s/%.100s-val.shard", dir, c->data.corpus);
        if (st->is_root && (access(train, R_OK) != 0 || access(val, R_OK) != 0)) {
            snprintf(dir, sizeof dir, "%.500s/.estimate-XXXXXX", c->train.out_dir);
            if (mkdtemp(dir)) {
                snprintf(st->dry_corpus_dir, sizeof st->dry_corpus_dir, "%s", dir);
            } else {
                snprintf(err, sizeof err, "train.out_dir: cannot make %.400s: %.80s", dir, strerror(errno));
                dir[0] = '\0';
            }
        }
        dist_bcast_bytes(&st->dist, dir, sizeof dir, 0);
        if (!dir[0]) {
            dist_bcast_bytes(&st->dist, err, sizeof err, 0);
            dist_exit_user_error(&st->dist, err);
        }
    }
    snprintf(st->train_shards[0], sizeof st->train_shards[0], "%s/%.100s-train.shard", dir, c->data.corpus);
    snprintf(st->train_shards[1], sizeof st->train_shards[1], "%s/%.100s-val.shard", dir, c->data.corpus);
    int rc = 0;
    if (st->is_root && (access(st->train_shards[0], R_OK) != 0 || access(st->train_shards[1], R_OK) != 0)) {
        printf("tokenizing corpus '%s' into %s\n", c->data.corpus, dir);
        fflush(stdout);
        rc = fsutil_mkdirs(dir, "train.out_dir", err, sizeof err);
        if (rc == 0)
            rc = corpus_make_shards(c->data.corpus, st->tok, c->data.tokenizer ? c->data.tokenizer : "byte",
                                    st->train_shards[0], st->train_shards[1],
                                    50, err, sizeof err);
    }
    if (dist_any(&st->dist, rc != 0)) {
        if (rc != 0) die_user("%s", err);
        die_user("corpus preparation failed on rank 0");
    }
}

// The shard list of a stage: its own, else data.train, plus the corpus.
int train_stage_shards(const train_state *st, const curr_plan *plan, const char **paths, int cap) {
    int n = 0;
    for (int i = 0; i < plan->data->n && n < cap; i++) paths[n++] = plan->data->v[i];
    if (st->train_shards[0][0] && n < cap) paths[n++] = st->train_shards[0];
    return n;
}

data_config train_data_config(const train_state *st, int64_t seq_len, int64_t rows,
                              double passkey_ratio, double copy_ratio, int64_t pose_len,
                              int64_t passkey_pack_min, double passkey_pack_long, uint64_t seed,
                              bool shuffle, bool tasks) {
    data_config dc = {.mode = st->cfg.data.packing == CFG_PACKING_WHOLE ? DATA_WHOLE : DATA_PACK,
                      .seq_len = seq_len, .batch_rows = rows, .dp_rank = st->dist.dp_rank,
                      .dp_size = st->dist.dp, .seed = seed, .shuffle = shuffle,
                      .bos_id = -1, .eos_id = tok_eos_id(st->tok), .pad_id = tok_pad_id(st->tok),
                      .passkey_ratio = passkey_ratio, .copy_ratio = copy_ratio, .pose_len = pose_len,
                      .passkey_pack_min = passkey_pack_min, .passkey_pack_long = passkey_pack_long,
                      .passkey = train_passkey_config(st),
                      .mix_per_batch = st->cfg.data.mix_unit == CFG_MIX_BATCH};
    if (dc.pad_id < 0) dc.pad_id = 0;
    train_tasks_loader(&dc, st, tasks);
    return dc;
}

static data_loader *open_loader(train_state *st, const char **paths, int n_paths, int64_t seq_len,
                                int64_t rows, double passkey_ratio, double copy_ratio,
                                int64_t pose_len, int64_t passkey_pack_min,
                                double passkey_pack_long, uint64_t seed,
                                bool shuffle, bool tasks) {
    data_config dc = train_data_config(st, seq_len, rows, passkey_ratio, copy_ratio, pose_len,
                                       passkey_pack_min, passkey_pack_long, seed, shuffle, tasks);
    char err[512];
    data_loader *L = data_loader_open(paths, n_paths, &dc, err, sizeof err);
    if (!L) die_user("%s", err);
    return L;
}

// The largest number of tokens one rank feeds the model at once.
static int64_t model_capacity(const train_state *st) {
    const cfg_run *c = &st->cfg;
    int64_t cap = 0;
    for (int s = 0; s < c->n_stages; s++) {
        const curr_plan *plan = curr_stage_plan(&st->curr, s);
        int64_t rows = plan->batch_tokens / plan->seq_len / st->dist.dp;
        int64_t L = local_len(plan->seq_len, st->dist.sp);
        int64_t n = train_micro_rows(c->train.micro_batch_tokens, rows, L) * L;
        if (n > cap) cap = n;
        if (local_len(plan->seq_len, st->dist.sp) > cap) cap = local_len(plan->seq_len, st->dist.sp);
    }
    for (int i = 0; i < c->eval.passkey_lengths.n; i++) {
        int64_t n = local_len(c->eval.passkey_lengths.v[i], st->dist.sp);
        if (n > cap) cap = n;
    }
    for (int i = 0; i < c->eval.task_lengths.n; i++) {
        int64_t n = local_len(c->eval.task_lengths.v[i], st->dist.sp);
        if (n > cap) cap = n;
    }
    for (int i = 0; i < c->eval.ppl_lengths.n; i++) {
        int64_t n = local_len(c->eval.ppl_lengths.v[i], st->dist.sp);
        if (n > cap) cap = n;
    }
    return cap;
}

// ---------------------------------------------------------------------------
// Evaluation

// The RoPE table of a stage, for sequences of length seq_len (dynamic NTK
// and LongRoPE select on it; other types ignore it): the curriculum's.
cJSON *train_eval_event(const train_state *st, const char *event, const char *when, int stage,
                        int64_t length) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "when", when);
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "stage", stage);
    cJSON_AddNumberToObject(o, "length", (double)length);
    return o;
}

void train_stage_rope_table(rope_table *t, const train_state *st, int stage, int64_t seq_len) {
    curr_rope_table(t, &st->curr, stage, seq_len);
}

// See train.h.
double train_passkey_mean(train_state *st, int64_t L, int trials, uint64_t seed, uint64_t stride,
                          double *by_depth, const char *key) {
    const cfg_eval *e = &st->cfg.eval;
    passkey_config pk = train_passkey_config(st);
    train_step_eval_begin(st);  // shard parameters: gathered unit by unit
    eval_ring ring = {.sp = st->dist.sp, .sp_rank = st->dist.sp_rank, .ulysses = st->dist.ulysses,
                      .all = ring_all, .ctx = &st->dist};
    double sum = 0;
    for (int j = 0; j < e->passkey_depths.n; j++) {
        char err[512];
        double acc = eval_passkey(st->m, &pk, L, e->passkey_depths.v[j], trials,
                                  seed + stride * (uint64_t)j, &ring, err, sizeof err);
        if (acc < 0) die_user("%s: %s", key, err);
        if (by_depth) by_depth[j] = acc;
        sum += acc;
    }
    train_step_eval_end(st);
    return e->passkey_depths.n > 0 ? sum / e->passkey_depths.n : 0.0;
}

// Passkey accuracy at every eval length (averaged over the depths), with the
// given stage's RoPE. Prints a line per length and logs to metrics.
static void eval_passkey_all(train_state *st, int stage, const char *when, double *acc_out) {
    const cfg_run *c = &st->cfg;
    if (c->eval.passkey_trials <= 0) return;
    rope_table train_rope = st->m->rope;
    double *by_depth = xcalloc((size_t)c->eval.passkey_depths.n + 1, sizeof(double));
    for (int i = 0; i < c->eval.passkey_lengths.n; i++) {
        int64_t L = c->eval.passkey_lengths.v[i];
        rope_table t;
        train_stage_rope_table(&t, st, stage, L);
        model_set_rope(st->m, &t);
        double acc = train_passkey_mean(st, L, c->eval.passkey_trials, st->eval_seed, 1000003ull,
                                  by_depth, "eval.passkey_lengths");
        if (acc_out) acc_out[i] = acc;
        if (st->is_root) {
            cJSON *depths = cJSON_CreateDoubleArray(by_depth, c->eval.passkey_depths.n);
            printf("  passkey @ %6lld tokens (%s): %5.1f%%\n", (long long)L, when, 100 * acc);
            cJSON *o = train_eval_event(st, "eval_passkey", when, stage, L);
            cJSON_AddNumberToObject(o, "accuracy", acc);
            cJSON_AddItemToObject(o, "accuracy_by_depth", depths);
            metrics_write(&st->met, o);
        }
    }
    free(by_depth);
    fflush(stdout);
    model_set_rope(st->m, &train_rope);
}

// Mean validation loss at the stage's sequence length over eval.val_tokens.
static double eval_val_loss(train_state *st, const curr_plan *plan) {
    const cfg_run *c = &st->cfg;
    const char *paths[64];
    int n = 0;
    for (int i = 0; i < c->data.val.n && n < 64; i++) paths[n++] = c->data.val.v[i];
    if (st->train_shards[1][0] && n < 64) paths[n++] = st->train_shards[1];
    if (n == 0) return NAN;
    train_step_eval_begin(st);  // shard parameters: gathered unit by unit
    int64_t rows = plan->batch_tokens / plan->seq_len;
    data_loader *L = open_loader(st, paths, n, plan->seq_len, rows, 0.0, 0.0, 0, 0, 0.0, 7, false, false);
    data_batch db;
    data_batch_init(&db, L);
    train_batch lb = {0};
    int64_t batches = c->eval.val_tokens > 0 ? (c->eval.val_tokens + plan->batch_tokens - 1) / plan->batch_tokens : 1;
    double sums[2] = {0, 0};  // loss sum, targets
    for (int64_t b = 0; b < batches; b++) {
        data_next_batch(L, &db);
        train_batch_make(&lb, &db, st->dist.sp, st->dist.ulysses, st->dist.sp_rank, st->m->rope.short_len);
        sums[0] += model_forward(st->m, &lb.mb, NULL);
        for (int64_t i = 0; i < lb.mb.B * lb.mb.T; i++) sums[1] += lb.mb.targets[i] >= 0;
    }
    train_step_eval_end(st);
    dist_allreduce_sum_double(&st->dist, sums, 2);
    train_batch_free(&lb);
    data_batch_free(&db);
    data_loader_free(L);
    return sums[1] > 0 ? sums[0] / sums[1] : NAN;
}

// Validation loss at the stage's length: printed, logged (eval_val), kept
// for the summary. Collective.
static void log_val_loss(train_state *st, const curr_plan *plan) {
    double vl = eval_val_loss(st, plan);
    if (!st->is_root || isnan(vl)) return;
    metrics_progress_end(&st->met);
    printf("  val loss @ %lld tokens: %.4f\n", (long long)plan->seq_len, vl);
    fflush(stdout);
    st->hist.last_val_loss = vl;
    st->hist.last_val_step = st->step;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "eval_val");
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "stage", st->stage);
    cJSON_AddNumberToObject(o, "seq_len", (double)plan->seq_len);
    cJSON_AddNumberToObject(o, "val_loss", vl);
    metrics_write(&st->met, o);
}

// ---------------------------------------------------------------------------
// One optimizer step

// Runs on the model's backend: gradients, norm, clipping and AdamW where the
// parameters live (host on the cpu, device on cuda); sharded and accumulated
// as parallel.shard and train.micro_batch_tokens say (train_step.c).
static double optimizer_step(train_state *st, const model_batch *mb, int64_t n_targets_global,
                             double lr, double *grad_norm, bool *skipped) {
    return train_step_run(st, mb, n_targets_global, lr, grad_norm, skipped);
}

// ---------------------------------------------------------------------------
// The stage loop

static void log_stage_start(train_state *st, const curr_plan *plan, const rope_table *t) {
    if (!st->is_root) return;
    const rope_config rc = *curr_stage_rope(&st->curr, st->stage);
    char mixed[96] = "";
    if (t->short_len > 0)
        snprintf(mixed, sizeof mixed, ", mixed windows: documents up to %lld tokens short, %s beyond",
                 (long long)t->short_len, rope_type_name(st->cfg.stages[st->stage].rope.type));
    printf("stage %d '%s' (%d of %d): seq_len %lld, %lld steps of %lld tokens, rope %s (factor %g, "
           "original %lld, attention factor %.4f%s), lr %.2e\n",
           st->stage, plan->name, st->stage + 1, st->cfg.n_stages, (long long)plan->seq_len,
           (long long)plan->steps, (long long)plan->batch_tokens, rope_type_name(rc.type),
           rc.type == ROPE_TYPE_DEFAULT ? 1.0 : rc.factor,
           (long long)rc.original_max_position_embeddings, (double)t->attention_factor, mixed,
           plan->lr);
    fflush(stdout);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "stage_start");
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "stage", st->stage);
    cJSON_AddStringToObject(o, "name", plan->name);
    cJSON_AddNumberToObject(o, "seq_len", (double)plan->seq_len);
    cJSON_AddNumberToObject(o, "steps", (double)plan->steps);
    cJSON_AddStringToObject(o, "rope_type", rope_type_name(rc.type));
    cJSON_AddNumberToObject(o, "rope_factor", rc.factor);
    cJSON_AddNumberToObject(o, "attention_factor", t->attention_factor);
    cJSON *f = cJSON_CreateArray();
    for (int i = 0; i < t->n_pairs; i++) cJSON_AddItemToArray(f, cJSON_CreateNumber(t->inv_freq[i]));
    cJSON_AddItemToObject(o, "inv_freq", f);
    if (t->short_len > 0) {  // mixed windows: the short table and the length it covers
        cJSON *sf = cJSON_CreateArray();
        for (int i = 0; i < t->n_pairs; i++) cJSON_AddItemToArray(sf, cJSON_CreateNumber(t->inv_freq_short[i]));
        cJSON_AddItemToObject(o, "inv_freq_short", sf);
        cJSON_AddNumberToObject(o, "mixed_short_len", (double)t->short_len);
    }
    metrics_write(&st->met, o);
}

static void log_step(train_state *st, const curr_plan *plan, double loss, double lr,
                     double norm, int64_t tokens, double dt, double eta) {
    if (!st->is_root) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "step");
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "stage", st->stage);
    cJSON_AddNumberToObject(o, "seq_len", (double)plan->seq_len);
    cJSON_AddNumberToObject(o, "loss", loss);
    cJSON_AddNumberToObject(o, "lr", lr);
    cJSON_AddNumberToObject(o, "grad_norm", norm);
    cJSON_AddNumberToObject(o, "tokens", (double)st->tokens_seen);
    cJSON_AddNumberToObject(o, "tokens_per_s", (double)tokens / dt);
    if (st->guard.total > 0) {
        cJSON_AddBoolToObject(o, "skipped", st->guard.consecutive > 0);
        cJSON_AddNumberToObject(o, "skipped_total", (double)st->guard.total);
    }
    train_zero3_log(st, o);
    train_device_mem_log(st, o);
    metrics_write(&st->met, o);
    metrics_progress p = {.stage = plan->name, .stage_index = st->stage, .n_stages = st->cfg.n_stages,
                          .step = st->step, .stage_step = st->stage_step, .stage_steps = plan->steps,
                          .seq_len = plan->seq_len, .loss = loss, .tokens_per_s = (double)tokens / dt,
                          .lr = lr, .eta_s = eta, .skipped = st->guard.total};
    metrics_progress_line(&st->met, &p);
    train_heartbeat_write(st->cfg.train.out_dir, "running", st->step, st->stage, st->tokens_seen);
}

// Remaining steps of the whole run (for the ETA), from the current position.
static int64_t steps_left(const train_state *st) {
    int64_t left = 0;
    for (int s = st->stage; s < st->cfg.n_stages; s++) {
        left += curr_stage_plan(&st->curr, s)->steps + (s == st->stage ? st->stage_extra_steps - st->stage_step : 0);
    }
    return left;
}

// Timed, logged, never twice for one step (train_stop.h).
static void save_checkpoint(train_state *st) { train_stop_save(st); }

// A stage's gate: passkey accuracy and/or validation loss at its seq_len.
// True when met (or when the stage has none); reported and logged.
static bool gate_check(train_state *st, const curr_plan *plan) {
    const cfg_gate *g = &plan->gate;
    const bool task_gate = g->task != NULL;  // gate.task: train_tasks.c
    if (!curr_gate_needed(&st->curr, st->stage) && !task_gate) return true;
    double acc = -1, vl = -1, task_acc = -1;
    if (task_gate) {
        char key[64];
        snprintf(key, sizeof key, "stages.%d.gate.task", st->stage);
        task_acc = train_tasks_acc(st, g->task, plan->seq_len, st->cfg.eval.task_trials, st->eval_seed + 7777ull, key);
    }
    if (curr_gate_needs_passkey(&st->curr, st->stage)) {
        int trials = st->cfg.eval.passkey_trials > 0 ? st->cfg.eval.passkey_trials : 10;
        char key[64];
        snprintf(key, sizeof key, "stages.%d.gate.passkey_acc", st->stage);
        acc = train_passkey_mean(st, plan->seq_len, trials, st->eval_seed + 7777ull, 7777ull, NULL, key);
    }
    if (curr_gate_needs_val_loss(&st->curr, st->stage)) {
        vl = eval_val_loss(st, plan);
        if (isnan(vl)) die_user("stages.%d.gate.val_loss needs validation data (data.val or data.corpus)", st->stage);
    }
    bool met = curr_gate_passed(&st->curr, st->stage, acc, vl);
    if (task_gate) met &= task_acc >= g->accuracy;
    if (st->is_root) {
        char what[320] = "";
        if (g->passkey_acc > 0)
            snprintf(what, sizeof what, "passkey %.3f (need %.3f)", acc, g->passkey_acc);
        if (g->val_loss > 0)
            snprintf(what + strlen(what), sizeof what - strlen(what), "%sval loss %.4f (need <= %.4f)",
                     what[0] ? ", " : "", vl, g->val_loss);
        if (g->task)
            snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s %.3f (need %.3f)",
                     what[0] ? ", " : "", g->task, task_acc, g->accuracy);
        printf("  gate of stage '%s': %s: %s\n", plan->name, what, met ? "met" : "not met");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "gate");
        cJSON_AddNumberToObject(o, "step", (double)st->step);
        cJSON_AddNumberToObject(o, "stage", st->stage);
        cJSON_AddNumberToObject(o, "passkey_acc", acc);
        cJSON_AddNumberToObject(o, "val_loss", vl);
        if (g->task) {
            cJSON_AddStringToObject(o, "task", g->task);
            cJSON_AddNumberToObject(o, "task_acc", task_acc);
        }
        cJSON_AddBoolToObject(o, "met", met);
        metrics_write(&st->met, o);
    }
    return met;
}

// Trains stage st->stage from st->stage_step to its end (or to a stop).
// Returns -1 when the stage ran to its end, else the exit status of a run
// stopped early, the same on every rank: 0 (max_steps), TRAIN_EXIT_GATE, TRAIN_EXIT_REQUEUE or
// 130 (a stop signal on any rank; 130 when one of them was SIGINT).
static int run_stage(train_state *st) {
    const cfg_run *c = &st->cfg;
    const curr_plan plan = *curr_stage_plan(&st->curr, st->stage);
    rope_table t;
    curr_train_rope_table(&t, &st->curr, st->stage);
    model_set_rope(st->m, &t);
    if (st->stage_step == 0) log_stage_start(st, &plan, &t);

    const char *paths[64];
    int n_paths = train_stage_shards(st, &plan, paths, 64);
    int64_t rows = plan.batch_tokens / plan.seq_len;
    double copy = fmin(c->data.copy_ratio, 1.0 - plan.passkey_ratio);
    data_loader *L = open_loader(st, paths, n_paths, plan.seq_len, rows, plan.passkey_ratio, copy,
                                 plan.pose_len, plan.passkey_pack_min, plan.passkey_pack_long,
                                 (uint64_t)c->train.seed,
                                 true, c->stages[st->stage].tasks);
    if (st->have_cursor) {
        char err[512];
        // A stage reading other shards starts that data stream afresh.
        if (data_set_cursor(L, &st->cursor, err, sizeof err) != 0 && st->stage_step > 0)
            die_user("resume: %s", err);
    }
    data_batch db;
    data_batch_init(&db, L);
    train_batch lb = {0};
    double t_last = metrics_now(), last_step_s = 0;
    int stop = -1;

    for (;;) {
    while (st->stage_step < plan.steps + st->stage_extra_steps) {
        if (c->train.max_steps > 0 && st->step >= c->train.max_steps) {
            stop = 0;
            break;
        }
        // A signal or the time limit; agreed, not local: a rank whose own
        // signal is still on its way exits with the same status as the others.
        if ((stop = train_stop_poll(st, last_step_s)) >= 0) break;
        double lr = curr_lr(&st->curr, st->stage, st->stage_step);
        data_next_batch(L, &db);
        train_batch_make(&lb, &db, st->dist.sp, st->dist.ulysses, st->dist.sp_rank, st->m->rope.short_len);
        double norm;
        bool skipped;
        double loss = optimizer_step(st, &lb.mb, db.n_targets_global, lr, &norm, &skipped);
        if (!skipped) {
            st->hist.last_loss = loss;
            st->hist.last_loss_step = st->step + 1;
        }
        st->step++;
        st->stage_step++;
        int64_t tokens = plan.batch_tokens;
        st->tokens_seen += tokens;
        data_get_cursor(&st->cursor, L);
        st->have_cursor = true;

        double now = metrics_now(), dt = now - t_last;
        t_last = now;
        last_step_s = dt;
        train_watchdog_step(st);
        bool diverged = train_guard_record(&st->guard, skipped, c->train.max_skipped_steps);
        if (skipped) train_guard_report(st, loss, norm);
        if (skipped || (c->train.log_every > 0 && (st->step % c->train.log_every == 0 || st->stage_step == plan.steps)))
            log_step(st, &plan, loss, lr, norm, tokens, dt, dt * (double)steps_left(st));
        if (diverged) {
            stop = TRAIN_EXIT_DIVERGED;
            break;
        }
        if (c->train.eval_every > 0 && st->step % c->train.eval_every == 0) log_val_loss(st, &plan);
        bool due = (c->train.ckpt_every > 0 && st->step % c->train.ckpt_every == 0) ||
                   train_stop_ckpt_due(st);
        if (due && st->stage_step < plan.steps + st->stage_extra_steps) save_checkpoint(st);
    }
    metrics_progress_end(&st->met);
    // A stop before the gate's evaluation: the checkpoint holds the stage's
    // end, and the resumed run evaluates the gate.
    if (stop < 0) stop = train_stop_poll(st, 0);
    if (stop >= 0 || gate_check(st, &plan)) break;
    // The gate is not met: train on, in quarters of the extra budget, up to its cap.
    int64_t chunk = curr_gate_extension(&st->curr, st->stage, st->stage_extra_steps);
    if (chunk == 0) {
        st->gate_failed = true;
        stop = TRAIN_EXIT_GATE;
        break;
    }
    st->stage_extra_steps += chunk;
    if (st->is_root) {
        metrics_progress_end(&st->met);
        printf("  gate not met: stage '%s' extended by %lld steps\n", plan.name, (long long)chunk);
        fflush(stdout);
    }
    }
    train_batch_free(&lb);
    data_batch_free(&db);
    data_loader_free(L);
    return stop;
}

static void print_summary(train_state *st, double *acc, int n_evals) {
    const cfg_run *c = &st->cfg;
    if (!st->is_root || c->eval.passkey_trials <= 0) return;
    int nl = c->eval.passkey_lengths.n;
    printf("\npasskey accuracy (%d trials x %d depths per cell)\n%-24s", c->eval.passkey_trials,
           c->eval.passkey_depths.n, "after stage");
    for (int i = 0; i < nl; i++) printf(" %8lld", (long long)c->eval.passkey_lengths.v[i]);
    printf("\n");
    for (int e = 0; e < n_evals; e++) {
        const curr_plan *plan = curr_stage_plan(&st->curr, e);
        char label[96];
        bool before = plan->seq_len <= st->curr.original_context;
        snprintf(label, sizeof label, "%d %s%s", e, plan->name, before ? " (before ext.)" : "");
        printf("%-24s", label);
        for (int i = 0; i < nl; i++) printf(" %7.1f%%", 100 * acc[e * nl + i]);
        printf("\n");
    }
}

// ---------------------------------------------------------------------------

static void load_config(train_state *st, const train_args *a) {
    char err[1024];
    cfg_init(&st->cfg);
    int rc = cfg_parse_file(&st->cfg, a->run_file, err, sizeof err);
    for (int i = 0; rc == 0 && i < a->n_overrides; i++)
        rc = cfg_apply_override(&st->cfg, a->keys[i], a->values[i], err, sizeof err);
    if (rc == 0 && a->max_steps >= 0) st->cfg.train.max_steps = a->max_steps;
    if (rc == 0) rc = cfg_validate(&st->cfg, err, sizeof err);
    // The curriculum, once: stage plans and RoPE (factors files read here).
    if (rc == 0) rc = curr_load(&st->curr, &st->cfg, err, sizeof err);
    if (rc != 0) dist_exit_user_error(&st->dist, err);
    // Default eval lengths: every stage's seq_len.
    cfg_eval *e = &st->cfg.eval;
    if (e->passkey_lengths.n == 0) {
        free(e->passkey_lengths.v);
        e->passkey_lengths.v = xcalloc((size_t)st->cfg.n_stages, sizeof(int64_t));
        for (int s = 0; s < st->cfg.n_stages; s++) {
            int64_t L = st->cfg.stages[s].seq_len;
            if (e->passkey_lengths.n == 0 || e->passkey_lengths.v[e->passkey_lengths.n - 1] != L)
                e->passkey_lengths.v[e->passkey_lengths.n++] = L;
        }
    }
    train_tasks_resolve(&st->cfg);
}


// The memory of a training step on one rank at the largest stage, from the
// model's buffer plan (model_mem_plan: what model_create_on allocates, plus
// AdamW moments and the backend's scratch).
static void print_memory_plan(const cfg_run *c, const curriculum *cur) {
    int64_t n_tokens = 0;
    for (int s = 0; s < c->n_stages; s++) {
        const curr_plan *plan = curr_stage_plan(cur, s);
        int64_t rows = plan->batch_tokens / plan->seq_len / c->parallel.dp;
        int64_t L = local_len(plan->seq_len, cfg_parallel_sp(c));
        int64_t n = train_micro_rows(c->train.micro_batch_tokens, rows, L) * L;
        if (n > n_tokens) n_tokens = n;
    }
    model_config mc;
    cfg_model_config(&mc, c);
    if (mc.vocab_size == 0) {  // the tokenizer's
        char err[512];
        tok_tokenizer *tok = tok_load(c->data.tokenizer, err, sizeof err);
        if (!tok) {
            printf("peak memory estimate: unknown (%s)\n", err);
            return;
        }
        mc.vocab_size = (int)tok_vocab_size(tok);
        tok_free(tok);
    }
    bool cuda = c->train.backend == CFG_BACKEND_CUDA;
    bk_dtype dt = train_run_dtype(c);
    model_mem mm;
    model_mem_plan(&mm, &mc, n_tokens, c->train.recompute, dt, cuda);
    const double G = 1e9;
    // With sharding or offload this is the baseline the next line improves on.
    bool plain = c->parallel.shard == CFG_SHARD_NONE && c->parallel.offload == CFG_OFFLOAD_NONE;
    printf("peak memory estimate per rank (%s, %s, recompute %s, %lld tokens)%s: %.2f GB = "
           "params %.2f + grads %.2f + adamw %.2f + %s weights %.2f + activations %.2f + "
           "scratch %.2f\n",
           cuda ? "cuda" : "cpu", dt == BK_BF16 ? "bf16" : "fp32",
           c->train.recompute ? "on" : "off", (long long)n_tokens,
           plain ? "" : ", unsharded, no offload", mm.total / G, mm.params / G,
           mm.grads / G, mm.moments / G, dt == BK_BF16 ? "bf16" : "fp32", mm.work / G,
           mm.activations / G, mm.scratch / G);
    train_print_zero_plan(c, &mc, n_tokens);
}

// --dry-run: the resolved curriculum, one line per stage.
static void print_plan(const cfg_run *c, const curriculum *cur) {
    int64_t total_steps = 0, total_tokens = 0;
    printf("curriculum: original context %lld, parallel dp %d x ring %d x ulysses %d\n",
           (long long)cur->original_context, c->parallel.dp, cfg_parallel_ring(c),
           c->parallel.ulysses);
    for (int s = 0; s < c->n_stages; s++) {
        const curr_plan plan = *curr_stage_plan(cur, s);
        const rope_config rc = *curr_stage_rope(cur, s);
        rope_table t;
        curr_train_rope_table(&t, cur, s);
        char mixed[96] = "";
        if (curr_stage_mixed(cur, s))
            snprintf(mixed, sizeof mixed, "  mixed windows (<= %lld: short, beyond: %s)",
                     (long long)t.short_len, rope_type_name(c->stages[s].rope.type));
        printf("  stage %d %-10s seq_len %7lld  %6lld steps x %8lld tokens  lr %.2e  rope %-8s "
               "factor %5g  attention factor %.4f  tokens/rank/step %lld%s\n",
               s, plan.name, (long long)plan.seq_len, (long long)plan.steps,
               (long long)plan.batch_tokens, plan.lr, rope_type_name(rc.type),
               rc.type == ROPE_TYPE_DEFAULT ? 1.0 : rc.factor, (double)t.attention_factor,
               (long long)(plan.batch_tokens / c->parallel.dp / cfg_parallel_sp(c)), mixed);
        total_steps += plan.steps;
        total_tokens += plan.steps * plan.batch_tokens;
    }
    printf("total: %lld steps, %.3g tokens\n", (long long)total_steps, (double)total_tokens);
    print_memory_plan(c, cur);
    train_warn_config(cur, stderr);
}

static void setup(train_state *st, const train_args *a) {
    char err[1024];
    load_config(st, a);
    const cfg_run *c = &st->cfg;
    if (dist_init_grid3(&st->dist, c->parallel.dp, cfg_parallel_ring(c), c->parallel.ulysses,
                        err, sizeof err) != 0)
        dist_exit_user_error(&st->dist, err);
    st->is_root = st->dist.rank == 0;
    if (c->parallel.ulysses > 1) {  // heads to split (cpu and cuda alike)
        model_config hc;
        cfg_model_config(&hc, c);
        if (ulysses_check_heads(c->parallel.ulysses, hc.n_heads, hc.n_kv_heads, err, sizeof err) != 0)
            dist_exit_user_error(&st->dist, err);
    }
    if (train_step_check(st, err, sizeof err) != 0) dist_exit_user_error(&st->dist, err);

    st->tok = tok_load(c->data.tokenizer, err, sizeof err);
    if (!st->tok) dist_exit_user_error(&st->dist, err);
    if (train_shards_check(c, st->tok, err, sizeof err) != 0) dist_exit_user_error(&st->dist, err);
    if (train_tasks_check(st, err, sizeof err) != 0) dist_exit_user_error(&st->dist, err);

    struct stat sb;
    st->dry_made_out_dir = st->dry_run && stat(c->train.out_dir, &sb) != 0;
    if (st->is_root && fsutil_mkdirs(c->train.out_dir, "train.out_dir", err, sizeof err) != 0) die_user("%s", err);
    dist_barrier(&st->dist);
    if (!st->dry_run) train_outdir_claim(st);  // a dry run writes nothing there
    if (st->is_root && !st->dry_run) {
        char path[1100];
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->train.out_dir);
        if (metrics_open(&st->met, path, c->train.log_format == CFG_LOG_PLAIN, err, sizeof err) != 0)
            die_user("%s", err);
    }
    prepare_corpus(st);
    // Corpus shards made by an earlier run in this out_dir are reused: theirs must be this tokenizer's too.
    for (int i = 0; i < 2 && st->train_shards[i][0]; i++)
        if (shard_vocab_check(st->train_shards[i], st->tok, c->data.tokenizer ? c->data.tokenizer : "byte",
                              "data.corpus", "the run uses", err, sizeof err) != 0)
            dist_exit_user_error(&st->dist, err);

    model_config mc;
    cfg_model_config(&mc, c);
    if (mc.vocab_size == 0) mc.vocab_size = (int)tok_vocab_size(st->tok);
    if (mc.vocab_size < tok_vocab_size(st->tok))
        die_user("model.vocab_size (%d) is smaller than the tokenizer's vocabulary (%lld)",
                 mc.vocab_size, (long long)tok_vocab_size(st->tok));
    if (model_config_validate(&mc, err, sizeof err) != 0) dist_exit_user_error(&st->dist, err);
    // The backend: rank i of a node takes GPU i (mod the GPUs visible).
    // (Counted only for the cuda backend: a broken driver stops only GPU runs.)
    int local_rank, local_size;
    int n_gpus = c->train.backend == CFG_BACKEND_CUDA ? backend_gpu_count() : 0;
    dist_local_rank(&st->dist, &local_rank, &local_size);
    // Offload pins host memory: refused on every rank, before anything is
    // allocated, when a node's ranks together need more than it has.
    bool host_short = train_offload_host_check(c, &mc, model_capacity(st), local_size,
                                               host_mem_available(), err, sizeof err) != 0;
    if (dist_any(&st->dist, host_short)) {
        if (!host_short)
            snprintf(err, sizeof err, "parallel.offload: another node has less host memory "
                                      "available than the offload needs (its rank says how much)");
        dist_exit_user_error(&st->dist, err);
    }
    char why[512];
    st->bk = backend_create(c->train.backend == CFG_BACKEND_CUDA ? BACKEND_CUDA : BACKEND_CPU,
                            train_run_dtype(c), n_gpus > 0 ? local_rank % n_gpus : 0, why, sizeof why);
    if (!st->bk) {
        snprintf(err, sizeof err, "train.backend: %s", why);
        dist_exit_user_error(&st->dist, err);
    }
    // Where each rank runs: a rank away from its GPU's socket shows here.
    char where[224] = "backend cpu", gpu[160] = "", bus_id[32] = "";
    if (c->train.backend == CFG_BACKEND_CUDA) {
        int dev = n_gpus > 0 ? local_rank % n_gpus : 0;
        backend_gpu_describe(dev, gpu, sizeof gpu, bus_id, sizeof bus_id);
        const char *visible = getenv("CUDA_VISIBLE_DEVICES");
        snprintf(where, sizeof where, "gpu %d of %d%s%s (CUDA_VISIBLE_DEVICES=%s)", dev, n_gpus,
                 gpu[0] ? " " : "", gpu, visible ? visible : "unset");
    }
    dist_log_placement(&st->dist, where);
    dist_warn_gpu_numa(&st->dist, bus_id);  // cores on another socket than the GPU
    st->comm = backend_comm_create(st->bk, &st->dist, (int)c->parallel.transport, err, sizeof err);
    if (!st->comm) dist_exit_user_error(&st->dist, err);
    st->m = train_step_model_create(st, &mc, model_capacity(st));
    train_step_setup(st);
    model_init_weights(st->m, (uint64_t)c->train.seed);
    if (c->model.init && train_ckpt_load_weights(st, c->model.init, err, sizeof err) != 0)
        dist_exit_user_error(&st->dist, err);  // rank 0 read it; every rank has its verdict
    st->eval_seed = (uint64_t)c->train.seed * 7919u + 17u;
    if (st->dist.sp > 1) {
        model_attention att = backend_comm_ring_attention(st->comm);
        model_set_attention(st->m, &att);
    }
}

// Resume: the exact state of an earlier run of this run file. Rank 0
// picks and reads the checkpoint (once) and broadcasts it, so the
// ranks never end up on different steps (one rank's read error fails
// the run on every rank). 1: resumed from ckpt, 0: a fresh start.
static int resume(train_state *st, const train_args *a, char *ckpt, size_t ckpt_len) {
    char err[1024];
    int found = 0;
    ckpt[0] = '\0';
    // Rank 0 reads the checkpoint; its verdict and its data reach every rank
    // (train_ckpt.h): the same error line everywhere, or the same state.
    if (strcmp(a->resume, "auto") == 0) {
        found = train_ckpt_resume_auto(st, ckpt, ckpt_len, err, sizeof err);
        if (found < 0) dist_exit_user_error(&st->dist, err);
    } else if (strcmp(a->resume, "never") != 0) {
        snprintf(ckpt, ckpt_len, "%s", a->resume);
        found = 1;
        if (train_ckpt_load(st, ckpt, err, sizeof err) != 0) dist_exit_user_error(&st->dist, err);
    }
    return found;
}

// The dry run's corpus directory (prepare_corpus), and out_dir when this
// dry run made it: left as they were found. Rank 0.
static void dry_run_cleanup(const train_state *st) {
    if (!st->is_root || !st->cfg.train.out_dir) return;
    if (st->dry_corpus_dir[0]) {
        for (int i = 0; i < 2; i++) unlink(st->train_shards[i]);
        rmdir(st->dry_corpus_dir);
    }
    if (st->dry_made_out_dir) rmdir(st->cfg.train.out_dir);  // only if empty
}

// Also when a check refuses the dry run (exit 2 from anywhere).
static const train_state *dry_state;
static void dry_run_atexit(void) {
    if (dry_state) dry_run_cleanup(dry_state);
}

// --dry-run --estimate: the start of a real run on every rank (set-up,
// preflight), the plan, then measured steps (train_estimate.h).
static int dry_run_estimate(train_state *st, const train_args *a, int *argc, char ***argv) {
    char err[1024];
    dist_init(&st->dist, argc, argv);
    st->dry_run = true;
    dry_state = st;
    atexit(dry_run_atexit);
    setup(st, a);
    if (train_zero_check(&st->cfg, err, sizeof err) != 0) dist_exit_user_error(&st->dist, err);
    // The checkpoint the run would resume from: its changes checked, the estimate from its step.
    char ckpt[1200];
    if (resume(st, a, ckpt, sizeof ckpt) == 1 && st->is_root)
        printf("would resume from %s: stage %d (%d of %d), step %lld\n", ckpt, st->stage, st->stage + 1,
               st->cfg.n_stages, (long long)st->step);
    train_preflight(st);
    if (st->is_root) {
        print_plan(&st->cfg, &st->curr);
        fflush(stdout);
    }
    train_estimate(st);
    dry_run_cleanup(st);
    dry_state = NULL;
    train_step_free(st);
    model_free(st->m);
    backend_comm_free(st->comm);
    backend_free(st->bk);
    tok_free(st->tok);
    cfg_free(&st->cfg);
    dist_finalize(&st->dist);
    return 0;
}

int train_main(int argc, char **argv) {
    train_args a;
    char err[1024];
    int rc = train_parse_args(&a, argc, argv, err, sizeof err);
    if (rc == 1) {
        train_usage(stdout);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    // First, so that a stop request during start-up (MPI, corpus, model)
    // stops the run at its first step boundary instead of killing it.
    train_stop_install_handlers();
    train_state *st = xcalloc(1, sizeof *st);
    if (a.dry_run && a.estimate) {
        int status = dry_run_estimate(st, &a, &argc, &argv);
        free(st);
        return status;
    }
    if (a.dry_run) {
        dist_init_serial(&st->dist);
        load_config(st, &a);
        if (train_zero_check(&st->cfg, err, sizeof err) != 0) dist_exit_user_error(&st->dist, err);
        print_plan(&st->cfg, &st->curr);
        cfg_free(&st->cfg);
        free(st);
        return 0;
    }
    dist_init(&st->dist, &argc, &argv);
    train_stop_install_handlers();  // again: MPI_Init may have installed its own
    setup(st, &a);
    const cfg_run *c = &st->cfg;

    char ckpt[1200] = "";
    double resume_t0 = metrics_now();
    int64_t bytes_before = ckpt_bytes_read();  // model.init's read is not the resume's
    int found = resume(st, &a, ckpt, sizeof ckpt);
    int64_t *bytes_read = xcalloc((size_t)st->dist.size, sizeof *bytes_read);
    double resume_s = 0;
    if (found == 1) {
        resume_s = metrics_now() - resume_t0;
        bytes_read[st->dist.rank] = ckpt_bytes_read() - bytes_before;
        dist_allreduce_sum_int64(&st->dist, bytes_read, st->dist.size);
        if (st->is_root) {
            int readers = 0;
            int64_t total = 0;
            for (int r = 0; r < st->dist.size; r++) {
                readers += bytes_read[r] > 0;
                total += bytes_read[r];
            }
            printf("resumed from %s: stage %d (%d of %d), step %lld; read %lld bytes on %d rank(s) of %d "
                   "in %.2f s\n", ckpt, st->stage, st->stage + 1, c->n_stages, (long long)st->step,
                   (long long)total, readers, st->dist.size, resume_s);
        }
    }
    int n_len = c->eval.passkey_lengths.n;
    if (st->is_root) train_warn_config(&st->curr, stderr);  // once the run is sure to go ahead
    if (st->is_root) {
        char path[1100];
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->train.out_dir);
        train_history_read(&st->hist, path, c->eval.passkey_lengths.v, n_len, c->eval.ppl_lengths.v,
                           c->eval.ppl_lengths.n);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", found == 1 ? "resume" : "run_start");
        cJSON_AddNumberToObject(o, "step", (double)st->step);
        cJSON_AddNumberToObject(o, "stage", st->stage);
        if (!st->bk->host_memory) cJSON_AddNumberToObject(o, "device_plan_bytes", (double)train_step_device_plan(st));
        if (found == 1) {
            cJSON_AddStringToObject(o, "checkpoint", ckpt);
            cJSON_AddNumberToObject(o, "resume_s", resume_s);
            cJSON *b = cJSON_AddArrayToObject(o, "bytes_read");  // per rank: only the reader's is not 0
            for (int r = 0; r < st->dist.size; r++)
                cJSON_AddItemToArray(b, cJSON_CreateNumber((double)bytes_read[r]));
        }
        cJSON_AddNumberToObject(o, "ranks", st->dist.size);
        metrics_write(&st->met, o);
        train_heartbeat_write(c->train.out_dir, "running", st->step, st->stage, st->tokens_seen);
    }
    free(bytes_read);
    train_ppl_open(st);  // held-out text (tokenized once), checked before any compute
    // Every check the run file and the data allow, before the first step.
    train_preflight(st);
    if (st->is_root) {
        char *text = cfg_echo(c);
        char blas[128];
        matmul_blas_describe(blas, sizeof blas);
        printf("stretch train %s: %d rank(s) = dp %d x sp %d (ring %d x ulysses %d), %.2fM "
               "parameters, %d stages, backend %s (%s, comm %s), %s\n",
               a.run_file, st->dist.size, st->dist.dp, st->dist.sp, st->dist.ring,
               st->dist.ulysses, st->m->n_params / 1e6, c->n_stages,
               backend_kind_name(st->bk->kind), st->bk->dt == BK_BF16 ? "bf16" : "fp32",
               backend_comm_name(st->comm), blas);
        char path[1100];
        snprintf(path, sizeof path, "%s/config.yaml", c->train.out_dir);
        FILE *f = fopen(path, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) die_user("cannot write %s", path);
        free(text);
        fflush(stdout);
    }

    train_stop_start(st, found == 1);
    train_watchdog_start(st);

    // The summary's table: stages evaluated in earlier sessions keep their numbers.
    double *acc = xcalloc((size_t)(c->n_stages * n_len) + 1, sizeof(double));
    if (st->is_root && st->hist.acc) memcpy(acc, st->hist.acc, sizeof(double) * (size_t)(c->n_stages * n_len));
    bool finished = true;
    int status = 0;
    for (; st->stage < c->n_stages; st->stage++) {
        int64_t step_before = st->step;
        const curr_plan plan = *curr_stage_plan(&st->curr, st->stage);
        if (st->stage_step == 0 && curr_stage_resets_moments(&st->curr, st->stage)) {
            size_t slice = sizeof(float) * (size_t)shard_len(&st->shard);
            memset(st->adam_m, 0, slice);
            memset(st->adam_v, 0, slice);
            st->bk->op->zero(st->bk, st->dadam_m, slice);
            st->bk->op->zero(st->bk, st->dadam_v, slice);
            st->adam_step = 0;
        }
        int stop = run_stage(st);
        if (stop >= 0) {
            status = stop;
            finished = false;
            break;
        }
        // A stop before the stage's evaluation: saved at the stage's end, the
        // resumed run evaluates (the gate again, then the passkeys).
        if ((stop = train_stop_poll(st, 0)) >= 0) {
            status = stop;
            finished = false;
            break;
        }
        // A stage ended in an earlier session and evaluated then (a finished
        // run started again): its rows are in metrics.jsonl already. Rank 0
        // knows the history; the others follow its vote.
        bool again = st->step == step_before && (st->is_root ? st->hist.stage_done[st->stage] : true);
        again = !dist_any(&st->dist, !again);
        if (!again) {
            // Validation loss at every stage end (eval_every 0 = only there).
            if (c->train.eval_every == 0 || st->step % c->train.eval_every != 0) log_val_loss(st, &plan);
            char when[96];
            snprintf(when, sizeof when, "after stage %d '%s'", st->stage, plan.name);
            eval_passkey_all(st, st->stage, when, acc + st->stage * n_len);
            train_ppl_eval(st, st->stage, when);
            train_tasks_eval_all(st, st->stage, when);
            if (st->is_root) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "event", "stage_end");
                cJSON_AddNumberToObject(o, "step", (double)st->step);
                cJSON_AddNumberToObject(o, "stage", st->stage);
                metrics_write(&st->met, o);
            }
        }
        // The next stage starts at its step 0; the checkpoint records that.
        if (st->stage + 1 < c->n_stages) {
            st->stage++;
            st->stage_step = 0;
            st->stage_extra_steps = 0;
            save_checkpoint(st);
            st->stage--;
        }
    }
    // Always a checkpoint at the end: the trained model is the run's result
    // (train.ckpt_every 0 means no periodic ones, never none at all).
    if (finished) st->stage = c->n_stages - 1;
    if (status == TRAIN_EXIT_DIVERGED) train_guard_stop(st);  // no checkpoint from that state
    save_checkpoint(st);
    // The committed-stop marker: the templates requeue on it (docs/slurm.md).
    if (status == TRAIN_EXIT_REQUEUE || status == 130) train_stop_write_marker(st, status);
    train_watchdog_stop();
    if (finished) print_summary(st, acc, c->n_stages);
    if (finished) train_ppl_summary(st);
    if (st->gate_failed && st->is_root) {
        fflush(stdout);
        fprintf(stderr, "stretch: stage %d's gate was not met within its max_extra_tokens; "
                        "stopping (see metrics.jsonl, event \"gate\")\n", st->stage);
    }
    if (st->is_root) {
        const char *how = finished ? "finished" : st->gate_failed ? "gate_not_met"
                        : status == 0 ? "max_steps" : "signal";
        train_report_end(st, finished, how);
        metrics_close(&st->met);
    }
    train_history_free(&st->hist);
    train_ppl_close(st);
    free(acc);
    train_step_free(st);
    model_free(st->m);
    backend_comm_free(st->comm);
    backend_free(st->bk);
    tok_free(st->tok);
    cfg_free(&st->cfg);
    dist_finalize(&st->dist);
    free(st);
    return status;
}
