// backend_cuda: the backend interface over kernels/cuda. See backend.h and
// backend_cuda.h.
//
// One compute stream and one cuBLAS handle per backend; every op enqueues on
// it. Offload copies (copy_async) run on two copy streams (the lanes of
// BK_COPY_LANE: checkpoints, optimizer chunks), each ordered after
// the compute stream by an event and marked done by one event per copy slot,
// so they overlap the compute that follows them. Scratch the kernels need (rmsnorm and embedding reductions, xent logits
// chunk, fp32 attention gradients) is grow-only per purpose: allocated on
// the first step, reused after, and counted in backend_mem_stats.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend_cuda.h"
#include "cu_attn.h"
#include "cu_ops.h"
#include "die.h"

enum {
    SCR_RMS, SCR_EMB, SCR_XENT, SCR_LOSSES, SCR_NORM, SCR_NORM_OUT, SCR_ROW, SCR_ROW32,
    SCR_DQ, SCR_DQ_SEM, SCR_DELTA, SCR_DOCS, SCR_ADAM_OFF, SCR_ADAM_MASK,
    SCR_N_OWN,
    SCR_N = SCR_N_OWN + BACKEND_CUDA_USER_SLOTS
};

typedef struct {
    void *p;
    size_t bytes;
} alloc_rec;

typedef struct {
    int device;
    cudaStream_t st;
    cu_blas *blas;
    size_t now, peak;             // bytes of alloc() + scratch held
    alloc_rec *allocs;            // live alloc() blocks, for their sizes on free
    int n_allocs, cap_allocs;
    alloc_rec scratch[SCR_N];
    const void *adam_key;         // the tensor table whose offsets/mask are uploaded
    int adam_n;
    float *h_losses;              // host copy of the per-token losses
    size_t h_losses_cap;
    // The attention's document bounds (SCR_DOCS) are those of the ids at
    // docs_seg for docs_B x docs_T; a write into those ids through this
    // backend (to_dev, zero, free) drops them.
    const int32_t *docs_seg;
    int64_t docs_B, docs_T;
    // offload: the copy stream, the compute point each copy starts after,
    // the copies' events (created on first use), pinned host memory held
    cudaStream_t copy_st[2];  // the copy lanes (BK_COPY_LANE)
    cudaEvent_t ev_compute;
    cudaEvent_t *ev_copy;
    size_t host_now;
    alloc_rec *host;              // live host_alloc blocks
    int n_host, cap_host;
} cuda_impl;

static cuda_impl *impl_of(backend *b) { return b->impl; }
static cudaStream_t stream_of(backend *b) { return impl_of(b)->st; }
static cu_dtype dt_of(backend *b) { return (cu_dtype)b->dt; }

static void account(cuda_impl *c, size_t add, size_t sub) {
    c->now = c->now + add - sub;
    if (c->now > c->peak) c->peak = c->now;
}

static void *dev_malloc(cuda_impl *c, size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        die("out of GPU memory: cudaMalloc of %.3f GB failed (%s); this backend holds %.3f GB, "
            "the device has %.3f GB free of %.3f GB (try train.recompute: true, a smaller "
            "stages.N.batch_tokens or a larger parallel.sp)",
            bytes / 1e9, cudaGetErrorString(e), c->now / 1e9, free_b / 1e9, total_b / 1e9);
    }
    return p;
}

// Scratch slot `slot` of at least `bytes`.
static void *scratch(backend *b, int slot, size_t bytes) {
    cuda_impl *c = impl_of(b);
    alloc_rec *s = &c->scratch[slot];
    if (s->bytes < bytes) {
        if (s->p) {
            CU_CHECK(cudaStreamSynchronize(c->st));  // nothing enqueued may still use it
            CU_CHECK(cudaFree(s->p));
        }
        account(c, 0, s->bytes);
        s->p = dev_malloc(c, bytes);
        account(c, bytes, 0);
        s->bytes = bytes;
    }
    return s->p;
}

// ---------------------------------------------------------------------------
// Memory

static void *cu_b_alloc(backend *b, size_t bytes) {
    cuda_impl *c = impl_of(b);
    void *p = dev_malloc(c, bytes);
    CU_CHECK(cudaMemsetAsync(p, 0, bytes, c->st));
    if (c->n_allocs == c->cap_allocs) {
        c->cap_allocs = c->cap_allocs ? 2 * c->cap_allocs : 64;
        c->allocs = xrealloc(c->allocs, sizeof *c->allocs * (size_t)c->cap_allocs);
    }
    c->allocs[c->n_allocs++] = (alloc_rec){p, bytes};
    account(c, bytes, 0);
    return p;
}

