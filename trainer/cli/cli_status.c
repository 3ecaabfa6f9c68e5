// cli_status: `stretch status RUN_DIR...`: one line per run, from the files
// a run keeps in its out_dir (never from the checkpoints themselves, so it is
// instant on a run of any size): config.yaml (stage names and count),
// metrics.jsonl (last step, last evals, end event), latest (the checkpoint)
// and heartbeat.json (running or not, train_heartbeat.h).
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "run_config.h"

typedef struct {
    bool have_step;
    double step, stage, tokens, loss;
    double val_loss, val_step;  // NAN: none
    double pk_len, pk_acc;      // last passkey eval; NAN: none
    char end[32];               // last run_end "how", "" = none
} run_metrics;

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void read_metrics(run_metrics *m, const char *dir) {
    memset(m, 0, sizeof *m);
    m->val_loss = m->pk_acc = m->pk_len = NAN;
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        if (!o) continue;  // a line cut by a crash
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
        const char *e = cJSON_IsString(ev) ? ev->valuestring : "";
        if (!strcmp(e, "step")) {
            m->have_step = true;
            m->step = num(o, "step");
            m->stage = num(o, "stage");
            m->tokens = num(o, "tokens");
            m->loss = num(o, "loss");
        } else if (!strcmp(e, "eval_val")) {
            m->val_loss = num(o, "val_loss");
        } else if (!strcmp(e, "eval_passkey")) {
            m->pk_len = num(o, "length");
            m->pk_acc = num(o, "accuracy");
        } else if (!strcmp(e, "run_end")) {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "how");
            snprintf(m->end, sizeof m->end, "%s", cJSON_IsString(h) ? h->valuestring : "?");
        } else if (!strcmp(e, "resume") || !strcmp(e, "run_start")) {
            m->end[0] = '\0';
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
}

// "running (pid 12 on host, 3 s ago)", "finished", "stopped", "not running (...)".
static void liveness(char *buf, size_t n, const char *dir, const run_metrics *m) {
    char path[1100];
    snprintf(path, sizeof path, "%s/heartbeat.json", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(buf, n, "%s", m->end[0] ? m->end : "not running (no heartbeat)");
        return;
    }
    char text[1024];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    cJSON *o = cJSON_Parse(text);
    const cJSON *s = o ? cJSON_GetObjectItemCaseSensitive(o, "state") : NULL;
    const cJSON *h = o ? cJSON_GetObjectItemCaseSensitive(o, "host") : NULL;
    if (!cJSON_IsString(s) || !cJSON_IsString(h)) {
        snprintf(buf, n, "unknown (unreadable heartbeat.json)");
        cJSON_Delete(o);
        return;
    }
    double t = num(o, "time"), pid = num(o, "pid");
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double age = (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec - t;
    char host[256] = "";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    if (strcmp(s->valuestring, "running") != 0) {
        snprintf(buf, n, "%s", s->valuestring);
    } else if (!strcmp(h->valuestring, host)) {
        bool alive = pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
        if (alive) snprintf(buf, n, "running (pid %.0f, heartbeat %.0f s ago)", pid, age);
        else snprintf(buf, n, "not running (pid %.0f is gone: killed or crashed)", pid);
    } else if (age < 600) {
        snprintf(buf, n, "running (on %s, heartbeat %.0f s ago)", h->valuestring, age);
    } else {
        snprintf(buf, n, "not running (on %s, last heartbeat %.0f min ago)", h->valuestring, age / 60);
    }
    cJSON_Delete(o);
}

static int status_one(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "stretch: error: status: %s: not a run directory (%s)\n", dir,
                stat(dir, &sb) != 0 ? strerror(errno) : "not a directory");
        return 2;
    }
    char path[1100], err[1024];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    cfg_run cfg;
    cfg_init(&cfg);
    bool have_cfg = access(path, R_OK) == 0 && cfg_parse_file(&cfg, path, err, sizeof err) == 0;
    run_metrics m;
    read_metrics(&m, dir);
    if (!have_cfg && !m.have_step) {
        fprintf(stderr, "stretch: error: status: %s: no config.yaml or metrics.jsonl (not a stretch run directory)\n", dir);
        cfg_free(&cfg);
        return 2;
    }
    char ckpt[256] = "none";
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(ckpt, sizeof ckpt, f)) ckpt[strcspn(ckpt, "\n")] = '\0';
        fclose(f);
    }
    char live[256];
    liveness(live, sizeof live, dir, &m);
    printf("%s: ", dir);
    if (m.have_step) {
        int s = (int)m.stage;
        const char *name = have_cfg && s >= 0 && s < cfg.n_stages && cfg.stages[s].name ? cfg.stages[s].name : "?";
        printf("stage %d '%s' (%d of %d), step %.0f, %.0f tokens, loss %.4f", s, name, s + 1,
               have_cfg ? cfg.n_stages : 0, m.step, m.tokens, m.loss);
    } else {
        printf("no step yet");
    }
    if (!isnan(m.val_loss)) printf(", val loss %.4f", m.val_loss);
    if (!isnan(m.pk_acc)) printf(", passkey@%.0f %.1f%%", m.pk_len, 100 * m.pk_acc);
    printf(", checkpoint %s, %s\n", ckpt, live);
    cfg_free(&cfg);
    return 0;
}

int cli_status(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: stretch status RUN_DIR...\n"
                "  one line per run (train.out_dir): stage, step, tokens, last loss, last val loss and\n"
                "  passkey, the latest checkpoint, and running / finished / stopped / not running\n"
                "  (from heartbeat.json: a run whose process is gone is \"not running\")\n");
        return argc < 2 ? 2 : 0;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (status_one(argv[i]) != 0) rc = 2;
    fflush(stdout);
    return rc;
}
