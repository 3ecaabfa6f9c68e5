// backend_comm: the communication of a training step on a backend. See
// backend_comm.h.
#include "backend_comm.h"

#include <stdlib.h>

#include "die.h"
#include "model_ring.h"

#ifdef STRETCH_HAVE_CUDA
#include "gpu_comm.h"
#endif

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