// Forgets the attention's document bounds if [p, p + bytes) overlaps their ids.
static void docs_touch(cuda_impl *c, const void *p, size_t bytes) {
    const char *lo = (const char *)c->docs_seg;
    if (!lo) return;
    const char *hi = lo + sizeof(int32_t) * (size_t)(c->docs_B * c->docs_T);
    if ((const char *)p < hi && (const char *)p + bytes > lo) c->docs_seg = NULL;
}

static void cu_b_free(backend *b, void *p) {
    if (!p) return;
    cuda_impl *c = impl_of(b);
    docs_touch(c, p, 1);
    for (int i = 0; i < c->n_allocs; i++)
        if (c->allocs[i].p == p) {
            account(c, 0, c->allocs[i].bytes);
            c->allocs[i] = c->allocs[--c->n_allocs];
            CU_CHECK(cudaStreamSynchronize(c->st));
            CU_CHECK(cudaFree(p));
            return;
        }
    die("backend_cuda: free of a pointer it did not allocate");
}

static void cu_b_zero(backend *b, void *p, size_t bytes) {
    docs_touch(impl_of(b), p, bytes);
    CU_CHECK(cudaMemsetAsync(p, 0, bytes, stream_of(b)));
}

static void cu_b_to_dev(backend *b, void *dst, const void *src, size_t bytes) {
    docs_touch(impl_of(b), dst, bytes);
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(b)));
    CU_CHECK(cudaStreamSynchronize(stream_of(b)));  // the host buffer may change on return
}

static void cu_b_to_host(backend *b, void *dst, const void *src, size_t bytes) {
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(b)));
    CU_CHECK(cudaStreamSynchronize(stream_of(b)));
}

static void cu_b_cast(backend *b, void *dst, bk_dtype dst_dt, const void *src, bk_dtype src_dt,
                      int64_t n) {
    cu_cast(dst, (cu_dtype)dst_dt, src, (cu_dtype)src_dt, n, stream_of(b));
}

static void cu_b_sync(backend *b) { CU_CHECK(cudaStreamSynchronize(stream_of(b))); }

// ---------------------------------------------------------------------------
// Model ops

static void cu_b_embedding_forward(backend *b, void *out, const int32_t *tokens, const void *wte,
                                   int64_t N, int64_t C, int64_t V) {
    cu_embedding_forward(out, tokens, wte, N, C, V, dt_of(b), stream_of(b));
}

static void cu_b_embedding_backward(backend *b, float *dwte, const void *dout,
                                    const int32_t *tokens, int64_t N, int64_t C, int64_t V) {
    void *s = scratch(b, SCR_EMB, cu_embedding_scratch_bytes(N, V));
    cu_embedding_backward(dwte, dout, tokens, N, C, V, s, dt_of(b), stream_of(b));
}

static void cu_b_rmsnorm_forward(backend *b, void *out, float *rstd, const void *inp,
                                 const void *w, int64_t N, int64_t C, float eps) {
    cu_rmsnorm_forward(out, rstd, inp, w, N, C, eps, dt_of(b), stream_of(b));
}

static void cu_b_rmsnorm_backward(backend *b, void *dinp, float *dw, const void *dout,
                                  const void *inp, const void *w, const float *rstd, int64_t N,
                                  int64_t C) {
    void *s = scratch(b, SCR_RMS, cu_rmsnorm_scratch_bytes(N, C));
    cu_rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, s, dt_of(b), stream_of(b));
}

static void cu_b_matmul_forward(backend *b, void *out, const void *inp, const void *w, int64_t N,
                                int64_t C, int64_t OC) {
    cu_matmul_forward(impl_of(b)->blas, out, inp, w, N, C, OC, dt_of(b));
}

static void cu_b_matmul_backward(backend *b, void *dinp, float *dw, const void *dout,
                                 const void *inp, const void *w, int64_t N, int64_t C,
                                 int64_t OC) {
    cu_matmul_backward(impl_of(b)->blas, dinp, dw, dout, inp, w, N, C, OC, dt_of(b));
}

