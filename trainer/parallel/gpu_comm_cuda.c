// gpu_comm: NCCL and host-staged MPI transports for cuda ranks. See gpu_comm.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "backend_cuda.h"
#include "cu_common.h"
#include "die.h"
#include "dist_abort.h"
#include "gpu_comm.h"

#define NCCL_CHECK(expr)                                                              \
    do {                                                                              \
        ncclResult_t r_ = (expr);                                                     \
        if (r_ != ncclSuccess) die("NCCL error: %s: %s", #expr, ncclGetErrorString(r_)); \
    } while (0)

enum { N_TAGS = 8 };

struct gpu_comm {
    gpu_comm_kind kind;
    char name[32];            // "nccl 2.21.5" (the library loaded, for the start-up log), "mpi"
    backend *bk;
    dist_ctx *d;
    cudaStream_t compute;     // the backend's stream
    // nccl: ring / all-to-all transfers on comm_st over comm; gradients and
    // the ZeRO all-gather on grad_st over grad_comm (both over the world)
    ncclComm_t comm, grad_comm;
    cudaStream_t comm_st, grad_st;
    cudaEvent_t ev_compute, ev_comm, ev_grad;
    // ZeRO-3's unit gathers on a communicator and stream of their own
    // (created by the first gather: runs without ZeRO-3 pay nothing), one
    // event per unit buffer
    ncclComm_t param_comm;
    cudaStream_t param_st;
    cudaEvent_t ev_unit[GPU_COMM_UNIT_SLOTS], ev_ugrad[GPU_COMM_UNIT_SLOTS];
    void *h_unit;  // mpi: the unit's host staging
    size_t h_unit_cap;
    cudaEvent_t ev_xfer[GPU_COMM_XFERS];  // one per transfer in flight
    bool xfer_busy[GPU_COMM_XFERS];
    // mpi: pinned host staging per tag (ring) and for the gradients
    void *h_send[N_TAGS], *h_recv[N_TAGS];
    size_t h_cap_send[N_TAGS], h_cap_recv[N_TAGS];
    float *h_grads;
    size_t h_grads_cap;
    void *h_a2a_send, *h_a2a_recv;  // mpi: the all-to-all's staging
    size_t h_a2a_cap_send, h_a2a_cap_recv;
    // gradient all-reduce in progress
    float *grads;
    int64_t n, n_buckets, next;  // buckets [next, n_buckets) started
    int64_t shard;               // > 0: reduce-scatter to slices of this many floats (ZeRO-2)
    // nccl: one event per bucket, recorded on grad_st after its collective
    // (made by the first grad_begin that needs them), for the offload copies
    // that wait for exactly the buckets they read (gpu_comm_grad_copy_after)
    cudaEvent_t *ev_bucket;
    int64_t n_ev_bucket;
};

// Rank r's slice [*lo, *hi) of a sharded buffer of n elements.
static void slice_of(int64_t n, int64_t shard, int r, int64_t *lo, int64_t *hi) {
    *lo = (int64_t)r * shard;
    *hi = *lo + shard;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

static size_t elem_size(dist_dtype t) { return t == DIST_U16 ? 2 : 4; }

static ncclDataType_t nccl_type(dist_dtype t) {
    switch (t) {
    case DIST_F32: return ncclFloat32;
    case DIST_I32: return ncclInt32;
    case DIST_U16: return ncclBfloat16;  // raw 16-bit words; send/recv never interprets them
    }
    return ncclFloat32;
}

// Watchdog hooks (dist_abort.h): a hung or failed NCCL operation never
// returns to the host; ncclCommAbort (safe from another thread) ends it, and
// ncclCommGetAsyncError reports a failure the enqueue calls have not seen.
static void nccl_abort_hook(void *ctx) {
    gpu_comm *c = ctx;
    ncclCommAbort(c->comm);
    ncclCommAbort(c->grad_comm);
    if (c->param_comm) ncclCommAbort(c->param_comm);
}

static int nccl_poll_hook(void *ctx, char *msg, size_t msglen) {
    gpu_comm *c = ctx;
    ncclComm_t comms[3] = {c->comm, c->grad_comm, c->param_comm};
    static const char *const names[3] = {"ring", "gradient", "parameter"};
    for (int i = 0; i < 3 && comms[i]; i++) {
        ncclResult_t async = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(comms[i], &async);
        if (r != ncclSuccess) async = r;
        if (async == ncclSuccess) continue;  // (blocking communicators: never ncclInProgress)
        snprintf(msg, msglen, "NCCL asynchronous error (%s communicator): %s", names[i],
                 ncclGetErrorString(async));
        return 1;
    }
    return 0;
}

// A communicator over the world (every rank calls this in the same order).
// Two of them run concurrently (ring on comm_st, gradients on grad_st); every
// rank enqueues on both in the same program order, which NCCL needs for
// concurrent communicators not to wait on each other.
static ncclComm_t world_comm(dist_ctx *d) {
    ncclUniqueId id;
    ncclComm_t comm;
    if (d->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    dist_bcast_bytes(d, &id, sizeof id, 0);
    NCCL_CHECK(ncclCommInitRank(&comm, d->size, id, d->rank));
    return comm;
}

gpu_comm *gpu_comm_create(backend *bk, dist_ctx *d, int kind, char *err, size_t errlen) {
    int local_rank, local_size, n_gpus = backend_gpu_count();
    dist_local_rank(d, &local_rank, &local_size);
    bool shared = local_size > n_gpus;
    if (kind == 0) kind = shared ? GPU_COMM_MPI : GPU_COMM_NCCL;
    if (kind == GPU_COMM_NCCL && shared) {
        snprintf(err, errlen, "parallel.transport: nccl needs one GPU per rank, but %d ranks "
                              "share %d GPU(s) on this node (use mpi or auto)",
                 local_size, n_gpus);
        return NULL;
    }
    gpu_comm *c = xcalloc(1, sizeof *c);
    c->kind = (gpu_comm_kind)kind;
    c->bk = bk;
    c->d = d;
    c->compute = (cudaStream_t)backend_cuda_stream(bk);
    snprintf(c->name, sizeof c->name, "mpi");
    if (c->kind == GPU_COMM_NCCL) {
        int v = 0;  // NCCL_VERSION_CODE form: major * 10000 + minor * 100 + patch (2.9 on)
        NCCL_CHECK(ncclGetVersion(&v));
        snprintf(c->name, sizeof c->name, "nccl %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
        c->comm = world_comm(d);
        c->grad_comm = world_comm(d);
        CU_CHECK(cudaStreamCreateWithFlags(&c->comm_st, cudaStreamNonBlocking));
        CU_CHECK(cudaStreamCreateWithFlags(&c->grad_st, cudaStreamNonBlocking));
        CU_CHECK(cudaEventCreateWithFlags(&c->ev_compute, cudaEventDisableTiming));
        CU_CHECK(cudaEventCreateWithFlags(&c->ev_comm, cudaEventDisableTiming));
        CU_CHECK(cudaEventCreateWithFlags(&c->ev_grad, cudaEventDisableTiming));
        for (int i = 0; i < GPU_COMM_XFERS; i++)
            CU_CHECK(cudaEventCreateWithFlags(&c->ev_xfer[i], cudaEventDisableTiming));
        dist_abort_register(nccl_abort_hook, nccl_poll_hook, c);
    }
    return c;
}

void gpu_comm_free(gpu_comm *c) {
    if (!c) return;
    CU_CHECK(cudaStreamSynchronize(c->compute));
    if (c->kind == GPU_COMM_NCCL) {
        CU_CHECK(cudaStreamSynchronize(c->comm_st));
        CU_CHECK(cudaStreamSynchronize(c->grad_st));
        dist_abort_unregister(c);
        NCCL_CHECK(ncclCommDestroy(c->comm));
        NCCL_CHECK(ncclCommDestroy(c->grad_comm));
        if (c->param_comm) {
            CU_CHECK(cudaStreamSynchronize(c->param_st));
            NCCL_CHECK(ncclCommDestroy(c->param_comm));
            CU_CHECK(cudaStreamDestroy(c->param_st));
            for (int i = 0; i < GPU_COMM_UNIT_SLOTS; i++) {
                CU_CHECK(cudaEventDestroy(c->ev_unit[i]));
                CU_CHECK(cudaEventDestroy(c->ev_ugrad[i]));
            }
        }
        CU_CHECK(cudaEventDestroy(c->ev_compute));
        CU_CHECK(cudaEventDestroy(c->ev_comm));
        CU_CHECK(cudaEventDestroy(c->ev_grad));
        for (int i = 0; i < GPU_COMM_XFERS; i++) CU_CHECK(cudaEventDestroy(c->ev_xfer[i]));
        for (int64_t i = 0; i < c->n_ev_bucket; i++) CU_CHECK(cudaEventDestroy(c->ev_bucket[i]));
        free(c->ev_bucket);
        CU_CHECK(cudaStreamDestroy(c->comm_st));
        CU_CHECK(cudaStreamDestroy(c->grad_st));
    }
    for (int i = 0; i < N_TAGS; i++) {
        if (c->h_send[i]) CU_CHECK(cudaFreeHost(c->h_send[i]));
        if (c->h_recv[i]) CU_CHECK(cudaFreeHost(c->h_recv[i]));
    }
    if (c->h_grads) CU_CHECK(cudaFreeHost(c->h_grads));
    if (c->h_a2a_send) CU_CHECK(cudaFreeHost(c->h_a2a_send));
    if (c->h_a2a_recv) CU_CHECK(cudaFreeHost(c->h_a2a_recv));
    if (c->h_unit) CU_CHECK(cudaFreeHost(c->h_unit));
    free(c);
}

const char *gpu_comm_name(const gpu_comm *c) { return c->name; }
dist_ctx *gpu_comm_dist(gpu_comm *c) { return c->d; }
backend *gpu_comm_backend(gpu_comm *c) { return c->bk; }

// Stream st (comm or grad) waits for everything enqueued on the compute
// stream so far.
static void after_compute(gpu_comm *c, cudaStream_t st) {
    CU_CHECK(cudaEventRecord(c->ev_compute, c->compute));
    CU_CHECK(cudaStreamWaitEvent(st, c->ev_compute, 0));
}

// The compute stream waits for everything enqueued on st so far (ev: an
// event of st's own, recorded now).
static void compute_after(gpu_comm *c, cudaStream_t st, cudaEvent_t ev) {
    CU_CHECK(cudaEventRecord(ev, st));
    CU_CHECK(cudaStreamWaitEvent(c->compute, ev, 0));
}

// ---------------------------------------------------------------------------
// Ring shift

static void *grow_pinned(void **p, size_t *cap, size_t bytes) {
    if (*cap < bytes) {
        if (*p) CU_CHECK(cudaFreeHost(*p));
        CU_CHECK(cudaMallocHost(p, bytes));
        *cap = bytes;
    }
    return *p;
}

void gpu_comm_shift(gpu_comm *c, gpu_xfer *x, void *recv, const void *send, int64_t count,
                    dist_dtype type, int tag) {
    dist_ctx *d = c->d;
    size_t bytes = (size_t)count * elem_size(type);
    if (c->kind == GPU_COMM_NCCL) {
        // World ranks of the ring neighbours: (dp_rank * ring + ring_rank) *
        // ulysses + u_rank (ulysses == 1: dp_rank * sp + sp_rank).
        const int R = d->ring, U = d->ulysses;
        int next = (d->dp_rank * R + (d->ring_rank + 1) % R) * U + d->u_rank;
        int prev = (d->dp_rank * R + (d->ring_rank + R - 1) % R) * U + d->u_rank;
        after_compute(c, c->comm_st);
        NCCL_CHECK(ncclGroupStart());
        NCCL_CHECK(ncclSend(send, (size_t)count, nccl_type(type), next, c->comm, c->comm_st));
        NCCL_CHECK(ncclRecv(recv, (size_t)count, nccl_type(type), prev, c->comm, c->comm_st));
        NCCL_CHECK(ncclGroupEnd());
        if (!x->nccl_pending) {  // a free event for this transfer
            int e = 0;
            while (e < GPU_COMM_XFERS && c->xfer_busy[e]) e++;
            if (e == GPU_COMM_XFERS) die("gpu_comm: more than %d transfers in flight", GPU_COMM_XFERS);
            c->xfer_busy[e] = true;
            x->ev = e;
            x->nccl_pending = true;
        }
        // Recorded now: it covers this transfer (and x's earlier shifts), not
        // what the comm stream gets later.
        CU_CHECK(cudaEventRecord(c->ev_xfer[x->ev], c->comm_st));
        return;
    }
    CHECK(tag >= 0 && tag < N_TAGS && x->n_stage < DIST_XFER_MAX);
    void *hs = grow_pinned(&c->h_send[tag], &c->h_cap_send[tag], bytes);
    void *hr = grow_pinned(&c->h_recv[tag], &c->h_cap_recv[tag], bytes);
    // The send data is final, and recv no longer read, once the stream drains.
    CU_CHECK(cudaMemcpyAsync(hs, send, bytes, cudaMemcpyDeviceToHost, c->compute));
    CU_CHECK(cudaStreamSynchronize(c->compute));
    dist_ctx ring_d;  // the ring group as dist_ring_shift's "sp ring"
    dist_ring_view(&ring_d, d);
    dist_ring_shift(&x->mx, &ring_d, hr, hs, count, type, tag);
    d->sent_bytes += ring_d.sent_bytes;
    x->stage[x->n_stage].dev = recv;
    x->stage[x->n_stage].host = hr;
    x->stage[x->n_stage].bytes = bytes;
    x->n_stage++;
}

void gpu_comm_wait(gpu_comm *c, gpu_xfer *x) {
    if (c->kind == GPU_COMM_NCCL) {
        if (x->nccl_pending) {
            CU_CHECK(cudaStreamWaitEvent(c->compute, c->ev_xfer[x->ev], 0));
            c->xfer_busy[x->ev] = false;  // re-recording it later leaves this wait as it is
        }
        x->nccl_pending = false;
        return;
    }
    dist_xfer_wait(&x->mx);
    for (int i = 0; i < x->n_stage; i++)
        CU_CHECK(cudaMemcpyAsync(x->stage[i].dev, x->stage[i].host, x->stage[i].bytes,
                                 cudaMemcpyHostToDevice, c->compute));
    // The host buffers are reused by the next shift with the same tag.
    CU_CHECK(cudaStreamSynchronize(c->compute));
    x->n_stage = 0;
}

// ---------------------------------------------------------------------------
// Ulysses all-to-all

void gpu_comm_alltoall(gpu_comm *c, void *recv, const void *send, int64_t count,
                       dist_dtype type) {
    dist_ctx *d = c->d;
    const int U = d->ulysses;
    const size_t bytes = (size_t)count * elem_size(type);
    if (U == 1 || !d->mpi) {
        if (recv != send)
            CU_CHECK(cudaMemcpyAsync(recv, send, bytes, cudaMemcpyDeviceToDevice, c->compute));
        return;
    }
    if (c->kind == GPU_COMM_NCCL) {
        // World ranks of the u group: ((dp_rank * ring + ring_rank) * ulysses + j).
        int base = (d->dp_rank * d->ring + d->ring_rank) * U;
        after_compute(c, c->comm_st);
        NCCL_CHECK(ncclGroupStart());
        for (int j = 0; j < U; j++) {
            NCCL_CHECK(ncclSend((const char *)send + (size_t)j * bytes, (size_t)count,
                                nccl_type(type), base + j, c->comm, c->comm_st));
            NCCL_CHECK(ncclRecv((char *)recv + (size_t)j * bytes, (size_t)count, nccl_type(type),
                                base + j, c->comm, c->comm_st));
        }
        NCCL_CHECK(ncclGroupEnd());
        compute_after(c, c->comm_st, c->ev_comm);
        d->sent_bytes += (int64_t)(U - 1) * (int64_t)bytes;
        return;
    }
    const size_t total = bytes * (size_t)U;
    void *hs = grow_pinned(&c->h_a2a_send, &c->h_a2a_cap_send, total);
    void *hr = grow_pinned(&c->h_a2a_recv, &c->h_a2a_cap_recv, total);
    CU_CHECK(cudaMemcpyAsync(hs, send, total, cudaMemcpyDeviceToHost, c->compute));
    CU_CHECK(cudaStreamSynchronize(c->compute));
    dist_alltoall(d, hr, hs, count, type);
    CU_CHECK(cudaMemcpyAsync(recv, hr, total, cudaMemcpyHostToDevice, c->compute));
    CU_CHECK(cudaStreamSynchronize(c->compute));  // hr is reused by the next call
}

// ---------------------------------------------------------------------------
// Gradient all-reduce

static int64_t bucket_lo(int64_t i) { return i * (int64_t)DIST_BUCKET_FLOATS; }

void gpu_comm_grad_begin(gpu_comm *c, float *grads, int64_t n) {
    c->grads = grads;
    c->n = n;
    c->n_buckets = (n + DIST_BUCKET_FLOATS - 1) / DIST_BUCKET_FLOATS;
    c->next = c->n_buckets;
    c->shard = 0;
    if (c->kind != GPU_COMM_NCCL || c->n_buckets <= c->n_ev_bucket) return;
    c->ev_bucket = xrealloc(c->ev_bucket, sizeof *c->ev_bucket * (size_t)c->n_buckets);
    for (int64_t i = c->n_ev_bucket; i < c->n_buckets; i++)
        CU_CHECK(cudaEventCreateWithFlags(&c->ev_bucket[i], cudaEventDisableTiming));
    c->n_ev_bucket = c->n_buckets;
}

void gpu_comm_grad_begin_scatter(gpu_comm *c, float *grads, int64_t n, int64_t shard) {
    gpu_comm_grad_begin(c, grads, n);
    c->shard = shard;
}

// One bucket's reduce-scatter. Slices are contiguous over the whole buffer,
// so a bucket's boundary with a slice falls anywhere: the bucket is one
// grouped ncclReduce per owning rank, in place (the owner's part lands at
// its own offset), which NCCL runs as one collective.
static void reduce_scatter_bucket(gpu_comm *c, int64_t b0, int64_t len) {
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < c->d->size; r++) {
        int64_t a, b;
        slice_of(c->n, c->shard, r, &a, &b);
        if (a < b0) a = b0;
        if (b > b0 + len) b = b0 + len;
        if (b > a)
            NCCL_CHECK(ncclReduce(c->grads + a, c->grads + a, (size_t)(b - a), ncclFloat32, ncclSum,
                                  r, c->grad_comm, c->grad_st));
    }
    NCCL_CHECK(ncclGroupEnd());
}

// Starts buckets lying wholly inside [lo, n), last first (the order on every rank).
static void start_buckets(gpu_comm *c, int64_t lo) {
    if (c->next == 0 || bucket_lo(c->next - 1) < lo) return;
    after_compute(c, c->grad_st);  // one event for every bucket this call starts
    while (c->next > 0 && bucket_lo(c->next - 1) >= lo) {
        int64_t i = --c->next, b0 = bucket_lo(i);
        int64_t len = (b0 + DIST_BUCKET_FLOATS < c->n ? b0 + DIST_BUCKET_FLOATS : c->n) - b0;
        if (c->shard > 0)
            reduce_scatter_bucket(c, b0, len);
        else
            NCCL_CHECK(ncclAllReduce(c->grads + b0, c->grads + b0, (size_t)len, ncclFloat32,
                                     ncclSum, c->grad_comm, c->grad_st));
        CU_CHECK(cudaEventRecord(c->ev_bucket[i], c->grad_st));
    }
}

void gpu_comm_grad_ready(gpu_comm *c, int64_t lo) {
    if (c->kind == GPU_COMM_NCCL) start_buckets(c, lo);
}

// Buckets are started last first, and grad_st runs them in that order: the
// lowest bucket [lo, hi) touches is the last of them to complete, and its
// event covers the others.
bool gpu_comm_grad_copy_after(gpu_comm *c, int64_t lo, int64_t hi, int ev) {
    if (c->kind != GPU_COMM_NCCL || lo >= hi) return false;  // mpi: reduced in grad_end
    CHECK(lo >= 0 && hi <= c->n);
    const int64_t first = lo / DIST_BUCKET_FLOATS;
    if (c->next > first) return false;  // not started yet
    CU_CHECK(cudaStreamWaitEvent((cudaStream_t)backend_cuda_copy_stream(c->bk, ev), c->ev_bucket[first], 0));
    return true;
}

void gpu_comm_grad_end(gpu_comm *c) {
    if (c->kind == GPU_COMM_NCCL) {
        start_buckets(c, 0);
        compute_after(c, c->grad_st, c->ev_grad);
        return;
    }
    // mpi: one host round trip after backward (no overlap).
    if (c->d->size == 1) return;
    size_t bytes = sizeof(float) * (size_t)c->n;
    grow_pinned((void **)&c->h_grads, &c->h_grads_cap, bytes);
    c->bk->op->to_host(c->bk, c->h_grads, c->grads, bytes);
    if (c->shard == 0) {
        dist_allreduce_grads(c->d, c->h_grads, c->n);
        c->bk->op->to_dev(c->bk, c->grads, c->h_grads, bytes);
        return;
    }
    dist_grad_sync g;
    dist_grad_sync_begin_scatter(&g, c->d, c->h_grads, c->n, DIST_BUCKET_FLOATS, c->shard);
    dist_grad_sync_end(&g);
    int64_t a, b;
    slice_of(c->n, c->shard, c->d->rank, &a, &b);
    if (b > a)
        c->bk->op->to_dev(c->bk, c->grads + a, c->h_grads + a, sizeof(float) * (size_t)(b - a));
}

// Every rank's slice of buf to every rank (ZeRO: the updated parameters).
// nccl: one grouped in-place ncclBroadcast per slice (the all-gather of
// unequal, contiguous slices); mpi: through a host copy.
void gpu_comm_param_gather(gpu_comm *c, void *buf, int64_t n, int64_t shard, int elem_bytes) {
    if (c->d->size == 1) return;
    size_t esz = (size_t)elem_bytes;
    if (c->kind == GPU_COMM_NCCL) {
        after_compute(c, c->grad_st);
        NCCL_CHECK(ncclGroupStart());
        for (int r = 0; r < c->d->size; r++) {
            int64_t a, b;
            slice_of(n, shard, r, &a, &b);
            if (b > a) {
                char *p = (char *)buf + (size_t)a * esz;
                NCCL_CHECK(ncclBroadcast(p, p, (size_t)(b - a), esz == 2 ? ncclBfloat16 : ncclFloat32,
                                         r, c->grad_comm, c->grad_st));
            }
        }
        NCCL_CHECK(ncclGroupEnd());
        compute_after(c, c->grad_st, c->ev_grad);
        return;
    }
    size_t bytes = esz * (size_t)n;
    grow_pinned((void **)&c->h_grads, &c->h_grads_cap, bytes);
    c->bk->op->to_host(c->bk, c->h_grads, buf, bytes);
    dist_shard_allgather(c->d, c->h_grads, n, shard, esz == 2 ? DIST_U16 : DIST_F32);
    c->bk->op->to_dev(c->bk, buf, c->h_grads, bytes);
}

// The parameter communicator, stream and events, made by every rank's first
// unit gather (collective, in the same program order everywhere).
static void param_comm_init(gpu_comm *c) {
    if (c->param_comm) return;
    c->param_comm = world_comm(c->d);
    CU_CHECK(cudaStreamCreateWithFlags(&c->param_st, cudaStreamNonBlocking));
    for (int i = 0; i < GPU_COMM_UNIT_SLOTS; i++) {
        CU_CHECK(cudaEventCreateWithFlags(&c->ev_unit[i], cudaEventDisableTiming));
        CU_CHECK(cudaEventCreateWithFlags(&c->ev_ugrad[i], cudaEventDisableTiming));
    }
}

// ZeRO-3: a unit of the working weights from the ranks' slices. The slices
// are contiguous over the whole buffer, so a unit's boundaries fall inside
// them anywhere and the ranks own unequal parts of it: one grouped
// ncclBroadcast per owner (its part from its slice to everyone's dst),
// which NCCL runs as one all-gather of unequal parts.
void gpu_comm_unit_gather(gpu_comm *c, int slot, void *dst, const void *slice, int64_t n,
                          int64_t shard, int64_t lo, int64_t hi, int elem_bytes) {
    CHECK(slot >= 0 && slot < GPU_COMM_UNIT_SLOTS && lo <= hi && elem_bytes >= 2);
    dist_ctx *d = c->d;
    const size_t esz = (size_t)elem_bytes;
    if (c->kind == GPU_COMM_NCCL) {
        param_comm_init(c);
        after_compute(c, c->param_st);  // dst's last readers (and the slice's last update)
        NCCL_CHECK(ncclGroupStart());
        for (int r = 0; r < d->size; r++) {
            int64_t a, b;
            slice_of(n, shard, r, &a, &b);
            const int64_t own = a;
            if (a < lo) a = lo;
            if (b > hi) b = hi;
            if (b <= a) continue;
            char *recv = (char *)dst + (size_t)(a - lo) * esz;
            const void *send = r == d->rank ? (const char *)slice + (size_t)(a - own) * esz : recv;
            NCCL_CHECK(ncclBroadcast(send, recv, (size_t)(b - a), esz == 2 ? ncclBfloat16 : ncclFloat32,
                                     r, c->param_comm, c->param_st));
            if (r == d->rank) d->sent_bytes += (int64_t)(d->size - 1) * (b - a) * (int64_t)esz;
        }
        NCCL_CHECK(ncclGroupEnd());
        CU_CHECK(cudaEventRecord(c->ev_unit[slot], c->param_st));
        return;
    }
    // mpi: this rank's part to the host, an MPI all-gather of the parts,
    // the unit back to the device.
    const size_t bytes = esz * (size_t)(hi - lo);
    void *h = grow_pinned(&c->h_unit, &c->h_unit_cap, bytes ? bytes : 1);
    int64_t a, b;
    slice_of(n, shard, d->rank, &a, &b);
    const int64_t own = a;
    if (a < lo) a = lo;
    if (b > hi) b = hi;
    if (b > a)
        CU_CHECK(cudaMemcpyAsync((char *)h + (size_t)(a - lo) * esz,
                                 (const char *)slice + (size_t)(a - own) * esz, (size_t)(b - a) * esz,
                                 cudaMemcpyDeviceToHost, c->compute));
    CU_CHECK(cudaStreamSynchronize(c->compute));
    dist_range_gather_bytes(d, h, n, shard, lo, hi, esz);
    CU_CHECK(cudaMemcpyAsync(dst, h, bytes, cudaMemcpyHostToDevice, c->compute));
    CU_CHECK(cudaStreamSynchronize(c->compute));  // h is reused by the next gather
}

void gpu_comm_unit_wait(gpu_comm *c, int slot) {
    if (c->kind == GPU_COMM_NCCL && c->param_comm)
        CU_CHECK(cudaStreamWaitEvent(c->compute, c->ev_unit[slot], 0));
}

// The gradient side: as reduce_scatter_bucket, over one unit's buffer.
void gpu_comm_unit_reduce(gpu_comm *c, int slot, float *buf, int64_t n, int64_t shard, int64_t lo,
                          int64_t hi) {
    CHECK(slot >= 0 && slot < GPU_COMM_UNIT_SLOTS && lo <= hi);
    dist_ctx *d = c->d;
    if (c->kind == GPU_COMM_NCCL) {
        param_comm_init(c);
        after_compute(c, c->param_st);  // the unit's backward has written buf
        NCCL_CHECK(ncclGroupStart());
        for (int r = 0; r < d->size; r++) {
            int64_t a, b;
            slice_of(n, shard, r, &a, &b);
            if (a < lo) a = lo;
            if (b > hi) b = hi;
            if (b > a)
                NCCL_CHECK(ncclReduce(buf + (a - lo), buf + (a - lo), (size_t)(b - a), ncclFloat32,
                                      ncclSum, r, c->param_comm, c->param_st));
        }
        NCCL_CHECK(ncclGroupEnd());
        CU_CHECK(cudaEventRecord(c->ev_ugrad[slot], c->param_st));
        return;
    }
    // mpi: the unit through the host, all-reduced (the owner keeps its part).
    const size_t bytes = sizeof(float) * (size_t)(hi - lo);
    float *h = grow_pinned(&c->h_unit, &c->h_unit_cap, bytes ? bytes : 1);
    c->bk->op->to_host(c->bk, h, buf, bytes);
    dist_allreduce_grads(d, h, hi - lo);
    c->bk->op->to_dev(c->bk, buf, h, bytes);
}

void gpu_comm_unit_reduce_wait(gpu_comm *c, int slot) {
    if (c->kind == GPU_COMM_NCCL && c->param_comm)
        CU_CHECK(cudaStreamWaitEvent(c->compute, c->ev_ugrad[slot], 0));
}

// ---------------------------------------------------------------------------
// As the cuda backend's backend_comm (backend_comm.h).

static void *ops_create(backend *bk, dist_ctx *d, int transport, char *err, size_t errlen) {
    return gpu_comm_create(bk, d, transport, err, errlen);
}
static void ops_free(void *impl) { gpu_comm_free(impl); }
static const char *ops_name(const void *impl) { return gpu_comm_name(impl); }
static void ops_grad_begin(void *impl, float *grads, int64_t n) { gpu_comm_grad_begin(impl, grads, n); }
static void ops_grad_ready(void *impl, int64_t lo) { gpu_comm_grad_ready(impl, lo); }
static void ops_grad_end(void *impl) { gpu_comm_grad_end(impl); }
static bool ops_grad_copy_after(void *impl, int64_t lo, int64_t hi, int ev) {
    return gpu_comm_grad_copy_after(impl, lo, hi, ev);
}
static void ops_grad_begin_scatter(void *impl, float *grads, int64_t n, int64_t shard) {
    gpu_comm_grad_begin_scatter(impl, grads, n, shard);
}
static void ops_param_gather(void *impl, void *buf, int64_t n, int64_t shard, int elem_bytes) {
    gpu_comm_param_gather(impl, buf, n, shard, elem_bytes);
}
static void ops_unit_gather(void *impl, int slot, void *dst, const void *slice, int64_t n,
                            int64_t shard, int64_t lo, int64_t hi, int elem_bytes) {
    gpu_comm_unit_gather(impl, slot, dst, slice, n, shard, lo, hi, elem_bytes);
}
static void ops_unit_wait(void *impl, int slot) { gpu_comm_unit_wait(impl, slot); }
static void ops_unit_reduce(void *impl, int slot, float *buf, int64_t n, int64_t shard, int64_t lo,
                            int64_t hi) {
    gpu_comm_unit_reduce(impl, slot, buf, n, shard, lo, hi);
}
static void ops_unit_reduce_wait(void *impl, int slot) { gpu_comm_unit_reduce_wait(impl, slot); }
static model_attention ops_ring_attention(void *impl) {
    if (gpu_comm_dist(impl)->ulysses > 1) return gpu_ulysses_attention(impl);
    return gpu_ring_attention(impl);
}

const backend_comm_ops gpu_comm_ops = {
    .create = ops_create, .free = ops_free, .name = ops_name, .grad_begin = ops_grad_begin,
    .grad_ready = ops_grad_ready, .grad_end = ops_grad_end, .grad_copy_after = ops_grad_copy_after,
    .grad_begin_scatter = ops_grad_begin_scatter, .param_gather = ops_param_gather,
    .unit_gather = ops_unit_gather, .unit_wait = ops_unit_wait,
    .unit_reduce = ops_unit_reduce, .unit_reduce_wait = ops_unit_reduce_wait,
    .ring_attention = ops_ring_attention,
};
