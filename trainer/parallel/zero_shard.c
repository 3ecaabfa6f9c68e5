// zero_shard: the sharded optimizer step. See zero_shard.h.
#include "zero_shard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "mono_clock.h"
#include "zero_offload.h"
#include "zero_pages.h"

const char *shard_mode_name(shard_mode m) {
    static const char *const names[] = {"none", "optimizer", "gradients", "parameters"};
    return m >= SHARD_NONE && m <= SHARD_PARAMETERS ? names[m] : "?";
}

void shard_layout_init(shard_layout *s, shard_mode mode, int world, int rank,
                       const param_tensor *tensors, int n_tensors, int64_t n) {
    CHECK(world >= 1 && rank >= 0 && rank < world && n >= 0);
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->world = mode == SHARD_NONE ? 1 : world;
    s->rank = mode == SHARD_NONE ? 0 : rank;
    s->n = n;
    s->shard = (n + s->world - 1) / s->world;
    s->lo = (int64_t)s->rank * s->shard;
    s->hi = s->lo + s->shard;
    if (s->lo > n) s->lo = n;
    if (s->hi > n) s->hi = n;
    s->tensors = xcalloc((size_t)n_tensors + 1, sizeof(param_tensor));
    for (int i = 0; i < n_tensors; i++) {
        const param_tensor *t = &tensors[i];
        int64_t a = t->offset, b = a + t->shape[0] * t->shape[1];
        if (a < s->lo) a = s->lo;
        if (b > s->hi) b = s->hi;
        if (b <= a) continue;
        param_tensor *u = &s->tensors[s->n_tensors++];
        *u = *t;
        u->offset = a - s->lo;
        u->shape[0] = b - a;  // AdamW reads offset, element count and decay only
        u->shape[1] = 1;
    }
}

void shard_layout_free(shard_layout *s) {
    free(s->tensors);
    s->tensors = NULL;
}

static void grad_ready(void *ctx, int64_t lo) { backend_comm_grad_ready(ctx, lo); }

// The optimizer offloaded (zero_offload.h). One rank: no reduction, so a
// finished gradient chunk can start down at once. Several: the finished
// buckets start reducing, and the chunks they cover go down after them.
typedef struct {
    zero_offload *o;
    model *m;
    const shard_layout *s;
    backend_comm *comm;
} offload_hook;

static void grad_ready_offload(void *ctx, int64_t lo) {
    offload_hook *h = ctx;
    zero_offload_grads_ready(h->o, h->m, h->s, lo);
}

static void grad_ready_reduced_offload(void *ctx, int64_t lo) {
    offload_hook *h = ctx;
    backend_comm_grad_ready(h->comm, lo);
    zero_offload_grads_reduced(h->o, h->m, h->s, h->comm);
}

// The part of [lo, hi) outside this rank's slice, released.
static void release_others(const shard_layout *s, float *buf, int64_t lo, int64_t hi) {
    int64_t a = s->lo > lo ? s->lo : lo, b = s->hi < hi ? s->hi : hi;
    if (b <= a) {
        zero_pages_release(buf + lo, sizeof(float) * (size_t)(hi - lo));
        return;
    }
    zero_pages_release(buf + lo, sizeof(float) * (size_t)(a - lo));
    zero_pages_release(buf + b, sizeof(float) * (size_t)(hi - b));
}

// A device backend keeps the weights on the device: the host params are
// brought up to date (this rank's slice pulled, the others' gathered on the
// host) and the device made whole (model_set_resident), or the reverse.
void shard_params_full(const shard_layout *s, dist_ctx *d, model *m) {
    if (s->mode != SHARD_PARAMETERS) return;
    if (!m->bk->host_memory) model_pull_params(m);
    dist_shard_allgather(d, m->params, s->n, s->shard, DIST_F32);
    model_set_resident(m, 0, s->n);
}

void shard_params_to_root(const shard_layout *s, dist_ctx *d, model *m) {
    if (s->mode != SHARD_PARAMETERS) return;
    if (!m->bk->host_memory) model_pull_params(m);
    dist_shard_gather_root(d, m->params, m->params + s->lo, s->n, s->shard, 0);
}

