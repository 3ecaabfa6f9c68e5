// dist: the MPI runtime of stretch. The (dp x sp) grid of ranks, the
// gradient all-reduce (bucketed, non-blocking), small reductions for loss and
// token counts, and the one point-to-point primitive ring attention needs (a
// shift around the sp ring, the all-to-all of Ulysses). MPI is called only here, so a
// GPU build can put NCCL under this interface without touching the callers.
//
// Grid: world rank = dp_rank * sp + sp_rank. The sp ranks of one dp group are
// consecutive and share one sequence (each holds a zig-zag slice of it, see
// trainer/parallel/zigzag.h); the dp groups train on different sequences. Gradients are
// summed over ALL ranks (dp and sp). With ulysses > 1 (dist_init_grid3) the sp
// ranks are ring x ulysses, ulysses ranks adjacent (trainer/parallel/ulysses.h).
//
// Failures: every MPI error calls die() (message, then MPI_Abort of the whole
// job). A rank that dies any other way (signal, abort(), exit without
// MPI_Finalize) is noticed by mpirun, which kills the others; under Slurm use
// `srun --kill-on-bad-exit=1`. SIGTERM/SIGINT/SIGUSR1 sent to mpirun are
// forwarded to every rank; the preemption handler (Slurm issue) sets a flag
// per rank and the ranks agree on it with dist_any() at a step boundary.
//
// A context from dist_init_serial() is one rank with no MPI at all: every
// call below is then a no-op, so single-process tests need no MPI_Init.
//
// Tested by tests/mpi/test_allreduce.c (sums against hand-computed ones,
// sizes not a multiple of the bucket), tests/mpi/test_grid_error.{c,sh}
// (dp * sp != ranks: every rank prints the error, exit 2, no hang) and
// tests/mpi/test_rank_death.{c,sh} (a rank killed mid-collective brings the
// job down within seconds), each under mpirun with 1, 2 and 4 ranks.
#pragma once

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size;        // in the world
    int dp, sp;            // grid degrees, dp * sp == size
    int dp_rank, sp_rank;  // rank == dp_rank * sp + sp_rank
    bool mpi;              // false: dist_init_serial, no MPI calls at all
    MPI_Comm world;        // duplicate of MPI_COMM_WORLD (errors call die())
    MPI_Comm sp_comm;      // the sp ranks sharing a sequence; rank in it == sp_rank
    MPI_Comm dp_comm;      // the dp ranks with the same sp_rank; rank in it == dp_rank
    // The 2-D split of the sp ranks (trainer/parallel/ulysses.h): sp = ring *
    // ulysses, sp_rank = ring_rank * ulysses + u_rank (ulysses ranks adjacent,
    // so on one node when ranks fill nodes in order). ulysses == 1: ring ==
    // sp, the 1-D ring of before.
    int ring, ulysses;
    int ring_rank, u_rank;
    MPI_Comm ring_comm;    // same dp group and u_rank: the ring; rank in it == ring_rank
    MPI_Comm u_comm;       // same dp group and ring_rank: the all-to-all group; rank == u_rank
    int64_t sent_bytes;    // bytes sent to OTHER ranks by ring shifts and all-to-alls (bench)
} dist_ctx;

// Starts MPI (thread level FUNNELED: OpenMP threads compute, only the main
// thread calls MPI) and fills rank and size; the grid is dp = size, sp = 1
// until dist_init_grid.
void dist_init(dist_ctx *d, int *argc, char ***argv);

// A one-rank context that never calls MPI (tests, single-process tools).
void dist_init_serial(dist_ctx *d);

// Arranges the ranks as dp x sp and creates sp_comm and dp_comm. Returns 0,
// or -1 with a one-line message naming both factors and the rank count, e.g.
// "parallel.dp (2) x parallel.sp (3) = 6 but mpirun started 4 ranks".
// Collective over the world; every rank gets the same answer.
int dist_init_grid(dist_ctx *d, int dp, int sp, char *err, size_t errlen);

// The 3-D grid dp x ring x ulysses (sp = ring * ulysses): world rank =
// (dp_rank * ring + ring_rank) * ulysses + u_rank. Also creates ring_comm and
// u_comm. ulysses == 1 is dist_init_grid(d, dp, ring). Error lines as above,
// naming parallel.ring and parallel.ulysses.
int dist_init_grid3(dist_ctx *d, int dp, int ring, int ulysses, char *err, size_t errlen);

