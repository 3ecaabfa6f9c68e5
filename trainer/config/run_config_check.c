// run_config_check: cross-key rules and the model view of a run config.
// Messages start with the key they are about ("optimizer.lr (-1) must be
// > 0"); cfg_key_error() puts the file and line in front.
#include "run_config_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"

// Returns -1 from the calling function with a message about key.
#define REQUIRE(cond, key, ...)                                            \
    do {                                                                   \
        if (!(cond)) return cfg_key_error(err, errlen, cfg, key, __VA_ARGS__); \
    } while (0)

static bool in_unit(double x) { return x >= 0.0 && x <= 1.0; }

// ---------------------------------------------------------------------------
// The model view (the stages' plans and RoPE: schedules/curriculum.c)

int cfg_parallel_ring(const cfg_run *cfg) {
    return cfg->parallel.ring > 0 ? cfg->parallel.ring : cfg->parallel.sp;
}

int cfg_parallel_sp(const cfg_run *cfg) {
    return cfg_parallel_ring(cfg) * (cfg->parallel.ulysses > 0 ? cfg->parallel.ulysses : 1);
}

int64_t cfg_original_context(const cfg_run *cfg) {
    int64_t m = cfg->model.config.rope.max_position_embeddings;
    if (m > 0) return m;
    return cfg->n_stages > 0 ? cfg->stages[0].seq_len : 0;
}

void cfg_model_config(model_config *out, const cfg_run *cfg) {
    *out = cfg->model.config;
    out->rope.head_dim = model_config_head_dim(out);
    out->rope.max_position_embeddings = cfg_original_context(cfg);
}

// ---------------------------------------------------------------------------
// Rules

static int check_strings(const cfg_run *cfg, const cfg_strings *l, const char *key, char *err,
                         size_t errlen) {
    for (int i = 0; i < l->n; i++)
        REQUIRE(l->v[i][0], key, "%s: item %d is an empty path", key, i);
    return 0;
}

