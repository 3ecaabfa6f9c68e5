// ring_attn_cuda: ring attention on the GPU, the logic of ring_attn.c step
// for step (zig-zag chunks, causally empty pairs skipped, K/V double-buffered
// around the ring while the pairs in hand compute, dK/dV accumulators
// travelling one step behind, fp32 accumulators) over cu_attn's block
// kernels, with the bytes carried by gpu_comm (NCCL on its comm stream, or
// MPI through host copies). See ring_attn.h for the algorithm, gpu_comm.h
// for the transports.
//
// Differences from the cpu version, all about memory: q, k, v, out, dout and
// the K/V in flight are in the activation dtype (bf16 halves the bytes on
// the wire); out and dq accumulate in fp32 scratch and are cast once at the
// end; the LSE re-layout (B, H, TL) <-> (2B, H, Tc) is 2-D device copies.
//
// The ring is the grid's ring group (dist.h: ring, ring_rank; the sp ranks
// when ulysses == 1). Inside the ring x ulysses hybrid, ulysses_cuda.c
// calls this on the head subset of its u rank (T = the ring-local rows).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend_cuda.h"
#include "cu_attn.h"
#include "cu_ops.h"
#include "die.h"
#include "gpu_comm.h"
#include "zigzag.h"

enum { TAG_K = 1, TAG_V, TAG_SEG, TAG_DK, TAG_DV };

typedef struct {
    gpu_comm *comm;
    backend *bk;
    dist_ctx *d;
    cudaStream_t st;
    size_t cap_kv, cap_rows, cap_q, cap_lse;  // elements
    void *kbuf[2], *vbuf[2];     // (B, TL, Hkv, D) dt
    int32_t *sbuf[2];            // (B, TL)
    float *dkbuf[3], *dvbuf[3];  // (B, TL, Hkv, D) fp32
    float *acc;                  // (B, TL, H, D) fp32: out, then dq
    float *lse, *delta, *ninf;   // (2B, H, Tc) pair layout; ninf: all -INFINITY
    int32_t *docs;               // document bounds of the pair in hand (cu_attn_docs_build)
    size_t cap_docs;             // int32 elements
    int32_t *dq_sem;             // the pair's dQ order counters (cu_attn_block_backward)
    size_t cap_sem;              // int32 elements
} ring_gpu;

static size_t dts(const ring_gpu *r) { return bk_dtype_size(r->bk->dt); }
static cu_dtype cdt(const ring_gpu *r) { return (cu_dtype)r->bk->dt; }

static void regrow(ring_gpu *r, void **p, size_t bytes) {
    r->bk->op->free(r->bk, *p);
    *p = r->bk->op->alloc(r->bk, bytes);
}

static void reserve(ring_gpu *r, int64_t B, int64_t TL, int H, int Hkv, int D, bool backward) {
    size_t n_kv = (size_t)(B * TL * Hkv * D), n_rows = (size_t)(B * TL);
    size_t n_q = (size_t)(B * TL * H * D), n_lse = (size_t)(B * H * TL);
    if (n_kv > r->cap_kv) {
        for (int i = 0; i < 2; i++) {
            regrow(r, &r->kbuf[i], n_kv * dts(r));
            regrow(r, &r->vbuf[i], n_kv * dts(r));
        }
        for (int i = 0; i < 3; i++) {
            regrow(r, (void **)&r->dkbuf[i], n_kv * sizeof(float));
            regrow(r, (void **)&r->dvbuf[i], n_kv * sizeof(float));
        }
        r->cap_kv = n_kv;
    }
    if (n_rows > r->cap_rows) {
        for (int i = 0; i < 2; i++) regrow(r, (void **)&r->sbuf[i], n_rows * sizeof(int32_t));
        r->cap_rows = n_rows;
    }
    if (n_q > r->cap_q) {
        regrow(r, (void **)&r->acc, n_q * sizeof(float));
        r->cap_q = n_q;
    }
    size_t n_docs = (size_t)cu_attn_docs_ints(1, TL / 2, TL / 2);
    if (n_docs > r->cap_docs) {
        regrow(r, (void **)&r->docs, n_docs * sizeof(int32_t));
        r->cap_docs = n_docs;
    }
    const attn_shape pair = {.B = 1, .Tq = TL / 2, .Tk = TL / 2, .H = H, .Hkv = Hkv, .D = D};
    size_t n_sem = (size_t)cu_attn_dq_sem_ints(&pair);
    if (n_sem > r->cap_sem) {
        regrow(r, (void **)&r->dq_sem, n_sem * sizeof(int32_t));
        r->cap_sem = n_sem;
    }
    if (n_lse > r->cap_lse) {
        regrow(r, (void **)&r->lse, n_lse * sizeof(float));
        regrow(r, (void **)&r->delta, n_lse * sizeof(float));
        regrow(r, (void **)&r->ninf, n_lse * sizeof(float));
        float *h = xmalloc(n_lse * sizeof(float));
        for (size_t i = 0; i < n_lse; i++) h[i] = -INFINITY;
        r->bk->op->to_dev(r->bk, r->ninf, h, n_lse * sizeof(float));
        free(h);
        r->cap_lse = n_lse;
    }
    (void)backward;
}

