// zigzag: sequence sharding for sequence parallelism. See zigzag.h.
#include "zigzag.h"

#include <stdbool.h>
#include <string.h>

#include "die.h"

void zigzag_layout_init(zigzag_layout *z, int64_t T, int sp, int rank) {
    zigzag_layout_init2(z, T, sp, 1, rank, 0);
}

void zigzag_layout_init2(zigzag_layout *z, int64_t T, int ring, int ulysses, int ring_rank,
                         int u_rank) {
    CHECK(T > 0 && ring > 0 && ring_rank >= 0 && ring_rank < ring);
    CHECK(ulysses > 0 && u_rank >= 0 && u_rank < ulysses);
    int64_t n_chunks = 2 * (int64_t)ring, mult = n_chunks * ulysses;
    z->T = T;
    z->T_pad = (T + mult - 1) / mult * mult;
    z->chunk = z->T_pad / n_chunks;
    z->T_local = 2 * z->chunk / ulysses;
    z->sp = ring;
    z->rank = ring_rank;
    z->ulysses = ulysses;
    z->u_rank = u_rank;
}

void zigzag_layout_init_sp(zigzag_layout *z, int64_t T, int sp, int ulysses, int sp_rank) {
    if (ulysses < 1) ulysses = 1;
    CHECK(sp % ulysses == 0);
    zigzag_layout_init2(z, T, sp / ulysses, ulysses, sp_rank / ulysses, sp_rank % ulysses);
}

int zigzag_chunk_index(int sp, int rank, int c) {
    CHECK(c == 0 || c == 1);
    return c == 0 ? rank : 2 * sp - 1 - rank;
}

int64_t zigzag_chunk_start(const zigzag_layout *z, int c) {
    return zigzag_chunk_index(z->sp, z->rank, c) * z->chunk;
}

int64_t zigzag_global_row(const zigzag_layout *z, int64_t i) {
    CHECK(i >= 0 && i < z->T_local);
    int64_t j = z->u_rank * z->T_local + i;  // row of the ring-local sequence
    int c = j < z->chunk ? 0 : 1;
    return zigzag_chunk_start(z, c) + (j - c * z->chunk);
}

// Calls fn for each run of local rows [i, i + n) that are consecutive global
// rows starting at g (at most three runs: the two chunks, cut by the padding).
typedef void (*run_fn)(void *ctx, int64_t b, int64_t i, int64_t g, int64_t n);

static void for_each_run(const zigzag_layout *z, int64_t b, run_fn fn, void *ctx) {
    int64_t lo = z->u_rank * z->T_local, hi = lo + z->T_local;  // ring-local rows
    for (int c = 0; c < 2; c++) {
        int64_t a = lo > c * z->chunk ? lo : c * z->chunk;
        int64_t e = hi < (c + 1) * z->chunk ? hi : (c + 1) * z->chunk;
        if (a >= e) continue;
        fn(ctx, b, a - lo, zigzag_chunk_start(z, c) + (a - c * z->chunk), e - a);
    }
}

typedef struct {
    char *local;
    const char *global;
    size_t row_bytes;
    const zigzag_layout *z;
    const void *pad_row;
    bool to_global;
} copy_ctx;

static void copy_run(void *ctx, int64_t b, int64_t i, int64_t g, int64_t n) {
    const copy_ctx *c = ctx;
    const zigzag_layout *z = c->z;
    int64_t n_real = z->T - g;  // rows of this run before the padding
    n_real = n_real < 0 ? 0 : (n_real > n ? n : n_real);
    char *l = c->local + (size_t)(b * z->T_local + i) * c->row_bytes;
    char *gl = (char *)c->global + (size_t)(b * z->T + g) * c->row_bytes;
    if (c->to_global) {
        memcpy(gl, l, (size_t)n_real * c->row_bytes);
        return;
    }
    memcpy(l, gl, (size_t)n_real * c->row_bytes);
    for (int64_t k = n_real; k < n; k++) {
        if (c->pad_row) memcpy(l + (size_t)k * c->row_bytes, c->pad_row, c->row_bytes);
        else memset(l + (size_t)k * c->row_bytes, 0, c->row_bytes);
    }
}

void zigzag_shard(void *local, const void *global, size_t row_bytes, int64_t B,
                  const zigzag_layout *z, const void *pad_row) {
    copy_ctx c = {.local = local, .global = global, .row_bytes = row_bytes, .z = z,
                  .pad_row = pad_row, .to_global = false};
    for (int64_t b = 0; b < B; b++) for_each_run(z, b, copy_run, &c);
}

void zigzag_unshard(void *global, const void *local, size_t row_bytes, int64_t B,
                    const zigzag_layout *z) {
    copy_ctx c = {.local = (char *)local, .global = global, .row_bytes = row_bytes, .z = z,
                  .to_global = true};
    for (int64_t b = 0; b < B; b++) for_each_run(z, b, copy_run, &c);
}

void zigzag_shard_batch(int32_t *tokens, int32_t *targets, int32_t *pos, int32_t *seg,
                        const int32_t *g_tokens, const int32_t *g_targets,
                        const int32_t *g_pos, const int32_t *g_seg, int64_t B,
                        const zigzag_layout *z, int32_t pad_token) {
    const int32_t no_target = -1;
    if (tokens) zigzag_shard(tokens, g_tokens, sizeof(int32_t), B, z, &pad_token);
    if (targets) zigzag_shard(targets, g_targets, sizeof(int32_t), B, z, &no_target);
    // Positions and segment ids of padding depend on the global index and the
    // sequence, so these are filled row by row.
    for (int64_t b = 0; b < B; b++) {
        int32_t pad_seg = 1;
        if (seg && g_seg) {
            int32_t mx = g_seg[b * z->T];
            for (int64_t t = 1; t < z->T; t++) mx = g_seg[b * z->T + t] > mx ? g_seg[b * z->T + t] : mx;
            CHECK(mx < INT32_MAX);
            pad_seg = mx + 1;
        }
        for (int64_t i = 0; i < z->T_local; i++) {
            int64_t g = zigzag_global_row(z, i);
            bool pad = g >= z->T;
            int64_t li = b * z->T_local + i, gi = b * z->T + g;
            if (pos) pos[li] = pad ? (int32_t)(g - z->T) : g_pos[gi];
            if (seg) seg[li] = pad ? pad_seg : (g_seg ? g_seg[gi] : 0);
        }
    }
}
