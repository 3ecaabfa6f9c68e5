// emu_gpu: an emulated GPU for the host code of the CUDA path. The real
// kernels/cuda/*.cu (prepared by prep.sh) run on the SIMT emulator emu.cpp;
// the CUDA runtime, cuBLAS and CUB calls stretch makes are shims declared in
// shim/*.h. Model: one H100 SXM (132 SMs, 80 GiB, 227 KiB smem opt-in).
//
// Streams: nothing runs at enqueue. Every stream is a FIFO of operations;
// work runs only when the host must wait (stream/event/device sync, a
// synchronous copy, cudaFree), and then ready operations of ALL streams run
// in a seeded random order that respects FIFO order per stream, events and
// the legacy default stream's barriers (EMU_STREAM_SEED). So a missing
// event, wait or sync reads stale or future data and gives a wrong result.
// Stricter than CUDA: pageable host memory is treated like pinned memory
// (copies from/to it are asynchronous too). Misuse the real API rejects
// returns its error; misuse it tolerates silently but that is always a bug
// (waiting on a never-recorded event, using a destroyed stream) aborts with
// "EMU FAIL".
#include <stdarg.h>
#include <time.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "emu.cpp"

#undef CU_CHECK
#undef cudaFuncSetAttribute
#undef cudaFuncAttributeMaxDynamicSharedMemorySize
#undef __shared__
#define __shared__ static  // static __shared__ arrays: one per block (blocks run one at a time)
#define __grid_constant__

extern "C" {
#include "die.h"
}
#include <cub/device/device_radix_sort.cuh>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cu_attn.h"
#include "cu_attn_f32.h"
#include "cu_ops.h"

// ---------------------------------------------------------------- device model
enum { EMU_SMS = 132, EMU_SMEM_DEFAULT = 49152 };
// Opt-in shared memory per block: 232448 (sm_90); EMU_SMEM_OPTIN fakes
// another GPU (101376: sm_86 / sm_89), enforced at every launch.
static int smem_optin()
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("EMU_SMEM_OPTIN");
        v = e ? atoi(e) : 232448;
    }
    return v;
}
static const size_t EMU_TOTAL_BYTES = (size_t)80 << 30;

static void emu_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "EMU FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

// ---------------------------------------------------------------- streams
// An operation that completes later than it starts (an emulated NCCL
// kernel: it posts its messages when it starts and completes when the
// peers' messages arrived). It starts only when start_ok() (its turn on its
// communicator) and holds its stream until poll() returns true.
struct EmuAsyncOp {
    virtual ~EmuAsyncOp() {}
    virtual bool start_ok() = 0;
    virtual void start() = 0;
    virtual bool poll() = 0;
    virtual std::string waiting_for() = 0;  // for the timeout's message
    // Whether it writes device bytes [p, p + n) of this rank when it completes.
    virtual bool writes(const void *p, size_t n) = 0;
};
struct CUstream_st {
    std::deque<std::function<void()>> q;
    std::deque<std::vector<std::pair<CUstream_st *, uint64_t>>> deps;  // per queued op
    std::deque<std::shared_ptr<EmuAsyncOp>> async;                      // per queued op (or null)
    std::deque<bool> copy;                                              // per queued op: a memcpy
    std::shared_ptr<EmuAsyncOp> inflight;                                // started, not complete
    uint64_t enq = 0, done = 0;
    bool blocking = true, destroyed = false;
};
struct CUevent_st {
    CUstream_st *s = nullptr;
    uint64_t seq = 0;
    bool recorded = false, destroyed = false, timing = true;
};
static CUstream_st g_legacy;  // stream 0
static std::vector<CUstream_st *> g_streams{&g_legacy};
static std::mt19937 g_srng;
static bool g_srng_init;
static int g_copy_order;  // EMU_COPY_ORDER: 1 late, -1 early, 0 random
static cudaError_t g_last_error = cudaSuccess;
static int g_device;

