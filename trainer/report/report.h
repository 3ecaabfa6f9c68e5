// report: `stretch report RUN_DIR`: one self-contained HTML page about a
// training run (no network, no scripts: inline SVG from plot_svg.h and
// plain HTML tables), built from what the run directory holds:
//
//   metrics.jsonl   loss, learning rate, tokens/s and grad norm over steps
//                   (validation loss with the loss when logged), dashed
//                   lines at every stage start labelled with its RoPE type
//                   and factor; a stage table; passkey accuracy per stage
//                   as heatmaps (needle depth x context length, and the
//                   mean per stage x length); gates
//   config.yaml     the run config, printed; the stages' memory estimate
//                   per rank (model_mem_plan, as `stretch train --dry-run`)
//   */ppl.csv       `stretch eval ppl --out` results found in the run
//                   directory or one level below: perplexity vs length,
//                   one line per checkpoint
//
// It may run while training goes on (metrics.jsonl is read as it is, a
// partial last line skipped). A directory with neither metrics.jsonl nor
// config.yaml is not a run: refused with one line.
//
// Tested by tests/unit/test_report.c and tests/cli/test_report.sh (which
// also renders it in headless Chromium when one is installed).
#pragma once

#include <stddef.h>

// The page for run_dir (malloc'd). NULL with one line in err.
char *report_html(const char *run_dir, char *err, size_t errlen);

// report_html written atomically to out. 0, or -1 with one line.
int report_write(const char *run_dir, const char *out, char *err, size_t errlen);
