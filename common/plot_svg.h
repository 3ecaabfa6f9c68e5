// plot_svg: a tiny SVG writer for the evaluation figures, with no
// dependencies: a heatmap (passkey accuracy over context length x needle
// depth, a colour bar, the value printed in each cell, as long-context
// papers show it) and a line plot (perplexity vs context length, one line
// per checkpoint, log axes, legend). The output is standalone SVG 1.1 text
// that browsers, rsvg-convert and Inkscape render.
//
// Elements a reader (or a test) can find: every heatmap cell is one
// <rect class="cell"> with its fill, every line-plot series one
// <path class="series">, every point one <circle class="point">.
//
// Tested by tests/unit/test_plot.c: well-formed XML (a tag-balance parse
// with attribute quoting and entity checks), one rect per cell filled with
// plot_colormap of its value, one path per series and one marker per finite
// point, escaping of names, the colour map monotone in every channel, tick
// and count formatting.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The heatmap colour map: t in [0, 1] (clamped) -> red (0), amber (0.5),
// green (1), linear between; every channel is monotone in t (red falls,
// green and blue rise). NAN gives light grey (no value).
void plot_colormap(uint8_t rgb[3], double t);

// Token counts as figures label them: 256, 1k, 1.5k, 32k, 1M (k = 1024,
// M = 1024 * 1024); other numbers with %g.
void plot_format_count(char *buf, size_t len, double n);

typedef struct {
    const char *title;           // NULL: none
    const char *x_label;         // under the x axis
    const char *y_label;         // left of the y axis, rotated
    const char *bar_label;       // beside the colour bar, rotated
    int nx, ny;                  // columns, rows
    const char *const *x_names;  // (nx) column labels, left to right
    const char *const *y_names;  // (ny) row labels, top to bottom
    const double *values;        // (ny, nx) row-major; NAN = no value (grey, "-")
    double vmin, vmax;           // the ends of the colour scale (vmin < vmax)
    double text_scale;           // the number printed in a cell (and on the bar)
                                 // is value * text_scale, with "%.0f"
} plot_heatmap;

// The heatmap as SVG text (malloc'd; the caller frees).
char *plot_heatmap_svg(const plot_heatmap *h);

typedef struct {
    const char *name;            // legend entry
    int n;                       // points
    const double *x, *y;         // (n); a point whose x or y is not finite (or
                                 // not > 0 on a log axis) leaves a gap
} plot_series;

typedef struct {
    const char *title;           // NULL: none
    const char *x_label, *y_label;
    bool log_x, log_y;           // logarithmic axes
    bool x_counts;               // x ticks at powers of two, labelled 256, 1k, ...
    int n_series;
    const plot_series *series;   // (n_series), colours in order (10, then repeated)
    int n_marks;                 // vertical dashed lines <line class="mark"> (0: none),
    const double *mark_x;        // (n_marks) at these x values (outside the range: skipped)
    const char *const *mark_names;  // (n_marks) labels at the top of each line (NULL: none)
} plot_lines;

// The line plot as SVG text (malloc'd; the caller frees).
char *plot_lines_svg(const plot_lines *p);

// Writes svg to path. 0, or -1 with a message naming the path.
int plot_write(const char *path, const char *svg, char *err, size_t errlen);
