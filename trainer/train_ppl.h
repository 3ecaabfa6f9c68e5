// train_ppl: perplexity vs context length on held-out text in a curriculum
// run. After every stage the model reads windows of each eval.ppl_lengths
// entry from eval.ppl_corpus (a packaged corpus, e.g. kjv: the King James
// Bible, never trained on) and eval.ppl_data (token shards), with the
// stage's RoPE at that length, and the mean NLL of the next-token
// predictions is printed and logged (event "eval_ppl", one row per length).
// Windows are eval_ppl.h's non-overlapping ones, ceil(eval.ppl_tokens / L)
// of them evenly spaced, the same for every stage, so stages compare window
// for window. The end-of-run summary tabulates them and states the
// short-context change: the perplexity at the original context length after
// the last stage against after the last stage trained at that length.
//
// Tested by tests/cli/test_train_ppl.sh: the numbers a run prints equal
// `stretch eval ppl` of its checkpoints on the same shard; the summary's
// short-context change from those numbers; errors before compute.
#pragma once

#include "train.h"

// Opens the held-out text (rank 0 first tokenizes eval.ppl_corpus into
// train.out_dir/data/<name>-eval.shard when it is not there) and lists the
// windows of every length. Collective; a user error (unknown corpus,
// missing package, a shard of another tokenizer, no document long enough
// for a length) exits 2 on every rank before any compute. Nothing when
// eval.ppl_lengths is empty. Keeps the NLLs of stages evaluated in earlier
// sessions (st->hist) for the summary.
void train_ppl_open(train_state *st);

// NLL at every length with stage `stage`'s RoPE: printed, logged, kept for
// the summary. Collective.
void train_ppl_eval(train_state *st, int stage, const char *when);

// The table (stages x lengths) and the short-context change (rank 0).
void train_ppl_summary(const train_state *st);

void train_ppl_close(train_state *st);
