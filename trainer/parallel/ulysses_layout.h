// ulysses_layout: the layout steps of the GPU Ulysses attention
// (ulysses_cuda.c) on device buffers: packing a tensor into all-to-all
// blocks and unpacking the blocks received, in both directions (sequence
// layout <-> head layout), as 2-D device copies on a stream. The same
// layout as the cpu ulysses.c (see ulysses.h): u rank j holds query heads
// [j H/U, (j+1) H/U) and kv heads from ulysses_kv_head_lo (replicated when
// U > n_kv_heads); block j of a send buffer goes to u rank j.
//
// Split from the hook so that one process can run the U ranks' steps with
// the all-to-all done by copies: tests/gpu/emu/test_emu_ulysses_layout.c
// (emulated GPU, against the layout computed element by element).
// Defined in ulysses_layout_cuda.c (CUDA builds and the emulated GPU); no
// CUDA header here: stream is a cudaStream_t, dt a cu_dtype.
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int U, me;          // ulysses degree, this rank's u rank
    int64_t B, TL, TG;  // sequences, rows of this rank, ring-local rows (U * TL)
    int H, Hkv, D;      // query heads, kv heads (of the whole model layer), head dim
    int dt;             // element type (cu_dtype: 0 fp32, 1 bf16)
} ulysses_layout;

// The heads of a tensor of `heads` heads (H or Hkv) that u rank j holds, W
// of them from *lo.
void ulysses_layout_heads(const ulysses_layout *l, int heads, int j, int *lo, int *W);
// Elements of one all-to-all block of a tensor of `heads` heads: B TL W D.
int64_t ulysses_layout_block(const ulysses_layout *l, int heads);

// Sequence -> head layout. x (B, TL, heads, D) -> send: U blocks (B, TL, W, D),
// block j = the heads of u rank j.
void ulysses_pack_seq(void *send, const void *x, int heads, const ulysses_layout *l, void *stream);
// recv: U blocks (B, TL, W, D), block i from u rank i -> y (B, TG, W, D):
// ring-local rows [i TL, (i+1) TL) of every sequence.
void ulysses_unpack_heads(void *y, const void *recv, int heads, const ulysses_layout *l,
                          void *stream);

// Head -> sequence layout. y (B, TG, W, D) -> send: block i = rows of u rank i.
void ulysses_pack_heads(void *send, const void *y, int heads, const ulysses_layout *l,
                        void *stream);
// recv: block j (B, TL, W, D) = heads of u rank j -> x (B, TL, heads, D),
// written (every head comes from exactly one rank: the attention output).
void ulysses_unpack_seq(void *x, const void *recv, int heads, const ulysses_layout *l,
                        void *stream);
// The same ADDED into x (the gradients: backward accumulates; the replicas
// of a kv head replicated over U / Hkv ranks are all added, which sums their
// gradients). scratch: (B, TL, heads, D) elements of dt; one pass over x per
// replica.
void ulysses_unpack_seq_add(void *x, void *scratch, const void *recv, int heads,
                            const ulysses_layout *l, void *stream);

// Segment ids: send: U copies of seg (B, TL) int32 (an all-gather by all-to-all).
void ulysses_pack_seg(int32_t *send, const int32_t *seg, const ulysses_layout *l, void *stream);
// recv: U blocks (B, TL) -> segh (B, TG).
void ulysses_unpack_seg(int32_t *segh, const int32_t *recv, const ulysses_layout *l, void *stream);