void shard_params_release(const shard_layout *s, model *m) {
    if (s->mode != SHARD_PARAMETERS) return;
    if (m->bk->host_memory) release_others(s, m->params, 0, s->n);
    else model_set_resident(m, s->lo, s->hi);
}

void zero3_units_init(zero3_units *u, const shard_layout *s, model *m) {
    memset(u, 0, sizeof *u);
    backend *bk = m->bk;
    if (s->mode != SHARD_PARAMETERS || bk->host_memory || s->world == 1) return;
    model_set_resident(m, s->lo, s->hi);
    CHECK(m->glo == s->lo && m->ghi == s->hi);  // the gradients: made so by model_opts.resident_lo / hi
    for (int i = 0; i <= m->cfg.n_layers + 1; i++) {
        int64_t lo, hi;
        model_unit_range(m, i, &lo, &hi);
        if (hi - lo > u->cap) u->cap = hi - lo;
    }
    u->n_buf = zero3_unit_buffers(m->cfg.tie_embeddings);
    for (int i = 0; i < u->n_buf; i++)
        u->buf[i] = bk->op->alloc(bk, bk_dtype_size(bk->dt) * (size_t)u->cap);
    for (int i = 0; i < 2; i++)
        u->grad[i] = bk->op->alloc(bk, sizeof(float) * (size_t)u->cap);  // zeroed
}

void zero3_units_free(zero3_units *u, backend *bk) {
    for (int i = 0; i < ZERO3_MAX_UNIT_BUFFERS; i++)
        if (u->buf[i]) bk->op->free(bk, u->buf[i]);
    for (int i = 0; i < 2; i++)
        if (u->grad[i]) bk->op->free(bk, u->grad[i]);
    memset(u, 0, sizeof *u);
}

// STRETCH_ZERO3_PROGRESS=0 leaves the cpu prefetch to MPI alone (no
// MPI_Test between ops): the bench (bench/zero_overlap.sh) measures both.
static bool zero3_progress_on(void) {
    const char *v = getenv("STRETCH_ZERO3_PROGRESS");
    return !v || strcmp(v, "0") != 0;
}

// ZeRO-3's model_param_hook: the units held (up to three at the forward ->
// backward turn, model_param_hook), the next one in flight.
struct zero3_hook {
    const shard_layout *s;
    dist_ctx *d;
    model *m;
    zero3_stats *stats;
    bool progress;           // cpu: MPI_Test the prefetch between ops
    dist_range_gather next;  // cpu: the prefetch in place (lo == hi: none)
    double next_t0, next_t1; // cpu: when it started, when a test saw it complete (0: not yet)
    int64_t in_lo[MODEL_MAX_HELD_UNITS], in_hi[MODEL_MAX_HELD_UNITS];  // cpu: the units held (needed, not yet done; lo == hi: free)
    // device: the unit buffers; what each holds and whether a unit computes from it
    backend_comm *comm;
    const zero3_units *units;
    int64_t held_lo[ZERO3_MAX_UNIT_BUFFERS], held_hi[ZERO3_MAX_UNIT_BUFFERS];
    bool busy[ZERO3_MAX_UNIT_BUFFERS];
    // device: the gradient buffers: free (zero), written by a unit's
    // backward, or in their reduce-scatter
    enum { GRAD_FREE, GRAD_WRITING, GRAD_REDUCING } gstate[2];
    int64_t glo[2], ghi[2];
    // The optimizer offloaded (zero_offload.h), the last micro-batch only:
    // a unit's slice part goes down as soon as it is final.
    zero_offload *offload;
};

// cpu: the slot of a held unit [lo, hi), or -1.
static int cpu_held(const zero3_hook *z, int64_t lo, int64_t hi) {
    for (int i = 0; i < MODEL_MAX_HELD_UNITS; i++)
        if (z->in_hi[i] > z->in_lo[i] && z->in_lo[i] == lo && z->in_hi[i] == hi) return i;
    return -1;
}

// cpu: start gathering [lo, hi) in place (one prefetch in flight).
static void cpu_prefetch(zero3_hook *z, int64_t lo, int64_t hi) {
    if (hi <= lo || cpu_held(z, lo, hi) >= 0) return;
    dist_range_gather_end(&z->next);  // one not needed after all
    z->next_t0 = mono_clock_s();
    z->next_t1 = 0;
    dist_range_gather_begin(&z->next, z->d, z->m->params, z->s->n, lo, hi, z->s->shard);
}

