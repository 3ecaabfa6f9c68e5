// Ulysses and ring x ulysses attention against single-rank attention. Every
// rank builds the same random batch, computes attn_forward / attn_backward on
// the whole sequence (the reference), takes its rows (zigzag_layout_init2),
// runs ulysses_attn_forward / _backward over its ulysses and ring groups and
// compares: out, dq, dk, dv on its own rows, and the head-sharded lse on the
// (head, ring-local row) pairs it holds, every real (row, head) of every
// group compared exactly once, to 1e-5 relative (max abs error / max abs
// reference value). Cases: causal MHA, GQA with kv heads split and with kv
// heads replicated (n_kv_heads < ulysses: their gradients summed), MQA,
// packed documents crossing chunk boundaries, non-causal, lengths that need
// padding, chunks longer than one kernel tile. Grids: every dp x ring x
// ulysses factoring of the ranks (1, 2, 4 under ctest; 8 in
// tests/cli/test_sp8.sh); a case whose heads a grid cannot split is skipped
// and counted.
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "attn_check.h"
#include "die.h"
#include "dist.h"
#include "mpi_check.h"
#include "ulysses.h"
#include "zigzag.h"

static const double TOL = 1e-5;

static const attn_case CASES[] = {
    {"causal MHA", 2, 64, 8, 8, 8, true, false},
    {"causal GQA H=8 Hkv=2", 2, 64, 8, 2, 8, true, false},
    {"packed GQA H=8 Hkv=4", 2, 64, 8, 4, 8, true, true},
    {"packed MQA H=8 Hkv=1", 2, 64, 8, 1, 8, true, true},
    {"padding T=50 packed", 1, 50, 8, 2, 8, true, true},
    {"padding T=37", 2, 37, 8, 2, 4, true, false},
    {"non-causal packed T=45", 2, 45, 8, 4, 8, false, true},
    {"multi-tile T=300 packed", 1, 300, 8, 2, 16, true, true},
};

