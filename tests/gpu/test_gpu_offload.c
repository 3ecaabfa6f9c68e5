// The offloaded optimizer with several ranks (trainer/parallel/zero_offload.h):
// gradient chunks go down to pinned host memory chained to the events of
// their reduction buckets (backend_comm_grad_copy_after), queued as the
// backward finishes the buckets. A flat buffer of 2.6 buckets
// (DIST_BUCKET_FLOATS) in 20 tensors, so chunks (runs of whole tensors, an
// eighth of the slice) and buckets cross each other's boundaries; each rank
// writes its own small-integer gradients (sums exact in fp32), then the
// "backward" finishes the tensors from the top down: the comm starts the
// buckets lying above, zero_offload_grads_reduced queues the chunks whose
// buckets are all started. Checked, under shard none / optimizer / gradients,
// 2 steps each:
//   - how many chunks were queued before the last tensor was finished, and
//     after it before backend_comm_grad_end: exactly the chunks whose lowest
//     bucket lies wholly above (nccl), none over the host-staged mpi
//     transport (it reduces in grad_end);
//   - the host AdamW's master weights and the fp32 working weights it
//     uploads, bit for bit, against the cpu AdamW run on the sums computed
//     here: a chunk copied before its bucket's sum landed differs.
// tests/gpu/gpu_nccl_mpi.sh: 1 rank over nccl, 2 ranks sharing the GPU
// over mpi; on emulated GPUs also 2 ranks over the NCCL shim, with copies as
// early as their events allow (tests/gpu/emu). Exit 77 without a GPU.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_comm.h"
#include "dist.h"
#include "gpu_comm.h"
#include "gpu_mpi.h"
#include "gpu_check.h"
#include "zero_offload.h"
#include "zero_shard.h"

static int failures = 0, rank_ = 0;

enum { N_TENSORS = 20, STEPS = 2 };

static const adamw_hparams HP = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                 .weight_decay = 0.1f};

// Rank r's gradient of element i at step t: a small integer.
static float grad_of(int r, int64_t i, int t) { return (float)((i * 7 + r * 5 + t * 3) % 17) - 8.0f; }

// Chunks of zero_offload o whose lowest bucket lies wholly inside [lo, n).
static int chunks_above(const zero_offload *o, const shard_layout *s, int64_t lo) {
    const int64_t B = DIST_BUCKET_FLOATS, first_started = (lo + B - 1) / B;
    int k = 0;
    for (int c = 0; c < o->n_chunks; c++) {
        int64_t a = s->lo + s->tensors[o->chunk_tensor[c]].offset;
        if (a / B >= first_started) k++;
    }
    return k;
}

