// The whole model on every dp x ring x ulysses grid of the ranks it runs on
// (ring attention, ulysses all-to-all, and their 2-D hybrid), against the
// 1-rank model on the whole batch (computed by every rank itself):
//   - loss and every gradient tensor after one forward + backward + all-reduce
//     agree to 1e-5 relative (max |diff| / max |ref| per tensor);
//   - after 20 AdamW steps the parameters agree to 1e-4 relative.
// The batch packs several documents per sequence (positions restart, segment
// ids mask attention) and documents cross the zig-zag chunk boundaries.
// Twice: with the default RoPE, and with a mixed-windows table (LongRoPE2:
// documents up to 6 tokens rotated with the short factors, longer ones with
// the long factors; the flags computed on whole rows before sharding, by the
// trainer's own train_batch_make, which makes every batch here).
// n_kv_heads (2) < ulysses (4) exercises the replicated kv heads; sequences
// of T = 24 need padding on grids whose 2 * ring * ulysses does not divide 24
// (ring 2 x ulysses 4 on 8 ranks). Grids whose ulysses does not divide the
// heads, or with more dp groups than the B = 4 sequences, are skipped (none
// up to 4 ranks).
// Run under mpirun with 1, 2 and 4 ranks by ctest and with 8 by
// tests/cli/test_sp8.sh: every (dp, ring, ulysses) with dp * ring * ulysses = ranks.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "die.h"
#include "dist.h"
#include "model.h"
#include "model_sp_attn.h"
#include "mpi_check.h"
#include "rope.h"
#include "train_batch.h"
#include "zigzag.h"

enum { B = 4, T = 24, VOCAB = 40, STEPS = 20 };

static model_config tiny_config(void) {
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                      .ffn_dim = 48, .vocab_size = VOCAB, .norm_eps = 1e-5f,
                      .rope_layout = ROPE_LAYOUT_HALF};
    c.rope = rope_config_default(8);
    c.rope.max_position_embeddings = T;
    return c;
}

typedef struct {
    int32_t tokens[B * T], targets[B * T], pos[B * T], seg[B * T];
    int64_t n_targets;
} batch;

// Sequence b holds documents of lengths 5 + b, 7, ... cut at T.
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
            bool last = t == T - 1 || x->seg[n + 1] != x->seg[n];
            x->targets[n] = last ? -1 : x->tokens[n + 1];
            x->n_targets += !last;
        }
    }
}

// The mixed-windows table: longrope on 4 pairs, original context 6 (the
// documents of 5 and 6 tokens are short, those of 7 to 9 long).
static rope_table mixed_table(void) {
    rope_config c = rope_config_default(8);
    c.type = ROPE_TYPE_LONGROPE;
    c.max_position_embeddings = T;
    c.original_max_position_embeddings = 6;
    c.n_factors = 4;
    const double sf[4] = {1, 1.3, 1.7, 2.2}, lf[4] = {1, 3, 7, 15};
    for (int i = 0; i < 4; i++) c.short_factor[i] = sf[i], c.long_factor[i] = lf[i];
    rope_table t;
    rope_table_init_mixed(&t, &c);
    return t;
}

typedef struct {
    model *m;
    float *mom, *var;
    ring_attn *ring;
    ulysses_attn *uly;
    train_batch tb;  // this rank's rows
    model_batch mb;
} replica;

// rope: the table to train with (NULL: the model's default).
static void replica_init(replica *r, const batch *x, dist_ctx *d, bool serial, const rope_table *rope) {
    model_config cfg = tiny_config();
    int dp = serial ? 1 : d->dp, sp = serial ? 1 : d->sp;
    int dp_rank = serial ? 0 : d->dp_rank, sp_rank = serial ? 0 : d->sp_rank;
    int ulysses = serial ? 1 : d->ulysses;
    zigzag_layout z;
    zigzag_layout_init_sp(&z, T, sp, ulysses, sp_rank);
    const int64_t rows = B / dp, TL = sp > 1 ? z.T_local : T;
    r->m = model_create(&cfg, rows * TL, false);
    model_init_weights(r->m, 99);
    if (rope) model_set_rope(r->m, rope);
    r->mom = calloc((size_t)r->m->n_params, sizeof(float));
    r->var = calloc((size_t)r->m->n_params, sizeof(float));
    r->ring = NULL;
    r->uly = NULL;
    const int64_t off = dp_rank * rows * T;
    data_batch db = {.B = rows, .T = T, .tokens = (int32_t *)x->tokens + off,
                     .targets = (int32_t *)x->targets + off, .pos = (int32_t *)x->pos + off,
                     .seg = (int32_t *)x->seg + off};
    r->tb = (train_batch){0};
    train_batch_make(&r->tb, &db, sp, ulysses, sp_rank, r->m->rope.short_len);
    r->mb = r->tb.mb;
    if (sp > 1) {
        model_attention att;
        if (ulysses > 1) {
            r->uly = ulysses_attn_create(d);
            att = model_ulysses_attention(r->uly);
        } else {
            r->ring = ring_attn_create(d);
            att = model_ring_attention(r->ring);
        }
        model_set_attention(r->m, &att);
    }
    if (rope && serial) {  // the flags of the whole batch: short and long documents both present
        int n_short = 0;
        for (int64_t i = 0; i < rows * T; i++) n_short += r->tb.win_rows[i] == ROPE_WIN_SHORT;
        CHECK(n_short > 0 && n_short < rows * T && r->mb.win != NULL);
    }
}