static const void *zero3_need(void *ctx, int64_t lo, int64_t hi, int64_t next_lo, int64_t next_hi) {
    zero3_hook *z = ctx;
    if (hi > lo && cpu_held(z, lo, hi) >= 0) {  // held since the forward: no gather
        if (z->stats) z->stats->kept++;
        cpu_prefetch(z, next_lo, next_hi);
        return NULL;
    }
    const double bytes = sizeof(float) * (double)(hi - lo);
    bool prefetched = z->next.lo == lo && z->next.hi == hi && hi > lo;
    double t0 = mono_clock_s();
    dist_range_gather_end(&z->next);  // ours, or one not needed after all
    if (!prefetched) {
        dist_range_gather g;
        dist_range_gather_begin(&g, z->d, z->m->params, z->s->n, lo, hi, z->s->shard);
        dist_range_gather_end(&g);
    }
    if (z->stats && hi > lo) {
        zero3_stats *st = z->stats;
        if (prefetched) {
            double t1 = mono_clock_s();
            st->prefetched++;
            st->prefetched_bytes += bytes;
            st->wait_s += t1 - t0;
            st->prefetched_s += (z->next_t1 > 0 ? z->next_t1 : t1) - z->next_t0;
        } else {
            st->on_the_spot++;
            st->on_the_spot_bytes += bytes;
            st->on_the_spot_s += mono_clock_s() - t0;
        }
    }
    if (hi > lo) {
        int i = 0;
        while (i < MODEL_MAX_HELD_UNITS && z->in_hi[i] > z->in_lo[i]) i++;
        if (i == MODEL_MAX_HELD_UNITS) die("ZeRO-3: more than %d units in use at once", MODEL_MAX_HELD_UNITS);
        z->in_lo[i] = lo;
        z->in_hi[i] = hi;
    }
    cpu_prefetch(z, next_lo, next_hi);  // overlaps this unit's compute
    return NULL;  // in place
}

static void zero3_progress(void *ctx) {
    zero3_hook *z = ctx;
    if (!z->progress || z->next.lo == z->next.hi || z->next_t1 > 0) return;
    if (dist_range_gather_test(&z->next)) z->next_t1 = mono_clock_s();
    if (z->stats) z->stats->tests++;
}

static void zero3_done(void *ctx, int64_t lo, int64_t hi) {
    zero3_hook *z = ctx;
    int i = cpu_held(z, lo, hi);
    if (i >= 0) z->in_lo[i] = z->in_hi[i] = 0;
    release_others(z->s, z->m->params, lo, hi);
}

// The device path: unit buffer i gathers [lo, hi) on the comm's parameter
// stream, after the compute enqueued so far (its last unit's readers).
static void dev_gather(zero3_hook *z, int i, int64_t lo, int64_t hi) {
    const backend *bk = z->m->bk;
    CHECK(hi - lo <= z->units->cap);
    backend_comm_unit_gather(z->comm, i, z->units->buf[i], z->m->work, z->s->n, z->s->shard, lo, hi,
                             (int)bk_dtype_size(bk->dt));
    z->held_lo[i] = lo;
    z->held_hi[i] = hi;
}

// A buffer no unit computes from, preferring one that holds no prefetch
// (a prefetch not needed after all is overwritten last).
static int dev_free_buffer(const zero3_hook *z) {
    int any = -1;
    for (int i = 0; i < z->units->n_buf; i++)
        if (!z->busy[i]) {
            if (z->held_hi[i] <= z->held_lo[i]) return i;
            if (any < 0) any = i;
        }
    if (any >= 0) return any;
    die("ZeRO-3: more than %d units in use at once", z->units->n_buf);
}

static void dev_prefetch(zero3_hook *z, int64_t lo, int64_t hi) {
    if (hi <= lo) return;
    for (int k = 0; k < z->units->n_buf; k++)
        if (z->held_lo[k] == lo && z->held_hi[k] == hi) return;  // held or in flight already
    dev_gather(z, dev_free_buffer(z), lo, hi);
}

