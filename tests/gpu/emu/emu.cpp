// SIMT emulator for the kernels of kernels/cuda: one fiber per CUDA thread (started
// by makecontext, switched by _setjmp / _longjmp: no signal-mask system call
// per switch, which made swapcontext the emulator's main cost),
// warp collectives (shfl, ldmatrix, mma, syncwarp) and __syncthreads as
// cooperative barriers, cp.async groups with two completion modes
// (at issue: exposes write-after-read races; at wait: exposes missing waits).
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <setjmp.h>
#include <ucontext.h>
#include <unistd.h>

#include <functional>
#include <random>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(x)
#define __shared__
#define __align__(n)

static void fail(const char *msg)
{
    fprintf(stderr, "EMU FAIL: %s\n", msg);
    abort();
}

// ---------------------------------------------------------------- bf16
static inline uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
struct __nv_bfloat16 {
    uint16_t x;
};
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
typedef __nv_bfloat16 bf16;
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b)
{
    __nv_bfloat162 r;
    r.x.x = f2bf(a);
    r.y.x = f2bf(b);
    return r;
}
static inline float __bfloat162float(bf16 x) { return bf2f(x.x); }
struct float2 {
    float x, y;
};
static inline float2 make_float2(float a, float b) { return float2{a, b}; }
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define CU_ATTN_LOG2E 1.4426950408889634f
#define CU_ATTN_LN2 0.6931471805599453f
#define CU_CHECK(x) (void)(x)
#define cudaFuncSetAttribute(...) 0
#define cudaFuncAttributeMaxDynamicSharedMemorySize 0

// ---------------------------------------------------------------- memory checks
struct Region {
    const char *base;
    size_t bytes;
};
static std::vector<Region> g_regions;
static void *galloc(size_t bytes)  // ends right before a PROT_NONE page
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    size_t b16 = (bytes + 15) / 16 * 16;
    size_t np = (b16 + ps - 1) / ps + 1;
    char *m = (char *)mmap(NULL, np * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
    if (m == MAP_FAILED) fail("mmap");
    mprotect(m + (np - 1) * ps, ps, PROT_NONE);
    char *p = m + (np - 1) * ps - b16;
    memset(p, 0xff, b16);
    g_regions.push_back({p, bytes});
    return p;
}
static void check_global(const void *p, size_t n, size_t align)
{
    if ((uintptr_t)p % align) fail("misaligned global access");
    for (auto &r : g_regions)
        if ((const char *)p >= r.base && (const char *)p + n <= r.base + r.bytes) return;
    fail("global access outside any allocation");
}

alignas(128) unsigned char smem_raw[256 * 1024];
static size_t g_smem_bytes;
static size_t g_smem_hi;  // highest byte touched by ldmatrix / cp.async
static void check_smem(const void *p, size_t n, size_t align)
{
    const unsigned char *c = (const unsigned char *)p;
    if (c < smem_raw || c + n > smem_raw + g_smem_bytes) fail("shared access outside dynamic smem");
    if ((uintptr_t)p % align) fail("misaligned shared access");
    size_t hi = (size_t)(c + n - smem_raw);
    if (hi > g_smem_hi) g_smem_hi = hi;
}

// ---------------------------------------------------------------- fibers
struct Copy {
    void *dst;
    unsigned char data[16];
    int n, src_n;
};
struct Fiber {
    ucontext_t ctx;  // the first entry
    jmp_buf jb;      // where it yielded
    bool started;
    dim3 tix;
    int lin;  // linear thread index in the block (warp = lin / 32)
    bool done;
    std::vector<std::vector<Copy>> groups;  // committed
    std::vector<Copy> open;                 // not yet committed
};
// Lane exchanges (shuffles, ldmatrix, mma) cost ONE warp barrier each:
// every buffer has two slots, picked by the parity of the barrier generation
// at the write; a slot written at generation g is read only between the end
// of barrier g and the reader's next arrival, and written again only at
// generation g + 2, after every lane has left barrier g + 1.
struct WarpState {
    int arrive = 0, gen = 0;
    const void *ptr[2][32];
    uint32_t u[2][32][6];
    uint64_t x[2][32];
    int mma_gen = -1;  // generation whose mma operands are in A, B
    float A[16][16], B[16][8];
};
static Fiber *g_fib;
static int g_nthreads;
static Fiber *g_cur;
static jmp_buf g_sched;
static WarpState g_warp[32];
static int g_cta_arrive, g_cta_gen;
static bool g_copy_at_issue;
static std::function<void()> g_body;
static std::mt19937 g_rng(1);

