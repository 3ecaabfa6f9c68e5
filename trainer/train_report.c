// train_report: end-of-session line, run_end row, final heartbeat. See train_report.h.
#include "train_report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train.h"
#include "train_heartbeat.h"
#include "train_step.h"

static void duration(char *buf, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm%02lds", t / 3600, (t / 60) % 60, t % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

void train_report_end(train_state *st, bool finished, const char *how) {
    const train_history *h = &st->hist;
    double now = metrics_now();
    char total[32], session[32], loss[64] = "", val[64] = "";
    duration(total, sizeof total, now - st->met.t_start);
    duration(session, sizeof session, now - st->met.t_session);
    if (!isnan(h->last_loss))
        snprintf(loss, sizeof loss, ", final loss %.4f (step %lld)", h->last_loss, (long long)h->last_loss_step);
    if (!isnan(h->last_val_loss))
        snprintf(val, sizeof val, ", val loss %.4f (step %lld)", h->last_val_loss, (long long)h->last_val_step);
    if (finished) printf("done: %lld steps, %lld tokens", (long long)st->step, (long long)st->tokens_seen);
    else printf("stopped at step %lld (%lld tokens)", (long long)st->step, (long long)st->tokens_seen);
    printf("%s%s; wall time %s (this session %s)\n", loss, val, total, session);
    fflush(stdout);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "run_end");
    cJSON_AddStringToObject(o, "how", how);
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "stage", st->stage);
    cJSON_AddNumberToObject(o, "tokens", (double)st->tokens_seen);
    if (!isnan(h->last_loss)) cJSON_AddNumberToObject(o, "loss", h->last_loss);
    if (!isnan(h->last_val_loss)) cJSON_AddNumberToObject(o, "val_loss", h->last_val_loss);
    cJSON_AddNumberToObject(o, "session_s", now - st->met.t_session);
    train_device_mem_log(st, o);  // after the last evaluations too
    metrics_write(&st->met, o);
    train_heartbeat_write(st->cfg.train.out_dir, finished ? "finished" : "stopped", st->step, st->stage,
                          st->tokens_seen);
}