// EMU_COPY_TRACE=1: at exit, how many device-to-host copies were queued
// while a collective that writes their source was still queued or in flight
// (such a copy is ordered after it by events, or reads the old bytes): the
// offload tests count the gradient chunks that went down chained to their
// reduction bucket rather than after a host wait for the whole reduction.
static struct CopyTrace {
    unsigned long long d2h = 0, behind_collective = 0;
    ~CopyTrace()
    {
        const char *e = getenv("EMU_COPY_TRACE");
        if (e && atoi(e) == 1)
            fprintf(stderr, "EMU copy trace: %llu device-to-host copies, %llu queued before the "
                            "collective writing their source completed\n",
                    d2h, behind_collective);
    }
} g_copy_trace;
static bool collective_pending_on(const void *p, size_t n)
{
    for (auto *s : g_streams) {
        if (s->inflight && s->inflight->writes(p, n)) return true;
        for (auto &a : s->async)
            if (a && a->writes(p, n)) return true;
    }
    return false;
}

static CUstream_st *sof(cudaStream_t st)
{
    CUstream_st *s = st ? st : &g_legacy;
    if (s->destroyed) emu_fail("a stream used after cudaStreamDestroy");
    return s;
}
static void enqueue(cudaStream_t st, std::function<void()> fn, std::shared_ptr<EmuAsyncOp> a = nullptr,
                    bool copy = false)
{
    CUstream_st *s = sof(st);
    std::vector<std::pair<CUstream_st *, uint64_t>> d;
    if (s == &g_legacy) {  // waits for all prior work of blocking streams
        for (auto *o : g_streams)
            if (o != s && o->blocking && o->enq > o->done) d.push_back({o, o->enq});
    } else if (s->blocking && g_legacy.enq > g_legacy.done) {
        d.push_back({&g_legacy, g_legacy.enq});
    }
    s->q.push_back(std::move(fn));
    s->deps.push_back(std::move(d));
    s->async.push_back(std::move(a));
    s->copy.push_back(copy);
    s->enq++;
}
static bool ready(CUstream_st *s)
{
    if (s->inflight || s->q.empty()) return false;
    for (auto &d : s->deps.front())
        if (d.first->done < d.second) return false;
    return !s->async.front() || s->async.front()->start_ok();
}
// Completes the started asynchronous operations whose messages are all in; true if any did.
static bool poll_inflight()
{
    bool any = false;
    for (auto *s : g_streams)
        if (s->inflight && s->inflight->poll()) {
            s->inflight.reset();
            s->done++;
            any = true;
        }
    return any;
}
static void emu_nccl_check_no_open_group();  // emu_nccl.cpp
static double emu_now()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
// How long the host may wait on messages of other ranks (EMU_NCCL_TIMEOUT_S,
// default 300): on a GPU a missing peer operation hangs; here it fails.
static double emu_wait_limit_s()
{
    const char *e = getenv("EMU_NCCL_TIMEOUT_S");
    return e ? atof(e) : 300.0;
}
static void emu_wait_timeout()
{
    std::string what;
    for (auto *s : g_streams)
        if (s->inflight) what += "\n  " + s->inflight->waiting_for();
    emu_fail("the host waited %.0f s for messages of other ranks that never came (a peer never "
             "issued the matching NCCL call, or issued it in another order):%s",
             emu_wait_limit_s(), what.c_str());
}
// Runs ready work of all streams in a seeded random order until pred().
template <typename P> static void run_until(P pred)
{
    if (!g_srng_init) {
        const char *e = getenv("EMU_STREAM_SEED");
        g_srng.seed(e ? (unsigned)atoi(e) : 1u);
        // EMU_COPY_AT_ISSUE=1: cp.async lands at issue (exposes write-after-read
        // races on the double buffers); default at wait_group (missing waits).
        const char *c = getenv("EMU_COPY_AT_ISSUE");
        g_copy_at_issue = c && atoi(c) == 1;
        const char *o = getenv("EMU_COPY_ORDER");
        g_copy_order = !o ? 0 : !strcmp(o, "late") ? 1 : !strcmp(o, "early") ? -1 : 0;
        g_srng_init = true;
    }
    emu_nccl_check_no_open_group();
    int idle = 0;
    double t_idle = 0;
    while (!pred()) {
        std::vector<CUstream_st *> r;
        bool waiting = false;
        CUstream_st *async_ready = nullptr;
        for (auto *s : g_streams) {
            if (ready(s)) {
                r.push_back(s);
                if (s->async.front() && !async_ready) async_ready = s;
            }
            waiting |= s->inflight != nullptr;
        }
        // Asynchronous operations (NCCL) start as soon as they may and
        // complete as late as they may - only when nothing else can run: a
        // producer not ordered before one misses its snapshot, a consumer
        // not ordered after one reads the old bytes, deterministically.
        if (async_ready) {
            CUstream_st *s = async_ready;
            auto a = std::move(s->async.front());
            s->q.pop_front();
            s->deps.pop_front();
            s->async.pop_front();
            s->copy.pop_front();
            a->start();
            s->inflight = std::move(a);
            idle = 0;
            continue;
        }
        if (r.empty()) {
            if (poll_inflight()) {
                idle = 0;
                continue;
            }
            if (!waiting) emu_fail("deadlock: queued work waits on work that can never run");
            // Only messages from other ranks can move this rank on: let them run.
            if (idle++ == 0) t_idle = emu_now();
            if (idle > 64) usleep(idle > 4096 ? 1000 : 50);
            if (idle % 256 == 0 && emu_now() - t_idle > emu_wait_limit_s()) emu_wait_timeout();
            continue;
        }
        idle = 0;
        // EMU_COPY_ORDER=late: memory copies run only when nothing else can
        // (a consumer of a copy not ordered after it reads the old bytes, a
        // copy not ordered before the next writer of its source reads the
        // new ones); early: before anything else. Default: no preference.
        if (g_copy_order != 0) {
            std::vector<CUstream_st *> pick;
            for (auto *o : r)
                if (o->copy.front() == (g_copy_order > 0 ? false : true)) pick.push_back(o);
            if (!pick.empty()) r.swap(pick);
        }
        CUstream_st *s = r[g_srng() % r.size()];
        auto fn = std::move(s->q.front());
        s->q.pop_front();
        s->deps.pop_front();
        s->async.pop_front();
        s->copy.pop_front();
        fn();
        s->done++;
    }
}
static void drain_stream(CUstream_st *s)
{
    const uint64_t t = s->enq;
    run_until([&] { return s->done >= t; });
}
static void drain_all()
{
    run_until([] {
        for (auto *s : g_streams)
            if (s->done < s->enq) return false;
        return true;
    });
}

