// emu_nccl: NCCL for the emulated GPU, over MPI between the processes of the
// job (shim/nccl.h; included by emu_gpu.cpp, whose streams it uses).
//
// A communicator is an MPI communicator over its members' world ranks (the
// ncclUniqueId names the process that made it; ncclCommInitRank sends each
// member's world rank there and gets the table back). Every NCCL call is
// queued on its emulated stream like a kernel; a group (or a lone call) is
// one queued operation per stream. Nothing moves at enqueue: when the
// stream scheduler (run_until, at a host sync) reaches the operation, it
// STARTS - snapshots its send buffers and posts them with MPI_Isend, each
// message headed by what the call was (kind, count, type, op, root, its
// sequence number) - and holds its stream until its messages from the peers
// arrived (polled with MPI_Iprobe while the host waits); then it COMPLETES:
// the headers are checked against this rank's call and the results written
// to device memory. Work of other streams runs in between, so a consumer
// not ordered after the operation by an event reads the old bytes.
//
// Operations of one communicator start in the order the host issued them
// (as NCCL launches them), whatever stream they are on. Collectives are
// point-to-point messages here (all-reduce: every rank's buffer to every
// rank), reduced in rank order: the same bits on every rank.
//
// Deadlock-free as long as the ranks run the same program: a rank waits for
// a peer's message only at a host sync whose work needs it, and the peer's
// host reaches the same sync (and starts the matching operation) without
// first blocking in a host MPI call the waiting rank has not reached.
// (On a GPU the peer's device would progress while its host blocks in MPI;
// here a peer's device work runs only when its host waits on it.)
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <atomic>

#include <nccl.h>

namespace {

enum { ID_MAGIC = 0x454d4e43u };  // "EMNC"
struct EmuNcclId {
    uint32_t magic;
    int creator;      // world rank of the process that called ncclGetUniqueId
    uint32_t serial;  // its count of ids made
    uint32_t pid;
};
// MPI tags: point-to-point messages numbered per (peer, direction),
// collectives per communicator, communicator set-up on MPI_COMM_WORLD.
enum { TAG_P2P = 0, TAG_COLL = 16000, TAG_RANGE = 16000, TAG_INIT = 32000, TAG_INIT_RANGE = 700 };

enum Kind { K_SEND, K_RECV, K_ALLREDUCE, K_REDUCE, K_BCAST, K_REDUCESCATTER, K_ALLGATHER };
const char *kind_name(int k)
{
    static const char *n[] = {"ncclSend", "ncclRecv", "ncclAllReduce", "ncclReduce",
                              "ncclBroadcast", "ncclReduceScatter", "ncclAllGather"};
    return k >= 0 && k <= K_ALLGATHER ? n[k] : "?";
}
size_t type_size(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    default: return 8;
    }
}
const char *type_name(int t)
{
    static const char *n[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64",
                              "float16", "float32", "float64", "bfloat16"};
    return t >= 0 && t < ncclNumTypes ? n[t] : "?";
}

struct MsgHdr {
    uint32_t magic;
    int32_t kind, type, op, root, from;
    uint64_t count, seq;
};

int g_group_depth;
bool g_group_atexit;
uint32_t g_id_serial;

// Sends not yet matched by their receiver: the buffer lives until then.
struct OutMsg {
    MPI_Request req;
    std::vector<char> buf;
    ncclComm_t comm;
};
std::deque<OutMsg> g_out;

void test_sends()
{
    for (auto it = g_out.begin(); it != g_out.end();) {
        int done = 0;
        MPI_Test(&it->req, &done, MPI_STATUS_IGNORE);
        it = done ? g_out.erase(it) : it + 1;
    }
}

int world_rank()
{
    int up = 0, r = 0;
    MPI_Initialized(&up);
    if (!up) emu_fail("emulated NCCL runs over MPI: MPI_Init must come before any NCCL call");
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

}  // namespace

struct ncclComm {
    MPI_Comm mpi = MPI_COMM_NULL;
    int rank = 0, nranks = 0;
    std::vector<int> world;  // world rank of each member
    std::atomic<bool> destroyed{false}, aborted{false};
    uint64_t enq = 0, started = 0;       // calls queued (host order) / started
    std::vector<uint64_t> sent, recvd;   // point-to-point messages per peer
    uint64_t coll = 0;                   // collectives started
};

