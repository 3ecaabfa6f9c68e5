// ckpt_shard: the sharded write of a checkpoint's big tensors WITHOUT
// gathering them on one rank. Rank 0 creates the file (NAME.tmp) with every
// attribute and small dataset, and the big float32 datasets with their
// shape, chunking and Fletcher32 checksums but no data
// (ckpt_put_deferred), then suspends it; every rank opens it with parallel
// HDF5 (MPI-IO) and writes its slice of the flat buffers as hyperslabs of
// the same global datasets (collective writes, as filtered datasets need);
// rank 0 resumes, marks the file complete and commits it (fsync, rename) as
// any checkpoint. A kill at any point leaves at most NAME.tmp: the previous
// checkpoint stays the newest valid one.
//
// Tested by tests/cli/test_zero.sh (sharded runs resume bit-identically on
// other grids and modes; SIGKILL during sharded writes).
#pragma once

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

// One flat buffer's family of datasets: dataset group/<tensor name>, each
// tensor at offset (floats) of the flat buffer, `numel` elements, written
// from data covering the flat range [lo, hi) (data[0] is element lo).
typedef struct {
    const char *group;   // "params", "optim/m", ...
    const float *data;   // this rank's [lo, hi)
    int64_t lo, hi;
} ckpt_shard_family;

typedef struct {
    const char *name;    // HF name
    int64_t offset, rows, cols;  // cols 1: a vector (stored 1-D)
} ckpt_shard_tensor;

// Collective over comm: every rank writes its ranges of every family into
// tmp_path (opened with the MPI-IO driver). 0, or -1 with one line in err
// (the same verdict on every rank is the caller's business: dist_any).
int ckpt_shard_write(MPI_Comm comm, const char *tmp_path, const ckpt_shard_tensor *tensors,
                     int n_tensors, const ckpt_shard_family *families, int n_families, char *err,
                     size_t errlen);
