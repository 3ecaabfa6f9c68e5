// train_watchdog: see train_watchdog.h.
#include "train_watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "dist_abort.h"
#include "dist_hosts.h"
#include "fsutil.h"
#include "train.h"
#include "train_heartbeat.h"

static atomic_llong last_beat_ms;
static atomic_int running;
static pthread_t thread;
static double limit_s;
static int rank;
static atomic_llong watched_step;
static char hosts[1024];

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void train_watchdog_beat(void) { atomic_store(&last_beat_ms, mono_ms()); }

static void *watch(void *arg) {
    (void)arg;
    char host[64] = "?";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    while (atomic_load(&running)) {
        struct timespec nap = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        nanosleep(&nap, NULL);
        char msg[256];
        double idle = (double)(mono_ms() - atomic_load(&last_beat_ms)) / 1000.0;
        const char *why = NULL;
        if (dist_abort_poll(msg, sizeof msg)) why = msg;
        else if (idle > limit_s) {
            snprintf(msg, sizeof msg, "no progress for %.0f s (train.watchdog_minutes %g) after step %lld",
                     idle, limit_s / 60.0, (long long)atomic_load(&watched_step));
            why = msg;
        }
        if (!why || !atomic_load(&running)) continue;
        fprintf(stderr, "\nstretch: watchdog: rank %d on %s: %s; aborting the job (exit %d)\n", rank, host,
                why, TRAIN_EXIT_WATCHDOG);
        dist_abort_job(TRAIN_EXIT_WATCHDOG);
    }
    return NULL;
}

void train_watchdog_start(train_state *st) {
    dist_host_list(&st->dist, hosts, sizeof hosts);
    train_heartbeat_set_hosts(hosts);
    rank = st->dist.rank;
    atomic_store(&watched_step, st->step);
    train_watchdog_beat();
    limit_s = 60.0 * st->cfg.train.watchdog_minutes;
    if (limit_s <= 0) return;
    atomic_store(&running, 1);
    if (pthread_create(&thread, NULL, watch, NULL) != 0) die("cannot start the watchdog thread");
    if (st->is_root) printf("watchdog: abort after %g min without progress (exit %d)\n",
                            st->cfg.train.watchdog_minutes, TRAIN_EXIT_WATCHDOG);
}

void train_watchdog_step(train_state *st) {
    train_watchdog_beat();
    atomic_store(&watched_step, st->step);
}

void train_watchdog_stop(void) {
    if (!atomic_load(&running)) return;
    atomic_store(&running, 0);
    pthread_join(thread, NULL);
}
