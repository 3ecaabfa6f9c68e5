// dist: the MPI grid, reductions and ring shift. See dist.h.
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "zero_pages.h"

// ---------------------------------------------------------------------------
// Checked MPI calls: our communicators return errors, and every call goes
// through MPI_CHECK, which dies with the caller's file:line and MPI's message.

#define MPI_CHECK(call) mpi_check((call), #call, __FILE__, __LINE__)

static void mpi_check(int rc, const char *what, const char *file, int line) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    die_at(file, line, "%s failed: %s", what, msg);
}

// Backstop for MPI_COMM_WORLD (used outside this file, e.g. by die.c).
static void on_world_error(MPI_Comm *comm, int *code, ...) {
    (void)comm;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(*code, msg, &len);
    die("MPI error on MPI_COMM_WORLD: %s", msg);
}

static MPI_Datatype mpi_type(dist_dtype t) {
    switch (t) {
    case DIST_F32: return MPI_FLOAT;
    case DIST_I32: return MPI_INT32_T;
    case DIST_U16: return MPI_UINT16_T;
    }
    die("bad dist_dtype %d", (int)t);
}

static size_t dtype_size(dist_dtype t) { return t == DIST_U16 ? 2 : 4; }

static int mpi_count(int64_t n, const char *what) {
    if (n < 0 || n > INT_MAX)
        die("%s: %lld elements do not fit one MPI message (max %d); use more sp ranks "
            "or a smaller batch", what, (long long)n, INT_MAX);
    return (int)n;
}

// ---------------------------------------------------------------------------
// Set-up

void dist_init_serial(dist_ctx *d) {
    *d = (dist_ctx){.rank = 0, .size = 1, .dp = 1, .sp = 1, .mpi = false,
                    .world = MPI_COMM_NULL, .sp_comm = MPI_COMM_NULL,
                    .dp_comm = MPI_COMM_NULL, .ring = 1, .ulysses = 1,
                    .ring_comm = MPI_COMM_NULL, .u_comm = MPI_COMM_NULL};
}

void dist_init(dist_ctx *d, int *argc, char ***argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            die("MPI_Init_thread failed");
        if (provided < MPI_THREAD_FUNNELED)
            die("MPI provides thread level %d, stretch needs MPI_THREAD_FUNNELED", provided);
    }
    MPI_Errhandler eh;
    MPI_CHECK(MPI_Comm_create_errhandler(on_world_error, &eh));
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, eh));
    MPI_CHECK(MPI_Errhandler_free(&eh));

    dist_init_serial(d);
    d->mpi = true;
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &d->world));
    MPI_CHECK(MPI_Comm_set_errhandler(d->world, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(d->world, &d->rank));
    MPI_CHECK(MPI_Comm_size(d->world, &d->size));
    d->dp = d->size;
    d->dp_rank = d->rank;
}

static void free_grid_comms(dist_ctx *d) {
    if (d->sp_comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&d->sp_comm));
    if (d->dp_comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&d->dp_comm));
    if (d->ring_comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&d->ring_comm));
    if (d->u_comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&d->u_comm));
}

int dist_init_grid(dist_ctx *d, int dp, int sp, char *err, size_t errlen) {
    return dist_init_grid3(d, dp, sp, 1, err, errlen);
}