// lse (B, H, TL) <-> pair layout (2B, H, Tc), as 2-D copies of H rows.
static void lse_relayout(ring_gpu *r, float *dst, const float *src, int64_t B, int H, int64_t TL,
                         bool to_pairs) {
    const int64_t Tc = TL / 2;
    for (int64_t b = 0; b < B; b++)
        for (int c = 0; c < 2; c++) {
            float *whole = (float *)(to_pairs ? src : dst) + b * H * TL + c * Tc;
            float *pairs = (float *)(to_pairs ? dst : src) + (2 * b + c) * H * Tc;
            if (to_pairs)
                CU_CHECK(cudaMemcpy2DAsync(pairs, (size_t)Tc * 4, whole, (size_t)TL * 4,
                                           (size_t)Tc * 4, (size_t)H, cudaMemcpyDeviceToDevice, r->st));
            else
                CU_CHECK(cudaMemcpy2DAsync(whole, (size_t)TL * 4, pairs, (size_t)Tc * 4,
                                           (size_t)Tc * 4, (size_t)H, cudaMemcpyDeviceToDevice, r->st));
        }
}

typedef struct {
    int src;             // ring rank owning these rows
    const void *k, *v;   // (B, TL, Hkv, D) dt
    const int32_t *seg;  // (B, TL) or NULL
} kv_block;

typedef struct {
    int64_t B, TL;
    int H, Hkv, D;
} shape5;

static dist_dtype kv_type(const ring_gpu *r) { return r->bk->dt == BK_BF16 ? DIST_U16 : DIST_F32; }

static void shift_kv(ring_gpu *r, gpu_xfer *x, const kv_block *cur, int slot, const shape5 *s) {
    int64_t n_kv = s->B * s->TL * s->Hkv * s->D;
    gpu_comm_shift(r->comm, x, r->kbuf[slot], cur->k, n_kv, kv_type(r), TAG_K);
    gpu_comm_shift(r->comm, x, r->vbuf[slot], cur->v, n_kv, kv_type(r), TAG_V);
    if (cur->seg) gpu_comm_shift(r->comm, x, r->sbuf[slot], cur->seg, s->B * s->TL, DIST_I32, TAG_SEG);
}

static kv_block arrived_kv(const ring_gpu *r, const kv_block *prev, int slot) {
    int ring = r->d->ring;
    return (kv_block){.src = (prev->src + ring - 1) % ring, .k = r->kbuf[slot], .v = r->vbuf[slot],
                      .seg = prev->seg ? r->sbuf[slot] : NULL};
}

// Visits every (sequence, query chunk, key chunk) pair the causal mask does
// not hide entirely: fwd (dk == NULL) or bwd.
typedef struct {
    const void *q, *dout;
    const int32_t *seg;
    float *dk, *dv;  // bwd: the accumulator of the block in hand
} pair_args;

