// eval_report: CSV files, figures and console tables. See eval_report.h.
#include "eval_report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "plot_svg.h"

static FILE *open_out(char *path, size_t pathlen, const char *dir, const char *name, char *err,
                      size_t errlen) {
    snprintf(path, pathlen, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) snprintf(err, errlen, "%s: cannot create (%s)", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *path, char *err, size_t errlen) {
    bool ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok) snprintf(err, errlen, "%s: write failed (%s)", path, strerror(errno));
    return ok ? 0 : -1;
}

// A CSV field, quoted when it holds a comma, quote or line break.
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_svg(const char *dir, const char *name, char *svg, char *err, size_t errlen) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = plot_write(path, svg, err, errlen);
    free(svg);
    return rc;
}

// ---------------------------------------------------------------------------
// Passkey

static double accuracy(const eval_passkey_grid *g, int i, int j) {
    return (double)g->correct[i * g->n_depths + j] / (double)g->trials;
}

int eval_report_passkey(const char *dir, const eval_passkey_grid *g, char *err, size_t errlen) {
    char path[1200];
    FILE *f = open_out(path, sizeof path, dir, "passkey.csv", err, errlen);
    if (!f) return -1;
    fprintf(f, "length,depth,trials,correct,accuracy\n");
    for (int i = 0; i < g->n_lengths; i++)
        for (int j = 0; j < g->n_depths; j++)
            fprintf(f, "%lld,%.4g,%lld,%lld,%.4f\n", (long long)g->lengths[i], g->depths[j],
                    (long long)g->trials, (long long)g->correct[i * g->n_depths + j], accuracy(g, i, j));
    if (close_out(f, path, err, errlen) != 0) return -1;

    // The figure: rows are depths (top = 0), columns lengths.
    const int nx = g->n_lengths, ny = g->n_depths;
    double *values = xmalloc(sizeof(double) * (size_t)(nx * ny));
    char (*names)[32] = xmalloc(sizeof *names * (size_t)(nx + ny));
    const char **x_names = xmalloc(sizeof(char *) * (size_t)nx), **y_names = xmalloc(sizeof(char *) * (size_t)ny);
    for (int i = 0; i < nx; i++) {
        plot_format_count(names[i], sizeof names[i], (double)g->lengths[i]);
        x_names[i] = names[i];
        for (int j = 0; j < ny; j++) values[j * nx + i] = accuracy(g, i, j);
    }
    for (int j = 0; j < ny; j++) {
        snprintf(names[nx + j], sizeof names[nx + j], "%.0f%%", 100 * g->depths[j]);
        y_names[j] = names[nx + j];
    }
    plot_heatmap h = {.title = g->title, .x_label = "context length (tokens)",
                      .y_label = "needle depth", .bar_label = "accuracy (%)",
                      .nx = nx, .ny = ny, .x_names = x_names, .y_names = y_names, .values = values,
                      .vmin = 0, .vmax = 1, .text_scale = 100};
    int rc = write_svg(dir, "passkey.svg", plot_heatmap_svg(&h), err, errlen);
    free(values);
    free(names);
    free(x_names);
    free(y_names);
    return rc;
}

void eval_report_passkey_table(FILE *out, const eval_passkey_grid *g) {
    fprintf(out, "passkey accuracy (%%), %lld trials per cell\n%-8s", (long long)g->trials, "depth");
    for (int i = 0; i < g->n_lengths; i++) {
        char name[32];
        plot_format_count(name, sizeof name, (double)g->lengths[i]);
        fprintf(out, " %7s", name);
    }
    fprintf(out, "\n");
    for (int j = 0; j < g->n_depths; j++) {
        fprintf(out, "%6.0f%% ", 100 * g->depths[j]);
        for (int i = 0; i < g->n_lengths; i++) fprintf(out, " %7.0f", 100 * accuracy(g, i, j));
        fprintf(out, "\n");
    }
    fprintf(out, "%-8s", "mean");
    for (int i = 0; i < g->n_lengths; i++) {
        double sum = 0;
        for (int j = 0; j < g->n_depths; j++) sum += accuracy(g, i, j);
        fprintf(out, " %7.1f", 100 * sum / g->n_depths);
    }
    fprintf(out, "\n");
}

// ---------------------------------------------------------------------------
// Perplexity

int eval_report_ppl(const char *dir, const char *stem, const eval_ppl_table *t, bool plot, char *err,
                    size_t errlen) {
    char path[1200], name[64];
    snprintf(name, sizeof name, "%s.csv", stem);
    FILE *f = open_out(path, sizeof path, dir, name, err, errlen);
    if (!f) return -1;
    fprintf(f, "ckpt,length,tokens,nll,ppl\n");
    for (int c = 0; c < t->n_ckpts; c++)
        for (int i = 0; i < t->n_lengths; i++) {
            int k = c * t->n_lengths + i;
            csv_field(f, t->ckpts[c]);
            fprintf(f, ",%lld,%lld,%.6f,%.6g\n", (long long)t->lengths[i], (long long)t->tokens[k],
                    t->nll[k], exp(t->nll[k]));
        }
    if (close_out(f, path, err, errlen) != 0) return -1;
    if (!plot) return 0;

    plot_series *series = xcalloc((size_t)t->n_ckpts, sizeof *series);
    double *x = xmalloc(sizeof(double) * (size_t)t->n_lengths);
    double *y = xmalloc(sizeof(double) * (size_t)(t->n_ckpts * t->n_lengths));
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < t->n_lengths; i++) x[i] = (double)t->lengths[i];
    for (int c = 0; c < t->n_ckpts; c++) {
        for (int i = 0; i < t->n_lengths; i++) {
            double v = exp(t->nll[c * t->n_lengths + i]);
            y[c * t->n_lengths + i] = v;
            if (isfinite(v)) lo = fmin(lo, v), hi = fmax(hi, v);
        }
        series[c] = (plot_series){.name = t->ckpts[c], .n = t->n_lengths, .x = x, .y = y + c * t->n_lengths};
    }
    // A model far past its context has perplexities orders of magnitude
    // above the rest: a log axis keeps both readable.
    plot_lines p = {.title = t->title, .x_label = "context length (tokens)", .y_label = "perplexity",
                    .log_x = true, .log_y = hi > 10 * lo, .x_counts = true,
                    .n_series = t->n_ckpts, .series = series};
    snprintf(name, sizeof name, "%s.svg", stem);
    int rc = write_svg(dir, name, plot_lines_svg(&p), err, errlen);
    free(series);
    free(x);
    free(y);
    return rc;
}
