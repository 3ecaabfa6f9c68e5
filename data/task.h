// task: RULER-style synthetic long-context tasks (Hsieh et al. 2024, "RULER:
// What's the Real Context Size of Your Long-Context Language Models?"),
// generated for any tokenizer, for evaluation (trainer/eval/eval_tasks.h)
// and training mixes (data/loader.h, data.task_mix). Passkey (passkey.h) is
// the floor; these ask the model to find among distractors, to find several
// things, to follow a chain and to aggregate.
//
// The tasks (TASK_DEFS in task.c; docs/eval.md has the same table):
//
//   name               RULER            haystack    what is asked
//   niah_single        niah_single_1    noise       the 7-digit number of one word key
//   niah_single_text   niah_single_2    text        the same, the haystack real text (a shard)
//   niah_single_uuid   niah_single_3    noise (*)   a UUID value instead of a number
//   niah_multikey      niah_multikey_1  noise (*)   4 keys, one asked (3 distractors)
//   niah_multivalue    niah_multivalue  noise (*)   one key with 4 values: all of them
//   niah_multiquery    niah_multiquery  noise (*)   4 keys, all asked: their values
//   vt                 vt               noise       a chain VAR A = 12345, VAR B = A, ...
//                                                   (4 hops): every name bound to 12345
//   cwe                cwe              word list   the 3 most common words (each 2..30
//                                                   times, the others 1..3 times)
//   fwe                fwe              coded words the 3 most frequent words, counts
//                                                   Zipf-like (alpha 2)
//   (*) RULER uses an essay haystack here; noise lets them run without a
//   shard, and niah_single_text covers real text.
//
// Compact prompts (no instructions, so short byte-level rows hold them;
// every answer follows a ':' and is the rest of the sample):
//   needle   "\nThe number for {key} is:{value}."    (uuid: "The uuid for")
//   single / multikey   question "\nThe number for {key} is:"   answer "{value}"
//   multivalue          question "\nThe numbers for {key} are:" answer "{v1} {v2} {v3} {v4}"
//                       (the values in the order they appear in the text)
//   multiquery          question "\nThe numbers for {k1}, {k2}, {k3}, {k4} are:"
//                       answer "{v1} {v2} {v3} {v4}" (in the order asked)
//   vt       lines "\nVAR {NAME} = {12345 or NAME}." question
//            "\nVariables equal to {12345}:" answer "{N1} {N2} ..." (chain order)
//   cwe      "\nWords:" then " {word}" items, question "\nThe 3 most common words:"
//            answer "{w1} {w2} {w3}" (order of first appearance)
//   fwe      "\nCoded words:" then " {word}" items, question "\nThe 3 most
//            frequent words:" answer "{w1} {w2} {w3}" (most frequent first)
// Noise is " The grass is green. The sky is blue. ..." (RULER's repeat
// haystack); keys are pseudo-words of 2..3 syllables, values 7-digit numbers
// (RULER) or UUIDs (8-4-4-4-12 hex), VT names 5 capital letters.
//
// Exactness. Every piece is encoded on its own and a sample is the
// concatenation of the pieces' ids, so it has exactly T tokens for any
// tokenizer: noise is cut in its last sentence, text haystacks are token
// windows, word lists end with as many one-token pad pieces ("\n") as are
// left over (fewer than one item's tokens). Needles sit at the sentence
// boundary (noise; within half a sentence, or one where the last sentence
// is cut) or token (text) nearest their depth; the asked needle
// (multikey: the asked key; multivalue: the first value; multiquery: the
// first asked key; vt: the chain's first line) at the requested depth, the
// others at depths drawn from the seed. cwe and fwe have no depth.
//
// Scoring is exact match of the whole answer (RULER's string_match_all gives
// partial credit per expected item; here a cell counts a sample only if
// every item is right, in order), by greedy decoding = teacher-forced argmax
// on the answer tokens (trainer/eval/eval.h).
//
// Tested by tests/unit/test_tasks.c: determinism per seed, an independent
// checker that parses the decoded prompt and recovers the answer, exact
// lengths for bytes and a BPE tokenizer, needle depth, the error lines.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "passkey.h"  // passkey_encode_fn

enum { TASK_NIAH_SINGLE, TASK_NIAH_SINGLE_TEXT, TASK_NIAH_SINGLE_UUID, TASK_NIAH_MULTIKEY,
       TASK_NIAH_MULTIVALUE, TASK_NIAH_MULTIQUERY, TASK_VT, TASK_CWE, TASK_FWE, TASK_COUNT };

typedef struct {
    const char *name;    // as on the command line and in the CSV
    const char *ruler;   // RULER's task of which it is the counterpart
    int needs_text;      // 1: the haystack is real text (task_env.haystack)
    int has_depth;       // 0: cwe, fwe (no needle; one cell per length)
    const char *what;    // one line for --help and docs
} task_def;

extern const task_def TASK_DEFS[TASK_COUNT];

// The task called name, or -1.
int task_find(const char *name);
// "a, b, c": every task name (for error messages).
const char *task_names(void);

typedef struct {
    passkey_encode_fn encode;
    void *encode_ctx;
    int32_t bos_id;            // prepended when >= 0
    int answer_only;           // 1: targets only on the answer; 0: next token everywhere
    const int32_t *haystack;   // text tasks: token ids of real text (e.g. a shard's documents)
    int64_t haystack_len;
} task_env;

typedef struct {
    int64_t needle_start;   // first token of the asked needle; -1 for cwe, fwe
    double depth;           // achieved: haystack tokens before it / all haystack tokens
    int64_t hay_tokens;     // haystack (noise, text) or list tokens in the sample
    int64_t answer_start;   // prompt = tokens[0, answer_start)
    int64_t answer_len;     // answer = tokens[answer_start, T)
    char answer_text[256];  // the answer as text, e.g. "1234567 2345678"
} task_info;

// The smallest T that task_make(task, env, depth, seed, T) accepts, or -1
// with a message in err (bad task, encoder failure).
int64_t task_min_len(int task, const task_env *env, uint64_t seed, char *err, size_t errlen);

// A sample of exactly T tokens: tokens = prompt + answer; targets = next
// token ids or -1 (answer_only: only at answer_start - 1 ...). depth in
// [0, 1] places the asked needle; < 0 draws it from the seed (and is
// ignored by cwe, fwe). info may be NULL. 0, or -1 with a one-line message
// (unknown task, T below the minimum, haystack shorter than T, encoder
// failure).
int task_make(int32_t *tokens, int32_t *targets, task_info *info, int task, const task_env *env,
              double depth, uint64_t seed, int64_t T, char *err, size_t errlen);