static int check_sections(const cfg_run *cfg, char *err, size_t errlen) {
    const cfg_data *d = &cfg->data;
    const cfg_optimizer *o = &cfg->optimizer;
    const cfg_train *t = &cfg->train;
    const cfg_eval *e = &cfg->eval;
    REQUIRE(!cfg->model.init || cfg->model.init[0], "model.init",
            "model.init must be a path or null, not empty");
    REQUIRE(cfg->model.config.vocab_size >= 0, "model.vocab_size",
            "model.vocab_size (%d) must be > 0, or 0 for the tokenizer's",
            cfg->model.config.vocab_size);
    REQUIRE(cfg->model.config.rope.max_position_embeddings >= 0, "model.max_position_embeddings",
            "model.max_position_embeddings (%lld) must be > 0, or 0 for stages.0.seq_len",
            (long long)cfg->model.config.rope.max_position_embeddings);

    REQUIRE(d->tokenizer[0], "data.tokenizer",
            "data.tokenizer must be 'byte', the path of a tokenizer.json or of a GGUF file");
    if (check_strings(cfg, &d->train, "data.train", err, errlen) ||
        check_strings(cfg, &d->val, "data.val", err, errlen))
        return -1;
    REQUIRE(in_unit(d->passkey_ratio), "data.passkey_ratio",
            "data.passkey_ratio (%g) must be in [0, 1]", d->passkey_ratio);
    REQUIRE(!d->corpus || d->corpus[0], "data.corpus", "data.corpus must be a name or null");

    REQUIRE(o->lr > 0.0, "optimizer.lr", "optimizer.lr (%g) must be > 0", o->lr);
    REQUIRE(in_unit(o->min_lr_ratio), "optimizer.min_lr_ratio",
            "optimizer.min_lr_ratio (%g) must be in [0, 1]", o->min_lr_ratio);
    REQUIRE(o->beta1 >= 0.0 && o->beta1 < 1.0, "optimizer.beta1",
            "optimizer.beta1 (%g) must be in [0, 1)", o->beta1);
    REQUIRE(o->beta2 >= 0.0 && o->beta2 < 1.0, "optimizer.beta2",
            "optimizer.beta2 (%g) must be in [0, 1)", o->beta2);
    REQUIRE(o->eps > 0.0, "optimizer.eps", "optimizer.eps (%g) must be > 0", o->eps);
    REQUIRE(o->weight_decay >= 0.0, "optimizer.weight_decay",
            "optimizer.weight_decay (%g) must be >= 0", o->weight_decay);
    REQUIRE(o->grad_clip >= 0.0, "optimizer.grad_clip",
            "optimizer.grad_clip (%g) must be >= 0 (0 = off)", o->grad_clip);
    REQUIRE(o->warmup_steps >= 0, "optimizer.warmup_steps",
            "optimizer.warmup_steps (%lld) must be >= 0", (long long)o->warmup_steps);

    REQUIRE(cfg->parallel.dp >= 1, "parallel.dp", "parallel.dp (%d) must be >= 1",
            cfg->parallel.dp);
    REQUIRE(cfg->parallel.sp >= 1, "parallel.sp", "parallel.sp (%d) must be >= 1",
            cfg->parallel.sp);
    REQUIRE(cfg->parallel.ring >= 0, "parallel.ring",
            "parallel.ring (%d) must be >= 1 (or 0 = parallel.sp)", cfg->parallel.ring);
    REQUIRE(cfg->parallel.ring == 0 || cfg->parallel.sp == 1 ||
                cfg->parallel.sp == cfg->parallel.ring, "parallel.sp",
            "parallel.sp (%d) is the ring degree (the old name of parallel.ring) but "
            "parallel.ring is %d: give one of them (ranks per sequence = ring x ulysses)",
            cfg->parallel.sp, cfg->parallel.ring);
    REQUIRE(cfg->parallel.ulysses >= 1, "parallel.ulysses", "parallel.ulysses (%d) must be >= 1",
            cfg->parallel.ulysses);

    REQUIRE(t->seed >= 0, "train.seed", "train.seed (%lld) must be >= 0", (long long)t->seed);
    REQUIRE(t->out_dir[0], "train.out_dir", "train.out_dir must not be empty");
    REQUIRE(t->log_every >= 1, "train.log_every", "train.log_every (%lld) must be >= 1",
            (long long)t->log_every);
    REQUIRE(t->eval_every >= 0, "train.eval_every", "train.eval_every (%lld) must be >= 0",
            (long long)t->eval_every);
    REQUIRE(t->ckpt_every >= 0, "train.ckpt_every", "train.ckpt_every (%lld) must be >= 0",
            (long long)t->ckpt_every);
    REQUIRE(t->max_skipped_steps >= 0, "train.max_skipped_steps",
            "train.max_skipped_steps (%d) must be >= 0", t->max_skipped_steps);
    REQUIRE(t->keep_last >= 0, "train.keep_last", "train.keep_last (%d) must be >= 0",
            t->keep_last);
    REQUIRE(t->max_steps >= 0, "train.max_steps", "train.max_steps (%lld) must be >= 0",
            (long long)t->max_steps);
    REQUIRE(t->micro_batch_tokens >= 0, "train.micro_batch_tokens",
            "train.micro_batch_tokens (%lld) must be >= 0", (long long)t->micro_batch_tokens);
    REQUIRE(t->ckpt_every_minutes >= 0, "train.ckpt_every_minutes",
            "train.ckpt_every_minutes (%g) must be >= 0", t->ckpt_every_minutes);
    REQUIRE(t->time_limit_minutes >= 0, "train.time_limit_minutes",
            "train.time_limit_minutes (%g) must be >= 0", t->time_limit_minutes);
    REQUIRE(t->stop_margin_s >= 0, "train.stop_margin_s", "train.stop_margin_s (%g) must be >= 0",
            t->stop_margin_s);
    REQUIRE(t->watchdog_minutes >= 0, "train.watchdog_minutes",
            "train.watchdog_minutes (%g) must be >= 0", t->watchdog_minutes);

    for (int i = 0; i < e->passkey_lengths.n; i++)
        REQUIRE(e->passkey_lengths.v[i] > 0, "eval.passkey_lengths",
                "eval.passkey_lengths: item %d (%lld) must be > 0", i,
                (long long)e->passkey_lengths.v[i]);
    REQUIRE(e->passkey_trials >= 0, "eval.passkey_trials", "eval.passkey_trials (%d) must be >= 0",
            e->passkey_trials);
    for (int i = 0; i < e->passkey_depths.n; i++)
        REQUIRE(in_unit(e->passkey_depths.v[i]), "eval.passkey_depths",
                "eval.passkey_depths: item %d (%g) must be in [0, 1]", i, e->passkey_depths.v[i]);
    REQUIRE(e->passkey_trials == 0 || e->passkey_depths.n > 0, "eval.passkey_depths",
            "eval.passkey_depths must not be empty when eval.passkey_trials > 0");
    REQUIRE(e->val_tokens >= 0, "eval.val_tokens", "eval.val_tokens (%lld) must be >= 0",
            (long long)e->val_tokens);
    REQUIRE(e->task_trials >= 1, "eval.task_trials", "eval.task_trials (%d) must be >= 1", e->task_trials);
    for (int i = 0; i < e->task_lengths.n; i++)
        REQUIRE(e->task_lengths.v[i] > 0, "eval.task_lengths", "eval.task_lengths: item %d (%lld) must be > 0",
                i, (long long)e->task_lengths.v[i]);
    REQUIRE(in_unit(e->task_threshold), "eval.task_threshold", "eval.task_threshold (%g) must be in [0, 1]",
            e->task_threshold);
    for (int i = 0; i < e->ppl_lengths.n; i++)
        REQUIRE(e->ppl_lengths.v[i] > 0, "eval.ppl_lengths", "eval.ppl_lengths: item %d (%lld) must be > 0",
                i, (long long)e->ppl_lengths.v[i]);
    if (check_strings(cfg, &e->ppl_data, "eval.ppl_data", err, errlen)) return -1;
    REQUIRE(!e->ppl_corpus || e->ppl_corpus[0], "eval.ppl_corpus", "eval.ppl_corpus must be a name or null");
    REQUIRE(e->ppl_lengths.n == 0 || e->ppl_corpus || e->ppl_data.n > 0, "eval.ppl_lengths",
            "eval.ppl_lengths needs held-out text: set eval.ppl_corpus (e.g. kjv) or eval.ppl_data");
    REQUIRE(e->ppl_tokens >= 1, "eval.ppl_tokens", "eval.ppl_tokens (%lld) must be >= 1",
            (long long)e->ppl_tokens);
    const cfg_task_mix *tm = &cfg->data.task_mix;
    const double mix[] = {tm->niah_single, tm->niah_single_uuid, tm->niah_multikey, tm->niah_multivalue,
                          tm->niah_multiquery, tm->vt, tm->cwe, tm->fwe};
    for (size_t i = 0; i < sizeof mix / sizeof *mix; i++)
        REQUIRE(in_unit(mix[i]), "data.task_mix", "data.task_mix: every fraction must be in [0, 1] (got %g)", mix[i]);
    return 0;
}

