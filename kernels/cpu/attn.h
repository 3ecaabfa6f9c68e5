// attn: causal GQA attention with document masking, fp32 CPU reference of
// the FlashAttention-2 algorithm: tiled online softmax, the log-sum-exp saved
// by the forward, and a backward that recomputes the probabilities from it.
// Never allocates an N x N matrix.
//
// The unit of work is one (query block, key block) pair with global token
// offsets, merged into a running (out, lse) by log-sum-exp: a whole sequence
// is one call, ring attention is one call per key block that passes by.
//
// Legend: B sequences, Tq query rows and Tk key rows per sequence, H query
// heads, Hkv key/value heads (H % Hkv == 0, query head h reads kv head
// h / (H / Hkv)), D head dim.
// Masking: query i (global index q_start + i) sees key j (global index
// k_start + j) iff (!causal || k_start + j <= q_start + i) and, when segment
// ids are given, seg_q[i] == seg_k[j] (packed documents do not see each other).
//
// Tested by tests/unit/test_attn.c against naive softmax(QK^T)V for causal,
// GQA and packed-document cases, block splits merged by LSE against the whole,
// and the backward against finite differences.
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t B, Tq, Tk;
    int H, Hkv, D;
    int64_t q_start, k_start;  // global token index of query row 0 / key row 0
    float scale;               // softmax scale, usually 1/sqrt(D)
    bool causal;
} attn_shape;

// Full attention of a block of queries over a block of keys.
// q: (B, Tq, H, D), k, v: (B, Tk, Hkv, D), seg_q: (B, Tq), seg_k: (B, Tk) or NULL.
// out: (B, Tq, H, D) written; lse: (B, H, Tq) written, natural log of the sum of
// exp(scale * q.k) over visible keys; rows that see no key get out = 0 and
// lse = -INFINITY.
void attn_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                  const int32_t *seg_q, const int32_t *seg_k, const attn_shape *s);

// Same computation, merged into a running result: on entry (out, lse) hold the
// attention over the key blocks seen so far (start from out = 0,
// lse = -INFINITY); on return they hold it over those plus this block.
// Key blocks that are entirely masked for this query block cost nothing.
void attn_block_forward(float *out, float *lse, const float *q, const float *k,
                        const float *v, const int32_t *seg_q, const int32_t *seg_k,
                        const attn_shape *s);

// Merges a partial result (out_b, lse_b) into (out, lse) by log-sum-exp.
// out, out_b: (B, T, H, D); lse, lse_b: (B, H, T).
void attn_merge(float *out, float *lse, const float *out_b, const float *lse_b,
                int64_t B, int64_t T, int H, int D);

// delta[b,h,i] = sum_d dout[b,i,h,d] * out[b,i,h,d]; (B, H, T). Computed once
// per backward from the final (merged) output.
void attn_backward_delta(float *delta, const float *dout, const float *out, int64_t B,
                         int64_t T, int H, int D);

// Backward of one (query block, key block) pair given the FINAL lse and delta
// of the query rows (over all key blocks). Accumulates (+=) into
// dq: (B, Tq, H, D), dk, dv: (B, Tk, Hkv, D).
void attn_block_backward(float *dq, float *dk, float *dv, const float *dout,
                         const float *q, const float *k, const float *v,
                         const float *lse, const float *delta, const int32_t *seg_q,
                         const int32_t *seg_k, const attn_shape *s);

// Whole backward of attn_forward (Tq == Tk, same offsets): accumulates (+=)
// into dq, dk, dv. out and lse are what attn_forward returned.
void attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                   const float *k, const float *v, const float *out, const float *lse,
                   const int32_t *seg_q, const int32_t *seg_k, const attn_shape *s);
