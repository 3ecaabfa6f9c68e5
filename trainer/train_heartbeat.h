// train_heartbeat: out_dir/heartbeat.json, the file that says whether a run
// is alive (docs/run-directory.md). Rank 0 rewrites it atomically
// at every log step and once at exit:
//   {"state": "running"|"finished"|"stopped", "step": 120, "stage": 1,
//    "tokens": 61440, "time": 1767000000.5, "pid": 4242, "host": "node07"}
// time is wall-clock (Unix seconds). `stretch status` reads it: a "running"
// heartbeat whose pid is gone on this host, or older than 10 minutes on
// another host, is reported as not running (killed).
#pragma once

#include <stdint.h>

// Writes the heartbeat; a failure is reported on stderr once and ignored
// (a heartbeat must never stop a run).
void train_heartbeat_write(const char *out_dir, const char *state, int64_t step, int stage,
                           int64_t tokens);
