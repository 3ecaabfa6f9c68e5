// backend: the ops the model and the training step call, over buffers that
// live where the backend computes (host memory for cpu, device memory for
// cuda). model.c and train.c call only these, so there is ONE model code
// path for both backends (docs/architecture.md: the model calls ops without
// knowing the backend).
//
// Conventions (those of kernels/cpu and kernels/cuda/cu_common.h):
// - `void *` tensors hold activations or the working copy of the weights in
//   the backend's dtype b->dt; `float *` tensors are always fp32 (parameter
//   gradients, master parameters, AdamW moments, rstd, lse);
// - backward ops ACCUMULATE (+=) into their gradient outputs;
// - the cpu backend calls the kernels/cpu functions exactly as model.c did
//   before the interface existed (bit-identical results); it is stateless and
//   shared (backend_cpu()).
// - the cuda backend enqueues everything on one compute stream; to_host and
//   the ops that return a host value (xent, grad_norm_sq) synchronize.
//
// The only `#ifdef STRETCH_HAVE_CUDA` are the table entries of backend.c
// (backends) and parallel/backend_comm.c (their transports).
//
// Every op is tested on every backend by the op harness tests/ops (ctest
// ops_check: the cpu against float64 references, cuda against the cpu);
// (cpu) by every model test: tests/unit/test_model.c and the MPI ring tests
// run through it; (cuda) by tests/gpu/test_gpu_model.c on a GPU.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adamw.h"         // adamw_hparams
#include "attn.h"          // attn_shape
#include "rope_scaling.h"  // rope_table, rope_layout

typedef enum { BK_F32 = 0, BK_BF16 = 1 } bk_dtype;  // == cu_dtype values
typedef enum { BACKEND_CPU = 0, BACKEND_CUDA = 1 } backend_kind;

// Rows of one chunk of LM-head logits in the cuda xent (the (N, V) logits
// never exist: 4096 x 49152 bf16 is 400 MB).
enum { BK_XENT_CHUNK_ROWS = 4096 };

static inline size_t bk_dtype_size(bk_dtype dt) { return dt == BK_BF16 ? 2 : 4; }

// One named tensor inside the flat parameter buffer (the model's layout,
// model_param_layout; the optimizer ops need offsets and decay).
typedef struct {
    char name[96];       // HF Llama name
    int64_t offset;      // in floats, into the flat buffer
    int64_t shape[2];    // rows, cols (cols = 1 for vectors)
    bool decay;          // AdamW weight decay applies (matrices, not norms)
} param_tensor;

typedef struct backend backend;

