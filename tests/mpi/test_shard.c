// Sharded training state (parallel.shard, trainer/parallel/zero_shard.h) and
// gradient accumulation, on every dp x sp grid of the ranks it runs on:
//   - the bucketed reduce-scatter (small buckets, slice boundaries inside
//     buckets, ranks owning nothing) gives each rank the exact sums of its
//     slice; the sharded all-gather puts every slice back everywhere;
//   - 20 AdamW steps (gradient clipping active: the global norm is summed
//     over the slices) under every shard mode (ZeRO-3: the weights outside
//     the slice are released between steps), with and without gradient
//     accumulation (one row per micro-batch), against the unsharded 1-rank
//     run on the whole batch computed here with the plain kernels (loss of
//     every step and the norm to 1e-6, parameters after the last to 1e-6
//     per tensor with AdamW eps 1e-4 and to 1e-4 with eps 1e-8: CASES),
//     and bit-identical to shard none on the same grid;
//   - accumulation on the same grid: k micro-batches == the whole batch;
//   - ZeRO-3 (untied and tied embeddings): the gathers of a step (zero3_stats)
//     are one on the spot per step (the embedding of its first micro-batch;
//     the next micro-batches' embedding is prefetched during the previous
//     backward) and, tied, the final norm per micro-batch (C floats, the
//     head's embedding is prefetched), the last
//     layer kept from the forward into its backward (no gather at the
//     turn), every other unit prefetched;
//   - an evaluation after the steps (a forward per row: per-token losses and
//     the argmax of every position, shard_eval_begin / end) is bit-identical
//     to shard none on the same grid, gathers unit by unit (one on the spot
//     per forward, tied two) and leaves only the slice resident: putting the
//     whole weights back (shard_params_full) fails it.
// Run under mpirun with 1, 2 and 4 ranks: grids (1x1), (2x1, 1x2), (4x1, 2x2, 1x4).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "backend_comm.h"
#include "dist.h"
#include "model.h"
#include "model_sp_attn.h"
#include "mpi_check.h"
#include "zero_shard.h"
#include "zigzag.h"

enum { B = 4, T = 24, VOCAB = 40, STEPS = 20 };
static const double CLIP = 0.5, LOSS_TOL = 1e-6;

// Each run is made under two AdamW settings, with their own parameter
// tolerances (loss and norm: the same math summed in another order, 1e-6
// under both):
//   eps 1e-8 (the usual): a gradient element near zero differs in its last
//     bits between summation orders and AdamW's m / sqrt(v) turns that into
//     a full-size step, so parameters after 20 steps agree only to ~1e-5
//     per tensor (measured 9e-6 .. 4.4e-5; the 1-rank run itself on 1-row
//     micro-batches differs from its whole batch by 2.2e-5): 1e-4, as
//     test_model_grid; over the whole vector (||a - b|| / ||b||) 3e-7 ..
//     1.2e-6 (1-rank reordered: 6e-7): 3e-6.
//   eps 1e-4: the step of an element whose gradient is below ~eps is
//     proportional to it, so last-bit differences stay last-bit: the
//     issue's 1e-6 relative, per tensor, on every grid and shard mode
//     (measured 4e-7 .. 6.1e-7 per tensor, 6e-8 L2).
// Between shard modes on one grid: bitwise, under both.
typedef struct {
    const char *name;
    adamw_hparams hp;
    double param_tol, param_l2_tol;
} adam_case;
static const adam_case CASES[] = {
    {"eps 1e-8", {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f}, 1e-4, 3e-6},
    {"eps 1e-4", {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-4f, .weight_decay = 0.1f}, 1e-6, 1e-6},
};

static model_config tiny_config(bool tied) {
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                      .ffn_dim = 48, .vocab_size = VOCAB, .norm_eps = 1e-5f,
                      .rope_layout = ROPE_LAYOUT_HALF, .tie_embeddings = tied};
    c.rope = rope_config_default(8);
    c.rope.max_position_embeddings = T;
    return c;
}

typedef struct {
    int32_t tokens[B * T], targets[B * T], pos[B * T], seg[B * T];
    int64_t n_targets;
} batch;

