// zigzag: sequence sharding for sequence parallelism (ring attention).
//
// A packed sequence of T tokens is padded at its END to T_pad, a multiple of
// 2 * sp, and cut into 2 * sp chunks of `chunk` tokens; sp rank r holds chunks
// r and 2 * sp - 1 - r, in that order, as T_local = 2 * chunk local rows. Under
// a causal mask every rank then has the same attention work (an early chunk
// and a late one). Only the packed sequence is padded, never each document.
//
// Everything that describes a token travels with it: token ids, targets,
// position ids (GLOBAL ones, restarting only at document boundaries, never
// recomputed per chunk) and segment ids. Padding tokens get target -1 (no
// loss), positions 0, 1, 2, ... and a segment id of their own, so they attend
// to nothing real and nothing real attends to them.
//
// Tested by tests/unit/test_zigzag.c (every rank of sp = 1..8 simulated in one
// process: shard + unshard round trip, chunk ownership, padding only at the
// end, positions global) and through tests/mpi/test_ring_attn.c.
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t T;        // real tokens per sequence
    int64_t T_pad;    // T rounded up to a multiple of 2 * sp * ulysses
    int64_t chunk;    // T_pad / (2 * sp) tokens per chunk
    int64_t T_local;  // 2 * chunk / ulysses rows held by each rank
    int sp, rank;     // ring size and this rank's place in it
    int ulysses, u_rank;  // the 2-D hybrid (below); 1, 0 for the plain ring
} zigzag_layout;

void zigzag_layout_init(zigzag_layout *z, int64_t T, int sp, int rank);

// The 2-D hybrid (trainer/parallel/ulysses.h): the sp ranks sharing a
// sequence are ring x ulysses. The ring position ring_rank owns its two
// zig-zag chunks as above (its "ring-local sequence", 2 * chunk rows: chunk
// ring_rank, then chunk 2 * ring - 1 - ring_rank); the ulysses ranks of that
// position split it in order, u rank u holding ring-local rows
// [u * T_local, (u + 1) * T_local), so the all-to-all over a ulysses group
// gathers the ring-local sequence in zig-zag order for its heads. A rank's
// rows may thus straddle the two chunks. ulysses == 1 is zigzag_layout_init.
void zigzag_layout_init2(zigzag_layout *z, int64_t T, int ring, int ulysses, int ring_rank,
                         int u_rank);
// The same from the sp degree and sp rank (sp = ring * ulysses, sp_rank =
// ring_rank * ulysses + u_rank, as in dist.h); ulysses <= 1 means 1.
void zigzag_layout_init_sp(zigzag_layout *z, int64_t T, int sp, int ulysses, int sp_rank);

// Global chunk index of local chunk c (0 or 1) of sp rank `rank`.
int zigzag_chunk_index(int sp, int rank, int c);

// Global token index of local row i (0 <= i < T_local); >= T means padding.
// (In the hybrid, use this, not the chunk starts below, for a rank's rows.)
int64_t zigzag_global_row(const zigzag_layout *z, int64_t i);

// Global token index of the first row of local chunk c (0 or 1): the q_start /
// k_start of that chunk for attention.
int64_t zigzag_chunk_start(const zigzag_layout *z, int c);

// Generic row copies. A "row" is one token's data of row_bytes bytes (e.g.
// H * D floats, or one int32).
// global: (B, T, row) -> local: (B, T_local, row); padding rows are copies of
// pad_row (row_bytes), or zeros when pad_row is NULL.
void zigzag_shard(void *local, const void *global, size_t row_bytes, int64_t B,
                  const zigzag_layout *z, const void *pad_row);
// The inverse for this rank's rows: local (B, T_local, row) -> the rows of
// global (B, T, row) this rank owns; padding rows are dropped, other rows of
// global are left untouched. Calling it for every rank of the ring rebuilds
// the whole sequence.
void zigzag_unshard(void *global, const void *local, size_t row_bytes, int64_t B,
                    const zigzag_layout *z);

// Shards a packed batch, all (B, T) -> (B, T_local). Any output may be NULL
// (not wanted). g_seg NULL means one document per sequence (segment id 0).
// Padding: token pad_token, target -1, positions 0, 1, 2, ..., segment id
// (largest segment id of that sequence) + 1.
void zigzag_shard_batch(int32_t *tokens, int32_t *targets, int32_t *pos, int32_t *seg,
                        const int32_t *g_tokens, const int32_t *g_targets,
                        const int32_t *g_pos, const int32_t *g_seg, int64_t B,
                        const zigzag_layout *z, int32_t pad_token);
