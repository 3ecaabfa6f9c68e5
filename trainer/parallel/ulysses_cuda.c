// ulysses_cuda: Ulysses (all-to-all) attention and the ring x ulysses hybrid
// on the GPU, the algorithm of ulysses.c (see ulysses.h) on device buffers:
// q, k, v are packed into all-to-all blocks (ulysses_layout.h), exchanged
// over the u group by gpu_comm_alltoall (NCCL grouped send/recv on the comm
// stream, or host-staged MPI), unpacked to the head layout (B, TG, W, D);
// the GPU ring attention of ring_attn_cuda.c runs on that head subset over
// the ring group (ring == 1: the backend's plain attention of the whole
// ring-local sequence); the output goes back by one more all-to-all.
// Backward: q, k, v, out, dout exchanged again, ring backward on the head
// subset into zeroed head-layout gradients, which go back and are ADDED to
// the caller's dq, dk, dv (replicated kv heads: every replica added).
//
// Everything stays in the activation dtype (bf16 halves the bytes): the
// head-layout gradients are rounded to it once before they travel, one
// rounding more than the 1-rank path (within the bf16 tolerances of the
// tests). Segment ids are all-gathered by an all-to-all of U copies.
// Tested by tests/gpu/test_gpu_ulysses.c (+ .sh) against the 1-rank model,
// on emulated GPUs by gpuemu_ulysses and gpuemu_stretch_ulysses (the whole
// trainer), its layout steps by gpuemu_ulysses_layout (tests/gpu/emu).
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "backend_cuda.h"
#include "cu_common.h"
#include "die.h"
#include "gpu_comm.h"
#include "ulysses.h"
#include "ulysses_layout.h"

typedef struct {
    gpu_comm *comm;
    backend *bk;
    dist_ctx *d;
    void *st;               // the backend's compute stream
    model_attention ring;   // ring_attn_cuda over the ring group
    size_t cap_q, cap_kv, cap_buf, cap_seq, cap_seg;  // bytes
    void *qh, *oh, *doh, *dqh;  // (B, TG, H/U, D) head layout, dt
    void *kh, *vh, *dkh, *dvh;  // (B, TG, Hkvl, D)
    void *send, *recv;          // U all-to-all blocks of the largest tensor
    void *seq;                  // (B, TL, H, D): the gradients' unpack scratch
    int32_t *segh;              // (B, TG)
} uly_gpu;

static void regrow(uly_gpu *u, void **p, size_t bytes) {
    u->bk->op->free(u->bk, *p);
    *p = u->bk->op->alloc(u->bk, bytes);
}

static ulysses_layout layout_of(const uly_gpu *u, int64_t B, int64_t T, int H, int Hkv, int D) {
    char err[256];
    if (ulysses_check_heads(u->d->ulysses, H, Hkv, err, sizeof err) != 0) die("%s", err);
    return (ulysses_layout){.U = u->d->ulysses, .me = u->d->u_rank, .B = B, .TL = T,
                            .TG = (int64_t)u->d->ulysses * T, .H = H, .Hkv = Hkv, .D = D,
                            .dt = (int)u->bk->dt};
}

static void reserve(uly_gpu *u, const ulysses_layout *l, bool backward) {
    const size_t es = bk_dtype_size(u->bk->dt);
    const size_t nq = (size_t)ulysses_layout_block(l, l->H) * (size_t)l->U * es;
    const size_t nkv = (size_t)ulysses_layout_block(l, l->Hkv) * (size_t)l->U * es;
    const size_t nseg = sizeof(int32_t) * (size_t)(l->B * l->TG);
    size_t nbuf = nq > nkv ? nq : nkv;
    if (nseg > nbuf) nbuf = nseg;
    if (nq > u->cap_q) {
        regrow(u, &u->qh, nq);
        regrow(u, &u->oh, nq);
        if (u->doh) {
            regrow(u, &u->doh, nq);
            regrow(u, &u->dqh, nq);
        }
        u->cap_q = nq;
    }
    if (nkv > u->cap_kv) {
        regrow(u, &u->kh, nkv);
        regrow(u, &u->vh, nkv);
        if (u->dkh) {
            regrow(u, &u->dkh, nkv);
            regrow(u, &u->dvh, nkv);
        }
        u->cap_kv = nkv;
    }
    if (nbuf > u->cap_buf) {
        regrow(u, &u->send, nbuf);
        regrow(u, &u->recv, nbuf);
        u->cap_buf = nbuf;
    }
    if (nseg > u->cap_seg) {
        regrow(u, (void **)&u->segh, nseg);
        u->cap_seg = nseg;
    }
    if (!backward) return;
    if (!u->doh) {  // the backward's buffers, at the forward's capacities
        u->doh = u->bk->op->alloc(u->bk, u->cap_q);
        u->dqh = u->bk->op->alloc(u->bk, u->cap_q);
        u->dkh = u->bk->op->alloc(u->bk, u->cap_kv);
        u->dvh = u->bk->op->alloc(u->bk, u->cap_kv);
    }
    const size_t nseq = (size_t)(l->B * l->TL * l->H) * (size_t)l->D * es;  // H >= Hkv
    if (nseq > u->cap_seq) {
        regrow(u, &u->seq, nseq);
        u->cap_seq = nseq;
    }
}