// Sequence b holds documents of lengths 5 + b, 7, ... cut at T; sequence 3
// has fewer targets (a padded tail) so micro-batches weigh differently.
static void make_batch(batch *x) {
    x->n_targets = 0;
    for (int b = 0; b < B; b++) {
        int doc = 0, start = 0, len = 5 + b;
        for (int t = 0; t < T; t++) {
            if (t - start == len) {
                doc++;
                start = t;
                len = 7 + (doc % 3);
            }
            int n = b * T + t;
            x->tokens[n] = (int32_t)((n * 13 + 5) % VOCAB);
            x->pos[n] = t - start;
            x->seg[n] = doc;
        }
        for (int t = 0; t < T; t++) {
            int n = b * T + t;
            bool last = t == T - 1 || x->seg[n + 1] != x->seg[n] || (b == 3 && t > 15);
            x->targets[n] = last ? -1 : x->tokens[n + 1];
            x->n_targets += !last;
        }
    }
}

// Worst per-tensor max|a - b| / max|b| over the model's tensors.
static double worst_rel(const model *m, const float *a, const float *b) {
    double worst = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        double dmax = 0, rmax = 0;
        for (int64_t j = 0; j < t->shape[0] * t->shape[1]; j++) {
            dmax = fmax(dmax, fabs((double)a[t->offset + j] - b[t->offset + j]));
            rmax = fmax(rmax, fabs((double)b[t->offset + j]));
        }
        if (rmax > 0) worst = fmax(worst, dmax / rmax);
    }
    return worst;
}

// ||a - b|| / ||b|| over the whole buffer.
static double l2_rel(const float *a, const float *b, int64_t n) {
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / r);
}

// The reference: one rank, the whole batch, the plain kernels.
static void reference(const adamw_hparams *hp, const batch *x, float *params, double *losses, double *norm1) {
    model_config cfg = tiny_config(false);
    model *m = model_create(&cfg, B * T, false);
    model_init_weights(m, 99);
    float *mom = calloc((size_t)m->n_params, sizeof(float)), *var = calloc((size_t)m->n_params, sizeof(float));
    model_batch mb = {.B = B, .T = T, .tokens = x->tokens, .targets = x->targets, .pos = x->pos, .seg = x->seg};
    for (int s = 1; s <= STEPS; s++) {
        model_zero_grads(m);
        losses[s - 1] = model_forward_backward(m, &mb, 1.0f / (float)x->n_targets) / (double)x->n_targets;
        double norm = sqrt(adamw_grad_norm_sq(m->grads, m->n_params));
        if (s == 1) *norm1 = norm;
        for (int i = 0; i < m->n_tensors; i++) {  // decay on matrices only, as the trainer
            const model_tensor *t = &m->tensors[i];
            adamw_hparams h = *hp;
            if (!t->decay) h.weight_decay = 0;
            adamw_update(m->params + t->offset, mom + t->offset, var + t->offset, m->grads + t->offset,
                         t->shape[0] * t->shape[1], &h, s, adamw_clip_factor(norm, CLIP));
        }
    }
    memcpy(params, m->params, sizeof(float) * (size_t)m->n_params);
    free(mom);
    free(var);
    model_free(m);
}

// This rank's rows: dp group's rows, zig-zag slice when sp > 1.
typedef struct {
    int32_t *tokens, *targets, *pos, *seg;
    model_batch mb;
} rows_of_rank;

static void rows_make(rows_of_rank *r, const batch *x, const dist_ctx *d) {
    zigzag_layout z;
    zigzag_layout_init(&z, T, d->sp, d->sp_rank);
    const int64_t rows = B / d->dp, TL = d->sp > 1 ? z.T_local : T, off = d->dp_rank * rows * T;
    size_t n = (size_t)(rows * TL);
    r->tokens = malloc(n * sizeof(int32_t));
    r->targets = malloc(n * sizeof(int32_t));
    r->pos = malloc(n * sizeof(int32_t));
    r->seg = malloc(n * sizeof(int32_t));
    if (d->sp > 1) {
        zigzag_shard_batch(r->tokens, r->targets, r->pos, r->seg, x->tokens + off, x->targets + off,
                           x->pos + off, x->seg + off, rows, &z, 0);
    } else {
        memcpy(r->tokens, x->tokens + off, n * sizeof(int32_t));
        memcpy(r->targets, x->targets + off, n * sizeof(int32_t));
        memcpy(r->pos, x->pos + off, n * sizeof(int32_t));
        memcpy(r->seg, x->seg + off, n * sizeof(int32_t));
    }
    r->mb = (model_batch){.B = rows, .T = TL, .tokens = r->tokens, .targets = r->targets,
                          .pos = r->pos, .seg = r->seg};
}

