// The GPU Ulysses attention and the ring x ulysses hybrid (ulysses_cuda.c,
// through backend_comm's attention hook as train.c gets it) against one rank.
//   usage: gpu_test_gpu_ulysses [nccl|mpi|auto] [RING] [CUT]
//   The world is ring RING (default 1) x ulysses (ranks / RING); sequences
//   of T = GT - CUT tokens (GT 128, 48 under the emulator; CUT default 0; a
//   T that is not a multiple of 2 x ring x ulysses is padded by
//   zigzag_shard_batch, the padding its own document). Rank 0 runs
//   the tiny model on the whole batch on its GPU (the 1-rank reference);
//   every rank then runs it on its rows (zigzag_layout_init_sp: ring-local
//   zig-zag chunks split over the u ranks) with the GPU attention hook and
//   the bucketed gradient all-reduce of gpu_comm. Loss and every gradient
//   tensor (worst per-tensor relative L2) must match the reference: fp32
//   1e-5, bf16 3e-2 (bf16 activations, block merges in another order).
//   Model: head dim 64, max(2, ulysses) query heads (dim 64 x heads) and 1
//   kv head (GQA: the kv head is replicated on every u rank and their dK/dV
//   are summed), then (real GPU only) 2 kv heads (ulysses 2: one per u
//   rank; ulysses 4: each replicated on 2 u ranks). Batch:
//   2 sequences of packed documents (gpu_check.h) that cross every chunk
//   boundary of 2 and 4 ranks.
// tests/gpu/test_gpu_ulysses.sh runs it on a GPU machine (ranks sharing the
// GPU over mpi; over nccl when there are GPUs for every rank);
// tests/gpu/emu/test_emu_ulysses.sh on emulated GPUs. Exit 77 without a GPU.
#include "backend.h"
#include "backend_comm.h"
#include "dist.h"
#include "gpu_check.h"
#include "gpu_comm.h"
#include "gpu_mpi.h"
#include "zigzag.h"

static int failures = 0;
static int rank_ = 0;

static void grad_ready(void *ctx, int64_t lo) { backend_comm_grad_ready(ctx, lo); }

static void model_check(backend *bk, dist_ctx *d, int kind, int n_kv_heads, const gpu_batch *x) {
    const bool bf16 = bk->dt == BK_BF16;
    model_config cfg = gpu_tiny_config_of(64, false);
    cfg.n_heads = d->ulysses > 2 ? d->ulysses : 2;  // ulysses must divide the heads
    cfg.dim = cfg.n_heads * cfg.head_dim;
    cfg.n_kv_heads = n_kv_heads;
    char err[256];
    backend_comm *c = backend_comm_create(bk, d, kind, err, sizeof err);
    if (!c) dist_exit_user_error(d, err);

    // Reference on rank 0: the whole batch, no hook.
    model *ref = NULL;
    double ref_loss = 0;
    if (d->rank == 0) {
        ref = model_create_on(&cfg, GB * x->b.T, false, bk);
        model_init_weights(ref, 11);
        model_zero_grads(ref);
        ref_loss = model_forward_backward(ref, &x->b, 1.0f / (float)x->n_targets);
        model_pull_grads(ref);
    }

    const int64_t T = x->b.T;
    zigzag_layout z;
    zigzag_layout_init_sp(&z, T, d->sp, d->ulysses, d->sp_rank);
    const int64_t TL = z.T_local, n = GB * TL;
    int32_t *tok = malloc(sizeof(int32_t) * n), *tgt = malloc(sizeof(int32_t) * n);
    int32_t *pos = malloc(sizeof(int32_t) * n), *seg = malloc(sizeof(int32_t) * n);
    zigzag_shard_batch(tok, tgt, pos, seg, x->tokens, x->targets, x->pos, x->seg, GB, &z, 0);
    model *m = model_create_on(&cfg, n, true, bk);
    model_init_weights(m, 11);
    model_attention att = backend_comm_ring_attention(c);
    model_set_attention(m, &att);
    model_batch mb = {.B = GB, .T = TL, .tokens = tok, .targets = tgt, .pos = pos, .seg = seg};
    model_zero_grads(m);
    backend_comm_grad_begin(c, m->dgrads, m->n_params);
    m->grad_hook = (model_grad_hook){.ready = grad_ready, .ctx = c};
    double loss = model_forward_backward(m, &mb, 1.0f / (float)x->n_targets);
    m->grad_hook = (model_grad_hook){0};
    backend_comm_grad_end(c);
    dist_allreduce_sum_double(d, &loss, 1);
    model_pull_grads(m);

    if (d->rank == 0) {
        int which;
        double rel = gpu_worst_rel_l2(m, m->grads, ref->grads, &which);
        double lrel = fabs(loss - ref_loss) / fabs(ref_loss);
        const double tol = bf16 ? 3e-2 : 1e-5;
        printf("%s ring %d x ulysses %d over %s, %d heads / %d kv heads, T %lld (padded %lld): "
               "loss %.6f vs %.6f (rel %.2e), worst gradient rel L2 %.2e (%s)\n",
               bf16 ? "bf16" : "fp32", d->ring, d->ulysses, backend_comm_name(c), cfg.n_heads,
               cfg.n_kv_heads, (long long)T, (long long)z.T_pad, loss / x->n_targets, ref_loss / x->n_targets, lrel, rel,
               which >= 0 ? m->tensors[which].name : "-");
        fflush(stdout);
        GPU_EXPECT(lrel < tol, "loss rel error %.3e", lrel);
        GPU_EXPECT(rel < tol, "gradient rel error %.3e", rel);
        model_free(ref);
    }
    model_free(m);
    backend_comm_free(c);
    free(tok); free(tgt); free(pos); free(seg);
}

