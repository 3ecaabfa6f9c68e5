// gpu_comm: how cuda ranks talk. Two transports behind one interface, so
// the GPU ring attention (ring_attn_cuda.c) and the gradient all-reduce have
// one logic whichever carries the bytes:
//   nccl: communicators over the MPI world (ncclUniqueId broadcast over MPI):
//         one for the ring / all-to-all transfers (ncclSend/ncclRecv) on a
//         comm stream, one for the gradient all-reduce / reduce-scatter and
//         the ZeRO parameter all-gather on a gradient stream, so a ring step
//         never queues behind a gradient bucket. Each transfer records an
//         event on its stream right after it is enqueued and the compute
//         stream waits for exactly that event: compute enqueued in between
//         overlaps the transfer, and waiting for one transfer never waits
//         for a later one;
//   mpi:  the same exchanges through host copies of the device buffers
//         (dist.c), for ranks that share one GPU (NCCL refuses two ranks on
//         one device); not overlapped.
// No CUDA header here: backend_comm.c (the one dispatch point) includes it.
// Defined in gpu_comm_cuda.c; tested on a GPU by tests/gpu/test_gpu_ring.c
// (+ .sh: 1 rank over nccl and 2 ranks over mpi against the cpu ring),
// tests/gpu/test_gpu_shard.c (+ .sh: the gradient reduce-scatter and
// all-gather), tests/gpu/test_gpu_alltoall.c (+ .sh) and
// tests/gpu/test_gpu_ulysses.c (+ .sh). The same programs run in CI on
// emulated GPUs, over an NCCL shim (NCCL over MPI) and over host-staged
// MPI: gpuemu_ring / _shard / _alltoall / _ulysses, and the trainer in
// gpuemu_stretch_* (tests/gpu/emu/README.md; the ZeRO-3 unit gathers and
// reductions in gpuemu_stretch_zero3, _zero3_resume, _zero3_mpi; the
// offload copies chained to the gradient buckets in
// tests/gpu/test_gpu_offload.c, gpuemu_offload and
// gpuemu_stretch_offload_dp).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "backend_comm.h"
#include "dist.h"
#include "model.h"

typedef enum { GPU_COMM_NCCL = 1, GPU_COMM_MPI = 2 } gpu_comm_kind;  // == CFG_TRANSPORT_*

typedef struct gpu_comm gpu_comm;

// One ring step in flight (several shifts may share it).
typedef struct {
    bool nccl_pending;  // a transfer was enqueued on the comm stream
    int ev;             // nccl: the comm's event slot recorded after its last shift
    dist_xfer mx;       // mpi: the host transfers
    int n_stage;        // mpi: host -> device copies to do after the wait
    struct {
        void *dev;
        const void *host;
        size_t bytes;
    } stage[DIST_XFER_MAX];
} gpu_xfer;

// Collective over the world. kind 0 = auto: nccl unless ranks share a GPU.
// Returns NULL with one line in err (e.g. nccl forced with ranks sharing a GPU).
gpu_comm *gpu_comm_create(backend *bk, dist_ctx *d, int kind, char *err, size_t errlen);
void gpu_comm_free(gpu_comm *c);
// "mpi", or "nccl X.Y.Z" with the version of the NCCL library loaded (ncclGetVersion).
const char *gpu_comm_name(const gpu_comm *c);

// Ring shift on the ring group (dist.h: ring, ring_rank; the sp ranks when
// ulysses == 1), device buffers: sends count elements of send to ring rank
// + 1, receives from ring rank - 1 (as dist_ring_shift on dist_ring_view). The
// compute enqueued before the call is complete before the bytes move; the
// compute enqueued after gpu_comm_wait sees recv (and waits for nothing
// enqueued on the comm stream after x's last shift). At most
// GPU_COMM_XFERS transfers are in flight (shifted, not yet waited for).
enum { GPU_COMM_XFERS = 8 };
void gpu_comm_shift(gpu_comm *c, gpu_xfer *x, void *recv, const void *send, int64_t count,
                    dist_dtype type, int tag);
void gpu_comm_wait(gpu_comm *c, gpu_xfer *x);

