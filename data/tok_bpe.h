// tok_bpe: byte-level BPE as GPT-2, Llama-3, Qwen2 and SmolLM2 use it. The
// text is split at added tokens (matched verbatim, leftmost-longest, as in
// Hugging Face tokenizers: first the tokens with normalized = false, then
// those with normalized = true), each stretch between them is pre-tokenized
// (tok_pretok.h) into words, and each word's bytes are merged pair by pair,
// lowest merge rank first (leftmost on ties), into vocabulary ids.
//
// A tok_bpe is immutable once built and may be shared by threads; the word
// cache and the scratch buffers live in a tok_bpe_state, one per thread.
//
// Built from a spec (tokenizer.json loader: tok_hfjson.h) or from the lists
// a GGUF file stores (tok_bpe_from_lists). Tested by tests/unit/test_tok.c:
// exact token ids of Hugging Face tokenizers on multilingual fixtures
// (tests/data/bpe_tiny*) for the GPT-2, Llama-3 (ignore_merges), Qwen2 and
// SmolLM2 pre-tokenizers, the same built from GGUF-style lists, added-token
// passes and longest match, unk handling, decode(encode(x)) == x, streaming
// in random pieces == one call (also on random bytes).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok_ids.h"
#include "tok_pretok.h"

typedef struct tok_bpe tok_bpe;
typedef struct tok_bpe_state tok_bpe_state;

// A token matched verbatim in the text before pre-tokenization.
typedef struct {
    const char *content;  // UTF-8 text to match (raw, not byte-mapped)
    int32_t id;
    bool special;         // dropped by decode with skip_special
    bool normalized;      // matched in the second pass (HF AddedToken.normalized)
} tok_bpe_added;

typedef struct {
    const char *const *vocab;  // (n_vocab) token strings in GPT-2 byte-level form, id = index;
                               // NULL for an id without a token
    int32_t n_vocab;
    const char *const *merge_left;   // (n_merges) merge r joins merge_left[r] + merge_right[r]
    const char *const *merge_right;  // (n_merges); rank = index
    int32_t n_merges;
    const tok_bpe_added *added;      // (n_added); ids may lie beyond n_vocab
    int32_t n_added;
    const tok_pre_step *pre;         // (n_pre) pre-tokenizer steps, applied in order
    int n_pre;
    int32_t unk_id;                  // emitted for bytes without a token; -1: such bytes are dropped
    bool fuse_unk;                   // consecutive unknown bytes give one unk_id
    bool ignore_merges;              // a word that is a token is that token (Llama-3)
} tok_bpe_spec;

// Builds the tokenizer; NULL with a one-line message (prefixed by source,
// e.g. the file name) when the spec is inconsistent (a merge naming an
// unknown token or making one, ids out of range, duplicates).
tok_bpe *tok_bpe_new(const tok_bpe_spec *spec, const char *source, char *err, size_t errlen);

// From the lists of a GGUF file: tokenizer.ggml.tokens (n_tokens strings),
// tokenizer.ggml.merges ("left right"), tokenizer.ggml.token_type (NULL:
// all normal; 3 = control -> special added token, 4 = user-defined ->
// added token) and tokenizer.ggml.pre, the llama.cpp pre-tokenizer name:
// "gpt2"; "llama-bpe"/"llama3" (with ignore_merges, as llama.cpp); "qwen2";
// "smollm"/"starcoder" (digits, then GPT-2).
tok_bpe *tok_bpe_from_lists(const char *const *tokens, int32_t n_tokens,
                            const char *const *merges, int32_t n_merges,
                            const int32_t *token_types, const char *pre,
                            char *err, size_t errlen);

void tok_bpe_free(tok_bpe *bpe);
// A 64-bit hash of everything that decides the ids of a text: every id's
// bytes (and whether it is special), the merges with their ranks, the
// pre-tokenizer steps, the unknown-byte handling. Two tokenizers with the
// same vocabulary size but other tokens or merges differ.
uint64_t tok_bpe_fingerprint(const tok_bpe *bpe);

// Largest id + 1 (over the vocabulary and the added tokens).
int64_t tok_bpe_vocab_size(const tok_bpe *bpe);

// The bytes token id decodes to (*bytes points into bpe); -1 if the id has
// no token. *special: it is a special added token.
int64_t tok_bpe_token_bytes(const uint8_t **bytes, bool *special, const tok_bpe *bpe, int32_t id);

// The id of the token whose text is exactly text (an added token's content,
// or a vocabulary token's decoded bytes), or -1.
int32_t tok_bpe_token_id(const tok_bpe *bpe, const uint8_t *text, int64_t len);

tok_bpe_state *tok_bpe_state_new(void);
void tok_bpe_state_free(tok_bpe_state *state);

// Encodes text[0..len) and appends the ids to out. With final the text is
// complete and the return value is len; otherwise the text may continue and
// only the ids no continuation can change are appended: the return value is
// how many bytes they cover (the caller passes the rest again, followed by
// more text).
int64_t tok_bpe_encode(tok_ids *out, tok_bpe_state *state, const tok_bpe *bpe,
                       const uint8_t *text, int64_t len, bool final);
