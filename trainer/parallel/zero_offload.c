// zero_offload: AdamW on the host with the gradients and weights moved on
// the copy stream. See zero_offload.h.
#include "zero_offload.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"

// copy_async events of the optimizer: the upper half (the model's residual
// checkpoints use 0 .. L-2); chunk k downloads with EV_DOWN + k and uploads
// with EV_UP + k.
enum { EV_DOWN = BK_COPY_EVENTS / 2, EV_UP = EV_DOWN + BK_COPY_EVENTS / 4 };

static int64_t tensor_len(const param_tensor *t) { return t->shape[0] * t->shape[1]; }

void zero_offload_init(zero_offload *o, backend *bk, const shard_layout *s) {
    memset(o, 0, sizeof *o);
    o->bk = bk;
    int64_t n = shard_len(s);
    o->h_grad = bk->op->host_alloc(bk, sizeof(float) * (size_t)(n > 0 ? n : 1));
    o->chunk_tensor = xcalloc((size_t)s->n_tensors + 1, sizeof(int));
    int64_t run = 0, chunk = n / 8;
    if (chunk < ZERO_OFFLOAD_CHUNK_MIN) chunk = ZERO_OFFLOAD_CHUNK_MIN;
    if (chunk > ZERO_OFFLOAD_CHUNK_MAX) chunk = ZERO_OFFLOAD_CHUNK_MAX;
    for (int i = 0; i < s->n_tensors; i++) {
        if (run == 0) o->chunk_tensor[o->n_chunks++] = i;
        run += tensor_len(&s->tensors[i]);
        if (run >= chunk) run = 0;
    }
    o->chunk_tensor[o->n_chunks] = s->n_tensors;
    CHECK(o->n_chunks <= BK_COPY_EVENTS / 4);
}

void zero_offload_free(zero_offload *o) {
    if (o->h_grad) o->bk->op->host_free(o->bk, o->h_grad);
    free(o->chunk_tensor);
    memset(o, 0, sizeof *o);
}

// [a, b) of chunk k, relative to the slice.
static void chunk_range(const zero_offload *o, const shard_layout *s, int k, int64_t *a, int64_t *b) {
    const param_tensor *first = &s->tensors[o->chunk_tensor[k]];
    const param_tensor *last = &s->tensors[o->chunk_tensor[k + 1] - 1];
    *a = first->offset;
    *b = last->offset + tensor_len(last);
}

void zero_offload_begin(zero_offload *o) { o->next_down = o->n_chunks; }

// The next chunk's copy down queued; it starts after what the compute
// stream holds (the backward that finished these gradients and, from adamw,
// the reduction) and after what the copy stream was made to wait for.
static void queue_down(zero_offload *o, model *m, const shard_layout *s) {
    int64_t a, b;
    chunk_range(o, s, o->next_down - 1, &a, &b);
    o->next_down--;
    o->bk->op->copy_async(o->bk, o->h_grad + a, model_dgrad_at(m, s->lo + a),
                          sizeof(float) * (size_t)(b - a), EV_DOWN + o->next_down);
}

void zero_offload_grads_ready(zero_offload *o, model *m, const shard_layout *s, int64_t lo) {
    // The backward finishes the gradients from the top of the buffer down.
    while (o->next_down > 0) {
        int64_t a, b;
        chunk_range(o, s, o->next_down - 1, &a, &b);
        if (s->lo + a < lo) return;
        queue_down(o, m, s);
    }
}

void zero_offload_grads_reduced(zero_offload *o, model *m, const shard_layout *s, backend_comm *c) {
    // Buckets start from the top of the buffer down, so chunks become ready
    // in that order too.
    while (o->next_down > 0) {
        int64_t a, b;
        chunk_range(o, s, o->next_down - 1, &a, &b);
        if (!backend_comm_grad_copy_after(c, s->lo + a, s->lo + b, EV_DOWN + o->next_down - 1)) return;
        queue_down(o, m, s);
    }
}

void zero_offload_adamw(zero_offload *o, model *m, const shard_layout *s, float *adam_m,
                        float *adam_v, const adamw_hparams *hp, int64_t step, float grad_scale) {
    backend *bk = o->bk, *cpu = backend_cpu();
    CHECK(m->host_master && bk == m->bk);
    // (ZeRO-3: the model's host master and device gradients are the slice)
    float *master = model_hmaster_at(m, s->lo), *dgrad = model_dgrad_at(m, s->lo);
    zero_offload_grads_ready(o, m, s, 0);  // the chunks not queued during the backward
    for (int k = o->n_chunks - 1; k >= 0; k--) {  // in the order they went down
        int64_t a, b;
        chunk_range(o, s, k, &a, &b);
        const int t0 = o->chunk_tensor[k], nt = o->chunk_tensor[k + 1] - t0;
        bk->op->copy_sync(bk, EV_DOWN + k);
        cpu->op->adamw(cpu, master, adam_m, adam_v, o->h_grad, NULL, s->tensors + t0, nt, hp,
                       step, grad_scale);
        // Up: the gradients of this chunk are spent, their pinned room stages
        // the weights; fp32 straight into the working copy, bf16 through the
        // device gradient slice and a cast on the compute stream.
        const size_t bytes = sizeof(float) * (size_t)(b - a);
        memcpy(o->h_grad + a, master + a, bytes);
        float *up = bk->dt == BK_F32 ? (float *)model_work_at(m, s->lo + a) : dgrad + a;
        bk->op->copy_async(bk, up, o->h_grad + a, bytes, EV_UP + k);
        bk->op->copy_wait(bk, EV_UP + k);
        if (bk->dt != BK_F32)
            bk->op->cast(bk, model_work_at(m, s->lo + a), bk->dt, up, BK_F32, b - a);
    }
}
