// search_io: state, factors and report files of `stretch search`. See search_io.h.
#include "search_io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "errmsg.h"
#include "fsutil.h"
#include "plot_svg.h"

#define STATE_MAGIC "stretch-search-state 1"

// ---------------------------------------------------------------------------
// Settings

void search_settings_add(search_settings *s, const char *key, const char *fmt, ...) {
    CHECK(s->n < SEARCH_MAX_SETTINGS && strlen(key) < sizeof s->v[0].key && !strpbrk(key, " \t\n"));
    snprintf(s->v[s->n].key, sizeof s->v[0].key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->v[s->n].value, sizeof s->v[0].value, fmt, ap);
    va_end(ap);
    s->v[s->n].value[strcspn(s->v[s->n].value, "\n")] = '\0';  // one line
    s->n++;
}

static const char *setting(const search_settings *s, const char *key) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].key, key)) return s->v[i].value;
    return NULL;
}

int search_settings_compare(const search_settings *saved, const search_settings *now, char *err,
                            size_t errlen) {
    for (int i = 0; i < now->n; i++) {
        const char *a = setting(saved, now->v[i].key), *b = now->v[i].value;
        if (!a || strcmp(a, b))
            return errmsg(err, errlen, "%s: %s (saved) vs %s (now)", now->v[i].key, a ? a : "(none)", b);
    }
    for (int i = 0; i < saved->n; i++)
        if (!setting(now, saved->v[i].key))
            return errmsg(err, errlen, "%s: %s (saved) vs (none) (now)", saved->v[i].key, saved->v[i].value);
    return 0;
}

// ---------------------------------------------------------------------------
// Atomic text files

// ---------------------------------------------------------------------------
// The state file

int search_state_save(const char *path, const search_state *st, const search_settings *settings,
                      char *err, size_t errlen) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) die("open_memstream: %s", strerror(errno));
    const search_space *sp = &st->space;
    fprintf(f, "%s\n", STATE_MAGIC);
    for (int i = 0; i < settings->n; i++) fprintf(f, "setting %s %s\n", settings->v[i].key, settings->v[i].value);
    fprintf(f, "space %d %.17g %d", sp->n_pairs, sp->s, sp->n_nhat);
    for (int i = 0; i < sp->n_nhat; i++) fprintf(f, " %" PRId64, sp->nhat[i]);
    fprintf(f, "\nbounds");
    for (int i = 0; i < sp->n_pairs; i++) fprintf(f, " %.17g %.17g", sp->lo[i], sp->hi[i]);
    fprintf(f, "\nrun %d %d %" PRIu64 " %d %" PRId64 "\n", st->population, st->topk, st->seed, st->generation,
            st->evaluated);
    fprintf(f, "rng %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n", st->rng.s[0], st->rng.s[1],
            st->rng.s[2], st->rng.s[3]);
    fprintf(f, "baseline %.17g %.17g %.17g\n", st->baseline_nll[0], st->baseline_nll[1], st->baseline_nll[2]);
    for (int g = 0; g < st->generation; g++) {
        const search_history *h = &st->history[g];
        fprintf(f, "history %" PRId64 " %.17g %.17g %" PRId64 "\n", h->evaluated, h->best_nll, h->mean_nll,
                h->best_n_hat);
    }
    for (int i = 0; i < st->population; i++) {
        const search_candidate *c = &st->pop[i];
        fprintf(f, "cand %" PRId64 " %.17g", c->n_hat, c->nll);
        for (int k = 0; k < sp->n_pairs; k++) fprintf(f, " %.17g", c->lambda[k]);
        fprintf(f, "\n");
    }
    fprintf(f, "end\n");
    if (fclose(f) != 0) die("open_memstream: %s", strerror(errno));
    int rc = fsutil_write_atomic(path, text, len, err, errlen);
    free(text);
    return rc;
}

typedef struct {
    const char *path;
    int line;
    char *p;  // the rest of the current line
    char *err;
    size_t errlen;
} reader;

static int bad(reader *r, const char *what) {
    return errmsg(r->err, r->errlen, "%s: line %d: %s (not a state of this stretch search, or damaged)", r->path,
                  r->line, what);
}

static int get_double(reader *r, double *out) {
    char *end;
    errno = 0;
    *out = strtod(r->p, &end);
    if (end == r->p || errno == ERANGE) return bad(r, "expected a number");
    r->p = end;
    return 0;
}

static int get_i64(reader *r, int64_t *out, int64_t lo, int64_t hi) {
    char *end;
    errno = 0;
    long long v = strtoll(r->p, &end, 10);
    if (end == r->p || errno || v < lo || v > hi) return bad(r, "expected an integer in range");
    r->p = end;
    *out = v;
    return 0;
}

static int get_int(reader *r, int *out, int lo, int hi) {
    int64_t v = 0;
    if (get_i64(r, &v, lo, hi)) return -1;
    *out = (int)v;
    return 0;
}

