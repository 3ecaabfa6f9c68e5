// lzw: compress(1) code streams. See lzw.h.
#include "lzw.h"

#include <stdlib.h>

#include "die.h"
#include "errmsg.h"

enum { LZW_CLEAR = 256 };

// The n_bits-wide code at bit pos (least significant bit first).
static uint32_t read_code(const uint8_t *in, size_t n, uint64_t pos, int n_bits) {
    const size_t byte = (size_t)(pos >> 3);
    uint32_t w = 0;
    for (int i = 0; i < 3 && byte + (size_t)i < n; i++) w |= (uint32_t)in[byte + (size_t)i] << (8 * i);
    return (w >> (pos & 7)) & ((1u << n_bits) - 1);
}

// The start of the next group of 8 codes of n_bits (groups count from base).
static uint64_t next_group(uint64_t pos, uint64_t base, int n_bits) {
    const uint64_t g = (uint64_t)n_bits * 8, d = (pos - base) % g;
    return d ? pos + g - d : pos;
}

int lzw_header(const uint8_t hdr[3], int *max_bits, bool *block_mode, char *err, size_t errlen) {
    if (hdr[0] != 0x1f || hdr[1] != 0x9d)
        return errmsg(err, errlen, "not a compress(1) stream (magic %02x %02x, want 1f 9d)", hdr[0], hdr[1]);
    *max_bits = hdr[2] & 0x1f;
    *block_mode = (hdr[2] & 0x80) != 0;
    if (*max_bits < 9 || *max_bits > 16)
        return errmsg(err, errlen, "compress(1) stream of %d-bit codes (9..16 supported)", *max_bits);
    return 0;
}

int64_t lzw_decode(uint8_t *out, size_t cap, const uint8_t *in, size_t n, int max_bits,
                   bool block_mode, char *err, size_t errlen) {
    if (max_bits < 9 || max_bits > 16)
        return errmsg(err, errlen, "compress(1) stream of %d-bit codes (9..16 supported)", max_bits);
    const uint32_t max_entries = 1u << max_bits;
    uint16_t *prefix = xmalloc(sizeof(uint16_t) * max_entries);
    uint8_t *suffix = xmalloc(max_entries);
    uint8_t *stack = xmalloc((size_t)max_entries + 1);
    const uint32_t first_free = block_mode ? LZW_CLEAR + 1 : LZW_CLEAR;
    int n_bits = 9;
    // The largest code the current width holds before it widens; at
    // max_bits the table fills instead. (As compress and gzip do, the
    // start is 9 bits below 2^9 even for max_bits 9.)
    uint32_t max_code = (1u << n_bits) - 1;
    uint32_t free_ent = first_free;
    const uint64_t total = (uint64_t)n * 8;
    uint64_t pos = 0, base = 0;
    int64_t old_code = -1;
    uint8_t fin_char = 0;
    size_t o = 0;
    int64_t rc = 0;
    for (;;) {
        if (free_ent > max_code) {
            pos = base = next_group(pos, base, n_bits);
            n_bits++;
            max_code = n_bits == max_bits ? max_entries : (1u << n_bits) - 1;
        }
        if (pos + (uint64_t)n_bits > total) break;  // what is left is padding
        uint32_t code = read_code(in, n, pos, n_bits);
        pos += (uint64_t)n_bits;
        if (old_code < 0) {  // the first code is a byte
            if (code >= LZW_CLEAR) {
                rc = errmsg(err, errlen, "compress(1) stream starts with code %u, not a byte", code);
                break;
            }
            if (o >= cap) {
                rc = errmsg(err, errlen, "compress(1) stream decodes to more than %zu bytes", cap);
                break;
            }
            out[o++] = fin_char = (uint8_t)code;
            old_code = code;
            continue;
        }
        if (code == LZW_CLEAR && block_mode) {
            // The next entry made lands on 256 (never used) and keeps the
            // decoder one entry behind the encoder, as after the first code.
            free_ent = first_free - 1;
            pos = base = next_group(pos, base, n_bits);
            n_bits = 9;
            max_code = (1u << n_bits) - 1;
            continue;
        }
        const uint32_t in_code = code;
        size_t sp = 0;
        if (code >= free_ent) {  // KwKwK: the entry being made right now
            if (code > free_ent) {
                rc = errmsg(err, errlen, "compress(1) stream: code %u before it is defined (next %u)",
                            code, free_ent);
                break;
            }
            stack[sp++] = fin_char;
            code = (uint32_t)old_code;
        }
        while (code >= LZW_CLEAR && sp < max_entries) {
            stack[sp++] = suffix[code];
            code = prefix[code];
        }
        if (code >= LZW_CLEAR) {
            rc = errmsg(err, errlen, "compress(1) stream: a code's string loops");
            break;
        }
        stack[sp++] = fin_char = (uint8_t)code;
        if (sp > cap - o) {
            rc = errmsg(err, errlen, "compress(1) stream decodes to more than %zu bytes", cap);
            break;
        }
        while (sp > 0) out[o++] = stack[--sp];
        if (free_ent < max_entries) {
            prefix[free_ent] = (uint16_t)old_code;
            suffix[free_ent] = fin_char;
            free_ent++;
        }
        old_code = in_code;
    }
    free(prefix);
    free(suffix);
    free(stack);
    return rc < 0 ? -1 : (int64_t)o;
}
