// train_heartbeat: out_dir/heartbeat.json. See train_heartbeat.h.
#include "train_heartbeat.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "fsutil.h"

void train_heartbeat_write(const char *out_dir, const char *state, int64_t step, int stage,
                           int64_t tokens) {
    static bool warned = false;
    char path[1100], host[256] = "?", text[512], err[1300];
    snprintf(path, sizeof path, "%.1000s/heartbeat.json", out_dir);
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 32) *p = '_';
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int n = snprintf(text, sizeof text,
                     "{\"state\": \"%s\", \"step\": %lld, \"stage\": %d, \"tokens\": %lld, "
                     "\"time\": %.1f, \"pid\": %ld, \"host\": \"%s\"}\n",
                     state, (long long)step, stage, (long long)tokens,
                     (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec, (long)getpid(), host);
    if (fsutil_write_atomic(path, text, (size_t)n, err, sizeof err) != 0 && !warned) {
        warned = true;
        fflush(stdout);
        fprintf(stderr, "stretch: warning: heartbeat not written: %s\n", err);
    }
}