int dist_init_grid3(dist_ctx *d, int dp, int ring, int ulysses, char *err, size_t errlen) {
    if (dp < 1 || ring < 1 || ulysses < 1) {
        const char *k = dp < 1 ? "dp" : ring < 1 ? (ulysses == 1 ? "sp" : "ring") : "ulysses";
        snprintf(err, errlen, "parallel.%s must be >= 1, got %d", k,
                 dp < 1 ? dp : ring < 1 ? ring : ulysses);
        return -1;
    }
    int64_t world = (int64_t)dp * ring * ulysses;
    if (world != d->size) {
        if (ulysses == 1)
            snprintf(err, errlen, "parallel.dp (%d) x parallel.sp (%d) = %lld but mpirun started %d rank%s",
                     dp, ring, (long long)world, d->size, d->size == 1 ? "" : "s");
        else
            snprintf(err, errlen, "parallel.dp (%d) x parallel.ring (%d) x parallel.ulysses (%d) = "
                     "%lld but mpirun started %d rank%s", dp, ring, ulysses, (long long)world,
                     d->size, d->size == 1 ? "" : "s");
        return -1;
    }
    int sp = ring * ulysses;
    d->dp = dp;
    d->sp = sp;
    d->ring = ring;
    d->ulysses = ulysses;
    d->dp_rank = d->rank / sp;
    d->sp_rank = d->rank % sp;
    d->ring_rank = d->sp_rank / ulysses;
    d->u_rank = d->sp_rank % ulysses;
    if (!d->mpi) return 0;
    free_grid_comms(d);
    MPI_CHECK(MPI_Comm_split(d->world, d->dp_rank, d->sp_rank, &d->sp_comm));
    MPI_CHECK(MPI_Comm_split(d->world, d->sp_rank, d->dp_rank, &d->dp_comm));
    MPI_CHECK(MPI_Comm_split(d->world, d->dp_rank * ulysses + d->u_rank, d->ring_rank, &d->ring_comm));
    MPI_CHECK(MPI_Comm_split(d->world, d->dp_rank * ring + d->ring_rank, d->u_rank, &d->u_comm));
    int r = -1;
    MPI_CHECK(MPI_Comm_rank(d->sp_comm, &r));
    CHECK(r == d->sp_rank);
    MPI_CHECK(MPI_Comm_rank(d->dp_comm, &r));
    CHECK(r == d->dp_rank);
    MPI_CHECK(MPI_Comm_rank(d->ring_comm, &r));
    CHECK(r == d->ring_rank);
    MPI_CHECK(MPI_Comm_rank(d->u_comm, &r));
    CHECK(r == d->u_rank);
    return 0;
}

void dist_ring_view(dist_ctx *view, const dist_ctx *d) {
    *view = *d;
    view->sp = d->ring;
    view->sp_rank = d->ring_rank;
    view->sp_comm = d->ring_comm;
    view->ulysses = 1;
    view->u_rank = 0;
    view->u_comm = MPI_COMM_NULL;
    view->sent_bytes = 0;
}

void dist_finalize(dist_ctx *d) {
    if (!d->mpi) return;
    free_grid_comms(d);
    MPI_CHECK(MPI_Comm_free(&d->world));
    MPI_CHECK(MPI_Finalize());
    d->mpi = false;
}

void dist_exit_user_error(dist_ctx *d, const char *msg) {
    fprintf(stderr, "stretch: error: %s\n", msg);
    fflush(stderr);
    fflush(stdout);
    if (d->mpi) {
        // Every rank is here (the error is collective), so finalizing is safe
        // and mpirun reports status 2 without an MPI_Abort banner.
        MPI_CHECK(MPI_Barrier(d->world));
        free_grid_comms(d);
        MPI_Finalize();
    }
    exit(2);
}

// ---------------------------------------------------------------------------
// Small reductions

void dist_allreduce_sum_double(dist_ctx *d, double *x, int n) {
    if (!d->mpi || d->size == 1) return;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, d->world));
}

void dist_allreduce_sum_int64(dist_ctx *d, int64_t *x, int n) {
    if (!d->mpi || d->size == 1) return;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_INT64_T, MPI_SUM, d->world));
}

bool dist_any(dist_ctx *d, bool local) {
    int v = local ? 1 : 0;
    if (d->mpi && d->size > 1)
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, d->world));
    return v != 0;
}

void dist_bcast_bytes(dist_ctx *d, void *buf, size_t bytes, int root) {
    if (d->mpi && d->size > 1)
        MPI_CHECK(MPI_Bcast(buf, mpi_count((int64_t)bytes, "broadcast"), MPI_BYTE, root, d->world));
}

void dist_bcast_large(dist_ctx *d, void *buf, size_t bytes, int root) {
    const size_t piece = (size_t)1 << 30;  // MPI counts are ints
    for (size_t at = 0; at < bytes; at += piece)
        dist_bcast_bytes(d, (char *)buf + at, bytes - at < piece ? bytes - at : piece, root);
}

void dist_local_rank(dist_ctx *d, int *local_rank, int *local_size) {
    *local_rank = 0;
    *local_size = 1;
    if (!d->mpi || d->size == 1) return;
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(d->world, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, local_rank));
    MPI_CHECK(MPI_Comm_size(node, local_size));
    MPI_CHECK(MPI_Comm_free(&node));
}

