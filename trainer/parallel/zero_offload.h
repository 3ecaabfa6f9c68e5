// zero_offload: the optimizer step on the host (parallel.offload optimizer or
// both; the ZeRO-Offload recipe, docs/distributed.md). The fp32 master is the
// model's host master (model_opts.host_master: no fp32 master on a bf16
// device): its whole pinned params, or under ZeRO-3 a pinned buffer of the
// rank's slice alone (model.hmaster). The AdamW moments of this rank's slice
// live in pinned host memory (train_step_setup), and one pinned buffer of
// the slice's length carries the gradients down and the updated weights back
// up:
//
//   compute:      backward ... layer l ... layer 0, reduction
//   copy stream:  D2H grad chunk K-1 | ... | D2H chunk 0 | H2D chunk K-1 | ...
//   host:                        AdamW chunk K-1 | AdamW chunk K-2 | ...
//   compute:                              wait H2D k, cast to the working dtype
//
// Chunks are runs of whole tensors of the slice (see
// ZERO_OFFLOAD_CHUNK_*), each with its own events: chunk k's AdamW starts as soon as its
// gradients are down, while the next chunks' copies run. A chunk's copy is
// queued as soon as its gradients are final, so the copies overlap the rest
// of the backward:
//  - one rank (no reduction): from the model's grad-ready hook
//    (zero_offload_grads_ready);
//  - several ranks, shard none / optimizer / gradients: the same hook first
//    starts the reduction buckets the backward has finished
//    (backend_comm_grad_ready), then queues the chunks whose buckets are all
//    started, the copy stream made to wait for the event of the last of
//    those buckets (backend_comm_grad_copy_after, zero_offload_grads_reduced):
//    a chunk goes down as soon as its sums (this rank's part of them,
//    sharded) are on the device, with no host wait (its AdamW still waits
//    for the gradient norm, after the whole reduction):
//
//   compute:      backward ... layer l ......... layer l-1 ..... layer 0
//   grad stream:       all-reduce / reduce-scatter bucket i | bucket i-1 | ...
//   copy stream:                          D2H chunks of bucket i | ...
//
//  - ZeRO-3 on several ranks (shard_step): once the reductions of the units
//    covering it are added into the rank's gradient slice on the last
//    micro-batch, unit by unit from the top of the buffer down.
// The host transport (mpi: ranks sharing a GPU) reduces only in
// backend_comm_grad_end; its chunks go down after it, from adamw. AdamW is the cpu
// backend's (kernels/cpu/adamw.c, OpenMP + simd), the very expression of the
// CUDA kernel (kernels/cuda/cu_adamw.cu), so an offloaded step gives the
// same bits as a device step (tests/gpu/emu/test_emu_stretch.sh offload,
// zero3_offload).
// The upload goes through the device gradient slice (fp32, free once the
// gradients are down) and is cast there into the bf16 working copy, by the
// same rounding as the device AdamW's copy; fp32 goes straight into the
// device's fp32 working weights.
#pragma once

#include <stdint.h>

#include "adamw.h"
#include "backend_comm.h"
#include "model.h"
#include "zero_shard.h"

// Floats per chunk, at least: an eighth of the slice, within [MIN, MAX]
// (16 MB copies on a big model; a few chunks even on a test's tiny one).
enum { ZERO_OFFLOAD_CHUNK_MIN = 1 << 16, ZERO_OFFLOAD_CHUNK_MAX = 1 << 22 };

typedef struct zero_offload {
    backend *bk;
    float *h_grad;     // (shard_len) pinned: the gradient slice, then the upload staging
    int n_chunks;
    int *chunk_tensor; // (n_chunks + 1) first tensor of s->tensors in each chunk
    int next_down;     // chunks [next_down, n_chunks) have their copy down queued
} zero_offload;

void zero_offload_init(zero_offload *o, backend *bk, const shard_layout *s);
void zero_offload_free(zero_offload *o);

// A step begins: no gradient chunk queued yet.
void zero_offload_begin(zero_offload *o);
// The gradients [lo, n) of the flat buffer are final (the backward's
// grad-ready hook on one rank; ZeRO-3's unit reductions added into the
// slice): queue the copy down of the chunks lying wholly above lo.
void zero_offload_grads_ready(zero_offload *o, model *m, const shard_layout *s, int64_t lo);
// Several ranks (after backend_comm_grad_ready): queue the copy down of the
// chunks whose reduction buckets are all started, ordered after those
// buckets on the device (backend_comm_grad_copy_after), from the top down.
void zero_offload_grads_reduced(zero_offload *o, model *m, const shard_layout *s, backend_comm *c);

// AdamW of this rank's slice [s->lo, s->hi) on the host: its device
// gradients down, its host master (model_hmaster_at) updated with adam_m /
// adam_v (host, the slice), its working weights up. Enqueued uploads
// complete before anything later on the compute stream runs.
void zero_offload_adamw(zero_offload *o, model *m, const shard_layout *s, float *adam_m,
                        float *adam_v, const adamw_hparams *hp, int64_t step, float grad_scale);
