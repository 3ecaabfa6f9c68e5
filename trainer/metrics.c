// metrics: metrics.jsonl writer and terminal progress line. See metrics.h.
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "mono_clock.h"

double metrics_now(void) { return mono_clock_s(); }

// The "time" of the last complete row of an existing metrics.jsonl, else 0.
static double last_time(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    double t = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);  // a line cut by a crash does not parse
        const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, "time") : NULL;
        if (cJSON_IsNumber(v) && v->valuedouble > t) t = v->valuedouble;
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return t;
}

static bool under_mpi_launcher(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") ||
           getenv("SLURM_PROCID");
}

int metrics_open(metrics *m, const char *path, bool plain, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->prior_time = last_time(path);
    m->file = fopen(path, "a");
    if (!m->file) {
        snprintf(err, errlen, "%s: cannot open for writing (%s)", path, strerror(errno));
        return -1;
    }
    m->tty = !plain && isatty(STDOUT_FILENO) && !under_mpi_launcher();
    m->t_session = metrics_now();
    m->t_start = m->t_session - m->prior_time;
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
    char eta[32];
    format_duration(eta, sizeof eta, p->eta_s);
    char skipped[48] = "";
    if (p->skipped > 0) snprintf(skipped, sizeof skipped, "  skipped %lld", (long long)p->skipped);
    printf("%sstage %d (%d of %d) %-8s step %6lld (%lld/%lld) seq %6lld  loss %.4f  lr %.2e  %8.0f tok/s  run ETA %s%s%s",
           m->tty ? "\r\033[K" : "", p->stage_index, p->stage_index + 1, p->n_stages, p->stage,
           (long long)p->step, (long long)p->stage_step, (long long)p->stage_steps,
           (long long)p->seq_len, p->loss, p->lr, p->tokens_per_s, eta, skipped, m->tty ? "" : "\n");
    fflush(stdout);
}

void metrics_progress_end(metrics *m) {
    if (m->tty) {
        printf("\n");
        fflush(stdout);
    }
}
