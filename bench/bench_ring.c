// bench_ring: the distributed benchmarks of sequence parallelism (issue 5).
// bench/ring.sh runs every part under mpirun at 1, 2 and 4 ranks and prints
// one table; each run prints "ring <part> key=value ..." lines on rank 0.
//
//   mpirun -n SP bench_ring mem      per-rank memory of a training step, dp 1 x sp SP
//   mpirun -n SP bench_ring overlap  ring attention: with overlap, compute-only, comm-only
//   bench_ring balance               zig-zag vs contiguous split, one process, no MPI
//   mpirun -n N bench_ring speed --dp DP --sp SP   tokens/s of a training step
//
// Options: --seq T --batch B --layers L --dim C --heads H --kv-heads Hkv
// --head-dim D --ffn F --vocab V --steps S --reps R --dp --sp. Defaults: the
// model L=2 C=128 H=4 Hkv=2 D=32 F=384 V=512; mem one sequence of T=8192;
// overlap T=2048 with H=Hkv=8, D=64 (MHA: blocks big enough for the transfers
// to show), 11 reps; balance T=8192, 5 reps; speed B=2 x T=2048, 5 steps.
//
// mem: peak RSS growth of one forward + backward + gradient all-reduce (the
//   peak is reset through /proc/self/clear_refs after MPI starts), and the
//   bytes the model and the ring allocate (mallinfo2 differences; not
//   meaningful under AddressSanitizer, which replaces malloc).
// overlap: per rank, ring_attn_forward/backward as implemented; the same
//   block-kernel calls with no communication (this rank's own K/V stand in
//   for the blocks that would arrive); the same dist_ring_shift transfers with
//   no compute. Per run the ring's time is its slowest rank's; of --reps
//   runs the best is kept.
// balance: each rank's attention work (forward + backward pair calls) run
//   alone with all threads, for the zig-zag split (chunks r and 2sp-1-r) and
//   a contiguous one (rank r holds chunk r of sp), causal; also the exact
//   ratio of visible (query, key) entries.
// speed: zero grads, forward + backward, gradient and loss all-reduce, AdamW;
//   the median step time over --steps steps after one warm-up step.
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adamw.h"
#include "attn.h"
#include "die.h"
#include "dist.h"
#include "model.h"
#include "model_sp_attn.h"
#include "ring_attn.h"
#include "zigzag.h"

typedef struct {
    const char *part;
    int64_t seq, batch;
    int layers, dim, heads, kv_heads, head_dim, ffn, vocab;
    int dp, sp, steps, reps;
} opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill_uniform(float *x, int64_t n, uint64_t seed) {
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(st >> 40) / 16777216.0 * 2.0 - 1.0);
    }
}