// The rules of stage i that need no model (seq_len, budget, batch, overrides).
static int check_stage(const cfg_run *cfg, int i, char *err, size_t errlen) {
    const cfg_stage *st = &cfg->stages[i];
    char k[96];
#define KEY(name) (snprintf(k, sizeof k, "stages.%d.%s", i, name), k)
    if (st->name) {
        REQUIRE(st->name[0] && strlen(st->name) < 64, KEY("name"),
                "%s must be 1 to 63 characters", k);
        for (int j = 0; j < i; j++)
            REQUIRE(!cfg->stages[j].name || strcmp(cfg->stages[j].name, st->name), KEY("name"),
                    "%s ('%s') is also the name of stages.%d", k, st->name, j);
    }
    REQUIRE(st->seq_len > 0, KEY("seq_len"), "%s (%lld) must be > 0", k, (long long)st->seq_len);
    if (i > 0)
        REQUIRE(st->seq_len >= cfg->stages[i - 1].seq_len, KEY("seq_len"),
                "%s (%lld) is shorter than stages.%d.seq_len (%lld): stages keep or grow the "
                "context", k, (long long)st->seq_len, i - 1, (long long)cfg->stages[i - 1].seq_len);
    REQUIRE(st->tokens >= 0, KEY("tokens"), "%s (%lld) must be >= 0", k, (long long)st->tokens);
    REQUIRE(st->steps >= 0, KEY("steps"), "%s (%lld) must be >= 0", k, (long long)st->steps);
    REQUIRE(st->tokens > 0 || st->steps > 0, KEY("tokens"),
            "%s: stage %d needs a budget: give tokens or steps", k, i);
    REQUIRE(!(st->tokens > 0 && st->steps > 0), KEY("steps"),
            "%s: give tokens or steps, not both (stages.%d.tokens is %lld)", k, i,
            (long long)st->tokens);

    const cfg_parallel *par = &cfg->parallel;
    KEY("batch_tokens");
    REQUIRE(st->batch_tokens > 0, k, "%s (%lld) must be > 0", k, (long long)st->batch_tokens);
    REQUIRE(st->batch_tokens % st->seq_len == 0, k,
            "%s (%lld) must be a multiple of stages.%d.seq_len (%lld)", k,
            (long long)st->batch_tokens, i, (long long)st->seq_len);
    int64_t seqs = st->batch_tokens / st->seq_len;
    REQUIRE(seqs % par->dp == 0, k,
            "%s (%lld) is %lld sequences of %lld, which parallel.dp (%d) ranks cannot share "
            "evenly", k, (long long)st->batch_tokens, (long long)seqs, (long long)st->seq_len,
            par->dp);
    if (par->ulysses > 1)
        REQUIRE(st->seq_len % (2 * cfg_parallel_sp(cfg)) == 0, KEY("seq_len"),
                "%s (%lld) must be a multiple of 2 * parallel.ring (%d) * parallel.ulysses (%d) "
                "for the zig-zag split", k, (long long)st->seq_len, cfg_parallel_ring(cfg),
                par->ulysses);
    else if (cfg_parallel_ring(cfg) > 1)
        REQUIRE(st->seq_len % (2 * cfg_parallel_ring(cfg)) == 0, KEY("seq_len"),
                "%s (%lld) must be a multiple of 2 * parallel.sp (%d) for the zig-zag split", k,
                (long long)st->seq_len, 2 * cfg_parallel_ring(cfg));

    REQUIRE(isnan(st->lr) || st->lr > 0.0, KEY("lr"), "%s (%g) must be > 0", k, st->lr);
    REQUIRE(isnan(st->passkey_ratio) || in_unit(st->passkey_ratio), KEY("passkey_ratio"),
            "%s (%g) must be in [0, 1]", k, st->passkey_ratio);
    REQUIRE(st->pose_len == 0 || st->pose_len > st->seq_len, KEY("pose_len"),
            "%s (%lld) must be 0 or larger than the stage's seq_len (%lld)", k,
            (long long)st->pose_len, (long long)st->seq_len);
    REQUIRE(st->passkey_pack_min >= 0 && st->passkey_pack_min <= st->seq_len,
            KEY("passkey_pack_min"), "%s (%lld) must be 0 or in (0, seq_len = %lld]", k,
            (long long)st->passkey_pack_min, (long long)st->seq_len);
    REQUIRE(in_unit(st->passkey_pack_long), KEY("passkey_pack_long"),
            "%s (%g) must be in [0, 1]", k, st->passkey_pack_long);
    REQUIRE(st->passkey_pack_long == 0 || st->passkey_pack_min > 0, KEY("passkey_pack_long"),
            "%s (%g) needs passkey_pack_min > 0 (unpacked rows are all one sample of seq_len)", k,
            st->passkey_pack_long);
    if (check_strings(cfg, &st->data, KEY("data"), err, errlen)) return -1;
    REQUIRE(in_unit(st->gate.passkey_acc), KEY("gate.passkey_acc"), "%s (%g) must be in [0, 1]",
            k, st->gate.passkey_acc);
    REQUIRE(st->gate.val_loss >= 0.0, KEY("gate.val_loss"), "%s (%g) must be >= 0", k,
            st->gate.val_loss);
    const cfg_task_mix *tm = &cfg->data.task_mix;
    const double tasks = st->tasks ? tm->niah_single + tm->niah_single_uuid + tm->niah_multikey + tm->niah_multivalue +
                                         tm->niah_multiquery + tm->vt + tm->cwe + tm->fwe : 0.0;
    const double pk = isnan(st->passkey_ratio) ? cfg->data.passkey_ratio : st->passkey_ratio;
    REQUIRE(pk + fmin(cfg->data.copy_ratio, 1.0 - pk) + tasks <= 1.0 + 1e-9, "data.task_mix",
            "data.task_mix: stage %d would mix passkey, copy and task rows summing to %g; at most 1 (or "
            "stages.%d.tasks: false)", i, pk + fmin(cfg->data.copy_ratio, 1.0 - pk) + tasks, i);
    REQUIRE(in_unit(st->gate.accuracy), KEY("gate.accuracy"), "%s (%g) must be in [0, 1]", k,
            st->gate.accuracy);
    REQUIRE((st->gate.task != NULL) == (st->gate.accuracy > 0), KEY("gate.task"),
            "%s and gate.accuracy go together (a task name and an accuracy > 0)", k);
    REQUIRE(st->gate.max_extra_tokens >= 0, KEY("gate.max_extra_tokens"), "%s (%lld) must be >= 0",
            k, (long long)st->gate.max_extra_tokens);

    // The stage's shards, else data.train; its passkey_ratio, else data's.
    const cfg_strings *data = st->data.n > 0 ? &st->data : &cfg->data.train;
    double passkey_ratio = isnan(st->passkey_ratio) ? cfg->data.passkey_ratio : st->passkey_ratio;
    REQUIRE(data->n > 0 || cfg->data.corpus || passkey_ratio >= 1.0, KEY("data"),
            "%s: stage %d has no training text: give data.train, data.corpus or %s, or a "
            "passkey_ratio of 1", k, i, k);
#undef KEY
    return 0;
}

