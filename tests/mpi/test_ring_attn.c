// Ring attention against single-rank attention. Every rank builds the same
// random batch, computes attn_forward / attn_backward on the whole sequence
// (the reference), shards it zig-zag, runs ring_attn_forward / _backward over
// its sp ring, unshards its own rows and compares them: out, lse, dq, dk, dv
// to 1e-5 relative (max abs error / max abs reference value). Cases: causal
// MHA, GQA, packed documents crossing chunk boundaries, non-causal, lengths
// that need padding, chunks longer than one kernel tile. Grids: sp = ranks,
// dp = ranks, and dp = 2 x sp = 2 on 4 ranks (two rings on different data).
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "attn_check.h"
#include "die.h"
#include "dist.h"
#include "mpi_check.h"
#include "ring_attn.h"
#include "zigzag.h"

static const double TOL = 1e-5;

static const attn_case CASES[] = {
    {"causal MHA", 2, 64, 2, 2, 16, true, false},
    {"causal GQA H=4 Hkv=2", 2, 64, 4, 2, 16, true, false},
    {"packed documents GQA", 2, 64, 4, 2, 8, true, true},
    {"padding T=50", 2, 50, 4, 2, 16, true, false},
    {"padding T=50 packed", 1, 50, 4, 1, 8, true, true},
    {"non-causal packed T=45", 2, 45, 4, 2, 8, false, true},
    {"tiny T=7", 1, 7, 2, 1, 4, true, false},
    {"multi-tile T=300 packed", 1, 300, 2, 1, 16, true, true},
};

// lse is (B, H, T): compare per head as rows of width 1.
static cmp compare_lse(const float *ref, const float *local, int64_t B, int H,
                       const zigzag_layout *z) {
    cmp all = {0, 0, 0};
    for (int64_t bh = 0; bh < B * H; bh++) {
        cmp c = compare_rows(ref + bh * z->T, local + bh * z->T_local, 1, 1, z);
        all.err = fmax(all.err, c.err);
        all.ref = fmax(all.ref, c.ref);
        all.rows += c.rows;
    }
    return all;
}

