// report: the HTML run report. See report.h.
#include "report.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "die.h"
#include "errmsg.h"
#include "fsutil.h"
#include "model.h"
#include "plot_svg.h"
#include "report_metrics.h"
#include "run_config.h"
#include "curriculum.h"
#include "run_config_check.h"
#include "tok.h"

// --- an appending string buffer -----------------------------------------

typedef struct {
    char *s;
    size_t n, cap;
} hbuf;

static void hb_printf(hbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hb_printf(hbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) die("vsnprintf failed");
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->n + (size_t)k + 1) * 2 + 4096;
        b->s = xrealloc(b->s, b->cap);
    }
}

static void hb_put(hbuf *b, const char *s) { hb_printf(b, "%s", s); }

// HTML-escaped text.
static void hb_text(hbuf *b, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '<') hb_put(b, "&lt;");
        else if (c == '>') hb_put(b, "&gt;");
        else if (c == '&') hb_put(b, "&amp;");
        else if (c == '"') hb_put(b, "&quot;");
        else hb_printf(b, "%c", c);
    }
}
static void hb_esc(hbuf *b, const char *s) { hb_text(b, s, strlen(s)); }

// An SVG from plot_svg (its <?xml ...?> prolog dropped: inline in HTML).
static void hb_svg(hbuf *b, char *svg) {
    const char *p = strstr(svg, "<svg");
    hb_printf(b, "<div class=\"fig\">%s</div>\n", p ? p : svg);
    free(svg);
}

// A whole file (NUL-terminated, malloc'd) or NULL.
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = 0, cap = 65536;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) cap *= 2, buf = xrealloc(buf, cap);
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

// --- sections ------------------------------------------------------------

static const char *CSS =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1280px}"
    "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-top:12px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;"
    "text-align:right}th{background:#f2f2f2}td.l,th.l{text-align:left}"
    ".fig{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}.fig svg{max-width:600px;height:auto}"
    "pre{background:#f7f7f7;border:1px solid #ddd;padding:8px;font-size:12px;overflow-x:auto}"
    ".note{color:#666;font-size:13px}";

// Stage-start marks for the step charts: x = the step a stage starts after.
typedef struct {
    int n;
    double x[64];
    char names[64][96];
    const char *ptrs[64];
} marks;

static void make_marks(marks *mk, const report_metrics *m) {
    mk->n = 0;
    for (int i = 0; i < m->n_stages && mk->n < 64; i++) {
        const report_stage *s = &m->stages[i];
        // at the stage's first update; stage 1's mark at the first logged step (step 0 is off the axis)
        mk->x[mk->n] = m->n_steps > 0 ? fmax((double)s->step, m->steps[0].step) : (double)s->step;
        if (!strcmp(s->rope_type, "default") || !isfinite(s->rope_factor))
            snprintf(mk->names[mk->n], sizeof mk->names[0], "%.40s: %.24s", s->name, s->rope_type);
        else
            snprintf(mk->names[mk->n], sizeof mk->names[0], "%.40s: %.24s x%g", s->name, s->rope_type, s->rope_factor);
        mk->ptrs[mk->n] = mk->names[mk->n];
        mk->n++;
    }
}

// One chart of a step-event field over steps.
static void step_chart(hbuf *b, const report_metrics *m, const marks *mk, const char *title, const char *ylabel,
                       size_t field, bool log_y, const report_val *val, int n_val) {
    double *x = xmalloc(sizeof(double) * (size_t)(m->n_steps + 1)), *y = xmalloc(sizeof(double) * (size_t)(m->n_steps + 1));
    for (int64_t i = 0; i < m->n_steps; i++) {
        x[i] = m->steps[i].step;
        y[i] = *(const double *)((const char *)&m->steps[i] + field);
    }
    plot_series s[2] = {{.name = ylabel, .n = (int)m->n_steps, .x = x, .y = y}};
    int ns = 1;
    double *vx = NULL, *vy = NULL;
    if (n_val > 0) {
        vx = xmalloc(sizeof(double) * (size_t)n_val), vy = xmalloc(sizeof(double) * (size_t)n_val);
        for (int i = 0; i < n_val; i++) vx[i] = (double)val[i].step, vy[i] = val[i].val_loss;
        s[ns++] = (plot_series){.name = "val loss", .n = n_val, .x = vx, .y = vy};
    }
    plot_lines p = {.title = title, .x_label = "step", .y_label = ylabel, .log_y = log_y, .n_series = ns,
                    .series = s, .n_marks = mk->n, .mark_x = mk->x, .mark_names = mk->ptrs};
    hb_svg(b, plot_lines_svg(&p));
    free(x), free(y), free(vx), free(vy);
}