// The first T tokens of every sequence of x (T <= GT: a length that needs
// padding to a multiple of 2 x ring x ulysses); the last one predicts nothing.
static void cut_batch(gpu_batch *y, const gpu_batch *x, int64_t T) {
    *y = *x;
    y->n_targets = 0;
    for (int64_t b = 0; b < GB; b++)
        for (int64_t t = 0; t < T; t++) {
            int64_t i = b * T + t, j = b * GT + t;
            y->tokens[i] = x->tokens[j];
            y->pos[i] = x->pos[j];
            y->seg[i] = x->seg[j];
            y->targets[i] = t == T - 1 ? -1 : x->targets[j];
            y->n_targets += y->targets[i] >= 0;
        }
    y->b = (model_batch){.B = GB, .T = T, .tokens = y->tokens, .targets = y->targets,
                         .pos = y->pos, .seg = y->seg};
}

int main(int argc, char **argv) {
    dist_ctx d;
    if (!gpu_mpi_begin(&d, &argc, &argv)) return 77;
    rank_ = d.rank;
    int kind = gpu_mpi_transport(argc, argv, 0);
    int ring = argc > 2 ? atoi(argv[2]) : 1;
    char err[256];
    if (ring < 1 || d.size % ring != 0) {
        snprintf(err, sizeof err, "ring %d does not divide %d ranks", ring, d.size);
        dist_exit_user_error(&d, err);
    }
    if (dist_init_grid3(&d, 1, ring, d.size / ring, err, sizeof err) != 0) dist_exit_user_error(&d, err);
    int64_t T = GT - (argc > 3 ? atoll(argv[3]) : 0);
    if (T < 2 || T > GT) {
        snprintf(err, sizeof err, "CUT %s leaves T %lld outside [2, %d]", argv[3], (long long)T, GT);
        dist_exit_user_error(&d, err);
    }
    static gpu_batch whole, x;
    gpu_make_batch(&whole, 777u);
    cut_batch(&x, &whole, T);
#ifdef STRETCH_GPU_EMU
    const int n_kv_cases = 1;  // the emulator is slow: the replicated case only
#else
    const int n_kv_cases = 2;
#endif
    for (int kv = 1; kv <= n_kv_cases; kv++)
        for (int dt = 0; dt < 2; dt++) {
            backend *bk = gpu_mpi_backend(&d, dt ? BK_BF16 : BK_F32);
            model_check(bk, &d, kind, kv, &x);
            backend_free(bk);
        }
    return gpu_mpi_end(&d, failures);
}
