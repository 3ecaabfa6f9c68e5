// bench_sp: ring vs ulysses vs the ring x ulysses hybrid at one sequence-
// parallel degree (the ranks of the run, default 4), one run, one table:
//
//   mpirun -n 4 --oversubscribe --bind-to none bench_sp [--seq T] [--batch B]
//       [--layers L] [--dim C] [--heads H] [--kv-heads Hkv] [--head-dim D]
//       [--ffn F] [--vocab V] [--steps S]
//
// For every factoring ring x ulysses of the ranks (ring P, ulysses P, and the
// hybrids between) on the same model and batch:
//   bytes: what one rank sends to other ranks per layer for the attention
//     (forward + backward), counted by dist.c (ring shifts, all-to-alls,
//     segment-id all-gathers; the gradient all-reduce is not attention and is
//     not counted), against the analytic count of ulysses.h / ring_attn.h
//     (fp32, with segment ids). The max over ranks is printed (ranks differ
//     only if a bug makes them).
//   step: the median wall time of a training step (zero grads, forward +
//     backward, gradient and loss all-reduce, AdamW) after one warm-up step,
//     and the loss of the first step (the same on every grid: they compute
//     the same step).
// Defaults: L=2 C=256 H=8 Hkv=8 (MHA) D=32 F=512 V=512, B=1 x T=4096, 3 steps.
// On a shared CPU the times are noisy and ranks share cores: compare within
// one run; the bytes are exact. docs/distributed.md turns the byte counts
// into the choice on a cluster.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adamw.h"
#include "die.h"
#include "dist.h"
#include "model.h"
#include "model_sp_attn.h"
#include "ring_attn.h"
#include "ulysses.h"
#include "zigzag.h"

typedef struct {
    int64_t seq, batch;
    int layers, dim, heads, kv_heads, head_dim, ffn, vocab, steps;
} opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double max_over_ranks(dist_ctx *d, double x) {
    double *all = xcalloc((size_t)d->size, sizeof(double));
    all[d->rank] = x;
    dist_allreduce_sum_double(d, all, d->size);
    double m = all[0];
    for (int i = 1; i < d->size; i++) m = fmax(m, all[i]);
    free(all);
    return m;
}

// Bytes one rank sends per layer (forward + backward), fp32, with segment
// ids, for B sequences of T_pad tokens on ring x ulysses (see ulysses.h:
// the backward exchanges q, k, v, out and dout again).
static double analytic_bytes(int64_t B, int64_t T_pad, int ring, int U, int H, int Hkv, int D) {
    const double f = 4.0;
    const double TL = (double)T_pad / (ring * U), TG = TL * U;  // local rows, ring-local rows
    const double Hl = (double)H / U, Hkvl = ulysses_kv_heads_local(U, Hkv);
    double a2a = 0, rng = 0;
    if (U > 1) {
        double fwd = (Hl + 2 * Hkvl + Hl) * D * f + f;               // q k v out, seg
        double bwd = (Hl + 2 * Hkvl + 2 * Hl + Hl + 2 * Hkvl) * D * f + f;  // q k v out dout; dq dk dv; seg
        a2a = (U - 1) * B * TL * (fwd + bwd);
    }
    if (ring > 1) {
        double kv = 2 * TG * Hkvl * D * f, seg = TG * f;
        rng = B * ((ring - 1) * (kv + seg) + (ring - 1) * (kv + seg) + ring * kv);
    }
    return a2a + rng;
}

typedef struct {
    model *m;
    float *mom, *var;
    ring_attn *ring;
    ulysses_attn *uly;
    int32_t *tok, *tgt, *pos, *seg;
    model_batch mb;
} replica;

