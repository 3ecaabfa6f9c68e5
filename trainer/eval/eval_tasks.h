// eval_tasks: the RULER-style task suite (data/task.h) as an evaluation:
// exact-match accuracy of greedy decoding per (task, length, depth) cell,
// the average over tasks per length and the effective length (RULER: the
// longest length whose average beats a threshold, e.g. 0.856, Llama-2-7B's
// score at 4K), and what `stretch eval tasks` and training write:
//
//   tasks.csv  task,length,depth,trials,correct,accuracy   one row per cell:
//              tasks in the order given, lengths ascending, depths as given;
//              tasks without a depth (cwe, fwe) have one row per length with
//              depth "-"
//   tasks.svg  heatmap: tasks (and "average") down, lengths across, accuracy
//              in percent; the title names the effective length
//
// Tested by tests/unit/test_eval_tasks.c (effective length, the CSV) and
// tests/cli/test_eval_tasks.sh (1 rank vs mpirun --sp 2, the error lines).
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "eval.h"
#include "task.h"

// The seed of a cell's first sample: a function of (seed, task, length,
// depth) only, so a cell gives the same samples whatever else is evaluated.
uint64_t eval_task_seed(uint64_t seed, int task, int64_t length, double depth);

// Samples seed, seed + 1, ... (trials of them) of task at length T and depth
// that the model answers exactly (eval_answer_exact); -1 with a message when
// a sample cannot be made.
int64_t eval_task_correct(model *m, const task_env *env, int task, int64_t T, double depth,
                          int64_t trials, uint64_t seed, const eval_ring *ring, char *err,
                          size_t errlen);

typedef struct {
    int n_tasks, n_lengths, n_depths;
    const int *tasks;         // (n_tasks) TASK_* ids
    const int64_t *lengths;   // (n_lengths) ascending
    const double *depths;     // (n_depths)
    int64_t trials;           // per cell
    const int64_t *correct;   // (n_tasks, n_lengths, n_depths); a task without depth
                              // uses depth index 0 only
    double threshold;         // for the effective length, in [0, 1]
    const char *title;        // of the figure
} eval_task_grid;

// Accuracy of task index t at length index i, averaged over the depths.
double eval_task_acc(const eval_task_grid *g, int t, int i);
// The average over the tasks at length index i.
double eval_task_avg(const eval_task_grid *g, int i);
// The longest length whose average, and that of every shorter length, is
// >= threshold; 0 when the shortest already falls short.
int64_t eval_task_effective(const eval_task_grid *g);

// DIR/tasks.csv and DIR/tasks.svg. 0, or -1 with a message naming the file.
int eval_report_tasks(const char *dir, const eval_task_grid *g, char *err, size_t errlen);
// Tasks down, lengths across (percent), the average row, the effective length.
void eval_report_tasks_table(FILE *out, const eval_task_grid *g);