static void stage_table(hbuf *b, const report_metrics *m, const curriculum *cur) {
    hb_put(b, "<h2>Stages</h2>\n<table><tr><th class=\"l\">stage</th><th>seq_len</th><th>steps</th>"
              "<th>started at step</th><th class=\"l\">RoPE</th><th>factor</th><th>attention factor</th>"
              "<th>last loss</th></tr>\n");
    int n = cur ? cur->n_stages : 0;
    for (int i = 0; i < m->n_stages; i++) n = m->stages[i].stage + 1 > n ? m->stages[i].stage + 1 : n;
    for (int s = 0; s < n; s++) {
        const report_stage *ev = NULL;
        for (int i = 0; i < m->n_stages; i++)
            if (m->stages[i].stage == s) ev = &m->stages[i];  // the last start (a resume repeats it)
        double last = NAN;
        for (int64_t i = 0; i < m->n_steps; i++)
            if ((int)m->steps[i].stage == s) last = m->steps[i].loss;
        char name[64] = "", rope[32] = "", factor[32] = "-", attn[32] = "-", start[32] = "not started";
        int64_t seq = 0, steps = 0;
        if (cur && s < cur->n_stages) {
            const curr_plan *plan = curr_stage_plan(cur, s);
            const rope_config *rc = curr_stage_rope(cur, s);
            snprintf(name, sizeof name, "%s", plan->name);
            seq = plan->seq_len, steps = plan->steps;
            snprintf(rope, sizeof rope, "%s", rope_type_name(rc->type));
            if (rc->type != ROPE_TYPE_DEFAULT) snprintf(factor, sizeof factor, "%g", rc->factor);
        }
        if (ev) {
            snprintf(name, sizeof name, "%s", ev->name);
            snprintf(rope, sizeof rope, "%s", ev->rope_type);
            seq = ev->seq_len, steps = ev->steps;
            snprintf(start, sizeof start, "%lld", (long long)ev->step);
            if (strcmp(ev->rope_type, "default")) snprintf(factor, sizeof factor, "%g", ev->rope_factor);
            snprintf(attn, sizeof attn, "%.4f", ev->attention_factor);
        }
        hb_printf(b, "<tr><td class=\"l\">%d ", s + 1);
        hb_esc(b, name);
        hb_printf(b, "</td><td>%lld</td><td>%lld</td><td>%s</td><td class=\"l\">", (long long)seq, (long long)steps,
                  start);
        hb_esc(b, rope);
        hb_printf(b, "</td><td>%s</td><td>%s</td><td>", factor, attn);
        if (isfinite(last)) hb_printf(b, "%.4f", last);
        else hb_put(b, "-");
        hb_put(b, "</td></tr>\n");
    }
    hb_put(b, "</table>\n");
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// Passkey heatmaps: one per evaluation (depth x length), then stage x length.
static void passkey_section(hbuf *b, const report_metrics *m, const cfg_run *cfg, bool have_cfg) {
    hb_put(b, "<h2>Passkey retrieval</h2>\n");
    if (m->n_passkey == 0) {
        hb_put(b, "<p class=\"note\">No eval_passkey events yet (eval.passkey_trials 0, or no stage finished).</p>\n");
        return;
    }
    int64_t *lens = xmalloc(sizeof(int64_t) * (size_t)m->n_passkey);
    int nl = 0;
    for (int i = 0; i < m->n_passkey; i++) {
        bool seen = false;
        for (int j = 0; j < nl; j++) seen |= lens[j] == m->passkey[i].length;
        if (!seen) lens[nl++] = m->passkey[i].length;
    }
    qsort(lens, (size_t)nl, sizeof(int64_t), cmp_i64);
    char(*xn)[32] = xcalloc((size_t)nl, 32);
    const char **xp = xcalloc((size_t)nl, sizeof(char *));
    for (int j = 0; j < nl; j++) plot_format_count(xn[j], 32, (double)lens[j]), xp[j] = xn[j];
    // the evaluations, in order of appearance (by 'when')
    char (*whens)[96] = xcalloc((size_t)m->n_passkey, 96);
    int nw = 0;
    for (int i = 0; i < m->n_passkey; i++) {
        bool seen = false;
        for (int j = 0; j < nw; j++) seen |= !strcmp(whens[j], m->passkey[i].when);
        if (!seen) snprintf(whens[nw++], 96, "%s", m->passkey[i].when);
    }
    // summary: evaluation x length, mean over depths
    double *v = xmalloc(sizeof(double) * (size_t)(nw * nl));
    const char **yp = xcalloc((size_t)nw, sizeof(char *));
    for (int w = 0; w < nw; w++) {
        yp[w] = whens[w];
        for (int j = 0; j < nl; j++) {
            v[w * nl + j] = NAN;
            for (int i = 0; i < m->n_passkey; i++)
                if (!strcmp(m->passkey[i].when, whens[w]) && m->passkey[i].length == lens[j])
                    v[w * nl + j] = m->passkey[i].accuracy;
        }
    }
    plot_heatmap h = {.title = "Passkey accuracy per stage (mean over depths, %)", .x_label = "context length",
                      .y_label = "", .bar_label = "accuracy %", .nx = nl, .ny = nw, .x_names = xp, .y_names = yp,
                      .values = v, .vmin = 0, .vmax = 1, .text_scale = 100};
    hb_svg(b, plot_heatmap_svg(&h));
    free(v);
    // per evaluation: depth x length
    for (int w = 0; w < nw; w++) {
        int nd = 0;
        for (int i = 0; i < m->n_passkey; i++)
            if (!strcmp(m->passkey[i].when, whens[w]) && m->passkey[i].n_depths > nd) nd = m->passkey[i].n_depths;
        if (nd == 0) continue;
        char (*dn)[32] = xcalloc((size_t)nd, 32);
        const char **dp = xcalloc((size_t)nd, sizeof(char *));
        for (int d = 0; d < nd; d++) {
            if (have_cfg && d < cfg->eval.passkey_depths.n)
                snprintf(dn[d], 32, "%.0f%%", 100 * cfg->eval.passkey_depths.v[d]);
            else
                snprintf(dn[d], 32, "#%d", d + 1);
            dp[d] = dn[d];
        }
        double *dv = xmalloc(sizeof(double) * (size_t)(nd * nl));
        for (int d = 0; d < nd; d++)
            for (int j = 0; j < nl; j++) {
                dv[d * nl + j] = NAN;
                for (int i = 0; i < m->n_passkey; i++)
                    if (!strcmp(m->passkey[i].when, whens[w]) && m->passkey[i].length == lens[j] &&
                        d < m->passkey[i].n_depths)
                        dv[d * nl + j] = m->passkey[i].by_depth[d];
            }
        char title[160];
        snprintf(title, sizeof title, "Passkey %% %s", whens[w]);
        plot_heatmap hd = {.title = title, .x_label = "context length", .y_label = "needle depth",
                           .bar_label = "accuracy %", .nx = nl, .ny = nd, .x_names = xp, .y_names = dp, .values = dv,
                           .vmin = 0, .vmax = 1, .text_scale = 100};
        hb_svg(b, plot_heatmap_svg(&hd));
        free(dv), free(dn), free(dp);
    }
    free(yp), free(whens), free(xn), free(xp), free(lens);
}

// Events this report does not know (e.g. task evaluations added later): a
// table per event name, one column per field of its first occurrence.
static void other_section(hbuf *b, const report_metrics *m) {
    if (m->n_other == 0) return;
    hb_put(b, "<h2>Other events</h2>\n<p class=\"note\">Events of kinds this report has no chart for, as "
              "logged (see docs/metrics.md).</p>\n");
    bool *done = xcalloc((size_t)m->n_other, 1);
    for (int i = 0; i < m->n_other; i++) {
        if (done[i]) continue;
        cJSON *first = cJSON_Parse(m->other[i]);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "event"));
        hb_put(b, "<h3>");
        hb_esc(b, name ? name : "?");
        hb_put(b, "</h3>\n<table><tr>");
        const cJSON *k;
        cJSON_ArrayForEach(k, first) {
            if (strcmp(k->string, "event") && strcmp(k->string, "time")) {
                hb_put(b, "<th>");
                hb_esc(b, k->string);
                hb_put(b, "</th>");
            }
        }
        hb_put(b, "</tr>\n");
        for (int j = i; j < m->n_other; j++) {
            cJSON *o = j == i ? first : cJSON_Parse(m->other[j]);
            const char *n2 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "event"));
            if (n2 && name && !strcmp(n2, name)) {
                done[j] = true;
                hb_put(b, "<tr>");
                cJSON_ArrayForEach(k, first) {
                    if (!strcmp(k->string, "event") || !strcmp(k->string, "time")) continue;
                    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k->string);
                    if (cJSON_IsNumber(v)) {
                        hb_printf(b, "<td>%g</td>", v->valuedouble);
                    } else {
                        char *t = v ? (cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v)) : NULL;
                        const char *txt = cJSON_IsString(v) ? v->valuestring : t ? t : "-";
                        hb_put(b, "<td class=\"l\">");
                        hb_text(b, txt, strlen(txt) > 120 ? 120 : strlen(txt));
                        hb_put(b, "</td>");
                        cJSON_free(t);
                    }
                }
                hb_put(b, "</tr>\n");
            }
            if (j != i) cJSON_Delete(o);
        }
        hb_put(b, "</table>\n");
        cJSON_Delete(first);
    }
    free(done);
}

