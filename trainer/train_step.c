// train_step: the optimizer step of `stretch train`. See train_step.h.
#include "train_step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "die.h"
#include "run_config_check.h"
#include "train.h"

int64_t train_micro_rows(int64_t micro_batch_tokens, int64_t rows, int64_t row_len) {
    if (micro_batch_tokens <= 0 || row_len <= 0) return rows;
    int64_t r = micro_batch_tokens / row_len;
    if (r < 1) r = 1;  // a row is never split: attention needs it whole
    return r < rows ? r : rows;
}

static int offload_flags(cfg_offload o) {
    return o == CFG_OFFLOAD_OPTIMIZER ? ZERO_OFFLOAD_OPTIMIZER
           : o == CFG_OFFLOAD_ACTIVATIONS ? ZERO_OFFLOAD_ACTIVATIONS
           : o == CFG_OFFLOAD_BOTH ? ZERO_OFFLOAD_OPTIMIZER | ZERO_OFFLOAD_ACTIVATIONS : 0;
}

static const char *offload_name(cfg_offload o) {
    static const char *const names[] = {"none", "optimizer", "activations", "both"};
    return names[o];
}

int train_zero_check(const cfg_run *c, bool training, char *err, size_t errlen) {
    const cfg_parallel *p = &c->parallel;
    if (p->offload != CFG_OFFLOAD_NONE && c->train.backend == CFG_BACKEND_CPU) {
        snprintf(err, errlen, "parallel.offload: %s needs train.backend cuda (the cpu backend "
                              "keeps everything in host memory already)", offload_name(p->offload));
        return -1;
    }
    if ((offload_flags(p->offload) & ZERO_OFFLOAD_ACTIVATIONS) && !c->train.recompute) {
        snprintf(err, errlen, "parallel.offload: %s offloads the recomputation checkpoints and "
                              "needs train.recompute: true", offload_name(p->offload));
        return -1;
    }
    if (!training) return 0;
    if (p->offload != CFG_OFFLOAD_NONE) {
        snprintf(err, errlen, "parallel.offload: %s is not implemented in this build (--dry-run "
                              "plans it; docs/distributed.md); use none", offload_name(p->offload));
        return -1;
    }
    return 0;
}

int train_step_check(const train_state *st, char *err, size_t errlen) {
    return train_zero_check(&st->cfg, true, err, errlen);
}

void train_print_zero_plan(const cfg_run *c, const model_config *mc, int64_t n_tokens) {
    bool cuda = c->train.backend == CFG_BACKEND_CUDA;
    bk_dtype dt = c->train.dtype == CFG_DTYPE_AUTO ? (cuda ? BK_BF16 : BK_F32)
                  : c->train.dtype == CFG_DTYPE_BF16 ? BK_BF16 : BK_F32;
    zero_mem z;
    int off = offload_flags(c->parallel.offload);
    zero_mem_plan(&z, mc, n_tokens, c->train.recompute, dt, cuda, (shard_mode)c->parallel.shard, off,
                  c->parallel.dp * cfg_parallel_sp(c));
    zero_mem_print(stdout, &z, (shard_mode)c->parallel.shard, off);
}

model *train_step_model_create(const train_state *st, const model_config *mc, int64_t max_tokens) {
    int n_tensors;
    int64_t n;
    model_tensor *t = model_param_layout(mc, &n_tensors, &n);
    shard_layout s;
    shard_layout_init(&s, (shard_mode)st->cfg.parallel.shard, st->dist.size, st->dist.rank, t,
                      n_tensors, n);
    bool slice = s.mode == SHARD_PARAMETERS;  // ZeRO-3: the device holds the slice only
    model *m = model_create_resident(mc, max_tokens, st->cfg.train.recompute, st->bk,
                                     slice ? s.lo : 0, slice ? s.hi : n);
    shard_layout_free(&s);
    free(t);
    return m;
}

