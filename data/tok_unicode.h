// tok_unicode: the little Unicode the tokenizers need. UTF-8 decoding that
// never fails (an invalid byte decodes as itself, length 1), the character
// classes of the pre-tokenizer regexes (\p{L}, \p{N}, \s) and the GPT-2
// byte <-> character mapping of the byte-level BPE vocabularies.
//
// The letter/number tables are generated from the reference implementation
// (scripts/gen_tok_unicode.py, Hugging Face tokenizers), so text splits
// exactly as it does there. Tested by tests/unit/test_tok.c (classes of
// sample characters, decoding of invalid and truncated UTF-8) and through
// the BPE parity tests.
#pragma once

#include <stdbool.h>
#include <stdint.h>

// Decodes the character at s[0..n) (n >= 1). Returns its length in bytes;
// *cp is the codepoint, or -1 for an invalid or truncated sequence, which
// then has length 1 (so any byte string decodes, one invalid byte at a time).
// *truncated (may be NULL) is set when s[0..n) is a proper prefix of a
// valid sequence: more bytes could turn it into one character.
int tok_utf8_decode(int32_t *cp, bool *truncated, const uint8_t *s, int64_t n);

// Writes the UTF-8 encoding of cp (0 <= cp < 0x110000) to out[0..4);
// returns its length.
int tok_utf8_encode(uint8_t out[4], int32_t cp);

bool tok_is_letter(int32_t cp);   // \p{L}  (general category L*)
bool tok_is_number(int32_t cp);   // \p{N}  (general category N*)
bool tok_is_numeric(int32_t cp);  // Rust char::is_numeric (Digits pre-tokenizer)
bool tok_is_space(int32_t cp);    // \s     (the 25 White_Space characters)

// GPT-2 byte-level mapping: every byte is shown as a printable character
// (printable Latin-1 bytes as themselves, the rest as U+0100 + k).
int32_t tok_byte_to_char(uint8_t b);
// The byte a character stands for, or -1 if it is not one of the 256.
int tok_char_to_byte(int32_t cp);