// Agrees on the relative error over all ranks (each rank relative to its own
// group's reference) and checks it; every real row of every group compared once.
static double check_rel(mpi_check *mc, const char *what, cmp c, int64_t want_rows,
                        bool exact, const char *name, const dist_ctx *d) {
    double rel = mpi_check_max(c.err / fmax(c.ref, 1e-30));
    double err = mpi_check_max(c.err);
    int64_t rows = c.rows;
    MPI_Allreduce(MPI_IN_PLACE, &rows, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    EXPECT(mc, rows == want_rows * d->dp, "%s %s dp=%d ring=%d ulysses=%d: compared %lld rows, want %lld",
           name, what, d->dp, d->ring, d->ulysses, (long long)rows, (long long)(want_rows * d->dp));
    EXPECT(mc, rel <= TOL, "%s %s dp=%d ring=%d ulysses=%d: relative error %.3g > %.0e", name,
           what, d->dp, d->ring, d->ulysses, rel, TOL);
    if (exact)
        EXPECT(mc, err == 0.0, "%s %s sp=1 must equal attn_forward/attn_backward exactly: %.3g",
               name, what, err);
    return rel;
}

// lse of this rank: (B, H / U, TG), query heads [u H/U, ...), ring-local rows.
static cmp compare_head_lse(const float *ref, const float *lse, int64_t B, int H, int64_t T,
                            const dist_ctx *d, const zigzag_layout *z) {
    cmp c = {0, 0, 0};
    const int U = d->ulysses, Hl = H / U;
    const int64_t TG = z->T_local * U;
    for (int64_t i = 0; i < B * H * T; i++) c.ref = fmax(c.ref, fabs(ref[i]));
    for (int64_t b = 0; b < B; b++)
        for (int hl = 0; hl < Hl; hl++)
            for (int64_t t = 0; t < TG; t++) {
                zigzag_layout zu;  // the ulysses rank that holds ring-local row t
                zigzag_layout_init2(&zu, T, d->ring, U, d->ring_rank, (int)(t / z->T_local));
                int64_t g = zigzag_global_row(&zu, t % z->T_local);
                if (g >= T) continue;
                int h = d->u_rank * Hl + hl;
                double e = fabs((double)lse[(b * Hl + hl) * TG + t] - ref[(b * H + h) * T + g]);
                c.err = fmax(c.err, isnan(e) ? INFINITY : e);
                c.rows++;
            }
    return c;
}

// Returns false when the grid cannot split this case's heads.
static bool run_case(mpi_check *mc, dist_ctx *d, ulysses_attn *u, const attn_case *tc,
                     uint64_t seed) {
    char why[256];
    if (ulysses_check_heads(d->ulysses, tc->H, tc->Hkv, why, sizeof why) != 0) return false;
    const int64_t B = tc->B, T = tc->T;
    const int H = tc->H, Hkv = tc->Hkv, D = tc->D;
    const int64_t qw = (int64_t)H * D, kw = (int64_t)Hkv * D;
    uint64_t rng = seed;
    float *q = random_floats(B * T * qw, &rng), *k = random_floats(B * T * kw, &rng);
    float *v = random_floats(B * T * kw, &rng), *dout = random_floats(B * T * qw, &rng);
    int32_t *seg = tc->packed ? random_segments(B, T, &rng) : NULL;

    attn_shape full = {.B = B, .Tq = T, .Tk = T, .H = H, .Hkv = Hkv, .D = D, .q_start = 0,
                       .k_start = 0, .scale = 1.0f / sqrtf((float)D), .causal = tc->causal};
    float *ref_out = xmalloc(sizeof(float) * (size_t)(B * T * qw));
    float *ref_lse = xmalloc(sizeof(float) * (size_t)(B * H * T));
    float *ref_dq = xcalloc((size_t)(B * T * qw), sizeof(float));
    float *ref_dk = xcalloc((size_t)(B * T * kw), sizeof(float));
    float *ref_dv = xcalloc((size_t)(B * T * kw), sizeof(float));
    attn_forward(ref_out, ref_lse, q, k, v, seg, seg, &full);
    attn_backward(ref_dq, ref_dk, ref_dv, dout, q, k, v, ref_out, ref_lse, seg, seg, &full);

    zigzag_layout z;
    zigzag_layout_init2(&z, T, d->ring, d->ulysses, d->ring_rank, d->u_rank);
    const int64_t TL = z.T_local;
    // Documents must cross a boundary between sp ranks (checked on the first
    // dp group; the others draw other data and may be unlucky).
    if (tc->packed && d->sp > 1 && d->dp_rank == 0) {
        int *owner = xmalloc(sizeof(int) * (size_t)z.T_pad);
        for (int r = 0; r < d->sp; r++) {
            zigzag_layout zr;
            zigzag_layout_init_sp(&zr, T, d->sp, d->ulysses, r);
            for (int64_t i = 0; i < TL; i++) owner[zigzag_global_row(&zr, i)] = r;
        }
        bool crosses = false;
        for (int64_t b = 0; b < B; b++)
            for (int64_t g = 1; g < T; g++)
                crosses |= seg[b * T + g - 1] == seg[b * T + g] && owner[g - 1] != owner[g];
        EXPECT(mc, crosses, "%s: no document crosses a rank boundary", tc->name);
        free(owner);
    }
    float *lq = xmalloc(sizeof(float) * (size_t)(B * TL * qw));
    float *lk = xmalloc(sizeof(float) * (size_t)(B * TL * kw));
    float *lv = xmalloc(sizeof(float) * (size_t)(B * TL * kw));
    float *ldout = xmalloc(sizeof(float) * (size_t)(B * TL * qw));
    zigzag_shard(lq, q, (size_t)qw * sizeof(float), B, &z, NULL);
    zigzag_shard(lk, k, (size_t)kw * sizeof(float), B, &z, NULL);
    zigzag_shard(lv, v, (size_t)kw * sizeof(float), B, &z, NULL);
    zigzag_shard(ldout, dout, (size_t)qw * sizeof(float), B, &z, NULL);
    int32_t *lseg = NULL;
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
    ulysses_attn_stats_reset(u);
    ulysses_attn_forward(u, out, lse, lq, lk, lv, lseg, &rs);
    ulysses_stats st;
    ulysses_attn_stats_get(u, &st);
    ulysses_attn_backward(u, dq, dk, dv, ldout, lq, lk, lv, out, lse, lseg, &rs);

    // The ring on the head subset keeps the zig-zag balance: 2 ring + 1 pairs.
    if (d->ring > 1 && tc->causal)
        EXPECT(mc, st.ring.blocks_computed == B * (2 * d->ring + 1),
               "%s: forward computed %lld pairs, want %lld", tc->name,
               (long long)st.ring.blocks_computed, (long long)(B * (2 * d->ring + 1)));
    // The all-to-alls moved what the analytic count says: (U - 1) / U of
    // q, k, v (kv: Hkvl heads per destination) and out, plus the segment ids.
    const int U = d->ulysses, Hkvl = ulysses_kv_heads_local(U, Hkv);
    int64_t want = (int64_t)(U - 1) * B * TL * D * (2 * (H / U) + 2 * Hkvl) * 4;
    if (lseg) want += (int64_t)(U - 1) * B * TL * 4;
    EXPECT(mc, st.a2a_bytes == want, "%s: all-to-all sent %lld bytes, analytic %lld", tc->name,
           (long long)st.a2a_bytes, (long long)want);

    const int64_t rows = B * T;
    double e[5];
    e[0] = check_rel(mc, "out", compare_rows(ref_out, out, B, qw, &z), rows, false, tc->name, d);
    e[1] = check_rel(mc, "lse", compare_head_lse(ref_lse, lse, B, H, T, d, &z), rows * H, false,
                     tc->name, d);
    e[2] = check_rel(mc, "dq", compare_rows(ref_dq, dq, B, qw, &z), rows, false, tc->name, d);
    e[3] = check_rel(mc, "dk", compare_rows(ref_dk, dk, B, kw, &z), rows, false, tc->name, d);
    e[4] = check_rel(mc, "dv", compare_rows(ref_dv, dv, B, kw, &z), rows, false, tc->name, d);

    // A second backward accumulates: the gradients double.
    float *dk1 = xmalloc(sizeof(float) * (size_t)(B * TL * kw));
    memcpy(dk1, dk, sizeof(float) * (size_t)(B * TL * kw));
    ulysses_attn_backward(u, dq, dk, dv, ldout, lq, lk, lv, out, lse, lseg, &rs);
    double acc_err = 0, acc_ref = 0;
    for (int64_t i = 0; i < B * TL * kw; i++) {
        acc_err = fmax(acc_err, fabs(dk[i] - 2.0 * dk1[i]));
        acc_ref = fmax(acc_ref, fabs(2.0 * dk1[i]));
    }
    double acc_rel = mpi_check_max(acc_err / fmax(acc_ref, 1e-30));
    EXPECT(mc, acc_rel <= 1e-6, "%s: second backward does not accumulate: rel %.3g", tc->name,
           acc_rel);

    if (d->rank == 0)
        printf("dp=%d ring=%d ulysses=%d %-24s T=%3lld T_pad=%3lld rel err: out %.2e lse %.2e "
               "dq %.2e dk %.2e dv %.2e\n", d->dp, d->ring, d->ulysses, tc->name, (long long)T,
               (long long)z.T_pad, e[0], e[1], e[2], e[3], e[4]);

    free(dk1);
    free(out), free(lse), free(dq), free(dk), free(dv);
    free(lq), free(lk), free(lv), free(ldout), free(lseg);
    free(ref_out), free(ref_lse), free(ref_dq), free(ref_dk), free(ref_dv);
    free(q), free(k), free(v), free(dout), free(seg);
    return true;
}

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    mpi_check mc = {.rank = d.rank};
    char err[256];
    int ran = 0, skipped = 0;
    for (int dp = 1; dp <= d.size; dp++) {
        if (d.size % dp) continue;
        for (int ring = 1; ring <= d.size / dp; ring++) {
            if ((d.size / dp) % ring) continue;
            int uly = d.size / dp / ring;
            if (dist_init_grid3(&d, dp, ring, uly, err, sizeof err) != 0) die("%s", err);
            ulysses_attn *u = ulysses_attn_create(&d);  // one workspace for every case
            for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
                bool ok = run_case(&mc, &d, u, &CASES[c], 1234 + 7919 * (uint64_t)(c + 100 * d.dp_rank));
                ran += ok;
                skipped += !ok;
            }
            ulysses_attn_free(u);
        }
    }
    if (d.rank == 0) printf("%d case x grid runs, %d skipped (heads not divisible)\n", ran, skipped);
    EXPECT(&mc, ran > 0, "no case ran");
    int rc = mpi_check_finish(&mc, "ulysses_attn");
    dist_finalize(&d);
    return rc;
}
