// backend_comm: the communication of a training step on a backend. See
// backend_comm.h.
#include "backend_comm.h"

#include <stdlib.h>

#include "die.h"
#include "gpu_comm.h"
#include "model_sp_attn.h"

// ---------------------------------------------------------------------------
// cpu: MPI all-reduce on host buffers (dist.c), ring attention (ring_attn.c),
// or ulysses / ring x ulysses attention (ulysses.c) when parallel.ulysses > 1.

typedef struct {
    dist_ctx *d;
    dist_grad_sync sync;
    ring_attn *ring;  // created on first use (sp > 1, ulysses == 1)
    ulysses_attn *uly;  // created on first use (ulysses > 1)
} mpi_comm;

static void *mpi_create(backend *bk, dist_ctx *d, int transport, char *err, size_t errlen) {
    mpi_comm *m = xcalloc(1, sizeof *m);
    m->d = d;
    return m;
}

static void mpi_free(void *impl) {
    mpi_comm *m = impl;
    ring_attn_free(m->ring);
    ulysses_attn_free(m->uly);
    free(m);
}

static const char *mpi_name(const void *impl) { return "mpi"; }

static void mpi_grad_begin(void *impl, float *grads, int64_t n) {
    mpi_comm *m = impl;
    dist_grad_sync_begin(&m->sync, m->d, grads, n, DIST_BUCKET_FLOATS);
}

static void mpi_grad_ready(void *impl, int64_t lo) { dist_grad_sync_ready(&((mpi_comm *)impl)->sync, lo); }
static void mpi_grad_end(void *impl) { dist_grad_sync_end(&((mpi_comm *)impl)->sync); }

static void mpi_grad_begin_scatter(void *impl, float *grads, int64_t n, int64_t shard) {
    mpi_comm *m = impl;
    dist_grad_sync_begin_scatter(&m->sync, m->d, grads, n, DIST_SCATTER_BUCKET_FLOATS, shard);
    m->sync.release = true;  // host buffers: the pages of others' parts go back (zero_pages.h)
}

static void mpi_param_gather(void *impl, void *buf, int64_t n, int64_t shard, int elem_bytes) {
    mpi_comm *m = impl;
    dist_shard_allgather(m->d, buf, n, shard, elem_bytes == 2 ? DIST_U16 : DIST_F32);
}

static model_attention mpi_ring_attention(void *impl) {
    mpi_comm *m = impl;
    if (m->d->ulysses > 1) {
        if (!m->uly) m->uly = ulysses_attn_create(m->d);
        return model_ulysses_attention(m->uly);
    }
    if (!m->ring) m->ring = ring_attn_create(m->d);
    return model_ring_attention(m->ring);
}

static const backend_comm_ops mpi_comm_ops = {
    .create = mpi_create, .free = mpi_free, .name = mpi_name, .grad_begin = mpi_grad_begin,
    .grad_ready = mpi_grad_ready, .grad_end = mpi_grad_end,
    .grad_begin_scatter = mpi_grad_begin_scatter, .param_gather = mpi_param_gather,
    .ring_attention = mpi_ring_attention,
};

// The transports of each backend kind built into this stretch.
#ifdef STRETCH_HAVE_CUDA
static const backend_comm_ops *const cuda_comm_ops = &gpu_comm_ops;
#else
static const backend_comm_ops *const cuda_comm_ops = NULL;
#endif

// ---------------------------------------------------------------------------

struct backend_comm {
    const backend_comm_ops *ops;
    void *impl;
};

backend_comm *backend_comm_create(backend *bk, dist_ctx *d, int transport, char *err,
                                  size_t errlen) {
    const backend_comm_ops *ops = bk->kind == BACKEND_CUDA ? cuda_comm_ops : &mpi_comm_ops;
    CHECK(ops);  // a cuda backend exists only in CUDA builds
    void *impl = ops->create(bk, d, transport, err, errlen);
    if (!impl) return NULL;
    backend_comm *c = xcalloc(1, sizeof *c);
    *c = (backend_comm){.ops = ops, .impl = impl};
    return c;
}

void backend_comm_free(backend_comm *c) {
    if (!c) return;
    c->ops->free(c->impl);
    free(c);
}

const char *backend_comm_name(const backend_comm *c) { return c->ops->name(c->impl); }
void backend_comm_grad_begin(backend_comm *c, float *grads, int64_t n) { c->ops->grad_begin(c->impl, grads, n); }
void backend_comm_grad_ready(backend_comm *c, int64_t lo) { c->ops->grad_ready(c->impl, lo); }
void backend_comm_grad_end(backend_comm *c) { c->ops->grad_end(c->impl); }
bool backend_comm_grad_copy_after(backend_comm *c, int64_t lo, int64_t hi, int ev) {
    return c->ops->grad_copy_after && c->ops->grad_copy_after(c->impl, lo, hi, ev);
}
void backend_comm_grad_begin_scatter(backend_comm *c, float *grads, int64_t n, int64_t shard) {
    c->ops->grad_begin_scatter(c->impl, grads, n, shard);
}
void backend_comm_param_gather(backend_comm *c, void *buf, int64_t n, int64_t shard, int elem_bytes) {
    c->ops->param_gather(c->impl, buf, n, shard, elem_bytes);
}
void backend_comm_unit_gather(backend_comm *c, int slot, void *dst, const void *slice, int64_t n,
                              int64_t shard, int64_t lo, int64_t hi, int elem_bytes) {
    CHECK(c->ops->unit_gather);  // device backends only
    c->ops->unit_gather(c->impl, slot, dst, slice, n, shard, lo, hi, elem_bytes);
}
void backend_comm_unit_wait(backend_comm *c, int slot) { c->ops->unit_wait(c->impl, slot); }
void backend_comm_unit_reduce(backend_comm *c, int slot, float *buf, int64_t n, int64_t shard,
                              int64_t lo, int64_t hi) {
    CHECK(c->ops->unit_reduce);  // device backends only
    c->ops->unit_reduce(c->impl, slot, buf, n, shard, lo, hi);
}
void backend_comm_unit_reduce_wait(backend_comm *c, int slot) { c->ops->unit_reduce_wait(c->impl, slot); }
model_attention backend_comm_ring_attention(backend_comm *c) { return c->ops->ring_attention(c->impl); }
