// dist_abort: ending the whole job from any thread, with a chosen exit
// status, when a collective may never return (the watchdog,
// trainer/train_watchdog.h). Transports that hold their own communicators
// (NCCL, gpu_comm_cuda.c) register an abort hook, so their in-flight kernels
// and proxy threads are torn down before MPI_Abort; and a poll hook, which
// reports an asynchronous error (ncclCommGetAsyncError) that would otherwise
// surface only at the next enqueue, or never when the peer is gone.
//
// Tested by tests/cli/test_watchdog.sh (a rank frozen with SIGSTOP under
// mpirun: the job ends with status 97 within the limit); the NCCL hooks are
// compiled in CUDA builds and run on the emulated GPU by gpuemu_stretch_sp
// (tests/gpu/emu: a faked ncclCommGetAsyncError ends the run, exit 97).
#pragma once

#include <stddef.h>

// At most DIST_ABORT_MAX_HOOKS of each; registration is not thread-safe (do
// it at start-up, before the watchdog starts).
#define DIST_ABORT_MAX_HOOKS 4
typedef void (*dist_abort_fn)(void *ctx);
// Returns nonzero with one line in msg when the transport is in error.
typedef int (*dist_poll_fn)(void *ctx, char *msg, size_t msglen);

void dist_abort_register(dist_abort_fn abort_fn, dist_poll_fn poll_fn, void *ctx);
void dist_abort_unregister(void *ctx);

// Nonzero (and msg) when a registered transport reports an error.
int dist_abort_poll(char *msg, size_t msglen);

// Runs the abort hooks, then MPI_Abort(MPI_COMM_WORLD, status) when MPI is
// initialized, else _exit(status). Never returns.
_Noreturn void dist_abort_job(int status);