static void cu_b_rope_forward(backend *b, void *q, void *k, const int32_t *pos,
                              const uint8_t *win, const rope_table *t, rope_layout layout,
                              int64_t N, int H, int Hkv, int D) {
    cu_rope_forward(q, k, pos, win, t, layout, N, H, Hkv, D, dt_of(b), stream_of(b));
}

static void cu_b_rope_backward(backend *b, void *dq, void *dk, const int32_t *pos,
                               const uint8_t *win, const rope_table *t, rope_layout layout,
                               int64_t N, int H, int Hkv, int D) {
    cu_rope_backward(dq, dk, pos, win, t, layout, N, H, Hkv, D, dt_of(b), stream_of(b));
}

static void cu_b_swiglu_forward(backend *b, void *out, const void *gate, const void *up,
                                int64_t n) {
    cu_swiglu_forward(out, gate, up, n, dt_of(b), stream_of(b));
}

static void cu_b_swiglu_backward(backend *b, void *dgate, void *dup, const void *dout,
                                 const void *gate, const void *up, int64_t n) {
    cu_swiglu_backward(dgate, dup, dout, gate, up, n, dt_of(b), stream_of(b));
}

static void cu_b_add(backend *b, void *y, const void *x, int64_t n) {
    cu_axpy(y, dt_of(b), 1.0f, x, dt_of(b), n, stream_of(b));
}

static void check_attn(const attn_shape *s) {
    if (s->D != 64 && s->D != 128)
        die_user("the cuda attention kernels support head_dim 64 and 128 (model.head_dim is %d)",
                 s->D);
    if (!cu_attn_supported(s))
        die_user("the cuda attention kernels at head_dim %d need more shared memory per block "
                 "than this GPU allows (%d bytes)",
                 s->D, cu_attn_smem_limit());
}

// The document bounds of the batch's segment ids (cu_attn_docs_build): built
// by the first attention call after the ids were uploaded (to_dev) and used
// by every layer's forward and backward until the next upload.
static cu_attn_docs docs_of(backend *b, const int32_t *seg, const attn_shape *s) {
    cuda_impl *c = impl_of(b);
    cu_attn_docs d = {.seg_q = seg, .seg_k = seg, .bounds = NULL};
    if (!seg) return d;
    d.bounds = scratch(b, SCR_DOCS, sizeof(int32_t) * (size_t)cu_attn_docs_ints(s->B, s->Tq, s->Tk));
    if (c->docs_seg != seg || c->docs_B != s->B || c->docs_T != s->Tq) {
        cu_attn_docs_build(&d, s->B, s->Tq, s->Tk, c->st);
        c->docs_seg = seg;
        c->docs_B = s->B;
        c->docs_T = s->Tq;
    }
    return d;
}

static void cu_b_attn_forward(backend *b, void *out, float *lse, const void *q, const void *k,
                              const void *v, const int32_t *seg, const attn_shape *s) {
    check_attn(s);
    cu_attn_docs d = docs_of(b, seg, s);
    cu_attn_forward(out, lse, q, k, v, &d, s, dt_of(b), stream_of(b));
}

// bf16: the kernel adds dk, dv into the bf16 gradients itself and dq
// through an fp32 scratch it needs no zeroing for (cu_attn_backward): one
// rounding each, no fp32 copies of dk, dv.
static void cu_b_attn_backward(backend *b, void *dq, void *dk, void *dv, const void *dout,
                               const void *q, const void *k, const void *v, const void *out,
                               const float *lse, const int32_t *seg, const attn_shape *s) {
    check_attn(s);
    cudaStream_t st = stream_of(b);
    const int64_t nq = s->B * s->Tq * s->H * s->D;
    float *delta = scratch(b, SCR_DELTA, sizeof(float) * (size_t)(s->B * s->H * s->Tq));
    cu_attn_docs d = docs_of(b, seg, s);
    float *dq_acc = NULL;
    int32_t *dq_sem = NULL;
    if (b->dt != BK_F32) {
        dq_acc = scratch(b, SCR_DQ, sizeof(float) * (size_t)nq);
        dq_sem = scratch(b, SCR_DQ_SEM, sizeof(int32_t) * (size_t)cu_attn_dq_sem_ints(s));
    }
    cu_attn_backward(dq, dk, dv, dout, q, k, v, out, lse, delta, dq_acc, dq_sem, &d, s, dt_of(b),
                     st);
}