void train_step_setup(train_state *st) {
    model *m = st->m;
    shard_layout_init(&st->shard, (shard_mode)st->cfg.parallel.shard, st->dist.size, st->dist.rank,
                      m->tensors, m->n_tensors, m->n_params);
    zero3_units_init(&st->units, &st->shard, m);
    size_t n = (size_t)shard_len(&st->shard), bytes = sizeof(float) * (n ? n : 1);
    st->adam_m = xcalloc(n ? n : 1, sizeof(float));
    st->adam_v = xcalloc(n ? n : 1, sizeof(float));
    st->dadam_m = st->bk->host_memory ? st->adam_m : st->bk->op->alloc(st->bk, bytes);
    st->dadam_v = st->bk->host_memory ? st->adam_v : st->bk->op->alloc(st->bk, bytes);
    if (st->is_root && st->shard.mode != SHARD_NONE)
        printf("shard %s over %d ranks: each holds the AdamW state of %lld of %lld parameters\n",
               shard_mode_name(st->shard.mode), st->shard.world, (long long)st->shard.shard,
               (long long)m->n_params);
}

void train_step_params_full(train_state *st) { shard_params_full(&st->shard, &st->dist, st->m); }

void train_step_free(train_state *st) {
    zero3_units_free(&st->units, st->bk);
    if (st->dadam_m != st->adam_m) st->bk->op->free(st->bk, st->dadam_m);
    if (st->dadam_v != st->adam_v) st->bk->op->free(st->bk, st->dadam_v);
    free(st->adam_m);
    free(st->adam_v);
    shard_layout_free(&st->shard);
}

double train_step_run(train_state *st, const model_batch *mb, int64_t n_targets_global, double lr,
                      double *grad_norm, bool *skipped) {
    const cfg_optimizer *o = &st->cfg.optimizer;
    shard_step_ctx c = {.m = st->m, .comm = st->comm, .d = &st->dist, .s = &st->shard,
                        .adam_m = st->dadam_m, .adam_v = st->dadam_v,
                        .units = &st->units, .stats = &st->zero3,
                        .micro_rows = train_micro_rows(st->cfg.train.micro_batch_tokens, mb->B, mb->T)};
    adamw_hparams hp = {.lr = (float)lr, .beta1 = (float)o->beta1, .beta2 = (float)o->beta2,
                        .eps = (float)o->eps, .weight_decay = (float)o->weight_decay};
    double loss = shard_step(&c, mb, n_targets_global, &hp, o->grad_clip, st->adam_step + 1,
                             grad_norm, skipped);
    if (!*skipped) st->adam_step++;  // a skipped step leaves AdamW's bias correction alone
    return loss;
}

void train_zero3_log(train_state *st, struct cJSON *o) {
    zero3_stats *z = &st->zero3;
    if (st->shard.mode != SHARD_PARAMETERS || !st->bk->host_memory || z->prefetched == 0) return;
    cJSON_AddNumberToObject(o, "zero3_prefetched", (double)z->prefetched);
    cJSON_AddNumberToObject(o, "zero3_prefetched_bytes", z->prefetched_bytes);
    cJSON_AddNumberToObject(o, "zero3_wait_s", z->wait_s);
    cJSON_AddNumberToObject(o, "zero3_prefetched_s", z->prefetched_s);
    cJSON_AddNumberToObject(o, "zero3_on_the_spot", (double)z->on_the_spot);
    cJSON_AddNumberToObject(o, "zero3_on_the_spot_bytes", z->on_the_spot_bytes);
    cJSON_AddNumberToObject(o, "zero3_on_the_spot_s", z->on_the_spot_s);
    cJSON_AddNumberToObject(o, "zero3_mpi_tests", (double)z->tests);
    if (z->on_the_spot_s > 0 && z->on_the_spot_bytes > 0) {
        double would = z->prefetched_bytes * z->on_the_spot_s / z->on_the_spot_bytes;
        cJSON_AddNumberToObject(o, "zero3_hidden", 1.0 - z->wait_s / would);
    }
    memset(z, 0, sizeof *z);
}