static void replica_init(replica *r, dist_ctx *d, const opts *o, const int32_t *g_tok,
                         const int32_t *g_tgt, const int32_t *g_pos) {
    model_config cfg = {.dim = o->dim, .n_layers = o->layers, .n_heads = o->heads,
                        .n_kv_heads = o->kv_heads, .head_dim = o->head_dim, .ffn_dim = o->ffn,
                        .vocab_size = o->vocab, .norm_eps = 1e-5f,
                        .rope_layout = ROPE_LAYOUT_HALF};
    cfg.rope = rope_config_default(o->head_dim);
    cfg.rope.max_position_embeddings = o->seq;
    zigzag_layout z;
    zigzag_layout_init_sp(&z, o->seq, d->sp, d->ulysses, d->sp_rank);
    const int64_t B = o->batch, TL = d->sp > 1 ? z.T_local : o->seq, n = B * TL;
    memset(r, 0, sizeof *r);
    r->m = model_create(&cfg, n, false);
    model_init_weights(r->m, 5);
    r->mom = xcalloc((size_t)r->m->n_params, sizeof(float));
    r->var = xcalloc((size_t)r->m->n_params, sizeof(float));
    r->tok = xmalloc(sizeof(int32_t) * (size_t)n);
    r->tgt = xmalloc(sizeof(int32_t) * (size_t)n);
    r->pos = xmalloc(sizeof(int32_t) * (size_t)n);
    r->seg = xmalloc(sizeof(int32_t) * (size_t)n);
    zigzag_shard_batch(r->tok, r->tgt, r->pos, r->seg, g_tok, g_tgt, g_pos, NULL, B, &z, 0);
    model_attention att;
    if (d->ulysses > 1) {
        r->uly = ulysses_attn_create(d);
        att = model_ulysses_attention(r->uly);
    } else {
        r->ring = ring_attn_create(d);
        att = model_ring_attention(r->ring);
    }
    model_set_attention(r->m, &att);
    r->mb = (model_batch){.B = B, .T = TL, .tokens = r->tok, .targets = r->tgt, .pos = r->pos,
                          .seg = r->seg};
}

static void replica_free(replica *r) {
    ring_attn_free(r->ring);
    ulysses_attn_free(r->uly);
    model_free(r->m);
    free(r->mom), free(r->var), free(r->tok), free(r->tgt), free(r->pos), free(r->seg);
}

// The attention bytes this rank sent so far.
static int64_t sent(const dist_ctx *d, const replica *r) {
    if (!r->uly) return d->sent_bytes;
    ulysses_stats st;
    ulysses_attn_stats_get(r->uly, &st);
    return st.a2a_bytes + st.ring_bytes;
}

static double step(replica *r, dist_ctx *d, int64_t n_targets, int64_t t) {
    model_zero_grads(r->m);
    double loss = model_forward_backward(r->m, &r->mb, 1.0f / (float)n_targets);
    dist_allreduce_grads(d, r->m->grads, r->m->n_params);
    dist_allreduce_sum_double(d, &loss, 1);
    adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double norm = sqrt(adamw_grad_norm_sq(r->m->grads, r->m->n_params));
    adamw_update(r->m->params, r->mom, r->var, r->m->grads, r->m->n_params, &hp, t,
                 adamw_clip_factor(norm, 1.0));
    return loss / (double)n_targets;
}

