// train_step: the optimizer step of `stretch train`. See train_step.h.
#include "train_step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "die.h"
#include "run_config_check.h"
#include "train.h"
#include "zero_offload.h"

#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_max_threads(void) { return 1; }
#endif

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

bk_dtype train_run_dtype(const cfg_run *c) {
    bool cuda = c->train.backend == CFG_BACKEND_CUDA;
    return c->train.dtype == CFG_DTYPE_AUTO ? (cuda ? BK_BF16 : BK_F32)
           : c->train.dtype == CFG_DTYPE_BF16 ? BK_BF16 : BK_F32;
}

model_opts train_model_opts(const cfg_run *c) {
    int off = offload_flags(c->parallel.offload);
    return (model_opts){.recompute = c->train.recompute,
                        .offload_activations = (off & ZERO_OFFLOAD_ACTIVATIONS) != 0,
                        .host_master = (off & ZERO_OFFLOAD_OPTIMIZER) != 0};
}

static const char *offload_name(cfg_offload o) {
    static const char *const names[] = {"none", "optimizer", "activations", "both"};
    return names[o];
}

int train_zero_check(const cfg_run *c, char *err, size_t errlen) {
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
    return 0;
}

// The memory plan of a rank of run c (zero_plan.h), on a device or not.
static void run_plan(zero_mem *z, const cfg_run *c, const model_config *mc, int64_t n_tokens, bool device) {
    zero_mem_plan(z, mc, n_tokens, c->train.recompute, train_run_dtype(c), device,
                  (shard_mode)c->parallel.shard, offload_flags(c->parallel.offload),
                  c->parallel.dp * cfg_parallel_sp(c));
}

int train_offload_host_check(const cfg_run *c, const model_config *mc, int64_t n_tokens,
                             int ranks_on_node, int64_t mem_available, char *err, size_t errlen) {
    int off = offload_flags(c->parallel.offload);
    if (!off || mem_available < 0) return 0;  // nothing pinned, or no /proc/meminfo to ask
    zero_mem z;
    run_plan(&z, c, mc, n_tokens, true);
    double need = (double)z.host_total * ranks_on_node;
    if (need <= (double)mem_available) return 0;
    snprintf(err, errlen, "parallel.offload: %s needs %.2f GB of pinned host memory per rank (%d "
                          "rank(s) on this node: %.2f GB) but the node has %.2f GB available "
                          "(MemAvailable); offload less, use more nodes or a larger parallel.sp",
             offload_name(c->parallel.offload), z.host_total / 1e9, ranks_on_node, need / 1e9,
             mem_available / 1e9);
    return -1;
}

int train_step_check(const train_state *st, char *err, size_t errlen) {
    return train_zero_check(&st->cfg, err, errlen);
}

void train_print_zero_plan(const cfg_run *c, const model_config *mc, int64_t n_tokens) {
    zero_mem z;
    run_plan(&z, c, mc, n_tokens, c->train.backend == CFG_BACKEND_CUDA);
    zero_mem_print(stdout, &z, (shard_mode)c->parallel.shard, offload_flags(c->parallel.offload));
}