static int get_u64(reader *r, uint64_t *out, int base) {
    char *end;
    errno = 0;
    while (*r->p == ' ') r->p++;
    if (*r->p == '-') return bad(r, "expected an unsigned integer");
    *out = strtoull(r->p, &end, base);
    if (end == r->p || errno) return bad(r, "expected an unsigned integer");
    r->p = end;
    return 0;
}

static int line_end(reader *r) {
    r->p += strspn(r->p, " \t\r\n");
    return *r->p ? bad(r, "unexpected text at the end of the line") : 0;
}

// Parses one line (tag already cut off into `tag`, the rest in r->p).
static int parse_line(search_state *st, search_settings *set, reader *r, const char *tag, int *n_hist,
                      int *n_cand, bool *done) {
    search_space *sp = &st->space;
    if (!strcmp(tag, "setting")) {
        while (*r->p == ' ') r->p++;
        size_t k = strcspn(r->p, " \n");
        if (k == 0 || k >= sizeof set->v[0].key || set->n == SEARCH_MAX_SETTINGS) return bad(r, "bad setting");
        char key[32];
        memcpy(key, r->p, k);
        key[k] = '\0';
        char *v = r->p + k + (r->p[k] == ' ');
        v[strcspn(v, "\n")] = '\0';
        search_settings_add(set, key, "%s", v);
        return 0;
    }
    if (!strcmp(tag, "space")) {
        if (get_int(r, &sp->n_pairs, 1, ROPE_MAX_PAIRS) || get_double(r, &sp->s) ||
            get_int(r, &sp->n_nhat, 1, SEARCH_MAX_NHAT))
            return -1;
        for (int i = 0; i < sp->n_nhat; i++)
            if (get_i64(r, &sp->nhat[i], 0, INT64_MAX)) return -1;
        if (!(sp->s > 1.0)) return bad(r, "extension ratio <= 1");
        for (int i = 0; i < sp->n_pairs; i++) sp->lo[i] = 1.0, sp->hi[i] = sp->s;  // no bounds line: LongRoPE's
        return line_end(r);
    }
    if (!strcmp(tag, "bounds")) {
        if (sp->n_pairs == 0) return bad(r, "bounds before the space");
        for (int i = 0; i < sp->n_pairs; i++) {
            if (get_double(r, &sp->lo[i]) || get_double(r, &sp->hi[i])) return -1;
            if (!(sp->lo[i] >= 1.0 && sp->lo[i] <= sp->hi[i]) || (i > 0 && (sp->lo[i] < sp->lo[i - 1] ||
                sp->hi[i] < sp->hi[i - 1])))
                return bad(r, "bounds that are not 1 <= lo <= hi, non-decreasing");
        }
        return line_end(r);
    }
    if (!strcmp(tag, "run")) {
        if (get_int(r, &st->population, SEARCH_N_BASELINES, SEARCH_MAX_POPULATION) ||
            get_int(r, &st->topk, 1, st->population) || get_u64(r, &st->seed, 10) ||
            get_int(r, &st->generation, 0, 1 << 30) || get_i64(r, &st->evaluated, 0, INT64_MAX))
            return -1;
        if (st->pop) return bad(r, "a second run line");
        st->pop = xcalloc((size_t)st->population, sizeof(search_candidate));
        st->history = xcalloc((size_t)st->generation + 1, sizeof(search_history));
        return line_end(r);
    }
    if (!strcmp(tag, "rng")) {
        for (int i = 0; i < 4; i++)
            if (get_u64(r, &st->rng.s[i], 16)) return -1;
        return line_end(r);
    }
    if (!strcmp(tag, "baseline")) {
        for (int i = 0; i < SEARCH_N_BASELINES; i++)
            if (get_double(r, &st->baseline_nll[i])) return -1;
        return line_end(r);
    }
    if (!strcmp(tag, "history")) {
        if (!st->pop || *n_hist >= st->generation) return bad(r, "unexpected history line");
        search_history *h = &st->history[(*n_hist)++];
        if (get_i64(r, &h->evaluated, 0, INT64_MAX) || get_double(r, &h->best_nll) || get_double(r, &h->mean_nll) ||
            get_i64(r, &h->best_n_hat, 0, INT64_MAX))
            return -1;
        return line_end(r);
    }
    if (!strcmp(tag, "cand")) {
        if (!st->pop || sp->n_pairs == 0 || *n_cand >= st->population) return bad(r, "unexpected candidate line");
        search_candidate *c = &st->pop[(*n_cand)++];
        if (get_i64(r, &c->n_hat, 0, INT64_MAX) || get_double(r, &c->nll)) return -1;
        for (int k = 0; k < sp->n_pairs; k++)
            if (get_double(r, &c->lambda[k])) return -1;
        if (line_end(r)) return -1;
        if (st->generation > 0 && !search_valid(c, sp)) return bad(r, "a candidate outside the search space");
        return 0;
    }
    if (!strcmp(tag, "end")) {
        *done = true;
        return line_end(r);
    }
    return bad(r, "unknown line");
}

