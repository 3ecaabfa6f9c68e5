// eval_ckpt: a checkpoint opened for evaluation: the run config it stores
// (docs/checkpoint-format.md, root attribute "config"), hence the model
// architecture (cfg_model_config) and the tokenizer (data.tokenizer); its
// curriculum position; the RoPE to evaluate it with; and a model holding
// its parameters. Every rank opens the same file (a shared filesystem), as
// a resume does.
//
// Tested through tests/cli/test_eval.sh (checkpoints of a tiny run; a
// missing or foreign file exits 2 with one line).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "curriculum.h"
#include "eval_args.h"
#include "model.h"
#include "rope_scaling.h"
#include "run_config.h"
#include "tok.h"

typedef struct {
    char *path;
    cfg_run cfg;          // the run config stored in the checkpoint
    curriculum curr;      // its stages resolved (curr_load at open; empty when imported)
    int64_t step;         // optimizer steps of the run
    int stage;            // curriculum stage in effect (root attribute "stage")
    int64_t stage_step;   // steps taken in it
    int trained_stage;    // the stage whose RoPE the weights were trained with:
                          // stage, or stage - 1 for a checkpoint written at a
                          // stage switch (stage_step 0), which already names
                          // the next stage
    bool imported;        // from `stretch import` (a model_config, no run config):
                          // evaluated with the model's own RoPE at step 0
    int64_t original_context;  // the pretrained context (curr.original_context, or the
                               // imported model's original max positions)
    model_config mc;      // the architecture, vocab_size resolved
    tok_tokenizer *tok;
} eval_ckpt;

// Opens path: config, position, tokenizer (tokenizer != NULL replaces the
// config's data.tokenizer; an imported checkpoint has none and needs it). 0, or -1 with a one-line message (c is then
// closed).
int eval_ckpt_open(eval_ckpt *c, const char *path, const char *tokenizer, char *err, size_t errlen);
void eval_ckpt_close(eval_ckpt *c);

// A model for up to max_tokens tokens per forward, holding the checkpoint's
// parameters (shapes checked against the config), on backend bk (NULL: the
// CPU; a device backend keeps only layer inputs between layers). NULL with a
// message.
model *eval_ckpt_model(const eval_ckpt *c, int64_t max_tokens, backend *bk, char *err,
                       size_t errlen);

// The RoPE to evaluate with: opt->stage's (--rope-stage), opt's custom type
// and factor relative to the pretrained context (--rope), else
// trained_stage's. desc gets a short description for the console, e.g.
// "stage 1 'long': yarn, factor 2". 0, or -1 with a message.
int eval_ckpt_rope(rope_config *out, char *desc, size_t desclen, const eval_ckpt *c,
                   const eval_rope_opt *opt, char *err, size_t errlen);
