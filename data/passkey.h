// passkey: synthetic passkey retrieval, the long-context probe of Landmark
// Attention / LongLoRA, generated on the fly for any tokenizer, for training
// mixes and for evaluation.
//
// Text (LongLoRA's prompt; lines joined with "\n"):
//   There is an important info hidden inside a lot of irrelevant text. Find
//   it and memorize them. I will quiz you about the important information there.
//   The grass is green. The sky is blue. The sun is yellow. Here we go. There
//   and back again. The grass is green. ...                  (filler, repeated)
//   The pass key is 12345. Remember it. 12345 is the pass key.     (the needle)
//   The grass is green. ...                                      (more filler)
//   What is the pass key? The pass key is 12345
// Multi-key (n_keys > 1): each needle names its key ("The pass key for bravo
// is 12345. Remember it. 12345 is the pass key for bravo.") and the question
// asks for one ("What is the pass key for bravo? The pass key for bravo is").
//
// Each piece is encoded on its own (filler sentences without a leading space
// at the start of a line, with one otherwise), so a sample hits an exact
// token length: the needle goes at the filler sentence boundary nearest the
// requested depth (within half a sentence), and the filler after the last
// needle is cut to length (its last sentence may be partial). Keys are
// 5-digit numbers; everything is a function of (config, seed, length).
//
// Tested by tests/unit/test_passkey.c: exact lengths for two tokenizers
// (bytes and words), needle depth within one sentence, decoded text equal
// to the prompt above, targets in both modes, multi-key, determinism, the
// scoring helpers.
#pragma once

#include <stddef.h>
#include <stdint.h>

// A tokenizer's encoder: writes the ids of text[0, len) to out (at most cap
// of them) and returns how many ids the text has (more than cap means out was
// too small), or < 0 on error.
typedef int64_t (*passkey_encode_fn)(void *ctx, const char *text, size_t len, int32_t *out,
                                     int64_t cap);

#define PASSKEY_MAX_KEYS 8
#define PASSKEY_MAX_ANSWER 32  // answer tokens kept in passkey_info

typedef struct {
    passkey_encode_fn encode;
    void *encode_ctx;
    int32_t bos_id;   // prepended when >= 0
    int n_keys;       // 1: the standard prompt; 2..PASSKEY_MAX_KEYS: named keys
    double depth;     // 0..1: where the asked key sits in the filler; < 0: random per sample
    int answer_only;  // 1: targets only on the answer; 0: next-token targets everywhere
    int no_preamble;  // 1: leave out the first line (task description), for short lengths
    int compact;      // 1 (single key): needle "The pass key is:12345.", question
                      // "The pass key is:", answer "12345", no preamble: fits
                      // byte-level rows of 128, and ':' occurs nowhere in the filler
} passkey_config;

typedef struct {
    int64_t key;                       // the asked key, 10000..99999
    int64_t keys[PASSKEY_MAX_KEYS];    // all keys (n_keys of them), distinct
    int asked;                         // index of the asked key in keys
    int64_t needle_start;              // first token of the asked key's needle line
    double depth;                      // achieved: filler tokens before it / all filler tokens
    int64_t filler_tokens;             // filler tokens in the sample
    int64_t answer_start;              // prompt = tokens[0, answer_start)
    int64_t answer_len;                // answer = tokens[answer_start, T), " 12345"
    int32_t answer[PASSKEY_MAX_ANSWER];  // (answer_len) the answer's ids
} passkey_info;

// The smallest T for which passkey_make(cfg, seed) succeeds (no filler at
// all), or -1 with a message in err (bad config, encoder failure).
int64_t passkey_min_len(const passkey_config *cfg, uint64_t seed, char *err, size_t errlen);

// tokens: (T) prompt followed by the answer; targets: (T) next-token ids or
// -1 (no loss): with answer_only, only the positions that predict answer
// tokens (answer_start - 1 ...) have targets. info may be NULL.
// Returns 0, or -1 with a message in err (T too short, bad config, encoder
// failure).
int passkey_make(int32_t *tokens, int32_t *targets, passkey_info *info,
                 const passkey_config *cfg, uint64_t seed, int64_t T, char *err,
                 size_t errlen);

// The copy task, a training companion of passkey rows: a random string of
// lowercase words and numbers S (its first T/2 tokens), then S again, with
// next-token targets everywhere (position T-1: -1; an odd T leaves one pad
// slot, token 0 with target -1). Every token of the second copy is
// predictable only by finding its place in the first: the copy-from-context
// (induction) that passkey retrieval needs, at a density of half the row
// instead of five digits, so small models learn retrieval many times faster.
// Deterministic from seed. Returns 0, or -1 with a message (encoder failure).
int passkey_make_copy(int32_t *tokens, int32_t *targets, const passkey_config *cfg,
                      uint64_t seed, int64_t T, char *err, size_t errlen);

// Scoring. The first run of decimal digits in text (e.g. a greedy decode of
// the model's continuation of the prompt) must equal key: 1 if so, else 0.
int passkey_check_text(const char *text, size_t len, int64_t key);

// Fraction of key's 5 digits found at their place in that first digit run
// (a partial-credit score for small models); 0 when there is no digit.
double passkey_digit_score(const char *text, size_t len, int64_t key);

// gen: (n_gen) generated ids; 1 when they start with info's answer ids.
int passkey_check_tokens(const int32_t *gen, int64_t n_gen, const passkey_info *info);
