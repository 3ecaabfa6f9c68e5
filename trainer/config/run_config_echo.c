// run_config_echo: the text forms of a run config, all driven by the key
// table: the echo (YAML of every key, what checkpoints store), the --help
// key reference, and the diff of two configs.
#include "run_config_echo.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"

// ---------------------------------------------------------------------------
// A growing string

typedef struct {
    char *s;
    size_t n, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->s ? b->s + b->n : NULL, room, fmt, ap);
        va_end(ap);
        CHECK(k >= 0);
        if ((size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
}

// ---------------------------------------------------------------------------
// Values as YAML

// Shortest decimal that reads back as the same double, spelled as a YAML
// float (with a '.') so that other YAML readers see a number too.
static void format_double(char *out, size_t outlen, double x, bool single) {
    if (x == floor(x) && fabs(x) < 1e15) {  // integral: 10000.0, not 1.0e+04
        snprintf(out, outlen, "%.1f", x);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(out, outlen, "%.*g", p, x);
        if (single ? strtof(out, NULL) == (float)x : strtod(out, NULL) == x) break;
    }
    if (strchr(out, '.') || strchr(out, 'n') || strchr(out, 'i')) return;
    char *e = strchr(out, 'e');
    char tail[32] = "";
    if (e) {
        snprintf(tail, sizeof tail, "%s", e);
        *e = '\0';
    }
    size_t n = strlen(out);
    snprintf(out + n, outlen - n, ".0%s", tail);
}

static void format_string(strbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            sb_printf(b, "\\x%02x", *p);
        else
            sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

// Appends the YAML text of key k's value in the struct at base.
static void format_value(strbuf *b, const cfg_key *k, const void *base) {
    const void *field = (const char *)base + k->offset;
    char num[40];
    switch (k->type) {
    case CFG_T_INT: {
        int v = *(const int *)field;
        if ((k->flags & CFG_F_NULL) && v < 0) sb_printf(b, "null");
        else sb_printf(b, "%d", v);
        return;
    }
    case CFG_T_INT64: {
        int64_t v = *(const int64_t *)field;
        if ((k->flags & CFG_F_NULL) && v < 0) sb_printf(b, "null");
        else sb_printf(b, "%lld", (long long)v);
        return;
    }
    case CFG_T_FLOAT:
    case CFG_T_DOUBLE: {
        double v = k->type == CFG_T_FLOAT ? *(const float *)field : *(const double *)field;
        if (isnan(v)) {
            sb_printf(b, "null");
            return;
        }
        format_double(num, sizeof num, v, k->type == CFG_T_FLOAT);
        sb_printf(b, "%s", num);
        return;
    }
    case CFG_T_BOOL: sb_printf(b, "%s", *(const bool *)field ? "true" : "false"); return;
    case CFG_T_STRING: {
        const char *s = *(char *const *)field;
        if (s) format_string(b, s);
        else sb_printf(b, "null");
        return;
    }
    case CFG_T_ENUM: {
        int v = *(const int *)field, n = 0;
        while (k->names[n]) n++;
        if (v >= 0 && v < n) sb_printf(b, "%s", k->names[v]);
        else if (v < 0 && (k->flags & CFG_F_NULL)) sb_printf(b, "null");
        else sb_printf(b, "%d", v);  // not a valid value: fails to parse back
        return;
    }
    case CFG_T_DOUBLES:
    case CFG_T_INTS:
    case CFG_T_STRINGS: {
        int n = ((const cfg_doubles *)field)->n;  // all three lists start {v, n}
        sb_printf(b, "[");
        for (int i = 0; i < n; i++) {
            if (i) sb_printf(b, ", ");
            if (k->type == CFG_T_DOUBLES) {
                format_double(num, sizeof num, ((const cfg_doubles *)field)->v[i], false);
                sb_printf(b, "%s", num);
            } else if (k->type == CFG_T_INTS) {
                sb_printf(b, "%lld", (long long)((const cfg_ints *)field)->v[i]);
            } else {
                format_string(b, ((const cfg_strings *)field)->v[i]);
            }
        }
        sb_printf(b, "]");
        return;
    }
    }
}

// ---------------------------------------------------------------------------
// Echo

static void echo_indent(strbuf *b, bool *first, const char *first_prefix, int indent) {
    if (*first) sb_printf(b, "%s", first_prefix);
    else sb_printf(b, "%*s", indent, "");
    *first = false;
}

// Emits the run keys (stage false) or stage keys of the struct at base as
// YAML at indent, sections nested by the dots of the paths (data.task_mix.vt
// -> data: / task_mix: / vt:); first_prefix replaces the indent of the first
// line ("  - " for a list item).
static void echo_keys(strbuf *b, bool stage, const void *base, int indent,
                      const char *first_prefix) {
    int n;
    const cfg_key *keys = cfg_keys(&n);
    const char *prev = "";
    bool first = true;
    for (int i = 0; i < n; i++) {
        const cfg_key *k = &keys[i];
        if (k->stage != stage) continue;
        // The sections this key shares with the previous one stay open.
        size_t same = 0;  // length of the common section prefix, ending at a dot
        for (size_t j = 0; k->path[j] && k->path[j] == prev[j]; j++)
            if (k->path[j] == '.') same = j + 1;
        int level = 0;
        for (size_t j = 0; j < same; j++) level += k->path[j] == '.';
        for (const char *sec = k->path + same, *dot; (dot = strchr(sec, '.')); sec = dot + 1, level++) {
            echo_indent(b, &first, first_prefix, indent + 2 * level);
            sb_printf(b, "%.*s:\n", (int)(dot - sec), sec);
        }
        prev = k->path;
        const char *leaf = strrchr(k->path, '.');
        echo_indent(b, &first, first_prefix, indent + 2 * level);
        sb_printf(b, "%s: ", leaf ? leaf + 1 : k->path);
        format_value(b, k, base);
        sb_printf(b, "\n");
    }
}

char *cfg_echo(const cfg_run *cfg) {
    strbuf b = {0};
    sb_printf(&b, "# stretch run config: every key, effective values\n");
    echo_keys(&b, false, cfg, 0, "");
    sb_printf(&b, "stages:\n");
    for (int i = 0; i < cfg->n_stages; i++) echo_keys(&b, true, &cfg->stages[i], 4, "  - ");
    return b.s;
}

// ---------------------------------------------------------------------------
// --help

// Writes text wrapped at 79 columns, every line indented by indent.
static void print_wrapped(FILE *out, const char *text, int indent) {
    int col = 0;
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + (int)word > 79) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0) col = fprintf(out, "%*s", indent, "");
        else col += fprintf(out, " ");
        col += fprintf(out, "%.*s", (int)word, text);
        text += word;
        while (*text == ' ') text++;
    }
    fputc('\n', out);
}

