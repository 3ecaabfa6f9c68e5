// report_metrics: metrics.jsonl -> arrays. See report_metrics.h.
#include "report_metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"

static double num(const cJSON *o, const char *k, double dflt) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

static void str(char *out, size_t len, const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    snprintf(out, len, "%s", cJSON_IsString(x) ? x->valuestring : "");
}

#define PUSH(arr, n, T) (arr = xrealloc(arr, sizeof(T) * (size_t)((n) + 1)), memset(&arr[n], 0, sizeof(T)), &arr[(n)++])

static void add_unknown(report_metrics *m, const char *name) {
    m->n_unknown++;
    size_t len = strlen(m->unknown_names);
    char needle[80];
    snprintf(needle, sizeof needle, "%s", name);
    if (strstr(m->unknown_names, needle)) return;
    snprintf(m->unknown_names + len, sizeof m->unknown_names - len, "%s%s", len ? ", " : "", name);
}

static void event(report_metrics *m, const cJSON *o) {
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    if (!cJSON_IsString(ev)) {
        m->n_bad++;
        return;
    }
    const char *e = ev->valuestring;
    if (!strcmp(e, "step")) {
        report_step *s = PUSH(m->steps, m->n_steps, report_step);
        s->step = num(o, "step", NAN), s->stage = num(o, "stage", NAN), s->seq_len = num(o, "seq_len", NAN);
        s->loss = num(o, "loss", NAN), s->lr = num(o, "lr", NAN), s->grad_norm = num(o, "grad_norm", NAN);
        s->tokens = num(o, "tokens", NAN), s->tokens_per_s = num(o, "tokens_per_s", NAN);
        s->time = num(o, "time", NAN);
    } else if (!strcmp(e, "stage_start")) {
        report_stage *s = PUSH(m->stages, m->n_stages, report_stage);
        s->step = (int64_t)num(o, "step", 0), s->stage = (int)num(o, "stage", 0);
        str(s->name, sizeof s->name, o, "name");
        str(s->rope_type, sizeof s->rope_type, o, "rope_type");
        s->seq_len = (int64_t)num(o, "seq_len", 0), s->steps = (int64_t)num(o, "steps", 0);
        s->rope_factor = num(o, "rope_factor", NAN), s->attention_factor = num(o, "attention_factor", NAN);
    } else if (!strcmp(e, "eval_passkey")) {
        report_passkey *p = PUSH(m->passkey, m->n_passkey, report_passkey);
        p->step = (int64_t)num(o, "step", 0), p->stage = (int)num(o, "stage", 0);
        p->length = (int64_t)num(o, "length", 0), p->accuracy = num(o, "accuracy", NAN);
        str(p->when, sizeof p->when, o, "when");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "accuracy_by_depth"), *x;
        cJSON_ArrayForEach(x, d) {
            if (p->n_depths < REPORT_MAX_DEPTHS) p->by_depth[p->n_depths++] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        }
    } else if (!strcmp(e, "eval_val")) {
        report_val *v = PUSH(m->val, m->n_val, report_val);
        v->step = (int64_t)num(o, "step", 0), v->seq_len = (int64_t)num(o, "seq_len", 0);
        v->val_loss = num(o, "val_loss", NAN);
    } else if (!strcmp(e, "gate")) {
        report_gate *g = PUSH(m->gates, m->n_gates, report_gate);
        g->step = (int64_t)num(o, "step", 0), g->stage = (int)num(o, "stage", 0);
        g->passkey_acc = num(o, "passkey_acc", -1), g->val_loss = num(o, "val_loss", -1);
        g->met = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "met"));
    } else {
        add_unknown(m, e);
        if (m->n_other < REPORT_MAX_OTHER) {
            m->other = xrealloc(m->other, sizeof(char *) * (size_t)(m->n_other + 1));
            char *t = cJSON_PrintUnformatted(o);
            m->other[m->n_other++] = xstrdup(t ? t : "{}");
            cJSON_free(t);
        }
    }
}

void report_metrics_parse(report_metrics *m, const char *text, size_t len) {
    memset(m, 0, sizeof *m);
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t n = end - pos;
        bool blank = true;
        for (size_t i = pos; i < end && blank; i++) blank = text[i] == ' ' || text[i] == '\t' || text[i] == '\r';
        if (!blank) {
            m->n_lines++;
            cJSON *o = cJSON_ParseWithLength(text + pos, n);
            if (o && cJSON_IsObject(o)) event(m, o);
            else if (!nl) m->n_partial++;  // a line still being written
            else m->n_bad++;
            cJSON_Delete(o);
        }
        pos = end + 1;
    }
}

int report_metrics_read(report_metrics *m, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return errmsg(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 > cap) cap = (len + 65536) * 2, buf = xrealloc(buf, cap);
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    report_metrics_parse(m, buf ? buf : "", len);
    free(buf);
    return 0;
}

void report_metrics_free(report_metrics *m) {
    free(m->steps);
    free(m->stages);
    free(m->passkey);
    free(m->val);
    free(m->gates);
    for (int i = 0; i < m->n_other; i++) free(m->other[i]);
    free(m->other);
    memset(m, 0, sizeof *m);
}
