// eval_report: what `stretch eval` writes: the CSV files, the figures
// (plot_svg.h) and the console tables.
//
//   passkey.csv  length,depth,trials,correct,accuracy   one row per cell,
//                lengths outer, depths inner, in ascending order
//   passkey.svg  heatmap: length on x, depth on y (0 at the top), accuracy
//                as colour and printed in each cell, colour bar
//   ppl.csv      ckpt,length,tokens,nll,ppl   one row per (checkpoint,
//                length); tokens = predictions scored, nll = their mean
//                negative log-likelihood (nats), ppl = exp(nll)
//   ppl.svg      perplexity vs length, one line per checkpoint, log x
//
// Tested through tests/cli/test_eval.sh (rows, columns, value ranges,
// well-formed SVG).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    int n_lengths, n_depths;
    const int64_t *lengths;  // (n_lengths) ascending
    const double *depths;    // (n_depths)
    int64_t trials;          // per cell
    const int64_t *correct;  // (n_lengths, n_depths) exact answers per cell
    const char *title;       // of the figure
} eval_passkey_grid;

// DIR/passkey.csv and DIR/passkey.svg. 0, or -1 with a message naming the file.
int eval_report_passkey(const char *dir, const eval_passkey_grid *g, char *err, size_t errlen);
// The grid as a table in percent (depths down, lengths across, a mean row).
void eval_report_passkey_table(FILE *out, const eval_passkey_grid *g);

typedef struct {
    int n_ckpts, n_lengths;
    const char *const *ckpts;  // (n_ckpts) as given on the command line
    const int64_t *lengths;    // (n_lengths) ascending
    const int64_t *tokens;     // (n_ckpts, n_lengths) predictions scored
    const double *nll;         // (n_ckpts, n_lengths) mean NLL in nats
    const char *title;         // of the figure
} eval_ppl_table;

// DIR/<stem>.csv and, when plot, DIR/<stem>.svg. 0, or -1 with a message.
int eval_report_ppl(const char *dir, const char *stem, const eval_ppl_table *t, bool plot, char *err,
                    size_t errlen);