dim3 blockIdx, gridDim, blockDim;
#define threadIdx (g_cur->tix)

static void yield_()
{
    if (!_setjmp(g_cur->jb)) _longjmp(g_sched, 1);
}

static void do_copy(const Copy &c)
{
    memset(c.dst, 0, (size_t)c.n);
    memcpy(c.dst, c.data, (size_t)c.src_n);
}
static void flush_group(std::vector<Copy> &g)
{
    for (auto &c : g) do_copy(c);
    g.clear();
}

static int lane_id() { return g_cur->lin % 32; }
static WarpState &my_warp() { return g_warp[g_cur->lin / 32]; }

// Runnable fibers: the scheduler picks only among these; a fiber waiting at
// a barrier leaves the set until the barrier's last arrival puts it back
// (waiting fibers never spin).
static std::vector<int> g_runnable, g_run_pos;  // fiber -> index in g_runnable, -1: blocked
static std::vector<int> g_warp_waiters[32], g_cta_waiters;
static int g_live;  // fibers of the block that have not exited
static void make_runnable(int i)
{
    g_run_pos[(size_t)i] = (int)g_runnable.size();
    g_runnable.push_back(i);
}
static void make_blocked(int i)
{
    const int k = g_run_pos[(size_t)i], last = g_runnable.back();
    g_runnable[(size_t)k] = last;
    g_run_pos[(size_t)last] = k;
    g_runnable.pop_back();
    g_run_pos[(size_t)i] = -1;
}
static void wait_here(std::vector<int> &waiters)
{
    waiters.push_back(g_cur->lin);
    make_blocked(g_cur->lin);
    yield_();
}
static void release(std::vector<int> &waiters)
{
    for (int i : waiters) make_runnable(i);
    waiters.clear();
}
static void wbar()
{
    WarpState &w = my_warp();
    if (++w.arrive == 32) {
        w.arrive = 0;
        w.gen++;
        release(g_warp_waiters[g_cur->lin / 32]);
        return;
    }
    wait_here(g_warp_waiters[g_cur->lin / 32]);
}
static void __syncwarp() { wbar(); }
static void cta_release()
{
    g_cta_arrive = 0;
    g_cta_gen++;
    release(g_cta_waiters);
}
static void __syncthreads()
{
    if (++g_cta_arrive == g_live) {
        cta_release();
        return;
    }
    wait_here(g_cta_waiters);
}
// Called by the scheduler when fiber i has exited.
static void fiber_exited(int i)
{
    make_blocked(i);
    g_live--;
    if (g_warp[i / 32].arrive > 0) fail("warp collective with an exited lane");
    if (g_cta_arrive > 0 && g_cta_arrive == g_live) cta_release();  // exited threads do not count
}
template <typename T>
static T shfl_xor(unsigned mask, T v, int o)
{
    static_assert(sizeof(T) <= 8, "one slot");
    if (mask != 0xffffffffu) fail("mask");
    WarpState &w = my_warp();
    const int l = lane_id(), sl = w.gen & 1;
    memcpy(&w.x[sl][l], &v, sizeof v);
    wbar();
    T r;
    memcpy(&r, &w.x[sl][l ^ o], sizeof r);
    return r;
}
static float __shfl_xor_sync(unsigned mask, float v, int o) { return shfl_xor(mask, v, o); }
static int __shfl_xor_sync(unsigned mask, int v, int o) { return shfl_xor(mask, v, o); }
static double __shfl_xor_sync(unsigned mask, double v, int o) { return shfl_xor(mask, v, o); }
// Fibers of one block run one at a time and blocks one after another: a
// plain read-modify-write is atomic here.
static int atomicOr(int *p, int v)
{
    check_global(p, 4, 4);
    int old = *p;
    *p = old | v;
    return old;
}