int search_state_load(search_state *st, search_settings *settings, const char *path, char *err,
                      size_t errlen) {
    memset(st, 0, sizeof *st);
    memset(settings, 0, sizeof *settings);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 1;
        return errmsg(err, errlen, "cannot read %s: %s", path, strerror(errno));
    }
    reader r = {.path = path, .err = err, .errlen = errlen};
    char *line = NULL;
    size_t cap = 0;
    int n_hist = 0, n_cand = 0, rc = 0;
    bool done = false;
    while (rc == 0 && !done && getline(&line, &cap, f) >= 0) {
        r.line++;
        if (r.line == 1) {
            if (strcmp(line, STATE_MAGIC "\n")) rc = bad(&r, "not a search state file");
            continue;
        }
        size_t k = strcspn(line, " \n");
        char tag[16];
        snprintf(tag, sizeof tag, "%.*s", (int)(k < sizeof tag ? k : sizeof tag - 1), line);
        r.p = line + k;
        rc = parse_line(st, settings, &r, tag, &n_hist, &n_cand, &done);
    }
    free(line);
    fclose(f);
    if (rc == 0 && (!done || !st->pop || n_hist != st->generation || n_cand != st->population)) {
        r.line++;
        rc = bad(&r, "the file ends early");
    }
    if (rc != 0) {
        search_state_free(st);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Factors file and report

int search_write_factors(const char *path, const double *short_f, const search_candidate *c, int n_pairs,
                         const char *comment, char *err, size_t errlen) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) die("open_memstream: %s", strerror(errno));
    for (const char *p = comment; p && *p;) {
        size_t k = strcspn(p, "\n");
        fprintf(f, "# %.*s\n", (int)k, p);
        p += k + (p[k] == '\n');
    }
    fprintf(f, "short_factor: [");
    for (int i = 0; i < n_pairs; i++) {
        if (short_f) fprintf(f, "%s%.17g", i ? ", " : "", short_f[i]);
        else fprintf(f, "%s1.0", i ? ", " : "");
    }
    fprintf(f, "]\nlong_factor: [");
    for (int i = 0; i < n_pairs; i++) fprintf(f, "%s%.17g", i ? ", " : "", c->lambda[i]);
    fprintf(f, "]\nn_hat: %" PRId64 "\n", c->n_hat);
    if (fclose(f) != 0) die("open_memstream: %s", strerror(errno));
    int rc = fsutil_write_atomic(path, text, len, err, errlen);
    free(text);
    return rc;
}

int search_write_report(const char *csv_path, const char *svg_path, const search_state *st,
                        const char *const baselines[SEARCH_N_BASELINES], const char *title,
                        const char *y_label, char *err, size_t errlen) {
    FILE *f = fopen(csv_path, "w");
    if (!f) return errmsg(err, errlen, "cannot write %s: %s", csv_path, strerror(errno));
    fprintf(f, "generation,evaluated,best_nll,best_ppl,mean_nll,best_n_hat\n");
    for (int g = 0; g < st->generation; g++) {
        const search_history *h = &st->history[g];
        fprintf(f, "%d,%" PRId64 ",%.6f,%.6g,%.6f,%" PRId64 "\n", g + 1, h->evaluated, h->best_nll,
                exp(h->best_nll), h->mean_nll, h->best_n_hat);
    }
    if (fclose(f) != 0) return errmsg(err, errlen, "cannot write %s: %s", csv_path, strerror(errno));

    const int n = st->generation;
    double *x = xmalloc(sizeof(double) * (size_t)n), *y = xmalloc(sizeof(double) * (size_t)(4 * n));
    static const char *const classic[SEARCH_N_BASELINES] = {"PI", "NTK", "YaRN"};
    if (!baselines) baselines = classic;
    const char *names[4] = {"searched (best so far)", baselines[0], baselines[1], baselines[2]};
    plot_series series[4];
    for (int g = 0; g < n; g++) {
        x[g] = g + 1;
        y[g] = exp(st->history[g].best_nll);
        for (int b = 0; b < SEARCH_N_BASELINES; b++) y[(b + 1) * n + g] = exp(st->baseline_nll[b]);
    }
    for (int k = 0; k < 4; k++) series[k] = (plot_series){.name = names[k], .n = n, .x = x, .y = y + k * n};
    plot_lines p = {.title = title, .x_label = "generation", .y_label = y_label, .n_series = 4,
                    .series = series};
    char *svg = plot_lines_svg(&p);
    int rc = plot_write(svg_path, svg, err, errlen);
    free(svg);
    free(x);
    free(y);
    return rc;
}