static void rows_free(rows_of_rank *r) {
    free(r->tokens); free(r->targets); free(r->pos); free(r->seg);
}

// What a run leaves: the evaluation after the steps (this rank's rows, one
// forward each) and the ZeRO-3 gather counts of the steps and of it.
typedef struct {
    float eval_loss[B * T];
    int32_t eval_argmax[B * T];
    int64_t eval_n;
    zero3_stats steps, eval;
    int64_t forwards;  // micro-batches of the steps
    int64_t resident;  // weights outside the slice resident after the evaluation
} run_out;

// One forward per row under shard_eval_begin / end: per-token losses and
// the argmax of every position (it reads the LM head after the forward).
static void evaluate(dist_ctx *d, model *m, backend_comm *comm, const shard_layout *s,
                     const model_batch *mb, run_out *o) {
    zero3_hook *h = shard_eval_begin(s, d, m, comm, NULL, &o->eval);
    o->eval_n = mb->B * mb->T;
    for (int64_t r = 0; r < mb->B; r++) {
        const int64_t off = r * mb->T;
        model_batch row = {.B = 1, .T = mb->T, .tokens = mb->tokens + off, .targets = mb->targets + off,
                           .pos = mb->pos + off, .seg = mb->seg + off};
        model_forward(m, &row, o->eval_loss + off);
        for (int64_t t = 0; t < mb->T; t++) o->eval_argmax[off + t] = model_argmax_row(m, t);
    }
    shard_eval_end(h);
}

// 20 steps through shard_step; params (n) and per-step losses out.
static void run_sharded(const adamw_hparams *hp, dist_ctx *d, const batch *x, shard_mode mode, bool tied, int64_t micro_rows,
                        float *params, double *losses, double *norm1, run_out *o) {
    model_config cfg = tiny_config(tied);
    memset(o, 0, sizeof *o);
    rows_of_rank r;
    rows_make(&r, x, d);
    int64_t cap = micro_rows > 0 ? micro_rows * r.mb.T : r.mb.B * r.mb.T;
    model *m = model_create(&cfg, cap, false);
    model_init_weights(m, 99);
    char err[256];
    backend_comm *comm = backend_comm_create(backend_cpu(), d, 0, err, sizeof err);
    if (!comm) abort();
    if (d->sp > 1) {
        model_attention att = backend_comm_ring_attention(comm);
        model_set_attention(m, &att);
    }
    shard_layout s;
    shard_layout_init(&s, mode, d->size, d->rank, m->tensors, m->n_tensors, m->n_params);
    float *mom = calloc((size_t)shard_len(&s) + 1, sizeof(float));
    float *var = calloc((size_t)shard_len(&s) + 1, sizeof(float));
    shard_step_ctx c = {.m = m, .comm = comm, .d = d, .s = &s, .adam_m = mom, .adam_v = var,
                        .micro_rows = micro_rows, .stats = &o->steps};
    for (int st = 1; st <= STEPS; st++) {
        double norm;
        losses[st - 1] = shard_step(&c, &r.mb, x->n_targets, hp, CLIP, st, &norm, NULL);
        if (st == 1) *norm1 = norm;
    }
    o->forwards = (int64_t)STEPS * (micro_rows > 0 ? (r.mb.B + micro_rows - 1) / micro_rows : 1);
    evaluate(d, m, comm, &s, &r.mb, o);
    // Between steps and after an evaluation a rank holds only its slice
    // (ZeRO-3): the rest was given back (reads as zero) after its last use.
    if (mode == SHARD_PARAMETERS && d->size > 1)
        for (int64_t i = 0; i < m->n_params; i++) o->resident += (i < s.lo || i >= s.hi) && m->params[i] != 0;
    shard_params_full(&s, d, m);
    memcpy(params, m->params, sizeof(float) * (size_t)m->n_params);
    free(mom);
    free(var);
    shard_layout_free(&s);
    backend_comm_free(comm);
    model_free(m);
    rows_free(&r);
}