static void gates_section(hbuf *b, const report_metrics *m) {
    if (m->n_gates == 0) return;
    hb_put(b, "<h2>Gates</h2>\n<table><tr><th>stage</th><th>step</th><th>passkey</th><th>val loss</th>"
              "<th class=\"l\">result</th></tr>\n");
    for (int i = 0; i < m->n_gates; i++) {
        const report_gate *g = &m->gates[i];
        hb_printf(b, "<tr><td>%d</td><td>%lld</td>", g->stage, (long long)g->step);
        if (g->passkey_acc >= 0) hb_printf(b, "<td>%.3f</td>", g->passkey_acc);
        else hb_put(b, "<td>-</td>");
        if (g->val_loss >= 0) hb_printf(b, "<td>%.4f</td>", g->val_loss);
        else hb_put(b, "<td>-</td>");
        hb_printf(b, "<td class=\"l\">%s</td></tr>\n", g->met ? "met" : "not met");
    }
    hb_put(b, "</table>\n");
}

// `stretch eval ppl` output: ppl.csv (ckpt,length,tokens,nll,ppl) -> one chart.
static void ppl_chart(hbuf *b, const char *path, const char *label) {
    char *text = read_file(path, NULL);
    if (!text) return;
    enum { MAXC = 32, MAXP = 256 };
    char names[MAXC][128];
    double xs[MAXC][MAXP], ys[MAXC][MAXP];
    int np[MAXC] = {0}, nc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        // the checkpoint may be quoted; the last four fields are numbers
        char *f[5];
        int k = 0;
        char *c = strrchr(line, ',');
        while (c && k < 4) {
            f[k++] = c + 1;
            *c = 0;
            c = strrchr(line, ',');
        }
        if (k < 4) continue;
        char *end;
        double len = strtod(f[3], &end), ppl = strtod(f[0], NULL);
        if (end == f[3]) continue;  // the header
        char *name = line;
        if (*name == '"') {
            name++;
            size_t n = strlen(name);
            if (n && name[n - 1] == '"') name[n - 1] = 0;
        }
        int ci = -1;
        for (int i = 0; i < nc; i++)
            if (!strcmp(names[i], name)) ci = i;
        if (ci < 0 && nc < MAXC) snprintf(names[ci = nc++], sizeof names[0], "%s", name);
        if (ci < 0 || np[ci] >= MAXP) continue;
        xs[ci][np[ci]] = len, ys[ci][np[ci]++] = ppl;
    }
    free(text);
    if (nc == 0) return;
    plot_series s[MAXC];
    for (int i = 0; i < nc; i++) {
        const char *base = strrchr(names[i], '/');
        s[i] = (plot_series){.name = base ? base + 1 : names[i], .n = np[i], .x = xs[i], .y = ys[i]};
    }
    char title[300];
    snprintf(title, sizeof title, "Perplexity vs length (%s)", label);
    plot_lines p = {.title = title, .x_label = "context length", .y_label = "perplexity", .log_x = true,
                    .log_y = true, .x_counts = true, .n_series = nc, .series = s};
    hb_svg(b, plot_lines_svg(&p));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void ppl_section(hbuf *b, const char *dir) {
    hb_put(b, "<h2>Perplexity vs length</h2>\n");
    char *found[64];
    int n = 0;
    char path[2048];
    snprintf(path, sizeof path, "%s/ppl.csv", dir);
    struct stat st;
    if (stat(path, &st) == 0) found[n++] = xstrdup(path);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) && n < 64;) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/ppl.csv", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) found[n++] = xstrdup(path);
    }
    if (d) closedir(d);
    qsort(found, (size_t)n, sizeof(char *), cmp_str);
    if (n == 0)
        hb_put(b, "<p class=\"note\">No ppl.csv in the run directory or its subdirectories (write one with "
                  "<code>stretch eval ppl --ckpt ... --out RUN_DIR/eval</code>).</p>\n");
    for (int i = 0; i < n; i++) {
        ppl_chart(b, found[i], found[i] + strlen(dir) + 1);
        free(found[i]);
    }
}