static void run(backend *bk, backend_comm *comm, dist_ctx *d, bool nccl, const param_tensor *tensors,
                int64_t n, shard_mode mode) {
    shard_layout s;
    shard_layout_init(&s, mode, d->size, d->rank, tensors, N_TENSORS, n);
    const int64_t len = shard_len(&s);
    // The model as the offloaded optimizer sees it: the fp32 master on the
    // host, gradients and fp32 working weights on the device.
    model m;
    memset(&m, 0, sizeof m);
    m.bk = bk;
    m.n_params = n;
    m.host_master = true;
    m.params = malloc(sizeof(float) * (size_t)n);
    m.hmaster = m.params;  // the whole buffer is the master (no ZeRO-3 here)
    m.dgrads = bk->op->alloc(bk, sizeof(float) * (size_t)n);
    m.work = bk->op->alloc(bk, sizeof(float) * (size_t)n);
    m.dhi = m.ghi = n;
    for (int64_t i = 0; i < n; i++) m.params[i] = 0.01f * (float)(i % 13) - 0.05f;
    float *adam_m = bk->op->host_alloc(bk, sizeof(float) * (size_t)(len + 1));
    float *adam_v = bk->op->host_alloc(bk, sizeof(float) * (size_t)(len + 1));
    // The reference: the cpu AdamW on the sums over the ranks.
    float *ref = malloc(sizeof(float) * (size_t)(len + 1)), *rm = calloc((size_t)len + 1, sizeof(float));
    float *rv = calloc((size_t)len + 1, sizeof(float)), *sum = malloc(sizeof(float) * (size_t)(len + 1));
    float *g = malloc(sizeof(float) * (size_t)n), *work = malloc(sizeof(float) * (size_t)(len + 1));
    memcpy(ref, m.params + s.lo, sizeof(float) * (size_t)len);
    zero_offload o;
    zero_offload_init(&o, bk, &s);
    const int64_t top_lo = tensors[1].offset;  // the last tensor the "backward" finishes layer-wise
    for (int t = 1; t <= STEPS; t++) {
        for (int64_t i = 0; i < n; i++) g[i] = grad_of(d->rank, i, t);
        for (int64_t i = 0; i < len; i++) {
            float a = 0;
            for (int r = 0; r < d->size; r++) a += grad_of(r, s.lo + i, t);
            sum[i] = a;
        }
        bk->op->to_dev(bk, m.dgrads, g, sizeof(float) * (size_t)n);
        zero_offload_begin(&o);
        if (mode >= SHARD_GRADIENTS)
            backend_comm_grad_begin_scatter(comm, m.dgrads, n, s.shard);
        else
            backend_comm_grad_begin(comm, m.dgrads, n);
        for (int i = N_TENSORS - 1; i >= 1; i--) {
            backend_comm_grad_ready(comm, tensors[i].offset);
            zero_offload_grads_reduced(&o, &m, &s, comm);
        }
        const int early = o.n_chunks - o.next_down;
        const int want_early = nccl ? chunks_above(&o, &s, top_lo) : 0;
        backend_comm_grad_ready(comm, 0);
        zero_offload_grads_reduced(&o, &m, &s, comm);
        const int before_end = o.n_chunks - o.next_down, want_end = nccl ? o.n_chunks : 0;
        backend_comm_grad_end(comm);
        zero_offload_adamw(&o, &m, &s, adam_m, adam_v, &HP, t, 1.0f);
        backend_cpu()->op->adamw(backend_cpu(), ref, rm, rv, sum, NULL, s.tensors, s.n_tensors, &HP,
                                 t, 1.0f);
        bk->op->to_host(bk, work, (float *)m.work + s.lo, sizeof(float) * (size_t)len);
        int64_t bad = 0, bad_work = 0;
        for (int64_t i = 0; i < len; i++) {
            bad += memcmp(&m.params[s.lo + i], &ref[i], sizeof(float)) != 0;
            bad_work += memcmp(&work[i], &ref[i], sizeof(float)) != 0;
        }
        if (d->rank == 0 || mode != SHARD_NONE)
            printf("rank %d, %d rank(s) over %s, shard %s, step %d: %d chunks of %lld floats, %d "
                   "queued before the first tensor's gradients were final (want %d), %d before "
                   "the reduction ended (want %d); %lld / %lld weights differ from the reference\n",
                   d->rank, d->size, nccl ? "nccl" : "mpi", shard_mode_name(mode), t, o.n_chunks,
                   (long long)len, early, want_early, before_end, want_end, (long long)bad,
                   (long long)bad_work);
        GPU_EXPECT(early == want_early && before_end == want_end,
               "shard %s step %d: chunks queued %d / %d, want %d / %d", shard_mode_name(mode), t,
               early, before_end, want_early, want_end);
        GPU_EXPECT(bad == 0 && bad_work == 0, "shard %s step %d: %lld master, %lld working weights differ",
               shard_mode_name(mode), t, (long long)bad, (long long)bad_work);
    }
    zero_offload_free(&o);
    bk->op->host_free(bk, adam_m);
    bk->op->host_free(bk, adam_v);
    bk->op->free(bk, m.dgrads);
    bk->op->free(bk, m.work);
    free(m.params);
    free(ref); free(rm); free(rv); free(sum); free(g); free(work);
    shard_layout_free(&s);
}

int main(int argc, char **argv) {
    dist_ctx d;
    if (!gpu_mpi_begin(&d, &argc, &argv)) return 77;
    rank_ = d.rank;
    char err[256];
    if (dist_init_grid(&d, d.size, 1, err, sizeof err) != 0) dist_exit_user_error(&d, err);
    const int transport = gpu_mpi_transport(argc, argv, GPU_COMM_NCCL);
    backend *bk = gpu_mpi_backend(&d, BK_F32);
    backend_comm *comm = backend_comm_create(bk, &d, transport, err, sizeof err);
    if (!comm) dist_exit_user_error(&d, err);
    // 20 tensors of 0.45M .. 0.66M floats: 11.1M floats, 2.65 buckets.
    param_tensor tensors[N_TENSORS];
    int64_t n = 0;
    for (int i = 0; i < N_TENSORS; i++) {
        tensors[i] = (param_tensor){.offset = n, .shape = {450000 + 11111 * i, 1}, .decay = i % 3 != 0};
        snprintf(tensors[i].name, sizeof tensors[i].name, "t%d", i);
        n += tensors[i].shape[0];
    }
    for (int mode = SHARD_NONE; mode <= SHARD_GRADIENTS; mode++)
        run(bk, comm, &d, transport == GPU_COMM_NCCL, tensors, n, (shard_mode)mode);
    backend_comm_free(comm);
    backend_free(bk);
    return gpu_mpi_end(&d, failures);
}