static double cu_b_xent(backend *b, float *losses_host, void *dh, float *dw, const void *h,
                        const void *w, const int32_t *targets, int64_t N, int64_t C, int64_t V,
                        float grad_scale) {
    cuda_impl *c = impl_of(b);
    int64_t rows = N < BK_XENT_CHUNK_ROWS ? N : BK_XENT_CHUNK_ROWS;
    void *s = scratch(b, SCR_XENT, cu_xent_scratch_bytes(rows, V, dt_of(b)));
    float *losses = scratch(b, SCR_LOSSES, sizeof(float) * (size_t)N);
    cu_xent_forward_backward(c->blas, losses, dh, dh ? dw : NULL, h, w, targets, N, C, V,
                             grad_scale, rows, s, dt_of(b));
    if ((size_t)N > c->h_losses_cap) {
        c->h_losses = xrealloc(c->h_losses, sizeof(float) * (size_t)N);
        c->h_losses_cap = (size_t)N;
    }
    cu_b_to_host(b, c->h_losses, losses, sizeof(float) * (size_t)N);
    double sum = 0;  // ignored rows hold 0, as on the cpu
    for (int64_t i = 0; i < N; i++) sum += c->h_losses[i];
    if (losses_host) memcpy(losses_host, c->h_losses, sizeof(float) * (size_t)N);
    return sum;
}

static void cu_b_logits_row(backend *b, float *logits_host, const void *h, const void *w,
                            int64_t C, int64_t V) {
    void *row = scratch(b, SCR_ROW, bk_dtype_size(b->dt) * (size_t)V);
    cu_matmul_forward(impl_of(b)->blas, row, h, w, 1, C, V, dt_of(b));
    if (b->dt != BK_F32) {
        float *row32 = scratch(b, SCR_ROW32, sizeof(float) * (size_t)V);
        cu_cast(row32, CU_F32, row, dt_of(b), V, stream_of(b));
        row = row32;
    }
    cu_b_to_host(b, logits_host, row, sizeof(float) * (size_t)V);
}

// ---------------------------------------------------------------------------
// Optimizer

static void cu_b_add_f32(backend *b, float *y, const float *x, int64_t n) {
    cu_axpy(y, CU_F32, 1.0f, x, CU_F32, n, stream_of(b));
}

static double cu_b_grad_norm_sq(backend *b, const float *g, int64_t n) {
    void *s = scratch(b, SCR_NORM, cu_grad_norm_scratch_bytes(n));
    double *out = scratch(b, SCR_NORM_OUT, sizeof(double)), host = 0;
    cu_grad_norm_sq(out, g, n, s, stream_of(b));
    cu_b_to_host(b, &host, out, sizeof host);
    return host;
}

static void cu_b_adamw(backend *b, float *param, float *m, float *v, const float *grad,
                       void *work, const param_tensor *tensors, int n_tensors, const adamw_hparams *hp,
                       int64_t step, float grad_scale) {
    cuda_impl *c = impl_of(b);
    int64_t *off = scratch(b, SCR_ADAM_OFF, sizeof(int64_t) * (size_t)(n_tensors + 1));
    uint8_t *mask = scratch(b, SCR_ADAM_MASK, (size_t)n_tensors);
    if (c->adam_key != tensors || c->adam_n != n_tensors) {  // upload the table once
        const param_tensor *t = tensors;
        int64_t *h_off = xmalloc(sizeof(int64_t) * (size_t)(n_tensors + 1));
        uint8_t *h_mask = xmalloc((size_t)n_tensors);
        for (int i = 0; i < n_tensors; i++) {
            h_off[i] = t[i].offset;
            h_mask[i] = t[i].decay;
        }
        h_off[n_tensors] = t[n_tensors - 1].offset + t[n_tensors - 1].shape[0] * t[n_tensors - 1].shape[1];
        cu_b_to_dev(b, off, h_off, sizeof(int64_t) * (size_t)(n_tensors + 1));
        cu_b_to_dev(b, mask, h_mask, (size_t)n_tensors);
        free(h_off);
        free(h_mask);
        c->adam_key = tensors;
        c->adam_n = n_tensors;
    }
    void *copy = work == (void *)param ? NULL : work;
    cu_adamw_update(param, m, v, grad, copy, dt_of(b), off, mask, n_tensors, hp, step, grad_scale,
                    stream_of(b));
}

// ---------------------------------------------------------------------------
// Offload: pinned host memory and the copy stream

