// cu_attn: FlashAttention-2 forward and backward on the GPU, the CUDA version
// of kernels/cpu/attn.h with the same shapes, masking, block form and LSE
// merge (attn_shape is shared). bf16 inputs use tensor cores (mma.sync) with
// fp32 accumulation; fp32 inputs take a plain CUDA-core path (the 1e-4
// agreement mode). Head dims 64 and 128.
//
// Layouts as on the CPU: q, out, dout: (B, Tq, H, D); k, v: (B, Tk, Hkv, D);
// lse, delta: (B, H, Tq) fp32.
//
// Packed documents (segment ids): a cu_attn_docs names the ids and the
// document bounds cu_attn_docs_build derives from them once per batch (per
// (query block, key block) pair in ring attention). Every kernel then loops
// only over the keys of each row's own document, skips tiles that lie wholly
// across documents and takes the unmasked path inside a document (see
// cu_attn_tile.cuh). NULL = no document masking.
//
// bf16 q, k, v, dout, out must be 16-byte aligned (cp.async tile loads);
// cudaMalloc'd buffers and any whole-row offset into them are.
// The backward is deterministic: one kernel per key tile adds its dQ part in
// a fixed order (a counter per query tile, no atomics); see cu_attn_bwd.cu.
//
// Tested by tests/gpu/test_gpu_attn.c against a float64 reference (on a GPU
// and on the emulated GPU of tests/gpu/emu) and by tests/gpu/attn_vs_sdpa.py,
// bench/gpu/attn_sdpa.py against torch.nn.functional.scaled_dot_product_attention.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "attn.h"  // attn_shape
#include "cu_common.h"

CU_EXTERN_C_BEGIN

// Segment ids of a (query block, key block) pair: query row i sees key j
// only if seg_q[i] == seg_k[j]. bounds: device scratch of
// cu_attn_docs_ints(B, Tq, Tk) int32, filled by cu_attn_docs_build for these
// ids and shape; NULL makes every kernel compare the ids element by element
// (correct, never faster).
typedef struct {
    const int32_t *seg_q, *seg_k;  // (B, Tq), (B, Tk) device int32
    int32_t *bounds;
} cu_attn_docs;

// int32 elements of cu_attn_docs.bounds for B sequences of Tq queries, Tk keys.
int64_t cu_attn_docs_ints(int64_t B, int64_t Tq, int64_t Tk);

// Fills d->bounds from d->seg_q, d->seg_k (enqueued on st): per query row
// the keys of its document, per key row the queries of its document. Exact
// when each sequence's ids are non-decreasing read as uint32 (documents in
// order, padding -1 last: what data/loader.h packs); a sequence with ids in
// any other order is flagged and masked by comparing ids instead.
void cu_attn_docs_build(const cu_attn_docs *d, int64_t B, int64_t Tq, int64_t Tk,
                        cudaStream_t st);

// True when the kernels support this shape on the current device: D in
// {64, 128}, H % Hkv == 0, T < 2^30, and (bf16) the tiles for D fit the
// device's shared memory per block (cu_attn_smem_limit; at D = 128 the
// forward falls back to 64-query and the backward to 64-key tiles where the
// 128-row ones do not fit, e.g. sm_86 / sm_89: 99 KB).
bool cu_attn_supported(const attn_shape *s);

// The current device's opt-in shared memory per block
// (cudaDevAttrMaxSharedMemoryPerBlockOptin), read once per device.
int cu_attn_smem_limit(void);

// Whole attention of queries over keys: out (dt) and lse written.
void cu_attn_forward(void *out, float *lse, const void *q, const void *k, const void *v,
                     const cu_attn_docs *docs, const attn_shape *s, cu_dtype dt,
                     cudaStream_t st);

// One key block merged into a running fp32 result (ring attention): on entry
// out_acc (B, Tq, H, D) fp32 and lse_acc hold the result over the key blocks
// so far (start: 0 and -INFINITY); on return over those plus this block.
// Fully masked blocks cost only the launch.
void cu_attn_block_forward(float *out_acc, float *lse_acc, const void *q, const void *k,
                           const void *v, const cu_attn_docs *docs, const attn_shape *s,
                           cu_dtype dt, cudaStream_t st);

// delta[b,h,i] = sum_d dout * out, from the final output (dt); (B, H, T) fp32.
void cu_attn_backward_delta(float *delta, const void *dout, const void *out, int64_t B,
                            int64_t T, int H, int D, cu_dtype dt, cudaStream_t st);

// int32 elements of the dq_sem scratch of a bf16 backward of shape s (the
// counters that order the dQ additions; zeroed by the call itself).
int64_t cu_attn_dq_sem_ints(const attn_shape *s);

// Backward of one (query block, key block) pair given the FINAL lse and
// delta. Accumulates (+=) into fp32 dq (B, Tq, H, D), dk, dv (B, Tk, Hkv, D)
// (ring attention sums dK, dV over its steps in fp32). dq_sem: device
// scratch of cu_attn_dq_sem_ints(s) int32 (bf16; unused for fp32). Calls
// sharing one dq_sem must be ordered (one stream). Deterministic.
void cu_attn_block_backward(float *dq, float *dk, float *dv, const void *dout, const void *q,
                            const void *k, const void *v, const float *lse,
                            const float *delta, int32_t *dq_sem, const cu_attn_docs *docs,
                            const attn_shape *s, cu_dtype dt, cudaStream_t st);

// Whole backward of cu_attn_forward: += into dq, dk, dv of type dt. bf16:
// dk, dv are added in bf16 straight from the kernel and dq through dq_acc,
// fp32 scratch of B * Tq * H * D floats (need not be zero): one rounding
// each, no fp32 copies of the gradients. delta: scratch of (B, H, Tq)
// floats; dq_sem as for cu_attn_block_backward. fp32: dq_acc, dq_sem unused.
void cu_attn_backward(void *dq, void *dk, void *dv, const void *dout, const void *q,
                      const void *k, const void *v, const void *out, const float *lse,
                      float *delta, float *dq_acc, int32_t *dq_sem, const cu_attn_docs *docs,
                      const attn_shape *s, cu_dtype dt, cudaStream_t st);

CU_EXTERN_C_END