// A view of d whose "sp ring" is this rank's ring group (sp = ring, sp_rank =
// ring_rank, sp_comm = ring_comm): what ring_attn runs on inside the 2-D
// hybrid. Shares d's communicators (never finalize a view); its sent_bytes
// start at 0.
void dist_ring_view(dist_ctx *view, const dist_ctx *d);

// Frees the communicators and finalizes MPI.
void dist_finalize(dist_ctx *d);

// For a user error that EVERY rank detects the same way (a bad config):
// each rank prints "stretch: error: <msg>", then all finalize and exit 2.
// A failure seen by one rank only must use die_user() (which aborts the job).
_Noreturn void dist_exit_user_error(dist_ctx *d, const char *msg);

// ---------------------------------------------------------------------------
// Reductions over ALL ranks (in place).

void dist_allreduce_sum_double(dist_ctx *d, double *x, int n);
void dist_allreduce_sum_int64(dist_ctx *d, int64_t *x, int n);
// True on every rank if local is true on any rank (stop / checkpoint votes).
bool dist_any(dist_ctx *d, bool local);
void dist_barrier(dist_ctx *d);
// buf (bytes) of rank root to every rank (the NCCL unique id).
void dist_bcast_bytes(dist_ctx *d, void *buf, size_t bytes, int root);
// The same for buffers of any size (1 GiB pieces): a resume's tensors.
void dist_bcast_large(dist_ctx *d, void *buf, size_t bytes, int root);
// This rank's index among the ranks on its node, and their count (which GPU
// a rank takes; whether ranks share one).
void dist_local_rank(dist_ctx *d, int *local_rank, int *local_size);

typedef enum { DIST_F32, DIST_I32, DIST_U16 } dist_dtype;  // U16: bf16 bits

// ---------------------------------------------------------------------------
// Gradient all-reduce, bucketed.
//
// The buffer is cut into buckets of bucket_floats; each bucket is one
// MPI_Iallreduce, and while it runs the next one is started (at most
// DIST_GRAD_IN_FLIGHT at a time, so MPI's temporary buffers stay small).
// Buckets always start in DESCENDING order (last bucket first) on every rank,
// which is the order in which the backward pass finishes them: the parameter
// layout puts the embeddings first and the LM head last, and backward runs
// from the LM head down to the embeddings. To overlap with backward, call
//     dist_grad_sync_begin(&g, d, grads, n, DIST_BUCKET_FLOATS);
//     ... after each layer's backward: dist_grad_sync_ready(&g, lo);
//         where grads[lo, n) are final (lo = offset of that layer's first tensor)
//     dist_grad_sync_end(&g);   // starts what is left, waits for everything
// Only buckets lying wholly inside [lo, n) start early. A transfer progresses
// while the caller computes only as far as the MPI library progresses on its
// own (OpenMPI over shared memory mostly progresses inside MPI calls, so each
// _ready call also polls the buckets in flight).

enum { DIST_BUCKET_FLOATS = 4 << 20, DIST_GRAD_IN_FLIGHT = 2 };
// Buckets of the reduce-scatter on host buffers (ZeRO-2/3): smaller, since
// the gradients of a bucket stay resident (and MPI's temporary copy of it
// exists) until it completes; a quarter of the all-reduce's.
enum { DIST_SCATTER_BUCKET_FLOATS = 1 << 20 };

typedef struct {
    dist_ctx *d;
    float *grads;             // (n) summed in place
    int64_t n, bucket;        // floats in all, floats per bucket
    int64_t n_buckets;
    int64_t next;             // buckets [next, n_buckets) have been started
    int64_t done;             // buckets [next, done) may be in flight, [done, ..) are done
    MPI_Request req[DIST_GRAD_IN_FLIGHT];  // req[i % DIST_GRAD_IN_FLIGHT] of bucket i
    int64_t shard;            // > 0: reduce-scatter mode (dist_grad_sync_begin_scatter)
    int *counts;              // (DIST_GRAD_IN_FLIGHT x size) per-rank counts of the buckets in flight
    bool release;             // scatter mode: give back the pages of the parts not owned (zero_pages.h)
} dist_grad_sync;

void dist_grad_sync_begin(dist_grad_sync *g, dist_ctx *d, float *grads, int64_t n,
                          int64_t bucket_floats);
void dist_grad_sync_ready(dist_grad_sync *g, int64_t lo);
void dist_grad_sync_end(dist_grad_sync *g);

