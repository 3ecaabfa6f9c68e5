// gpu_mpi: the start and end every multi-rank GPU test shares (tests/gpu/
// test_gpu_{alltoall,ring,shard,ulysses,offload}.c): MPI up and exit 77
// (skipped) without a GPU, the transport named by argv[1], a backend on the
// rank's GPU, and the failures summed over the ranks at the end.
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "dist.h"
#include "gpu_comm.h"

// MPI initialised; false (MPI finalised: return 77) when no GPU is visible.
static inline bool gpu_mpi_begin(dist_ctx *d, int *argc, char ***argv) {
    dist_init(d, argc, argv);
    if (backend_gpu_count() > 0) return true;
    if (d->rank == 0) printf("no GPU visible: skipped\n");
    dist_finalize(d);
    return false;
}

// argv[1] "nccl" or "mpi"; otherwise dflt.
static inline int gpu_mpi_transport(int argc, char **argv, int dflt) {
    if (argc > 1 && !strcmp(argv[1], "nccl")) return GPU_COMM_NCCL;
    if (argc > 1 && !strcmp(argv[1], "mpi")) return GPU_COMM_MPI;
    return dflt;
}

// A cuda backend on this rank's GPU (ranks of a node share GPUs round robin).
static inline backend *gpu_mpi_backend(dist_ctx *d, bk_dtype dt) {
    char err[256];
    int lr, ls;
    dist_local_rank(d, &lr, &ls);
    backend *bk = backend_create(BACKEND_CUDA, dt, lr % backend_gpu_count(), err, sizeof err);
    if (!bk) dist_exit_user_error(d, err);
    return bk;
}

// The failures of every rank summed and printed; MPI finalised; the exit status.
static inline int gpu_mpi_end(dist_ctx *d, int64_t failures) {
    dist_allreduce_sum_int64(d, &failures, 1);
    if (d->rank == 0) printf(failures ? "%lld failure(s)\n" : "all passed\n", (long long)failures);
    dist_finalize(d);
    return failures ? 1 : 0;
}