namespace {

std::vector<std::unique_ptr<ncclComm>> g_comms;  // kept: a use after destroy is caught

ncclComm *cof(ncclComm_t c, const char *call)
{
    if (c->destroyed.load()) emu_fail("%s on a communicator after ncclCommDestroy", call);
    if (c->aborted.load()) emu_fail("%s on a communicator after ncclCommAbort", call);
    return c;
}

struct Call {
    Kind kind;
    const void *send;
    void *recv;
    size_t count;  // send/recv/allreduce/reduce/bcast: count; reduce-scatter: recvcount; all-gather: sendcount
    ncclDataType_t type;
    ncclRedOp_t op;
    int peer;  // send/recv: the peer; reduce/bcast: the root
    ncclComm_t comm;
    cudaStream_t st;
};
std::vector<Call> g_group;

// acc[i] = acc[i] op x[i], in the type's arithmetic (bf16: in float, rounded).
template <typename T> void red(T *acc, const T *x, size_t n, ncclRedOp_t op)
{
    for (size_t i = 0; i < n; i++) switch (op) {
        case ncclSum: case ncclAvg: acc[i] = (T)(acc[i] + x[i]); break;
        case ncclProd: acc[i] = (T)(acc[i] * x[i]); break;
        case ncclMax: acc[i] = x[i] > acc[i] ? x[i] : acc[i]; break;
        default: acc[i] = x[i] < acc[i] ? x[i] : acc[i]; break;
        }
}
void reduce_into(void *acc, const void *x, size_t n, ncclDataType_t t, ncclRedOp_t op)
{
    switch (t) {
    case ncclInt8: red((int8_t *)acc, (const int8_t *)x, n, op); break;
    case ncclUint8: red((uint8_t *)acc, (const uint8_t *)x, n, op); break;
    case ncclInt32: red((int32_t *)acc, (const int32_t *)x, n, op); break;
    case ncclUint32: red((uint32_t *)acc, (const uint32_t *)x, n, op); break;
    case ncclInt64: red((int64_t *)acc, (const int64_t *)x, n, op); break;
    case ncclUint64: red((uint64_t *)acc, (const uint64_t *)x, n, op); break;
    case ncclFloat32: red((float *)acc, (const float *)x, n, op); break;
    case ncclFloat64: red((double *)acc, (const double *)x, n, op); break;
    case ncclBfloat16: {
        uint16_t *a = (uint16_t *)acc;
        const uint16_t *b = (const uint16_t *)x;
        for (size_t i = 0; i < n; i++) {
            float fa = bf2f(a[i]), fb = bf2f(b[i]);
            red(&fa, &fb, 1, op);
            a[i] = f2bf(fa);
        }
        break;
    }
    default: emu_fail("emulated NCCL: reductions of %s are not emulated", type_name(t));
    }
}
void average(void *acc, size_t n, ncclDataType_t t, int nranks)
{
    switch (t) {
    case ncclFloat32: for (size_t i = 0; i < n; i++) ((float *)acc)[i] /= (float)nranks; break;
    case ncclFloat64: for (size_t i = 0; i < n; i++) ((double *)acc)[i] /= nranks; break;
    case ncclBfloat16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)acc)[i] = f2bf(bf2f(((uint16_t *)acc)[i]) / (float)nranks);
        break;
    case ncclInt32: for (size_t i = 0; i < n; i++) ((int32_t *)acc)[i] /= nranks; break;
    case ncclInt64: for (size_t i = 0; i < n; i++) ((int64_t *)acc)[i] /= nranks; break;
    default: emu_fail("emulated NCCL: ncclAvg of %s is not emulated", type_name(t));
    }
}

