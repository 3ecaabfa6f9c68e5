// ring_attn: ring attention over the sp ranks, zig-zag layout. See ring_attn.h.
//
// Legend: B sequences, Tc rows per zig-zag chunk, TL = 2 * Tc local rows,
// H query heads, Hkv kv heads, D head dim; r this rank's sp rank.
// Inside the ring the LSE and delta live in "pair" layout (2B, H, Tc): one
// (H, Tc) block per (sequence, local chunk), which is what one block-kernel
// call with B = 1 reads; the public lse is (B, H, TL).
#include "ring_attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "die.h"
#include "mono_clock.h"
#include "zigzag.h"

enum { TAG_K = 1, TAG_V, TAG_SEG, TAG_DK, TAG_DV };

struct ring_attn {
    dist_ctx *d;
    size_t kv_cap, seg_cap, row_cap, acc_cap;  // capacities (elements) of the buffers below
    float *kbuf[2], *vbuf[2];  // (B, TL, Hkv, D) K/V arriving, double-buffered
    int32_t *sbuf[2];          // (B, TL) their segment ids
    float *dkbuf[3], *dvbuf[3];  // (B, TL, Hkv, D) dK/dV accumulators: computing, arriving, leaving
    float *lse;                // (2B, H, Tc) pair layout
    float *delta;              // (2B, H, Tc) pair layout
    ring_attn_stats stats;
};

ring_attn *ring_attn_create(dist_ctx *d) {
    ring_attn *r = xcalloc(1, sizeof *r);
    r->d = d;
    return r;
}

void ring_attn_free(ring_attn *r) {
    if (!r) return;
    for (int i = 0; i < 2; i++) {
        free(r->kbuf[i]);
        free(r->vbuf[i]);
        free(r->sbuf[i]);
    }
    for (int i = 0; i < 3; i++) {
        free(r->dkbuf[i]);
        free(r->dvbuf[i]);
    }
    free(r->lse);
    free(r->delta);
    free(r);
}

void ring_attn_stats_get(const ring_attn *r, ring_attn_stats *stats) { *stats = r->stats; }
void ring_attn_stats_reset(ring_attn *r) { r->stats = (ring_attn_stats){0}; }

// ---------------------------------------------------------------------------
// Shapes and layouts

static void check_shape(const ring_attn *r, const ring_shape *s) {
    CHECK(s->B >= 0 && s->T_local > 0);
    CHECK(s->H > 0 && s->Hkv > 0 && s->D > 0 && s->H % s->Hkv == 0);
    CHECK(r->d->sp == 1 || s->T_local % 2 == 0);
}

// The whole-sequence shape (sp == 1).
static attn_shape whole_shape(const ring_shape *s) {
    return (attn_shape){.B = s->B, .Tq = s->T_local, .Tk = s->T_local, .H = s->H,
                        .Hkv = s->Hkv, .D = s->D, .q_start = 0, .k_start = 0,
                        .scale = s->scale, .causal = s->causal};
}

// One (query chunk, key chunk) pair of one sequence, with global offsets.
static attn_shape pair_shape(const ring_shape *s, int64_t Tc, int64_t q_start, int64_t k_start) {
    return (attn_shape){.B = 1, .Tq = Tc, .Tk = Tc, .H = s->H, .Hkv = s->Hkv, .D = s->D,
                        .q_start = q_start, .k_start = k_start, .scale = s->scale,
                        .causal = s->causal};
}

// lse (B, H, TL) <-> pair layout (2B, H, Tc).
static void lse_to_pairs(float *pairs, const float *lse, const ring_shape *s, int64_t Tc) {
    for (int64_t b = 0; b < s->B; b++)
        for (int c = 0; c < 2; c++)
            for (int h = 0; h < s->H; h++)
                memcpy(pairs + ((2 * b + c) * s->H + h) * Tc,
                       lse + (b * s->H + h) * s->T_local + c * Tc, (size_t)Tc * sizeof(float));
}

