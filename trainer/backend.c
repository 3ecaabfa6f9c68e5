// backend: choosing a backend. The ONE place that knows whether CUDA was
// built (STRETCH_HAVE_CUDA); everything else calls through backend.h.
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_comm.h"
#include "die.h"
#include "model_ring.h"

#ifdef STRETCH_HAVE_CUDA
#include "backend_cuda.h"
#include "gpu_comm.h"
#endif

int backend_kind_parse(const char *s, backend_kind *out) {
    if (!strcmp(s, "cpu")) *out = BACKEND_CPU;
    else if (!strcmp(s, "cuda")) *out = BACKEND_CUDA;
    else return -1;
    return 0;
}

const char *backend_kind_name(backend_kind k) { return k == BACKEND_CUDA ? "cuda" : "cpu"; }

int backend_gpu_count(void) {
#ifdef STRETCH_HAVE_CUDA
    return backend_cuda_gpu_count();
#else
    return 0;
#endif
}

backend *backend_create(backend_kind kind, bk_dtype dt, int device, char *err, size_t errlen) {
    if (kind == BACKEND_CPU) {
        CHECK(dt == BK_F32);  // the run config refuses train.dtype bf16 on the cpu
        return backend_cpu();
    }
#ifdef STRETCH_HAVE_CUDA
    return backend_cuda_create(dt, device, err, errlen);
#else
    snprintf(err, errlen, "cuda requested but this stretch was built without "
                          "CUDA (rebuild with nvcc on the PATH and -DSTRETCH_CUDA=ON)");
    return NULL;
#endif
}

void backend_free(backend *b) {
    if (!b || b == backend_cpu()) return;
#ifdef STRETCH_HAVE_CUDA
    if (b->kind == BACKEND_CUDA) backend_cuda_free(b);
#endif
}

void backend_mem_stats(backend *b, size_t *now, size_t *peak) {
    *now = *peak = 0;
#ifdef STRETCH_HAVE_CUDA
    if (b->kind == BACKEND_CUDA) backend_cuda_mem_stats(b, now, peak);
#endif
}

// ---------------------------------------------------------------------------
// The communication of a training step (backend_comm.h).

struct backend_comm {
    backend *bk;
    dist_ctx *d;
    dist_grad_sync sync;  // cpu: MPI all-reduce on host buffers
    ring_attn *ring;      // cpu: ring attention (created on demand)
    void *gpu;            // cuda: gpu_comm
};

backend_comm *backend_comm_create(backend *bk, dist_ctx *d, int transport, char *err,
                                  size_t errlen) {
    backend_comm *c = xcalloc(1, sizeof *c);
    c->bk = bk;
    c->d = d;
#ifdef STRETCH_HAVE_CUDA
    if (bk->kind == BACKEND_CUDA) {
        c->gpu = gpu_comm_create(bk, d, transport, err, errlen);
        if (!c->gpu) {
            free(c);
            return NULL;
        }
    }
#endif
    return c;
}

void backend_comm_free(backend_comm *c) {
    if (!c) return;
#ifdef STRETCH_HAVE_CUDA
    if (c->gpu) gpu_comm_free(c->gpu);
#endif
    ring_attn_free(c->ring);
    free(c);
}

const char *backend_comm_name(const backend_comm *c) {
#ifdef STRETCH_HAVE_CUDA
    if (c->gpu) return gpu_comm_name(c->gpu);
#endif
    return "mpi";
}

void backend_comm_grad_begin(backend_comm *c, float *grads, int64_t n) {
#ifdef STRETCH_HAVE_CUDA
    if (c->gpu) {
        gpu_comm_grad_begin(c->gpu, grads, n);
        return;
    }
#endif
    dist_grad_sync_begin(&c->sync, c->d, grads, n, DIST_BUCKET_FLOATS);
}

void backend_comm_grad_ready(backend_comm *c, int64_t lo) {
#ifdef STRETCH_HAVE_CUDA
    if (c->gpu) {
        gpu_comm_grad_ready(c->gpu, lo);
        return;
    }
#endif
    dist_grad_sync_ready(&c->sync, lo);
}

void backend_comm_grad_end(backend_comm *c) {
#ifdef STRETCH_HAVE_CUDA
    if (c->gpu) {
        gpu_comm_grad_end(c->gpu);
        return;
    }
#endif
    dist_grad_sync_end(&c->sync);
}

model_attention backend_comm_ring_attention(backend_comm *c) {
#ifdef STRETCH_HAVE_CUDA
    if (c->gpu) return gpu_ring_attention(c->gpu);
#endif
    if (!c->ring) c->ring = ring_attn_create(c->d);
    return model_ring_attention(c->ring);
}
