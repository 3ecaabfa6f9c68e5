// tok_gguf: the byte-level BPE tokenizer stored in a GGUF file's metadata
// (tokenizer.ggml.model "gpt2": tokens, merges, token_type, pre,
// bos/eos/padding_token_id), built with tok_bpe_from_lists, so its ids are
// those of the tokenizer.json the file was converted from.
//
// Tested by tests/unit/test_gguf_tok.c: a GGUF written by the test from the
// tests/data/bpe_tiny fixture gives the fixture's expected Hugging Face ids;
// bench/gguf_tok_check.py compares the SmolLM2 file with transformers.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "tok_bpe.h"

// specials[0..3) = bos, eos, pad ids (-1: the key is absent). NULL with a
// one-line message naming the file and key on failure.
tok_bpe *tok_gguf_load(int32_t specials[3], const gguf_file *f, char *err, size_t errlen);
// The same from a path.
tok_bpe *tok_gguf_load_path(int32_t specials[3], const char *path, char *err, size_t errlen);
