// backend_comm: the communication of a training step on a backend: the
// gradient all-reduce (bucketed, started from the model's grad-ready hook so
// it overlaps backward) and, for sp > 1, ring attention as the model's
// attention hook. cpu: dist.c (MPI) and ring_attn.c; cuda: gpu_comm.h (NCCL
// or host-staged MPI) and ring_attn_cuda.c. train.c calls only this.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "dist.h"
#include "model.h"

typedef struct backend_comm backend_comm;

// One transport's implementation of the calls below (impl: its state). The
// cpu's is MPI on host buffers + ring_attn.c (backend_comm.c); the cuda
// backend's is gpu_comm_ops (gpu_comm.h). A table instead of #ifdefs: the
// dispatch reads the same in every build.
typedef struct {
    void *(*create)(backend *bk, dist_ctx *d, int transport, char *err, size_t errlen);
    void (*free)(void *impl);
    const char *(*name)(const void *impl);
    void (*grad_begin)(void *impl, float *grads, int64_t n);
    void (*grad_ready)(void *impl, int64_t lo);
    void (*grad_end)(void *impl);
    // Offload: the backend's copies (of event ev's lane) ordered after the
    // reduction of grads[lo, hi) (see backend_comm_grad_copy_after); NULL:
    // never (the cpu, whose backend keeps the gradients in host memory).
    bool (*grad_copy_after)(void *impl, int64_t lo, int64_t hi, int ev);
    // ZeRO-2/3 (shard.h): the buckets reduce-scattered; rank r keeps the sum
    // of grads[r * shard, ..) in place. Then grad_ready / grad_end as above.
    void (*grad_begin_scatter)(void *impl, float *grads, int64_t n, int64_t shard);
    // Every rank's slice of buf (n elements of elem_bytes, 4 = fp32, 2 = bf16)
    // to every rank, in place; returns when buf is whole.
    void (*param_gather)(void *impl, void *buf, int64_t n, int64_t shard, int elem_bytes);
    // ZeRO-3 on a device: the elements [lo, hi) of a buffer sharded as
    // above (this rank's slice at `slice`) gathered into dst, asynchronously;
    // unit_wait orders the compute after the gather of that slot (0 or 1).
    // NULL on the cpu, whose ZeRO-3 gathers in place (zero_shard.c, dist.h).
    void (*unit_gather)(void *impl, int slot, void *dst, const void *slice, int64_t n,
                        int64_t shard, int64_t lo, int64_t hi, int elem_bytes);
    void (*unit_wait)(void *impl, int slot);
    // A unit's fp32 gradients (buf: elements [lo, hi)) summed over the
    // ranks, each owner's part in place in its buf, asynchronously;
    // unit_reduce_wait orders the compute after the reduction of that slot.
    void (*unit_reduce)(void *impl, int slot, float *buf, int64_t n, int64_t shard, int64_t lo,
                        int64_t hi);
    void (*unit_reduce_wait)(void *impl, int slot);
    model_attention (*ring_attention)(void *impl);
} backend_comm_ops;

// Collective over the world. transport: cfg_transport (0 auto, 1 nccl, 2
// mpi; ignored on the cpu). NULL with one line in err on a user error.
backend_comm *backend_comm_create(backend *bk, dist_ctx *d, int transport, char *err,
                                  size_t errlen);
void backend_comm_free(backend_comm *c);
const char *backend_comm_name(const backend_comm *c);  // "mpi", "nccl 2.21.5", "mpi (host-staged)"

// grads: the backend's fp32 gradient buffer (m->dgrads).
void backend_comm_grad_begin(backend_comm *c, float *grads, int64_t n);
void backend_comm_grad_ready(backend_comm *c, int64_t lo);
void backend_comm_grad_end(backend_comm *c);
// parallel.offload optimizer with several ranks (zero_offload.h): orders
// the backend's copy_async queued from now on on the lane of event ev
// (BK_COPY_LANE) after the reduction of
// grads[lo, hi) (all-reduce, or this rank's part of the reduce-scatter), by
// an event of the buckets covering it: no host wait. True when those buckets
// are started (grad_ready); false, and nothing ordered, when one is not yet,
// or when the transport reduces only in grad_end (mpi): such copies are
// queued after grad_end, which orders the compute stream (and so every later
// copy_async) after the whole reduction.
bool backend_comm_grad_copy_after(backend_comm *c, int64_t lo, int64_t hi, int ev);
void backend_comm_grad_begin_scatter(backend_comm *c, float *grads, int64_t n, int64_t shard);
void backend_comm_param_gather(backend_comm *c, void *buf, int64_t n, int64_t shard, int elem_bytes);
void backend_comm_unit_gather(backend_comm *c, int slot, void *dst, const void *slice, int64_t n,
                              int64_t shard, int64_t lo, int64_t hi, int elem_bytes);
void backend_comm_unit_wait(backend_comm *c, int slot);
void backend_comm_unit_reduce(backend_comm *c, int slot, float *buf, int64_t n, int64_t shard,
                              int64_t lo, int64_t hi);
void backend_comm_unit_reduce_wait(backend_comm *c, int slot);

// The sequence-parallel attention hook for the model (sp > 1): ring
// attention, or ulysses / ring x ulysses when the grid has ulysses > 1
// (cpu: ulysses.c; cuda: ulysses_cuda.c).
model_attention backend_comm_ring_attention(backend_comm *c);