// Agrees on the relative error over all ranks (each rank relative to its own
// group's reference) and checks it; every real row of every group compared once.
static double check_rel(mpi_check *mc, const char *what, cmp c, int64_t want_rows,
                        bool exact, const char *name, const dist_ctx *d) {
    double rel = mpi_check_max(c.err / fmax(c.ref, 1e-30));
    double err = mpi_check_max(c.err);
    int64_t rows = c.rows;
    MPI_Allreduce(MPI_IN_PLACE, &rows, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    EXPECT(mc, rows == want_rows * d->dp, "%s %s dp=%d sp=%d: compared %lld rows, want %lld",
           name, what, d->dp, d->sp, (long long)rows, (long long)(want_rows * d->dp));
    EXPECT(mc, rel <= TOL, "%s %s dp=%d sp=%d: relative error %.3g > %.0e", name, what, d->dp,
           d->sp, rel, TOL);
    if (exact)
        EXPECT(mc, err == 0.0, "%s %s sp=1 must equal attn_forward/attn_backward exactly: %.3g",
               name, what, err);
    return rel;
}

// ---------------------------------------------------------------------------

static void run_case(mpi_check *mc, dist_ctx *d, ring_attn *ring, const attn_case *tc,
                     uint64_t seed) {
    const int64_t B = tc->B, T = tc->T;
    const int H = tc->H, Hkv = tc->Hkv, D = tc->D;
    const int64_t qw = (int64_t)H * D, kw = (int64_t)Hkv * D;
    uint64_t rng = seed;
    float *q = random_floats(B * T * qw, &rng), *k = random_floats(B * T * kw, &rng);
    float *v = random_floats(B * T * kw, &rng), *dout = random_floats(B * T * qw, &rng);
    int32_t *seg = tc->packed ? random_segments(B, T, &rng) : NULL;

    // Reference: the whole sequence on one rank.
    attn_shape full = {.B = B, .Tq = T, .Tk = T, .H = H, .Hkv = Hkv, .D = D, .q_start = 0,
                       .k_start = 0, .scale = 1.0f / sqrtf((float)D), .causal = tc->causal};
    float *ref_out = xmalloc(sizeof(float) * (size_t)(B * T * qw));
    float *ref_lse = xmalloc(sizeof(float) * (size_t)(B * H * T));
    float *ref_dq = xcalloc((size_t)(B * T * qw), sizeof(float));
    float *ref_dk = xcalloc((size_t)(B * T * kw), sizeof(float));
    float *ref_dv = xcalloc((size_t)(B * T * kw), sizeof(float));
    attn_forward(ref_out, ref_lse, q, k, v, seg, seg, &full);
    attn_backward(ref_dq, ref_dk, ref_dv, dout, q, k, v, ref_out, ref_lse, seg, seg, &full);

    // This rank's shard.
    zigzag_layout z;
    zigzag_layout_init(&z, T, d->sp, d->sp_rank);
    const int64_t TL = z.T_local;
    if (tc->packed && d->sp > 1) {  // the case must exercise documents across chunks
        bool crosses = false;
        for (int64_t g = z.chunk; g < T; g += z.chunk) crosses |= seg[g - 1] == seg[g];
        EXPECT(mc, crosses, "%s: no document crosses a chunk boundary", tc->name);
    }
    float *lq = xmalloc(sizeof(float) * (size_t)(B * TL * qw));
    float *lk = xmalloc(sizeof(float) * (size_t)(B * TL * kw));
    float *lv = xmalloc(sizeof(float) * (size_t)(B * TL * kw));
    float *ldout = xmalloc(sizeof(float) * (size_t)(B * TL * qw));
    zigzag_shard(lq, q, (size_t)qw * sizeof(float), B, &z, NULL);
    zigzag_shard(lk, k, (size_t)kw * sizeof(float), B, &z, NULL);
    zigzag_shard(lv, v, (size_t)kw * sizeof(float), B, &z, NULL);
    zigzag_shard(ldout, dout, (size_t)qw * sizeof(float), B, &z, NULL);
    int32_t *lseg = NULL;  // segment ids when documents or padding need them
    if (tc->packed || z.T_pad > T) {
        lseg = xmalloc(sizeof(int32_t) * (size_t)(B * TL));
        zigzag_shard_batch(NULL, NULL, NULL, lseg, NULL, NULL, NULL, seg, B, &z, 0);
    }

    ring_shape rs = {.B = B, .T_local = TL, .H = H, .Hkv = Hkv, .D = D, .scale = full.scale,
                     .causal = tc->causal};
    float *out = xmalloc(sizeof(float) * (size_t)(B * TL * qw));
    float *lse = xmalloc(sizeof(float) * (size_t)(B * H * TL));
    float *dq = xcalloc((size_t)(B * TL * qw), sizeof(float));
    float *dk = xcalloc((size_t)(B * TL * kw), sizeof(float));
    float *dv = xcalloc((size_t)(B * TL * kw), sizeof(float));
    ring_attn_stats_reset(ring);
    ring_attn_forward(ring, out, lse, lq, lk, lv, lseg, &rs);
    ring_attn_stats st;
    ring_attn_stats_get(ring, &st);
    ring_attn_backward(ring, dq, dk, dv, ldout, lq, lk, lv, out, lse, lseg, &rs);

    // Causal zig-zag: 2 sp + 1 of the 4 sp pairs per sequence, on every rank.
    if (d->sp > 1 && tc->causal) {
        EXPECT(mc, st.blocks_computed == B * (2 * d->sp + 1) && st.blocks_skipped == B * (2 * d->sp - 1),
               "%s: forward computed %lld and skipped %lld pairs, want %lld and %lld", tc->name,
               (long long)st.blocks_computed, (long long)st.blocks_skipped,
               (long long)(B * (2 * d->sp + 1)), (long long)(B * (2 * d->sp - 1)));
    }

    bool exact = d->sp == 1 && z.T_pad == T && !lseg == !seg;
    const int64_t rows = B * T;
    double e[5];
    e[0] = check_rel(mc, "out", compare_rows(ref_out, out, B, qw, &z), rows, exact, tc->name, d);
    e[1] = check_rel(mc, "lse", compare_lse(ref_lse, lse, B, H, &z), rows * H, exact, tc->name, d);
    e[2] = check_rel(mc, "dq", compare_rows(ref_dq, dq, B, qw, &z), rows, exact, tc->name, d);
    e[3] = check_rel(mc, "dk", compare_rows(ref_dk, dk, B, kw, &z), rows, exact, tc->name, d);
    e[4] = check_rel(mc, "dv", compare_rows(ref_dv, dv, B, kw, &z), rows, exact, tc->name, d);

    // A second backward accumulates: the gradients double (and the workspace,
    // reused, does not carry anything over from the first call).
    float *dq1 = xmalloc(sizeof(float) * (size_t)(B * TL * qw));
    memcpy(dq1, dq, sizeof(float) * (size_t)(B * TL * qw));
    float *dk1 = xmalloc(sizeof(float) * (size_t)(B * TL * kw));
    memcpy(dk1, dk, sizeof(float) * (size_t)(B * TL * kw));
    ring_attn_backward(ring, dq, dk, dv, ldout, lq, lk, lv, out, lse, lseg, &rs);
    double acc_err = 0, acc_ref = 0;
    for (int64_t i = 0; i < B * TL * qw; i++) {
        acc_err = fmax(acc_err, fabs(dq[i] - 2.0 * dq1[i]));
        acc_ref = fmax(acc_ref, fabs(2.0 * dq1[i]));
    }
    for (int64_t i = 0; i < B * TL * kw; i++) {
        acc_err = fmax(acc_err, fabs(dk[i] - 2.0 * dk1[i]));
        acc_ref = fmax(acc_ref, fabs(2.0 * dk1[i]));
    }
    double acc_rel = mpi_check_max(acc_err / fmax(acc_ref, 1e-30));
    EXPECT(mc, acc_rel <= 1e-6, "%s: second backward does not accumulate: rel %.3g", tc->name,
           acc_rel);

    if (d->rank == 0)
        printf("dp=%d sp=%d %-26s T=%3lld T_pad=%3lld rel err: out %.2e lse %.2e dq %.2e "
               "dk %.2e dv %.2e\n",
               d->dp, d->sp, tc->name, (long long)T, (long long)z.T_pad, e[0], e[1], e[2],
               e[3], e[4]);

    free(dq1), free(dk1);
    free(out), free(lse), free(dq), free(dk), free(dv);
    free(lq), free(lk), free(lv), free(ldout), free(lseg);
    free(ref_out), free(ref_lse), free(ref_dq), free(ref_dk), free(ref_dv);
    free(q), free(k), free(v), free(dout), free(seg);
}

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    mpi_check mc = {.rank = d.rank};
    char err[256];

    // Grids: one ring over all ranks; dp only (sp = 1 under MPI); with 4
    // ranks also two rings of 2 on different data.
    int grids[3][2] = {{1, d.size}, {d.size, 1}, {d.size / 2, 2}};
    int n_grids = d.size == 1 ? 1 : d.size == 4 ? 3 : 2;
    for (int gi = 0; gi < n_grids; gi++) {
        if (dist_init_grid(&d, grids[gi][0], grids[gi][1], err, sizeof err) != 0) die("%s", err);
        ring_attn *ring = ring_attn_create(&d);  // one workspace for every case and shape
        for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++)
            run_case(&mc, &d, ring, &CASES[c], 1234 + 7919 * (uint64_t)(c + 100 * d.dp_rank));
        ring_attn_free(ring);
    }
    int rc = mpi_check_finish(&mc, "ring_attn");
    dist_finalize(&d);
    return rc;
}