static const void *zero3_need_dev(void *ctx, int64_t lo, int64_t hi, int64_t next_lo, int64_t next_hi) {
    zero3_hook *z = ctx;
    if (hi <= lo) return NULL;
    int i = -1;
    for (int k = 0; k < z->units->n_buf; k++)
        if (z->held_lo[k] == lo && z->held_hi[k] == hi) i = k;  // held (since the forward) or prefetched
    if (i < 0) {
        i = dev_free_buffer(z);
        dev_gather(z, i, lo, hi);
    }
    if (!z->busy[i]) backend_comm_unit_wait(z->comm, i);  // the compute stream waits for this gather only
    z->busy[i] = true;
    dev_prefetch(z, next_lo, next_hi);
    return z->units->buf[i];
}

// Gradient buffer i's reduce-scatter done: this rank's part added to its
// slice of the gradients, the buffer zeroed for its next unit.
static void grad_finish(zero3_hook *z, int i) {
    if (z->gstate[i] != GRAD_REDUCING) return;
    backend *bk = z->m->bk;
    backend_comm_unit_reduce_wait(z->comm, i);
    int64_t a = z->s->lo > z->glo[i] ? z->s->lo : z->glo[i];
    int64_t b = z->s->hi < z->ghi[i] ? z->s->hi : z->ghi[i];
    if (b > a) bk->op->add_f32(bk, model_dgrad_at(z->m, a), z->units->grad[i] + (a - z->glo[i]), b - a);
    bk->op->zero(bk, z->units->grad[i], sizeof(float) * (size_t)(z->ghi[i] - z->glo[i]));
    z->gstate[i] = GRAD_FREE;
    // Units finish from the top of the buffer down (the higher of two
    // first, below), so with this one every gradient of [glo, n) is final.
    if (z->offload) zero_offload_grads_ready(z->offload, z->m, z->s, z->glo[i]);
}

// The backward runs from the top of the buffer down, so of two units the
// higher one's reduction is the older, to wait for first; but for a tied
// head's gradient unit, the embedding (the lowest), open from the head on.
static int grad_higher(const zero3_hook *z) { return z->glo[0] > z->glo[1] ? 0 : 1; }

// Both buffers' reductions finished, the higher first (end of a micro-batch).
static void grad_finish_all(zero3_hook *z) {
    int first = grad_higher(z);
    grad_finish(z, first);
    grad_finish(z, 1 - first);
}

static float *zero3_grad_need(void *ctx, int64_t lo, int64_t hi) {
    zero3_hook *z = ctx;
    CHECK(hi - lo <= z->units->cap);
    int i = z->gstate[0] == GRAD_FREE ? 0 : z->gstate[1] == GRAD_FREE ? 1
          : z->gstate[0] != GRAD_REDUCING ? 1 : z->gstate[1] != GRAD_REDUCING ? 0
          : grad_higher(z);
    if (z->gstate[i] == GRAD_WRITING) die("ZeRO-3: more than two gradient units in use at once");
    grad_finish(z, i);
    z->gstate[i] = GRAD_WRITING;
    z->glo[i] = lo;
    z->ghi[i] = hi;
    return z->units->grad[i];
}

static void zero3_grad_done(void *ctx, int64_t lo, int64_t hi) {
    zero3_hook *z = ctx;
    for (int i = 0; i < 2; i++)
        if (z->gstate[i] == GRAD_WRITING && z->glo[i] == lo && z->ghi[i] == hi) {
            backend_comm_unit_reduce(z->comm, i, z->units->grad[i], z->s->n, z->s->shard, lo, hi);
            z->gstate[i] = GRAD_REDUCING;
            return;
        }
    die("ZeRO-3: gradients of a unit not in use");
}

static void zero3_done_dev(void *ctx, int64_t lo, int64_t hi) {
    zero3_hook *z = ctx;
    for (int k = 0; k < z->units->n_buf; k++)
        if (z->busy[k] && z->held_lo[k] == lo && z->held_hi[k] == hi) {
            z->busy[k] = false;  // reused by the next gather, which waits for its readers
            z->held_lo[k] = z->held_hi[k] = 0;
            return;
        }
}

