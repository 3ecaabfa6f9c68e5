// metrics: metrics.jsonl writer and terminal progress line. See metrics.h.
#include "metrics.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "die.h"

double metrics_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int metrics_open(metrics *m, const char *path, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->file = fopen(path, "a");
    if (!m->file) {
        snprintf(err, errlen, "%s: cannot open for writing (%s)", path, strerror(errno));
        return -1;
    }
    m->tty = isatty(STDOUT_FILENO);
    m->t_start = metrics_now();
    m->last_line = -1e9;
    return 0;
}

void metrics_close(metrics *m) {
    if (m->file) fclose(m->file);
    m->file = NULL;
}

void metrics_write(metrics *m, cJSON *obj) {
    cJSON_AddNumberToObject(obj, "time", metrics_now() - m->t_start);
    char *line = cJSON_PrintUnformatted(obj);
    if (!line) die("cJSON_PrintUnformatted failed");
    if (fprintf(m->file, "%s\n", line) < 0 || fflush(m->file) != 0)
        die("writing metrics.jsonl failed: %s", strerror(errno));
    cJSON_free(line);
    cJSON_Delete(obj);
}

static void format_duration(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void metrics_progress_line(metrics *m, const metrics_progress *p) {
    double now = metrics_now();
    if (!m->tty && now - m->last_line < 10.0) return;
    m->last_line = now;
    char eta[32];
    format_duration(eta, sizeof eta, p->eta_s);
    printf("%sstage %d (%d of %d) %-8s step %6lld (%lld/%lld) seq %6lld  loss %.4f  lr %.2e  %8.0f tok/s  ETA %s%s",
           m->tty ? "\r\033[K" : "", p->stage_index, p->stage_index + 1, p->n_stages, p->stage,
           (long long)p->step, (long long)p->stage_step, (long long)p->stage_steps,
           (long long)p->seq_len, p->loss, p->lr, p->tokens_per_s, eta, m->tty ? "" : "\n");
    fflush(stdout);
}

void metrics_progress_end(metrics *m) {
    if (m->tty) {
        printf("\n");
        fflush(stdout);
    }
}
