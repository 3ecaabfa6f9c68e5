// zero_offload: the optimizer step on the host (parallel.offload optimizer or
// both; the ZeRO-Offload recipe, docs/distributed.md). The fp32 master is the
// model's host params (model_opts.host_master: no fp32 master on a bf16
// device), the AdamW moments of this rank's slice live in pinned host memory
// (train_step_setup), and one pinned buffer of the slice's length carries the
// gradients down and the updated weights back up:
//
//   copy stream:  D2H grad chunk 0 | D2H chunk 1 | ... | H2D chunk 0 | ...
//   host:                  AdamW chunk 0 | AdamW chunk 1 | ...
//   compute:                       wait H2D k, cast to the working dtype
//
// Chunks are runs of whole tensors of the slice (>= ZERO_OFFLOAD_CHUNK
// floats), each with its own events: chunk k's AdamW starts as soon as its
// gradients are down, while the next chunks' copies run. AdamW is the cpu
// backend's (kernels/cpu/adamw.c, OpenMP + simd), the very expression of the
// CUDA kernel (kernels/cuda/cu_adamw.cu), so an offloaded step gives the
// same bits as a device step (tests/gpu/emu/test_emu_stretch.sh offload).
// The upload goes through the device gradient slice (fp32, free once the
// gradients are down) and is cast there into the bf16 working copy, by the
// same rounding as the device AdamW's copy.
#pragma once

#include <stdint.h>

#include "adamw.h"
#include "model.h"
#include "zero_shard.h"

enum { ZERO_OFFLOAD_CHUNK = 1 << 22 };  // floats per chunk, at least (16 MB)

typedef struct zero_offload {
    backend *bk;
    float *h_grad;     // (shard_len) pinned: the gradient slice, then the upload staging
    int n_chunks;
    int *chunk_tensor; // (n_chunks + 1) first tensor of s->tensors in each chunk
} zero_offload;

void zero_offload_init(zero_offload *o, backend *bk, const shard_layout *s);
void zero_offload_free(zero_offload *o);

// AdamW of this rank's slice [s->lo, s->hi) on the host: m->dgrads down,
// m->params updated with adam_m / adam_v (host, the slice), the slice of
// m->work up. Enqueued uploads complete before anything later on the
// compute stream runs.
void zero_offload_adamw(zero_offload *o, model *m, const shard_layout *s, float *adam_m,
                        float *adam_v, const adamw_hparams *hp, int64_t step, float grad_scale);
