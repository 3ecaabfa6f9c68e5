// tok_hfjson: reads a Hugging Face tokenizer.json of a byte-level BPE model
// (GPT-2, Llama-3, Qwen2, SmolLM2 style) into a tok_bpe, and picks the
// bos/eos/pad tokens.
//
// Accepted: model.type "BPE" (vocab, merges as "a b" strings or [a, b]
// pairs, unk_token, fuse_unk, ignore_merges); added_tokens (without lstrip,
// rstrip, single_word); normalizer null; pre_tokenizer ByteLevel (regex or
// not, no prefix space), Split with the GPT-2, Llama-3 or Qwen2 regex
// (behavior Isolated), Digits, or a Sequence of those with one ByteLevel;
// decoder null or ByteLevel. The post_processor is ignored: encoding never
// adds bos/eos. Anything else is refused with a message naming the key.
//
// bos/eos/pad: from tokenizer_config.json next to the file when there is
// one (bos_token, eos_token, pad_token); otherwise the first special added
// token of bos <|begin_of_text|> <s> <|startoftext|> <|endoftext|>,
// eos <|end_of_text|> </s> <|endoftext|>, pad <pad> <|pad|> [PAD]; -1 if none.
//
// Tested by tests/unit/test_tok.c: the three fixtures under tests/data/, and
// error cases (missing file, broken JSON, unsupported model and
// pre-tokenizer types).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tok_bpe.h"

// Returns the tokenizer, and specials[0..3) = bos, eos, pad ids (-1: none);
// NULL with a one-line message naming the file and key on failure.
tok_bpe *tok_hfjson_load(int32_t specials[3], const char *path, char *err, size_t errlen);
