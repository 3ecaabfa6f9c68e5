// train_stop: when a run stops before its end, and the record it leaves.
//   - signals: SIGUSR1/SIGTERM (Slurm preemption, scancel) and SIGINT set a
//     flag polled at step boundaries, before a stage's gate and before its
//     passkey evaluation;
//   - time: the run stops itself at its deadline (train.time_limit_minutes
//     from start, else SLURM_JOB_END_TIME) minus the next step, the
//     measured duration of the slowest save so far and train.stop_margin_s;
//   - the committed-stop marker out_dir/stop.json, written atomically by
//     rank 0 once the stop checkpoint is on disk (and a copy at
//     $STRETCH_STOP_MARKER when set): the batch templates requeue on it, not
//     on srun's status (docs/slurm.md);
//   - saves: each one timed and logged; one already on disk for this step is
//     not written again; train.ckpt_every_minutes adds time-based ones.
// Every decision is rank 0's, agreed with dist_any, so all ranks stop at the
// same step with the same status.
//
// Tested by tests/cli/test_stop.sh (stop.json after SIGUSR1 and by time,
// no repeated save, a limit too short to progress) and tests/cli/test_slurm_policy.sh.
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct train_state train_state;

void train_stop_install_handlers(void);
// The stop signal received (0 = none). Async-signal-safe flag.
int train_stop_signal(void);

// Called once after resume: the step the run starts from, the deadline.
// Removes a stale out_dir/stop.json (rank 0).
void train_stop_start(train_state *st, bool resumed);

// Agreed over all ranks: -1 = go on, else the exit status of a stop (99
// TRAIN_EXIT_REQUEUE for a signal or the deadline, 130 for SIGINT). step_s:
// the duration of the last step (0 when unknown). Prints the reason once.
int train_stop_poll(train_state *st, double step_s);

// Agreed: a time-based checkpoint is due (train.ckpt_every_minutes).
bool train_stop_ckpt_due(train_state *st);

// Writes the checkpoint of the current step unless the last one written (or
// resumed from) is of this step; timed and logged. Dies on failure.
void train_stop_save(train_state *st);

// Collective; rank 0 writes out_dir/stop.json for a stop with status (99/130): the step, the
// checkpoint, the reason, the job id, the restart count, whether the
// checkpoint step moved since this start.
void train_stop_write_marker(train_state *st, int status);