// The same buckets, reduce-scattered instead of all-reduced (ZeRO-2/3): rank
// r owns grads[r * shard, min((r + 1) * shard, n)) and, after _end, holds
// the sum over all ranks there; the rest of its buffer is garbage. Each
// bucket is one MPI_Ireduce_scatter whose per-rank counts are the bucket's
// overlap with each rank's slice (in place; the owned part is moved to its
// offset when the bucket completes). _ready and _end as above.
void dist_grad_sync_begin_scatter(dist_grad_sync *g, dist_ctx *d, float *grads, int64_t n,
                                  int64_t bucket_floats, int64_t shard);

// Gather of one range [lo, hi) of a sharded fp32 buffer (ZeRO-3: one
// layer's weights): every rank contributes its slice's overlap with the
// range, in place, non-blocking (MPI_Iallgatherv) so the next layer's
// gather overlaps this layer's compute.
typedef struct {
    MPI_Request req;
    int *counts;            // (2 x size) counts and displacements, kept until the end
    int64_t lo, hi;         // the range in flight (lo == hi: none)
} dist_range_gather;

void dist_range_gather_begin(dist_range_gather *g, dist_ctx *d, float *buf, int64_t n, int64_t lo,
                             int64_t hi, int64_t shard);
void dist_range_gather_end(dist_range_gather *g);
// Drives the gather in flight (MPI_Test): an MPI library without a progress
// thread moves a non-blocking collective only inside MPI calls. True when
// it is complete (or none is in flight); _end is still needed.
bool dist_range_gather_test(dist_range_gather *g);
// The same range of a buffer of elem_bytes elements, blocking, into unit
// (hi - lo elements; this rank's part already in place at its offset
// there): the host-staged path of the GPU ZeRO-3 (gpu_comm_cuda.c).
void dist_range_gather_bytes(dist_ctx *d, void *unit, int64_t n, int64_t shard, int64_t lo,
                             int64_t hi, size_t elem_bytes);

// The owned slices back to everyone: rank r's buf[r * shard, min(.., n))
// to every rank, in place (MPI_Allgatherv), count elements of type in all.
void dist_shard_allgather(dist_ctx *d, void *buf, int64_t n, int64_t shard, dist_dtype type);
// Rank root's full (n) <- every rank's part (its slice of n, shard floats a
// rank) (MPI_Gatherv; full is only read on root; part may lie in place in
// root's full). For checkpoints of sharded state written by one rank.
void dist_shard_gather_root(dist_ctx *d, float *full, const float *part, int64_t n, int64_t shard,
                            int root);
// The inverse: every rank's part <- its slice of rank root's full
// (MPI_Scatterv; full is only read on root). For a resume read by one rank.
void dist_shard_scatter_root(dist_ctx *d, float *part, const float *full, int64_t n, int64_t shard,
                             int root);

// grads (n) <- sum over all ranks, in DIST_BUCKET_FLOATS buckets.
void dist_allreduce_grads(dist_ctx *d, float *grads, int64_t n);

// ---------------------------------------------------------------------------
// Ring shift on the sp ring: the one point-to-point primitive of ring
// attention. Sends count elements of send to sp rank (sp_rank + 1) % sp and
// receives count elements from (sp_rank - 1) % sp into recv. Non-blocking:
// the buffers must stay untouched until dist_xfer_wait. Several shifts (with
// distinct tags) may share one dist_xfer.


enum { DIST_XFER_MAX = 8 };

typedef struct {
    int n;                           // requests in use
    MPI_Request req[DIST_XFER_MAX];
} dist_xfer;

void dist_ring_shift(dist_xfer *x, dist_ctx *d, void *recv, const void *send, int64_t count,
                     dist_dtype type, int tag);
// Lets the library move data while the caller computes (MPI_Testall).
void dist_xfer_poll(dist_xfer *x);
void dist_xfer_wait(dist_xfer *x);

// ---------------------------------------------------------------------------
// Ulysses all-to-all over u_comm (blocking): block j (count elements) of
// send goes to u rank j, block i of recv comes from u rank i. One rank
// (ulysses == 1 or no MPI): recv = send.
void dist_alltoall(dist_ctx *d, void *recv, const void *send, int64_t count, dist_dtype type);
// All-gather over u_comm: recv (ulysses * count) = every u rank's send (count), in u order.
void dist_allgather(dist_ctx *d, void *recv, const void *send, int64_t count, dist_dtype type);