void cfg_print_help(FILE *out) {
    static const char *const type_names[] = {
        [CFG_T_INT] = "integer", [CFG_T_INT64] = "integer", [CFG_T_FLOAT] = "number",
        [CFG_T_DOUBLE] = "number", [CFG_T_BOOL] = "bool", [CFG_T_STRING] = "string",
        [CFG_T_ENUM] = "one of", [CFG_T_DOUBLES] = "list of numbers",
        [CFG_T_INTS] = "list of integers", [CFG_T_STRINGS] = "list of strings"};
    fprintf(out,
            "Run file keys (YAML). Any key can be overridden on the command line with\n"
            "--KEY VALUE, e.g. --optimizer.lr 1e-4 or --stages.1.seq_len 2048 (stages count\n"
            "from 0; lists as [a, b] or a,b; null where allowed). schedules/example.yaml is\n"
            "a commented example.\n");
    int n;
    const cfg_key *keys = cfg_keys(&n);
    for (int i = 0; i < n; i++) {
        const cfg_key *k = &keys[i];
        size_t sec = strcspn(k->path, ".");
        bool new_section = i == 0 || k->stage != keys[i - 1].stage ||
                           (!k->stage && strncmp(k->path, keys[i - 1].path, sec + 1));
        if (new_section && k->stage)
            fprintf(out, "\nstages: a list of up to %d stages, each a mapping of:\n",
                    CFG_MAX_STAGES);
        else if (new_section)
            fprintf(out, "\n%.*s:\n", (int)sec, k->path);
        fprintf(out, "  %s%s  (%s", k->stage ? "stages.N." : "", k->path, type_names[k->type]);
        if (k->type == CFG_T_ENUM)
            for (int j = 0; k->names[j]; j++) fprintf(out, "%s%s", j ? "|" : " ", k->names[j]);
        fprintf(out, ", default %s)\n", k->def);
        print_wrapped(out, k->help, 6);
    }
}