// Kernel launches from prep.sh: arguments bound now, the launch queued.
template <typename F, typename... A> static std::function<void()> emu_bind(F f, A... a)
{
    auto t = std::make_tuple(a...);
    return [f, t] { std::apply(f, t); };
}
// Set by CU_ATTN_ORDERED_LAUNCH() for the next launch only.
static bool g_next_launch_ordered;
static void emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t st, std::function<void()> k)
{
    const bool ordered = g_next_launch_ordered;
    g_next_launch_ordered = false;
    const unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (nt < 1 || nt > 1024 || grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.y > 65535 ||
        grid.z > 65535 || smem > (size_t)smem_optin()) {
        g_last_error = cudaErrorInvalidConfiguration;
        return;
    }
    enqueue(st, [grid, block, smem, k, ordered] { launch(grid, block, smem, k, ordered); });
}

// ---------------------------------------------------------------- memory
struct Alloc {
    char *map;
    size_t map_bytes, bytes;
};
static std::map<uintptr_t, Alloc> g_dev;  // device pointer -> mapping
static std::map<uintptr_t, size_t> g_pinned;
static size_t g_dev_bytes, g_dev_peak;

static bool is_dev(const void *p, size_t n)
{
    auto it = g_dev.upper_bound((uintptr_t)p);
    if (it == g_dev.begin()) return false;
    --it;
    return (uintptr_t)p + n <= it->first + it->second.bytes && (uintptr_t)p >= it->first;
}