static void memory_section(hbuf *b, const cfg_run *cfg, const curriculum *cur) {
    hb_put(b, "<h2>Memory per rank</h2>\n");
    model_config mc;
    cfg_model_config(&mc, cfg);
    if (mc.vocab_size == 0) {
        char err[512];
        tok_tokenizer *tok = tok_load(cfg->data.tokenizer ? cfg->data.tokenizer : "byte", err, sizeof err);
        if (!tok) {
            hb_put(b, "<p class=\"note\">Unknown: the vocabulary size needs the tokenizer (");
            hb_esc(b, err);
            hb_put(b, ").</p>\n");
            return;
        }
        mc.vocab_size = (int)tok_vocab_size(tok);
        tok_free(tok);
    }
    bool cuda = cfg->train.backend == CFG_BACKEND_CUDA;
    bk_dtype dt = cfg->train.dtype == CFG_DTYPE_BF16 || (cfg->train.dtype == CFG_DTYPE_AUTO && cuda) ? BK_BF16 : BK_F32;
    hb_printf(b, "<p class=\"note\">Estimated peak of a training step on each of the %d ranks (dp %d x sp %d; "
                 "model_mem_plan, what <code>stretch train --dry-run</code> prints; %s, %s activations, recompute "
                 "%s). metrics.jsonl carries no measured memory.</p>\n",
              cfg->parallel.dp * cfg->parallel.sp, cfg->parallel.dp, cfg->parallel.sp, cuda ? "cuda" : "cpu",
              dt == BK_BF16 ? "bf16" : "fp32", cfg->train.recompute ? "on" : "off");
    hb_put(b, "<table><tr><th class=\"l\">stage</th><th>tokens per rank</th><th>params</th><th>grads</th>"
              "<th>AdamW</th><th>work weights</th><th>activations</th><th>scratch</th><th>total</th></tr>\n");
    const double M = 1048576.0;
    for (int s = 0; s < cur->n_stages; s++) {
        const curr_plan *pp = curr_stage_plan(cur, s);
        curr_plan plan = *pp;
        int dp = cfg->parallel.dp > 0 ? cfg->parallel.dp : 1, sp = cfg->parallel.sp > 0 ? cfg->parallel.sp : 1;
        int64_t rows = plan.batch_tokens / plan.seq_len / dp;
        if (rows < 1) rows = 1;
        int64_t n = rows * ((plan.seq_len + sp - 1) / sp);  // a zigzag shard holds seq_len / sp tokens
        model_mem mm;
        model_mem_plan(&mm, &mc, n, cfg->train.recompute, dt, cuda);
        hb_printf(b, "<tr><td class=\"l\">%d ", s + 1);
        hb_esc(b, plan.name);
        hb_printf(b, "</td><td>%lld</td><td>%.1f MiB</td><td>%.1f MiB</td><td>%.1f MiB</td><td>%.1f MiB</td>"
                     "<td>%.1f MiB</td><td>%.1f MiB</td><td><b>%.1f MiB</b></td></tr>\n",
                  (long long)n, mm.params / M, mm.grads / M, mm.moments / M, mm.work / M, mm.activations / M,
                  mm.scratch / M, mm.total / M);
    }
    hb_put(b, "</table>\n");
}