// One queued group (or lone call) of one stream.
struct NcclOp : EmuAsyncOp {
    std::vector<Call> calls;
    std::vector<std::pair<ncclComm *, uint64_t>> first;  // per communicator: its first call's number
    struct In {
        const Call *call;
        int src, tag;
        MsgHdr want;
        std::vector<char> data;
        bool got = false;
    };
    std::vector<In> in;                    // messages to receive
    std::vector<std::vector<char>> own;    // per call: this rank's contribution, as at the start
    std::vector<uint64_t> coll_seq;        // per call: its collective number

    bool start_ok() override
    {
        for (auto &f : first)
            if (f.first->started != f.second) return false;
        return true;
    }
    void post(const Call &c, int to, int tag, MsgHdr h, const char *data, size_t bytes)
    {
        if (bytes > (size_t)INT_MAX - sizeof h) emu_fail("emulated NCCL: a message over 2 GiB");
        OutMsg m;
        m.buf.resize(sizeof h + bytes);
        memcpy(m.buf.data(), &h, sizeof h);
        if (bytes) memcpy(m.buf.data() + sizeof h, data, bytes);
        m.comm = c.comm;
        g_out.push_back(std::move(m));
        OutMsg &o = g_out.back();
        MPI_Isend(o.buf.data(), (int)o.buf.size(), MPI_BYTE, to, tag, c.comm->mpi, &o.req);
    }
    void expect(const Call &c, int from, int tag, MsgHdr h) { in.push_back(In{&c, from, tag, h, {}, false}); }
    void start() override
    {
        for (auto &f : first)
            for (auto &c : calls)
                if (c.comm == f.first) f.first->started++;
        own.resize(calls.size());
        coll_seq.resize(calls.size());
        for (size_t i = 0; i < calls.size(); i++) {
            const Call &c = calls[i];
            ncclComm *m = c.comm;
            const size_t es = type_size(c.type), bytes = c.count * es;
            MsgHdr h = {ID_MAGIC, c.kind, c.type, c.op, c.peer, m->rank, c.count, 0};
            if (c.kind == K_SEND) {
                h.seq = m->sent[(size_t)c.peer]++;
                post(c, c.peer, TAG_P2P + (int)(h.seq % TAG_RANGE), h, (const char *)c.send, bytes);
                continue;
            }
            if (c.kind == K_RECV) {
                h = {ID_MAGIC, K_SEND, c.type, c.op, c.peer, c.peer, c.count, m->recvd[(size_t)c.peer]++};
                expect(c, c.peer, TAG_P2P + (int)(h.seq % TAG_RANGE), h);
                continue;
            }
            h.seq = coll_seq[i] = m->coll++;
            const int tag = TAG_COLL + (int)(h.seq % TAG_RANGE);
            const int me = m->rank, n = m->nranks, root = c.peer;
            switch (c.kind) {
            case K_ALLREDUCE:
            case K_ALLGATHER:
                own[i].assign((const char *)c.send, (const char *)c.send + bytes);
                for (int r = 0; r < n; r++)
                    if (r != me) post(c, r, tag, h, own[i].data(), bytes), expect(c, r, tag, h);
                break;
            case K_REDUCE:
                own[i].assign((const char *)c.send, (const char *)c.send + bytes);
                if (me != root) post(c, root, tag, h, own[i].data(), bytes);
                else
                    for (int r = 0; r < n; r++)
                        if (r != me) expect(c, r, tag, h);
                break;
            case K_BCAST:
                if (me == root) {
                    own[i].assign((const char *)c.send, (const char *)c.send + bytes);
                    for (int r = 0; r < n; r++)
                        if (r != me) post(c, r, tag, h, own[i].data(), bytes);
                } else {
                    expect(c, root, tag, h);
                }
                break;
            case K_REDUCESCATTER:
                own[i].assign((const char *)c.send, (const char *)c.send + bytes * (size_t)n);
                for (int r = 0; r < n; r++)
                    if (r != me) post(c, r, tag, h, own[i].data() + bytes * (size_t)r, bytes), expect(c, r, tag, h);
                break;
            default: break;
            }
        }
        for (auto &x : in)  // the "from" field names the sender
            x.want.from = x.src;
    }
    void check(const In &x, const MsgHdr &got, size_t payload)
    {
        const Call &c = *x.call;
        const MsgHdr &w = x.want;
        const bool p2p = c.kind == K_RECV;
        bool ok = got.magic == w.magic && got.kind == w.kind && got.type == w.type &&
                  got.count == w.count && got.seq == w.seq && got.from == w.from &&
                  payload == got.count * type_size((ncclDataType_t)got.type);
        if (!p2p && (c.kind == K_ALLREDUCE || c.kind == K_REDUCE || c.kind == K_REDUCESCATTER))
            ok = ok && got.op == w.op;
        if (!p2p && (c.kind == K_REDUCE || c.kind == K_BCAST)) ok = ok && got.root == w.root;
        if (ok) return;
        if (p2p)
            emu_fail("rank %d: %s of %llu x %s from rank %d (its message %llu), but rank %d sent "
                     "%s of %llu x %s (message %llu)",
                     c.comm->rank, kind_name(c.kind), (unsigned long long)c.count, type_name(c.type),
                     x.src, (unsigned long long)w.seq, x.src, kind_name(got.kind),
                     (unsigned long long)got.count, type_name(got.type), (unsigned long long)got.seq);
        emu_fail("rank %d: collective %llu is %s of %llu x %s (op %d, root %d) here, but rank %d "
                 "called %s of %llu x %s (op %d, root %d) as its collective %llu",
                 c.comm->rank, (unsigned long long)w.seq, kind_name(c.kind),
                 (unsigned long long)c.count, type_name(c.type), c.op, c.peer, x.src,
                 kind_name(got.kind), (unsigned long long)got.count, type_name(got.type), got.op,
                 got.root, (unsigned long long)got.seq);
    }
    bool poll() override
    {
        test_sends();
        bool all = true;
        for (auto &x : in) {
            if (x.got) continue;
            int flag = 0;
            MPI_Status s;
            MPI_Iprobe(x.src, x.tag, x.call->comm->mpi, &flag, &s);
            if (!flag) {
                all = false;
                continue;
            }
            int bytes = 0;
            MPI_Get_count(&s, MPI_BYTE, &bytes);
            std::vector<char> buf((size_t)bytes);
            MPI_Recv(buf.data(), bytes, MPI_BYTE, x.src, x.tag, x.call->comm->mpi, MPI_STATUS_IGNORE);
            MsgHdr h;
            if ((size_t)bytes < sizeof h) emu_fail("emulated NCCL: a short message");
            memcpy(&h, buf.data(), sizeof h);
            check(x, h, (size_t)bytes - sizeof h);
            x.data.assign(buf.begin() + sizeof h, buf.end());
            x.got = true;
        }
        if (!all) return false;
        finish();
        return true;
    }
    const std::vector<char> *from(const Call &c, int r)
    {
        for (auto &x : in)
            if (x.call == &c && x.src == r) return &x.data;
        return nullptr;
    }
    // All messages are in: the results land in device memory.
    void finish()
    {
        for (size_t i = 0; i < calls.size(); i++) {
            const Call &c = calls[i];
            const int me = c.comm->rank, n = c.comm->nranks;
            const size_t bytes = c.count * type_size(c.type);
            auto part = [&](int r) -> const char * {  // rank r's contribution
                if (r == me) return c.kind == K_REDUCESCATTER ? own[i].data() + bytes * (size_t)me : own[i].data();
                return from(c, r)->data();
            };
            auto reduce_all = [&](void *out) {  // in rank order, from rank 0's bytes
                std::vector<char> acc(part(0), part(0) + bytes);
                for (int r = 1; r < n; r++) reduce_into(acc.data(), part(r), c.count, c.type, c.op);
                if (c.op == ncclAvg) average(acc.data(), c.count, c.type, n);
                if (bytes) memcpy(out, acc.data(), bytes);
            };
            switch (c.kind) {
            case K_RECV:
                if (bytes) memcpy(c.recv, from(c, c.peer)->data(), bytes);
                break;
            case K_ALLREDUCE:
            case K_REDUCESCATTER:
                reduce_all(c.recv);
                break;
            case K_REDUCE:
                if (me == c.peer) reduce_all(c.recv);
                break;
            case K_BCAST:
                if (bytes) memmove(c.recv, me == c.peer ? own[i].data() : from(c, c.peer)->data(), bytes);
                break;
            case K_ALLGATHER:
                for (int r = 0; r < n; r++)
                    if (bytes) memmove((char *)c.recv + bytes * (size_t)r, part(r), bytes);
                break;
            default: break;
            }
        }
    }
    bool writes(const void *p, size_t n) override
    {
        const char *a = (const char *)p;
        for (auto &c : calls) {
            const int me = c.comm->rank;
            size_t bytes = c.count * type_size(c.type);
            if (c.kind == K_ALLGATHER) bytes *= (size_t)c.comm->nranks;
            bool written = c.kind != K_SEND && (c.kind != K_REDUCE || me == c.peer);
            const char *r = (const char *)c.recv;
            if (written && bytes && a < r + bytes && r < a + n) return true;
        }
        return false;
    }
    std::string waiting_for() override
    {
        std::string s;
        for (auto &x : in)
            if (!x.got) {
                char b[200];
                snprintf(b, sizeof b, "rank %d: %s (%s %llu) waits for a message from rank %d; ",
                         x.call->comm->rank, kind_name(x.call->kind),
                         x.call->kind == K_RECV ? "message" : "collective",
                         (unsigned long long)x.want.seq, x.src);
                s += b;
            }
        return s;
    }
};

