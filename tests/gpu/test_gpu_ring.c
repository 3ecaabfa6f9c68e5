// The GPU ring and gradient all-reduce against one rank, over a transport
// (argv[1]: nccl | mpi | auto, default auto).
//   Every rank runs the tiny model on the whole batch on its GPU (the 1-rank
//   reference), then as sp = world size on its zig-zag slice with the GPU
//   ring attention and the bucketed gradient all-reduce of gpu_comm. Loss
//   and every gradient tensor must match the reference: fp32 to 1e-4
//   relative L2 per tensor (block merges sum in another order), bf16 to 3e-2.
//   With one rank (the NCCL path on one GPU): also a ring shift to itself
//   (recv == send, bit for bit) and an all-reduce over 2.5 buckets (sum over
//   one rank = itself, bit for bit).
// tests/gpu/gpu_nccl_mpi.sh runs it with 2 ranks over mpi (ranks sharing a
// GPU) and with 1 rank over nccl. Exit 77 when no GPU is visible.
#include "backend.h"
#include "dist.h"
#include "gpu_check.h"
#include "gpu_comm.h"
#include "gpu_mpi.h"
#include "zigzag.h"

static int failures = 0;
static int rank_ = 0;

static void self_checks(backend *bk, gpu_comm *c, dist_ctx *d) {
    // Ring shift of one rank: the block comes back unchanged.
    const int64_t n = 1 << 20;
    float *h = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) h[i] = (float)sin(0.001 * (double)i) * 3.0f;
    float *send = bk->op->alloc(bk, sizeof(float) * n), *recv = bk->op->alloc(bk, sizeof(float) * n);
    bk->op->to_dev(bk, send, h, sizeof(float) * n);
    memset(back, 0xff, sizeof(float) * n);
    bk->op->to_dev(bk, recv, back, sizeof(float) * n);  // poison
    gpu_xfer x = {0};
    gpu_comm_shift(c, &x, recv, send, n, DIST_F32, 1);
    gpu_comm_wait(c, &x);
    bk->op->to_host(bk, back, recv, sizeof(float) * n);
    GPU_EXPECT(!memcmp(back, h, sizeof(float) * n), "ring shift to itself changed the block");
    bk->op->free(bk, send);
    bk->op->free(bk, recv);
    free(h);
    free(back);

    // All-reduce over 2.5 buckets, started in two halves.
    const int64_t g = 5 * (int64_t)DIST_BUCKET_FLOATS / 2;
    float *hg = malloc(sizeof(float) * g), *out = malloc(sizeof(float) * g);
    for (int64_t i = 0; i < g; i++) hg[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    float *dg = bk->op->alloc(bk, sizeof(float) * g);
    bk->op->to_dev(bk, dg, hg, sizeof(float) * g);
    gpu_comm_grad_begin(c, dg, g);
    gpu_comm_grad_ready(c, g / 2);
    gpu_comm_grad_end(c);
    bk->op->to_host(bk, out, dg, sizeof(float) * g);
    for (int64_t i = 0; i < g; i++) hg[i] *= (float)d->size;
    GPU_EXPECT(!memcmp(out, hg, sizeof(float) * g), "all-reduce over one rank changed the gradients");
    bk->op->free(bk, dg);
    free(hg);
    free(out);
}

static void grad_ready(void *ctx, int64_t lo) { gpu_comm_grad_ready(ctx, lo); }

static void model_check(backend *bk, gpu_comm *c, dist_ctx *d, const gpu_batch *x) {
    const bool bf16 = bk->dt == BK_BF16;
    model_config cfg = gpu_tiny_config();
    // Reference: the whole batch on this rank's GPU.
    model *ref = model_create_on(&cfg, GB * GT, false, bk);
    model_init_weights(ref, 11);
    model_zero_grads(ref);
    double ref_loss = model_forward_backward(ref, &x->b, 1.0f / (float)x->n_targets);
    model_pull_grads(ref);

    // The ring: this rank's zig-zag rows.
    zigzag_layout z;
    zigzag_layout_init(&z, GT, d->sp, d->sp_rank);
    const int64_t TL = d->sp > 1 ? z.T_local : GT, n = GB * TL;
    int32_t *tok = malloc(sizeof(int32_t) * n), *tgt = malloc(sizeof(int32_t) * n);
    int32_t *pos = malloc(sizeof(int32_t) * n), *seg = malloc(sizeof(int32_t) * n);
    if (d->sp > 1) {
        zigzag_shard_batch(tok, tgt, pos, seg, x->tokens, x->targets, x->pos, x->seg, GB, &z, 0);
    } else {
        memcpy(tok, x->tokens, sizeof(int32_t) * n);
        memcpy(tgt, x->targets, sizeof(int32_t) * n);
        memcpy(pos, x->pos, sizeof(int32_t) * n);
        memcpy(seg, x->seg, sizeof(int32_t) * n);
    }
    model *m = model_create_on(&cfg, n, true, bk);
    model_init_weights(m, 11);
    model_attention att = gpu_ring_attention(c);
    model_set_attention(m, &att);
    model_batch mb = {.B = GB, .T = TL, .tokens = tok, .targets = tgt, .pos = pos, .seg = seg};
    model_zero_grads(m);
    gpu_comm_grad_begin(c, m->dgrads, m->n_params);
    m->grad_hook = (model_grad_hook){.ready = grad_ready, .ctx = c};
    double loss = model_forward_backward(m, &mb, 1.0f / (float)x->n_targets);
    m->grad_hook = (model_grad_hook){0};
    gpu_comm_grad_end(c);
    dist_allreduce_sum_double(d, &loss, 1);
    model_pull_grads(m);

    int which;
    double rel = gpu_worst_rel_l2(m, m->grads, ref->grads, &which);
    double lrel = fabs(loss - ref_loss) / fabs(ref_loss);
    const double tol = bf16 ? 3e-2 : 1e-4;
    if (d->rank == 0)
        printf("%s sp %d over %s: loss %.6f vs %.6f (rel %.2e), worst gradient rel L2 %.2e (%s)\n",
               bf16 ? "bf16" : "fp32", d->sp, gpu_comm_name(c), loss / x->n_targets,
               ref_loss / x->n_targets, lrel, rel, which >= 0 ? m->tensors[which].name : "-");
    GPU_EXPECT(lrel < tol, "loss rel error %.3e", lrel);
    GPU_EXPECT(rel < tol, "gradient rel error %.3e", rel);
    model_free(m);
    model_free(ref);
    free(tok); free(tgt); free(pos); free(seg);
}

int main(int argc, char **argv) {
    dist_ctx d;
    if (!gpu_mpi_begin(&d, &argc, &argv)) return 77;
    rank_ = d.rank;
    char err[256];
    if (dist_init_grid(&d, 1, d.size, err, sizeof err) != 0) dist_exit_user_error(&d, err);
    int kind = gpu_mpi_transport(argc, argv, 0);
    gpu_batch x;
    gpu_make_batch(&x, 777u);
    for (int dt = 0; dt < 2; dt++) {
        backend *bk = gpu_mpi_backend(&d, dt ? BK_BF16 : BK_F32);
        gpu_comm *c = gpu_comm_create(bk, &d, kind, err, sizeof err);
        if (!c) dist_exit_user_error(&d, err);
        if (d.size == 1 && dt == 0) self_checks(bk, c, &d);
        model_check(bk, c, &d, &x);
        gpu_comm_free(c);
        backend_free(bk);
    }
    return gpu_mpi_end(&d, failures);
}
