// tok_unicode: UTF-8, character classes, GPT-2 byte mapping. See tok_unicode.h.
#include "tok_unicode.h"

#include <stddef.h>

#include "tok_unicode_tables.inc"

// ---------------------------------------------------------------------------
// UTF-8

int tok_utf8_decode(int32_t *cp, bool *truncated, const uint8_t *s, int64_t n) {
    if (truncated) *truncated = false;
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    int len;
    int32_t c;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2, c = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3, c = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;   // no overlong forms
        if (b0 == 0xED) hi = 0x9F;   // no surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4, c = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;   // no overlong forms
        if (b0 == 0xF4) hi = 0x8F;   // nothing above U+10FFFF
    } else {
        *cp = -1;
        return 1;
    }
    for (int k = 1; k < len; k++) {
        if (k >= n) {  // every byte so far was valid: a truncated character
            if (truncated) *truncated = true;
            *cp = -1;
            return 1;
        }
        uint8_t b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
            *cp = -1;
            return 1;
        }
        c = (c << 6) | (b & 0x3F);
    }
    *cp = c;
    return len;
}

int tok_utf8_encode(uint8_t out[4], int32_t cp) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

// ---------------------------------------------------------------------------
// Character classes

static bool in_ranges(const uint32_t (*r)[2], size_t n, int32_t cp) {
    if (cp < 0) return false;
    size_t lo = 0, hi = n;  // binary search for the last range with start <= cp
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid][0] <= (uint32_t)cp) lo = mid + 1;
        else hi = mid;
    }
    return lo > 0 && (uint32_t)cp <= r[lo - 1][1];
}

#define N_RANGES(t) (sizeof(t) / sizeof(t[0]))

bool tok_is_letter(int32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(tok_letter_ranges, N_RANGES(tok_letter_ranges), cp);
}

bool tok_is_number(int32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(tok_number_ranges, N_RANGES(tok_number_ranges), cp);
}

bool tok_is_numeric(int32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(tok_numeric_ranges, N_RANGES(tok_numeric_ranges), cp);
}

bool tok_is_space(int32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

// ---------------------------------------------------------------------------
// GPT-2 byte mapping: bytes 33..126, 161..172 and 174..255 stand for
// themselves; the other 68 bytes, in increasing order, become U+0100..U+0143.

static bool byte_is_shown(int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

int32_t tok_byte_to_char(uint8_t b) {
    if (byte_is_shown(b)) return b;
    // Rank of b among the hidden bytes: 0..32 -> 0..32, 127..160 -> 33..66, 173 -> 67.
    int rank = b <= 32 ? b : b <= 160 ? 33 + (b - 127) : 67;
    return 256 + rank;
}

int tok_char_to_byte(int32_t cp) {
    if (cp >= 0 && cp < 256) return byte_is_shown(cp) ? cp : -1;
    int rank = cp - 256;
    if (rank < 0 || rank > 67) return -1;
    return rank <= 32 ? rank : rank <= 66 ? 127 + (rank - 33) : 173;
}
