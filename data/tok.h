// tok: the tokenizer interface of stretch. Two kinds behind one type:
//
//   "byte"  ids 0..255 are the bytes of the UTF-8 text (any byte string
//           round-trips, invalid UTF-8 included), then the specials
//           TOK_BYTE_BOS = 256, TOK_BYTE_EOS = 257, TOK_BYTE_PAD = 258:
//           vocabulary size 259. The vocabulary is not padded here; a model
//           may round its embedding table up (e.g. to 264 = 8 * 33 rows for
//           aligned GEMMs); ids >= 259 are never produced and decode to
//           nothing.
//   BPE     byte-level BPE from a Hugging Face tokenizer.json (tok_hfjson.h)
//           or from GGUF metadata (tok_bpe_from_lists + tok_from_bpe), with
//           the same ids as Hugging Face tokenizers.
//
// Encoding never adds bos/eos: the data pipeline inserts them. Added
// (special) tokens written in the text, like "<|endoftext|>", are matched
// as tokens by BPE, as Hugging Face does; the byte tokenizer has no such
// matching. A tok_tokenizer is immutable and may be shared by threads; a
// tok_encoder (word cache, pending text) belongs to one thread.
//
// Streaming: tok_encoder_feed accepts text cut anywhere (mid-word, mid
// UTF-8 character) and emits the ids that later text cannot change;
// tok_encoder_finish flushes the rest. The ids equal tok_encode of the whole
// text. Memory: the longest still-undecided piece (for BPE normally one
// word or one run of spaces).
//
// Tested by tests/unit/test_tok.c; speed by bench/bench_tok.c.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok_bpe.h"
#include "tok_ids.h"

enum {
    TOK_BYTE_BOS = 256,
    TOK_BYTE_EOS = 257,
    TOK_BYTE_PAD = 258,
    TOK_BYTE_VOCAB = 259,
};

typedef struct tok_tokenizer tok_tokenizer;
typedef struct tok_encoder tok_encoder;

// spec: "byte", the path of a tokenizer.json (or of a directory holding
// one), or of a GGUF file (its tokenizer.ggml.* metadata, tok_gguf.h). NULL with a one-line message naming the file and key on failure.
tok_tokenizer *tok_load(const char *spec, char *err, size_t errlen);
tok_tokenizer *tok_byte_new(void);
// Wraps a BPE model (taking ownership; NULL gives NULL) with its special ids (-1: none).
tok_tokenizer *tok_from_bpe(tok_bpe *bpe, int32_t bos, int32_t eos, int32_t pad);
void tok_free(tok_tokenizer *t);

// Number of ids: every id produced is in [0, tok_vocab_size).
int64_t tok_vocab_size(const tok_tokenizer *t);
// What decides the ids of a text, hashed (tok_bpe_fingerprint; one fixed
// value for "byte"); never 0. Shards record it (shard.h). Special ids
// (bos/eos/pad) are not part of it: shards hold documents without them.
uint64_t tok_fingerprint(const tok_tokenizer *t);
int32_t tok_bos_id(const tok_tokenizer *t);  // -1 if none
int32_t tok_eos_id(const tok_tokenizer *t);
int32_t tok_pad_id(const tok_tokenizer *t);
// Overrides bos/eos/pad (-1: none); -1 with a message if an id is out of range.
int tok_set_special_ids(tok_tokenizer *t, int32_t bos, int32_t eos, int32_t pad, char *err,
                        size_t errlen);
// Id of the token spelled text (e.g. "<|im_end|>"; for "byte": one byte, or
// "<bos>", "<eos>", "<pad>"), or -1.
int32_t tok_token_id(const tok_tokenizer *t, const char *text);

// Encodes text[0..len) at once; *ids (malloc'd, free()) gets the ids.
// Returns their count.
int64_t tok_encode(int32_t **ids, const tok_tokenizer *t, const char *text, int64_t len);

// tok_encode with the signature of passkey_encode_fn (ctx is the tokenizer):
// writes at most cap ids to out, returns how many the text has.
int64_t tok_encode_into(void *ctx, const char *text, size_t len, int32_t *out, int64_t cap);

tok_encoder *tok_encoder_new(const tok_tokenizer *t);
// Appends to out the ids of text[0..len) that no later text can change.
void tok_encoder_feed(tok_encoder *e, tok_ids *out, const char *text, int64_t len);
// Appends the remaining ids; the encoder is then ready for a new text.
void tok_encoder_finish(tok_encoder *e, tok_ids *out);
void tok_encoder_free(tok_encoder *e);

// Decodes ids[0..n) into *text (malloc'd, NUL-terminated, free()); returns
// its length in bytes (it may hold invalid UTF-8 where a token splits a
// character, and NULs). Special tokens are left out when skip_special; ids
// without a token are left out (as Hugging Face does).
int64_t tok_decode(char **text, const tok_tokenizer *t, const int32_t *ids, int64_t n,
                   bool skip_special);
