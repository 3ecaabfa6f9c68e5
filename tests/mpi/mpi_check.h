// mpi_check: the few helpers of the MPI tests (plain C programs run by CTest
// under mpirun): a failing check prints "[rank r] FAIL file:line: ..." and is
// counted; mpi_check_finish() agrees on the verdict over all ranks and gives
// the exit status (0 pass, 1 fail) that every rank returns.
#pragma once

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>

typedef struct {
    int rank;
    int failures;
} mpi_check;

#define EXPECT(mc, cond, ...)                                                          \
    do {                                                                             \
        if (!(cond)) mpi_check_fail((mc), __FILE__, __LINE__, #cond, __VA_ARGS__);   \
    } while (0)

static inline void mpi_check_fail(mpi_check *mc, const char *file, int line, const char *cond,
                                  const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[rank %d] FAIL %s:%d: %s (%s)\n", mc->rank, file, line, msg, cond);
    fflush(stderr);
    mc->failures++;
}

static inline double mpi_check_max(double x) {
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return x;
}

static inline int mpi_check_finish(const mpi_check *mc, const char *name) {
    int bad = mc->failures;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (mc->rank == 0) printf("%s: %s (%d failed checks)\n", name, bad ? "FAIL" : "PASS", bad);
    fflush(stdout);
    return bad ? 1 : 0;
}
