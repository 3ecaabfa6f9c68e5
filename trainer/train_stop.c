// train_stop: signals, the deadline, timed saves and the stop marker. See
// train_stop.h.
#include "train_stop.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_dir.h"
#include "die.h"
#include "fsutil.h"
#include "metrics.h"
#include "train.h"
#include "train_ckpt.h"
#include "train_guard.h"
#include "train_watchdog.h"

static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) { stop_signal = sig; }

void train_stop_install_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    // A file-size limit (ulimit -f) makes a checkpoint write fail with
    // EFBIG, reported as one line, instead of killing the run by SIGXFSZ.
    signal(SIGXFSZ, SIG_IGN);
    // A second Ctrl-C stops at once (checkpoints are written to a temporary
    // name and renamed, so none is ever left half-written).
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
}

int train_stop_signal(void) { return stop_signal; }

// Process-wide: one run per process.
static struct {
    int64_t start_step;     // the step this start resumed from (0 = fresh)
    int64_t saved_step;     // the step of the newest checkpoint on disk, -1 = none
    char saved_name[64];    // its file name in out_dir
    double deadline;        // wall clock (s since the epoch); 0 = none
    double max_save_s;      // the slowest save of this start
    double last_save_wall;  // when the last save ended (or the start)
    const char *reason;     // "signal", "time" once decided
} S = {.saved_step = -1};

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void marker_path(const train_state *st, char *path, size_t len) {
    snprintf(path, len, "%s/stop.json", st->cfg.train.out_dir);
}

void train_stop_start(train_state *st, bool resumed) {
    const cfg_train *t = &st->cfg.train;
    S.start_step = st->step;
    if (resumed) {  // that checkpoint is on disk
        S.saved_step = st->step;
        ckpt_dir_filename(S.saved_name, sizeof S.saved_name, st->step);
    }
    double now = wall_now();
    S.last_save_wall = now;
    const char *end = getenv("SLURM_JOB_END_TIME");
    if (t->time_limit_minutes > 0) S.deadline = now + 60.0 * t->time_limit_minutes;
    else if (end && *end) S.deadline = strtod(end, NULL);
    // Rank 0 decides; the others agree through train_stop_poll.
    if (!st->is_root) return;
    char path[1100];
    marker_path(st, path, sizeof path);
    if (unlink(path) == 0) fsutil_fsync_parent(path);
    if (S.deadline > 0)
        printf("time limit: stopping before %.0f s from now (%s), leaving the slowest save + "
               "%.0f s (train.stop_margin_s)\n",
               S.deadline - now, t->time_limit_minutes > 0 ? "train.time_limit_minutes" : "SLURM_JOB_END_TIME",
               t->stop_margin_s);
}

int train_stop_poll(train_state *st, double step_s) {
    bool by_time = false;
    if (st->is_root && S.deadline > 0) {
        double need = step_s + S.max_save_s + st->cfg.train.stop_margin_s;
        by_time = wall_now() + need >= S.deadline;
    }
    bool by_signal = stop_signal != 0;
    if (!dist_any(&st->dist, by_signal || by_time)) return -1;
    // The signal wins the reason when both (a Ctrl-C stays 130).
    bool any_signal = dist_any(&st->dist, by_signal);
    int status = any_signal && dist_any(&st->dist, stop_signal == SIGINT) ? 130 : TRAIN_EXIT_REQUEUE;
    if (!S.reason) {
        S.reason = any_signal ? "signal" : "time";
        if (st->is_root) {
            metrics_progress_end(&st->met);
            if (any_signal)
                printf("\nstop requested (signal); checkpointing at step %lld\n", (long long)st->step);
            else
                printf("\nstop: the time limit is %.0f s away (next step %.1f s + slowest save %.1f s + "
                       "margin %.0f s); checkpointing at step %lld\n",
                       S.deadline - wall_now(), step_s, S.max_save_s, st->cfg.train.stop_margin_s,
                       (long long)st->step);
            fflush(stdout);
        }
    }
    return status;
}

bool train_stop_ckpt_due(train_state *st) {
    double every = st->cfg.train.ckpt_every_minutes;
    if (every <= 0) return false;
    return dist_any(&st->dist, st->is_root && wall_now() - S.last_save_wall >= 60.0 * every);
}

void train_stop_save(train_state *st) {
    if (S.saved_step == st->step) {
        if (st->is_root) printf("checkpoint of step %lld already on disk (%s)\n", (long long)st->step, S.saved_name);
        return;
    }
    double t0 = wall_now();
    train_watchdog_beat();  // a save may take longer than a step
    train_guard_save(st);   // non-finite state or a failed write: exits there
    train_watchdog_beat();
    double dt = wall_now() - t0;
    S.last_save_wall = wall_now();
    if (dt > S.max_save_s) S.max_save_s = dt;
    S.saved_step = st->step;
    ckpt_dir_filename(S.saved_name, sizeof S.saved_name, st->step);
    if (!st->is_root) return;
    metrics_progress_end(&st->met);
    printf("checkpoint %s written in %.2f s\n", S.saved_name, dt);
    fflush(stdout);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "ckpt");
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "save_s", dt);
    metrics_write(&st->met, o);
}

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static void write_marker(train_state *st, int status);

void train_stop_write_marker(train_state *st, int status) {
    write_marker(st, status);
    // No rank exits before the marker is on disk: srun --kill-on-bad-exit
    // kills the others as soon as one exits 99.
    dist_barrier(&st->dist);
}

static void write_marker(train_state *st, int status) {
    if (!st->is_root) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddStringToObject(o, "checkpoint", S.saved_name);
    cJSON_AddStringToObject(o, "reason", S.reason ? S.reason : "signal");
    cJSON_AddNumberToObject(o, "status", status);
    cJSON_AddStringToObject(o, "job_id", env_or("SLURM_JOB_ID", ""));
    cJSON_AddNumberToObject(o, "restart_count", atof(env_or("SLURM_RESTART_COUNT", "0")));
    cJSON_AddNumberToObject(o, "start_step", (double)S.start_step);
    cJSON_AddBoolToObject(o, "progress", st->step > S.start_step);
    cJSON_AddNumberToObject(o, "max_save_s", S.max_save_s);
    cJSON_AddNumberToObject(o, "time", floor(wall_now()));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) die("cJSON_PrintUnformatted failed");
    size_t n = strlen(text);
    text[n] = '\0';
    char path[1100], err[1200];
    marker_path(st, path, sizeof path);
    // The newline makes it a line for shell tools; written after the
    // checkpoint is published, so its presence means "committed".
    char *line = xmalloc(n + 2);
    memcpy(line, text, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    if (fsutil_write_atomic(path, line, n + 1, err, sizeof err) != 0) die("stop marker: %s", err);
    const char *copy = getenv("STRETCH_STOP_MARKER");
    if (copy && *copy && fsutil_write_atomic(copy, line, n + 1, err, sizeof err) != 0)
        die("stop marker (STRETCH_STOP_MARKER): %s", err);
    free(line);
    cJSON_free(text);
}