// Queues calls: one operation per stream (in the order of each stream's first call).
void launch(std::vector<Call> &calls)
{
    std::vector<cudaStream_t> order;
    for (auto &c : calls)
        if (std::find(order.begin(), order.end(), c.st) == order.end()) order.push_back(c.st);
    for (cudaStream_t st : order) {
        auto op = std::make_shared<NcclOp>();
        for (auto &c : calls)
            if (c.st == st) op->calls.push_back(c);
        for (auto &c : op->calls) {
            auto f = std::find_if(op->first.begin(), op->first.end(),
                                  [&](const std::pair<ncclComm *, uint64_t> &p) { return p.first == c.comm; });
            if (f == op->first.end()) op->first.push_back({c.comm, c.comm->enq});
            c.comm->enq++;
        }
        enqueue(st, [] {}, op);
    }
    calls.clear();
}

bool overlaps(const void *a, size_t na, const void *b, size_t nb)
{
    return (const char *)a < (const char *)b + nb && (const char *)b < (const char *)a + na;
}

// Checks a call's arguments as NCCL does (bad values return its error;
// buffers outside device memory or overlapping other than in place: EMU
// FAIL), then queues it, or keeps it for ncclGroupEnd.
ncclResult_t issue(Call c)
{
    const char *name = kind_name(c.kind);
    if (!c.comm) return ncclInvalidArgument;
    ncclComm *m = cof(c.comm, name);
    sof(c.st);
    if ((int)c.type < 0 || (int)c.type >= ncclNumTypes) return ncclInvalidArgument;
    if ((int)c.op < 0 || (int)c.op >= ncclNumOps) return ncclInvalidArgument;
    const bool rooted = c.kind == K_REDUCE || c.kind == K_BCAST;
    if ((c.kind == K_SEND || c.kind == K_RECV || rooted) && (c.peer < 0 || c.peer >= m->nranks))
        return ncclInvalidArgument;
    const size_t n = (size_t)m->nranks, es = type_size(c.type), bytes = c.count * es;
    size_t send_bytes = bytes, recv_bytes = bytes;
    bool need_send = c.kind != K_RECV, need_recv = c.kind != K_SEND;
    if (c.kind == K_REDUCESCATTER) send_bytes = bytes * n;
    if (c.kind == K_ALLGATHER) recv_bytes = bytes * n;
    if (c.kind == K_REDUCE) need_recv = m->rank == c.peer;
    if (c.kind == K_BCAST) need_send = m->rank == c.peer;
    if (c.count > 0) {
        if ((need_send && !c.send) || (need_recv && !c.recv)) return ncclInvalidArgument;
        if (need_send && !is_dev(c.send, send_bytes))
            emu_fail("%s: the send buffer (%zu bytes) is not inside one device allocation", name, send_bytes);
        if (need_recv && !is_dev(c.recv, recv_bytes))
            emu_fail("%s: the receive buffer (%zu bytes) is not inside one device allocation", name, recv_bytes);
        if (need_send && need_recv && overlaps(c.send, send_bytes, c.recv, recv_bytes)) {
            // NCCL's in-place forms (docs, "In-place operations").
            const char *in_place = (const char *)c.recv;
            if (c.kind == K_REDUCESCATTER) in_place = (const char *)c.send + bytes * (size_t)m->rank;
            if (c.kind == K_ALLGATHER) in_place = (const char *)c.recv + bytes * (size_t)m->rank;
            bool ok = c.kind == K_REDUCESCATTER ? c.recv == in_place
                      : c.kind == K_ALLGATHER   ? c.send == in_place
                                                : c.send == c.recv;
            if (!ok) emu_fail("%s: send and receive buffers overlap, not in NCCL's in-place form", name);
        }
    }
    g_group.push_back(c);
    if (g_group_depth == 0) launch(g_group);
    return ncclSuccess;
}