static dist_dtype wire_type(const uly_gpu *u) { return u->bk->dt == BK_BF16 ? DIST_U16 : DIST_F32; }

// x (B, TL, heads, D) -> y (B, TG, W, D) over the u group.
static void to_heads(uly_gpu *u, void *y, const void *x, int heads, const ulysses_layout *l) {
    ulysses_pack_seq(u->send, x, heads, l, u->st);
    gpu_comm_alltoall(u->comm, u->recv, u->send, ulysses_layout_block(l, heads), wire_type(u));
    ulysses_unpack_heads(y, u->recv, heads, l, u->st);
}

// y (B, TG, W, D) -> x (B, TL, heads, D): written, or added through u->seq.
static void to_seq(uly_gpu *u, void *x, const void *y, int heads, const ulysses_layout *l, bool add) {
    ulysses_pack_heads(u->send, y, heads, l, u->st);
    gpu_comm_alltoall(u->comm, u->recv, u->send, ulysses_layout_block(l, heads), wire_type(u));
    if (add)
        ulysses_unpack_seq_add(x, u->seq, u->recv, heads, l, u->st);
    else
        ulysses_unpack_seq(x, u->recv, heads, l, u->st);
}

static const int32_t *gather_seg(uly_gpu *u, const int32_t *seg, const ulysses_layout *l) {
    if (!seg) return NULL;
    ulysses_pack_seg(u->send, seg, l, u->st);
    gpu_comm_alltoall(u->comm, u->recv, u->send, l->B * l->TL, DIST_I32);
    ulysses_unpack_seg(u->segh, u->recv, l, u->st);
    return u->segh;
}

static int heads_local(const ulysses_layout *l, int heads) {
    int lo, W;
    ulysses_layout_heads(l, heads, l->me, &lo, &W);
    return W;
}

static void uly_forward(void *ctx, void *out, float *lse, const void *q, const void *k,
                        const void *v, const int32_t *seg, int64_t B, int64_t T, int H, int Hkv,
                        int D) {
    uly_gpu *u = ctx;
    ulysses_layout l = layout_of(u, B, T, H, Hkv, D);
    reserve(u, &l, false);
    to_heads(u, u->qh, q, H, &l);
    to_heads(u, u->kh, k, Hkv, &l);
    to_heads(u, u->vh, v, Hkv, &l);
    const int32_t *segh = gather_seg(u, seg, &l);
    // lse: the model's (B, H, TL) floats hold the head-sharded (B, H/U, TG).
    u->ring.forward(u->ring.ctx, u->oh, lse, u->qh, u->kh, u->vh, segh, B, l.TG,
                    heads_local(&l, H), heads_local(&l, Hkv), D);
    to_seq(u, out, u->oh, H, &l, false);
}

static void uly_backward(void *ctx, void *dq, void *dk, void *dv, const void *dout,
                         const void *q, const void *k, const void *v, const void *out,
                         const float *lse, const int32_t *seg, int64_t B, int64_t T, int H,
                         int Hkv, int D) {
    uly_gpu *u = ctx;
    ulysses_layout l = layout_of(u, B, T, H, Hkv, D);
    reserve(u, &l, true);
    to_heads(u, u->qh, q, H, &l);
    to_heads(u, u->kh, k, Hkv, &l);
    to_heads(u, u->vh, v, Hkv, &l);
    to_heads(u, u->oh, out, H, &l);
    to_heads(u, u->doh, dout, H, &l);
    const int32_t *segh = gather_seg(u, seg, &l);
    const int Hl = heads_local(&l, H), Hkvl = heads_local(&l, Hkv);
    const size_t es = bk_dtype_size(u->bk->dt);
    const size_t nq = (size_t)(B * l.TG * Hl * D) * es, nkv = (size_t)(B * l.TG * Hkvl * D) * es;
    cudaStream_t st = (cudaStream_t)u->st;
    CU_CHECK(cudaMemsetAsync(u->dqh, 0, nq, st));  // zero bits: 0.0 in fp32 and bf16
    CU_CHECK(cudaMemsetAsync(u->dkh, 0, nkv, st));
    CU_CHECK(cudaMemsetAsync(u->dvh, 0, nkv, st));
    u->ring.backward(u->ring.ctx, u->dqh, u->dkh, u->dvh, u->doh, u->qh, u->kh, u->vh, u->oh, lse,
                     segh, B, l.TG, Hl, Hkvl, D);
    to_seq(u, dq, u->dqh, H, &l, true);
    to_seq(u, dk, u->dkh, Hkv, &l, true);
    to_seq(u, dv, u->dvh, Hkv, &l, true);
}

model_attention gpu_ulysses_attention(gpu_comm *c) {
    // One per comm, freed with the process (device buffers grown to the
    // largest shape), like gpu_ring_attention's.
    uly_gpu *u = xcalloc(1, sizeof *u);
    u->comm = c;
    u->bk = gpu_comm_backend(c);
    u->d = gpu_comm_dist(c);
    u->st = backend_cuda_stream(u->bk);
    u->ring = gpu_ring_attention(c);
    return (model_attention){.forward = uly_forward, .backward = uly_backward, .ctx = u};
}
