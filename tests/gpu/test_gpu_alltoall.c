// The ulysses all-to-all on device buffers (gpu_comm_alltoall) over a
// transport (argv[1]: nccl | mpi | auto, default auto), with all ranks as one
// ulysses group: every (source, destination, element) gets a distinct value,
// and block i of every rank's receive buffer must be exactly what rank i put
// in its block for this rank; the same exchange of host buffers through
// dist_alltoall must give the same bytes; the bytes counted are (U - 1) blocks.
// tests/gpu/gpu_nccl_mpi.sh runs it with 1 rank over nccl and 2 ranks
// over mpi (ranks sharing a GPU). Exit 77 when no GPU is visible.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dist.h"
#include "gpu_comm.h"
#include "gpu_mpi.h"

static float value(int src, int dst, int64_t i) { return (float)(src * 1000003 + dst * 7919) + (float)i * 0.5f; }

int main(int argc, char **argv) {
    dist_ctx d;
    if (!gpu_mpi_begin(&d, &argc, &argv)) return 77;
    char err[256];
    if (dist_init_grid3(&d, 1, 1, d.size, err, sizeof err) != 0) dist_exit_user_error(&d, err);
    int kind = gpu_mpi_transport(argc, argv, 0);
    backend *bk = gpu_mpi_backend(&d, BK_F32);
    gpu_comm *c = gpu_comm_create(bk, &d, kind, err, sizeof err);
    if (!c) dist_exit_user_error(&d, err);

    int64_t failures = 0;
    const int U = d.size;
    const int64_t counts[] = {1, 1000, (1 << 20) + 3};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        const int64_t n = counts[k];
        const size_t bytes = sizeof(float) * (size_t)(n * U);
        float *h = malloc(bytes), *got = malloc(bytes), *want = malloc(bytes);
        for (int j = 0; j < U; j++)
            for (int64_t i = 0; i < n; i++) h[j * n + i] = value(d.rank, j, i);
        float *send = bk->op->alloc(bk, bytes), *recv = bk->op->alloc(bk, bytes);
        bk->op->to_dev(bk, send, h, bytes);
        memset(got, 0xff, bytes);
        bk->op->to_dev(bk, recv, got, bytes);  // poison
        int64_t before = d.sent_bytes;
        gpu_comm_alltoall(c, recv, send, n, DIST_F32);
        int64_t sent = d.sent_bytes - before;
        bk->op->to_host(bk, got, recv, bytes);
        for (int i = 0; i < U; i++)
            for (int64_t e = 0; e < n; e++)
                if (got[i * n + e] != value(i, d.rank, e)) {
                    if (failures++ < 5)
                        printf("rank %d FAIL: count %lld block %d element %lld: %g, want %g\n",
                               d.rank, (long long)n, i, (long long)e, got[i * n + e],
                               value(i, d.rank, e));
                }
        dist_alltoall(&d, want, h, n, DIST_F32);
        if (memcmp(want, got, bytes) != 0 && failures++ < 5)
            printf("rank %d FAIL: count %lld differs from dist_alltoall\n", d.rank, (long long)n);
        if (sent != (int64_t)(U - 1) * n * 4 && failures++ < 5)
            printf("rank %d FAIL: counted %lld bytes, want %lld\n", d.rank, (long long)sent,
                   (long long)((U - 1) * n * 4));
        bk->op->free(bk, send);
        bk->op->free(bk, recv);
        free(h), free(got), free(want);
    }
    gpu_comm_free(c);
    backend_free(bk);
    return gpu_mpi_end(&d, failures);
}