void dist_barrier(dist_ctx *d) {
    if (d->mpi && d->size > 1) MPI_CHECK(MPI_Barrier(d->world));
}

// ---------------------------------------------------------------------------
// Gradient all-reduce

static int64_t bucket_lo(const dist_grad_sync *g, int64_t i) { return i * g->bucket; }

static int64_t bucket_len(const dist_grad_sync *g, int64_t i) {
    int64_t lo = bucket_lo(g, i), hi = lo + g->bucket;
    return (hi < g->n ? hi : g->n) - lo;
}

static bool grad_sync_active(const dist_grad_sync *g) { return g->d->mpi && g->d->size > 1; }

// Waits for the oldest bucket in flight (the highest index: they start in
// descending order).
// This rank's slice of a sharded buffer: [*lo, *hi).
static void own_range(const dist_ctx *d, int64_t n, int64_t shard, int rank, int64_t *lo, int64_t *hi) {
    *lo = (int64_t)rank * shard;
    *hi = *lo + shard;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

static void wait_oldest(dist_grad_sync *g) {
    CHECK(g->done > g->next);
    int64_t i = --g->done;
    MPI_CHECK(MPI_Wait(&g->req[i % DIST_GRAD_IN_FLIGHT], MPI_STATUS_IGNORE));
    if (g->shard > 0) {
        // In-place reduce-scatter leaves our part at the bucket's start.
        int64_t lo = bucket_lo(g, i), hi = lo + bucket_len(g, i), a, b;
        own_range(g->d, g->n, g->shard, g->d->rank, &a, &b);
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (b > a && a > lo) memmove(g->grads + a, g->grads + lo, sizeof(float) * (size_t)(b - a));
        if (g->release) {  // the bucket's parts we do not own are done with
            if (b < a) a = b = lo;
            zero_pages_release(g->grads + lo, sizeof(float) * (size_t)(a - lo));
            zero_pages_release(g->grads + b, sizeof(float) * (size_t)(hi - b));
        }
    }
}

static void start_next_bucket(dist_grad_sync *g) {
    if (g->done - g->next == DIST_GRAD_IN_FLIGHT) wait_oldest(g);
    int64_t i = --g->next;
    MPI_Request *req = &g->req[i % DIST_GRAD_IN_FLIGHT];
    if (g->shard == 0) {
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, g->grads + bucket_lo(g, i),
                                 mpi_count(bucket_len(g, i), "gradient bucket"), MPI_FLOAT,
                                 MPI_SUM, g->d->world, req));
        return;
    }
    // The counts stay untouched until the request completes (MPI-3).
    int *counts = g->counts + (i % DIST_GRAD_IN_FLIGHT) * g->d->size;
    int64_t lo = bucket_lo(g, i), hi = lo + bucket_len(g, i);
    for (int r = 0; r < g->d->size; r++) {
        int64_t a, b;
        own_range(g->d, g->n, g->shard, r, &a, &b);
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        counts[r] = b > a ? (int)(b - a) : 0;
    }
    MPI_CHECK(MPI_Ireduce_scatter(MPI_IN_PLACE, g->grads + lo, counts, MPI_FLOAT, MPI_SUM,
                                  g->d->world, req));
}

void dist_grad_sync_begin(dist_grad_sync *g, dist_ctx *d, float *grads, int64_t n,
                          int64_t bucket_floats) {
    CHECK(n >= 0 && bucket_floats > 0 && bucket_floats <= INT_MAX);
    *g = (dist_grad_sync){.d = d, .grads = grads, .n = n, .bucket = bucket_floats};
    g->n_buckets = (n + bucket_floats - 1) / bucket_floats;
    g->next = g->done = g->n_buckets;
    for (int i = 0; i < DIST_GRAD_IN_FLIGHT; i++) g->req[i] = MPI_REQUEST_NULL;
}

void dist_grad_sync_ready(dist_grad_sync *g, int64_t lo) {
    if (!grad_sync_active(g)) return;
    while (g->next > 0 && bucket_lo(g, g->next - 1) >= lo) start_next_bucket(g);
    // Poll what is in flight so shared-memory transfers move between calls.
    for (int64_t i = g->next; i < g->done; i++) {
        int flag = 0;
        MPI_CHECK(MPI_Test(&g->req[i % DIST_GRAD_IN_FLIGHT], &flag, MPI_STATUS_IGNORE));
    }
}

