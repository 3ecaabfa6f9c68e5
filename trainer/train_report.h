// train_report: the last words of a training session (rank 0): one line
// with steps, tokens, the final loss and validation loss and the wall time
// (of the whole run, over its sessions, and of this one); the "run_end" row
// of metrics.jsonl (how: finished, max_steps, signal, gate_not_met) and the
// heartbeat's final state (train_heartbeat.h).
#pragma once

#include <stdbool.h>

typedef struct train_state train_state;

void train_report_end(train_state *st, bool finished, const char *how);
