// Tests for common/plot_svg: the SVG text is well-formed XML (checked by a
// small independent parser written here, which is itself shown to reject
// broken documents), holds one rect per heatmap cell filled with the colour
// map of its value and one path per line-plot series with a marker per
// usable point, log axes space equal ratios equally, names are escaped,
// the colour map is monotone in every channel, counts format as 1k etc.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_svg.h"

// ---------------------------------------------------------------------------
// A minimal XML well-formedness check: an optional prolog and comments,
// exactly one root element, every start tag closed in order, attribute
// values quoted and unique per element, '&' only in the five predefined
// entities or a character reference, no '<' in text or values, no text
// outside the root. Returns 0, or -1 with the reason in msg.

#define XML_DEPTH 64

static int xml_entity(const char *s, size_t *i, char *msg, size_t len) {
    static const char *const names[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int k = 0; k < 5; k++)
        if (!strncmp(s + *i, names[k], strlen(names[k]))) {
            *i += strlen(names[k]);
            return 0;
        }
    if (s[*i + 1] == '#') {
        size_t j = *i + 2;
        while (isxdigit((unsigned char)s[j]) || s[j] == 'x') j++;
        if (s[j] == ';' && j > *i + 2) {
            *i = j + 1;
            return 0;
        }
    }
    snprintf(msg, len, "bare '&' at %zu", *i);
    return -1;
}

static size_t xml_name(const char *s, size_t i) {
    size_t j = i;
    if (!(isalpha((unsigned char)s[j]) || s[j] == '_' || s[j] == ':')) return 0;
    while (isalnum((unsigned char)s[j]) || strchr("_:.-", s[j])) j++;
    return j - i;
}

static int xml_check(const char *s, char *msg, size_t len) {
    char stack[XML_DEPTH][32];
    int depth = 0, roots = 0;
    size_t i = 0;
    while (s[i]) {
        if (s[i] == '&') {
            if (xml_entity(s, &i, msg, len)) return -1;
            continue;
        }
        if (s[i] != '<') {
            if (depth == 0 && !isspace((unsigned char)s[i])) {
                snprintf(msg, len, "text outside the root at %zu", i);
                return -1;
            }
            if (s[i] == '>' && depth == 0) return snprintf(msg, len, "stray '>'"), -1;
            i++;
            continue;
        }
        if (!strncmp(s + i, "<?", 2) || !strncmp(s + i, "<!--", 4)) {
            const char *end = strstr(s + i, s[i + 1] == '?' ? "?>" : "-->");
            if (!end || (s[i + 1] == '?' && roots > 0)) return snprintf(msg, len, "bad prolog/comment at %zu", i), -1;
            i = (size_t)(end - s) + (s[i + 1] == '?' ? 2 : 3);
            continue;
        }
        if (s[i + 1] == '/') {  // end tag
            size_t n = xml_name(s, i + 2);
            if (n == 0 || depth == 0 || strlen(stack[depth - 1]) != n || strncmp(stack[depth - 1], s + i + 2, n)) {
                snprintf(msg, len, "end tag at %zu does not match '%s'", i, depth ? stack[depth - 1] : "");
                return -1;
            }
            i += 2 + n;
            while (isspace((unsigned char)s[i])) i++;
            if (s[i] != '>') return snprintf(msg, len, "bad end tag at %zu", i), -1;
            i++;
            depth--;
            continue;
        }
        size_t n = xml_name(s, i + 1);  // start tag
        if (n == 0 || n >= 32) return snprintf(msg, len, "bad element name at %zu", i), -1;
        if (depth == 0 && roots++ > 0) return snprintf(msg, len, "a second root element at %zu", i), -1;
        char name[32];
        memcpy(name, s + i + 1, n);
        name[n] = '\0';
        i += 1 + n;
        char attrs[64][32];
        int n_attrs = 0;
        for (;;) {
            bool space = isspace((unsigned char)s[i]);
            while (isspace((unsigned char)s[i])) i++;
            if (!strncmp(s + i, "/>", 2)) {
                i += 2;
                break;
            }
            if (s[i] == '>') {
                if (depth == XML_DEPTH) return snprintf(msg, len, "too deep"), -1;
                snprintf(stack[depth++], 32, "%s", name);
                i++;
                break;
            }
            size_t an = xml_name(s, i);
            if (!space || an == 0 || an >= 32 || s[i + an] != '=' || (s[i + an + 1] != '"' && s[i + an + 1] != '\'')) {
                snprintf(msg, len, "bad attribute in <%s> at %zu", name, i);
                return -1;
            }
            for (int k = 0; k < n_attrs; k++)
                if (strlen(attrs[k]) == an && !strncmp(attrs[k], s + i, an))
                    return snprintf(msg, len, "attribute repeated in <%s> at %zu", name, i), -1;
            if (n_attrs < 64) memcpy(attrs[n_attrs], s + i, an), attrs[n_attrs++][an] = '\0';
            char quote = s[i + an + 1];
            i += an + 2;
            while (s[i] && s[i] != quote) {
                if (s[i] == '<') return snprintf(msg, len, "'<' in an attribute value at %zu", i), -1;
                if (s[i] == '&') {
                    if (xml_entity(s, &i, msg, len)) return -1;
                } else {
                    i++;
                }
            }
            if (!s[i]) return snprintf(msg, len, "unterminated attribute value"), -1;
            i++;
        }
    }
    if (depth != 0 || roots != 1) {
        snprintf(msg, len, depth ? "unclosed <%s>" : "no root element", depth ? stack[depth - 1] : "");
        return -1;
    }
    return 0;
}