model *train_step_model_create(const train_state *st, const model_config *mc, int64_t max_tokens) {
    int n_tensors;
    int64_t n;
    model_tensor *t = model_param_layout(mc, &n_tensors, &n);
    shard_layout s;
    shard_layout_init(&s, (shard_mode)st->cfg.parallel.shard, st->dist.size, st->dist.rank, t,
                      n_tensors, n);
    model_opts o = train_model_opts(&st->cfg);
    if (s.mode == SHARD_PARAMETERS) {  // ZeRO-3: the device holds the slice only
        o.resident_lo = s.lo;
        o.resident_hi = s.hi;
    }
    model *m = model_create_opts(mc, max_tokens, &o, st->bk);
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
    if (st->is_root && st->shard.mode != SHARD_NONE)
        printf("shard %s over %d ranks: each holds the AdamW state of %lld of %lld parameters\n",
               shard_mode_name(st->shard.mode), st->shard.world, (long long)st->shard.shard,
               (long long)m->n_params);
    st->offload = NULL;
    if (m->offload_acts && st->is_root)
        printf("offload activations: 2 of %d residual checkpoints on the device, %d in pinned host "
               "memory (%.3f GB), prefetched one layer ahead of the backward\n",
               m->cfg.n_layers + 1, m->cfg.n_layers - 1,
               (double)bk_dtype_size(st->bk->dt) * (double)(m->cfg.n_layers > 1 ? m->cfg.n_layers - 1 : 0) *
                   (double)m->max_tokens * m->cfg.dim / 1e9);
    if (m->host_master) {  // parallel.offload optimizer: moments pinned, AdamW on the host
        st->adam_m = st->bk->op->host_alloc(st->bk, bytes);
        st->adam_v = st->bk->op->host_alloc(st->bk, bytes);
        st->dadam_m = st->adam_m;
        st->dadam_v = st->adam_v;
        st->offload = xcalloc(1, sizeof *st->offload);
        zero_offload_init(st->offload, st->bk, &st->shard);
        // The master: all of it (params), or under ZeRO-3 the slice.
        double master = m->hmaster == m->params ? sizeof(float) * (double)m->n_params : (double)bytes;
        if (st->is_root)
            printf("offload optimizer: fp32 master%s, AdamW moments and the gradient slice in "
                   "pinned host memory (%.3f GB), AdamW on %d host thread(s)\n",
                   m->hmaster == m->params ? "" : " slice", (master + 3.0 * (double)bytes) / 1e9,
                   omp_get_max_threads());
        return;
    }
    st->adam_m = xcalloc(n ? n : 1, sizeof(float));
    st->adam_v = xcalloc(n ? n : 1, sizeof(float));
    st->dadam_m = st->bk->host_memory ? st->adam_m : st->bk->op->alloc(st->bk, bytes);
    st->dadam_v = st->bk->host_memory ? st->adam_v : st->bk->op->alloc(st->bk, bytes);
}

void train_step_eval_begin(train_state *st) {
    if (st->eval_depth++ > 0) return;
    st->eval_hook = shard_eval_begin(&st->shard, &st->dist, st->m, st->comm, &st->units, NULL);
}

void train_step_eval_end(train_state *st) {
    CHECK(st->eval_depth > 0);
    if (--st->eval_depth > 0) return;
    shard_eval_end(st->eval_hook);
    st->eval_hook = NULL;
}

void train_step_free(train_state *st) {
    zero3_units_free(&st->units, st->bk);
    if (st->offload) {
        zero_offload_free(st->offload);
        free(st->offload);
        st->offload = NULL;
        st->bk->op->host_free(st->bk, st->adam_m);
        st->bk->op->host_free(st->bk, st->adam_v);
        shard_layout_free(&st->shard);
        return;
    }
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
                        .micro_rows = train_micro_rows(st->cfg.train.micro_batch_tokens, mb->B, mb->T),
                        .offload = st->offload};
    adamw_hparams hp = {.lr = (float)lr, .beta1 = (float)o->beta1, .beta2 = (float)o->beta2,
                        .eps = (float)o->eps, .weight_decay = (float)o->weight_decay};
    double loss = shard_step(&c, mb, n_targets_global, &hp, o->grad_clip, st->adam_step + 1,
                             grad_norm, skipped);
    if (!*skipped) st->adam_step++;  // a skipped step leaves AdamW's bias correction alone
    return loss;
}

size_t train_step_device_plan(const train_state *st) {
    zero_mem z;
    run_plan(&z, &st->cfg, &st->m->cfg, st->m->max_tokens, true);
    return z.device_total;
}

void train_device_mem_log(train_state *st, struct cJSON *o) {
    if (st->bk->host_memory) return;  // the cpu backend: its memory is the RSS, not counted
    size_t now, peak;
    backend_mem_stats(st->bk, &now, &peak);
    cJSON_AddNumberToObject(o, "device_peak_bytes", (double)peak);
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
    cJSON_AddNumberToObject(o, "zero3_kept", (double)z->kept);
    cJSON_AddNumberToObject(o, "zero3_mpi_tests", (double)z->tests);
    if (z->on_the_spot_s > 0 && z->on_the_spot_bytes > 0) {
        double would = z->prefetched_bytes * z->on_the_spot_s / z->on_the_spot_bytes;
        cJSON_AddNumberToObject(o, "zero3_hidden", 1.0 - z->wait_s / would);
    }
    memset(z, 0, sizeof *z);
}