static void for_each_pair(ring_gpu *r, const kv_block *kv, const shape5 *s, const pair_args *a,
                          bool backward) {
    const int64_t Tc = s->TL / 2, qw = (int64_t)s->H * s->D, kw = (int64_t)s->Hkv * s->D;
    const int ring = r->d->ring, me = r->d->ring_rank;
    const float scale = 1.0f / sqrtf((float)s->D);
    for (int64_t b = 0; b < s->B; b++)
        for (int qc = 0; qc < 2; qc++)
            for (int kc = 0; kc < 2; kc++) {
                int64_t q_start = zigzag_chunk_index(ring, me, qc) * Tc;
                int64_t k_start = zigzag_chunk_index(ring, kv->src, kc) * Tc;
                if (k_start > q_start + Tc - 1) continue;  // causal: nothing visible
                attn_shape sh = {.B = 1, .Tq = Tc, .Tk = Tc, .H = s->H, .Hkv = s->Hkv, .D = s->D,
                                 .q_start = q_start, .k_start = k_start, .scale = scale,
                                 .causal = true};
                int64_t q_row = b * s->TL + qc * Tc, k_row = b * s->TL + kc * Tc;
                int64_t p = (2 * b + qc) * s->H * Tc;
                const char *q = (const char *)a->q + (size_t)(q_row * qw) * dts(r);
                const char *k = (const char *)kv->k + (size_t)(k_row * kw) * dts(r);
                const char *v = (const char *)kv->v + (size_t)(k_row * kw) * dts(r);
                // The pair's document bounds: one small kernel before its
                // attention kernels on the same stream (the buffer is reused).
                cu_attn_docs docs = {.seg_q = a->seg ? a->seg + q_row : NULL,
                                     .seg_k = kv->seg ? kv->seg + k_row : NULL, .bounds = r->docs};
                const cu_attn_docs *dp = NULL;
                if (docs.seg_q && docs.seg_k) {
                    cu_attn_docs_build(&docs, 1, Tc, Tc, r->st);
                    dp = &docs;
                }
                if (!backward) {
                    cu_attn_block_forward(r->acc + q_row * qw, r->lse + p, q, k, v, dp, &sh,
                                          cdt(r), r->st);
                } else {
                    const char *dout = (const char *)a->dout + (size_t)(q_row * qw) * dts(r);
                    cu_attn_block_backward(r->acc + q_row * qw, a->dk + k_row * kw,
                                           a->dv + k_row * kw, dout, q, k, v, r->lse + p,
                                           r->delta + p, r->dq_sem, dp, &sh, cdt(r), r->st);
                }
            }
}

static void ring_forward(void *ctx, void *out, float *lse, const void *q, const void *k,
                         const void *v, const int32_t *seg, int64_t B, int64_t T, int H, int Hkv,
                         int D) {
    ring_gpu *r = ctx;
    if (r->d->ring == 1) {  // the whole sequence is here: the plain kernel
        attn_shape whole = {.B = B, .Tq = T, .Tk = T, .H = H, .Hkv = Hkv, .D = D,
                            .scale = 1.0f / sqrtf((float)D), .causal = true};
        r->bk->op->attn_forward(r->bk, out, lse, q, k, v, seg, &whole);
        return;
    }
    CHECK(T % 2 == 0);
    shape5 s = {B, T, H, Hkv, D};
    reserve(r, B, T, H, Hkv, D, false);
    const int64_t n_q = B * T * H * D, n_lse = B * H * T;
    CU_CHECK(cudaMemsetAsync(r->acc, 0, sizeof(float) * (size_t)n_q, r->st));
    CU_CHECK(cudaMemcpyAsync(r->lse, r->ninf, sizeof(float) * (size_t)n_lse,
                             cudaMemcpyDeviceToDevice, r->st));
    pair_args a = {.q = q, .seg = seg};
    kv_block cur = {.src = r->d->ring_rank, .k = k, .v = v, .seg = seg};
    for (int step = 0; step < r->d->ring; step++) {
        gpu_xfer x = {0};
        int slot = step % 2;
        if (step + 1 < r->d->ring) shift_kv(r, &x, &cur, slot, &s);
        for_each_pair(r, &cur, &s, &a, false);
        if (step + 1 < r->d->ring) {
            gpu_comm_wait(r->comm, &x);
            cur = arrived_kv(r, &cur, slot);
        }
    }
    lse_relayout(r, lse, r->lse, B, H, T, false);
    cu_cast(out, cdt(r), r->acc, CU_F32, n_q, r->st);
}

