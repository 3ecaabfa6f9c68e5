// ulysses: DeepSpeed-Ulysses (all-to-all) sequence parallelism and the 2-D
// hybrid with the zig-zag ring (USP / LoongTrain style), forward and
// backward, on the CPU (fp32, MPI). A drop-in replacement for
// ring_attn_forward / ring_attn_backward: same tensors, this rank's rows.
//
// Grid (dist.h): the sp ranks sharing a sequence are ring x ulysses, u ranks
// adjacent. Rows (zigzag.h, zigzag_layout_init2): ring position p owns the
// zig-zag chunks p and 2 * ring - 1 - p (its "ring-local sequence", TG rows);
// the ulysses ranks of position p split those TG rows in order, TL = TG /
// ulysses each. Every token's RoPE is applied before the exchange, with its
// GLOBAL position, so nothing positional moves but the segment ids.
//
// Forward: all-to-all over the ulysses group turns q (B, TL, H, D) into
// (B, TG, H / U, D): the whole ring-local sequence, in zig-zag order, for
// this rank's query heads; k, v likewise for its kv heads. Then the ring
// attention of ring_attn.c runs over the ring group (the ranks with the same
// u rank) on that head subset (ring == 1: plain attention of the whole
// sequence), and a last all-to-all brings the output back to (B, TL, H, D).
// The lse of the head-sharded attention, (B, H / U, TG), has the size of the
// model's (B, H, TL) lse buffer and is kept there for the backward, opaque to
// the model.
// Backward: q, k, v, out and dout are exchanged to the head layout again (no
// extra activation memory; the cost is 4 extra all-to-alls per layer, see
// docs/distributed.md), ring backward on the head subset, and dq, dk, dv go
// back by all-to-all and are ADDED into the caller's gradients.
//
// Heads: u rank j holds query heads [j H/U, (j+1) H/U). kv heads: when
// n_kv_heads >= U, each rank gets n_kv_heads / U of them (each sent once);
// when n_kv_heads < U (U a multiple of n_kv_heads), each kv head is
// replicated on the U / n_kv_heads ranks whose query heads read it (one kv
// head per rank, the minimum), and in the backward the gradients of the
// replicas are summed into the owner's rows by the reverse all-to-all.
//
// Tested by tests/mpi/test_ulysses_attn.c (out, lse, dq, dk, dv against
// 1-rank attn_forward / attn_backward of the whole sequence, every ring x
// ulysses factoring of the ranks; MHA, GQA with kv replication, packed
// documents across chunk boundaries, padding) and tests/mpi/test_model_grid.c
// (the whole model on every dp x ring x ulysses grid).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "dist.h"
#include "ring_attn.h"

// Heads for a ulysses degree: 0, or -1 with one line naming the keys, e.g.
// "parallel.ulysses (4) must divide model.n_heads (6)".
int ulysses_check_heads(int ulysses, int n_heads, int n_kv_heads, char *err, size_t errlen);

// kv heads per rank and the first kv head of u rank j (see above).
int ulysses_kv_heads_local(int ulysses, int n_kv_heads);
int ulysses_kv_head_lo(int ulysses, int n_kv_heads, int j);

typedef struct {
    int64_t a2a_bytes;   // bytes this rank sent to other ranks by all-to-all / all-gather
    int64_t ring_bytes;  // bytes this rank sent around the ring
    double a2a_s;        // seconds in the all-to-alls (blocking)
    ring_attn_stats ring;
} ulysses_stats;

typedef struct ulysses_attn ulysses_attn;

// d: a grid from dist_init_grid3 (read at creation: recreate after a new
// grid). Any ulysses >= 1 and ring >= 1.
ulysses_attn *ulysses_attn_create(dist_ctx *d);
void ulysses_attn_free(ulysses_attn *u);

// s: the LOCAL shape (T_local = TL rows, all H / Hkv heads). lse: (B, H, TL)
// floats of storage, holding the head-sharded lse (see above). Collective
// over the sp group (ulysses group, then ring group).
void ulysses_attn_forward(ulysses_attn *u, float *out, float *lse, const float *q,
                          const float *k, const float *v, const int32_t *seg,
                          const ring_shape *s);
// Accumulates (+=) into dq (B, TL, H, D), dk, dv (B, TL, Hkv, D).
void ulysses_attn_backward(ulysses_attn *u, float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *out,
                           const float *lse, const int32_t *seg, const ring_shape *s);

void ulysses_attn_stats_get(const ulysses_attn *u, ulysses_stats *st);
void ulysses_attn_stats_reset(ulysses_attn *u);
