// Sharded state on the cuda backend (trainer/parallel/zero_shard.h through
// gpu_comm: grouped ncclReduce per slice owner per bucket, grouped
// ncclBroadcast all-gather; or the host-staged mpi transport), fp32:
// 5 AdamW steps (clipping on) under shard optimizer and gradients, with and
// without gradient accumulation (1-row micro-batches), against shard none on
// the same transport and ranks: loss and parameters to 1e-6 relative (one
// rank: bit-identical), and shard none against the cpu backend's 1-rank run
// to 1e-4 (cuda and cpu kernels sum in other orders).
// tests/gpu/gpu_nccl_mpi.sh: 1 rank over nccl, 2 ranks sharing the GPU
// over mpi. Exit 77 when no GPU is visible.
#include "backend.h"
#include "backend_comm.h"
#include "dist.h"
#include "gpu_check.h"
#include "gpu_comm.h"
#include "gpu_mpi.h"
#include "zero_shard.h"
#include "zigzag.h"

// Under the CPU emulator (tests/gpu/emu): 2 steps, whole batches only (the
// emulated fp32 attention costs seconds per step).
#ifdef STRETCH_GPU_EMU
enum { STEPS = 2, MICRO_MAX = 0 };
#else
enum { STEPS = 5, MICRO_MAX = 1 };
#endif
static int failures = 0, rank_ = 0;

static const adamw_hparams HP = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                 .weight_decay = 0.1f};

// STEPS steps; final parameters (host, n) and the losses out.
static void run(backend *bk, dist_ctx *d, int transport, const gpu_batch *x, shard_mode mode,
                int64_t micro, bool serial, float *params, double *losses) {
    model_config cfg = gpu_tiny_config();
    dist_ctx one;
    dist_init_serial(&one);
    dist_ctx *dd = serial ? &one : d;
    zigzag_layout z;
    zigzag_layout_init(&z, GT, dd->sp, dd->sp_rank);
    const int64_t TL = dd->sp > 1 ? z.T_local : GT, n = GB * TL;
    int32_t *buf = malloc(sizeof(int32_t) * n * 4);
    int32_t *tok = buf, *tgt = buf + n, *pos = buf + 2 * n, *seg = buf + 3 * n;
    if (dd->sp > 1) {
        zigzag_shard_batch(tok, tgt, pos, seg, x->tokens, x->targets, x->pos, x->seg, GB, &z, 0);
    } else {
        memcpy(tok, x->tokens, sizeof(int32_t) * n);
        memcpy(tgt, x->targets, sizeof(int32_t) * n);
        memcpy(pos, x->pos, sizeof(int32_t) * n);
        memcpy(seg, x->seg, sizeof(int32_t) * n);
    }
    char err[256];
    backend_comm *comm = backend_comm_create(bk, dd, transport, err, sizeof err);
    if (!comm) dist_exit_user_error(d, err);
    model *m = model_create_on(&cfg, micro ? micro * TL : n, true, bk);
    model_init_weights(m, 11);
    if (dd->sp > 1) {
        model_attention att = backend_comm_ring_attention(comm);
        model_set_attention(m, &att);
    }
    shard_layout s;
    shard_layout_init(&s, mode, dd->size, dd->rank, m->tensors, m->n_tensors, m->n_params);
    size_t mb = sizeof(float) * (size_t)(shard_len(&s) + 1);
    float *mom = bk->op->alloc(bk, mb), *var = bk->op->alloc(bk, mb);
    shard_step_ctx c = {.m = m, .comm = comm, .d = dd, .s = &s, .adam_m = mom, .adam_v = var,
                        .micro_rows = micro};
    model_batch b = {.B = GB, .T = TL, .tokens = tok, .targets = tgt, .pos = pos, .seg = seg};
    for (int st = 1; st <= STEPS; st++) {
        double norm;
        losses[st - 1] = shard_step(&c, &b, x->n_targets, &HP, 0.5, st, &norm, NULL);
    }
    model_pull_params(m);
    memcpy(params, m->params, sizeof(float) * (size_t)m->n_params);
    bk->op->free(bk, mom);
    bk->op->free(bk, var);
    shard_layout_free(&s);
    model_free(m);
    backend_comm_free(comm);
    free(buf);
}

static double max_rel(const float *a, const float *b, int64_t n) {
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
    }
    return r > 0 ? d / r : d;
}

int main(int argc, char **argv) {
    dist_ctx d;
    if (!gpu_mpi_begin(&d, &argc, &argv)) return 77;
    rank_ = d.rank;
    char err[256];
    if (dist_init_grid(&d, 1, d.size, err, sizeof err) != 0) dist_exit_user_error(&d, err);
    int transport = gpu_mpi_transport(argc, argv, GPU_COMM_NCCL);
    gpu_batch x;
    gpu_make_batch(&x, 4242u);
    backend *bk = gpu_mpi_backend(&d, BK_F32);
    model_config cfg = gpu_tiny_config();
    int nt;
    int64_t n;
    free(model_param_layout(&cfg, &nt, &n));
    float *ref = malloc(sizeof(float) * n), *none = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    double ref_loss[STEPS] = {0}, none_loss[STEPS] = {0}, loss[STEPS] = {0};
    run(backend_cpu(), &d, 0, &x, SHARD_NONE, 0, true, ref, ref_loss);
    for (int micro = 0; micro <= MICRO_MAX; micro++) {
        for (int mode = SHARD_NONE; mode <= SHARD_GRADIENTS; mode++) {
            run(bk, &d, transport, &x, (shard_mode)mode, micro, false, got, loss);
            if (mode == SHARD_NONE) {
                memcpy(none, got, sizeof(float) * n);
                memcpy(none_loss, loss, sizeof loss);
                double e = max_rel(got, ref, n), le = 0;
                for (int s = 0; s < STEPS; s++) le = fmax(le, fabs(loss[s] - ref_loss[s]) / ref_loss[s]);
                GPU_EXPECT(e < 1e-4 && le < 1e-4, "shard none (micro %d) vs cpu: params %.3g loss %.3g", micro, e, le);
                continue;
            }
            double e = max_rel(got, none, n), le = 0;
            for (int s = 0; s < STEPS; s++) le = fmax(le, fabs(loss[s] - none_loss[s]) / none_loss[s]);
            double tol = d.size == 1 ? 0.0 : 1e-6;
            if (d.rank == 0)
                printf("%d rank(s) over %s, shard %s, micro %d: params %.2e loss %.2e vs shard none\n",
                       d.size, transport == GPU_COMM_MPI ? "mpi" : "nccl", shard_mode_name((shard_mode)mode),
                       micro, e, le);
            GPU_EXPECT(e <= tol && le <= tol, "shard %s micro %d: params %.3g loss %.3g vs none",
                   shard_mode_name((shard_mode)mode), micro, e, le);
        }
    }
    backend_free(bk);
    free(ref); free(none); free(got);
    return gpu_mpi_end(&d, failures);
}