static void *cu_b_host_alloc(backend *b, size_t bytes) {
    cuda_impl *c = impl_of(b);
    void *p = NULL;
    cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
    if (e != cudaSuccess)
        die("out of pinned host memory: cudaMallocHost of %.3f GB failed (%s); this backend "
            "holds %.3f GB pinned (parallel.offload needs it: see --dry-run)",
            bytes / 1e9, cudaGetErrorString(e), c->host_now / 1e9);
    memset(p, 0, bytes);
    if (c->n_host == c->cap_host) {
        c->cap_host = c->cap_host ? 2 * c->cap_host : 16;
        c->host = xrealloc(c->host, sizeof *c->host * (size_t)c->cap_host);
    }
    c->host[c->n_host++] = (alloc_rec){p, bytes};
    c->host_now += bytes;
    return p;
}

static void cu_b_host_free(backend *b, void *p) {
    if (!p) return;
    cuda_impl *c = impl_of(b);
    for (int i = 0; i < c->n_host; i++)
        if (c->host[i].p == p) {
            c->host_now -= c->host[i].bytes;
            c->host[i] = c->host[--c->n_host];
            CU_CHECK(cudaFreeHost(p));  // synchronizes: no copy still reads it
            return;
        }
    die("backend_cuda: host_free of a pointer it did not allocate");
}

static cudaEvent_t copy_event(cuda_impl *c, int ev) {
    CHECK(ev >= 0 && ev < BK_COPY_EVENTS);
    if (!c->copy_st[0]) {
        for (int i = 0; i < 2; i++) CU_CHECK(cudaStreamCreateWithFlags(&c->copy_st[i], cudaStreamNonBlocking));
        CU_CHECK(cudaEventCreateWithFlags(&c->ev_compute, cudaEventDisableTiming));
        c->ev_copy = xcalloc(BK_COPY_EVENTS, sizeof *c->ev_copy);
    }
    if (!c->ev_copy[ev]) CU_CHECK(cudaEventCreateWithFlags(&c->ev_copy[ev], cudaEventDisableTiming));
    return c->ev_copy[ev];
}

static void cu_b_copy_async(backend *b, void *dst, const void *src, size_t bytes, int ev) {
    cuda_impl *c = impl_of(b);
    cudaEvent_t e = copy_event(c, ev);
    docs_touch(c, dst, bytes);
    CU_CHECK(cudaEventRecord(c->ev_compute, c->st));
    cudaStream_t st = c->copy_st[ev / BK_COPY_LANE];
    CU_CHECK(cudaStreamWaitEvent(st, c->ev_compute, 0));
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st));
    CU_CHECK(cudaEventRecord(e, st));
}

static void cu_b_copy_wait(backend *b, int ev) {
    cuda_impl *c = impl_of(b);
    CU_CHECK(cudaStreamWaitEvent(c->st, copy_event(c, ev), 0));
}

static void cu_b_copy_sync(backend *b, int ev) {
    CU_CHECK(cudaEventSynchronize(copy_event(impl_of(b), ev)));
}

static const backend_ops cuda_ops = {
    .alloc = cu_b_alloc, .free = cu_b_free, .zero = cu_b_zero, .to_dev = cu_b_to_dev,
    .to_host = cu_b_to_host, .cast = cu_b_cast, .sync = cu_b_sync,
    .embedding_forward = cu_b_embedding_forward, .embedding_backward = cu_b_embedding_backward,
    .rmsnorm_forward = cu_b_rmsnorm_forward, .rmsnorm_backward = cu_b_rmsnorm_backward,
    .matmul_forward = cu_b_matmul_forward, .matmul_backward = cu_b_matmul_backward,
    .rope_forward = cu_b_rope_forward, .rope_backward = cu_b_rope_backward,
    .swiglu_forward = cu_b_swiglu_forward, .swiglu_backward = cu_b_swiglu_backward,
    .add = cu_b_add, .attn_forward = cu_b_attn_forward, .attn_backward = cu_b_attn_backward,
    .xent = cu_b_xent, .logits_row = cu_b_logits_row, .grad_norm_sq = cu_b_grad_norm_sq,
    .add_f32 = cu_b_add_f32,
    .adamw = cu_b_adamw, .host_alloc = cu_b_host_alloc, .host_free = cu_b_host_free,
    .copy_async = cu_b_copy_async, .copy_wait = cu_b_copy_wait, .copy_sync = cu_b_copy_sync,
};

// ---------------------------------------------------------------------------

static int cuda_gpu_count(void) { return cu_device_count(); }

