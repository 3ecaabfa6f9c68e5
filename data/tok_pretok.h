// tok_pretok: the pre-tokenizers of byte-level BPE tokenizers, written by
// hand (no regex engine): text -> pieces ("words") that BPE encodes one by
// one. Each step splits every piece of the step before it:
//
//   TOK_PRE_GPT2    the GPT-2 ByteLevel regex (Isolated)
//                   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   TOK_PRE_LLAMA3  the Llama-3 Split regex (Isolated), max_digits = 3
//                   (Qwen2's variant: 1)
//                   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
//                   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   TOK_PRE_DIGITS  Digits(individual_digits=true): every numeric character alone
//   TOK_PRE_DIGIT_RUNS  Digits(individual_digits=false): runs of numeric characters
//
// The matchers follow the leftmost-first (backtracking) semantics of the
// Oniguruma engine that Hugging Face tokenizers uses. Invalid UTF-8 bytes are
// one character each, neither letter, number nor space.
//
// Streaming: with open = true the text may continue after n; then only the
// pieces that no continuation can change are produced (the matchers record
// whether they looked at the end of the text) and the return value says
// where they stop.
//
// Tested by tests/unit/test_tok.c: the pieces Hugging Face tokenizers'
// pre_tokenize_str gives for 33 multilingual edge-case texts under every
// setting above (GPT-2, Llama-3, Qwen2, Digits individual or not, none),
// every prefix of each text as an open text (its pieces must be the full
// text's up to the cut), and through the BPE id parity tests.
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    TOK_PRE_GPT2,
    TOK_PRE_LLAMA3,
    TOK_PRE_DIGITS,
    TOK_PRE_DIGIT_RUNS,
} tok_pre_kind;

typedef struct {
    tok_pre_kind kind;
    int max_digits;  // TOK_PRE_LLAMA3: the n of \p{N}{1,n}
} tok_pre_step;

// A piece of text: bytes [start, end).
typedef struct {
    int64_t start, end;
} tok_span;

// A growable list of pieces.
typedef struct {
    tok_span *data;
    int64_t n, cap;
} tok_spans;

void tok_spans_push(tok_spans *v, int64_t start, int64_t end);
void tok_spans_free(tok_spans *v);

// Reusable buffers for the steps between the first and the last.
typedef struct {
    tok_spans a, b;
} tok_pretok_scratch;

void tok_pretok_scratch_free(tok_pretok_scratch *scratch);

// Splits s[0..n) by steps[0..n_steps) and appends the pieces, in order and
// covering s[0..ret) without gaps, to out. Returns n when !open; when open,
// ret <= n is where the final pieces end (s[ret..n) must be seen again with
// what follows it). With no steps the whole text is one piece.
int64_t tok_pretok_split(tok_spans *out, tok_pretok_scratch *scratch,
                         const tok_pre_step *steps, int n_steps,
                         const uint8_t *s, int64_t n, bool open);