static float *rand_floats(int64_t n, uint64_t seed) {
    float *x = xmalloc(sizeof(float) * (size_t)n);
    fill_uniform(x, n, seed);
    return x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static double max_of(const double *x, int n) {
    double m = x[0];
    for (int i = 1; i < n; i++) m = fmax(m, x[i]);
    return m;
}

static double min_of(const double *x, int n) {
    double m = x[0];
    for (int i = 1; i < n; i++) m = fmin(m, x[i]);
    return m;
}

// all (d->size) <- every rank's `mine`, in rank order.
static void gather(dist_ctx *d, double *all, double mine) {
    for (int i = 0; i < d->size; i++) all[i] = 0.0;
    all[d->rank] = mine;
    dist_allreduce_sum_double(d, all, d->size);
}

static double gather_max(dist_ctx *d, double mine) {
    double *all = xmalloc(sizeof(double) * (size_t)d->size);
    gather(d, all, mine);
    double m = max_of(all, d->size);
    free(all);
    return m;
}

// ---------------------------------------------------------------------------
// Memory probes

// A field of /proc/self/status in bytes ("VmHWM", "VmRSS"); -1 if missing.
static double status_bytes(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') v = 1024.0 * atof(line + n + 1);
    fclose(f);
    return v;
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false if not possible.
static bool reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

// Bytes currently allocated through malloc (heap and mmap'd chunks).
static double heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
}

// ---------------------------------------------------------------------------
// The small model and its batches

// "L2-C128-H4/2-D32-F384-V512": the model of the mem and speed parts, one token.
static const char *model_name(const opts *o, char *buf, size_t len) {
    snprintf(buf, len, "L%d-C%d-H%d/%d-D%d-F%d-V%d", o->layers, o->dim, o->heads, o->kv_heads,
             o->head_dim, o->ffn, o->vocab);
    return buf;
}

static model_config model_cfg(const opts *o) {
    model_config c = {.dim = o->dim, .n_layers = o->layers, .n_heads = o->heads,
                      .n_kv_heads = o->kv_heads, .head_dim = o->head_dim, .ffn_dim = o->ffn,
                      .vocab_size = o->vocab, .norm_eps = 1e-5f, .rope_layout = ROPE_LAYOUT_HALF};
    c.rope = rope_config_default(o->head_dim);
    c.rope.max_position_embeddings = (int)o->seq;
    return c;
}

// This rank's rows of a global (B, T) batch of random tokens (one document
// per sequence): sequences of dp group dp_rank, zig-zag slice sp_rank.
typedef struct {
    int32_t *tokens, *targets, *pos;  // (rows, TL)
    int64_t rows, TL, n_targets;      // n_targets: local targets >= 0
    model_batch mb;
} local_batch;

static void local_batch_init(local_batch *lb, const opts *o, int dp, int dp_rank, int sp,
                             int sp_rank, int vocab) {
    const int64_t B = o->batch, T = o->seq;
    CHECK(B % dp == 0);
    int32_t *tok = xmalloc(sizeof(int32_t) * (size_t)(B * T));
    int32_t *tgt = xmalloc(sizeof(int32_t) * (size_t)(B * T));
    int32_t *pos = xmalloc(sizeof(int32_t) * (size_t)(B * T));
    uint64_t st = 12345;
    for (int64_t n = 0; n < B * T; n++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        tok[n] = (int32_t)((st >> 33) % (uint64_t)vocab);
        pos[n] = (int32_t)(n % T);
    }
    for (int64_t n = 0; n < B * T; n++) tgt[n] = n % T == T - 1 ? -1 : tok[n + 1];

    zigzag_layout z;
    zigzag_layout_init(&z, T, sp, sp_rank);
    lb->rows = B / dp;
    lb->TL = sp > 1 ? z.T_local : T;
    size_t n = (size_t)(lb->rows * lb->TL);
    lb->tokens = xmalloc(n * sizeof(int32_t));
    lb->targets = xmalloc(n * sizeof(int32_t));
    lb->pos = xmalloc(n * sizeof(int32_t));
    const int64_t off = dp_rank * lb->rows * T;
    if (sp > 1) {
        zigzag_shard_batch(lb->tokens, lb->targets, lb->pos, NULL, tok + off, tgt + off,
                           pos + off, NULL, lb->rows, &z, 0);
    } else {
        memcpy(lb->tokens, tok + off, n * sizeof(int32_t));
        memcpy(lb->targets, tgt + off, n * sizeof(int32_t));
        memcpy(lb->pos, pos + off, n * sizeof(int32_t));
    }
    lb->n_targets = 0;
    for (size_t i = 0; i < n; i++) lb->n_targets += lb->targets[i] >= 0;
    lb->mb = (model_batch){.B = lb->rows, .T = lb->TL, .tokens = lb->tokens,
                           .targets = lb->targets, .pos = lb->pos, .seg = NULL};
    free(tok);
    free(tgt);
    free(pos);
}

static void local_batch_free(local_batch *lb) {
    free(lb->tokens);
    free(lb->targets);
    free(lb->pos);
}

static void init_grid(dist_ctx *d, int dp, int sp) {
    char err[256];
    if (dist_init_grid(d, dp, sp, err, sizeof err) != 0) dist_exit_user_error(d, err);
}

// ---------------------------------------------------------------------------
// mem: per-rank memory of a training step at dp 1 x sp = ranks

static void run_mem(dist_ctx *d, const opts *o) {
    init_grid(d, 1, d->size);
    model_config cfg = model_cfg(o);
    local_batch lb;
    local_batch_init(&lb, o, 1, 0, d->sp, d->sp_rank, cfg.vocab_size);

    dist_barrier(d);
    bool reset = reset_peak_rss();
    const double rss0 = status_bytes("VmRSS"), heap0 = heap_bytes();
    model *m = model_create(&cfg, lb.rows * lb.TL, false);
    const double heap1 = heap_bytes();
    const double pg_bytes = 2.0 * sizeof(float) * (double)m->n_params;
    model_init_weights(m, 7);
    ring_attn *ring = ring_attn_create(d);
    model_attention att = model_ring_attention(ring);
    model_set_attention(m, &att);

    int64_t count = lb.n_targets;
    dist_allreduce_sum_int64(d, &count, 1);
    model_zero_grads(m);
    dist_barrier(d);
    double t0 = now_s();
    double loss = model_forward_backward(m, &lb.mb, 1.0f / (float)count);
    dist_allreduce_grads(d, m->grads, m->n_params);
    dist_allreduce_sum_double(d, &loss, 1);
    double step_s = now_s() - t0;
    const double heap2 = heap_bytes(), hwm = status_bytes("VmHWM");

    // Worst rank of each quantity (they differ by little: same shapes).
    double act = gather_max(d, heap1 - heap0 - pg_bytes);  // model activation buffers
    double ring_b = gather_max(d, heap2 - heap1);          // ring buffers kept after the step
    double peak = gather_max(d, hwm - rss0);               // RSS growth, create + step
    step_s = gather_max(d, step_s);
    const double MiB = 1024.0 * 1024.0;
    char name[128];
    if (d->rank == 0)
        printf("ring mem model=%s sp=%d T=%lld T_local=%lld params_grads_mib=%.1f "
               "act_alloc_mib=%.1f ring_alloc_mib=%.1f peak_mib=%.1f step_s=%.3f loss=%.6f "
               "peak_reset=%d\n",
               model_name(o, name, sizeof name), d->sp, (long long)o->seq, (long long)lb.TL,
               pg_bytes / MiB, act / MiB, ring_b / MiB, peak / MiB, step_s,
               loss / (double)count, reset);
    ring_attn_free(ring);
    model_free(m);
    local_batch_free(&lb);
}

// ---------------------------------------------------------------------------
// overlap: ring attention with overlap vs compute-only vs comm-only

// Tensors of one rank, (B, TL, H, D) / (B, TL, Hkv, D) / (B, H, TL).
typedef struct {
    float *q, *k, *v, *out, *lse, *dout, *dq, *dk, *dv;
    float *lse_pairs, *delta;  // (B, H, TL) scratch of the compute-only replica
    float *acc[4];             // (B, TL, Hkv, D) its dK, dV computed; dK, dV arrived
    float *xk[2], *xv[2], *xdk[2], *xdv[2];  // (B, TL, Hkv, D) buffers of the comm-only one
} ring_bufs;

static attn_shape pair_shape(const ring_shape *s, int64_t Tc, int64_t q_start, int64_t k_start) {
    return (attn_shape){.B = 1, .Tq = Tc, .Tk = Tc, .H = s->H, .Hkv = s->Hkv, .D = s->D,
                        .q_start = q_start, .k_start = k_start, .scale = s->scale,
                        .causal = s->causal};
}

// The block-kernel work of ring_attn_forward on sp rank `me`, without any
// communication: the same (query chunk, key chunk) calls in the same order,
// this rank's own K/V standing in for the blocks that would arrive.
static void compute_only_forward(ring_bufs *x, const ring_shape *s, int sp, int me) {
    const int64_t Tc = s->T_local / 2, qw = (int64_t)s->H * s->D, kw = (int64_t)s->Hkv * s->D;
    const int64_t n_lse = s->B * s->H * s->T_local;
    memset(x->out, 0, sizeof(float) * (size_t)(s->B * s->T_local * qw));
    for (int64_t i = 0; i < n_lse; i++) x->lse_pairs[i] = -INFINITY;
    for (int step = 0; step < sp; step++) {
        int src = (me - step + sp) % sp;
        for (int64_t b = 0; b < s->B; b++)
            for (int qc = 0; qc < 2; qc++)
                for (int kc = 0; kc < 2; kc++) {
                    int64_t q_start = zigzag_chunk_index(sp, me, qc) * Tc;
                    int64_t k_start = zigzag_chunk_index(sp, src, kc) * Tc;
                    if (s->causal && k_start > q_start + Tc - 1) continue;
                    int64_t qr = b * s->T_local + qc * Tc, kr = b * s->T_local + kc * Tc;
                    attn_shape sh = pair_shape(s, Tc, q_start, k_start);
                    attn_block_forward(x->out + qr * qw, x->lse_pairs + (2 * b + qc) * s->H * Tc,
                                       x->q + qr * qw, x->k + kr * kw, x->v + kr * kw, NULL,
                                       NULL, &sh);
                }
    }
    memcpy(x->lse, x->lse_pairs, sizeof(float) * (size_t)n_lse);  // the layout change
}

static void add_into(float *restrict y, const float *restrict x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

// The same for ring_attn_backward: delta, the pair calls into a zeroed dK/dV
// accumulator per step, the accumulator adds the ring does on arrival.
static void compute_only_backward(ring_bufs *x, const ring_shape *s, int sp, int me) {
    const int64_t Tc = s->T_local / 2, qw = (int64_t)s->H * s->D, kw = (int64_t)s->Hkv * s->D;
    const int64_t n_kv = s->B * s->T_local * kw;
    memcpy(x->lse_pairs, x->lse, sizeof(float) * (size_t)(s->B * s->H * s->T_local));
    for (int64_t b = 0; b < s->B; b++)
        for (int c = 0; c < 2; c++) {
            int64_t row = b * s->T_local + c * Tc;
            attn_backward_delta(x->delta + (2 * b + c) * s->H * Tc, x->dout + row * qw,
                                x->out + row * qw, 1, Tc, s->H, s->D);
        }
    for (int step = 0; step < sp; step++) {
        int src = (me - step + sp) % sp;
        float *dk = x->acc[0], *dv = x->acc[1];
        memset(dk, 0, sizeof(float) * (size_t)n_kv);
        memset(dv, 0, sizeof(float) * (size_t)n_kv);
        for (int64_t b = 0; b < s->B; b++)
            for (int qc = 0; qc < 2; qc++)
                for (int kc = 0; kc < 2; kc++) {
                    int64_t q_start = zigzag_chunk_index(sp, me, qc) * Tc;
                    int64_t k_start = zigzag_chunk_index(sp, src, kc) * Tc;
                    if (s->causal && k_start > q_start + Tc - 1) continue;
                    int64_t qr = b * s->T_local + qc * Tc, kr = b * s->T_local + kc * Tc;
                    int64_t p = (2 * b + qc) * s->H * Tc;
                    attn_shape sh = pair_shape(s, Tc, q_start, k_start);
                    attn_block_backward(x->dq + qr * qw, dk + kr * kw, dv + kr * kw,
                                        x->dout + qr * qw, x->q + qr * qw, x->k + kr * kw,
                                        x->v + kr * kw, x->lse_pairs + p, x->delta + p, NULL,
                                        NULL, &sh);
                }
        if (step > 0) {  // into the accumulators that arrived
            add_into(x->acc[2], dk, n_kv);
            add_into(x->acc[3], dv, n_kv);
        }
    }
    add_into(x->dk, x->acc[2], n_kv);
    add_into(x->dv, x->acc[3], n_kv);
}

// The transfers of ring_attn_forward alone: sp - 1 shifts of (K, V), each
// passing on the block that arrived at the step before.
static void comm_only_forward(ring_bufs *x, dist_ctx *d, const ring_shape *s) {
    const int64_t n_kv = s->B * s->T_local * s->Hkv * s->D;
    const float *k = x->k, *v = x->v;
    for (int step = 0; step + 1 < d->sp; step++) {
        dist_xfer t = {0};
        dist_ring_shift(&t, d, x->xk[step % 2], k, n_kv, DIST_F32, 1);
        dist_ring_shift(&t, d, x->xv[step % 2], v, n_kv, DIST_F32, 2);
        dist_xfer_wait(&t);
        k = x->xk[step % 2];
        v = x->xv[step % 2];
    }
}

// Those of ring_attn_backward: sp - 1 shifts of (K, V) and sp of (dK, dV),
// the accumulator shift of one step in flight with the K/V shift of the next.
// Returns the seconds of the last (dK, dV) shift, which the ring posts after
// its last block: nothing is left to overlap it with.
static double comm_only_backward(ring_bufs *x, dist_ctx *d, const ring_shape *s) {
    const int64_t n_kv = s->B * s->T_local * s->Hkv * s->D;
    const float *k = x->k, *v = x->v;
    dist_xfer acc = {0};
    double t_last = 0;
    for (int step = 0; step < d->sp; step++) {
        dist_xfer kv = {0};
        if (step + 1 < d->sp) {
            dist_ring_shift(&kv, d, x->xk[step % 2], k, n_kv, DIST_F32, 1);
            dist_ring_shift(&kv, d, x->xv[step % 2], v, n_kv, DIST_F32, 2);
        }
        dist_xfer_wait(&acc);  // the previous accumulators have arrived and left
        if (step + 1 == d->sp) t_last = now_s();
        int send = step % 2, recv = (step + 1) % 2;
        dist_ring_shift(&acc, d, x->xdk[recv], x->xdk[send], n_kv, DIST_F32, 4);
        dist_ring_shift(&acc, d, x->xdv[recv], x->xdv[send], n_kv, DIST_F32, 5);
        dist_xfer_wait(&kv);
        k = x->xk[step % 2];
        v = x->xv[step % 2];
    }
    dist_xfer_wait(&acc);
    return now_s() - t_last;
}

enum { OV_FWD, OV_BWD, CO_FWD, CO_BWD, CM_FWD, CM_BWD, CM_LAST, RS_COMPUTE, RS_WAIT, N_TIMES };

static void run_overlap(dist_ctx *d, const opts *o) {
    init_grid(d, 1, d->size);
    const int sp = d->sp, me = d->sp_rank;
    zigzag_layout z;
    zigzag_layout_init(&z, o->seq, sp, me);
    ring_shape s = {.B = o->batch, .T_local = sp > 1 ? z.T_local : o->seq, .H = o->heads,
                    .Hkv = o->kv_heads, .D = o->head_dim,
                    .scale = 1.0f / sqrtf((float)o->head_dim), .causal = true};
    const int64_t nq = s.B * s.T_local * s.H * s.D, nkv = s.B * s.T_local * s.Hkv * s.D;
    const int64_t nl = s.B * s.H * s.T_local;
    const uint64_t seed = 100 + 10 * (uint64_t)d->rank;
    ring_bufs x = {.q = rand_floats(nq, seed), .k = rand_floats(nkv, seed + 1),
                   .v = rand_floats(nkv, seed + 2), .dout = rand_floats(nq, seed + 3),
                   .out = xmalloc(sizeof(float) * nq), .lse = xmalloc(sizeof(float) * nl),
                   .dq = xcalloc(nq, sizeof(float)), .dk = xcalloc(nkv, sizeof(float)),
                   .dv = xcalloc(nkv, sizeof(float)), .lse_pairs = xmalloc(sizeof(float) * nl),
                   .delta = xmalloc(sizeof(float) * nl)};
    for (int i = 0; i < 4; i++) x.acc[i] = xcalloc(nkv, sizeof(float));
    for (int i = 0; i < 2; i++) {
        x.xk[i] = xmalloc(sizeof(float) * nkv);
        x.xv[i] = xmalloc(sizeof(float) * nkv);
        x.xdk[i] = xcalloc(nkv, sizeof(float));
        x.xdv[i] = xcalloc(nkv, sizeof(float));
    }
    ring_attn *ring = ring_attn_create(d);
    ring_attn_forward(ring, x.out, x.lse, x.q, x.k, x.v, NULL, &s);  // warm-up
    ring_attn_backward(ring, x.dq, x.dk, x.dv, x.dout, x.q, x.k, x.v, x.out, x.lse, NULL, &s);

    const int R = o->reps;
    double *t = xcalloc((size_t)(N_TIMES * R), sizeof(double));  // (N_TIMES, R)
    for (int r = 0; r < R; r++) {
        ring_attn_stats_reset(ring);
        dist_barrier(d);
        double t0 = now_s();
        ring_attn_forward(ring, x.out, x.lse, x.q, x.k, x.v, NULL, &s);
        double t1 = now_s();
        ring_attn_backward(ring, x.dq, x.dk, x.dv, x.dout, x.q, x.k, x.v, x.out, x.lse, NULL, &s);
        double t2 = now_s();
        t[OV_FWD * R + r] = t1 - t0;
        t[OV_BWD * R + r] = t2 - t1;
        ring_attn_stats st;
        ring_attn_stats_get(ring, &st);
        t[RS_COMPUTE * R + r] = st.compute_s;
        t[RS_WAIT * R + r] = st.wait_s;

        dist_barrier(d);
        t0 = now_s();
        compute_only_forward(&x, &s, sp, me);
        t1 = now_s();
        compute_only_backward(&x, &s, sp, me);
        t2 = now_s();
        t[CO_FWD * R + r] = t1 - t0;
        t[CO_BWD * R + r] = t2 - t1;

        dist_barrier(d);
        t0 = now_s();
        comm_only_forward(&x, d, &s);
        t1 = now_s();
        t[CM_LAST * R + r] = comm_only_backward(&x, d, &s);
        t2 = now_s();
        t[CM_FWD * R + r] = t1 - t0;
        t[CM_BWD * R + r] = t2 - t1;
    }
    // Per run the ring's time is its slowest rank's; of the runs, the best
    // (other jobs on the machine only ever add time).
    double ring_time[N_TIMES];
    for (int i = 0; i < N_TIMES; i++) {
        ring_time[i] = INFINITY;
        for (int r = 0; r < R; r++) ring_time[i] = fmin(ring_time[i], gather_max(d, t[i * R + r]));
    }
    double mib = sizeof(float) * (double)nkv / (1024.0 * 1024.0);
    if (d->rank == 0) {
        const char *name[3] = {"fwd", "bwd", "all"};
        for (int p = 0; p < 3; p++) {
            double ov = p < 2 ? ring_time[OV_FWD + p] : ring_time[OV_FWD] + ring_time[OV_BWD];
            double co = p < 2 ? ring_time[CO_FWD + p] : ring_time[CO_FWD] + ring_time[CO_BWD];
            double cm = p < 2 ? ring_time[CM_FWD + p] : ring_time[CM_FWD] + ring_time[CM_BWD];
            double hidden = cm > 0 ? 1.0 - (ov - co) / cm : 1.0;
            hidden = fmin(1.0, fmax(0.0, hidden));
            printf("ring overlap sp=%d pass=%s reps=%d T=%lld H=%d Hkv=%d D=%d block_mib=%.2f "
                   "overlap_ms=%.1f compute_ms=%.1f comm_ms=%.1f hidden=%.2f\n",
                   sp, name[p], R, (long long)o->seq, s.H, s.Hkv, s.D, mib, 1e3 * ov, 1e3 * co,
                   1e3 * cm, hidden);
        }
        // The same share from the ring's own counters: of the transfer time,
        // what the ring spent waiting for transfers after its compute.
        double cm = ring_time[CM_FWD] + ring_time[CM_BWD];
        double hidden_wait = cm > 0 ? fmin(1.0, fmax(0.0, 1.0 - ring_time[RS_WAIT] / cm)) : 1.0;
        printf("ring overlap sp=%d pass=stats kernel_ms=%.1f wait_ms=%.1f hidden_wait=%.2f "
               "last_hop_ms=%.1f\n",
               sp, 1e3 * ring_time[RS_COMPUTE], 1e3 * ring_time[RS_WAIT], hidden_wait,
               1e3 * ring_time[CM_LAST]);
    }
    free(t);
    ring_attn_free(ring);
    float *all[] = {x.q, x.k, x.v, x.out, x.lse, x.dout, x.dq, x.dk, x.dv, x.lse_pairs, x.delta,
                    x.acc[0], x.acc[1], x.acc[2], x.acc[3], x.xk[0],  x.xk[1], x.xv[0],  x.xv[1],
                    x.xdk[0], x.xdk[1], x.xdv[0], x.xdv[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

// ---------------------------------------------------------------------------
// balance: zig-zag vs contiguous split, each rank's share run alone

// Visible (query, key) entries of a causal (Tq rows from q0) x (Tk keys from k0) pair.
static double visible_entries(int64_t q0, int64_t Tq, int64_t k0, int64_t Tk) {
    double n = 0;
    for (int64_t i = 0; i < Tq; i++) {
        int64_t lim = q0 + i - k0 + 1;  // keys k0 .. q0 + i
        n += (double)(lim < 0 ? 0 : lim > Tk ? Tk : lim);
    }
    return n;
}

typedef struct {
    float *q, *k, *v, *out, *dout, *dq, *dk, *dv;  // whole sequence, (1, T, ...)
    float *lse, *delta;                            // (2, H, Tc) this rank's chunks
} seq_bufs;

// One rank holding query chunks starting at q0[0..nq) of Tc rows each, against
// every key chunk of Tc rows the causal mask leaves visible: forward over all
// of them (the final lse), delta, backward. Returns seconds; *work gets the
// visible entries.
static double rank_share(seq_bufs *x, const int64_t *q0, int nq, int64_t Tc, int64_t T, int H,
                         int Hkv, int D, double *work) {
    const int64_t qw = (int64_t)H * D, kw = (int64_t)Hkv * D;
    double t0 = now_s();
    *work = 0;
    for (int c = 0; c < nq; c++) {
        memset(x->out + q0[c] * qw, 0, sizeof(float) * (size_t)(Tc * qw));
        for (int64_t i = 0; i < H * Tc; i++) x->lse[c * H * Tc + i] = -INFINITY;
        for (int64_t k0 = 0; k0 < T; k0 += Tc) {
            if (k0 > q0[c] + Tc - 1) continue;
            attn_shape sh = {.B = 1, .Tq = Tc, .Tk = Tc, .H = H, .Hkv = Hkv, .D = D,
                             .q_start = q0[c], .k_start = k0,
                             .scale = 1.0f / sqrtf((float)D), .causal = true};
            attn_block_forward(x->out + q0[c] * qw, x->lse + c * H * Tc, x->q + q0[c] * qw,
                               x->k + k0 * kw, x->v + k0 * kw, NULL, NULL, &sh);
            *work += visible_entries(q0[c], Tc, k0, Tc);
        }
    }
    for (int c = 0; c < nq; c++) {
        attn_backward_delta(x->delta + c * H * Tc, x->dout + q0[c] * qw, x->out + q0[c] * qw, 1,
                            Tc, H, D);
        for (int64_t k0 = 0; k0 < T; k0 += Tc) {
            if (k0 > q0[c] + Tc - 1) continue;
            attn_shape sh = {.B = 1, .Tq = Tc, .Tk = Tc, .H = H, .Hkv = Hkv, .D = D,
                             .q_start = q0[c], .k_start = k0,
                             .scale = 1.0f / sqrtf((float)D), .causal = true};
            attn_block_backward(x->dq + q0[c] * qw, x->dk + k0 * kw, x->dv + k0 * kw,
                                x->dout + q0[c] * qw, x->q + q0[c] * qw, x->k + k0 * kw,
                                x->v + k0 * kw, x->lse + c * H * Tc, x->delta + c * H * Tc,
                                NULL, NULL, &sh);
        }
    }
    return now_s() - t0;
}

static void run_balance(const opts *o) {
    const int64_t T = o->seq;
    const int H = o->heads, Hkv = o->kv_heads, D = o->head_dim;
    CHECK(T % 8 == 0);
    const int64_t nq = T * H * D, nkv = T * Hkv * D;
    seq_bufs x = {.q = rand_floats(nq, 1), .k = rand_floats(nkv, 2), .v = rand_floats(nkv, 3),
                  .dout = rand_floats(nq, 4), .out = xmalloc(sizeof(float) * nq),
                  .dq = xcalloc(nq, sizeof(float)), .dk = xcalloc(nkv, sizeof(float)),
                  .dv = xcalloc(nkv, sizeof(float)), .lse = xmalloc(sizeof(float) * 2 * H * T),
                  .delta = xmalloc(sizeof(float) * 2 * H * T)};
    for (int sp = 2; sp <= 4; sp *= 2) {
        for (int zig = 0; zig < 2; zig++) {
            double sec[8], work[8];
            for (int r = 0; r < sp; r++) sec[r] = INFINITY, work[r] = 0;
            for (int rep = 0; rep < o->reps; rep++)  // reps interleaved: noise spreads over ranks
                for (int r = 0; r < sp; r++) {
                    int64_t Tc = zig ? T / (2 * sp) : T / sp;
                    int64_t q0[2] = {zig ? zigzag_chunk_index(sp, r, 0) * Tc : r * Tc,
                                     zig ? zigzag_chunk_index(sp, r, 1) * Tc : 0};
                    double t = rank_share(&x, q0, zig ? 2 : 1, Tc, T, H, Hkv, D, &work[r]);
                    sec[r] = fmin(sec[r], t);
                }
            printf("ring balance sp=%d split=%s reps=%d T=%lld H=%d Hkv=%d D=%d max_ms=%.1f "
                   "min_ms=%.1f ratio=%.2f work_ratio=%.2f ranks_ms=",
                   sp, zig ? "zigzag" : "contiguous", o->reps, (long long)T, H, Hkv, D,
                   1e3 * max_of(sec, sp), 1e3 * min_of(sec, sp), max_of(sec, sp) / min_of(sec, sp),
                   max_of(work, sp) / min_of(work, sp));
            for (int r = 0; r < sp; r++) printf("%s%.0f", r ? "," : "", 1e3 * sec[r]);
            printf("\n");
        }
    }
    float *all[] = {x.q, x.k, x.v, x.dout, x.out, x.dq, x.dk, x.dv, x.lse, x.delta};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

// ---------------------------------------------------------------------------
// speed: tokens/s of a training step on a dp x sp grid

static void run_speed(dist_ctx *d, const opts *o) {
    init_grid(d, o->dp, o->sp);
    model_config cfg = model_cfg(o);
    local_batch lb;
    local_batch_init(&lb, o, d->dp, d->dp_rank, d->sp, d->sp_rank, cfg.vocab_size);
    model *m = model_create(&cfg, lb.rows * lb.TL, false);
    model_init_weights(m, 7);
    ring_attn *ring = ring_attn_create(d);
    model_attention att = model_ring_attention(ring);
    model_set_attention(m, &att);
    float *mom = xcalloc((size_t)m->n_params, sizeof(float));
    float *var = xcalloc((size_t)m->n_params, sizeof(float));
    const adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                              .weight_decay = 0.1f};

    double *step_s = xmalloc(sizeof(double) * (size_t)(o->steps + 1));
    double first_loss = 0;
    for (int it = 0; it <= o->steps; it++) {  // step 0: warm-up, not timed
        dist_barrier(d);
        double t0 = now_s();
        int64_t count = lb.n_targets;
        dist_allreduce_sum_int64(d, &count, 1);
        model_zero_grads(m);
        double loss = model_forward_backward(m, &lb.mb, 1.0f / (float)count);
        dist_allreduce_grads(d, m->grads, m->n_params);
        dist_allreduce_sum_double(d, &loss, 1);
        double norm = sqrt(adamw_grad_norm_sq(m->grads, m->n_params));
        adamw_update(m->params, mom, var, m->grads, m->n_params, &hp, it + 1,
                     adamw_clip_factor(norm, 1.0));
        step_s[it] = gather_max(d, now_s() - t0);
        if (it == 0) first_loss = loss / (double)count;
    }
    double med = median(step_s + 1, o->steps);
    double attn_s = gather_max(d, m->timers.attention / (o->steps + 1));
    char name[128];
    if (d->rank == 0)
        printf("ring speed model=%s ranks=%d dp=%d sp=%d B=%lld T=%lld steps=%d step_ms=%.1f "
               "tokens_per_s=%.0f attn_ms=%.1f loss0=%.6f\n",
               model_name(o, name, sizeof name), d->size, d->dp, d->sp, (long long)o->batch,
               (long long)o->seq, o->steps, 1e3 * med, (double)(o->batch * o->seq) / med,
               1e3 * attn_s, first_loss);
    free(step_s);
    free(mom);
    free(var);
    ring_attn_free(ring);
    model_free(m);
    local_batch_free(&lb);
}

// ---------------------------------------------------------------------------

static opts default_opts(const char *part) {
    opts o = {.part = part, .seq = 8192, .batch = 1, .layers = 2, .dim = 128, .heads = 4,
              .kv_heads = 2, .head_dim = 32, .ffn = 384, .vocab = 512, .dp = 1, .sp = 1,
              .steps = 3, .reps = 3};
    if (!strcmp(part, "overlap")) {  // MHA, wide heads: transfers big enough to see
        o.seq = 2048;
        o.heads = o.kv_heads = 8;
        o.head_dim = 64;
        o.reps = 11;
    } else if (!strcmp(part, "speed")) {
        o.seq = 2048;
        o.batch = 2;
        o.steps = 5;
    } else if (!strcmp(part, "balance")) {
        o.reps = 5;
    }
    return o;
}

static void parse(opts *o, int argc, char **argv) {
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i];
        if (i + 1 >= argc) die_user("option %s needs a value", a);
        long long v = atoll(argv[i + 1]);
        if (v <= 0) die_user("option %s: bad value %s", a, argv[i + 1]);
        if (!strcmp(a, "--seq")) o->seq = v;
        else if (!strcmp(a, "--batch")) o->batch = v;
        else if (!strcmp(a, "--layers")) o->layers = (int)v;
        else if (!strcmp(a, "--dim")) o->dim = (int)v;
        else if (!strcmp(a, "--heads")) o->heads = (int)v;
        else if (!strcmp(a, "--kv-heads")) o->kv_heads = (int)v;
        else if (!strcmp(a, "--head-dim")) o->head_dim = (int)v;
        else if (!strcmp(a, "--ffn")) o->ffn = (int)v;
        else if (!strcmp(a, "--vocab")) o->vocab = (int)v;
        else if (!strcmp(a, "--dp")) o->dp = (int)v;
        else if (!strcmp(a, "--sp")) o->sp = (int)v;
        else if (!strcmp(a, "--steps")) o->steps = (int)v;
        else if (!strcmp(a, "--reps")) o->reps = (int)v;
        else die_user("unknown option %s", a);
    }
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "";
    if (strcmp(part, "mem") && strcmp(part, "overlap") && strcmp(part, "balance") &&
        strcmp(part, "speed"))
        die_user("usage: bench_ring mem|overlap|balance|speed [--option value ...]");
    opts o = default_opts(part);
    parse(&o, argc, argv);
    if (!strcmp(part, "balance")) {  // one process, no MPI
        run_balance(&o);
        return 0;
    }
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    if (!strcmp(part, "mem")) run_mem(&d, &o);
    else if (!strcmp(part, "overlap")) run_overlap(&d, &o);
    else run_speed(&d, &o);
    dist_finalize(&d);
    return 0;
}
