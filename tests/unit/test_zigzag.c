// zigzag: layouts, shard/unshard round trips with every rank of the ring
// simulated in one process, and a packed batch worked out by hand.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "zigzag.h"

static const int SPS[] = {1, 2, 3, 4, 8};
static const int64_t TS[] = {1, 5, 16, 50, 64, 67};

// Layout arithmetic; every padded index is held by exactly one rank, chunks
// r and 2sp-1-r in that order, padding only at the end.
static void test_layout(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof SPS / sizeof *SPS; i++) {
        for (size_t j = 0; j < sizeof TS / sizeof *TS; j++) {
            int sp = SPS[i];
            int64_t T = TS[j];
            int *seen = calloc((size_t)(T + 2 * sp), sizeof *seen);
            int64_t T_pad = 0;
            for (int r = 0; r < sp; r++) {
                zigzag_layout z;
                zigzag_layout_init(&z, T, sp, r);
                T_pad = z.T_pad;
                assert_int_equal(z.T_pad % (2 * sp), 0);
                assert_true(z.T_pad >= T && z.T_pad < T + 2 * sp);
                assert_int_equal(z.chunk * 2 * sp, z.T_pad);
                assert_int_equal(z.T_local, 2 * z.chunk);
                assert_int_equal(zigzag_chunk_start(&z, 0), (int64_t)r * z.chunk);
                assert_int_equal(zigzag_chunk_start(&z, 1), (int64_t)(2 * sp - 1 - r) * z.chunk);
                for (int64_t l = 0; l < z.T_local; l++) {
                    int64_t g = zigzag_global_row(&z, l);
                    int64_t c = l / z.chunk;
                    assert_int_equal(g, (c == 0 ? r : 2 * sp - 1 - r) * z.chunk + l % z.chunk);
                    assert_true(g >= 0 && g < z.T_pad);
                    seen[g]++;
                }
            }
            for (int64_t g = 0; g < T_pad; g++) assert_int_equal(seen[g], 1);
            free(seen);
        }
    }
}

// shard then unshard over every rank rebuilds the global tensor; local rows
// hold the right global rows; padding rows hold the pad value.
static void test_round_trip(void **state) {
    (void)state;
    const int64_t B = 3, W = 3;  // rows of 3 floats
    for (size_t i = 0; i < sizeof SPS / sizeof *SPS; i++) {
        for (size_t j = 0; j < sizeof TS / sizeof *TS; j++) {
            int sp = SPS[i];
            int64_t T = TS[j];
            float *global = malloc(sizeof(float) * (size_t)(B * T * W));
            float *back = malloc(sizeof(float) * (size_t)(B * T * W));
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t w = 0; w < W; w++)
                        global[(b * T + t) * W + w] = (float)(10000 * b + 10 * t + w);
            for (int64_t n = 0; n < B * T * W; n++) back[n] = -1.0f;
            const float pad[3] = {-7.0f, -8.0f, -9.0f};
            for (int r = 0; r < sp; r++) {
                zigzag_layout z;
                zigzag_layout_init(&z, T, sp, r);
                float *local = malloc(sizeof(float) * (size_t)(B * z.T_local * W));
                zigzag_shard(local, global, W * sizeof(float), B, &z, pad);
                for (int64_t b = 0; b < B; b++)
                    for (int64_t l = 0; l < z.T_local; l++) {
                        int64_t g = zigzag_global_row(&z, l);
                        for (int64_t w = 0; w < W; w++) {
                            float want = g < T ? (float)(10000 * b + 10 * g + w) : pad[w];
                            assert_true(local[(b * z.T_local + l) * W + w] == want);
                        }
                    }
                zigzag_unshard(back, local, W * sizeof(float), B, &z);
                free(local);
            }
            assert_memory_equal(back, global, sizeof(float) * (size_t)(B * T * W));
            free(global);
            free(back);
        }
    }
}

// T = 6, sp = 2: padded to 8, chunks of 2; rank 0 holds global rows
// {0, 1, 6, 7}, rank 1 rows {2, 3, 4, 5}. Two documents: A = rows 0-3,
// B = rows 4-5; positions restart at B and are global, never per chunk.
static void test_packed_batch_by_hand(void **state) {
    (void)state;
    const int32_t tokens[6] = {10, 11, 12, 13, 14, 15};
    const int32_t targets[6] = {11, 12, 13, -1, 15, -1};
    const int32_t pos[6] = {0, 1, 2, 3, 0, 1};
    const int32_t seg[6] = {5, 5, 5, 5, 6, 6};
    const int32_t want_tok[2][4] = {{10, 11, 99, 99}, {12, 13, 14, 15}};
    const int32_t want_tgt[2][4] = {{11, 12, -1, -1}, {13, -1, 15, -1}};
    const int32_t want_pos[2][4] = {{0, 1, 0, 1}, {2, 3, 0, 1}};
    const int32_t want_seg[2][4] = {{5, 5, 7, 7}, {5, 5, 6, 6}};
    const int32_t want_seg_null[2][4] = {{0, 0, 1, 1}, {0, 0, 0, 0}};
    for (int r = 0; r < 2; r++) {
        zigzag_layout z;
        zigzag_layout_init(&z, 6, 2, r);
        assert_int_equal(z.T_pad, 8);
        assert_int_equal(z.T_local, 4);
        int32_t t[4], g[4], p[4], s[4];
        zigzag_shard_batch(t, g, p, s, tokens, targets, pos, seg, 1, &z, 99);
        assert_memory_equal(t, want_tok[r], sizeof t);
        assert_memory_equal(g, want_tgt[r], sizeof g);
        assert_memory_equal(p, want_pos[r], sizeof p);
        assert_memory_equal(s, want_seg[r], sizeof s);
        // No segment ids: one document, padding still a segment of its own.
        zigzag_shard_batch(NULL, NULL, NULL, s, tokens, targets, pos, NULL, 1, &z, 99);
        assert_memory_equal(s, want_seg_null[r], sizeof s);
    }
}

