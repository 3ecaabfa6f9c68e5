// eval_tasks: task-suite scoring and reports. See eval_tasks.h.
#include "eval_tasks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "fsutil.h"
#include "plot_svg.h"
#include "rng.h"

uint64_t eval_task_seed(uint64_t seed, int task, int64_t length, double depth) {
    uint64_t x = seed ^ ((uint64_t)length * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(task + 1) << 48);
    x = rng_splitmix64(&x) ^ (uint64_t)llround(depth * 1e6);
    return rng_splitmix64(&x);
}

int64_t eval_task_correct(model *m, const task_env *env, int task, int64_t T, double depth,
                          int64_t trials, uint64_t seed, const eval_ring *ring, char *err,
                          size_t errlen) {
    task_env e = *env;
    e.answer_only = 1;  // targets only where the answer is predicted
    int32_t *tokens = xmalloc(sizeof(int32_t) * T), *targets = xmalloc(sizeof(int32_t) * T);
    int64_t correct = 0;
    for (int64_t k = 0; k < trials && correct >= 0; k++) {
        if (task_make(tokens, targets, NULL, task, &e, depth, seed + (uint64_t)k, T, err, errlen) != 0)
            correct = -1;
        else
            correct += eval_answer_exact(m, tokens, targets, T, ring);
    }
    free(tokens);
    free(targets);
    return correct;
}

static int depths_of(const eval_task_grid *g, int t) {
    return TASK_DEFS[g->tasks[t]].has_depth ? g->n_depths : 1;
}

static int64_t cell(const eval_task_grid *g, int t, int i, int j) {
    return g->correct[((size_t)t * (size_t)g->n_lengths + (size_t)i) * (size_t)g->n_depths + (size_t)j];
}

double eval_task_acc(const eval_task_grid *g, int t, int i) {
    const int nd = depths_of(g, t);
    int64_t sum = 0;
    for (int j = 0; j < nd; j++) sum += cell(g, t, i, j);
    return g->trials > 0 ? (double)sum / ((double)g->trials * nd) : 0.0;
}

double eval_task_avg(const eval_task_grid *g, int i) {
    double sum = 0;
    for (int t = 0; t < g->n_tasks; t++) sum += eval_task_acc(g, t, i);
    return g->n_tasks > 0 ? sum / g->n_tasks : 0.0;
}

int64_t eval_task_effective(const eval_task_grid *g) {
    int64_t eff = 0;
    for (int i = 0; i < g->n_lengths && eval_task_avg(g, i) >= g->threshold; i++) eff = g->lengths[i];
    return eff;
}

static void effective_text(char *buf, size_t len, const eval_task_grid *g) {
    const int64_t eff = eval_task_effective(g);
    char name[32];
    plot_format_count(name, sizeof name, (double)eff);
    if (eff > 0) snprintf(buf, len, "effective length %s (average >= %.1f%%)", name, 100 * g->threshold);
    else snprintf(buf, len, "effective length below the shortest (average < %.1f%%)", 100 * g->threshold);
}

int eval_report_tasks(const char *dir, const eval_task_grid *g, char *err, size_t errlen) {
    // Both files atomically (fsutil): a reader never sees half a table.
    char path[1200];
    snprintf(path, sizeof path, "%s/tasks.csv", dir);
    fsutil_atomic out;
    if (fsutil_atomic_open(&out, path, err, errlen) != 0) return -1;
    FILE *f = out.f;
    fprintf(f, "task,length,depth,trials,correct,accuracy\n");
    for (int t = 0; t < g->n_tasks; t++)
        for (int i = 0; i < g->n_lengths; i++)
            for (int j = 0; j < depths_of(g, t); j++) {
                char depth[32] = "-";
                if (TASK_DEFS[g->tasks[t]].has_depth) snprintf(depth, sizeof depth, "%.4g", g->depths[j]);
                const int64_t c = cell(g, t, i, j);
                fprintf(f, "%s,%lld,%s,%lld,%lld,%.4f\n", TASK_DEFS[g->tasks[t]].name, (long long)g->lengths[i],
                        depth, (long long)g->trials, (long long)c, g->trials > 0 ? (double)c / (double)g->trials : 0.0);
            }
    if (fsutil_atomic_commit(&out, err, errlen) != 0) return -1;
    // The figure: tasks then "average" down, lengths across.
    const int nx = g->n_lengths, ny = g->n_tasks + 1;
    double *values = xmalloc(sizeof(double) * (size_t)(nx * ny));
    char (*names)[32] = xmalloc(sizeof *names * (size_t)nx);
    const char **x_names = xmalloc(sizeof(char *) * (size_t)nx), **y_names = xmalloc(sizeof(char *) * (size_t)ny);
    for (int i = 0; i < nx; i++) {
        plot_format_count(names[i], sizeof names[i], (double)g->lengths[i]);
        x_names[i] = names[i];
        for (int t = 0; t < g->n_tasks; t++) values[t * nx + i] = eval_task_acc(g, t, i);
        values[g->n_tasks * nx + i] = eval_task_avg(g, i);
    }
    for (int t = 0; t < g->n_tasks; t++) y_names[t] = TASK_DEFS[g->tasks[t]].name;
    y_names[g->n_tasks] = "average";
    char eff[128], title[768];
    effective_text(eff, sizeof eff, g);
    snprintf(title, sizeof title, "%s: %s", g->title ? g->title : "Tasks", eff);
    plot_heatmap h = {.title = title, .x_label = "context length (tokens)", .y_label = "task",
                      .bar_label = "accuracy (%)", .nx = nx, .ny = ny, .x_names = x_names,
                      .y_names = y_names, .values = values, .vmin = 0, .vmax = 1, .text_scale = 100};
    char *svg = plot_heatmap_svg(&h);
    snprintf(path, sizeof path, "%s/tasks.svg", dir);
    int rc = fsutil_write_atomic(path, svg, strlen(svg), err, errlen);
    free(svg);
    free(values);
    free(names);
    free(x_names);
    free(y_names);
    return rc;
}

void eval_report_tasks_table(FILE *out, const eval_task_grid *g) {
    fprintf(out, "task accuracy (%%), %lld trials per cell, mean over %d depths\n%-18s", (long long)g->trials,
            g->n_depths, "task");
    for (int i = 0; i < g->n_lengths; i++) {
        char name[32];
        plot_format_count(name, sizeof name, (double)g->lengths[i]);
        fprintf(out, " %7s", name);
    }
    fprintf(out, "\n");
    for (int t = 0; t <= g->n_tasks; t++) {
        fprintf(out, "%-18s", t < g->n_tasks ? TASK_DEFS[g->tasks[t]].name : "average");
        for (int i = 0; i < g->n_lengths; i++)
            fprintf(out, " %7.1f", 100 * (t < g->n_tasks ? eval_task_acc(g, t, i) : eval_task_avg(g, i)));
        fprintf(out, "\n");
    }
    char eff[128];
    effective_text(eff, sizeof eff, g);
    fprintf(out, "%s\n", eff);
}
