// export_tok: the tokenizer files of an HF export, beside the weights, so
// that transformers' AutoTokenizer loads the run's tokenizer from the same
// directory:
//   a tokenizer.json tokenizer (data.tokenizer a file or model directory):
//       tokenizer.json copied byte for byte; tokenizer_config.json copied
//       when one lies beside it, else written (PreTrainedTokenizerFast,
//       bos/eos/pad tokens of the tokenizer, model_max_length);
//   the byte tokenizer: a tokenizer.json written for it: a byte-level BPE
//       with the 256 bytes as ids 0..255 and no merges, <bos> <eos> <pad>
//       as 256..258 (the same ids stretch produces), and its
//       tokenizer_config.json;
//   a GGUF tokenizer: nothing is written, with one line saying why
//       (transformers reads the tokenizer from the GGUF file itself).
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Writes the tokenizer files of checkpoint ckpt_path into dir (which exists).
// Returns 1 when written, 0 when none were (the reason is printed on note
// as one line), -1 on a write error (message in err).
int export_tokenizer(const char *ckpt_path, const char *dir, int64_t max_len, FILE *note, char *err,
                     size_t errlen);
