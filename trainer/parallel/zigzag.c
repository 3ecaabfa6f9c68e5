// zigzag: sequence sharding for sequence parallelism. See zigzag.h.
#include "zigzag.h"

#include <stdbool.h>
#include <string.h>

#include "die.h"

void zigzag_layout_init(zigzag_layout *z, int64_t T, int sp, int rank) {
    CHECK(T > 0 && sp > 0 && rank >= 0 && rank < sp);
    int64_t n_chunks = 2 * (int64_t)sp;
    z->T = T;
    z->T_pad = (T + n_chunks - 1) / n_chunks * n_chunks;
    z->chunk = z->T_pad / n_chunks;
    z->T_local = 2 * z->chunk;
    z->sp = sp;
    z->rank = rank;
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
    int c = i < z->chunk ? 0 : 1;
    return zigzag_chunk_start(z, c) + (i - c * z->chunk);
}

void zigzag_shard(void *local, const void *global, size_t row_bytes, int64_t B,
                  const zigzag_layout *z, const void *pad_row) {
    char *dst = local;
    const char *src = global;
    for (int64_t b = 0; b < B; b++) {
        for (int c = 0; c < 2; c++) {
            int64_t g0 = zigzag_chunk_start(z, c);
            int64_t n_real = z->T - g0;  // rows of this chunk before the padding
            n_real = n_real < 0 ? 0 : (n_real > z->chunk ? z->chunk : n_real);
            char *d = dst + (size_t)(b * z->T_local + c * z->chunk) * row_bytes;
            memcpy(d, src + (size_t)(b * z->T + g0) * row_bytes, (size_t)n_real * row_bytes);
            for (int64_t i = n_real; i < z->chunk; i++) {
                if (pad_row) memcpy(d + (size_t)i * row_bytes, pad_row, row_bytes);
                else memset(d + (size_t)i * row_bytes, 0, row_bytes);
            }
        }
    }
}

void zigzag_unshard(void *global, const void *local, size_t row_bytes, int64_t B,
                    const zigzag_layout *z) {
    char *dst = global;
    const char *src = local;
    for (int64_t b = 0; b < B; b++) {
        for (int c = 0; c < 2; c++) {
            int64_t g0 = zigzag_chunk_start(z, c);
            int64_t n_real = z->T - g0;
            n_real = n_real < 0 ? 0 : (n_real > z->chunk ? z->chunk : n_real);
            memcpy(dst + (size_t)(b * z->T + g0) * row_bytes,
                   src + (size_t)(b * z->T_local + c * z->chunk) * row_bytes,
                   (size_t)n_real * row_bytes);
        }
    }
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
