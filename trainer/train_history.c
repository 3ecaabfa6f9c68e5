// train_history: the earlier sessions of a run from its metrics.jsonl. See train_history.h.
#include "train_history.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "die.h"

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

void train_history_read(train_history *h, const char *path, const int64_t *lengths, int n_lengths,
                        const int64_t *ppl_lengths, int n_ppl_lengths) {
    memset(h, 0, sizeof *h);
    h->n_lengths = n_lengths;
    h->acc = xcalloc((size_t)CFG_MAX_STAGES * (size_t)(n_lengths > 0 ? n_lengths : 1), sizeof(double));
    h->n_ppl_lengths = n_ppl_lengths;
    const size_t n_nll = (size_t)CFG_MAX_STAGES * (size_t)(n_ppl_lengths > 0 ? n_ppl_lengths : 1);
    h->nll = xmalloc(sizeof(double) * n_nll);
    for (size_t i = 0; i < n_nll; i++) h->nll[i] = NAN;
    h->last_loss = h->last_val_loss = NAN;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);  // a line cut by a crash does not parse: skipped
        if (!o) continue;
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
        const cJSON *when = cJSON_GetObjectItemCaseSensitive(o, "when");
        const char *e = cJSON_IsString(ev) ? ev->valuestring : "";
        double stage = num(o, "stage");
        bool stage_ok = !isnan(stage) && stage >= 0 && stage < CFG_MAX_STAGES;
        if (!strcmp(e, "step")) {
            h->last_loss = num(o, "loss");
            h->last_loss_step = (int64_t)num(o, "step");
        } else if (!strcmp(e, "eval_val")) {
            h->last_val_loss = num(o, "val_loss");
            h->last_val_step = (int64_t)num(o, "step");
        } else if (!strcmp(e, "stage_end") && stage_ok) {
            h->stage_done[(int)stage] = true;
        } else if (!strcmp(e, "eval_passkey") && stage_ok && cJSON_IsString(when) &&
                   !strncmp(when->valuestring, "after stage", 11)) {
            double L = num(o, "length");
            for (int i = 0; i < n_lengths; i++)
                if ((double)lengths[i] == L) h->acc[(int)stage * n_lengths + i] = num(o, "accuracy");
        } else if (!strcmp(e, "eval_ppl") && stage_ok && cJSON_IsString(when) &&
                   !strncmp(when->valuestring, "after stage", 11)) {
            double L = num(o, "length");
            for (int i = 0; i < n_ppl_lengths; i++)
                if ((double)ppl_lengths[i] == L) h->nll[(int)stage * n_ppl_lengths + i] = num(o, "nll");
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
}

void train_history_free(train_history *h) {
    free(h->acc);
    free(h->nll);
    h->acc = h->nll = NULL;
}
