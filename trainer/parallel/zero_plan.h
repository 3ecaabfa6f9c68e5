// zero_plan: the per-rank memory of a training step under parallel.shard and
// parallel.offload, item by item (docs/distributed.md has the formulas).
// Built on model_mem_plan (the model's own buffer plan), so the items that
// this build allocates are the allocation to the byte (tests/unit/
// test_zero_plan.c counts them); the others are a design, marked as such.
//
// Per rank, n parameters, W = dp * sp ranks, s = ceil(n / W), b = bytes of
// the activation dtype (2 for bf16; 0 work copy when fp32):
//   none        params 4n  grads 4n  moments 8n  work b*n
//   optimizer   params 4n  grads 4n  moments 8s  work b*n          (built)
//   gradients   params 4n  grads 4n  moments 8s  work b*n          (built:
//               the backward accumulates into the model's whole gradient
//               buffer; only the reduction is a reduce-scatter)
//   parameters  params 4s  grads 4s + 4u (cpu) / 4s + 8u (cuda)  moments 8s
//               work b*s  gathered 2*b'*u (tied embeddings: 3*b'*u on a
//               device, b'*(2u + C) on the cpu)
//               (u = the largest unit gathered at once: the embedding, a
//               decoder layer, or the final norm + LM head; b' = b, or 4
//               when fp32; two unit buffers: one computing, one prefetched;
//               tied, the last layer stays held through the head, which
//               holds the final norm and the embedding: a third).
//               cpu: the resident set (the flat buffers stay whole in
//               address space, zero_pages.h; one unit of fp32 gradients
//               before its reduce-scatter; measured by
//               bench/bench_zero_rss.c). cuda: the allocation (the slice of
//               the master and working weights and of the gradients, two
//               unit buffers of weights and two of fp32 gradients).
// On the cpu backend `gradients` also keeps only 4s + the buckets in flight
// of its gradients resident; the plan counts the allocation (4n), an upper
// bound there.
// offload optimizer (built on cuda, every shard mode; zero_offload.h): the
// fp32 master (the model's host params, 4n; under ZeRO-3 the slice alone,
// 4s, pinned apart from the pageable whole-size params) and the moments
// (8s) move to pinned host memory, plus a pinned copy of the gradient slice
// (4s); the device keeps the working copy (b*n, or 4n of fp32 weights when
// b = 0; ZeRO-3: b*s, or 4s) and the gradients.
// offload activations (built on cuda, needs recompute): of the per-layer
// residual checkpoints kept for recomputation ((L + 1) x tokens x C x b),
// the device keeps two slots (the layer computing and the one prefetched),
// the host the other L - 1.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "zero_shard.h"

enum { ZERO_OFFLOAD_OPTIMIZER = 1, ZERO_OFFLOAD_ACTIVATIONS = 2 };  // bit flags

typedef struct {
    // device (the backend's memory; host memory on the cpu backend)
    size_t params, grads, moments, work, gather, activations, scratch, device_total;
    // pinned host memory taken by offload
    size_t host_params, host_grads, host_moments, host_activations, host_total;
    int64_t n_params, shard;  // parameters, and per rank
    bool built;               // every item is what this build allocates
} zero_mem;

// offload: ZERO_OFFLOAD_* flags. world: dp * sp.
void zero_mem_plan(zero_mem *out, const model_config *cfg, int64_t max_tokens, bool recompute,
                   bk_dtype dt, bool device, shard_mode mode, int offload, int world);

// The plan as printed by --dry-run: one line of totals, one of items.
void zero_mem_print(FILE *f, const zero_mem *z, shard_mode mode, int offload);