typedef struct {
    // -- memory ------------------------------------------------------------
    void *(*alloc)(backend *b, size_t bytes);  // zeroed; dies when out of memory
    void (*free)(backend *b, void *p);
    void (*zero)(backend *b, void *p, size_t bytes);
    void (*to_dev)(backend *b, void *dst, const void *src_host, size_t bytes);
    void (*to_host)(backend *b, void *dst_host, const void *src, size_t bytes);
    // dst (n, dst_dt) = src (n, src_dt); fp32 -> bf16 rounds to nearest even.
    void (*cast)(backend *b, void *dst, bk_dtype dst_dt, const void *src, bk_dtype src_dt,
                 int64_t n);
    void (*sync)(backend *b);  // waits for everything enqueued

    // -- model ops (void * in b->dt) ----------------------------------------
    void (*embedding_forward)(backend *b, void *out, const int32_t *tokens, const void *wte,
                              int64_t N, int64_t C, int64_t V);
    void (*embedding_backward)(backend *b, float *dwte, const void *dout, const int32_t *tokens,
                               int64_t N, int64_t C, int64_t V);
    void (*rmsnorm_forward)(backend *b, void *out, float *rstd, const void *inp, const void *w,
                            int64_t N, int64_t C, float eps);
    void (*rmsnorm_backward)(backend *b, void *dinp, float *dw, const void *dout, const void *inp,
                             const void *w, const float *rstd, int64_t N, int64_t C);
    void (*matmul_forward)(backend *b, void *out, const void *inp, const void *w, int64_t N,
                           int64_t C, int64_t OC);
    void (*matmul_backward)(backend *b, void *dinp, float *dw, const void *dout, const void *inp,
                            const void *w, int64_t N, int64_t C, int64_t OC);
    // win: per-token window flags of a mixed table (kernels/cpu/rope.h), else NULL
    void (*rope_forward)(backend *b, void *q, void *k, const int32_t *pos, const uint8_t *win,
                         const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv,
                         int D);
    void (*rope_backward)(backend *b, void *dq, void *dk, const int32_t *pos, const uint8_t *win,
                          const rope_table *t, rope_layout layout, int64_t N, int H, int Hkv,
                          int D);
    void (*swiglu_forward)(backend *b, void *out, const void *gate, const void *up, int64_t n);
    void (*swiglu_backward)(backend *b, void *dgate, void *dup, const void *dout,
                            const void *gate, const void *up, int64_t n);
    void (*add)(backend *b, void *y, const void *x, int64_t n);  // y += x
    // Whole causal attention (single rank); lse fp32 (B, H, T).
    void (*attn_forward)(backend *b, void *out, float *lse, const void *q, const void *k,
                         const void *v, const int32_t *seg, const attn_shape *s);
    void (*attn_backward)(backend *b, void *dq, void *dk, void *dv, const void *dout,
                          const void *q, const void *k, const void *v, const void *out,
                          const float *lse, const int32_t *seg, const attn_shape *s);
    // Chunked LM head + cross-entropy (no (N, V) logits); returns the loss
    // SUM; losses_host (N) or NULL gets each token's loss; dh == NULL: forward
    // only. dh (N, C) +=, dw (V, C) fp32 +=.
    double (*xent)(backend *b, float *losses_host, void *dh, float *dw, const void *h,
                   const void *w, const int32_t *targets, int64_t N, int64_t C, int64_t V,
                   float grad_scale);
    // logits_host (V) = h (C) @ w (V, C)^T, fp32 on the host (greedy decoding).
    void (*logits_row)(backend *b, float *logits_host, const void *h, const void *w, int64_t C,
                       int64_t V);

    // -- optimizer (fp32) ----------------------------------------------------
    double (*grad_norm_sq)(backend *b, const float *g, int64_t n);
    void (*add_f32)(backend *b, float *y, const float *x, int64_t n);  // y += x (ZeRO-3's reduced units)
    // AdamW over every tensor of the flat buffers; tensors with decay get
    // hp->weight_decay, the others 0. work (b->dt), if not NULL and not
    // param itself, receives the updated weights (the bf16 working copy).
    void (*adamw)(backend *b, float *param, float *m, float *v, const float *grad, void *work,
                  const param_tensor *tensors, int n_tensors, const adamw_hparams *hp,
                  int64_t step, float grad_scale);

    // -- offload (parallel.offload, docs/distributed.md) ---------------------
    // Host memory the copies below read and write: pinned on cuda (so the
    // copies are asynchronous DMA), plain on the cpu. Zeroed.
    void *(*host_alloc)(backend *b, size_t bytes);
    void (*host_free)(backend *b, void *p);
    // Copies bytes between host_alloc memory and backend memory (either way)
    // on the backend's copy stream of ev (BK_COPY_LANE), after everything enqueued so far on the
    // compute stream; event ev (0 <= ev < BK_COPY_EVENTS) marks its end. The
    // cpu copies at once.
    void (*copy_async)(backend *b, void *dst, const void *src, size_t bytes, int ev);
    void (*copy_wait)(backend *b, int ev);  // the compute stream waits for event ev
    void (*copy_sync)(backend *b, int ev);  // the host waits for event ev
} backend_ops;

// Events of copy_async: one per residual checkpoint of a model's layers or
// per gradient chunk of the offloaded optimizer, reused step after step.
// A device backend runs the copies of the two halves of the events
// ([0, BK_COPY_LANE): the model's checkpoints; the rest: the optimizer's
// chunks) on two copy streams, so that a gradient chunk waiting for its
// reduction never holds up a checkpoint prefetch queued after it.
enum { BK_COPY_EVENTS = 4096, BK_COPY_LANE = BK_COPY_EVENTS / 2 };

struct backend {
    backend_kind kind;
    bk_dtype dt;           // activations and the working copy of the weights
    bool host_memory;      // buffers are plain host memory (cpu)
    const backend_ops *op;
    void *impl;            // the implementation's state
};

// The shared fp32 CPU backend (never freed).
backend *backend_cpu(void);

// Parses "cpu" / "cuda" and "fp32" / "bf16" ("auto": bf16 on cuda, fp32 on
// cpu). Returns 0 or -1.
int backend_kind_parse(const char *s, backend_kind *out);
const char *backend_kind_name(backend_kind k);

// The backend of a run: cpu (dt must be fp32: the run config refuses bf16 on
// the cpu), or cuda on device `device` (the rank's GPU). Returns NULL with
// one line in err when it cannot be had (built without CUDA, no GPU visible),
// worded without the setting that asked for it: the caller names its key or
// flag (a user error, exit 2).
backend *backend_create(backend_kind kind, bk_dtype dt, int device, char *err, size_t errlen);
void backend_free(backend *b);  // no-op for backend_cpu()

// Number of GPUs visible (0 when built without CUDA).
int backend_gpu_count(void);

// GPU device for the start-up log: desc "NAME pci BUS driver X.Y runtime
// X.Y" and its PCI bus id alone ("0000:1b:00.0", for numa_sysfs.h). -1 (and
// "" in both) when built without CUDA or the device cannot be queried.
int backend_gpu_describe(int device, char *desc, size_t desc_len, char *bus_id, size_t bus_len);

// Bytes the backend holds now and at most so far (its own allocations and
// scratch; cpu: 0). For the peak-memory report of a training step.
void backend_mem_stats(backend *b, size_t *now, size_t *peak);
// Bytes of host_alloc memory the backend holds now (cuda: pinned; cpu: 0).
size_t backend_host_bytes(backend *b);
