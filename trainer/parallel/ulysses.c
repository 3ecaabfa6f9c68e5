// ulysses: all-to-all sequence parallelism and the ring x ulysses hybrid.
// See ulysses.h.
//
// Legend: U ulysses degree, j / i u ranks, B sequences, TL local rows, TG =
// U * TL ring-local rows, W heads of one tensor per rank (H / U query heads,
// Hkvl kv heads), D head dim. "seq layout" (B, TL, heads, D) is what the model
// holds; "head layout" (B, TG, W, D) what the attention of a rank reads.
// An all-to-all block is (B, TL, W, D): block j of the send buffer goes to
// u rank j, block i of the receive buffer came from u rank i.
#include "ulysses.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "mono_clock.h"

int ulysses_check_heads(int ulysses, int n_heads, int n_kv_heads, char *err, size_t errlen) {
    if (ulysses < 1) {
        snprintf(err, errlen, "parallel.ulysses (%d) must be >= 1", ulysses);
        return -1;
    }
    if (n_heads % ulysses != 0) {
        snprintf(err, errlen, "parallel.ulysses (%d) must divide model.n_heads (%d): each "
                 "ulysses rank takes n_heads / ulysses query heads", ulysses, n_heads);
        return -1;
    }
    if (n_kv_heads >= ulysses ? n_kv_heads % ulysses != 0 : ulysses % n_kv_heads != 0) {
        snprintf(err, errlen, "parallel.ulysses (%d) and model.n_kv_heads (%d): one must divide "
                 "the other (kv heads are split across the ulysses ranks, or replicated when "
                 "ulysses > n_kv_heads)", ulysses, n_kv_heads);
        return -1;
    }
    return 0;
}

int ulysses_kv_heads_local(int ulysses, int n_kv_heads) {
    return n_kv_heads >= ulysses ? n_kv_heads / ulysses : 1;
}

int ulysses_kv_head_lo(int ulysses, int n_kv_heads, int j) {
    return n_kv_heads >= ulysses ? j * (n_kv_heads / ulysses) : j / (ulysses / n_kv_heads);
}

struct ulysses_attn {
    dist_ctx *d;
    dist_ctx ring_d;   // the ring group as a 1-D ring (dist_ring_view)
    ring_attn *ring;
    size_t cap_q, cap_kv, cap_seg;       // capacities (floats / ints) of the buffers below
    float *qh, *oh, *doh, *dqh;          // (B, TG, H/U, D) head layout
    float *kh, *vh, *dkh, *dvh;          // (B, TG, Hkvl, D)
    float *send, *recv;                  // U blocks, the largest tensor
    int32_t *segh;                       // (B, TG) ring-local segment ids
    int64_t a2a_bytes;
    double a2a_s;
};

ulysses_attn *ulysses_attn_create(dist_ctx *d) {
    ulysses_attn *u = xcalloc(1, sizeof *u);
    u->d = d;
    dist_ring_view(&u->ring_d, d);
    u->ring = ring_attn_create(&u->ring_d);
    return u;
}

void ulysses_attn_free(ulysses_attn *u) {
    if (!u) return;
    ring_attn_free(u->ring);
    free(u->qh); free(u->oh); free(u->doh); free(u->dqh);
    free(u->kh); free(u->vh); free(u->dkh); free(u->dvh);
    free(u->send); free(u->recv); free(u->segh);
    free(u);
}

void ulysses_attn_stats_get(const ulysses_attn *u, ulysses_stats *st) {
    *st = (ulysses_stats){.a2a_bytes = u->a2a_bytes, .ring_bytes = u->ring_d.sent_bytes,
                          .a2a_s = u->a2a_s};
    ring_attn_stats_get(u->ring, &st->ring);
}

void ulysses_attn_stats_reset(ulysses_attn *u) {
    u->a2a_bytes = 0;
    u->a2a_s = 0;
    u->ring_d.sent_bytes = 0;
    ring_attn_stats_reset(u->ring);
}

// ---------------------------------------------------------------------------
// Shapes and buffers

typedef struct {
    int U, me;
    int64_t B, TL, TG;
    int H, Hkv, Hl, Hkvl, D;
} geom;

