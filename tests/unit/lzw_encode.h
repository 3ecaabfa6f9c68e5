// A compress(1) encoder for the tests of data/lzw.c and data/corpus_kjv.c,
// written from the format's description independently of the decoder: a
// dictionary of (prefix code, byte) -> code as a child list per prefix,
// codes packed least significant bit first in groups of 8,
// a group padded to its end when the width grows or a clear is sent. Its
// output is checked against gzip -dc (tests/unit/test_lzw.c), so it stands
// for the real format.
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *out;
    size_t n, cap;
    uint8_t group[16];  // the current group of 8 codes (n_bits bytes)
    int bits;           // bits of the group filled
    int n_bits;
} lzwt_writer;

static void lzwt_put_bytes(lzwt_writer *w, const uint8_t *b, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = 2 * (w->n + n) + 64;
        w->out = realloc(w->out, w->cap);
    }
    memcpy(w->out + w->n, b, n);
    w->n += n;
}

// Writes the group: whole (pad: a width change or a clear follows) or only
// the bytes that hold codes (the end of the stream).
static void lzwt_flush(lzwt_writer *w, int whole) {
    if (w->bits == 0) return;
    lzwt_put_bytes(w, w->group, whole ? (size_t)w->n_bits : (size_t)(w->bits + 7) / 8);
    memset(w->group, 0, sizeof w->group);
    w->bits = 0;
}

static void lzwt_code(lzwt_writer *w, uint32_t code) {
    for (int i = 0; i < w->n_bits; i++, w->bits++)
        if (code >> i & 1) w->group[w->bits / 8] |= (uint8_t)(1u << (w->bits % 8));
    if (w->bits == w->n_bits * 8) lzwt_flush(w, 1);
}

// Encodes data[0, n) into a malloc'd stream (*out_n bytes), with the
// 3-byte header when header != 0. clear_every > 0 sends a clear (block
// mode) after every clear_every codes, to exercise it on short inputs.
static uint8_t *lzwt_encode(size_t *out_n, const uint8_t *data, size_t n, int max_bits, int block_mode,
                            int clear_every, int header) {
    const uint32_t max_entries = 1u << max_bits, first = block_mode ? 257 : 256;
    uint8_t *chr = malloc(max_entries);
    // children of a code: first_child[code], then next_sibling[child]; 0 = none
    uint32_t *first_child = calloc(max_entries, sizeof(uint32_t));
    uint32_t *next_sibling = calloc(max_entries, sizeof(uint32_t));
    lzwt_writer w = {.n_bits = 9};
    if (header) {
        const uint8_t h[3] = {0x1f, 0x9d, (uint8_t)(max_bits | (block_mode ? 0x80 : 0))};
        lzwt_put_bytes(&w, h, 3);
    }
    uint32_t free_ent = first, max_code = 511;
    int since_clear = 0;
    if (n == 0) {
        *out_n = w.n;
        free(chr);
        free(first_child);
        free(next_sibling);
        return w.out;
    }
    uint32_t ent = data[0];
    for (size_t i = 1; i <= n; i++) {
        if (i < n) {
            uint32_t found = 0;
            for (uint32_t e = first_child[ent]; e && !found; e = next_sibling[e])
                if (chr[e] == data[i]) found = e;
            if (found) {
                ent = found;
                continue;
            }
        }
        lzwt_code(&w, ent);  // then the width, as compress: for the next code
        if (free_ent > max_code) {
            lzwt_flush(&w, 1);
            w.n_bits++;
            max_code = w.n_bits == max_bits ? max_entries : (1u << w.n_bits) - 1;
        }
        if (i == n) break;
        if (free_ent < max_entries) {
            chr[free_ent] = data[i];
            next_sibling[free_ent] = first_child[ent];
            first_child[ent] = free_ent;
            free_ent++;
        }
        ent = data[i];
        if (block_mode && clear_every > 0 && ++since_clear == clear_every) {
            since_clear = 0;
            lzwt_code(&w, 256);
            lzwt_flush(&w, 1);
            w.n_bits = 9;
            max_code = 511;
            free_ent = first;
            memset(first_child, 0, sizeof(uint32_t) * max_entries);
        }
    }
    lzwt_flush(&w, 0);
    free(chr);
    free(first_child);
    free(next_sibling);
    *out_n = w.n;
    return w.out;
}
