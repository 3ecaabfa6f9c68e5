// metrics: the metrics.jsonl file of a run (one JSON object per line: a step,
// an eval, a stage switch), and the progress line on the terminal.
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

typedef struct {
    FILE *file;        // metrics.jsonl, appended (survives resume)
    bool tty;          // redraw one progress line in place (metrics_open's rule)
    double t_start;    // wall clock at open, less the run time before it
    double t_session;  // wall clock at open
    double prior_time; // "time" of the file's last row when opened (0 for a new run)
} metrics;

// Opens (appends to) path. "time" continues from the last row already in the
// file, so it is the run's time over all its sessions (the time between a
// stop and its resume is not counted). plain: never redraw in place; else
// the line is redrawn only when stdout is a terminal and no MPI launcher
// (mpirun, srun) started the process, whose ranks may see a pty that nobody
// watches (the log file would fill with carriage returns). Returns 0, or -1
// with a message naming the path.
int metrics_open(metrics *m, const char *path, bool plain, char *err, size_t errlen);
void metrics_close(metrics *m);

// Writes obj as one line, adding "time" (seconds since open); frees obj.
void metrics_write(metrics *m, cJSON *obj);

// Wall clock in seconds (CLOCK_MONOTONIC).
double metrics_now(void);

typedef struct {
    const char *stage;   // stage name
    int stage_index, n_stages;
    int64_t step, stage_step, stage_steps;  // global step, step within stage, stage length
    int64_t seq_len;
    double loss, tokens_per_s, lr;
    double eta_s;        // seconds left in the whole run
    int64_t skipped;     // non-finite steps skipped so far (shown when > 0)
} metrics_progress;

// A progress line: redrawn in place on a terminal, else one plain line per
// call (the caller calls it every train.log_every steps).
void metrics_progress_line(metrics *m, const metrics_progress *p);
// Ends the progress line (newline on a terminal).
void metrics_progress_end(metrics *m);
