// tok_gguf_write: a stretch tokenizer as GGUF metadata (tokenizer.ggml.*),
// the form llama.cpp and tok_gguf.h read, for `stretch export --format gguf`.
//
//   "byte"      tokenizer.ggml.model "gpt2" with 256 byte tokens (GPT-2's
//               byte-to-unicode spelling, id = byte), no merges, pre
//               "gpt-2", then <bos> <eos> <pad> as control tokens: the ids
//               of tok.h's byte tokenizer.
//   GGUF file   every tokenizer.* key copied verbatim (the lists are padded
//               when the model's embedding has more rows).
//   tokenizer.json (or a directory holding one; what tok_hfjson.h accepts)
//               model "gpt2": model.vocab by id, added_tokens (special ->
//               CONTROL, else USER_DEFINED), merges as "a b", pre from the
//               pre_tokenizer: "gpt-2" (ByteLevel regex), "smollm" (Digits
//               + ByteLevel), "llama-bpe" (the Llama-3 Split), "qwen2";
//               other combinations (Digits runs) are refused with one line;
//               bos/eos/pad as tok_hfjson picks them.
// Ids the model has beyond the tokenizer's (an embedding rounded up) get
// "[PAD<id>]" tokens of type UNUSED (5), as llama.cpp's converter writes
// them, so llama.cpp's vocabulary matches token_embd.
//
// Tested by tests/unit/test_gguf_export.c (read back by tok_gguf.h, the byte
// tokenizer and the four tests/data/bpe_tiny* tokenizer.json fixtures give
// the same ids on every fixture text as the source) and
// tests/cli/test_gguf_export.sh.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "gguf_write.h"

// spec as tok_load takes it; n_vocab: the model's embedding rows. 0, or -1
// with one line naming the tokenizer.
int tok_gguf_write(gguf_writer *w, const char *spec, int64_t n_vocab, char *err, size_t errlen);