static void replica_free(replica *r) {
    ring_attn_free(r->ring);
    ulysses_attn_free(r->uly);
    model_free(r->m);
    free(r->mom); free(r->var);
    train_batch_free(&r->tb);
}

// Forward + backward (+ all-reduce when d != NULL); returns the mean loss.
static double grad_step(replica *r, int64_t n_targets, dist_ctx *d) {
    model_zero_grads(r->m);
    double loss = model_forward_backward(r->m, &r->mb, 1.0f / (float)n_targets);
    if (d) {
        dist_allreduce_grads(d, r->m->grads, r->m->n_params);
        dist_allreduce_sum_double(d, &loss, 1);
    }
    return loss / (double)n_targets;
}

static void adam_step(replica *r, int64_t step) {
    adamw_hparams hp = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double norm = sqrt(adamw_grad_norm_sq(r->m->grads, r->m->n_params));
    adamw_update(r->m->params, r->mom, r->var, r->m->grads, r->m->n_params, &hp, step,
                 adamw_clip_factor(norm, 1.0));
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

// Every grid of d's ranks against the 1-rank model, with rope (NULL: default).
static void check_grids(mpi_check *mc, dist_ctx *d, const batch *x, const rope_table *rope) {
    const char *what = rope ? "mixed windows" : "default rope";
    replica ref;
    replica_init(&ref, x, d, true, rope);
    double ref_loss = grad_step(&ref, x->n_targets, NULL);
    float *ref_grads = malloc(sizeof(float) * ref.m->n_params);
    memcpy(ref_grads, ref.m->grads, sizeof(float) * ref.m->n_params);
    for (int s = 1; s <= STEPS; s++) {
        if (s > 1) grad_step(&ref, x->n_targets, NULL);
        adam_step(&ref, s);
    }

    model_config cfg = tiny_config();
    int skipped = 0;
    for (int dp = 1; dp <= d->size; dp++) {
        if (d->size % dp) continue;
        if (B % dp) {  // dp 8: fewer sequences than dp groups
            skipped++;
            continue;
        }
        for (int ring = 1; ring <= d->size / dp; ring++) {
            if ((d->size / dp) % ring) continue;
            int uly = d->size / dp / ring;
            char err[256];
            if (ulysses_check_heads(uly, cfg.n_heads, cfg.n_kv_heads, err, sizeof err) != 0) {
                skipped++;
                continue;
            }
            EXPECT(mc, dist_init_grid3(d, dp, ring, uly, err, sizeof err) == 0, "%s", err);
            replica r;
            replica_init(&r, x, d, false, rope);
            double loss = grad_step(&r, x->n_targets, d);
            double g_err = worst_rel(r.m, r.m->grads, ref_grads);
            double l_err = fabs(loss - ref_loss) / fabs(ref_loss);
            EXPECT(mc, l_err <= 1e-5, "%s, dp %d ring %d ulysses %d: loss %.9g vs 1-rank %.9g", what,
                   dp, ring, uly, loss, ref_loss);
            EXPECT(mc, g_err <= 1e-5, "%s, dp %d ring %d ulysses %d: gradients differ by %.3g "
                   "(relative)", what, dp, ring, uly, g_err);
            for (int s = 1; s <= STEPS; s++) {
                if (s > 1) grad_step(&r, x->n_targets, d);
                adam_step(&r, s);
            }
            double p_err = worst_rel(r.m, r.m->params, ref.m->params);
            EXPECT(mc, p_err <= 1e-4, "%s, dp %d ring %d ulysses %d: parameters after %d steps "
                   "differ by %.3g", what, dp, ring, uly, STEPS, p_err);
            double g_all = mpi_check_max(g_err), p_all = mpi_check_max(p_err);
            if (d->rank == 0)
                printf("%s: dp %d x ring %d x ulysses %d: loss rel err %.2e, worst gradient rel err "
                       "%.2e, params after %d AdamW steps %.2e\n", what, dp, ring, uly, l_err, g_all,
                       STEPS, p_all);
            replica_free(&r);
        }
    }
    if (d->rank == 0 && skipped) printf("%d grid(s) skipped: ulysses does not split the heads, or dp > %d sequences\n", skipped, B);
    free(ref_grads);
    replica_free(&ref);
}

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    mpi_check mc = {.rank = d.rank};
    batch x;
    make_batch(&x);
    check_grids(&mc, &d, &x, NULL);
    rope_table mixed = mixed_table();
    check_grids(&mc, &d, &x, &mixed);
    int rc = mpi_check_finish(&mc, "test_model_grid");
    dist_finalize(&d);
    return rc;
}