static void assert_xml(const char *svg) {
    char msg[256] = "";
    int rc = xml_check(svg, msg, sizeof msg);
    if (rc != 0) fprintf(stderr, "not well-formed: %s\n", msg);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(svg, "</svg>"));
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

// The value of attribute attr of the k-th element starting with `start`.
static double attr_of(const char *s, const char *start, int k, const char *attr, char *text, size_t len) {
    const char *p = strstr(s, start);
    for (int i = 0; i < k && p; i++) p = strstr(p + 1, start);
    assert_non_null(p);
    const char *end = strchr(p, '>');
    char key[40];
    snprintf(key, sizeof key, " %s=\"", attr);
    const char *a = strstr(p, key);
    assert_true(a && a < end);
    a += strlen(key);
    size_t n = strcspn(a, "\"");
    if (text) snprintf(text, len, "%.*s", (int)n, a);
    return atof(a);
}

// ---------------------------------------------------------------------------

static void test_checker_rejects_broken_xml(void **state) {
    (void)state;
    char msg[256];
    assert_int_equal(xml_check("<?xml version=\"1.0\"?>\n<a x=\"1\"><b/><c>t &amp; u</c></a>\n", msg, sizeof msg), 0);
    const char *bad[] = {
        "<a><b></a></b>", "<a>", "<a x=1/>", "<a x=\"1\" x=\"2\"/>", "<a>&</a>", "<a/><b/>",
        "<a y=\"<\"/>", "text<a/>", "<a></b>", "<a x=\"1\"y=\"2\"/>", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(xml_check(bad[i], msg, sizeof msg), -1);
}

static void test_colormap_monotone(void **state) {
    (void)state;
    uint8_t prev[3], c[3];
    plot_colormap(prev, 0.0);
    for (int i = 1; i <= 1000; i++) {
        plot_colormap(c, i / 1000.0);
        assert_true(c[0] <= prev[0]);  // red falls
        assert_true(c[1] >= prev[1]);  // green rises
        assert_true(c[2] >= prev[2]);  // blue rises
        memcpy(prev, c, 3);
    }
    uint8_t lo[3], hi[3], x[3];
    plot_colormap(lo, 0.0);
    plot_colormap(hi, 1.0);
    assert_true(lo[0] > hi[0] + 100 && hi[1] > lo[1] + 100);  // clearly red vs clearly green
    plot_colormap(x, -3.0);
    assert_memory_equal(x, lo, 3);  // clamped
    plot_colormap(x, 7.0);
    assert_memory_equal(x, hi, 3);
    plot_colormap(x, NAN);
    assert_true(x[0] == x[1] && x[1] == x[2]);  // grey
}

static void test_format_count(void **state) {
    (void)state;
    const struct { double n; const char *want; } cases[] = {
        {256, "256"}, {1000, "1000"}, {1024, "1k"}, {1536, "1.5k"}, {4096, "4k"}, {32768, "32k"},
        {131072, "128k"}, {1048576, "1M"}, {3000, "3000"}, {0.5, "0.5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        plot_format_count(buf, sizeof buf, cases[i].n);
        assert_string_equal(buf, cases[i].want);
    }
}

static void test_heatmap(void **state) {
    (void)state;
    enum { NX = 3, NY = 4 };
    const char *x_names[NX] = {"1k", "4k", "<16k & more>"};
    const char *y_names[NY] = {"0%", "33%", "67%", "100%"};
    double values[NY * NX] = {1, 0.5, 0, 0.8, NAN, 0.25, 0.1, 0.9, 1, 0.7, 0.3, 0.6};
    plot_heatmap h = {.title = "passkey \"ckpt\" <test>", .x_label = "length", .y_label = "depth",
                      .bar_label = "accuracy (%)", .nx = NX, .ny = NY, .x_names = x_names,
                      .y_names = y_names, .values = values, .vmin = 0, .vmax = 1, .text_scale = 100};
    char *svg = plot_heatmap_svg(&h);
    assert_xml(svg);
    assert_int_equal(count(svg, "class=\"cell\""), NX * NY);
    assert_non_null(strstr(svg, "&lt;16k &amp; more&gt;"));
    assert_non_null(strstr(svg, "passkey &quot;ckpt&quot; &lt;test&gt;"));
    // Cells row-major, each filled with the colour map of its value, placed
    // on its row and column.
    for (int k = 0; k < NX * NY; k++) {
        char fill[16], want[16];
        attr_of(svg, "<rect class=\"cell\"", k, "fill", fill, sizeof fill);
        uint8_t rgb[3];
        plot_colormap(rgb, values[k]);
        snprintf(want, sizeof want, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
        assert_string_equal(fill, want);
        double x = attr_of(svg, "<rect class=\"cell\"", k, "x", NULL, 0);
        double y = attr_of(svg, "<rect class=\"cell\"", k, "y", NULL, 0);
        double x0 = attr_of(svg, "<rect class=\"cell\"", 0, "x", NULL, 0);
        double y0 = attr_of(svg, "<rect class=\"cell\"", 0, "y", NULL, 0);
        double w = attr_of(svg, "<rect class=\"cell\"", 0, "width", NULL, 0);
        double hh = attr_of(svg, "<rect class=\"cell\"", 0, "height", NULL, 0);
        assert_true(fabs(x - (x0 + (k % NX) * w)) < 0.11 && fabs(y - (y0 + (k / NX) * hh)) < 0.11);
    }
    // The values as percentages, "-" for the missing one; the colour bar.
    assert_non_null(strstr(svg, ">50</text>"));
    assert_non_null(strstr(svg, ">25</text>"));
    assert_non_null(strstr(svg, ">-</text>"));
    assert_int_equal(count(svg, "class=\"colorbar\""), 1);
    assert_int_equal(count(svg, "<stop "), 11);
    free(svg);
}

static void test_lines(void **state) {
    (void)state;
    double x[4] = {256, 512, 1024, 2048};
    double y0[4] = {10, 100, 1000, 10000};
    double y1[4] = {20, NAN, 30, 40};   // a gap
    double y2[4] = {15, -1, 25, 35};    // -1 is not usable on a log axis
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    plot_series s[3] = {{"run/a.h5", 4, x, y0}, {"b & <c>", 4, x, y1}, {long_name, 4, x, y2}};
    plot_lines p = {.title = "ppl", .x_label = "length", .y_label = "perplexity", .log_x = true,
                    .log_y = true, .x_counts = true, .n_series = 3, .series = s};
    char *svg = plot_lines_svg(&p);
    assert_xml(svg);
    assert_int_equal(count(svg, "class=\"series\""), 3);
    assert_int_equal(count(svg, "class=\"point\""), 4 + 3 + 3);
    assert_non_null(strstr(svg, "b &amp; &lt;c&gt;"));
    assert_null(strstr(svg, long_name));  // shortened in the legend
    // Log axes: equal ratios are equal distances (series 0: x doubles, y x10).
    double cx[4], cy[4];
    for (int i = 0; i < 4; i++) {
        cx[i] = attr_of(svg, "<circle class=\"point\"", i, "cx", NULL, 0);
        cy[i] = attr_of(svg, "<circle class=\"point\"", i, "cy", NULL, 0);
    }
    for (int i = 1; i < 3; i++) {
        assert_true(fabs((cx[i + 1] - cx[i]) - (cx[1] - cx[0])) < 0.15);
        assert_true(fabs((cy[i + 1] - cy[i]) - (cy[1] - cy[0])) < 0.15);
    }
    assert_true(cx[1] > cx[0] && cy[1] < cy[0]);  // right and up
    // The gap: series 1's path restarts (two move-tos); x ticks as counts.
    char d[256];
    attr_of(svg, "<path class=\"series\"", 1, "d", d, sizeof d);
    assert_int_equal(count(d, "M"), 2);
    assert_int_equal(count(d, "L"), 1);
    assert_non_null(strstr(svg, ">1k</text>"));
    assert_non_null(strstr(svg, ">512</text>"));
    free(svg);

    // Linear axes: equal differences are equal distances.
    double ylin[4] = {1, 2, 3, 4};
    plot_series one = {"x", 4, ylin, ylin};
    plot_lines q = {.x_label = "x", .y_label = "y", .n_series = 1, .series = &one};
    svg = plot_lines_svg(&q);
    assert_xml(svg);
    for (int i = 0; i < 4; i++) cx[i] = attr_of(svg, "<circle class=\"point\"", i, "cx", NULL, 0);
    assert_true(fabs((cx[3] - cx[2]) - (cx[1] - cx[0])) < 0.15);
    free(svg);
}

static void test_write(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(plot_write("/nonexistent-dir/x.svg", "<svg/>", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.svg"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_rejects_broken_xml), cmocka_unit_test(test_colormap_monotone),
        cmocka_unit_test(test_format_count),               cmocka_unit_test(test_heatmap),
        cmocka_unit_test(test_lines),                      cmocka_unit_test(test_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