// ---------------------------------------------------------------- PTX wrappers
static inline void cp_async16(void *dst, const void *src, bool pred)
{
    check_smem(dst, 16, 16);
    Copy c;
    c.dst = dst;
    c.n = 16;
    c.src_n = pred ? 16 : 0;
    if (pred) {
        check_global(src, 16, 16);
        memcpy(c.data, src, 16);
    }
    if (g_copy_at_issue) do_copy(c);
    else g_cur->open.push_back(c);
}
static inline void cp_async4(void *dst, const void *src, bool pred)
{
    check_smem(dst, 4, 4);
    Copy c;
    c.dst = dst;
    c.n = 4;
    c.src_n = pred ? 4 : 0;
    if (pred) {
        check_global(src, 4, 4);
        memcpy(c.data, src, 4);
    }
    if (g_copy_at_issue) do_copy(c);
    else g_cur->open.push_back(c);
}
static inline void cp_async_commit(void)
{
    g_cur->groups.push_back(g_cur->open);
    g_cur->open.clear();
}
template <int n>
static inline void cp_async_wait(void)
{
    auto &gs = g_cur->groups;
    while ((int)gs.size() > n) {
        flush_group(gs.front());
        gs.erase(gs.begin());
    }
}
static inline uint16_t smem_bf(const void *p, int e)
{
    return ((const uint16_t *)p)[e];
}
static void ldmatrix_impl(uint32_t r[4], const void *p, bool trans)
{
    check_smem(p, 16, 16);
    WarpState &w = my_warp();
    const int l = lane_id(), sl = w.gen & 1;
    w.ptr[sl][l] = p;
    wbar();
    const void *const *ptr = w.ptr[sl];
    for (int i = 0; i < 4; i++) {
        uint16_t lo, hi;
        if (!trans) {
            const void *row = ptr[8 * i + l / 4];
            lo = smem_bf(row, 2 * (l % 4));
            hi = smem_bf(row, 2 * (l % 4) + 1);
        } else {
            lo = smem_bf(ptr[8 * i + 2 * (l % 4)], l / 4);
            hi = smem_bf(ptr[8 * i + 2 * (l % 4) + 1], l / 4);
        }
        r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
}
static inline void ldmatrix_x4(uint32_t r[4], const void *p) { ldmatrix_impl(r, p, false); }
static inline void ldmatrix_x4_trans(uint32_t r[4], const void *p) { ldmatrix_impl(r, p, true); }

// PTX ISA m16n8k16 .bf16 layouts (groupID g = lane / 4, t = lane % 4):
// A: a0,a1 (g, 2t+{0,1}) a2,a3 (g+8, 2t..) a4,a5 (g, 2t+8..) a6,a7 (g+8, 2t+8..)
// B: b0,b1 (k 2t+{0,1}, n g) b2,b3 (k 2t+8.., n g); C: c0,c1 (g, 2t..) c2,c3 (g+8, 2t..)
static inline void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    WarpState &w = my_warp();
    const int l = lane_id(), sl = w.gen & 1, gen = w.gen;
    uint32_t *mine = w.u[sl][l];
    mine[0] = a[0];
    mine[1] = a[1];
    mine[2] = a[2];
    mine[3] = a[3];
    mine[4] = b0;
    mine[5] = b1;
    wbar();
    if (w.mma_gen != gen) {  // the first lane out unpacks the operands for all
        w.mma_gen = gen;
        for (int L = 0; L < 32; L++) {
            const uint32_t *u = w.u[sl][L];
            int g = L / 4, t = L % 4;
            for (int e = 0; e < 2; e++) {
                int sh = 16 * e;
                w.A[g][2 * t + e] = bf2f((uint16_t)(u[0] >> sh));
                w.A[g + 8][2 * t + e] = bf2f((uint16_t)(u[1] >> sh));
                w.A[g][8 + 2 * t + e] = bf2f((uint16_t)(u[2] >> sh));
                w.A[g + 8][8 + 2 * t + e] = bf2f((uint16_t)(u[3] >> sh));
                w.B[2 * t + e][g] = bf2f((uint16_t)(u[4] >> sh));
                w.B[8 + 2 * t + e][g] = bf2f((uint16_t)(u[5] >> sh));
            }
        }
    }
    int g = l / 4, t = l % 4;
    for (int e = 0; e < 4; e++) {
        int row = g + (e / 2) * 8, col = 2 * t + (e & 1);
        float acc = c[e];
        for (int k = 0; k < 16; k++) acc += w.A[row][k] * w.B[k][col];
        c[e] = acc;
    }
}
static inline uint32_t pack_bf16x2(float lo, float hi)
{
    return (uint32_t)f2bf(lo) | ((uint32_t)f2bf(hi) << 16);
}
// Ordered accumulation (cu_attn_tile.cuh). CTAs run one at a time to the
// end, so a wait that is not already satisfied could never be: the launch
// must have kept the order the kernel relies on (CU_ATTN_ORDERED_LAUNCH).
static inline void sem_wait_eq(const int32_t *p, int32_t v)
{
    check_global(p, 4, 4);
    if (*p != v) fail("ordered accumulation: waits for a CTA that has not run");
}
static inline void sem_post(int32_t *p, int32_t v)
{
    check_global(p, 4, 4);
    *p = v;
}
static inline void gpu_fence() {}
static inline float2 ld_cg_f2(const float *p)
{
    check_global(p, 8, 8);
    return float2{p[0], p[1]};
}
static inline void st_cg_f2(float *p, float2 v)
{
    check_global(p, 8, 8);
    p[0] = v.x, p[1] = v.y;
}
static inline float fast_exp2(float x)
{
    float y = exp2f(x);
    return fabsf(y) < 1.17549435e-38f ? 0.0f : y;
}

