// train_resume: the rules of train_resume.h, key by key over the config table.
#include "train_resume.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "run_config_echo.h"

typedef struct {
    char allowed[1024];
    size_t n_allowed;
    int count;
    char refused[768];  // the first refused key's message
} resume_diff;

static void note_change(resume_diff *d, const char *key, const cfg_key *k, const void *a, const void *b,
                        const char *why_not) {
    char *va = cfg_key_format(k, a), *vb = cfg_key_format(k, b);
    if (why_not) {
        if (!d->refused[0])
            snprintf(d->refused, sizeof d->refused, "%s: %.40s -> %.40s cannot change on resume: %s", key, va,
                     vb, why_not);
    } else if (d->n_allowed < sizeof d->allowed - 1) {
        int n = snprintf(d->allowed + d->n_allowed, sizeof d->allowed - d->n_allowed, "%s%s: %.40s -> %.40s",
                         d->count ? ", " : "", key, va, vb);
        d->n_allowed += n > 0 ? (size_t)n : 0;
        if (d->n_allowed >= sizeof d->allowed) d->n_allowed = sizeof d->allowed - 1;
        d->count++;
    }
    free(va);
    free(vb);
}

static bool starts(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

// Why a global key may not change, or NULL. begun: the current stage has taken steps.
static const char *global_rule(const cfg_key *k, const cfg_run *now, int stage, bool begun) {
    if (k->flags & CFG_F_RESUME) return NULL;
    if (starts(k->path, "model.")) return "the model's shape is the checkpoint's";
    if (!strcmp(k->path, "data.tokenizer")) return "the checkpoint's vocabulary is this tokenizer's";
    if (!strcmp(k->path, "train.seed")) return "it fixes the data order and the evaluation samples";
    if (starts(k->path, "optimizer.")) return NULL;  // the schedule from now on
    if (starts(k->path, "data.")) {
        if (!begun) return NULL;
        // data.train only reaches stages without their own data.
        if (!strcmp(k->path, "data.train") && now->stages[stage].data.n > 0) return NULL;
        return "the current stage is under way on this data (its order is half consumed); "
               "data changes apply to stages not yet started";
    }
    return "it shapes the run so far";
}

// Why a key of stage s may not change, or NULL.
static const char *stage_rule(const cfg_key *k, int s, int stage, bool begun) {
    if (k->flags & CFG_F_RESUME) return NULL;
    if (s > stage || (s == stage && !begun)) return NULL;  // not started
    if (s < stage) return "that stage is finished";
    if (!strcmp(k->path, "lr") || !strcmp(k->path, "warmup_steps") || !strcmp(k->path, "schedule") ||
        !strcmp(k->path, "steps") || !strcmp(k->path, "tokens"))
        return NULL;  // the schedule from now on; the budget is checked on the resolved plan
    return "the current stage is under way (only its lr, warmup_steps, schedule, budget, gate and "
           "name may change)";
}

// A stage's budget in steps (curriculum.h's rule: steps, or tokens rounded up).
static int64_t stage_steps(const cfg_stage *s) {
    if (s->steps > 0 || s->batch_tokens <= 0) return s->steps;
    return (s->tokens + s->batch_tokens - 1) / s->batch_tokens;
}

int train_resume_check(const cfg_run *saved, const cfg_run *now, int stage, int64_t stage_step,
                       const char *ckpt, FILE *note, char *err, size_t errlen) {
    resume_diff d;
    memset(&d, 0, sizeof d);
    bool begun = stage_step > 0;
    int n_keys;
    const cfg_key *keys = cfg_keys(&n_keys);
    for (int i = 0; i < n_keys; i++) {
        const cfg_key *k = &keys[i];
        if (k->stage || cfg_key_equal(k, saved, now)) continue;
        note_change(&d, k->path, k, saved, now, global_rule(k, now, stage, begun));
    }
    if (now->n_stages <= stage) {
        if (!d.refused[0])
            snprintf(d.refused, sizeof d.refused,
                     "stages: %d -> %d cannot change on resume: the checkpoint is in stage %d", saved->n_stages,
                     now->n_stages, stage);
    } else if (now->n_stages != saved->n_stages && d.n_allowed < sizeof d.allowed - 64) {
        d.n_allowed += (size_t)snprintf(d.allowed + d.n_allowed, sizeof d.allowed - d.n_allowed,
                                        "%sstages: %d -> %d", d.count ? ", " : "", saved->n_stages, now->n_stages);
        d.count++;
    }
    int common = saved->n_stages < now->n_stages ? saved->n_stages : now->n_stages;
    for (int s = 0; s < common; s++) {
        for (int i = 0; i < n_keys; i++) {
            const cfg_key *k = &keys[i];
            if (!k->stage || cfg_key_equal(k, &saved->stages[s], &now->stages[s])) continue;
            char key[160];
            snprintf(key, sizeof key, "stages.%d.%s", s, k->path);
            note_change(&d, key, k, &saved->stages[s], &now->stages[s], stage_rule(k, s, stage, begun));
        }
    }
    // The current stage's budget may change, but not to before the step reached.
    if (!d.refused[0] && begun && stage < now->n_stages) {
        int64_t was = stage_steps(&saved->stages[stage]), steps = stage_steps(&now->stages[stage]);
        if (steps < stage_step)
            snprintf(d.refused, sizeof d.refused,
                     "stages.%d.steps: %lld -> %lld cannot change on resume: the checkpoint is at step %lld of "
                     "that stage", stage, (long long)was, (long long)steps, (long long)stage_step);
    }
    if (d.refused[0])
        return errmsg(err, errlen, "resume from %s: %s (use --resume never to start afresh)", ckpt, d.refused);
    if (note && d.count > 0) fprintf(note, "resume: changed since %s (allowed): %s\n", ckpt, d.allowed);
    return 0;
}