void dist_grad_sync_end(dist_grad_sync *g) {
    if (grad_sync_active(g)) {
        while (g->next > 0) start_next_bucket(g);
        while (g->done > g->next) wait_oldest(g);
    }
    free(g->counts);
    g->counts = NULL;
}

void dist_grad_sync_begin_scatter(dist_grad_sync *g, dist_ctx *d, float *grads, int64_t n,
                                  int64_t bucket_floats, int64_t shard) {
    CHECK(shard > 0 && shard * (int64_t)d->size >= n);
    g->counts = NULL;
    dist_grad_sync_begin(g, d, grads, n, bucket_floats);
    g->shard = shard;
    g->counts = xcalloc((size_t)DIST_GRAD_IN_FLIGHT * (size_t)d->size, sizeof(int));
}

// Per-rank counts and displacements (in units of elem elements) of each
// rank's part of the range [lo, hi) of a sharded buffer; a rank owning none
// of it gets 0 at offset 0.
static void range_counts(const dist_ctx *d, int64_t n, int64_t shard, int64_t lo, int64_t hi,
                         int64_t elem, int *counts, int *displs) {
    for (int r = 0; r < d->size; r++) {
        int64_t a, b;
        own_range(d, n, shard, r, &a, &b);
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (b < a) a = b = lo;
        counts[r] = mpi_count((b - a) * elem, "shard part");
        displs[r] = mpi_count((a - lo) * elem, "shard part offset");
    }
}

// The same for the whole buffer (elements).
static void shard_counts(const dist_ctx *d, int64_t n, int64_t shard, int *counts, int *displs) {
    range_counts(d, n, shard, 0, n, 1, counts, displs);
}

void dist_range_gather_begin(dist_range_gather *g, dist_ctx *d, float *buf, int64_t n, int64_t lo,
                             int64_t hi, int64_t shard) {
    g->lo = lo;
    g->hi = hi;
    g->req = MPI_REQUEST_NULL;
    g->counts = NULL;
    if (!d->mpi || d->size == 1 || hi <= lo) return;
    g->counts = xcalloc((size_t)d->size * 2, sizeof(int));
    int *displs = g->counts + d->size;
    range_counts(d, n, shard, lo, hi, 1, g->counts, displs);
    MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf + lo, g->counts, displs,
                              MPI_FLOAT, d->world, &g->req));
}

void dist_range_gather_end(dist_range_gather *g) {
    if (g->counts) {
        MPI_CHECK(MPI_Wait(&g->req, MPI_STATUS_IGNORE));
        free(g->counts);
        g->counts = NULL;
    }
    g->lo = g->hi = 0;
}

bool dist_range_gather_test(dist_range_gather *g) {
    if (!g->counts || g->req == MPI_REQUEST_NULL) return true;
    int flag = 0;
    MPI_CHECK(MPI_Test(&g->req, &flag, MPI_STATUS_IGNORE));  // a complete request becomes NULL
    return flag != 0;
}

void dist_range_gather_bytes(dist_ctx *d, void *unit, int64_t n, int64_t shard, int64_t lo,
                             int64_t hi, size_t elem_bytes) {
    if (!d->mpi || d->size == 1 || hi <= lo) return;
    int *counts = xcalloc((size_t)d->size * 2, sizeof(int)), *displs = counts + d->size;
    range_counts(d, n, shard, lo, hi, (int64_t)elem_bytes, counts, displs);
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, unit, counts, displs, MPI_BYTE,
                             d->world));
    free(counts);
}

void dist_shard_allgather(dist_ctx *d, void *buf, int64_t n, int64_t shard, dist_dtype type) {
    if (!d->mpi || d->size == 1) return;
    int *counts = xcalloc((size_t)d->size * 2, sizeof(int)), *displs = counts + d->size;
    shard_counts(d, n, shard, counts, displs);
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs,
                             mpi_type(type), d->world));
    free(counts);
}