static void pairs_to_lse(float *lse, const float *pairs, const ring_shape *s, int64_t Tc) {
    for (int64_t b = 0; b < s->B; b++)
        for (int c = 0; c < 2; c++)
            for (int h = 0; h < s->H; h++)
                memcpy(lse + (b * s->H + h) * s->T_local + c * Tc,
                       pairs + ((2 * b + c) * s->H + h) * Tc, (size_t)Tc * sizeof(float));
}

// Grows the K/V ring buffers (and, for the backward, the dK/dV ones).
static void reserve(ring_attn *r, const ring_shape *s, bool backward) {
    size_t n_kv = (size_t)(s->B * s->T_local * s->Hkv * s->D);
    size_t n_rows = (size_t)(s->B * s->T_local);
    size_t n_lse = (size_t)(s->B * s->H * s->T_local);
    if (n_kv > r->kv_cap) {
        for (int i = 0; i < 2; i++) {
            r->kbuf[i] = xrealloc(r->kbuf[i], n_kv * sizeof(float));
            r->vbuf[i] = xrealloc(r->vbuf[i], n_kv * sizeof(float));
        }
        r->kv_cap = n_kv;
    }
    if (n_rows > r->seg_cap) {
        for (int i = 0; i < 2; i++) r->sbuf[i] = xrealloc(r->sbuf[i], n_rows * sizeof(int32_t));
        r->seg_cap = n_rows;
    }
    if (n_lse > r->row_cap) {
        r->lse = xrealloc(r->lse, n_lse * sizeof(float));
        r->delta = xrealloc(r->delta, n_lse * sizeof(float));
        r->row_cap = n_lse;
    }
    if (backward && n_kv > r->acc_cap) {
        for (int i = 0; i < 3; i++) {
            r->dkbuf[i] = xrealloc(r->dkbuf[i], n_kv * sizeof(float));
            r->dvbuf[i] = xrealloc(r->dvbuf[i], n_kv * sizeof(float));
        }
        r->acc_cap = n_kv;
    }
}

// The K/V block in hand at one step of the ring: whose it is and where.
typedef struct {
    int src;             // sp rank that owns these rows
    const float *k, *v;  // (B, TL, Hkv, D)
    const int32_t *seg;  // (B, TL) or NULL
} kv_block;

// Starts passing the block in hand to the next rank while receiving the
// previous rank's into buffer slot `slot`.
static void shift_kv(ring_attn *r, dist_xfer *x, const kv_block *cur, int slot,
                     const ring_shape *s) {
    int64_t n_kv = s->B * s->T_local * s->Hkv * s->D;
    dist_ring_shift(x, r->d, r->kbuf[slot], cur->k, n_kv, DIST_F32, TAG_K);
    dist_ring_shift(x, r->d, r->vbuf[slot], cur->v, n_kv, DIST_F32, TAG_V);
    if (cur->seg)
        dist_ring_shift(x, r->d, r->sbuf[slot], cur->seg, s->B * s->T_local, DIST_I32, TAG_SEG);
}

static kv_block arrived_kv(const ring_attn *r, const kv_block *prev, int slot) {
    int sp = r->d->sp;
    return (kv_block){.src = (prev->src + sp - 1) % sp, .k = r->kbuf[slot], .v = r->vbuf[slot],
                      .seg = prev->seg ? r->sbuf[slot] : NULL};
}

static void wait_xfer(ring_attn *r, dist_xfer *x) {
    double t0 = mono_clock_s();
    dist_xfer_wait(x);
    r->stats.wait_s += mono_clock_s() - t0;
}

// Calls fn for every (sequence, local query chunk, key chunk) pair of the
// block that the causal mask does not hide entirely, polling the transfers in
// flight between calls. Offsets are (row) offsets into the (B, TL, ...) tensors.
typedef struct {
    int64_t b, q_row, k_row;  // rows: b * TL + chunk * Tc
    int64_t pair_q;           // (2b + query chunk): index into the pair layout
    attn_shape shape;
} pair_job;

typedef void (*pair_fn)(ring_attn *r, const pair_job *job, const kv_block *kv, void *arg);

