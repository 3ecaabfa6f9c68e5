// lzw: the decoder of Unix compress(1) code streams (the .Z format), which
// the Debian package bible-kjv-text uses for its text (see corpus_kjv.h).
//
// A stream is a sequence of variable-width codes, least significant bit
// first, starting at 9 bits and widening by one whenever the dictionary
// fills the current width, up to max_bits (9..16). Codes 0..255 are bytes;
// in block mode code 256 clears the dictionary. compress writes codes in
// groups of 8 (n_bits bytes); a width change or a clear skips the rest of
// the current group, so the decoder does the same.
//
// Tested by tests/unit/test_lzw.c: streams made by an independent encoder
// written in the test (every width up to 16, clears, the KwKwK case), and
// corrupt streams; the real package through tests/unit/test_corpus_kjv.c.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Decodes the codes in in[0, n) into out (at most cap bytes). Returns the
// number of bytes decoded, or -1 with a one-line message (a code never
// defined, more output than cap, max_bits outside 9..16).
int64_t lzw_decode(uint8_t *out, size_t cap, const uint8_t *in, size_t n, int max_bits,
                   bool block_mode, char *err, size_t errlen);

// The .Z header: 0x1f 0x9d, then flags (bits 0-4 max_bits, bit 7 block
// mode). 0, or -1 with a message when the three bytes are not one.
int lzw_header(const uint8_t hdr[3], int *max_bits, bool *block_mode, char *err, size_t errlen);
