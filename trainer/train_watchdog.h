// train_watchdog: a run that stops making progress ends instead of holding
// its nodes until the time limit. A thread on every rank checks, once a
// second, when the rank last finished a step (or a save, an evaluation);
// after train.watchdog_minutes without one, or when the GPU transport reports
// an asynchronous error (ncclCommGetAsyncError), it aborts the NCCL
// communicators and the MPI job with TRAIN_EXIT_WATCHDOG (97). A frozen or
// dead rank blocks the others inside a collective: their watchdogs fire.
// out_dir/heartbeat.json is train_heartbeat.h's (rank 0, every log step);
// the watchdog adds the host list to it (docs/slurm.md).
//
// Tested by tests/cli/test_watchdog.sh (a rank frozen with SIGSTOP: exit 97
// within the limit; the heartbeat's fields).
#pragma once

typedef struct train_state train_state;

// Collective (gathers the host list). Starts the thread when
// train.watchdog_minutes > 0.
void train_watchdog_start(train_state *st);
// Progress without a step (save, evaluation): resets the clock. Any thread.
void train_watchdog_beat(void);
// After each step: beat.
void train_watchdog_step(train_state *st);
// Stops the thread (before MPI_Finalize).
void train_watchdog_stop(void);
