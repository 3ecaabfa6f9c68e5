// curriculum: a run config's stages resolved once. See curriculum.h; the
// stage RoPE derivation is in curriculum_rope.c.
#include "curriculum.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "curriculum_rope.h"
#include "die.h"
#include "lr.h"
#include "run_config_check.h"

// Inherited values: the stage's own, else the optimizer's / data's.
static void resolve_plan(curr_plan *out, const cfg_run *cfg, int stage) {
    const cfg_stage *st = &cfg->stages[stage];
    const cfg_optimizer *opt = &cfg->optimizer;
    memset(out, 0, sizeof *out);
    if (st->name)
        snprintf(out->name, sizeof out->name, "%s", st->name);
    else
        snprintf(out->name, sizeof out->name, "stage%d", stage);
    out->seq_len = st->seq_len;
    out->batch_tokens = st->batch_tokens;
    out->steps = st->steps > 0 || st->batch_tokens <= 0
                     ? st->steps
                     : (st->tokens + st->batch_tokens - 1) / st->batch_tokens;
    out->lr = isnan(st->lr) ? opt->lr : st->lr;
    out->min_lr = out->lr * opt->min_lr_ratio;
    out->warmup_steps = st->warmup_steps >= 0 ? st->warmup_steps : opt->warmup_steps;
    out->schedule = st->schedule == CFG_SCHEDULE_INHERIT ? opt->schedule : st->schedule;
    out->carry_moments = st->carry_moments;
    out->data = st->data.n > 0 ? &st->data : &cfg->data.train;
    out->passkey_ratio = isnan(st->passkey_ratio) ? cfg->data.passkey_ratio : st->passkey_ratio;
    out->pose_len = st->pose_len;
    out->passkey_pack_min = st->passkey_pack_min;
    out->passkey_pack_long = st->passkey_pack_long;
    out->gate = st->gate;
}

int curr_load(curriculum *c, const cfg_run *cfg, char *err, size_t errlen) {
    CHECK(cfg->n_stages >= 0 && cfg->n_stages <= CFG_MAX_STAGES);
    memset(c, 0, sizeof *c);
    c->n_stages = cfg->n_stages;
    c->original_context = cfg_original_context(cfg);
    for (int s = 0; s < cfg->n_stages; s++) {
        resolve_plan(&c->plan[s], cfg, s);
        if (curr_resolve_rope(&c->rope[s], cfg, s, err, errlen)) return -1;
        c->mixed[s] = cfg->stages[s].rope.mixed;
    }
    return 0;
}

const curr_plan *curr_stage_plan(const curriculum *c, int s) {
    CHECK(s >= 0 && s < c->n_stages);
    return &c->plan[s];
}

const rope_config *curr_stage_rope(const curriculum *c, int s) {
    CHECK(s >= 0 && s < c->n_stages);
    return &c->rope[s];
}

void curr_rope_table(rope_table *t, const curriculum *c, int s, int64_t seq_len) {
    rope_table_init(t, curr_stage_rope(c, s), seq_len);
}

bool curr_stage_mixed(const curriculum *c, int s) {
    CHECK(s >= 0 && s < c->n_stages);
    return c->mixed[s];
}

void curr_train_rope_table(rope_table *t, const curriculum *c, int s) {
    if (curr_stage_mixed(c, s))
        rope_table_init_mixed(t, curr_stage_rope(c, s));
    else
        curr_rope_table(t, c, s, curr_stage_plan(c, s)->seq_len);
}

double curr_lr(const curriculum *c, int s, int64_t step) {
    const curr_plan *p = curr_stage_plan(c, s);
    return sched_lr(p->schedule == CFG_SCHEDULE_CONSTANT ? SCHED_CONSTANT : SCHED_COSINE, p->lr,
                    p->min_lr / p->lr, p->warmup_steps, p->steps, step);
}

bool curr_stage_resets_moments(const curriculum *c, int s) {
    return s > 0 && !curr_stage_plan(c, s)->carry_moments;
}

bool curr_gate_needs_passkey(const curriculum *c, int s) {
    return curr_stage_plan(c, s)->gate.passkey_acc > 0;
}

bool curr_gate_needs_val_loss(const curriculum *c, int s) {
    return curr_stage_plan(c, s)->gate.val_loss > 0;
}

bool curr_gate_needed(const curriculum *c, int s) {
    return curr_gate_needs_passkey(c, s) || curr_gate_needs_val_loss(c, s);
}

bool curr_gate_passed(const curriculum *c, int s, double passkey_acc, double val_loss) {
    const cfg_gate *g = &curr_stage_plan(c, s)->gate;
    bool met = true;
    if (g->passkey_acc > 0) met &= passkey_acc >= g->passkey_acc;
    if (g->val_loss > 0) met &= val_loss <= g->val_loss;
    return met;
}

int64_t curr_gate_extension(const curriculum *c, int s, int64_t extra_steps) {
    const curr_plan *p = curr_stage_plan(c, s);
    int64_t chunk = (p->gate.max_extra_tokens / p->batch_tokens + 3) / 4;
    int64_t cap = p->gate.max_extra_tokens / p->batch_tokens;
    if (chunk < 1 || extra_steps + chunk > cap) return 0;
    return chunk;
}
