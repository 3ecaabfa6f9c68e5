// One rank dies in the middle of a run while the others wait on it in
// MPI_Recv and MPI_Allreduce; test_rank_death.sh checks that mpirun brings
// the whole job down within seconds (never a hang), for each way of dying:
//   kill   raise(SIGKILL)         abort  abort()
//   exit   exit(3) without MPI_Finalize
//   die    die() (message, then MPI_Abort of every rank)
// The dying rank is the last one; with one rank it dies alone.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "dist.h"

static void die_now(const char *how) {
    fprintf(stderr, "[rank dying] going down by %s\n", how);
    fflush(stderr);
    if (!strcmp(how, "kill")) raise(SIGKILL);
    if (!strcmp(how, "abort")) abort();
    if (!strcmp(how, "exit")) exit(3);
    if (!strcmp(how, "die")) die("simulated failure (%s)", how);
    fprintf(stderr, "unknown way to die: %s\n", how);
    exit(1);
}

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    if (argc != 2) die("usage: %s kill|abort|exit|die", argv[0]);
    char err[256];
    if (dist_init_grid(&d, 1, d.size, err, sizeof err) != 0) die("%s", err);
    const int victim = d.size - 1;
    // A few healthy steps first.
    for (int step = 0; step < 3; step++) {
        double x = 1.0;
        dist_allreduce_sum_double(&d, &x, 1);
        if (x != d.size) die("bad sum %g", x);
    }
    if (d.rank == victim) {
        usleep(300 * 1000);  // the others are blocked by now
        die_now(argv[1]);
    }
    if (d.rank == 0) {
        int msg = 0;  // the victim never sends
        MPI_Recv(&msg, 1, MPI_INT, victim, 99, d.world, MPI_STATUS_IGNORE);
    } else {
        for (;;) {
            double x = 1.0;
            dist_allreduce_sum_double(&d, &x, 1);
        }
    }
    fprintf(stderr, "[rank %d] still running after rank %d died\n", d.rank, victim);
    return 0;
}
