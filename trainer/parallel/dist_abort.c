// dist_abort: see dist_abort.h.
#include "dist_abort.h"

#include <mpi.h>
#include <stdio.h>
#include <unistd.h>

static struct {
    dist_abort_fn abort_fn;
    dist_poll_fn poll_fn;
    void *ctx;
} hooks[DIST_ABORT_MAX_HOOKS];

void dist_abort_register(dist_abort_fn abort_fn, dist_poll_fn poll_fn, void *ctx) {
    for (int i = 0; i < DIST_ABORT_MAX_HOOKS; i++)
        if (!hooks[i].ctx) {
            hooks[i].abort_fn = abort_fn;
            hooks[i].poll_fn = poll_fn;
            hooks[i].ctx = ctx;
            return;
        }
}

void dist_abort_unregister(void *ctx) {
    for (int i = 0; i < DIST_ABORT_MAX_HOOKS; i++)
        if (hooks[i].ctx == ctx) hooks[i].ctx = NULL;
}

int dist_abort_poll(char *msg, size_t msglen) {
    for (int i = 0; i < DIST_ABORT_MAX_HOOKS; i++)
        if (hooks[i].ctx && hooks[i].poll_fn && hooks[i].poll_fn(hooks[i].ctx, msg, msglen)) return 1;
    return 0;
}

_Noreturn void dist_abort_job(int status) {
    for (int i = 0; i < DIST_ABORT_MAX_HOOKS; i++)
        if (hooks[i].ctx && hooks[i].abort_fn) hooks[i].abort_fn(hooks[i].ctx);
    fflush(stdout);
    fflush(stderr);
    int up = 0, down = 0;
    MPI_Initialized(&up);
    if (up) MPI_Finalized(&down);
    // MPI_Abort from a thread other than the one that called MPI_Init is
    // outside MPI_THREAD_FUNNELED; OpenMPI and MPICH both honour it (it only
    // asks the launcher to kill the job), and _exit below covers the rest.
    if (up && !down) MPI_Abort(MPI_COMM_WORLD, status);
    _exit(status);
}