extern "C" {

size_t emu_cuda_bytes_allocated(void) { return g_dev_bytes; }
size_t emu_cuda_peak_bytes(void) { return g_dev_peak; }
void emu_cuda_reset_peak(void) { g_dev_peak = g_dev_bytes; }

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidPitchValue: return "invalid pitch argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorSystemDriverMismatch: return "system has unsupported display driver / cuda driver combination";
    }
    return "unrecognized error code";
}
const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorSystemDriverMismatch: return "cudaErrorSystemDriverMismatch";
    default: return "cudaErrorUnknown";
    }
}
// EMU_DRIVER_VERSION (default 13000; 0: no driver installed).
cudaError_t cudaDriverGetVersion(int *v)
{
    if (!v) return cudaErrorInvalidValue;
    const char *e = getenv("EMU_DRIVER_VERSION");
    *v = e ? atoi(e) : 13000;
    return cudaSuccess;
}
static cudaError_t err(cudaError_t e)
{
    if (e != cudaSuccess) g_last_error = e;
    return e;
}
cudaError_t cudaGetLastError(void)
{
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last_error; }
static int n_gpus()
{
    const char *e = getenv("EMU_GPU_COUNT");
    return e ? atoi(e) : 8;
}
// As the runtime: no device is cudaErrorNoDevice (n untouched); EMU_DEVICE_ERROR
// (an error code) fakes a broken driver, e.g. 35 (too old: with
// EMU_DRIVER_VERSION=0 it is what a machine without a driver returns) or 803.
cudaError_t cudaGetDeviceCount(int *n)
{
    const char *e = getenv("EMU_DEVICE_ERROR");
    if (e && atoi(e) != 0) return err((cudaError_t)atoi(e));
    if (n_gpus() == 0) return err(cudaErrorNoDevice);
    *n = n_gpus();
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d)
{
    if (d < 0 || d >= n_gpus()) return err(cudaErrorInvalidDevice);
    g_device = d;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d)
{
    *d = g_device;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v)
{
    if (!v) return err(cudaErrorInvalidValue);
    *v = 12040;  // what the shim stands in for: CUDA 12.4
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d)
{
    if (!p) return err(cudaErrorInvalidValue);
    if (d < 0 || d >= n_gpus()) return err(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "emulated sm_90");
    size_t free_b = 0;
    cudaMemGetInfo(&free_b, &p->totalGlobalMem);
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = EMU_SMS;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetPCIBusId(char *bus_id, int len, int d)
{
    if (!bus_id || len < 13) return err(cudaErrorInvalidValue);
    if (d < 0 || d >= n_gpus()) return err(cudaErrorInvalidDevice);
    snprintf(bus_id, (size_t)len, "00000000:%02X:00.0", 0x18 + d);  // the real form: domain:bus:device.function
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d)
{
    if (d < 0 || d >= n_gpus()) return err(cudaErrorInvalidDevice);
    switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = EMU_SMEM_DEFAULT; break;
    case cudaDevAttrMultiProcessorCount: *v = EMU_SMS; break;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = smem_optin(); break;
    default: return err(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t emu_cudaFuncSetAttribute(cudaFuncAttribute a, int v)
{
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > smem_optin())
        return err(cudaErrorInvalidValue);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void)
{
    drain_all();
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
    *free_b = EMU_TOTAL_BYTES - g_dev_bytes;
    *total_b = EMU_TOTAL_BYTES;
    return cudaSuccess;
}
// 256-byte aligned like cudaMalloc; a PROT_NONE page follows the block's
// 256-byte-rounded end; new memory is NaN-filled (cudaMalloc gives garbage).
cudaError_t cudaMalloc(void **p, size_t bytes)
{
    if (!p) return err(cudaErrorInvalidValue);
    if (bytes == 0) {
        *p = NULL;
        return cudaSuccess;
    }
    if (bytes > EMU_TOTAL_BYTES - g_dev_bytes) return err(cudaErrorMemoryAllocation);
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), b = (bytes + 255) / 256 * 256;
    size_t np = (b + ps - 1) / ps + 1;
    char *m = (char *)mmap(NULL, np * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return err(cudaErrorMemoryAllocation);
    mprotect(m + (np - 1) * ps, ps, PROT_NONE);
    char *d = m + (np - 1) * ps - b;
    memset(d, 0xff, b);
    g_dev[(uintptr_t)d] = Alloc{m, np * ps, bytes};
    g_regions.push_back({d, bytes});
    g_dev_bytes += bytes;
    g_dev_peak = std::max(g_dev_peak, g_dev_bytes);
    *p = d;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    drain_all();  // cudaFree synchronizes the device
    auto it = g_dev.find((uintptr_t)p);
    if (it == g_dev.end()) return err(cudaErrorInvalidValue);
    for (size_t i = 0; i < g_regions.size(); i++)
        if (g_regions[i].base == (const char *)p) {
            g_regions.erase(g_regions.begin() + (long)i);
            break;
        }
    g_dev_bytes -= it->second.bytes;
    munmap(it->second.map, it->second.map_bytes);
    g_dev.erase(it);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return err(cudaErrorMemoryAllocation);
    g_pinned[(uintptr_t)*p] = bytes;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p)
{
    if (!p) return cudaSuccess;
    drain_all();
    if (!g_pinned.erase((uintptr_t)p)) return err(cudaErrorInvalidValue);
    free(p);
    return cudaSuccess;
}
// dn / sn: the bytes the copy spans at dst / src.
static cudaError_t check_copy(void *dst, size_t dn, const void *src, size_t sn, cudaMemcpyKind k)
{
    bool dd = is_dev(dst, dn), sd = is_dev(src, sn);
    switch (k) {
    case cudaMemcpyHostToDevice: if (!dd || sd) return cudaErrorInvalidValue; break;
    case cudaMemcpyDeviceToHost: if (dd || !sd) return cudaErrorInvalidValue; break;
    case cudaMemcpyDeviceToDevice: if (!dd || !sd) return cudaErrorInvalidValue; break;
    case cudaMemcpyHostToHost: if (dd || sd) return cudaErrorInvalidValue; break;
    case cudaMemcpyDefault: break;
    default: return cudaErrorInvalidMemcpyDirection;
    }
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t st)
{
    if (n == 0) return cudaSuccess;
    cudaError_t e = check_copy(dst, n, src, n, k);
    if (e) return err(e);
    if (is_dev(src, n) && !is_dev(dst, n)) {
        g_copy_trace.d2h++;
        if (collective_pending_on(src, n)) g_copy_trace.behind_collective++;
    }
    enqueue(st, [=] { memmove(dst, src, n); }, nullptr, k != cudaMemcpyDeviceToDevice);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k)
{
    cudaError_t e = cudaMemcpyAsync(dst, src, n, k, NULL);
    if (e) return e;
    drain_stream(&g_legacy);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind k, cudaStream_t st)
{
    if (width > dpitch || width > spitch) return err(cudaErrorInvalidPitchValue);
    if (width == 0 || height == 0) return cudaSuccess;
    // Each side spans its own pitch (an emulator bug had checked src with
    // dpitch: a legal copy from a packed source into a wider-pitched
    // destination was refused).
    cudaError_t e = check_copy(dst, (height - 1) * dpitch + width, src, (height - 1) * spitch + width, k);
    if (e) return err(e);
    enqueue(st, [=] {
        for (size_t r = 0; r < height; r++)
            memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    });
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t st)
{
    if (n == 0) return cudaSuccess;
    if (!is_dev(p, n)) return err(cudaErrorInvalidValue);
    enqueue(st, [=] { memset(p, v, n); });
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t n)
{
    cudaError_t e = cudaMemsetAsync(p, v, n, NULL);
    if (e) return e;
    drain_stream(&g_legacy);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned flags)
{
    if (flags & ~1u) return err(cudaErrorInvalidValue);
    CUstream_st *s = new CUstream_st;
    s->blocking = !(flags & cudaStreamNonBlocking);
    g_streams.push_back(s);
    *st = s;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *st) { return cudaStreamCreateWithFlags(st, 0); }
// Work still queued completes later, as on CUDA; the handle is dead at once.
cudaError_t cudaStreamDestroy(cudaStream_t st)
{
    if (!st) return err(cudaErrorInvalidResourceHandle);
    sof(st)->destroyed = true;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t st)
{
    drain_stream(sof(st));
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    if (flags & ~3u) return err(cudaErrorInvalidValue);
    *e = new CUevent_st;
    (*e)->timing = !(flags & cudaEventDisableTiming);
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
static CUevent_st *eof(cudaEvent_t e)
{
    if (!e) emu_fail("a NULL event");
    if (e->destroyed) emu_fail("an event used after cudaEventDestroy");
    return e;
}
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    eof(e)->destroyed = true;  // kept: queued waits may still name it
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t st)
{
    CUevent_st *ev = eof(e);
    CUstream_st *s = sof(st);
    ev->s = s;
    ev->seq = s->enq;  // complete when everything queued so far on s is
    ev->recorded = true;
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t st, cudaEvent_t e, unsigned flags)
{
    CUevent_st *ev = eof(e);
    if (flags) return err(cudaErrorInvalidValue);
    // CUDA treats this as a no-op; in stretch it is always an ordering bug.
    if (!ev->recorded) emu_fail("cudaStreamWaitEvent on an event never recorded");
    CUstream_st *s = sof(st), *es = ev->s;
    uint64_t seq = ev->seq;
    enqueue(st, [] {});
    s->deps.back().push_back({es, seq});
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    CUevent_st *ev = eof(e);
    if (!ev->recorded) return cudaSuccess;
    CUstream_st *s = ev->s;
    uint64_t seq = ev->seq;
    run_until([&] { return s->done >= seq; });
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e)
{
    CUevent_st *ev = eof(e);
    return !ev->recorded || ev->s->done >= ev->seq ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    if (!eof(a)->timing || !eof(b)->timing) return err(cudaErrorInvalidResourceHandle);
    if (!a->recorded || !b->recorded) return err(cudaErrorInvalidResourceHandle);
    if (cudaEventQuery(a) || cudaEventQuery(b)) return err(cudaErrorNotReady);
    *ms = 0.0f;  // no clock in the emulator
    return cudaSuccess;
}

// ---------------------------------------------------------------- cuBLAS
struct cublasContext {
    cudaStream_t st = NULL;
    void *ws = NULL;
    size_t ws_bytes = 0;
    bool alive = true;
};
cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}
static cublasContext *hof(cublasHandle_t h)
{
    if (!h || !h->alive) emu_fail("a cuBLAS handle used after cublasDestroy");
    return h;
}
cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    hof(h)->alive = false;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t st)
{
    sof(st);
    hof(h)->st = st;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes)
{
    // cuBLAS: the workspace must be 256-byte aligned device memory.
    if ((uintptr_t)ws % 256 || (bytes && !is_dev(ws, bytes))) return CUBLAS_STATUS_INVALID_VALUE;
    hof(h)->ws = ws;
    h->ws_bytes = bytes;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
    if (m != CUBLAS_DEFAULT_MATH && m != CUBLAS_TF32_TENSOR_OP_MATH) return CUBLAS_STATUS_INVALID_VALUE;
    hof(h);
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}
static float ld_el(const void *p, cudaDataType_t t, size_t i)
{
    return t == CUDA_R_16BF ? bf2f(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}
// C (m x n, column-major, ldc) = alpha op(A) op(B) + beta C, fp32
// accumulation in k order; C is not read when beta == 0 (as cuBLAS).
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType_t at,
                            int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t algo)
{
    hof(h);
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k) || ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) ||
        ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (comp != CUBLAS_COMPUTE_32F || algo != CUBLAS_GEMM_DEFAULT) return CUBLAS_STATUS_NOT_SUPPORTED;
    // Supported (A, B, C) type combinations with COMPUTE_32F (cuBLAS docs):
    // all 32F, or 16BF inputs with 16BF or 32F output.
    if (!((at == CUDA_R_32F && bt == CUDA_R_32F && ct == CUDA_R_32F) ||
          (at == CUDA_R_16BF && bt == CUDA_R_16BF && (ct == CUDA_R_16BF || ct == CUDA_R_32F))))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    const float al = *(const float *)alpha, be = *(const float *)beta;  // host pointer mode
    const size_t es = at == CUDA_R_16BF ? 2 : 4, cs = ct == CUDA_R_16BF ? 2 : 4;
    auto span = [](int rows, int cols, int ld) { return ((size_t)cols - 1) * (size_t)ld + (size_t)rows; };
    if (k > 0 && (!is_dev(A, es * span(ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda)) ||
                  !is_dev(B, es * span(tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb))))
        emu_fail("cublasGemmEx: A or B is not inside one device allocation");
    if (!is_dev(C, cs * span(m, n, ldc))) emu_fail("cublasGemmEx: C is not inside one device allocation");
    if ((uintptr_t)A % es || (uintptr_t)B % es || (uintptr_t)C % cs)
        return CUBLAS_STATUS_INVALID_VALUE;
    enqueue(h->st, [=] {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0.0f;
                for (int l = 0; l < k; l++) {
                    float a = ld_el(A, at, ta == CUBLAS_OP_N ? (size_t)l * lda + i : (size_t)i * lda + l);
                    float b = ld_el(B, bt, tb == CUBLAS_OP_N ? (size_t)j * ldb + l : (size_t)l * ldb + j);
                    acc += a * b;
                }
                const size_t ci = (size_t)j * ldc + i;
                float r = al * acc;
                if (be != 0.0f) r += be * ld_el(C, ct, ci);
                if (ct == CUDA_R_16BF) ((uint16_t *)C)[ci] = f2bf(r);
                else ((float *)C)[ci] = r;
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"

// ---------------------------------------------------------------- CUB
namespace cub {
struct DeviceRadixSort {
    // Stable sort of (key, value) pairs by key bits [begin_bit, end_bit).
    // Temp storage: the query returns a size; a smaller buffer is an error.
    template <typename K, typename V>
    static cudaError_t SortPairs(void *temp, size_t &temp_bytes, const K *kin, K *kout,
                                 const V *vin, V *vout, int n, int begin_bit = 0,
                                 int end_bit = (int)sizeof(K) * 8, cudaStream_t st = 0)
    {
        const size_t need = 2 * (size_t)std::max(n, 0) * (sizeof(K) + sizeof(V)) + 512;
        if (!temp) {
            temp_bytes = need;
            return cudaSuccess;
        }
        if (temp_bytes < need || n < 0 || begin_bit < 0 || end_bit > (int)sizeof(K) * 8 ||
            begin_bit >= end_bit)
            return err(cudaErrorInvalidValue);
        if (n == 0) return cudaSuccess;
        if (!is_dev(temp, need) || !is_dev(kin, sizeof(K) * n) || !is_dev(kout, sizeof(K) * n) ||
            !is_dev(vin, sizeof(V) * n) || !is_dev(vout, sizeof(V) * n))
            emu_fail("SortPairs: a buffer is not device memory of the needed size");
        enqueue(st, [=] {
            std::vector<std::pair<K, V>> kv((size_t)n);
            const K mask = (K)((end_bit - begin_bit >= (int)sizeof(K) * 8) ? ~(K)0 : (((K)1 << (end_bit - begin_bit)) - 1));
            for (int i = 0; i < n; i++) kv[(size_t)i] = {kin[i], vin[i]};
            std::stable_sort(kv.begin(), kv.end(), [&](const std::pair<K, V> &a, const std::pair<K, V> &b) {
                return ((a.first >> begin_bit) & mask) < ((b.first >> begin_bit) & mask);
            });
            memset(temp, 0xff, need);  // scribble the temp storage, as the real sort may
            for (int i = 0; i < n; i++) kout[i] = kv[(size_t)i].first, vout[i] = kv[(size_t)i].second;
        });
        return cudaSuccess;
    }
};
}  // namespace cub

// ---------------------------------------------------------------- kernel stand-ins
struct uint4 { uint32_t x, y, z, w; };
struct uint2 { uint32_t x, y; };
static inline bf16 __float2bfloat16_rn(float x) { return bf16{f2bf(x)}; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
template <typename A> static inline A min(A a, A b) { return a < b ? a : b; }
template <typename A> static inline A max(A a, A b) { return a > b ? a : b; }

// Tile iterations of the attention kernels (cu_attn_tile.cuh's hook): 0
// forward, 1 backward; read and reset by emu_attn_tiles.
static uint64_t g_attn_tiles[2];
#define CU_ATTN_COUNT_TILE(kernel) (g_attn_tiles[kernel]++)
#define CU_ATTN_ORDERED_LAUNCH() (g_next_launch_ordered = true)
// Definitions get C linkage from the declarations of cu_ops.h / cu_attn.h.
#include "cu_internal.inc"
#include "cu_common.inc"
#include "cu_matmul.inc"
#include "cu_rope.inc"
#include "cu_rmsnorm.inc"
#include "cu_swiglu.inc"
#include "cu_elementwise.inc"
#include "cu_adamw.inc"
#include "cu_xent.inc"
#include "cu_embedding.inc"
#include "cu_attn_tile.inc"
#include "cu_attn_f32.inc"
#include "cu_attn_docs.inc"
#include "cu_attn_fwd.inc"
#include "cu_attn_bwd.inc"

// ---------------------------------------------------------------- attention tile accounting
extern "C" {
void emu_attn_tiles(uint64_t out[2])
{
    drain_all();
    for (int i = 0; i < 2; i++) out[i] = g_attn_tiles[i], g_attn_tiles[i] = 0;
}

// Each bf16 kernel's tile on the current device (rows of its CTA x columns
// of its loop's tile): forward (queries x keys), backward (keys x queries).
void emu_attn_tile_shapes(int D, int rows[2], int cols[2])
{
    rows[0] = fwd_rows(D), cols[0] = FWD_BC;
    rows[1] = bwd_rows(D), cols[1] = D == 128 ? bwd_bq<128>() : bwd_bq<64>();
}

// The tile iterations the bf16 kernels' loops make for shape s (all heads),
// from the same span helpers and tile sizes, evaluated on the host over
// bounds (host copy of cu_attn_docs.bounds, or NULL: no documents); what
// emu_attn_tiles must count after cu_attn_forward + cu_attn_block_backward.
void emu_attn_plan_tiles(const attn_shape *s, const int32_t *bounds, uint64_t out[2])
{
    out[0] = out[1] = 0;
    if (cu_attn_block_masked(s)) return;
    const cu_attn_docs d = {NULL, NULL, (int32_t *)bounds};  // spans only: no ids needed
    const int BQ = s->D == 128 ? bwd_bq<128>() : bwd_bq<64>();
    for (int64_t b = 0; b < s->B; b++) {
        const attn_mask m = make_mask(*s, d, b);
        const int64_t FR = fwd_rows(s->D);  // the forward launcher's choice
        for (int64_t i0 = 0; i0 < s->Tq; i0 += FR) {
            const row_span k = query_tile_span(m, i0, std::min<int64_t>(FR, s->Tq - i0));
            out[0] += (uint64_t)s->H * (uint64_t)((k.hi - k.lo + FWD_BC - 1) / FWD_BC);
        }
        const int KR = bwd_rows(s->D);  // the backward launcher's choice
        for (int jt = 0; (int64_t)jt * KR < s->Tk; jt++) {
            const tile_range q = query_tiles_of(key_tile_queries(m, KR, jt), BQ);
            if (q.hi > q.lo) out[1] += (uint64_t)s->H * (uint64_t)(q.hi - q.lo);
        }
    }
}
}  // extern "C"

// ---------------------------------------------------------------- NCCL over MPI
#include "emu_nccl.cpp"
