// test_emu_nccl: the NCCL shim itself (emu_nccl.cpp), 2 MPI ranks, each with
// its emulated GPU. argv[1]:
//   ok        every call against values computed here on the host, exactly:
//             send/recv in a group (both directions at once), all-reduce
//             (sum, max; fp32 and bf16), reduce to each root, broadcast,
//             reduce-scatter and all-gather (out of place and in place),
//             on a stream ordered after the compute stream by an event;
//             a communicator over rank 1 alone (id made by rank 1).
//   nowait    the same send/recv, but the result is read on the compute
//             stream without waiting for the comm stream: the emulator
//             must show the stale bytes (exit 3 if it does not).
//   anything else: a misuse real NCCL rejects or that hangs on a GPU; the
//             shim must stop with "EMU FAIL:" (test_emu_nccl.sh checks the
//             message): count, type, group_end, group_open, host_buffer,
//             destroyed, order, overlap.
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#define CK(x)                                                                  \
    do {                                                                       \
        int r_ = (int)(x);                                                     \
        if (r_) {                                                              \
            printf("rank %d: %s returned %d\n", rank, #x, r_);                 \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static int rank, failures;

static void expect_eq(const char *what, const float *got, const float *want, int n) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) {
            printf("rank %d FAIL: %s[%d] = %g, want %g\n", rank, what, i, got[i], want[i]);
            failures++;
            return;
        }
}

static float val(int r, int i) { return (float)(r * 1000 + i) * 0.25f; }

static ncclComm_t make_comm(int n, int my, int creator, MPI_Comm over) {
    ncclUniqueId id;
    int me;
    MPI_Comm_rank(over, &me);
    if (me == creator) CK(ncclGetUniqueId(&id));
    MPI_Bcast(&id, sizeof id, MPI_BYTE, creator, over);
    ncclComm_t c;
    CK(ncclCommInitRank(&c, n, id, my));
    return c;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *mode = argc > 1 ? argv[1] : "ok";
    if (size != 2) {
        if (rank == 0) printf("needs 2 ranks\n");
        MPI_Finalize();
        return 1;
    }
    const int peer = 1 - rank, N = 1000;
    CK(cudaSetDevice(rank));
    ncclComm_t comm = make_comm(2, rank, 0, MPI_COMM_WORLD);
    cudaStream_t compute, st;
    cudaEvent_t ev;
    CK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    float *d_a, *d_b, *d_big, h[4 * 1000], want[4 * 1000], got[4 * 1000];
    CK(cudaMalloc((void **)&d_a, sizeof(float) * N));
    CK(cudaMalloc((void **)&d_b, sizeof(float) * N));
    CK(cudaMalloc((void **)&d_big, sizeof(float) * 2 * N));
    for (int i = 0; i < N; i++) h[i] = val(rank, i);
    // The data comes from the compute stream; the comm stream waits for it.
    CK(cudaMemcpyAsync(d_a, h, sizeof(float) * N, cudaMemcpyHostToDevice, compute));
    CK(cudaMemsetAsync(d_b, 0xff, sizeof(float) * N, compute));
    CK(cudaEventRecord(ev, compute));
    CK(cudaStreamWaitEvent(st, ev, 0));

    if (!strcmp(mode, "ok") || !strcmp(mode, "nowait")) {
        CK(ncclGroupStart());
        CK(ncclSend(d_a, N, ncclFloat32, peer, comm, st));
        CK(ncclRecv(d_b, N, ncclFloat32, peer, comm, st));
        CK(ncclGroupEnd());
        if (!strcmp(mode, "ok")) {
            CK(cudaEventRecord(ev, st));
            CK(cudaStreamWaitEvent(compute, ev, 0));
        }
        CK(cudaMemcpyAsync(got, d_b, sizeof(float) * N, cudaMemcpyDeviceToHost, compute));
        CK(cudaStreamSynchronize(compute));
        for (int i = 0; i < N; i++) want[i] = val(peer, i);
        if (!strcmp(mode, "nowait")) {
            int stale = memcmp(got, want, sizeof(float) * N) != 0;
            printf("rank %d: read without waiting: %s\n", rank, stale ? "stale bytes (as it must)" : "the received bytes");
            CK(cudaStreamSynchronize(st));
            MPI_Barrier(MPI_COMM_WORLD);
            MPI_Finalize();
            return stale ? 0 : 3;
        }
        expect_eq("send/recv", got, want, N);

        // All-reduce: sum out of place, max in place; bf16 sum.
        CK(ncclAllReduce(d_a, d_b, N, ncclFloat32, ncclSum, comm, st));
        CK(cudaMemcpyAsync(got, d_b, sizeof(float) * N, cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
        for (int i = 0; i < N; i++) want[i] = val(0, i) + val(1, i);
        expect_eq("all-reduce sum", got, want, N);
        CK(ncclAllReduce(d_a, d_a, N, ncclFloat32, ncclMax, comm, st));
        CK(cudaMemcpyAsync(got, d_a, sizeof(float) * N, cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
        for (int i = 0; i < N; i++) want[i] = val(1, i);
        expect_eq("all-reduce max in place", got, want, N);
        uint16_t hb[4] = {0x3f80, 0x4000, 0x3f81, 0xbf80}, gb[4];  // 1, 2, 1.0078125, -1
        CK(cudaMemcpy(d_a, hb, sizeof hb, cudaMemcpyHostToDevice));
        CK(ncclAllReduce(d_a, d_a, 4, ncclBfloat16, ncclSum, comm, st));
        CK(cudaMemcpyAsync(gb, d_a, sizeof gb, cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
        const uint16_t wb[4] = {0x4000, 0x4080, 0x4001, 0xc000};  // 2, 4, 2.015625, -2
        if (memcmp(gb, wb, sizeof gb)) printf("rank %d FAIL: bf16 all-reduce\n", rank), failures++;

        // Reduce to each root, then broadcast from each root (in place).
        for (int root = 0; root < 2; root++) {
            for (int i = 0; i < N; i++) h[i] = val(rank + 2 * root, i);
            CK(cudaMemcpy(d_a, h, sizeof(float) * N, cudaMemcpyHostToDevice));
            CK(cudaMemset(d_b, 0, sizeof(float) * N));
            CK(ncclReduce(d_a, d_b, N, ncclFloat32, ncclSum, root, comm, st));
            CK(cudaMemcpyAsync(got, d_b, sizeof(float) * N, cudaMemcpyDeviceToHost, st));
            CK(cudaStreamSynchronize(st));
            for (int i = 0; i < N; i++) want[i] = rank == root ? val(2 * root, i) + val(1 + 2 * root, i) : 0.0f;
            expect_eq("reduce", got, want, N);
            CK(ncclBroadcast(d_a, d_a, N, ncclFloat32, root, comm, st));
            CK(cudaMemcpyAsync(got, d_a, sizeof(float) * N, cudaMemcpyDeviceToHost, st));
            CK(cudaStreamSynchronize(st));
            for (int i = 0; i < N; i++) want[i] = val(root + 2 * root, i);
            expect_eq("broadcast", got, want, N);
        }
        // Reduce-scatter (2 N -> N, out of place) and all-gather in place.
        for (int i = 0; i < 2 * N; i++) h[i] = val(rank, i);
        CK(cudaMemcpy(d_big, h, sizeof(float) * 2 * N, cudaMemcpyHostToDevice));
        CK(ncclReduceScatter(d_big, d_b, N, ncclFloat32, ncclSum, comm, st));
        CK(cudaMemcpyAsync(got, d_b, sizeof(float) * N, cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
        for (int i = 0; i < N; i++) want[i] = val(0, rank * N + i) + val(1, rank * N + i);
        expect_eq("reduce-scatter", got, want, N);
        CK(ncclAllGather(d_big + rank * N, d_big, N, ncclFloat32, comm, st));
        CK(cudaMemcpyAsync(got, d_big, sizeof(float) * 2 * N, cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < N; i++) want[r * N + i] = val(r, r * N + i);
        expect_eq("all-gather in place", got, want, 2 * N);

        // A communicator of rank 1 alone, its id made by rank 1.
        MPI_Comm solo;
        MPI_Comm_split(MPI_COMM_WORLD, rank, 0, &solo);
        if (rank == 1) {
            ncclComm_t one = make_comm(1, 0, 0, solo);
            int n = 0, me = -1;
            CK(ncclCommCount(one, &n));
            CK(ncclCommUserRank(one, &me));
            CK(ncclAllReduce(d_a, d_b, N, ncclFloat32, ncclSum, one, st));
            CK(cudaMemcpyAsync(got, d_b, sizeof(float) * N, cudaMemcpyDeviceToHost, st));
            CK(cudaStreamSynchronize(st));
            CK(cudaMemcpy(want, d_a, sizeof(float) * N, cudaMemcpyDeviceToHost));
            expect_eq("all-reduce over one rank", got, want, N);
            if (n != 1 || me != 0) printf("rank 1 FAIL: count %d rank %d\n", n, me), failures++;
            CK(ncclCommDestroy(one));
        }
        MPI_Comm_free(&solo);
    } else if (!strcmp(mode, "count") || !strcmp(mode, "type")) {
        // Rank 1 expects 12 floats (count) or int32 (type) where rank 0 sends 10 floats.
        if (rank == 0) CK(ncclSend(d_a, 10, ncclFloat32, 1, comm, st));
        else CK(ncclRecv(d_b, !strcmp(mode, "count") ? 12 : 10, !strcmp(mode, "type") ? ncclInt32 : ncclFloat32, 0, comm, st));
    } else if (!strcmp(mode, "order")) {
        // Collectives in another order on each rank.
        if (rank == 0) CK(ncclAllReduce(d_a, d_a, N, ncclFloat32, ncclSum, comm, st));
        CK(ncclBroadcast(d_a, d_a, N, ncclFloat32, 0, comm, st));
        if (rank == 1) CK(ncclAllReduce(d_a, d_a, N, ncclFloat32, ncclSum, comm, st));
    } else if (!strcmp(mode, "group_end")) {
        CK(ncclGroupEnd());
    } else if (!strcmp(mode, "group_open")) {
        CK(ncclGroupStart());
        CK(ncclSend(d_a, N, ncclFloat32, peer, comm, st));
        CK(ncclRecv(d_b, N, ncclFloat32, peer, comm, st));
    } else if (!strcmp(mode, "host_buffer")) {
        CK(ncclAllReduce(h, d_b, N, ncclFloat32, ncclSum, comm, st));
    } else if (!strcmp(mode, "overlap")) {
        CK(ncclAllReduce(d_big, d_big + 1, N, ncclFloat32, ncclSum, comm, st));
    } else if (!strcmp(mode, "destroyed")) {
        CK(cudaStreamSynchronize(st));
        CK(ncclCommDestroy(comm));
        CK(ncclAllReduce(d_a, d_a, N, ncclFloat32, ncclSum, comm, st));
    } else {
        printf("unknown mode %s\n", mode);
        return 1;
    }
    CK(cudaStreamSynchronize(st));  // the misuses that show only when the work runs
    CK(cudaDeviceSynchronize());
    if (strcmp(mode, "ok")) {  // the rank that catches it aborts the job meanwhile
        MPI_Barrier(MPI_COMM_WORLD);
        printf("rank %d: mode %s was not caught\n", rank, mode);
        return 3;
    }
    CK(ncclCommDestroy(comm));
    int f = failures;
    MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf(f ? "%d failure(s)\n" : "all passed\n", f);
    MPI_Finalize();
    return f ? 1 : 0;
}