// --- the page ------------------------------------------------------------

char *report_html(const char *dir, char *err, size_t errlen) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errmsg(err, errlen, "report: %s is not a directory", dir);
        return NULL;
    }
    char mpath[2048], cpath[2048];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", dir);
    snprintf(cpath, sizeof cpath, "%s/config.yaml", dir);
    bool have_m = stat(mpath, &st) == 0, have_c = stat(cpath, &st) == 0;
    if (!have_m && !have_c) {
        errmsg(err, errlen, "report: %s is not a run directory (no metrics.jsonl or config.yaml)", dir);
        return NULL;
    }
    report_metrics m;
    memset(&m, 0, sizeof m);
    if (have_m && report_metrics_read(&m, mpath, err, errlen)) return NULL;
    cfg_run cfg;
    cfg_init(&cfg);
    char cfg_err[768] = "";
    bool cfg_ok = have_c && cfg_parse_file(&cfg, cpath, cfg_err, sizeof cfg_err) == 0;
    // the curriculum (stage plans and RoPE) as training resolved it; the page works without it
    curriculum *cur = xcalloc(1, sizeof *cur);
    bool cur_ok = cfg_ok && cfg_validate(&cfg, cfg_err, sizeof cfg_err) == 0 &&
                  curr_load(cur, &cfg, cfg_err, sizeof cfg_err) == 0;

    hbuf b = {0};
    time_t now = time(NULL);
    char stamp[64];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    hb_put(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>stretch run ");
    hb_esc(&b, dir);
    hb_printf(&b, "</title><style>%s</style></head><body>\n<h1>stretch run <code>", CSS);
    hb_esc(&b, dir);
    hb_printf(&b, "</code></h1>\n<p class=\"note\">Report written %s from metrics.jsonl (%lld lines", stamp,
              (long long)m.n_lines);
    if (m.n_partial) hb_put(&b, "; a partial last line skipped: the run is writing it");
    if (m.n_bad) hb_printf(&b, "; %lld unparsable lines skipped", (long long)m.n_bad);
    if (m.n_unknown) {
        hb_printf(&b, "; %lld events of other kinds not shown: ", (long long)m.n_unknown);
        hb_esc(&b, m.unknown_names);
    }
    hb_put(&b, ").");
    if (m.n_steps > 0) {
        const report_step *l = &m.steps[m.n_steps - 1];
        hb_printf(&b, " Last logged: step %.0f, stage %.0f, loss %.4f, %.0f tokens, %.0f s into the run.", l->step,
                  l->stage, l->loss, l->tokens, l->time);
    }
    hb_put(&b, " Re-run <code>stretch report</code> to refresh.</p>\n");
    if (have_c && !cur_ok) {
        hb_put(&b, "<p class=\"note\">config.yaml does not resolve to a curriculum (stage table and memory from "
                   "metrics.jsonl only): ");
        hb_esc(&b, cfg_err);
        hb_put(&b, "</p>\n");
    }

    stage_table(&b, &m, cur_ok ? cur : NULL);
    hb_put(&b, "<h2>Training</h2>\n");
    if (m.n_steps == 0) {
        hb_put(&b, "<p class=\"note\">No step events yet.</p>\n");
    } else {
        marks mk;
        make_marks(&mk, &m);
        step_chart(&b, &m, &mk, "Loss", "loss", offsetof(report_step, loss), false, m.val, m.n_val);
        step_chart(&b, &m, &mk, "Learning rate", "lr", offsetof(report_step, lr), false, NULL, 0);
        step_chart(&b, &m, &mk, "Throughput", "tokens/s", offsetof(report_step, tokens_per_s), false, NULL, 0);
        step_chart(&b, &m, &mk, "Gradient norm (before clipping)", "grad norm", offsetof(report_step, grad_norm),
                   false, NULL, 0);
        hb_put(&b, "<p class=\"note\">Dashed lines: stage starts, labelled with the stage's RoPE scaling type and "
                   "factor.</p>\n");
    }
    passkey_section(&b, &m, &cfg, cfg_ok);
    gates_section(&b, &m);
    other_section(&b, &m);
    ppl_section(&b, dir);
    if (cur_ok) memory_section(&b, &cfg, cur);
    hb_put(&b, "<h2>Run config</h2>\n");
    size_t clen = 0;
    char *ctext = have_c ? read_file(cpath, &clen) : NULL;
    if (ctext) {
        hb_put(&b, "<pre>");
        hb_text(&b, ctext, clen);
        hb_put(&b, "</pre>\n");
        free(ctext);
    } else {
        hb_put(&b, "<p class=\"note\">No config.yaml.</p>\n");
    }
    hb_put(&b, "</body></html>\n");
    cfg_free(&cfg);
    free(cur);
    report_metrics_free(&m);
    return b.s;
}

int report_write(const char *dir, const char *out, char *err, size_t errlen) {
    char *html = report_html(dir, err, errlen);
    if (!html) return -1;
    int rc = fsutil_write_atomic(out, html, strlen(html), err, errlen);
    free(html);
    return rc;
}