// ---------------------------------------------------------------- kernels
// ---------------------------------------------------------------- launcher
static void trampoline()
{
    g_body();
    g_cur->done = true;
    _longjmp(g_sched, 1);  // never returns: uc_link is unused
}

static bool g_random_sched = true;
static uint32_t sched_rand()  // xorshift32: the pick of the next fiber
{
    static uint32_t x = 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}
// CTAs run one after another in a random order; ordered: one in which each
// CTA comes after those of lower blockIdx.x with the same y, z (a random
// interleaving of the rows), the order the GPU dispatches them in and that
// CU_ATTN_ORDERED_LAUNCH kernels wait on.
static void launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &kernel,
                   bool ordered)
{
    const int nthreads = (int)(block.x * block.y * block.z);
    if (nthreads < 1 || nthreads > 1024 || block.z != 1) fail("bad block size");
    blockDim = block;
    if (smem > 48 * 1024) {
        // needs the opt-in: the launcher of the real code calls set_smem_limit; fine.
    }
    if (smem > 227 * 1024) fail("smem above the sm_90 limit");
    static std::vector<char> stacks;
    const size_t SS = 256 * 1024;
    stacks.resize(SS * (size_t)nthreads);
    std::vector<Fiber> fib((size_t)nthreads);
    gridDim = grid;
    g_body = kernel;
    std::vector<dim3> blocks;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) blocks.push_back({x, y, z});
    std::shuffle(blocks.begin(), blocks.end(), g_rng);
    if (ordered) {
        std::vector<unsigned> next((size_t)grid.y * grid.z, 0);
        for (auto &bi : blocks) bi.x = next[(size_t)bi.z * grid.y + bi.y]++;
    }
    for (auto &bi : blocks) {
        blockIdx = bi;
        g_smem_bytes = smem;
        memset(smem_raw, 0xff, sizeof smem_raw);  // bf16 NaN / float NaN poison
        g_fib = fib.data();
        g_nthreads = nthreads;
        g_cta_arrive = 0;
        for (auto &w : g_warp) w.arrive = 0;
        for (int i = 0; i < nthreads; i++) {
            Fiber &f = fib[(size_t)i];
            f.done = false;
            f.started = false;
            f.groups.clear();
            f.open.clear();
            f.tix = {(unsigned)i % block.x, (unsigned)i / block.x, 0};
            f.lin = i;
            getcontext(&f.ctx);
            f.ctx.uc_stack.ss_sp = &stacks[(size_t)i * SS];
            f.ctx.uc_stack.ss_size = SS;
            f.ctx.uc_link = NULL;
            makecontext(&f.ctx, trampoline, 0);
        }
        g_live = nthreads;
        g_runnable.clear();
        g_run_pos.assign((size_t)nthreads, -1);
        for (int i = 0; i < nthreads; i++) make_runnable(i);
        for (auto &w : g_warp_waiters) w.clear();
        g_cta_waiters.clear();
        unsigned rr = 0;
        while (g_live > 0) {
            if (g_runnable.empty()) fail("deadlock: every live thread waits at a barrier");
            const size_t n = g_runnable.size();
            const int i = g_runnable[g_random_sched ? sched_rand() % n : rr++ % n];
            g_cur = &fib[(size_t)i];
            if (!_setjmp(g_sched)) {
                if (g_cur->started) _longjmp(g_cur->jb, 1);
                g_cur->started = true;
                setcontext(&g_cur->ctx);
            }
            if (g_cur->done) fiber_exited(i);
        }
    }
}