static void ring_backward(void *ctx, void *dq, void *dk, void *dv, const void *dout,
                          const void *q, const void *k, const void *v, const void *out,
                          const float *lse, const int32_t *seg, int64_t B, int64_t T, int H,
                          int Hkv, int D) {
    ring_gpu *r = ctx;
    if (r->d->ring == 1) {
        attn_shape whole = {.B = B, .Tq = T, .Tk = T, .H = H, .Hkv = Hkv, .D = D,
                            .scale = 1.0f / sqrtf((float)D), .causal = true};
        r->bk->op->attn_backward(r->bk, dq, dk, dv, dout, q, k, v, out, lse, seg, &whole);
        return;
    }
    CHECK(T % 2 == 0);
    shape5 s = {B, T, H, Hkv, D};
    reserve(r, B, T, H, Hkv, D, true);
    const int64_t Tc = T / 2, qw = (int64_t)H * D, n_q = B * T * H * D, n_kv = B * T * Hkv * D;
    lse_relayout(r, r->lse, lse, B, H, T, true);
    for (int64_t b = 0; b < B; b++)
        for (int c = 0; c < 2; c++) {
            int64_t row = b * T + c * Tc;
            cu_attn_backward_delta(r->delta + (2 * b + c) * H * Tc,
                                   (const char *)dout + (size_t)(row * qw) * dts(r),
                                   (const char *)out + (size_t)(row * qw) * dts(r), 1, Tc, H, D,
                                   cdt(r), r->st);
        }
    CU_CHECK(cudaMemsetAsync(r->acc, 0, sizeof(float) * (size_t)n_q, r->st));  // dq, fp32

    int blk = 0, inbox = 1;
    gpu_xfer kvx = {0}, accx = {0};
    pair_args a = {.q = q, .dout = dout, .seg = seg};
    kv_block cur = {.src = r->d->ring_rank, .k = k, .v = v, .seg = seg};
    for (int step = 0; step < r->d->ring; step++) {
        int slot = step % 2;
        if (step + 1 < r->d->ring) shift_kv(r, &kvx, &cur, slot, &s);
        CU_CHECK(cudaMemsetAsync(r->dkbuf[blk], 0, sizeof(float) * (size_t)n_kv, r->st));
        CU_CHECK(cudaMemsetAsync(r->dvbuf[blk], 0, sizeof(float) * (size_t)n_kv, r->st));
        a.dk = r->dkbuf[blk];
        a.dv = r->dvbuf[blk];
        for_each_pair(r, &cur, &s, &a, true);
        int send;
        if (step == 0) {
            send = blk;
        } else {
            gpu_comm_wait(r->comm, &accx);
            cu_axpy(r->dkbuf[inbox], CU_F32, 1.0f, r->dkbuf[blk], CU_F32, n_kv, r->st);
            cu_axpy(r->dvbuf[inbox], CU_F32, 1.0f, r->dvbuf[blk], CU_F32, n_kv, r->st);
            send = inbox;
        }
        int free1 = (send + 1) % 3, free2 = (send + 2) % 3;
        gpu_comm_shift(r->comm, &accx, r->dkbuf[free1], r->dkbuf[send], n_kv, DIST_F32, TAG_DK);
        gpu_comm_shift(r->comm, &accx, r->dvbuf[free1], r->dvbuf[send], n_kv, DIST_F32, TAG_DV);
        inbox = free1;
        blk = free2;
        if (step + 1 < r->d->ring) {
            gpu_comm_wait(r->comm, &kvx);
            cur = arrived_kv(r, &cur, slot);
        }
    }
    gpu_comm_wait(r->comm, &accx);
    cu_axpy(dq, cdt(r), 1.0f, r->acc, CU_F32, n_q, r->st);
    cu_axpy(dk, cdt(r), 1.0f, r->dkbuf[inbox], CU_F32, n_kv, r->st);
    cu_axpy(dv, cdt(r), 1.0f, r->dvbuf[inbox], CU_F32, n_kv, r->st);
}

model_attention gpu_ring_attention(gpu_comm *c) {
    // One per comm, freed with the process (a handful of device buffers).
    ring_gpu *r = xcalloc(1, sizeof *r);
    r->comm = c;
    r->bk = gpu_comm_backend(c);
    r->d = gpu_comm_dist(c);
    r->st = (cudaStream_t)backend_cuda_stream(r->bk);
    return (model_attention){.forward = ring_forward, .backward = ring_backward, .ctx = r};
}