static geom geom_of(const ulysses_attn *u, const ring_shape *s) {
    geom g = {.U = u->d->ulysses, .me = u->d->u_rank, .B = s->B, .TL = s->T_local, .H = s->H,
              .Hkv = s->Hkv, .D = s->D};
    CHECK(g.U >= 1 && s->B >= 0 && s->T_local > 0);
    char err[256];
    if (ulysses_check_heads(g.U, s->H, s->Hkv, err, sizeof err) != 0) die("%s", err);
    g.TG = g.U * g.TL;
    g.Hl = s->H / g.U;
    g.Hkvl = ulysses_kv_heads_local(g.U, s->Hkv);
    return g;
}

static void grow(float **p, size_t n) { *p = xrealloc(*p, n * sizeof(float)); }

static void reserve(ulysses_attn *u, const geom *g, bool backward) {
    size_t nq = (size_t)(g->B * g->TG * g->Hl * g->D), nkv = (size_t)(g->B * g->TG * g->Hkvl * g->D);
    size_t nseg = (size_t)(g->B * g->TG);
    if (nq > u->cap_q || nkv > u->cap_kv) {
        size_t nq2 = nq > u->cap_q ? nq : u->cap_q, nkv2 = nkv > u->cap_kv ? nkv : u->cap_kv;
        grow(&u->qh, nq2); grow(&u->oh, nq2);
        grow(&u->kh, nkv2); grow(&u->vh, nkv2);
        size_t nbuf = nq2 > nkv2 ? nq2 : nkv2;
        grow(&u->send, nbuf); grow(&u->recv, nbuf);
        // The backward buffers are regrown below when needed.
        free(u->doh); free(u->dqh); free(u->dkh); free(u->dvh);
        u->doh = u->dqh = u->dkh = u->dvh = NULL;
        u->cap_q = nq2;
        u->cap_kv = nkv2;
    }
    if (backward && !u->doh) {
        u->doh = xmalloc(u->cap_q * sizeof(float));
        u->dqh = xmalloc(u->cap_q * sizeof(float));
        u->dkh = xmalloc(u->cap_kv * sizeof(float));
        u->dvh = xmalloc(u->cap_kv * sizeof(float));
    }
    if (nseg > u->cap_seg) {
        u->segh = xrealloc(u->segh, nseg * sizeof(int32_t));
        u->cap_seg = nseg;
    }
}

// First head of u rank j for a tensor of `heads` heads (W per rank).
static int head_lo(const geom *g, int heads, int j) {
    return heads == g->H ? j * g->Hl : ulysses_kv_head_lo(g->U, g->Hkv, j);
}

static void a2a(ulysses_attn *u, int64_t block) {
    double t0 = mono_clock_s();
    int64_t before = u->d->sent_bytes;
    dist_alltoall(u->d, u->recv, u->send, block, DIST_F32);
    u->a2a_bytes += u->d->sent_bytes - before;
    u->a2a_s += mono_clock_s() - t0;
}

// x (B, TL, heads, D) seq layout -> y (B, TG, W, D) head layout.
static void to_heads(ulysses_attn *u, float *y, const float *x, int heads, int W, const geom *g) {
    const int64_t D = g->D, block = g->B * g->TL * W * D;
    const size_t wb = (size_t)(W * D) * sizeof(float);
    for (int j = 0; j < g->U; j++) {
        int lo = head_lo(g, heads, j);
        for (int64_t n = 0; n < g->B * g->TL; n++)
            memcpy(u->send + j * block + n * W * D, x + (n * heads + lo) * D, wb);
    }
    a2a(u, block);
    for (int i = 0; i < g->U; i++)
        for (int64_t b = 0; b < g->B; b++)
            memcpy(y + (b * g->TG + i * g->TL) * W * D, u->recv + i * block + b * g->TL * W * D,
                   wb * (size_t)g->TL);
}