static backend *cuda_create(bk_dtype dt, int device, char *err, size_t errlen) {
    int n = cu_device_count();
    if (n == 0) {
        snprintf(err, errlen, "cuda requested but no GPU is visible (check "
                              "nvidia-smi and CUDA_VISIBLE_DEVICES)");
        return NULL;
    }
    if (device < 0 || device >= n) {
        snprintf(err, errlen, "cuda device %d requested but %d GPU(s) are visible",
                 device, n);
        return NULL;
    }
    CU_CHECK(cudaSetDevice(device));
    cuda_impl *c = xcalloc(1, sizeof *c);
    c->device = device;
    CU_CHECK(cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking));
    c->blas = cu_blas_create(c->st);
    backend *b = xcalloc(1, sizeof *b);
    *b = (backend){.kind = BACKEND_CUDA, .dt = dt, .host_memory = false, .op = &cuda_ops,
                   .impl = c};
    return b;
}

static void cuda_free(backend *b) {
    cuda_impl *c = impl_of(b);
    CU_CHECK(cudaStreamSynchronize(c->st));
    for (int i = 0; i < SCR_N; i++)
        if (c->scratch[i].p) CU_CHECK(cudaFree(c->scratch[i].p));
    for (int i = 0; i < c->n_allocs; i++) CU_CHECK(cudaFree(c->allocs[i].p));
    for (int i = 0; i < c->n_host; i++) CU_CHECK(cudaFreeHost(c->host[i].p));
    if (c->copy_st[0]) {
        for (int i = 0; i < 2; i++) CU_CHECK(cudaStreamSynchronize(c->copy_st[i]));
        for (int i = 0; i < BK_COPY_EVENTS; i++)
            if (c->ev_copy[i]) CU_CHECK(cudaEventDestroy(c->ev_copy[i]));
        CU_CHECK(cudaEventDestroy(c->ev_compute));
        for (int i = 0; i < 2; i++) CU_CHECK(cudaStreamDestroy(c->copy_st[i]));
        free(c->ev_copy);
    }
    cu_blas_free(c->blas);
    CU_CHECK(cudaStreamDestroy(c->st));
    free(c->allocs);
    free(c->host);
    free(c->h_losses);
    free(c);
    free(b);
}

static void cuda_mem_stats(backend *b, size_t *now, size_t *peak) {
    *now = impl_of(b)->now;
    *peak = impl_of(b)->peak;
}

// Versions as CUDA encodes them: 1000 * major + 10 * minor.
static int cuda_describe(int device, char *desc, size_t desc_len, char *bus_id, size_t bus_len) {
    struct cudaDeviceProp p;
    int driver = 0, runtime = 0;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess ||
        cudaDeviceGetPCIBusId(bus_id, (int)bus_len, device) != cudaSuccess ||
        cudaDriverGetVersion(&driver) != cudaSuccess || cudaRuntimeGetVersion(&runtime) != cudaSuccess) {
        (void)cudaGetLastError();
        desc[0] = bus_id[0] = '\0';
        return -1;
    }
    for (char *c = bus_id; *c; c++)  // sysfs spells it in lower case
        if (*c >= 'A' && *c <= 'F') *c = (char)(*c - 'A' + 'a');
    snprintf(desc, desc_len, "%s pci %s driver %d.%d runtime %d.%d", p.name, bus_id, driver / 1000,
             driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
    return 0;
}

static size_t cuda_host_bytes(backend *b) { return impl_of(b)->host_now; }

const backend_impl backend_cuda_impl = {.gpu_count = cuda_gpu_count, .create = cuda_create,
                                        .free = cuda_free, .mem_stats = cuda_mem_stats,
                                        .describe = cuda_describe, .host_bytes = cuda_host_bytes};

void *backend_cuda_stream(backend *b) { return (void *)impl_of(b)->st; }
void *backend_cuda_copy_stream(backend *b, int ev) {
    cuda_impl *c = impl_of(b);
    copy_event(c, ev);  // the copy streams are made with the first event
    return (void *)c->copy_st[ev / BK_COPY_LANE];
}
int backend_cuda_device(backend *b) { return impl_of(b)->device; }

void *backend_cuda_user_scratch(backend *b, int slot, size_t bytes) {
    CHECK(slot >= 0 && slot < BACKEND_CUDA_USER_SLOTS);
    return scratch(b, SCR_N_OWN + slot, bytes);
}