int cfg_validate(const cfg_run *cfg, char *err, size_t errlen) {
    if (check_sections(cfg, err, errlen)) return -1;
    REQUIRE(cfg->n_stages > 0, "stages", "stages: at least one stage is required");
    REQUIRE(!(cfg->train.backend == CFG_BACKEND_CPU && cfg->train.dtype == CFG_DTYPE_BF16),
            "train.dtype", "train.dtype: bf16 needs train.backend cuda (the cpu backend computes in fp32)");
    for (int i = 0; i < cfg->n_stages; i++)
        if (check_stage(cfg, i, err, errlen)) return -1;

    model_config m;
    cfg_model_config(&m, cfg);
    if (m.vocab_size == 0) m.vocab_size = 1;  // the tokenizer's: checked when it is loaded
    char msg[256];
    if (model_config_validate(&m, msg, sizeof msg)) {
        // The message starts with the key ("model.n_kv_heads (3) must ...").
        char key[64];
        size_t n = strcspn(msg, " :(");
        snprintf(key, sizeof key, "%.*s", (int)(n < sizeof key ? n : sizeof key - 1), msg);
        return cfg_key_error(err, errlen, cfg, key, "%s", msg);
    }
    // Each stage's rope is checked by curr_load (schedules/curriculum.h),
    // which the callers run next.
    return 0;
}