// y (B, TG, W, D) head layout -> x (B, TL, heads, D) seq layout; add: x +=
// (replicated kv heads sum their gradients), else x = (each head written once).
static void to_seq(ulysses_attn *u, float *x, const float *y, int heads, int W, const geom *g,
                   bool add) {
    const int64_t D = g->D, block = g->B * g->TL * W * D;
    const size_t wb = (size_t)(W * D) * sizeof(float);
    for (int i = 0; i < g->U; i++)
        for (int64_t b = 0; b < g->B; b++)
            memcpy(u->send + i * block + b * g->TL * W * D, y + (b * g->TG + i * g->TL) * W * D,
                   wb * (size_t)g->TL);
    a2a(u, block);
    for (int j = 0; j < g->U; j++) {
        int lo = head_lo(g, heads, j);
        const float *src = u->recv + j * block;
        for (int64_t n = 0; n < g->B * g->TL; n++) {
            float *dst = x + (n * heads + lo) * D;
            if (add)
                for (int64_t e = 0; e < W * D; e++) dst[e] += src[n * W * D + e];
            else
                memcpy(dst, src + n * W * D, wb);
        }
    }
}

// The ring-local segment ids (B, TG) from every u rank's (B, TL).
static const int32_t *gather_seg(ulysses_attn *u, const int32_t *seg, const geom *g) {
    if (!seg) return NULL;
    int32_t *all = (int32_t *)u->recv;  // (U, B, TL)
    double t0 = mono_clock_s();
    int64_t before = u->d->sent_bytes;
    dist_allgather(u->d, all, seg, g->B * g->TL, DIST_I32);
    u->a2a_bytes += u->d->sent_bytes - before;
    u->a2a_s += mono_clock_s() - t0;
    for (int i = 0; i < g->U; i++)
        for (int64_t b = 0; b < g->B; b++)
            memcpy(u->segh + b * g->TG + i * g->TL, all + (i * g->B + b) * g->TL,
                   (size_t)g->TL * sizeof(int32_t));
    return u->segh;
}

static ring_shape head_shape(const ring_shape *s, const geom *g) {
    ring_shape h = *s;
    h.T_local = g->TG;
    h.H = g->Hl;
    h.Hkv = g->Hkvl;
    return h;
}

// ---------------------------------------------------------------------------

void ulysses_attn_forward(ulysses_attn *u, float *out, float *lse, const float *q,
                          const float *k, const float *v, const int32_t *seg,
                          const ring_shape *s) {
    geom g = geom_of(u, s);
    reserve(u, &g, false);
    to_heads(u, u->qh, q, g.H, g.Hl, &g);
    to_heads(u, u->kh, k, g.Hkv, g.Hkvl, &g);
    to_heads(u, u->vh, v, g.Hkv, g.Hkvl, &g);
    const int32_t *segh = gather_seg(u, seg, &g);
    ring_shape h = head_shape(s, &g);
    ring_attn_forward(u->ring, u->oh, lse, u->qh, u->kh, u->vh, segh, &h);
    to_seq(u, out, u->oh, g.H, g.Hl, &g, false);
}

void ulysses_attn_backward(ulysses_attn *u, float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *out,
                           const float *lse, const int32_t *seg, const ring_shape *s) {
    geom g = geom_of(u, s);
    reserve(u, &g, true);
    to_heads(u, u->qh, q, g.H, g.Hl, &g);
    to_heads(u, u->kh, k, g.Hkv, g.Hkvl, &g);
    to_heads(u, u->vh, v, g.Hkv, g.Hkvl, &g);
    to_heads(u, u->oh, out, g.H, g.Hl, &g);
    to_heads(u, u->doh, dout, g.H, g.Hl, &g);
    const int32_t *segh = gather_seg(u, seg, &g);
    const size_t nq = (size_t)(g.B * g.TG * g.Hl * g.D), nkv = (size_t)(g.B * g.TG * g.Hkvl * g.D);
    memset(u->dqh, 0, nq * sizeof(float));
    memset(u->dkh, 0, nkv * sizeof(float));
    memset(u->dvh, 0, nkv * sizeof(float));
    ring_shape h = head_shape(s, &g);
    ring_attn_backward(u->ring, u->dqh, u->dkh, u->dvh, u->doh, u->qh, u->kh, u->vh, u->oh, lse,
                       segh, &h);
    to_seq(u, dq, u->dqh, g.H, g.Hl, &g, true);
    to_seq(u, dk, u->dkh, g.Hkv, g.Hkvl, &g, true);
    to_seq(u, dv, u->dvh, g.Hkv, g.Hkvl, &g, true);
}