// Ulysses all-to-all over this rank's u group (dist.h: dist_alltoall), device
// buffers: block j (count elements) of send goes to u rank j, block i of
// recv comes from u rank i. nccl: one grouped ncclSend/ncclRecv per peer on
// the comm stream, ordered after the compute enqueued before the call and
// before the compute enqueued after it; mpi: staged through pinned host
// copies and MPI_Alltoall. Bytes to other ranks are added to d->sent_bytes.
// Used by the GPU ulysses attention (ulysses_cuda.c).
void gpu_comm_alltoall(gpu_comm *c, void *recv, const void *send, int64_t count,
                       dist_dtype type);

// Gradient all-reduce over all ranks, bucketed (DIST_BUCKET_FLOATS), buckets
// started in descending order as backward finalizes them (see dist.h).
void gpu_comm_grad_begin(gpu_comm *c, float *grads, int64_t n);
void gpu_comm_grad_ready(gpu_comm *c, int64_t lo);
void gpu_comm_grad_end(gpu_comm *c);
// Offload (zero_offload.h): the backend's copy stream of event ev (backend_cuda_copy_stream)
// made to wait for the event recorded after the last-started bucket that
// covers grads[lo, hi), so the copies queued after it read the sums; false,
// and nothing queued, while a bucket over [lo, hi) is not started yet (and
// always over mpi, which reduces in grad_end).
bool gpu_comm_grad_copy_after(gpu_comm *c, int64_t lo, int64_t hi, int ev);
// ZeRO-2: the buckets reduce-scattered to contiguous slices of shard floats
// (rank r keeps the sum of grads[r * shard, ..)); then _ready / _end.
void gpu_comm_grad_begin_scatter(gpu_comm *c, float *grads, int64_t n, int64_t shard);
// Every rank's slice of buf (n elements of elem_bytes 4 or 2) to all, in place.
void gpu_comm_param_gather(gpu_comm *c, void *buf, int64_t n, int64_t shard, int elem_bytes);  // the compute stream then sees the sums
// ZeRO-3: the elements [lo, hi) of a flat buffer of n elements (elem_bytes
// 4 or 2), sharded in slices of shard (this rank's slice at `slice`), into
// dst (hi - lo elements). nccl: one grouped ncclBroadcast per owning rank on
// a parameter communicator and stream of its own, after the compute
// enqueued so far (so dst's previous readers are done), an event recorded
// after it in slot `slot` (< GPU_COMM_UNIT_SLOTS); gpu_comm_unit_wait makes
// the compute stream wait for exactly that event. mpi: staged through the
// host, complete on return.
enum { GPU_COMM_UNIT_SLOTS = MODEL_MAX_HELD_UNITS };  // a gather slot per ZeRO-3 unit buffer (zero_shard.h)
void gpu_comm_unit_gather(gpu_comm *c, int slot, void *dst, const void *slice, int64_t n,
                          int64_t shard, int64_t lo, int64_t hi, int elem_bytes);
void gpu_comm_unit_wait(gpu_comm *c, int slot);
// ZeRO-3: a unit's fp32 gradients (buf, the elements [lo, hi) of the flat
// buffer) summed over the ranks, each rank receiving the sum of its slice's
// part in place in buf (grouped ncclReduce per owner on the parameter
// stream, after the compute enqueued so far, an event in grad slot `slot`);
// gpu_comm_unit_reduce_wait orders the compute after it. mpi: through the
// host, complete on return.
void gpu_comm_unit_reduce(gpu_comm *c, int slot, float *buf, int64_t n, int64_t shard, int64_t lo,
                          int64_t hi);
void gpu_comm_unit_reduce_wait(gpu_comm *c, int slot);

// Ring attention on the GPU over this comm's ring groups (ring_attn_cuda.c),
// as a model hook.
model_attention gpu_ring_attention(gpu_comm *c);
// Ulysses / ring x ulysses attention on the GPU (ulysses_cuda.c; the
// algorithm of ulysses.h), as a model hook; needs ulysses_check_heads.
model_attention gpu_ulysses_attention(gpu_comm *c);
dist_ctx *gpu_comm_dist(gpu_comm *c);
backend *gpu_comm_backend(gpu_comm *c);

// This transport as the cuda backend's backend_comm (defined only in CUDA
// builds; backend_comm.c picks it for cuda backends).
extern const backend_comm_ops gpu_comm_ops;