// ZeRO-3's hooks on m, the same for training (grads: the device path's
// per-unit gradient buffers too) and evaluation; NULL when nothing is
// gathered (other modes, one rank on a device). The caller has given back
// the weights outside the slice (shard_params_release).
static zero3_hook *zero3_hook_install(const shard_layout *s, dist_ctx *d, model *m, backend_comm *comm,
                                      const zero3_units *units, zero3_stats *stats, bool grads) {
    if (s->mode != SHARD_PARAMETERS) return NULL;
    backend *bk = m->bk;
    if (!bk->host_memory && s->world == 1) return NULL;
    zero3_hook *z = xcalloc(1, sizeof *z);
    *z = (zero3_hook){.s = s, .d = d, .m = m, .stats = stats, .comm = comm, .units = units,
                      .progress = zero3_progress_on()};
    if (bk->host_memory)
        m->param_hook = (model_param_hook){.need = zero3_need, .done = zero3_done,
                                           .progress = zero3_progress, .ctx = z};
    else
        m->param_hook = (model_param_hook){.need = zero3_need_dev, .done = zero3_done_dev,
                                           .grad_need = grads ? zero3_grad_need : NULL,
                                           .grad_done = grads ? zero3_grad_done : NULL, .ctx = z};
    return z;
}

static void zero3_hook_remove(zero3_hook *z) {
    if (!z) return;
    model_release_units(z->m);  // a head model_forward left held
    z->m->param_hook = (model_param_hook){0};
    dist_range_gather_end(&z->next);  // a prefetch not needed after all
    free(z);
}

zero3_hook *shard_eval_begin(const shard_layout *s, dist_ctx *d, model *m, backend_comm *comm,
                             const zero3_units *units, zero3_stats *stats) {
    // Only the slice stays (weights loaded whole at a resume, or made whole
    // for a checkpoint, are given back).
    shard_params_release(s, m);
    return zero3_hook_install(s, d, m, comm, units, stats, false);
}

void shard_eval_end(zero3_hook *z) { zero3_hook_remove(z); }