void dist_shard_gather_root(dist_ctx *d, float *full, const float *part, int64_t n, int64_t shard,
                            int root) {
    int64_t a, b;
    own_range(d, n, shard, d->rank, &a, &b);
    if (!d->mpi || d->size == 1) {
        if (full != part) memcpy(full, part, sizeof(float) * (size_t)(b - a));
        return;
    }
    int *counts = xcalloc((size_t)d->size * 2, sizeof(int)), *displs = counts + d->size;
    shard_counts(d, n, shard, counts, displs);
    // Root's own part already in place (full + its offset == part): MPI_IN_PLACE.
    const void *send = d->rank == root && part == full + a ? MPI_IN_PLACE : (const void *)part;
    MPI_CHECK(MPI_Gatherv(send, counts[d->rank], MPI_FLOAT, full, counts, displs, MPI_FLOAT, root,
                          d->world));
    free(counts);
}

void dist_shard_scatter_root(dist_ctx *d, float *part, const float *full, int64_t n, int64_t shard,
                             int root) {
    int64_t a, b;
    own_range(d, n, shard, d->rank, &a, &b);
    if (!d->mpi || d->size == 1) {
        if (full != part) memcpy(part, full + a, sizeof(float) * (size_t)(b - a));
        return;
    }
    int *counts = xcalloc((size_t)d->size * 2, sizeof(int)), *displs = counts + d->size;
    shard_counts(d, n, shard, counts, displs);
    MPI_CHECK(MPI_Scatterv(full, counts, displs, MPI_FLOAT, part, counts[d->rank], MPI_FLOAT, root,
                           d->world));
    free(counts);
}

void dist_allreduce_grads(dist_ctx *d, float *grads, int64_t n) {
    dist_grad_sync g;
    dist_grad_sync_begin(&g, d, grads, n, DIST_BUCKET_FLOATS);
    dist_grad_sync_end(&g);
}

// ---------------------------------------------------------------------------
// Ring shift

void dist_ring_shift(dist_xfer *x, dist_ctx *d, void *recv, const void *send, int64_t count,
                     dist_dtype type, int tag) {
    if (!d->mpi || d->sp == 1) {  // the ring of one: the block comes back to us
        if (recv != send) memcpy(recv, send, (size_t)count * dtype_size(type));
        return;
    }
    CHECK(x->n + 2 <= DIST_XFER_MAX);
    int next = (d->sp_rank + 1) % d->sp, prev = (d->sp_rank + d->sp - 1) % d->sp;
    int n = mpi_count(count, "ring shift");
    MPI_CHECK(MPI_Irecv(recv, n, mpi_type(type), prev, tag, d->sp_comm, &x->req[x->n++]));
    MPI_CHECK(MPI_Isend(send, n, mpi_type(type), next, tag, d->sp_comm, &x->req[x->n++]));
    d->sent_bytes += count * (int64_t)dtype_size(type);
}

void dist_xfer_poll(dist_xfer *x) {
    if (x->n == 0) return;
    int flag = 0;
    MPI_CHECK(MPI_Testall(x->n, x->req, &flag, MPI_STATUSES_IGNORE));
}

void dist_xfer_wait(dist_xfer *x) {
    if (x->n > 0) MPI_CHECK(MPI_Waitall(x->n, x->req, MPI_STATUSES_IGNORE));
    x->n = 0;
}

// ---------------------------------------------------------------------------
// Ulysses all-to-all

void dist_alltoall(dist_ctx *d, void *recv, const void *send, int64_t count, dist_dtype type) {
    if (!d->mpi || d->ulysses == 1) {
        if (recv != send) memcpy(recv, send, (size_t)count * dtype_size(type));
        return;
    }
    int n = mpi_count(count, "all-to-all block");
    mpi_count(count * d->ulysses, "all-to-all");
    MPI_CHECK(MPI_Alltoall(send, n, mpi_type(type), recv, n, mpi_type(type), d->u_comm));
    d->sent_bytes += (int64_t)(d->ulysses - 1) * count * (int64_t)dtype_size(type);
}

void dist_allgather(dist_ctx *d, void *recv, const void *send, int64_t count, dist_dtype type) {
    if (!d->mpi || d->ulysses == 1) {
        if (recv != send) memcpy(recv, send, (size_t)count * dtype_size(type));
        return;
    }
    int n = mpi_count(count, "all-gather block");
    mpi_count(count * d->ulysses, "all-gather");
    MPI_CHECK(MPI_Allgather(send, n, mpi_type(type), recv, n, mpi_type(type), d->u_comm));
    d->sent_bytes += (int64_t)(d->ulysses - 1) * count * (int64_t)dtype_size(type);
}
