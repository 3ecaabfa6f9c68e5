// plot_svg: heatmaps and line plots as SVG text. See plot_svg.h.
#include "plot_svg.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"

#define FONT "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""

// ---------------------------------------------------------------------------
// A growing text buffer.

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        CHECK(k >= 0);
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        b->cap = 2 * (b->cap + (size_t)k + 256);
        b->s = xrealloc(b->s, b->cap);
    }
}

// Text content or an attribute value, escaped for XML; control characters
// (not allowed in XML 1.0) become '?'.
static void sb_text(sbuf *b, const char *text) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        switch (*p) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default: sb_printf(b, "%c", *p < 0x20 && *p != '\t' ? '?' : (char)*p);
        }
    }
}

// <text> at (x, y) with anchor "start" | "middle" | "end"; rotate: degrees about (x, y).
static void sb_label(sbuf *b, double x, double y, const char *anchor, int size, double rotate,
                     const char *extra, const char *text) {
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\"", x, y, anchor, size);
    if (rotate != 0) sb_printf(b, " transform=\"rotate(%g %.1f %.1f)\"", rotate, x, y);
    sb_printf(b, "%s%s>", extra ? " " : "", extra ? extra : "");
    sb_text(b, text);
    sb_printf(b, "</text>\n");
}

static void sb_begin(sbuf *b, double w, double h) {
    sb_printf(b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
              "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" " FONT ">\n"
              "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n",
              w, h, w, h, w, h);
}

// ---------------------------------------------------------------------------
// Colours and numbers

void plot_colormap(uint8_t rgb[3], double t) {
    static const double stops[3][3] = {{230, 62, 62}, {230, 190, 70}, {40, 190, 110}};
    if (isnan(t)) {
        rgb[0] = rgb[1] = rgb[2] = 221;
        return;
    }
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    int i = t < 0.5 ? 0 : 1;
    double u = t < 0.5 ? 2 * t : 2 * t - 1;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)lround(stops[i][c] + u * (stops[i + 1][c] - stops[i][c]));
}

