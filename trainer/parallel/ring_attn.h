// ring_attn: attention over a sequence split across the sp ranks of a
// dist_ctx (ring attention, zig-zag layout), forward and backward, built on
// the block kernels of kernels/cpu/attn.h. A drop-in replacement for
// attn_forward / attn_backward in the model: same tensors, local rows only.
//
// Each rank holds T_local = 2 * chunk rows per sequence: zig-zag chunks
// r and 2 * sp - 1 - r of the (padded) sequence (trainer/parallel/zigzag.h), each
// contiguous in global token index. Forward: sp steps; at step i the rank
// holds the K/V (and segment ids) of rank (r - i) mod sp, computes the
// (query chunk, key chunk) pairs with their global offsets and merges them
// into a running (out, lse) by log-sum-exp, while the block moves on to the
// next rank (double-buffered MPI_Isend/MPI_Irecv via dist_ring_shift). Pairs
// that causality masks entirely (key chunk after query chunk) are skipped
// before any call, so every rank computes 2 * sp + 1 of its 4 * sp pairs per
// sequence. GQA sends only the Hkv heads.
// Backward: recomputes every pair from the saved FINAL lse and
// delta = rowsum(dout * out) (computed once, locally); dQ accumulates
// locally; the dK/dV accumulators of each K/V block travel with it around the
// ring (one step behind, so the transfer overlaps the next pair's compute)
// and arrive back at the block's owner after sp hops. All accumulators are
// fp32.
//
// With sp == 1 the calls are exactly attn_forward / attn_backward.
//
// Tested by tests/mpi/test_ring_attn.c under 1, 2 and 4 ranks: out, lse, dq,
// dk, dv against single-rank attn_forward / attn_backward of the whole
// sequence for causal MHA, GQA, packed documents crossing chunk boundaries,
// non-causal, and lengths that need padding.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dist.h"

typedef struct {
    int64_t B;        // sequences in the local batch
    int64_t T_local;  // local rows per sequence (zigzag_layout.T_local; even when sp > 1)
    int H, Hkv, D;    // query heads, key/value heads (H % Hkv == 0), head dim
    float scale;      // softmax scale, usually 1/sqrt(D)
    bool causal;
} ring_shape;

// Counters since creation (or the last reset), for benchmarks and tests.
typedef struct {
    int64_t blocks_computed;  // (query chunk, key chunk) kernel calls
    int64_t blocks_skipped;   // pairs masked entirely by causality, never computed
    double compute_s;         // seconds inside the block kernels
    double wait_s;            // seconds waiting for transfers after compute
} ring_attn_stats;

// Workspace of the ring (K/V and dK/dV buffers in flight, LSE scratch),
// grown to the largest shape seen; one per model, reused by every layer.
typedef struct ring_attn ring_attn;

ring_attn *ring_attn_create(dist_ctx *d);
void ring_attn_free(ring_attn *r);

// q, out: (B, T_local, H, D); k, v: (B, T_local, Hkv, D); seg: (B, T_local)
// segment ids or NULL (then padding, if any, is only masked causally); NULL on
// every rank of the ring or on none. Collective over the sp ring.
// out written; lse: (B, H, T_local) written, as attn_forward would give for
// these rows on the whole sequence (keep it for the backward).
void ring_attn_forward(ring_attn *r, float *out, float *lse, const float *q, const float *k,
                       const float *v, const int32_t *seg, const ring_shape *s);

// Backward of ring_attn_forward: ACCUMULATES (+=) into dq: (B, T_local, H, D)
// and dk, dv: (B, T_local, Hkv, D), the gradients of this rank's own rows.
// dout: (B, T_local, H, D); out, lse as ring_attn_forward returned them.
void ring_attn_backward(ring_attn *r, float *dq, float *dk, float *dv, const float *dout,
                        const float *q, const float *k, const float *v, const float *out,
                        const float *lse, const int32_t *seg, const ring_shape *s);

void ring_attn_stats_get(const ring_attn *r, ring_attn_stats *stats);
void ring_attn_stats_reset(ring_attn *r);