static int opt_int(const char *v) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 1 || x > (1L << 30)) die_user("bench_sp: bad number '%s'", v);
    return (int)x;
}

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    opts o = {.seq = 4096, .batch = 1, .layers = 2, .dim = 256, .heads = 8, .kv_heads = 8,
              .head_dim = 32, .ffn = 512, .vocab = 512, .steps = 3};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--seq")) o.seq = opt_int(v);
        else if (!strcmp(k, "--batch")) o.batch = opt_int(v);
        else if (!strcmp(k, "--layers")) o.layers = opt_int(v);
        else if (!strcmp(k, "--dim")) o.dim = opt_int(v);
        else if (!strcmp(k, "--heads")) o.heads = opt_int(v);
        else if (!strcmp(k, "--kv-heads")) o.kv_heads = opt_int(v);
        else if (!strcmp(k, "--head-dim")) o.head_dim = opt_int(v);
        else if (!strcmp(k, "--ffn")) o.ffn = opt_int(v);
        else if (!strcmp(k, "--vocab")) o.vocab = opt_int(v);
        else if (!strcmp(k, "--steps")) o.steps = opt_int(v);
        else die_user("bench_sp: unknown option %s", k);
    }
    const int64_t N = o.batch * o.seq;
    int32_t *tok = xmalloc(sizeof(int32_t) * (size_t)N), *tgt = xmalloc(sizeof(int32_t) * (size_t)N);
    int32_t *pos = xmalloc(sizeof(int32_t) * (size_t)N);
    uint64_t s = 12345;
    for (int64_t i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)o.vocab);
        pos[i] = (int32_t)(i % o.seq);
    }
    int64_t n_targets = 0;
    for (int64_t i = 0; i < N; i++) {
        bool last = i % o.seq == o.seq - 1;
        tgt[i] = last ? -1 : tok[i + 1];
        n_targets += !last;
    }
    const int P = d.size;
    if (d.rank == 0)
        printf("bench_sp: sp %d, model L=%d C=%d H=%d Hkv=%d D=%d F=%d V=%d, B=%lld x T=%lld, "
               "median of %d steps\n%-22s %14s %14s %8s | %9s %9s | %s\n", P, o.layers, o.dim,
               o.heads, o.kv_heads, o.head_dim, o.ffn, o.vocab, (long long)o.batch,
               (long long)o.seq, o.steps, "grid", "counted B/lyr", "analytic", "MiB", "step",
               "attention", "loss (step 1)");
    for (int ring = P; ring >= 1; ring--) {
        if (P % ring) continue;
        int U = P / ring;
        char err[256];
        if (ulysses_check_heads(U, o.heads, o.kv_heads, err, sizeof err) != 0) {
            if (d.rank == 0) printf("ring %d x ulysses %d: skipped (%s)\n", ring, U, err);
            continue;
        }
        if (dist_init_grid3(&d, 1, ring, U, err, sizeof err) != 0) die_user("%s", err);
        replica r;
        replica_init(&r, &d, &o, tok, tgt, pos);
        // Bytes of one step's forward + backward, per layer.
        int64_t b0 = sent(&d, &r);
        double loss1 = step(&r, &d, n_targets, 1);
        double counted = max_over_ranks(&d, (double)(sent(&d, &r) - b0) / o.layers);
        zigzag_layout z;
        zigzag_layout_init_sp(&z, o.seq, d.sp, d.ulysses, d.sp_rank);
        double analytic = analytic_bytes(o.batch, z.T_pad, ring, U, o.heads, o.kv_heads, o.head_dim);
        double *times = xmalloc(sizeof(double) * (size_t)o.steps);
        double attn = 0;
        for (int i = 0; i < o.steps; i++) {
            dist_barrier(&d);
            r.m->timers = (model_timers){0};
            double t0 = now_s();
            step(&r, &d, n_targets, i + 2);
            times[i] = max_over_ranks(&d, now_s() - t0);
            attn += max_over_ranks(&d, r.m->timers.attention) / o.steps;
        }
        qsort(times, (size_t)o.steps, sizeof *times, cmp_double);
        if (d.rank == 0) {
            char grid[64];
            snprintf(grid, sizeof grid, "ring %d x ulysses %d", ring, U);
            printf("%-22s %14.0f %14.0f %8.2f | %6.0f ms %6.0f ms | %.6f\n", grid, counted,
                   analytic, counted / (1 << 20), 1e3 * times[o.steps / 2], 1e3 * attn, loss1);
            if (fabs(counted - analytic) > 0.5)
                printf("  WARNING: counted bytes differ from the analytic count\n");
        }
        free(times);
        replica_free(&r);
    }
    free(tok), free(tgt), free(pos);
    dist_finalize(&d);
    return 0;
}