// ---------------------------------------------------------------------------
// Diff

static bool values_equal(const cfg_key *k, const void *a, const void *b) {
    const void *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    switch (k->type) {
    case CFG_T_INT:
    case CFG_T_ENUM: return *(const int *)fa == *(const int *)fb;
    case CFG_T_INT64: return *(const int64_t *)fa == *(const int64_t *)fb;
    case CFG_T_FLOAT: {
        float x = *(const float *)fa, y = *(const float *)fb;
        return x == y || (isnan(x) && isnan(y));
    }
    case CFG_T_DOUBLE: {
        double x = *(const double *)fa, y = *(const double *)fb;
        return x == y || (isnan(x) && isnan(y));
    }
    case CFG_T_BOOL: return *(const bool *)fa == *(const bool *)fb;
    case CFG_T_STRING: {
        const char *x = *(char *const *)fa, *y = *(char *const *)fb;
        return (!x && !y) || (x && y && !strcmp(x, y));
    }
    case CFG_T_DOUBLES: {
        const cfg_doubles *x = fa, *y = fb;
        if (x->n != y->n) return false;
        for (int i = 0; i < x->n; i++) if (x->v[i] != y->v[i]) return false;
        return true;
    }
    case CFG_T_INTS: {
        const cfg_ints *x = fa, *y = fb;
        if (x->n != y->n) return false;
        for (int i = 0; i < x->n; i++) if (x->v[i] != y->v[i]) return false;
        return true;
    }
    case CFG_T_STRINGS: {
        const cfg_strings *x = fa, *y = fb;
        if (x->n != y->n) return false;
        for (int i = 0; i < x->n; i++) if (strcmp(x->v[i], y->v[i])) return false;
        return true;
    }
    }
    return false;
}

// Appends "key: a -> b" to the diff line; values cut at 40 characters.
static void diff_add(strbuf *line, int *count, const char *key, const cfg_key *k, const void *a,
                     const void *b) {
    strbuf va = {0}, vb = {0};
    format_value(&va, k, a);
    format_value(&vb, k, b);
    sb_printf(line, "%s%s: %.40s%s -> %.40s%s", *count ? ", " : "", key, va.s,
              va.n > 40 ? "..." : "", vb.s, vb.n > 40 ? "..." : "");
    free(va.s);
    free(vb.s);
    (*count)++;
}

static void diff_keys(strbuf *line, int *count, bool stage, const void *a, const void *b,
                      const char *prefix, bool incompatible_only) {
    int n;
    const cfg_key *keys = cfg_keys(&n);
    for (int i = 0; i < n; i++) {
        const cfg_key *k = &keys[i];
        if (k->stage != stage || (incompatible_only && (k->flags & CFG_F_RESUME))) continue;
        if (values_equal(k, a, b)) continue;
        char key[160];
        snprintf(key, sizeof key, "%s%s", prefix, k->path);
        diff_add(line, count, key, k, a, b);
    }
}

int cfg_diff(char *buf, size_t buflen, const cfg_run *a, const cfg_run *b, bool incompatible_only) {
    strbuf line = {0};
    int count = 0;
    sb_printf(&line, "%s", "");  // buf gets "" when nothing differs
    diff_keys(&line, &count, false, a, b, "", incompatible_only);
    if (a->n_stages != b->n_stages) {
        sb_printf(&line, "%sstages: %d stages -> %d stages", count ? ", " : "", a->n_stages,
                  b->n_stages);
        count++;
    }
    int n = a->n_stages < b->n_stages ? a->n_stages : b->n_stages;
    for (int i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "stages.%d.", i);
        diff_keys(&line, &count, true, &a->stages[i], &b->stages[i], prefix, incompatible_only);
    }
    if (buf && buflen > 0) {
        if (line.n < buflen) {
            memcpy(buf, line.s, line.n + 1);
        } else if (buflen > 4) {
            memcpy(buf, line.s, buflen - 4);
            memcpy(buf + buflen - 4, "...", 4);
        } else {
            buf[0] = '\0';
        }
    }
    free(line.s);
    return count;
}

bool cfg_key_equal(const cfg_key *k, const void *a, const void *b) { return values_equal(k, a, b); }

char *cfg_key_format(const cfg_key *k, const void *base) {
    strbuf v = {0};
    format_value(&v, k, base);
    return v.s ? v.s : xcalloc(1, 1);
}