void check_group_closed_at_exit()
{
    if (g_group_depth > 0) {
        fprintf(stderr, "EMU FAIL: exit with %d ncclGroupStart not closed by ncclGroupEnd\n", g_group_depth);
        fflush(stderr);
        _exit(134);
    }
}

}  // namespace

static void emu_nccl_check_no_open_group()
{
    if (g_group_depth > 0)
        emu_fail("the host waits for the device inside ncclGroupStart / ncclGroupEnd (the group's "
                 "calls are launched only at ncclGroupEnd)");
}

extern "C" {

ncclResult_t ncclGetVersion(int *version)
{
    if (!version) return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}
const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}
ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    if (!id) return ncclInvalidArgument;
    memset(id, 0, sizeof *id);
    EmuNcclId e = {ID_MAGIC, world_rank(), g_id_serial++, (uint32_t)getpid()};
    memcpy(id->internal, &e, sizeof e);
    return ncclSuccess;
}
// Collective over the members (blocking, as NCCL's). The process that made
// the id must be a member: it collects the members' world ranks.
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank)
{
    if (!comm || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    if (g_group_depth > 0) emu_fail("ncclCommInitRank inside a group is not emulated");
    EmuNcclId id;
    memcpy(&id, commId.internal, sizeof id);
    if (id.magic != ID_MAGIC) return ncclInvalidArgument;
    const int me = world_rank(), tag = TAG_INIT + (int)(id.serial % TAG_INIT_RANGE);
    int wsize = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    if (nranks > wsize) emu_fail("ncclCommInitRank: %d ranks, but the MPI job has %d processes", nranks, wsize);
    struct Join {
        EmuNcclId id;
        int nranks, rank, world;
    } j = {id, nranks, rank, me};
    std::vector<int> world((size_t)nranks, -1);
    if (me == id.creator) {
        world[(size_t)rank] = me;
        for (int i = 1; i < nranks; i++) {
            Join o;
            MPI_Recv(&o, sizeof o, MPI_BYTE, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (memcmp(&o.id, &id, sizeof id) || o.nranks != nranks || o.rank < 0 || o.rank >= nranks ||
                world[(size_t)o.rank] != -1)
                emu_fail("ncclCommInitRank: world rank %d joins as rank %d of %d, but this "
                         "communicator has %d ranks%s",
                         o.world, o.rank, o.nranks, nranks,
                         o.rank >= 0 && o.rank < nranks && world[(size_t)o.rank] != -1 ? " and that rank joined already" : "");
            world[(size_t)o.rank] = o.world;
        }
        for (int r = 0; r < nranks; r++)
            if (r != rank) MPI_Send(world.data(), nranks, MPI_INT, world[(size_t)r], tag, MPI_COMM_WORLD);
    } else {
        MPI_Send(&j, sizeof j, MPI_BYTE, id.creator, tag, MPI_COMM_WORLD);
        MPI_Recv(world.data(), nranks, MPI_INT, id.creator, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    auto c = std::make_unique<ncclComm>();
    MPI_Group wg, g;
    MPI_Comm_group(MPI_COMM_WORLD, &wg);
    MPI_Group_incl(wg, nranks, world.data(), &g);
    MPI_Comm_create_group(MPI_COMM_WORLD, g, tag, &c->mpi);
    MPI_Group_free(&g);
    MPI_Group_free(&wg);
    c->rank = rank;
    c->nranks = nranks;
    c->world = world;
    c->sent.assign((size_t)nranks, 0);
    c->recvd.assign((size_t)nranks, 0);
    *comm = c.get();
    g_comms.push_back(std::move(c));
    return ncclSuccess;
}
// Queued operations still complete (they hold the communicator); the
// handle is dead at once. Waits until the peers took this rank's messages.
ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    if (!comm) return ncclSuccess;
    cof(comm, "ncclCommDestroy");
    if (g_group_depth > 0) emu_fail("ncclCommDestroy inside ncclGroupStart / ncclGroupEnd");
    comm->destroyed = true;
    const double t0 = emu_now();
    for (;;) {
        test_sends();
        bool left = false;
        for (auto &o : g_out) left |= o.comm == comm;
        if (!left) break;
        if (emu_now() - t0 > emu_wait_limit_s())
            emu_fail("ncclCommDestroy: rank %d's messages were never received by its peers", comm->rank);
        usleep(100);
    }
    return ncclSuccess;
}
// May be called from another thread (the watchdog): it only marks the
// communicator; any later use fails.
ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    if (comm) comm->aborted = true;
    return ncclSuccess;
}
// EMU_NCCL_ASYNC_ERROR (a result code) fakes a failure the enqueue calls
// have not seen, as ncclCommGetAsyncError reports it. Thread safe.
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError)
{
    if (!comm || !asyncError) return ncclInvalidArgument;
    if (comm->destroyed.load()) emu_fail("ncclCommGetAsyncError on a communicator after ncclCommDestroy");
    const char *e = getenv("EMU_NCCL_ASYNC_ERROR");
    *asyncError = e ? (ncclResult_t)atoi(e) : ncclSuccess;
    return ncclSuccess;
}
ncclResult_t ncclCommCount(const ncclComm_t comm, int *count)
{
    if (!comm || !count) return ncclInvalidArgument;
    *count = cof(comm, "ncclCommCount")->nranks;
    return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank)
{
    if (!comm || !rank) return ncclInvalidArgument;
    *rank = cof(comm, "ncclCommUserRank")->rank;
    return ncclSuccess;
}
ncclResult_t ncclGroupStart(void)
{
    if (!g_group_atexit) atexit(check_group_closed_at_exit), g_group_atexit = true;
    g_group_depth++;
    return ncclSuccess;
}
ncclResult_t ncclGroupEnd(void)
{
    if (g_group_depth == 0) emu_fail("ncclGroupEnd without ncclGroupStart");
    if (--g_group_depth == 0) launch(g_group);
    return ncclSuccess;
}
ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream)
{
    return issue(Call{K_SEND, sendbuff, nullptr, count, datatype, ncclSum, peer, comm, stream});
}
ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream)
{
    return issue(Call{K_RECV, nullptr, recvbuff, count, datatype, ncclSum, peer, comm, stream});
}
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
{
    return issue(Call{K_ALLREDUCE, sendbuff, recvbuff, count, datatype, op, -1, comm, stream});
}
ncclResult_t ncclReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                        ncclRedOp_t op, int root, ncclComm_t comm, cudaStream_t stream)
{
    return issue(Call{K_REDUCE, sendbuff, recvbuff, count, datatype, op, root, comm, stream});
}
ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                           int root, ncclComm_t comm, cudaStream_t stream)
{
    return issue(Call{K_BCAST, sendbuff, recvbuff, count, datatype, ncclSum, root, comm, stream});
}
ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream)
{
    return issue(Call{K_REDUCESCATTER, sendbuff, recvbuff, recvcount, datatype, op, -1, comm, stream});
}
ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream)
{
    return issue(Call{K_ALLGATHER, sendbuff, recvbuff, sendcount, datatype, ncclSum, -1, comm, stream});
}

}  // extern "C"