double shard_step(const shard_step_ctx *c, const model_batch *mb, int64_t n_targets_global,
                  const adamw_hparams *hp, double grad_clip, int64_t adam_step,
                  double *grad_norm, bool *skipped) {
    model *m = c->m;
    backend *bk = m->bk;
    const shard_layout *s = c->s;
    // ZeRO-3: only the slice stays (weights made whole for a checkpoint or
    // an evaluation since the last step, or loaded whole, are given back;
    // before the gradients are zeroed: an offloaded optimizer's bf16
    // weights pass through them, model_push_params).
    shard_params_release(s, m);
    // The cpu backend's gradients: zero the owned slice, give back the rest
    // (zero_pages.h); it is written again only by the backward of the
    // micro-batches and released bucket by bucket after the reduce-scatter.
    bool release = s->mode >= SHARD_GRADIENTS && bk->host_memory && s->world > 1;
    if (release) {
        release_others(s, m->grads, 0, s->n);
        memset(m->grads + s->lo, 0, sizeof(float) * (size_t)shard_len(s));
    } else {
        model_zero_grads(m);
    }
    // ZeRO-3: weights gathered by unit (on a device gradients too: zero3_units).
    const bool device3 = s->mode == SHARD_PARAMETERS && !bk->host_memory && s->world > 1;
    zero3_hook *z3 = zero3_hook_install(s, c->d, m, c->comm, c->units, c->stats, true);
    // (device ZeRO-3: each unit's gradients are reduce-scattered by its grad_done)
    if (!device3) {
        if (s->mode >= SHARD_GRADIENTS)
            backend_comm_grad_begin_scatter(c->comm, m->dgrads, m->n_params, s->shard);
        else
            backend_comm_grad_begin(c->comm, m->dgrads, m->n_params);
    }
    if (c->offload) zero_offload_begin(c->offload);
    offload_hook oh = {.o = c->offload, .m = m, .s = s, .comm = c->comm};
    model_grad_hook last_hook = {.ready = grad_ready, .ctx = c->comm};
    if (c->offload)
        last_hook = (model_grad_hook){
            .ready = c->d->size == 1 ? grad_ready_offload : grad_ready_reduced_offload, .ctx = &oh};
    double loss = 0;
    if (n_targets_global > 0) {
        int64_t step_rows = c->micro_rows > 0 && c->micro_rows < mb->B ? c->micro_rows : mb->B;
        float scale = 1.0f / (float)n_targets_global;
        for (int64_t r0 = 0; r0 < mb->B; r0 += step_rows) {
            int64_t rows = mb->B - r0 < step_rows ? mb->B - r0 : step_rows, off = r0 * mb->T;
            model_batch sub = {.B = rows, .T = mb->T, .tokens = mb->tokens + off,
                               .targets = mb->targets + off, .pos = mb->pos + off,
                               .seg = mb->seg ? mb->seg + off : NULL,
                               .win = mb->win ? mb->win + off : NULL};
            // Only the last micro-batch finalizes gradients: the reduction
            // starts from its backward, once per step.
            bool last = r0 + rows == mb->B;
            if (last && !device3) m->grad_hook = last_hook;
            m->param_hook.another_pass = !last;  // ZeRO-3: the next micro-batch's embedding prefetched
            if (last && device3) z3->offload = c->offload;  // the slice's chunks go down as units finish
            loss += model_forward_backward(m, &sub, scale);
            // The backward is over: every gradient is final (the model says
            // so layer by layer, down to the first layer's; the embedding's
            // and a tied head's only here), so the last buckets start and
            // the last chunks queue before grad_end.
            if (last && !device3) last_hook.ready(last_hook.ctx, 0);
            if (device3) grad_finish_all(z3);  // this micro-batch's unit sums into the slice
        }
    }
    m->grad_hook = (model_grad_hook){0};
    zero3_hook_remove(z3);
    if (!device3) backend_comm_grad_end(c->comm);
    dist_allreduce_sum_double(c->d, &loss, 1);
    // The global norm: this rank's slice, summed over the slices.
    double sq = bk->op->grad_norm_sq(bk, model_dgrad_at(m, s->lo), shard_len(s));
    if (s->mode != SHARD_NONE) dist_allreduce_sum_double(c->d, &sq, 1);
    double norm = sqrt(sq);
    *grad_norm = norm;
    if (skipped) {  // loss and norm are global already; the vote makes it certain
        *skipped = dist_any(c->d, !isfinite(loss) || !isfinite(norm));
        if (*skipped) return n_targets_global > 0 ? loss / (double)n_targets_global : 0.0;
    }
    float clip = adamw_clip_factor(norm, grad_clip);
    size_t esz = bk_dtype_size(bk->dt);
    if (c->offload) {  // on the host (zero_offload.h)
        zero_offload_adamw(c->offload, m, s, c->adam_m, c->adam_v, hp, adam_step, clip);
    } else if (s->mode == SHARD_NONE) {  // the model's own table: exactly the unsharded update
        bk->op->adamw(bk, m->dparams, c->adam_m, c->adam_v, m->dgrads, m->work, m->tensors,
                      m->n_tensors, hp, adam_step, clip);
    } else if (s->n_tensors > 0) {  // a rank past the end of a tiny buffer owns nothing
        // The slice of the master and working weights (ZeRO-3 on a device:
        // all that is resident); work is the master itself when fp32.
        float *param = model_dparam_at(m, s->lo);
        void *work = (void *)m->work == (void *)m->dparams ? (void *)param : model_work_at(m, s->lo);
        bk->op->adamw(bk, param, c->adam_m, c->adam_v, model_dgrad_at(m, s->lo), work,
                      s->tensors, s->n_tensors, hp, adam_step, clip);
    }
    if (s->mode != SHARD_NONE && s->mode != SHARD_PARAMETERS) {
        if (m->dparams)  // none on a bf16 device when AdamW runs on the host
            backend_comm_param_gather(c->comm, m->dparams, m->n_params, s->shard, 4);
        if (m->work && m->work != (void *)m->dparams)
            backend_comm_param_gather(c->comm, m->work, m->n_params, s->shard, (int)esz);
    }
    *grad_norm = norm;
    return n_targets_global > 0 ? loss / (double)n_targets_global : 0.0;
}