static void for_each_pair(ring_attn *r, const kv_block *kv, const ring_shape *s,
                          dist_xfer *x1, dist_xfer *x2, pair_fn fn, void *arg) {
    const int64_t Tc = s->T_local / 2;
    const int sp = r->d->sp, me = r->d->sp_rank;
    for (int64_t b = 0; b < s->B; b++) {
        for (int qc = 0; qc < 2; qc++) {
            for (int kc = 0; kc < 2; kc++) {
                int64_t q_start = zigzag_chunk_index(sp, me, qc) * Tc;
                int64_t k_start = zigzag_chunk_index(sp, kv->src, kc) * Tc;
                if (s->causal && k_start > q_start + Tc - 1) {
                    r->stats.blocks_skipped++;
                    continue;
                }
                pair_job job = {.b = b, .q_row = b * s->T_local + qc * Tc,
                                .k_row = b * s->T_local + kc * Tc, .pair_q = 2 * b + qc,
                                .shape = pair_shape(s, Tc, q_start, k_start)};
                double t0 = mono_clock_s();
                fn(r, &job, kv, arg);
                r->stats.compute_s += mono_clock_s() - t0;
                r->stats.blocks_computed++;
                if (x1) dist_xfer_poll(x1);
                if (x2) dist_xfer_poll(x2);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Forward

typedef struct {
    float *out;
    const float *q;
    const int32_t *seg;
    const ring_shape *s;
} fwd_args;

static void forward_pair(ring_attn *r, const pair_job *j, const kv_block *kv, void *arg) {
    const fwd_args *a = arg;
    const ring_shape *s = a->s;
    const int64_t qw = (int64_t)s->H * s->D, kw = (int64_t)s->Hkv * s->D;
    attn_block_forward(a->out + j->q_row * qw, r->lse + j->pair_q * s->H * j->shape.Tq,
                       a->q + j->q_row * qw, kv->k + j->k_row * kw, kv->v + j->k_row * kw,
                       a->seg ? a->seg + j->q_row : NULL, kv->seg ? kv->seg + j->k_row : NULL,
                       &j->shape);
}

void ring_attn_forward(ring_attn *r, float *out, float *lse, const float *q, const float *k,
                       const float *v, const int32_t *seg, const ring_shape *s) {
    check_shape(r, s);
    if (r->d->sp == 1) {
        attn_shape whole = whole_shape(s);
        double t0 = mono_clock_s();
        attn_forward(out, lse, q, k, v, seg, seg, &whole);
        r->stats.compute_s += mono_clock_s() - t0;
        r->stats.blocks_computed++;
        return;
    }
    const int sp = r->d->sp;
    const int64_t Tc = s->T_local / 2;
    reserve(r, s, false);
    memset(out, 0, sizeof(float) * (size_t)(s->B * s->T_local * s->H * s->D));
    for (int64_t i = 0; i < s->B * s->H * s->T_local; i++) r->lse[i] = -INFINITY;

    fwd_args args = {.out = out, .q = q, .seg = seg, .s = s};
    kv_block cur = {.src = r->d->sp_rank, .k = k, .v = v, .seg = seg};
    for (int step = 0; step < sp; step++) {
        dist_xfer x = {0};
        int slot = step % 2;  // the buffer not in hand: its last send ended a step ago
        if (step + 1 < sp) shift_kv(r, &x, &cur, slot, s);
        for_each_pair(r, &cur, s, &x, NULL, forward_pair, &args);
        if (step + 1 < sp) {
            wait_xfer(r, &x);
            cur = arrived_kv(r, &cur, slot);
        }
    }
    pairs_to_lse(lse, r->lse, s, Tc);
}

// ---------------------------------------------------------------------------
// Backward

typedef struct {
    float *dq, *dk, *dv;  // dk, dv: the accumulator being computed this step
    const float *dout, *q;
    const int32_t *seg;
    const ring_shape *s;
} bwd_args;

static void backward_pair(ring_attn *r, const pair_job *j, const kv_block *kv, void *arg) {
    const bwd_args *a = arg;
    const ring_shape *s = a->s;
    const int64_t qw = (int64_t)s->H * s->D, kw = (int64_t)s->Hkv * s->D;
    const int64_t p = j->pair_q * s->H * j->shape.Tq;
    attn_block_backward(a->dq + j->q_row * qw, a->dk + j->k_row * kw, a->dv + j->k_row * kw,
                        a->dout + j->q_row * qw, a->q + j->q_row * qw, kv->k + j->k_row * kw,
                        kv->v + j->k_row * kw, r->lse + p, r->delta + p,
                        a->seg ? a->seg + j->q_row : NULL, kv->seg ? kv->seg + j->k_row : NULL,
                        &j->shape);
}

static void add_into(float *restrict y, const float *restrict x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void ring_attn_backward(ring_attn *r, float *dq, float *dk, float *dv, const float *dout,
                        const float *q, const float *k, const float *v, const float *out,
                        const float *lse, const int32_t *seg, const ring_shape *s) {
    check_shape(r, s);
    if (r->d->sp == 1) {
        attn_shape whole = whole_shape(s);
        double t0 = mono_clock_s();
        attn_backward(dq, dk, dv, dout, q, k, v, out, lse, seg, seg, &whole);
        r->stats.compute_s += mono_clock_s() - t0;
        r->stats.blocks_computed++;
        return;
    }
    const int sp = r->d->sp;
    const int64_t Tc = s->T_local / 2, qw = (int64_t)s->H * s->D;
    const int64_t n_kv = s->B * s->T_local * s->Hkv * s->D;
    reserve(r, s, true);
    lse_to_pairs(r->lse, lse, s, Tc);
    for (int64_t b = 0; b < s->B; b++)
        for (int c = 0; c < 2; c++) {
            int64_t row = b * s->T_local + c * Tc;
            attn_backward_delta(r->delta + (2 * b + c) * s->H * Tc, dout + row * qw,
                                out + row * qw, 1, Tc, s->H, s->D);
        }

    // dK/dV accumulator slots: `blk` is computed this step; `inbox` receives
    // the accumulator of the next step's block from the previous rank; the
    // third is on its way to the next rank.
    int blk = 0, inbox = 1;
    dist_xfer kvx = {0}, accx = {0};
    bwd_args args = {.dq = dq, .dout = dout, .q = q, .seg = seg, .s = s};
    kv_block cur = {.src = r->d->sp_rank, .k = k, .v = v, .seg = seg};
    for (int step = 0; step < sp; step++) {
        int slot = step % 2;
        if (step + 1 < sp) shift_kv(r, &kvx, &cur, slot, s);
        memset(r->dkbuf[blk], 0, sizeof(float) * (size_t)n_kv);
        memset(r->dvbuf[blk], 0, sizeof(float) * (size_t)n_kv);
        args.dk = r->dkbuf[blk];
        args.dv = r->dvbuf[blk];
        for_each_pair(r, &cur, s, &kvx, &accx, backward_pair, &args);

        int send;  // the slot holding this block's accumulator, to pass on
        if (step == 0) {
            send = blk;  // our own block: nobody has added to it yet
        } else {
            wait_xfer(r, &accx);  // inbox arrived, outbox left
            add_into(r->dkbuf[inbox], r->dkbuf[blk], n_kv);
            add_into(r->dvbuf[inbox], r->dvbuf[blk], n_kv);
            send = inbox;
        }
        int free1 = (send + 1) % 3, free2 = (send + 2) % 3;
        dist_ring_shift(&accx, r->d, r->dkbuf[free1], r->dkbuf[send], n_kv, DIST_F32, TAG_DK);
        dist_ring_shift(&accx, r->d, r->dvbuf[free1], r->dvbuf[send], n_kv, DIST_F32, TAG_DV);
        inbox = free1;
        blk = free2;
        if (step + 1 < sp) {
            wait_xfer(r, &kvx);
            cur = arrived_kv(r, &cur, slot);
        }
    }
    // After sp hops the accumulator of our own block is back, complete.
    wait_xfer(r, &accx);
    add_into(dk, r->dkbuf[inbox], n_kv);
    add_into(dv, r->dvbuf[inbox], n_kv);
}
