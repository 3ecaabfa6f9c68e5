// report_metrics: a run's metrics.jsonl (docs/metrics.md) read into arrays
// per event, for `stretch report`. The file may be growing while it is read
// (a run in progress): a last line without its newline that does not parse
// is skipped and counted as partial; any other line that does not parse,
// or an event not known here, is counted (the report says how many) and
// skipped, never fatal.
//
// Tested by tests/unit/test_report.c (a file with every event, a bad line
// and a partial last line).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REPORT_MAX_DEPTHS 32

typedef struct {
    double step, stage, seq_len, loss, lr, grad_norm, tokens, tokens_per_s, time;
} report_step;

typedef struct {
    int64_t step;
    int stage;
    char name[64];
    int64_t seq_len, steps;
    char rope_type[32];
    double rope_factor, attention_factor;
} report_stage;

typedef struct {
    int64_t step, length;
    int stage;
    char when[96];
    double accuracy;
    int n_depths;
    double by_depth[REPORT_MAX_DEPTHS];
} report_passkey;

typedef struct {
    int64_t step, seq_len;
    double val_loss;
} report_val;

typedef struct {
    int64_t step;
    int stage;
    double passkey_acc, val_loss;  // -1: not part of the gate
    bool met;
} report_gate;

typedef struct {
    report_step *steps;
    int64_t n_steps;
    report_stage *stages;
    int n_stages;
    report_passkey *passkey;
    int n_passkey;
    report_val *val;
    int n_val;
    report_gate *gates;
    int n_gates;
    int64_t n_lines, n_bad, n_partial, n_unknown;  // lines read; unparsable; partial last; other events
    char unknown_names[256];  // the other events' names, comma-separated (truncated)
    char **other;             // the first REPORT_MAX_OTHER other events, as JSON text (e.g. task evals)
    int n_other;
} report_metrics;

#define REPORT_MAX_OTHER 1000

// Reads path. 0, or -1 with "PATH: cannot open (reason)".
int report_metrics_read(report_metrics *m, const char *path, char *err, size_t errlen);
// The same from text[0..len).
void report_metrics_parse(report_metrics *m, const char *text, size_t len);
void report_metrics_free(report_metrics *m);