void plot_format_count(char *buf, size_t len, double n) {
    static const struct { double unit; const char *suffix; } units[] = {
        {1024.0 * 1024 * 1024, "G"}, {1024.0 * 1024, "M"}, {1024.0, "k"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        double q = n / units[i].unit;
        // Exact multiples of a tenth of the unit: 1k, 1.5k, 32k.
        if (fabs(n) >= units[i].unit && fabs(q * 10 - round(q * 10)) < 1e-9) {
            snprintf(buf, len, "%g%s", round(q * 10) / 10, units[i].suffix);
            return;
        }
    }
    snprintf(buf, len, "%g", n);
}

// Room for a bold 15 px title (about 8.6 px per character) with margins.
static double title_width(const char *title) { return 24 + 8.6 * (double)strlen(title); }

static void hex_colour(char out[8], const uint8_t rgb[3]) {
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

// ---------------------------------------------------------------------------
// Heatmap

// Cells are HM_CW wide and HM_CH high, taller when few rows would make the
// grid (and the colour bar beside it) shorter than HM_MIN_H.
enum { HM_CW = 56, HM_CH = 30, HM_MIN_H = 150, HM_LEFT = 76, HM_BOTTOM = 56, HM_BAR_W = 14 };

char *plot_heatmap_svg(const plot_heatmap *h) {
    CHECK(h->nx > 0 && h->ny > 0 && h->vmax > h->vmin);
    sbuf b = {0};
    const double top = h->title ? 44 : 16;
    const double ch = h->ny * HM_CH >= HM_MIN_H ? HM_CH : ceil((double)HM_MIN_H / h->ny);
    const double grid_w = h->nx * HM_CW, grid_h = h->ny * ch, bar_h = grid_h;
    const double bar_x = HM_LEFT + grid_w + 24;
    const double content_w = bar_x + HM_BAR_W + 64, H = top + bar_h + HM_BOTTOM;
    const double W = h->title ? fmax(content_w, title_width(h->title)) : content_w;
    sb_begin(&b, W, H);
    if (h->title) sb_label(&b, W / 2, 26, "middle", 15, 0, "font-weight=\"bold\"", h->title);
    sb_printf(&b, "<g transform=\"translate(%.1f 0)\">\n", (W - content_w) / 2);  // centred under a long title

    // Cells, each with its value.
    for (int r = 0; r < h->ny; r++) {
        for (int c = 0; c < h->nx; c++) {
            double v = h->values[r * h->nx + c];
            uint8_t rgb[3];
            plot_colormap(rgb, isnan(v) ? NAN : (v - h->vmin) / (h->vmax - h->vmin));
            char fill[8];
            hex_colour(fill, rgb);
            double x = HM_LEFT + c * HM_CW, y = top + r * ch;
            sb_printf(&b, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.0f\" "
                          "fill=\"%s\" stroke=\"#ffffff\" stroke-width=\"1\"/>\n",
                      x, y, HM_CW, ch, fill);
            char text[32];
            if (isnan(v))
                snprintf(text, sizeof text, "-");
            else
                snprintf(text, sizeof text, "%.0f", v * h->text_scale);
            double lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
            sb_label(&b, x + HM_CW / 2.0, y + ch / 2 + 4, "middle", 11, 0,
                     lum > 150 ? "fill=\"#222222\"" : "fill=\"#ffffff\"", text);
        }
    }
    // Axes: ticks are the column and row names.
    for (int c = 0; c < h->nx; c++)
        sb_label(&b, HM_LEFT + (c + 0.5) * HM_CW, top + grid_h + 16, "middle", 11, 0, NULL, h->x_names[c]);
    for (int r = 0; r < h->ny; r++)
        sb_label(&b, HM_LEFT - 6, top + (r + 0.5) * ch + 4, "end", 11, 0, NULL, h->y_names[r]);
    if (h->x_label) sb_label(&b, HM_LEFT + grid_w / 2, top + grid_h + 40, "middle", 12, 0, NULL, h->x_label);
    if (h->y_label) sb_label(&b, 18, top + grid_h / 2, "middle", 12, -90, NULL, h->y_label);

    // Colour bar: vmax at the top.
    sb_printf(&b, "<defs><linearGradient id=\"colorbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n");
    for (int i = 0; i <= 10; i++) {
        uint8_t rgb[3];
        char fill[8];
        plot_colormap(rgb, i / 10.0);
        hex_colour(fill, rgb);
        sb_printf(&b, "<stop offset=\"%.1f\" stop-color=\"%s\"/>\n", i / 10.0, fill);
    }
    sb_printf(&b, "</linearGradient></defs>\n");
    sb_printf(&b, "<rect class=\"colorbar\" x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" "
                  "fill=\"url(#colorbar)\" stroke=\"#888888\" stroke-width=\"0.5\"/>\n",
              bar_x, top, HM_BAR_W, bar_h);
    for (int i = 0; i <= 4; i++) {
        double y = top + bar_h * (1 - i / 4.0), v = h->vmin + (h->vmax - h->vmin) * i / 4.0;
        char text[32];
        snprintf(text, sizeof text, "%.3g", v * h->text_scale);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444444\"/>\n",
                  bar_x + HM_BAR_W, y, bar_x + HM_BAR_W + 4, y);
        sb_label(&b, bar_x + HM_BAR_W + 7, y + 4, "start", 10, 0, NULL, text);
    }
    if (h->bar_label) sb_label(&b, bar_x + HM_BAR_W + 50, top + bar_h / 2, "middle", 12, -90, NULL, h->bar_label);
    sb_printf(&b, "</g>\n</svg>\n");
    return b.s;
}

// ---------------------------------------------------------------------------
// Line plot

enum { LP_LEFT = 76, LP_W = 440, LP_H = 300, LP_BOTTOM = 56, LP_MAX_TICKS = 24, LP_NAME_MAX = 48 };

static const char *const PALETTE[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// One axis: data range [lo, hi] in the transformed space (log or linear).
typedef struct {
    bool log;
    double lo, hi;
    int n_ticks;
    double ticks[LP_MAX_TICKS];  // in data units
} axis;

static bool usable(const axis *a, double v) { return isfinite(v) && (!a->log || v > 0); }
static double tr(const axis *a, double v) { return a->log ? log(v) : v; }
static double frac(const axis *a, double v) { return (tr(a, v) - a->lo) / (a->hi - a->lo); }

// A "nice" step (1, 2 or 5 times a power of ten) near span / n.
static double nice_step(double span, int n) {
    double raw = span / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
}

static void add_tick(axis *a, double v) {
    if (a->n_ticks < LP_MAX_TICKS) a->ticks[a->n_ticks++] = v;
}

// Linear ticks over the data range [vlo, vhi] (in data units).
static void linear_ticks(axis *a, double vlo, double vhi) {
    double step = nice_step(vhi - vlo, 5);
    for (double v = ceil(vlo / step - 1e-9) * step; v <= vhi + 1e-9 * step; v += step)
        add_tick(a, fabs(v) < 1e-12 * step ? 0 : v);
}

static void axis_init(axis *a, bool log_scale, bool counts, const plot_lines *p, bool is_x) {
    memset(a, 0, sizeof *a);
    a->log = log_scale;
    double mn = INFINITY, mx = -INFINITY;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            double v = is_x ? p->series[s].x[i] : p->series[s].y[i];
            if (!usable(a, v)) continue;
            mn = fmin(mn, v);
            mx = fmax(mx, v);
        }
    if (mn > mx) mn = 1, mx = 10;  // no data: any range
    if (log_scale) {
        a->lo = log(mn), a->hi = log(mx);
        if (a->hi - a->lo < 1e-9) a->lo -= log(2), a->hi += log(2);
        double pad = 0.05 * (a->hi - a->lo);
        a->lo -= pad, a->hi += pad;
        double vlo = exp(a->lo), vhi = exp(a->hi);
        if (counts) {
            int e0 = (int)ceil(log2(vlo) - 1e-9), e1 = (int)floor(log2(vhi) + 1e-9);
            int every = (e1 - e0) / 10 + 1;
            for (int e = e0; e <= e1; e += every) add_tick(a, ldexp(1, e));
        } else {
            static const double mant[3] = {1, 2, 5};
            for (int e = (int)floor(log10(vlo)); e <= (int)ceil(log10(vhi)); e++)
                for (int k = 0; k < 3; k++) {
                    double v = mant[k] * pow(10, e);
                    if (v >= vlo && v <= vhi) add_tick(a, v);
                }
            if (a->n_ticks > 10) {  // decades only
                int n = 0;
                for (int i = 0; i < a->n_ticks; i++)
                    if (fabs(log10(a->ticks[i]) - round(log10(a->ticks[i]))) < 1e-9) a->ticks[n++] = a->ticks[i];
                a->n_ticks = n;
            }
            if (a->n_ticks < 3) {  // a narrow range: linear ticks placed on the log scale
                a->n_ticks = 0;
                linear_ticks(a, vlo, vhi);
                int n = 0;
                for (int i = 0; i < a->n_ticks; i++)
                    if (a->ticks[i] > 0) a->ticks[n++] = a->ticks[i];
                a->n_ticks = n;
            }
        }
    } else {
        if (mx - mn < 1e-12 * fmax(1, fabs(mx))) mn -= 0.5 * fmax(1, fabs(mn)), mx += 0.5 * fmax(1, fabs(mx));
        double step = nice_step(mx - mn, 5), pad = 0.03 * (mx - mn);  // points off the frame
        a->lo = floor((mn - pad) / step) * step, a->hi = ceil((mx + pad) / step) * step;
        linear_ticks(a, a->lo, a->hi);
    }
}

static void tick_text(char *buf, size_t len, double v, bool counts) {
    if (counts)
        plot_format_count(buf, len, v);
    else if (fabs(v) >= 1e4 && fabs(v) < 1e9 && v == round(v))
        snprintf(buf, len, "%.0f", v);  // 50000, not 5e+04
    else
        snprintf(buf, len, "%.4g", v);
}

// The legend shows at most LP_NAME_MAX bytes of a name: its end, after "...".
static const char *legend_name(char *buf, size_t len, const char *name) {
    size_t n = strlen(name);
    if (n <= LP_NAME_MAX) return name;
    const char *tail = name + n - (LP_NAME_MAX - 3);
    while ((unsigned char)*tail >= 0x80 && (unsigned char)*tail < 0xC0) tail++;  // UTF-8 continuation
    snprintf(buf, len, "...%s", tail);
    return buf;
}

char *plot_lines_svg(const plot_lines *p) {
    sbuf b = {0};
    axis ax, ay;
    axis_init(&ax, p->log_x, p->x_counts && p->log_x, p, true);
    axis_init(&ay, p->log_y, false, p, false);
    size_t longest = 0;
    for (int s = 0; s < p->n_series; s++) {
        size_t n = strlen(p->series[s].name);
        longest = n > longest ? n : longest;
    }
    longest = longest > LP_NAME_MAX ? LP_NAME_MAX : longest;
    const double top = p->title ? 44 : 20;
    const double legend_x = LP_LEFT + LP_W + 16;
    double W = legend_x + 34 + 6.8 * (double)longest + 12;
    const double H = top + LP_H + LP_BOTTOM;
    if (p->title) W = fmax(W, title_width(p->title));
    sb_begin(&b, W, H);
    if (p->title) sb_label(&b, W / 2, 26, "middle", 15, 0, "font-weight=\"bold\"", p->title);

    // Grid, ticks and frame.
    for (int i = 0; i < ax.n_ticks; i++) {
        double x = LP_LEFT + frac(&ax, ax.ticks[i]) * LP_W;
        char t[32];
        tick_text(t, sizeof t, ax.ticks[i], p->x_counts && p->log_x);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                  x, top, x, top + LP_H);
        sb_label(&b, x, top + LP_H + 16, "middle", 11, 0, NULL, t);
    }
    for (int i = 0; i < ay.n_ticks; i++) {
        double y = top + (1 - frac(&ay, ay.ticks[i])) * LP_H;
        char t[32];
        tick_text(t, sizeof t, ay.ticks[i], false);
        sb_printf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                  LP_LEFT, y, LP_LEFT + LP_W, y);
        sb_label(&b, LP_LEFT - 6, y + 4, "end", 11, 0, NULL, t);
    }
    sb_printf(&b, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444444\"/>\n",
              LP_LEFT, top, LP_W, LP_H);
    if (p->x_label) sb_label(&b, LP_LEFT + LP_W / 2.0, top + LP_H + 40, "middle", 12, 0, NULL, p->x_label);
    if (p->y_label) sb_label(&b, 18, top + LP_H / 2.0, "middle", 12, -90, NULL, p->y_label);

    // Marks (e.g. stage boundaries): a dashed vertical line and its label.
    for (int i = 0; i < p->n_marks; i++) {
        if (!usable(&ax, p->mark_x[i]) || frac(&ax, p->mark_x[i]) < 0 || frac(&ax, p->mark_x[i]) > 1) continue;
        double x = LP_LEFT + frac(&ax, p->mark_x[i]) * LP_W;
        sb_printf(&b, "<line class=\"mark\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888888\" "
                  "stroke-dasharray=\"4 3\"/>\n", x, top, x, top + LP_H);
        // labels right of the line, or left of it in the right quarter (clear of the legend)
        bool right = frac(&ax, p->mark_x[i]) > 0.75;
        if (p->mark_names && p->mark_names[i])
            sb_label(&b, right ? x - 3 : x + 3, top + 12 + 12 * (i % 3), right ? "end" : "start", 10, 0,
                     "fill=\"#555555\"", p->mark_names[i]);
    }

    // Series: one path each (gaps where a point is unusable), a marker per point.
    for (int s = 0; s < p->n_series; s++) {
        const plot_series *se = &p->series[s];
        const char *colour = PALETTE[s % 10];
        sb_printf(&b, "<path class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", colour);
        bool pen_down = false;
        for (int i = 0; i < se->n; i++) {
            if (!usable(&ax, se->x[i]) || !usable(&ay, se->y[i])) {
                pen_down = false;
                continue;
            }
            double x = LP_LEFT + frac(&ax, se->x[i]) * LP_W, y = top + (1 - frac(&ay, se->y[i])) * LP_H;
            sb_printf(&b, "%s%c%.1f %.1f", b.s[b.n - 1] == '"' ? "" : " ", pen_down ? 'L' : 'M', x, y);
            pen_down = true;
        }
        sb_printf(&b, "\"/>\n");
        for (int i = 0; i < se->n; i++) {
            if (!usable(&ax, se->x[i]) || !usable(&ay, se->y[i])) continue;
            double x = LP_LEFT + frac(&ax, se->x[i]) * LP_W, y = top + (1 - frac(&ay, se->y[i])) * LP_H;
            sb_printf(&b, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x, y, colour);
        }
        double ly = top + 10 + 20 * s;
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                  legend_x, ly, legend_x + 24, ly, colour);
        sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", legend_x + 12, ly, colour);
        char name[LP_NAME_MAX + 8];
        sb_label(&b, legend_x + 32, ly + 4, "start", 11, 0, NULL, legend_name(name, sizeof name, se->name));
    }
    sb_printf(&b, "</svg>\n");
    return b.s;
}

int plot_write(const char *path, const char *svg, char *err, size_t errlen) {
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot create (%s)", path, strerror(errno));
        return -1;
    }
    bool ok = fputs(svg, f) >= 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        snprintf(err, errlen, "%s: write failed (%s)", path, strerror(errno));
        return -1;
    }
    return 0;
}