// One long document split over sp = 2 ranks with T = 8: a rank sees
// positions [0, 1, 6, 7] (chunks 0 and 3), not chunk-local [0, 1, 0, 1].
static void test_positions_global(void **state) {
    (void)state;
    int32_t tokens[8], pos[8];
    for (int i = 0; i < 8; i++) tokens[i] = pos[i] = i;
    const int32_t want[2][4] = {{0, 1, 6, 7}, {2, 3, 4, 5}};
    for (int r = 0; r < 2; r++) {
        zigzag_layout z;
        zigzag_layout_init(&z, 8, 2, r);
        int32_t p[4];
        zigzag_shard_batch(NULL, NULL, p, NULL, tokens, NULL, pos, NULL, 1, &z, 0);
        assert_memory_equal(p, want[r], sizeof p);
    }
}

// The 2-D hybrid (zigzag_layout_init2): for every ring x ulysses and T, the
// ulysses ranks of ring position p hold, in u order, exactly the rows that
// position p holds in the plain ring of the same T_pad (chunk p, then chunk
// 2 ring - 1 - p): their concatenation is the ring-local zig-zag sequence the
// all-to-all gathers. Every padded row is held once; shard + unshard over
// all ranks rebuilds the tensor.
static void test_layout_2d(void **state) {
    (void)state;
    const int RINGS[] = {1, 2, 3, 4}, ULYS[] = {1, 2, 3, 4, 8};
    const int64_t B = 2;
    for (size_t i = 0; i < sizeof RINGS / sizeof *RINGS; i++)
        for (size_t u = 0; u < sizeof ULYS / sizeof *ULYS; u++)
            for (size_t j = 0; j < sizeof TS / sizeof *TS; j++) {
                int ring = RINGS[i], U = ULYS[u];
                int64_t T = TS[j];
                float *global = malloc(sizeof(float) * (size_t)(B * T));
                float *back = malloc(sizeof(float) * (size_t)(B * T));
                for (int64_t n = 0; n < B * T; n++) global[n] = (float)n, back[n] = -1.0f;
                int64_t T_pad = 0;
                int *seen = NULL;
                for (int p = 0; p < ring; p++) {
                    int64_t at = 0;  // ring-local row
                    for (int r = 0; r < U; r++) {
                        zigzag_layout z, plain;
                        zigzag_layout_init2(&z, T, ring, U, p, r);
                        T_pad = z.T_pad;
                        if (!seen) seen = calloc((size_t)T_pad, sizeof *seen);
                        assert_int_equal(z.T_pad % (2 * ring * U), 0);
                        assert_true(z.T_pad >= T && z.T_pad < T + 2 * ring * U);
                        assert_int_equal(z.T_local * U, 2 * z.chunk);
                        // The plain ring over the same padded length.
                        zigzag_layout_init(&plain, z.T_pad, ring, p);
                        for (int64_t l = 0; l < z.T_local; l++, at++) {
                            int64_t g = zigzag_global_row(&z, l);
                            assert_int_equal(g, zigzag_global_row(&plain, at));
                            seen[g]++;
                        }
                        float *local = malloc(sizeof(float) * (size_t)(B * z.T_local));
                        const float pad = -5.0f;
                        zigzag_shard(local, global, sizeof(float), B, &z, &pad);
                        for (int64_t b = 0; b < B; b++)
                            for (int64_t l = 0; l < z.T_local; l++) {
                                int64_t g = zigzag_global_row(&z, l);
                                float want = g < T ? global[b * T + g] : pad;
                                assert_true(local[b * z.T_local + l] == want);
                            }
                        zigzag_unshard(back, local, sizeof(float), B, &z);
                        free(local);
                        // The sp-rank form names the same layout.
                        zigzag_layout zs;
                        zigzag_layout_init_sp(&zs, T, ring * U, U, p * U + r);
                        assert_memory_equal(&zs, &z, sizeof z);
                    }
                }
                for (int64_t g = 0; g < T_pad; g++) assert_int_equal(seen[g], 1);
                assert_memory_equal(back, global, sizeof(float) * (size_t)(B * T));
                free(seen);
                free(global);
                free(back);
            }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_packed_batch_by_hand),
        cmocka_unit_test(test_positions_global),
        cmocka_unit_test(test_layout_2d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