// The reduce-scatter and all-gather on their own: n = 50 floats, buckets of
// 7 (slice boundaries fall inside buckets; with 4 ranks shard = 13).
static void check_collectives(mpi_check *mc, dist_ctx *d) {
    enum { N = 50 };
    float g[N], want[N];
    for (int i = 0; i < N; i++) {
        g[i] = (float)((d->rank + 1) * (i + 1));
        want[i] = 0;
        for (int r = 0; r < d->size; r++) want[i] += (float)((r + 1) * (i + 1));
    }
    int64_t shard = (N + d->size - 1) / d->size, lo = d->rank * shard, hi = lo + shard > N ? N : lo + shard;
    dist_grad_sync gs;
    dist_grad_sync_begin_scatter(&gs, d, g, N, 7, shard);
    for (int64_t at = N; at >= 0; at -= 9) dist_grad_sync_ready(&gs, at);
    dist_grad_sync_end(&gs);
    for (int64_t i = lo; i < hi; i++)
        EXPECT(mc, g[i] == want[i], "reduce-scatter: element %lld is %g, want %g", (long long)i, g[i], want[i]);
    // Put a rank-specific pattern in the owned slice and gather it.
    for (int64_t i = lo; i < hi; i++) g[i] = (float)(1000 * d->rank + i);
    dist_shard_allgather(d, g, N, shard, DIST_F32);
    for (int i = 0; i < N; i++) {
        int owner = (int)(i / shard);
        EXPECT(mc, g[i] == (float)(1000 * owner + i), "all-gather: element %d is %g", i, g[i]);
    }
    float full[N];
    dist_shard_gather_root(d, full, g + lo, N, shard, 0);
    if (d->rank == 0)
        for (int i = 0; i < N; i++)
            EXPECT(mc, full[i] == g[i], "gather to root: element %d is %g, want %g", i, full[i], g[i]);
}

// The evaluation == shard none's on this grid, bitwise; ZeRO-3's gathers
// per step and per evaluation forward; nothing outside the slice resident.
static void check_eval(mpi_check *mc, const dist_ctx *d, const run_out *o, const run_out *none,
                       shard_mode mode, bool tied, const char *what) {
    const char *emb = tied ? "tied" : "untied";
    bool same = o->eval_n == none->eval_n &&
                memcmp(o->eval_loss, none->eval_loss, sizeof(float) * (size_t)o->eval_n) == 0 &&
                memcmp(o->eval_argmax, none->eval_argmax, sizeof(int32_t) * (size_t)o->eval_n) == 0;
    EXPECT(mc, same, "dp %d sp %d %s shard %s %s: the evaluation differs from shard none", d->dp, d->sp,
           emb, shard_mode_name(mode), what);
    EXPECT(mc, o->resident == 0, "dp %d sp %d %s shard %s %s: %lld weights outside the slice resident "
           "after the evaluation", d->dp, d->sp, emb, shard_mode_name(mode), what, (long long)o->resident);
    if (mode != SHARD_PARAMETERS) return;
    const model_config cfg = tiny_config(tied);
    const int64_t L = cfg.n_layers, spot = tied ? 2 : 1, f = o->forwards;
    // Bytes gathered on the spot per pass: the embedding (the first unit);
    // tied, the final norm too (the head's embedding is prefetched during
    // the last layer).
    const double spot_bytes = 4.0 * ((double)cfg.vocab_size * cfg.dim + (tied ? cfg.dim : 0));
    // per micro-batch: forward embedding (on the spot), layers 1 .. L-1 and
    // the head prefetched (tied: the embedding, the final norm on the spot);
    // the last layer kept into its backward; backward layers L-2 .. 0 prefetched.
    // With micro-batches, the embedding of every micro-batch but a step's
    // first is prefetched during the previous one's last backward unit.
    const int64_t later = f - STEPS;  // micro-batches that are not a step's first
    const double embed_bytes = 4.0 * (double)cfg.vocab_size * cfg.dim;
    const zero3_stats *z = &o->steps;
    EXPECT(mc, z->on_the_spot == spot * f - later && z->kept == f && z->prefetched == 2 * L * f + later &&
               z->on_the_spot_bytes == spot_bytes * (double)f - embed_bytes * (double)later,
           "dp %d sp %d %s %s: per step %lld on the spot (%.0f bytes), %lld kept, %lld prefetched over %lld "
           "micro-batches", d->dp, d->sp, emb, what, (long long)z->on_the_spot, z->on_the_spot_bytes,
           (long long)z->kept, (long long)z->prefetched, (long long)f);
    // per evaluation forward (one a row): the embedding on the spot (tied:
    // the head's too), layers and head prefetched, none kept
    const zero3_stats *e = &o->eval;
    const int64_t fw = B / d->dp;
    EXPECT(mc, e->on_the_spot == spot * fw && e->kept == 0 && e->prefetched == (L + 1) * fw &&
               e->on_the_spot_bytes == spot_bytes * (double)fw,
           "dp %d sp %d %s %s: evaluation of %lld rows: %lld on the spot, %lld kept, %lld prefetched", d->dp,
           d->sp, emb, what, (long long)fw, (long long)e->on_the_spot, (long long)e->kept,
           (long long)e->prefetched);
    if (d->rank == 0)
        printf("dp %d x sp %d ZeRO-3 %-6s %-29s: gathers per micro-batch: %lld on the spot (%.0f bytes), "
               "%lld kept, %lld prefetched; per evaluation forward: %lld on the spot, %lld prefetched\n", d->dp,
               d->sp, emb, what, (long long)(z->on_the_spot / f), z->on_the_spot_bytes / (double)f,
               (long long)(z->kept / f), (long long)(z->prefetched / f), (long long)(e->on_the_spot / fw),
               (long long)(e->prefetched / fw));
}

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    mpi_check mc = {.rank = d.rank};
    batch x;
    make_batch(&x);
    check_collectives(&mc, &d);

    model_config cfg = tiny_config(false);
    int n_tensors;
    int64_t n;
    free(model_param_layout(&cfg, &n_tensors, &n));
    float *ref = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    float *whole = malloc(sizeof(float) * (size_t)n), *unsharded = malloc(sizeof(float) * (size_t)n);
    double ref_loss[STEPS], loss[STEPS], whole_loss[STEPS], unsharded_loss[STEPS], ref_norm = 0, norm = 0;
    model *probe = model_create(&cfg, 1, false);  // the tensor table for worst_rel
    run_out *out = malloc(sizeof *out), *out_none = malloc(sizeof *out_none);
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        const adam_case *ac = &CASES[k];
        const double PARAM_TOL = ac->param_tol, PARAM_L2_TOL = ac->param_l2_tol;
        reference(&ac->hp, &x, ref, ref_loss, &ref_norm);
        EXPECT(&mc, ref_norm > CLIP, "the reference's first norm %g does not exceed the clip %g", ref_norm, CLIP);
        for (int dp = 1; dp <= d.size; dp++) {
            if (d.size % dp) continue;
            int sp = d.size / dp;
            char err[256];
            EXPECT(&mc, dist_init_grid(&d, dp, sp, err, sizeof err) == 0, "%s", err);
            int rows = B / dp;
            for (int micro = 0; micro <= (rows > 1 ? 1 : 0); micro++) {
                char what[64];
                snprintf(what, sizeof what, "%s, %s", micro ? "1-row micro-batches" : "whole batch", ac->name);
                for (int mode = SHARD_NONE; mode <= SHARD_PARAMETERS; mode++) {
                    run_sharded(&ac->hp, &d, &x, (shard_mode)mode, false, micro, got, loss, &norm, out);
                    if (mode == SHARD_NONE) {
                        memcpy(unsharded, got, sizeof(float) * (size_t)n);
                        memcpy(unsharded_loss, loss, sizeof loss);
                        *out_none = *out;
                    }
                    check_eval(&mc, &d, out, out_none, (shard_mode)mode, false, what);
                    if (micro == 0 && mode == SHARD_NONE) {
                        memcpy(whole, got, sizeof(float) * (size_t)n);
                        memcpy(whole_loss, loss, sizeof loss);
                    }
                    double l_err = 0, a_err = 0;
                    for (int s = 0; s < STEPS; s++) {
                        l_err = fmax(l_err, fabs(loss[s] - ref_loss[s]) / fabs(ref_loss[s]));
                        a_err = fmax(a_err, fabs(loss[s] - whole_loss[s]) / fabs(whole_loss[s]));
                    }
                    double p_err = worst_rel(probe, got, ref), a_perr = worst_rel(probe, got, whole);
                    double p_l2 = l2_rel(got, ref, n), a_l2 = l2_rel(got, whole, n);
                    double n_err = fabs(norm - ref_norm) / ref_norm;
                    // Sharding changes who computes, not the sums: bit-identical
                    // to the unsharded run on the same grid.
                    bool same = memcmp(got, unsharded, sizeof(float) * (size_t)n) == 0 &&
                                memcmp(loss, unsharded_loss, sizeof loss) == 0;
                    EXPECT(&mc, same, "dp %d sp %d shard %s %s: not bit-identical to shard none", dp, sp,
                           shard_mode_name(mode), what);
                    EXPECT(&mc, l_err <= LOSS_TOL, "dp %d sp %d shard %s %s: loss differs by %.3g", dp, sp,
                           shard_mode_name(mode), what, l_err);
                    EXPECT(&mc, n_err <= LOSS_TOL, "dp %d sp %d shard %s %s: grad norm %.9g vs %.9g", dp,
                           sp, shard_mode_name(mode), what, norm, ref_norm);
                    EXPECT(&mc, p_err <= PARAM_TOL, "dp %d sp %d shard %s %s: params after %d steps differ by %.3g",
                           dp, sp, shard_mode_name(mode), what, STEPS, p_err);
                    EXPECT(&mc, p_l2 <= PARAM_L2_TOL && a_l2 <= PARAM_L2_TOL,
                           "dp %d sp %d shard %s %s: params L2-relative %.3g vs 1-rank, %.3g vs whole batch",
                           dp, sp, shard_mode_name(mode), what, p_l2, a_l2);
                    EXPECT(&mc, a_err <= LOSS_TOL && a_perr <= PARAM_TOL,
                           "dp %d sp %d shard %s %s: micro-batches vs whole batch: loss %.3g params %.3g", dp,
                           sp, shard_mode_name(mode), what, a_err, a_perr);
                    double worst_p = mpi_check_max(p_err), worst_l = mpi_check_max(l_err);
                    if (d.rank == 0)
                        printf("dp %d x sp %d shard %-10s %-29s: bitwise == none: %s; vs 1-rank: loss %.2e "
                               "norm %.2e params %.2e (L2 %.2e); vs whole batch: loss %.2e params %.2e (L2 %.2e)\n",
                               dp, sp, shard_mode_name(mode), what, same ? "yes" : "NO", worst_l, n_err,
                               worst_p, p_l2, a_err, a_perr, a_l2);
                }
                // Tied embeddings: the head gathers the embedding as a unit of
                // its own (a third unit buffer on a device); ZeRO-3 == none.
                float *tied_none = malloc(sizeof(float) * (size_t)(n + 1));
                double tied_loss[STEPS], tnorm;
                for (int mode = SHARD_NONE; mode <= SHARD_PARAMETERS; mode += SHARD_PARAMETERS) {
                    model_config tc = tiny_config(true);
                    int64_t tn;
                    free(model_param_layout(&tc, &n_tensors, &tn));
                    float *tgot = malloc(sizeof(float) * (size_t)tn);
                    run_sharded(&ac->hp, &d, &x, (shard_mode)mode, true, micro, tgot, loss, &tnorm, out);
                    if (mode == SHARD_NONE) {
                        memcpy(tied_none, tgot, sizeof(float) * (size_t)tn);
                        memcpy(tied_loss, loss, sizeof loss);
                        *out_none = *out;
                    }
                    bool same = memcmp(tgot, tied_none, sizeof(float) * (size_t)tn) == 0 &&
                                memcmp(loss, tied_loss, sizeof loss) == 0;
                    EXPECT(&mc, same, "dp %d sp %d tied shard %s %s: not bit-identical to shard none", dp, sp,
                           shard_mode_name(mode), what);
                    check_eval(&mc, &d, out, out_none, (shard_mode)mode, true, what);
                    free(tgot);
                }
                free(tied_none);
            }
        }
    }
    free(out);
    free(out_none);
    model_free(probe);
    free(ref); free(got); free(whole); free(unsharded);
    int rc = mpi_check_finish(&mc, "test_shard");
    dist_finalize(&d);
    return rc;
}
